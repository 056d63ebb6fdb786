//! Wiring a pod the way Calico's CNI plugin does (a veth pair named by Calico's rule, a /32
//! (/128) address in the pod, a default route via 169.254.1.1 on-link, proxy ARP on the host
//! side), and the reverse teardown.
//!
//! [`wire`] creates a veth pair: the host side (named by [`host_interface_name`], MAC
//! `ee:ee:ee:ee:ee:ee`) stays in the host namespace with forwarding, proxy ARP, neighbour
//! proxy delay 0 and a /32 (/128) route per pod address; the pod side is created directly in
//! the pod's namespace as `eth0`, gets the addresses as /32 (/128), and a default route via
//! `169.254.1.1` (onlink) for IPv4 and via the host side's link-local address for IPv6.
//! [`unwire`] deletes the host side, which removes the pair and the routes through it.
//!
//! As on a real node, proxy ARP answers for `169.254.1.1` only when the host namespace has a
//! route to it through another interface (normally its default route).
//!
//! The CNI plugin uses it like this (`host` is the node's namespace):
//!
//! ```no_run
//! use calico_dataplane::netlink::NetlinkDataplane;
//! use calico_dataplane::netns::Netns;
//! use calico_dataplane::workload::{WorkloadSpec, host_interface_name, unwire, wire};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut host = NetlinkDataplane::current()?;
//! let iface = host_interface_name("cali", "prod", "web-0");
//! let pod_ns = Netns::at("/var/run/netns/cni-1234")?;
//! let wired = wire(&mut host, &pod_ns, &WorkloadSpec::new(&iface, vec!["10.244.1.7".parse()?]))?;
//! println!("pod MAC {}", wired.pod_mac);
//! unwire(&mut host, &iface)?;
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::dataplane::{Dataplane, Op};
use crate::netlink::{NetlinkDataplane, NetlinkError};
use crate::netns::{Netns, NetnsError};
use crate::state::{
    Address, BOOT_PROTO, IfName, Mac, Route, RouteKind, RouteProtocol, RouteScope, Sysctl,
};

/// The host side's MAC address.
pub const HOST_MAC: Mac = Mac([0xee; 6]);
/// The pod's IPv4 gateway (answered by proxy ARP on the host side).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The host side's IPv6 link-local address (derived from [`HOST_MAC`]), the pod's IPv6
/// gateway.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// The host-side interface name of a pod: `prefix` + the first 11 hex digits of
/// SHA-1(`namespace.pod`).
pub fn host_interface_name(prefix: &str, namespace: &str, pod: &str) -> String {
    calico_model::derived::interface_name(prefix, namespace, pod)
}

/// What to wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// Host-side interface name (`cali…`, at most 15 characters).
    pub host_iface: String,
    /// Interface name inside the pod (`eth0`).
    pub pod_iface: String,
    /// Pod addresses; each is programmed as a host route (/32 or /128).
    pub addresses: Vec<IpAddr>,
    /// MTU of both sides.
    pub mtu: u32,
    /// Route protocol of the host-side routes (boot, 3, as Felix's default
    /// `deviceRouteProtocol`).
    pub route_protocol: RouteProtocol,
    /// Metric of the host-side routes (Felix's normal route priority is 1024).
    pub route_metric: u32,
}

impl WorkloadSpec {
    /// A spec with Calico's defaults: pod side `eth0`, MTU 1500, protocol boot, metric 1024.
    pub fn new(host_iface: impl Into<String>, addresses: Vec<IpAddr>) -> WorkloadSpec {
        WorkloadSpec {
            host_iface: host_iface.into(),
            pod_iface: "eth0".to_owned(),
            addresses,
            mtu: 1500,
            route_protocol: BOOT_PROTO,
            route_metric: 1024,
        }
    }
}

/// The result of [`wire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiredWorkload {
    /// Host-side interface name.
    pub host_iface: String,
    /// Pod-side interface name.
    pub pod_iface: String,
    /// Pod-side MAC address (for the WorkloadEndpoint's `mac`).
    pub pod_mac: Mac,
    /// Pod addresses as programmed (/32, /128).
    pub addresses: Vec<IpNet>,
}

/// Errors of [`wire`] and [`unwire`].
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The pod's namespace could not be opened.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// Cause.
        #[source]
        source: NetlinkError,
    },
    /// The host-side name is not a valid interface name.
    #[error("invalid interface name {name:?} (1 to 15 characters, no '/' or whitespace)")]
    BadName {
        /// The name.
        name: String,
    },
    /// The host-side interface already exists.
    #[error("interface {name:?} already exists in the host namespace")]
    Exists {
        /// The name.
        name: String,
    },
    /// The pod side was not found after creation.
    #[error("pod interface {name:?} not found in {netns}")]
    PodSideMissing {
        /// The name.
        name: String,
        /// The namespace.
        netns: String,
    },
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && !n.contains('/')
        && !n.chars().any(char::is_whitespace)
        && n != "."
        && n != ".."
}

fn step(step: &str) -> impl FnOnce(NetlinkError) -> WorkloadError + '_ {
    move |source| WorkloadError::Netlink {
        step: step.to_owned(),
        source,
    }
}

fn apply_all(dp: &mut NetlinkDataplane, ops: &[Op], what: &str) -> Result<(), WorkloadError> {
    for r in dp.apply(ops) {
        r.map_err(step(what))?;
    }
    Ok(())
}

