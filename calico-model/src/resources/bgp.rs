//! Node and BGP kinds: Node, BGPConfiguration, BGPPeer, BGPFilter.
//!
//! Every `spec` type here rejects unknown fields. BGPConfiguration and BGPPeer fields keep
//! "unset" distinct from their defaults (a per-node BGPConfiguration inherits unset fields from
//! the global one); the `effective_*` accessors give the defaulted values.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::policy::calico_object;
use super::values::serde_util::{empty_as_none, is_false};
use super::values::{AsNumber, IpCidr};

/// `spec.bgp` of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgpSpec {
    /// AS number; unset = BGPConfiguration `asNumber`.
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// IPv4 peering address with the node's subnet (`10.0.0.5/24`).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<IpCidr>,
    /// IPv6 peering address with the node's subnet.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<IpCidr>,
    /// IPIP tunnel address (IPv4).
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<IpAddr>,
    /// Route-reflector cluster ID (IPv4 dotted form); non-empty makes the node a reflector.
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "String::is_empty"
    )]
    pub route_reflector_cluster_id: String,
}

impl NodeBgpSpec {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == NodeBgpSpec::default()
    }
}

/// `spec.wireguard` of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWireguardSpec {
    /// WireGuard interface IPv4 address.
    #[serde(
        default,
        rename = "interfaceIPv4Address",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv4_address: Option<IpAddr>,
    /// WireGuard interface IPv6 address.
    #[serde(
        default,
        rename = "interfaceIPv6Address",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_ipv6_address: Option<IpAddr>,
}

/// Type of a node address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeAddressType {
    /// The address Calico uses.
    CalicoNodeIP,
    /// Kubernetes internal IP.
    InternalIP,
    /// Kubernetes external IP.
    ExternalIP,
}

/// One `spec.addresses` entry of a Node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// Address (`net`).
    pub address: IpCidr,
    /// Address type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<NodeAddressType>,
}

/// One `spec.orchRefs` entry of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrchRef {
    /// Node name in the orchestrator.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Orchestrator.
    #[serde(default)]
    pub orchestrator: String,
}

/// `spec` of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// BGP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// IPv4 VXLAN tunnel address.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<IpAddr>,
    /// IPv4 VXLAN tunnel MAC.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr: String,
    /// IPv6 VXLAN tunnel address.
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<IpAddr>,
    /// IPv6 VXLAN tunnel MAC.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr_v6: String,
    /// WireGuard settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<NodeWireguardSpec>,
    /// Node addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Orchestrator references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
}

/// A Kubernetes secret key reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key in the secret.
    #[serde(default)]
    pub key: String,
    /// Whether the secret may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A BGP password source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPassword {
    /// Secret holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A `{cidr}` entry of the service IP lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCidr {
    /// CIDR (`net`).
    pub cidr: IpCidr,
}

/// A named BGP community.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// Name (required).
    #[serde(default)]
    pub name: String,
    /// Value `aa:nn` or `aa:nn:mm`.
    #[serde(default)]
    pub value: String,
}

/// A prefix advertisement with communities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    /// CIDR (`net`, required).
    pub cidr: IpCidr,
    /// Community names or literal values (≤ 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

/// `serviceLoadBalancerAggregation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancerAggregation {
    /// Aggregate (default).
    Enabled,
    /// Advertise individual addresses.
    Disabled,
}

/// `bindMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BindMode {
    /// Listen on every address (default).
    None,
    /// Listen on the node IP only.
    NodeIP,
}

/// `programClusterRoutes` values (BGPConfiguration and FelixConfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProgramClusterRoutes {
    /// Program routes for every pool type.
    Enabled,
    /// Program none.
    Disabled,
    /// Only IPIP pools.
    EnabledIPIPOnly,
    /// Only unencapsulated pools.
    EnabledNoEncapOnly,
}

