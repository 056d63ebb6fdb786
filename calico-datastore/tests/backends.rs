//! The conformance suite against the in-process backends, and file-store specifics:
//! persistence across reopen, sharing between threads and between processes.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use calico_datastore::conformance::{
    self, cas_increment, check_logged_counter, logged_increment, parse_counter,
};
use calico_datastore::{
    CountingStore, FileStore, MemoryStore, OpenError, Store, StoreError, TxnOp, WatchEvent,
    open_store,
};

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "calico-ds-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn memory_conforms() {
    conformance::run_all(&MemoryStore::new(), "conf/");
}

#[test]
fn memory_conforms_through_open_store_and_wrappers() {
    let store = open_store("memory:").unwrap();
    let counted = CountingStore::new(&store);
    conformance::run_all(&counted, "conf/");
    let counts = counted.counts();
    assert!(counts.reads > 100 && counts.txns > 100, "{counts:?}");
    // Each helper is one round trip.
    counted.reset();
    counted.create(b"x", b"1").unwrap();
    counted.get(b"x").unwrap();
    counted.get_many(&[b"x", b"y"]).unwrap();
    assert_eq!(counted.counts().total(), 3);
}

#[test]
fn file_conforms() {
    let dir = TempDir::new("conf");
    let store = FileStore::open(dir.path().join("c.db")).unwrap();
    conformance::run_all(&store, "conf/");
}

#[test]
fn file_survives_reopen_with_revisions() {
    let dir = TempDir::new("reopen");
    let url = format!("file:{}", dir.path().join("r.db").display());
    let (rev, kv) = {
        let store = open_store(&url).unwrap();
        store.put(b"a", b"1").unwrap();
        let rev = store
            .txn(
                &[],
                &[
                    TxnOp::put(b"a".to_vec(), "2"),
                    TxnOp::put(b"b".to_vec(), "3"),
                ],
            )
            .unwrap()
            .revision;
        (rev, store.get(b"a").unwrap().unwrap())
    };
    let store = open_store(&url).unwrap();
    assert_eq!(store.revision().unwrap(), rev);
    assert_eq!(store.get(b"a").unwrap().unwrap(), kv);
    assert_eq!(
        store.put(b"c", b"4").unwrap(),
        rev + 1,
        "revisions restarted"
    );
    // Two handles on one file in one process see each other's writes.
    let other = FileStore::open(dir.path().join("r.db")).unwrap();
    assert_eq!(
        other.get(b"c").unwrap().map(|kv| kv.value),
        Some(b"4".to_vec())
    );
}

#[test]
fn file_open_errors_are_clear() {
    let dir = TempDir::new("bad");
    let missing_dir = dir.path().join("no/such/dir/x.db");
    let e = FileStore::open(&missing_dir).unwrap_err();
    assert!(matches!(e, OpenError::File { .. }), "{e:?}");
    assert!(e.to_string().contains("no/such/dir"), "{e}");
    // A file that is not a redb database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 10_000]).unwrap();
    let e = FileStore::open(&junk).unwrap_err();
    assert!(e.to_string().contains("junk.db"), "{e}");
}

#[test]
fn two_file_handles_in_threads_lose_no_update() {
    let dir = TempDir::new("threads");
    let path = dir.path().join("t.db");
    let a = FileStore::open(&path).unwrap();
    let b = FileStore::open(&path).unwrap();
    std::thread::scope(|s| {
        for (t, store) in [&a, &b, &a, &b].into_iter().enumerate() {
            s.spawn(move || {
                for i in 0..20 {
                    cas_increment(store, b"n", (t * 100 + i) as u64).unwrap();
                }
            });
        }
    });
    assert_eq!(parse_counter(&a.get(b"n").unwrap().unwrap().value), 80);
}

const CHILD_ENV: &str = "CALICO_DS_CHILD_DB";
const CHILD_INCREMENTS: u64 = 40;

/// The body of the multi-process tests' children: does nothing unless started by them.
/// `CALICO_DS_CHILD_MODE=plain`: CAS increments of `counter`; `logged`: logged increments
/// under `crash/` (the crash test kills some children mid-way).
#[test]
fn multiprocess_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = FileStore::open(&path).unwrap();
    let seed: u64 = std::env::var("CALICO_DS_CHILD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let logged = std::env::var("CALICO_DS_CHILD_MODE").as_deref() == Ok("logged");
    for i in 0..CHILD_INCREMENTS * if logged { 10 } else { 1 } {
        let result = if logged {
            logged_increment(
                &store,
                "crash/",
                seed as usize,
                i as usize,
                Duration::from_secs(60),
            )
            .map(drop)
        } else {
            cas_increment(&store, b"counter", seed * 1000 + i).map(drop)
        };
        if let Err(e) = result {
            panic!("child {seed}: {e}");
        }
    }
}

