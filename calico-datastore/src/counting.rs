//! A [`Store`] wrapper that counts round trips.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Compare, ReadOp, ReadResponse, TxnOp, TxnResponse};

/// Wraps a store and counts its round trips: every [`Store::read`] and [`Store::txn`] call
/// (successful or not) is one. The helpers (`get`, `create`, ...) are counted through the
/// primitive they call.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    reads: AtomicU64,
    txns: AtomicU64,
}

/// A snapshot of a [`CountingStore`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Read batches.
    pub reads: u64,
    /// Transactions.
    pub txns: u64,
}

impl RoundTrips {
    /// Reads plus transactions.
    pub fn total(&self) -> u64 {
        self.reads + self.txns
    }
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner` with zeroed counters.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            reads: AtomicU64::new(0),
            txns: AtomicU64::new(0),
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> RoundTrips {
        RoundTrips {
            reads: self.reads.load(Ordering::Relaxed),
            txns: self.txns.load(Ordering::Relaxed),
        }
    }

    /// Zeroes the counters and returns their values before.
    pub fn reset(&self) -> RoundTrips {
        RoundTrips {
            reads: self.reads.swap(0, Ordering::Relaxed),
            txns: self.txns.swap(0, Ordering::Relaxed),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Store> Store for CountingStore<S> {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn max_txn_ops(&self) -> usize {
        self.inner.max_txn_ops()
    }

    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(reads)
    }

    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
        self.txns.fetch_add(1, Ordering::Relaxed);
        self.inner.txn(compares, ops)
    }

    fn watch(
        &self,
        prefix: &[u8],
        from: crate::Revision,
    ) -> Result<Box<dyn crate::Watch>, StoreError> {
        self.inner.watch(prefix, from)
    }

    fn compact(&self, revision: crate::Revision) -> Result<(), StoreError> {
        self.inner.compact(revision)
    }

    fn grant_lease(&self, ttl: std::time::Duration) -> Result<crate::LeaseId, StoreError> {
        self.inner.grant_lease(ttl)
    }

    fn keep_alive(&self, lease: crate::LeaseId) -> Result<std::time::Duration, StoreError> {
        self.inner.keep_alive(lease)
    }

    fn revoke_lease(&self, lease: crate::LeaseId) -> Result<(), StoreError> {
        self.inner.revoke_lease(lease)
    }

    fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: crate::LeaseId,
    ) -> Result<crate::Revision, StoreError> {
        self.txns.fetch_add(1, Ordering::Relaxed);
        self.inner.put_with_lease(key, value, lease)
    }
}
