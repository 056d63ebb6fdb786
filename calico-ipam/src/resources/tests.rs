//! Round trips of the resource operations on a memory store.

use calico_datastore::{MemoryStore, Store};
use calico_model::resources::{Kind, Resource};
use serde_json::{Value, json};

use super::*;

fn load(text: &str) -> Vec<Resource> {
    let mut set = calico_model::loader::load_str("m.yaml", text);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    set.apply_defaults();
    set.resources().cloned().collect()
}

fn fixed() -> i64 {
    1_787_217_151
}

fn counter() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    u128::from(N.fetch_add(1, Ordering::Relaxed)) * 0x1234_5678_9abc_def1
}

fn raw(store: &dyn Store, key: &str) -> Value {
    let kv = store
        .get(key.as_bytes())
        .unwrap()
        .unwrap_or_else(|| panic!("{key} missing"));
    serde_json::from_slice(&kv.value).unwrap()
}

#[test]
fn apply_get_delete_round_trip() {
    let store = MemoryStore::new();
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.0.0.0/16}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\nspec: {}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\nspec: {podSelector: {}}\n",
    );
    let keys = apply(&store, &objs).unwrap();
    assert_eq!(
        keys,
        [
            "/calico/resources/v3/projectcalico.org/ippools/p1",
            "/calico/resources/v3/projectcalico.org/networkpolicies/a/np",
            "/calico/calico-rs/k8s/networkpolicies.networking.k8s.io/a/np",
        ]
    );
    assert_eq!(get(&store, Kind::IpPool, None, None).unwrap().len(), 1);
    assert_eq!(
        get(&store, Kind::NetworkPolicy, Some("a"), None)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&store, Kind::KubernetesNetworkPolicy, None, None)
            .unwrap()
            .len(),
        1
    );
    delete(&store, Kind::IpPool, None, "p1").unwrap();
    assert!(matches!(
        delete(&store, Kind::IpPool, None, "p1"),
        Err(ResourceError::NotFound { .. })
    ));
    assert!(get(&store, Kind::IpPool, None, None).unwrap().is_empty());
    // Nothing outside /calico/.
    let all = store.range(b"", None, 0).unwrap();
    for kv in all.kvs {
        assert!(
            kv.key.starts_with(b"/calico/"),
            "{}",
            String::from_utf8_lossy(&kv.key)
        );
    }
}

#[test]
fn stored_values_are_calicos() {
    let store = MemoryStore::new();
    let r = Resources::new(&store)
        .with_clock(fixed)
        .with_random(counter);
    r.ensure_initialized().unwrap();
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: foo, labels: {app: x}}\nspec: {selector: a == 'b' && has(c), ingress: [{action: Allow}]}\n",
    );
    assert_eq!(r.apply(&objs[0]).unwrap(), Applied::Created);
    let key = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/foo";
    let kv = store.get(key.as_bytes()).unwrap().unwrap();
    let text = String::from_utf8(kv.value.clone()).unwrap();
    assert!(text.starts_with(r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"foo","uid":""#), "{text}");
    assert!(
        text.contains(r#""creationTimestamp":"2026-08-20T09:12:31Z""#),
        "{text}"
    );
    assert!(text.contains(r#"\u0026\u0026"#), "{text}");
    assert!(!text.contains("resourceVersion"), "{text}");
    let v = raw(&store, key);
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "x", "projectcalico.org/tier": "default"})
    );
    assert_eq!(
        v["metadata"]["annotations"],
        json!({"projectcalico.org/metadata": "{\"name\":\"foo\"}"})
    );
    // Read back: the annotation is gone, resourceVersion is the mod revision.
    let o = r
        .get(ResourceType::of(Kind::GlobalNetworkPolicy), None, "foo")
        .unwrap();
    assert_eq!(
        o.value["metadata"]["resourceVersion"],
        json!(kv.mod_revision.to_string())
    );
    assert!(o.value["metadata"].get("annotations").is_none());
    // ClusterInformation and the built-in tiers exist.
    let ci = raw(
        &store,
        "/calico/resources/v3/projectcalico.org/clusterinformations/default",
    );
    assert_eq!(ci["spec"]["datastoreReady"], json!(true));
    assert_eq!(ci["spec"]["clusterGUID"].as_str().map(str::len), Some(32));
    assert!(ci["spec"].get("calicoVersion").is_none());
    for (t, action, order) in BUILTIN_TIERS {
        let v = raw(
            &store,
            &format!("/calico/resources/v3/projectcalico.org/tiers/{t}"),
        );
        assert_eq!(v["spec"], json!({"order": order, "defaultAction": action}));
        assert_eq!(v["status"], json!({}));
    }
}

#[test]
fn updates_keep_stored_metadata_and_unknown_fields() {
    let store = MemoryStore::new();
    let key = "/calico/resources/v3/projectcalico.org/ippools/p";
    store
        .put(
            key.as_bytes(),
            br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p","uid":"11111111-2222-4333-8444-555555555555","creationTimestamp":"2025-01-01T00:00:00Z","labels":{"old":"x"}},"spec":{"cidr":"10.1.0.0/16","blockSize":26,"newCalicoField":{"x":[1,2]},"natOutgoing":true}}"#,
        )
        .unwrap();
    let r = Resources::new(&store);
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, labels: {new: 'y'}}\nspec: {cidr: 10.1.0.0/16, natOutgoing: false, disabled: true}\n",
    );
    assert_eq!(r.apply(&objs[0]).unwrap(), Applied::Updated);
    let v = raw(&store, key);
    assert_eq!(
        v["metadata"]["uid"],
        json!("11111111-2222-4333-8444-555555555555")
    );
    assert_eq!(
        v["metadata"]["creationTimestamp"],
        json!("2025-01-01T00:00:00Z")
    );
    assert_eq!(v["metadata"]["labels"], json!({"new": "y"}));
    assert_eq!(v["spec"]["newCalicoField"], json!({"x": [1, 2]}));
    assert!(
        v["spec"]
            .get("natOutgoing")
            .is_none_or(|n| n == &json!(false)),
        "{v}"
    );
    assert_eq!(v["spec"]["disabled"], json!(true));
}

