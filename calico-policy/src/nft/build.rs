//! [`Program`] + node → [`Ruleset`]: the nftables table that enforces the program on one node.
//!
//! - One `table inet calico`. Base chains per concern, each starting with the conntrack
//!   rules: `fwd-egress` (forward, `filter + 5`: workload egress via `iifname vmap @from-wl`),
//!   `fwd-ingress` (forward, `filter + 6`: workload ingress via `oifname vmap @to-wl`),
//!   `in-wl` (input, `filter + 5`: workload egress towards the host), `in-wl-host` (input,
//!   `filter + 6`: `defaultEndpointToHostAction`), and when the node has host endpoints with an
//!   interface, `in-hep` (input, `filter + 7`) and `out-hep` (output, `filter + 5`) with the
//!   failsafe ports and `from-hep` / `to-hep` dispatch.
//! - Endpoint chains `ep-tw-<iface>` / `ep-fw-<iface>` (host endpoints: `ep-fh-` / `ep-th-`)
//!   jump shared tier chains `tier-<i|o>-<tier>-<hash>` keyed by (direction, tier, ordered
//!   policy ids, end action), then the profile chains `pro-<i|o>-<profile>`.
//! - One chain per policy and direction, `pol-<i|o>-<id>` with `<id>` = `np/<ns>/<name>`,
//!   `gnp/<name>`, `knp/<ns>/<name>`. Allow is `accept`, Deny `drop`, Pass sets the pass mark
//!   bit and returns (tested by the tier chain only after policies that contain a Pass rule),
//!   Log logs.
//! - Lists become named sets: selector sets `s4-<selector id>` / `s6-…` (members change in
//!   place), content-addressed `ports-<hash>` and `nets4-<hash>` / `nets6-<hash>`, named-port
//!   sets `np4-<hash>` / `np6-<hash>` keyed by the IR set ids they merge. Single values are
//!   inline. Only chains and sets reachable from the base chains are emitted.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calico_model::resources::policy::{Action, TierAction};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::addr::{AddrRange, Family};
use crate::check::FailsafeDirection;
use crate::compile::{EndpointProgram, IrMatch, IrRule, Program, SetDef, SetId, TierProgram};
use crate::conn::PortSet;
use crate::model::{Direction, Model, PolicyId};
use crate::node::{NodeEndpoints, node_endpoints};
use crate::{EndpointKey, ProgramChanges};
use calico_nft::{
    AddrValue, BaseChain, Chain, ChainPolicy, Hook, IfnameMatch, IpFamily, LogLevel, Match,
    NAME_MAX, PortProto, PortValue, Rule, RuleVerdict, Ruleset, Set, SetElement, SetKey, Side,
    Statement, Verdict, VerdictMap, ct_state,
};

/// Rendering options (Felix configuration the ruleset depends on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Add a `counter` to every rule (off by default).
    pub counters: bool,
    /// The mark bit used for Pass (default `0x00020000`, the bit Felix uses).
    pub pass_mark: u32,
    /// Drop UDP from workloads to this port (the VXLAN port; `Some(4789)` by default).
    pub vxlan_port: Option<u16>,
    /// Drop IP-in-IP (protocol 4) from workloads (default true).
    pub drop_ipip: bool,
    /// The prefix of Log rules (default `calico-packet: `).
    pub log_prefix: String,
}

impl Default for RenderOptions {
    fn default() -> RenderOptions {
        RenderOptions {
            counters: false,
            pass_mark: 0x0002_0000,
            vxlan_port: Some(4789),
            drop_ipip: true,
            log_prefix: "calico-packet: ".to_owned(),
        }
    }
}

/// Interface-name prefix of workload interfaces.
pub const WORKLOAD_PREFIX: &str = "cali";

/// Verdict map of workload egress dispatch (`iifname`).
pub const MAP_FROM_WL: &str = "from-wl";
/// Verdict map of workload ingress dispatch (`oifname`).
pub const MAP_TO_WL: &str = "to-wl";
/// Verdict map of host-endpoint ingress dispatch (`iifname`).
pub const MAP_FROM_HEP: &str = "from-hep";
/// Verdict map of host-endpoint egress dispatch (`oifname`).
pub const MAP_TO_HEP: &str = "to-hep";

fn hash_str(data: &str, len: usize) -> String {
    let d = Sha256::digest(data.as_bytes());
    let mut s = URL_SAFE_NO_PAD.encode(d);
    s.truncate(len);
    s
}

/// `prefix + id` when `id` only holds characters nft accepts in a name
/// (`A-Z a-z 0-9 . _ / -`) and the result fits in [`NAME_MAX`] − 1 bytes; otherwise
/// `prefix + "_" + base64url(SHA-256(id))`.
pub fn object_name(prefix: &str, id: &str) -> String {
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && prefix.len() + id.len() < NAME_MAX;
    if ok {
        format!("{prefix}{id}")
    } else {
        format!("{prefix}_{}", hash_str(id, 43))
    }
}

