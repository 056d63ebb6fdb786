//! The request and response types of the [`Store`](crate::Store) interface.

/// A lease: keys written with one are deleted when it expires or is revoked (etcd's
/// leases; the ID is etcd's).
pub type LeaseId = i64;

/// A store revision.
///
/// The store has one global revision that every transaction changing something increments
/// by one; every key carries the revision of the transaction that created it and of the one
/// that last modified it. Revisions only grow, never repeat, and survive a reopen. An empty
/// store is at revision 1 (as in etcd), so no key ever has revision 0.
pub type Revision = u64;

/// The default maximum number of compares, of operations and of reads in one request: etcd's
/// default `--max-txn-ops`. Every backend enforces its [`Store::max_txn_ops`](crate::Store).
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// One key with its value and revisions, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// Revision of the transaction that last modified (created or overwrote) the key.
    pub mod_revision: Revision,
}

impl KeyValue {
    /// A 64-bit hash of the value (XXH3): equal values, equal fingerprints. Followers of a
    /// store compare fingerprints instead of keeping values they no longer need.
    pub fn fingerprint(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.value)
    }
}

/// One read of a read batch ([`Store::read`](crate::Store::read)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// Read one key.
    Get {
        /// The key (not empty).
        key: Vec<u8>,
    },
    /// Read the keys in `[start, end)` in ascending byte order.
    Range {
        /// First key of the range (inclusive). An empty start means the beginning of the
        /// keyspace.
        start: Vec<u8>,
        /// End of the range (exclusive); `None` means the end of the keyspace.
        end: Option<Vec<u8>>,
        /// At most this many keys are returned; 0 means no limit (as in etcd).
        limit: usize,
    },
    /// As `Range`, but only the keys and revisions: every value comes back empty (for
    /// scans that look only at which keys exist, such as a search for a free block).
    Keys {
        /// First key of the range (inclusive); empty: the beginning of the keyspace.
        start: Vec<u8>,
        /// End of the range (exclusive); `None`: the end of the keyspace.
        end: Option<Vec<u8>>,
        /// At most this many keys are returned; 0 means no limit.
        limit: usize,
    },
}

impl ReadOp {
    /// A read of one key.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        ReadOp::Get { key: key.into() }
    }

    /// A read of the keys in `[start, end)` (`end` `None`: to the end of the keyspace),
    /// at most `limit` of them (0: no limit).
    pub fn range(start: impl Into<Vec<u8>>, end: Option<Vec<u8>>, limit: usize) -> Self {
        ReadOp::Range {
            start: start.into(),
            end,
            limit,
        }
    }

    /// As [`ReadOp::range`], keys and revisions only (values empty).
    pub fn keys(start: impl Into<Vec<u8>>, end: Option<Vec<u8>>, limit: usize) -> Self {
        ReadOp::Keys {
            start: start.into(),
            end,
            limit,
        }
    }

    /// A read of every key starting with `prefix`, at most `limit` of them (0: no limit).
    pub fn prefix(prefix: impl Into<Vec<u8>>, limit: usize) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        ReadOp::Range { start, end, limit }
    }
}

/// The end of the range of keys starting with `prefix`: the smallest key greater than every
/// key with that prefix, or `None` when there is none (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The keys a range read returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys found, in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more keys than were returned (the limit cut it).
    pub more: bool,
}

/// The result of one [`ReadOp`], in the order of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// The result of a [`ReadOp::Get`]: the key, or `None` if absent.
    Get(Option<KeyValue>),
    /// The result of a [`ReadOp::Range`].
    Range(RangeResult),
}

impl ReadResult {
    /// The key of a [`ReadResult::Get`]; `None` for an absent key or a range result.
    pub fn into_get(self) -> Option<KeyValue> {
        match self {
            ReadResult::Get(kv) => kv,
            ReadResult::Range(_) => None,
        }
    }

    /// The keys of a [`ReadResult::Range`]; `None` for a get result.
    pub fn into_range(self) -> Option<RangeResult> {
        match self {
            ReadResult::Range(r) => Some(r),
            ReadResult::Get(_) => None,
        }
    }
}

/// The answer to a read batch: every result was read at the same store revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResponse {
    /// The store revision all results were read at.
    pub revision: Revision,
    /// One result per [`ReadOp`], in request order.
    pub results: Vec<ReadResult>,
}

