//! The routing view of a cluster: the resources that affect routing (nodes, pools,
//! blocks, BGP configuration, peers, filters, Services), normalised once.
//!
//! [`Cluster::from_resources`] reads Nodes, BGPConfigurations (`default` and `node.<name>`),
//! BGPPeers, BGPFilters, IPPools, BlockAffinities, FelixConfigurations (`default` and
//! `node.<name>`), WorkloadEndpoints and Pods. Everything is sorted by name so that every
//! derived output is deterministic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use calico_model::derived::{first_interface_prefix, pod_ip_networks, pod_workload_endpoint};
use calico_model::resources::bgp::{BgpConfigurationSpec, BgpFilterSpec, BgpPeer, Node};
use calico_model::resources::felix::FelixConfigurationSpec;
use calico_model::resources::ipam::{AffinityState, BlockAffinitySpec, EncapMode, IpPool};
use calico_model::resources::k8s_services::{EndpointSlice, Secret, Service};
use calico_model::resources::values::{AsNumber, IpCidr};
use calico_model::resources::{Labels, Resource};
use ipnet::IpNet;
use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::state::{Mac, MacParseError, RouteProtocol};

/// Default AS number, used when neither the node nor the BGPConfiguration sets one.
pub const DEFAULT_AS: AsNumber = AsNumber(64512);
/// Felix's private route protocol, used when `deviceRouteProtocol` is left at boot.
pub const FELIX_PROTO: RouteProtocol = RouteProtocol::FELIX;
/// The BIRD route protocol.
pub const BIRD_PROTO: RouteProtocol = RouteProtocol::BIRD;

/// An address family: calico-model's one family type, re-exported where routing's inputs live.
pub use calico_model::family::Family;

/// A Node as routing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels (for BGPPeer and IPPool selectors).
    pub labels: Labels,
    /// BGP IPv4 address with the node's subnet.
    pub ipv4: Option<IpCidr>,
    /// BGP IPv6 address with the node's subnet.
    pub ipv6: Option<IpCidr>,
    /// Per-node AS number.
    pub as_number: Option<AsNumber>,
    /// Route-reflector cluster ID (empty: not a reflector).
    pub cluster_id: String,
    /// IPIP tunnel address.
    pub ipip_tunnel: Option<IpAddr>,
    /// IPv4 VXLAN tunnel address.
    pub vxlan_v4: Option<IpAddr>,
    /// IPv4 VXLAN MAC as configured (empty: derived).
    pub vxlan_mac_v4: String,
    /// IPv6 VXLAN tunnel address.
    pub vxlan_v6: Option<IpAddr>,
    /// IPv6 VXLAN MAC as configured (empty: derived).
    pub vxlan_mac_v6: String,
    /// WireGuard IPv4 interface address.
    pub wireguard_v4: Option<IpAddr>,
}

impl NodeInfo {
    /// Builds the routing view of a Node resource.
    pub fn from_node(node: &Node) -> NodeInfo {
        let bgp = node.spec.bgp.clone().unwrap_or_default();
        NodeInfo {
            name: node.metadata.name.clone(),
            labels: node.metadata.labels.clone(),
            ipv4: bgp.ipv4_address.filter(IpCidr::is_ipv4),
            ipv6: bgp.ipv6_address.filter(|c| !c.is_ipv4()),
            as_number: bgp.as_number,
            cluster_id: bgp.route_reflector_cluster_id.clone(),
            ipip_tunnel: bgp.ipv4_ipip_tunnel_addr,
            vxlan_v4: node.spec.ipv4_vxlan_tunnel_addr,
            vxlan_mac_v4: node.spec.vxlan_tunnel_mac_addr.clone(),
            vxlan_v6: node.spec.ipv6_vxlan_tunnel_addr,
            vxlan_mac_v6: node.spec.vxlan_tunnel_mac_addr_v6.clone(),
            wireguard_v4: node
                .spec
                .wireguard
                .as_ref()
                .and_then(|w| w.interface_ipv4_address),
        }
    }

    /// The BGP address (with prefix) in `family`.
    pub fn cidr(&self, family: Family) -> Option<IpCidr> {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }

    /// The peering address in `family`: the node's BGP address, without its prefix length.
    pub fn ip(&self, family: Family) -> Option<IpAddr> {
        self.cidr(family).map(|c| c.addr())
    }

