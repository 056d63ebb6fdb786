//! Desired versus observed: the minimum list of [`Op`]s, and applying it.
//!
//! [`diff`] is pure. [`reconcile`] observes through a [`Dataplane`], diffs, and applies in
//! two steps: devices first, then everything else, skipping operations on a device whose
//! creation failed (an `ipip` device on a kernel without IP-in-IP is reported, not fatal to
//! the rest). Only what [`Ownership`] covers is ever changed or removed.

use std::collections::{BTreeMap, BTreeSet};

use crate::dataplane::{BackendError, Dataplane, FailureKind, Op, sysctl_interface};
use crate::state::{
    Address, DesiredState, Device, DeviceKind, FdbEntry, Link, Neighbour, Observed, Ownership,
    Route, RouteKey,
};

/// The result of [`diff`]: operations in the order they must run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Operations, dependency-ordered.
    pub ops: Vec<Op>,
    /// Interfaces that desired entries name but that neither exist nor are created; entries
    /// on them are left out of `ops`.
    pub missing_interfaces: BTreeSet<String>,
    /// nftables objects that differ (filled by [`plan`], not by the pure [`diff`]).
    pub nft: Vec<String>,
}

impl Changes {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.nft.is_empty()
    }
}

fn device_matches(want: &Device, have: &Link, links: &[Link]) -> bool {
    if have.kind.as_deref() != Some(want.kind.name()) {
        return false;
    }
    if let Some(mac) = want.mac {
        if have.mac != Some(mac) {
            return false;
        }
    }
    match &want.kind {
        DeviceKind::Vxlan {
            vni,
            port,
            local,
            parent,
        } => {
            let d = &have.details;
            let parent_index = parent
                .as_ref()
                .and_then(|p| links.iter().find(|l| &l.name == p))
                .map(|l| l.index);
            d.vni == Some(*vni)
                && d.port == Some(*port)
                && d.local == *local
                && (parent.is_none() || d.parent_index == parent_index)
                && d.learning != Some(true)
        }
        DeviceKind::Ipip => true,
    }
}

fn is_link_local(a: &Address) -> bool {
    match a.addr {
        ipnet::IpNet::V6(n) => (n.addr().segments()[0] & 0xffc0) == 0xfe80,
        ipnet::IpNet::V4(_) => false,
    }
}