#[test]
fn a_stale_revision_is_a_conflict() {
    let store = MemoryStore::new();
    let r = Resources::new(&store);
    let mut objs = load(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n",
    );
    r.apply(&objs[0]).unwrap();
    let rev = r
        .get(ResourceType::of(Kind::IpPool), None, "p")
        .unwrap()
        .mod_revision;
    objs[0].metadata_mut().resource_version = Some((rev + 100).to_string());
    let e = r.apply(&objs[0]).unwrap_err();
    assert_eq!(e.to_string(), "update conflict: IPPool(p)");
    objs[0].metadata_mut().resource_version = Some(rev.to_string());
    assert_eq!(r.apply(&objs[0]).unwrap(), Applied::Updated);
}

#[test]
fn historical_policy_keys_are_found_and_moved() {
    let store = MemoryStore::new();
    let gnp = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/";
    // A 3.29-style default-tier policy.
    store
        .put(
            format!("{gnp}default.old").as_bytes(),
            br#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.old","uid":"u1","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"tier":"default","order":10,"selector":"all()","types":["Ingress"],"source":{},"destination":{}}}"#,
        )
        .unwrap();
    let r = Resources::new(&store);
    r.ensure_initialized().unwrap();
    let ty = ResourceType::of(Kind::GlobalNetworkPolicy);
    assert_eq!(r.get(ty, None, "old").unwrap().name(), "old");
    let names: Vec<String> = r
        .list(ty, None)
        .unwrap()
        .items
        .iter()
        .map(|o| o.name().to_owned())
        .collect();
    assert_eq!(names, ["old"]);
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: old}\nspec: {order: 20, selector: all()}\n",
    );
    assert_eq!(r.apply(&objs[0]).unwrap(), Applied::Updated);
    assert!(
        store
            .get(format!("{gnp}default.old").as_bytes())
            .unwrap()
            .is_none()
    );
    let v = raw(&store, &format!("{gnp}old"));
    assert_eq!(v["metadata"]["uid"], json!("u1"));
    assert_eq!(v["spec"]["order"], json!(20));
    r.delete(ty, None, "old").unwrap();
    assert!(matches!(
        r.get(ty, None, "old"),
        Err(ResourceError::NotFound { .. })
    ));
}

#[test]
fn bad_values_are_skipped_in_lists_and_named() {
    let store = MemoryStore::new();
    let pools = "/calico/resources/v3/projectcalico.org/ippools/";
    store
        .put(format!("{pools}bad").as_bytes(), b"{not json")
        .unwrap();
    store.put(format!("{pools}a/b").as_bytes(), b"{}").unwrap();
    store
        .put(
            format!("{pools}good").as_bytes(),
            br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"good"},"spec":{"cidr":"10.2.0.0/16"}}"#,
        )
        .unwrap();
    let l = Resources::new(&store)
        .list(ResourceType::of(Kind::IpPool), None)
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.bad.len(), 2);
    assert!(l.bad.iter().any(|b| b.key.ends_with("/bad")));
    assert!(l.bad.iter().any(|b| b.key.ends_with("/a/b")));
}

