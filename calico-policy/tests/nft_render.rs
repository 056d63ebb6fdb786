//! nftables rendering: the small example of `tests/nft/example.yaml` as a golden, deltas between
//! rulesets, and real `nft` in network namespaces this test creates.
//!
//! The namespace tests need root and `nft`/`ip`: when they cannot run they say so on stderr
//! and pass, unless `CALICO_REQUIRE_ROOT_TESTS=1` (CI as root), in which case they fail.
//! Every namespace is named `cpr-<pid>-<n>` and deleted by a guard, panics included.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration-test helpers

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use calico_model::loader::{load_paths, load_str};
use calico_policy::Model;
use calico_policy::nft::{RenderOptions, Ruleset, RulesetDelta, build_ruleset, reachable_chains};

fn model_of(yaml: &str) -> Model {
    Model::build(&load_str("m.yaml", yaml)).unwrap()
}

fn ruleset_of(yaml: &str, node: &str) -> Ruleset {
    let model = model_of(yaml);
    let program = model.compile();
    build_ruleset(&model, &program, node, &RenderOptions::default())
}

const EXAMPLE: &str = include_str!("nft/example.yaml");

/// Replaces the hash part of content-addressed and hashed names by `#`.
fn unhash(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut rest = line;
        'scan: while !rest.is_empty() {
            for p in [
                "ports-",
                "nets4-",
                "nets6-",
                "np4-",
                "np6-",
                "s4-",
                "s6-",
                "tier-i-default-",
                "tier-o-default-",
            ] {
                if let Some(after) = rest.strip_prefix(p) {
                    let boundary = rest.len() == line.len()
                        || !line.as_bytes()[line.len() - rest.len() - 1].is_ascii_alphanumeric();
                    if boundary {
                        out.push_str(p);
                        out.push('#');
                        let end = after
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                            .unwrap_or(after.len());
                        rest = &after[end..];
                        continue 'scan;
                    }
                }
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.push('\n');
    out
}

const EXAMPLE_GOLDEN: &str = r#"table inet calico {
	set nets4-# {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8, 192.168.0.0/16 }
	}
	set np4-# {
		type ipv4_addr . inet_proto . inet_service
		elements = { 10.244.1.7 . tcp . 8080 }
	}
	set np6-# {
		type ipv6_addr . inet_proto . inet_service
	}
	set ports-# {
		type inet_service
		flags interval
		elements = { 80, 443, 8000-8080 }
	}
	set s4-# {
		type ipv4_addr
		flags interval
		elements = { 10.244.2.5 }
	}
	set s6-# {
		type ipv6_addr
		flags interval
	}
	map from-wl {
		type ifname : verdict
		elements = { "calic36cb0217f8" : goto ep-fw-calic36cb0217f8 }
	}
	map to-wl {
		type ifname : verdict
		elements = { "calic36cb0217f8" : goto ep-tw-calic36cb0217f8 }
	}
	chain in-wl {
		type filter hook input priority filter + 5; policy accept;
		iifname "cali*" ct state established,related accept
		iifname "cali*" ct state invalid drop
		meta l4proto icmpv6 icmpv6 type 130 accept
		meta l4proto icmpv6 icmpv6 type 131 accept
		meta l4proto icmpv6 icmpv6 type 132 accept
		meta l4proto icmpv6 icmpv6 type 133 accept
		meta l4proto icmpv6 icmpv6 type 135 accept
		meta l4proto icmpv6 icmpv6 type 136 accept
		iifname vmap @from-wl
		iifname "cali*" drop comment "unknown workload interface"
	}
	chain in-wl-host {
		type filter hook input priority filter + 6; policy accept;
		iifname "cali*" ct state established,related accept
		iifname "cali*" ct state invalid drop
		meta l4proto icmpv6 icmpv6 type 130 accept
		meta l4proto icmpv6 icmpv6 type 131 accept
		meta l4proto icmpv6 icmpv6 type 132 accept
		meta l4proto icmpv6 icmpv6 type 133 accept
		meta l4proto icmpv6 icmpv6 type 135 accept
		meta l4proto icmpv6 icmpv6 type 136 accept
		iifname "cali*" drop comment "defaultEndpointToHostAction"
	}
	chain fwd-egress {
		type filter hook forward priority filter + 5; policy accept;
		iifname "cali*" ct state established,related accept
		iifname "cali*" ct state invalid drop
		iifname vmap @from-wl
		iifname "cali*" drop comment "unknown workload interface"
	}
	chain fwd-ingress {
		type filter hook forward priority filter + 6; policy accept;
		oifname "cali*" ct state established,related accept
		oifname "cali*" ct state invalid drop
		oifname vmap @to-wl
		oifname "cali*" drop comment "unknown workload interface"
	}
	chain ep-fw-calic36cb0217f8 {
		meta l4proto udp udp dport 4789 drop
		meta l4proto 4 drop
		jump pro-o-kns.prod
		drop comment "no profile matched"
	}
	chain ep-tw-calic36cb0217f8 {
		jump tier-i-default-#
		jump pro-i-kns.prod
		drop comment "no profile matched"
	}
	chain pol-i-np/prod/allow-web {
		meta l4proto tcp ip saddr @s4-# tcp dport @ports-# accept
		meta l4proto tcp ip6 saddr @s6-# tcp dport @ports-# accept
		meta l4proto tcp ip daddr . meta l4proto . th dport @np4-# accept
		meta l4proto tcp ip6 daddr . meta l4proto . th dport @np6-# accept
		ip saddr @nets4-# drop
		meta l4proto icmp icmp type != 8 accept
		meta l4proto icmp icmp type 8 icmp code != 0 accept
		ip saddr 172.16.0.0/12 meta mark set meta mark | 0x00020000 return
		log prefix "calico-packet: " level info
	}
	chain pro-i-kns.prod {
		accept
	}
	chain pro-o-kns.prod {
		accept
	}
	chain tier-i-default-# {
		meta mark set meta mark & 0xfffdffff
		jump pol-i-np/prod/allow-web
		meta mark & 0x00020000 == 0x00020000 meta mark set meta mark & 0xfffdffff return
		drop comment "end of tier default"
	}
}
"#;

