//! FelixConfiguration: the routing, MTU and policy fields we model.
//!
//! FelixConfiguration has many more fields upstream (logging, BPF, timers, ...). Because we model
//! only a subset, fields we do not model are **kept** in [`FelixConfigurationSpec::other`]
//! (verbatim, written back on output) instead of being rejected: this is the one
//! projectcalico.org spec that does not reject unknown fields. Unset fields mean the Felix
//! default; the `effective_*` accessors return it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bgp::ProgramClusterRoutes;
use super::meta::ObjectMeta;
use super::policy::calico_object;
use super::values::IpCidr;

/// A route-table range `{min, max}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableRange {
    /// First table.
    pub min: i64,
    /// Last table.
    pub max: i64,
}

/// A failsafe port `{protocol, port, net}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoPort {
    /// Protocol: TCP, UDP or SCTP (case-insensitive in Felix, upper case here on output).
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// Optional CIDR restriction.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net: String,
}

impl ProtoPort {
    fn new(protocol: &str, port: u16) -> ProtoPort {
        ProtoPort {
            protocol: protocol.to_owned(),
            port,
            net: String::new(),
        }
    }
}

/// `routeSource` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteSource {
    /// Routes from Calico IPAM blocks (default).
    CalicoIPAM,
    /// Routes from workload IPs.
    WorkloadIPs,
}

/// `ipForwarding` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpForwarding {
    /// Enable forwarding (default).
    Enabled,
    /// Leave forwarding alone.
    Disabled,
}

/// `natOutgoingExclusions` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NatOutgoingExclusions {
    /// Do not SNAT to IP pools (default).
    IPPoolsOnly,
    /// Do not SNAT to IP pools or host IPs.
    IPPoolsAndHostIPs,
}

/// `workloadSourceSpoofing` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadSourceSpoofing {
    /// Disabled (default).
    Disabled,
    /// Allowed per-endpoint.
    Any,
}

/// `*FilterAllowAction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterAllowAction {
    /// Accept (default).
    Accept,
    /// Return.
    Return,
}

/// `*FilterDenyAction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterDenyAction {
    /// Drop (default).
    Drop,
    /// Reject.
    Reject,
}

