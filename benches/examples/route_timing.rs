//! One pass of each routing computation at 5,000 nodes, with wall-clock times.
//!
//! `cargo run --release -p calico-benches --example route_timing`

use std::time::Instant;

use calico_benches::route_scale::{Encap, node_name, scale_cluster};
use calico_route::Family;
use calico_route::bird::render_with;
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::scale::count_sessions;
use calico_route::sessions::{PeerExpansion, mesh_candidates};

fn main() {
    let n = 5000;
    for (label, cluster) in [
        ("mesh", scale_cluster(n, 0, true, Encap::None)),
        ("rr3", scale_cluster(n, 3, false, Encap::None)),
        ("rr3-vxlan", scale_cluster(n, 3, false, Encap::Vxlan)),
    ] {
        let t = Instant::now();
        let exp = PeerExpansion::new(&cluster);
        let t_exp = t.elapsed();
        let t = Instant::now();
        let sessions = count_sessions(&cluster);
        let t_count = t.elapsed();
        let (mesh, _) = mesh_candidates(&cluster, Family::V4);
        let t = Instant::now();
        let one =
            render_with(&cluster, &exp, &mesh, &node_name(0), Family::V4).map(|c| c.text.len());
        let t_one = t.elapsed();
        let t = Instant::now();
        let plan =
            plan_node(&cluster, &node_name(n / 2), &PlanOptions::default()).map(|p| p.routes.len());
        let t_plan = t.elapsed();
        println!(
            "{label}: expansion {t_exp:?}; count {sessions} sessions {t_count:?}; bird node-0 {one:?} bytes {t_one:?}; plan {plan:?} routes {t_plan:?}"
        );
    }
}
