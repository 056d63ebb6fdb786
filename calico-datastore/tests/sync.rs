//! The syncer on the in-process backends: listing in pages, following the watch, re-listing
//! after a compaction or an outage with deletes synthesised by diffing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calico_datastore::{
    BackoffPolicy, Compare, FileStore, MemoryStore, ReadOp, ReadResponse, Revision, Store,
    StoreError, SyncEvent, SyncOptions, SyncStatus, Syncer, TxnOp, TxnResponse, Watch, WatchEvent,
};

fn options(page_size: usize) -> SyncOptions {
    SyncOptions {
        page_size,
        backoff: BackoffPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retries: u32::MAX,
            deadline: Duration::MAX,
        },
        seed: 7,
    }
}

/// A compact form of events for assertions.
fn summary(events: &[SyncEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            SyncEvent::Put { kv } => format!(
                "put {}={}",
                String::from_utf8_lossy(&kv.key),
                String::from_utf8_lossy(&kv.value)
            ),
            SyncEvent::Delete { prev } => format!("delete {}", String::from_utf8_lossy(&prev.key)),
            SyncEvent::Status(s) => format!("status {s:?}"),
            SyncEvent::Error(_) => "error".to_owned(),
            other => panic!("unknown event {other:?}"),
        })
        .collect()
}

fn prefixes() -> Vec<Vec<u8>> {
    vec![b"/calico/a/".to_vec(), b"/calico/b/".to_vec()]
}

fn lists_then_follows(store: Arc<dyn Store>) {
    for k in [
        "/calico/a/1",
        "/calico/a/2",
        "/calico/a/3",
        "/calico/b/1",
        "/calico/c/1",
    ] {
        store.put(k.as_bytes(), b"v0").unwrap();
    }
    let mut syncer = Syncer::new(store.clone(), prefixes(), options(2));
    assert_eq!(syncer.status(), SyncStatus::WaitForReady);
    let first = summary(&syncer.poll(Duration::from_secs(1)));
    assert_eq!(
        first,
        [
            "status Resync",
            "put /calico/a/1=v0",
            "put /calico/a/2=v0",
            "put /calico/a/3=v0",
            "put /calico/b/1=v0",
            "status InSync",
        ],
        "the first list, in pages of two, skips /calico/c/"
    );
    store.put(b"/calico/c/2", b"ignored").unwrap();
    let r = store.put(b"/calico/b/2", b"v1").unwrap();
    let kv = store.get(b"/calico/a/2").unwrap().unwrap();
    store.delete(b"/calico/a/2", kv.mod_revision).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let batch = summary(&syncer.poll(Duration::from_secs(2)));
        assert!(!batch.is_empty(), "the syncer stopped after {got:?}");
        got.extend(batch);
    }
    assert_eq!(got, ["put /calico/b/2=v1", "delete /calico/a/2"]);
    assert!(syncer.stats().revision > r);
    assert!(
        syncer.poll(Duration::from_millis(50)).is_empty(),
        "nothing else happened"
    );
    assert_eq!(syncer.len(), 4);
}

#[test]
fn memory_syncer_lists_then_follows() {
    lists_then_follows(Arc::new(MemoryStore::new()));
}