    /// Whether the node is a route reflector (non-empty cluster ID).
    pub fn is_rr(&self) -> bool {
        !self.cluster_id.is_empty()
    }

    /// The VXLAN tunnel address in `family`.
    pub fn vtep(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.vxlan_v4,
            Family::V6 => self.vxlan_v6,
        }
    }

    /// The VXLAN MAC in `family`: configured, else `66:` + the first 5 bytes of SHA-1(name)
    /// (SHA-1(name + `-v6`) for IPv6). A configured MAC that does not parse is an error.
    pub fn vtep_mac(&self, family: Family) -> Result<Mac, MacParseError> {
        let configured = match family {
            Family::V4 => &self.vxlan_mac_v4,
            Family::V6 => &self.vxlan_mac_v6,
        };
        if !configured.is_empty() {
            return configured.parse();
        }
        let seed = match family {
            Family::V4 => self.name.clone(),
            Family::V6 => format!("{}-v6", self.name),
        };
        let digest = Sha1::digest(seed.as_bytes());
        let mut mac = [0x66u8; 6];
        for (m, d) in mac.iter_mut().skip(1).zip(digest.iter()) {
            *m = *d;
        }
        Ok(Mac(mac))
    }
}

/// A local workload address: what the kernel plan needs of a WorkloadEndpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Node the workload runs on.
    pub node: String,
    /// `namespace/name` of the endpoint (or pod).
    pub id: String,
    /// Host-side interface.
    pub interface: String,
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// MAC, when known.
    pub mac: String,
    /// Endpoint labels (for `localWorkloadSelector`).
    pub labels: Labels,
}

/// What routing needs of one WorkloadEndpoint or Pod: the workload it stands for (if it has
/// addresses and a node) and the pod it belongs to, so that a pod with a WorkloadEndpoint of
/// its own is counted once.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointWorkload {
    /// The pod: node, pod name, namespace.
    pub pod: (String, String, Option<String>),
    /// Whether this came from a WorkloadEndpoint (which wins over its pod).
    pub from_wep: bool,
    /// The workload, when it has addresses and a node.
    pub workload: Option<Workload>,
}

impl EndpointWorkload {
    /// What routing needs of an endpoint on another node, made cheaply: its node, its
    /// addresses and its pod (no interface, MAC or labels: only a node's own workloads use
    /// them; `id` is `namespace/name` of the object). `None` as [`EndpointWorkload::of`].
    pub fn elsewhere(r: &Resource) -> Option<EndpointWorkload> {
        let ns = r.namespace().unwrap_or("default");
        let (node, pod, ips, from_wep) = match r {
            Resource::WorkloadEndpoint(w) => (
                &w.spec.node,
                &w.spec.pod,
                w.spec
                    .ip_networks
                    .iter()
                    .map(IpCidr::addr)
                    .collect::<Vec<_>>(),
                true,
            ),
            Resource::Pod(p) if !p.spec.host_network && !p.spec.node_name.is_empty() => (
                &p.spec.node_name,
                &p.metadata.name,
                pod_ip_networks(p).iter().map(IpCidr::addr).collect(),
                false,
            ),
            _ => return None,
        };
        let workload = (!ips.is_empty() && !node.is_empty()).then(|| Workload {
            node: node.clone(),
            id: format!("{ns}/{}", r.name()),
            interface: String::new(),
            ips,
            mac: String::new(),
            labels: Labels::new(),
        });
        Some(EndpointWorkload {
            pod: (node.clone(), pod.clone(), Some(ns.to_owned())),
            from_wep,
            workload,
        })
    }

