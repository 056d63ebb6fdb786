//! Property tests over random operation sequences on the memory store, and threads on
//! the memory and file stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use calico_datastore::{FileStore, Store};
use calico_ipam::{AssignIpRequest, IpamError, Owner, ReleaseItem};
use calico_model::resources::ipam::AllowedUse;
use common::*;
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
enum Op {
    Assign {
        host: u8,
        n4: usize,
        n6: usize,
        handle: u8,
    },
    AssignIp {
        offset: u8,
        host: u8,
        handle: u8,
    },
    Release {
        pick: usize,
    },
    ReleaseHandle {
        handle: u8,
    },
    ClaimAffinity {
        block: u8,
        host: u8,
    },
    ReleaseHostAffinities {
        host: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0usize..6, 0usize..4, 0u8..4).prop_map(|(host, n4, n6, handle)| Op::Assign { host, n4: n4.max(usize::from(n6 == 0)), n6, handle }),
        2 => (0u8..40, 0u8..3, 0u8..4).prop_map(|(offset, host, handle)| Op::AssignIp { offset, host, handle }),
        3 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => (0u8..4).prop_map(|handle| Op::ReleaseHandle { handle }),
        1 => (0u8..4, 0u8..3).prop_map(|(block, host)| Op::ClaimAffinity { block, host }),
        1 => (0u8..3).prop_map(|host| Op::ReleaseHostAffinities { host }),
    ]
}

fn hname(h: u8) -> String {
    format!("host-{h}")
}

