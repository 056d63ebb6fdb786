//! The compiled form of the policy of a cluster: per endpoint and direction, an ordered rule
//! program over **address sets** — the intermediate representation renderers (nftables,
//! iptables) consume.
//!
//! - Every rule selector becomes a [`SetDef::Selector`] holding the addresses of the endpoints
//!   and the CIDRs of the network sets it matches; every named port becomes a
//!   [`SetDef::NamedPort`] of (address, protocol, port) members. Sets are shared by every rule
//!   that uses them and keyed by [`SetId`] (`s:<selector id>` / `n:<selector id>:<protocol>:<name>`).
//! - A [`PolicyProgram`] is one policy's rules for one direction, shared by every endpoint it
//!   applies to; an [`EndpointProgram`] lists, per tier, the policies to run and what the end of
//!   the tier does, then the profiles.
//! - Matching on the IR is by address only, exactly as the kernel matches: [`Program::evaluate`]
//!   is a reference interpreter of the IR (used to check it against [`Model::check`]).
//!
//! Source ports are not part of the IR yet (as in `check`, they are assumed to match).

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::resources::policy::{Action, IcmpFields, TierAction};

use crate::addr::{AddrRange, Family};
use crate::conn::PortSet;
use crate::direction::{Direction, PerDirection};
use crate::eval::Packet;
use crate::matching::SelId;
use crate::model::{Endpoint, EndpointKey, Model, PolicyId};
use crate::rules::{CEntity, CRule};

/// The key of an address set in [`Program::sets`]: `<selector id>` for a selector set,
/// `n:<selector id>:<protocol number or *>:<port name>` for a named-port set.
///
/// Ids are stable across compilations of the same selectors and port names, so
/// [`Program::changes`] can compare two programs set by set. Renderers derive their own set
/// names from them (the `nft` renderer, for one); the text of an id is for display and hashing only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(String);

impl SetId {
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn new(id: String) -> SetId {
        SetId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SetId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SetId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// An address set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetDef {
    /// Addresses of what a selector matches: endpoint addresses and network-set CIDRs.
    Selector {
        /// The selector's canonical string.
        selector: String,
        /// Members.
        members: Vec<AddrRange>,
    },
    /// (address, protocol, port) of every endpoint matching `selector` that declares a port
    /// named `name` (with protocol `protocol` when set).
    NamedPort {
        /// The canonical selector (`all()` when the rule has none).
        selector: String,
        /// Protocol restriction.
        protocol: Option<u8>,
        /// Port name.
        name: String,
        /// Members.
        members: Vec<(IpAddr, u8, u16)>,
    },
}

/// One side of a compiled rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IrMatch {
    /// Address in one of these (when non-empty).
    pub nets: Vec<AddrRange>,
    /// Address in none of these.
    pub not_nets: Vec<AddrRange>,
    /// Address in this selector set.
    pub set: Option<SetId>,
    /// Address not in this selector set.
    pub not_set: Option<SetId>,
    /// Whether destination ports are constrained.
    pub has_ports: bool,
    /// Numeric ports.
    pub ports: PortSet,
    /// Named-port sets (ORed with `ports`).
    pub named_ports: Vec<SetId>,
    /// Whether negated ports are present.
    pub has_not_ports: bool,
    /// Negated numeric ports.
    pub not_ports: PortSet,
    /// Negated named-port sets.
    pub not_named_ports: Vec<SetId>,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IrRule {
    /// Index of the rule in its policy's rules for this direction.
    pub index: usize,
    /// Action.
    pub action: Action,
    /// Families the rule exists in: `[IPv4, IPv6]`.
    pub families: [bool; 2],
    /// Protocol number.
    pub protocol: Option<u8>,
    /// Negated protocol number.
    pub not_protocol: Option<u8>,
    /// ICMP type/code.
    pub icmp: Option<IcmpFields>,
    /// Negated ICMP type/code (matches ICMP packets that are not (type ∧ code)).
    pub not_icmp: Option<IcmpFields>,
    /// Source side.
    pub src: IrMatch,
    /// Destination side.
    pub dst: IrMatch,
}

/// One policy's rules for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyProgram {
    /// The policy.
    pub policy: PolicyId,
    /// The rules, in order.
    pub rules: Vec<IrRule>,
}

