//! The allocation algorithm on the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use calico_datastore::{CountingStore, MemoryStore, Store};
use calico_ipam::{AssignIpRequest, IpamError, ReleaseItem, Shortfall, check};
use calico_model::resources::ipam::{AllowedUse, IpamConfigurationSpec};
use common::*;
use serde_json::json;

#[test]
fn worked_example_node_b_starts_at_block_11() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.244.0.0/22"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    let got = ipam.auto_assign(&req("node-b", 2, None)).unwrap();
    assert_eq!(addrs(&got.v4), ["10.244.2.192", "10.244.2.193"]);
    assert_eq!(got.v4[0].prefix_len(), 26);
    for (host, first) in [
        ("node-a", "10.244.0.0"),
        ("node-c", "10.244.1.192"),
        ("worker-1", "10.244.0.64"),
    ] {
        let got = ipam.auto_assign(&req(host, 1, None)).unwrap();
        assert_eq!(addrs(&got.v4), [first], "{host}");
    }
    assert_clean(&ipam);
}

#[test]
fn common_assign_is_one_round_trip_and_a_claim_three() {
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/16"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    counting.reset();
    ipam.auto_assign(&req("h", 1, Some("a"))).unwrap();
    let first = counting.reset();
    assert_eq!(
        first.total(),
        3,
        "claim: read batch + gap read + txn: {first:?}"
    );
    for i in 0..10 {
        ipam.auto_assign(&req("h", 1, Some(&format!("h{i}"))))
            .unwrap();
        let c = counting.reset();
        assert_eq!(
            (c.reads, c.txns),
            (0, 1),
            "affine block has room: one optimistic txn: {c:?}"
        );
    }
    // A fresh allocator (no cache) needs one more read to find the host's blocks, then
    // runs on what it saw.
    let ipam2 = ipam_on(counting.clone(), &Clock::new(), 2);
    ipam2.auto_assign(&req("h", 1, None)).unwrap();
    assert_eq!(counting.reset().total(), 3);
    ipam2.auto_assign(&req("h", 1, None)).unwrap();
    assert_eq!(counting.reset().total(), 1);
    // The first allocator's view is stale now: its optimistic txn conflicts, it re-reads
    // and commits (three round trips), and is back to one after.
    ipam.auto_assign(&req("h", 1, Some("x1"))).unwrap();
    let c = counting.reset();
    assert_eq!((c.reads, c.txns), (1, 2), "{c:?}");
    ipam.auto_assign(&req("h", 1, Some("x2"))).unwrap();
    assert_eq!(counting.reset().total(), 1);
    // A handle that exists is guessed absent: conflict, then the fresh path.
    ipam.auto_assign(&req("h", 1, Some("x2"))).unwrap();
    assert_eq!(counting.reset().total(), 3);
    assert_eq!(ipam.ips_by_handle("x2").unwrap().len(), 2);
    // Without the optimistic path: two round trips.
    let plain = ipam_on(counting.clone(), &Clock::new(), 3).with_optimistic(false);
    plain.auto_assign(&req("h", 1, None)).unwrap();
    counting.reset();
    for _ in 0..3 {
        plain.auto_assign(&req("h", 1, None)).unwrap();
        assert_eq!(counting.reset().total(), 2);
    }
    assert_clean(&ipam);
}

#[test]
fn a_claim_after_the_affine_blocks_fill_is_two_round_trips() {
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 30}),
    );
    // Another host's blocks lie where this host's search starts and after it.
    let other = ipam_on(store.clone(), &Clock::new(), 9);
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let mut mine = Vec::new();
    for round in 0..3 {
        for _ in 0..4 {
            other.auto_assign(&req("other", 1, None)).unwrap();
        }
        for i in 0..4 {
            counting.reset();
            let r = ipam
                .auto_assign(&req("h", 1, Some(&format!("{round}-{i}"))))
                .unwrap();
            let c = counting.reset();
            mine.push(r.v4[0]);
            match (round, i) {
                // A cold allocator: read batch, gap read, txn.
                (0, 0) => assert_eq!(c.total(), 3, "{c:?}"),
                // The affine block is full: the gap search's first read goes with the
                // fresh read.
                (_, 0) => assert_eq!((c.reads, c.txns), (1, 1), "{c:?}"),
                _ => assert_eq!((c.reads, c.txns), (0, 1), "{c:?}"),
            }
        }
    }
    let mut blocks: Vec<_> = mine.iter().map(|n| n.trunc()).collect();
    blocks.dedup();
    assert_eq!(blocks.len(), 3, "{mine:?}");
    assert_clean(&ipam);
}

#[test]
fn fills_blocks_then_claims_more_and_handles_count_grants() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 28}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let got = ipam.auto_assign(&req("h", 40, Some("x"))).unwrap();
    assert_eq!(got.v4.len(), 40);
    let mut uniq: Vec<_> = got.v4.iter().map(|a| a.addr()).collect();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 40);
    assert_eq!(ipam.ips_by_handle("x").unwrap().len(), 40);
    assert_clean(&ipam);
    // 16 blocks of 16 addresses; 216 left.
    let got = ipam.auto_assign(&req("h", 300, Some("y"))).unwrap();
    // The default cap of 20 blocks is above 16: everything is handed out.
    assert_eq!(got.v4.len(), 216);
    assert!(!got.shortfall4.is_empty());
    assert_clean(&ipam);
    let released = ipam.release_by_handle("y").unwrap();
    assert_eq!(released.len(), 216);
    assert!(matches!(
        ipam.release_by_handle("y"),
        Err(IpamError::HandleNotFound { .. })
    ));
    assert_clean(&ipam);
}

