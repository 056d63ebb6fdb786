//! `iptables-restore` rendering of a node's program in Felix's iptables layout, for
//! comparison with Felix, with two of that layout's known bugs fixed:
//!
//! - a negated ICMP type and code (`notICMP {type: T, code: C}`) is one negated
//!   `! --icmp-type T/C` match, so it matches every ICMP packet that is not both type T
//!   and code C (two separate negated matches would also reject type T with other codes);
//! - when a rule needs several "positive blocks" (one per OR-ed set of matches, each
//!   setting a scratch mark bit), the bit is cleared at the start of every block after the
//!   first, so a match left over from an earlier block cannot leak into the next.
//!
//! Scope: the IPv4 `filter` table. Policy groups are not formed (each policy is jumped
//! directly), dispatch chains are linear, address sets are `ipset`s whose definitions are
//! listed as `# ipset ...` comment lines before the table (iptables-restore skips them; they
//! must be loaded with `ipset restore` first).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calico_model::resources::policy::{Action, TierAction};
use sha2::{Digest, Sha256};

use crate::addr::{AddrRange, Family};
use crate::compile::{EndpointProgram, IrMatch, IrRule, Program, SetDef};
use crate::model::{Direction, EndpointToHostAction, Model};
use crate::node::node_endpoints;

/// Accept mark bit.
pub const MARK_ACCEPT: u32 = 0x1_0000;
/// Pass mark bit.
pub const MARK_PASS: u32 = 0x2_0000;
/// Drop mark bit.
pub const MARK_DROP: u32 = 0x4_0000;
/// Scratch bit 0: "all blocks so far matched" (AB).
pub const MARK_SCRATCH0: u32 = 0x8_0000;
/// Scratch bit 1: "this block matched" (TB).
pub const MARK_SCRATCH1: u32 = 0x10_0000;

/// The iptables chain-name limit.
pub const CHAIN_MAX: usize = 28;
/// The ipset name limit.
pub const IPSET_MAX: usize = 31;
/// Slots of one `multiport` match (a range takes two).
const MULTIPORT_SLOTS: usize = 15;

fn hash64(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(id.as_bytes()))
}

/// `prefix + id` when it fits in [`CHAIN_MAX`], else `prefix + "_" + base64url(SHA-256(id))`
/// truncated to the limit.
pub fn chain_name(prefix: &str, id: &str) -> String {
    let full = format!("{prefix}{id}");
    if full.len() <= CHAIN_MAX && !id.contains(' ') {
        return full;
    }
    let mut n = format!("{prefix}_{}", hash64(id));
    n.truncate(CHAIN_MAX);
    n
}

fn cidr(r: &AddrRange) -> String {
    r.to_cidr_string()
}

/// Splits a v4 range into the CIDRs covering it exactly.
fn range_cidrs(r: &AddrRange) -> Vec<String> {
    let mut out = Vec::new();
    let mut lo = r.lo;
    while lo <= r.hi {
        let mut size: u32 = 0;
        while size < 32 {
            let next = size + 1;
            let block = 1u128 << next;
            if lo % block != 0 || lo + block - 1 > r.hi {
                break;
            }
            size = next;
        }
        let sub = AddrRange {
            family: r.family,
            lo,
            hi: lo + (1u128 << size) - 1,
        };
        out.push(cidr(&sub));
        lo += 1u128 << size;
        if lo == 0 {
            break;
        }
    }
    out
}

fn v4_cidrs(nets: &[AddrRange]) -> Vec<String> {
    nets.iter()
        .filter(|n| n.family == Family::V4)
        .flat_map(range_cidrs)
        .collect()
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        132 => "sctp".to_owned(),
        136 => "udplite".to_owned(),
        n => n.to_string(),
    }
}

