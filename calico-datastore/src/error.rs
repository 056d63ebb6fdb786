//! Errors of store operations and of opening a store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::Revision;

/// Why a store request failed.
///
/// Retrying is safe after [`Conflict`](StoreError::Conflict) (re-read first) and
/// [`Unavailable`](StoreError::Unavailable) (nothing was applied). After
/// [`Timeout`](StoreError::Timeout) or [`Indeterminate`](StoreError::Indeterminate) of a
/// transaction the transaction may or may not have been applied: re-read and check before
/// repeating it (see [`StoreError::outcome_unknown`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A compare of the transaction failed; nothing was written.
    #[error("{store}: {conflict}")]
    Conflict {
        /// The store (its URL).
        store: String,
        /// The failed compares and the current state of their keys.
        conflict: Conflict,
    },
    /// The store could not be reached within the deadline; nothing was applied. Transient:
    /// the request can be repeated as is.
    #[error("{store}: unavailable after {attempts} attempt(s) in {elapsed:?}: {reason}")]
    Unavailable {
        /// The store (its URL).
        store: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time spent trying.
        elapsed: Duration,
        /// The last failure.
        reason: String,
    },
    /// A request got no answer in time. For a transaction the outcome is unknown.
    #[error("{store}: {operation} got no answer within {after:?}{}", unknown_suffix(*operation))]
    Timeout {
        /// The store (its URL).
        store: String,
        /// What timed out.
        operation: Operation,
        /// The time limit that expired.
        after: Duration,
    },
    /// The connection failed after a transaction was sent: it may or may not have been
    /// applied.
    #[error("{store}: the outcome of the transaction is unknown: {reason}")]
    Indeterminate {
        /// The store (its URL).
        store: String,
        /// What happened.
        reason: String,
    },
    /// The request holds more compares, operations or reads than the store accepts.
    #[error("{store}: too many {what} in one request: {count} (the limit is {max})")]
    TooManyOps {
        /// The store (its URL).
        store: String,
        /// `"compares"`, `"operations"` or `"reads"`.
        what: &'static str,
        /// How many the request held.
        count: usize,
        /// The store's limit.
        max: usize,
    },
    /// The request is malformed (empty key, a key written twice in one transaction, ...).
    #[error("{store}: invalid request: {reason}")]
    InvalidRequest {
        /// The store (its URL).
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// A watch (or a compaction) asked for history the store no longer holds: list again
    /// and watch from the revision of that list.
    #[error(
        "{store}: revision {requested} has been compacted (history is kept from revision {available_from})"
    )]
    Compacted {
        /// The store (its URL).
        store: String,
        /// The revision asked for.
        requested: Revision,
        /// The first revision whose history the store still holds (etcd's compaction
        /// revision).
        available_from: Revision,
    },
    /// The lease does not exist (never granted, expired or revoked).
    #[error("{store}: lease {lease:x} not found (expired or revoked)")]
    LeaseNotFound {
        /// The store (its URL).
        store: String,
        /// The lease.
        lease: crate::types::LeaseId,
    },
    /// The store does not offer this operation.
    #[error("{store}: {what} is not supported by this store")]
    Unsupported {
        /// The store (its URL).
        store: String,
        /// The operation.
        what: &'static str,
    },
    /// A member refused us: the TLS handshake failed (untrusted or expired certificate, a
    /// client certificate missing or rejected) or etcd refused the credentials or the
    /// permission. Nothing was applied, and repeating the request will not help.
    #[error("etcd {endpoint}: {reason}")]
    Access {
        /// The store (its URL).
        store: String,
        /// The member that refused (`https://HOST:PORT`).
        endpoint: String,
        /// What was refused and why (boxed: keeps every error of the workspace small).
        reason: Box<str>,
    },
    /// The backend failed (I/O error, corrupt file, an error status from etcd, ...).
    #[error("{store}: {context}: {source}")]
    Backend {
        /// The store (its URL).
        store: String,
        /// What was being done.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn unknown_suffix(operation: Operation) -> &'static str {
    match operation {
        Operation::Txn => " (the transaction may or may not have been applied)",
        Operation::Read => "",
    }
}

