//! Test support for code that shares a datastore with Calico's own IPAM (feature
//! `testkit`).
//!
//! [`calico_double`] allocates the way Calico's IPAM does, one key at a time: it claims a
//! block with the three-step protocol (pending affinity, block create, confirmed affinity),
//! allocates by writing the handle first (create, or CAS increment) and the block second
//! (CAS on its revision, taking the head of `unallocated` without looking at
//! `allocations`, stamping the ordinal and bumping the sequence number), and releases by
//! handle (block CAS, then the handle decremented or deleted). A crash between those writes
//! leaves what Calico leaves. Tests run it beside [`Ipam`](crate::Ipam) to show that the
//! two never hand out one address twice. It panics on store errors: it is test code.

/// Calico's IPAM, key by key (see the module documentation).
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod calico_double {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::Owner;
    use crate::keys;
    use calico_datastore::{Store, prefix_end};
    use ipnet::{IpNet, Ipv4Net};
    use serde_json::{Value, json};

    fn read(store: &dyn Store, key: &str) -> Option<(Value, u64)> {
        store
            .get(key.as_bytes())
            .unwrap()
            .map(|kv| (serde_json::from_slice(&kv.value).unwrap(), kv.mod_revision))
    }

    fn blocks_of(v: &Value) -> Vec<usize> {
        v["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_null())
            .map(|(i, _)| i)
            .collect()
    }

    /// A fresh block as Calico creates it for `host`.
    fn fresh_block(net: &Ipv4Net, host: &str) -> Value {
        let n = 1usize << (32 - net.prefix_len());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        json!({
            "cidr": net.to_string(),
            "affinity": format!("host:{host}"),
            "affinity_claim_time": crate::format_rfc3339(now.as_secs() as i64).unwrap(),
            "allocations": vec![Value::Null; n],
            "unallocated": (0..n).collect::<Vec<_>>(),
            "attributes": Value::Null,
            "sequenceNumber": now.as_nanos() as u64,
            "sequenceNumberForAllocation": {},
            "deleted": false,
        })
    }

    /// Claims a block for `host` in `pool` by Calico's protocol; `false` when the pool is full.
    fn claim(store: &dyn Store, pool: &Ipv4Net, block_len: u8, host: &str) -> bool {
        let owner = Owner::host(host);
        for _ in 0..100 {
            let prefix = keys::block_family_prefix(true);
            let taken: std::collections::BTreeSet<IpNet> = store
                .range(
                    prefix.as_bytes(),
                    prefix_end(prefix.as_bytes()).as_deref(),
                    0,
                )
                .unwrap()
                .kvs
                .iter()
                .filter_map(|kv| keys::parse_block(&kv.key))
                .collect();
            let Some(net) = pool
                .subnets(block_len)
                .unwrap()
                .find(|n| !taken.contains(&IpNet::V4(*n)))
            else {
                return false;
            };
            let aff_key = keys::affinity(&owner, &IpNet::V4(net));
            let pending = json!({"state": "pending", "deleted": false}).to_string();
            if store
                .create(aff_key.as_bytes(), pending.as_bytes())
                .is_err()
            {
                let (v, rev) = read(store, &aff_key).unwrap();
                if v["state"] != "confirmed"
                    && store
                        .update(aff_key.as_bytes(), pending.as_bytes(), rev)
                        .is_err()
                {
                    continue;
                }
            }
            let bkey = keys::block(&IpNet::V4(net));
            let block = fresh_block(&net, host).to_string();
            if store.create(bkey.as_bytes(), block.as_bytes()).is_err() {
                let (v, _) = read(store, &bkey).unwrap();
                if v["affinity"] != format!("host:{host}") {
                    if let Some((_, rev)) = read(store, &aff_key) {
                        let _ = store.delete(aff_key.as_bytes(), rev);
                    }
                    continue;
                }
            }
            let confirmed = json!({"state": "confirmed", "deleted": false}).to_string();
            if let Some((_, rev)) = read(store, &aff_key) {
                let _ = store.update(aff_key.as_bytes(), confirmed.as_bytes(), rev);
            }
            return true;
        }
        false
    }

    fn handle_add(store: &dyn Store, handle: &str, cidr: &str, delta: i64) -> bool {
        let key = keys::handle(handle);
        match read(store, &key) {
            None if delta > 0 => {
                let v = json!({"block": {cidr: delta}, "deleted": false});
                store
                    .create(key.as_bytes(), v.to_string().as_bytes())
                    .is_ok()
            }
            None => true,
            Some((mut v, rev)) => {
                let n = v["block"][cidr].as_i64().unwrap_or(0) + delta;
                if n <= 0 {
                    v["block"].as_object_mut().unwrap().remove(cidr);
                } else {
                    v["block"][cidr] = json!(n);
                }
                if v["block"].as_object().unwrap().is_empty() {
                    store.delete(key.as_bytes(), rev).is_ok()
                } else {
                    store
                        .update(key.as_bytes(), v.to_string().as_bytes(), rev)
                        .is_ok()
                }
            }
        }
    }

    /// One address for `handle` on `host`, the way Calico's IPAM assigns it.
    pub fn assign(
        store: &dyn Store,
        pool: &Ipv4Net,
        block_len: u8,
        host: &str,
        handle: &str,
    ) -> IpAddr {
        let owner = Owner::host(host);
        for _ in 0..1000 {
            let prefix = keys::affinity_family_prefix(&owner, true);
            let affs = store
                .range(
                    prefix.as_bytes(),
                    prefix_end(prefix.as_bytes()).as_deref(),
                    0,
                )
                .unwrap()
                .kvs;
            let mut target = None;
            for kv in affs {
                let Some((_, net)) = keys::parse_affinity(&kv.key) else {
                    continue;
                };
                let bkey = keys::block(&net);
                if let Some((v, rev)) = read(store, &bkey)
                    && v["affinity"] == format!("host:{host}")
                    && !v["unallocated"].as_array().unwrap().is_empty()
                {
                    target = Some((bkey, v, rev, net));
                    break;
                }
            }
            let Some((bkey, mut v, rev, net)) = target else {
                assert!(claim(store, pool, block_len, host), "the pool is full");
                continue;
            };
            let cidr = net.to_string();
            if !handle_add(store, handle, &cidr, 1) {
                continue;
            }
            let ord = v["unallocated"]
                .as_array_mut()
                .unwrap()
                .remove(0)
                .as_u64()
                .unwrap() as usize;
            if v["attributes"].is_null() {
                v["attributes"] = json!([]);
            }
            let attrs = v["attributes"].as_array_mut().unwrap();
            attrs.push(json!({"handle_id": handle, "secondary": {"node": host}}));
            let idx = attrs.len() - 1;
            v["allocations"][ord] = json!(idx);
            let seq = v["sequenceNumber"].as_u64().unwrap();
            v["sequenceNumberForAllocation"][ord.to_string()] = json!(seq);
            v["sequenceNumber"] = json!(seq + 1);
            if store
                .update(bkey.as_bytes(), v.to_string().as_bytes(), rev)
                .is_ok()
            {
                let IpNet::V4(n4) = net else { unreachable!() };
                return IpAddr::V4(Ipv4Addr::from(u32::from(n4.network()) + ord as u32));
            }
            // Lost the race for the block: undo the handle increment and retry.
            while !handle_add(store, handle, &cidr, -1) {}
        }
        panic!("Calico's allocator gave up after 1000 attempts");
    }

    /// Releases everything `handle` holds, the way Calico's IPAM does; the addresses freed.
    pub fn release(store: &dyn Store, handle: &str) -> Vec<IpAddr> {
        let mut freed = Vec::new();
        let Some((h, _)) = read(store, &keys::handle(handle)) else {
            return freed;
        };
        for cidr in h["block"].as_object().unwrap().keys() {
            let net: IpNet = cidr.parse().unwrap();
            let bkey = keys::block(&net);
            while let Some((mut v, rev)) = read(store, &bkey) {
                let attrs = v["attributes"].as_array().cloned().unwrap_or_default();
                let mine: Vec<usize> = blocks_of(&v)
                    .into_iter()
                    .filter(|&o| {
                        attrs[v["allocations"][o].as_u64().unwrap() as usize]["handle_id"] == handle
                    })
                    .collect();
                if mine.is_empty() {
                    break;
                }
                for &o in &mine {
                    v["allocations"][o] = Value::Null;
                    v["unallocated"].as_array_mut().unwrap().push(json!(o));
                }
                // Compact the attributes: drop unreferenced ones and renumber.
                let used: std::collections::BTreeSet<u64> = blocks_of(&v)
                    .iter()
                    .map(|&o| v["allocations"][o].as_u64().unwrap())
                    .collect();
                let keep: Vec<u64> = (0..attrs.len() as u64)
                    .filter(|i| used.contains(i))
                    .collect();
                for o in blocks_of(&v) {
                    let old = v["allocations"][o].as_u64().unwrap();
                    v["allocations"][o] = json!(keep.iter().position(|k| *k == old).unwrap());
                }
                v["attributes"] = if keep.is_empty() {
                    Value::Null
                } else {
                    json!(
                        keep.iter()
                            .map(|&i| attrs[i as usize].clone())
                            .collect::<Vec<_>>()
                    )
                };
                let seq = v["sequenceNumber"].as_u64().unwrap();
                v["sequenceNumber"] = json!(seq + 1);
                if store
                    .update(bkey.as_bytes(), v.to_string().as_bytes(), rev)
                    .is_ok()
                {
                    let IpNet::V4(n4) = net else { unreachable!() };
                    freed.extend(
                        mine.iter().map(|&o| {
                            IpAddr::V4(Ipv4Addr::from(u32::from(n4.network()) + o as u32))
                        }),
                    );
                    while !handle_add(store, handle, cidr, -(mine.len() as i64)) {}
                    break;
                }
            }
        }
        freed
    }
}
