//! The conformance suite every [`Store`] backend must pass (feature `conformance`).
//!
//! Each `check_*` function exercises one part of the contract against a store and panics
//! with a message naming the violated rule. [`run_all`] runs every check. All keys written
//! start with the given `prefix`, so one store (e.g. a shared etcd) can host several runs
//! with different prefixes; the checks assert exact revision steps, so nothing else may
//! write to the store while a check runs.
//!
//! ```
//! use calico_datastore::{MemoryStore, conformance};
//! conformance::run_all(&MemoryStore::new(), "conf/");
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Compare, KeyValue, ReadOp, ReadResult, Revision, TxnOp, prefix_end};
use crate::watch::{Watch, WatchEvent};

fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

fn key(prefix: &str, k: &str) -> Vec<u8> {
    format!("{prefix}{k}").into_bytes()
}

fn get(store: &dyn Store, k: &[u8]) -> Option<KeyValue> {
    ok(store.get(k), "get")
}

fn expect_conflict(r: Result<impl std::fmt::Debug, StoreError>, what: &str) -> crate::Conflict {
    match r {
        Err(StoreError::Conflict { conflict, .. }) => conflict,
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

/// Runs every check, each under its own sub-prefix of `prefix`.
pub fn run_all(store: &dyn Store, prefix: &str) {
    check_empty(store, &format!("{prefix}empty/"));
    check_crud(store, &format!("{prefix}crud/"));
    check_revisions(store, &format!("{prefix}rev/"));
    check_txn_all_or_nothing(store, &format!("{prefix}txn/"));
    check_range(store, &format!("{prefix}range/"));
    check_range_compares(store, &format!("{prefix}rcmp/"));
    check_read_batch(store, &format!("{prefix}batch/"));
    check_delete(store, &format!("{prefix}del/"));
    check_values(store, &format!("{prefix}val/"));
    check_limits(store, &format!("{prefix}lim/"));
    check_read_batch_consistency(store, &format!("{prefix}cons/"), 300);
    check_concurrent_increments(store, &format!("{prefix}inc/"), 4, 25);
}

/// Absent keys read as `None`, empty ranges as empty; the store revision is at least 1.
pub fn check_empty(store: &dyn Store, prefix: &str) {
    assert!(ok(store.revision(), "revision") >= 1, "revision below 1");
    assert_eq!(get(store, &key(prefix, "nothing")), None);
    let r = ok(
        store.range(
            &key(prefix, ""),
            prefix_end(prefix.as_bytes()).as_deref(),
            0,
        ),
        "range",
    );
    assert!(r.kvs.is_empty() && !r.more, "empty range returned {r:?}");
}

/// create / update / put / delete with their CAS conflicts.
pub fn check_crud(store: &dyn Store, prefix: &str) {
    let a = key(prefix, "a");
    let r0 = ok(store.revision(), "revision");
    let r1 = ok(store.create(&a, b"one"), "create");
    assert!(
        r1 > r0,
        "create did not advance the revision ({r0} -> {r1})"
    );
    let kv = get(store, &a).unwrap_or_else(|| panic!("created key missing"));
    assert_eq!(
        kv,
        KeyValue {
            key: a.clone(),
            value: b"one".to_vec(),
            create_revision: r1,
            mod_revision: r1
        }
    );

    // create of an existing key: conflict, reporting its revision.
    let c = expect_conflict(store.create(&a, b"two"), "create of an existing key");
    assert_eq!(c.keys.len(), 1);
    assert_eq!(c.keys[0].key, a);
    assert_eq!(c.keys[0].expected, None);
    assert_eq!(c.keys[0].current, Some(r1));
    assert!(c.revision >= r1);

    // update with a stale revision: conflict; with the right one: success.
    let c = expect_conflict(
        store.update(&a, b"two", r1 + 1000),
        "update with a wrong revision",
    );
    assert_eq!(
        (c.keys[0].expected, c.keys[0].current),
        (Some(r1 + 1000), Some(r1))
    );
    assert_eq!(get(store, &a).map(|kv| kv.value), Some(b"one".to_vec()));
    let r2 = ok(store.update(&a, b"two", r1), "update");
    assert!(r2 > r1);
    let kv = get(store, &a).unwrap_or_else(|| panic!("updated key missing"));
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"two"[..], r1, r2)
    );
    // The old revision is now stale.
    expect_conflict(
        store.update(&a, b"three", r1),
        "update with a stale revision",
    );

    // put: unconditional.
    let r3 = ok(store.put(&a, b"three"), "put");
    assert!(r3 > r2);

    // delete: CAS on the revision.
    expect_conflict(store.delete(&a, r2), "delete with a stale revision");
    assert!(get(store, &a).is_some());
    let r4 = ok(store.delete(&a, r3), "delete");
    assert!(r4 > r3);
    assert_eq!(get(store, &a), None);

    // update / delete of an absent key: conflict reporting absence.
    let c = expect_conflict(store.update(&a, b"x", r3), "update of an absent key");
    assert_eq!((c.keys[0].expected, c.keys[0].current), (Some(r3), None));
    expect_conflict(store.delete(&a, r3), "delete of an absent key");
    assert_eq!(
        ok(store.revision(), "revision"),
        r4,
        "failed requests changed the revision"
    );
}

