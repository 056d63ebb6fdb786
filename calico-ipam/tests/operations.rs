//! The remaining operations, and how broken, undecodable and old-layout data is handled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use calico_ipam::{IpamError, Owner, ReleaseItem, check, keys, pools_from_annotations};
use calico_model::resources::ipam::IpamConfigurationSpec;
use common::*;
use serde_json::json;

#[test]
fn set_owner_attributes_swaps_owners_with_preconditions() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    let mut r = req("h", 1, Some("vm"));
    r.attrs = attrs(&[("pod", "virt-launcher-a")]);
    let a = ipam.auto_assign(&r).unwrap().v4[0].addr();
    let wrong = attrs(&[("pod", "other")]);
    let err = ipam
        .set_owner_attributes(
            a,
            "vm",
            attrs(&[("pod", "b")]),
            BTreeMap::new(),
            Some(&wrong),
        )
        .unwrap_err();
    assert!(matches!(err, IpamError::Precondition { .. }));
    assert!(matches!(
        ipam.set_owner_attributes(a, "not-mine", BTreeMap::new(), BTreeMap::new(), None),
        Err(IpamError::Precondition { .. })
    ));
    let expected = attrs(&[("pod", "virt-launcher-a")]);
    ipam.set_owner_attributes(
        a,
        "vm",
        attrs(&[("pod", "virt-launcher-b")]),
        attrs(&[("pod", "virt-launcher-a")]),
        Some(&expected),
    )
    .unwrap();
    let got = ipam.get_attributes(a).unwrap();
    assert_eq!(got.owner, attrs(&[("pod", "virt-launcher-b")]));
    assert_eq!(got.alternate_owner, attrs(&[("pod", "virt-launcher-a")]));
    assert_clean(&ipam);
}

#[test]
fn ensure_block_claims_once_then_reuses() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.244.0.0/22"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    let b1 = ipam.ensure_block("node-b", None, true).unwrap().unwrap();
    assert_eq!(b1.to_string(), "10.244.2.192/26");
    let b2 = ipam.ensure_block("node-b", None, true).unwrap().unwrap();
    assert_eq!(b1, b2);
    // The claimed block is used by the next assignment.
    let got = ipam.auto_assign(&req("node-b", 1, None)).unwrap();
    assert_eq!(got.v4[0].trunc(), b1);
    assert_clean(&ipam);
}

#[test]
fn gc_cold_ips_frees_expired_cooldown_in_idle_blocks() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    let clock = Clock::new();
    let ipam = ipam_on(store, &clock, 1);
    ipam.set_config(&IpamConfigurationSpec {
        ip_cooldown_seconds: 30,
        ..Default::default()
    })
    .unwrap();
    let got = ipam.auto_assign(&req("h", 2, Some("a"))).unwrap();
    ipam.release_ips(&[ReleaseItem::addr(got.v4[0].addr())])
        .unwrap();
    assert!(ipam.gc_cold_ips().unwrap().is_empty(), "not expired yet");
    let before = ipam.utilization(None).unwrap().pools[0].in_use;
    clock.advance_secs(31);
    assert_eq!(ipam.gc_cold_ips().unwrap(), vec![got.v4[0].trunc()]);
    assert_eq!(ipam.utilization(None).unwrap().pools[0].in_use, before - 1);
    assert!(
        ipam.gc_cold_ips().unwrap().is_empty(),
        "nothing left to collect"
    );
    assert_clean(&ipam);
}

#[test]
fn config_rules_and_defaults() {
    let store = memory();
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    assert_eq!(ipam.get_config().unwrap(), IpamConfigurationSpec::default());
    assert!(
        store.get(keys::CONFIG.as_bytes()).unwrap().is_none(),
        "reading does not write"
    );
    let bad = IpamConfigurationSpec {
        auto_allocate_blocks: false,
        ..Default::default()
    };
    assert!(matches!(
        ipam.set_config(&bad),
        Err(IpamError::BadConfig { .. })
    ));
    let bad = IpamConfigurationSpec {
        max_blocks_per_host: 3,
        ..Default::default()
    };
    assert!(matches!(
        ipam.set_config(&bad),
        Err(IpamError::BadConfig { .. })
    ));
    let good = IpamConfigurationSpec {
        strict_affinity: true,
        max_blocks_per_host: 3,
        ..Default::default()
    };
    ipam.set_config(&good).unwrap();
    assert_eq!(ipam.get_config().unwrap(), good);
}

#[test]
fn release_pool_affinities_unaffines_every_block_of_the_pool() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    add_pool(&*store, "q", json!({"cidr": "10.1.0.0/24"}));
    let ipam = ipam_on(store, &Clock::new(), 1);
    ipam.auto_assign(&req("a", 1, Some("a"))).unwrap();
    let mut r = req("b", 1, Some("b"));
    r.pools4 = Some(vec!["q".into()]);
    ipam.auto_assign(&r).unwrap();
    ipam.claim_affinity("10.0.0.192/26".parse().unwrap(), &Owner::host("c"))
        .unwrap();
    let released = ipam
        .release_pool_affinities("10.0.0.0/24".parse().unwrap())
        .unwrap();
    assert_eq!(released.len(), 2);
    let u = ipam.utilization(None).unwrap();
    // The empty claimed block is gone; a's block stays, unaffine; q is untouched.
    assert_eq!(u.pools[0].blocks.len(), 1);
    assert_eq!(u.pools[0].blocks[0].affinity, None);
    assert_eq!(u.pools[1].blocks[0].affinity.as_deref(), Some("host:b"));
    assert_clean(&ipam);
}

