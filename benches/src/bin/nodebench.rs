//! The node agent at scale, on a real etcd and a real kernel: a generated cluster of N pods
//! (100 of them on the measured node) and P policies is written to an etcd started for the
//! run; one agent (`calico node run --no-bgp`, the real binary) programs a network namespace
//! made for the run. Everything (etcd, the agent, the writer) runs inside that namespace.
//!
//! Measured, printed as one JSON object:
//! - **cold start**: from starting the agent until its first apply covered the last revision
//!   written (list, decode, compile, first kernel apply), and the agent's peak RSS;
//! - **change latency** while a writer sustains `--rate` updates per second for `--seconds`
//!   (pod label changes on other nodes, which move IP-set members, and policy rule changes):
//!   from each etcd commit until the agent reports that revision applied to the kernel
//!   (`calico_node_applied_revision` on its metrics endpoint, polled every half millisecond);
//!   p50/p90/p99/max, and the agent's CPU time per update (the poller's scrapes every
//!   half millisecond are part of it).
//!
//! The agent's own time per change, without etcd and the scrapes (the same cluster through
//! its calculation and kernel writer in-process, IP-set member changes measured alone), is
//! `calcbench`'s.
//!
//! ```text
//! sudo nodebench [--pods 100000] [--policies 2000] [--rate 1000] [--seconds 60] [--dense]
//!                [--calico target/release/calico] [--agent-log FILE]
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calico_benches::node_scale::{NODE, cluster, update};
use calico_benches::{arg, quantiles};
use calico_datastore::{Store, TxnOp};
use calico_model::resources::Resource;
use serde_json::json;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn sh(args: &[&str]) -> Res<()> {
    let o = Command::new(args[0]).args(&args[1..]).output()?;
    if !o.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok(())
}

fn value(r: &Resource) -> Res<Vec<u8>> {
    Ok(serde_json::to_vec(r)?)
}

/// Writes `objects` in transactions of 100 puts; returns the last revision.
fn bulk_write(store: &dyn Store, objects: &[Resource]) -> Res<u64> {
    let mut rev = 0;
    for chunk in objects.chunks(100) {
        let mut ops = Vec::with_capacity(chunk.len());
        for r in chunk {
            ops.push(TxnOp::Put {
                key: calico_ipam::resources::key_of(r).into_bytes(),
                value: value(r)?,
            });
        }
        rev = store.txn(&[], &ops)?.revision;
    }
    Ok(rev)
}

/// The agent's `calico_node_applied_revision` (its metrics endpoint on loopback).
fn applied_revision(port: u16) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    calico_node::Metrics::applied_revision_in(&out)
}

/// utime + stime of `pid`, seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

