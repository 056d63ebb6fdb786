//! The etcd semantics of reads and transactions over an ordered map, shared by the
//! in-process backends (`memory:` over a `BTreeMap`, `file:` over a redb table).

use crate::error::StoreError;
use crate::store::failed_compares;
use crate::types::{
    Compare, KeyValue, RangeResult, ReadOp, ReadResponse, ReadResult, Revision, TxnOp, TxnResponse,
};

/// A stored value with its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

impl Entry {
    pub fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

/// Read access to an ordered map of entries and its revision.
pub(crate) trait EngineRead {
    /// The store revision.
    fn revision(&self) -> Result<Revision, StoreError>;
    /// One entry.
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// The mod revision of one entry (cheaper than `get` where values need not be copied).
    fn mod_revision(&self, key: &[u8]) -> Result<Option<Revision>, StoreError> {
        Ok(self.get(key)?.map(|e| e.mod_revision))
    }
    /// The highest mod revision of the entries in `[start, end)`, `None` if there are none.
    fn max_mod_revision(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Option<Revision>, StoreError> {
        Ok(self
            .range(start, end, 0)?
            .kvs
            .iter()
            .map(|kv| kv.mod_revision)
            .max())
    }
    /// The entries in `[start, end)`, at most `limit` (0: all), and whether more follow.
    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResult, StoreError>;
}

/// Write access.
pub(crate) trait EngineWrite: EngineRead {
    fn put(&mut self, key: &[u8], entry: &Entry) -> Result<(), StoreError>;
    /// Removes a key; whether it existed.
    fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError>;
    fn set_revision(&mut self, revision: Revision) -> Result<(), StoreError>;
}

/// Answers a read batch (already checked) at the engine's revision.
pub(crate) fn read(engine: &impl EngineRead, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
    let revision = engine.revision()?;
    let mut results = Vec::with_capacity(reads.len());
    for r in reads {
        results.push(match r {
            ReadOp::Get { key } => {
                ReadResult::Get(engine.get(key)?.map(|e| e.into_kv(key.clone())))
            }
            ReadOp::Range { start, end, limit } => {
                ReadResult::Range(engine.range(start, end.as_deref(), *limit)?)
            }
            ReadOp::Keys { start, end, limit } => {
                let mut r = engine.range(start, end.as_deref(), *limit)?;
                for kv in &mut r.kvs {
                    kv.value = Vec::new();
                }
                ReadResult::Range(r)
            }
        });
    }
    Ok(ReadResponse { revision, results })
}

/// Applies a transaction (already checked): the etcd rules for compares, revisions and
/// no-op deletes. The caller commits the engine's writes only on success.
pub(crate) fn txn(
    engine: &mut impl EngineWrite,
    url: &str,
    compares: &[Compare],
    ops: &[TxnOp],
) -> Result<TxnResponse, StoreError> {
    let revision = engine.revision()?;
    let mut lookup_err = None;
    let mut range_err = None;
    let conflict = failed_compares(
        compares,
        revision,
        |key| match engine.mod_revision(key) {
            Ok(r) => r,
            Err(e) => {
                lookup_err.get_or_insert(e);
                None
            }
        },
        |start, end| match engine.max_mod_revision(start, end) {
            Ok(r) => r,
            Err(e) => {
                range_err.get_or_insert(e);
                None
            }
        },
    );
    if let Some(e) = lookup_err.or(range_err) {
        return Err(e);
    }
    if let Some(conflict) = conflict {
        return Err(StoreError::Conflict {
            store: url.to_owned(),
            conflict,
        });
    }
    let next = revision + 1;
    let mut changed = false;
    for op in ops {
        match op {
            TxnOp::Put { key, value } => {
                let create_revision = match engine.get(key)? {
                    Some(old) => old.create_revision,
                    None => next,
                };
                engine.put(
                    key,
                    &Entry {
                        value: value.clone(),
                        create_revision,
                        mod_revision: next,
                    },
                )?;
                changed = true;
            }
            TxnOp::Delete { key } => changed |= engine.remove(key)?,
        }
    }
    if changed {
        engine.set_revision(next)?;
        Ok(TxnResponse { revision: next })
    } else {
        Ok(TxnResponse { revision })
    }
}
