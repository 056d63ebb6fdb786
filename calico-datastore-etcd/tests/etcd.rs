//! The etcd backend against real etcd servers started by the tests (see `testkit`).
//! Without etcd these tests print that they were NOT run (and fail if
//! `CALICO_REQUIRE_ETCD=1`).

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use calico_datastore::conformance::{self, check_logged_counter, logged_increment};
use calico_datastore::{BackoffPolicy, EtcdMember, Store, StoreError, StoreUrl};
use calico_datastore_etcd::testkit::{EtcdCluster, etcd_or_skip};
use calico_datastore_etcd::{EtcdOptions, EtcdStore, open_store};

fn members(url: &str) -> Vec<EtcdMember> {
    match StoreUrl::parse(url).unwrap() {
        StoreUrl::Etcd(m) => m,
        other => panic!("not an etcd URL: {other}"),
    }
}

#[test]
fn etcd_conforms() {
    if etcd_or_skip("etcd_conforms").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store = open_store(&server.url()).unwrap();
    assert_eq!(store.url(), server.url());
    conformance::run_all(&*store, "conf/");
}

#[test]
fn etcd_leases_conform() {
    if etcd_or_skip("etcd_leases_conform").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store = open_store(&server.url()).unwrap();
    conformance::check_leases(&*store, "lease/", Duration::from_secs(2));
}

#[test]
fn etcd_watches_conform() {
    if etcd_or_skip("etcd_watches_conform").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store = open_store(&server.url()).unwrap();
    conformance::run_watch(&*store, "w/");
}

