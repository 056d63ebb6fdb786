//! Translation of the policy crate's structured ruleset ([`calico_nft`]) into kernel
//! objects and expressions, and [`NftDataplane`], which applies whole rulesets and deltas.

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_nft as m;
use ipnet::IpNet;

use super::apply::{ApplyStats, Drift, NftApplier};
use super::batch::{
    Batch, KElem, encode_exprs, kernel_elements, lone_interval_elements, rule_digest,
};
use super::error::{ApplyError, ReadError};
use super::expr::{CmpOp, Expr, KernelVerdict, MetaKey, Reg};
use super::matches as x;
use super::objects::{BaseChain, Chain, Element, Hook, Rule, Set, Table, datatype};
use super::state::{ChainState, SetState};

fn verdict(v: &m::Verdict) -> KernelVerdict {
    match v {
        m::Verdict::Accept => KernelVerdict::Accept,
        m::Verdict::Drop => KernelVerdict::Drop,
        m::Verdict::Return => KernelVerdict::Return,
        m::Verdict::Jump(c) => KernelVerdict::Jump(c.clone()),
        m::Verdict::Goto(c) => KernelVerdict::Goto(c.clone()),
    }
}

fn hook(h: m::Hook) -> Hook {
    match h {
        m::Hook::Prerouting => Hook::Prerouting,
        m::Hook::Input => Hook::Input,
        m::Hook::Forward => Hook::Forward,
        m::Hook::Output => Hook::Output,
        m::Hook::Postrouting => Hook::Postrouting,
    }
}

