//! Policy-kind checks.

use std::collections::HashSet;

use super::Ctx;
use super::common::{check_annotations, check_labels, check_required_subdomain};
use super::format::{is_dns_label, is_dns_subdomain};
use super::selectors::{GlobalUse, check as check_sel};
use crate::resources::policy::{
    Action, EntityRule, GlobalNetworkPolicySpec, HttpMatch, IcmpFields, NetworkPolicySpec,
    PerformanceHint, PolicyType, ProfileSpec, Rule, StagedAction, StagedGlobalNetworkPolicySpec,
    StagedNetworkPolicySpec, Tier, builtin_tier,
};
use crate::resources::values::{IpCidr, Port};

const MAX_RULES: usize = 1024;
const MAX_NETS: usize = 256;
const MAX_PORTS: usize = 50;
const MAX_HTTP_ENTRIES: usize = 20;
const MAX_HTTP_PATH: usize = 1024;

/// The direction a rule list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// Whether rules belong to a cluster-scoped policy (services need a namespace there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Namespaced,
    Global,
}

pub(super) fn check_network_policy(cx: &mut Ctx<'_>, spec: &NetworkPolicySpec) {
    check_common(
        cx,
        &Common {
            tier: &spec.tier,
            selector: &spec.selector,
            sa_selector: &spec.service_account_selector,
            types: &spec.types,
            ingress: &spec.ingress,
            egress: &spec.egress,
            hints: &spec.performance_hints,
        },
        Scope::Namespaced,
    );
}

pub(super) fn check_global_network_policy(cx: &mut Ctx<'_>, spec: &GlobalNetworkPolicySpec) {
    check_common(
        cx,
        &Common {
            tier: &spec.tier,
            selector: &spec.selector,
            sa_selector: &spec.service_account_selector,
            types: &spec.types,
            ingress: &spec.ingress,
            egress: &spec.egress,
            hints: &spec.performance_hints,
        },
        Scope::Global,
    );
    check_sel(
        cx,
        "spec.namespaceSelector",
        &spec.namespace_selector,
        GlobalUse::Forbidden,
    );
    if spec.do_not_track && spec.pre_dnat {
        cx.report("spec", "preDNAT and doNotTrack cannot both be true");
    }
    if (spec.do_not_track || spec.pre_dnat) && !spec.apply_on_forward {
        let which = if spec.pre_dnat {
            "preDNAT"
        } else {
            "doNotTrack"
        };
        cx.report("spec", format!("{which} requires applyOnForward: true"));
    }
    if spec.pre_dnat && (!spec.egress.is_empty() || spec.types.contains(&PolicyType::Egress)) {
        cx.report(
            "spec",
            "a preDNAT policy cannot have egress rules or the Egress type",
        );
    }
}

pub(super) fn check_staged_network_policy(cx: &mut Ctx<'_>, spec: &StagedNetworkPolicySpec) {
    if spec.staged_action == Some(StagedAction::Delete) {
        let set = [
            ("order", spec.order.is_some()),
            ("selector", !spec.selector.is_empty()),
            (
                "serviceAccountSelector",
                !spec.service_account_selector.is_empty(),
            ),
            ("types", !spec.types.is_empty()),
            ("ingress", !spec.ingress.is_empty()),
            ("egress", !spec.egress.is_empty()),
            ("performanceHints", !spec.performance_hints.is_empty()),
        ];
        report_set_on_delete(cx, &set);
        check_tier_name(cx, &spec.tier);
        return;
    }
    check_network_policy(cx, &spec.to_enforced());
}

pub(super) fn check_staged_global_network_policy(
    cx: &mut Ctx<'_>,
    spec: &StagedGlobalNetworkPolicySpec,
) {
    if spec.staged_action == Some(StagedAction::Delete) {
        let set = [
            ("order", spec.order.is_some()),
            ("selector", !spec.selector.is_empty()),
            (
                "serviceAccountSelector",
                !spec.service_account_selector.is_empty(),
            ),
            ("namespaceSelector", !spec.namespace_selector.is_empty()),
            ("types", !spec.types.is_empty()),
            ("ingress", !spec.ingress.is_empty()),
            ("egress", !spec.egress.is_empty()),
            ("doNotTrack", spec.do_not_track),
            ("preDNAT", spec.pre_dnat),
            ("applyOnForward", spec.apply_on_forward),
            ("performanceHints", !spec.performance_hints.is_empty()),
        ];
        report_set_on_delete(cx, &set);
        check_tier_name(cx, &spec.tier);
        return;
    }
    check_global_network_policy(cx, &spec.to_enforced());
}