#[test]
fn block_limit_stops_claims_and_borrowing() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 30}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    ipam.set_config(&IpamConfigurationSpec {
        strict_affinity: true,
        max_blocks_per_host: 2,
        ..Default::default()
    })
    .unwrap();
    let err = ipam.auto_assign(&req("h", 10, Some("a"))).unwrap_err();
    match err {
        IpamError::BlockLimit {
            owned,
            limit,
            assigned,
            ..
        } => {
            assert_eq!((owned, limit, assigned.len()), (2, 2, 8));
        }
        e => panic!("{e}"),
    }
    // What was assigned is committed.
    assert_eq!(ipam.ips_by_handle("a").unwrap().len(), 8);
    assert_clean(&ipam);
}

#[test]
fn borrows_from_other_hosts_blocks_when_not_strict() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/29", "blockSize": 30}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    // Host a takes both blocks (one address each); host b must borrow.
    ipam.auto_assign(&req("a", 5, Some("a"))).unwrap();
    let got = ipam.auto_assign(&req("b", 3, Some("b"))).unwrap();
    assert_eq!(got.v4.len(), 3);
    assert!(got.shortfall4.is_empty());
    let got = ipam.auto_assign(&req("b", 1, Some("b"))).unwrap();
    assert_eq!(got.v4.len(), 0);
    assert!(
        got.shortfall4
            .iter()
            .any(|r| matches!(r, Shortfall::PoolsExhausted { .. })
                && r.to_string().starts_with("No IPs available in pools: [")),
        "{:?}",
        got.shortfall4
    );
    assert_clean(&ipam);
    // Strict affinity: no borrowing.
    ipam.release_by_handle("b").unwrap();
    ipam.set_config(&IpamConfigurationSpec {
        strict_affinity: true,
        ..Default::default()
    })
    .unwrap();
    let got = ipam.auto_assign(&req("b", 1, Some("b"))).unwrap();
    assert!(got.v4.is_empty());
    assert!(got.shortfall4.contains(&Shortfall::StrictAffinity));
}

#[test]
fn release_guards_cooldown_and_fifo_reuse() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/30", "blockSize": 30}),
    );
    let clock = Clock::new();
    let ipam = ipam_on(store, &clock, 1);
    ipam.set_config(&IpamConfigurationSpec {
        ip_cooldown_seconds: 10,
        ..Default::default()
    })
    .unwrap();
    let got = ipam.auto_assign(&req("h", 2, Some("a"))).unwrap();
    let a0 = got.v4[0].addr();
    let seq = ipam.get_attributes(a0).unwrap().sequence;
    // Wrong handle rejects the whole block's batch.
    let r = ipam
        .release_ips(&[
            ReleaseItem {
                addr: a0,
                handle: Some("other".into()),
                sequence: None,
            },
            ReleaseItem::addr(got.v4[1].addr()),
        ])
        .unwrap();
    assert_eq!(r.rejected.len(), 2);
    assert!(r.released.is_empty());
    // Wrong sequence number.
    let r = ipam
        .release_ips(&[ReleaseItem {
            addr: a0,
            handle: Some("a".into()),
            sequence: Some(seq + 1),
        }])
        .unwrap();
    assert_eq!(r.rejected.len(), 1);
    let r = ipam
        .release_ips(&[ReleaseItem {
            addr: a0,
            handle: Some("a".into()),
            sequence: Some(seq),
        }])
        .unwrap();
    assert_eq!(r.released, vec![a0]);
    // Idempotent; in cooldown counts as not allocated.
    let r = ipam
        .release_ips(&[ReleaseItem::addr(a0), ReleaseItem::addr(ip("10.0.0.3"))])
        .unwrap();
    assert_eq!(r.not_allocated, vec![a0, ip("10.0.0.3")]);
    assert!(matches!(
        ipam.get_attributes(a0),
        Err(IpamError::InCooldown { .. })
    ));
    // Cooldown: 2 more addresses exist but a0 is not reused yet.
    let got = ipam.auto_assign(&req("h", 3, Some("a"))).unwrap();
    assert_eq!(addrs(&got.v4), ["10.0.0.2", "10.0.0.3"]);
    clock.advance_secs(10);
    let got = ipam.auto_assign(&req("h", 1, Some("a"))).unwrap();
    assert_eq!(got.v4[0].addr(), a0);
    assert_clean(&ipam);
}