fn spawn_child(path: &Path, seed: usize, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "multiprocess_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env("CALICO_DS_CHILD_SEED", seed.to_string())
        .env("CALICO_DS_CHILD_MODE", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn expect_success(i: usize, child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child {i} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn processes_sharing_a_file_wait_and_lose_no_update() {
    let dir = TempDir::new("procs");
    let path = dir.path().join("p.db");
    let store = FileStore::open(&path).unwrap();
    let procs = 4;
    let mut children: Vec<_> = (0..procs).map(|i| spawn_child(&path, i, "plain")).collect();
    // This process reads while the children write: it sees their commits, in order.
    let mut last = 0;
    loop {
        let now = store
            .get(b"counter")
            .unwrap()
            .map_or(0, |kv| parse_counter(&kv.value));
        assert!(now >= last, "the counter went backwards");
        last = now;
        let running = children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)));
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(last > 0, "this process never saw the children's writes");
    for (i, child) in children.into_iter().enumerate() {
        expect_success(i, child);
    }
    let reopened = FileStore::open(&path).unwrap();
    assert_eq!(
        parse_counter(&reopened.get(b"counter").unwrap().unwrap().value),
        procs as u64 * CHILD_INCREMENTS,
        "lost updates between processes"
    );
}

#[test]
fn sigkilled_writers_leave_a_consistent_file() {
    let dir = TempDir::new("crash");
    let path = dir.path().join("k.db");
    let store = FileStore::open(&path).unwrap();
    let mut survivors = Vec::new();
    let mut killed = 0;
    for round in 0..3 {
        let victim = spawn_child(&path, 10 + round, "logged");
        survivors.push((round, spawn_child(&path, round, "logged")));
        // Let the victim get going, then SIGKILL it in the middle of its increments.
        let started = Instant::now();
        let before = store.revision().unwrap();
        while store.revision().unwrap() < before + 20 && started.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut victim = victim;
        victim.kill().unwrap();
        victim.wait().unwrap();
        killed += 1;
        // The store stays usable for everyone after the crash.
        logged_increment(&store, "crash/", 99, round, Duration::from_secs(30)).unwrap();
    }
    for (i, child) in survivors {
        expect_success(i, child);
    }
    let n = check_logged_counter(&store, "crash/");
    let full = 3 * CHILD_INCREMENTS * 10 + 3;
    assert!(n >= full, "survivors' increments missing: {n} < {full}");
    assert!(
        n < full + killed * CHILD_INCREMENTS * 10,
        "every victim finished: not a crash test"
    );
    // And a fresh open (as after a reboot) sees the same state.
    drop(store);
    let reopened = FileStore::open(&path).unwrap();
    assert_eq!(check_logged_counter(&reopened, "crash/"), n);
}

#[test]
fn memory_watches_conform() {
    conformance::run_watch(&MemoryStore::new(), "w/");
    let store = open_store("memory:").unwrap();
    conformance::run_watch(&CountingStore::new(&store), "w/");
}

#[test]
fn file_watches_conform() {
    let dir = TempDir::new("watch");
    let store = FileStore::open(dir.path().join("w.db")).unwrap();
    conformance::run_watch(&store, "w/");
}

/// A watch that falls further behind than the history a store keeps gets `Compacted` on
/// its next call (and a re-list is the way on); one that keeps up never does.
fn behind_watch_is_compacted(store: &dyn Store) {
    let start = store.revision().unwrap() + 1;
    let mut keeping_up = store.watch(b"h/", start).unwrap();
    let mut behind = store.watch(b"h/", start).unwrap();
    let mut seen = 0;
    for i in 0..10 {
        store.put(b"h/k", i.to_string().as_bytes()).unwrap();
        seen += keeping_up.next(Duration::from_secs(5)).unwrap().len();
    }
    assert_eq!(seen, 10, "the watch that keeps up sees every change");
    match behind.next(Duration::from_millis(10)) {
        Err(StoreError::Compacted {
            requested,
            available_from,
            ..
        }) => {
            assert_eq!(requested, start);
            assert!(available_from >= start + 6, "{available_from}");
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // A new watch from the current revision works.
    let now = store.revision().unwrap();
    let mut again = store.watch(b"h/", now + 1).unwrap();
    let r = store.put(b"h/k", b"x").unwrap();
    let got = again.next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        got.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
        [r]
    );
}

#[test]
fn memory_watch_behind_its_history_is_compacted() {
    behind_watch_is_compacted(&MemoryStore::new().with_watch_history(4));
}

#[test]
fn file_watch_behind_its_history_is_compacted() {
    let dir = TempDir::new("wbehind");
    let store = FileStore::open(dir.path().join("h.db"))
        .unwrap()
        .with_watch_history(4);
    behind_watch_is_compacted(&store);
}

#[test]
fn a_file_watch_sees_other_processes_writes_in_order() {
    let dir = TempDir::new("wprocs");
    let path = dir.path().join("p.db");
    let store = FileStore::open(&path).unwrap();
    let start = store.revision().unwrap() + 1;
    let mut watch = store.watch(b"counter", start).unwrap();
    let procs = 3;
    let children: Vec<_> = (0..procs).map(|i| spawn_child(&path, i, "plain")).collect();
    for (i, child) in children.into_iter().enumerate() {
        expect_success(i, child);
    }
    let total = procs as u64 * CHILD_INCREMENTS;
    let end = store.revision().unwrap();
    let events = conformance::collect_until(&mut *watch, end);
    let values: Vec<u64> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Put { kv } => parse_counter(&kv.value),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(values, (1..=total).collect::<Vec<_>>());
}

#[test]
fn a_reopened_file_keeps_its_change_log() {
    let dir = TempDir::new("wreopen");
    let path = dir.path().join("r.db");
    let first = {
        let store = FileStore::open(&path).unwrap();
        store.put(b"a", b"1").unwrap()
    };
    let store = FileStore::open(&path).unwrap();
    let mut w = store.watch(b"", first).unwrap();
    let got = w.next(Duration::from_secs(1)).unwrap();
    assert_eq!(got.len(), 1, "the history survives a reopen: {got:?}");
    assert_eq!(got[0].revision(), first);
}

#[test]
fn a_database_written_before_the_change_log_watches_from_its_current_revision() {
    // The layout of a database from before the change log: format 1, a revision, keys.
    let dir = TempDir::new("wold");
    let path = dir.path().join("old.db");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("calico_meta"))
                .unwrap();
            meta.insert("format", 1).unwrap();
            meta.insert("revision", 5).unwrap();
            let mut kv = txn
                .open_table(redb::TableDefinition::<&[u8], &[u8]>::new("calico_kv"))
                .unwrap();
            let mut entry = 5u64.to_le_bytes().to_vec();
            entry.extend(5u64.to_le_bytes());
            entry.extend(b"v");
            kv.insert(b"a".as_slice(), entry.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = FileStore::open(&path).unwrap();
    assert_eq!(store.get(b"a").unwrap().unwrap().value, b"v");
    // Its history before now is unknown: a watch from the past is refused, not empty.
    match store.watch(b"", 3) {
        Err(StoreError::Compacted { available_from, .. }) => assert_eq!(available_from, 6),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a watch over unknown history was opened"),
    }
    let mut w = store.watch(b"", 6).unwrap();
    let r = store.put(b"a", b"w").unwrap();
    assert_eq!(r, 6);
    let got = w.next(Duration::from_secs(1)).unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn memory_leases_conform() {
    conformance::check_leases(&MemoryStore::new(), "lease/", Duration::from_secs(1));
}

#[test]
fn file_leases_conform() {
    let dir = TempDir::new("lease");
    let store = FileStore::open(dir.path().join("l.db")).unwrap();
    conformance::check_leases(&store, "lease/", Duration::from_secs(1));
}

#[test]
fn a_file_lease_expires_for_another_process_too() {
    // Two handles of one file stand for two processes: the lease granted through one
    // expires for the other, whose reads see its keys gone.
    let dir = TempDir::new("lease2");
    let path = dir.path().join("l.db");
    let a = FileStore::open(&path).unwrap();
    let lease = a.grant_lease(Duration::from_secs(1)).unwrap();
    a.put_with_lease(b"status", b"up", lease).unwrap();
    drop(a);
    let b = FileStore::open(&path).unwrap();
    assert!(b.get(b"status").unwrap().is_some());
    std::thread::sleep(Duration::from_millis(1_300));
    assert_eq!(b.get(b"status").unwrap(), None);
    assert!(matches!(
        b.keep_alive(lease),
        Err(StoreError::LeaseNotFound { .. })
    ));
}