impl ProgramClusterRoutes {
    /// The value that complements this one on the other side: cluster routes are
    /// programmed either by BIRD (BGPConfiguration) or by Felix (FelixConfiguration), so the
    /// two settings must split the pool types between them (`Enabled` with `Disabled`,
    /// `EnabledIPIPOnly` with `EnabledNoEncapOnly`).
    pub fn complement(self) -> ProgramClusterRoutes {
        match self {
            ProgramClusterRoutes::Enabled => ProgramClusterRoutes::Disabled,
            ProgramClusterRoutes::Disabled => ProgramClusterRoutes::Enabled,
            ProgramClusterRoutes::EnabledIPIPOnly => ProgramClusterRoutes::EnabledNoEncapOnly,
            ProgramClusterRoutes::EnabledNoEncapOnly => ProgramClusterRoutes::EnabledIPIPOnly,
        }
    }
}

/// `spec` of a BGPConfiguration (`default` or `node.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfigurationSpec {
    /// BIRD log level (case-insensitive): Trace, Debug, Info, Warning, Error, Fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    /// Full node-to-node mesh (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Default AS number (64512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Service cluster IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<ServiceCidr>,
    /// Service external IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<ServiceCidr>,
    /// Service LoadBalancer IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<ServiceCidr>,
    /// LoadBalancer aggregation (default Enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_load_balancer_aggregation: Option<LoadBalancerAggregation>,
    /// Named communities (≤ 500).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Prefix advertisements (≤ 500).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// BGP listen port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// Mesh password (only with the mesh enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    /// Mesh graceful-restart time (only with the mesh enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
    /// Bind mode (default None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,
    /// Interfaces BIRD ignores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    /// Local workload peering IPv4 address.
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV4",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv4: Option<IpAddr>,
    /// Local workload peering IPv6 address.
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV6",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv6: Option<IpAddr>,
    /// Which pool types BIRD programs routes for (default EnabledNoEncapOnly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_cluster_routes: Option<ProgramClusterRoutes>,
    /// IPv4 route priority (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_normal_route_priority: Option<i64>,
    /// IPv6 route priority (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_normal_route_priority: Option<i64>,
}

impl BgpConfigurationSpec {
    /// Whether the node-to-node mesh is enabled (unset = true).
    pub fn effective_mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }

    /// The default AS number (unset = 64512).
    pub fn effective_as_number(&self) -> AsNumber {
        self.as_number.unwrap_or(AsNumber(64512))
    }

    /// The listen port (unset = 179).
    pub fn effective_listen_port(&self) -> u16 {
        self.listen_port.unwrap_or(179)
    }

    /// The BIRD `programClusterRoutes` setting (unset = EnabledNoEncapOnly).
    pub fn effective_program_cluster_routes(&self) -> ProgramClusterRoutes {
        self.program_cluster_routes
            .unwrap_or(ProgramClusterRoutes::EnabledNoEncapOnly)
    }
}

/// `nextHopMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NextHopMode {
    /// Default behaviour.
    Auto,
    /// Next hop self.
    #[serde(rename = "Self")]
    SelfHop,
    /// Keep the original next hop.
    Keep,
}

/// `sourceAddress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceAddress {
    /// Use the node IP (default).
    UseNodeIP,
    /// Let the kernel choose.
    None,
}

/// `reversePeering` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReversePeering {
    /// Peer back automatically (default).
    Auto,
    /// Require an explicit reverse peer.
    Manual,
}

/// `spec` of a BGPPeer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    /// The node that peers (not with `nodeSelector`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Selector of the nodes that peer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    /// Peer address: `IP`, `IPv4:port` or `[IPv6]:port`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    /// Peer AS number.
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Selector of Calico nodes to peer with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_selector: String,
    /// Selector of local workloads to peer with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_workload_selector: String,
    /// Local AS number (default from BGPConfiguration).
    #[serde(
        default,
        rename = "localASNumber",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_as_number: Option<AsNumber>,
    /// Deprecated: keep the original next hop.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_original_next_hop: bool,
    /// Next-hop mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// Session password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    /// Source address (default UseNodeIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// Graceful-restart time (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    /// Keepalive time (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Allowed occurrences of the local AS in received paths.
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<i32>,
    /// TTL security hop count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// Gateway through which the peer is reachable (same family as peerIP).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reachable_by: String,
    /// BGPFilter names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Reverse peering (default Auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_peering: Option<ReversePeering>,
}

