//! The rendered ruleset decides like the IR: a small nftables interpreter (forward hook, base
//! chains in priority order, jump/goto/return, verdict maps, the pass mark, named sets with
//! nft's implicit protocol dependencies) run on the rulesets of every node of the scenario
//! clusters, compared with `Program::evaluate` for every local workload, direction, peer
//! address and packet of a fixed list.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_model::loader::load_paths;
use calico_policy::nft::{
    AddrValue, IfnameMatch, IpFamily, Match, PortValue, RuleVerdict, Ruleset, SetElement, Side,
    Statement, Verdict, build_ruleset, node_endpoints,
};
use calico_policy::{Direction, Model, Packet};

struct Pkt {
    iif: String,
    oif: String,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    port: Option<u16>,
    icmp: Option<(u8, u8)>,
    mark: u32,
}

#[derive(Debug, PartialEq)]
enum Flow {
    Continue,
    Accept,
    Drop,
}

fn fam(ip: IpAddr) -> IpFamily {
    if ip.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    }
}

fn in_elements(rs: &Ruleset, set: &str, pred: impl Fn(&SetElement) -> bool) -> bool {
    rs.sets
        .get(set)
        .unwrap_or_else(|| panic!("missing set {set}"))
        .elements
        .iter()
        .any(pred)
}

fn addr_in(e: &SetElement, ip: IpAddr) -> bool {
    match e {
        SetElement::Net(n) => n.contains(&ip),
        SetElement::AddrRange(a, b) => fam(*a) == fam(ip) && *a <= ip && ip <= *b,
        _ => false,
    }
}

fn ifname_is(m: &IfnameMatch, name: &str) -> bool {
    match m {
        IfnameMatch::Exact(s) => s == name,
        IfnameMatch::Prefix(p) => name.starts_with(p.as_str()),
    }
}

fn matches(rs: &Ruleset, m: &Match, p: &Pkt) -> bool {
    let icmp_proto = if p.src.is_ipv4() { 1 } else { 58 };
    match m {
        Match::Iifname { name, negate } => ifname_is(name, &p.iif) != *negate,
        Match::Oifname { name, negate } => ifname_is(name, &p.oif) != *negate,
        Match::L4proto { proto, negate } => (*proto == p.proto) != *negate,
        Match::Nfproto(f) => *f == fam(p.src),
        Match::Mark {
            mask,
            value,
            negate,
        } => ((p.mark & mask) == *value) != *negate,
        Match::Addr {
            family,
            side,
            value,
            negate,
        } => {
            if *family != fam(p.src) {
                return false; // implicit `meta nfproto` dependency
            }
            let ip = if *side == Side::Src { p.src } else { p.dst };
            let hit = match value {
                AddrValue::Net(n) => n.contains(&ip),
                AddrValue::Set(s) => in_elements(rs, s, |e| addr_in(e, ip)),
            };
            hit != *negate
        }
        Match::Port {
            side,
            value,
            negate,
            ..
        } => {
            assert_eq!(*side, Side::Dst, "builder emits destination ports only");
            let Some(port) = p.port else { return false };
            let hit = match value {
                PortValue::Single(x) => port == *x,
                PortValue::Range(a, b) => *a <= port && port <= *b,
                PortValue::Set(s) => in_elements(rs, s, |e| match e {
                    SetElement::Port(x) => *x == port,
                    SetElement::PortRange(a, b) => *a <= port && port <= *b,
                    _ => false,
                }),
            };
            hit != *negate
        }
        Match::IcmpType {
            family,
            value,
            negate,
        } => {
            if *family != fam(p.src) || p.proto != icmp_proto {
                return false;
            }
            let Some((t, _)) = p.icmp else { return false };
            (t == *value) != *negate
        }
        Match::IcmpCode {
            family,
            value,
            negate,
        } => {
            if *family != fam(p.src) || p.proto != icmp_proto {
                return false;
            }
            let Some((_, c)) = p.icmp else { return false };
            (c == *value) != *negate
        }
        Match::CtState(bits) => bits & 8 != 0, // every test packet is NEW
        Match::AddrProtoPort {
            family,
            side,
            set,
            negate,
        } => {
            if *family != fam(p.src) {
                return false;
            }
            let Some(port) = p.port else { return false };
            let ip = if *side == Side::Src { p.src } else { p.dst };
            let hit = in_elements(rs, set, |e| {
                *e == SetElement::AddrProtoPort(ip, p.proto, port)
            });
            hit != *negate
        }
    }
}