fn dir_letter(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "i",
        Direction::Egress => "o",
    }
}

/// The nftables family of an address family.
fn nft_family(f: Family) -> IpFamily {
    match f {
        Family::V4 => IpFamily::V4,
        Family::V6 => IpFamily::V6,
    }
}

fn fam_digit(f: Family) -> &'static str {
    match f {
        Family::V4 => "4",
        Family::V6 => "6",
    }
}

fn range_ip(f: Family, v: u128) -> IpAddr {
    match f {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// One merged address range as a set element: a prefix when it is one, else a range.
pub(super) fn range_element(r: &AddrRange) -> SetElement {
    let bits: u32 = match r.family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let size = r.hi.wrapping_sub(r.lo);
    if size & size.wrapping_add(1) == 0 && r.lo & size == 0 {
        let len = bits - size.count_ones();
        if let Ok(n) = IpNet::new(range_ip(r.family, r.lo), len as u8) {
            return SetElement::Net(n);
        }
    }
    SetElement::AddrRange(range_ip(r.family, r.lo), range_ip(r.family, r.hi))
}

/// Sorts and merges overlapping ranges of family `f` (adjacent ones stay separate elements,
/// so adding or removing one address is one element change).
fn merge_ranges(ranges: &[AddrRange], f: Family) -> Vec<AddrRange> {
    let mut v: Vec<AddrRange> = ranges.iter().filter(|r| r.family == f).copied().collect();
    v.sort();
    let mut out: Vec<AddrRange> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.lo <= last.hi => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    out
}

fn port_proto(protocol: Option<u8>) -> PortProto {
    match protocol {
        Some(6) => PortProto::Tcp,
        Some(17) => PortProto::Udp,
        Some(132) => PortProto::Sctp,
        Some(136) => PortProto::Udplite,
        _ => PortProto::Th,
    }
}

/// The conntrack rules of a chain that sees workload traffic among other traffic: scoped to
/// workload interfaces (incoming with `Side::Src`, outgoing with `Side::Dst`), so that the
/// host's own connections, which conntrack may have picked up mid-stream, are left alone.
fn workload_ct_rules(side: Side) -> Vec<Rule> {
    let iface = IfnameMatch::Prefix(WORKLOAD_PREFIX.to_owned());
    let scope = match side {
        Side::Src => Match::Iifname {
            name: iface,
            negate: false,
        },
        Side::Dst => Match::Oifname {
            name: iface,
            negate: false,
        },
    };
    ct_rules()
        .into_iter()
        .map(|mut r| {
            r.matches.insert(0, scope.clone());
            r
        })
        .collect()
}

fn ct_rules() -> Vec<Rule> {
    vec![
        Rule {
            matches: vec![Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)],
            verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
            ..Rule::default()
        },
        Rule {
            matches: vec![Match::CtState(ct_state::INVALID)],
            verdict: Some(RuleVerdict::Verdict(Verdict::Drop)),
            ..Rule::default()
        },
    ]
}

fn verdict_rule(v: Verdict, comment: Option<String>) -> Rule {
    Rule {
        verdict: Some(RuleVerdict::Verdict(v)),
        comment,
        ..Rule::default()
    }
}

fn base(hook: Hook, priority: i32) -> Option<BaseChain> {
    Some(BaseChain {
        hook,
        priority,
        policy: ChainPolicy::Accept,
    })
}

/// ICMPv6 types workloads may always send to the host (router solicitation, neighbour
/// discovery, MLD).
const ICMPV6_ND: [u8; 6] = [130, 131, 132, 133, 135, 136];

fn nd_rules() -> Vec<Rule> {
    ICMPV6_ND
        .iter()
        .map(|t| Rule {
            matches: vec![
                Match::L4proto {
                    proto: 58,
                    negate: false,
                },
                Match::IcmpType {
                    family: IpFamily::V6,
                    value: *t,
                    negate: false,
                },
            ],
            verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
            ..Rule::default()
        })
        .collect()
}

struct Builder<'a> {
    model: &'a Model,
    program: &'a Program,
    opts: &'a RenderOptions,
    rs: Ruleset,
    tier_names: HashMap<String, String>,
    refs: NodeRefs,
    named: Vec<NamedSet>,
    /// Chains and sets this builder added (not there before), for a re-render's delta.
    created: Created,
}

/// The chains and sets a (re-)render added to the ruleset it started from.
#[derive(Debug, Default)]
pub(super) struct Created {
    pub(super) chains: Vec<String>,
    pub(super) sets: Vec<String>,
}

/// A named-port set of the ruleset: its name, family and the program sets it merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NamedSet {
    pub(super) name: String,
    pub(super) family: Family,
    pub(super) ids: Vec<SetId>,
}

/// A node's ruleset with what it was rendered from.
pub(super) struct Built {
    pub(super) rs: Ruleset,
    pub(super) refs: NodeRefs,
    pub(super) named: Vec<NamedSet>,
    /// The workload endpoints with chains, and their interfaces.
    pub(super) workloads: Vec<(EndpointKey, String)>,
}

