//! Several processes on one store, a SIGKILL in the middle of allocating, and a 3-member
//! etcd cluster losing its leader while two allocators run. The child processes are this
//! test binary re-executed on `child_allocator` with the store in the environment.
//! Without etcd the etcd tests print that they were NOT run (and fail if
//! `CALICO_REQUIRE_ETCD=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_datastore::{BackoffPolicy, Store};
use calico_datastore_etcd::open_store;
use calico_datastore_etcd::testkit::{EtcdCluster, etcd_or_skip};
use calico_ipam::AutoAssignRequest;
use calico_ipam::Ipam;
use calico_ipam::testkit::calico_double;
use calico_model::resources::ipam::AllowedUse;
use serde_json::json;

fn add_pool(store: &dyn Store, name: &str, spec: serde_json::Value) {
    let v = json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name}, "spec": spec});
    store
        .put(
            calico_ipam::resources::resource_key("IPPool", None, name).as_bytes(),
            v.to_string().as_bytes(),
        )
        .unwrap();
}

fn req(host: &str, n4: usize, handle: Option<&str>) -> AutoAssignRequest {
    AutoAssignRequest {
        num4: n4,
        handle: handle.map(str::to_owned),
        host: host.to_owned(),
        intended_use: AllowedUse::Workload,
        ..Default::default()
    }
}

fn checker(store: Arc<dyn Store>) -> Ipam {
    Ipam::new(store).with_seed(1)
}

/// Asserts `check` reports nothing.
fn assert_clean(ipam: &Ipam) {
    let r = calico_ipam::check::check(ipam).unwrap();
    let lines: Vec<String> = r.findings.iter().map(ToString::to_string).collect();
    assert!(lines.is_empty(), "check findings: {lines:#?}");
}

const CHILD_STORE: &str = "CALICO_IPAM_CHILD_STORE";

/// The child: allocates (and, with CALICO_IPAM_CHILD_RELEASE=1, releases) in a loop,
/// printing every address it holds at the end of each step as `+ADDR` / `-ADDR` lines.
/// Does nothing unless started by a parent test.
#[test]
fn child_allocator() {
    let Ok(url) = std::env::var(CHILD_STORE) else {
        return;
    };
    let host = std::env::var("CALICO_IPAM_CHILD_HOST").unwrap();
    let id = std::process::id();
    let ops: u64 = std::env::var("CALICO_IPAM_CHILD_OPS")
        .unwrap()
        .parse()
        .unwrap();
    let release = std::env::var("CALICO_IPAM_CHILD_RELEASE").as_deref() == Ok("1");
    let store: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
    let ipam = Ipam::new(store)
        .with_seed(std::process::id().into())
        .with_backoff(BackoffPolicy {
            max_retries: 10_000,
            deadline: Duration::from_secs(120),
            ..BackoffPolicy::DEFAULT
        });
    let mut out = std::io::stdout().lock();
    // The harness's "test child_allocator ... " has no newline yet.
    writeln!(out).unwrap();
    let mut i = 0u64;
    while ops == 0 || i < ops {
        let handle = format!("{host}-{id}-{i}");
        let got = ipam
            .auto_assign(&req(&host, 1 + (i % 7) as usize, Some(&handle)))
            .unwrap();
        for a in &got.v4 {
            writeln!(out, "+{}", a.addr()).unwrap();
        }
        if release && i % 3 == 2 {
            for a in ipam.release_by_handle(&handle).unwrap() {
                writeln!(out, "-{a}").unwrap();
            }
        }
        out.flush().unwrap();
        i += 1;
    }
}

fn spawn_child(url: &str, host: &str, ops: u64, release: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_allocator",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STORE, url)
        .env("CALICO_IPAM_CHILD_HOST", host)
        .env("CALICO_IPAM_CHILD_OPS", ops.to_string())
        .env("CALICO_IPAM_CHILD_RELEASE", if release { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The addresses a child holds according to its output (`+`/`-` lines).
fn held_by(child: &mut Child) -> Vec<IpAddr> {
    let mut held = Vec::new();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix('+') {
            held.push(a.parse().unwrap());
        } else if let Some(a) = line.strip_prefix('-') {
            let a: IpAddr = a.parse().unwrap();
            held.retain(|h| *h != a);
        }
    }
    held
}

fn setup(url: &str) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::from(open_store(url).unwrap());
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/16", "blockSize": 26}),
    );
    store
}

