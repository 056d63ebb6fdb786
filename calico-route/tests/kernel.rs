//! Kernel route, neighbour, FDB, device and MTU rules, one test per rule.

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use calico_route::Cluster;
use calico_route::kernel::{DeviceKind, PlanError, PlanOptions, mtus, plan_node};
use common::*;

fn pool(name: &str, cidr: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n{extra}"
    )
}

fn affinity(node: &str, cidr: &str, state: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {node}-{}\nspec:\n  state: {state}\n  node: {node}\n  cidr: {cidr}\n",
        cidr.replace(['.', '/', ':'], "-")
    )
}

fn wep(name: &str, node: &str, ip: &str, iface: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  node: {node}\n  orchestrator: k8s\n  pod: {name}\n  endpoint: eth0\n  interfaceName: {iface}\n  ipNetworks: [\"{ip}\"]\n  mac: \"AA:BB:CC:00:00:01\"\n"
    )
}

/// node-a 10.0.0.1/24, node-b 10.0.0.2/24 (same subnet), node-c 10.0.1.3/24 (other subnet).
fn three_nodes() -> String {
    node("node-a", "10.0.0.1/24", "", "")
        + &node("node-b", "10.0.0.2/24", "", "")
        + &node("node-c", "10.0.1.3/24", "", "")
}

fn with_vteps() -> String {
    let mut y = String::new();
    for (n, ip, v) in [
        ("node-a", "10.0.0.1/24", "10.244.0.1"),
        ("node-b", "10.0.0.2/24", "10.244.0.65"),
        ("node-c", "10.0.1.3/24", "10.244.0.129"),
    ] {
        y += &format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {n}\nspec:\n  bgp:\n    ipv4Address: {ip}\n  ipv4VXLANTunnelAddr: {v}\n"
        );
    }
    y += "  vxlanTunnelMACAddr: \"66:00:00:00:00:0C\"\n";
    y
}

fn blocks() -> String {
    affinity("node-a", "10.244.0.0/26", "confirmed")
        + &affinity("node-b", "10.244.0.64/26", "confirmed")
        + &affinity("node-c", "10.244.0.128/26", "confirmed")
}