impl StoreError {
    /// The conflict, if this is [`StoreError::Conflict`].
    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            StoreError::Conflict { conflict, .. } => Some(conflict),
            _ => None,
        }
    }

    /// Whether this is a compare failure.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether repeating the operation (after re-reading, for a conflict or an unknown
    /// outcome) may succeed: conflicts and transient transport failures.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::Unavailable { .. }
                | StoreError::Timeout { .. }
                | StoreError::Indeterminate { .. }
        )
    }

    /// Whether a transaction that failed with this error may nevertheless have been applied.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            StoreError::Indeterminate { .. }
                | StoreError::Timeout {
                    operation: Operation::Txn,
                    ..
                }
        )
    }

    /// A [`StoreError::Backend`] error.
    pub fn backend(
        store: impl Into<String>,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError::Backend {
            store: store.into(),
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The kind of request, for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A read batch.
    Read,
    /// A transaction.
    Txn,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Txn => "transaction",
        })
    }
}

/// The compares of a transaction that failed, with the current state of their keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The store revision the compares were evaluated at.
    pub revision: Revision,
    /// Every failed compare, in request order (a key compared twice appears twice).
    pub keys: Vec<ConflictingKey>,
}

/// One failed compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictingKey {
    /// The key (the start of the range of a range compare).
    pub key: Vec<u8>,
    /// For a range compare, the end of the range (empty: the end of the keyspace); `None`
    /// for a compare of one key.
    pub range_end: Option<Vec<u8>>,
    /// What the compare expected: a mod revision, or `None` for absent (for a range
    /// compare, the highest mod revision allowed).
    pub expected: Option<Revision>,
    /// The key's current mod revision, or `None` if it is absent (for a range compare, the
    /// highest mod revision in the range, `None` if it is empty).
    pub current: Option<Revision>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transaction conflict at revision {} on {} key(s):",
            self.revision,
            self.keys.len()
        )?;
        for k in &self.keys {
            match &k.range_end {
                None => write!(
                    f,
                    " {} (expected {}, is {})",
                    String::from_utf8_lossy(&k.key),
                    rev_text(k.expected),
                    rev_text(k.current)
                )?,
                Some(end) => write!(
                    f,
                    " [{}, {}) (expected no change after {}, last changed at {})",
                    String::from_utf8_lossy(&k.key),
                    String::from_utf8_lossy(end),
                    rev_text(k.expected),
                    rev_text(k.current)
                )?,
            }
        }
        Ok(())
    }
}

fn rev_text(rev: Option<Revision>) -> String {
    match rev {
        Some(r) => format!("revision {r}"),
        None => "absent".to_owned(),
    }
}

impl std::error::Error for Conflict {}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store URL is malformed.
    #[error(
        "invalid store URL {url:?}: {reason} (expected memory:, file:PATH or etcd://HOST:PORT[,HOST:PORT...])"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a backend this program was built without.
    #[error(
        "store URL {url:?}: the {backend} backend is not compiled into this program \
         (it lives in the {krate} crate; open the store with that crate's open_store)"
    )]
    BackendNotCompiled {
        /// The URL as given.
        url: String,
        /// The backend (`"etcd"`).
        backend: &'static str,
        /// The crate that provides it.
        krate: &'static str,
    },
    /// The backend is part of this crate but left out of this build (its cargo feature is
    /// off).
    #[error(
        "store URL {url:?}: the {backend} backend is not compiled into this program \
         (calico-datastore's `{feature}` feature is off)"
    )]
    FeatureDisabled {
        /// The URL as given.
        url: String,
        /// The backend (`"file"`).
        backend: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// The file store could not be opened or created.
    #[error("cannot open the file store {}: {source}", path.display())]
    File {
        /// The database file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The store holds keys of a layout earlier versions of these tools wrote, which this
    /// version does not read (see [`detect_legacy_layout`](crate::detect_legacy_layout)).
    #[error(
        "the store {url} holds keys in an old layout of these tools (prefix {prefix:?}, e.g. \
         {key:?}); this version keeps Calico's layout under /calico/ and does not read or \
         convert it: re-apply the resources to a new store"
    )]
    LegacyLayout {
        /// The store URL.
        url: String,
        /// The old key prefix found.
        prefix: String,
        /// A key found under it.
        key: String,
    },
    /// The backend could not be set up (e.g. an etcd client could not be built).
    #[error("cannot open the store {url:?}: {reason}")]
    Backend {
        /// The URL as given.
        url: String,
        /// What failed.
        reason: String,
    },
}