/// A tier as run for one endpoint and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierProgram {
    /// Tier name.
    pub tier: String,
    /// The policies to run, in order: with the direction of the endpoint program, keys into
    /// [`Program::policies`].
    pub policies: Vec<PolicyId>,
    /// What happens to traffic no rule decided: `Deny` (drop) or `Pass` (next tier).
    pub end: TierAction,
}

/// The program of one endpoint and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointProgram {
    /// Tiers with at least one policy for this direction, in order.
    pub tiers: Vec<TierProgram>,
    /// Profiles in order; `None` when the profile does not exist (drop).
    pub profiles: Vec<(String, Option<String>)>,
}

/// The compiled cluster, keyed by identities (never by positions): compiling the same
/// manifests gives the same program however the model was reached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Program {
    /// Address sets by key.
    pub sets: BTreeMap<SetId, SetDef>,
    /// Policy programs by (policy, direction).
    pub policies: BTreeMap<(PolicyId, Direction), PolicyProgram>,
    /// Profile programs by (name, direction).
    pub profiles: BTreeMap<(String, Direction), Vec<IrRule>>,
    /// Per endpoint, its program in each direction; see [`Program::endpoint_program`].
    pub endpoints: BTreeMap<EndpointKey, PerDirection<EndpointProgram>>,
}

impl Model {
    /// The members of the address set of selector `sel`.
    pub(crate) fn selector_members(&self, sel: SelId) -> Vec<AddrRange> {
        let mut members: Vec<AddrRange> = Vec::new();
        for i in self.selectors.matching_endpoints(sel) {
            if let Some(e) = self.endpoints.get(i) {
                members.extend(e.addrs.iter().map(|a| AddrRange::single(*a)));
            }
        }
        for (i, n) in self.network_sets.iter().enumerate() {
            if self.selectors.matches_network_set(sel, i) {
                members.extend(n.nets.iter().copied());
            }
        }
        members.sort();
        members.dedup();
        members
    }

    fn selector_set(&self, sel: SelId, sets: &mut BTreeMap<SetId, SetDef>) -> Option<SetId> {
        let s = self.selectors.get(sel)?;
        let id = SetId(s.unique_id());
        sets.entry(id.clone()).or_insert_with(|| SetDef::Selector {
            selector: s.canonical().to_owned(),
            members: self.selector_members(sel),
        });
        Some(id)
    }

    /// The members of a named-port set: (address, protocol, port) of every endpoint matching
    /// `sel` (every endpoint when `None`) that declares port `name` (with `protocol`).
    pub(crate) fn named_port_members(
        &self,
        sel: Option<SelId>,
        protocol: Option<u8>,
        name: &str,
    ) -> Vec<(IpAddr, u8, u16)> {
        let mut members = Vec::new();
        let endpoints: Box<dyn Iterator<Item = usize>> = match sel {
            Some(s) => Box::new(self.selectors.matching_endpoints(s)),
            None => Box::new(0..self.endpoints.len()),
        };
        for e in endpoints.filter_map(|i| self.endpoints.get(i)) {
            for p in &e.ports {
                if p.name == name && protocol.is_none_or(|x| x == p.protocol) {
                    members.extend(e.addrs.iter().map(|a| (*a, p.protocol, p.port)));
                }
            }
        }
        members.sort();
        members.dedup();
        members
    }

    fn named_port_set_def(
        &self,
        sel: Option<SelId>,
        protocol: Option<u8>,
        name: &str,
        sets: &mut BTreeMap<SetId, SetDef>,
    ) -> SetId {
        let (sel_id, canonical) = match sel.and_then(|s| self.selectors.get(s)) {
            Some(s) => (s.unique_id(), s.canonical().to_owned()),
            None => ("all".to_owned(), "all()".to_owned()),
        };
        let id = SetId(format!(
            "n:{sel_id}:{}:{name}",
            protocol.map_or_else(|| "*".to_owned(), |p| p.to_string())
        ));
        sets.entry(id.clone()).or_insert_with(|| SetDef::NamedPort {
            members: self.named_port_members(sel, protocol, name),
            selector: canonical,
            protocol,
            name: name.to_owned(),
        });
        id
    }

