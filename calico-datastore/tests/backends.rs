//! The conformance suite against the in-process backends, and file-store specifics:
//! persistence across reopen, sharing between threads and between processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use calico_datastore::conformance::{self, cas_increment, parse_counter};
use calico_datastore::{
    CountingStore, FileStore, MemoryStore, OpenError, Store, StoreError, TxnOp, open_store,
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
            .txn(&[], &[TxnOp::put(b"a".to_vec(), "2"), TxnOp::put(b"b".to_vec(), "3")])
            .unwrap()
            .revision;
        (rev, store.get(b"a").unwrap().unwrap())
    };
    let store = open_store(&url).unwrap();
    assert_eq!(store.revision().unwrap(), rev);
    assert_eq!(store.get(b"a").unwrap().unwrap(), kv);
    assert_eq!(store.put(b"c", b"4").unwrap(), rev + 1, "revisions restarted");
    // Two handles on one file in one process see each other's writes.
    let other = FileStore::open(dir.path().join("r.db")).unwrap();
    assert_eq!(other.get(b"c").unwrap().map(|kv| kv.value), Some(b"4".to_vec()));
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

/// The body of the multi-process test's children: does nothing unless started by it.
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
    for i in 0..CHILD_INCREMENTS {
        match cas_increment(&store, b"counter", seed * 1000 + i) {
            Ok(_) => {}
            Err(e @ StoreError::Backend { .. }) => panic!("child {seed}: backend error: {e}"),
            Err(e) => panic!("child {seed}: {e}"),
        }
    }
}

#[test]
fn processes_sharing_a_file_wait_and_lose_no_update() {
    let dir = TempDir::new("procs");
    let path = dir.path().join("p.db");
    FileStore::open(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let procs = 4;
    let children: Vec<_> = (0..procs)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "multiprocess_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &path)
                .env("CALICO_DS_CHILD_SEED", i.to_string())
                .output_async()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child {i} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = FileStore::open(&path).unwrap();
    assert_eq!(
        parse_counter(&store.get(b"counter").unwrap().unwrap().value),
        procs * CHILD_INCREMENTS,
        "lost updates between processes"
    );
}

trait SpawnPiped {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}