fn report_set_on_delete(cx: &mut Ctx<'_>, fields: &[(&str, bool)]) {
    for (field, set) in fields {
        if *set {
            cx.report(
                format!("spec.{field}"),
                "must be empty when stagedAction is Delete (only tier may be set)",
            );
        }
    }
}

pub(super) fn check_tier(cx: &mut Ctx<'_>, tier: &Tier) {
    let Some(b) = builtin_tier(&tier.metadata.name) else {
        return;
    };
    if tier.spec.order != Some(b.order) {
        cx.report(
            "spec.order",
            format!("built-in tier {} must have order {}", b.name, b.order),
        );
    }
    if tier.spec.default_action != Some(b.default_action) {
        cx.report(
            "spec.defaultAction",
            format!(
                "built-in tier {} must have defaultAction {:?}",
                b.name, b.default_action
            ),
        );
    }
}

pub(super) fn check_profile(cx: &mut Ctx<'_>, spec: &ProfileSpec) {
    check_rules(
        cx,
        "spec.ingress",
        &spec.ingress,
        Direction::Ingress,
        Scope::Namespaced,
    );
    check_rules(
        cx,
        "spec.egress",
        &spec.egress,
        Direction::Egress,
        Scope::Namespaced,
    );
    check_labels(cx, "spec.labelsToApply", &spec.labels_to_apply);
}

struct Common<'a> {
    tier: &'a str,
    selector: &'a str,
    sa_selector: &'a str,
    types: &'a [PolicyType],
    ingress: &'a [Rule],
    egress: &'a [Rule],
    hints: &'a [PerformanceHint],
}

fn check_tier_name(cx: &mut Ctx<'_>, tier: &str) {
    if !is_dns_label(tier) {
        cx.report(
            "spec.tier",
            format!(
                "invalid tier name {tier:?}: must be a DNS label (at most 63 characters, no dots)"
            ),
        );
    }
}

fn check_common(cx: &mut Ctx<'_>, c: &Common<'_>, scope: Scope) {
    check_tier_name(cx, c.tier);
    check_sel(cx, "spec.selector", c.selector, GlobalUse::Forbidden);
    check_sel(
        cx,
        "spec.serviceAccountSelector",
        c.sa_selector,
        GlobalUse::Forbidden,
    );
    if c.types.is_empty() || c.types.len() > 2 {
        cx.report("spec.types", "types must have 1 or 2 entries");
    }
    for (i, t) in c.types.iter().enumerate() {
        if c.types[..i].contains(t) {
            cx.report(format!("spec.types[{i}]"), format!("duplicate type {t:?}"));
        }
    }
    check_rules(cx, "spec.ingress", c.ingress, Direction::Ingress, scope);
    check_rules(cx, "spec.egress", c.egress, Direction::Egress, scope);
    for (i, h) in c.hints.iter().enumerate() {
        if c.hints[..i].contains(h) {
            cx.report(
                format!("spec.performanceHints[{i}]"),
                format!("duplicate performance hint {h:?}"),
            );
        }
    }
}

