//! `lint`: findings about policies that are valid but probably not what was meant. Each
//! finding names resource, field path and reason, with a [`FindingCode`].

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use calico_model::resources::policy::{Action, Rule};
use calico_model::selector::Node;
use calico_model::validation::Problem;

use crate::diag::Severity;
use crate::matching::SelId;
use crate::model::{Direction, Model, Policy, PolicyKind};
use crate::rules::{CEntity, CRule};

/// What kind of finding: displays as the short code printed in brackets (`[shadowed]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FindingCode {
    /// `invalid`: A manifest error the model builder reported (the rule or policy is left out).
    Invalid,
    /// `warning`: A warning the model builder reported.
    Warning,
    /// `never-matches`: A selector that can never match (for example `a == 'x' && a == 'y'`).
    NeverMatches,
    /// `unknown-label`: A selector reads a label no endpoint or network set carries.
    UnknownLabel,
    /// `missing-tier`: A policy names a tier that no manifest defines (it is evaluated last and denies).
    MissingTier,
    /// `selects-nothing`: A policy whose selector matches no endpoint.
    SelectsNothing,
    /// `host-network`: A policy selects `hostNetwork` pods, which Calico does not police as workloads.
    HostNetwork,
    /// `source-ports`: A rule constrains source ports, which offline analysis does not model.
    SourcePorts,
    /// `pass-in-last-tier`: A `Pass` rule in the last tier (it goes on to the profiles).
    PassInLastTier,
    /// `shadowed`: An earlier rule with another action matches everything this rule matches: it never decides.
    Shadowed,
    /// `redundant`: An earlier rule with the same action matches everything this rule matches: it can be removed.
    Redundant,
    /// `connlist`: A problem that makes the connectivity list meaningless (see [`crate::ConnlistError`]).
    Connlist,
}

impl FindingCode {
    /// The short code, e.g. `selects-nothing`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::Invalid => "invalid",
            FindingCode::Warning => "warning",
            FindingCode::NeverMatches => "never-matches",
            FindingCode::UnknownLabel => "unknown-label",
            FindingCode::MissingTier => "missing-tier",
            FindingCode::SelectsNothing => "selects-nothing",
            FindingCode::HostNetwork => "host-network",
            FindingCode::SourcePorts => "source-ports",
            FindingCode::PassInLastTier => "pass-in-last-tier",
            FindingCode::Shadowed => "shadowed",
            FindingCode::Redundant => "redundant",
            FindingCode::Connlist => "connlist",
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of finding.
    pub code: FindingCode,
    /// Where and why.
    pub problem: Problem,
}

/// `FILE:DOC KIND/[NS/]NAME: FIELD: [code] message`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut p = self.problem.clone();
        p.message = format!("[{}] {}", self.code, p.message);
        write!(f, "{p}")
    }
}

pub(crate) fn policy_problem(p: &Policy, field: &str, message: String) -> Problem {
    Problem {
        file: p.origin.file.clone(),
        doc_index: p.origin.doc_index,
        kind: Some(match p.id.kind {
            PolicyKind::KubernetesNetworkPolicy => "NetworkPolicy".to_owned(),
            k => k.as_str().to_owned(),
        }),
        namespace: p.id.namespace.clone(),
        name: p.id.name.clone(),
        field_path: field.to_owned(),
        message,
    }
}

/// Every label name a selector tree reads.
fn label_names(node: &Node, out: &mut BTreeSet<String>) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        match n {
            Node::Eq { label, .. }
            | Node::Ne { label, .. }
            | Node::Contains { label, .. }
            | Node::StartsWith { label, .. }
            | Node::EndsWith { label, .. }
            | Node::In { label, .. }
            | Node::NotIn { label, .. }
            | Node::Has { label } => {
                out.insert(label.to_string());
            }
            Node::All | Node::Global => {}
            Node::Not(x) => stack.push(x),
            Node::And(xs) | Node::Or(xs) => stack.extend(xs.iter()),
        }
    }
}

fn is_catch_all(r: &Rule) -> bool {
    let mut bare = Rule::new(r.action);
    bare.metadata = r.metadata.clone();
    *r == bare
}