    /// The routing view of `r` (`None`: not an endpoint, or a pod Calico gives no
    /// WorkloadEndpoint, such as a host-network pod). `interface_prefix` names the pod's
    /// host-side interface.
    pub fn of(r: &Resource, interface_prefix: &str) -> Option<EndpointWorkload> {
        let (w, from_wep) = match r {
            Resource::WorkloadEndpoint(w) => (std::borrow::Cow::Borrowed(w), true),
            Resource::Pod(p) => (
                std::borrow::Cow::Owned(pod_workload_endpoint(p, interface_prefix)?),
                false,
            ),
            _ => return None,
        };
        let ips: Vec<IpAddr> = w.spec.ip_networks.iter().map(IpCidr::addr).collect();
        let workload = (!ips.is_empty() && !w.spec.node.is_empty()).then(|| Workload {
            node: w.spec.node.clone(),
            id: format!(
                "{}/{}",
                w.metadata.namespace.as_deref().unwrap_or("default"),
                w.metadata.name
            ),
            interface: w.spec.interface_name.clone(),
            ips,
            mac: w.spec.mac.clone(),
            labels: w.metadata.labels.clone(),
        });
        Some(EndpointWorkload {
            pod: (
                w.spec.node.clone(),
                w.spec.pod.clone(),
                w.metadata.namespace.clone(),
            ),
            from_wep,
            workload,
        })
    }
}

/// A block affinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Affinity {
    /// Owning node.
    pub node: String,
    /// Block.
    pub block: IpNet,
    /// State (unset reads as confirmed).
    pub state: AffinityState,
}

impl Affinity {
    /// Whether the affinity counts as confirmed (`confirmed` or no state).
    pub fn is_confirmed(&self) -> bool {
        matches!(self.state, AffinityState::Confirmed | AffinityState::Unset)
    }
}

/// The encapsulation type of a pool, for route ownership (which of Felix or BIRD
/// programs its routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PoolEncap {
    /// VXLAN (Always or CrossSubnet).
    Vxlan,
    /// IP-in-IP (Always or CrossSubnet).
    Ipip,
    /// No encapsulation.
    None,
}

/// An IPPool as routing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolInfo {
    /// Pool name.
    pub name: String,
    /// CIDR.
    pub cidr: IpNet,
    /// Block size.
    pub block_size: u8,
    /// IPIP mode.
    pub ipip: EncapMode,
    /// VXLAN mode.
    pub vxlan: EncapMode,
    /// `disableBGPExport`.
    pub disable_bgp_export: bool,
    /// `disabled`.
    pub disabled: bool,
}

impl PoolInfo {
    /// The encapsulation type (VXLAN wins if both are set, which validation rejects).
    pub fn encap(&self) -> PoolEncap {
        if self.vxlan != EncapMode::Never {
            PoolEncap::Vxlan
        } else if self.ipip != EncapMode::Never {
            PoolEncap::Ipip
        } else {
            PoolEncap::None
        }
    }

    /// The active mode (Always / CrossSubnet / Never) of the pool's encapsulation.
    pub fn mode(&self) -> EncapMode {
        match self.encap() {
            PoolEncap::Vxlan => self.vxlan,
            PoolEncap::Ipip => self.ipip,
            PoolEncap::None => EncapMode::Never,
        }
    }

    /// The family of the pool.
    pub fn family(&self) -> Family {
        Family::of(self.cidr.addr())
    }
}

/// Felix settings resolved for one node (node-specific FelixConfiguration over `default`).
#[derive(Debug, Clone, PartialEq)]
pub struct FelixSettings {
    /// Felix `programClusterRoutes`.
    pub program_cluster_routes: calico_model::resources::bgp::ProgramClusterRoutes,
    /// `deviceRouteProtocol` (a value outside 0–255 counts as unset: `boot`).
    pub device_route_protocol: RouteProtocol,
    /// VXLAN VNI.
    pub vxlan_vni: i64,
    /// VXLAN UDP port.
    pub vxlan_port: i64,
    /// Configured IPIP MTU (0 = derived).
    pub ipip_mtu: i64,
    /// Configured VXLAN MTU (0 = derived).
    pub vxlan_mtu: i64,
    /// Configured VXLAN IPv6 MTU (0 = derived).
    pub vxlan_mtu_v6: i64,
    /// WireGuard enabled (IPv4).
    pub wireguard_enabled: bool,
    /// Configured WireGuard MTU (0 = derived).
    pub wireguard_mtu: i64,
    /// Interface prefix for workload interfaces.
    pub interface_prefix: String,
    /// Normal route priority (IPv4, IPv6).
    pub normal_priority: (i64, i64),
}

/// Where a node's BGP router ID comes from (what calico-node's `CALICO_ROUTER_ID` says).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RouterIdSource {
    /// The node's IPv4 address; hashed from the node name when it has none.
    #[default]
    NodeAddress,
    /// Hashed from the node name, on every node (`hash`).
    Hash,
    /// This address on every node.
    Fixed(Ipv4Addr),
}