/// Every changing transaction advances the revision by exactly one; all its puts get that
/// mod revision; create revisions survive overwrites; failed and no-op transactions leave
/// the revision alone.
pub fn check_revisions(store: &dyn Store, prefix: &str) {
    let (a, b, c) = (key(prefix, "a"), key(prefix, "b"), key(prefix, "c"));
    let r0 = ok(store.revision(), "revision");
    let r1 = ok(store.put(&a, b"1"), "put a");
    assert_eq!(r1, r0 + 1, "one put must advance the revision by one");
    let r2 = ok(
        store.txn(
            &[],
            &[
                TxnOp::put(a.clone(), "2"),
                TxnOp::put(b.clone(), "2"),
                TxnOp::put(c.clone(), "2"),
            ],
        ),
        "3-key txn",
    )
    .revision;
    assert_eq!(
        r2,
        r1 + 1,
        "one transaction must advance the revision by one"
    );
    let (rev, kvs) = ok(store.get_many(&[&a, &b, &c]), "get_many");
    assert_eq!(rev, r2);
    for kv in kvs.iter() {
        let kv = kv
            .as_ref()
            .unwrap_or_else(|| panic!("key of the txn missing"));
        assert_eq!(kv.mod_revision, r2, "{kv:?}");
    }
    assert_eq!(
        kvs[0].as_ref().map(|k| k.create_revision),
        Some(r1),
        "create revision lost"
    );
    assert_eq!(kvs[1].as_ref().map(|k| k.create_revision), Some(r2));

    // A failed transaction and a transaction changing nothing keep the revision.
    expect_conflict(
        store.txn(&[Compare::absent(a.clone())], &[TxnOp::put(b.clone(), "x")]),
        "txn with a failing compare",
    );
    let nothing = ok(
        store.txn(&[], &[TxnOp::delete(key(prefix, "never-existed"))]),
        "delete of an absent key",
    );
    assert_eq!(
        nothing.revision, r2,
        "a txn that changed nothing advanced the revision"
    );
    let empty = ok(
        store.txn(&[Compare::mod_revision(a.clone(), r2)], &[]),
        "txn without ops",
    );
    assert_eq!(empty.revision, r2);
    assert_eq!(ok(store.revision(), "revision"), r2);

    // Re-creating a deleted key gives it a new create revision.
    let r3 = ok(store.delete(&b, r2), "delete b");
    let r4 = ok(store.create(&b, b"again"), "recreate b");
    assert_eq!((r3, r4), (r2 + 1, r2 + 2));
    let kv = get(store, &b).unwrap_or_else(|| panic!("recreated key missing"));
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
}

/// A transaction with one failing compare applies none of its ops, and the conflict lists
/// exactly the failing compares with current revisions.
pub fn check_txn_all_or_nothing(store: &dyn Store, prefix: &str) {
    let (a, b, c, d) = (
        key(prefix, "a"),
        key(prefix, "b"),
        key(prefix, "c"),
        key(prefix, "d"),
    );
    let ra = ok(store.create(&a, b"a0"), "create a");
    let rb = ok(store.create(&b, b"b0"), "create b");
    let before = ok(store.revision(), "revision");

    let c1 = expect_conflict(
        store.txn(
            &[
                Compare::mod_revision(a.clone(), ra), // holds
                Compare::absent(b.clone()),           // fails: b exists
                Compare::absent(c.clone()),           // holds
                Compare::mod_revision(d.clone(), 7),  // fails: d absent
            ],
            &[
                TxnOp::put(a.clone(), "a1"),
                TxnOp::delete(b.clone()),
                TxnOp::put(c.clone(), "c1"),
            ],
        ),
        "txn with failing compares",
    );
    assert_eq!(c1.revision, before);
    let failed: Vec<_> = c1
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.expected, k.current))
        .collect();
    assert_eq!(
        failed,
        vec![(b.clone(), None, Some(rb)), (d.clone(), Some(7), None)],
        "the conflict must list exactly the failed compares, in order"
    );
    let (rev, kvs) = ok(store.get_many(&[&a, &b, &c]), "get_many");
    assert_eq!(rev, before, "a failed txn changed the revision");
    assert_eq!(
        kvs[0].as_ref().map(|k| k.value.clone()),
        Some(b"a0".to_vec())
    );
    assert_eq!(
        kvs[1].as_ref().map(|k| k.value.clone()),
        Some(b"b0".to_vec())
    );
    assert_eq!(kvs[2], None, "a failed txn wrote c");

    // With the compares fixed, everything applies at once.
    let r = ok(
        store.txn(
            &[
                Compare::mod_revision(a.clone(), ra),
                Compare::mod_revision(b.clone(), rb),
                Compare::absent(c.clone()),
                Compare::unchanged(d.clone(), None),
            ],
            &[
                TxnOp::put(a.clone(), "a1"),
                TxnOp::delete(b.clone()),
                TxnOp::put(c.clone(), "c1"),
            ],
        ),
        "txn",
    )
    .revision;
    let (rev, kvs) = ok(store.get_many(&[&a, &b, &c]), "get_many");
    assert_eq!(rev, r);
    assert_eq!(
        kvs[0].as_ref().map(|k| (k.value.clone(), k.mod_revision)),
        Some((b"a1".to_vec(), r))
    );
    assert_eq!(kvs[1], None);
    assert_eq!(
        kvs[2].as_ref().map(|k| (k.value.clone(), k.mod_revision)),
        Some((b"c1".to_vec(), r))
    );
}

