//! `ipambench`: allocation rate of `calico-ipam` on the memory, file and etcd backends, the
//! datastore round trips per allocation, the rate relative to raw etcd transactions measured
//! in the same run, and how allocation time grows with the number of blocks in the store.
//! Prints JSON.
//!
//! ```text
//! ipambench [--backends memory,file,etcd] [--seconds S] [--blocks 10,1000,10000]
//!           [--threads T] [--etcd etcd://HOST:PORT,...]
//! ```
//!
//! Cases, per backend:
//! * `assign`: `auto_assign` of one address with a new handle for one host, single-threaded
//!   (steady state: the host's affine block usually has room; one claim every 64);
//! * `assign_fresh_read`: `assign` with the optimistic path off (a read batch before every
//!   transaction: two round trips);
//! * `assign_release`: `auto_assign` then `release_by_handle` of that handle;
//! * `assign_parallel`: `T` threads, each its own host;
//! * `raw_txn` / `raw_read_txn` (baselines): one transaction comparing 2 keys and writing 3
//!   (the shape of an allocation's commit, a block-sized value), and the same preceded by a read batch of 5
//!   (the shape of a whole allocation), on the same store;
//! * `interleaved` (in `baselines`): `assign`, `assign_fresh_read` and `raw_txn` again, and
//!   `raw_txn_assign_shape` (a raw transaction of the optimistic assign's shape: 7 compares,
//!   3 of them ranges, a value of the size of the block an allocation writes — Calico's JSON
//!   of a half-full /26 block — and a handle), taking turns in 100 ms slices for
//!   three times the case budget, so the ratios compare rates under the same machine load;
//! * `scaling`: `assign` with 10, 1,000 and 10,000 blocks of other hosts in the store.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_datastore::{Compare, CountingStore, FileStore, MemoryStore, ReadOp, Store, TxnOp};
use calico_datastore_etcd::testkit::{EtcdCluster, etcd_binary};
use calico_ipam::resources::resource_key;
use calico_ipam::{AutoAssignRequest, Block, Ipam, Owner, keys};
use calico_model::resources::ipam::AllowedUse;
use serde_json::{Value, json};