    fn compile_match(
        &self,
        e: &CEntity,
        protocol: Option<u8>,
        sets: &mut BTreeMap<SetId, SetDef>,
    ) -> IrMatch {
        IrMatch {
            nets: e.nets.clone(),
            not_nets: e.not_nets.clone(),
            set: e.pos.and_then(|s| self.selector_set(s, sets)),
            not_set: e.neg.and_then(|s| self.selector_set(s, sets)),
            has_ports: e.has_ports,
            ports: e.ports.clone(),
            named_ports: e
                .named
                .iter()
                .map(|n| self.named_port_set_def(e.pos, protocol, n, sets))
                .collect(),
            has_not_ports: e.has_not_ports,
            not_ports: e.not_ports.clone(),
            not_named_ports: e
                .not_named
                .iter()
                .map(|n| self.named_port_set_def(e.pos, protocol, n, sets))
                .collect(),
        }
    }

    fn compile_rule(&self, r: &CRule, sets: &mut BTreeMap<SetId, SetDef>) -> IrRule {
        IrRule {
            index: r.index,
            action: r.action,
            families: [r.exists_in(Family::V4), r.exists_in(Family::V6)],
            protocol: r.protocol,
            not_protocol: r.not_protocol,
            icmp: r.icmp,
            not_icmp: r.not_icmp,
            src: self.compile_match(&r.src, r.protocol, sets),
            dst: self.compile_match(&r.dst, r.protocol, sets),
        }
    }

    /// The programs of policy `pi` for each direction it applies to (none for staged and
    /// host-only policies), adding the sets they use to `sets`.
    pub(crate) fn policy_programs(
        &self,
        pi: usize,
        sets: &mut BTreeMap<SetId, SetDef>,
    ) -> Vec<(Direction, PolicyProgram)> {
        let Some(p) = self.policies.get(pi) else {
            return Vec::new();
        };
        if p.staged || p.host_only {
            return Vec::new();
        }
        [Direction::Ingress, Direction::Egress]
            .into_iter()
            .filter(|dir| p.types[*dir])
            .map(|dir| {
                let rules = p.rules[dir]
                    .iter()
                    .map(|r| self.compile_rule(r, sets))
                    .collect();
                (
                    dir,
                    PolicyProgram {
                        policy: p.id.clone(),
                        rules,
                    },
                )
            })
            .collect()
    }

    /// The program of endpoint `ei` in `dir`.
    pub(crate) fn endpoint_program(&self, ei: usize, dir: Direction) -> EndpointProgram {
        let mut tiers: Vec<TierProgram> = Vec::new();
        for &pi in self.applying(ei, dir).iter() {
            let Some(p) = self.policies.get(pi) else {
                continue;
            };
            let tier = self.policies.tier_entry_of(pi);
            let name = tier.map_or("", |t| t.name.as_str());
            match tiers.last_mut() {
                Some(last) if last.tier == name => last.policies.push(p.id.clone()),
                _ => tiers.push(TierProgram {
                    tier: name.to_owned(),
                    policies: vec![p.id.clone()],
                    end: tier.map_or(TierAction::Deny, |t| t.default_action),
                }),
            }
        }
        EndpointProgram {
            tiers,
            profiles: self.endpoints.get(ei).map_or_else(Vec::new, |e| {
                e.profiles
                    .iter()
                    .map(|p| (p.clone(), self.profiles.contains_key(p).then(|| p.clone())))
                    .collect()
            }),
        }
    }

    /// Compiles every endpoint's program (all directions) with the sets they use.
    pub fn compile(&self) -> Program {
        self.compile_where(|_| true)
    }

