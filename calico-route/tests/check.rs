//! `route check` analyses: reachability and findings.

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use calico_route::check::{CheckReport, Severity, check};
use common::*;

fn pool(name: &str, cidr: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n{extra}"
    )
}

fn affinity(node: &str, cidr: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {node}-{}\nspec:\n  state: confirmed\n  node: {node}\n  cidr: {cidr}\n",
        cidr.replace(['.', '/', ':'], "-")
    )
}

/// node-i owns 10.244.i.0/26 in an unencapsulated pool.
fn blocks(n: usize) -> String {
    let mut y = pool("p", "10.244.0.0/16", "");
    for i in 1..=n {
        y += &affinity(&format!("node-{i}"), &format!("10.244.{i}.0/26"));
    }
    y
}

fn codes(r: &CheckReport, sev: Severity) -> Vec<&'static str> {
    r.findings
        .iter()
        .filter(|f| f.severity == sev)
        .map(|f| f.code)
        .collect()
}

#[test]
fn healthy_mesh_passes() {
    let c = cluster(&(plain_nodes(3) + &blocks(3)));
    let r = check(&c);
    assert!(r.ok(), "{}", r.to_text());
    assert_eq!(r.pairs_checked, 6);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

#[test]
fn healthy_reflector_recipe_passes() {
    let mut y = bgp_config(false) + &blocks(4);
    for i in 1..=4 {
        let (extra, labels) = if i <= 2 {
            ("    routeReflectorClusterID: 1.1.1.1\n", "rr: \"\"")
        } else {
            ("", "")
        };
        y += &node(
            &format!("node-{i}"),
            &format!("10.0.0.{i}/24"),
            extra,
            labels,
        );
    }
    y += &peer("rr", "nodeSelector: all()\npeerSelector: has(rr)");
    let r = check(&cluster(&y));
    assert!(r.ok(), "{}", r.to_text());
    assert_eq!(r.scale.sessions, 2 * 2 + 1);
    assert_eq!(r.scale.route_reflectors, 2);
}

#[test]
fn non_reflector_chain_is_unreachable() {
    let mut y = bgp_config(false) + &plain_nodes(3) + &blocks(3);
    y += &peer("ab", "node: node-1\npeerIP: 10.0.0.2\nasNumber: 64512");
    y += &peer("bc", "node: node-2\npeerIP: 10.0.0.3\nasNumber: 64512");
    let r = check(&cluster(&y));
    assert!(!r.ok());
    let pairs: Vec<(String, String)> = r
        .unreachable
        .iter()
        .map(|u| (u.node.clone(), u.block.to_string()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("node-3".to_owned(), "10.244.1.0/26".to_owned()),
            ("node-1".to_owned(), "10.244.3.0/26".to_owned()),
        ]
    );
}

#[test]
fn client_without_reflector_is_an_error() {
    let mut y = bgp_config(false) + &blocks(3);
    y += &node(
        "node-1",
        "10.0.0.1/24",
        "    routeReflectorClusterID: 1.1.1.1\n",
        "rr: \"\"",
    );
    y += &node("node-2", "10.0.0.2/24", "", "peer: \"yes\"");
    y += &node("node-3", "10.0.0.3/24", "", "");
    y += &peer("rr", "nodeSelector: has(peer)\npeerSelector: has(rr)");
    let r = check(&cluster(&y));
    let errors = codes(&r, Severity::Error);
    assert!(errors.contains(&"client-without-reflector"), "{errors:?}");
    assert!(codes(&r, Severity::Warning).contains(&"single-reflector"));
    assert!(r.unreachable.iter().any(|u| u.node == "node-3"));
}

#[test]
fn one_sided_session_is_an_error() {
    let mut y = bgp_config(false) + &plain_nodes(2) + &blocks(2);
    y += &peer(
        "m",
        "node: node-1\npeerIP: 10.0.0.2\nasNumber: 64512\nreversePeering: Manual",
    );
    let r = check(&cluster(&y));
    assert!(codes(&r, Severity::Error).contains(&"one-sided-session"));
    assert_eq!(r.unreachable.len(), 2);
}

#[test]
fn duplicate_addresses_and_collisions_are_errors() {
    let mut y = node("a", "10.0.0.1/24", "", "") + &node("b", "10.0.0.1/24", "", "");
    y += &peer("p1", "peerIP: 10.0.0.9\nasNumber: 65001");
    y += &peer("p2", "peerIP: 10.0.0.9\nasNumber: 65002");
    let r = check(&cluster(&y));
    let e = codes(&r, Severity::Error);
    assert!(e.contains(&"duplicate-node-address"), "{e:?}");
    assert!(e.contains(&"peer-collision"), "{e:?}");
}

#[test]
fn ipam_findings() {
    let y = plain_nodes(2)
        + &pool("a", "10.244.0.0/16", "")
        + &pool("b", "10.244.128.0/17", "")
        + &affinity("node-1", "10.244.1.0/26")
        + &affinity("node-2", "10.244.1.0/26")
        + &affinity("node-1", "10.244.2.7/32")
        + &affinity("node-1", "10.99.0.0/26");
    let r = check(&cluster(&y));
    let e = codes(&r, Severity::Error);
    for code in [
        "overlapping-pools",
        "duplicate-affinity",
        "host-block",
        "block-outside-pools",
    ] {
        assert!(e.contains(&code), "{code} missing from {e:?}");
    }
}

#[test]
fn ownership_conflict_is_an_error() {
    let felix = "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  programClusterRoutes: Enabled\n";
    let r = check(&cluster(&(plain_nodes(2) + &blocks(2) + felix)));
    let msgs: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.code == "route-ownership")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("both program None pool routes"));
}

