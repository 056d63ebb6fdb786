//! Desired and observed kernel state: devices, addresses, routes, neighbour and FDB entries,
//! sysctls, and what the dataplane owns (the tunnel devices, the routes of Calico's route
//! protocol and the workload interfaces; see [`Ownership`]).
//!
//! These types are plain data: no I/O, no netlink. A backend reports an [`Observed`]; the
//! reconciler compares it with a [`DesiredState`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Calico's private route protocol number: Felix marks the routes it programs `proto 80`.
pub const FELIX_PROTO: u8 = 80;
/// The `boot` route protocol (3), used for local workload routes by default.
pub const BOOT_PROTO: u8 = 3;
/// The `kernel` route protocol (2): routes the kernel adds itself; never owned.
pub const KERNEL_PROTO: u8 = 2;
/// The IPv4 VXLAN device name.
pub const VXLAN_V4_DEVICE: &str = "vxlan.calico";
/// The IPv6 VXLAN device name.
pub const VXLAN_V6_DEVICE: &str = "vxlan-v6.calico";
/// The IPIP device name.
pub const IPIP_DEVICE: &str = "tunl0";
/// Calico's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 4096;
/// Calico's VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

/// A string that is not `xx:xx:xx:xx:xx:xx`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {text:?}")]
pub struct MacParseError {
    /// The rejected text.
    pub text: String,
}

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Mac, MacParseError> {
        let err = || MacParseError { text: s.to_owned() };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Route type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RouteKind {
    /// Ordinary unicast route.
    #[default]
    Unicast,
    /// `blackhole` route.
    Blackhole,
}

/// Route scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Scope {
    /// Global (`universe`).
    #[default]
    Universe,
    /// `scope link`.
    Link,
    /// `scope host`.
    Host,
}

/// One route in the main table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Unicast or blackhole.
    pub kind: RouteKind,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<String>,
    /// Route protocol number.
    pub proto: u8,
    /// Scope.
    pub scope: Scope,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Metric (priority); 0 = none.
    pub metric: u32,
    /// `onlink` next hop.
    pub onlink: bool,
    /// Route MTU.
    pub mtu: Option<u32>,
}

impl Route {
    /// The kernel's identity of a route in one table: destination and metric.
    pub fn key(&self) -> RouteKey {
        RouteKey {
            dst: self.dst.trunc(),
            metric: self.effective_metric(),
        }
    }

    /// The metric the kernel records (IPv6 routes without one get 1024).
    pub fn effective_metric(&self) -> u32 {
        if self.metric == 0 && self.dst.addr().is_ipv6() {
            1024
        } else {
            self.metric
        }
    }
}

impl fmt::Display for Route {
    /// `ip route` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == RouteKind::Blackhole {
            f.write_str("blackhole ")?;
        }
        if self.dst.prefix_len() == self.dst.max_prefix_len() {
            write!(f, "{}", self.dst.addr())?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        match self.proto {
            BOOT_PROTO => {}
            KERNEL_PROTO => f.write_str(" proto kernel")?,
            4 => f.write_str(" proto static")?,
            12 => f.write_str(" proto bird")?,
            n => write!(f, " proto {n}")?,
        }
        match self.scope {
            Scope::Link => f.write_str(" scope link")?,
            Scope::Host => f.write_str(" scope host")?,
            Scope::Universe => {}
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        let m = self.effective_metric();
        if m != 0 {
            write!(f, " metric {m}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        Ok(())
    }
}

/// The identity of a route within the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// Destination (host bits cleared).
    pub dst: IpNet,
    /// Effective metric.
    pub metric: u32,
}

/// Kind-specific settings of a device the dataplane owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    /// A VXLAN device (`nolearning`).
    Vxlan {
        /// VNI.
        vni: u32,
        /// UDP destination port.
        port: u16,
        /// Underlay source address.
        local: Option<IpAddr>,
        /// Underlay (parent) interface.
        parent: Option<String>,
    },
    /// An IP-in-IP device (`tunl0`).
    Ipip,
}

impl DeviceKind {
    /// The kernel's kind string (`vxlan`, `ipip`).
    pub fn name(&self) -> &'static str {
        match self {
            DeviceKind::Vxlan { .. } => "vxlan",
            DeviceKind::Ipip => "ipip",
        }
    }
}

/// A device the dataplane creates and owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Device {
    /// Interface name.
    pub name: String,
    /// Kind and its settings.
    pub kind: DeviceKind,
    /// MTU.
    pub mtu: u32,
    /// MAC address (VXLAN).
    pub mac: Option<Mac>,
}

/// An interface address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// Interface name.
    pub dev: String,
    /// Address with prefix length.
    pub addr: IpNet,
}

/// A permanent neighbour (ARP/NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    /// Interface name.
    pub dev: String,
    /// IP address.
    pub ip: IpAddr,
    /// Link-layer address.
    pub mac: Mac,
}

/// A permanent FDB entry on a VXLAN device (`self`, with a remote underlay address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    /// VXLAN device name.
    pub dev: String,
    /// Remote MAC.
    pub mac: Mac,
    /// Remote underlay address.
    pub dst: IpAddr,
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

/// What the dataplane treats as its own: anything not covered here is
/// never modified or removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ownership {
    /// Route protocols whose main-table routes are ours (80, or a non-boot
    /// `deviceRouteProtocol`).
    pub route_protocols: BTreeSet<u8>,
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
            Some(d) => self.devices.contains(d) || self.is_workload_interface(d),
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
