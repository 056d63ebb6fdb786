//! Node, BGPConfiguration, BGPPeer, BGPFilter and FelixConfiguration checks.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Ctx;
use super::format::{
    is_community_value, is_dns_subdomain, is_duration, is_interface_pattern, is_mac,
};
use super::selectors::{GlobalUse, check as check_sel};
use crate::resources::bgp::{
    BgpConfiguration, BgpFilterRule, BgpFilterSpec, BgpPeerSpec, FilterAction, NodeSpec,
};
use crate::resources::felix::FelixConfiguration;
use crate::resources::values::IpCidr;

const MAX_PRIORITY: i64 = 2_147_483_646;

fn family_problem(cx: &mut Ctx<'_>, path: &str, ip: IpAddr, want_v4: bool) {
    if ip.is_ipv4() != want_v4 {
        cx.report(
            path,
            format!("{ip} is not an IPv{} address", if want_v4 { 4 } else { 6 }),
        );
    }
}

fn cidr_family_problem(cx: &mut Ctx<'_>, path: &str, c: &IpCidr, want_v4: bool) {
    if c.is_ipv4() != want_v4 {
        cx.report(
            path,
            format!("{c} is not an IPv{} address", if want_v4 { 4 } else { 6 }),
        );
    }
}

fn check_net(cx: &mut Ctx<'_>, path: &str, c: &IpCidr) {
    if !c.is_strictly_masked() {
        cx.report(
            path,
            format!("{c} has host bits set (did you mean {}?)", c.network()),
        );
    }
}