/// A router-ID setting that is neither `hash`, an IPv4 address nor empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("router ID {0:?} is neither \"hash\" nor an IPv4 address")]
pub struct BadRouterId(pub String);

impl std::str::FromStr for RouterIdSource {
    type Err = BadRouterId;

    /// Parses a `CALICO_ROUTER_ID` value: empty (the node address), `hash`, or an IPv4
    /// address.
    fn from_str(s: &str) -> Result<RouterIdSource, BadRouterId> {
        match s.trim() {
            "" => Ok(RouterIdSource::NodeAddress),
            "hash" => Ok(RouterIdSource::Hash),
            other => other
                .parse::<Ipv4Addr>()
                .map(RouterIdSource::Fixed)
                .map_err(|_| BadRouterId(s.to_owned())),
        }
    }
}

/// The namespace whose Secrets hold BGP passwords unless [`Cluster::secret_namespace`] says
/// otherwise (where calico-node runs).
pub const DEFAULT_SECRET_NAMESPACE: &str = "kube-system";

/// The node label that keeps a node from advertising Service addresses.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The routing view of a cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Nodes sorted by name.
    pub nodes: Vec<NodeInfo>,
    /// BGPConfiguration `default` (empty when absent).
    pub bgp: BgpConfigurationSpec,
    /// BGPConfiguration `node.<name>` by node name.
    pub node_bgp: BTreeMap<String, BgpConfigurationSpec>,
    /// BGPPeers sorted by name.
    pub peers: Vec<BgpPeer>,
    /// BGPFilters by name.
    pub filters: BTreeMap<String, BgpFilterSpec>,
    /// IPPools sorted by name.
    pub pools: Vec<PoolInfo>,
    /// Block affinities (not deleted), sorted by block then node.
    pub affinities: Vec<Affinity>,
    /// FelixConfiguration `default`.
    pub felix: FelixConfigurationSpec,
    /// FelixConfiguration `node.<name>` by node name.
    pub node_felix: BTreeMap<String, FelixConfigurationSpec>,
    /// Workloads sorted by node, then id.
    pub workloads: Vec<Workload>,
    /// Secrets by (namespace, name) (BGP passwords).
    pub secrets: BTreeMap<(String, String), Secret>,
    /// The namespace BGP password Secrets are read from (empty: `kube-system`).
    pub secret_namespace: String,
    /// Services sorted by namespace, then name.
    pub services: Vec<Service>,
    /// EndpointSlices by (namespace, service name), sorted by slice name.
    pub endpoint_slices: BTreeMap<(String, String), Vec<EndpointSlice>>,
    /// Where router IDs come from.
    pub router_id: RouterIdSource,
}

impl Cluster {
    /// Builds the view from resources (defaults need not have been applied).
    pub fn from_resources<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Cluster {
        Cluster::from_parts(resources, &[])
    }

