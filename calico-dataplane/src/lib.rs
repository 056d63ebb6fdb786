//! calico-dataplane: a node's kernel state from desired state.
//!
//! A [`state::DesiredState`] lists the devices the dataplane owns
//! (`vxlan.calico`, `tunl0`), their addresses, main-table routes, permanent neighbour and FDB
//! entries and per-interface sysctls. [`reconcile::reconcile`] reads the current state through
//! a [`dataplane::Dataplane`] backend, computes the minimum changes and applies them;
//! only what [`Ownership`](state::Ownership) covers is touched (routes by protocol number, its
//! own devices, routes on workload interfaces). Backends: [`memory`] (records state) and, with
//! the `netlink` feature, `netlink` (rtnetlink over a synchronous socket, optionally inside a
//! named network namespace). The `workload` module wires a pod the way Calico's CNI plugin
//! does.
//!
//! ```
//! use calico_dataplane::memory::MemoryDataplane;
//! use calico_dataplane::reconcile::reconcile;
//! use calico_dataplane::state::{DesiredState, Ownership, Route, RouteKind, RouteScope, FELIX_PROTO};
//!
//! let mut dp = MemoryDataplane::new();
//! dp.add_link("eth0", None);
//! let desired = DesiredState {
//!     routes: vec![Route {
//!         dst: "10.244.2.0/26".parse().unwrap(),
//!         kind: RouteKind::Blackhole,
//!         via: None,
//!         dev: None,
//!         proto: FELIX_PROTO,
//!         scope: RouteScope::Universe,
//!         src: None,
//!         metric: 0,
//!         onlink: false,
//!         mtu: None,
//!     }],
//!     ownership: Ownership::calico(),
//!     ..DesiredState::default()
//! };
//! let first = reconcile(&mut dp, &desired).unwrap();
//! assert_eq!(first.applied.len(), 1);
//! // Idempotent: the second run changes nothing.
//! let second = reconcile(&mut dp, &desired).unwrap();
//! assert!(second.applied.is_empty() && second.is_complete());
//! ```
#![deny(missing_docs)]

pub mod dataplane;
pub mod desired;
#[cfg(feature = "netlink")]
pub mod link_monitor;
pub mod memory;
pub mod mirrored;
#[cfg(feature = "netlink")]
pub mod netlink;
#[cfg(feature = "netlink")]
pub mod netns;
#[cfg(feature = "netlink")]
pub mod nft;
#[cfg(feature = "netlink")]
pub mod probe;
pub mod reconcile;
pub mod state;
#[cfg(feature = "netlink")]
pub mod workload;

pub use dataplane::{Dataplane, Op};
pub use reconcile::{Changes, Report, diff, reconcile};
pub use state::DesiredState;