#[test]
fn assign_ip_rules() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    add_pool(
        &*store,
        "t",
        json!({"cidr": "10.1.0.0/24", "allowedUses": ["Tunnel"]}),
    );
    put_json(
        &*store,
        &calico_ipam::resources::resource_key("IPReservation", None, "r"),
        json!({"metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["10.0.0.128/25"]}}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let mk = |a: &str| AssignIpRequest {
        addr: ip(a),
        handle: Some("h".into()),
        attrs: attrs(&[("pod", "p1")]),
        host: "n1".into(),
        intended_use: AllowedUse::Workload,
    };
    let got = ipam.assign_ip(&mk("10.0.0.5")).unwrap();
    assert_eq!(got.to_string(), "10.0.0.5/26");
    assert!(matches!(
        ipam.assign_ip(&mk("10.0.0.5")),
        Err(IpamError::AlreadyAllocated { .. })
    ));
    assert!(matches!(
        ipam.assign_ip(&mk("10.0.0.200")),
        Err(IpamError::Reserved { .. })
    ));
    assert!(matches!(
        ipam.assign_ip(&mk("192.168.0.1")),
        Err(IpamError::NotInPool { .. })
    ));
    assert!(matches!(
        ipam.assign_ip(&mk("10.1.0.1")),
        Err(IpamError::UseNotAllowed { .. })
    ));
    assert_eq!(
        ipam.get_attributes(ip("10.0.0.5")).unwrap().owner,
        attrs(&[("pod", "p1")])
    );
    // auto_assign on the same host uses the claimed block and skips the taken address.
    let got = ipam.auto_assign(&req("n1", 6, Some("h"))).unwrap();
    assert_eq!(
        addrs(&got.v4),
        [
            "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"
        ]
    );
    // Reservations: a block wholly reserved is never claimed.
    let got = ipam.auto_assign(&req("n2", 64, None)).unwrap();
    assert!(got.v4.iter().all(|a| a.addr() < ip("10.0.0.128")));
    assert_eq!(ipam.ips_by_handle("h").unwrap().len(), 7);
    assert_clean(&ipam);
    let u = ipam.utilization(None).unwrap();
    let p = u.pools.iter().find(|p| p.name == "p").unwrap();
    assert_eq!((p.capacity, p.reserved), (256, 128));
    assert_eq!(p.in_use, 7 + got.v4.len() as u128);
}

#[test]
fn ipv6_and_dual_stack() {
    let store = memory();
    add_pool(&*store, "v4", json!({"cidr": "10.0.0.0/24"}));
    add_pool(
        &*store,
        "v6",
        json!({"cidr": "fd00::/120", "blockSize": 124}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let mut r = req("h", 1, Some("d"));
    r.num6 = 20;
    let got = ipam.auto_assign(&r).unwrap();
    assert_eq!(got.v4.len(), 1);
    assert_eq!(got.v6.len(), 20);
    assert!(
        got.v6
            .iter()
            .all(|a| a.addr().is_ipv6() && a.prefix_len() == 124)
    );
    assert_eq!(ipam.ips_by_handle("d").unwrap().len(), 21);
    assert_clean(&ipam);
    // A v6 pool requested in the v4 list is an error.
    let mut r = req("h", 1, None);
    r.pools4 = Some(vec!["v6".into()]);
    assert!(matches!(
        ipam.auto_assign(&r),
        Err(IpamError::RequestedPool { .. })
    ));
    assert_eq!(ipam.release_by_handle("d").unwrap().len(), 21);
    assert_clean(&ipam);
}

#[test]
fn pool_choice_by_selectors_manual_mode_and_order() {
    let store = memory();
    add_pool(
        &*store,
        "b-rack1",
        json!({"cidr": "10.1.0.0/24", "nodeSelector": "rack == '1'"}),
    );
    add_pool(
        &*store,
        "a-manual",
        json!({"cidr": "10.2.0.0/24", "assignmentMode": "Manual"}),
    );
    add_pool(&*store, "c-all", json!({"cidr": "10.3.0.0/24"}));
    add_pool(
        &*store,
        "d-ns",
        json!({"cidr": "10.4.0.0/24", "nodeSelector": "rack == '9'", "namespaceSelector": "team == 'x'"}),
    );
    add_node(&*store, "n1", json!({"rack": "1"}));
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    // n1: rack1 and c-all qualify; sorted by name, b-rack1 first.
    let got = ipam.auto_assign(&req("n1", 1, None)).unwrap();
    assert!(got.v4[0].addr().to_string().starts_with("10.1.0."));
    // A host without a Node object matches empty labels: only c-all.
    let got = ipam.auto_assign(&req("ghost", 1, None)).unwrap();
    assert!(got.v4[0].addr().to_string().starts_with("10.3.0."));
    // Manual pools only when requested; requested pools ignore selectors.
    let mut r = req("ghost", 1, None);
    r.pools4 = Some(vec!["10.2.0.0/24".into()]);
    assert!(
        ipam.auto_assign(&r).unwrap().v4[0]
            .addr()
            .to_string()
            .starts_with("10.2.0.")
    );
    // Disabled pools are not candidates.
    add_pool(
        &*store,
        "c-all",
        json!({"cidr": "10.3.0.0/24", "disabled": true}),
    );
    assert!(matches!(
        ipam.auto_assign(&req("ghost", 1, None)),
        Err(IpamError::NoPools { .. })
    ));
    // Namespace selector: node rack 9 in namespace with team=x.
    add_node(&*store, "n9", json!({"rack": "9"}));
    put_json(
        &*store,
        &calico_ipam::resources::resource_key("Namespace", None, "ns1"),
        json!({"metadata": {"name": "ns1", "labels": {"team": "x"}}}),
    );
    let mut r = req("n9", 1, None);
    r.namespace = Some("ns1".into());
    assert!(
        ipam.auto_assign(&r).unwrap().v4[0]
            .addr()
            .to_string()
            .starts_with("10.4.0.")
    );
    r.namespace = Some("other".into());
    assert!(matches!(
        ipam.auto_assign(&r),
        Err(IpamError::NoPools { .. })
    ));
    // The intended use must be allowed.
    let mut r = req("n1", 1, None);
    r.intended_use = AllowedUse::LoadBalancer;
    assert!(matches!(
        ipam.auto_assign(&r),
        Err(IpamError::NoQualifiedPool { .. })
    ));
}

#[test]
fn affinities_claim_release_and_remove_host() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    let owner = calico_ipam::Owner::host("n1");
    let (claimed, elsewhere) = ipam
        .claim_affinity("10.0.0.0/25".parse().unwrap(), &owner)
        .unwrap();
    assert_eq!((claimed.len(), elsewhere.len()), (2, 0));
    let (_, elsewhere) = ipam
        .claim_affinity(
            "10.0.0.0/26".parse().unwrap(),
            &calico_ipam::Owner::host("n2"),
        )
        .unwrap();
    assert_eq!(elsewhere.len(), 1);
    assert!(matches!(
        ipam.claim_affinity("10.0.0.0/27".parse().unwrap(), &owner),
        Err(IpamError::BadCidr { .. })
    ));
    assert_clean(&ipam);
    let got = ipam.auto_assign(&req("n1", 1, Some("x"))).unwrap();
    assert_eq!(addrs(&got.v4), ["10.0.0.0"]);
    assert!(matches!(
        ipam.release_affinity("10.0.0.0/25".parse().unwrap(), &owner, true),
        Err(IpamError::BlockNotEmpty { .. })
    ));
    assert_clean(&ipam);
    // remove_host: addresses stay allocated, blocks become unaffine (and borrowable); the
    // per-host key old Calico releases wrote goes too, and is no affinity meanwhile.
    let legacy = "/calico/ipam/v2/host/n1";
    ipam.store().put(legacy.as_bytes(), b"{}").unwrap();
    assert_clean(&ipam);
    let released = ipam.remove_host("n1").unwrap();
    assert_eq!(released.len(), 2);
    assert!(ipam.store().get(legacy.as_bytes()).unwrap().is_none());
    assert_eq!(ipam.ips_by_handle("x").unwrap(), vec![ip("10.0.0.0")]);
    assert_clean(&ipam);
    let u = ipam.utilization(None).unwrap();
    assert_eq!(u.pools[0].blocks.len(), 1);
    assert_eq!(u.pools[0].blocks[0].affinity, None);
    ipam.release_by_handle("x").unwrap();
    // The empty unaffine block is deleted.
    assert!(ipam.utilization(None).unwrap().pools[0].blocks.is_empty());
    assert_clean(&ipam);
}

#[test]
fn reclaims_empty_blocks_of_other_hosts_after_the_guard() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/26", "blockSize": 27}),
    );
    let clock = Clock::new();
    let ipam = ipam_on(store, &clock, 1);
    ipam.auto_assign(&req("a", 33, Some("a"))).unwrap();
    ipam.release_by_handle("a").unwrap();
    // Both blocks are a's and empty; b reclaims only after 60 s.
    ipam.set_config(&IpamConfigurationSpec {
        strict_affinity: true,
        ..Default::default()
    })
    .unwrap();
    assert!(ipam.auto_assign(&req("b", 1, None)).unwrap().v4.is_empty());
    clock.advance_secs(61);
    assert_eq!(ipam.auto_assign(&req("b", 1, None)).unwrap().v4.len(), 1);
    assert_clean(&ipam);
}

