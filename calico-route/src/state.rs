//! Kernel state objects: routes, devices, neighbour and FDB entries, as a node's kernel holds
//! them. The one vocabulary of [`crate::kernel::plan_node`] (what a node should program) and
//! of the calico-dataplane crate (what it programs and observes).
//!
//! Plain data: no I/O. `Display` is `ip route` / `ip neigh` syntax; the `Serialize` forms
//! are the records of `calico route plan -o json`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;
use serde::ser::SerializeStruct as _;

/// The IPv4 VXLAN device name.
pub const VXLAN_V4_DEVICE: &str = "vxlan.calico";
/// The IPv6 VXLAN device name.
pub const VXLAN_V6_DEVICE: &str = "vxlan-v6.calico";
/// The IPIP device name.
pub const IPIP_DEVICE: &str = "tunl0";
/// Calico's default VXLAN network identifier.
pub const VXLAN_VNI: u32 = 4096;
/// Calico's default VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;

/// A route's protocol number (the kernel's `rtm_protocol`): who installed it. Felix marks
/// its routes [`RouteProtocol::FELIX`] (or a configured `deviceRouteProtocol`), BIRD
/// [`RouteProtocol::BIRD`]. Serializes as the number; displays as `ip route` names it.
///
/// ```
/// use calico_route::state::RouteProtocol;
///
/// assert_eq!(RouteProtocol::BIRD.to_string(), "bird");
/// assert_eq!(RouteProtocol(80).to_string(), "80");
/// assert_eq!(RouteProtocol::from_config(300), RouteProtocol::BOOT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RouteProtocol(pub u8);

impl RouteProtocol {
    /// `kernel` (2): routes the kernel adds itself.
    pub const KERNEL: RouteProtocol = RouteProtocol(2);
    /// `boot` (3): the default of `ip route add`; Calico's local workload routes use it unless
    /// `deviceRouteProtocol` says otherwise.
    pub const BOOT: RouteProtocol = RouteProtocol(3);
    /// `static` (4).
    pub const STATIC: RouteProtocol = RouteProtocol(4);
    /// `bird` (12): routes BIRD installs.
    pub const BIRD: RouteProtocol = RouteProtocol(12);
    /// Felix's private protocol (80), used when `deviceRouteProtocol` is left at boot.
    pub const FELIX: RouteProtocol = RouteProtocol(80);

    /// The protocol a configuration value (`deviceRouteProtocol`) names: the number when it
    /// is one (0–255), else [`RouteProtocol::BOOT`], the default.
    pub fn from_config(value: i64) -> RouteProtocol {
        u8::try_from(value).map_or(RouteProtocol::BOOT, RouteProtocol)
    }

    /// The name `ip route` gives the protocol, if it has one (`kernel`, `boot`, `static`,
    /// `bird`).
    pub fn name(self) -> Option<&'static str> {
        match self {
            RouteProtocol::KERNEL => Some("kernel"),
            RouteProtocol::BOOT => Some("boot"),
            RouteProtocol::STATIC => Some("static"),
            RouteProtocol::BIRD => Some("bird"),
            _ => None,
        }
    }
}

impl fmt::Display for RouteProtocol {
    /// The name, else the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u8> for RouteProtocol {
    fn from(n: u8) -> RouteProtocol {
        RouteProtocol(n)
    }
}

impl From<RouteProtocol> for u8 {
    fn from(p: RouteProtocol) -> u8 {
        p.0
    }
}

/// An Ethernet MAC address. Parses `xx:xx:xx:xx:xx:xx` (or with `-`), either case; displays
/// and serializes lower case with `:`.
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
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for b in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
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

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
pub enum RouteScope {
    /// Global (`universe`), what `ip route` leaves out.
    #[default]
    Universe,
    /// `scope link`.
    Link,
    /// `scope host`.
    Host,
}

