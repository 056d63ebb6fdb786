//! Routing at scale: 5,000 nodes, full mesh and 3 route reflectors.
//!
//! `cargo bench -p calico-benches --bench route`

use std::hint::black_box;
use std::time::Duration;

use calico_benches::route_scale::{Encap, node_info, node_name, scale_cluster};
use calico_model::resources::ObjectMeta;
use calico_model::resources::bgp::{Node, NodeBgpSpec, NodeSpec};
use calico_route::Family;
use calico_route::bird::render;
use calico_route::input::Affinity;
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::plans::{ClusterChange, ClusterPlans};
use calico_route::scale::{BirdCache, count_sessions};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const N: usize = 5000;

fn benches(c: &mut Criterion) {
    let mesh = scale_cluster(N, 0, true, Encap::None);
    let rr = scale_cluster(N, 3, false, Encap::None);
    let rr_vxlan = scale_cluster(N, 3, false, Encap::Vxlan);
    let opts = PlanOptions::default();
    let some = node_name(N / 2);

    let mut g = c.benchmark_group("route5000");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("sessions_count_mesh", |b| {
        b.iter(|| count_sessions(black_box(&mesh)))
    });
    g.bench_function("sessions_count_rr3", |b| {
        b.iter(|| count_sessions(black_box(&rr)))
    });
    g.bench_function("bird_all_nodes_rr3", |b| {
        b.iter(|| BirdCache::new(black_box(&rr), Family::V4).map(|c| c.len()))
    });
    g.bench_function("bird_one_node_mesh", |b| {
        b.iter(|| render(black_box(&mesh), &some, Family::V4).map(|c| c.text.len()))
    });
    g.bench_function("bird_one_rr_rr3", |b| {
        b.iter(|| render(black_box(&rr), &node_name(0), Family::V4).map(|c| c.text.len()))
    });
    g.bench_function("plan_one_node_mesh_bird", |b| {
        b.iter(|| plan_node(black_box(&mesh), &some, &opts).map(|p| p.routes.len()))
    });
    g.bench_function("plan_one_node_rr3_bird", |b| {
        b.iter(|| plan_node(black_box(&rr), &some, &opts).map(|p| p.routes.len()))
    });
    g.bench_function("plan_one_node_rr3_vxlan", |b| {
        b.iter(|| plan_node(black_box(&rr_vxlan), &some, &opts).map(|p| p.routes.len()))
    });
    let cache = BirdCache::new(&rr, Family::V4).ok();
    let joiner = node_info(N, false);
    let node = Node {
        metadata: ObjectMeta {
            name: joiner.name.clone(),
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: joiner.ipv4,
                ..NodeBgpSpec::default()
            }),
            ..NodeSpec::default()
        },
    };
    if let Some(cache) = cache {
        g.bench_function("join_rr3_incremental", |b| {
            b.iter_batched(
                || (cache.clone(), rr.clone()),
                |(mut cache, mut cluster)| cache.join(&mut cluster, &node).map(|v| v.len()),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    // Kernel plans of every node, one node joining with one block. All plans together hold
    // N² routes and each iteration clones them, so this runs at 1,000 nodes; the
    // route_timing example gives the 5,000-node figure.
    let mut g = c.benchmark_group("plans1000");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (label, cluster) in [
        ("rr3", scale_cluster(1000, 3, false, Encap::None)),
        ("mesh", scale_cluster(1000, 0, true, Encap::None)),
        ("rr3_vxlan", scale_cluster(1000, 3, false, Encap::Vxlan)),
    ] {
        let Ok(plans) = ClusterPlans::new(&cluster, opts.clone()) else {
            continue;
        };
        let joiner = node_info(1000, false);
        let change = ClusterChange::Join {
            affinities: vec![Affinity {
                node: joiner.name.clone(),
                block: "10.127.0.0/26"
                    .parse()
                    .unwrap_or_else(|_| ipnet::IpNet::V4(ipnet::Ipv4Net::default())),
                state: calico_model::resources::ipam::AffinityState::Confirmed,
            }],
            node: Box::new(joiner),
        };
        g.bench_function(format!("join_{label}_incremental"), |b| {
            b.iter_batched(
                || (plans.clone(), cluster.clone()),
                // Returned, so that criterion drops the N² routes outside the timing.
                |(mut plans, mut cluster)| {
                    let changed = plans
                        .apply(&mut cluster, change.clone())
                        .map(|a| (a.path, a.changed.len()));
                    (plans, cluster, changed)
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("plan_all_{label}"), |b| {
            b.iter(|| ClusterPlans::new(black_box(&cluster), opts.clone()).map(|p| p.plans().len()))
        });
    }
    g.finish();
}

criterion_group!(route, benches);
criterion_main!(route);
