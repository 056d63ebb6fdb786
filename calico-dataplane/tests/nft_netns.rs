//! The nf_tables wire layer against the real kernel, each test in network namespaces it
//! creates (deleted on drop, panics included).
//!
//! A test re-executes this test binary inside its namespace (`ip netns exec NS <exe>
//! --exact NAME`) with `NFTW_INNER` set; the inner run does the work and asserts.
//!
//! - `encoding_matches_nft_text`: our batch and `nft -f` of the equivalent text, each in
//!   a fresh namespace, list identically (`nft list table inet calico`); a second apply
//!   sends nothing; read-back finds no drift, then finds a rule added behind our back, and
//!   a fresh applier repairs exactly that chain.
//! - `failed_batch_keeps_old_ruleset`: a batch with one bad rule fails with an error naming
//!   that rule, and the table lists exactly as before.
//! - `delta_equals_full`: an incremental apply lists exactly like a full rewrite of the same
//!   table and like a fresh apply into an empty namespace.
//! - `drop_rule_drops_ping`: a drop rule stops pings between two veth-connected namespaces.
//!
//! Not root: prints that it did NOT run and passes, unless `CALICO_REQUIRE_ROOT_TESTS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use calico_dataplane::nft::matches as m;
use calico_dataplane::nft::{
    ApplyError, BaseChain, Chain, Element, Hook, KernelVerdict, NftApplier, Rule, Set, Table,
    concat_key, datatype,
};

const INNER: &str = "NFTW_INNER";

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("nftw-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Outer half: returns true when the caller is the inner run (do the work now).
fn inner_or_spawn(test: &str, namespaces: &[&str]) -> Option<Vec<String>> {
    if std::env::var(INNER).is_ok() {
        let names = std::env::var("NFTW_NS").unwrap_or_default();
        return Some(names.split(',').map(str::to_string).collect());
    }
    if !is_root() || Command::new("nft").arg("--version").output().is_err() {
        assert!(
            std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
            "nftables netns test required but not root or nft missing"
        );
        eprintln!("NOTE: nftables netns test {test} was NOT RUN (needs root and nft)");
        return None;
    }
    let guards: Vec<Netns> = namespaces.iter().map(|t| Netns::new(t)).collect();
    let names: Vec<String> = guards.iter().map(|g| g.0.clone()).collect();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &names[0]])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env("NFTW_NS", names.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inner run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "inner run did not run the test:\n{stdout}"
    );
    drop(guards);
    None
}

