//! Endpoint and network-set kinds: NetworkSet, GlobalNetworkSet,
//! HostEndpoint, WorkloadEndpoint.
//!
//! Every `spec` type here rejects unknown fields.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::policy::calico_object;
use super::values::serde_util::{empty_as_none, is_zero};
use super::values::{IpCidr, Protocol};

/// `spec` of a NetworkSet or GlobalNetworkSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSetSpec {
    /// The set's CIDRs (host bits allowed; v4 and v6 may mix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<IpCidr>,
}

/// A named port of a host endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPort {
    /// Port name.
    #[serde(default)]
    pub name: String,
    /// Protocol (must support ports).
    pub protocol: Protocol,
    /// Port number, 1–65535.
    #[serde(default)]
    pub port: u16,
}

/// `spec` of a HostEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEndpointSpec {
    /// Node (required).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Interface name, or `*` for every host interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    /// The addresses selectors resolve to.
    #[serde(default, rename = "expectedIPs", skip_serializing_if = "Vec::is_empty")]
    pub expected_ips: Vec<IpAddr>,
    /// Profiles, applied in order after policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// A NAT mapping of a workload endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpNat {
    /// Internal (pod) address.
    #[serde(rename = "internalIP")]
    pub internal_ip: IpAddr,
    /// External address.
    #[serde(rename = "externalIP")]
    pub external_ip: IpAddr,
}

/// A port of a workload endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointPort {
    /// Port name (may be empty only with a hostPort).
    #[serde(default)]
    pub name: String,
    /// Protocol (must support ports).
    pub protocol: Protocol,
    /// Container port, > 0.
    #[serde(default)]
    pub port: u16,
    /// Host port (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_port: u16,
    /// Host IP for the host port.
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// `spec` of a WorkloadEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    /// Orchestrator (`k8s` for Kubernetes pods).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    /// Workload name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// Node (required).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Container ID.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// Pod name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Endpoint name (`eth0` for pods).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// Service account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Addresses, one /32 or /128 each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<IpCidr>,
    /// NAT mappings.
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
    /// IPv4 gateway.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_gateway: Option<IpAddr>,
    /// IPv6 gateway.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_gateway: Option<IpAddr>,
    /// Profiles, applied in order after policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Host-side interface name (required).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadEndpointPort>,
    /// Source prefixes the workload may spoof.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<IpCidr>,
    /// Bandwidth, packet-rate, connection and DSCP limits (kept verbatim, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_controls: Option<serde_json::Value>,
}

calico_object!(
    /// projectcalico.org/v3 NetworkSet (namespaced).
    NetworkSet,
    NetworkSetSpec
);
calico_object!(
    /// projectcalico.org/v3 GlobalNetworkSet (cluster).
    GlobalNetworkSet,
    NetworkSetSpec
);
calico_object!(
    /// projectcalico.org/v3 HostEndpoint (cluster).
    HostEndpoint,
    HostEndpointSpec
);
calico_object!(
    /// projectcalico.org/v3 WorkloadEndpoint (namespaced).
    WorkloadEndpoint,
    WorkloadEndpointSpec
);