#[test]
fn protected_objects() {
    let store = MemoryStore::new();
    let r = Resources::new(&store);
    r.ensure_initialized().unwrap();
    let tier = ResourceType::of(Kind::Tier);
    assert!(matches!(
        r.delete(tier, None, "default"),
        Err(ResourceError::NotSupported { .. })
    ));
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {order: 5}\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: t.p}\nspec: {tier: t, selector: all()}\n",
    );
    for o in &objs {
        r.apply(o).unwrap();
    }
    assert!(matches!(
        r.delete(tier, None, "t"),
        Err(ResourceError::NotSupported { .. })
    ));
    r.delete(ResourceType::of(Kind::GlobalNetworkPolicy), None, "t.p")
        .unwrap();
    r.delete(tier, None, "t").unwrap();
    let profiles = r.list(ResourceType::of(Kind::Profile), None).unwrap();
    assert_eq!(profiles.items[0].name(), DEFAULT_ALLOW_PROFILE);
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::super::layout::TYPES;
    use super::super::{Resources, codec};
    use calico_datastore::{MemoryStore, Store};

    const FIELDS: &[&str] = &[
        "kind",
        "apiVersion",
        "metadata",
        "spec",
        "status",
        "name",
        "namespace",
        "uid",
        "labels",
        "annotations",
        "projectcalico.org/metadata",
        "projectcalico.org/tier",
        "tier",
        "order",
        "selector",
        "cidr",
        "blockSize",
        "ingress",
        "egress",
        "action",
        "source",
        "destination",
        "ports",
        "nets",
        "node",
        "bgp",
        "asNumber",
        "ipNetworks",
        "unknownField",
        "creationTimestamp",
        "resourceVersion",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e7f64..1e7).prop_map(Value::from),
            prop_oneof![
                Just("default.x".to_owned()),
                Just("{\"name\":\"x\"}".to_owned()),
                Just("10.0.0.0/16".to_owned()),
                Just("all()".to_owned()),
                Just("Allow".to_owned()),
                "[a-z.&<>{}\":/ 0-9]{0,12}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6)
                    .prop_map(|kvs| {
                        Value::Object(
                            kvs.into_iter()
                                .map(|(k, v)| ((*k).to_owned(), v))
                                .collect::<Map<String, Value>>(),
                        )
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The property of the cargo-fuzz target `resource_value`, on structured input.
        #[test]
        fn decoding_never_panics_and_re_encoding_is_faithful(ti in 0..TYPES.len(), v in json_value(), junk in proptest::collection::vec(any::<u8>(), 0..8)) {
            let ty = &TYPES[ti];
            let key = ty.key(Some("ns"), "name");
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let _ = codec::decode(key.as_bytes(), &[bytes.as_slice(), &junk].concat(), 3);
            // Wrap the value as an object's spec, the likeliest shape to decode.
            let wrapped = serde_json::json!({"metadata": {"name": "name"}, "spec": v});
            bytes = serde_json::to_vec(&wrapped).unwrap();
            for candidate in [bytes.clone(), serde_json::to_vec(&v).unwrap()] {
                // The object-only decode agrees with the full one, errors included.
                let full = codec::decode(key.as_bytes(), &candidate, 3);
                let alone = codec::decode_resource(key.as_bytes(), &candidate, 3);
                match (&full, &alone) {
                    (Ok(f), Ok(a)) => prop_assert_eq!(&f.object, a),
                    (Err(f), Err(a)) => prop_assert_eq!(f, a),
                    _ => prop_assert!(false, "{:?} / {:?}", full.as_ref().map(|f| &f.object), alone),
                }
                let Ok(stored) = codec::decode(key.as_bytes(), &candidate, 3) else { continue };
                let again = codec::decode(key.as_bytes(), &codec::encode(&stored.raw), 3).unwrap();
                prop_assert_eq!(codec::encode(&again.value), codec::encode(&stored.value));
                prop_assert_eq!(&again.object, &stored.object);
                if let Some(object) = &stored.object {
                    let store = MemoryStore::new();
                    store.put(key.as_bytes(), &candidate).unwrap();
                    let _ = Resources::new(&store).apply(object);
                }
            }
        }
    }
}

#[test]
fn workload_endpoint_names_follow_calicos_rule() {
    use super::client::workload_endpoint_name as name;
    assert_eq!(
        name("worker-1", "k8s", "cart-0", "", "", "eth0").as_deref(),
        Some("worker--1-k8s-cart--0-eth0")
    );
    assert_eq!(
        name("n", "cni", "", "abc-1", "", "eth0").as_deref(),
        Some("n-cni-abc--1-eth0")
    );
    assert_eq!(
        name("n", "libnetwork", "", "", "libnetwork", "ep").as_deref(),
        Some("n-libnetwork-libnetwork-ep")
    );
    assert_eq!(name("n", "k8s", "", "", "", "eth0"), None);
    let store = MemoryStore::new();
    let r = Resources::new(&store);
    let good = load(
        "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: worker--1-k8s-cart--0-eth0, namespace: shop}\nspec: {orchestrator: k8s, node: worker-1, pod: cart-0, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.0.0.1/32]}\n",
    );
    r.apply(&good[0]).unwrap();
    let v = raw(
        &store,
        "/calico/resources/v3/projectcalico.org/workloadendpoints/shop/worker--1-k8s-cart--0-eth0",
    );
    assert_eq!(
        v["metadata"]["labels"]["projectcalico.org/namespace"],
        json!("shop")
    );
    assert_eq!(
        v["metadata"]["labels"]["projectcalico.org/orchestrator"],
        json!("k8s")
    );
    let bad = load(
        "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: wrong, namespace: shop}\nspec: {orchestrator: k8s, node: worker-1, pod: cart-0, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.0.0.1/32]}\n",
    );
    assert!(matches!(
        r.apply(&bad[0]),
        Err(ResourceError::NotSupported { .. })
    ));
    let knp = load(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: knp.default.x, namespace: a}\nspec: {selector: all()}\n",
    );
    assert!(matches!(
        r.apply(&knp[0]),
        Err(ResourceError::NotSupported { .. })
    ));
}