fn check_rules(cx: &mut Ctx<'_>, path: &str, rules: &[Rule], dir: Direction, scope: Scope) {
    if rules.len() > MAX_RULES {
        cx.report(
            path,
            format!("{} rules; at most {MAX_RULES} are allowed", rules.len()),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        check_rule(cx, &format!("{path}[{i}]"), rule, dir, scope);
    }
}

fn check_rule(cx: &mut Ctx<'_>, path: &str, rule: &Rule, dir: Direction, scope: Scope) {
    // ipVersion and ICMP families.
    if let Some(v) = rule.ip_version {
        if v != 4 && v != 6 {
            cx.report(format!("{path}.ipVersion"), "ipVersion must be 4 or 6");
        }
    }
    for (field, proto) in [
        ("protocol", rule.protocol),
        ("notProtocol", rule.not_protocol),
    ] {
        let Some(p) = proto else { continue };
        if p.is_icmp_v4() && rule.ip_version == Some(6) {
            cx.report(
                format!("{path}.{field}"),
                format!("{p} requires ipVersion 4"),
            );
        }
        if p.is_icmp_v6() && rule.ip_version == Some(4) {
            cx.report(
                format!("{path}.{field}"),
                format!("{p} requires ipVersion 6"),
            );
        }
    }
    for (field, icmp) in [("icmp", &rule.icmp), ("notICMP", &rule.not_icmp)] {
        if let Some(icmp) = icmp {
            check_icmp(cx, path, field, icmp, rule);
        }
    }
    if let Some(http) = &rule.http {
        check_http(cx, path, http, rule, dir);
    }
    check_ports_vs_protocol(cx, path, rule);
    check_nets(cx, path, rule);
    for (side, entity) in [("source", &rule.source), ("destination", &rule.destination)] {
        check_entity(cx, &format!("{path}.{side}"), side, entity, dir, scope);
    }
    if let Some(md) = &rule.metadata {
        check_annotations(cx, &format!("{path}.metadata.annotations"), &md.annotations);
    }
}

fn check_icmp(cx: &mut Ctx<'_>, path: &str, field: &str, icmp: &IcmpFields, rule: &Rule) {
    if icmp.icmp_type == Some(255) {
        cx.report(format!("{path}.{field}.type"), "ICMP type must be 0-254");
    }
    if icmp.code.is_some() && icmp.icmp_type.is_none() {
        cx.report(format!("{path}.{field}.code"), "ICMP code requires a type");
    }
    let icmp_proto = rule
        .protocol
        .is_some_and(|p| p.is_icmp_v4() || p.is_icmp_v6());
    if !icmp_proto {
        cx.report(
            path,
            format!("{field} requires protocol ICMP, ICMPv6, 1 or 58"),
        );
    }
}

fn check_http(cx: &mut Ctx<'_>, path: &str, http: &HttpMatch, rule: &Rule, dir: Direction) {
    if http.methods.len() > MAX_HTTP_ENTRIES {
        cx.report(
            format!("{path}.http.methods"),
            format!("at most {MAX_HTTP_ENTRIES} methods are allowed"),
        );
    }
    for (i, m) in http.methods.iter().enumerate() {
        if http.methods[..i].contains(m) {
            cx.report(
                format!("{path}.http.methods[{i}]"),
                format!("duplicate method {m:?}"),
            );
        }
    }
    if http.paths.len() > MAX_HTTP_ENTRIES {
        cx.report(
            format!("{path}.http.paths"),
            format!("at most {MAX_HTTP_ENTRIES} paths are allowed"),
        );
    }
    for (i, p) in http.paths.iter().enumerate() {
        let ppath = format!("{path}.http.paths[{i}]");
        match (&p.exact, &p.prefix) {
            (Some(v), None) => check_http_path(cx, &format!("{ppath}.exact"), v),
            (None, Some(v)) => check_http_path(cx, &format!("{ppath}.prefix"), v),
            _ => cx.report(ppath, "exactly one of exact and prefix must be set"),
        }
    }
    if rule.action != Action::Allow {
        cx.report(path, "an http match requires action Allow");
    }
    if rule.protocol.is_some_and(|p| p.number() != 6) {
        cx.report(path, "an http match requires protocol TCP (or no protocol)");
    }
    if dir == Direction::Egress {
        cx.report(
            format!("{path}.http"),
            "an http match is not allowed in egress rules",
        );
    }
}

fn check_http_path(cx: &mut Ctx<'_>, path: &str, value: &str) {
    if value.len() > MAX_HTTP_PATH {
        cx.report(
            path,
            format!("path is longer than {MAX_HTTP_PATH} characters"),
        );
    }
    if !value.starts_with('/') {
        cx.report(path, "path must start with '/'");
    }
    if value.contains(['?', '#', ' ']) {
        cx.report(path, "path must not contain '?', '#' or spaces");
    }
}

fn check_ports_vs_protocol(cx: &mut Ctx<'_>, path: &str, rule: &Rule) {
    let sides = [("source", &rule.source), ("destination", &rule.destination)];
    for (side, entity) in sides {
        for (field, ports) in [("ports", &entity.ports), ("notPorts", &entity.not_ports)] {
            match rule.protocol {
                None => {
                    for (j, p) in ports.iter().enumerate() {
                        if !p.is_named() {
                            cx.report(
                                path,
                                format!("{side}.{field}[{j}]: numeric port {p} requires protocol TCP, UDP or SCTP; without a protocol only named ports are allowed"),
                            );
                        }
                    }
                }
                Some(proto) if !proto.supports_ports() && !ports.is_empty() => {
                    cx.report(
                        path,
                        format!(
                            "protocol {proto} does not support ports: {side}.{field} must be empty"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn check_nets(cx: &mut Ctx<'_>, path: &str, rule: &Rule) {
    let mut families = (false, false);
    let sides = [("source", &rule.source), ("destination", &rule.destination)];
    for (side, entity) in sides {
        for (field, nets) in [("nets", &entity.nets), ("notNets", &entity.not_nets)] {
            for (j, n) in nets.iter().enumerate() {
                let npath = format!("{path}.{side}.{field}[{j}]");
                check_rule_net(cx, &npath, n);
                if field == "notNets" && n.prefix_len() == 0 {
                    cx.report(&npath, "notNets may not be a catch-all (/0)");
                }
                if n.is_ipv4() {
                    families.0 = true;
                } else {
                    families.1 = true;
                }
                let family = if n.is_ipv4() { 4 } else { 6 };
                if let Some(v) = rule
                    .ip_version
                    .filter(|v| (*v == 4 || *v == 6) && *v != family)
                {
                    cx.report(
                        path,
                        format!("{side}.{field}[{j}] is IPv{family} but ipVersion is {v}"),
                    );
                }
            }
        }
    }
    if families.0 && families.1 {
        cx.report(
            path,
            "a rule may not mix IPv4 and IPv6 in its source and destination nets and notNets",
        );
    }
}

fn check_rule_net(cx: &mut Ctx<'_>, path: &str, n: &IpCidr) {
    if !n.has_prefix() {
        cx.report(
            path,
            format!("{n} must be a CIDR with a prefix length (addr/len)"),
        );
    } else if !n.is_strictly_masked() {
        cx.report(
            path,
            format!("{n} has host bits set (did you mean {}?)", n.network()),
        );
    }
}

fn check_entity(
    cx: &mut Ctx<'_>,
    path: &str,
    side: &str,
    e: &EntityRule,
    dir: Direction,
    scope: Scope,
) {
    for (field, n) in [("nets", e.nets.len()), ("notNets", e.not_nets.len())] {
        if n > MAX_NETS {
            cx.report(
                format!("{path}.{field}"),
                format!("{n} entries; at most {MAX_NETS} are allowed"),
            );
        }
    }
    for (field, ports) in [("ports", &e.ports), ("notPorts", &e.not_ports)] {
        if ports.len() > MAX_PORTS {
            cx.report(
                format!("{path}.{field}"),
                format!("{} entries; at most {MAX_PORTS} are allowed", ports.len()),
            );
        }
    }
    check_sel(
        cx,
        &format!("{path}.selector"),
        &e.selector,
        GlobalUse::Forbidden,
    );
    check_sel(
        cx,
        &format!("{path}.notSelector"),
        &e.not_selector,
        GlobalUse::Anywhere,
    );
    check_sel(
        cx,
        &format!("{path}.namespaceSelector"),
        &e.namespace_selector,
        GlobalUse::WholeSelectorOnly,
    );
    if let Some(sa) = &e.service_accounts {
        check_sel(
            cx,
            &format!("{path}.serviceAccounts.selector"),
            &sa.selector,
            GlobalUse::Anywhere,
        );
        let mut seen = HashSet::new();
        for (i, n) in sa.names.iter().enumerate() {
            let npath = format!("{path}.serviceAccounts.names[{i}]");
            if !is_dns_subdomain(n) {
                cx.report(&npath, format!("invalid service account name {n:?}"));
            }
            if !seen.insert(n) {
                cx.report(&npath, format!("duplicate service account name {n:?}"));
            }
        }
    }
    let Some(svc) = &e.services else { return };
    let allowed = matches!(
        (dir, side),
        (Direction::Ingress, "source") | (Direction::Egress, "destination")
    );
    if !allowed {
        cx.report(
            format!("{path}.services"),
            "services may only be used in an ingress source or an egress destination",
        );
    }
    check_required_subdomain(
        cx,
        &format!("{path}.services.name"),
        "service name",
        &svc.name,
    );
    if svc.namespace.is_empty() {
        if scope == Scope::Global {
            cx.report(
                format!("{path}.services.namespace"),
                "services.namespace is required in a GlobalNetworkPolicy",
            );
        }
    } else if !is_dns_label(&svc.namespace) {
        cx.report(
            format!("{path}.services.namespace"),
            format!("invalid namespace {:?}", svc.namespace),
        );
    }
    let conflicts = [
        ("namespaceSelector", !e.namespace_selector.is_empty()),
        ("serviceAccounts", e.service_accounts.is_some()),
        ("selector", !e.selector.is_empty()),
        ("notSelector", !e.not_selector.is_empty()),
        ("nets", !e.nets.is_empty()),
        ("notNets", !e.not_nets.is_empty()),
    ];
    for (field, set) in conflicts {
        if set {
            cx.report(path, format!("services cannot be combined with {field}"));
        }
    }
    if side == "destination" {
        let ports: [(&str, &Vec<Port>); 2] = [("ports", &e.ports), ("notPorts", &e.not_ports)];
        for (field, list) in ports {
            if !list.is_empty() {
                cx.report(
                    path,
                    format!("destination services cannot be combined with {field}"),
                );
            }
        }
    }
}
