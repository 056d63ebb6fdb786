//! Sessions, BIRD configurations and kernel route tables for every node of 5,000-node
//! clusters (full mesh; three route reflectors), in one run, with wall-clock times per part;
//! then one node joining an already planned cluster (kernel plans and BIRD configurations
//! updated incrementally).
//!
//! `cargo run --release -p calico-benches --example route_timing [-- NODES [mesh|rr3]]`
//! (`ROUTE_TIMING_JOIN=1` adds the join figures; `ROUTE_TIMING_THREADS=N` sets how many
//! threads share the nodes, by default one per core: the inputs are immutable and `Sync`)
//!
//! BIRD configurations are rendered one after the other into one reused buffer per thread (what a
//! caller streaming them to files or the network would do) and counted and checksummed so
//! that nothing is optimised away; route tables are planned per node with one shared
//! [`PlanContext`] and dropped after counting (holding all of them needs N² routes).

use std::time::{Duration, Instant};

use calico_benches::route_scale::{Encap, node_info, node_name, scale_cluster};
use calico_route::bird::{MeshPeers, render_to};
use calico_route::input::Affinity;
use calico_route::kernel::{PlanContext, PlanOptions};
use calico_route::plans::{ClusterChange, ClusterPlans};
use calico_route::scale::{BirdCache, count_sessions};
use calico_route::sessions::{PeerExpansion, mesh_candidates};
use calico_route::{Cluster, Family};

fn checksum(acc: u64, text: &str) -> u64 {
    // Cheap, order-dependent: length and a few sampled bytes.
    let b = text.as_bytes();
    let mid = b.get(b.len() / 2).copied().unwrap_or(0);
    let last = b.last().copied().unwrap_or(0);
    acc.rotate_left(5) ^ (b.len() as u64) ^ (u64::from(mid) << 32) ^ u64::from(last)
}

struct Figures {
    sessions: usize,
    t_sessions: Duration,
    bird_bytes: usize,
    t_bird: Duration,
    routes: usize,
    t_routes: Duration,
}

/// Runs `work` over the nodes split into `threads` contiguous shares, one scoped thread
/// each (the shared inputs are immutable), and sums what the shares return.
fn par_nodes<T: Send + Default + std::ops::AddAssign>(
    cluster: &Cluster,
    threads: usize,
    work: impl Fn(&[calico_route::input::NodeInfo]) -> T + Sync,
) -> T {
    let share = cluster.nodes.len().div_ceil(threads.max(1)).max(1);
    let mut total = T::default();
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = cluster
            .nodes
            .chunks(share)
            .map(|chunk| s.spawn(move || work(chunk)))
            .collect();
        for h in handles {
            if let Ok(t) = h.join() {
                total += t;
            }
        }
    });
    total
}

#[derive(Default)]
struct Tally {
    items: usize,
    sum: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.items += o.items;
        self.sum = self.sum.rotate_left(7) ^ o.sum;
    }
}

fn all_nodes(cluster: &Cluster, threads: usize) -> Figures {
    let t = Instant::now();
    let sessions = count_sessions(cluster);
    let t_sessions = t.elapsed();

    let t = Instant::now();
    let expansion = PeerExpansion::new(cluster);
    let (mesh, _) = mesh_candidates(cluster, Family::V4);
    let peers = MeshPeers::new(cluster, &mesh, Family::V4);
    let bird = par_nodes(cluster, threads, |nodes| {
        // One reused buffer per thread: each configuration is complete in it, then
        // counted and checksummed (as a caller streaming it to a file would write it).
        let mut buf = String::with_capacity(1 << 21);
        let mut tally = Tally::default();
        for n in nodes {
            buf.clear();
            if render_to(&mut buf, cluster, &expansion, &peers, &n.name, Family::V4).is_ok() {
                tally.items += buf.len();
                tally.sum = checksum(tally.sum, &buf);
            }
        }
        tally
    });
    let t_bird = t.elapsed();

    let t = Instant::now();
    let ctx = PlanContext::new(cluster);
    let opts = PlanOptions::default();
    let routes = par_nodes(cluster, threads, |nodes| {
        let mut tally = Tally::default();
        for n in nodes {
            if let Ok(p) = ctx.plan(&n.name, &opts) {
                tally.items += p.routes.len();
                tally.sum ^= p.routes.len() as u64;
            }
        }
        tally
    });
    let t_routes = t.elapsed();
    std::hint::black_box(bird.sum ^ routes.sum);
    Figures {
        sessions,
        t_sessions,
        bird_bytes: bird.items,
        t_bird,
        routes: routes.items,
        t_routes,
    }
}