#[test]
fn disable_bgp_export_makes_blocks_unreachable() {
    let y = plain_nodes(2)
        + &pool("p", "10.244.0.0/16", "  disableBGPExport: true\n")
        + &affinity("node-1", "10.244.1.0/26");
    let r = check(&cluster(&y));
    assert_eq!(r.unreachable.len(), 1);
    assert!(r.unreachable[0].reason.contains("disableBGPExport"));
}

#[test]
fn vxlan_without_vtep_is_unreachable() {
    let y = plain_nodes(2)
        + &pool("p", "10.244.0.0/16", "  vxlanMode: Always\n")
        + &affinity("node-1", "10.244.1.0/26");
    let r = check(&cluster(&y));
    assert_eq!(r.unreachable.len(), 1);
    assert!(
        r.unreachable[0].reason.contains("VXLAN tunnel address"),
        "{}",
        r.to_text()
    );
}

#[test]
fn warnings_do_not_fail() {
    let mut y = plain_nodes(2) + &blocks(2);
    y += &node("node-9", "10.0.0.9/32", "", "");
    y += &pool("x", "10.250.0.0/16", "  vxlanMode: CrossSubnet\n");
    y += &peer(
        "k",
        "node: node-1\npeerIP: 10.0.0.2\nasNumber: 64512\nkeepOriginalNextHop: true",
    );
    let r = check(&cluster(&y));
    let w = codes(&r, Severity::Warning);
    for code in [
        "cross-subnet-host-address",
        "cross-subnet-prefix-mismatch",
        "keep-next-hop-ignored",
        "duplicate-protocol",
    ] {
        assert!(w.contains(&code), "{code} missing from {w:?}");
    }
    assert!(r.ok(), "{}", r.to_text());
}

#[test]
fn mesh_threshold_warning() {
    let c = cluster(&plain_nodes(101));
    let r = check(&c);
    assert!(codes(&r, Severity::Warning).contains(&"mesh-too-large"));
    assert_eq!(r.scale.sessions, 101 * 100 / 2);
    assert_eq!(r.scale.full_mesh_sessions, 101 * 100 / 2);
    assert_eq!(r.scale.three_reflector_sessions, 3 * 98 + 3);
    assert!(r.to_text().ends_with(
        "scale: 5050 sessions now; node-to-node sessions with a full mesh 5050, with 3 route reflectors 297\n"
    ));
}

#[test]
fn example_cluster_passes_with_warnings() {
    let r = check(&example_cluster());
    assert!(r.ok(), "{}", r.to_text());
    assert!(codes(&r, Severity::Warning).contains(&"pending-affinity"));
}
