//! Watches: the ordered stream of changes under a key prefix, from a given revision.
//!
//! A watch is how a long-running reader (the node agent's syncer) follows the store after
//! listing it: list at revision `r`, then [`Store::watch`](crate::Store::watch) from `r + 1`,
//! and every later change arrives exactly once, in revision order, with all the changes of
//! one transaction together. Deletes carry the value the key had before (so a consumer
//! does not need its own copy to know what went away).
//!
//! Backends keep a bounded history. A watch that starts at, or falls behind to, a revision
//! the history no longer holds fails with [`StoreError::Compacted`]; the caller lists again
//! (at once: waiting does not bring the history back) and watches from the new revision.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::StoreError;
use crate::types::{KeyValue, Revision};

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// A key was created or overwritten; `kv` is its new value and revisions (its
    /// `mod_revision` is the change's revision).
    Put {
        /// The key's new state.
        kv: KeyValue,
    },
    /// A key was deleted at `revision`.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// The revision of the delete.
        revision: Revision,
        /// The key's last value before the delete, when the backend still has it.
        prev: Option<KeyValue>,
    },
}

impl WatchEvent {
    /// The key changed.
    pub fn key(&self) -> &[u8] {
        match self {
            WatchEvent::Put { kv } => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }
}

/// An open watch (from [`Store::watch`](crate::Store::watch)).
pub trait Watch: Send {
    /// Waits at most `timeout` for changes and returns those that arrived, in revision
    /// order, every change of a revision in the same call. An empty vector means nothing
    /// changed in time. [`StoreError::Compacted`] means the history needed is gone: list
    /// again and open a new watch.
    fn next(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError>;
}

/// How many revisions of history the in-process backends keep by default.
pub const DEFAULT_WATCH_HISTORY: usize = 10_000;

/// The change history of an in-process backend: the events of the last revisions, oldest
/// first, and the highest revision whose events are no longer held.
#[derive(Debug)]
pub(crate) struct History {
    revisions: VecDeque<(Revision, Vec<WatchEvent>)>,
    compacted: Revision,
    limit: usize,
}

impl History {
    /// An empty history whose events before `since` (exclusive) are not held.
    pub fn new(limit: usize, since: Revision) -> Self {
        History {
            revisions: VecDeque::new(),
            compacted: since,
            limit,
        }
    }

    /// Records the events of `revision` (higher than every recorded one).
    pub fn record(&mut self, revision: Revision, events: Vec<WatchEvent>) {
        self.revisions.push_back((revision, events));
        self.trim();
    }

    /// Keeps at most `limit` revisions (at least one) from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.revisions.len() > self.limit {
            if let Some((r, _)) = self.revisions.pop_front() {
                self.compacted = r;
            }
        }
    }

    /// Drops the history up to and including `revision`.
    pub fn compact(&mut self, revision: Revision) {
        while self.revisions.front().is_some_and(|(r, _)| *r <= revision) {
            self.revisions.pop_front();
        }
        self.compacted = self.compacted.max(revision);
    }