    /// [`Cluster::from_resources`] with endpoints already reduced to what routing needs
    /// ([`EndpointWorkload::of`], e.g. kept by a long-running agent instead of the objects);
    /// a pod with a WorkloadEndpoint of its own, among the resources or `extra`, is counted
    /// once.
    pub fn from_parts<'a>(
        resources: impl IntoIterator<Item = &'a Resource>,
        extra: &[&EndpointWorkload],
    ) -> Cluster {
        let mut c = Cluster::default();
        let mut endpoints: Vec<&Resource> = Vec::new();
        for r in resources {
            match r {
                Resource::Node(n) => c.nodes.push(NodeInfo::from_node(n)),
                Resource::BgpConfiguration(b) => {
                    let name = &b.metadata.name;
                    if name == "default" {
                        c.bgp = b.spec.clone();
                    } else if let Some(node) = name.strip_prefix("node.") {
                        c.node_bgp.insert(node.to_owned(), b.spec.clone());
                    }
                }
                Resource::BgpPeer(p) => c.peers.push(p.clone()),
                Resource::BgpFilter(f) => {
                    c.filters.insert(f.metadata.name.clone(), f.spec.clone());
                }
                Resource::IpPool(p) => c.pools.push(pool_info(p)),
                Resource::BlockAffinity(a) => {
                    if let Some(aff) = affinity(&a.spec) {
                        c.affinities.push(aff);
                    }
                }
                Resource::FelixConfiguration(f) => {
                    let name = &f.metadata.name;
                    if name == "default" {
                        c.felix = f.spec.clone();
                    } else if let Some(node) = name.strip_prefix("node.") {
                        c.node_felix.insert(node.to_owned(), f.spec.clone());
                    }
                }
                Resource::WorkloadEndpoint(_) | Resource::Pod(_) => endpoints.push(r),
                Resource::Secret(sec) => {
                    let ns = r.namespace().unwrap_or("default").to_owned();
                    c.secrets
                        .insert((ns, sec.metadata.name.clone()), sec.clone());
                }
                Resource::Service(svc) => c.services.push(svc.clone()),
                Resource::EndpointSlice(es) => {
                    if let Some(svc) = es.service_name() {
                        let ns = r.namespace().unwrap_or("default").to_owned();
                        c.endpoint_slices
                            .entry((ns, svc.to_owned()))
                            .or_default()
                            .push(es.clone());
                    }
                }
                _ => {}
            }
        }
        let prefix = first_interface_prefix(c.felix.interface_prefix.as_deref()).to_owned();
        let own: Vec<EndpointWorkload> = endpoints
            .into_iter()
            .filter_map(|r| EndpointWorkload::of(r, &prefix))
            .collect();
        let all: Vec<&EndpointWorkload> = own.iter().chain(extra.iter().copied()).collect();
        let with_wep: std::collections::BTreeSet<&(String, String, Option<String>)> =
            all.iter().filter(|e| e.from_wep).map(|e| &e.pod).collect();
        for e in all {
            if let Some(w) = &e.workload
                && (e.from_wep || !with_wep.contains(&e.pod))
            {
                c.workloads.push(w.clone());
            }
        }
        c.sort();
        c
    }

    /// Restores the canonical order after the collections were edited.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.peers
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        self.pools.sort_by(|a, b| a.name.cmp(&b.name));
        self.affinities.sort_by(|a, b| {
            (a.block.addr(), a.block.prefix_len(), &a.node).cmp(&(
                b.block.addr(),
                b.block.prefix_len(),
                &b.node,
            ))
        });
        self.workloads
            .sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        self.services.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        for slices in self.endpoint_slices.values_mut() {
            slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
    }

    /// The namespace BGP password Secrets are read from.
    pub fn secret_namespace(&self) -> &str {
        if self.secret_namespace.is_empty() {
            DEFAULT_SECRET_NAMESPACE
        } else {
            &self.secret_namespace
        }
    }

    /// The value a `secretKeyRef` points at, or why it cannot be read.
    pub fn secret_value(
        &self,
        r: &calico_model::resources::bgp::SecretKeyRef,
    ) -> Result<String, String> {
        let ns = self.secret_namespace();
        let secret = self
            .secrets
            .get(&(ns.to_owned(), r.name.clone()))
            .ok_or_else(|| format!("no Secret {ns}/{}", r.name))?;
        secret.value(&r.key).map_err(|e| e.to_string())
    }

    /// Whether `node` is labelled to advertise no Service addresses.
    pub fn excluded_from_service_advertisement(&self, node: &NodeInfo) -> bool {
        node.labels.get(EXCLUDE_FROM_LB_LABEL).map(String::as_str) == Some("true")
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }

    /// The global AS number (the BGPConfiguration's, else [`DEFAULT_AS`]).
    pub fn global_as(&self) -> AsNumber {
        self.bgp.as_number.unwrap_or(DEFAULT_AS)
    }

    /// The effective AS of a node: its own, else the global one.
    pub fn node_as(&self, node: &NodeInfo) -> AsNumber {
        node.as_number.unwrap_or_else(|| self.global_as())
    }

    /// A node's listen port: per-node, else global, else none.
    pub fn node_port(&self, node: &str) -> Option<u16> {
        self.node_bgp
            .get(node)
            .and_then(|b| b.listen_port)
            .or(self.bgp.listen_port)
    }

    /// Whether the node-to-node mesh is on.
    pub fn mesh_enabled(&self) -> bool {
        self.bgp.effective_mesh_enabled()
    }

    /// The log severity for a node (per-node over global; default `Info`).
    pub fn log_severity(&self, node: &str) -> String {
        self.node_bgp
            .get(node)
            .and_then(|b| b.log_severity_screen.clone())
            .or_else(|| self.bgp.log_severity_screen.clone())
            .unwrap_or_else(|| "Info".to_owned())
    }

    /// BIRD's `programClusterRoutes` (BGPConfiguration `default`).
    pub fn bird_program_cluster_routes(
        &self,
    ) -> calico_model::resources::bgp::ProgramClusterRoutes {
        self.bgp.effective_program_cluster_routes()
    }

    /// Felix settings for a node.
    pub fn felix_for(&self, node: &str) -> FelixSettings {
        let d = &self.felix;
        let n = self.node_felix.get(node);
        macro_rules! pick {
            ($f:ident) => {
                n.and_then(|s| s.$f.clone()).or_else(|| d.$f.clone())
            };
        }
        let proto = pick!(device_route_protocol).unwrap_or(3);
        FelixSettings {
            program_cluster_routes: pick!(program_cluster_routes)
                .unwrap_or(calico_model::resources::bgp::ProgramClusterRoutes::EnabledIPIPOnly),
            device_route_protocol: RouteProtocol::from_config(proto),
            vxlan_vni: pick!(vxlan_vni).unwrap_or(4096),
            vxlan_port: pick!(vxlan_port).unwrap_or(4789),
            ipip_mtu: pick!(ipip_mtu).unwrap_or(0),
            vxlan_mtu: pick!(vxlan_mtu).unwrap_or(0),
            vxlan_mtu_v6: pick!(vxlan_mtu_v6).unwrap_or(0),
            wireguard_enabled: pick!(wireguard_enabled).unwrap_or(false),
            wireguard_mtu: pick!(wireguard_mtu).unwrap_or(0),
            interface_prefix: first_interface_prefix(pick!(interface_prefix).as_deref()).to_owned(),
            normal_priority: (
                pick!(ipv4_normal_route_priority).unwrap_or(1024),
                pick!(ipv6_normal_route_priority).unwrap_or(1024),
            ),
        }
    }

    /// The pool containing `net` (most specific first), if any.
    pub fn pool_of(&self, net: &IpNet) -> Option<&PoolInfo> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(net))
            .max_by_key(|p| p.cidr.prefix_len())
    }

    /// The pool containing the address `ip`, if any.
    pub fn pool_of_ip(&self, ip: IpAddr) -> Option<&PoolInfo> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(&ip))
            .max_by_key(|p| p.cidr.prefix_len())
    }

    /// Affinities of `node`.
    pub fn affinities_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Affinity> {
        self.affinities.iter().filter(move |a| a.node == node)
    }

    /// The confirmed affinity whose block holds `ip` (the first by block order), if any.
    pub fn block_owner(&self, ip: IpAddr) -> Option<&Affinity> {
        self.affinities
            .iter()
            .filter(|a| a.is_confirmed() && a.block.contains(&ip))
            .max_by_key(|a| a.block.prefix_len())
    }
}

