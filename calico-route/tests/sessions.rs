//! Session-graph rules (mesh, BGPPeer expansion, route reflectors, names), one test per rule.

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use std::net::IpAddr;

use calico_route::SessionGraph;
use calico_route::sessions::{PeerKind, SessionNote, SessionOrigin, parse_peer_ip, protocol_name};
use common::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn names(g: &SessionGraph, node: &str) -> Vec<String> {
    g.peerings_of(node).map(|p| p.name.clone()).collect()
}

fn rr_recipe(n: usize, rrs: &[(usize, &str)], mesh: bool) -> String {
    let mut y = bgp_config(mesh);
    for i in 1..=n {
        let rr = rrs.iter().find(|(k, _)| *k == i);
        let (extra, labels) = match rr {
            Some((_, cid)) => (
                format!("    routeReflectorClusterID: {cid}\n"),
                "rr: \"true\"",
            ),
            None => (String::new(), ""),
        };
        y.push_str(&node(
            &format!("node-{i}"),
            &format!("10.0.0.{i}/24"),
            &extra,
            labels,
        ));
    }
    y.push_str(&peer(
        "rr-peers",
        "nodeSelector: all()\npeerSelector: has(rr)",
    ));
    y
}

#[test]
fn full_mesh_of_five_has_ten_sessions() {
    let c = cluster(&plain_nodes(5));
    let g = SessionGraph::new(&c);
    assert_eq!(g.session_count(), 10);
    for i in 1..=5 {
        let node = format!("node-{i}");
        assert_eq!(g.peerings_of(&node).count(), 4);
        assert!(g.peerings_of(&node).all(|p| p.kind == PeerKind::Mesh));
    }
    assert!(g.one_sided.is_empty());
}

#[test]
fn mesh_passive_side_uses_string_comparison() {
    let y = node("a", "10.0.0.9/24", "", "") + &node("b", "10.0.0.10/24", "", "");
    let g = SessionGraph::new(&cluster(&y));
    let a = g.peerings_of("a").next().unwrap();
    let b = g.peerings_of("b").next().unwrap();
    // "10.0.0.10" < "10.0.0.9" as strings: a's peer is smaller, so a connects, b is passive.
    assert!(!a.passive);
    assert!(b.passive);
    assert_eq!(a.name, "Mesh_10_0_0_10");
    assert_eq!(a.source_address, Some(ip("10.0.0.9")));
}

#[test]
fn mesh_off_means_no_sessions() {
    let c = cluster(&(bgp_config(false) + &plain_nodes(3)));
    assert_eq!(SessionGraph::new(&c).session_count(), 0);
}

#[test]
fn reflector_recipe_counts_r_times_n_minus_r_plus_pairs() {
    let c = cluster(&rr_recipe(5, &[(1, "1.1.1.1"), (2, "1.1.1.1")], false));
    let g = SessionGraph::new(&c);
    assert_eq!(g.session_count(), 7);
    // Client has a session to each RR, none to other clients.
    assert_eq!(names(&g, "node-3"), vec!["Node_10_0_0_1", "Node_10_0_0_2"]);
    // RR: clients marked, other RR (same cluster) not.
    let rr: Vec<_> = g.peerings_of("node-1").collect();
    assert_eq!(rr.len(), 4);
    for p in &rr {
        let is_rr_peer = p.peer_ip == ip("10.0.0.2");
        assert_eq!(p.route_reflector_client, !is_rr_peer, "{}", p.name);
    }
    assert!(g.peerings_of("node-3").all(|p| !p.route_reflector_client));
    assert!(g.one_sided.is_empty());
}

#[test]
fn reflectors_with_different_cluster_ids_are_clients_of_each_other() {
    let c = cluster(&rr_recipe(3, &[(1, "1.1.1.1"), (2, "2.2.2.2")], false));
    let g = SessionGraph::new(&c);
    let p12 = g
        .peerings_of("node-1")
        .find(|p| p.peer_ip == ip("10.0.0.2"))
        .unwrap();
    let p21 = g
        .peerings_of("node-2")
        .find(|p| p.peer_ip == ip("10.0.0.1"))
        .unwrap();
    assert!(p12.route_reflector_client && p21.route_reflector_client);
    assert_eq!(p12.rr_cluster_id.as_deref(), Some("1.1.1.1"));
}