/// A range compare holds while no key of the range was created or modified after its
/// revision (an empty range holds, deletions are not seen), fails otherwise reporting the
/// range's latest mod revision, and rejects an end not after its start.
pub fn check_range_compares(store: &dyn Store, prefix: &str) {
    let p = format!("{prefix}p/");
    let (a, b, outside) = (key(&p, "a"), key(&p, "b"), key(prefix, "q"));
    let empty_rev = ok(store.revision(), "revision");
    // An empty range holds at any revision.
    ok(
        store.txn(
            &[Compare::prefix_unmodified(p.clone(), 1)],
            &[TxnOp::put(outside.clone(), "o0")],
        ),
        "txn over an empty range",
    );
    assert!(empty_rev >= 1);
    let ra = ok(store.create(&a, b"a0"), "create a");
    let rb = ok(store.create(&b, b"b0"), "create b");
    // Unchanged since rb: holds; writes outside the range do not matter.
    ok(store.put(&outside, b"o1"), "put outside");
    let r = ok(
        store.txn(
            &[Compare::prefix_unmodified(p.clone(), rb)],
            &[TxnOp::put(outside.clone(), "o2")],
        ),
        "txn with a holding range compare",
    )
    .revision;
    assert!(r > rb);
    // Modified after ra (b was created at rb): fails, names the range and its latest change.
    let end = prefix_end(p.as_bytes());
    let c = expect_conflict(
        store.txn(
            &[
                Compare::absent(outside.clone()),
                Compare::range_unmodified(p.clone(), end.clone(), ra),
            ],
            &[TxnOp::put(outside.clone(), "o3")],
        ),
        "txn with a failing range compare",
    );
    let failed: Vec<_> = c
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.range_end.clone(), k.expected, k.current))
        .collect();
    assert_eq!(
        failed,
        vec![
            (outside.clone(), None, None, Some(r)),
            (p.clone().into_bytes(), end.clone(), Some(ra), Some(rb)),
        ],
        "the conflict must list the failed key and range compares"
    );
    // A sub-range holding only a: holds at ra.
    ok(
        store.txn(
            &[Compare::range_unmodified(a.clone(), Some(b.clone()), ra)],
            &[TxnOp::put(outside.clone(), "o4")],
        ),
        "txn over a sub-range",
    );
    // Deleting b is not seen by a compare at ra over [a, b]: only a is left.
    ok(store.delete(&b, rb), "delete b");
    ok(
        store.txn(
            &[Compare::prefix_unmodified(p.clone(), ra)],
            &[TxnOp::put(outside.clone(), "o5")],
        ),
        "txn after a deletion in the range",
    );
    // Modifying a makes a compare at its old revision fail, to the end of the keyspace too.
    let ra2 = ok(store.put(&a, b"a1"), "put a");
    let c = expect_conflict(
        store.txn(
            &[Compare::range_unmodified(p.clone(), None, ra2 - 1)],
            &[TxnOp::put(outside.clone(), "o6")],
        ),
        "open-ended range compare",
    );
    assert_eq!(c.keys.len(), 1);
    assert!(
        c.keys[0].current >= Some(ra2),
        "the open-ended range's latest change must be reported: {:?}",
        c.keys[0]
    );
    // A range whose end is not after its start is invalid.
    match store.txn(
        &[Compare::range_unmodified(b.clone(), Some(a.clone()), 1)],
        &[TxnOp::put(outside.clone(), "o7")],
    ) {
        Err(StoreError::InvalidRequest { .. }) => {}
        other => panic!("a reversed compared range must be invalid, got {other:?}"),
    }
}

/// Ranges come back in byte order, honour `[start, end)` and the limit, and report `more`.
pub fn check_range(store: &dyn Store, prefix: &str) {
    // Insert out of order, including bytes that sort differently signed or as UTF-8.
    let suffixes: Vec<Vec<u8>> = vec![
        b"k/10".to_vec(),
        b"k/02".to_vec(),
        vec![b'k', b'/', 0xff],
        b"k/00".to_vec(),
        vec![b'k', b'/', 0x80],
        b"k/01".to_vec(),
        vec![b'k', b'/', 0x00],
        b"k/11".to_vec(),
        vec![b'k', b'/', 0x7f],
        b"k/03".to_vec(),
    ];
    let full = |s: &[u8]| [prefix.as_bytes(), s].concat();
    for chunk in suffixes.chunks(3) {
        let ops: Vec<_> = chunk
            .iter()
            .map(|s| TxnOp::put(full(s), s.clone()))
            .collect();
        ok(store.txn(&[], &ops), "put range keys");
    }
    // Neighbours outside the k/ prefix.
    ok(store.put(&full(b"k."), b"before"), "put");
    ok(store.put(&full(b"k0"), b"after"), "put");

    let mut sorted: Vec<Vec<u8>> = suffixes.iter().map(|s| full(s)).collect();
    sorted.sort();
    let kprefix = full(b"k/");
    let all = ok(
        store.read(&[ReadOp::prefix(kprefix.clone(), 0)]),
        "prefix read",
    );
    let Some(ReadResult::Range(all)) = all.results.into_iter().next() else {
        panic!("a range read did not return a range result");
    };
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, sorted, "prefix range not in byte order or not exact");
    assert!(!all.more);
    for kv in &all.kvs {
        assert_eq!(kv.value, kv.key[prefix.len()..].to_vec());
    }

    let end = prefix_end(&kprefix);
    for limit in [1usize, 4, 9, 10, 11, 100] {
        let r = ok(
            store.range(&kprefix, end.as_deref(), limit),
            "limited range",
        );
        let want = limit.min(sorted.len());
        assert_eq!(r.kvs.len(), want, "limit {limit}");
        assert_eq!(r.more, limit < sorted.len(), "more flag with limit {limit}");
        let got: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(got, sorted[..want].to_vec(), "limit {limit}");
    }

    // [k/01, k/10): start inclusive, end exclusive.
    let r = ok(
        store.range(&full(b"k/01"), Some(&full(b"k/10")), 0),
        "bounded range",
    );
    let got: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, vec![full(b"k/01"), full(b"k/02"), full(b"k/03")]);

    // Paging with a limit visits every key once.
    let mut start = kprefix.clone();
    let mut paged = Vec::new();
    loop {
        let page = ok(store.range(&start, end.as_deref(), 3), "page");
        paged.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    assert_eq!(paged, sorted, "paging lost or repeated keys");

    // An unbounded end reaches past the prefix.
    let r = ok(store.range(&full(b"k/\xff"), None, 2), "unbounded range");
    let got: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, vec![full(b"k/\xff"), full(b"k0")]);

    // An empty start is the beginning of the keyspace (the store holds at least our keys).
    let first = ok(store.range(b"", None, 1), "range from the empty key");
    assert_eq!(first.kvs.len(), 1);
    assert!(first.more);
    assert!(first.kvs[0].key.as_slice() <= sorted[0].as_slice());

    // An end not after the start is rejected.
    match store.range(&full(b"k/05"), Some(&full(b"k/05")), 0) {
        Err(StoreError::InvalidRequest { .. }) => {}
        other => panic!("empty range [x, x) accepted: {other:?}"),
    }
}

