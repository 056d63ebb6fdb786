//! Compiled rules: a Calico rule with its selectors rewritten and interned,
//! its CIDRs split per family and its ports split into numeric and named.

use calico_model::resources::policy::{Action, EntityRule, IcmpFields, Rule};
use calico_model::resources::values::Port;

use crate::addr::{AddrRange, Family};
use crate::conn::PortSet;
use crate::matching::{SelId, SelectorTable};
use crate::rewrite::entity_selectors;

/// One side (source or destination) of a compiled rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct CEntity {
    pub(crate) nets: Vec<AddrRange>,
    pub(crate) not_nets: Vec<AddrRange>,
    pub(crate) pos: Option<SelId>,
    pub(crate) neg: Option<SelId>,
    /// Whether `ports` was set at all.
    pub(crate) has_ports: bool,
    pub(crate) ports: PortSet,
    pub(crate) named: Vec<String>,
    pub(crate) has_not_ports: bool,
    pub(crate) not_ports: PortSet,
    pub(crate) not_named: Vec<String>,
}

impl CEntity {
    fn nets_in(&self, family: Family) -> impl Iterator<Item = &AddrRange> {
        self.nets.iter().filter(move |r| r.family == family)
    }

    fn not_nets_in(&self, family: Family) -> impl Iterator<Item = &AddrRange> {
        self.not_nets.iter().filter(move |r| r.family == family)
    }

    /// False when a CIDR field that was set has no CIDR of `family`.
    fn exists_in(&self, family: Family) -> bool {
        (self.nets.is_empty() || self.nets_in(family).next().is_some())
            && (self.not_nets.is_empty() || self.not_nets_in(family).next().is_some())
    }

    /// Whether `range` (an external address or range) satisfies `nets` and `notNets`.
    pub(crate) fn nets_match_range(&self, family: Family, range: &AddrRange) -> bool {
        (self.nets.is_empty() || self.nets_in(family).any(|n| n.contains_range(range)))
            && !self.not_nets_in(family).any(|n| n.overlaps(range))
    }

    /// Whether a workload satisfies `nets` and `notNets`: by its address when known; without
    /// one, a positive `nets` never matches and `notNets` never excludes it.
    pub(crate) fn nets_match_endpoint(
        &self,
        family: Family,
        addr: Option<std::net::IpAddr>,
    ) -> bool {
        match addr {
            Some(a) => self.nets_match_range(family, &AddrRange::single(a)),
            None => self.nets.is_empty(),
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct CRule {
    /// Index in the policy's (or converted policy's) rule list for its direction.
    pub(crate) index: usize,
    pub(crate) action: Action,
    pub(crate) ip_version: Option<u8>,
    pub(crate) protocol: Option<u8>,
    pub(crate) not_protocol: Option<u8>,
    pub(crate) icmp: Option<IcmpFields>,
    pub(crate) not_icmp: Option<IcmpFields>,
    pub(crate) src: CEntity,
    pub(crate) dst: CEntity,
    /// Source ports are not modelled: their condition is assumed to hold.
    pub(crate) has_source_ports: bool,
    /// The rule as written (or as converted), for analyses.
    pub(crate) raw: Rule,
}

impl CRule {
    /// Whether the rule exists when rendering `family`.
    pub(crate) fn exists_in(&self, family: Family) -> bool {
        if self.ip_version.is_some_and(|v| v != family.version()) {
            return false;
        }
        match self.protocol {
            Some(1) if family != Family::V4 => return false,
            Some(58) if family != Family::V6 => return false,
            _ => {}
        }
        self.src.exists_in(family) && self.dst.exists_in(family)
    }
}

/// A problem compiling a rule: (field path below the rule, message).
pub(crate) type RuleProblem = (String, String);

fn split_ports(ports: &[Port]) -> (PortSet, Vec<String>) {
    let numeric = PortSet::from_ranges(ports.iter().filter_map(Port::range));
    let named = ports
        .iter()
        .filter_map(|p| match p {
            Port::Named(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    (numeric, named)
}

fn compile_entity(
    e: &EntityRule,
    ns: &str,
    table: &mut SelectorTable,
    side: &str,
    problems: &mut Vec<RuleProblem>,
) -> CEntity {
    let mut out = CEntity {
        nets: e.nets.iter().map(AddrRange::of_cidr).collect(),
        not_nets: e.not_nets.iter().map(AddrRange::of_cidr).collect(),
        has_ports: !e.ports.is_empty(),
        has_not_ports: !e.not_ports.is_empty(),
        ..CEntity::default()
    };
    (out.ports, out.named) = split_ports(&e.ports);
    (out.not_ports, out.not_named) = split_ports(&e.not_ports);
    match entity_selectors(ns, e) {
        Ok(sels) => {
            for (text, slot) in [(sels.positive, &mut out.pos), (sels.negative, &mut out.neg)] {
                if let Some(text) = text {
                    match table.intern(&text) {
                        Ok(id) => *slot = Some(id),
                        Err(err) => problems.push((
                            format!("{side}.selector"),
                            format!("rewritten selector {text:?} does not parse: {err}"),
                        )),
                    }
                }
            }
        }
        Err((field, err)) => problems.push((
            format!("{side}.{}", field.path()),
            format!("invalid selector: {err}"),
        )),
    }
    if e.services.is_some() {
        problems.push((
            format!("{side}.services"),
            "service matches are not modelled offline (no EndpointSlices)".to_owned(),
        ));
    }
    out
}

/// Compiles rule `index` of a policy in namespace `ns` (`""` for global policies and
/// profiles). Problems are returned with field paths relative to the rule; a rule with
/// problems is still returned but must not be used.
pub(crate) fn compile_rule(
    rule: &Rule,
    index: usize,
    ns: &str,
    table: &mut SelectorTable,
    problems: &mut Vec<RuleProblem>,
) -> CRule {
    CRule {
        index,
        action: rule.action,
        ip_version: rule.ip_version,
        protocol: rule.protocol.map(|p| p.number()),
        not_protocol: rule.not_protocol.map(|p| p.number()),
        icmp: rule.icmp,
        not_icmp: rule.not_icmp,
        src: compile_entity(&rule.source, ns, table, "source", problems),
        dst: compile_entity(&rule.destination, ns, table, "destination", problems),
        has_source_ports: !rule.source.ports.is_empty() || !rule.source.not_ports.is_empty(),
        raw: rule.clone(),
    }
}