/// Confirmed blocks by network address, for owner lookups in logarithmic time.
#[derive(Debug, Clone, Default)]
pub struct BlockIndex<'a> {
    by_addr: BTreeMap<IpAddr, Vec<&'a Affinity>>,
}

impl<'a> BlockIndex<'a> {
    /// Indexes the confirmed affinities of `cluster`.
    pub fn new(cluster: &'a Cluster) -> BlockIndex<'a> {
        let mut by_addr: BTreeMap<IpAddr, Vec<&'a Affinity>> = BTreeMap::new();
        for a in cluster.affinities.iter().filter(|a| a.is_confirmed()) {
            by_addr.entry(a.block.network()).or_default().push(a);
        }
        BlockIndex { by_addr }
    }

    /// The most specific confirmed affinity whose block holds `ip` (nested blocks, which
    /// `route check` reports, are searched a few levels deep).
    pub fn owner(&self, ip: IpAddr) -> Option<&'a Affinity> {
        self.by_addr
            .range(..=ip)
            .rev()
            .take(8)
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|a| a.block.contains(&ip))
            .max_by_key(|a| a.block.prefix_len())
    }
}

fn pool_info(p: &IpPool) -> PoolInfo {
    PoolInfo {
        name: p.metadata.name.clone(),
        cidr: p.spec.cidr.network(),
        block_size: p.spec.effective_block_size(),
        ipip: p.spec.effective_ipip_mode(),
        vxlan: p.spec.effective_vxlan_mode(),
        disable_bgp_export: p.spec.disable_bgp_export,
        disabled: p.spec.disabled,
    }
}

