//! `calico-ipam`: Calico's block IP address management on a revisioned key–value
//! [`Store`](calico_datastore::Store).
//!
//! Every operation reads what it needs in one batch (plus bounded extra reads on cold paths),
//! computes the new state in memory and commits **one** transaction comparing the revision of
//! every key it read and changed: a crash at any instant leaves either the old or the
//! new state, never a leaked address, an orphan handle or a dangling affinity. Conflicts are
//! retried with seeded exponential backoff and full jitter. Time and randomness are
//! injected ([`Ipam::with_clock`], [`Ipam::with_seed`]).
//!
//! `auto_assign` in the common case (the host's blocks have room) is **one** round trip:
//! the allocator keeps a mirror of what its last reads and transactions saw (configuration,
//! pools, reservations, Node, Namespace, the host's affinities and blocks, with their
//! revisions), plans on it, and sends a single transaction whose compares guard every fact
//! the plan used (exact revisions for keys, "unchanged since r" range compares for the
//! prefix listings, "absent" for a new handle). A conflict, or a request needing a claim,
//! borrowing or anything the mirror lacks, falls back at once to the fresh path (a read
//! batch, then the transaction). [`Ipam::with_optimistic`] turns it off.
//!
//! What lands in the store is exactly what Calico's own etcd v3 datastore holds (keys under
//! `/calico/ipam/v2/`, Calico's block, affinity, handle and config JSON; see [`keys`] and
//! the crate README), so this allocator and Calico's (the CNI IPAM plugin, calico/node,
//! `calicoctl ipam`) can share one etcd without double-allocating: blocks are changed
//! only by compare-and-swap, `unallocated` is kept the exact complement of the
//! allocations, every write bumps the sequence number and stamps what it allocates, handles
//! are maintained, and a block that breaks those invariants is never written
//! ([`IpamError::BrokenBlock`]). A store holding the private layout of earlier versions is
//! refused ([`layout::refuse_old_layout`]).
//!
//! The crate is pure: it depends on the `Store` trait only, never on an async runtime.
//!
//! ```
//! use std::sync::Arc;
//! use calico_datastore::{MemoryStore, Store};
//! use calico_ipam::{AutoAssignRequest, Ipam, resources::resource_key};
//! use calico_model::resources::ipam::AllowedUse;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! store.put(resource_key("IPPool", None, "p").as_bytes(),
//!     br#"{"metadata":{"name":"p"},"spec":{"cidr":"10.244.0.0/22"}}"#)?;
//! let ipam = Ipam::new(store).with_clock(|| 1_000_000_000).with_seed(7);
//! let got = ipam.auto_assign(&AutoAssignRequest {
//!     num4: 2, host: "node-b".into(), intended_use: AllowedUse::Workload,
//!     ..Default::default()
//! })?;
//! let addrs: Vec<String> = got.v4.iter().map(|a| a.addr().to_string()).collect();
//! assert_eq!(addrs, ["10.244.2.192", "10.244.2.193"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod affinity;
mod assign;
mod block;
mod block_wire;
pub mod check;
mod error;
mod ipam;
pub mod keys;
pub mod layout;
mod mirror;
pub mod net;
mod pools;
mod query;
mod records;
mod release;
pub mod resources;
mod work;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use assign::{AssignIpRequest, Assigned, AutoAssignRequest, Shortfall};
pub use block::{Attribute, Block, Violation, WINDOWS_RESERVED_HANDLE, WINDOWS_RESERVED_NOTE};
pub use calico_model::gotime::{UnixSeconds, format_rfc3339, parse_rfc3339};
pub use error::IpamError;
pub use ipam::{Env, Ipam};
pub use layout::{LayoutError, refuse_old_layout};
pub use pools::{Pool, RequestedPools, Reservations, pools_from_annotations};
pub use query::{AddressAttributes, BlockUsage, PoolUsage, Utilization};
pub use records::{AffinityRecord, AffinityState, Handle, IpamConfigWire, Nanos, Owner};
pub use release::{ReleaseItem, Released};

/// The end of the range of keys starting with `prefix`.
pub(crate) fn prefix_end_of(prefix: &str) -> Option<Vec<u8>> {
    calico_datastore::prefix_end(prefix.as_bytes())
}