/// Runs a chain: `Continue` when it returns or falls off its end.
fn run(rs: &Ruleset, chain: &str, p: &mut Pkt, depth: usize) -> Flow {
    assert!(depth < 64, "chain loop at {chain}");
    let c = rs
        .chains
        .get(chain)
        .unwrap_or_else(|| panic!("missing chain {chain}"));
    for r in &c.rules {
        if !r.matches.iter().all(|m| matches(rs, m, p)) {
            continue;
        }
        for s in &r.statements {
            if let Statement::MarkSet { and, or } = s {
                p.mark = (p.mark & and) | or;
            }
        }
        let v = match &r.verdict {
            None => continue,
            Some(RuleVerdict::Verdict(v)) => v.clone(),
            Some(RuleVerdict::Vmap { side, map }) => {
                let key = if *side == Side::Src { &p.iif } else { &p.oif };
                match rs.maps[map].elements.get(key) {
                    Some(v) => v.clone(),
                    None => continue,
                }
            }
        };
        match v {
            Verdict::Accept => return Flow::Accept,
            Verdict::Drop => return Flow::Drop,
            Verdict::Return => return Flow::Continue,
            Verdict::Jump(t) => match run(rs, &t, p, depth + 1) {
                Flow::Continue => {}
                f => return f,
            },
            Verdict::Goto(t) => return run(rs, &t, p, depth + 1),
        }
    }
    Flow::Continue
}

/// The forward hook: every forward base chain in priority order; accept ends one base chain.
fn forward(rs: &Ruleset, p: &mut Pkt) -> bool {
    let mut bases: Vec<(&String, i32)> = rs
        .chains
        .iter()
        .filter_map(|(n, c)| {
            c.base
                .filter(|b| b.hook == calico_policy::nft::Hook::Forward)
                .map(|b| (n, b.priority))
        })
        .collect();
    bases.sort_by_key(|(_, prio)| *prio);
    for (name, _) in bases {
        if run(rs, name, p, 0) == Flow::Drop {
            return false;
        }
    }
    true
}

fn packets() -> Vec<Packet> {
    let mut v = Vec::new();
    for port in [
        22, 53, 80, 81, 443, 444, 1000, 5432, 8000, 8080, 8081, 9090, 9999,
    ] {
        for protocol in [6, 17, 132] {
            v.push(Packet {
                protocol,
                port: Some(port),
                icmp_type: None,
                icmp_code: None,
            });
        }
    }
    for (t, c) in [(8, 0), (8, 1), (0, 0), (3, 4), (128, 0), (129, 0)] {
        for protocol in [1, 58] {
            v.push(Packet {
                protocol,
                port: None,
                icmp_type: Some(t),
                icmp_code: Some(c),
            });
        }
    }
    v.push(Packet {
        protocol: 47,
        port: None,
        icmp_type: None,
        icmp_code: None,
    });
    v
}

fn dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("tests/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.push(root.join("tests/nft"));
    dirs.push(root.join("../examples/cluster"));
    dirs
}

#[test]
fn ruleset_decides_like_the_ir() {
    let pkts = packets();
    let mut compared = 0usize;
    let mut allowed = 0usize;
    for dir in dirs() {
        let model = Model::build_lenient(&load_paths(&[&dir]).unwrap());
        let program = model.compile();
        let mut peers: Vec<IpAddr> = model
            .endpoints()
            .iter()
            .flat_map(|e| e.addrs.iter().copied())
            .collect();
        for s in [
            "1.2.3.4",
            "10.0.0.1",
            "172.16.0.5",
            "192.168.1.1",
            "8.8.8.8",
            "fd00::1",
        ] {
            peers.push(s.parse().unwrap());
        }
        for ns in model.network_sets() {
            peers.extend(ns.nets.iter().map(|n| n.first()));
        }
        peers.sort();
        peers.dedup();
        let mut nodes: Vec<String> = model
            .endpoints()
            .iter()
            .filter_map(|e| e.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let rs = build_ruleset(&model, &program, &node, &Default::default());
            for (key, iface) in node_endpoints(&model, &node).workloads {
                let endpoint = model
                    .endpoint(&key)
                    .expect("a node endpoint is in the model");
                for &me in &endpoint.addrs {
                    for &peer in peers.iter().filter(|p| p.is_ipv4() == me.is_ipv4()) {
                        for pk in &pkts {
                            for dir in [Direction::Ingress, Direction::Egress] {
                                let (src, dst, iif, oif) = match dir {
                                    Direction::Ingress => (peer, me, "eth0", iface.as_str()),
                                    Direction::Egress => (me, peer, iface.as_str(), "eth0"),
                                };
                                let want = program.evaluate(&key, dir, src, dst, pk);
                                let mut p = Pkt {
                                    iif: iif.to_owned(),
                                    oif: oif.to_owned(),
                                    src,
                                    dst,
                                    proto: pk.protocol,
                                    port: pk.port,
                                    icmp: pk.icmp_type.zip(pk.icmp_code),
                                    mark: 0,
                                };
                                let got = forward(&rs, &mut p);
                                assert_eq!(
                                    got,
                                    want,
                                    "{} node {node} endpoint {} {dir}: {src} -> {dst} {pk:?}",
                                    dir_name(&dir),
                                    endpoint.workload
                                );
                                compared += 1;
                                allowed += usize::from(got);
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 10_000, "only {compared} comparisons");
    assert!(
        allowed > 0 && allowed < compared,
        "{allowed} of {compared} allowed"
    );
}

fn dir_name(d: &Direction) -> String {
    format!("{d:?}")
}
