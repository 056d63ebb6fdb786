//! A syncer: keeps a consumer's view of some key prefixes equal to the store's, the way
//! Calico's node agent follows its datastore.
//!
//! The syncer lists the prefixes, then watches from the revision of the list. It keeps a
//! cache of every key it has reported (its revisions and a fingerprint of its value, not the
//! value: the consumer keeps what it needs), so that:
//!
//! * after a re-list (the watch's history was compacted, or the store was unreachable and
//!   came back), keys that vanished are reported as deletes and only keys that changed are
//!   reported as puts: the consumer never sees a blind "clear everything";
//! * a compaction triggers a re-list **at once** (no waiting for repeated failures);
//! * while the store is unreachable nothing is reported as deleted: the consumer keeps
//!   its last state, and the syncer retries with exponential backoff and full jitter.
//!
//! The status follows Calico's: [`SyncStatus::WaitForReady`] until the store first
//! answers, [`SyncStatus::Resync`] while (re-)listing, [`SyncStatus::InSync`] once every
//! prefix is listed. [`Syncer::poll`] returns an ordered list of [`SyncEvent`]s: a status
//! change comes after the updates it covers.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use calico_datastore::{MemoryStore, Store, SyncEvent, SyncOptions, SyncStatus, Syncer};
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! store.put(b"/calico/a", b"1")?;
//! let mut syncer = Syncer::new(store.clone(), vec![b"/calico/".to_vec()], SyncOptions::default());
//! let events = syncer.poll(Duration::from_secs(1));
//! assert!(matches!(events.last(), Some(SyncEvent::Status(SyncStatus::InSync))));
//! store.put(b"/calico/b", b"2")?;
//! let events = syncer.poll(Duration::from_secs(1));
//! assert!(matches!(&events[..], [SyncEvent::Put { kv }] if kv.key == b"/calico/b"));
//! # Ok::<(), calico_datastore::StoreError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{KeyValue, ReadOp, ReadResult, Revision, prefix_end};
use crate::watch::{Watch, WatchEvent};

/// Where a syncer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncStatus {
    /// The store has not answered yet.
    WaitForReady,
    /// Listing (first time, or again after a compaction or an outage).
    Resync,
    /// Every prefix is listed and the watch is following.
    InSync,
}

/// One thing a consumer must act on, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncEvent {
    /// A key appeared or changed.
    Put {
        /// Its new state.
        kv: KeyValue,
    },
    /// A key went away.
    Delete {
        /// The key and the revisions of its last state the syncer reported (the value is
        /// not kept, `prev.value` is empty).
        prev: KeyValue,
    },
    /// The status changed; every update before it is covered by it.
    Status(SyncStatus),
    /// The store failed; the syncer keeps its state and retries (after a backoff).
    Error(StoreError),
}

/// Settings of a [`Syncer`].
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Keys per range read while listing.
    pub page_size: usize,
    /// Backoff between attempts while the store fails (its deadline and retry count are
    /// not used: a syncer never gives up; the delay stays at the cap).
    pub backoff: BackoffPolicy,
    /// Seed of the backoff's jitter.
    pub seed: u64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_size: 500,
            backoff: BackoffPolicy {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(5),
                max_retries: u32::MAX,
                deadline: Duration::MAX,
            },
            seed: std::process::id().into(),
        }
    }
}

/// Counters of a [`Syncer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Completed lists (the first included).
    pub lists: u64,
    /// Lists started because the watch's history was compacted.
    pub compactions: u64,
    /// Store failures seen.
    pub errors: u64,
    /// The revision the view is at.
    pub revision: Revision,
}

/// What the syncer keeps of a key it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cached {
    create_revision: Revision,
    mod_revision: Revision,
    /// A hash of the value (a re-list reports a key again only when its value changed).
    fingerprint: u64,
}

impl Cached {
    fn of(kv: &KeyValue) -> Cached {
        Cached {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            fingerprint: kv.fingerprint(),
        }
    }

