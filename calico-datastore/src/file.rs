//! The `file:PATH` backend: an embedded ACID database (redb) shared safely by several
//! processes.
//!
//! Layout: one redb table `calico_kv` maps each key to its create revision, mod revision
//! (both little-endian u64) and value; table `calico_meta` holds the store revision and the
//! highest revision whose changes are no longer logged; table `calico_log` maps each of the
//! last [`DEFAULT_WATCH_HISTORY`] revisions to its changes, written in the same transaction
//! as the change itself, which is what watches read (a watch notices another process's
//! commit within a few milliseconds by polling the revision). Every
//! request is one redb transaction (writes are committed durably, with fsync), so a crash
//! at any point leaves the previous or the new state.
//!
//! Sharing: the database is opened in redb's multi-writer mode (redb ≥ 4.5): every process
//! keeps it open, write transactions are serialized across processes by byte-range locks on
//! the file (a writer *waits* for the lock, it does not fail), and every read transaction
//! starts from the latest commit of any process. Within one process all `FileStore`s on one
//! path share one open database. A process that dies mid-commit leaves the previous commit,
//! which the next writer recovers from.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use redb::{
    ConcurrencyMode, Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableError,
};

use crate::engine::{self, EngineRead, EngineWrite, Entry};
use crate::error::{OpenError, StoreError};
use crate::store::{Store, check_reads, check_txn, lease_not_found, lease_ttl};
use crate::types::{
    Compare, DEFAULT_MAX_TXN_OPS, LeaseId, RangeResult, ReadOp, ReadResponse, Revision, TxnOp,
    TxnResponse,
};
use crate::watch::{
    DEFAULT_WATCH_HISTORY, Watch, WatchEvent, compacted, decode_events, encode_events,
};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("calico_kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("calico_meta");
/// The change log for watches: revision → that revision's events.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("calico_log");
/// Leases: id → time to live, expiry (wall clock: several processes share the file) and
/// the keys attached with the revision they were written at.
const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("calico_leases");
const NEXT_LEASE_KEY: &str = "next_lease";
const REVISION_KEY: &str = "revision";
/// The highest revision whose events the log no longer holds.
const COMPACTED_KEY: &str = "compacted";
/// How often a watch looks for changes made by other processes.
const WATCH_POLL: Duration = Duration::from_millis(5);
const FORMAT_KEY: &str = "format";
const FORMAT: u64 = 1;
const HEADER: usize = 16;
/// redb's page cache (an upper bound, allocated as pages are read).
const CACHE_BYTES: usize = 64 << 20;

/// The databases this process has open, by canonical path, shared by every `FileStore`.
fn open_databases() -> &'static Mutex<HashMap<PathBuf, Weak<Database>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Database>>>> = OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A store in one redb database file, safe to share between threads and processes.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    url: String,
    db: Arc<Database>,
    max_txn_ops: usize,
    history: u64,
}

