//! Kubernetes object checks: only the fields the model reads, with the API server's rules.

use std::collections::HashSet;

use super::Ctx;
use super::common::{check_annotations, check_labels};
use super::format::{is_label_value, is_port_name, is_qualified_name};
use crate::resources::k8s::{
    JobSpec, KubernetesNetworkPolicySpec, LabelSelector, LabelSelectorOperator, NetworkPolicyPeer,
    NetworkPolicyPort, PodSpec, PodTemplateSpec, ReplicatedSpec,
};
use crate::resources::values::{IntOrString, IpCidr};

pub(super) fn check_pod_spec(cx: &mut Ctx<'_>, path: &str, spec: &PodSpec) {
    let mut names = HashSet::new();
    for (field, containers) in [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ] {
        for (i, c) in containers.iter().enumerate() {
            for (j, p) in c.ports.iter().enumerate() {
                let ppath = format!("{path}.{field}[{i}].ports[{j}]");
                if !(1..=65535).contains(&p.container_port) {
                    cx.report(
                        format!("{ppath}.containerPort"),
                        "containerPort must be 1-65535",
                    );
                }
                if let Some(hp) = p.host_port {
                    if !(0..=65535).contains(&hp) {
                        cx.report(format!("{ppath}.hostPort"), "hostPort must be 0-65535");
                    }
                }
                if !p.name.is_empty() {
                    if !is_port_name(&p.name) {
                        cx.report(
                            format!("{ppath}.name"),
                            format!("invalid port name {:?}: at most 15 characters of a-z, 0-9 and '-', with a letter, no leading, trailing or doubled '-'", p.name),
                        );
                    } else if !names.insert(p.name.as_str()) {
                        cx.report(
                            format!("{ppath}.name"),
                            format!("duplicate port name {:?} in the pod", p.name),
                        );
                    }
                }
            }
        }
    }
}

pub(super) fn check_template(cx: &mut Ctx<'_>, path: &str, t: &PodTemplateSpec) {
    check_labels(cx, &format!("{path}.metadata.labels"), &t.metadata.labels);
    check_annotations(
        cx,
        &format!("{path}.metadata.annotations"),
        &t.metadata.annotations,
    );
    check_pod_spec(cx, &format!("{path}.spec"), &t.spec);
}

pub(super) fn check_replicated(cx: &mut Ctx<'_>, spec: &ReplicatedSpec) {
    if spec.replicas.is_some_and(|r| r < 0) {
        cx.report("spec.replicas", "replicas must not be negative");
    }
    check_template(cx, "spec.template", &spec.template);
}

pub(super) fn check_job(cx: &mut Ctx<'_>, path: &str, spec: &JobSpec) {
    if spec.parallelism.is_some_and(|r| r < 0) {
        cx.report(
            format!("{path}.parallelism"),
            "parallelism must not be negative",
        );
    }
    check_template(cx, &format!("{path}.template"), &spec.template);
}

fn check_label_selector(cx: &mut Ctx<'_>, path: &str, sel: &LabelSelector) {
    check_labels(cx, &format!("{path}.matchLabels"), &sel.match_labels);
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let epath = format!("{path}.matchExpressions[{i}]");
        if !is_qualified_name(&e.key) {
            cx.report(
                format!("{epath}.key"),
                format!("invalid label key {:?}", e.key),
            );
        }
        match e.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn => {
                if e.values.is_empty() {
                    cx.report(
                        format!("{epath}.values"),
                        format!("operator {:?} requires at least one value", e.operator),
                    );
                }
            }
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist => {
                if !e.values.is_empty() {
                    cx.report(
                        format!("{epath}.values"),
                        format!("operator {:?} takes no values", e.operator),
                    );
                }
            }
        }
        for (j, v) in e.values.iter().enumerate() {
            if !is_label_value(v) {
                cx.report(
                    format!("{epath}.values[{j}]"),
                    format!("invalid label value {v:?}"),
                );
            }
        }
    }
}