/// The name of the set holding selector set `id`'s addresses of family `f`.
pub(super) fn selector_set_name(id: &str, f: Family) -> String {
    let short = id.strip_prefix("s:").unwrap_or(id);
    object_name(&format!("s{}-", fam_digit(f)), short)
}

/// The elements of selector set `id`'s set of family `f`.
pub(super) fn selector_elements(program: &Program, id: &str, f: Family) -> BTreeSet<SetElement> {
    let members = match program.sets.get(id) {
        Some(SetDef::Selector { members, .. }) => merge_ranges(members, f),
        _ => Vec::new(),
    };
    members.iter().map(range_element).collect()
}

/// The elements of the merged named-port set of `ids`, family `f`.
pub(super) fn named_elements(program: &Program, ids: &[SetId], f: Family) -> BTreeSet<SetElement> {
    let mut els = BTreeSet::new();
    for id in ids {
        if let Some(SetDef::NamedPort { members, .. }) = program.sets.get(id.as_str()) {
            for &(a, p, port) in members {
                if Family::of(a) == f {
                    els.insert(SetElement::AddrProtoPort(a, p, port));
                }
            }
        }
    }
    els
}

/// What one node's ruleset was rendered from: its endpoints, the policies and profiles
/// whose chains it holds and the program's sets it copied. A change of the program that
/// touches none of them leaves the node's ruleset as it is ([`NodeRefs::affected_by`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeRefs {
    /// The node's endpoints with a program.
    pub endpoints: BTreeSet<EndpointKey>,
    /// Policies with a chain in the ruleset.
    pub policies: BTreeSet<PolicyId>,
    /// Profiles with a chain in the ruleset.
    pub profiles: BTreeSet<String>,
    /// Program sets whose members the ruleset holds.
    pub sets: BTreeSet<SetId>,
}

impl NodeRefs {
    /// Whether `changes` (of a program whose model is `model`) can change the ruleset of
    /// `node` these references describe: an endpoint of the node changed, appeared or went,
    /// or a policy, profile or set the ruleset uses changed.
    pub fn affected_by(&self, changes: &ProgramChanges, model: &Model, node: &str) -> bool {
        let local = |k: &EndpointKey| {
            self.endpoints.contains(k)
                || model
                    .endpoint(k)
                    .is_some_and(|e| e.node.as_deref() == Some(node))
        };
        changes.endpoints_changed.iter().any(|(k, _)| local(k))
            || changes
                .endpoints_removed
                .iter()
                .any(|k| self.endpoints.contains(k))
            || changes
                .policies_changed
                .iter()
                .any(|(p, _)| self.policies.contains(p))
            || changes
                .profiles_changed
                .iter()
                .any(|(p, _)| self.profiles.contains(p))
            || changes
                .sets_changed
                .iter()
                .chain(&changes.sets_removed)
                .any(|s| self.sets.contains(s))
    }
}

/// [`build_ruleset`], with what the ruleset was rendered from.
pub fn build_node_ruleset(
    model: &Model,
    program: &Program,
    node: &str,
    opts: &RenderOptions,
) -> (Ruleset, NodeRefs) {
    let b = build(model, program, node, opts);
    (b.rs, b.refs)
}

/// Builds the ruleset `node` programs for `program` (compiled from `model` by
/// [`Model::compile`]). Deterministic: the same inputs give the same ruleset.
pub fn build_ruleset(
    model: &Model,
    program: &Program,
    node: &str,
    opts: &RenderOptions,
) -> Ruleset {
    build(model, program, node, opts).rs
}

