//! Incremental kernel plans ([`ClusterPlans::apply`]) equal full recomputation, and the
//! nodes reported as changed are exactly those whose plan differs.

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use calico_model::resources::ObjectMeta;
use calico_model::resources::bgp::{BgpPeer, BgpPeerSpec};
use calico_model::resources::ipam::{AffinityState, EncapMode};
use calico_model::resources::values::{AsNumber, IpCidr};
use calico_route::Cluster;
use calico_route::input::{Affinity, NodeInfo, PoolInfo};
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::plans::{ApplyPath, ClusterChange, ClusterPlans};
use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;

fn node(i: u8, subnet: u8, rr: bool, asn: Option<u32>) -> NodeInfo {
    let mut labels = calico_model::resources::Labels::new();
    if rr {
        labels.insert("rr".to_owned(), String::new());
    }
    NodeInfo {
        name: format!("n{i:02}"),
        labels,
        ipv4: IpCidr::new(IpAddr::V4(Ipv4Addr::new(10, 0, subnet, i)), 24),
        ipv6: None,
        as_number: asn.map(AsNumber),
        cluster_id: if rr {
            "1.1.1.1".to_owned()
        } else {
            String::new()
        },
        ipip_tunnel: None,
        vxlan_v4: Some(IpAddr::V4(Ipv4Addr::new(10, 200, 0, i))),
        vxlan_mac_v4: String::new(),
        vxlan_v6: None,
        vxlan_mac_v6: String::new(),
        wireguard_v4: None,
    }
}

fn block(k: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 64, k, 0), 26).unwrap())
}

fn affinity(node: &str, k: u8, confirmed: bool) -> Affinity {
    Affinity {
        node: node.to_owned(),
        block: block(k),
        state: if confirmed {
            AffinityState::Confirmed
        } else {
            AffinityState::Pending
        },
    }
}

/// The encapsulation of the one pool.
#[derive(Debug, Clone, Copy)]
enum Encap {
    None,
    Vxlan,
    VxlanCross,
    Ipip,
}

#[derive(Debug, Clone)]
struct Spec {
    nodes: Vec<(u8, bool, bool)>, // (subnet, rr, other AS)
    mesh: bool,
    encap: Encap,
    /// Per node: block indexes (0..32; collisions give duplicate affinities).
    blocks: Vec<Vec<u8>>,
    joiner: (u8, bool, bool, Vec<u8>, bool), // (subnet, rr, other AS, blocks, duplicate IP)
    new_block: Option<(usize, u8, bool)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (0u8..2, prop::bool::weighted(0.2), prop::bool::weighted(0.1)),
            1..7,
        ),
        any::<bool>(),
        prop_oneof![
            Just(Encap::None),
            Just(Encap::Vxlan),
            Just(Encap::VxlanCross),
            Just(Encap::Ipip)
        ],
        prop::collection::vec(prop::collection::vec(0u8..32, 0..3), 7),
        (
            0u8..2,
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.1),
            prop::collection::vec(0u8..40, 0..3),
            prop::bool::weighted(0.1),
        ),
        prop::option::of((0usize..7, 0u8..40, prop::bool::weighted(0.8))),
    )
        .prop_map(|(nodes, mesh, encap, blocks, joiner, new_block)| Spec {
            nodes,
            mesh,
            encap,
            blocks,
            joiner,
            new_block,
        })
}

fn build(s: &Spec) -> Cluster {
    let mut c = Cluster::default();
    c.bgp.node_to_node_mesh_enabled = Some(s.mesh);
    for (i, (subnet, rr, other)) in s.nodes.iter().enumerate() {
        let i = u8::try_from(i + 1).unwrap();
        let n = node(i, *subnet, *rr, other.then_some(65001));
        for k in &s.blocks[usize::from(i - 1)] {
            c.affinities.push(affinity(&n.name, *k, true));
        }
        c.nodes.push(n);
    }
    if s.nodes.iter().any(|n| n.1) {
        c.peers.push(BgpPeer {
            metadata: ObjectMeta {
                name: "rr".to_owned(),
                ..ObjectMeta::default()
            },
            spec: BgpPeerSpec {
                node_selector: "all()".to_owned(),
                peer_selector: "has(rr)".to_owned(),
                ..BgpPeerSpec::default()
            },
        });
    }
    let (ipip, vxlan) = match s.encap {
        Encap::None => (EncapMode::Never, EncapMode::Never),
        Encap::Vxlan => (EncapMode::Never, EncapMode::Always),
        Encap::VxlanCross => (EncapMode::Never, EncapMode::CrossSubnet),
        Encap::Ipip => (EncapMode::Always, EncapMode::Never),
    };
    c.pools.push(PoolInfo {
        name: "pool".to_owned(),
        cidr: "10.64.0.0/16".parse().unwrap(),
        block_size: 26,
        ipip,
        vxlan,
        disable_bgp_export: false,
        disabled: false,
    });
    c.sort();
    c
}

