//! The walk of one endpoint and direction through tiers and profiles (see the crate docs), generic over what is being decided: one
//! packet (`bool`, for `check`) or a set of connections ([`ConnSet`], for `connlist`).

use std::net::IpAddr;

use calico_model::resources::policy::{Action, TierAction};

use crate::addr::{AddrRange, Family};
use crate::conn::{ConnSet, PortProtocol, PortSet};
use crate::matching::SelId;
use crate::model::{Direction, Model};
use crate::rules::{CEntity, CRule};

/// One side of a flow as rule matching sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerSpec {
    /// An endpoint; `addr` is the address the flow uses, `None` to match by selectors only.
    Endpoint {
        /// Endpoint index in the model.
        index: usize,
        /// Address used by the flow, if known.
        addr: Option<IpAddr>,
    },
    /// An address or address range outside the endpoints.
    External(AddrRange),
}

/// What is being decided: a lattice with intersection, union and difference.
pub(crate) trait Space: Clone {
    fn nothing() -> Self;
    fn is_nothing(&self) -> bool;
    fn and(&self, other: &Self) -> Self;
    fn or(&self, other: &Self) -> Self;
    fn minus(&self, other: &Self) -> Self;
}

impl Space for bool {
    fn nothing() -> Self {
        false
    }
    fn is_nothing(&self) -> bool {
        !*self
    }
    fn and(&self, other: &Self) -> Self {
        *self && *other
    }
    fn or(&self, other: &Self) -> Self {
        *self || *other
    }
    fn minus(&self, other: &Self) -> Self {
        *self && !*other
    }
}

impl Space for ConnSet {
    fn nothing() -> Self {
        ConnSet::empty()
    }
    fn is_nothing(&self) -> bool {
        self.is_empty()
    }
    fn and(&self, other: &Self) -> Self {
        self.intersect(other)
    }
    fn or(&self, other: &Self) -> Self {
        self.union(other)
    }
    fn minus(&self, other: &Self) -> Self {
        ConnSet::minus(self, other)
    }
}

/// Where a part of the traffic was decided (or passed through).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A policy rule matched.
    PolicyRule {
        policy: usize,
        rule: usize,
        action: Action,
    },
    /// Traffic reached the end of a tier with policies.
    EndOfTier { tier: usize },
    /// A profile rule matched.
    ProfileRule {
        profile: String,
        rule: usize,
        action: Action,
    },
    /// The endpoint names a profile that does not exist (stand-in deny).
    MissingProfile { profile: String },
    /// Nothing in the profiles decided: drop.
    NoProfileMatched,
}

impl Model {
    fn selector_matches(&self, sel: SelId, peer: &PeerSpec, family: Family) -> bool {
        match *peer {
            PeerSpec::Endpoint { index, addr } => {
                self.selectors.matches_endpoint(sel, index)
                    || addr.is_some_and(|a| self.addr_in_selector_set(sel, a, index))
            }
            PeerSpec::External(range) => self.network_sets.iter().enumerate().any(|(i, n)| {
                self.selectors.matches_network_set(sel, i)
                    && n.nets
                        .iter()
                        .any(|r| r.family == family && r.contains_range(&range))
            }),
        }
    }

    /// Kernel-exact membership of an endpoint's address in a selector's IP set: another
    /// endpoint with the same address, or a network set containing it, may put it there.
    fn addr_in_selector_set(&self, sel: SelId, addr: IpAddr, except: usize) -> bool {
        let single = AddrRange::single(addr);
        self.endpoints.iter().enumerate().any(|(i, e)| {
            i != except && e.addrs.contains(&addr) && self.selectors.matches_endpoint(sel, i)
        }) || self.network_sets.iter().enumerate().any(|(i, n)| {
            self.selectors.matches_network_set(sel, i)
                && n.nets.iter().any(|r| r.contains_range(&single))
        })
    }

    /// Whether `peer` satisfies the address conditions of one side of a rule (nets,
    /// notNets, selector, notSelector; namespace and service-account conditions are folded
    /// into the selectors).
    pub(crate) fn entity_matches(&self, e: &CEntity, peer: &PeerSpec, family: Family) -> bool {
        let nets_ok = match peer {
            PeerSpec::Endpoint { addr, .. } => e.nets_match_endpoint(family, *addr),
            PeerSpec::External(r) => e.nets_match_range(family, r),
        };
        nets_ok
            && e.pos.is_none_or(|s| self.selector_matches(s, peer, family))
            && e.neg
                .is_none_or(|s| !self.selector_matches(s, peer, family))
    }