pub(super) fn build(model: &Model, program: &Program, node: &str, opts: &RenderOptions) -> Built {
    let mut b = Builder {
        model,
        program,
        opts,
        rs: Ruleset::default(),
        tier_names: HashMap::new(),
        refs: NodeRefs::default(),
        named: Vec::new(),
        created: Created::default(),
    };
    let NodeEndpoints {
        workloads: wl,
        host_endpoints: hep,
    } = node_endpoints(model, node);
    let mut from_wl = VerdictMap::default();
    let mut to_wl = VerdictMap::default();
    for (ei, iface) in &wl {
        let Some(progs) = program.endpoints.get(ei) else {
            continue;
        };
        b.refs.endpoints.insert(ei.clone());
        let tw = object_name("ep-tw-", iface);
        let fw = object_name("ep-fw-", iface);
        b.endpoint_chain(&tw, &progs.ingress, Direction::Ingress, false);
        b.endpoint_chain(&fw, &progs.egress, Direction::Egress, true);
        to_wl.elements.insert(iface.clone(), Verdict::Goto(tw));
        from_wl.elements.insert(iface.clone(), Verdict::Goto(fw));
    }
    b.rs.maps.insert(MAP_FROM_WL.to_owned(), from_wl);
    b.rs.maps.insert(MAP_TO_WL.to_owned(), to_wl);
    let cali = || IfnameMatch::Prefix(WORKLOAD_PREFIX.to_owned());
    let unknown = |side: Side| Rule {
        matches: vec![match side {
            Side::Src => Match::Iifname {
                name: cali(),
                negate: false,
            },
            Side::Dst => Match::Oifname {
                name: cali(),
                negate: false,
            },
        }],
        verdict: Some(RuleVerdict::Verdict(Verdict::Drop)),
        comment: Some("unknown workload interface".to_owned()),
        ..Rule::default()
    };
    let vmap = |side: Side, map: &str| Rule {
        verdict: Some(RuleVerdict::Vmap {
            side,
            map: map.to_owned(),
        }),
        ..Rule::default()
    };
    let mut chain = |name: &str, base: Option<BaseChain>, rules: Vec<Rule>| {
        b.rs.chains.insert(name.to_owned(), Chain { base, rules });
    };
    let mut rules = workload_ct_rules(Side::Src);
    rules.push(vmap(Side::Src, MAP_FROM_WL));
    rules.push(unknown(Side::Src));
    chain("fwd-egress", base(Hook::Forward, 5), rules);
    let mut rules = workload_ct_rules(Side::Dst);
    rules.push(vmap(Side::Dst, MAP_TO_WL));
    rules.push(unknown(Side::Dst));
    chain("fwd-ingress", base(Hook::Forward, 6), rules);
    let mut rules = workload_ct_rules(Side::Src);
    rules.extend(nd_rules());
    rules.push(vmap(Side::Src, MAP_FROM_WL));
    rules.push(unknown(Side::Src));
    chain("in-wl", base(Hook::Input, 5), rules);
    let mut rules = workload_ct_rules(Side::Src);
    if !model.endpoint_to_host_action(node).allows() {
        rules.extend(nd_rules());
        rules.push(Rule {
            matches: vec![Match::Iifname {
                name: cali(),
                negate: false,
            }],
            verdict: Some(RuleVerdict::Verdict(Verdict::Drop)),
            comment: Some("defaultEndpointToHostAction".to_owned()),
            ..Rule::default()
        });
    }
    chain("in-wl-host", base(Hook::Input, 6), rules);

    if !hep.is_empty() {
        let mut from_hep = VerdictMap::default();
        let mut to_hep = VerdictMap::default();
        let mut hep_chains = Vec::new();
        for (ei, iface) in &hep {
            let fh = object_name("ep-fh-", iface);
            let th = object_name("ep-th-", iface);
            from_hep
                .elements
                .insert(iface.clone(), Verdict::Goto(fh.clone()));
            to_hep
                .elements
                .insert(iface.clone(), Verdict::Goto(th.clone()));
            hep_chains.push((ei, fh, th));
        }
        for (ei, fh, th) in hep_chains {
            if let Some(progs) = program.endpoints.get(ei) {
                b.endpoint_chain(&fh, &progs.ingress, Direction::Ingress, false);
                b.endpoint_chain(&th, &progs.egress, Direction::Egress, false);
            }
        }
        b.rs.maps.insert(MAP_FROM_HEP.to_owned(), from_hep);
        b.rs.maps.insert(MAP_TO_HEP.to_owned(), to_hep);
        let mut rules = ct_rules();
        rules.extend(b.failsafe_rules(node, FailsafeDirection::Inbound));
        rules.push(vmap(Side::Src, MAP_FROM_HEP));
        b.rs.chains.insert(
            "in-hep".to_owned(),
            Chain {
                base: base(Hook::Input, 7),
                rules,
            },
        );
        let mut rules = ct_rules();
        rules.extend(b.failsafe_rules(node, FailsafeDirection::Outbound));
        rules.push(vmap(Side::Dst, MAP_TO_HEP));
        b.rs.chains.insert(
            "out-hep".to_owned(),
            Chain {
                base: base(Hook::Output, 5),
                rules,
            },
        );
    }
    let workloads = wl
        .into_iter()
        .filter(|(k, _)| b.refs.endpoints.contains(k))
        .collect();
    Built {
        rs: b.rs,
        refs: b.refs,
        named: b.named,
        workloads,
    }
}