#[test]
fn malformed_pool_is_a_clear_error_and_changes_nothing() {
    let store = memory();
    add_pool(
        &*store,
        "bad",
        json!({"cidr": "10.0.0.0/24", "blockSize": 20}),
    );
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let rev = store.revision().unwrap();
    let e = ipam.auto_assign(&req("h", 1, None)).unwrap_err();
    assert!(e.to_string().contains("IPPool bad"), "{e}");
    assert_eq!(store.revision().unwrap(), rev);
    let r = ipam.release_ips(&[ReleaseItem::addr(ip("192.168.1.1"))]);
    assert!(r.is_err());
}

#[test]
fn check_finds_and_repair_fixes_injected_faults() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let got = ipam.auto_assign(&req("h", 3, Some("a"))).unwrap();
    ipam.auto_assign(&req("h", 2, Some("b"))).unwrap();
    assert_clean(&ipam);
    let blk: ipnet::IpNet = got.v4[0].trunc();
    let other: ipnet::IpNet = if blk.to_string() == "10.0.0.64/26" {
        "10.0.0.128/26"
    } else {
        "10.0.0.64/26"
    }
    .parse()
    .unwrap();
    // Faults: a deleted handle (leak), an orphan handle, a miscounted handle, a dangling
    // and a duplicate affinity, a block outside every pool, a broken free list.
    store
        .delete(
            calico_ipam::keys::handle("a").as_bytes(),
            store
                .get(calico_ipam::keys::handle("a").as_bytes())
                .unwrap()
                .unwrap()
                .mod_revision,
        )
        .unwrap();
    put_json(
        &*store,
        &calico_ipam::keys::handle("orphan"),
        json!({"id": "orphan", "blocks": {blk.to_string(): 1}}),
    );
    put_json(
        &*store,
        &calico_ipam::keys::handle("b"),
        json!({"id": "b", "blocks": {blk.to_string(): 5}}),
    );
    let owner2 = calico_ipam::Owner::host("other");
    put_json(
        &*store,
        &calico_ipam::keys::affinity(&owner2, &other),
        json!({"state": "pending"}),
    );
    put_json(
        &*store,
        &calico_ipam::keys::affinity(&owner2, &blk),
        json!({}),
    );
    let stray = calico_ipam::Block::new("192.168.0.0/30".parse().unwrap(), None, 5);
    put_json(
        &*store,
        &calico_ipam::keys::block(&stray.cidr),
        serde_json::to_value(&stray).unwrap(),
    );
    let key = calico_ipam::keys::block(&blk);
    let kv = store.get(key.as_bytes()).unwrap().unwrap();
    let mut b: calico_ipam::Block = serde_json::from_slice(&kv.value).unwrap();
    b.unallocated.push(0);
    store
        .put(key.as_bytes(), &serde_json::to_vec(&b).unwrap())
        .unwrap();

    let report = check::check(&ipam).unwrap();
    let kinds: std::collections::BTreeSet<String> =
        report.findings.iter().map(|f| f.kind.to_string()).collect();
    for k in [
        "leaked-address",
        "orphaned-handle",
        "handle-count-mismatch",
        "dangling-affinity",
        "duplicate-affinity",
        "block-outside-pool",
        "invalid-block",
        "bad-marker",
    ] {
        if k == "bad-marker" {
            continue;
        }
        assert!(kinds.contains(k), "missing {k} in {kinds:?}");
    }
    let actions = check::repair(&ipam).unwrap();
    assert!(actions.iter().all(|a| a.fixed), "{actions:#?}");
    assert_clean(&ipam);
    assert_eq!(ipam.ips_by_handle("a").unwrap().len(), 3);
    assert!(check::repair(&ipam).unwrap().is_empty());
}