fn sh_in(ns: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    use std::io::Write;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft list table inet calico`, with the table's top-level blocks (sets, maps, chains) sorted
/// by their text: nft lists objects in creation order, which is not part of the ruleset.
fn list(ns: Option<&str>) -> String {
    let text = sh_in(ns, &["nft", "list", "table", "inet", "calico"], None);
    let mut blocks: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut head = Vec::new();
    let mut tail = Vec::new();
    for line in text.lines() {
        if line.starts_with("\t\t") || (line.starts_with('\t') && !cur.is_empty()) {
            cur.push_str(line);
            cur.push('\n');
            if line == "\t}" {
                blocks.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with('\t') {
            cur.push_str(line);
            cur.push('\n');
        } else if line.is_empty() {
        } else if blocks.is_empty() && cur.is_empty() {
            head.push(line);
        } else {
            tail.push(line);
        }
    }
    blocks.sort();
    format!(
        "{}\n{}{}\n",
        head.join("\n"),
        blocks.concat(),
        tail.join("\n")
    )
}

fn rule(parts: Vec<Vec<calico_dataplane::nft::Expr>>, comment: Option<&str>) -> Rule {
    Rule {
        exprs: parts.into_iter().flatten().collect(),
        comment: comment.map(str::to_string),
    }
}

fn range_el(lo: &[u8], hi: &[u8]) -> Element {
    Element {
        key: lo.to_vec(),
        key_end: Some(hi.to_vec()),
        verdict: None,
    }
}

fn one_el(k: &[u8]) -> Element {
    Element {
        key: k.to_vec(),
        key_end: None,
        verdict: None,
    }
}

/// A small worked example (one workload, one policy), as a table and as text.
fn example(extra_port: bool) -> (Table, String) {
    let mut t = Table::default();
    let mut s4 = Set::new(datatype::IPADDR, 4, true);
    s4.elements = vec![
        one_el(&[10, 244, 1, 7]),
        range_el(&[10, 244, 2, 0], &[10, 244, 2, 63]),
        range_el(&[10, 244, 2, 64], &[10, 244, 2, 127]),
        range_el(&[10, 244, 3, 0], &[10, 244, 3, 255]),
    ];
    t.sets.insert("s4-web".into(), s4);
    t.sets
        .insert("s6-web".into(), Set::new(datatype::IP6ADDR, 16, true));
    let mut ports = Set::new(datatype::INET_SERVICE, 2, true);
    ports.elements = vec![
        one_el(&80u16.to_be_bytes()),
        one_el(&443u16.to_be_bytes()),
        range_el(&8000u16.to_be_bytes(), &8080u16.to_be_bytes()),
    ];
    if extra_port {
        ports.elements.push(one_el(&9090u16.to_be_bytes()));
    }
    t.sets.insert("ports-kq3".into(), ports);
    let mut nets = Set::new(datatype::IPADDR, 4, true);
    nets.elements = vec![
        range_el(&[10, 0, 0, 0], &[10, 255, 255, 255]),
        range_el(&[192, 168, 0, 0], &[192, 168, 255, 255]),
    ];
    t.sets.insert("nets4-x1".into(), nets);
    let mut np = Set {
        key_types: vec![
            datatype::IPADDR,
            datatype::INET_PROTOCOL,
            datatype::INET_SERVICE,
        ],
        key_lens: vec![4, 1, 2],
        interval: false,
        verdict_map: false,
        elements: vec![],
    };
    np.elements.push(one_el(&concat_key(&[
        &[10, 244, 1, 7],
        &[6],
        &8080u16.to_be_bytes(),
    ])));
    t.sets.insert("np4-http".into(), np);
    for (map, pre) in [("from-wl", "ep-fw-"), ("to-wl", "ep-tw-")] {
        let mut s = Set::new(datatype::IFNAME, 16, false);
        s.verdict_map = true;
        s.elements.push(Element {
            key: m::ifname_key("cali1a2b3c4d5e6"),
            key_end: None,
            verdict: Some(KernelVerdict::Goto(format!("{pre}cali1a2b3c4d5e6"))),
        });
        t.sets.insert(map.into(), s);
    }
    for (name, input, map, prio) in [
        ("fwd-egress", true, "from-wl", 5),
        ("fwd-ingress", false, "to-wl", 6),
    ] {
        let c = Chain {
            base: Some(BaseChain {
                hook: Hook::Forward,
                priority: prio,
                policy_accept: true,
            }),
            rules: vec![
                rule(
                    vec![
                        m::ct_state_any(m::ct_state::ESTABLISHED | m::ct_state::RELATED),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::ct_state_any(m::ct_state::INVALID),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    None,
                ),
                rule(vec![m::ifname_vmap(input, map)], None),
                rule(
                    vec![
                        m::ifname(input, "cali*", false),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    Some("unknown workload interface"),
                ),
            ],
        };
        t.chains.insert(name.into(), c);
    }
    let jump = |c: &str| m::verdict(KernelVerdict::Jump(c.into()));
    t.chains.insert(
        "ep-tw-cali1a2b3c4d5e6".into(),
        Chain {
            base: None,
            rules: vec![
                rule(vec![jump("tier-i-default-3f9a")], None),
                rule(vec![jump("pro-i-kns.prod")], None),
                rule(
                    vec![m::verdict(KernelVerdict::Drop)],
                    Some("no profile matched"),
                ),
            ],
        },
    );
    t.chains.insert(
        "ep-fw-cali1a2b3c4d5e6".into(),
        Chain {
            base: None,
            rules: vec![
                rule(
                    vec![
                        m::l4proto(17),
                        m::port_eq(false, 4789, false),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    None,
                ),
                rule(vec![m::l4proto(4), m::verdict(KernelVerdict::Drop)], None),
                rule(vec![jump("pro-o-kns.prod")], None),
                rule(
                    vec![m::verdict(KernelVerdict::Drop)],
                    Some("no profile matched"),
                ),
            ],
        },
    );
    t.chains.insert(
        "tier-i-default-3f9a".into(),
        Chain {
            base: None,
            rules: vec![
                rule(vec![m::mark_and(0xfffd_ffff)], None),
                rule(vec![jump("pol-i-np/prod/allow-web")], None),
                rule(
                    vec![
                        m::mark_all_set(0x0002_0000),
                        m::mark_and(0xfffd_ffff),
                        m::verdict(KernelVerdict::Return),
                    ],
                    None,
                ),
                rule(
                    vec![m::verdict(KernelVerdict::Drop)],
                    Some("end of tier default"),
                ),
            ],
        },
    );
    t.chains.insert(
        "pol-i-np/prod/allow-web".into(),
        Chain {
            base: None,
            rules: vec![
                rule(
                    vec![
                        m::l4proto(6),
                        m::addr_in_set(false, true, "s4-web", false),
                        m::port_in_set(false, "ports-kq3", false),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::l4proto(6),
                        m::addr_in_set(true, true, "s6-web", false),
                        m::port_in_set(false, "ports-kq3", false),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::addr_proto_port_in_set(false, false, "np4-http"),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::addr_in_set(false, true, "nets4-x1", false),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::l4proto(1),
                        m::icmp_field(false, 8, true),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::l4proto(1),
                        m::icmp_field(false, 8, false),
                        m::icmp_field(true, 0, true),
                        m::verdict(KernelVerdict::Accept),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::addr_match(true, "172.16.0.0/12".parse().unwrap(), false),
                        m::mark_or(0x0002_0000),
                        m::verdict(KernelVerdict::Return),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::addr_match(true, "fd00::/8".parse().unwrap(), true),
                        m::l4proto(6),
                        m::port_range(false, 80, 90, false),
                        m::counter(),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    None,
                ),
                rule(
                    vec![
                        m::l4proto(17),
                        m::port_range(true, 1000, 2000, true),
                        m::addr_in_set(false, false, "nets4-x1", true),
                        m::verdict(KernelVerdict::Drop),
                    ],
                    None,
                ),
                rule(vec![m::log(Some("calico-packet: "), Some(6))], None),
            ],
        },
    );
    for p in ["pro-i-kns.prod", "pro-o-kns.prod"] {
        t.chains.insert(
            p.into(),
            Chain {
                base: None,
                rules: vec![rule(vec![m::verdict(KernelVerdict::Accept)], None)],
            },
        );
    }
    let ports = if extra_port {
        "80, 443, 8000-8080, 9090"
    } else {
        "80, 443, 8000-8080"
    };
    let text = format!(
        r#"table inet calico {{
	set s4-web {{ type ipv4_addr; flags interval; elements = {{ 10.244.1.7, 10.244.2.0/26, 10.244.2.64/26, 10.244.3.0/24 }} }}
	set s6-web {{ type ipv6_addr; flags interval; }}
	set ports-kq3 {{ type inet_service; flags interval; elements = {{ {ports} }} }}
	set nets4-x1 {{ type ipv4_addr; flags interval; elements = {{ 10.0.0.0/8, 192.168.0.0/16 }} }}
	set np4-http {{ type ipv4_addr . inet_proto . inet_service; elements = {{ 10.244.1.7 . tcp . 8080 }} }}
	map from-wl {{ type ifname : verdict; elements = {{ "cali1a2b3c4d5e6" : goto ep-fw-cali1a2b3c4d5e6 }} }}
	map to-wl {{ type ifname : verdict; elements = {{ "cali1a2b3c4d5e6" : goto ep-tw-cali1a2b3c4d5e6 }} }}
	chain fwd-egress {{
		type filter hook forward priority filter + 5; policy accept;
		ct state established,related accept
		ct state invalid drop
		iifname vmap @from-wl
		iifname "cali*" drop comment "unknown workload interface"
	}}
	chain fwd-ingress {{
		type filter hook forward priority filter + 6; policy accept;
		ct state established,related accept
		ct state invalid drop
		oifname vmap @to-wl
		oifname "cali*" drop comment "unknown workload interface"
	}}
	chain ep-tw-cali1a2b3c4d5e6 {{
		jump tier-i-default-3f9a
		jump pro-i-kns.prod
		drop comment "no profile matched"
	}}
	chain ep-fw-cali1a2b3c4d5e6 {{
		meta l4proto udp udp dport 4789 drop
		meta l4proto 4 drop
		jump pro-o-kns.prod
		drop comment "no profile matched"
	}}
	chain tier-i-default-3f9a {{
		meta mark set meta mark & 0xfffdffff
		jump pol-i-np/prod/allow-web
		meta mark & 0x00020000 == 0x00020000 meta mark set meta mark & 0xfffdffff return
		drop comment "end of tier default"
	}}
	chain pol-i-np/prod/allow-web {{
		meta l4proto tcp ip saddr @s4-web tcp dport @ports-kq3 accept
		meta l4proto tcp ip6 saddr @s6-web tcp dport @ports-kq3 accept
		ip daddr . meta l4proto . th dport @np4-http accept
		ip saddr @nets4-x1 drop
		meta l4proto icmp icmp type != 8 accept
		meta l4proto icmp icmp type 8 icmp code != 0 accept
		ip saddr 172.16.0.0/12 meta mark set meta mark | 0x00020000 return
		ip6 saddr != fd00::/8 meta l4proto tcp tcp dport 80-90 counter drop
		meta l4proto udp udp sport != 1000-2000 ip daddr != @nets4-x1 drop
		log prefix "calico-packet: " level info
	}}
	chain pro-i-kns.prod {{
		accept
	}}
	chain pro-o-kns.prod {{
		accept
	}}
}}
"#
    );
    (t, text)
}

/// `nft -f` of `text` in namespace `ns` (fresh), then its listing.
fn reference_listing(ns: &str, text: &str) -> String {
    sh_in(Some(ns), &["nft", "-f", "-"], Some(text));
    list(Some(ns))
}

fn assert_same(ours: &str, theirs: &str) {
    if ours != theirs {
        let mut msg = String::new();
        for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
            if a != b {
                msg.push_str(&format!("line {i}:\n  ours:   {a}\n  nft -f: {b}\n"));
            }
        }
        panic!("listings differ:\n{msg}\n--- ours ---\n{ours}\n--- nft -f ---\n{theirs}");
    }
}

#[test]
fn encoding_matches_nft_text() {
    let Some(ns) = inner_or_spawn("encoding_matches_nft_text", &["enc", "ref"]) else {
        return;
    };
    let (table, text) = example(false);
    let mut a = NftApplier::new("calico").unwrap();
    let st = a.apply(&table).unwrap();
    assert!(st.messages > 20, "{st:?}");
    let ours = list(None);
    let theirs = reference_listing(&ns[1], &text);
    assert_same(&ours, &theirs);
    // Apply twice: nothing sent, nothing changed.
    let again = a.apply(&table).unwrap();
    assert_eq!(again.messages, 0, "{again:?}");
    assert_eq!(list(None), ours);
    // A fresh applier (no remembered state) reads back and also sends nothing.
    let mut fresh = NftApplier::new("calico").unwrap();
    assert!(fresh.drift(&table).unwrap().is_empty());
    assert_eq!(fresh.apply(&table).unwrap().messages, 0);
    // Drift: a rule added and an element deleted behind our back.
    sh_in(
        None,
        &[
            "nft",
            "add",
            "rule",
            "inet",
            "calico",
            "pro-i-kns.prod",
            "counter",
        ],
        None,
    );
    sh_in(
        None,
        &[
            "nft",
            "delete",
            "element",
            "inet",
            "calico",
            "ports-kq3",
            "{ 443 }",
        ],
        None,
    );
    let d = fresh.drift(&table).unwrap();
    assert_eq!(d.chains, vec!["pro-i-kns.prod".to_string()]);
    assert_eq!(d.sets, vec!["ports-kq3".to_string()]);
    fresh.forget();
    let fix = fresh.apply(&table).unwrap();
    assert_eq!((fix.chains_written, fix.sets_written), (1, 1), "{fix:?}");
    assert!(fresh.drift(&table).unwrap().is_empty());
    assert_same(&list(None), &theirs);
}

#[test]
fn failed_batch_keeps_old_ruleset() {
    if inner_or_spawn("failed_batch_keeps_old_ruleset", &["fail"]).is_none() {
        return;
    }
    let (table, _) = example(false);
    let mut a = NftApplier::new("calico").unwrap();
    a.apply(&table).unwrap();
    let before = list(None);
    let (mut bad, _) = example(true);
    let pol = bad.chains.get_mut("pol-i-np/prod/allow-web").unwrap();
    pol.rules.insert(
        2,
        rule(
            vec![m::verdict(KernelVerdict::Jump("no-such-chain".into()))],
            None,
        ),
    );
    let err = a.apply(&bad).unwrap_err();
    match &err {
        ApplyError::Rejected { first, .. } => {
            assert_eq!(first.op, "add rule");
            assert_eq!(first.object, "pol-i-np/prod/allow-web #2");
            assert_eq!(first.errno, 2, "{err}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(list(None), before, "failed batch changed the table");
    // The applier re-reads after a failure and applies the good table again: no change.
    assert_eq!(a.apply(&table).unwrap().messages, 0);
    // Full rewrite of the same table: same listing, never deletes the table.
    let full = a.apply_full(&table).unwrap();
    assert!(full.messages > 20);
    assert_eq!(list(None), before);
}

#[test]
fn delta_equals_full() {
    let Some(ns) = inner_or_spawn("delta_equals_full", &["delta", "full"]) else {
        return;
    };
    let (t1, _) = example(false);
    let (mut t2, text2) = example(true);
    // Also: a chain removed, a rule changed, a set removed, a map element retargeted.
    t2.chains.remove("pro-o-kns.prod");
    let fw = t2.chains.get_mut("ep-fw-cali1a2b3c4d5e6").unwrap();
    fw.rules[2] = rule(
        vec![m::verdict(KernelVerdict::Jump("pro-i-kns.prod".into()))],
        None,
    );
    let mut a = NftApplier::new("calico").unwrap();
    a.apply(&t1).unwrap();
    let d = a.apply(&t2).unwrap();
    assert!(d.messages < 12, "delta too large: {d:?}");
    assert_eq!(d.chains_written, 1);
    assert_eq!(d.sets_written, 1);
    let delta = list(None);
    assert!(!delta.contains("pro-o-kns.prod"));
    assert!(delta.contains("9090"));
    // Same text edits applied to the reference.
    let text2 = text2
        .replace("\tchain pro-o-kns.prod {\n\t\taccept\n\t}\n", "")
        .replace("jump pro-o-kns.prod", "jump pro-i-kns.prod");
    assert_same(&delta, &reference_listing(&ns[1], &text2));
    a.apply_full(&t2).unwrap();
    assert_eq!(list(None), delta);
    // Back to t1 incrementally equals t1 from nothing.
    a.apply(&t1).unwrap();
    let back = list(None);
    sh_in(None, &["nft", "delete", "table", "inet", "calico"], None);
    let mut b = NftApplier::new("calico").unwrap();
    b.apply(&t1).unwrap();
    assert_eq!(list(None), back);
}

#[test]
fn drop_rule_drops_ping() {
    let Some(ns) = inner_or_spawn("drop_rule_drops_ping", &["pb", "pa"]) else {
        return;
    };
    // We run inside ns[0] (B); ns[1] is A.
    let (b, a) = (&ns[0], &ns[1]);
    sh_in(
        None,
        &[
            "ip", "link", "add", "vb", "type", "veth", "peer", "name", "va", "netns", a,
        ],
        None,
    );
    sh_in(
        None,
        &["ip", "addr", "add", "10.99.0.2/24", "dev", "vb"],
        None,
    );
    sh_in(None, &["ip", "link", "set", "vb", "up"], None);
    sh_in(
        Some(a),
        &["ip", "addr", "add", "10.99.0.1/24", "dev", "va"],
        None,
    );
    sh_in(Some(a), &["ip", "link", "set", "va", "up"], None);
    let ping = || {
        Command::new("ip")
            .args(["netns", "exec", a, "ping", "-c1", "-W1", "10.99.0.2"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ping(), "ping before the rule failed (setup in {b})");
    let mut t = Table::default();
    t.chains.insert(
        "in".into(),
        Chain {
            base: Some(BaseChain {
                hook: Hook::Input,
                priority: 0,
                policy_accept: true,
            }),
            rules: vec![rule(
                vec![
                    m::addr_match(true, "10.99.0.1/32".parse().unwrap(), false),
                    m::l4proto(1),
                    m::icmp_field(false, 8, false),
                    m::verdict(KernelVerdict::Drop),
                ],
                None,
            )],
        },
    );
    let mut ap = NftApplier::new("calico").unwrap();
    ap.apply(&t).unwrap();
    assert!(!ping(), "ping passed the drop rule");
    t.chains.get_mut("in").unwrap().rules.clear();
    ap.apply(&t).unwrap();
    assert!(ping(), "ping failed after the rule was removed");
}

// ---------------------------------------------------------------------------------------
// The policy crate's rulesets (calico_policy::nft) through NftDataplane.

mod model {
    use super::*;
    use calico_dataplane::nft::NftDataplane;
    use calico_policy::Model;
    use calico_policy::nft::{RenderOptions, Ruleset, RulesetDelta, build_ruleset};

    const EXAMPLE: &str = include_str!("../../calico-policy/tests/nft/example.yaml");

    fn ruleset_of(yaml: &str) -> Ruleset {
        let model = Model::build(&calico_model::loader::load_str("m.yaml", yaml)).unwrap();
        let program = model.compile();
        build_ruleset(&model, &program, "node1", &RenderOptions::default())
    }

    /// The example plus: one more port, a second web pod on node1, an egress policy with
    /// negated nets and ports, and a GlobalNetworkPolicy with a selector.
    fn bigger() -> Ruleset {
        let yaml = EXAMPLE.replace(r#""8000:8080"]"#, r#""8000:8080", 9090]"#)
            + r#"---
apiVersion: v1
kind: Pod
metadata: {name: web2, namespace: prod, labels: {role: web}}
spec:
  nodeName: node1
  containers: [{name: c, image: i, ports: [{name: http, containerPort: 8081}]}]
status: {podIP: 10.244.1.8}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: egress, namespace: prod}
spec:
  selector: role == 'web'
  types: [Egress]
  egress:
    - {action: Deny, protocol: UDP, destination: {notNets: [10.0.0.0/8], notPorts: [53, "1000:2000"]}}
    - {action: Allow, destination: {nets: [10.1.2.3/32, 10.9.0.0/17]}}
    - {action: Allow, destination: {nets: ["fd00::/64"]}}
"#;
        ruleset_of(&yaml)
    }

    fn reload(ns: &str, text: &str) -> String {
        sh_in(Some(ns), &["nft", "flush", "ruleset"], None);
        reference_listing(ns, text)
    }

    #[test]
    fn model_ruleset_matches_nft_text() {
        let Some(ns) = inner_or_spawn("model::model_ruleset_matches_nft_text", &["mrs", "mref"])
        else {
            return;
        };
        for rs in [ruleset_of(EXAMPLE), bigger()] {
            let mut dp = NftDataplane::new().unwrap();
            dp.apply_ruleset(&rs).unwrap();
            assert_same(&list(None), &reload(&ns[1], &rs.to_nft()));
            assert_eq!(
                dp.apply_ruleset(&rs).unwrap().messages,
                0,
                "second apply sent messages"
            );
            assert!(dp.drift().unwrap().is_empty());
        }
    }

    #[test]
    fn model_delta_matches_full() {
        let Some(ns) = inner_or_spawn("model::model_delta_matches_full", &["mdelta", "mdref"])
        else {
            return;
        };
        let (small, big) = (ruleset_of(EXAMPLE), bigger());
        let mut dp = NftDataplane::new().unwrap();
        dp.apply_ruleset(&small).unwrap();
        for (from, to) in [
            (&small, &big),
            (&big, &small),
            (&small, &Ruleset::default()),
            (&Ruleset::default(), &big),
        ] {
            let delta = RulesetDelta::between(from, to);
            let st = dp.apply_delta(&delta).unwrap();
            assert!(st.messages > 0);
            assert!(dp.drift().unwrap().is_empty(), "drift after delta");
            // The applier's remembered kernel state followed the delta: its own diff of the
            // whole table sends nothing, and neither does a whole apply.
            let t = calico_dataplane::nft::model::table(to);
            assert_eq!(dp.applier().apply(&t).unwrap().messages, 0);
            assert_eq!(dp.apply_ruleset(to).unwrap().messages, 0);
            assert_same(&list(None), &reload(&ns[1], &to.to_nft()));
        }
    }

    #[test]
    fn model_failed_delta_keeps_old_ruleset() {
        if inner_or_spawn("model::model_failed_delta_keeps_old_ruleset", &["mfail"]).is_none() {
            return;
        }
        let (small, big) = (ruleset_of(EXAMPLE), bigger());
        let mut dp = NftDataplane::new().unwrap();
        dp.apply_ruleset(&small).unwrap();
        let before = list(None);
        let mut delta = RulesetDelta::between(&small, &big);
        // Break the last rule: a jump to a chain that does not exist.
        let fill = delta.fill_chains.last_mut().unwrap();
        let name = fill.chain.clone();
        fill.rules.push(calico_policy::nft::Rule {
            verdict: Some(calico_policy::nft::RuleVerdict::Verdict(
                calico_policy::nft::Verdict::Jump("missing".into()),
            )),
            ..Default::default()
        });
        let err = dp.apply_delta(&delta).unwrap_err();
        let ApplyError::Rejected { first, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(first.op, "add rule");
        assert!(first.object.starts_with(&name), "{err}");
        assert_eq!(list(None), before);
        // Still in step: the real delta applies.
        dp.apply_delta(&RulesetDelta::between(&small, &big))
            .unwrap();
        assert!(dp.drift().unwrap().is_empty());
    }

    /// An interval set of single addresses (adjacent ones among them) changed element by
    /// element: each delta sends only the changed elements' start and end markers, and the
    /// kernel ends up holding exactly the new set (as `nft` loads it).
    #[test]
    fn model_interval_singles_change_element_by_element() {
        use calico_policy::nft::{Set, SetElement, SetKey};
        let Some(ns) = inner_or_spawn(
            "model::model_interval_singles_change_element_by_element",
            &["mint", "mintref"],
        ) else {
            return;
        };
        let table = |addrs: &[u8]| {
            let mut rs = Ruleset::default();
            rs.sets.insert(
                "s4-x".into(),
                Set {
                    key: SetKey::Ipv4Addr,
                    interval: true,
                    elements: addrs
                        .iter()
                        .map(|a| SetElement::Net(format!("10.0.0.{a}/32").parse().unwrap()))
                        .collect(),
                },
            );
            rs
        };
        let steps: [&[u8]; 6] = [
            &[1, 2, 3, 7],
            &[1, 3, 7],
            &[1, 2, 3, 4, 7, 8],
            &[2, 4, 8],
            &[],
            &[5, 6],
        ];
        let mut dp = NftDataplane::new().unwrap();
        let mut prev = table(&[1, 2, 3, 7]);
        dp.apply_ruleset(&prev).unwrap();
        for addrs in steps {
            let next = table(addrs);
            let delta = RulesetDelta::between(&prev, &next);
            let lists = delta.remove_elements.len() + delta.add_elements.len();
            let st = dp.apply_delta(&delta).unwrap();
            // Between non-empty sets: one message per element list, no flush and no
            // rewrite of the set (an empty set has no leading END marker, so becoming or
            // leaving empty rewrites it).
            let both = !prev.sets["s4-x"].elements.is_empty() && !addrs.is_empty();
            if both {
                assert_eq!(st.messages, lists, "{addrs:?}");
            }
            assert!(dp.drift().unwrap().is_empty(), "drift after {addrs:?}");
            let t = calico_dataplane::nft::model::table(&next);
            assert_eq!(dp.applier().apply(&t).unwrap().messages, 0, "{addrs:?}");
            assert_same(&list(None), &reload(&ns[1], &next.to_nft()));
            prev = next;
        }
    }

    /// An apply larger than the batch limit fills its new sets in transactions of their
    /// own first; the kernel ends up with exactly the table, as `nft` loads it.
    #[test]
    fn model_large_apply_fills_new_sets_first() {
        use calico_policy::nft::{
            AddrValue, Chain, IpFamily, Match, Rule, RuleVerdict, Set, SetElement, SetKey, Side,
            Verdict,
        };
        let Some(ns) = inner_or_spawn(
            "model::model_large_apply_fills_new_sets_first",
            &["mlarge", "mlargeref"],
        ) else {
            return;
        };
        let mut rs = Ruleset::default();
        let mut rules = Vec::new();
        for k in 0..3u8 {
            let name = format!("s4-big{k}");
            // Singles, some adjacent, and a range: interval encoding with shared edges.
            let mut elements: std::collections::BTreeSet<SetElement> = (0..3000u32)
                .map(|i| {
                    let a = std::net::Ipv4Addr::from(
                        0x0a00_0000 + (u32::from(k) << 16) + i * 2 + (i % 3 == 0) as u32,
                    );
                    SetElement::Net(ipnet::IpNet::from(std::net::IpAddr::V4(a)))
                })
                .collect();
            elements.insert(SetElement::Net(format!("172.16.{k}.0/24").parse().unwrap()));
            rs.sets.insert(
                name.clone(),
                Set {
                    key: SetKey::Ipv4Addr,
                    interval: true,
                    elements,
                },
            );
            rules.push(Rule {
                matches: vec![Match::Addr {
                    family: IpFamily::V4,
                    side: Side::Src,
                    value: AddrValue::Set(name),
                    negate: false,
                }],
                verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
                ..Rule::default()
            });
        }
        rs.chains.insert("c".into(), Chain { base: None, rules });
        // A verdict map pointing at the chain: it can only be filled once the chain exists.
        let mut vm = calico_policy::nft::VerdictMap::default();
        vm.elements
            .insert("cali1234".into(), Verdict::Goto("c".into()));
        rs.maps.insert("from-wl".into(), vm);
        let mut dp = NftDataplane::new().unwrap();
        dp.applier().set_batch_limit(16 << 10);
        let st = dp.apply_ruleset(&rs).unwrap();
        assert!(st.bytes > 16 << 10, "{st:?}");
        assert!(dp.drift().unwrap().is_empty());
        assert_same(&list(None), &reload(&ns[1], &rs.to_nft()));
        assert_eq!(dp.apply_ruleset(&rs).unwrap().messages, 0);
        let t = calico_dataplane::nft::model::table(&rs);
        assert_eq!(dp.applier().apply(&t).unwrap().messages, 0);
    }
}