#[test]
fn reflectors_are_never_meshed() {
    let c = cluster(&rr_recipe(4, &[(1, "1.1.1.1")], true));
    let g = SessionGraph::new(&c);
    assert!(g.peerings_of("node-1").all(|p| p.kind != PeerKind::Mesh));
    // non-RR nodes: mesh among the 3 clients plus the RR session.
    let n2: Vec<_> = g.peerings_of("node-2").map(|p| p.kind).collect();
    assert_eq!(n2.iter().filter(|k| **k == PeerKind::Mesh).count(), 2);
    assert_eq!(n2.iter().filter(|k| **k == PeerKind::Node).count(), 1);
    assert_eq!(g.session_count(), 3 + 3);
}

#[test]
fn peer_ip_to_another_reflector_with_same_as_is_a_client() {
    let mut y = bgp_config(false);
    y += &node(
        "rr-a",
        "10.0.0.1/24",
        "    routeReflectorClusterID: 1.1.1.1\n",
        "",
    );
    y += &node(
        "rr-b",
        "10.0.0.2/24",
        "    routeReflectorClusterID: 1.1.1.1\n",
        "",
    );
    y += &peer("to-b", "node: rr-a\npeerIP: 10.0.0.2\nasNumber: 64512");
    let g = SessionGraph::new(&cluster(&y));
    let p = g.peerings_of("rr-a").next().unwrap();
    assert!(
        p.route_reflector_client,
        "peerIP entries carry no cluster ID"
    );
    // Reverse side found by IP+AS: a selector-like entry with the cluster ID → non-client.
    let r = g.peerings_of("rr-b").next().unwrap();
    assert!(!r.route_reflector_client);
    assert!(matches!(r.origin, SessionOrigin::Reverse { .. }));
}

#[test]
fn ebgp_peer_is_never_a_client() {
    let mut y = bgp_config(false);
    y += &node(
        "rr-a",
        "10.0.0.1/24",
        "    routeReflectorClusterID: 1.1.1.1\n",
        "",
    );
    y += &peer("tor", "node: rr-a\npeerIP: 10.0.0.254\nasNumber: 65001");
    let g = SessionGraph::new(&cluster(&y));
    let p = g.peerings_of("rr-a").next().unwrap();
    assert!(!p.route_reflector_client);
    assert!(!p.is_ibgp());
    assert_eq!(g.session_count(), 1);
}

#[test]
fn global_key_shadows_node_key() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer("a-global", "peerIP: 10.0.0.254\nasNumber: 65001");
    y += &peer(
        "b-node",
        "node: node-1\npeerIP: 10.0.0.254\nasNumber: 65001",
    );
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(names(&g, "node-1"), vec!["Global_10_0_0_254"]);
    assert_eq!(names(&g, "node-2"), vec!["Global_10_0_0_254"]);
}

#[test]
fn first_writer_wins_and_collision_is_reported() {
    let mut y = bgp_config(false) + &plain_nodes(1);
    y += &peer("b-second", "peerIP: 10.0.0.254\nasNumber: 65002");
    y += &peer("a-first", "peerIP: 10.0.0.254\nasNumber: 65001");
    let g = SessionGraph::new(&cluster(&y));
    let p = g.peerings_of("node-1").next().unwrap();
    assert_eq!(p.peer_as.0, 65001);
    assert_eq!(g.collisions.len(), 1);
    assert_eq!(g.collisions[0].winner, "a-first");
    assert_eq!(g.collisions[0].loser, "b-second");
}

#[test]
fn explicit_forward_beats_implied_reverse() {
    let mut y = bgp_config(false);
    y += &node("n1", "10.0.0.1/24", "", "");
    y += &node("n2", "10.0.0.2/24", "", "");
    y += &peer("a", "node: n1\npeerIP: 10.0.0.2\nasNumber: 64512");
    y += &peer(
        "b",
        "node: n2\npeerIP: 10.0.0.1\nasNumber: 64512\nkeepaliveTime: 10s",
    );
    let g = SessionGraph::new(&cluster(&y));
    let p = g.peerings_of("n2").next().unwrap();
    assert!(matches!(&p.origin, SessionOrigin::Forward { peer } if peer == "b"));
    assert_eq!(p.keepalive, Some(10));
}

#[test]
fn own_address_is_skipped_and_port_mismatch_noted() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer("all", "peerIP: \"10.0.0.1:1790\"\nasNumber: 64512");
    let g = SessionGraph::new(&cluster(&y));
    assert!(g.peerings_of("node-1").next().is_none());
    assert_eq!(names(&g, "node-2"), vec!["Global_10_0_0_1_port_1790"]);
    assert!(
        g.notes.iter().any(
            |n| matches!(n, SessionNote::SelfPeerPortMismatch { node, .. } if node == "node-1")
        )
    );
}