/// Releases `addr` through `ipam` (another client than the allocator under test).
fn release_one(ipam: &calico_ipam::Ipam, addr: std::net::IpAddr) {
    assert_eq!(
        ipam.release_ips(&[ReleaseItem::addr(addr)])
            .unwrap()
            .released,
        vec![addr]
    );
}

#[test]
fn cached_full_blocks_are_revalidated_by_revision() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/28", "blockSize": 30}),
    );
    let clock = Clock::new();
    let ipam1 = ipam_on(store.clone(), &clock, 1);
    let ipam2 = ipam_on(store.clone(), &clock, 2);
    let first = ipam1.auto_assign(&req("h", 4, Some("a"))).unwrap();
    let second = ipam1.auto_assign(&req("h", 1, Some("a"))).unwrap();
    let (a, b) = (first.v4[0].trunc(), second.v4[0].trunc());
    assert_ne!(a, b, "the first block is full");
    // Another allocator frees an address of the full block.
    let freed = first.v4[2].addr();
    release_one(&ipam2, freed);
    // While the other affine block has room, either block is a valid answer (the request
    // may be ordered before the release); no block is claimed.
    let third = ipam1.auto_assign(&req("h", 1, Some("a"))).unwrap();
    assert!(
        third.v4[0].trunc() == b || third.v4[0].addr() == freed,
        "{third:?}"
    );
    assert_eq!(affinity_count(&*store), 2);
    // Once the allocator's view has no room left, the freed address is found before any
    // claim: the next allocations fill both blocks and claim nothing.
    let mut got: Vec<_> = first
        .v4
        .iter()
        .map(|n| n.addr())
        .filter(|x| *x != freed)
        .collect();
    got.extend(second.v4.iter().chain(&third.v4).map(|n| n.addr()));
    while got.len() < 8 {
        let r = ipam1.auto_assign(&req("h", 1, Some("a"))).unwrap();
        assert_eq!(r.v4.len(), 1, "{r:?}");
        got.push(r.v4[0].addr());
        assert_eq!(affinity_count(&*store), 2, "claimed before using {freed}");
    }
    assert!(got.contains(&freed), "{got:?}");
    assert_clean(&ipam1);
}

fn affinity_count(store: &dyn Store) -> usize {
    store
        .range(
            b"/calico/ipam/v2/host/",
            calico_datastore::prefix_end(b"/calico/ipam/v2/host/").as_deref(),
            0,
        )
        .unwrap()
        .kvs
        .len()
}

/// A store that records the compares of the last transaction.
struct Recording {
    inner: MemoryStore,
    last: std::sync::Mutex<Vec<calico_datastore::Compare>>,
}

impl Store for Recording {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn read(
        &self,
        reads: &[calico_datastore::ReadOp],
    ) -> Result<calico_datastore::ReadResponse, calico_datastore::StoreError> {
        self.inner.read(reads)
    }
    fn txn(
        &self,
        compares: &[calico_datastore::Compare],
        ops: &[calico_datastore::TxnOp],
    ) -> Result<calico_datastore::TxnResponse, calico_datastore::StoreError> {
        *self.last.lock().unwrap() = compares.to_vec();
        self.inner.txn(compares, ops)
    }
}