#[test]
fn example_golden() {
    let rs = ruleset_of(EXAMPLE, "node1");
    let text = rs.to_nft();
    assert_eq!(unhash(&text), EXAMPLE_GOLDEN, "full text:\n{text}");
}

#[test]
fn example_invariants() {
    let rs = ruleset_of(EXAMPLE, "node1");
    // Only reachable chains, only referenced sets, names within the limit.
    let reachable = reachable_chains(&rs);
    let all: std::collections::BTreeSet<String> = rs.chains.keys().cloned().collect();
    assert_eq!(reachable, all);
    let used = rs.set_references();
    for name in rs.sets.keys().chain(rs.maps.keys()) {
        assert!(used.contains_key(name), "unreferenced set {name}");
    }
    for name in rs.sets.keys().chain(rs.maps.keys()).chain(rs.chains.keys()) {
        assert!(name.len() < 256, "{name}");
    }
    // The ports set is shared: both family rules of R0 use the same one.
    assert_eq!(
        used.iter().filter(|(k, _)| k.starts_with("ports-")).count(),
        1
    );
    // Another node has no workloads: empty maps, no endpoint chains, no sets.
    let other = ruleset_of(EXAMPLE, "node-x");
    assert!(other.sets.is_empty());
    assert!(other.maps.values().all(|m| m.elements.is_empty()));
    assert!(!other.chains.keys().any(|c| c.starts_with("ep-")));
    // node2 runs the frontend, which has no policy: its ingress goes straight to profiles.
    let n2 = ruleset_of(EXAMPLE, "node2");
    let tw = n2
        .chains
        .iter()
        .find(|(k, _)| k.starts_with("ep-tw-"))
        .map(|(_, c)| c)
        .unwrap();
    assert!(
        !tw.rules
            .iter()
            .any(|r| r.target().is_some_and(|t| t.starts_with("tier-")))
    );
}

#[test]
fn counters_option() {
    let model = model_of(EXAMPLE);
    let program = model.compile();
    let opts = RenderOptions {
        counters: true,
        ..RenderOptions::default()
    };
    let rs = build_ruleset(&model, &program, "node1", &opts);
    let pol = &rs.chains["pol-i-np/prod/allow-web"];
    assert!(
        pol.rules
            .iter()
            .all(|r| r.statements.first() == Some(&calico_policy::nft::Statement::Counter))
    );
    let plain = ruleset_of(EXAMPLE, "node1");
    assert!(!plain.to_nft().contains("counter"));
}