pub(super) fn check_node(cx: &mut Ctx<'_>, spec: &NodeSpec) {
    if let Some(bgp) = &spec.bgp {
        if bgp.is_empty() {
            cx.report("spec.bgp", "bgp must not be empty when present");
        }
        if let Some(a) = &bgp.ipv4_address {
            cidr_family_problem(cx, "spec.bgp.ipv4Address", a, true);
        }
        if let Some(a) = &bgp.ipv6_address {
            cidr_family_problem(cx, "spec.bgp.ipv6Address", a, false);
        }
        if let Some(a) = bgp.ipv4_ipip_tunnel_addr {
            family_problem(cx, "spec.bgp.ipv4IPIPTunnelAddr", a, true);
        }
        let id = &bgp.route_reflector_cluster_id;
        if !id.is_empty() && id.parse::<Ipv4Addr>().is_err() {
            cx.report(
                "spec.bgp.routeReflectorClusterID",
                format!("invalid cluster ID {id:?}: must be in IPv4 dotted form"),
            );
        }
    }
    if let Some(a) = spec.ipv4_vxlan_tunnel_addr {
        family_problem(cx, "spec.ipv4VXLANTunnelAddr", a, true);
    }
    if let Some(a) = spec.ipv6_vxlan_tunnel_addr {
        family_problem(cx, "spec.ipv6VXLANTunnelAddr", a, false);
    }
    for (field, mac) in [
        ("vxlanTunnelMACAddr", &spec.vxlan_tunnel_mac_addr),
        ("vxlanTunnelMACAddrV6", &spec.vxlan_tunnel_mac_addr_v6),
    ] {
        if !mac.is_empty() && !is_mac(mac) {
            cx.report(
                format!("spec.{field}"),
                format!("invalid MAC address {mac:?}"),
            );
        }
    }
    if let Some(wg) = &spec.wireguard {
        if let Some(a) = wg.interface_ipv4_address {
            family_problem(cx, "spec.wireguard.interfaceIPv4Address", a, true);
        }
        if let Some(a) = wg.interface_ipv6_address {
            family_problem(cx, "spec.wireguard.interfaceIPv6Address", a, false);
        }
    }
    for (i, a) in spec.addresses.iter().enumerate() {
        check_net(cx, &format!("spec.addresses[{i}].address"), &a.address);
    }
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warning", "error", "fatal"];

pub(super) fn check_bgp_configuration(cx: &mut Ctx<'_>, c: &BgpConfiguration) {
    let s = &c.spec;
    if let Some(l) = &s.log_severity_screen {
        if !LOG_LEVELS.contains(&l.to_ascii_lowercase().as_str()) {
            cx.report(
                "spec.logSeverityScreen",
                format!(
                    "invalid log level {l:?}: must be Trace, Debug, Info, Warning, Error or Fatal"
                ),
            );
        }
    }
    for (field, list) in [
        ("serviceClusterIPs", &s.service_cluster_ips),
        ("serviceExternalIPs", &s.service_external_ips),
        ("serviceLoadBalancerIPs", &s.service_load_balancer_ips),
    ] {
        for (i, e) in list.iter().enumerate() {
            check_net(cx, &format!("spec.{field}[{i}].cidr"), &e.cidr);
        }
    }
    if s.communities.len() > 500 {
        cx.report("spec.communities", "at most 500 communities are allowed");
    }
    let mut names = HashSet::new();
    for (i, com) in s.communities.iter().enumerate() {
        if com.name.is_empty() {
            cx.report(format!("spec.communities[{i}].name"), "name is required");
        } else if !names.insert(com.name.as_str()) {
            cx.report(
                format!("spec.communities[{i}].name"),
                format!("duplicate community name {:?}", com.name),
            );
        }
        if !is_community_value(&com.value) {
            cx.report(
                format!("spec.communities[{i}].value"),
                format!("invalid community value {:?}: must be aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)", com.value),
            );
        }
    }
    if s.prefix_advertisements.len() > 500 {
        cx.report(
            "spec.prefixAdvertisements",
            "at most 500 entries are allowed",
        );
    }
    let mut used = HashSet::new();
    for (i, pa) in s.prefix_advertisements.iter().enumerate() {
        check_net(
            cx,
            &format!("spec.prefixAdvertisements[{i}].cidr"),
            &pa.cidr,
        );
        if pa.communities.len() > 50 {
            cx.report(
                format!("spec.prefixAdvertisements[{i}].communities"),
                "at most 50 communities are allowed",
            );
        }
        for (j, name) in pa.communities.iter().enumerate() {
            if names.contains(name.as_str()) {
                used.insert(name.as_str());
            } else if !is_community_value(name) {
                cx.report(
                    format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                    format!("{name:?} is neither a community defined in spec.communities nor a community value"),
                );
            }
        }
    }
    for (i, com) in s.communities.iter().enumerate() {
        if !com.name.is_empty() && !used.contains(com.name.as_str()) {
            cx.report(
                format!("spec.communities[{i}]"),
                format!(
                    "community {:?} is not used by any prefixAdvertisement",
                    com.name
                ),
            );
        }
    }
    if s.listen_port == Some(0) {
        cx.report("spec.listenPort", "listenPort must be 1-65535");
    }
    if !s.effective_mesh_enabled()
        && (s.node_mesh_password.is_some() || s.node_mesh_max_restart_time.is_some())
    {
        cx.report(
            "spec",
            "nodeMeshPassword and nodeMeshMaxRestartTime require the node-to-node mesh to be enabled",
        );
    }
    if let Some(d) = &s.node_mesh_max_restart_time {
        check_duration(cx, "spec.nodeMeshMaxRestartTime", d);
    }
    for (i, iface) in s.ignored_interfaces.iter().enumerate() {
        if iface == "*" || !is_interface_pattern(iface) {
            cx.report(
                format!("spec.ignoredInterfaces[{i}]"),
                format!("invalid interface pattern {iface:?}"),
            );
        }
    }
    if let Some(a) = s.local_workload_peering_ipv4 {
        family_problem(cx, "spec.localWorkloadPeeringIPV4", a, true);
    }
    if let Some(a) = s.local_workload_peering_ipv6 {
        family_problem(cx, "spec.localWorkloadPeeringIPV6", a, false);
    }
    for (field, v) in [
        ("ipv4NormalRoutePriority", s.ipv4_normal_route_priority),
        ("ipv6NormalRoutePriority", s.ipv6_normal_route_priority),
    ] {
        check_priority(cx, &format!("spec.{field}"), v);
    }
    if c.metadata.name.starts_with("node.") {
        let disallowed = [
            (
                "nodeToNodeMeshEnabled",
                s.node_to_node_mesh_enabled.is_some(),
            ),
            ("asNumber", s.as_number.is_some()),
            ("serviceClusterIPs", !s.service_cluster_ips.is_empty()),
            ("serviceExternalIPs", !s.service_external_ips.is_empty()),
            (
                "serviceLoadBalancerIPs",
                !s.service_load_balancer_ips.is_empty(),
            ),
            (
                "serviceLoadBalancerAggregation",
                s.service_load_balancer_aggregation.is_some(),
            ),
            ("communities", !s.communities.is_empty()),
            ("nodeMeshPassword", s.node_mesh_password.is_some()),
            (
                "nodeMeshMaxRestartTime",
                s.node_mesh_max_restart_time.is_some(),
            ),
            ("bindMode", s.bind_mode.is_some()),
            ("ignoredInterfaces", !s.ignored_interfaces.is_empty()),
            (
                "localWorkloadPeeringIPV4",
                s.local_workload_peering_ipv4.is_some(),
            ),
            (
                "localWorkloadPeeringIPV6",
                s.local_workload_peering_ipv6.is_some(),
            ),
            ("programClusterRoutes", s.program_cluster_routes.is_some()),
            (
                "ipv4NormalRoutePriority",
                s.ipv4_normal_route_priority.is_some(),
            ),
            (
                "ipv6NormalRoutePriority",
                s.ipv6_normal_route_priority.is_some(),
            ),
        ];
        for (field, set) in disallowed {
            if set {
                cx.report(
                    format!("spec.{field}"),
                    "a per-node BGPConfiguration may set only listenPort, logSeverityScreen and prefixAdvertisements",
                );
            }
        }
    }
}

fn check_priority(cx: &mut Ctx<'_>, path: &str, v: Option<i64>) {
    if let Some(p) = v {
        if !(1..=MAX_PRIORITY).contains(&p) {
            cx.report(path, format!("priority must be 1-{MAX_PRIORITY}"));
        }
    }
}

fn check_duration(cx: &mut Ctx<'_>, path: &str, d: &str) {
    if !is_duration(d) {
        cx.report(
            path,
            format!("invalid duration {d:?} (examples: 90s, 1m30s)"),
        );
    }
}

/// Parses a BGPPeer `peerIP`: `IP`, `IPv4:port` or `[IPv6]:port`.
pub(crate) fn parse_peer_ip(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let sa = s.parse::<SocketAddr>().ok()?;
    (sa.port() != 0).then_some((sa.ip(), Some(sa.port())))
}

pub(super) fn check_bgp_peer(cx: &mut Ctx<'_>, s: &BgpPeerSpec) {
    if !s.node.is_empty() && !is_dns_subdomain(&s.node) {
        cx.report("spec.node", format!("invalid node name {:?}", s.node));
    }
    if !s.node.is_empty() && !s.node_selector.is_empty() {
        cx.report("spec", "node and nodeSelector cannot both be set");
    }
    check_sel(
        cx,
        "spec.nodeSelector",
        &s.node_selector,
        GlobalUse::Anywhere,
    );
    check_sel(
        cx,
        "spec.peerSelector",
        &s.peer_selector,
        GlobalUse::Anywhere,
    );
    check_sel(
        cx,
        "spec.localWorkloadSelector",
        &s.local_workload_selector,
        GlobalUse::Anywhere,
    );
    let peer = if s.peer_ip.is_empty() {
        None
    } else {
        let parsed = parse_peer_ip(&s.peer_ip).filter(|_| s.peer_ip.len() <= 64);
        if parsed.is_none() {
            cx.report(
                "spec.peerIP",
                format!(
                    "invalid peerIP {:?}: expected IP, IPv4:port or [IPv6]:port (port 1-65535)",
                    s.peer_ip
                ),
            );
        }
        parsed
    };
    if !s.peer_ip.is_empty() && !s.peer_selector.is_empty() {
        cx.report("spec", "peerIP and peerSelector cannot both be set");
    }
    if s.as_number.is_some() && !s.peer_selector.is_empty() {
        cx.report("spec", "asNumber must be empty when peerSelector is set");
    }
    if !s.local_workload_selector.is_empty() {
        if s.as_number.is_none() {
            cx.report("spec", "localWorkloadSelector requires asNumber");
        }
        if !s.peer_ip.is_empty() || !s.peer_selector.is_empty() {
            cx.report(
                "spec",
                "localWorkloadSelector cannot be combined with peerIP or peerSelector",
            );
        }
    }
    if s.keep_original_next_hop && s.next_hop_mode.is_some() {
        cx.report(
            "spec",
            "keepOriginalNextHop and nextHopMode cannot both be set",
        );
    }
    for (field, d) in [
        ("maxRestartTime", &s.max_restart_time),
        ("keepaliveTime", &s.keepalive_time),
    ] {
        if let Some(d) = d {
            check_duration(cx, &format!("spec.{field}"), d);
        }
    }
    if !s.reachable_by.is_empty() {
        match s.reachable_by.parse::<IpAddr>() {
            Err(_) => cx.report(
                "spec.reachableBy",
                format!("invalid IP address {:?}", s.reachable_by),
            ),
            Ok(gw) => {
                if s.peer_ip.is_empty() {
                    cx.report("spec.reachableBy", "reachableBy requires peerIP");
                } else if let Some((ip, _)) = peer {
                    if ip.is_ipv4() != gw.is_ipv4() {
                        cx.report(
                            "spec.reachableBy",
                            "reachableBy must be of the same IP family as peerIP",
                        );
                    }
                }
            }
        }
    }
    for (i, f) in s.filters.iter().enumerate() {
        if !is_dns_subdomain(f) {
            cx.report(
                format!("spec.filters[{i}]"),
                format!("invalid BGPFilter name {f:?}"),
            );
        }
    }
}

pub(super) fn check_bgp_filter(cx: &mut Ctx<'_>, s: &BgpFilterSpec) {
    for (field, rules, v4) in [
        ("exportV4", &s.export_v4, true),
        ("importV4", &s.import_v4, true),
        ("exportV6", &s.export_v6, false),
        ("importV6", &s.import_v6, false),
    ] {
        for (i, r) in rules.iter().enumerate() {
            check_filter_rule(cx, &format!("spec.{field}[{i}]"), r, v4);
        }
    }
}

fn check_filter_rule(cx: &mut Ctx<'_>, path: &str, r: &BgpFilterRule, v4: bool) {
    if let Some(c) = &r.cidr {
        cidr_family_problem(cx, &format!("{path}.cidr"), c, v4);
        if !c.has_prefix() {
            cx.report(
                format!("{path}.cidr"),
                format!("{c} must be a CIDR with a prefix length"),
            );
        } else {
            check_net(cx, &format!("{path}.cidr"), c);
        }
    }
    if r.cidr.is_some() != r.match_operator.is_some() {
        cx.report(path, "cidr and matchOperator must be set together");
    }
    if let Some(pl) = &r.prefix_length {
        let max_len = if v4 { 32 } else { 128 };
        for (field, v) in [("min", pl.min), ("max", pl.max)] {
            if v.is_some_and(|v| !(0..=max_len).contains(&v)) {
                cx.report(
                    format!("{path}.prefixLength.{field}"),
                    format!("prefix length must be 0-{max_len}"),
                );
            }
        }
        if r.cidr.is_none() {
            cx.report(path, "prefixLength requires cidr");
        }
    }
    if let Some(iface) = &r.interface {
        if !is_interface_pattern(iface) {
            cx.report(
                format!("{path}.interface"),
                format!("invalid interface pattern {iface:?}"),
            );
        }
    }
    if let Some(c) = &r.communities {
        if c.values.len() != 1 {
            cx.report(
                format!("{path}.communities.values"),
                "exactly one community value is required",
            );
        }
        for (j, v) in c.values.iter().enumerate() {
            if !is_community_value(v) {
                cx.report(
                    format!("{path}.communities.values[{j}]"),
                    format!("invalid community value {v:?}"),
                );
            }
        }
    }
    check_priority(cx, &format!("{path}.priority"), r.priority);
    if r.operations.len() > 10 {
        cx.report(
            format!("{path}.operations"),
            "at most 10 operations are allowed",
        );
    }
    if !r.operations.is_empty() && r.action != FilterAction::Accept {
        cx.report(path, "operations are only allowed with action Accept");
    }
    for (j, op) in r.operations.iter().enumerate() {
        let opath = format!("{path}.operations[{j}]");
        let set = [
            op.add_community.is_some(),
            op.prepend_as_path.is_some(),
            op.set_priority.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            cx.report(
                &opath,
                "exactly one of addCommunity, prependASPath and setPriority must be set",
            );
        }
        if let Some(c) = &op.add_community {
            if !is_community_value(&c.value) {
                cx.report(
                    format!("{opath}.addCommunity.value"),
                    format!("invalid community value {:?}", c.value),
                );
            }
        }
        if let Some(p) = &op.prepend_as_path {
            if !(1..=10).contains(&p.prefix.len()) {
                cx.report(
                    format!("{opath}.prependASPath.prefix"),
                    "must have 1-10 AS numbers",
                );
            }
        }
        if let Some(p) = &op.set_priority {
            check_priority(cx, &format!("{opath}.setPriority.value"), Some(p.value));
        }
    }
}

const ENDPOINT_TO_HOST_ACTIONS: &[&str] = &["drop", "accept", "return"];

pub(super) fn check_felix_configuration(cx: &mut Ctx<'_>, f: &FelixConfiguration) {
    let name = &f.metadata.name;
    let s = &f.spec;
    let fixed_name = name == "default" || name.starts_with("node.");
    match &s.node_selector {
        Some(sel) if fixed_name => {
            let _ = sel;
            cx.report(
                "spec.nodeSelector",
                "nodeSelector is not allowed on the default and node.<name> FelixConfigurations",
            );
        }
        Some(sel) => check_sel(cx, "spec.nodeSelector", sel, GlobalUse::Anywhere),
        None if !fixed_name && !name.is_empty() => cx.report(
            "spec.nodeSelector",
            "a FelixConfiguration not named default or node.<name> requires a nodeSelector",
        ),
        None => {}
    }
    for (i, e) in s.external_nodes_list.iter().enumerate() {
        match e.parse::<IpCidr>() {
            Ok(c) if c.is_ipv4() => {}
            _ => cx.report(
                format!("spec.externalNodesList[{i}]"),
                format!("{e:?} is not an IPv4 CIDR"),
            ),
        }
    }
    if let Some(d) = &s.route_refresh_interval {
        check_duration(cx, "spec.routeRefreshInterval", d);
    }
    if s.route_table_ranges.is_some() && s.route_table_range.is_some() {
        cx.report(
            "spec",
            "routeTableRanges and the deprecated routeTableRange cannot both be set",
        );
    }
    if let Some(ranges) = &s.route_table_ranges {
        let mut total = 0i64;
        for (i, r) in ranges.iter().enumerate() {
            let path = format!("spec.routeTableRanges[{i}]");
            if r.min < 1 {
                cx.report(&path, "min must be at least 1");
            }
            if r.min > r.max {
                cx.report(&path, "min must not exceed max");
            }
            if r.min <= 255 && r.max >= 253 {
                cx.report(&path, "tables 253-255 are reserved");
            }
            total = total.saturating_add((r.max - r.min + 1).max(0));
        }
        if total > 65535 {
            cx.report(
                "spec.routeTableRanges",
                "the ranges cover more than 65535 tables",
            );
        }
    }
    for (field, v) in [
        ("ipv4NormalRoutePriority", s.ipv4_normal_route_priority),
        ("ipv6NormalRoutePriority", s.ipv6_normal_route_priority),
        ("ipv4ElevatedRoutePriority", s.ipv4_elevated_route_priority),
        ("ipv6ElevatedRoutePriority", s.ipv6_elevated_route_priority),
    ] {
        check_priority(cx, &format!("spec.{field}"), v);
    }
    if let Some(a) = &s.default_endpoint_to_host_action {
        if !ENDPOINT_TO_HOST_ACTIONS.contains(&a.to_ascii_lowercase().as_str()) {
            cx.report(
                "spec.defaultEndpointToHostAction",
                format!("invalid action {a:?}: must be Drop, Accept or Return"),
            );
        }
    }
    for (field, list) in [
        ("failsafeInboundHostPorts", &s.failsafe_inbound_host_ports),
        ("failsafeOutboundHostPorts", &s.failsafe_outbound_host_ports),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !matches!(
                p.protocol.to_ascii_uppercase().as_str(),
                "TCP" | "UDP" | "SCTP"
            ) {
                cx.report(
                    format!("spec.{field}[{i}].protocol"),
                    format!(
                        "invalid protocol {:?}: must be TCP, UDP or SCTP",
                        p.protocol
                    ),
                );
            }
            if p.port == 0 {
                cx.report(format!("spec.{field}[{i}].port"), "port must be 1-65535");
            }
        }
    }
}
