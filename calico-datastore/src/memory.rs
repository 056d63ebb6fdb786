//! The `memory:` backend: a process-local map, for embedding and tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::{self, EngineRead, EngineWrite, Entry};
use crate::error::StoreError;
use crate::store::{Store, check_reads, check_txn, lease_not_found, lease_ttl};
use crate::types::{
    Compare, DEFAULT_MAX_TXN_OPS, LeaseId, RangeResult, ReadOp, ReadResponse, Revision, TxnOp,
    TxnResponse,
};
use crate::watch::{DEFAULT_WATCH_HISTORY, History, Watch, WatchEvent, compacted};

/// An in-process store: a `BTreeMap` and a revision behind a mutex. Requests are atomic and
/// linearizable; the contents live as long as the value (and its watches). It keeps the
/// changes of the last [`DEFAULT_WATCH_HISTORY`] revisions for watches.
#[derive(Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    max_txn_ops: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Notified after every transaction that changed something.
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    map: BTreeMap<Vec<u8>, Entry>,
    revision: Revision,
    history: History,
    leases: BTreeMap<LeaseId, MemLease>,
    next_lease: LeaseId,
}

/// A lease and the keys attached to it (with the revision they were written at: a key
/// written again since then no longer belongs to it).
#[derive(Debug)]
struct MemLease {
    ttl: Duration,
    expires: Instant,
    keys: BTreeMap<Vec<u8>, Revision>,
}

impl State {
    /// Applies staged writes as `revision` and records their events.
    fn commit(&mut self, revision: Revision, writes: Vec<(Vec<u8>, Option<Entry>)>) {
        let mut events = Vec::with_capacity(writes.len());
        for (key, entry) in writes {
            match entry {
                Some(e) => {
                    events.push(WatchEvent::Put {
                        kv: e.clone().into_kv(key.clone()),
                    });
                    self.map.insert(key, e);
                }
                None => {
                    if let Some(prev) = self.map.remove(&key) {
                        events.push(WatchEvent::Delete {
                            key: key.clone(),
                            revision,
                            prev: Some(prev.into_kv(key)),
                        });
                    }
                }
            }
        }
        self.revision = revision;
        self.history.record(revision, events);
    }

    /// Deletes the keys still attached to a removed lease, as one revision; whether any
    /// was deleted.
    fn delete_lease_keys(&mut self, lease: &MemLease) -> bool {
        let deletes: Vec<(Vec<u8>, Option<Entry>)> = lease
            .keys
            .iter()
            .filter(|(k, rev)| self.map.get(*k).is_some_and(|e| e.mod_revision == **rev))
            .map(|(k, _)| (k.clone(), None))
            .collect();
        if deletes.is_empty() {
            return false;
        }
        let revision = self.revision + 1;
        self.commit(revision, deletes);
        true
    }

    /// Removes the leases expired at `now` with their keys; whether anything changed.
    fn expire(&mut self, now: Instant) -> bool {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut changed = false;
        for id in expired {
            if let Some(l) = self.leases.remove(&id) {
                changed |= self.delete_lease_keys(&l);
            }
        }
        changed
    }

    /// When the next lease expires.
    fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.expires).min()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        Self::with_max_txn_ops(DEFAULT_MAX_TXN_OPS)
    }

    /// An empty store accepting at most `max` compares, ops and reads per request.
    pub fn with_max_txn_ops(max: usize) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    map: BTreeMap::new(),
                    revision: 1,
                    history: History::new(DEFAULT_WATCH_HISTORY, 0),
                    leases: BTreeMap::new(),
                    next_lease: 0x1000,
                }),
                changed: Condvar::new(),
            }),
            max_txn_ops: max,
        }
    }

    /// The store keeping the changes of only the last `revisions` revisions for watches
    /// (at least one).
    pub fn with_watch_history(self, revisions: usize) -> Self {
        self.lock().history.set_limit(revisions);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-written: a transaction's
        // writes are staged first and applied by infallible steps (see `txn`).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A watch of a [`MemoryStore`]: reads the shared history, woken by each transaction.
struct MemoryWatch {
    shared: Arc<Shared>,
    prefix: Vec<u8>,
    next: Revision,
}

impl Watch for MemoryWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.expire(Instant::now()) {
                self.shared.changed.notify_all();
            }
            let events = state
                .history
                .since(&self.prefix, self.next)
                .map_err(|c| compacted("memory:", self.next, c))?;
            // Revisions up to the current one are seen, matching or not.
            self.next = self.next.max(state.revision + 1);
            if !events.is_empty() {
                return Ok(events);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until = state.next_expiry().map_or(deadline, |e| e.min(deadline));
            state = self
                .shared
                .changed
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl EngineRead for State {
    fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.revision)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        Ok(self.map.get(key).cloned())
    }

    fn mod_revision(&self, key: &[u8]) -> Result<Option<Revision>, StoreError> {
        Ok(self.map.get(key).map(|e| e.mod_revision))
    }

    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResult, StoreError> {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut iter = self
            .map
            .range::<[u8], _>((Bound::Included(start), end))
            .map(|(k, e)| e.clone().into_kv(k.clone()));
        let kvs: Vec<_> = if limit == 0 {
            iter.by_ref().collect()
        } else {
            iter.by_ref().take(limit).collect()
        };
        let more = iter.next().is_some();
        Ok(RangeResult { kvs, more })
    }
}