/// Computes the minimum operations that turn `actual` into `desired`.
pub fn diff(desired: &DesiredState, actual: &Observed) -> Changes {
    let own: &Ownership = &desired.ownership;
    let mut out = Changes::default();
    let mut dev_ops = Vec::new();
    let mut link_ops = Vec::new();
    // Devices whose observed entries disappear (recreated) or that exist after the change.
    let mut fresh: BTreeSet<&str> = BTreeSet::new();
    let mut exists: BTreeSet<&str> = actual.links.iter().map(|l| l.name.as_str()).collect();
    let desired_devs: BTreeSet<&str> = desired.devices.iter().map(|d| d.name.as_str()).collect();
    for l in &actual.links {
        if own.devices.contains(&l.name) && !desired_devs.contains(l.name.as_str()) {
            dev_ops.push(Op::DeleteDevice(l.name.clone()));
            exists.remove(l.name.as_str());
            fresh.insert(l.name.as_str());
        }
    }
    for d in &desired.devices {
        match actual.link(&d.name) {
            Some(have) if device_matches(d, have, &actual.links) => {
                if have.mtu != d.mtu {
                    link_ops.push(Op::SetMtu {
                        dev: d.name.clone(),
                        mtu: d.mtu,
                    });
                }
                if !have.up {
                    link_ops.push(Op::SetUp(d.name.clone()));
                }
            }
            Some(_) => {
                dev_ops.push(Op::DeleteDevice(d.name.clone()));
                dev_ops.push(Op::CreateDevice(d.clone()));
                fresh.insert(d.name.as_str());
            }
            None => {
                dev_ops.push(Op::CreateDevice(d.clone()));
                fresh.insert(d.name.as_str());
            }
        }
        exists.insert(d.name.as_str());
    }
    let live = |dev: &str| !fresh.contains(dev);
    let mut missing = BTreeSet::new();
    let mut present = |dev: &str| {
        if exists.contains(dev) {
            true
        } else {
            missing.insert(dev.to_owned());
            false
        }
    };

    // Addresses: desired ones, and removal of others on owned devices.
    let mut addr_add = Vec::new();
    let mut addr_del = Vec::new();
    let want_addrs: BTreeSet<&Address> = desired.addresses.iter().collect();
    for a in &desired.addresses {
        if !present(&a.dev) {
            continue;
        }
        if !live(&a.dev) || !actual.addresses.contains(a) {
            addr_add.push(Op::AddAddress(a.clone()));
        }
    }
    for a in &actual.addresses {
        if desired_devs.contains(a.dev.as_str())
            && live(&a.dev)
            && !want_addrs.contains(a)
            && !is_link_local(a)
        {
            addr_del.push(Op::DelAddress(a.clone()));
        }
    }

    // Sysctls.
    let mut sysctl_ops = Vec::new();
    for s in &desired.sysctls {
        if let Some(iface) = sysctl_interface(&s.path) {
            if !present(iface) {
                continue;
            }
        }
        let fresh_iface = sysctl_interface(&s.path).is_some_and(|i| !live(i));
        if fresh_iface || actual.sysctls.get(&s.path).map(|v| v.trim()) != Some(s.value.as_str()) {
            sysctl_ops.push(Op::SetSysctl(s.clone()));
        }
    }

    // Neighbours, keyed by (dev, ip).
    let mut neigh_set = Vec::new();
    let mut neigh_del = Vec::new();
    let have_neigh: BTreeMap<(&str, std::net::IpAddr), &Neighbour> = actual
        .neighbours
        .iter()
        .filter(|n| live(&n.dev))
        .map(|n| ((n.dev.as_str(), n.ip), n))
        .collect();
    let mut want_neigh = BTreeSet::new();
    for n in &desired.neighbours {
        if !present(&n.dev) {
            continue;
        }
        want_neigh.insert((n.dev.as_str(), n.ip));
        if have_neigh.get(&(n.dev.as_str(), n.ip)).map(|h| h.mac) != Some(n.mac) {
            neigh_set.push(Op::ReplaceNeighbour(n.clone()));
        }
    }
    for (k, n) in &have_neigh {
        if own.owns_neighbour_dev(&n.dev) && !want_neigh.contains(k) {
            neigh_del.push(Op::DelNeighbour((*n).clone()));
        }
    }

    // FDB entries, keyed by (dev, mac, dst).
    let mut fdb_set = Vec::new();
    let mut fdb_del = Vec::new();
    let have_fdb: BTreeSet<&FdbEntry> = actual.fdb.iter().filter(|f| live(&f.dev)).collect();
    let want_fdb: BTreeSet<&FdbEntry> = desired.fdb.iter().collect();
    for f in &desired.fdb {
        if !present(&f.dev) {
            continue;
        }
        if !have_fdb.contains(f) {
            fdb_set.push(Op::ReplaceFdb(f.clone()));
        }
    }
    for f in &have_fdb {
        if own.devices.contains(&f.dev) && !want_fdb.contains(f) {
            fdb_del.push(Op::DelFdb((*f).clone()));
        }
    }

    // Routes, keyed by (destination, metric).
    let mut route_set = Vec::new();
    let mut route_del = Vec::new();
    let mut have_routes: BTreeMap<RouteKey, Vec<&Route>> = BTreeMap::new();
    for r in &actual.routes {
        if r.dev.as_deref().is_some_and(|d| !live(d)) {
            continue;
        }
        have_routes.entry(r.key()).or_default().push(r);
    }
    let mut want_keys = BTreeSet::new();
    for r in &desired.routes {
        let mut r = r.clone();
        r.dst = r.dst.trunc();
        if let Some(d) = &r.dev {
            if !present(d) {
                continue;
            }
        }
        let key = r.key();
        want_keys.insert(key);
        let same = have_routes
            .get(&key)
            .is_some_and(|v| v.len() == 1 && v.iter().all(|h| **h == r));
        if !same {
            route_set.push(Op::ReplaceRoute(r));
        }
    }
    for (key, rs) in &have_routes {
        if want_keys.contains(key) {
            continue;
        }
        for r in rs {
            if own.owns_route(r) {
                route_del.push(Op::DelRoute((*r).clone()));
            }
        }
    }

    out.ops.extend(dev_ops);
    out.ops.extend(link_ops);
    out.ops.extend(addr_del);
    out.ops.extend(addr_add);
    out.ops.extend(sysctl_ops);
    out.ops.extend(neigh_set);
    out.ops.extend(fdb_set);
    out.ops.extend(route_set);
    out.ops.extend(route_del);
    out.ops.extend(neigh_del);
    out.ops.extend(fdb_del);
    out.missing_interfaces = missing;
    out
}