/// A read batch returns one result per op, in order, at the current revision.
pub fn check_read_batch(store: &dyn Store, prefix: &str) {
    let (a, b) = (key(prefix, "a"), key(prefix, "b"));
    let ra = ok(store.put(&a, b"A"), "put");
    let rb = ok(store.put(&b, b"B"), "put");
    let resp = ok(
        store.read(&[
            ReadOp::get(b.clone()),
            ReadOp::prefix(key(prefix, ""), 0),
            ReadOp::get(key(prefix, "missing")),
            ReadOp::get(a.clone()),
        ]),
        "read batch",
    );
    assert_eq!(resp.revision, rb);
    assert_eq!(resp.results.len(), 4);
    let mut it = resp.results.into_iter();
    assert_eq!(
        it.next().and_then(ReadResult::into_get).map(|kv| kv.value),
        Some(b"B".to_vec())
    );
    let range = it
        .next()
        .and_then(ReadResult::into_range)
        .unwrap_or_else(|| panic!("second result is not a range"));
    assert_eq!(range.kvs.len(), 2);
    assert_eq!(it.next(), Some(ReadResult::Get(None)));
    assert_eq!(
        it.next().and_then(ReadResult::into_get).map(|kv| kv.value),
        Some(b"A".to_vec())
    );
    // A keys-only range: the same keys and revisions, no values, and its limit.
    let prefix_start = key(prefix, "");
    let keys_only = ok(
        store.read(&[
            ReadOp::keys(prefix_start.clone(), prefix_end(&prefix_start), 0),
            ReadOp::keys(prefix_start.clone(), prefix_end(&prefix_start), 1),
        ]),
        "keys-only read",
    );
    let mut it = keys_only.results.into_iter();
    let all = it
        .next()
        .and_then(ReadResult::into_range)
        .unwrap_or_else(|| panic!("a keys-only read is not a range"));
    assert_eq!(
        all.kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.len(), kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![(a.clone(), 0, ra), (b.clone(), 0, rb)]
    );
    assert!(!all.more);
    let first = it
        .next()
        .and_then(ReadResult::into_range)
        .unwrap_or_else(|| panic!("a keys-only read is not a range"));
    assert_eq!(first.kvs.len(), 1);
    assert!(first.more);
    // An empty batch is a revision probe.
    assert_eq!(ok(store.read(&[]), "empty batch").revision, rb);
}

/// Deletes: a delete of an absent key is a no-op; deleted keys vanish from ranges; a
/// compare on a deleted key sees it absent.
pub fn check_delete(store: &dyn Store, prefix: &str) {
    let (a, b) = (key(prefix, "a"), key(prefix, "b"));
    ok(store.put(&a, b"1"), "put");
    let rb = ok(store.put(&b, b"2"), "put");
    let r = ok(
        store.txn(
            &[],
            &[TxnOp::delete(a.clone()), TxnOp::delete(key(prefix, "zz"))],
        ),
        "delete",
    );
    assert_eq!(r.revision, rb + 1);
    let range = ok(
        store.range(
            &key(prefix, ""),
            prefix_end(prefix.as_bytes()).as_deref(),
            0,
        ),
        "range",
    );
    assert_eq!(
        range
            .kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        vec![b.clone()]
    );
    ok(
        store.txn(
            &[Compare::absent(a.clone())],
            &[TxnOp::put(a.clone(), "back")],
        ),
        "recreate",
    );
    // Deleting and writing different keys in one txn.
    let ra = get(store, &a).map(|kv| kv.mod_revision).unwrap_or_default();
    ok(
        store.txn(
            &[Compare::mod_revision(a.clone(), ra)],
            &[TxnOp::delete(a.clone()), TxnOp::put(b.clone(), "3")],
        ),
        "delete and put",
    );
    assert_eq!(get(store, &a), None);
    assert_eq!(get(store, &b).map(|kv| kv.value), Some(b"3".to_vec()));
}