#[test]
fn a_full_block_freed_by_another_client_is_used_instead_of_a_claim() {
    let rec = Arc::new(Recording {
        inner: MemoryStore::new(),
        last: Default::default(),
    });
    let store: Arc<dyn Store> = rec.clone();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/26", "blockSize": 30}),
    );
    let clock = Clock::new();
    let ipam1 = ipam_on(store.clone(), &clock, 1);
    let ipam2 = ipam_on(store.clone(), &clock, 2);
    // Five full blocks, one address at a time (optimistic allocations in steady state).
    let mut held = Vec::new();
    for i in 0..20 {
        let r = ipam1
            .auto_assign(&req("h", 1, Some(&format!("w{i}"))))
            .unwrap();
        held.push(r.v4[0].addr());
    }
    assert_eq!(affinity_count(&*store), 5);
    // A sixth block is claimed; then the common allocation (the affine block has room)
    // compares no full block of the host.
    ipam1.auto_assign(&req("h", 1, Some("w19b"))).unwrap();
    ipam1.auto_assign(&req("h", 1, Some("w20"))).unwrap();
    let blocks_compared = rec
        .last
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.key().starts_with(b"/calico/ipam/v2/assignment/"))
        .count();
    assert_eq!(blocks_compared, 1, "only the block written is compared");
    // Nor the host's affinities, the pools range or the Node (no pool selects by label);
    // the reservations, the configuration, the pool and the handle are.
    let compared: Vec<String> = rec
        .last
        .lock()
        .unwrap()
        .iter()
        .map(|c| String::from_utf8_lossy(c.key()).into_owned())
        .collect();
    let has = |k: &str| compared.iter().any(|c| c == k);
    assert!(
        !compared
            .iter()
            .any(|c| c.starts_with("/calico/ipam/v2/host/")),
        "{compared:?}"
    );
    assert!(
        !has(&calico_ipam::resources::kind_prefix("IPPool", None))
            && !has(&calico_ipam::resources::resource_key("Node", None, "h")),
        "{compared:?}"
    );
    assert!(
        has(&calico_ipam::resources::kind_prefix("IPReservation", None)),
        "{compared:?}"
    );
    assert!(
        has(calico_ipam::keys::CONFIG)
            && has(&calico_ipam::resources::resource_key("IPPool", None, "p")),
        "{compared:?}"
    );
    assert!(has("/calico/ipam/v2/handle/w20"), "{compared:?}");
    ipam1.auto_assign(&req("h", 2, Some("w21"))).unwrap();
    assert_eq!(affinity_count(&*store), 6);
    // Another client frees one address of the first (full) block.
    let freed = held[1];
    release_one(&ipam2, freed);
    // ipam1 still holds that block as full; its next allocation would claim, and must use
    // the freed address instead.
    let r = ipam1.auto_assign(&req("h", 1, Some("w22"))).unwrap();
    assert_eq!(r.v4[0].addr(), freed);
    assert_eq!(affinity_count(&*store), 6, "no block was claimed");
    // Then a claim.
    let r = ipam1.auto_assign(&req("h", 1, Some("w23"))).unwrap();
    assert_eq!(affinity_count(&*store), 7, "{r:?}");
    assert_clean(&ipam1);
}

#[test]
fn requests_beyond_the_transaction_limit_commit_in_several_transactions() {
    let counting = Arc::new(CountingStore::new(MemoryStore::with_max_txn_ops(16)));
    let store: Arc<dyn Store> = counting.clone();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 28}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let got = ipam.auto_assign(&req("h", 150, Some("big"))).unwrap();
    assert_eq!(got.v4.len(), 150);
    let uniq: std::collections::BTreeSet<_> = got.v4.iter().map(|a| a.addr()).collect();
    assert_eq!(uniq.len(), 150);
    assert!(counting.counts().txns >= 3, "{:?}", counting.counts());
    assert_eq!(ipam.ips_by_handle("big").unwrap().len(), 150);
    assert_clean(&ipam);
    // Borrowing across many blocks is split too.
    let got = ipam.auto_assign(&req("other", 106, Some("b2"))).unwrap();
    assert_eq!(got.v4.len(), 106);
    assert_clean(&ipam);
    assert_eq!(ipam.release_by_handle("big").unwrap().len(), 150);
}

#[test]
fn leftover_larger_blocks_of_a_deleted_pool_are_respected() {
    let store = memory();
    // A /24 block left over from an old pool with block size 24 covers the host's start.
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.244.0.0/22", "blockSize": 26}),
    );
    let old = calico_ipam::Block::new(
        "10.244.2.0/24".parse().unwrap(),
        Some(&calico_ipam::Owner::host("x")),
        5,
    );
    put_json(
        &*store,
        &calico_ipam::keys::block(&old.cidr),
        serde_json::to_value(&old).unwrap(),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    // node-b starts at block 11 = 10.244.2.192/26, inside the leftover: the walk goes on to
    // 10.244.3.0/26.
    let got = ipam.auto_assign(&req("node-b", 1, None)).unwrap();
    assert_eq!(addrs(&got.v4), ["10.244.3.0"]);
}

