//! Kubernetes NetworkPolicy → Calico policy, exactly as Calico converts it.

use std::collections::BTreeMap;

use calico_model::resources::k8s::{
    IpBlock, K8sPolicyType, K8sProtocol, KubernetesNetworkPolicy, LabelSelector,
    LabelSelectorOperator, NetworkPolicyPeer, NetworkPolicyPort,
};
use calico_model::resources::policy::{Action, EntityRule, PolicyType, Rule};
use calico_model::resources::values::{IntOrString, IpCidr, Port, Protocol};

/// The order of every converted Kubernetes NetworkPolicy.
pub const KNP_ORDER: f64 = 1000.0;

/// The orchestrator clause every converted pod selector starts with.
pub const ORCHESTRATOR_CLAUSE: &str = "projectcalico.org/orchestrator == 'k8s'";

/// A Kubernetes NetworkPolicy converted to Calico form (tier `default`, order 1000).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedPolicy {
    /// The endpoint selector before namespace scoping ([`crate::rewrite`] adds it).
    pub selector: String,
    /// Policy types (from `policyTypes` as defaulted on load).
    pub types: Vec<PolicyType>,
    /// Ingress rules.
    pub ingress: Vec<Rule>,
    /// Egress rules.
    pub egress: Vec<Rule>,
    /// Conversion problems: (field path, message). The rule concerned was dropped.
    pub errors: Vec<(String, String)>,
    /// Conversion warnings: (field path, message).
    pub warnings: Vec<(String, String)>,
}

fn quote_list(values: &[String]) -> String {
    let v: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    v.join(", ")
}

/// The selector terms of a Kubernetes label selector: `matchLabels` in key
/// order, then `matchExpressions` in order.
pub fn label_selector_terms(ls: &LabelSelector) -> Vec<String> {
    let mut out: Vec<String> = ls
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k} == '{v}'"))
        .collect();
    for e in &ls.match_expressions {
        out.push(match e.operator {
            LabelSelectorOperator::In => format!("{} in {{ {} }}", e.key, quote_list(&e.values)),
            LabelSelectorOperator::NotIn => {
                format!("{} not in {{ {} }}", e.key, quote_list(&e.values))
            }
            LabelSelectorOperator::Exists => format!("has({})", e.key),
            LabelSelectorOperator::DoesNotExist => format!("! has({})", e.key),
        });
    }
    out
}

/// A pod selector: the orchestrator clause, then each term.
pub fn pod_selector(ls: &LabelSelector) -> String {
    let mut s = ORCHESTRATOR_CLAUSE.to_owned();
    for t in label_selector_terms(ls) {
        s.push_str(" && ");
        s.push_str(&t);
    }
    s
}

/// A namespace selector: the terms without the orchestrator clause; `{}` → `all()`.
pub fn namespace_selector(ls: &LabelSelector) -> String {
    let terms = label_selector_terms(ls);
    if terms.is_empty() {
        "all()".to_owned()
    } else {
        terms.join(" && ")
    }
}

fn parse_cidr(s: &str) -> Option<IpCidr> {
    s.trim().parse().ok()
}

fn peer_entity(peer: &NetworkPolicyPeer, path: &str) -> Result<EntityRule, (String, String)> {
    let mut e = EntityRule::default();
    if let Some(b) = &peer.ip_block {
        let IpBlock { cidr, except } = b;
        e.nets = vec![parse_cidr(cidr).ok_or_else(|| {
            (
                format!("{path}.ipBlock.cidr"),
                format!("invalid CIDR {cidr:?}: rule dropped"),
            )
        })?];
        for (i, x) in except.iter().enumerate() {
            e.not_nets.push(parse_cidr(x).ok_or_else(|| {
                (
                    format!("{path}.ipBlock.except[{i}]"),
                    format!("invalid CIDR {x:?}: rule dropped"),
                )
            })?);
        }
    }
    if let Some(ps) = &peer.pod_selector {
        e.selector = pod_selector(ps);
    } else if peer.namespace_selector.is_some() {
        e.selector = ORCHESTRATOR_CLAUSE.to_owned();
    }
    if let Some(ns) = &peer.namespace_selector {
        e.namespace_selector = namespace_selector(ns);
    }
    Ok(e)
}

#[derive(Default)]
struct ProtoPorts {
    all: bool,
    numeric: Vec<(u16, u16)>,
    named: Vec<String>,
}

