//! `calico apply|get|delete` on a store holding resources as Calico's own tools store them
//! (`tests/fixtures/calico-etcd-v3.32.txt`, hand-written from the description of Calico's
//! etcd layout), and what `calico apply` writes checked field by field against the values
//! Calico would write.

use std::path::PathBuf;
use std::process::{Command, Output};

use calico_datastore::{FileStore, Store};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("fixtures/calico-etcd-v3.32.txt");

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("calico-store-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Env { dir }
    }

    /// A store holding the fixture.
    fn with_fixture(name: &str) -> Env {
        let env = Env::new(name);
        let store = env.open();
        for (k, v) in fixture_pairs() {
            store.put(k.as_bytes(), v.as_bytes()).expect("put");
        }
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.join("calico.db")
    }

    fn url(&self) -> String {
        format!("file:{}", self.db().display())
    }

    fn open(&self) -> FileStore {
        FileStore::open(self.db()).expect("open file store")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_calico"))
            .current_dir(&self.dir)
            .env_remove("CALICO_STORE")
            .env_remove("CALICO_STORE_TIMEOUT")
            .arg("--store")
            .arg(self.url())
            .args(args)
            .output()
            .expect("run calico")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.to_str().expect("utf-8").to_owned()
    }

    fn raw(&self, key: &str) -> Value {
        let kv = self
            .open()
            .get(key.as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("{key} missing"));
        serde_json::from_slice(&kv.value).expect("stored JSON")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture_pairs() -> Vec<(String, String)> {
    let lines: Vec<&str> = FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len() % 2, 0, "key/value lines come in pairs");
    lines
        .chunks(2)
        .map(|p| (p[0].to_owned(), p[1].to_owned()))
        .collect()
}

/// Table lines with their trailing spaces made visible as `|`-terminated text is hard to
/// read; instead compare whole outputs, built from the expected cells with the tabwriter
/// rule (width = max(5, longest + 3), every cell padded, one blank line after).
fn table(rows: &[&[&str]]) -> String {
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| (rows.iter().map(|r| r[c].len()).max().unwrap_or(0) + 3).max(5))
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(&format!("{cell:<w$}", w = widths[c]));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

const POOL_V3: &str = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool";
const GNP: &str = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/";