fn port_chunks(ranges: &[(u16, u16)]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut slots = 0;
    for &(a, b) in ranges {
        let (item, n) = if a == b {
            (a.to_string(), 1)
        } else {
            (format!("{a}:{b}"), 2)
        };
        if slots + n > MULTIPORT_SLOTS {
            chunks.push(cur.join(","));
            cur.clear();
            slots = 0;
        }
        cur.push(item);
        slots += n;
    }
    if !cur.is_empty() {
        chunks.push(cur.join(","));
    }
    chunks
}

fn mark_set(bits: u32, mask: u32) -> String {
    format!("-j MARK --set-xmark {bits:#x}/{mask:#x}")
}

fn mark_is(bits: u32, mask: u32) -> String {
    format!("-m mark --mark {bits:#x}/{mask:#x}")
}

fn comment(c: &str) -> String {
    format!("-m comment --comment \"{}\"", c.replace('"', ""))
}

struct Render<'a> {
    program: &'a Program,
    chains: BTreeMap<String, Vec<String>>,
    /// ipset name → (type, members).
    ipsets: BTreeMap<String, (&'static str, BTreeSet<String>)>,
}

/// Renders the IPv4 filter table `node` would program, as `iptables-restore` input.
pub fn render(model: &Model, program: &Program, node: &str) -> String {
    let mut r = Render {
        program,
        chains: BTreeMap::new(),
        ipsets: BTreeMap::new(),
    };
    let wl = node_endpoints(model, node).workloads;
    let mut from_dispatch = Vec::new();
    let mut to_dispatch = Vec::new();
    for (ei, iface) in &wl {
        let Some(progs) = program.endpoints.get(ei) else {
            continue;
        };
        let tw = chain_name("cali-tw-", iface);
        let fw = chain_name("cali-fw-", iface);
        r.endpoint_chain(&tw, &progs.ingress, Direction::Ingress);
        r.endpoint_chain(&fw, &progs.egress, Direction::Egress);
        to_dispatch.push(format!("-o {iface} -g {tw}"));
        from_dispatch.push(format!("-i {iface} -g {fw}"));
    }
    from_dispatch.push(format!("{} -j DROP", comment("Unknown interface")));
    to_dispatch.push(format!("{} -j DROP", comment("Unknown interface")));
    r.chains
        .insert("cali-from-wl-dispatch".to_owned(), from_dispatch);
    r.chains
        .insert("cali-to-wl-dispatch".to_owned(), to_dispatch);
    let accept_mark = format!("{} -j ACCEPT", mark_is(MARK_ACCEPT, MARK_ACCEPT));
    let clear = mark_set(0, MARK_ACCEPT | MARK_PASS | MARK_SCRATCH0 | MARK_SCRATCH1);
    r.chains.insert(
        "cali-FORWARD".to_owned(),
        vec![
            clear.clone(),
            "-i cali+ -j cali-from-wl-dispatch".to_owned(),
            "-o cali+ -j cali-to-wl-dispatch".to_owned(),
            accept_mark.clone(),
        ],
    );
    r.chains.insert(
        "cali-INPUT".to_owned(),
        vec![
            "-i cali+ -g cali-wl-to-host".to_owned(),
            accept_mark.clone(),
        ],
    );
    r.chains.insert(
        "cali-OUTPUT".to_owned(),
        vec!["-o cali+ -j RETURN".to_owned(), accept_mark],
    );
    let action = match model.endpoint_to_host_action(node) {
        EndpointToHostAction::Accept => "ACCEPT",
        EndpointToHostAction::Return => "RETURN",
        EndpointToHostAction::Drop => "DROP",
    };
    r.chains.insert(
        "cali-wl-to-host".to_owned(),
        vec![
            "-j cali-from-wl-dispatch".to_owned(),
            format!(
                "{} -j {action}",
                comment("Configured DefaultEndpointToHostAction")
            ),
        ],
    );

    let mut out = String::new();
    for (name, (kind, members)) in &r.ipsets {
        let _ = writeln!(out, "# ipset create {name} {kind} family inet");
        for m in members {
            let _ = writeln!(out, "# ipset add {name} {m}");
        }
    }
    out.push_str("*filter\n");
    for name in r.chains.keys() {
        let _ = writeln!(out, ":{name} - [0:0]");
    }
    for hook in ["INPUT", "FORWARD", "OUTPUT"] {
        let _ = writeln!(out, "-A {hook} -j cali-{hook}");
    }
    for (name, rules) in &r.chains {
        for rule in rules {
            let _ = writeln!(out, "-A {name} {rule}");
        }
    }
    out.push_str("COMMIT\n");
    out
}

