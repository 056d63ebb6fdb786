//! Calico routing (routing.md): BGP session graph, BIRD 2 configuration, kernel route plans
//! and route-propagation analysis.
//!
//! Pure: no I/O, no threads. Build a [`input::Cluster`] from resources, then:
//!
//! - [`graph::SessionGraph::new`] — every node's peer protocols and the session count (§3);
//! - [`sessions::node_peerings`] — one node's peer protocols;
//! - [`kernel::plan_node`] — a node's kernel routes, neighbours, FDB entries, devices, MTUs (§6, §7);
//! - [`bird::render`] — a node's BIRD 2 configuration for one family (§4, §5);
//! - [`check::check`] — reachability of every remote block and misconfiguration findings (§10);
//! - [`propagation::learners`] — who learns a node's routes under iBGP/reflection rules;
//! - [`scale::count_sessions`], [`scale::BirdCache`] — session counts without enumerating the
//!   mesh, and per-node configurations re-rendered only where a joining node changes them;
//! - [`ownership::Ownership`] — who programs which pool type's routes (§2.2);
//!
//! All output is deterministic (sorted by name or address).

#![deny(missing_docs)]

pub mod bird;
pub mod check;
pub mod graph;
pub mod input;
pub mod kernel;
pub mod ownership;
pub mod propagation;
pub mod scale;
pub mod sessions;

pub use graph::SessionGraph;
pub use input::{Cluster, Family};