impl FileStore {
    /// Opens the store at `path`, creating the database file (not its directory) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let url = format!("file:{}", path.display());
        let fail = |source| OpenError::File {
            path: path.clone(),
            source,
        };
        let db = shared_database(&path, &url).map_err(fail)?;
        let store = FileStore {
            path: path.clone(),
            url,
            db,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            history: DEFAULT_WATCH_HISTORY as u64,
        };
        store.initialize().map_err(fail)?;
        Ok(store)
    }

    /// Keeps the changes of only the last `revisions` revisions (at least one) for watches
    /// when this store writes (default [`DEFAULT_WATCH_HISTORY`]).
    pub fn with_watch_history(mut self, revisions: usize) -> Self {
        self.history = revisions.max(1) as u64;
        self
    }

    /// Sets the maximum number of compares, ops and reads per request (default 128, as etcd).
    pub fn with_max_txn_ops(mut self, max: usize) -> Self {
        self.max_txn_ops = max;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables and the revision on first use; checks the format otherwise.
    fn initialize(&self) -> Result<(), StoreError> {
        self.with_db(|db| {
            if self.is_initialized(db)? {
                return Ok(());
            }
            let txn = db
                .begin_write()
                .map_err(|e| self.err("starting a write transaction", e))?;
            {
                let mut meta = txn
                    .open_table(META)
                    .map_err(|e| self.err("opening the meta table", e))?;
                let format = meta
                    .get(FORMAT_KEY)
                    .map_err(|e| self.err("reading the format", e))?
                    .map(|g| g.value());
                match format {
                    Some(FORMAT) => {}
                    Some(other) => {
                        return Err(self.err(
                            "checking the format",
                            format!(
                                "unsupported store format {other} (this program reads {FORMAT})"
                            ),
                        ));
                    }
                    None => {
                        meta.insert(FORMAT_KEY, FORMAT)
                            .map_err(|e| self.err("writing the format", e))?;
                        meta.insert(REVISION_KEY, 1)
                            .map_err(|e| self.err("writing the revision", e))?;
                    }
                }
                // A database written before the change log existed: its history so far is
                // unknown, so watches start after its current revision.
                if meta
                    .get(COMPACTED_KEY)
                    .map_err(|e| self.err("reading the compacted revision", e))?
                    .is_none()
                {
                    let revision = meta
                        .get(REVISION_KEY)
                        .map_err(|e| self.err("reading the revision", e))?
                        .map_or(1, |g| g.value());
                    let since = if revision <= 1 { 0 } else { revision };
                    meta.insert(COMPACTED_KEY, since)
                        .map_err(|e| self.err("writing the compacted revision", e))?;
                }
                txn.open_table(KV)
                    .map_err(|e| self.err("creating the key table", e))?;
                txn.open_table(LOG)
                    .map_err(|e| self.err("creating the change log", e))?;
            }
            txn.commit().map_err(|e| self.err("committing", e))
        })
    }

    fn err(
        &self,
        context: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> StoreError {
        StoreError::backend(self.url.clone(), context, source)
    }

    fn is_initialized(&self, db: &Database) -> Result<bool, StoreError> {
        let txn = db
            .begin_read()
            .map_err(|e| self.err("starting a read transaction", e))?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(table_err(&self.url, e)),
        };
        let format = meta
            .get(FORMAT_KEY)
            .map_err(|e| self.err("reading the format", e))?
            .map(|g| g.value());
        let logged = meta
            .get(COMPACTED_KEY)
            .map_err(|e| self.err("reading the compacted revision", e))?
            .is_some();
        Ok(format == Some(FORMAT) && logged)
    }

    /// Runs `f` on the shared database.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db)
    }
}

/// The process's open database for `path`, opening it if no `FileStore` has it open.
fn shared_database(path: &Path, url: &str) -> Result<Arc<Database>, StoreError> {
    let err = |context: &str, e: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::backend(url, context, e)
    };
    let mut open = open_databases()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    open.retain(|_, db| db.strong_count() > 0);
    // Canonicalize to share one handle per file; the file may not exist yet.
    let canonical = path.canonicalize().ok();
    if let Some(db) = canonical
        .as_ref()
        .and_then(|c| open.get(c))
        .and_then(Weak::upgrade)
    {
        return Ok(db);
    }
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .create(path)
        .map_err(|e| err("opening the database", e.into()))?;
    let db = Arc::new(db);
    let canonical = path
        .canonicalize()
        .map_err(|e| err("resolving the path", e.into()))?;
    open.insert(canonical, Arc::downgrade(&db));
    Ok(db)
}

/// The tables of one redb transaction.
struct Tables<K, M> {
    kv: K,
    meta: M,
    url: String,
    /// The changes a write transaction made, for the log (deletes get their revision when
    /// the transaction's revision is known).
    events: Vec<WatchEvent>,
}