#[test]
fn tables_match_calicoctl() {
    let env = Env::with_fixture("tables");
    assert_eq!(
        env.ok(&["get", "nodes", "-o", "wide"]),
        table(&[
            &["NAME", "ASN", "IPV4", "IPV6"],
            &["edge-1", "", "", ""],
            &["worker-1", "(64513)", "192.0.2.11/24", ""],
            &["worker-2", "65001", "192.0.2.12/24", "2001:db8::12/64"],
        ])
    );
    // The documented example widths: `NAME     ASN       IPV4 ...` for short cells.
    assert!(
        env.ok(&["get", "no"])
            .starts_with("NAME       \nedge-1     \n")
    );
    assert_eq!(
        env.ok(&["get", "ippool", "-o", "wide"]),
        table(&[
            &[
                "NAME",
                "CIDR",
                "NAT",
                "IPIPMODE",
                "VXLANMODE",
                "DISABLED",
                "DISABLEBGPEXPORT",
                "SELECTOR",
                "ASSIGNMENTMODE"
            ],
            &[
                "default-ipv4-ippool",
                "10.65.0.0/16",
                "true",
                "Always",
                "Never",
                "false",
                "false",
                "all()",
                "Automatic"
            ],
        ])
    );
    assert_eq!(
        env.ok(&["get", "ippools"]),
        table(&[
            &["NAME", "CIDR", "SELECTOR"],
            &["default-ipv4-ippool", "10.65.0.0/16", "all()"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "wep", "-o", "wide", "-A"]),
        table(&[
            &[
                "NAMESPACE",
                "NAME",
                "WORKLOAD",
                "NODE",
                "NETWORKS",
                "INTERFACE",
                "PROFILES",
                "NATS"
            ],
            &[
                "default",
                "worker--2-k8s-frontend--5c8d7b9f4--x2x9p-eth0",
                "frontend-5c8d7b9f4-x2x9p",
                "worker-2",
                "10.65.18.3/32",
                "cali0a1b2c3d4e5",
                "kns.default,ksa.default.default",
                ""
            ],
            &[
                "shop",
                "worker--1-k8s-cart--0-eth0",
                "cart-0",
                "worker-1",
                "10.65.226.65/32",
                "cali7d3e5f1a2b4",
                "kns.shop,ksa.shop.cart",
                ""
            ],
        ])
    );
    // Without -n/-A: the default namespace, no NAMESPACE column; the narrow columns.
    assert_eq!(
        env.ok(&["get", "workloadendpoints"]),
        table(&[
            &["WORKLOAD", "NODE", "NETWORKS", "INTERFACE"],
            &[
                "frontend-5c8d7b9f4-x2x9p",
                "worker-2",
                "10.65.18.3/32",
                "cali0a1b2c3d4e5"
            ],
        ])
    );
    assert_eq!(
        env.ok(&["get", "bgppeer"]),
        table(&[
            &["NAME", "PEERIP", "NODE", "ASN"],
            &["rack-a-tor", "192.0.2.1", "rack == 'a'", "64600"],
            &["upstream", "192.0.2.254", "(global)", "64700"],
            &["worker-2-peer", "192.0.2.253", "worker-2", "64701"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "bgpconfig"]),
        table(&[
            &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
            &["default", "Info", "true", "64513"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "hep", "-o", "wide"]),
        table(&[
            &["NAME", "NODE", "INTERFACE", "IPS", "PROFILES"],
            &[
                "worker-1-eth0",
                "worker-1",
                "eth0",
                "192.0.2.11",
                "kns.shop"
            ],
        ])
    );
    // Tiers sorted by order; Go prints 1e6 as 1e+06.
    assert_eq!(
        env.ok(&["get", "tiers"]),
        table(&[
            &["NAME", "ORDER"],
            &["security", "100"],
            &["kube-admin", "1000"],
            &["default", "1e+06"],
            &["kube-baseline", "1e+07"],
        ])
    );
    // Policies under their real names, whatever key form stored them.
    assert_eq!(
        env.ok(&["get", "gnp", "-o", "wide"]),
        table(&[
            &["NAME", "ORDER", "SELECTOR"],
            &["allow-dns", "100", "all()"],
            &["deny-legacy", "2000", "legacy == 'true'"],
            &["security.block-metadata", "10", "all()"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "np", "-n", "shop"]),
        table(&[
            &["NAMESPACE", "NAME", "TIER"],
            &["shop", "cart-ingress", "default"],
            &["shop", "quarantine", "security"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "clusterinformation"]),
        table(&[
            &[
                "NAME",
                "CLUSTERGUID",
                "CLUSTERTYPE",
                "CALICOVERSION",
                "DATASTOREREADY"
            ],
            &[
                "default",
                "8a4f0c2e6b1d4e7f9a3c5b2d1e0f4a6c",
                "k8s,bgp,kubeadm",
                "v3.32.1",
                "true"
            ],
        ])
    );
    // The synthesised default-allow profile comes first.
    assert_eq!(
        env.ok(&["get", "profiles"]),
        table(&[
            &["NAME"],
            &["projectcalico-default-allow"],
            &["kns.shop"],
            &["ksa.shop.cart"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "networksets", "-A", "-o", "wide"]),
        table(&[
            &["NAMESPACE", "NAME", "NETS"],
            &["shop", "partners", "198.51.100.0/24,2001:db8:100::/48"],
        ])
    );
    assert_eq!(
        env.ok(&["get", "felixconfig"]),
        table(&[&["NAME"], &["default"], &["node.worker-1"]])
    );
    // Without BGPConfiguration default, a node inherits AS 64512.
    env.ok(&["delete", "bgpconfig", "default"]);
    assert!(
        env.ok(&["get", "node", "worker-1", "-o", "wide"])
            .contains("(64512)")
    );
}

#[test]
fn yaml_and_json_show_objects_as_calicoctl() {
    let env = Env::with_fixture("yamljson");
    let rev = env
        .open()
        .get(format!("{GNP}default.deny-legacy").as_bytes())
        .unwrap()
        .unwrap()
        .mod_revision;
    let v: Value =
        serde_json::from_str(&env.ok(&["get", "gnp", "deny-legacy", "-o", "json"])).unwrap();
    assert_eq!(v["metadata"]["name"], json!("deny-legacy"));
    assert_eq!(v["metadata"]["resourceVersion"], json!(rev.to_string()));
    assert_eq!(
        v["metadata"]["uid"],
        json!("b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e")
    );
    assert!(v["metadata"].get("annotations").is_none(), "{v}");
    assert_eq!(v["kind"], json!("GlobalNetworkPolicy"));
    // A <= 3.29 default-tier policy: `default.` dropped.
    let v: Value = serde_json::from_str(&env.ok(&[
        "get",
        "networkpolicy",
        "cart-ingress",
        "-n",
        "shop",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["metadata"]["name"], json!("cart-ingress"));
    assert_eq!(v["metadata"]["namespace"], json!("shop"));
    // A list.
    let list: Value = serde_json::from_str(&env.ok(&["get", "gnp", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], json!("GlobalNetworkPolicyList"));
    assert_eq!(list["apiVersion"], json!("projectcalico.org/v3"));
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3));
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
    let yaml = env.ok(&["get", "wep", "-A", "-o", "yaml"]);
    let y: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(y["kind"], json!("WorkloadEndpointList"));
    assert_eq!(
        y["items"][1]["spec"]["ports"][0],
        json!({"name":"http","protocol":"TCP","port":8080,"hostPort":0,"hostIP":""})
    );
    // The selector was stored with Go's escapes; shown decoded.
    let dns: Value =
        serde_json::from_str(&env.ok(&["get", "gnp", "allow-dns", "-o", "json"])).unwrap();
    assert_eq!(
        dns["spec"]["egress"][0]["destination"]["selector"],
        json!("k8s-app == 'kube-dns' && has(kubernetes.io/os)")
    );
    // Empty list: the header (or an empty list).
    assert_eq!(env.ok(&["get", "ipreservations"]), "NAME   \n\n");
    let empty: Value =
        serde_json::from_str(&env.ok(&["get", "ipreservations", "-o", "json"])).unwrap();
    assert_eq!(empty["items"], json!([]));
}

#[test]
fn calicoctl_messages_for_missing_objects_and_unknown_kinds() {
    let env = Env::with_fixture("messages");
    let o = env.run(&["get", "foos"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "failed to get resources: resource type 'foos' is not supported\n"
    );
    let o = env.run(&["get", "gnp", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "resource does not exist: GlobalNetworkPolicy(nope) with error: <nil>\n"
    );
    let o = env.run(&["delete", "networkpolicy", "nope", "-n", "shop"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Failed to delete 'NetworkPolicy' resource: resource does not exist: NetworkPolicy(shop/nope) with error: <nil>\n\n"
    );
    env.ok(&["delete", "networkpolicy", "nope", "-n", "shop", "-s"]);
    // Deleting a policy stored under a historical key.
    assert_eq!(
        env.ok(&["delete", "np", "cart-ingress", "-n", "shop"]),
        "Successfully deleted 1 'NetworkPolicy' resource(s)\n"
    );
    assert!(
        env.open()
            .get(
                b"/calico/resources/v3/projectcalico.org/networkpolicies/shop/default.cart-ingress"
            )
            .unwrap()
            .is_none()
    );
    let o = env.run(&["delete", "clusterinformation", "default"]);
    assert_eq!(o.status.code(), Some(1));
    let o = env.run(&["delete", "tier", "security"]);
    assert_eq!(o.status.code(), Some(1), "tier still holds policies");
}

#[test]
fn a_value_that_does_not_decode_is_named_and_skipped() {
    let env = Env::with_fixture("bad");
    let store = env.open();
    store
        .put(
            b"/calico/resources/v3/projectcalico.org/ippools/broken",
            br#"{"kind":"IPPool","spec":{"cidr":"not-a-cidr"}}"#,
        )
        .unwrap();
    drop(store);
    let o = env.run(&["get", "ippools"]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/calico/resources/v3/projectcalico.org/ippools/broken")
            && err.contains("spec.cidr"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        table(&[
            &["NAME", "CIDR", "SELECTOR"],
            &["default-ipv4-ippool", "10.65.0.0/16", "all()"],
        ])
    );
    let o = env.run(&["get", "ippool", "broken"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn apply_checks_references_against_the_store_and_keeps_what_calico_wrote() {
    let env = Env::with_fixture("apply");
    // Tier `security` exists only in the store.
    let m = env.write(
        "np.yaml",
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: audit, namespace: shop}\nspec: {tier: security, order: 30, selector: all(), ingress: [{action: Pass}]}\n",
    );
    assert_eq!(
        env.ok(&["apply", "-f", &m]),
        "Successfully applied 1 'NetworkPolicy' resource(s)\n"
    );
    // A tier that exists nowhere is still refused.
    let bad = env.write(
        "bad.yaml",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec: {tier: nowhere, selector: all()}\n",
    );
    let o = env.run(&["apply", "-f", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere"));
    // A pool overlapping a stored one is refused.
    let overlap = env.write(
        "overlap.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: other}\nspec: {cidr: 10.65.128.0/24}\n",
    );
    assert_eq!(env.run(&["apply", "-f", &overlap]).status.code(), Some(2));

    // Updating Calico's pool keeps its uid and creation time, and a field we do not model.
    let store = env.open();
    let mut pool = env.raw(POOL_V3);
    pool["spec"]["futureField"] = json!({"from": "a newer Calico"});
    store
        .put(POOL_V3.as_bytes(), pool.to_string().as_bytes())
        .unwrap();
    drop(store);
    let m = env.write(
        "pool.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default-ipv4-ippool}\nspec: {cidr: 10.65.0.0/16, ipipMode: Always, natOutgoing: false}\n",
    );
    env.ok(&["apply", "-f", &m]);
    let after = env.raw(POOL_V3);
    assert_eq!(after["metadata"]["uid"], pool["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        pool["metadata"]["creationTimestamp"]
    );
    assert_eq!(
        after["spec"]["futureField"],
        json!({"from": "a newer Calico"})
    );
    assert_ne!(after["spec"]["natOutgoing"], json!(true));
    assert!(after["metadata"].get("resourceVersion").is_none());
    // Kubernetes objects are kept too, under our own prefix inside /calico/.
    let ns = env.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: retail}}\n",
    );
    env.ok(&["apply", "-f", &ns]);
    assert_eq!(env.ok(&["get", "ns"]), table(&[&["NAME"], &["shop"]]));
    assert_eq!(
        env.raw("/calico/calico-rs/k8s/namespaces/shop")["metadata"]["labels"],
        json!({"team": "retail"})
    );
    // ClusterInformation is Calico's: left alone (its version included).
    assert_eq!(
        env.raw("/calico/resources/v3/projectcalico.org/clusterinformations/default")["spec"]["calicoVersion"],
        json!("v3.32.1")
    );
    // Re-applying a 3.30-style policy moves it to its current key.
    let m = env.write(
        "gnp.yaml",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: deny-legacy}\nspec: {order: 2000, selector: legacy == 'true', ingress: [{action: Deny}]}\n",
    );
    env.ok(&["apply", "-f", &m]);
    let moved = env.raw(&format!("{GNP}deny-legacy"));
    assert_eq!(
        moved["metadata"]["uid"],
        json!("b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e")
    );
    assert_eq!(moved["metadata"]["name"], json!("deny-legacy"));
    assert!(
        env.open()
            .get(format!("{GNP}default.deny-legacy").as_bytes())
            .unwrap()
            .is_none()
    );
}

/// Checks `got` against `want` field for field: the same field names at every level, the
/// same JSON types, the same values — except where `want` holds `"<uuid>"` or
/// `"<timestamp>"`, which match a v4 UUID and an RFC 3339 UTC time in whole seconds.
fn same_shape(path: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::String(g), Value::String(w)) if w == "<uuid>" => {
            let ok = g.len() == 36
                && g.chars().enumerate().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
                    }
                })
                && &g[14..15] == "4";
            assert!(ok, "{path}: {g:?} is not a v4 UUID");
        }
        (Value::String(g), Value::String(w)) if w == "<timestamp>" => {
            let b = g.as_bytes();
            let ok = g.len() == 20
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && b[19] == b'Z';
            assert!(ok, "{path}: {g:?} is not Go's RFC 3339 time");
        }
        (Value::String(g), Value::String(w)) if w == "<guid>" => {
            assert!(
                g.len() == 32
                    && g.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{path}: {g:?} is not a cluster GUID"
            );
        }
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<&String> = g.keys().collect();
            let wk: Vec<&String> = w.keys().collect();
            assert_eq!(gk, wk, "{path}: field names");
            for (k, wv) in w {
                same_shape(&format!("{path}.{k}"), &g[k], wv);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                same_shape(&format!("{path}[{i}]"), gv, wv);
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            // Go writes integral numbers without a decimal point.
            assert_eq!(g.to_string(), w.to_string(), "{path}");
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

#[test]
fn what_apply_writes_is_what_calico_writes() {
    let env = Env::new("wire");
    let m = env.write(
        "all.yaml",
        r#"apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec:
  order: 100
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination: {selector: "k8s-app == 'kube-dns'", ports: [53]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: quarantine, namespace: shop}
spec:
  tier: security
  selector: quarantine == 'true'
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.70.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: shop, labels: {role: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {logSeverityScreen: Info}
"#,
    );
    assert_eq!(
        env.ok(&["apply", "-f", &m]),
        "Successfully applied 6 resource(s)\n"
    );
    let r = "/calico/resources/v3/projectcalico.org/";
    let meta =
        |name: &str| json!({"name": name, "uid": "<uuid>", "creationTimestamp": "<timestamp>"});
    let cases = [
        (
            "clusterinformations/default",
            json!({"kind": "ClusterInformation", "apiVersion": "projectcalico.org/v3",
                   "metadata": meta("default"),
                   "spec": {"clusterGUID": "<guid>", "datastoreReady": true}}),
        ),
        (
            "tiers/default",
            json!({"kind": "Tier", "apiVersion": "projectcalico.org/v3", "metadata": meta("default"),
                   "spec": {"order": 1000000, "defaultAction": "Deny"}, "status": {}}),
        ),
        (
            "tiers/kube-admin",
            json!({"kind": "Tier", "apiVersion": "projectcalico.org/v3", "metadata": meta("kube-admin"),
                   "spec": {"order": 1000, "defaultAction": "Pass"}, "status": {}}),
        ),
        (
            "tiers/kube-baseline",
            json!({"kind": "Tier", "apiVersion": "projectcalico.org/v3", "metadata": meta("kube-baseline"),
                   "spec": {"order": 10000000, "defaultAction": "Pass"}, "status": {}}),
        ),
        (
            "tiers/security",
            json!({"kind": "Tier", "apiVersion": "projectcalico.org/v3", "metadata": meta("security"),
                   "spec": {"order": 100, "defaultAction": "Deny"}, "status": {}}),
        ),
        (
            "globalnetworkpolicies/allow-dns",
            json!({"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "allow-dns", "uid": "<uuid>", "creationTimestamp": "<timestamp>",
                                "labels": {"projectcalico.org/tier": "default"},
                                "annotations": {"projectcalico.org/metadata": "{\"name\":\"allow-dns\"}"}},
                   "spec": {"tier": "default", "order": 100, "selector": "all()",
                            "egress": [{"action": "Allow", "protocol": "UDP",
                                        "destination": {"selector": "k8s-app == 'kube-dns'", "ports": [53]}}],
                            "types": ["Egress"]}}),
        ),
        (
            "networkpolicies/shop/quarantine",
            json!({"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "quarantine", "namespace": "shop", "uid": "<uuid>",
                                "creationTimestamp": "<timestamp>",
                                "labels": {"projectcalico.org/tier": "security"},
                                "annotations": {"projectcalico.org/metadata": "{\"name\":\"quarantine\"}"}},
                   "spec": {"tier": "security", "selector": "quarantine == 'true'",
                            "ingress": [{"action": "Deny"}], "egress": [{"action": "Deny"}],
                            "types": ["Ingress", "Egress"]}}),
        ),
        (
            "ippools/pool-a",
            json!({"kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": meta("pool-a"),
                   "spec": {"cidr": "10.70.0.0/16", "vxlanMode": "Never", "ipipMode": "Never",
                            "blockSize": 26, "nodeSelector": "all()",
                            "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}}),
        ),
        (
            "networksets/shop/partners",
            json!({"kind": "NetworkSet", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "partners", "namespace": "shop", "uid": "<uuid>",
                                "creationTimestamp": "<timestamp>", "labels": {"role": "partner"}},
                   "spec": {"nets": ["198.51.100.0/24"]}}),
        ),
        (
            "felixconfigurations/default",
            json!({"kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3",
                   "metadata": meta("default"),
                   "spec": {"bpfLogLevel": "", "floatingIPs": "Disabled", "logSeverityScreen": "Info",
                            "bpfConnectTimeLoadBalancing": "TCP",
                            "bpfHostNetworkedNATWithoutCTLB": "Enabled"}}),
        ),
    ];
    for (key, want) in cases {
        let got = env.raw(&format!("{r}{key}"));
        same_shape(key, &got, &want);
    }
    // Nothing outside /calico/, nothing but these objects.
    let all = env.open().range(b"", None, 0).unwrap();
    let keys: Vec<String> = all
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(keys.len(), 10, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(r)), "{keys:?}");
    // The bytes are Go's: compact, envelope first, `&&`-free here but `'` kept.
    let kv = env
        .open()
        .get(format!("{r}globalnetworkpolicies/allow-dns").as_bytes())
        .unwrap()
        .unwrap();
    let text = String::from_utf8(kv.value).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-dns","uid":""#),
        "{text}"
    );
    assert!(
        !text.contains(' ') || text.contains("k8s-app == 'kube-dns'"),
        "{text}"
    );
}

#[test]
fn an_old_layout_database_is_refused() {
    let env = Env::new("legacy");
    let store = env.open();
    store
        .put(b"resources/v3/IPPool/p", br#"{"metadata":{"name":"p"}}"#)
        .unwrap();
    drop(store);
    let o = env.run(&["get", "ippools"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"resources/v3/\""), "{err}");
}

#[test]
fn cluster_information_is_read_only() {
    let env = Env::with_fixture("readonly");
    let m = env.write(
        "ci.yaml",
        "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\nspec: {calicoVersion: v9.9.9}\n",
    );
    let o = env.run(&["apply", "-f", &m]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resource is readonly"));
    assert_eq!(
        env.raw("/calico/resources/v3/projectcalico.org/clusterinformations/default")["spec"]["calicoVersion"],
        json!("v3.32.1")
    );
}

#[test]
fn apply_on_an_empty_store_initialises_the_cluster_once() {
    let env = Env::new("init");
    let m = env.write(
        "pool.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.9.0.0/16}\n",
    );
    env.ok(&["apply", "-f", &m]);
    let ci = env.raw("/calico/resources/v3/projectcalico.org/clusterinformations/default");
    env.ok(&["apply", "-f", &m]);
    // Same GUID, same object: initialisation does not rewrite it.
    assert_eq!(
        env.raw("/calico/resources/v3/projectcalico.org/clusterinformations/default"),
        ci
    );
    let v = env.ok(&["get", "clusterinfo", "default", "-o", "json"]);
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["spec"]["datastoreReady"], json!(true));
}

/// Everything under `/calico/`: keys and value bytes.
fn dump(store: &dyn Store) -> Vec<(String, String)> {
    store
        .range(b"/calico/", Some(b"/calico0"), 0)
        .expect("range")
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_id() -> u128 {
    u128::from(IDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) * 0x9e37_79b9_7f4a_7c15
}

/// The fixture, then manifests applied and objects deleted through the library with a fixed
/// clock and identifier sequence.
fn exercise(store: &dyn Store) -> Vec<(String, String)> {
    use calico_ipam::resources::{ResourceType, Resources};
    IDS.store(1, std::sync::atomic::Ordering::SeqCst);
    for (k, v) in fixture_pairs() {
        store.put(k.as_bytes(), v.as_bytes()).expect("put");
    }
    let r = Resources::new(store)
        .with_clock(|| 1_787_300_000)
        .with_random(next_id);
    r.ensure_initialized().expect("initialise");
    let mut set = calico_model::loader::load_str(
        "m.yaml",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: deny-legacy}\nspec: {order: 3, selector: all()}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default-ipv4-ippool}\nspec: {cidr: 10.65.0.0/16, natOutgoing: false}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: audit, namespace: shop}\nspec: {tier: security, selector: a == 'b' && c == 'd'}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: retail}}\n",
    );
    set.apply_defaults();
    for o in set.resources() {
        r.apply(o).expect("apply");
    }
    r.delete(
        ResourceType::by_name("bgppeer").expect("bgppeer"),
        None,
        "upstream",
    )
    .expect("delete");
    dump(store)
}

#[test]
fn memory_file_and_etcd_stores_hold_the_same_bytes() {
    let memory = calico_datastore::MemoryStore::new();
    let from_memory = exercise(&memory);
    let env = Env::new("bytes");
    let from_file = exercise(&env.open());
    assert_eq!(from_file, from_memory);
    // Spot checks: Go's escapes, the moved policy, the deleted peer.
    let get = |k: &str| {
        from_memory
            .iter()
            .find(|(key, _)| key.ends_with(k))
            .map(|(_, v)| v.clone())
    };
    assert!(
        get("networkpolicies/shop/audit")
            .unwrap()
            .contains(r"a == 'b' \u0026\u0026 c == 'd'")
    );
    assert!(get("globalnetworkpolicies/deny-legacy").is_some());
    assert!(get("globalnetworkpolicies/default.deny-legacy").is_none());
    assert!(get("bgppeers/upstream").is_none());
    assert!(get("/calico/calico-rs/k8s/namespaces/shop").is_some());
    if calico_datastore_etcd::testkit::etcd_or_skip(
        "memory_file_and_etcd_stores_hold_the_same_bytes",
    )
    .is_none()
    {
        return;
    }
    let server = calico_datastore_etcd::testkit::EtcdCluster::start_single().expect("etcd");
    let etcd = calico_datastore_etcd::open_store(&server.url()).expect("open etcd");
    assert_eq!(exercise(&*etcd), from_memory);
    // And calicoctl-style reads through the command line agree with the file store's.
    let out = Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(["--store", &server.url(), "get", "gnp", "-o", "wide"])
        .output()
        .expect("run calico");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        env.ok(&["get", "gnp", "-o", "wide"])
    );
}

#[test]
fn what_apply_writes_for_endpoints_nodes_and_bgp_is_what_calico_writes() {
    let env = Env::new("wire2");
    let m = env.write(
        "all.yaml",
        r#"apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: worker-1, labels: {rack: a}}
spec:
  bgp: {ipv4Address: 192.0.2.11/24, ipv4IPIPTunnelAddr: 10.65.226.64, asNumber: 65001}
  orchRefs: [{nodeName: worker-1, orchestrator: k8s}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: worker--1-k8s-cart--0-eth0, namespace: shop, labels: {app: cart}}
spec:
  orchestrator: k8s
  node: worker-1
  containerID: 4d5c6b7a
  pod: cart-0
  endpoint: eth0
  serviceAccountName: cart
  ipNetworks: [10.65.226.65/32]
  profiles: [kns.shop, ksa.shop.cart]
  interfaceName: cali7d3e5f1a2b4
  mac: "b6:2a:91:4c:7e:05"
  ports: [{name: http, protocol: TCP, port: 8080}]
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.shop}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.projectcalico.org/name: shop}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: worker-1-eth0}
spec: {node: worker-1, interfaceName: eth0, expectedIPs: [192.0.2.11], profiles: [kns.shop]}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rack-a-tor}
spec: {nodeSelector: "rack == 'a'", peerIP: 192.0.2.1, asNumber: 64600}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {logSeverityScreen: Info, nodeToNodeMeshEnabled: false, asNumber: 64513}
"#,
    );
    env.ok(&["apply", "-f", &m]);
    let r = "/calico/resources/v3/projectcalico.org/";
    let cases = [
        (
            "nodes/worker-1",
            json!({"kind": "Node", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "worker-1", "uid": "<uuid>", "creationTimestamp": "<timestamp>",
                                "labels": {"rack": "a"}},
                   "spec": {"bgp": {"asNumber": 65001, "ipv4Address": "192.0.2.11/24",
                                    "ipv4IPIPTunnelAddr": "10.65.226.64"},
                            "orchRefs": [{"nodeName": "worker-1", "orchestrator": "k8s"}]},
                   "status": {}}),
        ),
        (
            "workloadendpoints/shop/worker--1-k8s-cart--0-eth0",
            json!({"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "worker--1-k8s-cart--0-eth0", "namespace": "shop",
                                "uid": "<uuid>", "creationTimestamp": "<timestamp>",
                                "labels": {"app": "cart", "projectcalico.org/namespace": "shop",
                                           "projectcalico.org/orchestrator": "k8s"}},
                   "spec": {"orchestrator": "k8s", "node": "worker-1", "containerID": "4d5c6b7a",
                            "pod": "cart-0", "endpoint": "eth0", "serviceAccountName": "cart",
                            "ipNetworks": ["10.65.226.65/32"],
                            "profiles": ["kns.shop", "ksa.shop.cart"],
                            "interfaceName": "cali7d3e5f1a2b4", "mac": "b6:2a:91:4c:7e:05",
                            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}}),
        ),
        (
            "profiles/kns.shop",
            json!({"kind": "Profile", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "kns.shop", "uid": "<uuid>", "creationTimestamp": "<timestamp>"},
                   "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}],
                            "labelsToApply": {"pcns.projectcalico.org/name": "shop"}}}),
        ),
        (
            "hostendpoints/worker-1-eth0",
            json!({"kind": "HostEndpoint", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "worker-1-eth0", "uid": "<uuid>", "creationTimestamp": "<timestamp>"},
                   "spec": {"node": "worker-1", "interfaceName": "eth0",
                            "expectedIPs": ["192.0.2.11"], "profiles": ["kns.shop"]}}),
        ),
        (
            "bgppeers/rack-a-tor",
            json!({"kind": "BGPPeer", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "rack-a-tor", "uid": "<uuid>", "creationTimestamp": "<timestamp>"},
                   "spec": {"nodeSelector": "rack == 'a'", "peerIP": "192.0.2.1", "asNumber": 64600}}),
        ),
        (
            "bgpconfigurations/default",
            json!({"kind": "BGPConfiguration", "apiVersion": "projectcalico.org/v3",
                   "metadata": {"name": "default", "uid": "<uuid>", "creationTimestamp": "<timestamp>"},
                   "spec": {"logSeverityScreen": "Info", "nodeToNodeMeshEnabled": false,
                            "asNumber": 64513}}),
        ),
    ];
    for (key, want) in cases {
        let got = env.raw(&format!("{r}{key}"));
        same_shape(key, &got, &want);
    }
}