/// Renders again into `built` the chains of `policies` (those that exist) and of the
/// workload endpoints `endpoints` (key and interface; with the tier chains they jump to
/// and the policy chains those need); sets they newly use are added. Returns the names of
/// the policy and endpoint chains rewritten, and the chains and sets added.
pub(super) fn rerender(
    built: &mut Built,
    model: &Model,
    program: &Program,
    opts: &RenderOptions,
    policies: &[(PolicyId, Direction)],
    endpoints: &[(EndpointKey, String)],
) -> (Vec<String>, Created) {
    let mut b = Builder {
        model,
        program,
        opts,
        rs: std::mem::take(&mut built.rs),
        tier_names: HashMap::new(),
        refs: std::mem::take(&mut built.refs),
        named: Vec::new(),
        created: Created::default(),
    };
    let mut names = Vec::new();
    for (policy, dir) in policies {
        let name = policy_chain_name(policy, *dir);
        if b.rs.chains.remove(&name).is_some() {
            b.policy_chain(policy, *dir, &policy.chain_id());
            // Rewritten, not new.
            b.created.chains.retain(|c| *c != name);
            names.push(name);
        }
    }
    for (key, iface) in endpoints {
        if let Some(progs) = program.endpoints.get(key) {
            let tw = object_name("ep-tw-", iface);
            let fw = object_name("ep-fw-", iface);
            b.endpoint_chain(&tw, &progs.ingress, Direction::Ingress, false);
            b.endpoint_chain(&fw, &progs.egress, Direction::Egress, true);
            names.push(tw);
            names.push(fw);
        }
    }
    built.rs = b.rs;
    built.refs = b.refs;
    built.named = b.named;
    (names, b.created)
}

/// The chain of `policy`'s rules in direction `dir`.
pub(super) fn policy_chain_name(policy: &PolicyId, dir: Direction) -> String {
    object_name(&format!("pol-{}-", dir_letter(dir)), &policy.chain_id())
}

/// Whether `policy`'s program in `dir` has a Pass rule (tier chains test the pass mark
/// after such policies only).
pub(super) fn has_pass(program: &Program, policy: &PolicyId, dir: Direction) -> bool {
    program
        .policies
        .get(&(policy.clone(), dir))
        .is_some_and(|p| p.rules.iter().any(|r| r.action == Action::Pass))
}

