//! NetworkSet, GlobalNetworkSet, HostEndpoint and WorkloadEndpoint checks.

use std::collections::HashSet;

use super::Ctx;
use super::common::check_required_subdomain;
use super::format::{is_container_id, is_dns_subdomain, is_interface_name, is_mac, is_port_name};
use crate::derived::workload_endpoint_name;
use crate::resources::meta::ObjectMeta;
use crate::resources::network::{HostEndpointSpec, NetworkSetSpec, WorkloadEndpoint};

const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";

pub(super) fn check_network_set(cx: &mut Ctx<'_>, md: &ObjectMeta, spec: &NetworkSetSpec) {
    if md.labels.contains_key(NAMESPACE_LABEL) {
        cx.report(
            format!("metadata.labels[{NAMESPACE_LABEL}]"),
            format!("the label {NAMESPACE_LABEL} is reserved and may not be set"),
        );
    }
    let mut seen = HashSet::new();
    for (i, n) in spec.nets.iter().enumerate() {
        if !seen.insert(n) {
            cx.report(format!("spec.nets[{i}]"), format!("duplicate entry {n}"));
        }
    }
}

fn check_profiles(cx: &mut Ctx<'_>, profiles: &[String]) {
    for (i, p) in profiles.iter().enumerate() {
        if !is_dns_subdomain(p) {
            cx.report(
                format!("spec.profiles[{i}]"),
                format!("invalid profile name {p:?}: must be a DNS-1123 subdomain"),
            );
        }
    }
}

pub(super) fn check_host_endpoint(cx: &mut Ctx<'_>, spec: &HostEndpointSpec) {
    check_required_subdomain(cx, "spec.node", "node", &spec.node);
    if !spec.interface_name.is_empty()
        && spec.interface_name != "*"
        && !is_interface_name(&spec.interface_name)
    {
        cx.report(
            "spec.interfaceName",
            format!(
                "invalid interface name {:?}: must be '*' or 1-15 characters of letters, digits, '_', '.' and '-'",
                spec.interface_name
            ),
        );
    }
    if spec.interface_name.is_empty() && spec.expected_ips.is_empty() {
        cx.report("spec", "interfaceName or expectedIPs is required");
    }
    check_profiles(cx, &spec.profiles);
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !is_port_name(&p.name) {
            cx.report(
                format!("{path}.name"),
                format!("invalid port name {:?}", p.name),
            );
        }
        if !p.protocol.supports_ports() {
            cx.report(
                format!("{path}.protocol"),
                format!(
                    "protocol {} does not support ports (use TCP, UDP or SCTP)",
                    p.protocol
                ),
            );
        }
        if p.port == 0 {
            cx.report(format!("{path}.port"), "port must be 1-65535");
        }
    }
}

pub(super) fn check_workload_endpoint(cx: &mut Ctx<'_>, wep: &WorkloadEndpoint) {
    let spec = &wep.spec;
    let subdomain_fields = [
        ("orchestrator", &spec.orchestrator),
        ("workload", &spec.workload),
        ("node", &spec.node),
        ("pod", &spec.pod),
        ("endpoint", &spec.endpoint),
        ("serviceAccountName", &spec.service_account_name),
    ];
    for (field, v) in subdomain_fields {
        if !v.is_empty() && !is_dns_subdomain(v) {
            cx.report(
                format!("spec.{field}"),
                format!("invalid value {v:?}: must be a DNS-1123 subdomain"),
            );
        }
    }
    if spec.node.is_empty() {
        cx.report("spec.node", "node is required");
    }
    if !spec.container_id.is_empty() && !is_container_id(&spec.container_id) {
        cx.report(
            "spec.containerID",
            format!("invalid container ID {:?}", spec.container_id),
        );
    }
    for (i, n) in spec.ip_networks.iter().enumerate() {
        if !n.is_single_address() || !n.is_strictly_masked() {
            cx.report(
                format!("spec.ipNetworks[{i}]"),
                format!("{n} must be a single address (/32 or /128)"),
            );
        }
    }
    for (i, nat) in spec.ip_nats.iter().enumerate() {
        if nat.internal_ip.is_ipv4() != nat.external_ip.is_ipv4() {
            cx.report(
                format!("spec.ipNATs[{i}]"),
                "internalIP and externalIP must be of the same IP family",
            );
        }
        if !spec.ip_networks.iter().any(|n| n.contains(nat.internal_ip)) {
            cx.report(
                format!("spec.ipNATs[{i}].internalIP"),
                format!("{} is not in any of ipNetworks", nat.internal_ip),
            );
        }
    }
    if spec.ipv4_gateway.is_some_and(|g| !g.is_ipv4()) {
        cx.report("spec.ipv4Gateway", "must be an IPv4 address");
    }
    if spec.ipv6_gateway.is_some_and(|g| g.is_ipv4()) {
        cx.report("spec.ipv6Gateway", "must be an IPv6 address");
    }
    check_profiles(cx, &spec.profiles);
    if spec.interface_name.is_empty() {
        cx.report("spec.interfaceName", "interfaceName is required");
    } else if spec.interface_name != "*" && !is_interface_name(&spec.interface_name) {
        cx.report(
            "spec.interfaceName",
            format!(
                "invalid interface name {:?}: must be '*' or 1-15 characters of letters, digits, '_', '.' and '-'",
                spec.interface_name
            ),
        );
    }
    if !spec.mac.is_empty() && !is_mac(&spec.mac) {
        cx.report("spec.mac", format!("invalid MAC address {:?}", spec.mac));
    }
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !p.protocol.supports_ports() {
            cx.report(
                format!("{path}.protocol"),
                format!(
                    "protocol {} does not support ports (use TCP, UDP or SCTP)",
                    p.protocol
                ),
            );
        }
        if p.port == 0 {
            cx.report(format!("{path}.port"), "port must be 1-65535");
        }
        if p.name.is_empty() {
            if p.host_port == 0 {
                cx.report(
                    format!("{path}.name"),
                    "name is required when hostPort is not set",
                );
            }
        } else if !is_port_name(&p.name) {
            cx.report(
                format!("{path}.name"),
                format!("invalid port name {:?}", p.name),
            );
        }
        if !p.host_ip.is_empty() && p.host_ip.parse::<std::net::IpAddr>().is_err() {
            cx.report(
                format!("{path}.hostIP"),
                format!("invalid IP address {:?}", p.host_ip),
            );
        }
    }
    // The name of a Kubernetes endpoint is derived from its spec: `<node>-k8s-<pod>-<endpoint>`,
    // each segment with `-` doubled.
    if spec.orchestrator == "k8s"
        && !spec.node.is_empty()
        && !spec.pod.is_empty()
        && !spec.endpoint.is_empty()
    {
        for (field, v) in [
            ("node", &spec.node),
            ("pod", &spec.pod),
            ("endpoint", &spec.endpoint),
        ] {
            if v.starts_with('-') || v.ends_with('-') {
                cx.report(format!("spec.{field}"), "may not start or end with '-'");
            }
        }
        let expected =
            workload_endpoint_name(&spec.node, &spec.orchestrator, &spec.pod, &spec.endpoint);
        if wep.metadata.name != expected {
            cx.report(
                "metadata.name",
                format!("name must be {expected:?} (node, orchestrator, pod and endpoint with each '-' doubled, joined by '-')"),
            );
        }
    }
}