/// A store that fails the test on any key outside `/calico/`.
struct CalicoOnly(MemoryStore);

impl CalicoOnly {
    fn check(key: &[u8], what: &str) {
        assert!(
            key.starts_with(b"/calico/"),
            "{what} outside /calico/: {}",
            String::from_utf8_lossy(key)
        );
    }
}

impl Store for CalicoOnly {
    fn url(&self) -> &str {
        self.0.url()
    }

    fn read(
        &self,
        reads: &[calico_datastore::ReadOp],
    ) -> Result<calico_datastore::ReadResponse, calico_datastore::StoreError> {
        use calico_datastore::ReadOp;
        for r in reads {
            match r {
                ReadOp::Get { key } => Self::check(key, "get"),
                ReadOp::Range { start, end, .. } | ReadOp::Keys { start, end, .. } => {
                    Self::check(start, "range start");
                    Self::check(end.as_deref().unwrap_or_default(), "range end");
                }
            }
        }
        self.0.read(reads)
    }

    fn txn(
        &self,
        compares: &[calico_datastore::Compare],
        ops: &[calico_datastore::TxnOp],
    ) -> Result<calico_datastore::TxnResponse, calico_datastore::StoreError> {
        for c in compares {
            Self::check(c.key(), "compare");
        }
        for o in ops {
            Self::check(o.key(), "write");
        }
        self.0.txn(compares, ops)
    }
}

#[test]
fn nothing_is_read_or_written_outside_calico() {
    let store = CalicoOnly(MemoryStore::new());
    let r = Resources::new(&store);
    r.ensure_initialized().unwrap();
    let objs = load(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {order: 5}\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {tier: t, selector: all()}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: q, namespace: a}\nspec: {selector: all()}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n",
    );
    for o in &objs {
        r.apply(o).unwrap();
        r.apply(o).unwrap();
    }
    for t in layout::TYPES {
        r.list(t, None).unwrap();
        r.list(t, Some("a")).unwrap();
        let _ = r.get(t, Some("a"), "p");
    }
    r.delete(ResourceType::of(Kind::GlobalNetworkPolicy), None, "p")
        .unwrap();
    r.delete(ResourceType::of(Kind::Tier), None, "t").unwrap();
    r.delete(ResourceType::of(Kind::NetworkPolicy), Some("a"), "q")
        .unwrap();
    r.delete(ResourceType::of(Kind::Namespace), None, "a")
        .unwrap();
}

#[test]
fn a_policy_needs_its_tier_and_rewrites_fill_a_missing_identity() {
    let store = MemoryStore::new();
    let r = Resources::new(&store)
        .with_clock(fixed)
        .with_random(counter);
    let gnp = load(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {tier: t, selector: all()}\n",
    );
    let e = r.apply(&gnp[0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "resource does not exist: Tier(t) with error: <nil>"
    );
    // Tiers first, then policies, in one call.
    let tier = load("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\n");
    apply(&store, &[gnp[0].clone(), tier[0].clone()]).unwrap();
    // A stored object without uid or with a null creation time gets both on rewrite.
    let key = "/calico/resources/v3/projectcalico.org/ippools/q";
    store
        .put(key.as_bytes(), br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"q","creationTimestamp":null},"spec":{"cidr":"10.3.0.0/16"}}"#)
        .unwrap();
    let pool = load(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: q}\nspec: {cidr: 10.3.0.0/16}\n",
    );
    r.apply(&pool[0]).unwrap();
    let v = raw(&store, key);
    assert_eq!(
        v["metadata"]["creationTimestamp"],
        json!("2026-08-20T09:12:31Z")
    );
    assert_eq!(v["metadata"]["uid"].as_str().map(str::len), Some(36));
}
