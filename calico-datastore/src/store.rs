//! The [`Store`] trait and the request checks every backend shares.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Conflict, StoreError};
use crate::types::{
    Compare, DEFAULT_MAX_TXN_OPS, KeyValue, RangeResponse, ReadOp, ReadResponse, ReadResult,
    Revision, TxnOp, TxnResponse,
};
use std::time::Duration;

use crate::types::LeaseId;
use crate::watch::Watch;

/// A revisioned key–value store with etcd v3 semantics.
///
/// Keys and values are bytes. The two primitive requests are each one round trip:
///
/// * [`read`](Store::read): a batch of gets and ranges, all answered at one store revision;
/// * [`txn`](Store::txn): compares (a key's mod revision, or its absence) and then puts and
///   deletes, applied all together if every compare holds and not at all otherwise.
///
/// Everything else is built on those two. Implementations are synchronous and thread-safe;
/// the trait is object-safe (`Box<dyn Store>`).
pub trait Store: Send + Sync {
    /// The store's URL (`memory:`, `file:PATH`, `etcd://...`), for messages.
    fn url(&self) -> &str;

    /// The maximum number of compares, of operations and of reads per request.
    fn max_txn_ops(&self) -> usize {
        DEFAULT_MAX_TXN_OPS
    }

    /// Reads every op at one store revision, in one round trip.
    ///
    /// An empty batch returns the current revision.
    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError>;

    /// If every compare holds, applies every op atomically; otherwise applies nothing and
    /// returns [`StoreError::Conflict`] listing the failed compares. One round trip.
    ///
    /// A key may be written at most once per transaction.
    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError>;

    /// Watches the keys starting with `prefix` from revision `from` (inclusive; `0`: from
    /// the next change on). See [`Watch`] for what it yields; a `from` whose history is gone
    /// fails with [`StoreError::Compacted`].
    fn watch(&self, prefix: &[u8], from: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let _ = (prefix, from);
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "watch",
        })
    }

    /// Discards the history before `revision` (etcd's compaction): watches from earlier
    /// revisions fail with [`StoreError::Compacted`] afterwards. Values are not affected.
    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let _ = revision;
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "compaction",
        })
    }

    /// Grants a lease that expires `ttl` after it is granted or last kept alive (at least
    /// one second; whole seconds, as etcd counts them).
    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let _ = ttl;
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "leases",
        })
    }

    /// Restarts a lease's time to live; returns it. [`StoreError::LeaseNotFound`] once the
    /// lease has expired or was revoked.
    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let _ = lease;
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "leases",
        })
    }

    /// Revokes a lease: its keys are deleted now.
    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        let _ = lease;
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "leases",
        })
    }

    /// Writes `key` attached to `lease`: the key is deleted when the lease expires or is
    /// revoked, unless it is written again without the lease first. Returns the revision.
    fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: LeaseId,
    ) -> Result<Revision, StoreError> {
        let _ = (key, value, lease);
        Err(StoreError::Unsupported {
            store: self.url().to_owned(),
            what: "leases",
        })
    }

    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let mut resp = self.read(&[ReadOp::get(key)])?;
        Ok(resp.results.pop().and_then(ReadResult::into_get))
    }

    /// Reads several keys at one revision: the revision, and one entry per key in order.
    fn get_many(&self, keys: &[&[u8]]) -> Result<(Revision, Vec<Option<KeyValue>>), StoreError> {
        let reads: Vec<ReadOp> = keys.iter().map(|k| ReadOp::get(*k)).collect();
        let resp = self.read(&reads)?;
        Ok((
            resp.revision,
            resp.results.into_iter().map(ReadResult::into_get).collect(),
        ))
    }

    /// Reads the keys in `[start, end)` (`end` `None`: to the end of the keyspace) in key
    /// order, at most `limit` of them (0: no limit).
    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResponse, StoreError> {
        let resp = self.read(&[ReadOp::range(start, end.map(<[u8]>::to_vec), limit)])?;
        let revision = resp.revision;
        let r = resp
            .results
            .into_iter()
            .next()
            .and_then(ReadResult::into_range)
            .unwrap_or_default();
        Ok(RangeResponse {
            revision,
            kvs: r.kvs,
            more: r.more,
        })
    }

    /// The current store revision.
    fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.read(&[])?.revision)
    }

    /// Creates `key`; [`StoreError::Conflict`] if it exists. Returns the new revision.
    fn create(&self, key: &[u8], value: &[u8]) -> Result<Revision, StoreError> {
        Ok(self
            .txn(&[Compare::absent(key)], &[TxnOp::put(key, value)])?
            .revision)
    }

    /// Overwrites `key` if its mod revision is `expected`; [`StoreError::Conflict`] otherwise
    /// (also when it is absent). Returns the new revision.
    fn update(&self, key: &[u8], value: &[u8], expected: Revision) -> Result<Revision, StoreError> {
        Ok(self
            .txn(
                &[Compare::mod_revision(key, expected)],
                &[TxnOp::put(key, value)],
            )?
            .revision)
    }

    /// Writes `key` unconditionally. Returns the new revision.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<Revision, StoreError> {
        Ok(self.txn(&[], &[TxnOp::put(key, value)])?.revision)
    }

    /// Deletes `key` if its mod revision is `expected`; [`StoreError::Conflict`] otherwise
    /// (also when it is absent). Returns the new revision.
    fn delete(&self, key: &[u8], expected: Revision) -> Result<Revision, StoreError> {
        Ok(self
            .txn(
                &[Compare::mod_revision(key, expected)],
                &[TxnOp::delete(key)],
            )?
            .revision)
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: Store + ?Sized> Store for $ty {
            fn url(&self) -> &str {
                (**self).url()
            }
            fn max_txn_ops(&self) -> usize {
                (**self).max_txn_ops()
            }
            fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
                (**self).read(reads)
            }
            fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
                (**self).txn(compares, ops)
            }
            fn watch(&self, prefix: &[u8], from: Revision) -> Result<Box<dyn Watch>, StoreError> {
                (**self).watch(prefix, from)
            }
            fn compact(&self, revision: Revision) -> Result<(), StoreError> {
                (**self).compact(revision)
            }
            fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
                (**self).grant_lease(ttl)
            }
            fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
                (**self).keep_alive(lease)
            }
            fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
                (**self).revoke_lease(lease)
            }
            fn put_with_lease(&self, key: &[u8], value: &[u8], lease: LeaseId) -> Result<Revision, StoreError> {
                (**self).put_with_lease(key, value, lease)
            }
        }
    )*};
}