/// What [`reconcile`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Operations applied successfully.
    pub applied: Vec<Op>,
    /// Operations that failed, with the error text.
    pub failed: Vec<(Op, String)>,
    /// Devices whose kind the kernel lacks (e.g. `tunl0` without IP-in-IP).
    pub unsupported_devices: Vec<String>,
    /// Operations skipped because their device could not be created.
    pub skipped: Vec<Op>,
    /// Interfaces named by desired entries that do not exist.
    pub missing_interfaces: BTreeSet<String>,
    /// nftables objects written (empty: the table already matched).
    pub nft_changes: Vec<String>,
    /// Why the nftables transaction failed (nothing of it was applied).
    pub nft_error: Option<String>,
}

impl Report {
    /// Whether anything was changed.
    pub fn changed(&self) -> bool {
        !self.applied.is_empty() || !self.nft_changes.is_empty()
    }

    /// Whether every desired entry was programmed.
    pub fn is_complete(&self) -> bool {
        self.nft_error.is_none()
            && self.failed.is_empty()
            && self.unsupported_devices.is_empty()
            && self.skipped.is_empty()
            && self.missing_interfaces.is_empty()
    }
}

/// Errors of [`reconcile`] and [`plan`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E: std::error::Error + 'static> {
    /// The backend could not report the current state.
    #[error("cannot read the current state: {source}")]
    Observe {
        /// Backend error.
        #[source]
        source: E,
    },
}

fn sysctl_paths(desired: &DesiredState) -> Vec<&str> {
    desired.sysctls.iter().map(|s| s.path.as_str()).collect()
}

/// Observes and diffs without changing anything (`--dry-run`).
pub fn plan<D: Dataplane>(
    dp: &mut D,
    desired: &DesiredState,
) -> Result<Changes, ReconcileError<D::Error>> {
    let actual = dp
        .observe(&sysctl_paths(desired))
        .map_err(|source| ReconcileError::Observe { source })?;
    let mut changes = diff(desired, &actual);
    if let Some(rs) = &desired.nft {
        changes.nft = dp
            .sync_nft(rs, true)
            .map_err(|source| ReconcileError::Observe { source })?;
    }
    Ok(changes)
}