    /// Ports of protocol `proto` named `names` on `peer`, as a set: a rule's named-port set
    /// holds (address, protocol, port) of the endpoints that match the rule's
    /// positive selector **by their labels** (or every endpoint without one) and declare the
    /// name. With a known address, any such endpoint holding that address counts; without
    /// one, the peer's own declared ports. Never anything for an external address.
    fn named_port_set(
        &self,
        names: &[String],
        pos: Option<SelId>,
        peer: &PeerSpec,
        proto: u8,
    ) -> PortSet {
        let PeerSpec::Endpoint { index, addr } = *peer else {
            return PortSet::empty();
        };
        if names.is_empty() {
            return PortSet::empty();
        }
        let declares = |i: usize| -> Vec<(u16, u16)> {
            if pos.is_some_and(|s| !self.selectors.matches_endpoint(s, i)) {
                return Vec::new();
            }
            self.endpoints[i]
                .ports
                .iter()
                .filter(|p| p.protocol == proto && names.contains(&p.name))
                .map(|p| (p.port, p.port))
                .collect()
        };
        match addr {
            Some(a) => PortSet::from_ranges(
                (0..self.endpoints.len())
                    .filter(|&i| i == index || self.endpoints[i].addrs.contains(&a))
                    .flat_map(declares),
            ),
            None if index < self.endpoints.len() => PortSet::from_ranges(declares(index)),
            None => PortSet::empty(),
        }
    }

    /// Destination ports of protocol `proto` the rule admits toward `dst`.
    fn dst_ports(&self, e: &CEntity, dst: &PeerSpec, proto: u8) -> PortSet {
        let mut set = if e.has_ports {
            e.ports
                .union(&self.named_port_set(&e.named, e.pos, dst, proto))
        } else {
            PortSet::full()
        };
        if e.has_not_ports {
            set = set.minus(&e.not_ports).minus(&self.named_port_set(
                &e.not_named,
                e.pos,
                dst,
                proto,
            ));
        }
        set
    }

