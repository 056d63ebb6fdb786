//! Desired state from calico-route's per-node plan ([`KernelPlan`]: the routes, tunnel
//! devices, neighbour and FDB entries a node needs for its encapsulation mode).
//!
//! The plan is already made of the kernel types this crate programs ([`crate::state`]
//! re-exports them), so [`from_plan`] only selects and adds: only dataplane-owned routes are
//! taken (BIRD programs its own); tunnel devices become owned devices plus their address;
//! neighbour and FDB entries are copied; every workload interface a local-workload route
//! names gets Calico's interface sysctls; the route protocols used become owned.

use std::collections::BTreeSet;

use calico_route::kernel::{KernelPlan, RouteClass};
use calico_route::ownership::Owner;
use ipnet::IpNet;

use crate::state::{Address, BOOT_PROTO, DesiredState, FELIX_PROTO, Ownership, Sysctl};

/// The desired state of a node from its plan. `interface_prefix` is the workload interface
/// prefix (`cali`, or Felix's `interfacePrefix`).
pub fn from_plan(plan: &KernelPlan, interface_prefix: &str) -> DesiredState {
    let mut ownership = Ownership::calico();
    ownership.interface_prefixes = vec![interface_prefix.to_owned()];
    let mut routes = Vec::new();
    let mut workload_ifaces = BTreeSet::new();
    for r in plan.routes.iter().filter(|r| r.owner == Owner::Dataplane) {
        let route = &r.route;
        if r.class == RouteClass::LocalWorkload {
            if let Some(d) = &route.dev {
                workload_ifaces.insert(d.to_string());
            }
        } else if route.proto != BOOT_PROTO {
            ownership.route_protocols.insert(route.proto);
        }
        routes.push(route.clone());
    }
    ownership.route_protocols.insert(FELIX_PROTO);
    let devices = plan.devices.iter().map(|d| d.device.clone()).collect();
    let addresses = plan
        .devices
        .iter()
        .map(|d| Address {
            dev: d.device.name.clone(),
            addr: IpNet::from(d.address),
        })
        .collect();
    let sysctls = workload_ifaces
        .iter()
        .flat_map(|i| Sysctl::workload_interface(i))
        .collect();
    DesiredState {
        devices,
        addresses,
        routes,
        neighbours: plan.neighbours.clone(),
        fdb: plan.fdb.clone(),
        sysctls,
        nft: None,
        ownership,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DeviceKind;
    use calico_route::kernel;

    const CLUSTER: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.244.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a}
spec: {bgp: {ipv4Address: 10.0.0.1/24}, ipv4VXLANTunnelAddr: 10.244.0.1}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: b}
spec: {bgp: {ipv4Address: 10.0.0.2/24}, ipv4VXLANTunnelAddr: 10.244.0.65}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: a-b}
spec: {state: confirmed, node: a, cidr: 10.244.0.0/26}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: b-b}
spec: {state: confirmed, node: b, cidr: 10.244.0.64/26}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: default}
spec: {nodeName: a, containers: [{name: c, image: i}]}
status: {podIP: 10.244.0.2}
";

    #[test]
    fn vxlan_node_plan_becomes_desired_state() {
        let mut set = calico_model::loader::load_str("c.yaml", CLUSTER);
        set.apply_defaults();
        let cluster = calico_route::Cluster::from_resources(set.resources());
        let plan = kernel::plan_node(&cluster, "a", &kernel::PlanOptions::default()).unwrap();
        let d = from_plan(&plan, "cali");
        assert_eq!(d.devices.len(), 1);
        let dev = &d.devices[0];
        assert_eq!(dev.name, "vxlan.calico");
        assert_eq!(
            dev.kind,
            DeviceKind::Vxlan {
                vni: 4096,
                port: 4789,
                local: Some("10.0.0.1".parse().unwrap()),
                parent: Some("eth0".to_owned()),
            }
        );
        assert_eq!(dev.mac.map(|m| m.0[0]), Some(0x66));
        assert_eq!(d.addresses[0].addr, "10.244.0.1/32".parse().unwrap());
        let text: Vec<String> = d.routes.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&"blackhole 10.244.0.0/26 proto 80".to_owned()),
            "{text:?}"
        );
        assert!(
            text.contains(
                &"10.244.0.64/26 via 10.244.0.65 dev vxlan.calico proto 80 onlink mtu 1450"
                    .to_owned()
            ),
            "{text:?}"
        );
        let iface = calico_model::derived::interface_name("cali", "default", "p1");
        assert!(text.contains(&format!("10.244.0.2 dev {iface} scope link metric 1024")));
        assert_eq!(d.neighbours.len(), 1);
        assert_eq!(
            d.fdb[0].dst,
            "10.0.0.2".parse::<std::net::IpAddr>().unwrap()
        );
        assert!(
            d.sysctls
                .iter()
                .any(|s| s.path == format!("net/ipv4/conf/{iface}/proxy_arp"))
        );
        assert!(d.ownership.route_protocols.contains(&FELIX_PROTO));
    }
}