#[test]
fn file_syncer_lists_then_follows() {
    let dir = std::env::temp_dir().join(format!("calico-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.db");
    let _ = std::fs::remove_file(&path);
    lists_then_follows(Arc::new(FileStore::open(&path).unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_compaction_relists_at_once_and_reports_only_the_difference() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new().with_watch_history(3));
    for k in ["/calico/a/gone", "/calico/a/changed", "/calico/a/same"] {
        store.put(k.as_bytes(), b"v0").unwrap();
    }
    let mut syncer = Syncer::new(store.clone(), prefixes(), options(100));
    assert_eq!(
        summary(&syncer.poll(Duration::from_secs(1)))
            .last()
            .map(String::as_str),
        Some("status InSync")
    );
    // More changes than the history holds while the syncer does not look.
    let gone = store.get(b"/calico/a/gone").unwrap().unwrap();
    store.delete(b"/calico/a/gone", gone.mod_revision).unwrap();
    for i in 0..5 {
        store
            .put(b"/calico/a/changed", format!("v{i}").as_bytes())
            .unwrap();
    }
    store.put(b"/calico/b/new", b"n").unwrap();
    let resync = summary(&syncer.poll(Duration::from_secs(1)));
    assert_eq!(resync, ["status Resync"]);
    let relist = summary(&syncer.poll(Duration::from_secs(1)));
    assert_eq!(
        relist,
        [
            "delete /calico/a/gone",
            "put /calico/a/changed=v4",
            "put /calico/b/new=n",
            "status InSync",
        ],
        "no event for the unchanged key, no blind clear"
    );
    let stats = syncer.stats();
    assert_eq!((stats.lists, stats.compactions), (2, 1));
}

/// A store that fails every request while `down` is set.
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

struct FlakyWatch {
    inner: Box<dyn Watch>,
    down: Arc<AtomicBool>,
}

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        store: "flaky:".to_owned(),
        attempts: 1,
        elapsed: Duration::ZERO,
        reason: "connection refused".to_owned(),
    }
}

impl Watch for FlakyWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.next(timeout.min(Duration::from_millis(20)))
    }
}

impl Store for Flaky {
    fn url(&self) -> &str {
        "flaky:"
    }
    fn read(&self, reads: &[ReadOp]) -> Result<ReadResponse, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.read(reads)
    }
    fn txn(&self, compares: &[Compare], ops: &[TxnOp]) -> Result<TxnResponse, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.inner.txn(compares, ops)
    }
    fn watch(&self, prefix: &[u8], from: Revision) -> Result<Box<dyn Watch>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(Box::new(FlakyWatch {
            inner: self.inner.watch(prefix, from)?,
            down: self.down.clone(),
        }))
    }
}

#[test]
fn an_outage_keeps_the_view_and_relists_on_return() {
    let down = Arc::new(AtomicBool::new(true));
    let flaky = Arc::new(Flaky {
        inner: MemoryStore::new(),
        down: down.clone(),
    });
    let store: Arc<dyn Store> = flaky.clone();
    let mut syncer = Syncer::new(store, prefixes(), options(100));
    // Never connected: errors, and the status stays WaitForReady.
    assert_eq!(summary(&syncer.poll(Duration::from_millis(50))), ["error"]);
    assert_eq!(syncer.status(), SyncStatus::WaitForReady);
    down.store(false, Ordering::SeqCst);
    flaky.inner.put(b"/calico/a/x", b"1").unwrap();
    flaky.inner.put(b"/calico/a/y", b"1").unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(summary(&syncer.poll(Duration::from_millis(50))));
        if syncer.status() == SyncStatus::InSync {
            break;
        }
    }
    assert_eq!(
        got,
        [
            "status Resync",
            "put /calico/a/x=1",
            "put /calico/a/y=1",
            "status InSync"
        ]
    );
    // The store goes away: errors, Resync, but no deletes; the view is kept.
    down.store(true, Ordering::SeqCst);
    let outage = summary(&syncer.poll(Duration::from_millis(50)));
    assert_eq!(outage, ["error", "status Resync"]);
    let x = flaky.inner.get(b"/calico/a/x").unwrap().unwrap();
    flaky.inner.delete(b"/calico/a/x", x.mod_revision).unwrap();
    let more = summary(&syncer.poll(Duration::from_millis(50)));
    assert!(
        more.iter().all(|e| e == "error"),
        "only errors while down: {more:?}"
    );
    assert_eq!(syncer.len(), 2, "the view is kept during the outage");
    assert!(syncer.stats().errors >= 2);
    // Back: one re-list, the delete made meanwhile is synthesised.
    down.store(false, Ordering::SeqCst);
    let mut back = Vec::new();
    for _ in 0..20 {
        back.extend(summary(&syncer.poll(Duration::from_millis(50))));
        if syncer.status() == SyncStatus::InSync {
            break;
        }
    }
    assert_eq!(back, ["delete /calico/a/x", "status InSync"]);
}