/// `calico policy` and `calico route` without a PATH analyse what the datastore holds: the
/// Calico-written fixture's policies, endpoints, nodes and BGP configuration.
#[test]
fn policy_and_route_read_the_store_when_given_no_manifests() {
    let env = Env::with_fixture("analyse");
    let o = env.run(&["policy", "connlist", "-o", "json"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_str(&out).expect("connlist JSON");
    let text = v.to_string();
    assert!(
        text.contains("default/worker--2-k8s-frontend--5c8d7b9f4--x2x9p-eth0[WorkloadEndpoint]"),
        "the stored WorkloadEndpoint is analysed: {text}"
    );
    let o = env.run(&[
        "policy",
        "check",
        "--from",
        "shop/worker--1-k8s-cart--0-eth0",
        "--to",
        "default/worker--2-k8s-frontend--5c8d7b9f4--x2x9p-eth0",
        "--port",
        "80",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("verdict: "), "{out}");
    let o = env.run(&["route", "sessions", "-o", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    for node in ["worker-1", "worker-2"] {
        assert!(text.contains(node), "{node} missing from {text}");
    }
    let o = env.run(&["route", "bird", "--node", "worker-1"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let conf = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(conf.contains("router id 192.0.2.11;"), "{conf}");
    assert!(conf.contains("neighbor 192.0.2.12 as 65001"), "{conf}");
    // A PATH still wins over the store.
    let dir = env.dir.join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("x.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: n1}\n",
    )
    .unwrap();
    let o = env.run(&["policy", "connlist", dir.to_str().unwrap(), "-o", "json"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("WorkloadEndpoint"));
}

/// The IPAM state Calico's components would have written for the fixture: worker-1's block
/// with calico/node's VXLAN tunnel address (ordinal 0) and the CNI plugin's address for
/// `shop/cart-0` (ordinal 1, 10.65.226.65, the WorkloadEndpoint's address).
fn calico_ipam_fixture(store: &dyn Store) {
    let cid = "4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e8d9c0b1a2f3e4d5c";
    let mut allocations = vec!["0", "1"];
    allocations.extend(std::iter::repeat_n("null", 62));
    let unallocated: Vec<String> = (2..64).map(|o| o.to_string()).collect();
    let block = format!(
        concat!(
            r#"{{"cidr":"10.65.226.64/26","affinity":"host:worker-1","affinity_claim_time":"2026-08-20T08:58:44Z","#,
            r#""allocations":[{}],"unallocated":[{}],"attributes":["#,
            r#"{{"handle_id":"vxlan-tunnel-addr-worker-1","secondary":{{"node":"worker-1","type":"vxlanTunnelAddress"}}}},"#,
            r#"{{"handle_id":"k8s-pod-network.{}","secondary":{{"namespace":"shop","node":"worker-1","pod":"cart-0","timestamp":"2026-08-20 09:15:24.771903215 +0000 UTC"}}}}],"#,
            r#""sequenceNumber":1787216324318205119,"#,
            r#""sequenceNumberForAllocation":{{"0":1787216324318205117,"1":1787216324318205118}},"deleted":false}}"#
        ),
        allocations.join(","),
        unallocated.join(","),
        cid
    );
    let pairs = [
        (
            "/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-26".to_owned(),
            block,
        ),
        (
            "/calico/ipam/v2/host/worker-1/ipv4/block/10.65.226.64-26".to_owned(),
            r#"{"state":"confirmed","deleted":false}"#.to_owned(),
        ),
        (
            "/calico/ipam/v2/handle/vxlan-tunnel-addr-worker-1".to_owned(),
            r#"{"block":{"10.65.226.64/26":1},"deleted":false}"#.to_owned(),
        ),
        (
            format!("/calico/ipam/v2/handle/k8s-pod-network.{cid}"),
            r#"{"block":{"10.65.226.64/26":1},"deleted":false}"#.to_owned(),
        ),
        (
            "/calico/ipam/v2/config".to_owned(),
            r#"{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled"}"#.to_owned(),
        ),
    ];
    for (k, v) in pairs {
        store.put(k.as_bytes(), v.as_bytes()).expect("put");
    }
}

/// `calico ipam check|show|assign|release` on what Calico's components wrote: the state is
/// clean, shown as Calico counts it, a new address never collides with Calico's, and a
/// release frees exactly it.
#[test]
fn ipam_commands_work_on_calico_written_state() {
    let env = Env::with_fixture("ipam");
    calico_ipam_fixture(&env.open());
    let o = env.run(&["ipam", "check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = env.run(&["ipam", "show"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(shown.contains("10.65.0.0/16"), "{shown}");
    let o = env.run(&["ipam", "assign", "--host", "worker-1", "--handle", "ours-1"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert_eq!(
        got, "10.65.226.66",
        "the head of Calico's free list, in worker-1's block"
    );
    let o = env.run(&["ipam", "check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = env.run(&["ipam", "release", "--handle", "ours-1"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let block: Value = serde_json::from_slice(
        &env.open()
            .get(b"/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-26")
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    // Calico's allocations stay; ours is freed and appended to the free list's tail.
    assert_eq!(block["allocations"][0], 0);
    assert_eq!(block["allocations"][1], 1);
    assert!(block["allocations"][2].is_null());
    assert_eq!(
        block["unallocated"].as_array().unwrap().last(),
        Some(&json!(2))
    );
    assert_eq!(block["unallocated"].as_array().unwrap().len(), 62);
}