fn full(c: &Cluster) -> Vec<(String, calico_route::kernel::KernelPlan)> {
    c.nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                plan_node(c, &n.name, &PlanOptions::default()).unwrap(),
            )
        })
        .collect()
}

/// Applies `change` incrementally and checks the plans and the changed set against full
/// recomputation; returns the path taken.
fn check(mut c: Cluster, change: ClusterChange) -> ApplyPath {
    let before = ClusterPlans::new(&c, PlanOptions::default()).unwrap();
    let mut plans = before.clone();
    let applied = plans.apply(&mut c, change).unwrap();
    let after = full(&c);
    assert_eq!(plans.plans().len(), after.len());
    let mut truly_changed = BTreeSet::new();
    for (name, plan) in &after {
        assert_eq!(
            plans.plan(name),
            Some(plan),
            "plan of {name} ({:?} path)",
            applied.path
        );
        if before.plan(name) != Some(plan) {
            truly_changed.insert(name.clone());
        }
    }
    let reported: BTreeSet<String> = applied.changed.iter().cloned().collect();
    assert_eq!(reported, truly_changed, "{:?} path", applied.path);
    applied.path
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn incremental_join_equals_full_recomputation(s in spec()) {
        let c = build(&s);
        let (subnet, rr, other, blocks, dup) = &s.joiner;
        let mut j = node(50, *subnet, *rr, other.then_some(65001));
        if *dup {
            j.ipv4 = c.nodes[0].ipv4;
        }
        let affinities = blocks.iter().map(|k| affinity(&j.name, *k, true)).collect();
        check(c, ClusterChange::Join { node: Box::new(j), affinities });
    }

    #[test]
    fn incremental_affinity_equals_full_recomputation(s in spec()) {
        let c = build(&s);
        if let Some((i, k, confirmed)) = s.new_block {
            let owner = c.nodes[i % c.nodes.len()].name.clone();
            check(c, ClusterChange::Affinity(affinity(&owner, k, confirmed)));
        }
    }
}

/// The fast path is taken for a plain mesh and a plain reflector cluster, and every other
/// node gains exactly the new block's route.
#[test]
fn a_join_into_a_plain_cluster_is_incremental() {
    for (mesh, rr) in [(true, false), (false, true)] {
        let s = Spec {
            nodes: (0..6).map(|i| (0, rr && i < 2, false)).collect(),
            mesh,
            encap: Encap::None,
            blocks: (0..7).map(|i| vec![i]).collect(),
            joiner: (0, false, false, vec![20], false),
            new_block: None,
        };
        let c = build(&s);
        let mut c2 = c.clone();
        let j = node(50, 0, false, None);
        let mut plans = ClusterPlans::new(&c, PlanOptions::default()).unwrap();
        let applied = plans
            .apply(
                &mut c2,
                ClusterChange::Join {
                    node: Box::new(j),
                    affinities: vec![affinity("n50", 20, true)],
                },
            )
            .unwrap();
        assert_eq!(applied.path, ApplyPath::Incremental);
        assert_eq!(applied.changed.len(), 7, "{:?}", applied.changed);
        let p = plans.plan("n01").unwrap();
        assert!(
            p.to_text()
                .contains("10.64.20.0/26 via 10.0.0.50 dev eth0 proto bird metric 1024\n"),
            "{}",
            p.to_text()
        );
        assert_eq!(
            check(
                c,
                ClusterChange::Join {
                    node: Box::new(node(50, 0, false, None)),
                    affinities: vec![affinity("n50", 20, true)],
                }
            ),
            ApplyPath::Incremental
        );
    }
}

/// A joining reflector changes what others learn: the full path.
#[test]
fn a_joining_reflector_takes_the_full_path() {
    let s = Spec {
        nodes: (0..4).map(|_| (0, false, false)).collect(),
        mesh: false,
        encap: Encap::None,
        blocks: (0..7).map(|i| vec![i]).collect(),
        joiner: (0, true, false, vec![], false),
        new_block: None,
    };
    let mut c = build(&s);
    c.peers.push(BgpPeer {
        metadata: ObjectMeta {
            name: "rr".to_owned(),
            ..ObjectMeta::default()
        },
        spec: BgpPeerSpec {
            node_selector: "all()".to_owned(),
            peer_selector: "has(rr)".to_owned(),
            ..BgpPeerSpec::default()
        },
    });
    let path = check(
        c,
        ClusterChange::Join {
            node: Box::new(node(50, 0, true, None)),
            affinities: vec![],
        },
    );
    assert_eq!(path, ApplyPath::Full);
}