/// A transaction's view: the state plus staged writes, applied only when it succeeds, so
/// a failing transaction leaves the map untouched.
struct Staged<'a> {
    state: &'a State,
    writes: Vec<(Vec<u8>, Option<Entry>)>,
    revision: Revision,
}

impl Staged<'_> {
    fn staged(&self, key: &[u8]) -> Option<&Option<Entry>> {
        self.writes
            .iter()
            .rev()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, e)| e)
    }
}

impl EngineRead for Staged<'_> {
    fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.revision)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self.staged(key) {
            Some(e) => Ok(e.clone()),
            None => self.state.get(key),
        }
    }

    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResult, StoreError> {
        // Transactions never range; the committed state is the answer.
        self.state.range(start, end, limit)
    }
}

impl EngineWrite for Staged<'_> {
    fn put(&mut self, key: &[u8], entry: &Entry) -> Result<(), StoreError> {
        self.writes.push((key.to_vec(), Some(entry.clone())));
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let existed = self.get(key)?.is_some();
        self.writes.push((key.to_vec(), None));
        Ok(existed)
    }

    fn set_revision(&mut self, revision: Revision) -> Result<(), StoreError> {
        self.revision = revision;
        Ok(())
    }
}

impl Store for MemoryStore {
    fn url(&self) -> &str {
        "memory:"
    }

    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
        check_reads(self.url(), reads, self.max_txn_ops)?;
        let mut state = self.lock();
        if state.expire(Instant::now()) {
            self.shared.changed.notify_all();
        }
        engine::read(&*state, reads)
    }

    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
        check_txn(self.url(), compares, ops, self.max_txn_ops)?;
        let mut state = self.lock();
        if state.expire(Instant::now()) {
            self.shared.changed.notify_all();
        }
        let (resp, writes) = {
            let mut staged = Staged {
                state: &state,
                writes: Vec::with_capacity(ops.len()),
                revision: state.revision,
            };
            let resp = engine::txn(&mut staged, self.url(), compares, ops)?;
            (resp, staged.writes)
        };
        if resp.revision == state.revision {
            // Deletes of absent keys only: no new revision, nothing to record.
            return Ok(resp);
        }
        state.commit(resp.revision, writes);
        drop(state);
        self.shared.changed.notify_all();
        Ok(resp)
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl = lease_ttl(ttl);
        let mut state = self.lock();
        state.next_lease += 1;
        let id = state.next_lease;
        state.leases.insert(
            id,
            MemLease {
                ttl,
                expires: Instant::now() + ttl,
                keys: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut state = self.lock();
        if state.expire(Instant::now()) {
            self.shared.changed.notify_all();
        }
        let l = state
            .leases
            .get_mut(&lease)
            .ok_or_else(|| lease_not_found(self.url(), lease))?;
        l.expires = Instant::now() + l.ttl;
        Ok(l.ttl)
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut state = self.lock();
        let l = state
            .leases
            .remove(&lease)
            .ok_or_else(|| lease_not_found(self.url(), lease))?;
        if state.delete_lease_keys(&l) {
            drop(state);
            self.shared.changed.notify_all();
        }
        Ok(())
    }

    fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: LeaseId,
    ) -> Result<Revision, StoreError> {
        check_txn(self.url(), &[], &[TxnOp::put(key, value)], self.max_txn_ops)?;
        let mut state = self.lock();
        if state.expire(Instant::now()) {
            self.shared.changed.notify_all();
        }
        if !state.leases.contains_key(&lease) {
            return Err(lease_not_found(self.url(), lease));
        }
        let revision = state.revision + 1;
        let create_revision = state.map.get(key).map_or(revision, |e| e.create_revision);
        let entry = Entry {
            value: value.to_vec(),
            create_revision,
            mod_revision: revision,
        };
        state.commit(revision, vec![(key.to_vec(), Some(entry))]);
        // A key belongs to the lease it was last written with.
        for l in state.leases.values_mut() {
            l.keys.remove(key);
        }
        if let Some(l) = state.leases.get_mut(&lease) {
            l.keys.insert(key.to_vec(), revision);
        }
        drop(state);
        self.shared.changed.notify_all();
        Ok(revision)
    }

    fn watch(&self, prefix: &[u8], from: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let state = self.lock();
        let next = if from == 0 { state.revision + 1 } else { from };
        if next <= state.history.compacted() {
            return Err(compacted(self.url(), next, state.history.compacted()));
        }
        Ok(Box::new(MemoryWatch {
            shared: Arc::clone(&self.shared),
            prefix: prefix.to_vec(),
            next,
        }))
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut state = self.lock();
        if revision > state.revision {
            return Err(StoreError::InvalidRequest {
                store: self.url().to_owned(),
                reason: format!(
                    "cannot compact to revision {revision}: the store is at {}",
                    state.revision
                ),
            });
        }
        // As etcd: the history before `revision` goes; `revision` itself stays watchable.
        if revision <= state.history.compacted() {
            return Err(compacted(self.url(), revision, state.history.compacted()));
        }
        state.history.compact(revision - 1);
        Ok(())
    }
}
