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
//! * [`Store::watch`] follows the changes under a prefix from a revision ([`Watch`],
//!   [`WatchEvent`]): ordered, no gaps, deletes with their previous value, and
//!   [`StoreError::Compacted`] once the history needed is gone ([`Store::compact`]).
//! * Leases ([`Store::grant_lease`], [`Store::keep_alive`], [`Store::put_with_lease`],
//!   [`Store::revoke_lease`]): keys that go away when their writer stops keeping them alive
//!   (the node agent's status keys), with etcd's semantics on every backend.
//! * [`Syncer`] lists prefixes and follows them with a watch, re-listing (with deletes
//!   synthesised by diffing) after a compaction or an outage.
//! * Backends: [`MemoryStore`] (`memory:`), `FileStore` (`file:PATH`, an embedded redb
//!   database several processes can share; cargo feature `file`, on by default), and etcd v3
//!   (`etcd://...`) in the separate
//!   `calico-datastore-etcd` crate, so that this crate pulls in no async runtime.
//! * [`open_store`] opens a store from its URL; [`StoreUrl`] parses one.
//! * [`resolve_datastore`] decides which datastore a program uses, the way calicoctl
//!   does: an explicit store URL, a `CalicoAPIConfig` file (`--config`, default
//!   `/etc/calico/calicoctl.cfg`), or the calicoctl environment (`ETCD_ENDPOINTS`,
//!   `ETCD_CA_CERT_FILE`, `ETCD_USERNAME`, ..., each also as `CALICO_<NAME>`). It returns a
//!   [`DatastoreTarget`] (for etcd an [`EtcdConnection`]: endpoints with their scheme, TLS
//!   material, credentials) and the [`DatastoreSource`] it came from. The order and the
//!   details are in `docs/configuration.md`.
//!   A `file:` database still holding keys of an older layout of these tools
//!   ([`LEGACY_PREFIXES`]) is refused ([`OpenError::LegacyLayout`], naming the prefix found)
//!   rather than silently reinterpreted; [`detect_legacy_layout`] is the check.
//! * [`CountingStore`] counts round trips; [`Backoff`] is exponential backoff with full
//!   jitter; the `conformance` feature exposes the suite every backend passes.
//!
//! The interface is synchronous and object-safe (`Box<dyn Store>`).
//!
//! ```
//! use calico_datastore::{open_store, Compare, ReadOp, StoreError, TxnOp};
//!
//! let store = open_store("memory:")?;
//! let rev = store.create(b"/calico/ipam/v2/config", b"{}")?;
//! // A second create conflicts and reports the key's current revision.
//! let err = store.create(b"/calico/ipam/v2/config", b"{}").unwrap_err();
//! assert_eq!(err.conflict().unwrap().keys[0].current, Some(rev));
//!
//! // One atomic transaction over several keys, guarded by what was read.
//! store.txn(
//!     &[Compare::mod_revision(b"/calico/ipam/v2/config".to_vec(), rev), Compare::absent(b"/calico/ipam/v2/handle/h".to_vec())],
//!     &[TxnOp::put(b"/calico/ipam/v2/handle/h".to_vec(), b"1".to_vec()), TxnOp::put(b"/calico/ipam/v2/assignment/ipv4/block/10.244.0.0-26".to_vec(), b"..".to_vec())],
//! )?;
//!
//! // One read batch, one revision.
//! let resp = store.read(&[ReadOp::get(b"/calico/ipam/v2/config".to_vec()), ReadOp::prefix(b"/calico/ipam/v2/assignment/".to_vec(), 128)])?;
//! assert_eq!(resp.results.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod backoff;
mod config;
mod connection;
mod counting;
mod engine;
mod error;
#[cfg(feature = "file")]
mod file;
mod legacy;
mod memory;
mod store;
mod sync;
mod types;
mod url;
mod watch;
mod x509;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backoff::{Backoff, BackoffPolicy};
pub use config::{
    ConfigInputs, DEFAULT_CONFIG_FILE, DEFAULT_ETCD_PORT, DatastoreConfigError, DatastoreRequest,
    DatastoreSource, ResolvedDatastore, SystemInputs, parse_endpoints, resolve_datastore,
};
pub use connection::{
    ClientIdentity, DatastoreTarget, EtcdConnection, EtcdCredentials, EtcdEndpoint, EtcdScheme,
    EtcdTls, Pem,
};
pub use counting::{CountingStore, RoundTrips};
pub use error::{Conflict, ConflictingKey, OpenError, Operation, StoreError};
#[cfg(feature = "file")]
pub use file::FileStore;
pub use legacy::{
    LEGACY_PREFIXES, LegacyLayout, detect_legacy_layout, legacy_answer, legacy_probe,
    refuse_legacy_layout,
};
pub use memory::MemoryStore;
pub use store::{Store, check_reads, check_txn, failed_compares};
pub use sync::{SyncEvent, SyncOptions, SyncStats, SyncStatus, Syncer};
pub use types::{
    Compare, DEFAULT_MAX_TXN_OPS, KeyValue, LeaseId, RangeResponse, RangeResult, ReadOp,
    ReadResponse, ReadResult, Revision, TxnOp, TxnResponse, prefix_end,
};
pub use url::{DEFAULT_STORE_URL, EtcdMember, StoreUrl, open_local, open_store};
pub use watch::{DEFAULT_WATCH_HISTORY, Watch, WatchEvent};
pub use x509::{CertTime, CertValidity, certificate_validity};
