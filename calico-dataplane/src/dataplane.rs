//! The [`Dataplane`] trait: what a backend can observe and the operations it applies.

use std::fmt;

use calico_nft::Ruleset;

use crate::state::{Address, Device, FdbEntry, Neighbour, Observed, Route, Sysctl};

/// One change to the kernel state. The reconciler emits the minimum list of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a device (and bring it up).
    CreateDevice(Device),
    /// Delete a device by name.
    DeleteDevice(String),
    /// Set a link's MTU.
    SetMtu {
        /// Interface.
        dev: String,
        /// New MTU.
        mtu: u32,
    },
    /// Bring a link up.
    SetUp(String),
    /// Add an address.
    AddAddress(Address),
    /// Remove an address.
    DelAddress(Address),
    /// Add or replace a route (same destination and metric).
    ReplaceRoute(Route),
    /// Delete a route.
    DelRoute(Route),
    /// Add or replace a permanent neighbour entry.
    ReplaceNeighbour(Neighbour),
    /// Delete a neighbour entry.
    DelNeighbour(Neighbour),
    /// Add or replace an FDB entry.
    ReplaceFdb(FdbEntry),
    /// Delete an FDB entry.
    DelFdb(FdbEntry),
    /// Write a sysctl.
    SetSysctl(Sysctl),
}

impl Op {
    /// The interfaces this operation needs to exist beforehand.
    pub fn needs_device(&self) -> Option<&str> {
        match self {
            Op::CreateDevice(_) => None,
            Op::DeleteDevice(d) | Op::SetUp(d) | Op::SetMtu { dev: d, .. } => Some(d),
            Op::AddAddress(a) | Op::DelAddress(a) => Some(&a.dev),
            Op::ReplaceRoute(r) | Op::DelRoute(r) => r.dev.as_deref(),
            Op::ReplaceNeighbour(n) | Op::DelNeighbour(n) => Some(&n.dev),
            Op::ReplaceFdb(f) | Op::DelFdb(f) => Some(&f.dev),
            Op::SetSysctl(s) => sysctl_interface(&s.path),
        }
    }
}

/// The interface a per-interface sysctl path names (`net/ipv4/conf/IFACE/...`).
pub fn sysctl_interface(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("net"), Some("ipv4" | "ipv6"), Some("conf" | "neigh"), Some(iface))
            if iface != "all" && iface != "default" =>
        {
            Some(iface)
        }
        _ => None,
    }
}

impl fmt::Display for Op {
    /// One line, in `ip` command style.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateDevice(d) => {
                write!(
                    f,
                    "link add {} type {} mtu {}",
                    d.name,
                    d.kind.name(),
                    d.mtu
                )?;
                if let crate::state::DeviceKind::Vxlan {
                    vni,
                    port,
                    local,
                    parent,
                } = &d.kind
                {
                    write!(f, " id {vni} dstport {port}")?;
                    if let Some(l) = local {
                        write!(f, " local {l}")?;
                    }
                    if let Some(p) = parent {
                        write!(f, " dev {p}")?;
                    }
                    f.write_str(" nolearning")?;
                }
                if let Some(m) = d.mac {
                    write!(f, " address {m}")?;
                }
                Ok(())
            }
            Op::DeleteDevice(d) => write!(f, "link del {d}"),
            Op::SetMtu { dev, mtu } => write!(f, "link set {dev} mtu {mtu}"),
            Op::SetUp(d) => write!(f, "link set {d} up"),
            Op::AddAddress(a) => write!(f, "addr add {} dev {}", a.addr, a.dev),
            Op::DelAddress(a) => write!(f, "addr del {} dev {}", a.addr, a.dev),
            Op::ReplaceRoute(r) => write!(f, "route replace {r}"),
            Op::DelRoute(r) => write!(f, "route del {r}"),
            Op::ReplaceNeighbour(n) => write!(
                f,
                "neigh replace {} lladdr {} dev {} nud permanent",
                n.ip, n.mac, n.dev
            ),
            Op::DelNeighbour(n) => write!(f, "neigh del {} dev {}", n.ip, n.dev),
            Op::ReplaceFdb(e) => write!(
                f,
                "fdb replace {} dev {} dst {} self permanent",
                e.mac, e.dev, e.dst
            ),
            Op::DelFdb(e) => write!(f, "fdb del {} dev {} dst {} self", e.mac, e.dev, e.dst),
            Op::SetSysctl(s) => write!(f, "sysctl {}={}", s.path.replace('/', "."), s.value),
        }
    }
}

/// Why an operation failed, as far as the reconciler needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The kernel lacks the device kind (`ipip` here): "unknown device type".
    UnsupportedDeviceKind,
    /// Anything else.
    Other,
}

/// A backend error that can say whether it is an unsupported device kind.
pub trait BackendError: std::error::Error + Send + Sync + 'static {
    /// The class of failure.
    fn kind(&self) -> FailureKind;
}

/// A kernel-state backend: observes the state and applies [`Op`]s.
///
/// Implemented by [`crate::memory::MemoryDataplane`] and, with the `netlink` feature, by
/// `netlink::NetlinkDataplane`. The trait is object-safe for a fixed error type.
pub trait Dataplane {
    /// The backend's error.
    type Error: BackendError;

    /// The current state. `sysctls` lists the sysctl paths whose values to read.
    fn observe(&mut self, sysctls: &[&str]) -> Result<Observed, Self::Error>;

    /// Applies operations in order. Returns one result per operation (a failing operation
    /// does not stop the rest; callers order dependent operations and skip dependants).
    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), Self::Error>>;

    /// Makes the nftables table (`table inet calico`) hold exactly `ruleset`, in one
    /// transaction, repairing any drift (a flushed table, an edited chain); with `dry_run`
    /// only reports. Returns one line per object that differs (empty: nothing to do). Never
    /// touches other tables.
    fn sync_nft(&mut self, ruleset: &Ruleset, dry_run: bool) -> Result<Vec<String>, Self::Error>;
}
