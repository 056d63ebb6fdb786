//! The in-memory state of one operation: what it read (with revisions) and what it changes,
//! committed as one transaction.

use std::collections::BTreeMap;

use calico_datastore::{Compare, KeyValue, ReadOp, Revision, Store, TxnOp};
use ipnet::IpNet;

use crate::block::{Block, Violation};
use crate::error::IpamError;
use crate::keys;
use crate::records::{AffinityRecord, Handle, Nanos, Owner};

/// Decodes a JSON value, naming the key on failure.
pub fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, IpamError> {
    // Every value is a JSON object (Go's decoder refuses an array for a struct).
    if value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(IpamError::Decode {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "an array where an object was expected".to_owned(),
        });
    }
    serde_json::from_slice(value).map_err(|e| IpamError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Encodes a value as JSON the way Go's `encoding/json` writes it: no whitespace, and `<`,
/// `>`, `&`, U+2028 and U+2029 escaped as `\u003c`, `\u003e`, `\u0026`, `\u2028`,
/// `\u2029` (those characters can only occur inside strings, so the output is rewritten).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail.
    go_escape(serde_json::to_vec(value).unwrap_or_default())
}

/// Applies Go's HTML-safe escaping to compact JSON text.
pub fn go_escape(json: Vec<u8>) -> Vec<u8> {
    let special = |w: &[u8]| matches!(w, [b'<' | b'>' | b'&', ..] | [0xe2, 0x80, 0xa8 | 0xa9, ..]);
    if !json
        .iter()
        .any(|&b| b == b'<' || b == b'>' || b == b'&' || b == 0xe2)
    {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        let w = &json[i..];
        if special(w) {
            let (esc, n): (&[u8], usize) = match w[0] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                _ if w[2] == 0xa8 => (b"\\u2028", 3),
                _ => (b"\\u2029", 3),
            };
            out.extend_from_slice(esc);
            i += n;
        } else {
            out.push(w[0]);
            i += 1;
        }
    }
    out
}

/// Decodes a handle value (the ID comes from the key).
pub fn decode_handle(id: &str, key: &[u8], value: &[u8]) -> Result<Handle, IpamError> {
    let mut h: Handle = decode(key, value)?;
    h.id = id.to_owned();
    Ok(h)
}