fn processes_allocate_distinct_addresses(url: &str, procs: usize, ops: u64) {
    let store = setup(url);
    let mut children: Vec<Child> = (0..procs)
        .map(|i| spawn_child(url, &format!("host-{}", i % 2), ops, true))
        .collect();
    let mut all = Vec::new();
    for c in &mut children {
        all.extend(held_by(c));
        assert!(c.wait().unwrap().success());
    }
    let uniq: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(uniq.len(), all.len(), "an address is held by two processes");
    let ipam = checker(store);
    assert_clean(&ipam);
    let u = ipam.utilization(None).unwrap();
    assert_eq!(
        u.pools[0].in_use,
        all.len() as u128,
        "the store holds exactly what the processes hold"
    );
}

fn sigkill_mid_allocation_leaves_a_clean_store(url: &str) {
    let store = setup(url);
    let mut child = spawn_child(url, "victim", 0, true);
    // Wait until it has allocated something, then a little more, and kill it.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut seen = 0;
    while seen < 50 && started.elapsed() < Duration::from_secs(60) {
        if lines.next().is_none() {
            break;
        }
        seen += 1;
    }
    assert!(seen >= 50, "the child allocated too little");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ipam = checker(store);
    assert_clean(&ipam);
    assert!(ipam.utilization(None).unwrap().pools[0].in_use > 0);
}