/// Parses a Kubernetes CIDR (an explicit prefix length is required).
fn parse_k8s_cidr(s: &str) -> Option<IpCidr> {
    s.parse::<IpCidr>().ok().filter(IpCidr::has_prefix)
}

fn check_peer(cx: &mut Ctx<'_>, path: &str, peer: &NetworkPolicyPeer) {
    if peer.pod_selector.is_none() && peer.namespace_selector.is_none() && peer.ip_block.is_none() {
        cx.report(
            path,
            "a peer needs at least one of podSelector, namespaceSelector and ipBlock",
        );
    }
    if peer.ip_block.is_some() && (peer.pod_selector.is_some() || peer.namespace_selector.is_some())
    {
        cx.report(
            path,
            "ipBlock cannot be combined with podSelector or namespaceSelector",
        );
    }
    if let Some(s) = &peer.pod_selector {
        check_label_selector(cx, &format!("{path}.podSelector"), s);
    }
    if let Some(s) = &peer.namespace_selector {
        check_label_selector(cx, &format!("{path}.namespaceSelector"), s);
    }
    if let Some(b) = &peer.ip_block {
        let cidr = parse_k8s_cidr(&b.cidr);
        if cidr.is_none() {
            cx.report(
                format!("{path}.ipBlock.cidr"),
                format!("invalid CIDR {:?}", b.cidr),
            );
        }
        for (i, e) in b.except.iter().enumerate() {
            let epath = format!("{path}.ipBlock.except[{i}]");
            match (parse_k8s_cidr(e), &cidr) {
                (None, _) => cx.report(epath, format!("invalid CIDR {e:?}")),
                (Some(ex), Some(c)) => {
                    let inside = ex.is_ipv4() == c.is_ipv4()
                        && ex.prefix_len() > c.prefix_len()
                        && c.contains(ex.addr());
                    if !inside {
                        cx.report(epath, format!("{e} must be strictly inside {}", b.cidr));
                    }
                }
                (Some(_), None) => {}
            }
        }
    }
}

fn check_port(cx: &mut Ctx<'_>, path: &str, p: &NetworkPolicyPort) {
    match &p.port {
        None => {
            if p.end_port.is_some() {
                cx.report(format!("{path}.endPort"), "endPort requires a numeric port");
            }
        }
        Some(IntOrString::Int(n)) => {
            if !(1..=65535).contains(n) {
                cx.report(format!("{path}.port"), "port must be 1-65535");
            }
            if let Some(end) = p.end_port {
                if end < *n || end > 65535 {
                    cx.report(
                        format!("{path}.endPort"),
                        "endPort must be between port and 65535",
                    );
                }
            }
        }
        Some(IntOrString::String(s)) => {
            if !is_port_name(s) {
                cx.report(format!("{path}.port"), format!("invalid port name {s:?}"));
            }
            if p.end_port.is_some() {
                cx.report(format!("{path}.endPort"), "endPort requires a numeric port");
            }
        }
    }
}

pub(super) fn check_network_policy(cx: &mut Ctx<'_>, spec: &KubernetesNetworkPolicySpec) {
    check_label_selector(cx, "spec.podSelector", &spec.pod_selector);
    for (i, t) in spec.policy_types.iter().enumerate() {
        if spec.policy_types[..i].contains(t) {
            cx.report(
                format!("spec.policyTypes[{i}]"),
                format!("duplicate policy type {t:?}"),
            );
        }
    }
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        for (j, peer) in r.from.iter().enumerate() {
            check_peer(cx, &format!("spec.ingress[{i}].from[{j}]"), peer);
        }
        for (j, p) in r.ports.iter().enumerate() {
            check_port(cx, &format!("spec.ingress[{i}].ports[{j}]"), p);
        }
    }
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        for (j, peer) in r.to.iter().enumerate() {
            check_peer(cx, &format!("spec.egress[{i}].to[{j}]"), peer);
        }
        for (j, p) in r.ports.iter().enumerate() {
            check_port(cx, &format!("spec.egress[{i}].ports[{j}]"), p);
        }
    }
}
