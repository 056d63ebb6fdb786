//! Many node agents on one etcd through `etcd grpc-proxy` (which ships with etcd and
//! coalesces identical watches): N agents in sync-only mode (`calico node run --no-dataplane
//! --no-bgp`, the real binary, no kernel or BIRD) follow a cluster while a writer changes it.
//!
//! Printed as one JSON object: how many agents reached in-sync and how long that took, the
//! watchers etcd itself holds (`etcd_debugging_mvcc_watcher_total`, from etcd's metrics)
//! against the agents' number, the lag from each write until every agent applied it
//! (`calico_node_applied_revision`), and the agents' total resident memory.
//!
//! ```text
//! scalebench [--agents 200] [--pods 2000] [--updates 50] [--calico target/release/calico]
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_benches::arg;
use calico_benches::policy_scale::{PolicyScale, policy_cluster};
use calico_datastore::{Store, TxnOp};
use calico_datastore_etcd::testkit::EtcdCluster;
use serde_json::json;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn run() -> Res<serde_json::Value> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("scalebench [--agents N] [--pods N] [--updates N] [--calico PATH]");
        return Ok(json!(null));
    }
    let agents = arg(&args, "--agents", 200)?;
    let pods = arg(&args, "--pods", 2000)?;
    let updates = arg(&args, "--updates", 50)?;
    let calico = calico_benches::calico_binary(&args)?;
    let etcd_bin = calico_datastore_etcd::testkit::etcd_binary().ok_or("etcd is not installed")?;
    let etcd = EtcdCluster::start_single()?;
    let url = etcd.url();
    let client = url
        .trim_start_matches("etcd://")
        .split(',')
        .next()
        .ok_or("no endpoint")?
        .to_owned();
    let client_port: u16 = client.rsplit(':').next().ok_or("no port")?.parse()?;
    let proxy_port = 23890u16;
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&etcd_bin)
            .args(["grpc-proxy", "start", "--endpoints", &client])
            .args(["--listen-addr", &format!("127.0.0.1:{proxy_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let store: Box<dyn Store> = calico_datastore_etcd::open_store(&url)?;
    let set = policy_cluster(PolicyScale {
        namespaces: 20,
        pods,
        policies: pods / 10,
    });
    let objects: Vec<_> = set.objects.into_iter().map(|o| o.resource).collect();
    for chunk in objects.chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|r| TxnOp::Put {
                key: calico_ipam::resources::key_of(r).into_bytes(),
                value: serde_json::to_vec(r).unwrap_or_default(),
            })
            .collect();
        store.txn(&[], &ops)?;
    }
    let last = store.revision()?;

    let dir = std::env::temp_dir().join(format!("calico-scalebench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let proxy_url = format!("etcd://127.0.0.1:{proxy_port}");
    let t = Instant::now();
    let mut pids = Vec::new();
    for i in 0..agents {
        let port = 30000 + 2 * i as u16;
        let child = Command::new(&calico)
            .args([
                "--store",
                &proxy_url,
                "node",
                "run",
                "--no-dataplane",
                "--no-bgp",
            ])
            .args(["--node", &format!("node-{}", i % 100)])
            .arg("--state-dir")
            .arg(dir.join(format!("a{i}")))
            .args(["--health-port", &(port + 1).to_string()])
            .args(["--metrics-port", &port.to_string()])
            .env("FELIX_PROMETHEUSMETRICSENABLED", "true")
            .env("FELIX_REPORTINGINTERVALSECS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        pids.push(child.id());
        procs.0.push(child);
    }
    let applied = |i: usize| -> Option<u64> {
        let text = http_get(30000 + 2 * i as u16, "/metrics")?;
        calico_node::Metrics::applied_revision_in(&text)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut in_sync = 0;
    while Instant::now() < deadline {
        in_sync = (0..agents)
            .filter(|&i| applied(i).is_some_and(|r| r >= last))
            .count();
        if in_sync == agents {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let all_in_sync_s = t.elapsed().as_secs_f64();
    let etcd_metrics = http_get(client_port, "/metrics").unwrap_or_default();
    let watchers = metric(&etcd_metrics, "etcd_debugging_mvcc_watcher_total");
    let streams = metric(&etcd_metrics, "etcd_debugging_mvcc_watch_stream_total");

    // Lag: one pod label change at a time, until every agent applied it.
    let mut lags = Vec::new();
    let pod = objects
        .iter()
        .find(|r| matches!(r, calico_model::resources::Resource::Pod(_)))
        .cloned()
        .ok_or("no pod")?;
    for u in 0..updates {
        let mut r = pod.clone();
        if let calico_model::resources::Resource::Pod(p) = &mut r {
            p.metadata.labels.insert("version".into(), format!("u{u}"));
        }
        let t = Instant::now();
        let rev = store.put(
            calico_ipam::resources::key_of(&r).as_bytes(),
            &serde_json::to_vec(&r)?,
        )?;
        // Each agent is polled by one of 16 threads; the lag of the write is that of the
        // last agent to apply it.
        let slowest = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..16)
                .map(|k| {
                    let applied = &applied;
                    sc.spawn(move || {
                        let mut worst = 0f64;
                        for i in (k..agents).step_by(16) {
                            while applied(i).is_none_or(|r| r < rev)
                                && t.elapsed() < Duration::from_secs(30)
                            {
                            }
                            worst = worst.max(t.elapsed().as_secs_f64() * 1e3);
                        }
                        worst
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .fold(0f64, f64::max)
        });
        lags.push(slowest);
    }
    lags.sort_by(f64::total_cmp);
    let q = |f: f64| {
        lags.get(((lags.len() as f64 - 1.0) * f).round() as usize)
            .map(|v| (v * 10.0).round() / 10.0)
    };
    let rss: u64 = pids.iter().map(|&p| rss_kib(p)).sum();
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "agents": agents, "pods": pods, "policies": pods / 10,
        "agents_in_sync": in_sync, "all_in_sync_s": (all_in_sync_s * 10.0).round() / 10.0,
        "etcd_watchers": watchers, "etcd_watch_streams": streams,
        "lag_all_agents_ms": {"n": lags.len(), "p50": q(0.5), "p90": q(0.9), "max": q(1.0)},
        "agents_rss_mib_total": rss / 1024,
    }))
}

fn main() {
    match run() {
        Ok(v) if !v.is_null() => println!("{v}"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("scalebench: {e}");
            std::process::exit(1);
        }
    }
}
