//! `storebench`: raw transaction and read rates of the datastore backends, as JSON.
//!
//! ```text
//! storebench [--backends memory,file,etcd] [--seconds S] [--threads T]
//!            [--etcd etcd://HOST:PORT,...] [--file-dir DIR] [--cases a,b,...]
//! ```
//!
//! For each backend it measures, single-threaded unless noted:
//! * `cas_update`: one key, `update(key, value, rev)` chaining the revision (1 round trip);
//! * `txn3`: compares on 3 keys' revisions and puts of all 3 (1 round trip);
//! * `get_then_cas`: read the key, then update it (2 round trips);
//! * `read_batch5`: one read batch of 3 gets and 2 prefix ranges (1 round trip);
//! * `cas_update_parallel`: `T` threads each updating its own key.
//!
//! Round trips are counted by a `CountingStore` wrapper. Without `--etcd`, an etcd server is
//! started on loopback if `/usr/bin/etcd` exists (else the backend is listed as skipped).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use calico_datastore::{
    Compare, CountingStore, FileStore, MemoryStore, ReadOp, Revision, Store, StoreError, TxnOp,
};
use calico_datastore_etcd::testkit::{EtcdCluster, etcd_binary};
use serde_json::{Value, json};

struct Args {
    backends: Vec<String>,
    seconds: f64,
    threads: usize,
    etcd: Option<String>,
    file_dir: Option<PathBuf>,
    cases: Option<Vec<String>>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backends: vec!["memory".into(), "file".into(), "etcd".into()],
        seconds: 2.0,
        threads: 4,
        etcd: None,
        file_dir: None,
        cases: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backends" => {
                args.backends = value()?.split(',').map(str::to_owned).collect();
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?;
            }
            "--etcd" => args.etcd = Some(value()?),
            "--file-dir" => args.file_dir = Some(PathBuf::from(value()?)),
            "--cases" => args.cases = Some(value()?.split(',').map(str::to_owned).collect()),
            "-h" | "--help" => {
                return Err(
                    "usage: storebench [--backends memory,file,etcd] [--seconds S] [--threads T] \
                     [--etcd etcd://HOST:PORT,...] [--file-dir DIR] [--cases a,b,...]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Runs `op` repeatedly for `budget` after a short warm-up; returns the case's JSON.
fn case(
    name: &str,
    store: &CountingStore<&dyn Store>,
    budget: Duration,
    mut op: impl FnMut() -> Result<(), StoreError>,
) -> Result<Value, StoreError> {
    for _ in 0..5 {
        op()?;
    }
    store.reset();
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < budget || ops < 20 {
        op()?;
        ops += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let trips = store.reset();
    Ok(json!({
        "case": name,
        "ops": ops,
        "seconds": round3(secs),
        "ops_per_sec": round3(ops as f64 / secs),
        "mean_us": round3(secs * 1e6 / ops as f64),
        "round_trips_per_op": round3(trips.total() as f64 / ops as f64),
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn bench_store(store: &dyn Store, args: &Args, tag: &str) -> Result<Vec<Value>, StoreError> {
    let budget = Duration::from_secs_f64(args.seconds);
    let counted = CountingStore::new(store);
    let key = |k: &str| format!("bench/{tag}/{k}").into_bytes();
    let mut out = Vec::new();
    let wanted = |name: &str| {
        args.cases
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == name))
    };

    // cas_update
    let k = key("cas");
    let mut rev = counted.put(&k, b"0")?;
    let mut n = 0u64;
    if wanted("cas_update") {
        out.push(case("cas_update", &counted, budget, || {
            n += 1;
            rev = counted.update(&k, n.to_string().as_bytes(), rev)?;
            Ok(())
        })?);
    }

    // txn3
    let keys = [key("t/a"), key("t/b"), key("t/c")];
    let r0 = counted.txn(
        &[],
        &keys
            .iter()
            .map(|k| TxnOp::put(k.clone(), "0"))
            .collect::<Vec<_>>(),
    )?;
    let mut revs: [Revision; 3] = [r0.revision; 3];
    let value = vec![b'x'; 512];
    if wanted("txn3") {
        out.push(case("txn3", &counted, budget, || {
            let compares: Vec<_> = keys
                .iter()
                .zip(revs)
                .map(|(k, r)| Compare::mod_revision(k.clone(), r))
                .collect();
            let ops: Vec<_> = keys
                .iter()
                .map(|k| TxnOp::put(k.clone(), value.clone()))
                .collect();
            let r = counted.txn(&compares, &ops)?.revision;
            revs = [r; 3];
            Ok(())
        })?);
    }

    // get_then_cas
    let k2 = key("rmw");
    counted.put(&k2, b"0")?;
    if wanted("get_then_cas") {
        out.push(case("get_then_cas", &counted, budget, || {
            let cur = counted.get(&k2)?.map_or(0, |kv| kv.mod_revision);
            counted.update(&k2, b"v", cur)?;
            Ok(())
        })?);
    }

    // read_batch5: a config key, a handle, a block, a host's affinity prefix, a block page.
    for i in 0..8 {
        counted.put(&key(&format!("aff/host-a/{i:02}")), b"{}")?;
        counted.put(&key(&format!("block/{i:02}")), &vec![b'b'; 1024])?;
    }
    let reads = vec![
        ReadOp::get(key("t/a")),
        ReadOp::get(key("cas")),
        ReadOp::get(key("block/03")),
        ReadOp::prefix(key("aff/host-a/"), 0),
        ReadOp::prefix(key("block/"), 4),
    ];
    if wanted("read_batch5") {
        out.push(case("read_batch5", &counted, budget, || {
            counted.read(&reads).map(drop)
        })?);
    }
    if !wanted("cas_update_parallel") {
        return Ok(out);
    }

    // cas_update_parallel
    let threads = args.threads.max(1);
    let started = Instant::now();
    let results: Vec<Result<u64, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let k = key(&format!("par/{t}"));
                s.spawn(move || -> Result<u64, StoreError> {
                    let mut rev = store.put(&k, b"0")?;
                    let mut ops = 0u64;
                    while started.elapsed() < budget {
                        rev = store.update(&k, b"v", rev)?;
                        ops += 1;
                    }
                    Ok(ops)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)))
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    out.push(json!({
        "case": "cas_update_parallel",
        "threads": threads,
        "ops": total,
        "seconds": round3(secs),
        "ops_per_sec": round3(total as f64 / secs),
        "round_trips_per_op": 1.0,
    }));
    Ok(out)
}

fn run() -> Result<Value, Box<dyn Error>> {
    let args = parse_args()?;
    let mut backends = Vec::new();
    let mut skipped = Vec::new();
    for b in &args.backends {
        match b.as_str() {
            "memory" => {
                let store = MemoryStore::new();
                backends.push(json!({
                    "backend": "memory",
                    "url": store.url(),
                    "cases": bench_store(&store, &args, "memory")?,
                }));
            }
            "file" => {
                let dir = match &args.file_dir {
                    Some(d) => d.clone(),
                    None => std::env::temp_dir(),
                };
                let path = dir.join(format!("storebench-{}.db", std::process::id()));
                let result = FileStore::open(&path)
                    .map_err(|e| -> Box<dyn Error> { Box::new(e) })
                    .and_then(|store| {
                        let cases = bench_store(&store, &args, "file")?;
                        Ok(json!({
                            "backend": "file",
                            "url": store.url(),
                            "cases": cases,
                            "note": "redb in multi-writer mode, one open handle; every write commits durably (fsync)",
                        }))
                    });
                let _ = std::fs::remove_file(&path);
                let mut lock = path.into_os_string();
                lock.push(".lock");
                let _ = std::fs::remove_file(lock);
                backends.push(result?);
            }
            "etcd" => {
                let (url, server) = match &args.etcd {
                    Some(url) => (url.clone(), None),
                    None if etcd_binary().is_some() => {
                        let server = EtcdCluster::start_single()?;
                        (server.url(), Some(server))
                    }
                    None => {
                        skipped.push(json!({"backend": "etcd", "reason": "etcd not installed and no --etcd URL"}));
                        continue;
                    }
                };
                let store = calico_datastore_etcd::open_store(&url)?;
                backends.push(json!({
                    "backend": "etcd",
                    "url": url,
                    "server": if server.is_some() { "started by storebench (1 member, loopback, fsync on)" } else { "given" },
                    "cases": bench_store(&*store, &args, "etcd")?,
                }));
                drop(server);
            }
            other => return Err(format!("unknown backend {other:?}").into()),
        }
    }
    Ok(json!({
        "tool": "storebench",
        "seconds_per_case": args.seconds,
        "backends": backends,
        "skipped": skipped,
    }))
}

fn main() {
    match run() {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        ),
        Err(e) => {
            eprintln!("storebench: {e}");
            std::process::exit(2);
        }
    }
}
