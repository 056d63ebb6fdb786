//! What lands in the store is exactly what Calico writes, and what Calico writes is read,
//! allocated from and written back as Calico would. The expected values are written by hand
//! from Calico's JSON conventions (field order, `null`s, Go's time and map-key formats).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use calico_datastore::Store;
use calico_ipam::testkit::calico_double;
use calico_ipam::{AssignIpRequest, AutoAssignRequest, Owner, check, keys};
use calico_model::resources::ipam::{AllowedUse, IpamConfigurationSpec};
use common::*;
use serde_json::json;

/// Block creation time of the example, in ns (2026-08-20T08:58:44.318205117Z).
const T: u64 = 1_787_216_324_318_205_117;
const CID1: &str = "d21ee51a0c3b41f2a7e9c6d58b0f4e1a9c2d7b3e5f8a6c4d1e0b9a7c5d32bdc8";
const CID2: &str = "9b93f9aa6e2c4d8b1f0a7e5c3d9b2a8f6e4c1d0b7a9e5c3f2d8b6a4e1c700b0d";

fn pod_attrs(pod: &str, ts: &str) -> std::collections::BTreeMap<String, String> {
    attrs(&[
        ("namespace", "shop"),
        ("node", "worker-1"),
        ("pod", pod),
        ("timestamp", ts),
    ])
}