fn same_match(a: &Rule, b: &Rule) -> bool {
    let mut a = a.clone();
    a.action = b.action;
    a.metadata = b.metadata.clone();
    a == *b
}

/// Whether side `a` of a rule matches every address and port side `b` matches (a syntactic,
/// conservative test: `false` when unsure).
fn entity_covers(a: &CEntity, b: &CEntity) -> bool {
    let nets_ok = a.nets.is_empty()
        || (!b.nets.is_empty()
            && b.nets
                .iter()
                .all(|n| a.nets.iter().any(|m| m.contains_range(n))));
    let not_nets_ok = a.not_nets.iter().all(|n| b.not_nets.contains(n));
    let sel_ok = a.pos.is_none() || a.pos == b.pos;
    let not_sel_ok = a.neg.is_none() || a.neg == b.neg;
    let ports_ok = !a.has_ports
        || (b.has_ports
            && b.ports.minus(&a.ports).is_empty()
            && b.named.iter().all(|n| a.named.contains(n)));
    let not_ports_ok = !a.has_not_ports
        || (b.has_not_ports
            && a.not_ports.minus(&b.not_ports).is_empty()
            && a.not_named.iter().all(|n| b.not_named.contains(n)));
    nets_ok && not_nets_ok && sel_ok && not_sel_ok && ports_ok && not_ports_ok
}

/// Whether rule `a` matches every packet rule `b` matches (conservative).
fn rule_covers(a: &CRule, b: &CRule) -> bool {
    let same_or_none = |x: Option<u8>, y: Option<u8>| x.is_none() || x == y;
    same_or_none(a.ip_version, b.ip_version)
        && same_or_none(a.protocol, b.protocol)
        && (a.not_protocol.is_none()
            || a.not_protocol == b.not_protocol
            || b.protocol.is_some_and(|p| Some(p) != a.not_protocol))
        && (a.icmp.is_none() || a.icmp == b.icmp)
        && (a.not_icmp.is_none() || a.not_icmp == b.not_icmp)
        && (!a.has_source_ports
            || (a.raw.source.ports == b.raw.source.ports
                && a.raw.source.not_ports == b.raw.source.not_ports))
        && (a.raw.http.is_none() || a.raw.http == b.raw.http)
        && entity_covers(&a.src, &b.src)
        && entity_covers(&a.dst, &b.dst)
}

impl Model {
    fn selector_findings(
        &self,
        p: &Policy,
        field: &str,
        sel: SelId,
        carried: &HashSet<&str>,
        out: &mut Vec<Finding>,
    ) {
        let Some(s) = self.selectors.get(sel) else {
            return;
        };
        if s.restrictions().can_never_match() {
            out.push(Finding {
                code: FindingCode::NeverMatches,
                problem: policy_problem(
                    p,
                    field,
                    format!("selector {} can never match", s.canonical()),
                ),
            });
        }
        let mut names = BTreeSet::new();
        label_names(s.root(), &mut names);
        for n in names {
            if !carried.contains(n.as_str()) {
                out.push(Finding {
                    code: FindingCode::UnknownLabel,
                    problem: policy_problem(
                        p,
                        field,
                        format!(
                            "selector {} reads label {n:?}, which no object carries",
                            s.canonical()
                        ),
                    ),
                });
            }
        }
    }