    /// [`Model::compile`] with the programs of only the endpoints `keep` accepts (the
    /// policies, profiles and sets are all compiled): what one node needs of a large
    /// cluster.
    pub fn compile_where(&self, keep: impl Fn(&Endpoint) -> bool) -> Program {
        let mut prog = Program::default();
        for pi in 0..self.policies.len() {
            for (dir, pp) in self.policy_programs(pi, &mut prog.sets) {
                prog.policies.entry((pp.policy.clone(), dir)).or_insert(pp);
            }
        }
        let mut names: Vec<&String> = self.profiles.keys().collect();
        names.sort();
        for name in names {
            if let Some(p) = self.profiles.get(name) {
                for (dir, rules) in [
                    (Direction::Ingress, &p.ingress),
                    (Direction::Egress, &p.egress),
                ] {
                    let rules = rules
                        .iter()
                        .map(|r| self.compile_rule(r, &mut prog.sets))
                        .collect();
                    prog.profiles.insert((name.clone(), dir), rules);
                }
            }
        }
        for (ei, e) in self.endpoints.iter().enumerate() {
            // The first endpoint of a key stands for it.
            let key = e.key();
            if !keep(e) || self.endpoints.position(&key) != Some(ei) {
                continue;
            }
            prog.endpoints.insert(
                key,
                PerDirection::from_fn(|dir| self.endpoint_program(ei, dir)),
            );
        }
        prog
    }
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Program {
    /// The program of endpoint `endpoint` for `dir`; `None` when there is no such endpoint.
    pub fn endpoint_program(
        &self,
        endpoint: &EndpointKey,
        dir: Direction,
    ) -> Option<&EndpointProgram> {
        self.endpoints.get(endpoint).map(|p| &p[dir])
    }

    fn in_selector_set(&self, id: &SetId, addr: IpAddr) -> bool {
        match self.sets.get(id) {
            Some(SetDef::Selector { members, .. }) => members.iter().any(|m| m.contains_ip(addr)),
            _ => false,
        }
    }

    fn in_named_set(&self, id: &SetId, addr: IpAddr, proto: u8, port: u16) -> bool {
        match self.sets.get(id) {
            Some(SetDef::NamedPort { members, .. }) => members.contains(&(addr, proto, port)),
            _ => false,
        }
    }

    fn side_matches(
        &self,
        m: &IrMatch,
        addr: IpAddr,
        family: Family,
        packet: &Packet,
        dst: bool,
    ) -> bool {
        let single = AddrRange::single(addr);
        let fam = |r: &&AddrRange| r.family == family;
        if !m.nets.is_empty() && !m.nets.iter().filter(fam).any(|n| n.contains_range(&single)) {
            return false;
        }
        if m.not_nets
            .iter()
            .filter(fam)
            .any(|n| n.contains_range(&single))
        {
            return false;
        }
        if m.not_set
            .as_ref()
            .is_some_and(|s| self.in_selector_set(s, addr))
        {
            return false;
        }
        let named_only = dst && m.has_ports && m.ports.is_empty() && !m.named_ports.is_empty();
        if !named_only
            && m.set
                .as_ref()
                .is_some_and(|s| !self.in_selector_set(s, addr))
        {
            return false;
        }
        if !dst {
            return true;
        }
        let with_ports = matches!(packet.protocol, 6 | 17 | 132);
        if m.has_ports {
            let Some(p) = packet.port.filter(|_| with_ports) else {
                return false;
            };
            let ok = m.ports.contains(p)
                || m.named_ports
                    .iter()
                    .any(|s| self.in_named_set(s, addr, packet.protocol, p));
            if !ok {
                return false;
            }
        }
        if m.has_not_ports {
            let Some(p) = packet.port.filter(|_| with_ports) else {
                return false;
            };
            if m.not_ports.contains(p)
                || m.not_named_ports
                    .iter()
                    .any(|s| self.in_named_set(s, addr, packet.protocol, p))
            {
                return false;
            }
        }
        true
    }

    fn rule_matches(&self, r: &IrRule, src: IpAddr, dst: IpAddr, packet: &Packet) -> bool {
        let family = Family::of(src);
        if !r.families[family_index(family)] {
            return false;
        }
        if r.protocol.is_some_and(|p| p != packet.protocol)
            || r.not_protocol == Some(packet.protocol)
        {
            return false;
        }
        let is_icmp = packet.protocol == family.icmp_protocol();
        if let Some(i) = r.icmp {
            if !is_icmp
                || i.icmp_type.is_some_and(|t| packet.icmp_type != Some(t))
                || i.code.is_some_and(|c| packet.icmp_code != Some(c))
            {
                return false;
            }
        }
        if let Some(n) = r.not_icmp {
            if !is_icmp {
                return false;
            }
            let same_type = n.icmp_type.is_some() && n.icmp_type == packet.icmp_type;
            let same_code = n.code.is_none_or(|c| packet.icmp_code == Some(c));
            if same_type && same_code {
                return false;
            }
        }
        self.side_matches(&r.src, src, family, packet, false)
            && self.side_matches(&r.dst, dst, family, packet, true)
    }

    /// Runs the program of `endpoint` in `dir` on one packet from `src` to `dst` (reference
    /// interpreter of the IR). Returns whether the packet is accepted.
    pub fn evaluate(
        &self,
        endpoint: &EndpointKey,
        dir: Direction,
        src: IpAddr,
        dst: IpAddr,
        packet: &Packet,
    ) -> bool {
        let Some(ep) = self.endpoint_program(endpoint, dir) else {
            return false;
        };
        'tiers: for tier in &ep.tiers {
            for id in &tier.policies {
                let Some(p) = self.policies.get(&(id.clone(), dir)) else {
                    continue;
                };
                for r in &p.rules {
                    if !self.rule_matches(r, src, dst, packet) {
                        continue;
                    }
                    match r.action {
                        Action::Allow => return true,
                        Action::Deny => return false,
                        Action::Pass => continue 'tiers,
                        Action::Log => {}
                    }
                }
            }
            if tier.end == TierAction::Deny {
                return false;
            }
        }
        'profiles: for (name, resolved) in &ep.profiles {
            if resolved.is_none() {
                return false;
            }
            let Some(rules) = self.profiles.get(&(name.clone(), dir)) else {
                return false;
            };
            for r in rules {
                if !self.rule_matches(r, src, dst, packet) {
                    continue;
                }
                match r.action {
                    Action::Allow => return true,
                    Action::Deny => return false,
                    Action::Pass => continue 'profiles,
                    Action::Log => {}
                }
            }
        }
        false
    }
}