#[test]
fn an_etcd_syncer_follows_and_a_watch_from_before_a_compaction_is_refused() {
    use calico_datastore::{SyncEvent, SyncOptions, SyncStatus, Syncer};
    use std::sync::Arc;
    if etcd_or_skip("an_etcd_syncer_follows_and_a_watch_from_before_a_compaction_is_refused")
        .is_none()
    {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store: Arc<dyn Store> = Arc::from(open_store(&server.url()).unwrap());
    store.put(b"/calico/a/same", b"1").unwrap();
    store.put(b"/calico/a/gone", b"1").unwrap();
    let mut syncer = Syncer::new(
        store.clone(),
        vec![b"/calico/a/".to_vec()],
        SyncOptions::default(),
    );
    let first = syncer.poll(Duration::from_secs(5));
    assert!(
        matches!(first.last(), Some(SyncEvent::Status(SyncStatus::InSync))),
        "{first:?}"
    );
    // The syncer follows etcd's watch: a delete (with its previous value) and a put.
    let gone = store.get(b"/calico/a/gone").unwrap().unwrap();
    store.delete(b"/calico/a/gone", gone.mod_revision).unwrap();
    store.put(b"/calico/a/new", b"2").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < deadline {
        for e in syncer.poll(Duration::from_millis(500)) {
            match e {
                SyncEvent::Put { kv } => {
                    seen.push(format!("put {}", String::from_utf8_lossy(&kv.key)))
                }
                SyncEvent::Delete { prev } => {
                    seen.push(format!("delete {}", String::from_utf8_lossy(&prev.key)))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(seen, ["delete /calico/a/gone", "put /calico/a/new"]);
    // A watch from before a compaction: Compacted, naming etcd's compaction revision.
    let now = store.revision().unwrap();
    store.compact(now).unwrap();
    match store.watch(b"/calico/a/", now - 2) {
        Err(StoreError::Compacted {
            available_from,
            requested,
            ..
        }) => {
            assert_eq!(requested, now - 2);
            assert_eq!(available_from, now);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a watch from a compacted revision was opened"),
    }
}

#[test]
fn etcd_fails_over_to_a_live_member() {
    if etcd_or_skip("etcd_fails_over_to_a_live_member").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    // The first member listed has nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!(
        "etcd://127.0.0.1:{dead_port},127.0.0.1:{}",
        server.client_port(0)
    );
    let store = EtcdStore::connect(&members(&url), EtcdOptions::default()).unwrap();
    let rev = store.create(b"fo/a", b"1").unwrap();
    assert_eq!(store.get(b"fo/a").unwrap().unwrap().mod_revision, rev);
    assert!(
        store
            .current_endpoint()
            .ends_with(&server.client_port(0).to_string())
    );
}

#[test]
fn etcd_unreachable_is_unavailable_not_a_hang() {
    // Needs no etcd: nothing listens on the port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let options = EtcdOptions {
        backoff: BackoffPolicy {
            deadline: Duration::from_millis(300),
            ..EtcdOptions::default().backoff
        },
        ..EtcdOptions::default()
    };
    let store = EtcdStore::connect(&members(&format!("etcd://127.0.0.1:{port}")), options).unwrap();
    let started = Instant::now();
    let err = store.get(b"x").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retriable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    // A transaction that could not be sent is Unavailable too (known not applied).
    let err = store.put(b"x", b"1").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.outcome_unknown());
}

#[derive(Default)]
struct Stats {
    retries: AtomicU64,
    done: AtomicU64,
}

#[test]
fn etcd_cluster_survives_leader_kill_during_cas_increments() {
    if etcd_or_skip("etcd_cluster_survives_leader_kill_during_cas_increments").is_none() {
        return;
    }
    let mut cluster = EtcdCluster::start(3).unwrap();
    let leader = cluster
        .wait_leader(Duration::from_secs(10))
        .expect("no leader");
    let url = cluster.url();
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        ..EtcdOptions::default()
    };
    // Two clients, each starting on a different member, one of them the leader.
    let mut m = members(&url);
    let a = EtcdStore::connect(&m, options.clone()).unwrap();
    m.rotate_left(leader);
    let b = EtcdStore::connect(&m, options).unwrap();
    let per_writer = 60usize;
    let stats = Stats::default();
    let prefix = "fault/";
    let killed = std::thread::scope(|s| {
        for (w, store) in [&a, &b].into_iter().enumerate() {
            let stats = &stats;
            s.spawn(move || {
                for i in 0..per_writer {
                    let retries =
                        logged_increment(store, prefix, w, i, Duration::from_secs(90)).unwrap();
                    stats
                        .retries
                        .fetch_add(u64::from(retries), Ordering::Relaxed);
                    stats.done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill the leader once both writers are under way.
        let started = Instant::now();
        while stats.done.load(Ordering::Relaxed) < 30 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "writers made no progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let current = cluster.leader().unwrap_or(leader);
        cluster.kill(current);
        eprintln!(
            "killed leader m{current} after {} increments",
            stats.done.load(Ordering::Relaxed)
        );
        current
    });
    assert_eq!(stats.done.load(Ordering::Relaxed), 2 * per_writer as u64);
    let new_leader = cluster.wait_leader(Duration::from_secs(30));
    assert!(new_leader.is_some(), "no new leader");
    eprintln!(
        "retries after conflicts or errors {}, new leader m{new_leader:?}; \
         client a {:?} now on {}, client b {:?} now on {}",
        stats.retries.load(Ordering::Relaxed),
        a.stats(),
        a.current_endpoint(),
        b.stats(),
        b.current_endpoint(),
    );
    // Client b started on the first leader; if that is the member killed, it failed over.
    if killed == leader {
        assert!(
            b.stats().retries > 0,
            "the client on the killed leader never retried"
        );
        assert!(
            !b.current_endpoint()
                .ends_with(&format!(":{}", cluster.client_port(killed)))
        );
    }
    assert_eq!(check_logged_counter(&a, prefix), 2 * per_writer as u64);
    assert_eq!(check_logged_counter(&b, prefix), 2 * per_writer as u64);

    // The killed member comes back on its data and catches up.
    cluster.restart(killed).unwrap();
    let only = format!("etcd://127.0.0.1:{}", cluster.client_port(killed));
    let c = EtcdStore::connect(&members(&only), EtcdOptions::default()).unwrap();
    assert_eq!(check_logged_counter(&c, prefix), 2 * per_writer as u64);
}

/// A quiet watch is asked for progress reports and stays open while etcd answers them: no
/// error after several silences, and the next change still arrives.
#[test]
fn a_quiet_watch_stays_open() {
    if etcd_or_skip("a_quiet_watch_stays_open").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store = open_store(&server.url()).unwrap();
    store.put(b"q/a", b"1").unwrap();
    let mut w = store.watch(b"q/", 0).unwrap();
    let start = Instant::now();
    // Longer than the silence before a progress request plus its answer time, twice over.
    while start.elapsed() < Duration::from_secs(22) {
        let got = w.next(Duration::from_millis(200));
        assert!(
            matches!(&got, Ok(v) if v.is_empty()),
            "after {:?}: {got:?}",
            start.elapsed()
        );
    }
    let rev = store.put(b"q/b", b"2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.is_empty() && Instant::now() < deadline {
        seen = w.next(Duration::from_millis(200)).unwrap();
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].revision(), rev);
}

/// A watch whose member stops answering (paused with SIGSTOP: the connection stays up but
/// nothing comes) is reported dead after the progress report goes unanswered, instead of
/// waiting forever.
#[test]
fn a_watch_on_a_silent_member_is_reported_dead() {
    if etcd_or_skip("a_watch_on_a_silent_member_is_reported_dead").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store = open_store(&server.url()).unwrap();
    let mut w = store.watch(b"s/", 0).unwrap();
    let pid = server.pid(0).expect("running");
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
    };
    assert!(signal("-STOP").success());
    let start = Instant::now();
    let outcome = loop {
        match w.next(Duration::from_millis(200)) {
            Ok(v) if v.is_empty() && start.elapsed() < Duration::from_secs(30) => continue,
            other => break other,
        }
    };
    assert!(signal("-CONT").success());
    let err = outcome.expect_err("a dead watch is an error");
    assert!(err.to_string().contains("stopped answering"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

/// etcd's grpc-proxy does not answer progress requests: a quiet watch through it is checked
/// with a read instead and stays open; the next change still arrives.
#[test]
fn a_quiet_watch_through_grpc_proxy_stays_open() {
    let Some(etcd) = etcd_or_skip("a_quiet_watch_through_grpc_proxy_stays_open") else {
        return;
    };
    let server = EtcdCluster::start_single().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut proxy = std::process::Command::new(etcd)
        .args(["grpc-proxy", "start", "--endpoints", &server.endpoints()])
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("etcd://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let store = loop {
        match open_store(&url) {
            Ok(s) if s.revision().is_ok() => break s,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => panic!("grpc-proxy on {url} did not answer"),
        }
    };
    let mut w = store.watch(b"p/", 0).unwrap();
    let start = Instant::now();
    let mut outcome = Ok(());
    while start.elapsed() < Duration::from_secs(14) {
        match w.next(Duration::from_millis(200)) {
            Ok(v) if v.is_empty() => {}
            other => {
                outcome = Err(format!("after {:?}: {other:?}", start.elapsed()));
                break;
            }
        }
    }
    let rev = outcome
        .as_ref()
        .ok()
        .map(|_| store.put(b"p/x", b"1").unwrap());
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while rev.is_some() && seen.is_empty() && Instant::now() < until {
        seen = w.next(Duration::from_millis(200)).unwrap();
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(Some(seen[0].revision()), rev);
}