    /// The highest revision no longer held.
    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The events under `prefix` from revision `from` on, or `Err(compacted)` when some of
    /// them are gone.
    pub fn since(&self, prefix: &[u8], from: Revision) -> Result<Vec<WatchEvent>, Revision> {
        if from <= self.compacted {
            return Err(self.compacted);
        }
        let start = self.revisions.partition_point(|(r, _)| *r < from);
        Ok(self
            .revisions
            .range(start..)
            .flat_map(|(_, events)| events.iter())
            .filter(|e| e.key().starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// The error of a watch whose history is gone up to and including revision `gone`.
pub(crate) fn compacted(store: &str, requested: Revision, gone: Revision) -> StoreError {
    StoreError::Compacted {
        store: store.to_owned(),
        requested,
        available_from: gone + 1,
    }
}

/// Encodes the events of one revision for a persistent log: per event a tag byte (0 put,
/// 1 delete with its previous value, 2 delete without), then the key and value as
/// length-prefixed bytes and the create and mod revisions, little-endian. (The file
/// backend's event log.)
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) fn encode_events(events: &[WatchEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    let kv = |out: &mut Vec<u8>, kv: &KeyValue| {
        out.extend_from_slice(&(kv.key.len() as u64).to_le_bytes());
        out.extend_from_slice(&kv.key);
        out.extend_from_slice(&(kv.value.len() as u64).to_le_bytes());
        out.extend_from_slice(&kv.value);
        out.extend_from_slice(&kv.create_revision.to_le_bytes());
        out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    };
    for e in events {
        match e {
            WatchEvent::Put { kv: v } => {
                out.push(0);
                kv(&mut out, v);
            }
            WatchEvent::Delete {
                prev: Some(v), key, ..
            } if v.key == *key => {
                out.push(1);
                kv(&mut out, v);
            }
            WatchEvent::Delete { key, .. } => {
                out.push(2);
                out.extend_from_slice(&(key.len() as u64).to_le_bytes());
                out.extend_from_slice(key);
            }
        }
    }
    out
}

/// Decodes what [`encode_events`] wrote for `revision`; a description of the first
/// problem otherwise.
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) fn decode_events(revision: Revision, raw: &[u8]) -> Result<Vec<WatchEvent>, String> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8], String> {
            if self.0.len() < n {
                return Err(format!(
                    "truncated: {n} bytes wanted, {} left",
                    self.0.len()
                ));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u64(&mut self) -> Result<u64, String> {
            let b = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        }
        fn bytes(&mut self) -> Result<Vec<u8>, String> {
            let n = usize::try_from(self.u64()?).map_err(|_| "length overflows".to_owned())?;
            Ok(self.take(n)?.to_vec())
        }
        fn kv(&mut self) -> Result<KeyValue, String> {
            Ok(KeyValue {
                key: self.bytes()?,
                value: self.bytes()?,
                create_revision: self.u64()?,
                mod_revision: self.u64()?,
            })
        }
    }
    let mut r = Reader(raw);
    let mut out = Vec::new();
    while let Some((&tag, rest)) = r.0.split_first() {
        r.0 = rest;
        out.push(match tag {
            0 => WatchEvent::Put { kv: r.kv()? },
            1 => {
                let prev = r.kv()?;
                WatchEvent::Delete {
                    key: prev.key.clone(),
                    revision,
                    prev: Some(prev),
                }
            }
            2 => WatchEvent::Delete {
                key: r.bytes()?,
                revision,
                prev: None,
            },
            other => return Err(format!("unknown event tag {other}")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(key: &[u8], value: &[u8], create: Revision, modr: Revision) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modr,
        }
    }

    fn event() -> impl Strategy<Value = WatchEvent> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..12);
        prop_oneof![
            (bytes(), bytes(), any::<u64>(), any::<u64>()).prop_map(|(k, v, c, m)| {
                WatchEvent::Put {
                    kv: kv(&k, &v, c, m),
                }
            }),
            (bytes(), bytes(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(k, v, c, m, with_prev)| WatchEvent::Delete {
                    key: k.clone(),
                    revision: 77,
                    prev: with_prev.then(|| kv(&k, &v, c, m)),
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn encoded_events_decode_to_themselves(events in proptest::collection::vec(event(), 0..6)) {
            let raw = encode_events(&events);
            prop_assert_eq!(decode_events(77, &raw), Ok(events));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_events(5, &raw);
        }

        #[test]
        fn a_cut_log_entry_is_an_error_or_a_shorter_prefix(events in proptest::collection::vec(event(), 1..4), cut in 1usize..16) {
            // A cut inside an event is an error; a cut between events decodes the events
            // before it, never anything else.
            let raw = encode_events(&events);
            let keep = raw.len().saturating_sub(cut);
            if let Ok(decoded) = decode_events(77, &raw[..keep]) {
                prop_assert!(decoded.len() < events.len());
                prop_assert_eq!(&decoded[..], &events[..decoded.len()]);
            }
        }
    }

    #[test]
    fn history_serves_from_a_revision_and_reports_what_is_gone() {
        let mut h = History::new(3, 1);
        for rev in 2..=6u64 {
            let key = format!("k{}", rev % 2);
            h.record(
                rev,
                vec![WatchEvent::Put {
                    kv: kv(key.as_bytes(), b"v", rev, rev),
                }],
            );
        }
        // Revisions 4, 5, 6 are held; 2 and 3 are gone.
        assert_eq!(h.compacted(), 3);
        assert_eq!(h.since(b"", 3), Err(3));
        let all = h.since(b"", 4).expect("held");
        assert_eq!(
            all.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        let odd = h.since(b"k1", 4).expect("held");
        assert_eq!(
            odd.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
            [5]
        );
        assert!(h.since(b"", 7).expect("future").is_empty());
        h.compact(5);
        assert_eq!(h.since(b"", 5), Err(5));
        assert_eq!(h.since(b"", 6).expect("held").len(), 1);
    }
}