/// Values round-trip byte for byte: empty, binary, 100 KiB.
pub fn check_values(store: &dyn Store, prefix: &str) {
    let big: Vec<u8> = (0..100 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let binary: Vec<u8> = (0..=255u8).collect();
    for (name, value) in [("empty", Vec::new()), ("binary", binary), ("big", big)] {
        let k = key(prefix, name);
        ok(store.put(&k, &value), "put");
        assert_eq!(
            get(store, &k).map(|kv| kv.value),
            Some(value),
            "{name} value changed"
        );
    }
}

/// The request limits: `max_txn_ops` ops pass, one more is `TooManyOps`; empty keys and
/// keys written twice are `InvalidRequest`; a rejected request writes nothing.
pub fn check_limits(store: &dyn Store, prefix: &str) {
    let max = store.max_txn_ops();
    let ops: Vec<_> = (0..max)
        .map(|i| TxnOp::put(key(prefix, &format!("{i:05}")), "x"))
        .collect();
    let before = ok(store.revision(), "revision");
    let r = ok(store.txn(&[], &ops), "txn of max_txn_ops puts").revision;
    assert_eq!(r, before + 1);
    let reads: Vec<_> = (0..max)
        .map(|i| ReadOp::get(key(prefix, &format!("{i:05}"))))
        .collect();
    let resp = ok(store.read(&reads), "read of max_txn_ops gets");
    assert!(
        resp.results
            .iter()
            .all(|r| matches!(r, ReadResult::Get(Some(_))))
    );

    let mut too_many = ops.clone();
    too_many.push(TxnOp::put(key(prefix, "one-more"), "x"));
    match store.txn(&[], &too_many) {
        Err(StoreError::TooManyOps { count, max: m, .. }) => assert_eq!((count, m), (max + 1, max)),
        other => panic!("{} ops accepted: {other:?}", max + 1),
    }
    let compares: Vec<_> = (0..=max)
        .map(|i| Compare::absent(key(prefix, &format!("c{i}"))))
        .collect();
    assert!(matches!(
        store.txn(&compares, &[TxnOp::put(key(prefix, "one-more"), "x")]),
        Err(StoreError::TooManyOps { .. })
    ));
    let mut reads = reads;
    reads.push(ReadOp::get(key(prefix, "one-more")));
    assert!(matches!(
        store.read(&reads),
        Err(StoreError::TooManyOps { .. })
    ));

    let dup = [
        TxnOp::put(key(prefix, "d"), "1"),
        TxnOp::delete(key(prefix, "d")),
    ];
    assert!(matches!(
        store.txn(&[], &dup),
        Err(StoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        store.txn(&[], &[TxnOp::put(Vec::new(), "x")]),
        Err(StoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        store.get(b""),
        Err(StoreError::InvalidRequest { .. })
    ));
    assert_eq!(
        ok(store.revision(), "revision"),
        r,
        "a rejected request changed the store"
    );
    assert_eq!(get(store, &key(prefix, "one-more")), None);
    assert_eq!(get(store, &key(prefix, "d")), None);
}

/// A writer keeps two keys equal by updating both in each transaction while a reader reads
/// both in one batch at least `rounds` times (and until it has seen several writes): every
/// batch must see them equal, at a revision no older than either key.
pub fn check_read_batch_consistency(store: &dyn Store, prefix: &str, rounds: usize) {
    let (x, y) = (key(prefix, "x"), key(prefix, "y"));
    ok(
        store.txn(
            &[],
            &[TxnOp::put(x.clone(), "0"), TxnOp::put(y.clone(), "0")],
        ),
        "init",
    );
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let v = n.to_string();
                ok(
                    store.txn(
                        &[],
                        &[TxnOp::put(x.clone(), v.clone()), TxnOp::put(y.clone(), v)],
                    ),
                    "writer",
                );
                writes.store(n, Ordering::Relaxed);
            }
        });
        let mut last_rev: Revision = 0;
        let mut distinct = std::collections::BTreeSet::new();
        let started = std::time::Instant::now();
        let mut round = 0;
        // At least `rounds` batches, and until the reads interleaved with several writes.
        while (round < rounds || distinct.len() < 3) && started.elapsed() < Duration::from_secs(20)
        {
            round += 1;
            let resp = ok(
                store.read(&[ReadOp::get(x.clone()), ReadOp::get(y.clone())]),
                "reader",
            );
            let mut it = resp.results.into_iter().map(ReadResult::into_get);
            let (Some(Some(kx)), Some(Some(ky))) = (it.next(), it.next()) else {
                panic!("x or y missing");
            };
            assert_eq!(kx.value, ky.value, "a read batch saw two revisions");
            assert_eq!(kx.mod_revision, ky.mod_revision);
            assert!(
                resp.revision >= kx.mod_revision,
                "batch revision older than its data"
            );
            assert!(resp.revision >= last_rev, "revisions went backwards");
            last_rev = resp.revision;
            distinct.insert(kx.value);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            distinct.len() >= 2,
            "the reads never saw a write: nothing was checked"
        );
    });
    assert!(writes.load(Ordering::Relaxed) > 0, "the writer never wrote");
}