impl<K, M> Tables<K, M> {
    fn err(
        &self,
        context: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> StoreError {
        StoreError::backend(self.url.clone(), context, source)
    }

    fn decode(&self, raw: &[u8]) -> Result<Entry, StoreError> {
        let (Some(create), Some(modr)) = (
            raw.get(0..8).and_then(|b| b.try_into().ok()),
            raw.get(8..16).and_then(|b| b.try_into().ok()),
        ) else {
            return Err(self.err("decoding an entry", "entry shorter than its header"));
        };
        Ok(Entry {
            create_revision: u64::from_le_bytes(create),
            mod_revision: u64::from_le_bytes(modr),
            value: raw.get(HEADER..).unwrap_or_default().to_vec(),
        })
    }
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut raw = Vec::with_capacity(HEADER + entry.value.len());
    raw.extend_from_slice(&entry.create_revision.to_le_bytes());
    raw.extend_from_slice(&entry.mod_revision.to_le_bytes());
    raw.extend_from_slice(&entry.value);
    raw
}

impl<K, M> EngineRead for Tables<K, M>
where
    K: ReadableTable<&'static [u8], &'static [u8]>,
    M: ReadableTable<&'static str, u64>,
{
    fn revision(&self) -> Result<Revision, StoreError> {
        self.meta
            .get(REVISION_KEY)
            .map_err(|e| self.err("reading the revision", e))?
            .map(|g| g.value())
            .ok_or_else(|| self.err("reading the revision", "the revision is missing"))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self.kv.get(key).map_err(|e| self.err("reading a key", e))? {
            Some(g) => self.decode(g.value()).map(Some),
            None => Ok(None),
        }
    }

    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<RangeResult, StoreError> {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        let iter = self
            .kv
            .range::<&[u8]>((Bound::Included(start), end))
            .map_err(|e| self.err("reading a range", e))?;
        let mut kvs = Vec::new();
        let mut more = false;
        for item in iter {
            let (k, v) = item.map_err(|e| self.err("reading a range", e))?;
            if limit != 0 && kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(self.decode(v.value())?.into_kv(k.value().to_vec()));
        }
        Ok(RangeResult { kvs, more })
    }
}

impl EngineWrite for Tables<Table<'_, &'static [u8], &'static [u8]>, Table<'_, &'static str, u64>> {
    fn put(&mut self, key: &[u8], entry: &Entry) -> Result<(), StoreError> {
        let raw = encode(entry);
        let done = self.kv.insert(key, raw.as_slice()).map(drop);
        done.map_err(|e| self.err("writing a key", e))?;
        self.events.push(WatchEvent::Put {
            kv: entry.clone().into_kv(key.to_vec()),
        });
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let removed = self.kv.remove(key).map(|g| g.map(|g| g.value().to_vec()));
        let Some(old) = removed.map_err(|e| self.err("deleting a key", e))? else {
            return Ok(false);
        };
        let prev = self.decode(&old)?.into_kv(key.to_vec());
        self.events.push(WatchEvent::Delete {
            key: key.to_vec(),
            revision: 0,
            prev: Some(prev),
        });
        Ok(true)
    }

    fn set_revision(&mut self, revision: Revision) -> Result<(), StoreError> {
        let done = self.meta.insert(REVISION_KEY, revision).map(drop);
        done.map_err(|e| self.err("writing the revision", e))
    }
}

impl FileStore {
    /// Appends a revision's changes to the log and drops what falls out of the history.
    fn log(
        &self,
        log: &mut Table<'_, u64, &'static [u8]>,
        meta: &mut Table<'_, &'static str, u64>,
        revision: Revision,
        events: &[WatchEvent],
    ) -> Result<(), StoreError> {
        let raw = encode_events(events);
        log.insert(revision, raw.as_slice())
            .map_err(|e| self.err("writing the change log", e))?;
        let keep_after = revision.saturating_sub(self.history);
        self.trim_log(log, meta, keep_after)
    }

    /// Removes the log entries up to and including `revision` and records it as compacted.
    fn trim_log(
        &self,
        log: &mut Table<'_, u64, &'static [u8]>,
        meta: &mut Table<'_, &'static str, u64>,
        revision: Revision,
    ) -> Result<(), StoreError> {
        let compacted = meta
            .get(COMPACTED_KEY)
            .map_err(|e| self.err("reading the compacted revision", e))?
            .map_or(0, |g| g.value());
        if revision <= compacted {
            return Ok(());
        }
        loop {
            let first = log
                .first()
                .map_err(|e| self.err("reading the change log", e))?
                .map(|(k, _)| k.value());
            match first {
                Some(r) if r <= revision => {
                    log.pop_first()
                        .map_err(|e| self.err("trimming the change log", e))?;
                }
                _ => break,
            }
        }
        meta.insert(COMPACTED_KEY, revision)
            .map_err(|e| self.err("writing the compacted revision", e))?;
        Ok(())
    }

