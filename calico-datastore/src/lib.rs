//! `calico-datastore`: a revisioned key–value store with etcd v3 semantics, the interface
//! the IPAM allocator and the resource commands keep their state behind.
//!
//! * [`Store`] — the interface: keys and values are bytes; every key has a create and a mod
//!   revision; the store has one global revision. [`Store::read`] answers a batch of gets and
//!   ranges at one revision in one round trip; [`Store::txn`] applies puts and deletes all
//!   or nothing when every [`Compare`] ("mod revision = r", "absent", "no key of a range
//!   created or modified after r") holds, and otherwise
//!   fails with [`StoreError::Conflict`] listing the failed compares and the keys' current
//!   revisions. `create`, `update`, `put`, `delete`, `get`, `get_many` and `range` are
//!   built on those two.
//! * Backends: [`MemoryStore`] (`memory:`), [`FileStore`] (`file:PATH`, an embedded redb
//!   database several processes can share), and etcd v3 (`etcd://...`) in the separate
//!   `calico-datastore-etcd` crate, so that this crate pulls in no async runtime.
//! * [`open_store`] opens a store from its URL; [`StoreUrl`] parses one. A `file:` database
//!   still holding keys of an older layout of these tools ([`LEGACY_PREFIXES`]) is refused
//!   ([`OpenError::LegacyLayout`], naming the prefix found) rather than silently
//!   reinterpreted; [`detect_legacy_layout`] is the check, for any list of prefixes.
//! * [`CountingStore`] counts round trips; [`Backoff`] is exponential backoff with full
//!   jitter; the `conformance` feature exposes the suite every backend passes.
//!
//! The interface is synchronous and object-safe (`Box<dyn Store>`).
//!
//! ```
//! use calico_datastore::{open_store, Compare, ReadOp, StoreError, TxnOp};
//!
//! let store = open_store("memory:")?;
//! let rev = store.create(b"ipam/v1/config", b"{}")?;
//! // A second create conflicts and reports the key's current revision.
//! let err = store.create(b"ipam/v1/config", b"{}").unwrap_err();
//! assert_eq!(err.conflict().unwrap().keys[0].current, Some(rev));
//!
//! // One atomic transaction over several keys, guarded by what was read.
//! store.txn(
//!     &[Compare::mod_revision(b"ipam/v1/config".to_vec(), rev), Compare::absent(b"ipam/v1/handle/h".to_vec())],
//!     &[TxnOp::put(b"ipam/v1/handle/h".to_vec(), b"1".to_vec()), TxnOp::put(b"ipam/v1/block/4/0af40000-26".to_vec(), b"..".to_vec())],
//! )?;
//!
//! // One read batch, one revision.
//! let resp = store.read(&[ReadOp::get(b"ipam/v1/config".to_vec()), ReadOp::prefix(b"ipam/v1/block/".to_vec(), 128)])?;
//! assert_eq!(resp.results.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod backoff;
mod counting;
mod engine;
mod error;
mod file;
mod legacy;
mod memory;
mod store;
mod types;
mod url;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backoff::{Backoff, BackoffPolicy};
pub use counting::{CountingStore, RoundTrips};
pub use error::{Conflict, ConflictingKey, OpenError, Operation, StoreError};
pub use file::FileStore;
pub use legacy::{LEGACY_PREFIXES, LegacyLayout, detect_legacy_layout, refuse_legacy_layout};
pub use memory::MemoryStore;
pub use store::{Store, check_reads, check_txn, failed_compares};
pub use types::{
    Compare, DEFAULT_MAX_TXN_OPS, KeyValue, RangeResponse, RangeResult, ReadOp, ReadResponse,
    ReadResult, Revision, TxnOp, TxnResponse, prefix_end,
};
pub use url::{DEFAULT_STORE_URL, EtcdMember, StoreUrl, open_local, open_store};
