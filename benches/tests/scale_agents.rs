//! 200 node agents (sync-only) through `etcd grpc-proxy` stay in sync: the `scalebench`
//! harness, run small (200 pods) so it fits in a test. Needs etcd; prints that it did NOT run
//! without it, unless `CALICO_REQUIRE_ETCD=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn two_hundred_agents_stay_in_sync_through_grpc_proxy() {
    if calico_datastore_etcd::testkit::etcd_or_skip("scale_agents").is_none() {
        return;
    }
    let bench = std::path::PathBuf::from(env!("CARGO_BIN_EXE_scalebench"));
    let calico = bench.with_file_name("calico");
    assert!(
        calico.is_file(),
        "{} is missing: build the workspace (cargo test --workspace builds it)",
        calico.display()
    );
    let out = Command::new(&bench)
        .args([
            "--agents",
            "200",
            "--pods",
            "200",
            "--updates",
            "5",
            "--calico",
        ])
        .arg(&calico)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    eprintln!("scalebench: {v}");
    assert_eq!(v["agents_in_sync"], 200, "{v}");
    // The proxy coalesces the agents' identical watches: etcd holds a handful, not 200.
    let watchers = v["etcd_watchers"].as_f64().unwrap();
    assert!((1.0..20.0).contains(&watchers), "{v}");
    assert_eq!(v["lag_all_agents_ms"]["n"], 5, "{v}");
    assert!(
        v["lag_all_agents_ms"]["max"].as_f64().unwrap() < 30_000.0,
        "{v}"
    );
}
