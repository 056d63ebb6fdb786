//! What the allocator last saw of the keys it reads on every assignment, for the optimistic
//! one-round-trip path: a read batch answered from here is not sent; instead the
//! transaction carries compares that hold only if every answer is still what the store
//! holds, so a stale answer costs a conflict (and a fresh read), never a wrong write.

use std::collections::HashMap;

use calico_datastore::{
    Compare, KeyValue, RangeResult, ReadOp, ReadResponse, ReadResult, Revision, TxnOp,
};

/// Keys past this many are not kept (the mirror is then cleared and refilled).
const MAX_KEYS: usize = 65_536;
/// Ranges past this many are not kept (every write is checked against each range).
const MAX_RANGES: usize = 64;

/// A range read: its start and end.
type RangeKey = (Vec<u8>, Option<Vec<u8>>);

/// Keys and whole ranges as last read or written, with their revisions.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// Single keys: the value and mod revision, or `None` when absent.
    gets: HashMap<Vec<u8>, Option<KeyValue>>,
    /// Whole ranges (read without a limit): every key, and a revision `r` such that no key
    /// of the range had a mod revision above `r` when it was read.
    ranges: HashMap<RangeKey, (Revision, Vec<KeyValue>)>,
}

/// Keys never kept (handles: one per workload, rarely read twice by assignments).
fn kept(key: &[u8]) -> bool {
    !key.starts_with(crate::keys::HANDLE_PREFIX.as_bytes())
}

fn in_range(key: &[u8], (start, end): &RangeKey) -> bool {
    key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
}

impl Mirror {
    /// Records the answers of a read batch sent to the store.
    pub(crate) fn record(&mut self, ops: &[ReadOp], resp: &ReadResponse) {
        if self.gets.len() + self.ranges.len() > MAX_KEYS {
            self.clear();
        }
        for (op, result) in ops.iter().zip(&resp.results) {
            match (op, result) {
                (ReadOp::Get { key }, ReadResult::Get(kv)) if kept(key) => {
                    self.gets.insert(key.clone(), kv.clone());
                }
                (ReadOp::Range { start, end, limit }, ReadResult::Range(r))
                    if *limit == 0 && !r.more =>
                {
                    let key = (start.clone(), end.clone());
                    if self.ranges.len() >= MAX_RANGES && !self.ranges.contains_key(&key) {
                        self.ranges.clear();
                    }
                    self.ranges.insert(key, (resp.revision, r.kvs.clone()));
                }
                _ => {}
            }
        }
    }

