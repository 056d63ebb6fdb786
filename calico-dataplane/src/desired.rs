//! Desired state from calico-route's per-node plan ([`KernelPlan`]: the routes, tunnel
//! devices, neighbour and FDB entries a node needs for its encapsulation mode).
//!
//! Only dataplane-owned routes are taken (BIRD programs its own); devices become owned
//! devices with their address; neighbour and FDB entries are copied; every workload interface
//! a local-workload route names gets Calico's interface sysctls.

use std::collections::BTreeSet;

use calico_route::kernel::{self, KernelPlan, RouteClass};
use calico_route::ownership::Owner;

use crate::state::{
    Address, BOOT_PROTO, DesiredState, Device, DeviceKind, FELIX_PROTO, FdbEntry, Mac,
    MacParseError, Neighbour, Ownership, Route, RouteKind, Scope, Sysctl, VXLAN_PORT, VXLAN_VNI,
};

/// Errors of [`from_plan`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromPlanError {
    /// A route protocol outside 0–255.
    #[error("route {route}: protocol {proto} is not a kernel route protocol (0-255)")]
    Protocol {
        /// The route, in `ip route` syntax.
        route: String,
        /// The protocol.
        proto: u32,
    },
    /// A MAC address that does not parse.
    #[error("{what}: {source}")]
    Mac {
        /// Where it was.
        what: String,
        /// Cause.
        #[source]
        source: MacParseError,
    },
    /// A device kind the dataplane does not program.
    #[error("device {name}: unknown kind {kind:?}")]
    DeviceKind {
        /// Device.
        name: String,
        /// Kind.
        kind: String,
    },
    /// A VNI or port out of range.
    #[error("device {name}: {field} {value} out of range")]
    Range {
        /// Device.
        name: String,
        /// Field.
        field: &'static str,
        /// Value.
        value: i64,
    },
}

fn mac(text: &str, what: impl FnOnce() -> String) -> Result<Mac, FromPlanError> {
    text.parse().map_err(|source| FromPlanError::Mac {
        what: what(),
        source,
    })
}

/// Converts one route of the plan.
pub fn route(r: &kernel::KernelRoute) -> Result<Route, FromPlanError> {
    let proto = u8::try_from(r.proto).map_err(|_| FromPlanError::Protocol {
        route: r.to_string(),
        proto: r.proto,
    })?;
    Ok(Route {
        dst: r.dst.trunc(),
        kind: if r.blackhole {
            RouteKind::Blackhole
        } else {
            RouteKind::Unicast
        },
        via: r.via,
        dev: if r.blackhole {
            None
        } else {
            r.dev.as_ref().map(ToString::to_string)
        },
        proto,
        scope: match r.scope {
            Some(kernel::RouteScope::Link) => Scope::Link,
            Some(kernel::RouteScope::Host) => Scope::Host,
            None => Scope::Universe,
        },
        src: r.src,
        metric: r.metric,
        onlink: r.onlink,
        mtu: r.mtu,
    })
}

/// Converts one device of the plan.
pub fn device(d: &kernel::Device) -> Result<Device, FromPlanError> {
    let kind = match d.kind.as_str() {
        "vxlan" => {
            let vni = d.vni.unwrap_or(i64::from(VXLAN_VNI));
            let port = d.port.unwrap_or(i64::from(VXLAN_PORT));
            DeviceKind::Vxlan {
                vni: u32::try_from(vni).map_err(|_| FromPlanError::Range {
                    name: d.name.clone(),
                    field: "vni",
                    value: vni,
                })?,
                port: u16::try_from(port).map_err(|_| FromPlanError::Range {
                    name: d.name.clone(),
                    field: "port",
                    value: port,
                })?,
                local: d.local,
                parent: d.parent.clone(),
            }
        }
        "ipip" => DeviceKind::Ipip,
        other => {
            return Err(FromPlanError::DeviceKind {
                name: d.name.clone(),
                kind: other.to_owned(),
            });
        }
    };
    let mac = match &d.mac {
        Some(m) => Some(mac(m, || format!("device {}", d.name))?),
        None => None,
    };
    Ok(Device {
        name: d.name.clone(),
        kind,
        mtu: d.mtu,
        mac,
    })
}

/// The desired state of a node from its plan. `interface_prefix` is the workload interface
/// prefix (`cali`, or Felix's `interfacePrefix`).
pub fn from_plan(plan: &KernelPlan, interface_prefix: &str) -> Result<DesiredState, FromPlanError> {
    let mut ownership = Ownership::calico();
    ownership.interface_prefixes = vec![interface_prefix.to_owned()];
    let mut routes = Vec::new();
    let mut workload_ifaces = BTreeSet::new();
    for r in plan.routes.iter().filter(|r| r.owner == Owner::Dataplane) {
        let conv = route(r)?;
        if r.class == RouteClass::LocalWorkload {
            if let Some(d) = &conv.dev {
                workload_ifaces.insert(d.clone());
            }
        } else if conv.proto != BOOT_PROTO {
            ownership.route_protocols.insert(conv.proto);
        }
        routes.push(conv);
    }
    ownership.route_protocols.insert(FELIX_PROTO);
    let mut devices = Vec::new();
    let mut addresses = Vec::new();
    for d in &plan.devices {
        devices.push(device(d)?);
        let net = match d.address {
            std::net::IpAddr::V4(a) => ipnet::IpNet::V4(ipnet::Ipv4Net::from(a)),
            std::net::IpAddr::V6(a) => ipnet::IpNet::V6(ipnet::Ipv6Net::from(a)),
        };
        addresses.push(Address {
            dev: d.name.clone(),
            addr: net,
        });
    }
    let neighbours = plan
        .neighbours
        .iter()
        .map(|n| {
            Ok(Neighbour {
                dev: n.dev.clone(),
                ip: n.ip,
                mac: mac(&n.lladdr, || format!("neighbour {} dev {}", n.ip, n.dev))?,
            })
        })
        .collect::<Result<Vec<_>, FromPlanError>>()?;
    let fdb = plan
        .fdb
        .iter()
        .map(|f| {
            Ok(FdbEntry {
                dev: f.dev.clone(),
                mac: mac(&f.mac, || format!("fdb entry dev {} dst {}", f.dev, f.dst))?,
                dst: f.dst,
            })
        })
        .collect::<Result<Vec<_>, FromPlanError>>()?;
    let sysctls = workload_ifaces
        .iter()
        .flat_map(|i| Sysctl::workload_interface(i))
        .collect();
    Ok(DesiredState {
        devices,
        addresses,
        routes,
        neighbours,
        fdb,
        sysctls,
        nft: None,
        ownership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = from_plan(&plan, "cali").unwrap();
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

    #[test]
    fn protocol_out_of_range_is_an_error() {
        let mut set = calico_model::loader::load_str("c.yaml", CLUSTER);
        set.apply_defaults();
        let cluster = calico_route::Cluster::from_resources(set.resources());
        let mut plan = kernel::plan_node(&cluster, "a", &kernel::PlanOptions::default()).unwrap();
        plan.routes[0].proto = 300;
        assert!(matches!(
            from_plan(&plan, "cali"),
            Err(FromPlanError::Protocol { proto: 300, .. })
        ));
    }
}