    /// The peers seen by a rule's source and destination sides.
    fn sides<'p>(
        dir: Direction,
        endpoint: &'p PeerSpec,
        other: &'p PeerSpec,
    ) -> (&'p PeerSpec, &'p PeerSpec) {
        match dir {
            Direction::Ingress => (other, endpoint),
            Direction::Egress => (endpoint, other),
        }
    }

    /// The TCP/UDP/SCTP connections a rule matches between `src` and `dst` (other protocols
    /// are not modelled; source ports are assumed to match).
    pub(crate) fn rule_conns(
        &self,
        r: &CRule,
        src: &PeerSpec,
        dst: &PeerSpec,
        family: Family,
    ) -> ConnSet {
        if !r.exists_in(family)
            || r.icmp.is_some()
            || r.not_icmp.is_some()
            || !self.entity_matches(&r.src, src, family)
            || !self.entity_matches(&r.dst, dst, family)
        {
            return ConnSet::empty();
        }
        self.rule_conns_unchecked(r, dst)
    }

    /// The connections of a rule assuming both sides match, with named ports resolved on
    /// `dst`.
    pub(crate) fn rule_conns_unchecked(&self, r: &CRule, dst: &PeerSpec) -> ConnSet {
        let mut out = ConnSet::empty();
        for p in PortProtocol::ALL {
            let n = p.number();
            if r.protocol.is_some_and(|x| x != n) || r.not_protocol == Some(n) {
                continue;
            }
            out.set_ports(p, self.dst_ports(&r.dst, dst, n));
        }
        out
    }

    /// Whether a rule matches one packet.
    pub(crate) fn rule_matches_packet(
        &self,
        r: &CRule,
        src: &PeerSpec,
        dst: &PeerSpec,
        family: Family,
        packet: &Packet,
    ) -> bool {
        if !r.exists_in(family) {
            return false;
        }
        if r.protocol.is_some_and(|p| p != packet.protocol)
            || r.not_protocol == Some(packet.protocol)
        {
            return false;
        }
        let is_icmp = packet.protocol == family.icmp_protocol();
        if let Some(i) = r.icmp {
            let type_ok = i.icmp_type.is_none_or(|t| packet.icmp_type == Some(t));
            let code_ok = i.code.is_none_or(|c| packet.icmp_code == Some(c));
            if !is_icmp || !type_ok || !code_ok {
                return false;
            }
        }
        if let Some(n) = r.not_icmp {
            // Matches ICMP packets that are not (type T and code C).
            if !is_icmp {
                return false;
            }
            let same_type = n.icmp_type.is_some_and(|t| packet.icmp_type == Some(t));
            let same_code = n.code.is_none_or(|c| packet.icmp_code == Some(c));
            if n.icmp_type.is_some() && same_type && same_code {
                return false;
            }
        }
        let with_ports = PortProtocol::from_number(packet.protocol).is_some();
        if r.dst.has_ports || r.dst.has_not_ports {
            let Some(port) = packet.port.filter(|_| with_ports) else {
                return false;
            };
            if !self.dst_ports(&r.dst, dst, packet.protocol).contains(port) {
                return false;
            }
        }
        if r.has_source_ports && !with_ports {
            return false;
        }
        self.entity_matches(&r.src, src, family) && self.entity_matches(&r.dst, dst, family)
    }

    /// Walks the tiers and profiles of `endpoint` in `dir`. `matched`
    /// gives the part of the space a rule matches; `step` sees each decision with the part it
    /// took. Returns the allowed part.
    pub(crate) fn walk<S: Space>(
        &self,
        endpoint: usize,
        dir: Direction,
        universe: S,
        matched: &mut dyn FnMut(&CRule) -> S,
        step: &mut dyn FnMut(Step, &S),
    ) -> S {
        let mut remaining = universe;
        let mut allowed = S::nothing();
        let applying = self.applying(endpoint, dir);
        let mut i = 0;
        while i < applying.len() {
            let tier = self.policies.tier_of(applying[i]);
            let mut passed = S::nothing();
            while i < applying.len() && self.policies.tier_of(applying[i]) == tier {
                let pi = applying[i];
                i += 1;
                for r in &self.policies[pi].rules[dir] {
                    if remaining.is_nothing() {
                        break;
                    }
                    let m = matched(r).and(&remaining);
                    if m.is_nothing() {
                        continue;
                    }
                    step(
                        Step::PolicyRule {
                            policy: pi,
                            rule: r.index,
                            action: r.action,
                        },
                        &m,
                    );
                    match r.action {
                        Action::Allow => {
                            allowed = allowed.or(&m);
                            remaining = remaining.minus(&m);
                        }
                        Action::Deny => remaining = remaining.minus(&m),
                        Action::Pass => {
                            passed = passed.or(&m);
                            remaining = remaining.minus(&m);
                        }
                        Action::Log => {}
                    }
                }
            }
            let tail = remaining;
            if !tail.is_nothing() {
                step(Step::EndOfTier { tier }, &tail);
            }
            let pass_on = self
                .policies
                .tiers()
                .get(tier)
                .is_some_and(|t| t.default_action == TierAction::Pass);
            remaining = if pass_on { passed.or(&tail) } else { passed };
        }
        let names = self
            .endpoints
            .get(endpoint)
            .map(|e| e.profiles.as_slice())
            .unwrap_or(&[]);
        let resolved = self.endpoints.profiles(endpoint);
        for (name, entry) in names.iter().zip(resolved) {
            if remaining.is_nothing() {
                break;
            }
            let Some(p) = entry else {
                step(
                    Step::MissingProfile {
                        profile: name.clone(),
                    },
                    &remaining,
                );
                return allowed;
            };
            let rules = match dir {
                Direction::Ingress => &p.ingress,
                Direction::Egress => &p.egress,
            };
            let mut passed = S::nothing();
            for r in rules {
                if remaining.is_nothing() {
                    break;
                }
                let m = matched(r).and(&remaining);
                if m.is_nothing() {
                    continue;
                }
                step(
                    Step::ProfileRule {
                        profile: name.clone(),
                        rule: r.index,
                        action: r.action,
                    },
                    &m,
                );
                match r.action {
                    Action::Allow => {
                        allowed = allowed.or(&m);
                        remaining = remaining.minus(&m);
                    }
                    Action::Deny => remaining = remaining.minus(&m),
                    Action::Pass => {
                        passed = passed.or(&m);
                        remaining = remaining.minus(&m);
                    }
                    Action::Log => {}
                }
            }
            remaining = passed.or(&remaining);
        }
        if !remaining.is_nothing() {
            step(Step::NoProfileMatched, &remaining);
        }
        allowed
    }

    /// The connections `endpoint` allows in `dir` with `other` (connlist semantics when the
    /// peers carry no addresses).
    pub(crate) fn direction_conns(
        &self,
        endpoint: usize,
        dir: Direction,
        ep_peer: &PeerSpec,
        other: &PeerSpec,
        family: Family,
    ) -> ConnSet {
        let (src, dst) = Self::sides(dir, ep_peer, other);
        self.walk(
            endpoint,
            dir,
            ConnSet::all(),
            &mut |r| self.rule_conns(r, src, dst, family),
            &mut |_, _| {},
        )
    }

    /// Decides one packet for `endpoint` in `dir`, recording the steps.
    pub(crate) fn direction_packet(
        &self,
        endpoint: usize,
        dir: Direction,
        ep_peer: &PeerSpec,
        other: &PeerSpec,
        family: Family,
        packet: &Packet,
    ) -> (bool, Vec<Step>) {
        let (src, dst) = Self::sides(dir, ep_peer, other);
        let mut steps = Vec::new();
        let allowed = self.walk(
            endpoint,
            dir,
            true,
            &mut |r| self.rule_matches_packet(r, src, dst, family, packet),
            &mut |s, _| steps.push(s),
        );
        (allowed, steps)
    }
}

/// One packet: protocol, destination port, ICMP type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Packet {
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port (protocols with ports).
    pub port: Option<u16>,
    /// ICMP type.
    pub icmp_type: Option<u8>,
    /// ICMP code.
    pub icmp_code: Option<u8>,
}