#[test]
fn broken_and_undecodable_values_are_reported_never_written() {
    let store = memory();
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/24", "blockSize": 30}),
    );
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    let got = ipam.auto_assign(&req("h", 1, Some("a"))).unwrap();
    let net = got.v4[0].trunc();
    let key = keys::block(&net);
    // Someone else writes the block with an allocated ordinal also listed as free: Calico
    // would hand it out a second time.
    let mut v: serde_json::Value =
        serde_json::from_slice(&store.get(key.as_bytes()).unwrap().unwrap().value).unwrap();
    let taken = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| !a.is_null())
        .unwrap();
    v["unallocated"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!(taken));
    put_json(&*store, &key, v);
    let before = store.get(key.as_bytes()).unwrap().unwrap();
    // A second allocator (no cache): the assignment needs that block and fails, naming it.
    let other = ipam_on(store.clone(), &Clock::new(), 2);
    let err = other.auto_assign(&req("h", 1, Some("b"))).unwrap_err();
    assert!(
        matches!(&err, IpamError::BrokenBlock { key: k, violation: calico_ipam::Violation::FreeAndAllocated { .. } } if *k == key),
        "{err}"
    );
    assert!(err.to_string().contains(&key), "{err}");
    let err = other.release_by_handle("a").unwrap_err();
    assert!(matches!(err, IpamError::BrokenBlock { .. }), "{err}");
    assert_eq!(
        store.get(key.as_bytes()).unwrap().unwrap(),
        before,
        "never written"
    );
    // Values that do not decode: reported with their keys, skipped by listings.
    put_json(&*store, &keys::handle("junk"), json!({"block": {"x": -1}}));
    put_json(
        &*store,
        &keys::block(&"10.0.0.200/30".parse().unwrap()),
        json!({"cidr": "10.0.0.200/30", "allocations": "many"}),
    );
    let report = check::check(&ipam).unwrap();
    let kinds: Vec<(String, String)> = report
        .findings
        .iter()
        .map(|f| (f.kind.to_string(), f.subject.clone()))
        .collect();
    assert!(
        kinds.contains(&("invalid-block".into(), net.to_string())),
        "{kinds:?}"
    );
    let invalid = report
        .findings
        .iter()
        .find(|f| f.kind == check::InconsistencyKind::InvalidBlock)
        .unwrap();
    assert_eq!(
        invalid.violations,
        [calico_ipam::Violation::FreeAndAllocated {
            ordinal: taken as u32
        }]
    );
    assert!(
        kinds.contains(&("undecodable-value".into(), keys::handle("junk"))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            "undecodable-value".into(),
            keys::block(&"10.0.0.200/30".parse().unwrap())
        )),
        "{kinds:?}"
    );
    assert_eq!(ipam.utilization(None).unwrap().pools[0].blocks.len(), 1);
    // Repair rebuilds the free list; the undecodable values stay (reported, not fixed).
    let actions = check::repair(&ipam).unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a.fixed && a.finding.starts_with("invalid-block")),
        "{actions:?}"
    );
    let k = keys::handle("junk");
    let rev = store.get(k.as_bytes()).unwrap().unwrap().mod_revision;
    store.delete(k.as_bytes(), rev).unwrap();
    let k = keys::block(&"10.0.0.200/30".parse().unwrap());
    let rev = store.get(k.as_bytes()).unwrap().unwrap().mod_revision;
    store.delete(k.as_bytes(), rev).unwrap();
    let got = other.auto_assign(&req("h", 1, Some("b"))).unwrap();
    assert_eq!(got.v4.len(), 1);
    assert_clean(&ipam);
}

#[test]
fn an_old_layout_is_refused_naming_the_prefix() {
    let store = memory();
    add_pool(&*store, "p", json!({"cidr": "10.0.0.0/24"}));
    store.put(b"ipam/v1/block/4/0a000000-26", b"{}").unwrap();
    let ipam = ipam_on(store.clone(), &Clock::new(), 1);
    for err in [
        ipam.auto_assign(&req("h", 1, None)).unwrap_err(),
        ipam.get_config().unwrap_err(),
        check::check(&ipam).unwrap_err(),
    ] {
        assert!(
            matches!(&err, IpamError::OldLayout { prefix, .. } if prefix == "ipam/v1/"),
            "{err}"
        );
        assert!(
            err.to_string().contains("ipam/v1/block/4/0a000000-26"),
            "{err}"
        );
    }
}

#[test]
fn pool_annotations_pod_wins_over_namespace() {
    let pod = attrs(&[("cni.projectcalico.org/ipv4pools", r#"["pod-pool"]"#)]);
    let ns = attrs(&[
        ("cni.projectcalico.org/ipv4pools", r#"["ns-pool"]"#),
        ("cni.projectcalico.org/ipv6pools", r#"["fd00::/120"]"#),
    ]);
    let (v4, v6) = pools_from_annotations(&pod, &ns).unwrap();
    assert_eq!(v4, Some(vec!["pod-pool".to_owned()]));
    assert_eq!(v6, Some(vec!["fd00::/120".to_owned()]));
    let bad = attrs(&[("cni.projectcalico.org/ipv4pools", "not json")]);
    assert!(pools_from_annotations(&bad, &BTreeMap::new()).is_err());
}