    /// The store revision, the compacted revision and the logged changes under `prefix`
    /// from `from` on, in one read transaction.
    fn changes_since(
        &self,
        prefix: &[u8],
        from: Revision,
    ) -> Result<(Revision, Revision, Vec<WatchEvent>), StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("starting a read transaction", e))?;
        let meta = txn.open_table(META).map_err(|e| table_err(&self.url, e))?;
        let get = |key: &str| -> Result<u64, StoreError> {
            Ok(meta
                .get(key)
                .map_err(|e| self.err("reading the store's metadata", e))?
                .map_or(0, |g| g.value()))
        };
        let revision = get(REVISION_KEY)?;
        let compacted = get(COMPACTED_KEY)?;
        if from <= compacted || from > revision {
            return Ok((revision, compacted, Vec::new()));
        }
        let log = txn.open_table(LOG).map_err(|e| table_err(&self.url, e))?;
        let mut out = Vec::new();
        for item in log
            .range(from..=revision)
            .map_err(|e| self.err("reading the change log", e))?
        {
            let (k, v) = item.map_err(|e| self.err("reading the change log", e))?;
            let rev = k.value();
            let events = decode_events(rev, v.value())
                .map_err(|e| self.err(&format!("decoding the change log at revision {rev}"), e))?;
            out.extend(events.into_iter().filter(|e| e.key().starts_with(prefix)));
        }
        Ok((revision, compacted, out))
    }
}

/// A lease record: time to live, expiry and attached keys.
#[derive(Debug, Default, PartialEq, Eq)]
struct LeaseRecord {
    ttl_secs: u64,
    expires_ms: u64,
    keys: Vec<(Vec<u8>, Revision)>,
}

