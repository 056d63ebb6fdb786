//! An in-memory backend: records state the way the kernel would, for embedding and tests.
//!
//! It enforces the kernel rules the reconciler relies on: entries need their interface,
//! deleting an interface removes everything on it, a route is identified by destination and
//! metric, and device kinds can be declared unsupported (to model a kernel without `ipip`).

use std::collections::BTreeSet;

use calico_nft::{Ruleset, RulesetDelta};

use crate::dataplane::{BackendError, Dataplane, FailureKind, Op, sysctl_interface};
use crate::state::{DeviceKind, Link, LinkDetails, Observed};

/// Errors of the memory backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The interface does not exist.
    #[error("no interface named {name:?}")]
    NoSuchInterface {
        /// Interface name.
        name: String,
    },
    /// The interface already exists.
    #[error("interface {name:?} already exists")]
    InterfaceExists {
        /// Interface name.
        name: String,
    },
    /// The device kind is not available ("unknown device type").
    #[error("cannot create {name:?}: unknown device type {kind:?}")]
    UnsupportedKind {
        /// Interface name.
        name: String,
        /// Kind.
        kind: String,
    },
    /// The entry to delete does not exist.
    #[error("no such entry: {what}")]
    NoSuchEntry {
        /// The entry, in `ip` syntax.
        what: String,
    },
}

impl BackendError for MemoryError {
    fn kind(&self) -> FailureKind {
        match self {
            MemoryError::UnsupportedKind { .. } => FailureKind::UnsupportedDeviceKind,
            _ => FailureKind::Other,
        }
    }
}

/// The in-memory dataplane.
#[derive(Debug, Clone, Default)]
pub struct MemoryDataplane {
    /// The recorded state; tests may change it to simulate drift.
    pub state: Observed,
    /// Device kinds this "kernel" lacks.
    pub unsupported_kinds: BTreeSet<String>,
    /// Number of operations applied so far.
    pub applied: usize,
    /// The nftables table (`None`: no table).
    pub nft: Option<Ruleset>,
    next_index: u32,
}

impl MemoryDataplane {
    /// An empty dataplane with only `lo`.
    pub fn new() -> MemoryDataplane {
        let mut dp = MemoryDataplane {
            next_index: 1,
            ..MemoryDataplane::default()
        };
        dp.add_link("lo", None);
        dp
    }

    /// A dataplane like this project's kernel: no `ipip`.
    pub fn without_ipip() -> MemoryDataplane {
        let mut dp = MemoryDataplane::new();
        dp.unsupported_kinds.insert("ipip".to_owned());
        dp
    }

    /// Adds an existing interface (a workload veth, the parent interface, ...), up, MTU 1500.
    pub fn add_link(&mut self, name: &str, kind: Option<&str>) -> u32 {
        let index = self.next_index.max(1);
        self.next_index = index + 1;
        self.state.links.push(Link {
            index,
            name: name.to_owned(),
            kind: kind.map(str::to_owned),
            mac: None,
            mtu: 1500,
            up: true,
            details: LinkDetails::default(),
        });
        index
    }

    fn need(&self, name: &str) -> Result<(), MemoryError> {
        if self.state.link(name).is_some() {
            Ok(())
        } else {
            Err(MemoryError::NoSuchInterface {
                name: name.to_owned(),
            })
        }
    }

    fn remove_link(&mut self, name: &str) {
        let s = &mut self.state;
        s.links.retain(|l| l.name != name);
        s.addresses.retain(|a| a.dev != name);
        s.routes.retain(|r| r.dev.as_deref() != Some(name));
        s.neighbours.retain(|n| n.dev != name);
        s.fdb.retain(|f| f.dev != name);
        s.sysctls.retain(|p, _| sysctl_interface(p) != Some(name));
    }