fn get(store: &dyn Store, key: &str) -> Option<String> {
    store
        .get(key.as_bytes())
        .unwrap()
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

/// The example block after the tunnel address and two pods, as Calico stores it.
fn calico_block() -> String {
    let mut allocations = vec!["0", "1", "2"];
    allocations.extend(std::iter::repeat_n("null", 61));
    let unallocated: Vec<String> = (3..64).map(|o| o.to_string()).collect();
    format!(
        concat!(
            r#"{{"cidr":"10.65.226.64/26","affinity":"host:worker-1","affinity_claim_time":"2026-08-20T08:58:44Z","#,
            r#""allocations":[{}],"unallocated":[{}],"attributes":["#,
            r#"{{"handle_id":"vxlan-tunnel-addr-worker-1","secondary":{{"node":"worker-1","type":"vxlanTunnelAddress"}}}},"#,
            r#"{{"handle_id":"k8s-pod-network.{}","secondary":{{"namespace":"shop","node":"worker-1","pod":"frontend-5c8d7b9f4-h2x7q","timestamp":"2026-08-20 09:15:20.104719338 +0000 UTC"}}}},"#,
            r#"{{"handle_id":"k8s-pod-network.{}","secondary":{{"namespace":"shop","node":"worker-1","pod":"cart-0","timestamp":"2026-08-20 09:15:24.771903215 +0000 UTC"}}}}],"#,
            r#""sequenceNumber":1787216324318205120,"#,
            r#""sequenceNumberForAllocation":{{"0":1787216324318205117,"1":1787216324318205118,"2":1787216324318205119}},"deleted":false}}"#
        ),
        allocations.join(","),
        unallocated.join(","),
        CID1,
        CID2
    )
}

const BLOCK: &str = "/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-26";
const AFFINITY: &str = "/calico/ipam/v2/host/worker-1/ipv4/block/10.65.226.64-26";
const CONFIG: &str = r#"{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled"}"#;

fn store_with_pool() -> Arc<dyn Store> {
    let store = memory();
    add_pool(
        &*store,
        "default-ipv4-ippool",
        json!({"cidr": "10.65.0.0/16"}),
    );
    store
}

fn workload(
    n: usize,
    handle: &str,
    attrs: std::collections::BTreeMap<String, String>,
) -> AutoAssignRequest {
    AutoAssignRequest {
        num4: n,
        handle: Some(handle.to_owned()),
        attrs,
        host: "worker-1".to_owned(),
        intended_use: AllowedUse::Workload,
        ..Default::default()
    }
}

#[test]
fn what_we_write_is_calicos_example_byte_for_byte() {
    let store = store_with_pool();
    let clock = Clock::new();
    clock.0.store(T, Ordering::SeqCst);
    let ipam = ipam_on(store.clone(), &clock, 1);
    // worker-1 claims the block at T, then its tunnel address and two pods are allocated,
    // one write each.
    let (claimed, _) = ipam
        .claim_affinity("10.65.226.64/26".parse().unwrap(), &Owner::host("worker-1"))
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let fresh = get(&*store, BLOCK).unwrap();
    assert!(
        fresh.starts_with(r#"{"cidr":"10.65.226.64/26","affinity":"host:worker-1","affinity_claim_time":"2026-08-20T08:58:44Z","allocations":[null,"#)
            && fresh.ends_with(r#"62,63],"attributes":null,"sequenceNumber":1787216324318205117,"sequenceNumberForAllocation":{},"deleted":false}"#),
        "{fresh}"
    );
    clock.advance_secs(1000);
    let tunnel = ipam
        .auto_assign(&AutoAssignRequest {
            num4: 1,
            handle: Some("vxlan-tunnel-addr-worker-1".into()),
            attrs: attrs(&[("node", "worker-1"), ("type", "vxlanTunnelAddress")]),
            host: "worker-1".into(),
            intended_use: AllowedUse::Tunnel,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(addrs(&tunnel.v4), ["10.65.226.64"]);
    for (cid, pod, ts) in [
        (
            CID1,
            "frontend-5c8d7b9f4-h2x7q",
            "2026-08-20 09:15:20.104719338 +0000 UTC",
        ),
        (CID2, "cart-0", "2026-08-20 09:15:24.771903215 +0000 UTC"),
    ] {
        ipam.auto_assign(&workload(
            1,
            &format!("k8s-pod-network.{cid}"),
            pod_attrs(pod, ts),
        ))
        .unwrap();
    }
    assert_eq!(get(&*store, BLOCK).unwrap(), calico_block());
    assert_eq!(
        get(&*store, AFFINITY).unwrap(),
        r#"{"state":"confirmed","deleted":false}"#
    );
    for id in [
        "vxlan-tunnel-addr-worker-1".to_owned(),
        format!("k8s-pod-network.{CID1}"),
        format!("k8s-pod-network.{CID2}"),
    ] {
        assert_eq!(
            get(&*store, &format!("/calico/ipam/v2/handle/{id}")).unwrap(),
            r#"{"block":{"10.65.226.64/26":1},"deleted":false}"#,
            "{id}"
        );
    }
    // The config: nothing is written on read; a write keeps Calico's KubeVirt setting.
    assert_eq!(get(&*store, keys::CONFIG), None);
    ipam.set_config(&IpamConfigurationSpec::default()).unwrap();
    assert_eq!(
        get(&*store, keys::CONFIG).unwrap(),
        r#"{"auto_allocate_blocks":true}"#
    );
    store
        .put(keys::CONFIG.as_bytes(), CONFIG.as_bytes())
        .unwrap();
    ipam.set_config(&ipam.get_config().unwrap()).unwrap();
    assert_eq!(get(&*store, keys::CONFIG).unwrap(), CONFIG);
    assert_clean(&ipam);
}

/// Puts the example as Calico wrote it.
fn calico_fixture(store: &dyn Store) {
    store
        .put(BLOCK.as_bytes(), calico_block().as_bytes())
        .unwrap();
    store
        .put(
            AFFINITY.as_bytes(),
            br#"{"state":"confirmed","deleted":false}"#,
        )
        .unwrap();
    for id in [
        "vxlan-tunnel-addr-worker-1".to_owned(),
        format!("k8s-pod-network.{CID1}"),
        format!("k8s-pod-network.{CID2}"),
    ] {
        store
            .put(
                keys::handle(&id).as_bytes(),
                br#"{"block":{"10.65.226.64/26":1},"deleted":false}"#,
            )
            .unwrap();
    }
    store
        .put(keys::CONFIG.as_bytes(), CONFIG.as_bytes())
        .unwrap();
}

#[test]
fn a_calico_written_block_is_read_allocated_from_and_written_back_as_calico_would() {
    let store = store_with_pool();
    calico_fixture(&*store);
    let clock = Clock::new();
    clock.0.store(T + 3_600_000_000_000, Ordering::SeqCst);
    let ipam = ipam_on(store.clone(), &clock, 1);
    assert_clean(&ipam);
    // The next pod gets the head of `unallocated` (ordinal 3), in the affine block.
    let got = ipam
        .auto_assign(&workload(1, "k8s-pod-network.abc", pod_attrs("api-0", "t")))
        .unwrap();
    assert_eq!(addrs(&got.v4), ["10.65.226.67"]);
    let mut expected: serde_json::Value = serde_json::from_str(&calico_block()).unwrap();
    expected["allocations"][3] = json!(3);
    expected["unallocated"] = json!((4..64).collect::<Vec<u32>>());
    expected["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"handle_id": "k8s-pod-network.abc", "secondary": {"namespace": "shop", "node": "worker-1", "pod": "api-0", "timestamp": "t"}}));
    expected["sequenceNumber"] = json!(1_787_216_324_318_205_121u64);
    expected["sequenceNumberForAllocation"]["3"] = json!(1_787_216_324_318_205_120u64);
    let written = get(&*store, BLOCK).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&written).unwrap(),
        expected
    );
    // Field order is Calico's too (serde_json's Value sorts keys, so compare the text).
    let order: Vec<usize> = [
        "\"cidr\"",
        "\"affinity\"",
        "\"affinity_claim_time\"",
        "\"allocations\"",
        "\"unallocated\"",
        "\"attributes\"",
        "\"sequenceNumber\"",
        "\"sequenceNumberForAllocation\"",
        "\"deleted\"",
    ]
    .iter()
    .map(|f| written.find(f).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{written}");
    assert_eq!(
        get(&*store, &keys::handle("k8s-pod-network.abc")).unwrap(),
        r#"{"block":{"10.65.226.64/26":1},"deleted":false}"#
    );
    // A specific address Calico's list says is taken is refused; a free one is taken out of
    // the middle of `unallocated`.
    let ip_req = |a: &str| AssignIpRequest {
        addr: a.parse().unwrap(),
        handle: None,
        attrs: Default::default(),
        host: "worker-1".into(),
        intended_use: AllowedUse::Workload,
    };
    assert!(ipam.assign_ip(&ip_req("10.65.226.65")).is_err());
    ipam.assign_ip(&ip_req("10.65.226.100")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&get(&*store, BLOCK).unwrap()).unwrap();
    let free: Vec<u64> = v["unallocated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(free.len(), 59);
    assert!(!free.contains(&36) && free[0] == 4);
    // Calico's pod is released by its handle: the ordinal goes to the tail of
    // `unallocated`, its stamp is removed, attributes are compacted and the handle deleted.
    let released = ipam
        .release_by_handle(&format!("k8s-pod-network.{CID1}"))
        .unwrap();
    assert_eq!(released, [ip("10.65.226.65")]);
    let v: serde_json::Value = serde_json::from_str(&get(&*store, BLOCK).unwrap()).unwrap();
    assert_eq!(v["unallocated"].as_array().unwrap().last(), Some(&json!(1)));
    assert_eq!(v["allocations"][1], json!(null));
    assert_eq!(v["allocations"][2], json!(1), "indexes renumbered");
    assert_eq!(v["attributes"].as_array().unwrap().len(), 4);
    assert!(v["sequenceNumberForAllocation"].get("1").is_none());
    assert_eq!(v["sequenceNumber"], json!(1_787_216_324_318_205_123u64));
    assert_eq!(v["affinity_claim_time"], json!("2026-08-20T08:58:44Z"));
    assert_eq!(
        get(&*store, &keys::handle(&format!("k8s-pod-network.{CID1}"))),
        None
    );
    assert_clean(&ipam);
}

#[test]
fn calicos_pending_affinity_is_confirmed_with_a_block_rewrite() {
    let store = store_with_pool();
    calico_fixture(&*store);
    // Calico's claim stopped after its first two writes: the affinity is still pending.
    store
        .put(
            AFFINITY.as_bytes(),
            br#"{"state":"pending","deleted":false}"#,
        )
        .unwrap();
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let got = ipam
        .auto_assign(&workload(1, "k8s-pod-network.x", attrs(&[])))
        .unwrap();
    assert_eq!(addrs(&got.v4), ["10.65.226.67"]);
    assert_eq!(
        get(&*store, AFFINITY).unwrap(),
        r#"{"state":"confirmed","deleted":false}"#
    );
    // One write of the block: bumped once, the new ordinal stamped before the bump.
    let v: serde_json::Value = serde_json::from_str(&get(&*store, BLOCK).unwrap()).unwrap();
    assert_eq!(v["sequenceNumber"], json!(1_787_216_324_318_205_121u64));
    assert_eq!(
        v["sequenceNumberForAllocation"]["3"],
        json!(1_787_216_324_318_205_120u64)
    );
    let report = check::check(&ipam).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn names_that_cannot_be_keys_are_refused() {
    let store = store_with_pool();
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    for (host, handle) in [("a/b", "h"), ("", "h"), ("n", "x/y")] {
        let err = ipam
            .auto_assign(&AutoAssignRequest {
                host: host.into(),
                ..workload(1, handle, attrs(&[]))
            })
            .unwrap_err();
        assert!(
            matches!(err, calico_ipam::IpamError::BadName { .. }),
            "{host} {handle}: {err}"
        );
    }
}

#[test]
fn calico_and_us_allocating_from_the_same_blocks_never_collide() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 28}),
    );
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    ipam.auto_assign(&workload(1, "ours-first", attrs(&[])))
        .unwrap();
    let (ours, theirs) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let mut got = Vec::new();
            for i in 0..40 {
                let r = ipam
                    .auto_assign(&workload(1, &format!("ours-{i}"), attrs(&[])))
                    .unwrap();
                got.extend(addrs(&r.v4));
                if i % 5 == 0 {
                    ipam.release_by_handle(&format!("ours-{i}")).unwrap();
                    got.pop();
                }
            }
            got
        });
        let b = s.spawn(|| {
            let mut got = Vec::new();
            for i in 0..40 {
                let h = format!("calico-{i}");
                let pool: ipnet::Ipv4Net = "10.0.0.0/24".parse().unwrap();
                let a = calico_double::assign(&*store, &pool, 28, "worker-1", &h);
                got.push((h, a.to_string()));
            }
            got
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        theirs.len(),
        40,
        "Calico's allocator got an address every time"
    );
    let mut all: Vec<&String> = ours.iter().chain(theirs.iter().map(|(_, a)| a)).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an address was handed out twice");
    // Every handle holds exactly the address it was given; the store is consistent.
    for (h, a) in &theirs {
        let held = ipam.ips_by_handle(h).unwrap();
        assert_eq!(
            held.iter().map(ToString::to_string).collect::<Vec<_>>(),
            std::slice::from_ref(a)
        );
    }
    assert_clean(&ipam);
}
