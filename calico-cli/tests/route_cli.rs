//! `calico route …` run as a script would: exit codes and output formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
        .env_remove("CALICO_STORE")
        .output()
        .expect("run calico")
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cluster")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calico-route-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, text).expect("write");
    file
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn sessions_json_has_count_and_peerings() {
    let o = calico(&["route", "sessions", &example(), "-o", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["sessions"], 8);
    let peerings = v["peerings"].as_array().expect("array");
    let rr_to_client = peerings
        .iter()
        .find(|p| p["node"] == "node-1" && p["peerNode"] == "node-2" && p["peerIP"] == "10.0.1.12")
        .expect("node-1 → node-2");
    assert_eq!(rr_to_client["kind"], "node");
    assert_eq!(rr_to_client["routeReflectorClient"], true);
    let tor = peerings
        .iter()
        .find(|p| p["peerIP"] == "10.0.1.1")
        .expect("ToR peering");
    assert!(tor["peerNode"].is_null());
    assert_eq!(tor["routeReflectorClient"], false);
}

#[test]
fn sessions_text_and_dot() {
    let o = calico(&["route", "sessions", &example()]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.ends_with("sessions: 8\n"), "{text}");
    assert!(
        text.contains(
            "node-1 ipv4 Node_10_0_1_12_port_179 10.0.1.12 node peer-node=node-2 as=64512 rr-client"
        ),
        "{text}"
    );
    let o = calico(&["route", "sessions", &example(), "-o", "dot"]);
    let dot = stdout(&o);
    assert!(dot.starts_with("graph sessions {"));
    assert!(dot.contains("\"node-1\" [shape=box];"));
    assert!(dot.contains("\"node-1\" -- \"node-2\""));
}

#[test]
fn sessions_mesh_count() {
    let mut y = String::new();
    for i in 1..=5 {
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n{i}\nspec:\n  bgp:\n    ipv4Address: 10.0.0.{i}/24\n"
        ));
    }
    let f = scratch("mesh", &y);
    let o = calico(&[
        "route",
        "sessions",
        f.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["sessions"], 10);
    assert_eq!(v["peerings"].as_array().map(Vec::len), Some(20));
}