/// `spec` of a FelixConfiguration (modelled subset; unmodelled fields kept in `other`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FelixConfigurationSpec {
    /// Selector scoping this object to nodes (not on `default` / `node.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// IPIP enabled (derived from pools when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_enabled: Option<bool>,
    /// VXLAN enabled (derived from pools when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_enabled: Option<bool>,
    /// IPIP MTU (0 = auto).
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<i64>,
    /// VXLAN MTU (0 = auto).
    #[serde(default, rename = "vxlanMTU", skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu: Option<i64>,
    /// VXLAN IPv6 MTU (0 = auto).
    #[serde(
        default,
        rename = "vxlanMTUV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_mtu_v6: Option<i64>,
    /// VXLAN UDP port (4789).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<i64>,
    /// VXLAN VNI (4096).
    #[serde(default, rename = "vxlanVNI", skip_serializing_if = "Option::is_none")]
    pub vxlan_vni: Option<i64>,
    /// WireGuard (IPv4) enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled: Option<bool>,
    /// WireGuard IPv6 enabled.
    #[serde(
        default,
        rename = "wireguardEnabledV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_enabled_v6: Option<bool>,
    /// WireGuard MTU.
    #[serde(
        default,
        rename = "wireguardMTU",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_mtu: Option<i64>,
    /// WireGuard IPv6 MTU.
    #[serde(
        default,
        rename = "wireguardMTUV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_mtu_v6: Option<i64>,
    /// WireGuard listening port (51820).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_listening_port: Option<i64>,
    /// WireGuard IPv6 listening port (51821).
    #[serde(
        default,
        rename = "wireguardListeningPortV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_listening_port_v6: Option<i64>,
    /// WireGuard interface name (`wireguard.cali`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_interface_name: Option<String>,
    /// WireGuard IPv6 interface name (`wg-v6.cali`).
    #[serde(
        default,
        rename = "wireguardInterfaceNameV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_interface_name_v6: Option<String>,
    /// Host interfaces considered for MTU detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_iface_pattern: Option<String>,
    /// Allow VXLAN packets from workloads.
    #[serde(
        default,
        rename = "allowVXLANPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_vxlan_packets_from_workloads: Option<bool>,
    /// Allow IPIP packets from workloads.
    #[serde(
        default,
        rename = "allowIPIPPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_ipip_packets_from_workloads: Option<bool>,
    /// External nodes (IPv4 CIDRs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_nodes_list: Vec<String>,
    /// Route refresh interval (duration; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_refresh_interval: Option<String>,
    /// Route source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_source: Option<RouteSource>,
    /// Route table ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_ranges: Option<Vec<RouteTableRange>>,
    /// Deprecated single route-table range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_range: Option<RouteTableRange>,
    /// Protocol number for device routes (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_protocol: Option<i64>,
    /// Remove routes Calico did not program (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_external_routes: Option<bool>,
    /// Which pool types Felix programs routes for (EnabledIPIPOnly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_cluster_routes: Option<ProgramClusterRoutes>,
    /// IP forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_forwarding: Option<IpForwarding>,
    /// IPv4 normal route priority (1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_normal_route_priority: Option<i64>,
    /// IPv6 normal route priority (1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_normal_route_priority: Option<i64>,
    /// IPv4 elevated route priority (512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_elevated_route_priority: Option<i64>,
    /// IPv6 elevated route priority (512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_elevated_route_priority: Option<i64>,
    /// IPv6 support (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_support: Option<bool>,
    /// SNAT source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_address: Option<String>,
    /// SNAT exclusions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_exclusions: Option<NatOutgoingExclusions>,
    /// SNAT port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_port_range: Option<super::values::Port>,
    /// Workload interface prefixes (comma list; `cali`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    /// Excluded interfaces (comma list; `kube-ipvs0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_exclude: Option<String>,
    /// Workload-to-host action: Drop, Accept, Return (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint_to_host_action: Option<String>,
    /// nftables allow action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_filter_allow_action: Option<FilterAllowAction>,
    /// nftables deny action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_filter_deny_action: Option<FilterDenyAction>,
    /// iptables allow action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_filter_allow_action: Option<FilterAllowAction>,
    /// iptables deny action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_filter_deny_action: Option<FilterDenyAction>,
    /// Failsafe inbound host ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_inbound_host_ports: Option<Vec<ProtoPort>>,
    /// Failsafe outbound host ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_outbound_host_ports: Option<Vec<ProtoPort>>,
    /// Workload source spoofing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_source_spoofing: Option<WorkloadSourceSpoofing>,
    /// Fields we do not model, kept verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl FelixConfigurationSpec {
    /// Felix `programClusterRoutes` (unset = EnabledIPIPOnly).
    pub fn effective_program_cluster_routes(&self) -> ProgramClusterRoutes {
        self.program_cluster_routes
            .unwrap_or(ProgramClusterRoutes::EnabledIPIPOnly)
    }

    /// VXLAN port (unset = 4789).
    pub fn effective_vxlan_port(&self) -> i64 {
        self.vxlan_port.unwrap_or(4789)
    }

    /// VXLAN VNI (unset = 4096).
    pub fn effective_vxlan_vni(&self) -> i64 {
        self.vxlan_vni.unwrap_or(4096)
    }

    /// Device route protocol (unset = 3).
    pub fn effective_device_route_protocol(&self) -> i64 {
        self.device_route_protocol.unwrap_or(3)
    }

    /// Interface prefixes (unset = `["cali"]`).
    pub fn effective_interface_prefixes(&self) -> Vec<String> {
        match &self.interface_prefix {
            Some(p) if !p.is_empty() => p.split(',').map(|s| s.trim().to_owned()).collect(),
            _ => vec!["cali".to_owned()],
        }
    }

    /// MTU interface pattern (unset = the Felix default regex).
    pub fn effective_mtu_iface_pattern(&self) -> &str {
        self.mtu_iface_pattern
            .as_deref()
            .unwrap_or("^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)")
    }

    /// Route table ranges (unset = `[{1, 250}]`).
    pub fn effective_route_table_ranges(&self) -> Vec<RouteTableRange> {
        match (&self.route_table_ranges, &self.route_table_range) {
            (Some(r), _) => r.clone(),
            (None, Some(r)) => vec![*r],
            (None, None) => vec![RouteTableRange { min: 1, max: 250 }],
        }
    }

    /// IPv4 / IPv6 normal route priority (unset = 1024).
    pub fn effective_normal_route_priority(&self, ipv6: bool) -> i64 {
        let v = if ipv6 {
            self.ipv6_normal_route_priority
        } else {
            self.ipv4_normal_route_priority
        };
        v.unwrap_or(1024)
    }

    /// Failsafe inbound ports (unset = the Felix defaults).
    pub fn effective_failsafe_inbound_host_ports(&self) -> Vec<ProtoPort> {
        self.failsafe_inbound_host_ports.clone().unwrap_or_else(|| {
            [
                ("tcp", 22),
                ("udp", 68),
                ("tcp", 179),
                ("tcp", 2379),
                ("tcp", 2380),
                ("tcp", 5473),
                ("tcp", 6443),
                ("tcp", 6666),
                ("tcp", 6667),
            ]
            .iter()
            .map(|(p, n)| ProtoPort::new(p, *n))
            .collect()
        })
    }

    /// Failsafe outbound ports (unset = the Felix defaults).
    pub fn effective_failsafe_outbound_host_ports(&self) -> Vec<ProtoPort> {
        self.failsafe_outbound_host_ports
            .clone()
            .unwrap_or_else(|| {
                [
                    ("udp", 53),
                    ("udp", 67),
                    ("tcp", 179),
                    ("tcp", 2379),
                    ("tcp", 2380),
                    ("tcp", 5473),
                    ("tcp", 6443),
                    ("tcp", 6666),
                    ("tcp", 6667),
                ]
                .iter()
                .map(|(p, n)| ProtoPort::new(p, *n))
                .collect()
            })
    }

    /// Parsed `externalNodesList` entries that are valid CIDRs.
    pub fn external_nodes(&self) -> Vec<IpCidr> {
        self.external_nodes_list
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

calico_object!(
    /// projectcalico.org/v3 FelixConfiguration (cluster).
    FelixConfiguration,
    FelixConfigurationSpec
);