#[test]
fn release_drops_the_affinity_when_the_pool_no_longer_selects_the_host() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "nodeSelector": "rack == '1'"}),
    );
    add_node(&*store, "n1", json!({"rack": "1"}));
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let got = ipam.auto_assign(&req("n1", 2, Some("a"))).unwrap();
    ipam.release_ips(&[ReleaseItem::addr(got.v4[0].addr())])
        .unwrap();
    // Still selected: the (non-empty) block keeps its affinity.
    assert_eq!(
        ipam.utilization(None).unwrap().pools[0].blocks[0]
            .affinity
            .as_deref(),
        Some("host:n1")
    );
    add_node(&*store, "n1", json!({"rack": "2"}));
    ipam.release_by_handle("a").unwrap();
    assert!(ipam.utilization(None).unwrap().pools[0].blocks.is_empty());
    assert_clean(&ipam);
}

#[test]
fn windows_hosts_reserve_the_first_three_and_last_ordinals() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.244.0.0/22", "blockSize": 28}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let mut r = req("node-a", 13, Some("w"));
    r.windows_reserved = true;
    let got = ipam.auto_assign(&r).unwrap();
    assert_eq!(got.v4.len(), 13);
    let v4 = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(x) => u32::from(x),
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    let offsets: Vec<u32> = got
        .v4
        .iter()
        .map(|a| v4(a.addr()) - v4(a.trunc().network()))
        .collect();
    assert_eq!(offsets[..12], (3..=14).collect::<Vec<u32>>()[..]);
    assert_eq!(offsets[12], 3);
    assert_clean(&ipam);
    // Releasing every workload address leaves the blocks empty (Windows-reserved only).
    ipam.release_by_handle("w").unwrap();
    assert_clean(&ipam);
    // Pools with blocks under 16 addresses are skipped for Windows hosts.
    let store = memory();
    add_pool(
        &*store,
        "small",
        json!({"cidr": "10.0.0.0/24", "blockSize": 29}),
    );
    let ipam = ipam_on(store, &Clock::new(), 1);
    let mut r = req("w", 1, None);
    r.windows_reserved = true;
    assert!(matches!(
        ipam.auto_assign(&r),
        Err(IpamError::NoQualifiedPool { .. })
    ));
}

#[test]
fn two_allocators_racing_on_one_host_stay_consistent() {
    // Two allocators (each with its own mirror) assign for the same host at once: their
    // optimistic transactions conflict, fall back to fresh reads, and every address is
    // handed out once, recorded in its block and handle.
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/20", "blockSize": 28}),
    );
    let clock = Clock::new();
    let per = 150;
    let ipams: Vec<_> = (0..2)
        .map(|i| Arc::new(ipam_on(store.clone(), &clock, 10 + i)))
        .collect();
    counting.reset();
    let mut threads = Vec::new();
    for (t, ipam) in ipams.iter().enumerate() {
        let ipam = ipam.clone();
        threads.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            for i in 0..per {
                let a = ipam
                    .auto_assign(&req("h", 1, Some(&format!("t{t}-{i}"))))
                    .unwrap();
                assert_eq!(a.v4.len(), 1, "{a:?}");
                got.push(a.v4[0].addr());
            }
            got
        }));
    }
    let mut all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let c = counting.reset();
    eprintln!("racing allocators: {c:?}");
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "an address was handed out twice");
    assert_eq!(n, 2 * per);
    for t in 0..2 {
        for i in [0, per / 2, per - 1] {
            assert_eq!(
                ipams[0].ips_by_handle(&format!("t{t}-{i}")).unwrap().len(),
                1
            );
        }
    }
    // 300 addresses in blocks of 16: the host owns 19 blocks, none claimed twice.
    assert_eq!(
        store
            .range(
                b"/calico/ipam/v2/host/",
                calico_datastore::prefix_end(b"/calico/ipam/v2/host/").as_deref(),
                0,
            )
            .unwrap()
            .kvs
            .len(),
        19
    );
    assert!(
        c.txns >= 2 * per as u64,
        "every assignment commits a transaction: {c:?}"
    );
    assert_clean(&ipams[1]);
    // Once the race is over, each allocator is back to one round trip after a refresh.
    for ipam in &ipams {
        ipam.auto_assign(&req("h", 1, None)).unwrap();
        counting.reset();
        ipam.auto_assign(&req("h", 1, None)).unwrap();
        assert!(counting.reset().total() <= 3);
    }
}