    /// Answers a read batch from the mirror, with the compares that make the answers safe
    /// to act on, or `None` when some read is not covered. A get of a key not kept for
    /// which `guess_absent` holds is answered "absent", compared absent.
    pub(crate) fn answer(
        &self,
        ops: &[ReadOp],
        guess_absent: impl Fn(&[u8]) -> bool,
    ) -> Option<(Vec<ReadResult>, Vec<Compare>)> {
        let mut results = Vec::with_capacity(ops.len());
        let mut guards = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                ReadOp::Get { key } => {
                    let kv = match self.gets.get(key) {
                        Some(kv) => kv.clone(),
                        None if guess_absent(key) => None,
                        None => return None,
                    };
                    guards.push(Compare::unchanged(
                        key.clone(),
                        kv.as_ref().map(|kv| kv.mod_revision),
                    ));
                    results.push(ReadResult::Get(kv));
                }
                ReadOp::Keys { .. } => return None,
                ReadOp::Range { start, end, .. } => {
                    let (rev, kvs) = self.ranges.get(&(start.clone(), end.clone()))?;
                    guards.push(Compare::range_unmodified(start.clone(), end.clone(), *rev));
                    results.push(ReadResult::Range(RangeResult {
                        kvs: kvs.clone(),
                        more: false,
                    }));
                }
            }
        }
        Some((results, guards))
    }

    /// Takes in a committed transaction: `ops` were applied at `revision`, with `compares`
    /// holding. Written keys are known exactly; a kept range the transaction compared is
    /// unchanged up to `revision` but for the transaction's own writes; any other range it
    /// wrote into is dropped.
    pub(crate) fn applied(&mut self, revision: Revision, compares: &[Compare], ops: &[TxnOp]) {
        for (range, (rev, kvs)) in &mut self.ranges {
            let guarded = compares.iter().any(|c| match c {
                Compare::RangeUnmodified { start, end, .. } => start == &range.0 && end == &range.1,
                _ => false,
            });
            let touched = ops.iter().any(|op| in_range(op.key(), range));
            if guarded {
                *rev = revision;
            } else if touched {
                // Marked for removal below.
                *rev = 0;
                continue;
            }
            for op in ops.iter().filter(|op| in_range(op.key(), range)) {
                let pos = kvs.binary_search_by(|kv| kv.key.as_slice().cmp(op.key()));
                match (op, pos) {
                    (TxnOp::Put { value, .. }, Ok(i)) => {
                        if let Some(kv) = kvs.get_mut(i) {
                            kv.value.clone_from(value);
                            kv.mod_revision = revision;
                        }
                    }
                    (TxnOp::Put { key, value }, Err(i)) => kvs.insert(
                        i,
                        KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                        },
                    ),
                    (TxnOp::Delete { .. }, Ok(i)) => {
                        kvs.remove(i);
                    }
                    (TxnOp::Delete { .. }, Err(_)) => {}
                }
            }
        }
        self.ranges.retain(|_, (rev, _)| *rev != 0);
        for op in ops {
            let key = op.key();
            if !kept(key) {
                continue;
            }
            let kv = match op {
                TxnOp::Put { key, value } => {
                    let create = match self.gets.get(key.as_slice()) {
                        Some(Some(old)) => old.create_revision,
                        _ => revision,
                    };
                    Some(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: create,
                        mod_revision: revision,
                    })
                }
                TxnOp::Delete { .. } => None,
            };
            self.gets.insert(key.to_vec(), kv);
        }
    }

    /// Forgets the keys `ops` wrote (their outcome is unknown).
    pub(crate) fn forget(&mut self, ops: &[TxnOp]) {
        for op in ops {
            self.gets.remove(op.key());
        }
        self.ranges
            .retain(|range, _| !ops.iter().any(|op| in_range(op.key(), range)));
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.gets.clear();
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, rev: Revision) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            create_revision: rev,
            mod_revision: rev,
        }
    }

    #[test]
    fn answers_only_what_it_holds_with_guards() {
        let mut m = Mirror::default();
        let ops = vec![
            ReadOp::get("a"),
            ReadOp::get("b"),
            ReadOp::prefix("p/", 0),
            ReadOp::prefix("q/", 5),
        ];
        let resp = ReadResponse {
            revision: 9,
            results: vec![
                ReadResult::Get(Some(kv("a", 3))),
                ReadResult::Get(None),
                ReadResult::Range(RangeResult {
                    kvs: vec![kv("p/1", 4)],
                    more: false,
                }),
                ReadResult::Range(RangeResult::default()),
            ],
        };
        m.record(&ops, &resp);
        // The limited range is not kept.
        assert!(m.answer(&ops, |_| false).is_none());
        let (results, guards) = match m.answer(&ops[..3], |_| false) {
            Some(a) => a,
            None => panic!("covered reads must be answered"),
        };
        assert_eq!(results, resp.results[..3].to_vec());
        assert_eq!(
            guards,
            vec![
                Compare::mod_revision("a", 3),
                Compare::absent("b"),
                Compare::prefix_unmodified("p/", 9),
            ]
        );
        // Unknown keys: only guessed when allowed.
        assert!(m.answer(&[ReadOp::get("c")], |_| false).is_none());
        let (r, g) = m
            .answer(&[ReadOp::get("c")], |k| k == b"c")
            .unwrap_or_default();
        assert_eq!(r, vec![ReadResult::Get(None)]);
        assert_eq!(g, vec![Compare::absent("c")]);

        // A transaction at 12 guarding p/ and writing p/2 and a: p/ moves to 12 with p/2.
        let ops_w = vec![TxnOp::put("p/2", "x"), TxnOp::put("a", "y")];
        m.applied(12, &[Compare::prefix_unmodified("p/", 9)], &ops_w);
        let (r, g) = m.answer(&ops[..3], |_| false).unwrap_or_default();
        assert_eq!(g[0], Compare::mod_revision("a", 12));
        assert_eq!(g[2], Compare::prefix_unmodified("p/", 12));
        match &r[2] {
            ReadResult::Range(rr) => assert_eq!(rr.kvs.len(), 2),
            other => panic!("{other:?}"),
        }
        // A write into p/ without guarding it drops the range.
        m.applied(13, &[], &[TxnOp::delete("p/1")]);
        assert!(m.answer(&ops[2..3], |_| false).is_none());
        // Unknown outcomes are forgotten.
        m.forget(&[TxnOp::put("a", "z")]);
        assert!(m.answer(&ops[..1], |_| false).is_none());
    }
}