/// BGPFilter rule action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterAction {
    /// Accept the route.
    Accept,
    /// Reject the route.
    Reject,
}

/// BGPFilter `matchOperator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOperator {
    /// Exactly the CIDR.
    Equal,
    /// Not exactly the CIDR.
    NotEqual,
    /// Inside the CIDR.
    In,
    /// Not inside the CIDR.
    NotIn,
}

/// BGPFilter `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterSource {
    /// Routes learned from remote peers.
    RemotePeers,
}

/// BGPFilter `peerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerType {
    /// External BGP.
    #[serde(rename = "eBGP")]
    Ebgp,
    /// Internal BGP.
    #[serde(rename = "iBGP")]
    Ibgp,
}

/// BGPFilter `prefixLength`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    /// Minimum prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    /// Maximum prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i32>,
}

/// BGPFilter `communities`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterCommunities {
    /// Community values (exactly 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A community value wrapper (`addCommunity`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityValue {
    /// Community value.
    #[serde(default)]
    pub value: String,
}

/// `prependASPath`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrependAsPath {
    /// AS numbers to prepend (1–10).
    #[serde(default)]
    pub prefix: Vec<AsNumber>,
}

/// `setPriority`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPriority {
    /// Route priority.
    #[serde(default)]
    pub value: i64,
}

/// One BGPFilter operation: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterOperation {
    /// Add a community.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_community: Option<CommunityValue>,
    /// Prepend AS numbers.
    #[serde(
        default,
        rename = "prependASPath",
        skip_serializing_if = "Option::is_none"
    )]
    pub prepend_as_path: Option<PrependAsPath>,
    /// Set the route priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_priority: Option<SetPriority>,
}

/// One BGPFilter rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilterRule {
    /// Action (required).
    pub action: FilterAction,
    /// CIDR to match (with `matchOperator`).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub cidr: Option<IpCidr>,
    /// Match operator (with `cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_operator: Option<MatchOperator>,
    /// Prefix-length range (needs `cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<PrefixLength>,
    /// Route source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FilterSource>,
    /// Interface pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Peer type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<PeerType>,
    /// Community match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<FilterCommunities>,
    /// AS-path prefix match.
    #[serde(
        default,
        rename = "asPathPrefix",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub as_path_prefix: Vec<AsNumber>,
    /// Priority match (1–2147483646).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Operations (1–10; only with Accept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<FilterOperation>,
}

/// `spec` of a BGPFilter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpFilterSpec {
    /// IPv4 export rules.
    #[serde(default, rename = "exportV4", skip_serializing_if = "Vec::is_empty")]
    pub export_v4: Vec<BgpFilterRule>,
    /// IPv4 import rules.
    #[serde(default, rename = "importV4", skip_serializing_if = "Vec::is_empty")]
    pub import_v4: Vec<BgpFilterRule>,
    /// IPv6 export rules.
    #[serde(default, rename = "exportV6", skip_serializing_if = "Vec::is_empty")]
    pub export_v6: Vec<BgpFilterRule>,
    /// IPv6 import rules.
    #[serde(default, rename = "importV6", skip_serializing_if = "Vec::is_empty")]
    pub import_v6: Vec<BgpFilterRule>,
}

calico_object!(
    /// projectcalico.org/v3 Node (cluster).
    Node,
    NodeSpec
);
calico_object!(
    /// projectcalico.org/v3 BGPConfiguration (cluster).
    BgpConfiguration,
    BgpConfigurationSpec
);
calico_object!(
    /// projectcalico.org/v3 BGPPeer (cluster).
    BgpPeer,
    BgpPeerSpec
);
calico_object!(
    /// projectcalico.org/v3 BGPFilter (cluster).
    BgpFilter,
    BgpFilterSpec
);