impl Builder<'_> {
    fn counted(&self, mut rules: Vec<Rule>) -> Vec<Rule> {
        if self.opts.counters {
            for r in &mut rules {
                r.statements.insert(0, Statement::Counter);
            }
        }
        rules
    }

    fn failsafe_rules(&self, node: &str, direction: FailsafeDirection) -> Vec<Rule> {
        let mut out = Vec::new();
        for fp in self.model.failsafe_ports(node, direction) {
            let proto: u8 = match fp.protocol.to_ascii_uppercase().as_str() {
                "TCP" => 6,
                "UDP" => 17,
                "SCTP" => 132,
                _ => continue,
            };
            let mut matches = vec![Match::L4proto {
                proto,
                negate: false,
            }];
            if !fp.net.is_empty() {
                // An unparseable net restricts nothing we can express: skip the allowance
                // (fail closed).
                let Ok(net) = fp.net.parse::<IpNet>() else {
                    continue;
                };
                let family = match net {
                    IpNet::V4(_) => IpFamily::V4,
                    IpNet::V6(_) => IpFamily::V6,
                };
                matches.push(Match::Addr {
                    family,
                    side: if direction == FailsafeDirection::Inbound {
                        Side::Src
                    } else {
                        Side::Dst
                    },
                    value: AddrValue::Net(net.trunc()),
                    negate: false,
                });
            }
            matches.push(Match::Port {
                proto: port_proto(Some(proto)),
                side: Side::Dst,
                value: PortValue::Single(fp.port),
                negate: false,
            });
            out.push(Rule {
                matches,
                verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
                comment: Some("failsafe".to_owned()),
                ..Rule::default()
            });
        }
        out
    }

    fn endpoint_chain(
        &mut self,
        name: &str,
        ep: &EndpointProgram,
        dir: Direction,
        egress_wl: bool,
    ) {
        let mut rules = Vec::new();
        if egress_wl {
            if let Some(port) = self.opts.vxlan_port {
                rules.push(Rule {
                    matches: vec![
                        Match::L4proto {
                            proto: 17,
                            negate: false,
                        },
                        Match::Port {
                            proto: PortProto::Udp,
                            side: Side::Dst,
                            value: PortValue::Single(port),
                            negate: false,
                        },
                    ],
                    verdict: Some(RuleVerdict::Verdict(Verdict::Drop)),
                    ..Rule::default()
                });
            }
            if self.opts.drop_ipip {
                rules.push(Rule {
                    matches: vec![Match::L4proto {
                        proto: 4,
                        negate: false,
                    }],
                    verdict: Some(RuleVerdict::Verdict(Verdict::Drop)),
                    ..Rule::default()
                });
            }
        }
        for tier in &ep.tiers {
            let t = self.tier_chain(dir, tier);
            rules.push(verdict_rule(Verdict::Jump(t), None));
        }
        let mut missing = false;
        for (profile, resolved) in &ep.profiles {
            if resolved.is_none() {
                rules.push(verdict_rule(
                    Verdict::Drop,
                    Some(format!("profile {profile} not found")),
                ));
                missing = true;
                break;
            }
            let c = self.profile_chain(profile, dir);
            // A profile without rules decides nothing: no jump (and no chain).
            if self.rs.chains.get(&c).is_some_and(|ch| ch.rules.is_empty()) {
                self.rs.chains.remove(&c);
                continue;
            }
            rules.push(verdict_rule(Verdict::Jump(c), None));
        }
        if !missing {
            rules.push(verdict_rule(
                Verdict::Drop,
                Some("no profile matched".to_owned()),
            ));
        }
        let rules = self.counted(rules);
        self.put_chain(name.to_owned(), rules);
    }

    fn policy_has_pass(&self, id: &PolicyId, dir: Direction) -> bool {
        has_pass(self.program, id, dir)
    }

    fn tier_chain(&mut self, dir: Direction, tier: &TierProgram) -> String {
        let ids: Vec<String> = tier.policies.iter().map(PolicyId::chain_id).collect();
        let end = match tier.end {
            TierAction::Pass => "pass",
            _ => "deny",
        };
        let key = format!("{dir}\n{}\n{end}\n{}", tier.tier, ids.join("\n"));
        if let Some(n) = self.tier_names.get(&key) {
            return n.clone();
        }
        let name = object_name(
            &format!("tier-{}-", dir_letter(dir)),
            &format!("{}-{}", tier.tier, hash_str(&key, 10)),
        );
        self.tier_names.insert(key, name.clone());
        let pass = self.opts.pass_mark;
        let any_pass = tier.policies.iter().any(|p| self.policy_has_pass(p, dir));
        let mut rules = Vec::new();
        if any_pass {
            rules.push(Rule {
                statements: vec![Statement::MarkSet { and: !pass, or: 0 }],
                ..Rule::default()
            });
        }
        for (policy, id) in tier.policies.iter().zip(&ids) {
            let c = self.policy_chain(policy, dir, id);
            rules.push(verdict_rule(Verdict::Jump(c), None));
            if self.policy_has_pass(policy, dir) {
                rules.push(Rule {
                    matches: vec![Match::Mark {
                        mask: pass,
                        value: pass,
                        negate: false,
                    }],
                    statements: vec![Statement::MarkSet { and: !pass, or: 0 }],
                    verdict: Some(RuleVerdict::Verdict(Verdict::Return)),
                    ..Rule::default()
                });
            }
        }
        if tier.end != TierAction::Pass {
            rules.push(verdict_rule(
                Verdict::Drop,
                Some(format!("end of tier {}", tier.tier)),
            ));
        }
        let rules = self.counted(rules);
        self.put_chain(name.clone(), rules);
        name
    }

    fn policy_chain(&mut self, policy: &PolicyId, dir: Direction, id: &str) -> String {
        self.refs.policies.insert(policy.clone());
        let name = object_name(&format!("pol-{}-", dir_letter(dir)), id);
        debug_assert_eq!(name, policy_chain_name(policy, dir));
        if self.rs.chains.contains_key(&name) {
            return name;
        }
        let program = self.program;
        let mut rules = Vec::new();
        if let Some(p) = program.policies.get(&(policy.clone(), dir)) {
            for r in &p.rules {
                rules.extend(self.expand_both(r, false));
            }
        }
        let rules = self.counted(rules);
        self.put_chain(name.clone(), rules);
        name
    }

    fn profile_chain(&mut self, profile: &str, dir: Direction) -> String {
        self.refs.profiles.insert(profile.to_owned());
        let name = object_name(&format!("pro-{}-", dir_letter(dir)), profile);
        if self.rs.chains.contains_key(&name) {
            return name;
        }
        let program = self.program;
        let mut rules = Vec::new();
        if let Some(rs) = program.profiles.get(&(profile.to_owned(), dir)) {
            for r in rs {
                rules.extend(self.expand_both(r, true));
            }
        }
        let rules = self.counted(rules);
        self.put_chain(name.clone(), rules);
        name
    }

    fn add_set(&mut self, name: &str, key: SetKey, interval: bool, elements: BTreeSet<SetElement>) {
        if self.rs.sets.contains_key(name) {
            return;
        }
        self.rs.sets.insert(
            name.to_owned(),
            Set {
                key,
                interval,
                elements,
            },
        );
        self.created.sets.push(name.to_owned());
    }

    /// Sets a regular chain's rules (recording it as created when it is new).
    fn put_chain(&mut self, name: String, rules: Vec<Rule>) {
        if self
            .rs
            .chains
            .insert(name.clone(), Chain { base: None, rules })
            .is_none()
        {
            self.created.chains.push(name);
        }
    }

    fn addr_key(f: Family) -> SetKey {
        match f {
            Family::V4 => SetKey::Ipv4Addr,
            Family::V6 => SetKey::Ipv6Addr,
        }
    }

    /// The named set of a selector, for one family.
    fn selector_set(&mut self, id: &str, f: Family) -> String {
        self.refs.sets.insert(SetId::new(id.to_owned()));
        let name = selector_set_name(id, f);
        if !self.rs.sets.contains_key(&name) {
            let els = selector_elements(self.program, id, f);
            self.add_set(&name, Self::addr_key(f), true, els);
        }
        name
    }

    /// An address list as an inline prefix or a content-addressed set; `None` when no range
    /// of the family is in the list.
    fn nets_value(&mut self, nets: &[AddrRange], f: Family) -> Option<AddrValue> {
        let merged = merge_ranges(nets, f);
        match merged.as_slice() {
            [] => None,
            [one] => match range_element(one) {
                SetElement::Net(n) => Some(AddrValue::Net(n)),
                e => Some(AddrValue::Set(self.content_set(
                    &format!("nets{}-", fam_digit(f)),
                    Self::addr_key(f),
                    [e].into_iter().collect(),
                ))),
            },
            many => {
                let els: BTreeSet<SetElement> = many.iter().map(range_element).collect();
                Some(AddrValue::Set(self.content_set(
                    &format!("nets{}-", fam_digit(f)),
                    Self::addr_key(f),
                    els,
                )))
            }
        }
    }

    fn content_set(&mut self, prefix: &str, key: SetKey, els: BTreeSet<SetElement>) -> String {
        let mut desc = format!("{key:?}");
        for e in &els {
            desc.push('\n');
            desc.push_str(&e.to_string());
        }
        let name = format!("{prefix}{}", hash_str(&desc, 16));
        self.add_set(&name, key, true, els);
        name
    }

    fn ports_value(&mut self, ports: &PortSet) -> Option<PortValue> {
        match ports.ranges() {
            [] => None,
            [(a, b)] if a == b => Some(PortValue::Single(*a)),
            [(a, b)] => Some(PortValue::Range(*a, *b)),
            many => {
                let els = many
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            SetElement::Port(a)
                        } else {
                            SetElement::PortRange(a, b)
                        }
                    })
                    .collect();
                Some(PortValue::Set(self.content_set(
                    "ports-",
                    SetKey::InetService,
                    els,
                )))
            }
        }
    }

    /// The merged named-port set of `ids` for one family.
    fn named_set(&mut self, ids: &[SetId], f: Family) -> String {
        self.refs.sets.extend(ids.iter().cloned());
        let joined = ids.iter().map(SetId::as_str).collect::<Vec<_>>().join("\n");
        let name = format!("np{}-{}", fam_digit(f), hash_str(&joined, 16));
        if !self.rs.sets.contains_key(&name) {
            let els = named_elements(self.program, ids, f);
            self.add_set(&name, SetKey::AddrProtoService(nft_family(f)), false, els);
            self.named.push(NamedSet {
                name: name.clone(),
                family: f,
                ids: ids.to_vec(),
            });
        }
        name
    }

    /// Address matches of one side; `None` when the side cannot match in family `f`.
    fn addr_matches(
        &mut self,
        m: &IrMatch,
        side: Side,
        f: Family,
        with_selector: bool,
    ) -> Option<Vec<Match>> {
        let family = nft_family(f);
        let mut out = Vec::new();
        if !m.nets.is_empty() {
            let v = self.nets_value(&m.nets, f)?;
            out.push(Match::Addr {
                family,
                side,
                value: v,
                negate: false,
            });
        }
        if let Some(v) = self.nets_value(&m.not_nets, f) {
            out.push(Match::Addr {
                family,
                side,
                value: v,
                negate: true,
            });
        }
        if with_selector {
            if let Some(s) = &m.set {
                let n = self.selector_set(s.as_str(), f);
                out.push(Match::Addr {
                    family,
                    side,
                    value: AddrValue::Set(n),
                    negate: false,
                });
            }
        }
        if let Some(s) = &m.not_set {
            let n = self.selector_set(s.as_str(), f);
            out.push(Match::Addr {
                family,
                side,
                value: AddrValue::Set(n),
                negate: true,
            });
        }
        Some(out)
    }

    /// The nft rules of one IR rule in the inet table: once when the rule exists in both
    /// families and nothing in it is family-specific; otherwise per family, with
    /// `meta nfproto` added to a single-family rule that has no family-specific match.
    fn expand_both(&mut self, r: &IrRule, profile: bool) -> Vec<Rule> {
        let v4 = self.expand(r, Family::V4, profile);
        let v6 = self.expand(r, Family::V6, profile);
        let specific = |rule: &Rule| {
            rule.matches.iter().any(|m| {
                matches!(
                    m,
                    Match::Addr { .. }
                        | Match::AddrProtoPort { .. }
                        | Match::IcmpType { .. }
                        | Match::IcmpCode { .. }
                        | Match::Nfproto(_)
                        | Match::L4proto {
                            proto: 1 | 58,
                            negate: false
                        }
                )
            })
        };
        if r.families == [true, true] && v4 == v6 {
            return v4;
        }
        let mut out = Vec::with_capacity(v4.len() + v6.len());
        for (f, rules) in [(IpFamily::V4, v4), (IpFamily::V6, v6)] {
            for mut rule in rules {
                if !specific(&rule) {
                    rule.matches.insert(0, Match::Nfproto(f));
                }
                out.push(rule);
            }
        }
        out
    }

    /// The nft rules of one IR rule in family `f` (none when it does not exist there).
    fn expand(&mut self, r: &IrRule, f: Family, profile: bool) -> Vec<Rule> {
        let idx = match f {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        if !r.families[idx] {
            return Vec::new();
        }
        let family = nft_family(f);
        let icmp_proto = f.icmp_protocol();
        let uses_icmp = r.icmp.is_some() || r.not_icmp.is_some();
        if uses_icmp && r.protocol.is_some_and(|p| p != icmp_proto) {
            return Vec::new();
        }
        let mut head = Vec::new();
        match r.protocol {
            Some(p) => head.push(Match::L4proto {
                proto: p,
                negate: false,
            }),
            None if uses_icmp => head.push(Match::L4proto {
                proto: icmp_proto,
                negate: false,
            }),
            None => {}
        }
        if let Some(p) = r.not_protocol {
            head.push(Match::L4proto {
                proto: p,
                negate: true,
            });
        }
        let Some(src) = self.addr_matches(&r.src, Side::Src, f, true) else {
            return Vec::new();
        };
        head.extend(src);

        let pp = port_proto(r.protocol);
        let port_match = |value: PortValue, negate: bool| Match::Port {
            proto: pp,
            side: Side::Dst,
            value,
            negate,
        };
        let d = &r.dst;
        // Port variants: (use dst selector set, extra matches).
        let mut variants: Vec<(bool, Vec<Match>)> = Vec::new();
        if d.has_ports {
            let numeric = self.ports_value(&d.ports);
            let named = (!d.named_ports.is_empty()).then(|| self.named_set(&d.named_ports, f));
            if let Some(v) = &numeric {
                variants.push((true, vec![port_match(v.clone(), false)]));
            }
            if let Some(set) = named {
                let mut ms = vec![Match::AddrProtoPort {
                    family,
                    side: Side::Dst,
                    set,
                    negate: false,
                }];
                if r.action == Action::Log {
                    if let Some(v) = numeric {
                        ms.insert(0, port_match(v, true));
                    }
                }
                variants.push((false, ms));
            }
            if variants.is_empty() {
                return Vec::new();
            }
        } else {
            variants.push((true, Vec::new()));
        }
        let mut tail = Vec::new();
        if d.has_not_ports {
            if let Some(v) = self.ports_value(&d.not_ports) {
                tail.push(port_match(v, true));
            }
            if !d.not_named_ports.is_empty() {
                let set = self.named_set(&d.not_named_ports, f);
                tail.push(Match::AddrProtoPort {
                    family,
                    side: Side::Dst,
                    set,
                    negate: true,
                });
            }
        }
        if let Some(i) = r.icmp {
            if let Some(t) = i.icmp_type {
                tail.push(Match::IcmpType {
                    family,
                    value: t,
                    negate: false,
                });
            }
            if let Some(c) = i.code {
                tail.push(Match::IcmpCode {
                    family,
                    value: c,
                    negate: false,
                });
            }
        }
        // notICMP {T, C}: not (type T and code C) = (type != T) or (type T and code != C).
        let icmp_variants: Vec<Vec<Match>> = match r.not_icmp {
            Some(n) => match (n.icmp_type, n.code) {
                (Some(t), Some(c)) => vec![
                    vec![Match::IcmpType {
                        family,
                        value: t,
                        negate: true,
                    }],
                    vec![
                        Match::IcmpType {
                            family,
                            value: t,
                            negate: false,
                        },
                        Match::IcmpCode {
                            family,
                            value: c,
                            negate: true,
                        },
                    ],
                ],
                (Some(t), None) => vec![vec![Match::IcmpType {
                    family,
                    value: t,
                    negate: true,
                }]],
                _ => vec![Vec::new()],
            },
            None => vec![Vec::new()],
        };
        let (statements, verdict) = match r.action {
            Action::Allow => (Vec::new(), Some(Verdict::Accept)),
            Action::Deny => (Vec::new(), Some(Verdict::Drop)),
            Action::Pass if profile => (Vec::new(), Some(Verdict::Return)),
            Action::Pass => (
                vec![Statement::MarkSet {
                    and: u32::MAX,
                    or: self.opts.pass_mark,
                }],
                Some(Verdict::Return),
            ),
            Action::Log => (
                vec![Statement::Log {
                    prefix: Some(self.opts.log_prefix.clone()),
                    level: Some(LogLevel::Info),
                }],
                None,
            ),
        };
        let mut out = Vec::new();
        for (with_sel, ports) in &variants {
            let Some(dst) = self.addr_matches(d, Side::Dst, f, *with_sel) else {
                return Vec::new();
            };
            for iv in &icmp_variants {
                let mut matches = head.clone();
                matches.extend(dst.iter().cloned());
                matches.extend(ports.iter().cloned());
                matches.extend(tail.iter().cloned());
                matches.extend(iv.iter().cloned());
                out.push(Rule {
                    matches,
                    statements: statements.clone(),
                    verdict: verdict.clone().map(RuleVerdict::Verdict),
                    comment: None,
                });
            }
        }
        out
    }
}