/// One route in the main table.
///
/// ```
/// use calico_route::state::{Route, RouteKind, RouteProtocol};
///
/// let r = Route {
///     kind: RouteKind::Blackhole,
///     proto: RouteProtocol::FELIX,
///     ..Route::new("10.244.0.0/26".parse().unwrap())
/// };
/// assert_eq!(r.to_string(), "blackhole 10.244.0.0/26 proto 80");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Unicast or blackhole.
    pub kind: RouteKind,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<IfName>,
    /// Route protocol.
    pub proto: RouteProtocol,
    /// Scope.
    pub scope: RouteScope,
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
    /// A unicast route to `dst` with nothing else set (`boot` protocol, universe scope).
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst,
            kind: RouteKind::Unicast,
            via: None,
            dev: None,
            proto: RouteProtocol::BOOT,
            scope: RouteScope::Universe,
            src: None,
            metric: 0,
            onlink: false,
            mtu: None,
        }
    }

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

    /// Whether this is a blackhole route.
    pub fn is_blackhole(&self) -> bool {
        self.kind == RouteKind::Blackhole
    }

    /// `ip route` syntax with the given multipath next hops (all on [`Route::dev`]); with
    /// fewer than two, the same as `Display`.
    pub(crate) fn write_with_nexthops(
        &self,
        nexthops: &[IpAddr],
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        if self.is_blackhole() {
            f.write_str("blackhole ")?;
        }
        if self.dst.prefix_len() == self.dst.max_prefix_len() {
            write!(f, "{}", self.dst.addr())?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        let multipath = nexthops.len() > 1;
        if !multipath {
            if let Some(v) = self.via {
                write!(f, " via {v}")?;
            }
            if let Some(d) = &self.dev {
                write!(f, " dev {d}")?;
            }
        }
        if self.proto != RouteProtocol::BOOT {
            write!(f, " proto {}", self.proto)?;
        }
        match self.scope {
            RouteScope::Link => f.write_str(" scope link")?,
            RouteScope::Host => f.write_str(" scope host")?,
            RouteScope::Universe => {}
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
        if multipath {
            // `ip route` prints the next hops of a multipath route after its attributes.
            for v in nexthops {
                write!(f, " nexthop via {v}")?;
                if let Some(d) = &self.dev {
                    write!(f, " dev {d}")?;
                }
                f.write_str(" weight 1")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Route {
    /// `[blackhole ]DST[ via GW][ dev IFACE][ proto P][ scope S][ src A][ metric M][ onlink][ mtu N]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with_nexthops(&[], f)
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

/// An interface name, stored inline (Linux names have at most 15 bytes, IFNAMSIZ − 1), so
/// that the millions of routes of a large cluster's plans share no allocation or counter.
/// Longer names (invalid for the kernel, possible in manifests) are kept on the heap.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IfName(IfNameRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum IfNameRepr {
    Inline(InlineName),
    Heap(Box<str>),
}

/// Up to 15 bytes of name and, last, the length. Aligned so that copies of routes move it
/// as whole words (a byte-aligned layout made the compiler copy it in overlapping pieces,
/// which stalled store forwarding on every route planned).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
struct InlineName([u8; 16]);

impl IfName {
    /// The name.
    pub fn new(name: &str) -> IfName {
        let b = name.as_bytes();
        if b.len() <= 15 {
            let mut bytes = [0u8; 16];
            if let Some(dst) = bytes.get_mut(..b.len()) {
                dst.copy_from_slice(b);
            }
            bytes[15] = u8::try_from(b.len()).unwrap_or(0);
            IfName(IfNameRepr::Inline(InlineName(bytes)))
        } else {
            IfName(IfNameRepr::Heap(name.into()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            IfNameRepr::Inline(InlineName(bytes)) => bytes
                .get(..usize::from(bytes[15]))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            IfNameRepr::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for IfName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for IfName {
    fn from(s: &str) -> IfName {
        IfName::new(s)
    }
}

impl PartialEq<str> for IfName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for IfName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<String> for IfName {
    fn from(s: String) -> IfName {
        IfName::new(&s)
    }
}

impl From<&String> for IfName {
    fn from(s: &String) -> IfName {
        IfName::new(s)
    }
}

impl PartialOrd for IfName {
    fn partial_cmp(&self, other: &IfName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IfName {
    /// By name. (Equal names have equal representations: [`IfName::new`] stores every name
    /// of up to 15 bytes inline and only longer ones on the heap.)
    fn cmp(&self, other: &IfName) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Serialize for IfName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
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

/// A device the dataplane creates and owns (a tunnel device).
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

/// A permanent neighbour (ARP/NDP) entry. Serializes as `{"ip", "lladdr", "dev"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    /// Interface name.
    pub dev: String,
    /// IP address.
    pub ip: IpAddr,
    /// Link-layer address.
    pub mac: Mac,
}

impl Serialize for Neighbour {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Neighbour", 3)?;
        st.serialize_field("ip", &self.ip)?;
        st.serialize_field("lladdr", &self.mac)?;
        st.serialize_field("dev", &self.dev)?;
        st.end()
    }
}

/// A permanent FDB entry on a VXLAN device (`self`, with a remote underlay address).
/// Serializes as `{"mac", "dev", "dst"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    /// VXLAN device name.
    pub dev: String,
    /// Remote MAC.
    pub mac: Mac,
    /// Remote underlay address.
    pub dst: IpAddr,
}

impl Serialize for FdbEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("FdbEntry", 3)?;
        st.serialize_field("mac", &self.mac)?;
        st.serialize_field("dev", &self.dev)?;
        st.serialize_field("dst", &self.dst)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text() {
        let m: Result<Mac, _> = "66:0A:bb:00:01:ff".parse();
        assert_eq!(
            m.as_ref().map(ToString::to_string).ok().as_deref(),
            Some("66:0a:bb:00:01:ff")
        );
        assert_eq!("66-0a-bb-00-01-ff".parse::<Mac>().ok(), m.ok());
        for bad in [
            "",
            "66:0a:bb:00:01",
            "66:0a:bb:00:01:ff:00",
            "6:0a:bb:00:01:ff",
            "+6:0a:bb:00:01:ff",
            "66:0a-bb:00:01:ff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_names() {
        let text: Vec<String> = [2u8, 3, 4, 12, 80, 255]
            .into_iter()
            .map(|n| RouteProtocol(n).to_string())
            .collect();
        assert_eq!(text, ["kernel", "boot", "static", "bird", "80", "255"]);
        assert_eq!(RouteProtocol::from_config(-1), RouteProtocol::BOOT);
        assert_eq!(RouteProtocol::from_config(80), RouteProtocol::FELIX);
    }

    #[test]
    fn names_order_by_text() {
        let long = IfName::new("a-name-longer-than-15");
        assert!(IfName::new("b") > long && long > IfName::new("a"));
        assert_eq!(IfName::from("x".to_owned()), IfName::new("x"));
    }
}