#[test]
fn reverse_peer_ip_needs_matching_as() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer(
        "wrong-as",
        "node: node-1\npeerIP: 10.0.0.2\nasNumber: 65000",
    );
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(g.peerings_of("node-2").count(), 0);
    assert_eq!(g.one_sided.len(), 1);
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer(
        "right-as",
        "node: node-1\npeerIP: 10.0.0.2\nasNumber: 64512",
    );
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(names(&g, "node-2"), vec!["Node_10_0_0_1"]);
    assert!(g.one_sided.is_empty());
}

#[test]
fn manual_reverse_peering_is_one_sided() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer(
        "m",
        "node: node-1\npeerSelector: all()\nreversePeering: Manual",
    );
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(g.peerings_of("node-2").count(), 0);
    assert_eq!(g.one_sided.len(), 1);
    assert_eq!(g.session_count(), 1);
}

#[test]
fn global_peer_ip_to_calico_node_is_passive_by_string_order() {
    let mut y = bgp_config(false) + &plain_nodes(3);
    y += &peer("to-2", "peerIP: 10.0.0.2\nasNumber: 64512");
    let g = SessionGraph::new(&cluster(&y));
    let p1 = g.peerings_of("node-1").next().unwrap();
    let p3 = g.peerings_of("node-3").next().unwrap();
    assert!(p1.passive, "10.0.0.2 > 10.0.0.1");
    assert!(!p3.passive, "10.0.0.2 < 10.0.0.3");
}

#[test]
fn names_replace_separators_and_add_port() {
    assert_eq!(
        protocol_name(PeerKind::Mesh, ip("10.192.0.3"), None),
        "Mesh_10_192_0_3"
    );
    assert_eq!(
        protocol_name(PeerKind::Mesh, ip("2001::102"), None),
        "Mesh_2001__102"
    );
    assert_eq!(
        protocol_name(PeerKind::Global, ip("10.0.0.1"), Some(1790)),
        "Global_10_0_0_1_port_1790"
    );
    assert_eq!(
        parse_peer_ip("[fd00::1]:179"),
        Some((ip("fd00::1"), Some(179)))
    );
    assert_eq!(
        parse_peer_ip("10.0.0.1:179"),
        Some((ip("10.0.0.1"), Some(179)))
    );
    assert_eq!(parse_peer_ip("nonsense"), None);
}

/// `_port_<n>` appears on `Global_` and `Node_` names only, for every port and family.
#[test]
fn port_suffix_only_on_global_and_node_names() {
    for ip in ["10.0.0.9", "fd00::9"] {
        let ip: IpAddr = ip.parse().unwrap();
        let base = ip.to_string().replace(['.', ':'], "_");
        for port in [None, Some(179), Some(1790)] {
            for kind in [
                PeerKind::Mesh,
                PeerKind::Global,
                PeerKind::Node,
                PeerKind::LocalWorkload,
            ] {
                let want = match (kind, port) {
                    (PeerKind::Global | PeerKind::Node, Some(p)) => {
                        format!("{}{base}_port_{p}", kind.prefix())
                    }
                    _ => format!("{}{base}", kind.prefix()),
                };
                assert_eq!(protocol_name(kind, ip, port), want);
            }
        }
    }
    // A global listen port: mesh names plain, BGPPeer names suffixed.
    let mut y = node("a", "10.0.0.1/24", "", "") + &node("b", "10.0.0.2/24", "", "");
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  listenPort: 1790\n";
    y += &peer("tor", "peerIP: 10.0.0.200:1179\nasNumber: 65001");
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(
        names(&g, "a"),
        vec!["Global_10_0_0_200_port_1179", "Mesh_10_0_0_2"]
    );
}

#[test]
fn duplicate_node_addresses_give_one_mesh_protocol() {
    let y = node("a", "10.0.0.1/24", "", "")
        + &node("b", "10.0.0.2/24", "", "")
        + &node("c", "10.0.0.2/24", "", "");
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(names(&g, "a"), vec!["Mesh_10_0_0_2"]);
    assert!(g.notes.iter().any(|n| matches!(n, SessionNote::DuplicateNodeAddress { nodes, .. } if nodes == &["b".to_owned(), "c".to_owned()])));
}

