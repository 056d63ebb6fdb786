//! Felix's status keys written through the `Store` trait: on the memory store, and on a
//! real etcd started by the test (skipped with a note without etcd, unless
//! `CALICO_REQUIRE_ETCD=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use calico_datastore::{MemoryStore, Store};
use calico_datastore_etcd::testkit::{EtcdCluster, etcd_or_skip};
use calico_node::{StatusOptions, StatusReporter};

fn value(store: &dyn Store, key: &str) -> Option<serde_json::Value> {
    store
        .get(key.as_bytes())
        .unwrap()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
}

/// Reports on schedule, keeps one lease alive, and the status key goes once reports stop
/// while the last reported status stays.
fn reports(store: Arc<dyn Store>, ttl: Duration) {
    let options = StatusOptions {
        interval: Duration::from_millis(300),
        ttl,
        initial_delay: Duration::from_millis(200),
        region: "no-region".to_owned(),
    };
    let t0 = Instant::now();
    let mut r = StatusReporter::new(store.clone(), "node-1", options, t0);
    assert_eq!(
        r.status_key(),
        "/calico/felix/v2/no-region/host/node-1/status"
    );
    assert_eq!(
        r.last_reported_key(),
        "/calico/felix/v2/no-region/host/node-1/last_reported_status"
    );
    assert!(
        !r.tick(t0, SystemTime::now()).unwrap(),
        "not before the initial delay"
    );
    assert_eq!(value(&*store, r.status_key()), None);
    let t1 = t0 + Duration::from_millis(250);
    assert!(r.tick(t1, SystemTime::now()).unwrap());
    let first = value(&*store, r.status_key()).unwrap();
    assert_eq!(first["first_update"], true);
    assert!(
        (first["uptime"].as_f64().unwrap() - 0.25).abs() < 1e-9,
        "{first}"
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(value(&*store, r.last_reported_key()), Some(first));
    assert!(
        !r.tick(t1 + Duration::from_millis(100), SystemTime::now())
            .unwrap(),
        "not due"
    );
    // Reports for longer than the time to live: the lease is kept alive.
    let start = Instant::now();
    while start.elapsed() < ttl + ttl / 2 {
        std::thread::sleep(Duration::from_millis(300));
        r.tick(Instant::now(), SystemTime::now()).unwrap();
    }
    let later = value(&*store, r.status_key()).expect("a kept-alive status key");
    assert_eq!(later["first_update"], false);
    // Stopped reporting: the status key goes within the time to live (plus etcd's checks).
    drop(r);
    let deadline = Instant::now() + ttl * 2 + Duration::from_secs(2);
    while value(&*store, "/calico/felix/v2/no-region/host/node-1/status").is_some() {
        assert!(
            Instant::now() < deadline,
            "the status key outlived its lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        value(
            &*store,
            "/calico/felix/v2/no-region/host/node-1/last_reported_status"
        )
        .is_some()
    );
}

#[test]
fn memory_store_status_reports() {
    reports(Arc::new(MemoryStore::new()), Duration::from_secs(1));
}

#[test]
fn etcd_status_reports() {
    if etcd_or_skip("etcd_status_reports").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    let store: Arc<dyn Store> =
        Arc::from(calico_datastore_etcd::open_store(&server.url()).unwrap());
    reports(store, Duration::from_secs(2));
}

#[test]
fn reporting_interval_zero_writes_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let options = StatusOptions {
        interval: Duration::ZERO,
        ..StatusOptions::default()
    };
    let t0 = Instant::now();
    let mut r = StatusReporter::new(store.clone(), "n", options, t0);
    assert_eq!(r.next_due(), None);
    assert!(
        !r.tick(t0 + Duration::from_secs(3600), SystemTime::now())
            .unwrap()
    );
    assert_eq!(store.revision().unwrap(), 1, "nothing written");
}
