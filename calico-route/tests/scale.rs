//! Scale helpers: fast session counting and incremental joins give the same results as the
//! full computations.

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use calico_model::loader::load_str;
use calico_model::resources::Resource;
use calico_route::bird::render;
use calico_route::scale::{BirdCache, count_sessions};
use calico_route::{Cluster, Family, SessionGraph};
use common::*;

fn rr_cluster(n: usize, rrs: usize, mesh: bool) -> String {
    let mut y = bgp_config(mesh);
    for i in 1..=n {
        let (extra, labels) = if i <= rrs {
            (
                "    routeReflectorClusterID: 1.1.1.1\n    ipv6Address: fd00::1/64\n"
                    .replace("fd00::1", &format!("fd00::{i:x}")),
                "rr: \"\"",
            )
        } else {
            (String::new(), "")
        };
        y += &node(
            &format!("node-{i:03}"),
            &format!("10.0.{}.{}/16", i / 250, i % 250 + 1),
            &extra,
            labels,
        );
    }
    y += &peer("rr", "nodeSelector: all()\npeerSelector: has(rr)");
    y
}

#[test]
fn fast_count_matches_graph() {
    let fixtures = [
        plain_nodes(7),
        rr_cluster(12, 3, false),
        rr_cluster(12, 2, true),
        bgp_config(true) + &plain_nodes(4) + &peer("tor", "peerIP: 10.0.0.254\nasNumber: 65001"),
    ];
    for y in &fixtures {
        let c = cluster(y);
        assert_eq!(
            count_sessions(&c),
            SessionGraph::new(&c).session_count(),
            "{y}"
        );
    }
    let c = example_cluster();
    assert_eq!(count_sessions(&c), SessionGraph::new(&c).session_count());
}

fn node_resource(name: &str, ip: &str) -> calico_model::resources::bgp::Node {
    let y = node(name, ip, "", "");
    match load_str("n.yaml", &y)
        .objects
        .into_iter()
        .next()
        .unwrap()
        .resource
    {
        Resource::Node(n) => n,
        other => panic!("not a node: {other:?}"),
    }
}

fn assert_cache_fresh(cache: &BirdCache, c: &Cluster) {
    for n in &c.nodes {
        assert_eq!(
            cache.text(&n.name).unwrap(),
            render(c, &n.name, Family::V4).unwrap().text,
            "{}",
            n.name
        );
    }
}

#[test]
fn join_with_reflectors_rerenders_only_reflectors_and_the_new_node() {
    let mut c = cluster(&rr_cluster(20, 2, false));
    let mut cache = BirdCache::new(&c, Family::V4).unwrap();
    let changed = cache
        .join(&mut c, &node_resource("node-new", "10.0.9.9/16"))
        .unwrap();
    assert_eq!(changed, vec!["node-001", "node-002", "node-new"]);
    assert_eq!(cache.len(), 21);
    assert_cache_fresh(&cache, &c);
}

#[test]
fn join_with_mesh_rerenders_every_meshed_node() {
    let mut c = cluster(&plain_nodes(5));
    let mut cache = BirdCache::new(&c, Family::V4).unwrap();
    let changed = cache
        .join(&mut c, &node_resource("node-9", "10.0.0.9/24"))
        .unwrap();
    assert_eq!(changed.len(), 6);
    assert_cache_fresh(&cache, &c);
}

/// `n` nodes (the first `rrs` reflectors) with one confirmed /26 each in a no-encap pool.
fn routed_cluster(n: usize, rrs: usize, mesh: bool) -> Cluster {
    let mut y = rr_cluster(n, rrs, mesh);
    y += "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.244.0.0/16\n  blockSize: 26\n";
    for i in 1..=n {
        y += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: b{i}\nspec:\n  node: node-{i:03}\n  cidr: 10.244.{}.{}/26\n  state: confirmed\n",
            i / 4,
            (i % 4) * 64
        );
    }
    cluster(&y)
}

#[test]
fn nodes_planned_and_rendered_from_several_threads_equal_one_by_one() {
    use calico_route::bird::{MeshPeers, render_to};
    use calico_route::kernel::{PlanContext, PlanOptions, plan_node};
    use calico_route::sessions::{PeerExpansion, mesh_candidates};
    fn shared<T: Sync>(_: &T) {}
    for c in [routed_cluster(40, 3, false), routed_cluster(30, 0, true)] {
        let opts = PlanOptions::default();
        let ctx = PlanContext::new(&c);
        let expansion = PeerExpansion::new(&c);
        let (mesh, _) = mesh_candidates(&c, Family::V4);
        let peers = MeshPeers::new(&c, &mesh, Family::V4);
        shared(&ctx);
        shared(&peers);
        shared(&expansion);
        // Each thread takes every other node.
        let results: Vec<Vec<(String, String, usize)>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|t| {
                    let (c, ctx, opts, expansion, peers) = (&c, &ctx, &opts, &expansion, &peers);
                    s.spawn(move || {
                        c.nodes
                            .iter()
                            .skip(t)
                            .step_by(2)
                            .map(|n| {
                                let mut text = String::new();
                                render_to(&mut text, c, expansion, peers, &n.name, Family::V4)
                                    .unwrap();
                                let plan = ctx.plan(&n.name, opts).unwrap();
                                assert_eq!(plan, plan_node(c, &n.name, opts).unwrap());
                                (n.name.clone(), text, plan.routes.len())
                            })
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen = 0;
        let mut routes = 0;
        for (name, text, n_routes) in results.into_iter().flatten() {
            assert_eq!(text, render(&c, &name, Family::V4).unwrap().text, "{name}");
            seen += 1;
            routes += n_routes;
        }
        assert_eq!(seen, c.nodes.len());
        // Every node routes to every other node's block.
        assert_eq!(routes, c.nodes.len() * (c.nodes.len() - 1) + c.nodes.len());
    }
}