fn handle_name(h: u8) -> String {
    format!("k8s-pod-network.{h}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..40), strict in any::<bool>(), small in any::<bool>()) {
        // A store with a tiny transaction limit makes large requests commit in parts.
        let store: Arc<dyn Store> = if small { Arc::new(calico_datastore::MemoryStore::with_max_txn_ops(12)) } else { memory() };
        add_pool(&*store, "v4", json!({"cidr": "10.0.0.0/27", "blockSize": 29}));
        add_pool(&*store, "v6", json!({"cidr": "fd00::/124", "blockSize": 126}));
        let ipam = ipam_on(store, &Clock::new(), 3);
        if strict {
            ipam.set_config(&calico_model::resources::ipam::IpamConfigurationSpec { strict_affinity: true, ..Default::default() }).unwrap();
        }
        // The model: every allocated address and its handle.
        let mut held: BTreeMap<IpAddr, String> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Assign { host, n4, n6, handle } => {
                    let mut r = req(&hname(host), n4, Some(&handle_name(handle)));
                    r.num6 = n6;
                    let got = match ipam.auto_assign(&r) {
                        Ok(a) => a.v4.into_iter().chain(a.v6).collect::<Vec<_>>(),
                        Err(IpamError::BlockLimit { assigned, .. }) => assigned,
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    };
                    for a in got {
                        prop_assert!(held.insert(a.addr(), handle_name(handle)).is_none(), "{} handed out twice", a.addr());
                    }
                }
                Op::AssignIp { offset, host, handle } => {
                    let addr: IpAddr = format!("10.0.0.{offset}").parse().unwrap();
                    let r = ipam.assign_ip(&AssignIpRequest { addr, handle: Some(handle_name(handle)), attrs: BTreeMap::new(), host: hname(host), intended_use: AllowedUse::Workload });
                    match r {
                        Ok(_) => prop_assert!(held.insert(addr, handle_name(handle)).is_none()),
                        Err(IpamError::AlreadyAllocated { .. }) => prop_assert!(held.contains_key(&addr)),
                        Err(IpamError::NotInPool { .. }) | Err(IpamError::StrictAffinity { .. }) => {}
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::Release { pick } => {
                    if held.is_empty() { continue; }
                    let addr = *held.keys().nth(pick % held.len()).unwrap();
                    let r = ipam.release_ips(&[ReleaseItem::addr(addr)]).unwrap();
                    prop_assert_eq!(r.released, vec![addr]);
                    held.remove(&addr);
                }
                Op::ReleaseHandle { handle } => {
                    let h = handle_name(handle);
                    let mine: BTreeSet<IpAddr> = held.iter().filter(|(_, v)| **v == h).map(|(a, _)| *a).collect();
                    match ipam.release_by_handle(&h) {
                        Ok(released) => prop_assert_eq!(released.into_iter().collect::<BTreeSet<_>>(), mine),
                        Err(IpamError::HandleNotFound { .. }) => prop_assert!(mine.is_empty()),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                    held.retain(|_, v| *v != h);
                }
                Op::ClaimAffinity { block, host } => {
                    let net: ipnet::IpNet = format!("10.0.0.{}/29", block * 8).parse().unwrap();
                    ipam.claim_affinity(net, &Owner::host(hname(host))).unwrap();
                }
                Op::ReleaseHostAffinities { host } => {
                    let _ = ipam.release_host_affinities(&Owner::host(hname(host)), false);
                }
            }
            // Invariants after every step: the check is clean, and handles hold exactly
            // the model's addresses.
            let report = calico_ipam::check::check(&ipam).unwrap();
            prop_assert!(report.findings.is_empty(), "{:?}", report.findings.iter().map(ToString::to_string).collect::<Vec<_>>());
            for h in 0..4 {
                let hn = handle_name(h);
                let want: BTreeSet<IpAddr> = held.iter().filter(|(_, v)| **v == hn).map(|(a, _)| *a).collect();
                let got: BTreeSet<IpAddr> = match ipam.ips_by_handle(&hn) {
                    Ok(v) => v.into_iter().collect(),
                    Err(IpamError::HandleNotFound { .. }) => BTreeSet::new(),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                };
                prop_assert_eq!(got, want);
            }
            let u = ipam.utilization(None).unwrap();
            let in_use: u128 = u.pools.iter().map(|p| p.in_use).sum();
            prop_assert_eq!(in_use, held.len() as u128);
        }
    }
}

fn concurrent_allocations(store: Arc<dyn Store>, threads: usize, per_thread: usize) {
    add_pool(
        &*store,
        "p",
        json!({"cidr": "10.0.0.0/20", "blockSize": 28}),
    );
    let clock = Clock::new();
    let all: Vec<Vec<IpAddr>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let ipam = ipam_on(store.clone(), &clock, t as u64);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..per_thread {
                        // Two threads per host: they contend on the same blocks.
                        let host = format!("host-{}", t / 2);
                        let got = ipam
                            .auto_assign(&req(&host, 1, Some(&format!("t{t}-{i}"))))
                            .unwrap();
                        mine.extend(got.v4.iter().map(|a| a.addr()));
                        if i % 5 == 4 {
                            // Release one now and then.
                            let a = mine.remove(0);
                            ipam.release_ips(&[ReleaseItem::addr(a)]).unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let flat: Vec<IpAddr> = all.iter().flatten().copied().collect();
    let uniq: BTreeSet<IpAddr> = flat.iter().copied().collect();
    assert_eq!(flat.len(), uniq.len(), "an address is held twice");
    assert_eq!(flat.len(), threads * (per_thread - per_thread / 5));
    let ipam = ipam_on(store, &clock, 99);
    assert_clean(&ipam);
    let u = ipam.utilization(None).unwrap();
    assert_eq!(u.pools[0].in_use, flat.len() as u128);
}

#[test]
fn threads_on_memory() {
    concurrent_allocations(memory(), 4, 60);
}

#[test]
fn threads_on_file() {
    let dir = std::env::temp_dir().join(format!("calico-ipam-test-{}-{}", std::process::id(), T0));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("threads.db");
    let _ = std::fs::remove_file(&path);
    let store: Arc<dyn Store> = Arc::new(FileStore::open(&path).unwrap());
    concurrent_allocations(store, 4, 25);
    let _ = std::fs::remove_dir_all(&dir);
}