fn sort_key(p: K8sProtocol) -> &'static str {
    match p {
        K8sProtocol::Sctp => "SCTP",
        K8sProtocol::Tcp => "TCP",
        K8sProtocol::Udp => "UDP",
    }
}

fn valid_port(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p >= 1)
}

/// Groups ports per protocol. `Ok(None)` means "no ports" (all traffic).
#[allow(clippy::type_complexity)]
fn group_ports(
    ports: &[NetworkPolicyPort],
    path: &str,
) -> Result<Option<Vec<(Protocol, Vec<Port>)>>, (String, String)> {
    if ports.is_empty() {
        return Ok(None);
    }
    let mut groups: BTreeMap<&'static str, (K8sProtocol, ProtoPorts)> = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.unwrap_or(K8sProtocol::Tcp);
        let g = &mut groups
            .entry(sort_key(proto))
            .or_insert_with(|| (proto, ProtoPorts::default()))
            .1;
        let ppath = format!("{path}.ports[{i}]");
        match &p.port {
            None => {
                if p.end_port.is_some() {
                    return Err((format!("{ppath}.endPort"), "endPort without port".into()));
                }
                g.all = true;
            }
            Some(IntOrString::Int(n)) => {
                let start = valid_port(*n).ok_or_else(|| {
                    (
                        format!("{ppath}.port"),
                        format!("port {n} is outside 1-65535: rule dropped"),
                    )
                })?;
                let end = match p.end_port {
                    None => start,
                    Some(e) => valid_port(e).filter(|e| *e >= start).ok_or_else(|| {
                        (
                            format!("{ppath}.endPort"),
                            format!("endPort {e} is not in {start}-65535: rule dropped"),
                        )
                    })?,
                };
                g.numeric.push((start, end));
            }
            Some(IntOrString::String(name)) => {
                if p.end_port.is_some() {
                    return Err((
                        format!("{ppath}.endPort"),
                        "endPort with a named port: rule dropped".into(),
                    ));
                }
                match Port::parse(name) {
                    Ok(Port::Named(n)) => g.named.push(n),
                    Ok(Port::Number(n)) => g.numeric.push((n, n)),
                    Ok(Port::Range { min, max }) => g.numeric.push((min, max)),
                    Err(msg) => return Err((format!("{ppath}.port"), msg)),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (_, (proto, g)) in groups {
        let ports = if g.all {
            Vec::new()
        } else {
            let merged = crate::conn::PortSet::from_ranges(g.numeric);
            let mut v: Vec<Port> = merged
                .ranges()
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        Port::Number(a)
                    } else {
                        Port::Range { min: a, max: b }
                    }
                })
                .collect();
            v.extend(g.named.into_iter().map(Port::Named));
            v
        };
        out.push((proto.to_calico(), ports));
    }
    Ok(Some(out))
}