/// What differs between two compiled programs (for a renderer: which sets, policy chains
/// and endpoint programs to rewrite).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProgramChanges {
    /// Sets only in the newer program.
    pub sets_added: Vec<SetId>,
    /// Sets only in the older program.
    pub sets_removed: Vec<SetId>,
    /// Sets in both whose members differ.
    pub sets_changed: Vec<SetId>,
    /// Policy programs (by policy and direction) added, removed or changed.
    pub policies_changed: Vec<(PolicyId, Direction)>,
    /// Profile programs added, removed or changed.
    pub profiles_changed: Vec<(String, Direction)>,
    /// Endpoint programs whose tier or profile lists changed or that are new.
    pub endpoints_changed: Vec<(EndpointKey, Direction)>,
    /// Endpoints of the older program that the newer one no longer has.
    pub endpoints_removed: Vec<EndpointKey>,
    /// For sets of `sets_changed` whose change is known member by member (the incremental
    /// compiler's endpoint updates), the members added and removed. A changed set without an
    /// entry here changed in some way only a comparison of its members tells.
    pub member_deltas: BTreeMap<SetId, MemberDelta>,
    /// Sets of a sum ([`ProgramChanges::absorb`]) changed at least once without a delta.
    inexact: std::collections::BTreeSet<SetId>,
}

/// Members added to and removed from one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChanges<T> {
    /// Members the set did not hold and now holds.
    pub added: Vec<T>,
    /// Members the set held and no longer holds.
    pub removed: Vec<T>,
}

impl<T> Default for MemberChanges<T> {
    fn default() -> Self {
        MemberChanges {
            added: Vec::new(),
            removed: Vec::new(),
        }
    }
}

impl<T: PartialEq> MemberChanges<T> {
    /// Whether nothing was added or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// These changes followed by `later` (a member added then removed is no change).
    fn then(&mut self, later: MemberChanges<T>)
    where
        T: Eq + std::hash::Hash + Clone,
    {
        let later_removed: std::collections::HashSet<T> = later.removed.iter().cloned().collect();
        let later_added: std::collections::HashSet<T> = later.added.iter().cloned().collect();
        let added_before: std::collections::HashSet<T> = self.added.iter().cloned().collect();
        let removed_before: std::collections::HashSet<T> = self.removed.iter().cloned().collect();
        self.added.retain(|m| !later_removed.contains(m));
        self.removed.retain(|m| !later_added.contains(m));
        self.removed.extend(
            later
                .removed
                .into_iter()
                .filter(|m| !added_before.contains(m)),
        );
        self.added.extend(
            later
                .added
                .into_iter()
                .filter(|m| !removed_before.contains(m)),
        );
    }
}

/// The member-by-member change of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberDelta {
    /// Of a [`SetDef::Selector`] set.
    Addrs(MemberChanges<AddrRange>),
    /// Of a [`SetDef::NamedPort`] set.
    NamedPorts(MemberChanges<(IpAddr, u8, u16)>),
}