/// Reads a decimal counter at `key`, adds one with a CAS transaction, and retries on
/// conflicts (only) with backoff. Returns the new value and the number of conflicts.
pub fn cas_increment(store: &dyn Store, key: &[u8], seed: u64) -> Result<(u64, u32), StoreError> {
    let policy = BackoffPolicy {
        base: Duration::from_micros(200),
        cap: Duration::from_millis(20),
        max_retries: u32::MAX,
        deadline: Duration::from_secs(120),
    };
    let mut backoff = Backoff::new(policy, seed);
    let started = std::time::Instant::now();
    let mut conflicts = 0;
    loop {
        let cur = store.get(key)?;
        let value = match &cur {
            Some(kv) => parse_counter(&kv.value),
            None => 0,
        };
        let next = value + 1;
        match store.txn(
            &[Compare::unchanged(key, cur.map(|kv| kv.mod_revision))],
            &[TxnOp::put(key, next.to_string())],
        ) {
            Ok(_) => return Ok((next, conflicts)),
            Err(e) if e.is_conflict() => {
                conflicts += 1;
                match backoff.next_delay(started.elapsed()) {
                    Some(d) => std::thread::sleep(d),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Parses a decimal counter value (0 if malformed).
pub fn parse_counter(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `threads` threads each add one to a shared counter `per_thread` times with CAS retries:
/// the final value must be exactly `threads * per_thread` (no lost update), and every
/// thread must have seen distinct values.
pub fn check_concurrent_increments(
    store: &dyn Store,
    prefix: &str,
    threads: usize,
    per_thread: usize,
) {
    let counter = key(prefix, "counter");
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (counter, seen) = (&counter, &seen);
            s.spawn(move || {
                let mut mine = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let (v, _) = ok(
                        cas_increment(store, counter, (t * 1_000_003 + i) as u64),
                        "increment",
                    );
                    mine.push(v);
                }
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(mine);
            });
        }
    });
    let total = (threads * per_thread) as u64;
    let final_value = get(store, &counter).map(|kv| parse_counter(&kv.value));
    assert_eq!(final_value, Some(total), "lost updates");
    let mut seen = seen
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "two increments returned the same value"
    );
}

/// One increment of the counter `{prefix}counter` whose transaction also creates the log
/// key `{prefix}log/{writer}/{seq}`: an attempt whose outcome is unknown (a broken
/// connection, a timeout, a crash of a peer) is resolved by reading the log key, so each
/// `(writer, seq)` is applied exactly once. Retries conflicts and transient errors until
/// `patience` runs out; returns the number of retries.
pub fn logged_increment(
    store: &dyn Store,
    prefix: &str,
    writer: usize,
    seq: usize,
    patience: Duration,
) -> Result<u32, StoreError> {
    let counter = format!("{prefix}counter").into_bytes();
    let log = format!("{prefix}log/{writer}/{seq:06}").into_bytes();
    let policy = BackoffPolicy {
        base: Duration::from_micros(200),
        cap: Duration::from_millis(50),
        max_retries: u32::MAX,
        deadline: patience,
    };
    let mut backoff = Backoff::new(policy, (writer as u64) << 32 | seq as u64);
    let started = std::time::Instant::now();
    let mut retries = 0;
    loop {
        let outcome = store.get_many(&[&counter, &log]).and_then(|(_, kvs)| {
            if kvs[1].is_some() {
                return Ok(true); // an earlier attempt was applied after all
            }
            let cur = kvs[0].clone();
            let next = cur.as_ref().map_or(0, |kv| parse_counter(&kv.value)) + 1;
            store
                .txn(
                    &[
                        Compare::unchanged(counter.clone(), cur.map(|kv| kv.mod_revision)),
                        Compare::absent(log.clone()),
                    ],
                    &[
                        TxnOp::put(counter.clone(), next.to_string()),
                        TxnOp::put(log.clone(), next.to_string()),
                    ],
                )
                .map(|_| true)
        });
        match outcome {
            Ok(_) => return Ok(retries),
            Err(e) if e.is_retriable() => match backoff.next_delay(started.elapsed()) {
                Some(wait) => {
                    retries += 1;
                    std::thread::sleep(wait);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// Checks the state [`logged_increment`] calls leave under `prefix`: the counter equals the
/// number of log keys and the log values are exactly `1..=n` (no update lost, none applied
/// twice). Returns `n`.
pub fn check_logged_counter(store: &dyn Store, prefix: &str) -> u64 {
    let counter =
        get(store, format!("{prefix}counter").as_bytes()).map_or(0, |kv| parse_counter(&kv.value));
    let log_prefix = format!("{prefix}log/").into_bytes();
    let logs = ok(
        store.range(&log_prefix, prefix_end(&log_prefix).as_deref(), 0),
        "range over the log",
    );
    let mut values: Vec<u64> = logs.kvs.iter().map(|kv| parse_counter(&kv.value)).collect();
    values.sort_unstable();
    assert_eq!(
        counter,
        values.len() as u64,
        "counter and log disagree: lost or doubled updates"
    );
    assert_eq!(
        values,
        (1..=counter).collect::<Vec<_>>(),
        "two increments saw the same value"
    );
    counter
}

/// Runs every watch check (ordering and content, concurrent writers, compaction), each
/// under its own sub-prefix of `prefix`.
pub fn run_watch(store: &dyn Store, prefix: &str) {
    check_watch_events(store, &format!("{prefix}wev/"));
    check_watch_concurrent_writers(store, &format!("{prefix}wcon/"), 4, 25);
    check_watch_compaction(store, &format!("{prefix}wcmp/"));
}

/// Reads a watch until it has returned changes up to `revision` (or 20 s passed); checks
/// that every call returned whole revisions in increasing order.
pub fn collect_until(watch: &mut dyn Watch, revision: Revision) -> Vec<WatchEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut out: Vec<WatchEvent> = Vec::new();
    while out.last().map_or(0, WatchEvent::revision) < revision {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch stopped at {:?} before revision {revision}",
            out.last().map(WatchEvent::revision)
        );
        let batch = ok(watch.next(Duration::from_millis(500)), "watch next");
        if let (Some(last), Some(first)) = (out.last(), batch.first()) {
            assert!(
                first.revision() > last.revision(),
                "a revision was split across calls or went backwards: {} after {}",
                first.revision(),
                last.revision()
            );
        }
        out.extend(batch);
    }
    assert!(
        out.windows(2).all(|w| w[0].revision() <= w[1].revision()),
        "events out of revision order: {:?}",
        out.iter().map(WatchEvent::revision).collect::<Vec<_>>()
    );
    out
}

fn summary(events: &[WatchEvent]) -> Vec<(String, String, Option<String>, Revision)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    events
        .iter()
        .map(|e| match e {
            WatchEvent::Put { kv } => (
                "put".to_owned(),
                text(&kv.key),
                Some(text(&kv.value)),
                kv.mod_revision,
            ),
            WatchEvent::Delete {
                key,
                revision,
                prev,
            } => (
                "delete".to_owned(),
                text(key),
                prev.as_ref().map(|p| text(&p.value)),
                *revision,
            ),
        })
        .collect()
}

/// A watch from a revision yields exactly the changes under its prefix after it, in order:
/// puts with their value and revisions, deletes with the previous value, a transaction's
/// changes under one revision; a watch opened later from the same revision replays them;
/// a watch from 0 starts at the next change; keys outside the prefix never appear.
pub fn check_watch_events(store: &dyn Store, prefix: &str) {
    let (a, b, c, d) = (
        key(prefix, "a"),
        key(prefix, "b"),
        key(prefix, "c"),
        key(prefix, "d"),
    );
    let outside = format!("{}~outside", prefix.trim_end_matches('/')).into_bytes();
    let start = ok(store.revision(), "revision") + 1;
    let mut live = ok(store.watch(prefix.as_bytes(), start), "watch");
    let r1 = ok(store.create(&a, b"1"), "create a");
    let r2 = ok(store.put(&b, b"2"), "put b");
    ok(store.put(&outside, b"x"), "put outside the prefix");
    let r4 = ok(store.update(&a, b"3", r1), "update a");
    let r5 = ok(store.delete(&b, r2), "delete b");
    let r6 = ok(
        store.txn(
            &[],
            &[
                TxnOp::put(c.clone(), b"4".to_vec()),
                TxnOp::put(d.clone(), b"5".to_vec()),
                TxnOp::delete(a.clone()),
            ],
        ),
        "txn",
    )
    .revision;
    // A delete of an absent key changes nothing and must not appear.
    ok(store.txn(&[], &[TxnOp::delete(b.clone())]), "no-op delete");
    let s = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let o = |v: &str| Some(v.to_owned());
    let expected = vec![
        ("put".to_owned(), s(&a), o("1"), r1),
        ("put".to_owned(), s(&b), o("2"), r2),
        ("put".to_owned(), s(&a), o("3"), r4),
        ("delete".to_owned(), s(&b), o("2"), r5),
    ];
    let mut last_txn = vec![
        ("put".to_owned(), s(&c), o("4"), r6),
        ("put".to_owned(), s(&d), o("5"), r6),
        ("delete".to_owned(), s(&a), o("3"), r6),
    ];
    last_txn.sort();
    let check = |events: Vec<WatchEvent>, what: &str| {
        let mut got = summary(&events);
        assert!(got.len() >= 4, "{what}: too few events: {got:?}");
        let mut tail = got.split_off(4);
        tail.sort();
        assert_eq!(got, expected, "{what}: single-key changes");
        assert_eq!(tail, last_txn, "{what}: the transaction's changes");
        let put_a = events.iter().find_map(|e| match e {
            WatchEvent::Put { kv } if kv.key == a && kv.mod_revision == r4 => Some(kv),
            _ => None,
        });
        assert_eq!(
            put_a.map(|kv| kv.create_revision),
            Some(r1),
            "{what}: an update keeps its create revision"
        );
    };
    check(collect_until(&mut *live, r6), "live watch");
    assert!(
        ok(live.next(Duration::from_millis(100)), "idle watch").is_empty(),
        "changes after the last write"
    );
    let mut replay = ok(store.watch(prefix.as_bytes(), start), "replaying watch");
    check(collect_until(&mut *replay, r6), "replaying watch");
    let mut fresh = ok(store.watch(prefix.as_bytes(), 0), "watch from now");
    let r7 = ok(store.put(&c, b"6"), "put c");
    let got = summary(&collect_until(&mut *fresh, r7));
    assert_eq!(
        got,
        vec![("put".to_owned(), s(&c), o("6"), r7)],
        "watch from now"
    );
}

/// `threads` writers increment their own counter and a shared one while a watch runs: the
/// watch sees every successful write exactly once, in revision order, and the last value of
/// each key it saw is the key's final value.
pub fn check_watch_concurrent_writers(
    store: &dyn Store,
    prefix: &str,
    threads: usize,
    per_thread: usize,
) {
    let start = ok(store.revision(), "revision") + 1;
    let mut watch = ok(store.watch(prefix.as_bytes(), start), "watch");
    let shared = key(prefix, "shared");
    std::thread::scope(|s| {
        for t in 0..threads {
            let shared = &shared;
            s.spawn(move || {
                let own = key(prefix, &format!("own{t}"));
                for i in 0..per_thread {
                    let seed = (t * 7_919 + i) as u64;
                    ok(cas_increment(store, &own, seed), "own increment");
                    ok(cas_increment(store, shared, seed), "shared increment");
                }
            });
        }
    });
    let end = ok(store.revision(), "revision");
    let events = collect_until(&mut *watch, end);
    let writes = 2 * threads * per_thread;
    assert_eq!(events.len(), writes, "events seen for {writes} writes");
    let mut revisions: Vec<Revision> = events.iter().map(WatchEvent::revision).collect();
    revisions.dedup();
    assert_eq!(revisions.len(), writes, "each write is its own revision");
    let mut last: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    let mut per_key: std::collections::BTreeMap<Vec<u8>, Vec<u64>> = Default::default();
    for e in &events {
        let WatchEvent::Put { kv } = e else {
            panic!("only puts were made: {e:?}");
        };
        last.insert(kv.key.clone(), kv.value.clone());
        per_key
            .entry(kv.key.clone())
            .or_default()
            .push(parse_counter(&kv.value));
    }
    for (k, values) in &per_key {
        let n = values.len() as u64;
        assert_eq!(
            values,
            &(1..=n).collect::<Vec<_>>(),
            "{}: every value in order, none lost or repeated",
            String::from_utf8_lossy(k)
        );
        assert_eq!(
            get(store, k).map(|kv| kv.value),
            last.get(k).cloned(),
            "final value"
        );
    }
    assert_eq!(
        per_key.get(&shared).map(Vec::len),
        Some(threads * per_thread)
    );
}

/// After a compaction at revision `r` (etcd's meaning: the history before `r` goes), a
/// watch from before `r` fails with [`StoreError::Compacted`] naming `r` as the first
/// revision still held, a watch from `r` yields what happened from `r` on, and compacting
/// to a future revision is refused.
pub fn check_watch_compaction(store: &dyn Store, prefix: &str) {
    let k = key(prefix, "k");
    let r1 = ok(store.put(&k, b"1"), "put");
    let r2 = ok(store.put(&k, b"2"), "put");
    let r3 = ok(store.put(&k, b"3"), "put");
    ok(store.compact(r2), "compact");
    match store.watch(prefix.as_bytes(), r1) {
        Err(StoreError::Compacted {
            requested,
            available_from,
            ..
        }) => {
            assert_eq!(requested, r1, "the revision asked for");
            assert_eq!(available_from, r2, "the first revision still held");
        }
        Err(e) => panic!("watch from compacted revision {r1}: {e}"),
        Ok(_) => panic!("a watch from compacted revision {r1} was opened"),
    }
    let mut w = ok(
        store.watch(prefix.as_bytes(), r2),
        "watch from the compaction revision",
    );
    let got = summary(&collect_until(&mut *w, r3));
    let name = String::from_utf8_lossy(&k).into_owned();
    assert_eq!(
        got,
        vec![
            ("put".to_owned(), name.clone(), Some("2".to_owned()), r2),
            ("put".to_owned(), name, Some("3".to_owned()), r3),
        ]
    );
    let current = ok(store.revision(), "revision");
    assert!(
        store.compact(current + 1_000).is_err(),
        "compacting to a future revision must fail"
    );
}

/// Leases with a time to live of `ttl` (whole seconds; etcd needs at least 2): a key written
/// with a lease lives while the lease is kept alive and is deleted (a watch sees the delete
/// with its last value) once it expires; a key written again without the lease stays; a
/// revoked lease's keys go at once; unknown, expired and revoked leases are
/// [`StoreError::LeaseNotFound`].
pub fn check_leases(store: &dyn Store, prefix: &str, ttl: Duration) {
    let (a, b, c) = (key(prefix, "a"), key(prefix, "b"), key(prefix, "c"));
    let lease = ok(store.grant_lease(ttl), "grant");
    let start = ok(store.revision(), "revision") + 1;
    let mut watch = ok(store.watch(prefix.as_bytes(), start), "watch");
    ok(
        store.put_with_lease(&a, b"status", lease),
        "put a with the lease",
    );
    ok(
        store.put_with_lease(&b, b"will be detached", lease),
        "put b with the lease",
    );
    ok(store.put(&b, b"plain"), "put b without the lease");
    // Kept alive for longer than the TTL: the key stays.
    let until = std::time::Instant::now() + ttl + ttl / 2;
    while std::time::Instant::now() < until {
        let left = ok(store.keep_alive(lease), "keep alive");
        assert!(
            left > Duration::ZERO && left <= ttl + Duration::from_secs(1),
            "{left:?}"
        );
        std::thread::sleep(ttl / 4);
    }
    assert!(
        get(store, &a).is_some(),
        "a kept-alive lease's key went away"
    );
    // Not kept alive: the lease expires and takes `a`, not `b`.
    let deadline = std::time::Instant::now() + ttl * 3 + Duration::from_secs(3);
    while get(store, &a).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the key of an expired lease is still there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(store, &b).map(|kv| kv.value), Some(b"plain".to_vec()));
    let end = ok(store.revision(), "revision");
    let events = collect_until(&mut *watch, end);
    let last = events.last().map(|e| (e.key().to_vec(), e));
    match last {
        Some((k, WatchEvent::Delete { prev, .. })) => {
            assert_eq!(k, a);
            assert_eq!(
                prev.as_ref().map(|p| p.value.clone()),
                Some(b"status".to_vec())
            );
        }
        other => panic!("the expiry's delete is not the last event: {other:?}"),
    }
    for r in [
        store.keep_alive(lease).map(drop),
        store.put_with_lease(&c, b"x", lease).map(drop),
        store.revoke_lease(lease),
    ] {
        assert!(
            matches!(r, Err(StoreError::LeaseNotFound { .. })),
            "an expired lease: {r:?}"
        );
    }
    // Revoking deletes at once.
    let other = ok(store.grant_lease(ttl * 10), "grant");
    ok(store.put_with_lease(&c, b"x", other), "put c");
    ok(store.revoke_lease(other), "revoke");
    assert_eq!(get(store, &c), None, "a revoked lease's key stays");
    assert!(matches!(
        store.keep_alive(other),
        Err(StoreError::LeaseNotFound { .. })
    ));
    assert!(matches!(
        store.put_with_lease(&c, b"x", 0x7777_0000_dead),
        Err(StoreError::LeaseNotFound { .. })
    ));
}