fn host_net(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(a) => IpNet::V4(ipnet::Ipv4Net::from(a)),
        IpAddr::V6(a) => IpNet::V6(ipnet::Ipv6Net::from(a)),
    }
}

/// Wires a pod: `host` is the host namespace's dataplane, `pod_netns` the pod's namespace.
/// On failure the host side is removed again, so nothing is left half-wired.
pub fn wire(
    host: &mut NetlinkDataplane,
    pod_netns: &Netns,
    spec: &WorkloadSpec,
) -> Result<WiredWorkload, WorkloadError> {
    for n in [&spec.host_iface, &spec.pod_iface] {
        if !valid_name(n) {
            return Err(WorkloadError::BadName { name: n.clone() });
        }
    }
    if host
        .link(&spec.host_iface)
        .map_err(step("list host links"))?
        .is_some()
    {
        return Err(WorkloadError::Exists {
            name: spec.host_iface.clone(),
        });
    }
    host.create_veth(
        &spec.host_iface,
        Some(HOST_MAC),
        &spec.pod_iface,
        pod_netns,
        spec.mtu,
    )
    .map_err(step("create the veth pair"))?;
    match wire_rest(host, pod_netns, spec) {
        Ok(w) => Ok(w),
        Err(e) => {
            // Undo: deleting the host side removes the pod side too. The original error
            // is what the caller needs to see.
            let _ = host.delete_link_if_present(&spec.host_iface);
            Err(e)
        }
    }
}

fn wire_rest(
    host: &mut NetlinkDataplane,
    pod_netns: &Netns,
    spec: &WorkloadSpec,
) -> Result<WiredWorkload, WorkloadError> {
    // Host side: sysctls, up, routes to the pod.
    let mut ops: Vec<Op> = Sysctl::workload_interface(&spec.host_iface)
        .into_iter()
        .map(Op::SetSysctl)
        .collect();
    if spec.addresses.iter().any(IpAddr::is_ipv6) {
        let i = &spec.host_iface;
        ops.push(Op::SetSysctl(Sysctl::new(
            format!("net/ipv6/conf/{i}/proxy_ndp"),
            "1",
        )));
        ops.push(Op::SetSysctl(Sysctl::new(
            format!("net/ipv6/conf/{i}/forwarding"),
            "1",
        )));
    }
    ops.push(Op::SetUp(spec.host_iface.clone()));
    apply_all(host, &ops, "configure the host side")?;

    // Pod side.
    let mut pod =
        NetlinkDataplane::open(pod_netns.try_clone()?).map_err(step("open the pod namespace"))?;
    let mut ops = vec![
        Op::SetUp("lo".to_owned()),
        Op::SetUp(spec.pod_iface.clone()),
    ];
    let mut addresses = Vec::new();
    for ip in &spec.addresses {
        let net = host_net(*ip);
        addresses.push(net);
        ops.push(Op::AddAddress(Address {
            dev: spec.pod_iface.clone(),
            addr: net,
        }));
    }
    let default = |dst: &str, via: IpAddr| -> Result<Route, WorkloadError> {
        Ok(Route {
            dst: dst.parse().map_err(|_| WorkloadError::BadName {
                name: dst.to_owned(),
            })?,
            kind: RouteKind::Unicast,
            via: Some(via),
            dev: Some(IfName::new(&spec.pod_iface)),
            proto: BOOT_PROTO,
            scope: RouteScope::Universe,
            src: None,
            metric: 0,
            onlink: true,
            mtu: None,
        })
    };
    if spec.addresses.iter().any(IpAddr::is_ipv4) {
        ops.push(Op::ReplaceRoute(default(
            "0.0.0.0/0",
            IpAddr::V4(GATEWAY_V4),
        )?));
    }
    if spec.addresses.iter().any(IpAddr::is_ipv6) {
        ops.push(Op::ReplaceRoute(default("::/0", IpAddr::V6(GATEWAY_V6))?));
    }
    apply_all(&mut pod, &ops, "configure the pod side")?;
    let pod_link = pod
        .link(&spec.pod_iface)
        .map_err(step("read the pod side"))?
        .ok_or_else(|| WorkloadError::PodSideMissing {
            name: spec.pod_iface.clone(),
            netns: pod_netns.describe(),
        })?;

    // Host routes to the pod.
    let ops: Vec<Op> = addresses
        .iter()
        .map(|net| {
            Op::ReplaceRoute(Route {
                dst: *net,
                kind: RouteKind::Unicast,
                via: None,
                dev: Some(IfName::new(&spec.host_iface)),
                proto: spec.route_protocol,
                scope: RouteScope::Link,
                src: None,
                metric: spec.route_metric,
                onlink: false,
                mtu: None,
            })
        })
        .collect();
    apply_all(host, &ops, "add the host routes")?;
    Ok(WiredWorkload {
        host_iface: spec.host_iface.clone(),
        pod_iface: spec.pod_iface.clone(),
        pod_mac: pod_link.mac.unwrap_or_default(),
        addresses,
    })
}

/// Removes a pod's wiring: deletes the host side (and with it the pod side and the routes
/// through it). Returns whether there was anything to delete.
pub fn unwire(host: &mut NetlinkDataplane, host_iface: &str) -> Result<bool, WorkloadError> {
    host.delete_link_if_present(host_iface)
        .map_err(step("delete the host side"))
}
