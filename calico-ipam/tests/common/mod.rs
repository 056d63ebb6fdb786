//! Shared test helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use calico_datastore::{BackoffPolicy, MemoryStore, Store};
use calico_ipam::resources::resource_key;
use calico_ipam::{AutoAssignRequest, Ipam};
use calico_model::resources::ipam::AllowedUse;

pub const T0: u64 = 1_700_000_000_000_000_000;

/// A settable clock.
#[derive(Clone)]
pub struct Clock(pub Arc<AtomicU64>);

impl Clock {
    pub fn new() -> Clock {
        Clock(Arc::new(AtomicU64::new(T0)))
    }
    pub fn advance_secs(&self, s: u64) {
        self.0.fetch_add(s * 1_000_000_000, Ordering::SeqCst);
    }
}

pub fn put_json(store: &dyn Store, key: &str, v: serde_json::Value) {
    store.put(key.as_bytes(), v.to_string().as_bytes()).unwrap();
}

pub fn add_pool(store: &dyn Store, name: &str, spec: serde_json::Value) {
    put_json(
        store,
        &resource_key("IPPool", None, name),
        serde_json::json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name}, "spec": spec}),
    );
}

pub fn add_node(store: &dyn Store, name: &str, labels: serde_json::Value) {
    put_json(
        store,
        &resource_key("Node", None, name),
        serde_json::json!({"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}),
    );
}

pub fn ipam_on(store: Arc<dyn Store>, clock: &Clock, seed: u64) -> Ipam {
    let c = clock.0.clone();
    Ipam::new(store)
        .with_clock(move || c.load(Ordering::SeqCst))
        .with_seed(seed)
        .with_backoff(BackoffPolicy {
            max_retries: 1000,
            ..BackoffPolicy::DEFAULT
        })
}

pub fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

pub fn req(host: &str, n4: usize, handle: Option<&str>) -> AutoAssignRequest {
    AutoAssignRequest {
        num4: n4,
        handle: handle.map(str::to_owned),
        host: host.to_owned(),
        intended_use: AllowedUse::Workload,
        ..Default::default()
    }
}

pub fn addrs(v: &[ipnet::IpNet]) -> Vec<String> {
    v.iter().map(|a| a.addr().to_string()).collect()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Asserts `check` reports nothing.
pub fn assert_clean(ipam: &Ipam) {
    let r = calico_ipam::check::check(ipam).unwrap();
    let lines: Vec<String> = r.findings.iter().map(ToString::to_string).collect();
    assert!(lines.is_empty(), "check findings: {lines:#?}");
}