/// Brings the backend to `desired`, changing only what differs. Running it twice in a row
/// applies nothing the second time.
pub fn reconcile<D: Dataplane>(
    dp: &mut D,
    desired: &DesiredState,
) -> Result<Report, ReconcileError<D::Error>> {
    let actual = dp
        .observe(&sysctl_paths(desired))
        .map_err(|source| ReconcileError::Observe { source })?;
    let changes = diff(desired, &actual);
    let mut report = Report {
        missing_interfaces: changes.missing_interfaces.clone(),
        ..Report::default()
    };
    let (dev_ops, rest): (Vec<Op>, Vec<Op>) = changes
        .ops
        .into_iter()
        .partition(|o| matches!(o, Op::CreateDevice(_) | Op::DeleteDevice(_)));
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let results = dp.apply(&dev_ops);
    for (op, res) in dev_ops.into_iter().zip(results) {
        match res {
            Ok(()) => report.applied.push(op),
            Err(e) => {
                if let Op::CreateDevice(d) = &op {
                    broken.insert(d.name.clone());
                    if e.kind() == FailureKind::UnsupportedDeviceKind {
                        report.unsupported_devices.push(d.name.clone());
                        continue;
                    }
                }
                report.failed.push((op, e.to_string()));
            }
        }
    }
    // Policy before routes: a new workload's route only appears once its rules are in.
    if let Some(rs) = &desired.nft {
        match dp.sync_nft(rs, false) {
            Ok(lines) => report.nft_changes = lines,
            Err(e) => report.nft_error = Some(e.to_string()),
        }
    }
    let (run, skip): (Vec<Op>, Vec<Op>) = rest
        .into_iter()
        .partition(|o| o.needs_device().is_none_or(|d| !broken.contains(d)));
    report.skipped = skip;
    let results = dp.apply(&run);
    for (op, res) in run.into_iter().zip(results) {
        match res {
            Ok(()) => report.applied.push(op),
            Err(e) => report.failed.push((op, e.to_string())),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryDataplane;
    use crate::state::{FELIX_PROTO, IfName, RouteKind, RouteProtocol, RouteScope};

    fn r(dst: &str, dev: Option<&str>, proto: impl Into<RouteProtocol>) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            kind: RouteKind::Unicast,
            via: None,
            dev: dev.map(IfName::new),
            proto: proto.into(),
            scope: RouteScope::Link,
            src: None,
            metric: 0,
            onlink: false,
            mtu: None,
        }
    }

    #[test]
    fn missing_interface_is_reported_and_skipped() {
        let want = DesiredState {
            routes: vec![r("10.0.0.5/32", Some("cali12345678901"), 3)],
            ownership: Ownership::calico(),
            ..DesiredState::default()
        };
        let c = diff(&want, &Observed::default());
        assert!(c.ops.is_empty());
        assert_eq!(
            c.missing_interfaces,
            BTreeSet::from(["cali12345678901".to_owned()])
        );
    }

    #[test]
    fn a_foreign_route_to_a_desired_prefix_is_taken_over_by_replace() {
        let mut dp = MemoryDataplane::new();
        dp.add_link("eth0", None);
        let bird = Route {
            scope: RouteScope::Universe,
            ..r("10.244.1.0/26", Some("eth0"), 12)
        };
        dp.state.routes.push(bird);
        let ours = Route {
            scope: RouteScope::Universe,
            onlink: true,
            via: Some("10.0.0.2".parse().unwrap()),
            ..r("10.244.1.0/26", Some("eth0"), FELIX_PROTO)
        };
        let want = DesiredState {
            routes: vec![ours.clone()],
            ownership: Ownership::calico(),
            ..DesiredState::default()
        };
        let report = reconcile(&mut dp, &want).unwrap();
        assert_eq!(report.applied, vec![Op::ReplaceRoute(ours.clone())]);
        assert_eq!(dp.state.routes, vec![ours]);
    }

    #[test]
    fn unowned_routes_and_non_proto_routes_are_left_alone() {
        let mut dp = MemoryDataplane::new();
        dp.add_link("eth0", None);
        dp.add_link("cali12345678901", None);
        let keep = [
            r("192.168.0.0/24", Some("eth0"), 4),
            r("10.0.0.0/24", Some("eth0"), 2),
        ];
        dp.state.routes.extend(keep.iter().cloned());
        let stale = r("10.244.0.9/32", Some("cali12345678901"), 3);
        dp.state.routes.push(stale.clone());
        let want = DesiredState {
            ownership: Ownership::calico(),
            ..DesiredState::default()
        };
        let report = reconcile(&mut dp, &want).unwrap();
        assert_eq!(report.applied, vec![Op::DelRoute(stale)]);
        assert_eq!(dp.state.routes, keep.to_vec());
    }
}