struct Args {
    backends: Vec<String>,
    seconds: f64,
    blocks: Vec<usize>,
    threads: usize,
    etcd: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        backends: vec!["memory".into(), "file".into(), "etcd".into()],
        seconds: 2.0,
        blocks: vec![10, 1000, 10000],
        threads: 4,
        etcd: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backends" => a.backends = value()?.split(',').map(str::to_owned).collect(),
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--blocks" => {
                a.blocks = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--blocks: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--etcd" => a.etcd = Some(value()?),
            "-h" | "--help" => {
                return Err(
                    "usage: ipambench [--backends memory,file,etcd] [--seconds S] \
                            [--blocks 10,1000,10000] [--threads T] [--etcd URL]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn request(host: &str, handle: String) -> AutoAssignRequest {
    AutoAssignRequest {
        num4: 1,
        handle: Some(handle),
        host: host.to_owned(),
        intended_use: AllowedUse::Workload,
        ..Default::default()
    }
}

/// Runs `op` for `budget` (after a warm-up), counting round trips on `counted`.
fn measure(
    name: &str,
    counted: &CountingStore<Arc<dyn Store>>,
    budget: Duration,
    mut op: impl FnMut(u64) -> Result<(), Box<dyn Error>>,
) -> Result<Value, Box<dyn Error>> {
    let mut i = 0u64;
    for _ in 0..5 {
        op(i)?;
        i += 1;
    }
    counted.reset();
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed() < budget || ops < 20 {
        op(i)?;
        i += 1;
        ops += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let trips = counted.reset();
    Ok(json!({
        "case": name,
        "ops": ops,
        "ops_per_sec": round3(ops as f64 / secs),
        "mean_us": round3(secs * 1e6 / ops as f64),
        "round_trips_per_op": round3(trips.total() as f64 / ops as f64),
    }))
}

fn add_pool(store: &dyn Store, name: &str, cidr: &str) -> Result<(), Box<dyn Error>> {
    let v = json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": 26}});
    store.put(
        resource_key("IPPool", None, name).as_bytes(),
        v.to_string().as_bytes(),
    )?;
    Ok(())
}

/// Writes `n` blocks (each owned by its own host, one address allocated) of the /8 pool
/// `base.0.0.0/8` from block index `start` on (with wrap), as other hosts would have.
fn populate(store: &dyn Store, base: u8, start: usize, n: usize) -> Result<(), Box<dyn Error>> {
    let mut ops = Vec::new();
    for j in 0..n {
        let i = (start + j) % (1 << 18);
        let addr = std::net::Ipv4Addr::from((u32::from(base) << 24) + (i as u32) * 64);
        let net: ipnet::IpNet = format!("{addr}/26").parse()?;
        let owner = Owner::host(format!("other-{i}"));
        let mut b = Block::new(net, Some(&owner), 1_700_000_000_000_000_000);
        b.take(1, None, &Default::default(), &[]);
        b.sequence_number += 1;
        ops.push(TxnOp::put(keys::block(&net), b.to_json()));
        ops.push(TxnOp::put(
            keys::affinity(&owner, &net),
            br#"{"state":"confirmed","deleted":false}"#.to_vec(),
        ));
    }
    for chunk in ops.chunks(store.max_txn_ops().max(2) & !1) {
        store.txn(&[], chunk)?;
    }
    Ok(())
}

/// Parallel allocations: `threads` hosts for `budget`; returns allocations per second.
fn parallel_assign(
    ipam: &Ipam,
    tag: &str,
    threads: usize,
    budget: Duration,
) -> Result<Value, Box<dyn Error>> {
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<u64, String> {
                    let mut n = 0u64;
                    while started.elapsed() < budget {
                        // A new host every 640 allocations (10 blocks).
                        let host = format!("par-{tag}-{t}-{}", n / 640);
                        ipam.auto_assign(&request(&host, format!("p-{t}-{n}")))
                            .map_err(|e| e.to_string())?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(Ok(0))).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(
        json!({"case": "assign_parallel", "threads": threads, "ops": total, "ops_per_sec": round3(total as f64 / secs)}),
    )
}

/// The raw transaction baselines: `threads` writers each chaining a 2-compare, 3-write
/// transaction on its own keys (`with_read`: preceded by a read batch of 5).
fn raw_txns(
    store: &dyn Store,
    tag: &str,
    threads: usize,
    with_read: bool,
    budget: Duration,
) -> Result<f64, Box<dyn Error>> {
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<u64, String> {
                    let k = |x: &str| format!("bench/{tag}/{with_read}/{t}/{x}").into_bytes();
                    let (kb, kh, km) = (k("block"), k("handle"), k("marker"));
                    let value = vec![b'x'; typical_block_bytes()];
                    let err = |e: calico_datastore::StoreError| e.to_string();
                    let r = store
                        .txn(
                            &[],
                            &[
                                TxnOp::put(kb.clone(), value.clone()),
                                TxnOp::put(kh.clone(), b"{}".to_vec()),
                            ],
                        )
                        .map_err(err)?;
                    let mut rev = r.revision;
                    let mut n = 0u64;
                    while started.elapsed() < budget {
                        if with_read {
                            store
                                .read(&[
                                    ReadOp::get(k("config")),
                                    ReadOp::prefix(k("pool/"), 0),
                                    ReadOp::prefix(k("res/"), 0),
                                    ReadOp::get(kb.clone()),
                                    ReadOp::get(kh.clone()),
                                ])
                                .map_err(err)?;
                        }
                        rev = store
                            .txn(
                                &[
                                    Compare::mod_revision(kb.clone(), rev),
                                    Compare::mod_revision(kh.clone(), rev),
                                ],
                                &[
                                    TxnOp::put(kb.clone(), value.clone()),
                                    TxnOp::put(kh.clone(), b"{}".to_vec()),
                                    TxnOp::delete(km.clone()),
                                ],
                            )
                            .map_err(err)?
                            .revision;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(Ok(0))).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(round3(total as f64 / secs))
}

/// One writer of the raw baseline: a 2-compare, 3-write transaction on its own keys, each
/// comparing the revisions the previous one wrote.
struct RawWriter {
    kb: Vec<u8>,
    kh: Vec<u8>,
    km: Vec<u8>,
    value: Vec<u8>,
    rev: u64,
}

impl RawWriter {
    fn new(store: &dyn Store, prefix: &str) -> Result<RawWriter, Box<dyn Error>> {
        let k = |x: &str| format!("{prefix}/{x}").into_bytes();
        let mut w = RawWriter {
            kb: k("block"),
            kh: k("handle"),
            km: k("marker"),
            value: vec![b'x'; typical_block_bytes()],
            rev: 0,
        };
        w.rev = store
            .txn(
                &[],
                &[
                    TxnOp::put(w.kb.clone(), w.value.clone()),
                    TxnOp::put(w.kh.clone(), b"{}".to_vec()),
                ],
            )?
            .revision;
        Ok(w)
    }

    /// One transaction of an allocation's shape: 7 compares (3 of them ranges, as the
    /// optimistic assign's guards) and the 2 writes (a block-sized value and a handle).
    fn step_assign_shape(&mut self, store: &dyn Store) -> Result<(), Box<dyn Error>> {
        let p = |x: &str| {
            let mut k = self.kb.clone();
            k.extend_from_slice(x.as_bytes());
            k
        };
        self.rev = store
            .txn(
                &[
                    Compare::mod_revision(self.kb.clone(), self.rev),
                    Compare::absent(p("/h")),
                    Compare::absent(p("/config")),
                    Compare::absent(p("/node")),
                    Compare::prefix_unmodified(p("/pools/"), self.rev),
                    Compare::prefix_unmodified(p("/res/"), self.rev),
                    Compare::prefix_unmodified(p("/aff/"), self.rev),
                ],
                &[
                    TxnOp::put(self.kb.clone(), self.value.clone()),
                    TxnOp::put(self.kh.clone(), b"{}".to_vec()),
                ],
            )?
            .revision;
        Ok(())
    }

    fn step(&mut self, store: &dyn Store) -> Result<(), Box<dyn Error>> {
        self.rev = store
            .txn(
                &[
                    Compare::mod_revision(self.kb.clone(), self.rev),
                    Compare::mod_revision(self.kh.clone(), self.rev),
                ],
                &[
                    TxnOp::put(self.kb.clone(), self.value.clone()),
                    TxnOp::put(self.kh.clone(), b"{}".to_vec()),
                    TxnOp::delete(self.km.clone()),
                ],
            )?
            .revision;
        Ok(())
    }
}

/// The allocation rate against the raw transaction rate, measured interleaved in short
/// slices (optimistic assign, assign with a fresh read, raw txn, in turn) so that both see
/// the same machine load: the ratio is robust on a shared machine.
fn interleaved(
    store: &Arc<dyn Store>,
    counted: &Arc<CountingStore<Arc<dyn Store>>>,
    tag: &str,
    budget: Duration,
) -> Result<Value, Box<dyn Error>> {
    let ipam = Ipam::new(counted.clone() as Arc<dyn Store>);
    let fresh = Ipam::new(counted.clone() as Arc<dyn Store>).with_optimistic(false);
    let mut raw = RawWriter::new(&**store, &format!("bench/{tag}/interleaved"))?;
    let mut shaped = RawWriter::new(&**store, &format!("bench/{tag}/shaped"))?;
    let slice = Duration::from_millis(100);
    let rounds = ((budget.as_secs_f64() / 0.1).ceil() as usize).max(3);
    // [optimistic, fresh, raw, raw of an allocation's shape]: (ops, seconds, round trips).
    let mut acc = [(0u64, 0f64, 0u64); 4];
    let mut n = [0u64; 2];
    for _ in 0..rounds {
        for (which, a) in acc.iter_mut().enumerate() {
            counted.reset();
            let started = Instant::now();
            let mut ops = 0u64;
            while started.elapsed() < slice {
                match which {
                    0 | 1 => {
                        let i = n[which];
                        n[which] += 1;
                        let (ipam, name) = if which == 0 {
                            (&ipam, "o")
                        } else {
                            (&fresh, "f")
                        };
                        ipam.auto_assign(&request(
                            &format!("il-{tag}-{name}-{}", i / 640),
                            format!("il-{name}-{i}"),
                        ))?;
                    }
                    2 => raw.step(&**store)?,
                    _ => shaped.step_assign_shape(&**store)?,
                }
                ops += 1;
            }
            a.0 += ops;
            a.1 += started.elapsed().as_secs_f64();
            a.2 += counted.reset().total();
        }
    }
    let rate = |a: (u64, f64, u64)| a.0 as f64 / a.1;
    let raw_rate = rate(acc[2]);
    Ok(json!({
        "slices_ms": 100,
        "rounds": rounds,
        "assign_per_sec": round3(rate(acc[0])),
        "assign_round_trips_per_op": round3(acc[0].2 as f64 / acc[0].0 as f64),
        "assign_fresh_read_per_sec": round3(rate(acc[1])),
        "assign_fresh_read_round_trips_per_op": round3(acc[1].2 as f64 / acc[1].0 as f64),
        "raw_txn_per_sec": round3(raw_rate),
        "assign_over_raw_txn": round3(rate(acc[0]) / raw_rate),
        "assign_fresh_read_over_raw_txn": round3(rate(acc[1]) / raw_rate),
        "raw_txn_assign_shape_per_sec": round3(rate(acc[3])),
        "raw_txn_assign_shape_value_bytes": shaped.value.len(),
        "assign_over_raw_txn_assign_shape": round3(rate(acc[0]) / rate(acc[3])),
    }))
}

/// The size of the block value an allocation writes, on average over a block's life: a
/// /26 block (Calico's JSON) half full, each address with its own handle as the
/// allocations of this benchmark have (`il-o-<n>`, no owner attributes).
fn typical_block_bytes() -> usize {
    let net = ipnet::IpNet::V4(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 26).unwrap_or_default(),
    );
    let mut b = Block::new(
        net,
        Some(&Owner::host("il-etcd-o-0")),
        1_787_216_324_318_205_117,
    );
    for i in 0..32 {
        b.take(
            1,
            Some(&format!("il-o-{}", 100_000 + i)),
            &Default::default(),
            &[],
        );
        b.sequence_number += 1;
    }
    b.to_json().len()
}

fn bench(store: Arc<dyn Store>, args: &Args, tag: &str) -> Result<Value, Box<dyn Error>> {
    let budget = Duration::from_secs_f64(args.seconds);
    let counted = Arc::new(CountingStore::new(store.clone()));
    let dyn_counted: Arc<dyn Store> = counted.clone();
    let ipam = Ipam::new(dyn_counted);
    add_pool(&*store, "bench", "10.0.0.0/8")?;
    let mut cases = Vec::new();
    let host = format!("bench-{tag}");
    let assign = measure("assign", &counted, budget, |i| {
        // A new host every 640 allocations (10 blocks), below the 20-block default cap.
        ipam.auto_assign(&request(&format!("{host}-{}", i / 640), format!("a-{i}")))?;
        Ok(())
    })?;
    let assign_rate = assign["ops_per_sec"].as_f64().unwrap_or(0.0);
    cases.push(assign);
    // The same without the optimistic one-round-trip path: a fresh read before every
    // transaction.
    let fresh_ipam = Ipam::new(counted.clone() as Arc<dyn Store>).with_optimistic(false);
    let fresh = measure("assign_fresh_read", &counted, budget, |i| {
        fresh_ipam.auto_assign(&request(
            &format!("{host}-fresh-{}", i / 640),
            format!("f-{i}"),
        ))?;
        Ok(())
    })?;
    let fresh_rate = fresh["ops_per_sec"].as_f64().unwrap_or(0.0);
    cases.push(fresh);
    let host2 = format!("bench-{tag}-2");
    cases.push(measure("assign_release", &counted, budget, |i| {
        let h = format!("ar-{i}");
        ipam.auto_assign(&request(&host2, h.clone()))?;
        ipam.release_by_handle(&h)?;
        Ok(())
    })?);
    let par = parallel_assign(&ipam, tag, args.threads, budget)?;
    let par_rate = par["ops_per_sec"].as_f64().unwrap_or(0.0);
    cases.push(par);
    let raw1 = raw_txns(&*store, tag, 1, false, budget)?;
    let raw1r = raw_txns(&*store, tag, 1, true, budget)?;
    let rawp = raw_txns(&*store, tag, args.threads, false, budget)?;
    let inter = interleaved(&store, &counted, tag, budget * 3)?;
    let baselines = json!({
        "interleaved": inter,
        "raw_txn_per_sec": raw1,
        "raw_read_txn_per_sec": raw1r,
        "raw_txn_parallel_per_sec": rawp,
        "assign_over_raw_txn": round3(assign_rate / raw1),
        "assign_over_raw_read_txn": round3(assign_rate / raw1r),
        "assign_fresh_read_over_raw_txn": round3(fresh_rate / raw1),
        "assign_parallel_over_raw_txn_parallel": round3(par_rate / rawp),
    });

    // Scaling: a fresh /8 pool whose first blocks (from the host's start index) are owned
    // by other hosts; the store holds all earlier blocks too.
    let mut scaling = Vec::new();
    for (step, &n) in args.blocks.iter().enumerate() {
        store
            .delete(
                resource_key("IPPool", None, "bench").as_bytes(),
                store
                    .get(resource_key("IPPool", None, "bench").as_bytes())?
                    .map_or(0, |kv| kv.mod_revision),
            )
            .ok();
        for p in 0..step {
            let key = resource_key("IPPool", None, &format!("scale-{p}"));
            if let Some(kv) = store.get(key.as_bytes())? {
                store.delete(key.as_bytes(), kv.mod_revision)?;
            }
        }
        let base = 20 + step as u8;
        let host = format!("scale-{tag}-{n}");
        populate(&*store, base, 0, n)?;
        add_pool(
            &*store,
            &format!("scale-{step}"),
            &format!("{base}.0.0.0/8"),
        )?;
        let total_blocks = store
            .range(
                keys::BLOCK_PREFIX.as_bytes(),
                calico_datastore::prefix_end(keys::BLOCK_PREFIX.as_bytes()).as_deref(),
                0,
            )?
            .kvs
            .len();
        let host_ref = &host;
        let ipam = &ipam;
        // A new host every 64 allocations: one claim (with its gap search) per block.
        let mut case = measure("assign_with_claims", &counted, budget, |i| {
            ipam.auto_assign(&request(
                &format!("{host_ref}-{}", i / 64),
                format!("s{n}-{i}"),
            ))?;
            Ok(())
        })?;
        // The hot path alone: assign and release on one host, no claims.
        let steady = measure("assign_release", &counted, budget, |i| {
            let h = format!("sr{n}-{i}");
            ipam.auto_assign(&request(host_ref, h.clone()))?;
            ipam.release_by_handle(&h)?;
            Ok(())
        })?;
        case["assign_release_ops_per_sec"] = steady["ops_per_sec"].clone();
        case["assign_release_round_trips_per_op"] = steady["round_trips_per_op"].clone();
        case["blocks_of_other_hosts_in_pool"] = json!(n);
        case["blocks_in_store"] = json!(total_blocks);
        scaling.push(case);
    }
    Ok(json!({"cases": cases, "baselines": baselines, "scaling": scaling}))
}

fn run() -> Result<Value, Box<dyn Error>> {
    let args = parse_args()?;
    let mut backends = Vec::new();
    let mut skipped = Vec::new();
    for b in &args.backends {
        match b.as_str() {
            "memory" => {
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let mut v = bench(store, &args, "memory")?;
                v["backend"] = json!("memory");
                backends.push(v);
            }
            "file" => {
                let path =
                    std::env::temp_dir().join(format!("ipambench-{}.db", std::process::id()));
                let result = FileStore::open(&path)
                    .map_err(|e| -> Box<dyn Error> { Box::new(e) })
                    .and_then(|s| bench(Arc::new(s), &args, "file"));
                let _ = std::fs::remove_file(&path);
                let mut lock = path.into_os_string();
                lock.push(".lock");
                let _ = std::fs::remove_file(lock);
                let mut v = result?;
                v["backend"] = json!("file");
                backends.push(v);
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
                let store: Arc<dyn Store> = Arc::from(calico_datastore_etcd::open_store(&url)?);
                let mut v = bench(store, &args, "etcd")?;
                v["backend"] = json!("etcd");
                v["server"] = json!(if server.is_some() {
                    "started by ipambench (1 member, loopback)"
                } else {
                    "given"
                });
                backends.push(v);
                drop(server);
            }
            other => return Err(format!("unknown backend {other:?}").into()),
        }
    }
    Ok(
        json!({"tool": "ipambench", "seconds_per_case": args.seconds, "threads": args.threads, "backends": backends, "skipped": skipped}),
    )
}

fn main() {
    match run() {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        ),
        Err(e) => {
            eprintln!("ipambench: {e}");
            std::process::exit(2);
        }
    }
}