/// Decodes an affinity value, naming the key on failure.
pub fn decode_affinity(key: &[u8], value: &[u8]) -> Result<AffinityRecord, IpamError> {
    AffinityRecord::decode(value).map_err(|e| IpamError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// The first broken invariant of a block read at `key` (its CIDR must also be the key's).
pub fn block_problem(key: &str, b: &Block) -> Option<Violation> {
    if keys::block(&b.cidr) != key {
        return Some(Violation::CidrNotKey { cidr: b.cidr });
    }
    b.broken_invariant()
}

/// A block as loaded: its revision (`None`: absent when read) and state.
#[derive(Clone, Debug)]
pub struct LoadedBlock {
    /// Revision read (`None`: the key was absent).
    pub rev: Option<Revision>,
    /// The block (`None`: absent, or deleted by this operation).
    pub block: Option<Block>,
    /// Changed by this operation.
    pub dirty: bool,
    /// Its sequence number is incremented when it is written: it existed before this
    /// operation, or it was created and then changed by it (an allocation in a new block
    /// is stamped with the creation number and lands as creation + 1, as when Calico
    /// creates the block and then allocates from it).
    pub bump: bool,
    /// The invariant the block as read breaks: it must not be written.
    pub broken: Option<Violation>,
}

/// A handle as loaded.
#[derive(Clone, Debug)]
pub struct LoadedHandle {
    /// Revision read.
    pub rev: Option<Revision>,
    /// The handle (`blocks` empty: absent or to be deleted).
    pub handle: Handle,
    /// Changed by this operation.
    pub dirty: bool,
}

/// A committed transaction.
#[derive(Debug)]
pub struct Committed {
    /// The new revision (`None`: nothing was written; `Some(0)`: applied, revision unknown).
    pub revision: Option<Revision>,
    /// Its compares.
    pub compares: Vec<Compare>,
    /// Its writes.
    pub ops: Vec<TxnOp>,
    /// The blocks it wrote (put), by key, as encoded in `ops`.
    pub blocks: Vec<(String, Block)>,
}

/// The staged state of an operation.
#[derive(Debug, Default)]
pub struct Work {
    /// Blocks by key.
    pub blocks: BTreeMap<String, LoadedBlock>,
    /// Handles by ID.
    pub handles: BTreeMap<String, LoadedHandle>,
    /// Blocks read unchanged since they were last seen full: not decoded, not used.
    pub known_full: std::collections::HashSet<String>,
    /// Set when the operation stopped early because its transaction reached the store's
    /// operation limit: the caller commits and continues in a new transaction.
    pub truncated: bool,
    /// New blocks pre-allocate the Windows-reserved ordinals.
    pub windows_reserved: bool,
    /// Planned on the allocator's mirror instead of a fresh read (the optimistic path):
    /// anything needing a further read sets `stale` instead.
    pub optimistic: bool,
    /// The optimistic plan cannot complete without reading: redo it on a fresh read.
    pub stale: bool,
    /// Compares guarding what the optimistic plan took from the mirror.
    pub guards: Vec<Compare>,
    /// Set by an optimistic plan that went stale because it needs a claim: the first read
    /// of the claim's gap search, to send along with the fresh read.
    pub claim_hint: Option<Vec<ReadOp>>,
    /// Reads made ahead with the fresh read (the gap search's first page), with their
    /// results: the gap search uses them instead of reading the same again.
    pub prefetched: Option<(Vec<ReadOp>, Vec<calico_datastore::ReadResult>)>,
    /// Affinity keys of the requesting host as read, with their revisions: a claim
    /// that puts one of them compares that revision instead of absence.
    pub known_affinities: std::collections::HashMap<String, Revision>,
    /// Extra compares (affinity keys etc.).
    compares: BTreeMap<String, Option<Revision>>,
    /// Extra writes (affinities): `None` deletes.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Set when the operation tried to change a block that breaks an invariant.
    refused: Option<IpamError>,
}

impl Work {
    /// Records a block as read at revision `rev`, already decoded (the allocator's copy of
    /// what it last wrote there).
    pub fn load_decoded_block(&mut self, key: String, rev: Revision, block: Block) {
        if self.blocks.contains_key(&key) {
            return;
        }
        self.blocks.insert(
            key,
            LoadedBlock {
                rev: Some(rev),
                block: Some(block),
                dirty: false,
                bump: false,
                broken: None,
            },
        );
    }

    /// Records a block as read.
    pub fn load_block(&mut self, key: String, kv: Option<&KeyValue>) -> Result<(), IpamError> {
        if self.blocks.contains_key(&key) {
            return Ok(());
        }
        let (rev, block) = match kv {
            Some(kv) => (
                Some(kv.mod_revision),
                Some(decode::<Block>(&kv.key, &kv.value)?),
            ),
            None => (None, None),
        };
        let broken = block.as_ref().and_then(|b| block_problem(&key, b));
        self.blocks.insert(
            key,
            LoadedBlock {
                rev,
                block,
                dirty: false,
                bump: false,
                broken,
            },
        );
        Ok(())
    }

    /// The block at `key`, if loaded and present.
    pub fn block(&self, key: &str) -> Option<&Block> {
        self.blocks.get(key).and_then(|l| l.block.as_ref())
    }

    /// The block at `key` for modification: marks it dirty (its sequence number is
    /// incremented once, when the operation commits). A block breaking an invariant is
    /// never handed out: the operation is failed with [`IpamError::BrokenBlock`] instead.
    pub fn block_mut(&mut self, key: &str) -> Option<&mut Block> {
        let l = self.blocks.get_mut(key)?;
        if let Some(v) = &l.broken {
            self.refused.get_or_insert_with(|| IpamError::BrokenBlock {
                key: key.to_owned(),
                violation: v.clone(),
            });
            return None;
        }
        let b = l.block.as_mut()?;
        l.dirty = true;
        l.bump = true;
        Some(b)
    }

    /// The refusal recorded when the operation tried to change a broken block.
    pub fn take_refused(&mut self) -> Option<IpamError> {
        self.refused.take()
    }

    /// Whether the operation tried to change a broken block (its commit will fail).
    pub fn has_refused(&self) -> bool {
        self.refused.is_some()
    }

    /// Whether the block at `key` breaks an invariant (and so may not be written).
    pub fn is_broken(&self, key: &str) -> bool {
        self.blocks.get(key).is_some_and(|l| l.broken.is_some())
    }

    /// Stages a new block at a key read as absent (or loads it as absent first).
    pub fn create_block(&mut self, block: Block) {
        let key = keys::block(&block.cidr);
        let l = self.blocks.entry(key).or_insert(LoadedBlock {
            rev: None,
            block: None,
            dirty: false,
            bump: false,
            broken: None,
        });
        // Replacing a block read from the store (a reclaim) is one more write of that key.
        l.bump = false;
        l.broken = None;
        l.block = Some(block);
        l.dirty = true;
    }

    /// Stages the deletion of a block (refused, as any write, for a broken block).
    pub fn delete_block(&mut self, key: &str) {
        if self.block_mut(key).is_some()
            && let Some(l) = self.blocks.get_mut(key)
        {
            l.block = None;
        }
    }

    /// Records a handle as read.
    pub fn load_handle(&mut self, id: &str, kv: Option<&KeyValue>) -> Result<(), IpamError> {
        if self.handles.contains_key(id) {
            return Ok(());
        }
        let (rev, handle) = match kv {
            Some(kv) => (
                Some(kv.mod_revision),
                decode_handle(id, &kv.key, &kv.value)?,
            ),
            None => (
                None,
                Handle {
                    id: id.to_owned(),
                    blocks: BTreeMap::new(),
                },
            ),
        };
        self.handles.insert(
            id.to_owned(),
            LoadedHandle {
                rev,
                handle,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Adds `delta` addresses of block `cidr` to handle `id` (loaded before). Counts never go
    /// below zero; a zero count removes the block from the map.
    pub fn handle_add(&mut self, id: &str, cidr: &IpNet, delta: i64) {
        let l = self
            .handles
            .entry(id.to_owned())
            .or_insert_with(|| LoadedHandle {
                rev: None,
                handle: Handle {
                    id: id.to_owned(),
                    blocks: BTreeMap::new(),
                },
                dirty: false,
            });
        let k = cidr.to_string();
        let cur = l.handle.blocks.get(&k).copied().unwrap_or(0) as i64;
        let new = (cur + delta).max(0) as u64;
        if new == 0 {
            l.handle.blocks.remove(&k);
        } else {
            l.handle.blocks.insert(k, new);
        }
        l.dirty = true;
    }

    /// Adds a compare on `key` (revision or absent).
    pub fn compare(&mut self, key: String, rev: Option<Revision>) {
        self.compares.insert(key, rev);
    }

    /// Stages a put.
    pub fn put(&mut self, key: String, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Stages a delete.
    pub fn delete(&mut self, key: String) {
        self.writes.insert(key, None);
    }

    /// Stages a confirmed affinity (compared absent unless a compare was staged already).
    /// Calico claims in three writes (affinity `pending`, the block, affinity `confirmed`);
    /// done in one transaction only the final state lands, which is what Calico reads.
    pub fn put_affinity(&mut self, owner: &Owner, net: &IpNet) {
        let key = keys::affinity(owner, net);
        let known = self.known_affinities.get(&key).copied();
        self.compares.entry(key.clone()).or_insert(known);
        self.put(key, encode(&AffinityRecord::confirmed()));
    }

    /// Whether staging one more block (up to 8 more compares and operations) could exceed
    /// `max` compares or operations in the transaction.
    pub fn near_limit(&self, max: usize) -> bool {
        let blocks = self.blocks.values().filter(|l| l.dirty).count();
        let handles = self.handles.values().filter(|h| h.dirty).count() + 1;
        let estimate = 3 * blocks + 2 * handles + self.compares.len() + self.writes.len();
        estimate + 8 > max
    }

    /// Finishes every dirty block (garbage collection with `cooldown`, the sequence number
    /// increment, deletion of empty unaffine and empty virtual blocks) and commits one
    /// transaction. Returns the new store revision (`None` when nothing was to be written;
    /// `Some(0)` when the outcome was unknown and re-reading found it applied) and what was
    /// sent. Fails without writing if the operation tried to change a broken block.
    pub fn commit_txn(
        mut self,
        store: &dyn Store,
        now: Nanos,
        cooldown: Nanos,
    ) -> Result<Committed, IpamError> {
        if let Some(e) = self.refused.take() {
            return Err(e);
        }
        let mut compares: Vec<Compare> = Vec::new();
        let mut ops: Vec<TxnOp> = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let keys_dirty: Vec<String> = self
            .blocks
            .iter()
            .filter(|(_, l)| l.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys_dirty {
            let Some(l) = self.blocks.get_mut(&key) else {
                continue;
            };
            compares.push(Compare::unchanged(key.clone().into_bytes(), l.rev));
            let Some(block) = l.block.as_mut() else {
                if l.rev.is_some() {
                    ops.push(TxnOp::delete(key.clone().into_bytes()));
                }
                continue;
            };
            block.gc(now, cooldown);
            if l.bump {
                block.sequence_number = block.sequence_number.wrapping_add(1);
            }
            let net = block.cidr;
            let empty = block.is_empty();
            match block.owner() {
                None if empty => {
                    l.block = None;
                    if l.rev.is_some() {
                        ops.push(TxnOp::delete(key.clone().into_bytes()));
                    }
                    continue;
                }
                Some(owner @ Owner::Virtual(_)) if empty => {
                    l.block = None;
                    if l.rev.is_some() {
                        ops.push(TxnOp::delete(key.clone().into_bytes()));
                    }
                    self.writes.insert(keys::affinity(&owner, &net), None);
                    continue;
                }
                _ => {}
            }
            ops.push(TxnOp::put(key.clone().into_bytes(), encode(&*block)));
            written.push(key);
        }
        for (id, l) in &self.handles {
            if !l.dirty {
                continue;
            }
            let key = keys::handle(id);
            compares.push(Compare::unchanged(key.clone().into_bytes(), l.rev));
            if l.handle.blocks.is_empty() {
                if l.rev.is_some() {
                    ops.push(TxnOp::delete(key.into_bytes()));
                }
            } else {
                ops.push(TxnOp::put(key.into_bytes(), encode(&l.handle)));
            }
        }
        for (k, rev) in self.compares {
            compares.push(Compare::unchanged(k.into_bytes(), rev));
        }
        if !self.guards.is_empty() {
            // The mirror's answers, less keys compared above at the same revisions.
            let seen: std::collections::HashSet<Compare> = compares.iter().cloned().collect();
            compares.extend(self.guards.drain(..).filter(|g| !seen.contains(g)));
        }
        for (k, v) in self.writes {
            ops.push(match v {
                Some(v) => TxnOp::put(k.into_bytes(), v),
                None => TxnOp::delete(k.into_bytes()),
            });
        }
        if ops.is_empty() {
            return Ok(Committed {
                revision: None,
                compares,
                ops,
                blocks: Vec::new(),
            });
        }
        let max = store.max_txn_ops();
        if ops.len() > max || compares.len() > max {
            return Err(IpamError::TooLarge {
                ops: ops.len().max(compares.len()),
                max,
            });
        }
        let revision: Result<Option<Revision>, IpamError> = match store.txn(&compares, &ops) {
            Ok(r) => Ok(Some(r.revision)),
            Err(e) if e.outcome_unknown() => {
                // The transaction may have been applied: it was if every key now holds
                // exactly what it wrote (block values carry a fresh sequence number, so
                // another writer cannot have produced the same bytes).
                let reads: Vec<ReadOp> = ops
                    .iter()
                    .map(|op| ReadOp::get(op.key().to_vec()))
                    .collect();
                let applied = store.read(&reads).is_ok_and(|resp| {
                    resp.results.into_iter().zip(&ops).all(|(r, op)| {
                        let cur = r.into_get();
                        match op {
                            TxnOp::Put { value, .. } => cur.is_some_and(|kv| kv.value == *value),
                            TxnOp::Delete { .. } => cur.is_none(),
                        }
                    })
                });
                if applied { Ok(Some(0)) } else { Err(e.into()) }
            }
            Err(e) => Err(e.into()),
        };
        let revision = revision?;
        let blocks = written
            .into_iter()
            .filter_map(|k| {
                let b = self.blocks.remove(&k)?.block?;
                Some((k, b))
            })
            .collect();
        Ok(Committed {
            revision,
            compares,
            ops,
            blocks,
        })
    }
}