fn lines(c: &Cluster, node: &str) -> Vec<String> {
    plan_node(c, node, &PlanOptions::default())
        .unwrap()
        .routes
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn vxlan_always_routes_via_vtep_onlink_with_mtu() {
    let c =
        cluster(&(with_vteps() + &blocks() + &pool("p", "10.244.0.0/16", "  vxlanMode: Always\n")));
    assert_eq!(
        lines(&c, "node-a"),
        vec![
            "blackhole 10.244.0.0/26 proto 80",
            "10.244.0.64/26 via 10.244.0.65 dev vxlan.calico proto 80 onlink mtu 1450",
            "10.244.0.128/26 via 10.244.0.129 dev vxlan.calico proto 80 onlink mtu 1450",
        ]
    );
    let plan = plan_node(&c, "node-a", &PlanOptions::default()).unwrap();
    // One neighbour + FDB pair per remote VTEP; configured MAC lower-cased, else derived.
    assert_eq!(plan.neighbours.len(), 2);
    assert_eq!(plan.fdb.len(), 2);
    let c_neigh = plan
        .neighbours
        .iter()
        .find(|n| n.ip.to_string() == "10.244.0.129")
        .unwrap();
    assert_eq!(c_neigh.mac.to_string(), "66:00:00:00:00:0c");
    assert_eq!(c_neigh.dev, "vxlan.calico");
    let c_fdb = plan
        .fdb
        .iter()
        .find(|f| f.mac.to_string() == "66:00:00:00:00:0c")
        .unwrap();
    assert_eq!(c_fdb.dst.to_string(), "10.0.1.3");
    let b_neigh = plan
        .neighbours
        .iter()
        .find(|n| n.ip.to_string() == "10.244.0.65")
        .unwrap();
    assert_eq!(b_neigh.mac.0[0], 0x66);
    let dev = &plan.devices[0];
    assert_eq!(
        (dev.device.name.as_str(), &dev.device.kind, dev.device.mtu),
        (
            "vxlan.calico",
            &DeviceKind::Vxlan {
                vni: 4096,
                port: 4789,
                local: Some("10.0.0.1".parse().unwrap()),
                parent: Some("eth0".to_owned()),
            },
            1450
        )
    );
}

#[test]
fn vxlan_cross_subnet_uses_parent_in_subnet() {
    let c = cluster(
        &(with_vteps() + &blocks() + &pool("p", "10.244.0.0/16", "  vxlanMode: CrossSubnet\n")),
    );
    assert_eq!(
        lines(&c, "node-a")[1..],
        [
            "10.244.0.64/26 via 10.0.0.2 dev eth0 proto 80 onlink",
            "10.244.0.128/26 via 10.244.0.129 dev vxlan.calico proto 80 onlink mtu 1450",
        ]
    );
}

#[test]
fn vxlan_tunnel_address_outside_blocks_gets_a_link_route() {
    // node-c's VTEP is not inside node-c's block (no block for node-c).
    let y = with_vteps()
        + &affinity("node-a", "10.244.0.0/26", "confirmed")
        + &pool("p", "10.244.0.0/16", "  vxlanMode: Always\n");
    let c = cluster(&y);
    let l = lines(&c, "node-a");
    assert!(
        l.contains(&"10.244.0.129 dev vxlan.calico proto 80 scope link mtu 1450".to_owned()),
        "{l:?}"
    );
}

#[test]
fn ipip_always_and_cross_subnet() {
    let c =
        cluster(&(three_nodes() + &blocks() + &pool("p", "10.244.0.0/16", "  ipipMode: Always\n")));
    assert_eq!(
        lines(&c, "node-a")[1..],
        [
            "10.244.0.64/26 via 10.0.0.2 dev tunl0 proto 80 onlink mtu 1480",
            "10.244.0.128/26 via 10.0.1.3 dev tunl0 proto 80 onlink mtu 1480",
        ]
    );
    let c = cluster(
        &(three_nodes() + &blocks() + &pool("p", "10.244.0.0/16", "  ipipMode: CrossSubnet\n")),
    );
    assert_eq!(
        lines(&c, "node-a")[1..],
        [
            "10.244.0.64/26 via 10.0.0.2 dev eth0 proto 80 onlink",
            "10.244.0.128/26 via 10.0.1.3 dev tunl0 proto 80 onlink mtu 1480",
        ]
    );
}

#[test]
fn no_encap_bird_owned_by_default() {
    let c = cluster(&(three_nodes() + &blocks() + &pool("p", "10.244.0.0/16", "")));
    assert_eq!(
        lines(&c, "node-a"),
        vec![
            "blackhole 10.244.0.0/26 proto bird",
            // BIRD installs BGP routes with the normal priority as metric.
            "10.244.0.64/26 via 10.0.0.2 dev eth0 proto bird metric 1024",
            "10.244.0.128/26 via 10.0.1.3 dev eth0 proto bird metric 1024",
        ]
    );
}

#[test]
fn no_encap_dataplane_owned_with_felix_enabled() {
    let felix = "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  programClusterRoutes: Enabled\n";
    let bgp = "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  programClusterRoutes: Disabled\n";
    let c = cluster(&(three_nodes() + &blocks() + &pool("p", "10.244.0.0/16", "") + felix + bgp));
    assert_eq!(
        lines(&c, "node-a"),
        vec![
            "blackhole 10.244.0.0/26 proto 80",
            "10.244.0.64/26 via 10.0.0.2 dev eth0 proto 80 onlink",
            "10.244.0.128/26 via 10.0.1.3 dev eth0 proto 80 onlink",
        ]
    );
}

#[test]
fn ipip_given_to_bird_gets_no_routes() {
    let felix = "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  programClusterRoutes: Disabled\n";
    let bgp = "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  programClusterRoutes: Enabled\n";
    let c = cluster(
        &(three_nodes()
            + &blocks()
            + &pool("p", "10.244.0.0/16", "  ipipMode: Always\n")
            + felix
            + bgp),
    );
    let plan = plan_node(&c, "node-a", &PlanOptions::default()).unwrap();
    assert!(plan.routes.is_empty(), "{:?}", plan.routes);
    assert_eq!(plan.unrouted.len(), 2);
}

#[test]
fn pending_and_slash32_blocks_get_no_blackhole() {
    let y = three_nodes()
        + &affinity("node-a", "10.244.0.0/26", "pending")
        + &affinity("node-a", "10.244.1.7/32", "confirmed")
        + &pool("p", "10.244.0.0/16", "  vxlanMode: Always\n");
    let c = cluster(&y);
    assert!(lines(&c, "node-a").is_empty());
}

#[test]
fn local_workload_route_and_arp_entry() {
    let y = three_nodes()
        + &blocks()
        + &pool("p", "10.244.0.0/16", "  ipipMode: Always\n")
        + &wep("w1", "node-a", "10.244.0.5/32", "cali1234567890a");
    let c = cluster(&y);
    let plan = plan_node(&c, "node-a", &PlanOptions::default()).unwrap();
    assert_eq!(
        plan.routes[1].to_string(),
        "10.244.0.5 dev cali1234567890a scope link metric 1024"
    );
    assert_eq!(plan.neighbours[0].mac.to_string(), "aa:bb:cc:00:00:01");
}

#[test]
fn borrowed_address_routes_everywhere_including_block_owner() {
    // w1 on node-b uses an address from node-a's block.
    let y = three_nodes()
        + &blocks()
        + &pool("p", "10.244.0.0/16", "  ipipMode: Always\n")
        + &wep("w1", "node-b", "10.244.0.9/32", "calib");
    let c = cluster(&y);
    let a = lines(&c, "node-a");
    assert!(a.contains(&"blackhole 10.244.0.0/26 proto 80".to_owned()));
    assert!(
        a.contains(&"10.244.0.9 via 10.0.0.2 dev tunl0 proto 80 onlink mtu 1480".to_owned()),
        "{a:?}"
    );
    let cc = lines(&c, "node-c");
    assert!(cc.contains(&"10.244.0.9 via 10.0.0.2 dev tunl0 proto 80 onlink mtu 1480".to_owned()));
    let b = lines(&c, "node-b");
    assert!(b.contains(&"10.244.0.9 dev calib scope link metric 1024".to_owned()));
}

#[test]
fn slash32_node_address_always_encapsulates() {
    let y = node("node-a", "10.0.0.1/32", "", "")
        + &node("node-b", "10.0.0.2/24", "", "")
        + &affinity("node-b", "10.244.0.64/26", "confirmed")
        + &pool("p", "10.244.0.0/16", "  ipipMode: CrossSubnet\n");
    let c = cluster(&y);
    assert_eq!(
        lines(&c, "node-a"),
        vec!["10.244.0.64/26 via 10.0.0.2 dev tunl0 proto 80 onlink mtu 1480"]
    );
}

#[test]
fn mtu_arithmetic() {
    let y = three_nodes()
        + &pool("p", "10.244.0.0/16", "  vxlanMode: Always\n")
        + &pool("q", "10.245.0.0/16", "  ipipMode: Always\n");
    let c = cluster(&y);
    let m = mtus(&c, "node-a", 1500);
    assert_eq!(
        (m.ipip, m.vxlan_v4, m.vxlan_v6, m.wireguard_v4),
        (1480, 1450, 1430, 1440)
    );
    assert_eq!(m.pod, 1450);
    let m = mtus(&cluster(&three_nodes()), "node-a", 9000);
    assert_eq!(m.pod, 9000);
}

#[test]
fn custom_device_route_protocol_marks_routes() {
    let felix = "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  deviceRouteProtocol: 99\n";
    let y = three_nodes()
        + &blocks()
        + &pool("p", "10.244.0.0/16", "  ipipMode: Always\n")
        + &wep("w1", "node-a", "10.244.0.5/32", "calia")
        + felix;
    let l = lines(&cluster(&y), "node-a");
    assert_eq!(l[0], "blackhole 10.244.0.0/26 proto 99");
    assert_eq!(l[1], "10.244.0.5 dev calia proto 99 scope link metric 1024");
}

#[test]
fn routes_are_sorted_by_family_then_address() {
    let c = example_cluster();
    let plan = plan_node(&c, "node-2", &PlanOptions::default()).unwrap();
    let fams: Vec<bool> = plan
        .routes
        .iter()
        .map(|r| r.route.dst.addr().is_ipv4())
        .collect();
    let first_v6 = fams.iter().position(|v4| !v4).unwrap();
    assert!(fams[..first_v6].iter().all(|v| *v) && fams[first_v6..].iter().all(|v| !*v));
    let v4: Vec<_> = plan.routes[..first_v6]
        .iter()
        .map(|r| r.route.dst.addr())
        .collect();
    let mut sorted = v4.clone();
    sorted.sort();
    assert_eq!(v4, sorted);
}

#[test]
fn unknown_node_is_an_error() {
    let c = cluster(&three_nodes());
    assert_eq!(
        plan_node(&c, "ghost", &PlanOptions::default()).unwrap_err(),
        PlanError::UnknownNode {
            node: "ghost".into()
        }
    );
}

#[test]
fn bird_owned_routes_only_when_learned() {
    // Mesh off and no peers: BIRD learns nothing, so no BIRD routes are planned.
    let c = cluster(
        &(bgp_config(false) + &three_nodes() + &blocks() + &pool("p", "10.244.0.0/16", "")),
    );
    let plan = plan_node(&c, "node-a", &PlanOptions::default()).unwrap();
    assert_eq!(plan.to_text(), "blackhole 10.244.0.0/26 proto bird\n");
    assert_eq!(plan.unrouted.len(), 2);
}
