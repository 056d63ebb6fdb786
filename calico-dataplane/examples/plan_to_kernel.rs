//! From a cluster's resources to the kernel changes one node needs, without root: plan the
//! node's routes with calico-route, turn the plan into a desired state, compare it with an
//! in-memory "kernel", apply it there, and show that a second pass changes nothing.
//!
//! Run with `cargo run -p calico-dataplane --example plan_to_kernel`.

use std::error::Error;

use calico_dataplane::Dataplane as _;
use calico_dataplane::desired::from_plan;
use calico_dataplane::memory::MemoryDataplane;
use calico_dataplane::reconcile::{diff, reconcile};
use calico_route::Cluster;
use calico_route::kernel::{PlanOptions, plan_node};

/// Two nodes in one VXLAN pool, each with a block, and one pod on `node-a`.
const CLUSTER: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pods}
spec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 10.0.0.1/24}, ipv4VXLANTunnelAddr: 10.244.0.1}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 10.0.0.2/24}, ipv4VXLANTunnelAddr: 10.244.0.65}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-a-block}
spec: {state: confirmed, node: node-a, cidr: 10.244.0.0/26}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: node-b-block}
spec: {state: confirmed, node: node-b, cidr: 10.244.0.64/26}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.0.2}
";

fn main() -> Result<(), Box<dyn Error>> {
    let mut set = calico_model::loader::load_str("cluster.yaml", CLUSTER);
    set.apply_defaults();
    let cluster = Cluster::from_resources(set.resources());

    // What node-a should program: routes, the VXLAN device, neighbour and FDB entries.
    let plan = plan_node(&cluster, "node-a", &PlanOptions::default())?;
    println!("plan for node-a:");
    print!("{}", plan.to_text());

    // The dataplane's share of it (BIRD programs its own routes), with Calico's ownership.
    let prefix = cluster.felix_for("node-a").interface_prefix;
    let desired = from_plan(&plan, &prefix);

    // An in-memory kernel with the parent interface and the pod's veth already present.
    let mut kernel = MemoryDataplane::new();
    kernel.add_link("eth0", None);
    for r in &plan.routes {
        if let Some(dev) = &r.route.dev
            && dev.starts_with(prefix.as_str())
        {
            kernel.add_link(dev, Some("veth"));
        }
    }

    // The pure comparison: what would change, from the kernel's observed state.
    let observed = kernel.observe(&[])?;
    let changes = diff(&desired, &observed);
    println!(
        "\n{} operations to apply; interfaces missing: {:?}",
        changes.ops.len(),
        changes.missing_interfaces
    );

    // Applying it: every operation succeeds, and a second pass has nothing to do.
    let first = reconcile(&mut kernel, &desired)?;
    println!("\napplied:");
    for op in &first.applied {
        println!("  {op}");
    }
    let second = reconcile(&mut kernel, &desired)?;
    println!(
        "\nsecond pass: {} operations, complete: {}",
        second.applied.len(),
        second.is_complete()
    );
    Ok(())
}