struct Etcd(Child, PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn start_etcd(ns: &str, dir: &std::path::Path) -> Res<Etcd> {
    let etcd = calico_datastore_etcd::testkit::etcd_binary().ok_or("etcd is not installed")?;
    let data = dir.join("etcd");
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(etcd)
        .args(["--name", "bench", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:23790",
            "--advertise-client-urls",
            "http://127.0.0.1:23790",
            "--listen-peer-urls",
            "http://127.0.0.1:23800",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23800",
            "--initial-cluster",
            "bench=http://127.0.0.1:23800",
            "--quota-backend-bytes",
            "8589934592",
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Etcd(child, data))
}

fn run() -> Res<serde_json::Value> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "nodebench [--pods N] [--policies N] [--rate R] [--seconds S] [--dense] [--calico PATH] [--agent-log FILE]"
        );
        return Ok(json!(null));
    }
    let pods = arg(&args, "--pods", 100_000)?;
    let policies = arg(&args, "--policies", 2_000)?;
    let rate = arg(&args, "--rate", 1_000)?.max(1);
    let seconds = arg(&args, "--seconds", 60)?;
    let narrow = !args.iter().any(|a| a == "--dense");
    let calico = calico_benches::calico_binary(&args)?;

    let t = Instant::now();
    let objects = cluster(pods, policies, narrow);
    let generate_ms = t.elapsed().as_secs_f64() * 1e3;

    let name = format!("calico-nodebench-{}", std::process::id());
    let _ = Command::new("ip")
        .args(["netns", "del", &name])
        .stderr(Stdio::null())
        .status();
    sh(&["ip", "netns", "add", &name])?;
    let ns = Ns(name.clone());
    sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"])?;
    sh(&[
        "ip", "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ])?;
    sh(&[
        "ip",
        "-n",
        &ns.0,
        "addr",
        "add",
        "10.0.0.1/24",
        "dev",
        "eth0",
    ])?;
    sh(&["ip", "-n", &ns.0, "link", "set", "eth0", "up"])?;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let _dir_guard = DirGuard(dir.clone());
    let _etcd = start_etcd(&ns.0, &dir)?;
    let url = "etcd://127.0.0.1:23790".to_owned();
    let handle = calico_dataplane::netns::Netns::named(&ns.0)?;

    // Everything that talks to etcd or the agent runs inside the namespace.
    let result = handle.run(|| -> Res<serde_json::Value> {
        let store: Arc<dyn Store> = {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match calico_datastore_etcd::open_store(&url) {
                    Ok(s) if s.revision().is_ok() => break Arc::from(s),
                    _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Ok(s) => return Err(format!("etcd: {:?}", s.revision().err()).into()),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let t = Instant::now();
        let last = bulk_write(&*store, &objects)?;
        let write_s = t.elapsed().as_secs_f64();

        // Cold start.
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let port = 29091;
        let t = Instant::now();
        let child = Command::new(&calico)
            .args(["--store", &url, "node", "run", "--node", NODE, "--no-bgp", "--state-dir"])
            .arg(dir.join("state"))
            .args(["--metrics-port", &port.to_string(), "--health-port", "29099"])
            .env("FELIX_PROMETHEUSMETRICSENABLED", "true")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let agent = Agent(child);
        loop {
            if applied_revision(port).is_some_and(|r| r >= last) {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                return Err("the agent did not apply within 600 s (see agent.log)".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let cold_start_s = t.elapsed().as_secs_f64();
        let rss_start_kib = calico_node::memory::kib(Some(pid), calico_node::memory::Memory::PeakResident);

        // Sustained updates.
        let polled: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let polled = polled.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(r) = applied_revision(port)
                        && r != last
                    {
                        last = r;
                        if let Ok(mut p) = polled.lock() {
                            p.push((Instant::now(), r));
                        }
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        };
        let cpu0 = cpu_seconds(pid);
        let pod_objects: Vec<&Resource> =
            objects.iter().filter(|r| matches!(r, Resource::Pod(p) if p.spec.node_name != NODE)).collect();
        let mut commits: Vec<(Instant, u64)> = Vec::new();
        let total = rate * seconds;
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let r = update(i, &pod_objects, policies, narrow)
                .ok_or("generated policy does not load")?;
            let (key, val) = (calico_ipam::resources::key_of(&r), value(&r)?);
            let rev = store.put(key.as_bytes(), &val)?;
            commits.push((Instant::now(), rev));
        }
        let writer_s = start.elapsed().as_secs_f64();
        let final_rev = commits.last().map_or(last, |c| c.1);
        let deadline = Instant::now() + Duration::from_secs(120);
        while applied_revision(port).is_none_or(|r| r < final_rev) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let _ = poller.join();
        if let Some(r) = applied_revision(port)
            && let Ok(mut p) = polled.lock()
        {
            p.push((Instant::now(), r));
        }
        let cpu1 = cpu_seconds(pid);
        let polled = polled.lock().map(|p| p.clone()).unwrap_or_default();
        let mut lat = Vec::with_capacity(commits.len());
        let mut missing = 0;
        for (at, rev) in &commits {
            match polled.iter().find(|(_, r)| r >= rev) {
                Some((seen, _)) => lat.push(seen.saturating_duration_since(*at).as_secs_f64() * 1e3),
                None => missing += 1,
            }
        }
        let rss_kib = calico_node::memory::kib(Some(pid), calico_node::memory::Memory::PeakResident);
        drop(agent);
        Ok(json!({
            "pods": pods, "policies": policies, "selectors": if narrow { "narrow" } else { "dense" }, "pods_on_node": pods.div_ceil((pods / 100).max(1)),
            "generate_ms": generate_ms.round(),
            "etcd_write_s": (write_s * 100.0).round() / 100.0,
            "cold_start_s": (cold_start_s * 1000.0).round() / 1000.0,
            "agent_peak_rss_mib_after_start": rss_start_kib.map(|k| k / 1024),
            "agent_peak_rss_mib": rss_kib.map(|k| k / 1024),
            "updates": commits.len(),
            "update_rate_achieved": (commits.len() as f64 / writer_s).round(),
            "latency": quantiles(lat),
            "not_applied": missing,
            "agent_cpu_ms_per_update": match (cpu0, cpu1) {
                (Some(a), Some(b)) if !commits.is_empty() => json!(((b - a) * 1000.0 / commits.len() as f64 * 1000.0).round() / 1000.0),
                _ => json!(null),
            },
        }))
    });
    if let Some(keep) = args
        .iter()
        .position(|a| a == "--agent-log")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::copy(dir.join("agent.log"), keep)?;
    }
    result?
}

fn main() {
    match run() {
        Ok(v) if !v.is_null() => println!("{v}"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("nodebench: {e}");
            std::process::exit(1);
        }
    }
}