#[test]
fn per_node_as_and_port_used_for_mesh_candidates() {
    let mut y = node("a", "10.0.0.1/24", "    asNumber: 65010\n", "");
    y += &node("b", "10.0.0.2/24", "", "");
    y += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.b\nspec:\n  listenPort: 1790\n";
    let g = SessionGraph::new(&cluster(&y));
    let a = g.peerings_of("a").next().unwrap();
    // Mesh names never carry the port; the session still uses it.
    assert_eq!(a.name, "Mesh_10_0_0_2");
    assert_eq!(a.port, Some(1790));
    assert_eq!(
        a.peer_as.0, 64512,
        "candidate without per-node AS uses the global AS"
    );
    assert_eq!(a.local_as.0, 65010);
    let b = g.peerings_of("b").next().unwrap();
    assert_eq!(b.peer_as.0, 65010);
}

#[test]
fn ipv6_is_a_separate_family() {
    let extra = "    ipv6Address: fd00::1/64\n";
    let y = node("a", "10.0.0.1/24", extra, "")
        + &node("b", "10.0.0.2/24", "    ipv6Address: fd00::2/64\n", "")
        + &node("c", "10.0.0.3/24", "", "");
    let g = SessionGraph::new(&cluster(&y));
    assert_eq!(g.session_count(), 3 + 1);
    assert_eq!(
        names(&g, "a"),
        vec!["Mesh_10_0_0_2", "Mesh_10_0_0_3", "Mesh_fd00__2"]
    );
}

#[test]
fn keep_original_next_hop_only_for_ebgp() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer(
        "e",
        "node: node-1\npeerIP: 10.0.0.254\nasNumber: 65001\nkeepOriginalNextHop: true",
    );
    y += &peer(
        "i",
        "node: node-1\npeerIP: 10.0.0.2\nasNumber: 64512\nkeepOriginalNextHop: true",
    );
    let g = SessionGraph::new(&cluster(&y));
    let e = g
        .peerings_of("node-1")
        .find(|p| p.peer_ip == ip("10.0.0.254"))
        .unwrap();
    let i = g
        .peerings_of("node-1")
        .find(|p| p.peer_ip == ip("10.0.0.2"))
        .unwrap();
    assert!(e.next_hop.is_some());
    assert!(i.next_hop.is_none() && i.ignored_keep_next_hop);
}

#[test]
fn unresolved_peer_is_noted() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += &peer("nothing", "nodeSelector: has(nope)\npeerSelector: all()");
    let g = SessionGraph::new(&cluster(&y));
    assert!(
        g.notes
            .iter()
            .any(|n| matches!(n, SessionNote::PeerUnresolved { peer, .. } if peer == "nothing"))
    );
}

#[test]
fn example_cluster_sessions() {
    let c = example_cluster();
    let g = SessionGraph::new(&c);
    // v4: pairs with at least one of the two RRs (5), v6: node-1–node-2, + 2 ToRs.
    assert_eq!(g.session_count(), 8);
    let n1 = names(&g, "node-1");
    assert!(n1.contains(&"Node_10_0_1_1".to_owned()), "{n1:?}");
    assert!(
        n1.contains(&"Node_fd00_0_1__12_port_179".to_owned()),
        "{n1:?}"
    );
    let n3 = names(&g, "node-3");
    assert!(n3.contains(&"Node_10_0_2_1_port_179".to_owned()), "{n3:?}");
    assert!(g.one_sided.is_empty(), "{:?}", g.one_sided);
    let json = g.to_json();
    assert_eq!(json["sessions"], 8);
    assert!(
        json["peerings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"].is_string())
    );
}

#[test]
fn local_workload_peers_are_passive_without_local_address() {
    let mut y = bgp_config(false) + &plain_nodes(2);
    y += "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: w\n  namespace: default\n  labels: {app: bgp}\nspec:\n  node: node-1\n  pod: w\n  endpoint: eth0\n  interfaceName: caliw\n  ipNetworks: [\"10.244.1.5/32\"]\n";
    y += &peer("lw", "localWorkloadSelector: app == 'bgp'\nasNumber: 65100");
    let c = cluster(&y);
    let g = SessionGraph::new(&c);
    let p: Vec<_> = g.peerings_of("node-1").collect();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "Local_Workload_10_244_1_5");
    assert_eq!(p[0].kind, PeerKind::LocalWorkload);
    assert!(p[0].passive);
    assert_eq!(p[0].source_address, None);
    assert_eq!(p[0].peer_as.0, 65100);
    assert_eq!(g.peerings_of("node-2").count(), 0, "no reverse peering");
    let text = calico_route::bird::render(&c, "node-1", calico_route::Family::V4)
        .unwrap()
        .text;
    assert!(text.contains(
        "protocol bgp Local_Workload_10_244_1_5 from bgp_template {\n  local as 64512;\n  neighbor 10.244.1.5 as 65100;\n  ttl security off;\n  multihop;\n  passive on;\n"
    ));
}