    /// The key's last state, as a delete reports it (without the value).
    fn prev(&self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            value: Vec::new(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

enum Phase {
    List,
    Watch(Box<dyn Watch>),
}

/// Follows a set of key prefixes of a store (see the module documentation).
pub struct Syncer {
    store: Arc<dyn Store>,
    prefixes: Vec<Vec<u8>>,
    watch_prefix: Vec<u8>,
    options: SyncOptions,
    cache: BTreeMap<Vec<u8>, Cached>,
    status: SyncStatus,
    phase: Phase,
    backoff: Backoff,
    retry_at: Option<Instant>,
    stats: SyncStats,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("store", &self.store.url())
            .field("status", &self.status)
            .field("keys", &self.cache.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The longest common prefix of `prefixes`.
fn common_prefix(prefixes: &[Vec<u8>]) -> Vec<u8> {
    let Some(first) = prefixes.first() else {
        return Vec::new();
    };
    let mut len = first.len();
    for p in &prefixes[1..] {
        len = len.min(first.iter().zip(p).take_while(|(a, b)| a == b).count());
    }
    first[..len].to_vec()
}

impl Syncer {
    /// A syncer of the keys under `prefixes` (nothing is read until [`Syncer::poll`]).
    pub fn new(store: Arc<dyn Store>, prefixes: Vec<Vec<u8>>, options: SyncOptions) -> Self {
        let watch_prefix = common_prefix(&prefixes);
        let backoff = Backoff::new(options.backoff, options.seed);
        Syncer {
            store,
            prefixes,
            watch_prefix,
            options,
            cache: BTreeMap::new(),
            status: SyncStatus::WaitForReady,
            phase: Phase::List,
            backoff,
            retry_at: None,
            stats: SyncStats::default(),
        }
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.status
    }

    /// The counters.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Every key reported and not deleted.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.cache.keys().map(Vec::as_slice)
    }

    /// How many keys are reported and not deleted.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no key is reported (or all were deleted).
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    fn covered(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p))
    }

    fn set_status(&mut self, status: SyncStatus, out: &mut Vec<SyncEvent>) {
        if self.status != status {
            self.status = status;
            out.push(SyncEvent::Status(status));
        }
    }

    /// Waits at most `timeout` for something to report and returns it (empty: nothing
    /// happened). Lists when needed, follows the watch otherwise, and handles failures
    /// (reported as [`SyncEvent::Error`], then retried after a backoff).
    pub fn poll(&mut self, timeout: Duration) -> Vec<SyncEvent> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let now = Instant::now();
            if let Some(at) = self.retry_at {
                if at > now {
                    if at >= deadline {
                        std::thread::sleep(deadline.saturating_duration_since(now));
                        return out;
                    }
                    std::thread::sleep(at - now);
                }
                self.retry_at = None;
            }
            match std::mem::replace(&mut self.phase, Phase::List) {
                Phase::List => match self.list() {
                    Ok((revision, listed)) => {
                        match self.store.watch(&self.watch_prefix, revision + 1) {
                            Ok(w) => self.phase = Phase::Watch(w),
                            Err(e) => {
                                self.fail(e, &mut out);
                                return out;
                            }
                        }
                        if self.status == SyncStatus::WaitForReady {
                            self.set_status(SyncStatus::Resync, &mut out);
                        }
                        self.apply_list(listed, &mut out);
                        self.stats.lists += 1;
                        self.stats.revision = revision;
                        self.backoff = Backoff::new(self.options.backoff, self.next_seed());
                        self.set_status(SyncStatus::InSync, &mut out);
                        return out;
                    }
                    Err(e) => {
                        self.fail(e, &mut out);
                        return out;
                    }
                },
                Phase::Watch(mut w) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match w.next(wait) {
                        Ok(events) => {
                            self.phase = Phase::Watch(w);
                            for e in events {
                                self.apply_event(e, &mut out);
                            }
                            if !out.is_empty() || Instant::now() >= deadline {
                                return out;
                            }
                        }
                        Err(StoreError::Compacted { .. }) => {
                            // Re-list at once: waiting does not bring the history back.
                            self.stats.compactions += 1;
                            self.set_status(SyncStatus::Resync, &mut out);
                            return out;
                        }
                        Err(e) => {
                            self.fail(e, &mut out);
                            return out;
                        }
                    }
                }
            }
        }
    }

    fn next_seed(&mut self) -> u64 {
        self.options.seed = self
            .options
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        self.options.seed
    }

    /// A failure: keep the view, list again when the store answers, after a backoff.
    fn fail(&mut self, e: StoreError, out: &mut Vec<SyncEvent>) {
        self.stats.errors += 1;
        self.phase = Phase::List;
        let cap = self.options.backoff.cap;
        let wait = self.backoff.next_delay(Duration::ZERO).unwrap_or(cap);
        self.retry_at = Some(Instant::now() + wait);
        out.push(SyncEvent::Error(e));
        if self.status == SyncStatus::InSync {
            self.set_status(SyncStatus::Resync, out);
        }
    }

    /// Lists every prefix in pages; the revision of the first read (the watch starts
    /// after it, so nothing written during the list is missed).
    fn list(&self) -> Result<(Revision, BTreeMap<Vec<u8>, KeyValue>), StoreError> {
        let mut revision = None;
        let mut listed = BTreeMap::new();
        let page = self.options.page_size.max(1);
        for prefix in &self.prefixes {
            let end = prefix_end(prefix);
            let mut start = prefix.clone();
            loop {
                let resp = self
                    .store
                    .read(&[ReadOp::range(start.clone(), end.clone(), page)])?;
                revision.get_or_insert(resp.revision);
                let Some(ReadResult::Range(r)) = resp.results.into_iter().next() else {
                    break;
                };
                let last = r.kvs.last().map(|kv| kv.key.clone());
                for kv in r.kvs {
                    listed.insert(kv.key.clone(), kv);
                }
                match (r.more, last) {
                    (true, Some(mut last)) => {
                        last.push(0);
                        start = last;
                    }
                    _ => break,
                }
            }
        }
        let revision = match revision {
            Some(r) => r,
            None => self.store.revision()?,
        };
        Ok((revision, listed))
    }

    /// Reports the difference between the cache and a fresh list, and keeps the list.
    fn apply_list(&mut self, listed: BTreeMap<Vec<u8>, KeyValue>, out: &mut Vec<SyncEvent>) {
        let old = std::mem::take(&mut self.cache);
        for (key, prev) in &old {
            if !listed.contains_key(key) {
                out.push(SyncEvent::Delete {
                    prev: prev.prev(key.clone()),
                });
            }
        }
        for (key, kv) in listed {
            let now = Cached::of(&kv);
            let same = old.get(&key).is_some_and(|o| {
                o.mod_revision == now.mod_revision && o.fingerprint == now.fingerprint
            });
            self.cache.insert(key, now);
            if !same {
                out.push(SyncEvent::Put { kv });
            }
        }
    }

    /// Applies one watch event. Events older than what a (paged) list already showed are
    /// skipped, so the view never moves backwards.
    fn apply_event(&mut self, e: WatchEvent, out: &mut Vec<SyncEvent>) {
        self.stats.revision = self.stats.revision.max(e.revision());
        if !self.covered(e.key()) {
            return;
        }
        match e {
            WatchEvent::Put { kv } => {
                if self
                    .cache
                    .get(&kv.key)
                    .is_some_and(|c| c.mod_revision >= kv.mod_revision)
                {
                    return;
                }
                self.cache.insert(kv.key.clone(), Cached::of(&kv));
                out.push(SyncEvent::Put { kv });
            }
            WatchEvent::Delete { key, revision, .. } => {
                if self
                    .cache
                    .get(&key)
                    .is_some_and(|c| c.mod_revision > revision)
                {
                    return;
                }
                if let Some(prev) = self.cache.remove(&key) {
                    out.push(SyncEvent::Delete {
                        prev: prev.prev(key),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, modr: Revision) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: modr,
        }
    }

    #[test]
    fn events_older_than_the_view_are_skipped() {
        let store: Arc<dyn Store> = Arc::new(crate::MemoryStore::new());
        let mut s = Syncer::new(store, vec![b"p/".to_vec()], SyncOptions::default());
        s.cache
            .insert(b"p/k".to_vec(), Cached::of(&kv("p/k", "new", 10)));
        let mut out = Vec::new();
        s.apply_event(
            WatchEvent::Put {
                kv: kv("p/k", "old", 8),
            },
            &mut out,
        );
        s.apply_event(
            WatchEvent::Delete {
                key: b"p/k".to_vec(),
                revision: 9,
                prev: None,
            },
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            s.cache[b"p/k".as_slice()],
            Cached::of(&kv("p/k", "new", 10))
        );
        s.apply_event(
            WatchEvent::Put {
                kv: kv("q/x", "v", 12),
            },
            &mut out,
        );
        assert!(out.is_empty(), "a key outside the prefixes: {out:?}");
        s.apply_event(
            WatchEvent::Delete {
                key: b"p/k".to_vec(),
                revision: 11,
                prev: None,
            },
            &mut out,
        );
        assert!(
            matches!(&out[..], [SyncEvent::Delete { prev }] if prev.key == b"p/k" && prev.mod_revision == 10),
            "{out:?}"
        );
        assert!(s.cache.is_empty());
    }

    #[test]
    fn the_watch_covers_the_common_prefix() {
        let p = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            common_prefix(&[p("/calico/ipam/v2/"), p("/calico/resources/v3/")]),
            p("/calico/")
        );
        assert_eq!(common_prefix(&[p("/a/b")]), p("/a/b"));
        assert_eq!(common_prefix(&[p("x"), p("y")]), p(""));
        assert_eq!(common_prefix(&[]), p(""));
    }
}