/// The answer to a single range read ([`Store::range`](crate::Store::range)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// The store revision the range was read at.
    pub revision: Revision,
    /// The keys found, in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more keys than were returned.
    pub more: bool,
}

/// A condition of a transaction ([`Store::txn`](crate::Store::txn)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Compare {
    /// The key exists and its mod revision is exactly this revision.
    ModRevision {
        /// The key.
        key: Vec<u8>,
        /// The expected mod revision.
        revision: Revision,
    },
    /// The key does not exist.
    Absent {
        /// The key.
        key: Vec<u8>,
    },
    /// No key in `[start, end)` was created or modified after `revision`: every key in the
    /// range has a mod revision of at most `revision` (an empty range holds). Deletions
    /// leave no key behind and are not seen (as with etcd's range compares).
    RangeUnmodified {
        /// First key of the range (inclusive, not empty).
        start: Vec<u8>,
        /// End of the range (exclusive); `None`: the end of the keyspace.
        end: Option<Vec<u8>>,
        /// The highest mod revision allowed in the range.
        revision: Revision,
    },
}

impl Compare {
    /// "`key` exists with mod revision `revision`".
    pub fn mod_revision(key: impl Into<Vec<u8>>, revision: Revision) -> Self {
        Compare::ModRevision {
            key: key.into(),
            revision,
        }
    }

    /// "`key` does not exist".
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare::Absent { key: key.into() }
    }

    /// "`key` is as read": its mod revision if `read` is `Some`, absent otherwise.
    pub fn unchanged(key: impl Into<Vec<u8>>, read: Option<Revision>) -> Self {
        match read {
            Some(revision) => Compare::mod_revision(key, revision),
            None => Compare::absent(key),
        }
    }

    /// "no key in `[start, end)` (`end` `None`: to the end of the keyspace) was created or
    /// modified after `revision`".
    pub fn range_unmodified(
        start: impl Into<Vec<u8>>,
        end: Option<Vec<u8>>,
        revision: Revision,
    ) -> Self {
        Compare::RangeUnmodified {
            start: start.into(),
            end,
            revision,
        }
    }

    /// "no key starting with `prefix` was created or modified after `revision`".
    pub fn prefix_unmodified(prefix: impl Into<Vec<u8>>, revision: Revision) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        Compare::range_unmodified(start, end, revision)
    }

    /// The key compared (the start of the range of a range compare).
    pub fn key(&self) -> &[u8] {
        match self {
            Compare::ModRevision { key, .. } | Compare::Absent { key } => key,
            Compare::RangeUnmodified { start, .. } => start,
        }
    }

    /// For a range compare, its end (`Some(None)`: the end of the keyspace); `None` for a
    /// compare of one key.
    pub fn range_end(&self) -> Option<Option<&[u8]>> {
        match self {
            Compare::RangeUnmodified { end, .. } => Some(end.as_deref()),
            _ => None,
        }
    }

    /// The expected state: `Some(revision)` or `None` for absent; for a range compare, the
    /// highest mod revision allowed.
    pub fn expected(&self) -> Option<Revision> {
        match self {
            Compare::ModRevision { revision, .. } | Compare::RangeUnmodified { revision, .. } => {
                Some(*revision)
            }
            Compare::Absent { .. } => None,
        }
    }

    /// Whether the compared state satisfies this compare: for a key compare, the key's
    /// current mod revision (`None`: absent); for a range compare, the highest mod revision
    /// in the range (`None`: the range is empty).
    pub fn holds(&self, current: Option<Revision>) -> bool {
        match self {
            Compare::RangeUnmodified { revision, .. } => current.is_none_or(|c| c <= *revision),
            _ => current == self.expected(),
        }
    }
}

/// A write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// Create or overwrite `key`.
    Put {
        /// The key (not empty).
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Delete `key` (nothing happens if it is absent).
    Delete {
        /// The key (not empty).
        key: Vec<u8>,
    },
}

impl TxnOp {
    /// A put of `value` at `key`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
}

/// The answer to a successful transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// The store revision after the transaction. When the transaction changed something, it
    /// is the new revision, and every key it put has this mod revision. A transaction that
    /// changed nothing (no puts, and deletes of absent keys only) leaves the revision as is.
    pub revision: Revision,
}
