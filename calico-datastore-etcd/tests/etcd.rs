//! The etcd backend against real etcd servers started by the tests (see `testkit`).
//! Without etcd these tests print that they were NOT run (and fail if
//! `CALICO_REQUIRE_ETCD=1`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use calico_datastore::conformance::{self, parse_counter};
use calico_datastore::{
    BackoffPolicy, Compare, EtcdMember, Store, StoreError, StoreUrl, TxnOp, prefix_end,
};
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
fn etcd_fails_over_to_a_live_member() {
    if etcd_or_skip("etcd_fails_over_to_a_live_member").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    // The first member listed has nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!("etcd://127.0.0.1:{dead_port},127.0.0.1:{}", server.client_port(0));
    let store = EtcdStore::connect(&members(&url), EtcdOptions::default()).unwrap();
    let rev = store.create(b"fo/a", b"1").unwrap();
    assert_eq!(store.get(b"fo/a").unwrap().unwrap().mod_revision, rev);
    assert!(store.current_endpoint().ends_with(&server.client_port(0).to_string()));
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
    let store =
        EtcdStore::connect(&members(&format!("etcd://127.0.0.1:{port}")), options).unwrap();
    let started = Instant::now();
    let err = store.get(b"x").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    // A transaction that could not be sent is Unavailable too (known not applied).
    let err = store.put(b"x", b"1").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.outcome_unknown());
}

/// One counter increment whose transaction also creates `log/<writer>/<seq>`, so that an
/// attempt whose outcome is unknown can be resolved by reading the log key.
fn logged_increment(store: &dyn Store, prefix: &str, writer: usize, seq: usize, stats: &Stats) {
    let counter = format!("{prefix}counter").into_bytes();
    let log = format!("{prefix}log/{writer}/{seq:05}").into_bytes();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(90), "increment {writer}/{seq} stuck");
        let (_, kvs) = match store.get_many(&[&counter, &log]) {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                eprintln!("writer {writer}: {e}");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => panic!("read: {e}"),
        };
        if kvs[1].is_some() {
            return; // an earlier attempt was applied after all
        }
        let cur = kvs[0].clone();
        let next = cur.as_ref().map_or(0, |kv| parse_counter(&kv.value)) + 1;
        let result = store.txn(
            &[
                Compare::unchanged(counter.clone(), cur.map(|kv| kv.mod_revision)),
                Compare::absent(log.clone()),
            ],
            &[
                TxnOp::put(counter.clone(), next.to_string()),
                TxnOp::put(log.clone(), next.to_string()),
            ],
        );
        match result {
            Ok(_) => return,
            Err(e) if e.is_conflict() => {
                stats.conflicts.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200 * (writer as u64 + 1)));
            }
            Err(e) if e.is_retriable() => {
                // Unknown outcome or unavailable: the next round reads the log key.
                eprintln!("writer {writer}: {e}");
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("txn: {e}"),
        }
    }
}

#[derive(Default)]
struct Stats {
    conflicts: AtomicU64,
    errors: AtomicU64,
    done: AtomicU64,
}

fn check_log(store: &dyn Store, prefix: &str, total: u64) {
    let counter = store.get(format!("{prefix}counter").as_bytes()).unwrap().unwrap();
    assert_eq!(parse_counter(&counter.value), total, "lost or doubled updates");
    let log_prefix = format!("{prefix}log/").into_bytes();
    let logs = store.range(&log_prefix, prefix_end(&log_prefix).as_deref(), 0).unwrap();
    assert_eq!(logs.kvs.len() as u64, total);
    let mut values: Vec<u64> = logs.kvs.iter().map(|kv| parse_counter(&kv.value)).collect();
    values.sort_unstable();
    assert_eq!(values, (1..=total).collect::<Vec<_>>(), "two increments saw the same value");
}

#[test]
fn etcd_cluster_survives_leader_kill_during_cas_increments() {
    if etcd_or_skip("etcd_cluster_survives_leader_kill_during_cas_increments").is_none() {
        return;
    }
    let mut cluster = EtcdCluster::start(3).unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(10)).expect("no leader");
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
                    logged_increment(store, prefix, w, i, stats);
                    stats.done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill the leader once both writers are under way.
        let started = Instant::now();
        while stats.done.load(Ordering::Relaxed) < 30 {
            assert!(started.elapsed() < Duration::from_secs(60), "writers made no progress");
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
    let new_leader = cluster.wait_leader(Duration::from_secs(10));
    assert!(new_leader.is_some(), "no new leader");
    eprintln!(
        "conflicts {}, errors seen by the writers {}, new leader m{new_leader:?}; \
         client a {:?} now on {}, client b {:?} now on {}",
        stats.conflicts.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        a.stats(),
        a.current_endpoint(),
        b.stats(),
        b.current_endpoint(),
    );
    // Client b started on the first leader; if that is the member killed, it failed over.
    if killed == leader {
        assert!(b.stats().retries > 0, "the client on the killed leader never retried");
        assert!(!b.current_endpoint().ends_with(&format!(":{}", cluster.client_port(killed))));
    }
    check_log(&a, prefix, 2 * per_writer as u64);
    check_log(&b, prefix, 2 * per_writer as u64);
}