impl LeaseRecord {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.keys.len() * 40);
        out.extend_from_slice(&self.ttl_secs.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        for (k, rev) in &self.keys {
            out.extend_from_slice(&(k.len() as u64).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&rev.to_le_bytes());
        }
        out
    }

    fn decode(raw: &[u8]) -> Option<LeaseRecord> {
        let u64_at = |b: &[u8], i: usize| -> Option<u64> {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let mut r = LeaseRecord {
            ttl_secs: u64_at(raw, 0)?,
            expires_ms: u64_at(raw, 8)?,
            keys: Vec::new(),
        };
        let mut i = 16;
        while i < raw.len() {
            let len = usize::try_from(u64_at(raw, i)?).ok()?;
            let key = raw.get(i + 8..(i + 8).checked_add(len)?)?.to_vec();
            let rev = u64_at(raw, i + 8 + len)?;
            r.keys.push((key, rev));
            i += 16 + len;
        }
        Some(r)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type KvTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
type MetaTable<'t> = Table<'t, &'static str, u64>;

impl FileStore {
    fn lease_records(
        &self,
        leases: &impl ReadableTable<i64, &'static [u8]>,
    ) -> Result<Vec<(LeaseId, LeaseRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in leases
            .iter()
            .map_err(|e| self.err("reading the leases", e))?
        {
            let (k, v) = item.map_err(|e| self.err("reading the leases", e))?;
            let record = LeaseRecord::decode(v.value()).ok_or_else(|| {
                self.err(
                    "reading the leases",
                    format!("lease {:x}: undecodable record", k.value()),
                )
            })?;
            out.push((k.value(), record));
        }
        Ok(out)
    }

    /// Deletes the keys still attached to a removed lease as one new revision (logged).
    fn delete_lease_keys(
        &self,
        txn: &redb::WriteTransaction,
        tables: &mut Tables<KvTable<'_>, MetaTable<'_>>,
        record: &LeaseRecord,
    ) -> Result<(), StoreError> {
        let mut doomed = Vec::new();
        for (k, rev) in &record.keys {
            if tables.mod_revision(k)? == Some(*rev) {
                doomed.push(k.clone());
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let user_events = std::mem::take(&mut tables.events);
        let revision = tables.revision()? + 1;
        for k in &doomed {
            tables.remove(k)?;
        }
        for e in &mut tables.events {
            if let WatchEvent::Delete { revision: r, .. } = e {
                *r = revision;
            }
        }
        tables.set_revision(revision)?;
        let mut log = txn.open_table(LOG).map_err(|e| table_err(&self.url, e))?;
        let events = std::mem::replace(&mut tables.events, user_events);
        self.log(&mut log, &mut tables.meta, revision, &events)
    }

    /// Removes the leases expired by now, with their keys, inside `txn`.
    fn expire_leases(
        &self,
        txn: &redb::WriteTransaction,
        tables: &mut Tables<KvTable<'_>, MetaTable<'_>>,
    ) -> Result<bool, StoreError> {
        let mut leases = txn
            .open_table(LEASES)
            .map_err(|e| table_err(&self.url, e))?;
        let now = now_ms();
        let expired: Vec<(LeaseId, LeaseRecord)> = self
            .lease_records(&leases)?
            .into_iter()
            .filter(|(_, r)| r.expires_ms <= now)
            .collect();
        for (id, record) in &expired {
            leases
                .remove(id)
                .map_err(|e| self.err("removing a lease", e))?;
            self.delete_lease_keys(txn, tables, record)?;
        }
        Ok(!expired.is_empty())
    }

    /// Expires due leases, if any, in a write transaction of their own (reads and watches
    /// call this so that a lease's keys go when it expires even if nobody writes).
    fn expire_due_leases(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("starting a read transaction", e))?;
        if self.leases_due(&txn)? {
            drop(txn);
            self.write(|_, _, _| Ok(()))?;
        }
        Ok(())
    }

    /// Whether a lease has expired, as seen by the read transaction `txn`.
    fn leases_due(&self, txn: &redb::ReadTransaction) -> Result<bool, StoreError> {
        match txn.open_table(LEASES) {
            Ok(leases) => {
                let now = now_ms();
                Ok(self
                    .lease_records(&leases)?
                    .iter()
                    .any(|(_, r)| r.expires_ms <= now))
            }
            Err(TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(table_err(&self.url, e)),
        }
    }

    /// Runs `f` in a write transaction (after expiring due leases) and commits.
    fn write<T>(
        &self,
        f: impl FnOnce(
            &redb::WriteTransaction,
            &mut Tables<KvTable<'_>, MetaTable<'_>>,
            &mut Table<'_, i64, &'static [u8]>,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("starting a write transaction", e))?;
        let out = {
            let mut tables = Tables {
                kv: txn.open_table(KV).map_err(|e| table_err(&self.url, e))?,
                meta: txn.open_table(META).map_err(|e| table_err(&self.url, e))?,
                url: self.url.clone(),
                events: Vec::new(),
            };
            self.expire_leases(&txn, &mut tables)?;
            let mut leases = txn
                .open_table(LEASES)
                .map_err(|e| table_err(&self.url, e))?;
            f(&txn, &mut tables, &mut leases)?
        };
        txn.commit().map_err(|e| self.err("committing", e))?;
        Ok(out)
    }

    fn lease_record(
        &self,
        leases: &Table<'_, i64, &'static [u8]>,
        lease: LeaseId,
    ) -> Result<LeaseRecord, StoreError> {
        let raw = leases
            .get(lease)
            .map_err(|e| self.err("reading a lease", e))?
            .map(|g| g.value().to_vec())
            .ok_or_else(|| lease_not_found(&self.url, lease))?;
        LeaseRecord::decode(&raw).ok_or_else(|| {
            self.err(
                "reading a lease",
                format!("lease {lease:x}: undecodable record"),
            )
        })
    }
}

/// A watch of a [`FileStore`]: reads the change log, polling for other processes' commits.
struct FileWatch {
    store: FileStore,
    prefix: Vec<u8>,
    next: Revision,
}

impl Watch for FileWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.store.expire_due_leases()?;
            let (revision, compacted_to, events) =
                self.store.changes_since(&self.prefix, self.next)?;
            if self.next <= compacted_to {
                return Err(compacted(&self.store.url, self.next, compacted_to));
            }
            self.next = self.next.max(revision + 1);
            if !events.is_empty() {
                return Ok(events);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            std::thread::sleep(WATCH_POLL.min(deadline - now));
        }
    }
}

fn table_err(url: &str, e: TableError) -> StoreError {
    StoreError::backend(url, "opening a table", e)
}

impl Store for FileStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn max_txn_ops(&self) -> usize {
        self.max_txn_ops
    }

    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
        check_reads(&self.url, reads, self.max_txn_ops)?;
        self.with_db(|db| {
            let mut txn = db
                .begin_read()
                .map_err(|e| self.err("starting a read transaction", e))?;
            // Expired leases' keys go first (rarely: one read transaction answers both).
            if self.leases_due(&txn)? {
                drop(txn);
                self.write(|_, _, _| Ok(()))?;
                txn = db
                    .begin_read()
                    .map_err(|e| self.err("starting a read transaction", e))?;
            }
            let tables = Tables {
                kv: txn.open_table(KV).map_err(|e| table_err(&self.url, e))?,
                meta: txn.open_table(META).map_err(|e| table_err(&self.url, e))?,
                url: self.url.clone(),
                events: Vec::new(),
            };
            engine::read(&tables, reads)
        })
    }

    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
        check_txn(&self.url, compares, ops, self.max_txn_ops)?;
        self.with_db(|db| {
            let txn = db
                .begin_write()
                .map_err(|e| self.err("starting a write transaction", e))?;
            let (resp, changed) = {
                let mut tables = Tables {
                    kv: txn.open_table(KV).map_err(|e| table_err(&self.url, e))?,
                    meta: txn.open_table(META).map_err(|e| table_err(&self.url, e))?,
                    url: self.url.clone(),
                    events: Vec::new(),
                };
                let before = tables.revision()?;
                self.expire_leases(&txn, &mut tables)?;
                let after_expiry = tables.revision()?;
                let resp = engine::txn(&mut tables, &self.url, compares, ops)?;
                let changed = resp.revision != before;
                if resp.revision != after_expiry {
                    for e in &mut tables.events {
                        if let WatchEvent::Delete { revision, .. } = e {
                            *revision = resp.revision;
                        }
                    }
                    let mut log = txn.open_table(LOG).map_err(|e| table_err(&self.url, e))?;
                    self.log(&mut log, &mut tables.meta, resp.revision, &tables.events)?;
                }
                (resp, changed)
            };
            if changed {
                txn.commit().map_err(|e| self.err("committing", e))?;
            } else {
                // Nothing changed (deletes of absent keys only): no commit, no fsync.
                txn.abort().map_err(|e| self.err("aborting", e))?;
            }
            Ok(resp)
        })
    }

    fn watch(&self, prefix: &[u8], from: Revision) -> Result<Box<dyn Watch>, StoreError> {
        let (revision, compacted_to, _) = self.changes_since(prefix, Revision::MAX)?;
        let next = if from == 0 { revision + 1 } else { from };
        if next <= compacted_to {
            return Err(compacted(&self.url, next, compacted_to));
        }
        Ok(Box::new(FileWatch {
            store: FileStore {
                path: self.path.clone(),
                url: self.url.clone(),
                db: Arc::clone(&self.db),
                max_txn_ops: self.max_txn_ops,
                history: self.history,
            },
            prefix: prefix.to_vec(),
            next,
        }))
    }

    fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("starting a write transaction", e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| table_err(&self.url, e))?;
            let mut log = txn.open_table(LOG).map_err(|e| table_err(&self.url, e))?;
            let get = |meta: &Table<'_, &'static str, u64>, key: &str| -> Result<u64, StoreError> {
                Ok(meta
                    .get(key)
                    .map_err(|e| self.err("reading the store's metadata", e))?
                    .map_or(0, |g| g.value()))
            };
            let current = get(&meta, REVISION_KEY)?;
            let compacted_to = get(&meta, COMPACTED_KEY)?;
            if revision > current {
                return Err(StoreError::InvalidRequest {
                    store: self.url.clone(),
                    reason: format!(
                        "cannot compact to revision {revision}: the store is at {current}"
                    ),
                });
            }
            // As etcd: the history before `revision` goes; `revision` itself stays watchable.
            if revision <= compacted_to {
                return Err(compacted(&self.url, revision, compacted_to));
            }
            self.trim_log(&mut log, &mut meta, revision - 1)?;
        }
        txn.commit().map_err(|e| self.err("committing", e))
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl = lease_ttl(ttl);
        self.write(|_, tables, leases| {
            let id = tables
                .meta
                .get(NEXT_LEASE_KEY)
                .map_err(|e| self.err("reading the lease counter", e))?
                .map_or(0x1000, |g| g.value())
                + 1;
            tables
                .meta
                .insert(NEXT_LEASE_KEY, id)
                .map_err(|e| self.err("writing the lease counter", e))?;
            let id = LeaseId::try_from(id)
                .map_err(|_| self.err("granting a lease", "lease ids exhausted"))?;
            let record = LeaseRecord {
                ttl_secs: ttl.as_secs(),
                expires_ms: now_ms().saturating_add(ttl.as_secs() * 1000),
                keys: Vec::new(),
            };
            leases
                .insert(id, record.encode().as_slice())
                .map_err(|e| self.err("writing a lease", e))?;
            Ok(id)
        })
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.write(|_, _, leases| {
            let mut record = self.lease_record(leases, lease)?;
            record.expires_ms = now_ms().saturating_add(record.ttl_secs * 1000);
            leases
                .insert(lease, record.encode().as_slice())
                .map_err(|e| self.err("writing a lease", e))?;
            Ok(Duration::from_secs(record.ttl_secs))
        })
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.write(|txn, tables, leases| {
            let record = self.lease_record(leases, lease)?;
            leases
                .remove(lease)
                .map_err(|e| self.err("removing a lease", e))?;
            self.delete_lease_keys(txn, tables, &record)
        })
    }

    fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: LeaseId,
    ) -> Result<Revision, StoreError> {
        let op = [TxnOp::put(key, value)];
        check_txn(&self.url, &[], &op, self.max_txn_ops)?;
        self.write(|txn, tables, leases| {
            let mut record = self.lease_record(leases, lease)?;
            let resp = engine::txn(tables, &self.url, &[], &op)?;
            let mut log = txn.open_table(LOG).map_err(|e| table_err(&self.url, e))?;
            let events = std::mem::take(&mut tables.events);
            self.log(&mut log, &mut tables.meta, resp.revision, &events)?;
            // A key belongs to the lease it was last written with.
            for (id, mut other) in self.lease_records(leases)? {
                if id != lease && other.keys.iter().any(|(k, _)| k == key) {
                    other.keys.retain(|(k, _)| k != key);
                    leases
                        .insert(id, other.encode().as_slice())
                        .map_err(|e| self.err("writing a lease", e))?;
                }
            }
            record.keys.retain(|(k, _)| k != key);
            record.keys.push((key.to_vec(), resp.revision));
            leases
                .insert(lease, record.encode().as_slice())
                .map_err(|e| self.err("writing a lease", e))?;
            Ok(resp.revision)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lease_records_round_trip(
            ttl_secs in any::<u64>(),
            expires_ms in any::<u64>(),
            keys in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), any::<u64>()), 0..5),
        ) {
            let r = LeaseRecord { ttl_secs, expires_ms, keys };
            prop_assert_eq!(LeaseRecord::decode(&r.encode()), Some(r));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(raw in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = LeaseRecord::decode(&raw);
        }
    }

    #[test]
    fn cut_lease_records_are_refused() {
        let r = LeaseRecord {
            ttl_secs: 90,
            expires_ms: 1,
            keys: vec![(b"/calico/felix/v2/no-region/host/n/status".to_vec(), 7)],
        };
        let raw = r.encode();
        for cut in 1..raw.len() {
            if cut == 16 {
                continue; // a record with no keys is valid
            }
            assert_eq!(LeaseRecord::decode(&raw[..cut]), None, "cut at {cut}");
        }
    }
}
