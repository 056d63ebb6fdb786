//! A backend that remembers what the kernel holds, so that applying a change needs no
//! read-back.
//!
//! [`Mirrored`] wraps a real backend. [`Mirrored::resync`] reads the real state once (the
//! full read-back of a periodic refresh); afterwards [`Dataplane::observe`] answers from an
//! in-memory copy, and every operation that succeeds on the real backend is replayed on the
//! copy. [`crate::reconcile::reconcile`] on a `Mirrored` backend therefore diffs against
//! what was last applied and writes only the delta. Changes made behind its back (by a
//! person, by another program) are found at the next resync; interfaces that come and go
//! are told with [`Mirrored::set_links`].
//!
//! ```
//! use calico_dataplane::memory::MemoryDataplane;
//! use calico_dataplane::mirrored::Mirrored;
//! use calico_dataplane::reconcile::reconcile;
//! use calico_dataplane::state::{DesiredState, Ownership, Sysctl};
//!
//! let mut kernel = MemoryDataplane::new();
//! kernel.add_link("eth0", None);
//! let mut dp = Mirrored::new(kernel);
//! dp.resync(&[]).unwrap();
//! let want = DesiredState {
//!     sysctls: vec![Sysctl { path: "net/ipv4/ip_forward".into(), value: "1".into() }],
//!     ownership: Ownership::calico(),
//!     ..DesiredState::default()
//! };
//! assert_eq!(reconcile(&mut dp, &want).unwrap().applied.len(), 1);
//! // The copy knows the sysctl is set: nothing is written (or read) the second time.
//! assert!(reconcile(&mut dp, &want).unwrap().applied.is_empty());
//! assert_eq!(dp.inner().applied, 1);
//! ```

use calico_nft::Ruleset;

use crate::dataplane::{Dataplane, Op, sysctl_interface};
use crate::memory::MemoryDataplane;
use crate::state::{Link, Observed};

/// A backend with an in-memory copy of its state (see the module documentation).
#[derive(Debug)]
pub struct Mirrored<D> {
    inner: D,
    copy: Option<MemoryDataplane>,
}

impl<D: Dataplane> Mirrored<D> {
    /// Wraps `inner`; the first observe reads the real state.
    pub fn new(inner: D) -> Mirrored<D> {
        Mirrored { inner, copy: None }
    }

    /// The real backend.
    pub fn inner(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Reads the real state (with the values of `sysctls`) into the copy.
    pub fn resync(&mut self, sysctls: &[&str]) -> Result<(), D::Error> {
        let state = self.inner.observe(sysctls)?;
        let mut copy = MemoryDataplane::new();
        copy.state = state;
        self.copy = Some(copy);
        Ok(())
    }

    /// Forgets the copy: the next observe reads the real state.
    pub fn invalidate(&mut self) {
        self.copy = None;
    }

    /// The copy (`None` before the first read).
    pub fn copy(&self) -> Option<&Observed> {
        self.copy.as_ref().map(|c| &c.state)
    }

    /// Tells the copy which links exist now: entries on links that went away are dropped
    /// (the kernel dropped them with the link), new links are added as they are.
    pub fn set_links(&mut self, links: Vec<Link>) {
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        let s = &mut copy.state;
        let alive = |name: &str| links.iter().any(|l| l.name == name);
        s.addresses.retain(|a| alive(&a.dev));
        s.routes.retain(|r| r.dev.as_deref().is_none_or(alive));
        s.neighbours.retain(|n| alive(&n.dev));
        s.fdb.retain(|f| alive(&f.dev));
        s.sysctls
            .retain(|p, _| sysctl_interface(p).is_none_or(alive));
        s.links = links;
    }
}

impl<D: Dataplane> Dataplane for Mirrored<D> {
    type Error = D::Error;

    fn observe(&mut self, sysctls: &[&str]) -> Result<Observed, D::Error> {
        if self.copy.is_none() {
            self.resync(sysctls)?;
        }
        match self.copy.as_mut() {
            // Sysctls of interfaces that appeared since the read read as never written.
            Some(copy) => Ok(copy.observe(sysctls).unwrap_or_else(|_| copy.state.clone())),
            None => Ok(Observed::default()),
        }
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), D::Error>> {
        let results = self.inner.apply(ops);
        if let Some(copy) = self.copy.as_mut() {
            let done: Vec<Op> = ops
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(op, _)| op.clone())
                .collect();
            if copy.apply(&done).iter().any(Result::is_err) {
                // The copy disagrees with the kernel about what exists: read it again next
                // time rather than diff against a wrong copy.
                self.copy = None;
            }
        }
        results
    }

    fn sync_nft(&mut self, ruleset: &Ruleset, dry_run: bool) -> Result<Vec<String>, D::Error> {
        self.inner.sync_nft(ruleset, dry_run)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::reconcile::reconcile;
    use crate::state::{
        DesiredState, FELIX_PROTO, IfName, Ownership, Route, RouteKind, RouteScope,
    };

    fn route(dst: &str, dev: &str) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            kind: RouteKind::Unicast,
            via: None,
            dev: Some(IfName::new(dev)),
            proto: FELIX_PROTO,
            scope: RouteScope::Link,
            src: None,
            metric: 0,
            onlink: false,
            mtu: None,
        }
    }

    #[test]
    fn deltas_come_from_the_copy_and_drift_from_a_resync() {
        let mut kernel = MemoryDataplane::new();
        kernel.add_link("cali1", None);
        let mut dp = Mirrored::new(kernel);
        let mut want = DesiredState {
            routes: vec![route("10.0.0.1/32", "cali1")],
            ownership: Ownership::calico(),
            ..DesiredState::default()
        };
        assert_eq!(reconcile(&mut dp, &want).unwrap().applied.len(), 1);
        want.routes.push(route("10.0.0.2/32", "cali1"));
        let r = reconcile(&mut dp, &want).unwrap();
        assert_eq!(
            r.applied,
            vec![Op::ReplaceRoute(route("10.0.0.2/32", "cali1"))]
        );
        // Someone deletes a route behind the agent's back: the copy does not see it ...
        dp.inner().state.routes.clear();
        assert!(reconcile(&mut dp, &want).unwrap().applied.is_empty());
        // ... until the periodic resync, which repairs it.
        dp.resync(&[]).unwrap();
        assert_eq!(reconcile(&mut dp, &want).unwrap().applied.len(), 2);
        assert_eq!(dp.inner().state.routes.len(), 2);
    }

    #[test]
    fn a_new_interface_is_told_and_a_vanished_one_takes_its_entries() {
        let mut dp = Mirrored::new(MemoryDataplane::new());
        let want = DesiredState {
            routes: vec![route("10.0.0.1/32", "cali1")],
            ownership: Ownership::calico(),
            ..DesiredState::default()
        };
        let r = reconcile(&mut dp, &want).unwrap();
        assert!(r.missing_interfaces.contains("cali1"));
        dp.inner().add_link("cali1", None);
        let links = dp.inner().state.links.clone();
        dp.set_links(links);
        assert_eq!(reconcile(&mut dp, &want).unwrap().applied.len(), 1);
        let links: Vec<Link> = dp
            .inner()
            .state
            .links
            .iter()
            .filter(|l| l.name != "cali1")
            .cloned()
            .collect();
        dp.set_links(links);
        assert!(dp.copy().unwrap().routes.is_empty());
    }
}