fn expand(
    peers: &[NetworkPolicyPeer],
    ports: &[NetworkPolicyPort],
    path: &str,
    peer_field: &str,
    ingress: bool,
) -> Result<Vec<Rule>, (String, String)> {
    let groups = group_ports(ports, path)?;
    let entities: Vec<Option<EntityRule>> = if peers.is_empty() {
        vec![None]
    } else {
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| peer_entity(p, &format!("{path}.{peer_field}[{i}]")).map(Some))
            .collect::<Result<_, _>>()?
    };
    let protocols: Vec<(Option<Protocol>, Vec<Port>)> = match groups {
        None => vec![(None, Vec::new())],
        Some(g) => g.into_iter().map(|(p, ports)| (Some(p), ports)).collect(),
    };
    let mut out = Vec::new();
    for (proto, ports) in &protocols {
        for ent in &entities {
            let mut r = Rule::new(Action::Allow);
            r.protocol = *proto;
            let mut peer = ent.clone().unwrap_or_default();
            if ingress {
                r.source = peer;
                r.destination.ports = ports.clone();
            } else {
                peer.ports = ports.clone();
                r.destination = peer;
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Converts a Kubernetes NetworkPolicy (defaults applied) to its Calico form.
pub fn convert(np: &KubernetesNetworkPolicy) -> ConvertedPolicy {
    let spec = &np.spec;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut types: Vec<PolicyType> = spec
        .policy_types
        .iter()
        .map(|t| match t {
            K8sPolicyType::Ingress => PolicyType::Ingress,
            K8sPolicyType::Egress => PolicyType::Egress,
        })
        .collect();
    if types.is_empty() {
        types.push(PolicyType::Ingress);
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push(PolicyType::Egress);
        }
    }
    let mut ingress = Vec::new();
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        let path = format!("spec.ingress[{i}]");
        match expand(&r.from, &r.ports, &path, "from", true) {
            Ok(rules) => ingress.extend(rules),
            Err(e) => errors.push(e),
        }
    }
    let mut egress = Vec::new();
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        let path = format!("spec.egress[{i}]");
        match expand(&r.to, &r.ports, &path, "to", false) {
            Ok(rules) => egress.extend(rules),
            Err(e) => errors.push(e),
        }
    }
    if !egress.is_empty() && !types.contains(&PolicyType::Egress) {
        warnings.push((
            "spec.egress".to_owned(),
            "egress rules are ignored: policyTypes does not include Egress".to_owned(),
        ));
    }
    ConvertedPolicy {
        selector: pod_selector(&spec.pod_selector),
        types,
        ingress,
        egress,
        errors,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::resources::k8s::{
        LabelSelectorRequirement, NetworkPolicyIngressRule, NetworkPolicyPort,
    };

    #[test]
    fn selectors() {
        let mut ls = LabelSelector::default();
        assert_eq!(pod_selector(&ls), ORCHESTRATOR_CLAUSE);
        assert_eq!(namespace_selector(&ls), "all()");
        ls.match_labels.insert("b".into(), "2".into());
        ls.match_labels.insert("a".into(), "1".into());
        ls.match_expressions.push(LabelSelectorRequirement {
            key: "c".into(),
            operator: LabelSelectorOperator::In,
            values: vec!["x".into(), "y".into()],
        });
        ls.match_expressions.push(LabelSelectorRequirement {
            key: "d".into(),
            operator: LabelSelectorOperator::DoesNotExist,
            values: vec![],
        });
        assert_eq!(
            pod_selector(&ls),
            "projectcalico.org/orchestrator == 'k8s' && a == '1' && b == '2' && c in { 'x', 'y' } && ! has(d)"
        );
    }

    #[test]
    fn ports_grouped_and_merged() {
        let port = |proto, p: Option<IntOrString>| NetworkPolicyPort {
            protocol: Some(proto),
            port: p,
            end_port: None,
        };
        let mut np = KubernetesNetworkPolicy::default();
        np.spec.ingress = Some(vec![NetworkPolicyIngressRule {
            from: vec![],
            ports: vec![
                port(K8sProtocol::Udp, Some(IntOrString::Int(53))),
                port(K8sProtocol::Tcp, Some(IntOrString::Int(81))),
                port(K8sProtocol::Tcp, Some(IntOrString::Int(80))),
                port(K8sProtocol::Tcp, Some(IntOrString::Int(82))),
                port(K8sProtocol::Tcp, Some(IntOrString::String("http".into()))),
                port(K8sProtocol::Sctp, Some(IntOrString::Int(9))),
                port(K8sProtocol::Sctp, None),
            ],
        }]);
        let c = convert(&np);
        assert!(c.errors.is_empty());
        let summary: Vec<(Option<Protocol>, Vec<Port>)> = c
            .ingress
            .iter()
            .map(|r| (r.protocol, r.destination.ports.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some(Protocol::Sctp), vec![]),
                (
                    Some(Protocol::Tcp),
                    vec![Port::Range { min: 80, max: 82 }, Port::Named("http".into())]
                ),
                (Some(Protocol::Udp), vec![Port::Number(53)]),
            ]
        );
        assert_eq!(c.types, vec![PolicyType::Ingress]);
    }

    #[test]
    fn invalid_cidr_fails_closed() {
        let mut np = KubernetesNetworkPolicy::default();
        np.spec.ingress = Some(vec![NetworkPolicyIngressRule {
            from: vec![NetworkPolicyPeer {
                ip_block: Some(IpBlock {
                    cidr: "A".into(),
                    except: vec![],
                }),
                ..NetworkPolicyPeer::default()
            }],
            ports: vec![],
        }]);
        let c = convert(&np);
        assert!(c.ingress.is_empty(), "the rule must be dropped, not opened");
        assert_eq!(c.errors[0].0, "spec.ingress[0].from[0].ipBlock.cidr");
    }
}