    fn apply_one(&mut self, op: &Op) -> Result<(), MemoryError> {
        if let Some(dev) = op.needs_device() {
            self.need(dev)?;
        }
        match op {
            Op::CreateDevice(d) => {
                if self.state.link(&d.name).is_some() {
                    return Err(MemoryError::InterfaceExists {
                        name: d.name.clone(),
                    });
                }
                if self.unsupported_kinds.contains(d.kind.name()) {
                    return Err(MemoryError::UnsupportedKind {
                        name: d.name.clone(),
                        kind: d.kind.name().to_owned(),
                    });
                }
                let details = match &d.kind {
                    DeviceKind::Vxlan {
                        vni,
                        port,
                        local,
                        parent,
                    } => {
                        let parent_index = match parent {
                            Some(p) => Some(
                                self.state
                                    .link(p)
                                    .ok_or_else(|| MemoryError::NoSuchInterface {
                                        name: p.clone(),
                                    })?
                                    .index,
                            ),
                            None => None,
                        };
                        LinkDetails {
                            vni: Some(*vni),
                            port: Some(*port),
                            local: *local,
                            parent_index,
                            learning: Some(false),
                        }
                    }
                    DeviceKind::Ipip => LinkDetails::default(),
                };
                let index = self.add_link(&d.name, Some(d.kind.name()));
                if let Some(l) = self.state.links.iter_mut().find(|l| l.index == index) {
                    l.mtu = d.mtu;
                    l.mac = d.mac;
                    l.details = details;
                }
            }
            Op::DeleteDevice(name) => self.remove_link(name),
            Op::SetMtu { dev, mtu } => {
                if let Some(l) = self.state.links.iter_mut().find(|l| &l.name == dev) {
                    l.mtu = *mtu;
                }
            }
            Op::SetUp(dev) => {
                if let Some(l) = self.state.links.iter_mut().find(|l| &l.name == dev) {
                    l.up = true;
                }
            }
            Op::AddAddress(a) => {
                if !self.state.addresses.contains(a) {
                    self.state.addresses.push(a.clone());
                }
            }
            Op::DelAddress(a) => {
                let before = self.state.addresses.len();
                self.state.addresses.retain(|x| x != a);
                if before == self.state.addresses.len() {
                    return Err(MemoryError::NoSuchEntry {
                        what: format!("address {} dev {}", a.addr, a.dev),
                    });
                }
            }
            Op::ReplaceRoute(r) => {
                let key = r.key();
                self.state.routes.retain(|x| x.key() != key);
                self.state.routes.push(r.clone());
            }
            Op::DelRoute(r) => {
                let key = r.key();
                let before = self.state.routes.len();
                self.state.routes.retain(|x| x.key() != key);
                if before == self.state.routes.len() {
                    return Err(MemoryError::NoSuchEntry {
                        what: format!("route {r}"),
                    });
                }
            }
            Op::ReplaceNeighbour(n) => {
                self.state
                    .neighbours
                    .retain(|x| !(x.dev == n.dev && x.ip == n.ip));
                self.state.neighbours.push(n.clone());
            }
            Op::DelNeighbour(n) => {
                let before = self.state.neighbours.len();
                self.state
                    .neighbours
                    .retain(|x| !(x.dev == n.dev && x.ip == n.ip));
                if before == self.state.neighbours.len() {
                    return Err(MemoryError::NoSuchEntry {
                        what: format!("neighbour {} dev {}", n.ip, n.dev),
                    });
                }
            }
            Op::ReplaceFdb(f) => {
                if !self.state.fdb.contains(f) {
                    self.state.fdb.push(f.clone());
                }
            }
            Op::DelFdb(f) => {
                let before = self.state.fdb.len();
                self.state.fdb.retain(|x| x != f);
                if before == self.state.fdb.len() {
                    return Err(MemoryError::NoSuchEntry {
                        what: format!("fdb {} dev {} dst {}", f.mac, f.dev, f.dst),
                    });
                }
            }
            Op::SetSysctl(s) => {
                self.state.sysctls.insert(s.path.clone(), s.value.clone());
            }
        }
        self.applied += 1;
        Ok(())
    }
}

impl Dataplane for MemoryDataplane {
    type Error = MemoryError;

    fn observe(&mut self, sysctls: &[&str]) -> Result<Observed, MemoryError> {
        let mut o = self.state.clone();
        o.sysctls.retain(|p, _| sysctls.contains(&p.as_str()));
        for p in sysctls {
            let exists = sysctl_interface(p).is_none_or(|i| self.state.link(i).is_some());
            if exists && !o.sysctls.contains_key(*p) {
                // Kernel default for a sysctl never written.
                o.sysctls.insert((*p).to_owned(), "0".to_owned());
            }
        }
        Ok(o)
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), MemoryError>> {
        ops.iter().map(|op| self.apply_one(op)).collect()
    }

    fn sync_nft(&mut self, ruleset: &Ruleset, dry_run: bool) -> Result<Vec<String>, MemoryError> {
        let mut lines = Vec::new();
        let current = match &self.nft {
            Some(rs) => rs.clone(),
            None => {
                lines.push(format!("add table inet {}", calico_nft::TABLE));
                Ruleset::default()
            }
        };
        let delta = RulesetDelta::between(&current, ruleset);
        lines.extend(
            delta
                .to_nft()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
        if !dry_run && !lines.is_empty() {
            self.nft = Some(ruleset.clone());
        }
        Ok(lines)
    }
}