    /// Every lint finding, including the model's own diagnostics (errors and warnings) and
    /// the connlist's fatal problems.
    pub fn lint(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .diagnostics()
            .iter()
            .map(|d| Finding {
                code: match d.severity {
                    Severity::Error => FindingCode::Invalid,
                    Severity::Warning => FindingCode::Warning,
                },
                problem: d.problem.clone(),
            })
            .collect();
        let carried: HashSet<&str> = self
            .endpoints
            .iter()
            .flat_map(|e| e.labels.keys())
            .chain(self.network_sets.iter().flat_map(|n| n.labels.keys()))
            .map(String::as_str)
            .collect();
        let last_tier = self
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.staged && !p.host_only)
            .map(|(i, _)| self.policies.tier_of(i))
            .max();
        for (pi, p) in self.policies.iter().enumerate() {
            if p.staged {
                continue;
            }
            let tier = self.policies.tier_entry_of(pi);
            if tier.is_some_and(|t| !t.defined) {
                out.push(Finding {
                    code: FindingCode::MissingTier,
                    problem: policy_problem(p, "spec.tier", format!("tier {:?} does not exist: the policy sorts after every tier and its tier denies by default", p.tier)),
                });
            }
            let selected: Vec<usize> = (0..self.endpoints.len())
                .filter(|&e| self.policy_selects_at(pi, e))
                .collect();
            if selected.is_empty() {
                out.push(Finding {
                    code: FindingCode::SelectsNothing,
                    problem: policy_problem(
                        p,
                        "spec.selector",
                        format!("selects no endpoint ({})", p.selector),
                    ),
                });
            }
            for &e in &selected {
                let ep = &self.endpoints[e];
                if ep.host_network {
                    out.push(Finding {
                        code: FindingCode::HostNetwork,
                        problem: policy_problem(p, "spec.selector", format!("selects hostNetwork pod {}/{}, which is not a workload endpoint: policy does not apply to it", ep.namespace.as_deref().unwrap_or(""), ep.name)),
                    });
                }
            }
            if let Some(sel) = p.selector_id {
                self.selector_findings(p, "spec.selector", sel, &carried, &mut out);
            }
            for dir in [Direction::Ingress, Direction::Egress] {
                let field = match dir {
                    Direction::Ingress => "spec.ingress",
                    Direction::Egress => "spec.egress",
                };
                let rules = &p.rules[dir];
                for (j, r) in rules.iter().enumerate() {
                    let path = format!("{field}[{}]", r.index);
                    for (side, e) in [("source", &r.src), ("destination", &r.dst)] {
                        for sel in [e.pos, e.neg].into_iter().flatten() {
                            self.selector_findings(
                                p,
                                &format!("{path}.{side}.selector"),
                                sel,
                                &carried,
                                &mut out,
                            );
                        }
                    }
                    if r.has_source_ports {
                        out.push(Finding {
                            code: FindingCode::SourcePorts,
                            problem: policy_problem(p, &format!("{path}.source.ports"), "constrains source ports, which connlist and diff do not track (treated as matching)".into()),
                        });
                    }
                    if r.action == Action::Pass && Some(self.policies.tier_of(pi)) == last_tier {
                        out.push(Finding {
                            code: FindingCode::PassInLastTier,
                            problem: policy_problem(
                                p,
                                &format!("{path}.action"),
                                format!(
                                    "Pass in the last tier ({}) goes straight to the profiles",
                                    p.tier
                                ),
                            ),
                        });
                    }
                    let shadow = rules[..j].iter().find(|earlier| {
                        earlier.action != Action::Log
                            && (is_catch_all(&earlier.raw) || same_match(&earlier.raw, &r.raw))
                    });
                    if let Some(earlier) = shadow {
                        out.push(Finding {
                            code: FindingCode::Shadowed,
                            problem: policy_problem(p, &path, format!("never decides anything: {field}[{}] ({:?}) matches everything it matches first", earlier.index, earlier.action)),
                        });
                    } else if r.action != Action::Log
                        && let Some(earlier) = rules[..j].iter().find(|earlier| {
                            earlier.action != Action::Log && rule_covers(earlier, r)
                        })
                    {
                        let (code, what) = if earlier.action == r.action {
                            (FindingCode::Redundant, "can be removed")
                        } else {
                            (FindingCode::Shadowed, "never decides anything")
                        };
                        out.push(Finding {
                            code,
                            problem: policy_problem(p, &path, format!("{what}: {field}[{}] ({:?}) matches a superset of its traffic first", earlier.index, earlier.action)),
                        });
                    }
                }
            }
        }
        if let Err(e) = self.connlist() {
            out.extend(e.problems.into_iter().map(|d| Finding {
                code: FindingCode::Connlist,
                problem: d.problem,
            }));
        }
        out.sort_by(|a, b| {
            (&a.problem.file, a.problem.doc_index).cmp(&(&b.problem.file, b.problem.doc_index))
        });
        out
    }
}