impl Render<'_> {
    fn endpoint_chain(&mut self, name: &str, ep: &EndpointProgram, dir: Direction) {
        let mut rules = vec![
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_owned(),
            "-m conntrack --ctstate INVALID -j DROP".to_owned(),
            mark_set(0, MARK_ACCEPT | MARK_PASS),
        ];
        if dir == Direction::Egress {
            rules.push(format!(
                "-p udp -m udp --dport 4789 {} -j DROP",
                comment("Drop VXLAN encapped packets originating in workloads")
            ));
            rules.push(format!(
                "-p 4 {} -j DROP",
                comment("Drop IPinIP encapped packets originating in workloads")
            ));
        }
        let pfx = match dir {
            Direction::Ingress => "cali-pi-",
            Direction::Egress => "cali-po-",
        };
        for tier in &ep.tiers {
            rules.push(format!(
                "{} {}",
                comment(&format!("Start of tier {}", tier.tier)),
                mark_set(0, MARK_PASS)
            ));
            for policy in &tier.policies {
                let chain = chain_name(pfx, &policy.chain_id());
                if !self.chains.contains_key(&chain) {
                    let ir = self
                        .program
                        .policies
                        .get(&(policy.clone(), dir))
                        .map(|p| p.rules.clone())
                        .unwrap_or_default();
                    let body = self.rule_chain(&ir);
                    self.chains.insert(chain.clone(), body);
                }
                rules.push(format!("{} -j {chain}", mark_is(0, MARK_PASS)));
                rules.push(format!(
                    "{} {} -j RETURN",
                    mark_is(MARK_ACCEPT, MARK_ACCEPT),
                    comment("Return if policy accepted")
                ));
            }
            if tier.end != TierAction::Pass {
                rules.push(format!(
                    "{} {} -j DROP",
                    mark_is(0, MARK_PASS),
                    comment(&format!(
                        "End of tier {}. Drop if no policies passed packet",
                        tier.tier
                    ))
                ));
            }
        }
        let ppfx = match dir {
            Direction::Ingress => "cali-pri-",
            Direction::Egress => "cali-pro-",
        };
        for (profile, resolved) in &ep.profiles {
            if resolved.is_none() {
                rules.push(format!(
                    "{} -j DROP",
                    comment(&format!("Profile {profile} not found"))
                ));
                break;
            }
            let chain = chain_name(ppfx, profile);
            if !self.chains.contains_key(&chain) {
                let ir = self
                    .program
                    .profiles
                    .get(&(profile.clone(), dir))
                    .cloned()
                    .unwrap_or_default();
                let body = self.rule_chain(&ir);
                self.chains.insert(chain.clone(), body);
            }
            rules.push(format!("-j {chain}"));
            rules.push(format!(
                "{} {} -j RETURN",
                mark_is(MARK_ACCEPT, MARK_ACCEPT),
                comment("Return if profile accepted")
            ));
        }
        rules.push(format!(
            "{} -j DROP",
            comment("Drop if no profiles matched")
        ));
        self.chains.insert(name.to_owned(), rules);
    }

    fn rule_chain(&mut self, rules: &[IrRule]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in rules {
            out.extend(self.rule(r));
        }
        // Trailing returns are redundant at the end of a chain.
        while out.last().is_some_and(|l| l.ends_with("-j RETURN")) {
            out.pop();
        }
        if out.is_empty() {
            out.push(comment("Empty chain"));
        }
        out
    }

    fn selector_ipset(&mut self, id: &str) -> String {
        let mut name = format!("cali40s:{}", hash64(id));
        name.truncate(IPSET_MAX);
        if !self.ipsets.contains_key(&name) {
            let members = match self.program.sets.get(id) {
                Some(SetDef::Selector { members, .. }) => members
                    .iter()
                    .filter(|m| m.family == Family::V4)
                    .flat_map(range_cidrs)
                    .collect(),
                _ => BTreeSet::new(),
            };
            self.ipsets.insert(name.clone(), ("hash:net", members));
        }
        name
    }

    fn named_ipset(&mut self, id: &str) -> String {
        let mut name = format!("cali40n:{}", hash64(id));
        name.truncate(IPSET_MAX);
        if !self.ipsets.contains_key(&name) {
            let members = match self.program.sets.get(id) {
                Some(SetDef::NamedPort { members, .. }) => members
                    .iter()
                    .filter(|(a, _, _)| a.is_ipv4())
                    .map(|(a, p, port)| format!("{a},{}:{port}", proto_name(*p)))
                    .collect(),
                _ => BTreeSet::new(),
            };
            self.ipsets.insert(name.clone(), ("hash:ip,port", members));
        }
        name
    }

    /// The iptables rules of one Calico rule (IPv4): match blocks, then the action pair.
    fn rule(&mut self, r: &IrRule) -> Vec<String> {
        if !r.families[0] {
            return Vec::new();
        }
        let mut inline: Vec<String> = Vec::new();
        let proto = r.protocol;
        if let (Some(p), Some(n)) = (r.protocol, r.not_protocol) {
            if p == n {
                return Vec::new();
            }
        }
        if let Some(p) = proto {
            inline.push(format!("-p {}", proto_name(p)));
        } else if r.icmp.is_some() || r.not_icmp.is_some() {
            inline.push("-p icmp".to_owned());
        } else if let Some(n) = r.not_protocol {
            inline.push(format!("! -p {}", proto_name(n)));
        }
        let p_arg = proto
            .map(|p| format!("-p {} ", proto_name(p)))
            .unwrap_or_default();
        let mut blocks: Vec<Vec<String>> = Vec::new();
        let mut negs: Vec<String> = Vec::new();
        for (m, flag) in [(&r.src, "s"), (&r.dst, "d")] {
            let nets = v4_cidrs(&m.nets);
            if !m.nets.is_empty() && nets.is_empty() {
                return Vec::new();
            }
            match nets.as_slice() {
                [] => {}
                [one] => inline.push(format!("-{flag} {one}")),
                many => blocks.push(many.iter().map(|c| format!("-{flag} {c}")).collect()),
            }
            let not = v4_cidrs(&m.not_nets);
            match not.as_slice() {
                [] => {}
                // One `-s`/`-d` per rule: a single negated CIDR is inline only when there
                // is no single positive one.
                [one] if nets.len() != 1 => inline.push(format!("! -{flag} {one}")),
                many => negs.extend(many.iter().map(|c| format!("-{flag} {c}"))),
            }
            let dir = if flag == "s" { "src" } else { "dst" };
            let named_only = flag == "d" && m.has_ports && m.ports.is_empty();
            if let Some(s) = &m.set {
                if !named_only || m.named_ports.is_empty() {
                    let set = self.selector_ipset(s.as_str());
                    inline.push(format!("-m set --match-set {set} {dir}"));
                }
            }
            if let Some(s) = &m.not_set {
                let set = self.selector_ipset(s.as_str());
                inline.push(format!("-m set ! --match-set {set} {dir}"));
            }
            if flag == "d" {
                self.port_matches(m, &p_arg, &mut inline, &mut blocks);
                if m.has_ports && m.ports.is_empty() && m.named_ports.is_empty() {
                    return Vec::new();
                }
            }
        }
        if let Some(i) = r.icmp {
            match (i.icmp_type, i.code) {
                (Some(t), Some(c)) => inline.push(format!("-m icmp --icmp-type {t}/{c}")),
                (Some(t), None) => inline.push(format!("-m icmp --icmp-type {t}")),
                _ => {}
            }
        }
        if let Some(n) = r.not_icmp {
            // One negated type/code match (not two negated matches: see the module docs).
            match (n.icmp_type, n.code) {
                (Some(t), Some(c)) => inline.push(format!("-m icmp ! --icmp-type {t}/{c}")),
                (Some(t), None) => inline.push(format!("-m icmp ! --icmp-type {t}")),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if !blocks.is_empty() || !negs.is_empty() {
            let ab = MARK_SCRATCH0;
            let tb = MARK_SCRATCH1;
            if blocks.is_empty() {
                out.push(mark_set(ab, ab | tb));
            } else {
                out.push(mark_set(0, ab | tb));
            }
            for (i, block) in blocks.iter().enumerate() {
                if i == 0 {
                    for alt in block {
                        out.push(format!("{alt} {}", mark_set(ab, ab)));
                    }
                } else {
                    // Clear the "this block" bit at the start of every later positive block.
                    out.push(mark_set(0, tb));
                    for alt in block {
                        out.push(format!("{alt} {}", mark_set(tb, tb)));
                    }
                    out.push(format!("{} {}", mark_is(0, tb), mark_set(0, ab)));
                }
            }
            for n in &negs {
                out.push(format!("{n} {}", mark_set(0, ab)));
            }
            inline.push(mark_is(ab, ab));
        }
        let m = inline.join(" ");
        let sp = if m.is_empty() { "" } else { " " };
        match r.action {
            Action::Allow => {
                out.push(format!("{m}{sp}{}", mark_set(MARK_ACCEPT, MARK_ACCEPT)));
                out.push(format!("{} -j RETURN", mark_is(MARK_ACCEPT, MARK_ACCEPT)));
            }
            Action::Pass => {
                out.push(format!("{m}{sp}{}", mark_set(MARK_PASS, MARK_PASS)));
                out.push(format!("{} -j RETURN", mark_is(MARK_PASS, MARK_PASS)));
            }
            Action::Deny => {
                out.push(format!("{m}{sp}{}", mark_set(MARK_DROP, MARK_DROP)));
                out.push(format!("{} -j DROP", mark_is(MARK_DROP, MARK_DROP)));
            }
            Action::Log => {
                out.push(format!(
                    "{m}{sp}-j LOG --log-prefix \"calico-packet: \" --log-level 5"
                ));
            }
        }
        out
    }

    fn port_matches(
        &mut self,
        m: &IrMatch,
        p_arg: &str,
        inline: &mut Vec<String>,
        blocks: &mut Vec<Vec<String>>,
    ) {
        if m.has_ports {
            let chunks = port_chunks(m.ports.ranges());
            let named: Vec<String> = m
                .named_ports
                .iter()
                .map(|id| self.named_ipset(id.as_str()))
                .collect();
            if named.is_empty() && chunks.len() == 1 {
                inline.push(format!("-m multiport --dports {}", chunks[0]));
            } else if chunks.is_empty() && named.len() == 1 {
                inline.push(format!("-m set --match-set {} dst,dst", named[0]));
            } else if !chunks.is_empty() || !named.is_empty() {
                let mut alts: Vec<String> = chunks
                    .iter()
                    .map(|c| format!("{p_arg}-m multiport --dports {c}"))
                    .collect();
                alts.extend(
                    named
                        .iter()
                        .map(|s| format!("-m set --match-set {s} dst,dst")),
                );
                blocks.push(alts);
            }
        }
        if m.has_not_ports {
            for c in port_chunks(m.not_ports.ranges()) {
                inline.push(format!("-m multiport ! --dports {c}"));
            }
            for id in &m.not_named_ports {
                let s = self.named_ipset(id.as_str());
                inline.push(format!("-m set ! --match-set {s} dst,dst"));
            }
        }
    }
}