fn join(mut cluster: Cluster, n: usize, label: &str) {
    let joiner = node_info(n, false);
    let Ok(block) = "10.127.0.0/26".parse() else {
        return;
    };
    let affinity = Affinity {
        node: joiner.name.clone(),
        block,
        state: calico_model::resources::ipam::AffinityState::Confirmed,
    };
    let node = calico_model::resources::bgp::Node {
        metadata: calico_model::resources::ObjectMeta {
            name: joiner.name.clone(),
            ..Default::default()
        },
        spec: calico_model::resources::bgp::NodeSpec {
            bgp: Some(calico_model::resources::bgp::NodeBgpSpec {
                ipv4_address: joiner.ipv4,
                ..Default::default()
            }),
            ipv4_vxlan_tunnel_addr: joiner.vxlan_v4,
            ..Default::default()
        },
    };
    let mut c2 = cluster.clone();
    // Kernel plans of every node held in memory (N² routes), then one join.
    let t = Instant::now();
    let mut plans = match ClusterPlans::new(&cluster, PlanOptions::default()) {
        Ok(p) => p,
        Err(e) => return eprintln!("plans: {e}"),
    };
    let t_plans = t.elapsed();
    let t = Instant::now();
    let applied = plans.apply(
        &mut cluster,
        ClusterChange::Join {
            node: Box::new(joiner),
            affinities: vec![affinity],
        },
    );
    let t_apply = t.elapsed();
    drop(plans);
    match applied {
        Ok(a) => println!(
            "{label} join: kernel plans of {n} nodes built in {t_plans:.2?}; {} joins: {:?} path, \
             {} plans changed, {t_apply:.2?}",
            node_name(n),
            a.path,
            a.changed.len()
        ),
        Err(e) => eprintln!("apply: {e}"),
    }
    // BIRD configurations of every node held, then the same join.
    let t = Instant::now();
    let mut birds = match BirdCache::new(&c2, Family::V4) {
        Ok(b) => b,
        Err(e) => return eprintln!("bird cache: {e}"),
    };
    let t_birds = t.elapsed();
    let t = Instant::now();
    let rerendered = birds.join(&mut c2, &node).map(|v| v.len());
    let t_bird_join = t.elapsed();
    println!(
        "{label} join: BIRD configs of {n} nodes built in {t_birds:.2?}; join re-rendered \
         {rerendered:?} configs in {t_bird_join:.2?}"
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let only = std::env::args().nth(2);
    let threads: usize = std::env::var("ROUTE_TIMING_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("{threads} thread(s)");
    let total = Instant::now();
    for (label, mesh, rrs) in [("mesh", true, 0), ("rr3", false, 3)] {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let cluster = scale_cluster(n, rrs, mesh, Encap::None);
        let f = all_nodes(&cluster, threads);
        let sum = f.t_sessions + f.t_bird + f.t_routes;
        println!(
            "{label} ({n} nodes): sessions {} in {:.3?}; BIRD configs {} in {:.3?} ({:.1} MB, {:.1} KB/node); \
             route tables {} routes in {:.3?}; total {:.3?}",
            f.sessions,
            f.t_sessions,
            n,
            f.t_bird,
            f.bird_bytes as f64 / 1e6,
            f.bird_bytes as f64 / 1e3 / n as f64,
            f.routes,
            f.t_routes,
            sum
        );
    }
    println!("all of the above in {:.3?}", total.elapsed());
    if std::env::var("ROUTE_TIMING_JOIN").as_deref() == Ok("1") {
        for (label, mesh, rrs) in [("mesh", true, 0), ("rr3", false, 3)] {
            if only.as_deref().is_none_or(|o| o == label) {
                join(scale_cluster(n, rrs, mesh, Encap::None), n, label);
            }
        }
    }
}