forward_store!(&S, Box<S>, Arc<S>);

/// Checks a read batch against the rules every backend enforces (as etcd does): at most
/// `max` reads, no empty key in a get, and no range whose end is not after its start.
pub fn check_reads(url: &str, reads: &[ReadOp], max: usize) -> Result<(), StoreError> {
    if reads.len() > max {
        return Err(StoreError::TooManyOps {
            store: url.to_owned(),
            what: "reads",
            count: reads.len(),
            max,
        });
    }
    for r in reads {
        match r {
            ReadOp::Get { key } if key.is_empty() => {
                return Err(invalid(url, "a get of the empty key"));
            }
            ReadOp::Range {
                start,
                end: Some(end),
                ..
            }
            | ReadOp::Keys {
                start,
                end: Some(end),
                ..
            } if end.as_slice() <= start.as_slice() => {
                return Err(invalid(
                    url,
                    format!(
                        "range end {:?} is not after its start {:?}",
                        String::from_utf8_lossy(end),
                        String::from_utf8_lossy(start)
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a transaction against the rules every backend enforces (as etcd does): at most
/// `max` compares and `max` ops, no empty key, no key written twice.
pub fn check_txn(
    url: &str,
    compares: &[Compare],
    ops: &[TxnOp],
    max: usize,
) -> Result<(), StoreError> {
    for (what, count) in [("compares", compares.len()), ("operations", ops.len())] {
        if count > max {
            return Err(StoreError::TooManyOps {
                store: url.to_owned(),
                what,
                count,
                max,
            });
        }
    }
    if compares.iter().any(|c| c.key().is_empty()) {
        return Err(invalid(url, "a compare on the empty key"));
    }
    for c in compares {
        if let Some(Some(end)) = c.range_end()
            && end <= c.key()
        {
            return Err(invalid(
                url,
                format!(
                    "compared range end {:?} is not after its start {:?}",
                    String::from_utf8_lossy(end),
                    String::from_utf8_lossy(c.key())
                ),
            ));
        }
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        if op.key().is_empty() {
            return Err(invalid(url, "a write of the empty key"));
        }
        if !seen.insert(op.key()) {
            return Err(invalid(
                url,
                format!(
                    "key {:?} written twice in one transaction",
                    String::from_utf8_lossy(op.key())
                ),
            ));
        }
    }
    Ok(())
}

fn invalid(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidRequest {
        store: url.to_owned(),
        reason: reason.into(),
    }
}

/// The failed compares, given each compared key's current mod revision (by the lookup
/// `current`) and each compared range's highest mod revision (by `range_max`, given the
/// range's start and end), or `None` when every compare holds.
pub fn failed_compares(
    compares: &[Compare],
    revision: Revision,
    mut current: impl FnMut(&[u8]) -> Option<Revision>,
    mut range_max: impl FnMut(&[u8], Option<&[u8]>) -> Option<Revision>,
) -> Option<Conflict> {
    let keys: Vec<_> = compares
        .iter()
        .filter_map(|c| {
            let now = match c.range_end() {
                Some(end) => range_max(c.key(), end),
                None => current(c.key()),
            };
            (!c.holds(now)).then(|| crate::error::ConflictingKey {
                key: c.key().to_vec(),
                range_end: c
                    .range_end()
                    .map(|e| e.map(<[u8]>::to_vec).unwrap_or_default()),
                expected: c.expected(),
                current: now,
            })
        })
        .collect();
    (!keys.is_empty()).then_some(Conflict { revision, keys })
}

/// A lease's time to live in whole seconds, at least one (as etcd).
pub(crate) fn lease_ttl(ttl: Duration) -> Duration {
    Duration::from_secs(ttl.as_secs().max(1))
}

pub(crate) fn lease_not_found(store: &str, lease: LeaseId) -> StoreError {
    StoreError::LeaseNotFound {
        store: store.to_owned(),
        lease,
    }
}