#[test]
fn identical_rulesets_give_empty_delta() {
    let rs = ruleset_of(EXAMPLE, "node1");
    let d = RulesetDelta::between(&rs, &rs.clone());
    assert!(d.is_empty());
    assert!(d.ops().is_empty());
    assert_eq!(d.to_nft(), "");
    // From nothing: the delta recreates everything.
    let full = RulesetDelta::between(&Ruleset::default(), &rs);
    assert_eq!(full.apply(&Ruleset::default()).unwrap(), rs);
}

fn with_extra_pod(yaml: &str, name: &str, ip: &str, role: &str, node: &str) -> String {
    format!(
        "{yaml}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: prod, labels: {{role: {role}}}}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}

#[test]
fn one_policy_change_touches_only_its_chain_and_sets() {
    let old = ruleset_of(EXAMPLE, "node1");
    let changed = EXAMPLE.replace("ports: [80, 443, \"8000:8080\"]", "ports: [80, 444]");
    let new = ruleset_of(&changed, "node1");
    let d = RulesetDelta::between(&old, &new);
    let filled: Vec<&str> = d.fill_chains.iter().map(|f| f.chain.as_str()).collect();
    assert_eq!(filled, ["pol-i-np/prod/allow-web"]);
    assert!(d.create_chains.is_empty() && d.delete_chains.is_empty());
    assert!(d.map_add.is_empty() && d.map_remove.is_empty());
    // The old port set goes, a new one comes; nothing else.
    assert_eq!(d.create_sets.len(), 1);
    assert!(d.create_sets[0].0.starts_with("ports-"));
    assert_eq!(d.delete_sets.len(), 1);
    assert!(d.delete_sets[0].starts_with("ports-"));
    assert!(d.remove_elements.is_empty());
    assert_eq!(d.apply(&old).unwrap(), new);
}

#[test]
fn membership_change_is_element_updates_only() {
    let old = ruleset_of(EXAMPLE, "node1");
    // Adjacent to the existing frontend 10.244.2.5: still one new element, nothing removed.
    let more = with_extra_pod(EXAMPLE, "fe2", "10.244.2.6", "frontend", "node3");
    let new = ruleset_of(&more, "node1");
    let d = RulesetDelta::between(&old, &new);
    assert!(d.fill_chains.is_empty(), "{d:?}");
    assert!(d.create_sets.is_empty() && d.delete_sets.is_empty());
    assert!(d.remove_elements.is_empty());
    assert_eq!(d.add_elements.len(), 1);
    assert_eq!(d.add_elements[0].1.len(), 1);
    assert!(d.add_elements[0].0.starts_with("s4-"));
    assert_eq!(d.apply(&old).unwrap(), new);
    assert!(d.to_nft().contains("add element inet calico s4-"));
}

#[test]
fn new_local_workload_adds_map_elements_and_chains() {
    let old = ruleset_of(EXAMPLE, "node1");
    let more = with_extra_pod(EXAMPLE, "web2", "10.244.1.8", "web", "node1");
    let new = ruleset_of(&more, "node1");
    let d = RulesetDelta::between(&old, &new);
    assert_eq!(d.create_chains.len(), 2, "{:?}", d.create_chains);
    assert_eq!(d.map_add.len(), 2);
    // The tier chain is shared: no new tier or policy chain.
    assert!(
        d.create_chains
            .iter()
            .all(|(n, _)| n.starts_with("ep-tw-") || n.starts_with("ep-fw-"))
    );
    assert_eq!(d.apply(&old).unwrap(), new);
    // And back: the workload's chains and map elements go.
    let back = RulesetDelta::between(&new, &old);
    assert_eq!(back.delete_chains.len(), 2);
    assert_eq!(back.apply(&new).unwrap(), old);
}

// ---------------------------------------------------------------------------------------
// Real nft in network namespaces.

fn required() -> bool {
    std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

fn not_run(why: &str) {
    assert!(
        !required(),
        "nft namespace test is required (CALICO_REQUIRE_ROOT_TESTS=1) but cannot run: {why}"
    );
    eprintln!("NOTE: nft namespace test was NOT RUN: {why}");
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn tool(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the namespace tests can run (reports why not).
fn can_run() -> bool {
    if effective_uid() != Some(0) {
        not_run("not root");
        return false;
    }
    if !tool("nft", "--version") || !tool("ip", "-V") {
        not_run("nft or ip missing");
        return false;
    }
    true
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "cpr-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    /// Runs `nft ARGS` with `input` on stdin; returns (success, stdout, stderr).
    fn nft(&self, args: &[&str], input: &str) -> (bool, String, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn load(&self, text: &str) {
        let (ok, _, err) = self.nft(&["-f", "-"], text);
        assert!(ok, "nft -f failed: {err}\ninput:\n{text}");
    }

    fn list(&self) -> String {
        let (ok, out, err) = self.nft(&["list", "table", "inet", "calico"], "");
        assert!(ok, "nft list failed: {err}");
        normalise(&out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `nft list` output with its top-level blocks (sets, maps, chains) sorted by their text:
/// the kernel lists objects in creation order, which differs between a full load and a
/// delta.
fn normalise(listing: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in listing.lines() {
        if line.starts_with("table ") || line == "}" || line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\t')
            && !line.starts_with("\t\t")
            && line.ends_with('{')
            && !cur.is_empty()
        {
            blocks.push(std::mem::take(&mut cur));
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks.sort();
    blocks.concat()
}

fn scenario_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("tests/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.push(root.join("../examples/cluster"));
    dirs
}

/// Every node named by an endpoint of the model.
fn nodes(model: &Model) -> Vec<String> {
    let mut n: Vec<String> = model
        .endpoints()
        .iter()
        .filter_map(|e| e.node.clone())
        .collect();
    n.sort();
    n.dedup();
    n
}

#[test]
fn scenario_clusters_load_into_nft() {
    let mut rendered = 0;
    let mut texts = Vec::new();
    for dir in scenario_dirs() {
        let model = Model::build_lenient(&load_paths(&[&dir]).unwrap());
        let program = model.compile();
        for node in nodes(&model) {
            let rs = build_ruleset(&model, &program, &node, &RenderOptions::default());
            // Model-level: reachable, referenced, delta from empty rebuilds it.
            assert_eq!(
                reachable_chains(&rs).len(),
                rs.chains.len(),
                "{}",
                dir.display()
            );
            let d = RulesetDelta::between(&Ruleset::default(), &rs);
            assert_eq!(d.apply(&Ruleset::default()).unwrap(), rs);
            texts.push((format!("{} node {node}", dir.display()), rs));
            rendered += 1;
        }
    }
    assert!(rendered >= 10, "only {rendered} node rulesets");
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    for (what, rs) in &texts {
        let text = rs.to_nft();
        let (ok, _, err) = ns.nft(&["-c", "-f", "-"], &text);
        assert!(ok, "{what}: nft -c rejected:\n{err}\n{text}");
        // Load for real, then apply the delta to the empty ruleset: same listing.
        ns.load(&text);
        let listed = ns.list();
        ns.load("delete table inet calico\n");
        let delta = RulesetDelta::between(&Ruleset::default(), rs).to_nft();
        ns.load(&delta);
        assert_eq!(ns.list(), listed, "{what}: delta from empty differs");
        ns.load("delete table inet calico\n");
    }
}

/// Pairs (old, new) of manifests on node1 for the kernel delta test.
fn variants() -> Vec<(&'static str, String)> {
    let base = EXAMPLE.to_owned();
    vec![
        ("base", base.clone()),
        (
            "ports changed",
            base.replace("ports: [80, 443, \"8000:8080\"]", "ports: [80, 444]"),
        ),
        (
            "frontend added",
            with_extra_pod(&base, "fe2", "10.244.3.9", "frontend", "node3"),
        ),
        (
            "adjacent frontend added",
            with_extra_pod(&base, "fe3", "10.244.2.6", "frontend", "node3"),
        ),
        (
            "local web added",
            with_extra_pod(&base, "web2", "10.244.1.8", "web", "node1"),
        ),
        (
            "policy removed",
            base.split("---\napiVersion: projectcalico.org/v3")
                .next()
                .unwrap()
                .to_owned(),
        ),
        (
            "nets changed",
            base.replace(
                "[10.0.0.0/8, 192.168.0.0/16]",
                "[10.0.0.0/8, 192.168.0.0/24, 172.20.0.0/16]",
            ),
        ),
        (
            "icmp and pass removed",
            base.replace(
                "    - {action: Allow, protocol: ICMP, notICMP: {type: 8, code: 0}}\n",
                "",
            )
            .replace(
                "    - {action: Pass, source: {nets: [172.16.0.0/12]}}\n",
                "",
            ),
        ),
        (
            "pod moved away",
            base.replace("nodeName: node1", "nodeName: node9"),
        ),
    ]
}

#[test]
fn deltas_apply_in_kernel() {
    let vs: Vec<(&str, Ruleset)> = variants()
        .into_iter()
        .map(|(n, y)| (n, ruleset_of(&y, "node1")))
        .collect();
    // Model level first (always runs).
    for (an, a) in &vs {
        for (bn, b) in &vs {
            let d = RulesetDelta::between(a, b);
            assert_eq!(d.apply(a).unwrap(), *b, "{an} -> {bn}");
            assert_eq!(d.is_empty(), a == b, "{an} -> {bn}");
        }
    }
    if !can_run() {
        return;
    }
    let old_ns = Netns::new();
    let new_ns = Netns::new();
    for (an, a) in &vs {
        for (bn, b) in &vs {
            if an == bn {
                continue;
            }
            old_ns.load(&a.to_nft());
            let delta = RulesetDelta::between(a, b).to_nft();
            let (ok, _, err) = old_ns.nft(&["-f", "-"], &delta);
            assert!(ok, "{an} -> {bn}: delta rejected: {err}\n{delta}");
            new_ns.load(&b.to_nft());
            assert_eq!(old_ns.list(), new_ns.list(), "{an} -> {bn}\n{delta}");
            old_ns.load("delete table inet calico\n");
            new_ns.load("delete table inet calico\n");
        }
    }
}

/// A set whose key changes and a base chain whose hook changes under the same names: the
/// delta's pre-phase (flush users, delete, recreate) is accepted by the kernel.
#[test]
fn redefinitions_apply_in_kernel() {
    use calico_policy::nft::{
        AddrValue, BaseChain, Chain, ChainPolicy, Hook, IpFamily, Match, PortProto, PortValue,
        Rule, RuleVerdict, Set, SetElement, SetKey, Side, Verdict,
    };
    let rule = |m: Match, v: Verdict| Rule {
        matches: vec![m],
        verdict: Some(RuleVerdict::Verdict(v)),
        ..Rule::default()
    };
    let jump = Rule {
        verdict: Some(RuleVerdict::Verdict(Verdict::Jump("c1".to_owned()))),
        ..Rule::default()
    };
    let mut old = Ruleset::default();
    old.sets.insert(
        "sa".to_owned(),
        Set {
            key: SetKey::Ipv4Addr,
            interval: true,
            elements: [SetElement::Net("10.0.0.1/32".parse().unwrap())].into(),
        },
    );
    old.chains.insert(
        "c1".to_owned(),
        Chain {
            base: None,
            rules: vec![rule(
                Match::Addr {
                    family: IpFamily::V4,
                    side: Side::Src,
                    value: AddrValue::Set("sa".to_owned()),
                    negate: false,
                },
                Verdict::Drop,
            )],
        },
    );
    old.chains.insert(
        "b".to_owned(),
        Chain {
            base: Some(BaseChain {
                hook: Hook::Input,
                priority: 0,
                policy: ChainPolicy::Accept,
            }),
            rules: vec![jump.clone()],
        },
    );
    let mut new = old.clone();
    new.sets.insert(
        "sa".to_owned(),
        Set {
            key: SetKey::InetService,
            interval: true,
            elements: [SetElement::PortRange(80, 90)].into(),
        },
    );
    new.chains.get_mut("c1").unwrap().rules = vec![
        rule(
            Match::L4proto {
                proto: 6,
                negate: false,
            },
            Verdict::Return,
        ),
        rule(
            Match::Port {
                proto: PortProto::Tcp,
                side: Side::Dst,
                value: PortValue::Set("sa".to_owned()),
                negate: false,
            },
            Verdict::Drop,
        ),
    ];
    new.chains.get_mut("b").unwrap().base = Some(BaseChain {
        hook: Hook::Forward,
        priority: 3,
        policy: ChainPolicy::Drop,
    });
    let d = RulesetDelta::between(&old, &new);
    assert_eq!(d.pre_delete_sets, ["sa"]);
    assert_eq!(d.pre_delete_chains, ["b"]);
    assert_eq!(d.apply(&old).unwrap(), new);
    if !can_run() {
        return;
    }
    let a = Netns::new();
    let b = Netns::new();
    a.load(&old.to_nft());
    let text = d.to_nft();
    let (ok, _, err) = a.nft(&["-f", "-"], &text);
    assert!(ok, "{err}\n{text}");
    b.load(&new.to_nft());
    assert_eq!(a.list(), b.list());
}