#[test]
fn unreadable_path_exits_2() {
    let o = calico(&["route", "sessions", "/nonexistent/calico-route"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("calico: "));
}

#[test]
fn plan_text_is_ip_route_syntax() {
    let o = calico(&["route", "plan", &example(), "--node", "node-2"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"blackhole 10.244.0.64/26 proto 80"),
        "{text}"
    );
    // node-1 is in node-2's /24: IPIP CrossSubnet goes direct.
    assert!(
        lines.contains(&"10.244.0.0/26 via 10.0.1.11 dev eth0 proto 80 onlink"),
        "{text}"
    );
    // node-3 is in another subnet: tunnel.
    assert!(
        lines.contains(&"10.244.0.128/26 via 10.0.2.11 dev tunl0 proto 80 onlink mtu 1480"),
        "{text}"
    );
}

#[test]
fn plan_json_has_devices_neighbours_fdb() {
    let o = calico(&[
        "route",
        "plan",
        &example(),
        "--node",
        "node-3",
        "-o",
        "json",
        "--host-mtu",
        "9000",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        v["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .all(|r| r["text"].is_string())
    );
    assert_eq!(v["mtu"]["ipip"], 8980);
    let neigh = v["neighbours"].as_array().expect("neighbours");
    assert!(
        neigh
            .iter()
            .any(|n| n["lladdr"] == "66:2e:1a:0b:4c:02" && n["dev"] == "vxlan-v6.calico")
    );
    assert!(v["fdb"].is_array());
    assert!(v["devices"].is_array());
}

#[test]
fn plan_unknown_node_exits_2() {
    let o = calico(&["route", "plan", &example(), "--node", "ghost"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ghost"));
}

#[test]
fn bird_renders_both_families() {
    let o = calico(&["route", "bird", &example(), "--node", "node-2"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v4 = stdout(&o);
    assert!(
        v4.starts_with("# BIRD 2 configuration for node node-2 (IPv4)\nrouter id 10.0.1.12;\n")
    );
    assert!(v4.contains("protocol bgp Node_10_0_1_11_port_179 from bgp_template {"));
    let o = calico(&["route", "bird", &example(), "--node", "node-3", "--ipv6"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).ends_with("# IPv6 disabled on this node.\n"));
    let o = calico(&["route", "bird", &example(), "--node", "ghost"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_exit_codes_and_json() {
    let o = calico(&["route", "check", &example()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("warning: pending-affinity:"));
    let broken = "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: a\nspec:\n  bgp:\n    ipv4Address: 10.0.0.1/24\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: b\nspec:\n  bgp:\n    ipv4Address: 10.0.0.2/24\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.244.0.0/16\n---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: a-blk\nspec:\n  node: a\n  cidr: 10.244.1.0/26\n";
    let f = scratch("check", broken);
    let o = calico(&["route", "check", f.to_str().expect("utf-8"), "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["unreachable"][0]["node"], "b");
    assert_eq!(v["unreachable"][0]["block"], "10.244.1.0/26");
}

/// With `--store`, block affinities come from the IPAM state: a block `ipam assign` claimed
/// for node-a shows up in node-b's plan and node-a's BIRD configuration; without it, the
/// manifests (which hold no BlockAffinity) give no block route.
#[test]
fn store_is_the_affinity_source_when_given() {
    let cluster = scratch(
        "store",
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-a}\nspec: {bgp: {ipv4Address: 10.0.0.1/24}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-b}\nspec: {bgp: {ipv4Address: 10.0.0.2/24}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool}\nspec: {cidr: 10.244.0.0/16, blockSize: 26, ipipMode: Never, vxlanMode: Never}\n",
    );
    let dir = cluster.parent().expect("dir").to_path_buf();
    let db = dir.join("calico.db");
    let _ = std::fs::remove_file(&db);
    let store = format!("file:{}", db.display());
    let path = cluster.to_str().expect("utf-8");
    let ok = |args: &[&str]| {
        let o = calico(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout(&o)
    };
    ok(&["--store", &store, "apply", "-f", path]);
    let assigned = ok(&["--store", &store, "ipam", "assign", "--host", "node-a"]);
    let ip: std::net::Ipv4Addr = assigned.trim().parse().expect("one IPv4 address");
    let o = ip.octets();
    let block = format!("{}.{}.{}.{}/26", o[0], o[1], o[2], o[3] & !63);

    let with = ok(&["--store", &store, "route", "plan", path, "--node", "node-b"]);
    assert!(
        with.contains(&format!(
            "{block} via 10.0.0.1 dev eth0 proto bird metric 1024\n"
        )),
        "{with}"
    );
    let without = ok(&["route", "plan", path, "--node", "node-b"]);
    assert!(!without.contains(&block), "{without}");
    let bird = ok(&["--store", &store, "route", "bird", path, "--node", "node-a"]);
    assert!(
        bird.contains(&format!("route {block} blackhole;")),
        "{bird}"
    );
    let check = ok(&["--store", &store, "route", "check", path]);
    assert!(!check.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example cluster plus what real directories also hold: result files, a README, a
/// document that does not parse and an object with a field that does not decode.
fn messy_example() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calico-route-{}-messy", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for entry in std::fs::read_dir(example()).expect("example dir") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let extra = [
        ("results.json", r#"[{"node": "node-1", "sessions": 3}]"#),
        ("README.json", r#"{"about": "the lab cluster"}"#),
        ("zz-notes.yaml", "key: [unclosed\n"),
        (
            "zz-pool.yaml",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: extra}\nspec: {cidr: 10.99.0.0/16, blockSize: big, disabled: true}\n",
        ),
    ];
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).expect("write");
    }
    dir
}

#[test]
fn messy_directories_warn_and_route_the_rest() {
    let dir = messy_example();
    let d = dir.to_str().expect("utf-8");
    for args in [
        vec!["route", "sessions", "-o", "json"],
        vec!["route", "plan", "--node", "node-2"],
        vec!["route", "bird", "--node", "node-2"],
        vec!["route", "check"],
    ] {
        let mut clean = args.clone();
        clean.insert(2, example_leak(&example()));
        let want = calico(&clean);
        let mut messy = args.clone();
        messy.insert(2, d);
        let o = calico(&messy);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), want.status.code(), "{args:?}: {err}");
        if args[1] == "bird" {
            // The pool whose blockSize was dropped is still routed (disabled pools are
            // exported, not aggregated).
            assert!(stdout(&o).contains("10.99.0.0/16+"), "{}", stdout(&o));
        } else {
            assert_eq!(stdout(&o), stdout(&want), "{args:?}");
        }
        for needle in [
            "results.json:0 ?/: -: expected an object, found a list; the document is skipped",
            "README.json:0 ?/: kind: kind is required; the document is skipped",
            "zz-notes.yaml:0 ?/: -: not a manifest: cannot parse YAML",
            "zz-pool.yaml:0 IPPool/extra: spec.blockSize: invalid type: string \"big\"",
        ] {
            assert!(
                err.contains(needle),
                "{args:?}: missing {needle:?} in\n{err}"
            );
        }
        // --strict: the first problem fails the command.
        let mut strict = messy.clone();
        strict.insert(2, "--strict");
        assert_eq!(calico(&strict).status.code(), Some(2), "{strict:?}");
    }
}

fn example_leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// A manifest with a Secret, a Service and its EndpointSlice: `route bird` renders the
/// password and the Service's /32 on the node hosting its endpoint, `--router-id hash`
/// hashes the node name, a bad `--router-id` is a usage error, and `route check` reports a
/// password it cannot read.
#[test]
fn bird_reads_secrets_services_and_router_id() {
    let yaml = "\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/16}]
  nodeMeshPassword: {secretKeyRef: {name: bgp, key: mesh}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 10.0.0.2/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec:
  peerIP: 10.0.0.254
  asNumber: 65001
  password: {secretKeyRef: {name: bgp, key: missing}}
---
apiVersion: v1
kind: Secret
metadata: {name: bgp, namespace: kube-system}
data: {mesh: bWVzaC1wdw==}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, externalTrafficPolicy: Local}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.0.5], nodeName: node-a}]
";
    let file = scratch("confd", yaml);
    let path = file.to_str().expect("utf-8");
    let o = calico(&[
        "route",
        "bird",
        path,
        "--node",
        "node-a",
        "--router-id",
        "hash",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a = stdout(&o);
    // SHA-256("node-a") starts 66 57 0f f0.
    assert!(a.contains("router id 102.87.15.240;\n"), "{a}");
    assert!(a.contains("  route 10.96.0.10/32 blackhole;\n"), "{a}");
    assert!(a.contains("  password \"mesh-pw\";\n"), "{a}");
    let tor = a
        .split("protocol bgp Global_10_0_0_254")
        .nth(1)
        .and_then(|t| t.split("\n}\n").next())
        .expect("tor");
    assert!(!tor.contains("password"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no key \\\"missing\\\""));
    let b = stdout(&calico(&[
        "route",
        "bird",
        path,
        "--node",
        "node-b",
        "--router-id",
        "192.0.2.1",
    ]));
    assert!(b.contains("router id 192.0.2.1;\n"));
    assert!(!b.contains("10.96.0.10/32"));
    let bad = calico(&[
        "route",
        "bird",
        path,
        "--node",
        "node-a",
        "--router-id",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let check = calico(&["route", "check", path]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("password-missing"),
        "{}",
        stdout(&check)
    );
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}