impl ProgramChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == ProgramChanges::default()
    }

    /// Adds the changes of a later update, so that one set of changes describes several
    /// updates in a row (a renderer that batches updates renders once from the sum; lists may
    /// repeat entries). Member
    /// deltas compose; a set whose later change is not known member by member loses its
    /// delta.
    pub fn absorb(&mut self, later: ProgramChanges) {
        let ProgramChanges {
            sets_added,
            sets_removed,
            sets_changed,
            policies_changed,
            profiles_changed,
            endpoints_changed,
            endpoints_removed,
            mut member_deltas,
            inexact: _,
        } = later;
        for id in sets_added.iter().chain(&sets_removed) {
            self.member_deltas.remove(id);
            self.inexact.insert(id.clone());
        }
        for id in &sets_changed {
            let later_delta = member_deltas.remove(id);
            if self.inexact.contains(id) {
                continue;
            }
            let composed = match (self.member_deltas.remove(id), later_delta) {
                // Not changed before in this sum.
                (None, Some(d)) if !self.sets_changed.contains(id) => Some(d),
                (Some(MemberDelta::Addrs(mut a)), Some(MemberDelta::Addrs(b))) => {
                    a.then(b);
                    Some(MemberDelta::Addrs(a))
                }
                (Some(MemberDelta::NamedPorts(mut a)), Some(MemberDelta::NamedPorts(b))) => {
                    a.then(b);
                    Some(MemberDelta::NamedPorts(a))
                }
                _ => None,
            };
            match composed {
                Some(d) => {
                    self.member_deltas.insert(id.clone(), d);
                }
                None => {
                    self.inexact.insert(id.clone());
                }
            }
        }
        self.sets_added.extend(sets_added);
        self.sets_removed.extend(sets_removed);
        self.sets_changed.extend(sets_changed);
        self.policies_changed.extend(policies_changed);
        self.profiles_changed.extend(profiles_changed);
        self.endpoints_changed.extend(endpoints_changed);
        self.endpoints_removed.extend(endpoints_removed);
    }

    /// Sorts and deduplicates every list.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn finish(&mut self) {
        for v in [
            &mut self.sets_added,
            &mut self.sets_removed,
            &mut self.sets_changed,
        ] {
            v.sort();
            v.dedup();
        }
        self.policies_changed.sort();
        self.policies_changed.dedup();
        self.profiles_changed.sort();
        self.profiles_changed.dedup();
        self.endpoints_changed.sort();
        self.endpoints_changed.dedup();
        self.endpoints_removed.sort();
        self.endpoints_removed.dedup();
    }
}

/// The keys only in `new`, only in `old`, and in both with different values.
fn keyed_changes<K: Ord + Clone, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> (Vec<K>, Vec<K>, Vec<K>) {
    let added = new
        .keys()
        .filter(|k| !old.contains_key(k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

impl Program {
    /// What changed from `self` (older) to `newer`, by identity: a change of one resource
    /// shows up as the sets, policy programs and endpoint programs it affects.
    pub fn changes(&self, newer: &Program) -> ProgramChanges {
        let (sets_added, sets_removed, sets_changed) = keyed_changes(&self.sets, &newer.sets);
        let (a, r, c) = keyed_changes(&self.policies, &newer.policies);
        let mut policies_changed: Vec<(PolicyId, Direction)> =
            a.into_iter().chain(r).chain(c).collect();
        policies_changed.sort();
        let (a, r, c) = keyed_changes(&self.profiles, &newer.profiles);
        let mut profiles_changed: Vec<(String, Direction)> =
            a.into_iter().chain(r).chain(c).collect();
        profiles_changed.sort();
        let mut endpoints_changed = Vec::new();
        for (key, progs) in &newer.endpoints {
            for (dir, new) in progs.iter() {
                if self.endpoint_program(key, dir) != Some(new) {
                    endpoints_changed.push((key.clone(), dir));
                }
            }
        }
        ProgramChanges {
            sets_added,
            sets_removed,
            sets_changed,
            policies_changed,
            profiles_changed,
            endpoints_changed,
            endpoints_removed: self
                .endpoints
                .keys()
                .filter(|k| !newer.endpoints.contains_key(k))
                .cloned()
                .collect(),
            member_deltas: BTreeMap::new(),
            inexact: std::collections::BTreeSet::new(),
        }
    }
}