fn base(b: &m::BaseChain) -> BaseChain {
    BaseChain {
        hook: hook(b.hook),
        priority: b.priority,
        policy_accept: b.policy == m::ChainPolicy::Accept,
    }
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn level(l: m::LogLevel) -> u32 {
    match l {
        m::LogLevel::Emerg => 0,
        m::LogLevel::Alert => 1,
        m::LogLevel::Crit => 2,
        m::LogLevel::Err => 3,
        m::LogLevel::Warn => 4,
        m::LogLevel::Notice => 5,
        m::LogLevel::Info => 6,
        m::LogLevel::Debug => 7,
    }
}

/// The kernel element of one model set element.
pub fn element(e: &m::SetElement) -> Element {
    let single = |key: Vec<u8>| Element {
        key,
        key_end: None,
        verdict: None,
    };
    let range = |a: Vec<u8>, b: Vec<u8>| Element {
        key: a,
        key_end: Some(b),
        verdict: None,
    };
    match e {
        m::SetElement::Net(n) => {
            let full = n.prefix_len() == n.max_prefix_len();
            if full {
                single(ip_bytes(n.addr()))
            } else {
                range(ip_bytes(n.network()), ip_bytes(n.broadcast()))
            }
        }
        m::SetElement::AddrRange(a, b) => range(ip_bytes(*a), ip_bytes(*b)),
        m::SetElement::Port(p) => single(p.to_be_bytes().to_vec()),
        m::SetElement::PortRange(a, b) => range(a.to_be_bytes().to_vec(), b.to_be_bytes().to_vec()),
        m::SetElement::Ifname(n) => single(x::ifname_key(n)),
        m::SetElement::AddrProtoPort(a, p, port) => single(super::batch::concat_key(&[
            &ip_bytes(*a),
            &[*p],
            &port.to_be_bytes(),
        ])),
    }
}

/// The kernel set of one model set.
pub fn set(s: &m::Set) -> Set {
    let (types, lens) = match s.key {
        m::SetKey::Ipv4Addr => (vec![datatype::IPADDR], vec![4]),
        m::SetKey::Ipv6Addr => (vec![datatype::IP6ADDR], vec![16]),
        m::SetKey::InetService => (vec![datatype::INET_SERVICE], vec![2]),
        m::SetKey::Ifname => (vec![datatype::IFNAME], vec![16]),
        m::SetKey::AddrProtoService(m::IpFamily::V4) => (
            vec![
                datatype::IPADDR,
                datatype::INET_PROTOCOL,
                datatype::INET_SERVICE,
            ],
            vec![4, 1, 2],
        ),
        m::SetKey::AddrProtoService(m::IpFamily::V6) => (
            vec![
                datatype::IP6ADDR,
                datatype::INET_PROTOCOL,
                datatype::INET_SERVICE,
            ],
            vec![16, 1, 2],
        ),
    };
    Set {
        key_types: types,
        key_lens: lens,
        interval: s.interval,
        verdict_map: false,
        elements: s.elements.iter().map(element).collect(),
    }
}

/// The kernel verdict map of one model verdict map.
pub fn verdict_map(vm: &m::VerdictMap) -> Set {
    let mut s = Set::new(datatype::IFNAME, 16, false);
    s.verdict_map = true;
    s.elements = vm
        .elements
        .iter()
        .map(|(k, v)| Element {
            key: x::ifname_key(k),
            key_end: None,
            verdict: Some(verdict(v)),
        })
        .collect();
    s
}

fn is_v6(f: m::IpFamily) -> bool {
    f == m::IpFamily::V6
}

fn l4_of(p: m::PortProto) -> Option<u8> {
    match p {
        m::PortProto::Tcp => Some(6),
        m::PortProto::Udp => Some(17),
        m::PortProto::Sctp => Some(132),
        m::PortProto::Udplite => Some(136),
        m::PortProto::Th => None,
    }
}

fn ifname_match(input: bool, name: &m::IfnameMatch, negate: bool) -> Vec<Expr> {
    match name {
        m::IfnameMatch::Exact(n) => x::ifname(input, n, negate),
        m::IfnameMatch::Prefix(p) => x::ifname(input, &format!("{p}*"), negate),
    }
}

/// The expressions of one rule, laid out as `nft` compiles the rule's text: each address
/// match is preceded by its `meta nfproto` dependency unless the rule already has it, and
/// protocol-header matches by their `meta l4proto` dependency unless already present.
pub fn rule_exprs(r: &m::Rule) -> Vec<Expr> {
    let mut out = Vec::new();
    let mut nfproto: Option<bool> = None; // Some(v6) once known
    let mut l4: Option<u8> = None;
    let need_nf = |out: &mut Vec<Expr>, v6: bool, nfproto: &mut Option<bool>| {
        if *nfproto != Some(v6) {
            out.extend(x::nfproto(v6));
            *nfproto = Some(v6);
        }
    };
    let need_l4 = |out: &mut Vec<Expr>, p: u8, l4: &mut Option<u8>| {
        if *l4 != Some(p) {
            out.extend(x::l4proto(p));
            *l4 = Some(p);
        }
    };
    for mt in &r.matches {
        match mt {
            m::Match::Iifname { name, negate } => out.extend(ifname_match(true, name, *negate)),
            m::Match::Oifname { name, negate } => out.extend(ifname_match(false, name, *negate)),
            m::Match::L4proto { proto, negate } => {
                if *negate {
                    out.extend(x::l4proto_not(*proto));
                } else {
                    out.extend(x::l4proto(*proto));
                    l4 = Some(*proto);
                }
            }
            m::Match::Nfproto(f) => {
                out.extend(x::nfproto(is_v6(*f)));
                nfproto = Some(is_v6(*f));
            }
            m::Match::Mark {
                mask,
                value,
                negate,
            } => {
                let op = if *negate { CmpOp::Neq } else { CmpOp::Eq };
                out.push(Expr::Meta {
                    key: MetaKey::Mark,
                    dreg: Reg::R1,
                });
                if *mask != u32::MAX {
                    out.push(Expr::Bitwise {
                        sreg: Reg::R1,
                        dreg: Reg::R1,
                        mask: mask.to_ne_bytes().to_vec(),
                        xor: vec![0; 4],
                    });
                }
                out.push(Expr::Cmp {
                    sreg: Reg::R1,
                    op,
                    data: value.to_ne_bytes().to_vec(),
                });
            }
            m::Match::Addr {
                family,
                side,
                value,
                negate,
            } => {
                let v6 = is_v6(*family);
                let src = *side == m::Side::Src;
                need_nf(&mut out, v6, &mut nfproto);
                let mut e = match value {
                    m::AddrValue::Set(s) => x::addr_in_set(v6, src, s, *negate),
                    m::AddrValue::Net(n) => addr_net(src, *n, *negate),
                };
                e.drain(..2); // the dependency was handled above
                out.extend(e);
            }
            m::Match::Port {
                proto,
                side,
                value,
                negate,
            } => {
                if let Some(p) = l4_of(*proto) {
                    need_l4(&mut out, p, &mut l4);
                }
                let src = *side == m::Side::Src;
                out.extend(match value {
                    m::PortValue::Single(p) => x::port_eq(src, *p, *negate),
                    m::PortValue::Range(a, b) => x::port_range(src, *a, *b, *negate),
                    m::PortValue::Set(s) => x::port_in_set(src, s, *negate),
                });
            }
            m::Match::IcmpType {
                family,
                value,
                negate,
            }
            | m::Match::IcmpCode {
                family,
                value,
                negate,
            } => {
                need_l4(&mut out, if is_v6(*family) { 58 } else { 1 }, &mut l4);
                let code = matches!(mt, m::Match::IcmpCode { .. });
                out.extend(x::icmp_field(code, *value, *negate));
            }
            m::Match::CtState(bits) => out.extend(x::ct_state_any(*bits)),
            m::Match::AddrProtoPort {
                family,
                side,
                set,
                negate,
            } => {
                let v6 = is_v6(*family);
                need_nf(&mut out, v6, &mut nfproto);
                let mut e = x::addr_proto_port_in_set(v6, *side == m::Side::Src, set);
                e.drain(..2);
                if *negate {
                    if let Some(Expr::Lookup { invert, .. }) = e.last_mut() {
                        *invert = true;
                    }
                }
                out.extend(e);
            }
        }
    }
    for s in &r.statements {
        match s {
            m::Statement::Counter => out.push(Expr::Counter),
            m::Statement::Log { prefix, level: l } => {
                out.extend(x::log(prefix.as_deref(), l.map(level)))
            }
            m::Statement::MarkSet { and, or } => out.extend(x::mark_set(*and, *or)),
        }
    }
    match &r.verdict {
        Some(m::RuleVerdict::Verdict(v)) => out.push(Expr::Verdict(verdict(v))),
        Some(m::RuleVerdict::Vmap { side, map }) => {
            out.extend(x::ifname_vmap(*side == m::Side::Src, map))
        }
        None => {}
    }
    out
}

/// An address prefix match including a `/0` (any address of the family).
fn addr_net(src: bool, n: IpNet, negate: bool) -> Vec<Expr> {
    if n.prefix_len() == 0 {
        let v6 = matches!(n, IpNet::V6(_));
        let mut v = x::nfproto(v6);
        if negate {
            // `!= ::/0` never matches: a family that is both v4 and not v4.
            v.extend(x::meta_cmp(
                MetaKey::NfProto,
                CmpOp::Neq,
                vec![if v6 { x::NFPROTO_IPV6 } else { x::NFPROTO_IPV4 }],
            ));
        }
        return v;
    }
    x::addr_match(src, n, negate)
}

/// The kernel rule of one model rule.
pub fn rule(r: &m::Rule) -> Rule {
    Rule {
        exprs: rule_exprs(r),
        comment: r.comment.clone(),
    }
}

/// The kernel chain of one model chain.
pub fn chain(c: &m::Chain) -> Chain {
    Chain {
        base: c.base.as_ref().map(base),
        rules: c.rules.iter().map(rule).collect(),
    }
}

/// The kernel table of a whole model ruleset (sets and verdict maps share one namespace).
pub fn table(rs: &m::Ruleset) -> Table {
    let mut t = Table::default();
    for (n, s) in &rs.sets {
        t.sets.insert(n.clone(), set(s));
    }
    for (n, vm) in &rs.maps {
        t.sets.insert(n.clone(), verdict_map(vm));
    }
    for (n, c) in &rs.chains {
        t.chains.insert(n.clone(), chain(c));
    }
    t
}

/// Applies [`m::Ruleset`]s and [`m::RulesetDelta`]s to `table inet calico` in the calling
/// thread's network namespace, each as one kernel transaction.
#[derive(Debug)]
pub struct NftDataplane {
    applier: NftApplier,
    last: Option<m::Ruleset>,
}

impl NftDataplane {
    /// Opens the netlink socket (table [`m::TABLE`]).
    pub fn new() -> Result<NftDataplane, ApplyError> {
        Ok(NftDataplane {
            applier: NftApplier::new(m::TABLE)?,
            last: None,
        })
    }

    /// The ruleset last applied successfully.
    pub fn last(&self) -> Option<&m::Ruleset> {
        self.last.as_ref()
    }

    /// Makes the table hold exactly `rs`, in one transaction that rewrites only what differs
    /// from the last applied state (as [`m::RulesetDelta::between`] and
    /// [`NftDataplane::apply_delta`]) or, the first time or after a failure, from the table
    /// read back from the kernel (chains compared by rule digests, sets by elements).
    /// Applying the same ruleset twice sends nothing the second time. The table itself is
    /// never deleted.
    pub fn apply_ruleset(&mut self, rs: &m::Ruleset) -> Result<ApplyStats, ApplyError> {
        if let Some(last) = &self.last {
            if last == rs {
                return Ok(ApplyStats::default());
            }
            let delta = m::RulesetDelta::between(last, rs);
            let r = self.apply_delta(&delta);
            if r.is_err() {
                self.forget();
            }
            return r;
        }
        let r = self.applier.apply(&table(rs));
        self.last = if r.is_ok() { Some(rs.clone()) } else { None };
        r
    }

    /// Forgets the remembered state: the next [`NftDataplane::apply_ruleset`] reads the table
    /// back and diffs against what the kernel holds (use after drift was found).
    pub fn forget(&mut self) {
        self.last = None;
        self.applier.forget();
    }

    /// Rewrites the table's whole contents (every object deleted and created again) in one
    /// transaction: the recovery path after drift.
    pub fn apply_ruleset_full(&mut self, rs: &m::Ruleset) -> Result<ApplyStats, ApplyError> {
        let r = self.applier.apply_full(&table(rs));
        self.last = if r.is_ok() { Some(rs.clone()) } else { None };
        r
    }

    /// Applies `delta` (computed from the last applied ruleset) as one transaction, message
    /// by message in the order of [`m::RulesetDelta::ops`]. Element changes of interval sets
    /// are sent as a flush and the set's full new contents (the kernel's interval encoding
    /// cannot be patched element by element without knowing the neighbours). All or
    /// nothing: on error the table and the remembered state are unchanged.
    pub fn apply_delta(&mut self, delta: &m::RulesetDelta) -> Result<ApplyStats, ApplyError> {
        let Some(last) = self.last.as_ref() else {
            return Err(ApplyError::NoBaseline);
        };
        if delta.is_empty() {
            return Ok(ApplyStats::default());
        }
        // The ruleset is large: nothing of it is cloned; only the sets whose interval
        // encoding is rewritten are computed here, and `last` is advanced after success.
        let first = self.applier.reserve_seq();
        let mut batch = Batch::new(m::TABLE, first);
        let mut stats = ApplyStats::default();
        let mut rewritten: BTreeSet<&str> = BTreeSet::new();
        let mut rule_index: Option<(&str, usize)> = None;
        let mut maps_flushed = false;
        let mut touched_chains: BTreeSet<String> = BTreeSet::new();
        let mut touched_sets: BTreeSet<String> = BTreeSet::new();
        let mut patched: std::collections::BTreeMap<String, (Vec<KElem>, Vec<KElem>)> =
            std::collections::BTreeMap::new();
        let mut lone_sets: std::collections::BTreeMap<&str, bool> =
            std::collections::BTreeMap::new();
        let interval = |name: &str| match delta.create_sets.iter().find(|(n, _, _)| n == name) {
            Some((_, _, interval)) => *interval,
            None => last.sets.get(name).is_some_and(|s| s.interval),
        };
        for op in delta.ops() {
            match op {
                m::Op::AddTable => {
                    if !self.applier.table_known() {
                        batch.new_table();
                    }
                }
                m::Op::AddSet {
                    name,
                    key,
                    interval,
                } => {
                    let s = set(&m::Set {
                        key,
                        interval,
                        elements: Default::default(),
                    });
                    batch.new_set(name, &s);
                    touched_sets.insert(name.to_string());
                }
                m::Op::AddMap { name } => {
                    batch.new_set(name, &verdict_map(&m::VerdictMap::default()));
                    touched_sets.insert(name.to_string());
                }
                m::Op::AddChain { name, base: b } => {
                    batch.new_chain(
                        name,
                        &Chain {
                            base: b.as_ref().map(base),
                            rules: Vec::new(),
                        },
                    );
                    touched_chains.insert(name.to_string());
                }
                m::Op::DeleteElements { set: s, elements }
                | m::Op::AddElements { set: s, elements } => {
                    let add = matches!(op, m::Op::AddElements { .. });
                    let ks: Vec<KElem> = if !interval(s) {
                        elements
                            .iter()
                            .map(|e| KElem {
                                key: element(e).key,
                                key_end: None,
                                flags: 0,
                                verdict: None,
                            })
                            .collect()
                    } else if *lone_sets
                        .entry(s)
                        .or_insert_with(|| singles_only(last, delta, s))
                        && !rewritten.contains(s)
                    {
                        // Every element is one address apart from the others: each change
                        // is its start and end marker.
                        elements
                            .iter()
                            .filter_map(|e| lone_interval_elements(&element(e).key))
                            .flatten()
                            .collect()
                    } else {
                        touched_sets.insert(s.to_string());
                        if rewritten.insert(s) {
                            let ns = set_after(last, delta, s);
                            batch.flush_set(s);
                            batch.set_elems(s, &kernel_elements(&set(&ns)), true);
                        }
                        continue;
                    };
                    batch.set_elems(s, &ks, add);
                    // The remembered kernel state takes the same element changes (no
                    // recomputation of the whole set).
                    let entry = patched.entry(s.to_string()).or_default();
                    if add {
                        entry.1.extend(ks);
                    } else {
                        entry.0.extend(ks);
                    }
                }
                m::Op::FlushChain { chain: c } => {
                    rule_index = None;
                    batch.flush_rules(Some(c));
                    touched_chains.insert(c.to_string());
                }
                m::Op::AddRule { chain: c, rule: r } => {
                    let kr = rule(r);
                    let enc = encode_exprs(&kr);
                    let d = rule_digest(&enc, kr.comment.as_deref());
                    let idx = match &mut rule_index {
                        Some((prev, i)) if *prev == c => {
                            *i += 1;
                            *i
                        }
                        _ => 0,
                    };
                    rule_index = Some((c, idx));
                    batch.new_rule(c, idx, &enc, kr.comment.as_deref(), d);
                    touched_chains.insert(c.to_string());
                }
                m::Op::DeleteMapElements { map, keys } => {
                    let ks: Vec<KElem> = keys
                        .iter()
                        .map(|k| KElem {
                            key: x::ifname_key(k),
                            key_end: None,
                            flags: 0,
                            verdict: None,
                        })
                        .collect();
                    batch.set_elems(map, &ks, false);
                    touched_sets.insert(map.to_string());
                }
                m::Op::AddMapElements { map, elements } => {
                    let ks: Vec<KElem> = elements
                        .iter()
                        .map(|(k, v)| KElem {
                            key: x::ifname_key(k),
                            key_end: None,
                            flags: 0,
                            verdict: Some(verdict(v)),
                        })
                        .collect();
                    batch.set_elems(map, &ks, true);
                    touched_sets.insert(map.to_string());
                }
                m::Op::DeleteChain { chain: c } => {
                    // Maps deleted later may still hold gotos to this chain: empty them
                    // first (the ops order deletes maps after chains).
                    if !maps_flushed {
                        maps_flushed = true;
                        for mp in &delta.delete_maps {
                            batch.flush_set(mp);
                        }
                    }
                    batch.del_chain(c);
                    touched_chains.insert(c.to_string());
                }
                m::Op::DeleteSet { name } | m::Op::DeleteMap { name } => {
                    batch.del_set(name);
                    touched_sets.insert(name.to_string());
                }
            }
        }
        stats.messages = batch.len();
        stats.bytes = batch.buf.buf.len();
        stats.chains_written = delta.fill_chains.len();
        stats.sets_written = touched_sets.len()
            + patched
                .keys()
                .filter(|s| !touched_sets.contains(*s))
                .count();
        self.applier.send(batch)?;
        let next = self.last.get_or_insert_with(m::Ruleset::default);
        advance(next, delta);
        let next = &*next;
        // Keep the remembered kernel state in step (only the touched objects are recomputed).
        for c in &touched_chains {
            let st = next.chains.get(c).map(|ch| {
                let kc = chain(ch);
                let digests = kc
                    .rules
                    .iter()
                    .map(|r| Some(rule_digest(&encode_exprs(r), r.comment.as_deref())))
                    .collect();
                ChainState {
                    base: kc.base,
                    rule_digests: digests,
                }
            });
            self.applier.remember_chain(c, st);
        }
        for s in &touched_sets {
            let ks = next
                .sets
                .get(s)
                .map(set)
                .or_else(|| next.maps.get(s).map(verdict_map));
            let st = ks.map(|k| SetState {
                flags: k.flags(),
                key_type: k.key_type(),
                key_len: k.key_len(),
                verdict_map: k.verdict_map,
                elements: kernel_elements(&k).into_iter().collect(),
            });
            self.applier.remember_set(s, st);
        }
        for (s, (removed, added)) in patched {
            if !touched_sets.contains(&s) {
                self.applier.patch_set(&s, removed, added);
            }
        }
        Ok(stats)
    }

    /// Compares the kernel's table with the last applied ruleset.
    pub fn drift(&mut self) -> Result<Drift, ReadError> {
        let t = self.last.as_ref().map(table).unwrap_or_default();
        self.applier.drift(&t)
    }

    /// The underlying applier.
    pub fn applier(&mut self) -> &mut NftApplier {
        &mut self.applier
    }
}

/// Whether set `name`'s element changes in `delta` can be sent element by element although
/// it is an interval set: it exists before the delta, and it and the changes hold only
/// single addresses (so no element merges with another), none the lowest or highest, and it
/// is not empty before or after.
fn singles_only(last: &m::Ruleset, d: &m::RulesetDelta, name: &str) -> bool {
    let single = |e: &m::SetElement| matches!(e, m::SetElement::Net(n) if n.prefix_len() == n.max_prefix_len());
    let edge = |e: &m::SetElement| match e {
        m::SetElement::Net(n) => {
            let b = ip_bytes(n.addr());
            b.iter().all(|x| *x == 0) || b.iter().all(|x| *x == 0xff)
        }
        _ => true,
    };
    if d.create_sets.iter().any(|(n, _, _)| n == name)
        || d.pre_delete_sets.iter().any(|n| n == name)
    {
        return false;
    }
    let Some(old) = last.sets.get(name) else {
        return false;
    };
    let count = |list: &[(String, Vec<m::SetElement>)]| {
        list.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.len())
            .sum::<usize>()
    };
    // An empty set has no leading END marker, a non-empty one has: the set must hold
    // something before and after.
    if old.elements.is_empty()
        || old.elements.len() + count(&d.add_elements) <= count(&d.remove_elements)
    {
        return false;
    }
    let changes = d
        .remove_elements
        .iter()
        .chain(&d.add_elements)
        .filter(|(n, _)| n == name)
        .flat_map(|(_, els)| els);
    old.elements.iter().all(single) && changes.into_iter().all(|e| single(e) && !edge(e))
}

