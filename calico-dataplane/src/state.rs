//! Desired and observed kernel state: devices, addresses, routes, neighbour and FDB entries,
//! sysctls, and what the dataplane owns (the tunnel devices, the routes of Calico's route
//! protocol and the workload interfaces; see [`Ownership`]).
//!
//! These types are plain data: no I/O, no netlink. A backend reports an [`Observed`]; the
//! reconciler compares it with a [`DesiredState`]. The kernel objects ([`Route`], [`Device`],
//! [`Neighbour`], [`FdbEntry`], [`Mac`], [`RouteProtocol`], ...) are calico-route's
//! `state` types, the ones its kernel plans are made of, re-exported here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

pub use calico_route::state::{
    Device, DeviceKind, FdbEntry, IPIP_DEVICE, IfName, Mac, MacParseError, Neighbour, Route,
    RouteKey, RouteKind, RouteProtocol, RouteScope, VXLAN_PORT, VXLAN_V4_DEVICE, VXLAN_V6_DEVICE,
    VXLAN_VNI,
};

/// Calico's private route protocol: Felix marks the routes it programs `proto 80`.
pub const FELIX_PROTO: RouteProtocol = RouteProtocol::FELIX;
/// The `boot` route protocol (3), used for local workload routes by default.
pub const BOOT_PROTO: RouteProtocol = RouteProtocol::BOOT;
/// The `kernel` route protocol (2): routes the kernel adds itself; never owned.
pub const KERNEL_PROTO: RouteProtocol = RouteProtocol::KERNEL;

/// An interface address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// Interface name.
    pub dev: String,
    /// Address with prefix length.
    pub addr: IpNet,
}

/// One sysctl, addressed by its path under `/proc/sys` (`net/ipv4/conf/IFACE/proxy_arp`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sysctl {
    /// Path below `/proc/sys`, `/`-separated.
    pub path: String,
    /// Value as written (no trailing newline).
    pub value: String,
}

impl Sysctl {
    /// A sysctl.
    pub fn new(path: impl Into<String>, value: impl Into<String>) -> Sysctl {
        Sysctl {
            path: path.into(),
            value: value.into(),
        }
    }

    /// The sysctls Calico sets on a workload's host-side interface: IPv4
    /// forwarding, proxy ARP, neighbour proxy delay 0 and strict reverse-path filtering, as Felix
    /// writes them.
    pub fn workload_interface(iface: &str) -> Vec<Sysctl> {
        vec![
            Sysctl::new(format!("net/ipv4/conf/{iface}/forwarding"), "1"),
            Sysctl::new(format!("net/ipv4/conf/{iface}/proxy_arp"), "1"),
            Sysctl::new(format!("net/ipv4/neigh/{iface}/proxy_delay"), "0"),
            Sysctl::new(format!("net/ipv4/conf/{iface}/rp_filter"), "1"),
        ]
    }
}

/// The kernel objects the dataplane treats as its own: anything not covered here is
/// never modified or removed. (Which *component* programs a pool type's cluster routes,
/// Felix or BIRD, is a different question: calico-route's
/// [`ClusterRouteOwners`](calico_route::ownership::ClusterRouteOwners).)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ownership {
    /// Route protocols whose main-table routes are ours (80, or a non-boot
    /// `deviceRouteProtocol`).
    pub route_protocols: BTreeSet<RouteProtocol>,
    /// Devices that are ours by name (`vxlan.calico`, `tunl0`, ...): removed when not desired.
    /// Every route, address, neighbour and FDB entry on them is ours.
    pub devices: BTreeSet<String>,
    /// Workload interface prefixes (`cali`): routes and permanent neighbours on such
    /// interfaces are ours; the interfaces themselves are not.
    pub interface_prefixes: Vec<String>,
}

impl Ownership {
    /// Calico's defaults: protocol 80, the VXLAN and IPIP devices, the `cali` prefix.
    pub fn calico() -> Ownership {
        Ownership {
            route_protocols: BTreeSet::from([FELIX_PROTO]),
            devices: [VXLAN_V4_DEVICE, VXLAN_V6_DEVICE, IPIP_DEVICE]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            interface_prefixes: vec!["cali".to_owned()],
        }
    }

    /// Whether interface `name` is a workload interface.
    pub fn is_workload_interface(&self, name: &str) -> bool {
        self.interface_prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
    }

    /// Whether a route observed in the main table is ours.
    pub fn owns_route(&self, r: &Route) -> bool {
        if r.proto == KERNEL_PROTO {
            return false;
        }
        if self.route_protocols.contains(&r.proto) {
            return true;
        }
        match &r.dev {
            Some(d) => self.devices.contains(d.as_str()) || self.is_workload_interface(d),
            None => false,
        }
    }

    /// Whether a permanent neighbour entry on `dev` is ours.
    pub fn owns_neighbour_dev(&self, dev: &str) -> bool {
        self.devices.contains(dev) || self.is_workload_interface(dev)
    }
}

/// Everything the dataplane should program on one node (or in one network namespace).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// Devices to create and keep.
    pub devices: Vec<Device>,
    /// Addresses on owned devices (other addresses of the same family there are removed).
    pub addresses: Vec<Address>,
    /// Main-table routes.
    pub routes: Vec<Route>,
    /// Permanent neighbour entries.
    pub neighbours: Vec<Neighbour>,
    /// FDB entries.
    pub fdb: Vec<FdbEntry>,
    /// Sysctls.
    pub sysctls: Vec<Sysctl>,
    /// The nftables table (`table inet calico`); `None` leaves nftables alone.
    pub nft: Option<calico_nft::Ruleset>,
    /// What is ours.
    pub ownership: Ownership,
}

/// Kind-specific facts about an observed link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkDetails {
    /// VNI (VXLAN).
    pub vni: Option<u32>,
    /// UDP port (VXLAN).
    pub port: Option<u16>,
    /// Underlay local address (VXLAN).
    pub local: Option<IpAddr>,
    /// Index of the underlay interface (VXLAN).
    pub parent_index: Option<u32>,
    /// Learning enabled (VXLAN).
    pub learning: Option<bool>,
}

/// An interface as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Kind (`vxlan`, `veth`, `bridge`, ...), if the kernel reports one.
    pub kind: Option<String>,
    /// MAC address.
    pub mac: Option<Mac>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Kind-specific details.
    pub details: LinkDetails,
}

/// What a backend reports about the current state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Every link.
    pub links: Vec<Link>,
    /// Every address (all links).
    pub addresses: Vec<Address>,
    /// Every main-table route.
    pub routes: Vec<Route>,
    /// Permanent neighbour entries.
    pub neighbours: Vec<Neighbour>,
    /// FDB entries with a remote address, on VXLAN devices.
    pub fdb: Vec<FdbEntry>,
    /// Values of the sysctls asked for (missing when the path does not exist).
    pub sysctls: BTreeMap<String, String>,
}

impl Observed {
    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}