fn affinity(spec: &BlockAffinitySpec) -> Option<Affinity> {
    if spec.deleted || spec.node.is_empty() {
        return None;
    }
    Some(Affinity {
        node: spec.node.clone(),
        block: spec.cidr.network(),
        state: spec.state,
    })
}

/// Parses a Go-style duration (`90s`, `2m`, `1h30m`, `1.5s`) into whole seconds, rounded.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest.get(..num_end)?.parse().ok()?;
        rest = rest.get(num_end..)?;
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_end)?;
        rest = rest.get(unit_end..)?;
        let factor = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * factor;
    }
    let rounded = total.round();
    (0.0..1e15).contains(&rounded).then_some(rounded as u64)
}

/// The normal route priority of a family (`ipv4/ipv6NormalRoutePriority`, default 1024).
pub fn normal_priority(cluster: &Cluster, family: Family) -> i64 {
    match family {
        Family::V4 => cluster.bgp.ipv4_normal_route_priority,
        Family::V6 => cluster.bgp.ipv6_normal_route_priority,
    }
    .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cheap summary of an endpoint elsewhere routes like the full one.
    #[test]
    fn an_endpoint_elsewhere_summarises_like_the_full_derivation() {
        let load = |json: &str| {
            calico_model::loader::load_str("x.json", json)
                .objects
                .into_iter()
                .next()
                .map(|o| o.resource)
        };
        let pods = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"ns"},"spec":{"nodeName":"n2"},"status":{"podIP":"10.0.1.1","podIPs":[{"ip":"10.0.1.1"},{"ip":"fd00::1"}]}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"h"},"spec":{"nodeName":"n2","hostNetwork":true},"status":{"podIP":"10.0.0.2"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{},"status":{}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"done","namespace":"ns"},"spec":{"nodeName":"n2"},"status":{"phase":"Succeeded","podIP":"10.0.1.3"}}"#,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"WorkloadEndpoint","metadata":{"name":"n2-k8s-w-eth0","namespace":"ns"},"spec":{"node":"n2","pod":"w","orchestrator":"k8s","endpoint":"eth0","interfaceName":"cali1","ipNetworks":["10.0.1.2/32"]}}"#,
        ];
        for json in pods {
            let r = load(json).expect("loads");
            let full = EndpointWorkload::of(&r, "cali");
            let cheap = EndpointWorkload::elsewhere(&r);
            assert_eq!(full.is_some(), cheap.is_some(), "{json}");
            if let (Some(full), Some(cheap)) = (full, cheap) {
                assert_eq!(full.pod, cheap.pod, "{json}");
                assert_eq!(full.from_wep, cheap.from_wep, "{json}");
                let route =
                    |w: &Option<Workload>| w.as_ref().map(|w| (w.node.clone(), w.ips.clone()));
                assert_eq!(route(&full.workload), route(&cheap.workload), "{json}");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("30s"), Some(30));
        assert_eq!(duration_seconds("2m"), Some(120));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("1.6s"), Some(2));
        assert_eq!(duration_seconds("abc"), None);
        assert_eq!(duration_seconds(""), None);
    }

    #[test]
    fn derived_vxlan_mac_starts_with_66() {
        let n = NodeInfo {
            name: "node-a".into(),
            labels: Labels::new(),
            ipv4: None,
            ipv6: None,
            as_number: None,
            cluster_id: String::new(),
            ipip_tunnel: None,
            vxlan_v4: None,
            vxlan_mac_v4: String::new(),
            vxlan_v6: None,
            vxlan_mac_v6: String::new(),
            wireguard_v4: None,
        };
        let m4 = n.vtep_mac(Family::V4).unwrap().to_string();
        let m6 = n.vtep_mac(Family::V6).unwrap().to_string();
        assert!(m4.starts_with("66:"));
        assert_eq!(m4.len(), 17);
        assert_ne!(m4, m6);
        let digest = Sha1::digest(b"node-a");
        assert_eq!(&m4[3..5], format!("{:02x}", digest[0]));
    }
}