fn scratch_file(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("calico-ipam-proc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("file:{}", dir.join("ipam.db").display());
    (dir, url)
}

#[test]
fn processes_on_one_file_store() {
    let (dir, url) = scratch_file("procs");
    processes_allocate_distinct_addresses(&url, 4, 40);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigkill_on_file_store() {
    let (dir, url) = scratch_file("kill");
    sigkill_mid_allocation_leaves_a_clean_store(&url);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn processes_on_etcd() {
    if etcd_or_skip("processes_on_etcd").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    processes_allocate_distinct_addresses(&server.url(), 4, 40);
}

#[test]
fn sigkill_on_etcd() {
    if etcd_or_skip("sigkill_on_etcd").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    sigkill_mid_allocation_leaves_a_clean_store(&server.url());
}

#[test]
fn etcd_leader_killed_while_two_allocators_run() {
    if etcd_or_skip("etcd_leader_killed_while_two_allocators_run").is_none() {
        return;
    }
    let mut cluster = EtcdCluster::start(3).unwrap();
    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .expect("no leader");
    let url = cluster.url();
    let store = setup(&url);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<IpAddr>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let url = url.clone();
                let done = &done;
                s.spawn(move || {
                    let store: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
                    let ipam = Ipam::new(store).with_seed(t).with_backoff(BackoffPolicy {
                        max_retries: 10_000,
                        deadline: Duration::from_secs(120),
                        ..BackoffPolicy::DEFAULT
                    });
                    let mut mine = Vec::new();
                    for i in 0..150 {
                        let got = ipam
                            .auto_assign(&req(&format!("h{t}"), 1, Some(&format!("h{t}-{i}"))))
                            .unwrap();
                        mine.extend(got.v4.iter().map(|a| a.addr()));
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    mine
                })
            })
            .collect();
        while done.load(std::sync::atomic::Ordering::SeqCst) < 20 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let current = cluster.leader().unwrap_or(leader);
        cluster.kill(current);
        let at = done.load(std::sync::atomic::Ordering::SeqCst);
        eprintln!("killed leader m{current} after {at} allocations");
        assert!(
            at < 300,
            "the allocators finished before the leader was killed"
        );
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<IpAddr> = results.into_iter().flatten().collect();
    assert_eq!(all.len(), 300);
    let uniq: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(uniq.len(), 300, "every address distinct");
    let ipam = checker(store);
    assert_clean(&ipam);
    // No allocation was applied twice after an unknown outcome.
    assert_eq!(ipam.utilization(None).unwrap().pools[0].in_use, 300);
}

#[test]
fn two_allocators_racing_on_one_host_on_etcd() {
    // The optimistic one-round-trip path on etcd (key and range compares): two allocators
    // with their own mirrors assign for the same host at once; every address is handed out
    // once, and once alone an allocator needs one transaction per assignment.
    if etcd_or_skip("two_allocators_racing_on_one_host_on_etcd").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let url = server.url();
    let store = setup(&url);
    let results: Vec<Vec<IpAddr>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2u64)
            .map(|t| {
                let url = url.clone();
                s.spawn(move || {
                    let store: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
                    let ipam = Ipam::new(store).with_seed(t).with_backoff(BackoffPolicy {
                        max_retries: 10_000,
                        deadline: Duration::from_secs(60),
                        ..BackoffPolicy::DEFAULT
                    });
                    (0..100)
                        .map(|i| {
                            ipam.auto_assign(&req("same", 1, Some(&format!("s{t}-{i}"))))
                                .unwrap()
                                .v4[0]
                                .addr()
                        })
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<IpAddr> = results.into_iter().flatten().collect();
    let distinct: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 200, "an address was handed out twice");
    let ipam = checker(store.clone());
    assert_clean(&ipam);
    let counting = Arc::new(calico_datastore::CountingStore::new(store));
    let alone = Ipam::new(counting.clone() as Arc<dyn Store>);
    alone.auto_assign(&req("same", 1, Some("w1"))).unwrap();
    counting.reset();
    for i in 0..5 {
        alone
            .auto_assign(&req("same", 1, Some(&format!("alone-{i}"))))
            .unwrap();
    }
    let c = counting.reset();
    assert_eq!((c.reads, c.txns), (0, 5), "{c:?}");
    assert_clean(&ipam);
}

#[test]
fn a_full_block_freed_by_another_client_is_used_instead_of_a_claim_on_etcd() {
    // The optimistic path drops the compares of the host's blocks it skipped as full; a
    // block another client freed meanwhile must still be used before any claim.
    if etcd_or_skip("a_full_block_freed_by_another_client_is_used_instead_of_a_claim_on_etcd")
        .is_none()
    {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let url = server.url();
    let store: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
    add_pool(
        &*store,
        "small",
        json!({"cidr": "10.9.0.0/26", "blockSize": 30}),
    );
    let affinities = |store: &dyn Store| {
        store
            .range(
                calico_ipam::keys::HOST_AFFINITY_PREFIX.as_bytes(),
                calico_datastore::prefix_end(calico_ipam::keys::HOST_AFFINITY_PREFIX.as_bytes())
                    .as_deref(),
                0,
            )
            .unwrap()
            .kvs
            .len()
    };
    let ipam1 = Ipam::new(store.clone()).with_seed(1);
    let other: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
    let ipam2 = Ipam::new(other).with_seed(2);
    let mut held = Vec::new();
    for i in 0..12 {
        let r = ipam1
            .auto_assign(&req("h", 1, Some(&format!("w{i}"))))
            .unwrap();
        held.push(r.v4[0].addr());
    }
    // Three full blocks; the last one filled by the last allocation.
    assert_eq!(affinities(&*store), 3);
    let freed = held[2];
    let released = ipam2
        .release_ips(&[calico_ipam::ReleaseItem::addr(freed)])
        .unwrap();
    assert_eq!(released.released, vec![freed]);
    let r = ipam1.auto_assign(&req("h", 1, Some("w12"))).unwrap();
    assert_eq!(r.v4[0].addr(), freed, "{r:?}");
    assert_eq!(affinities(&*store), 3, "no block was claimed");
    let r = ipam1.auto_assign(&req("h", 1, Some("w13"))).unwrap();
    assert_eq!(affinities(&*store), 4, "{r:?}");
    assert_clean(&checker(store));
}

// ---------------------------------------------------------------------------------------
// Calico's own allocator (`calico_ipam::testkit::calico_double`, key by key as Calico's IPAM
// writes) beside ours. A crash between its writes leaves what Calico leaves; our allocator's
// writes are one transaction each and leave nothing.

/// The child running Calico's allocator: like `child_allocator`, one address per step.
#[test]
fn child_calico_double() {
    let Ok(url) = std::env::var("CALICO_DOUBLE_CHILD_STORE") else {
        return;
    };
    let host = std::env::var("CALICO_IPAM_CHILD_HOST").unwrap();
    let ops: u64 = std::env::var("CALICO_IPAM_CHILD_OPS")
        .unwrap()
        .parse()
        .unwrap();
    let store: Arc<dyn Store> = Arc::from(open_store(&url).unwrap());
    let pool: ipnet::Ipv4Net = "10.0.0.0/16".parse().unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out).unwrap();
    let mut i = 0u64;
    while ops == 0 || i < ops {
        let handle = format!("calico-{}-{i}", std::process::id());
        let a = calico_double::assign(&*store, &pool, 26, &host, &handle);
        writeln!(out, "+{a}").unwrap();
        if i % 3 == 2 {
            for a in calico_double::release(&*store, &handle) {
                writeln!(out, "-{a}").unwrap();
            }
        }
        out.flush().unwrap();
        i += 1;
    }
}

fn spawn_double(url: &str, host: &str, ops: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_calico_double",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CALICO_DOUBLE_CHILD_STORE", url)
        .env("CALICO_IPAM_CHILD_HOST", host)
        .env("CALICO_IPAM_CHILD_OPS", ops.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn calico_and_us_in_several_processes_on_etcd_never_collide() {
    if etcd_or_skip("calico_and_us_in_several_processes_on_etcd_never_collide").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let url = server.url();
    let store = setup(&url);
    // Two of ours and two of Calico's, sharing host-0's blocks.
    let mut children = vec![
        spawn_child(&url, "host-0", 30, true),
        spawn_double(&url, "host-0", 40),
        spawn_child(&url, "host-1", 30, true),
        spawn_double(&url, "host-0", 40),
    ];
    let mut all = Vec::new();
    for c in &mut children {
        all.extend(held_by(c));
        assert!(c.wait().unwrap().success());
    }
    let uniq: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(
        uniq.len(),
        all.len(),
        "an address is held by two allocators"
    );
    let blocks = store
        .range(
            b"/calico/ipam/v2/assignment/",
            calico_datastore::prefix_end(b"/calico/ipam/v2/assignment/").as_deref(),
            0,
        )
        .unwrap()
        .kvs
        .len();
    assert!(
        blocks <= 8,
        "{blocks} blocks for about {} addresses: an allocator claims instead of using its blocks",
        all.len()
    );
    let ipam = checker(store);
    assert_clean(&ipam);
    assert_eq!(
        ipam.utilization(None).unwrap().pools[0].in_use,
        all.len() as u128,
        "the store holds exactly what the allocators hold"
    );
}

#[test]
fn sigkill_of_either_side_leaves_nothing_of_ours_behind_on_etcd() {
    if etcd_or_skip("sigkill_of_either_side_leaves_nothing_of_ours_behind_on_etcd").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let url = server.url();
    let store = setup(&url);
    for (round, victim_is_ours) in [true, false].into_iter().enumerate() {
        let host = format!("shared-host-{round}");
        let mut ours = spawn_child(&url, &host, 0, true);
        let mut theirs = spawn_double(&url, &host, 0);
        for child in [&mut ours, &mut theirs] {
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let mut seen = 0;
            while seen < 30 {
                assert!(lines.next().is_some(), "a child stopped early");
                seen += 1;
            }
            // Keep reading in the background so the child never blocks on its pipe.
            std::thread::spawn(move || for _ in lines {});
        }
        let (victim, other) = if victim_is_ours {
            (&mut ours, &mut theirs)
        } else {
            (&mut theirs, &mut ours)
        };
        victim.kill().unwrap(); // SIGKILL mid-run
        victim.wait().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        other.kill().unwrap();
        other.wait().unwrap();
    }
    // Whatever Calico's key-by-key writes left half done names its own handles; nothing of
    // ours (whose handles are `shared-host-<round>-<pid>-<n>`) is leaked or inconsistent.
    let ipam = checker(store);
    let report = calico_ipam::check::check(&ipam).unwrap();
    for f in &report.findings {
        assert!(
            f.subject.starts_with("calico-") || f.detail.contains("calico-"),
            "a finding about our allocations: {f}"
        );
    }
}