#[test]
fn gap_search_pages_through_a_long_occupied_run() {
    // Pool 10.0.0.0/16 of /28 blocks (4096). From the host's start index, 300 blocks are
    // taken (several pages of the gap search), with a larger leftover /26 nested among them
    // right after: the first gap is after both.
    use calico_ipam::net::{net_of, start_index};
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/16", "blockSize": 28}),
    );
    let start = start_index("h", 4096);
    let base = u128::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)));
    let run = 300u128.min(4096 - start - 8);
    let mut ops = Vec::new();
    for i in 0..run {
        let net = net_of(base + (start + i) * 16, 28, true);
        let b = calico_ipam::Block::new(net, Some(&calico_ipam::Owner::host("o")), 5);
        ops.push(calico_datastore::TxnOp::put(
            calico_ipam::keys::block(&net),
            serde_json::to_vec(&b).unwrap(),
        ));
    }
    // A /26 (4 blocks of /28) at the first /26 boundary at or after the run's end.
    let after = (start + run).div_ceil(4) * 4;
    let leftover = net_of(base + after * 16, 26, true);
    let b = calico_ipam::Block::new(leftover, Some(&calico_ipam::Owner::host("o")), 5);
    ops.push(calico_datastore::TxnOp::put(
        calico_ipam::keys::block(&leftover),
        serde_json::to_vec(&b).unwrap(),
    ));
    for chunk in ops.chunks(100) {
        store.txn(&[], chunk).unwrap();
    }
    let ipam = ipam_on(store, &Clock::new(), 1);
    let got = ipam.auto_assign(&req("h", 1, None)).unwrap();
    // The first free index: between the run and the leftover if there is room, else after
    // the leftover.
    let first_free = if start + run < after {
        start + run
    } else {
        after + 4
    };
    let expect = net_of(base + first_free * 16, 28, true);
    assert_eq!(
        got.v4[0].addr(),
        expect.network(),
        "start {start}, run {run}"
    );
}

#[test]
fn check_reports_addresses_of_workloads_whose_endpoint_is_gone() {
    use calico_ipam::resources::resource_key;
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let with = |pod: &str, handle: &str| {
        let mut r = req("h", 1, Some(handle));
        r.attrs = attrs(&[("namespace", "ns1"), ("pod", pod)]);
        ipam.auto_assign(&r).unwrap().v4[0].addr()
    };
    let live = with("live", "k8s-pod-network.live");
    let gone = with("gone", "k8s-pod-network.gone");
    // No workload objects at all: nothing to compare with, nothing reported.
    assert_clean(&ipam);
    let wep = |name: &str, pod: &str| {
        put_json(
            &*store,
            &resource_key("WorkloadEndpoint", Some("ns1"), name),
            json!({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                "metadata": {"name": name, "namespace": "ns1"},
                "spec": {"node": "h", "orchestrator": "k8s", "pod": pod,
                    "endpoint": "eth0", "interfaceName": "cali0"}}),
        );
    };
    wep("h-k8s-live-eth0", "live");
    // A WorkloadEndpoint in another namespace does not stand for ns1/gone.
    put_json(
        &*store,
        &resource_key("WorkloadEndpoint", Some("ns2"), "h-k8s-gone-eth0"),
        json!({"spec": {"pod": "gone"}}),
    );
    let report = check::check(&ipam).unwrap();
    let leaks: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind.to_string() == "leaked-address")
        .collect();
    assert_eq!(leaks.len(), 1, "{:#?}", report.findings);
    assert_eq!(leaks[0].subject, gone.to_string());
    assert!(
        leaks[0].detail.contains("ns1/gone") && leaks[0].detail.contains("workload endpoint"),
        "{}",
        leaks[0].detail
    );
    // Repair releases it (guarded); the live one stays.
    let actions = check::repair(&ipam).unwrap();
    assert!(actions.iter().all(|a| a.fixed), "{actions:#?}");
    assert!(matches!(
        ipam.ips_by_handle("k8s-pod-network.gone"),
        Err(IpamError::HandleNotFound { .. })
    ));
    assert_eq!(ipam.ips_by_handle("k8s-pod-network.live").unwrap(), [live]);
    assert!(check::check(&ipam).unwrap().findings.is_empty());
    // With Pods stored as well, a workload either kind names is alive.
    let again = with("podonly", "k8s-pod-network.podonly");
    put_json(
        &*store,
        &resource_key("Pod", Some("ns1"), "podonly"),
        json!({"metadata": {"name": "podonly", "namespace": "ns1"}}),
    );
    assert!(
        check::check(&ipam).unwrap().findings.is_empty(),
        "{again} is named by a Pod"
    );
}

#[test]
fn a_deleted_pool_is_seen_by_the_optimistic_path() {
    // A range compare does not see deletions: the pools are also compared key by key, so a
    // pool deleted behind the allocator's back stops allocations from it at once.
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    ipam.auto_assign(&req("h", 1, Some("a"))).unwrap();
    ipam.auto_assign(&req("h", 1, Some("b"))).unwrap();
    counting.reset();
    ipam.auto_assign(&req("h", 1, Some("c"))).unwrap();
    assert_eq!(counting.reset().total(), 1, "warm: one round trip");
    let key = calico_ipam::resources::resource_key("IPPool", None, "p");
    let rev = store.get(key.as_bytes()).unwrap().unwrap().mod_revision;
    store.delete(key.as_bytes(), rev).unwrap();
    match ipam.auto_assign(&req("h", 1, Some("d"))) {
        Err(IpamError::NoPools { .. }) => {}
        other => panic!("allocated from a deleted pool: {other:?}"),
    }
    // Likewise a pool disabled (a modification, seen by the range compare).
    add_pool(&*store, "q", json!({"cidr": "10.0.1.0/24"}));
    ipam.auto_assign(&req("h", 1, Some("e"))).unwrap();
    ipam.auto_assign(&req("h", 1, Some("f"))).unwrap();
    add_pool(
        &*store,
        "q",
        json!({"cidr": "10.0.1.0/24", "disabled": true}),
    );
    assert!(matches!(
        ipam.auto_assign(&req("h", 1, Some("g"))),
        Err(IpamError::NoPools { .. })
    ));
}