/// Set `name` as it is after `delta` (the delta's element changes applied to its old or
/// newly created contents).
fn set_after(last: &m::Ruleset, d: &m::RulesetDelta, name: &str) -> m::Set {
    let mut s = match d.create_sets.iter().find(|(n, _, _)| n == name) {
        Some((_, key, interval)) => m::Set {
            key: *key,
            interval: *interval,
            elements: Default::default(),
        },
        None => last.sets.get(name).cloned().unwrap_or(m::Set {
            key: m::SetKey::Ipv4Addr,
            interval: true,
            elements: Default::default(),
        }),
    };
    for (n, els) in &d.remove_elements {
        if n == name {
            for e in els {
                s.elements.remove(e);
            }
        }
    }
    for (n, els) in &d.add_elements {
        if n == name {
            s.elements.extend(els.iter().cloned());
        }
    }
    s
}

/// `rs` after `delta` (no checks: the kernel makes them).
fn advance(rs: &mut m::Ruleset, d: &m::RulesetDelta) {
    for c in &d.pre_delete_chains {
        rs.chains.remove(c);
    }
    for s in &d.pre_delete_sets {
        rs.sets.remove(s);
    }
    for (n, key, interval) in &d.create_sets {
        rs.sets.insert(
            n.clone(),
            m::Set {
                key: *key,
                interval: *interval,
                elements: Default::default(),
            },
        );
    }
    for n in &d.create_maps {
        rs.maps.insert(n.clone(), m::VerdictMap::default());
    }
    for (n, b) in &d.create_chains {
        rs.chains.insert(
            n.clone(),
            m::Chain {
                base: *b,
                rules: Vec::new(),
            },
        );
    }
    for (s, els) in &d.remove_elements {
        if let Some(set) = rs.sets.get_mut(s) {
            for e in els {
                set.elements.remove(e);
            }
        }
    }
    for (s, els) in &d.add_elements {
        if let Some(set) = rs.sets.get_mut(s) {
            set.elements.extend(els.iter().cloned());
        }
    }
    for f in &d.fill_chains {
        if let Some(c) = rs.chains.get_mut(&f.chain) {
            c.rules = f.rules.clone();
        }
    }
    for (mp, keys) in &d.map_remove {
        if let Some(vm) = rs.maps.get_mut(mp) {
            for k in keys {
                vm.elements.remove(k);
            }
        }
    }
    for (mp, els) in &d.map_add {
        if let Some(vm) = rs.maps.get_mut(mp) {
            for (k, v) in els {
                vm.elements.insert(k.clone(), v.clone());
            }
        }
    }
    for c in &d.delete_chains {
        rs.chains.remove(c);
    }
    for s in &d.delete_sets {
        rs.sets.remove(s);
    }
    for mp in &d.delete_maps {
        rs.maps.remove(mp);
    }
}
