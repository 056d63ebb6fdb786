//! confd's semantics in the BIRD 2 configuration, peer by peer and filter by filter: route
//! priority, `peerType` rules, protocol names, per-node communities, Service advertisement
//! and the exclusion label, the router ID source and BGP passwords from Secrets. Every
//! configuration a test renders is also checked with `bird -p` (when BIRD 2 is installed;
//! required with CALICO_REQUIRE_BIRD=1).

#![allow(clippy::unwrap_used)] // integration-test helpers are not #[test] fns

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use calico_route::bird::{PRIORITY_MAX, render, router_id, router_id_for};
use calico_route::input::RouterIdSource;
use calico_route::sessions::SessionNote;
use calico_route::{Cluster, Family};
use common::*;

/// Renders and checks the text with `bird -p`.
fn conf(c: &Cluster, node: &str, family: Family) -> String {
    let t = render(c, node, family).unwrap().text;
    bird_accepts(&format!("{node}-{family:?}"), &t);
    t
}

fn bird_accepts(name: &str, text: &str) {
    if Command::new("bird").arg("--version").output().is_err() {
        assert!(
            std::env::var("CALICO_REQUIRE_BIRD").as_deref() != Ok("1"),
            "CALICO_REQUIRE_BIRD=1 but `bird` is not installed"
        );
        eprintln!("NOTE: `bird` not found: BIRD syntax check DID NOT RUN");
        return;
    }
    let file = std::env::temp_dir().join(format!(
        "calico-route-confd-{}-{name}-{}.conf",
        std::process::id(),
        text.len()
    ));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "bird rejected {name}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stanza of protocol `name` (without its closing brace).
fn stanza<'a>(t: &'a str, name: &str) -> &'a str {
    t.split(&format!("protocol bgp {name} from bgp_template {{\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no protocol {name} in\n{t}"))
        .split("\n}\n")
        .next()
        .unwrap()
}

fn default_config(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let body = if body.is_empty() {
        "  {}\n".to_owned()
    } else {
        body
    };
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n{body}"
    )
}

fn node_config(node: &str, spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.{node}\nspec:\n{body}"
    )
}

fn filter(name: &str, spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: {name}\nspec:\n{body}"
    )
}

// ---------------------------------------------------------------------------------------
// Route priority

/// The three priority functions follow the family's normal priority, and every session —
/// mesh, explicit, with or without filters — calls the import one just before `accept` and
/// the export one first.
#[test]
fn priority_functions_are_rendered_and_called_by_every_session() {
    for (setting, v4, v6) in [
        ("", 1024, 1024),
        (
            "ipv4NormalRoutePriority: 512\nipv6NormalRoutePriority: 2000",
            512,
            2000,
        ),
    ] {
        let mut y = default_config(setting);
        y += &node("a", "10.0.0.1/24", "    ipv6Address: fd00::1/64\n", "");
        y += &node("b", "10.0.0.2/24", "    ipv6Address: fd00::2/64\n", "");
        y += &peer("tor", "peerIP: 10.0.0.254\nasNumber: 65001\nfilters: [f]");
        y += &filter(
            "f",
            "exportV4:\n- {action: Accept, matchOperator: In, cidr: 10.244.0.0/16}",
        );
        let c = cluster(&y);
        for (family, prio) in [(Family::V4, v4), (Family::V6, v6)] {
            let t = conf(&c, "a", family);
            let max = PRIORITY_MAX;
            assert!(t.contains(&format!(
                "function calico_export_priority()\n{{\n  if ( source = RTS_BGP && defined(bgp_local_pref) ) then {{\n    krt_metric = {max} - bgp_local_pref;\n  }} else {{\n    if ( !defined(krt_metric) ) then {{ krt_metric = {prio}; }}\n    bgp_local_pref = {max} - krt_metric;\n  }}\n}}\n"
            )), "{t}");
            assert!(t.contains(&format!(
                "function calico_import_priority()\n{{\n  if ( defined(bgp_local_pref) && bgp_local_pref > {} ) then {{ preference = 200; }}\n}}\n",
                max - prio
            )));
            assert!(t.contains(&format!(
                "function calico_kernel_priority()\n{{\n  if ( source = RTS_BGP && !defined(krt_metric) ) then {{\n    krt_metric = {prio};\n    if ( defined(bgp_local_pref) ) then {{ krt_metric = {max} - bgp_local_pref; }}\n    if ( krt_metric < {prio} ) then {{ preference = 200; }}\n  }}\n}}\n"
            )));
            // The kernel filter derives the metric after the service rejects.
            let kernel = t
                .split("filter calico_kernel_programming\n{\n")
                .nth(1)
                .unwrap();
            assert!(kernel.starts_with(
                "  if ( source = RTS_DEVICE ) then { reject; }\n  calico_kernel_priority();\n"
            ));
            let stanzas: Vec<&str> = t.split("\nprotocol bgp ").skip(1).collect();
            assert_eq!(stanzas.len(), if family == Family::V4 { 2 } else { 1 });
            for s in stanzas {
                let import = s.lines().find(|l| l.contains("import ")).unwrap();
                assert!(
                    import
                        .trim_end()
                        .ends_with("calico_import_priority(); accept; };"),
                    "{s}"
                );
                assert!(!s.contains("import all"));
                let export = s.lines().find(|l| l.contains("export filter")).unwrap();
                assert!(
                    export
                        .trim_start()
                        .starts_with("export filter { calico_export_priority(); "),
                    "{s}"
                );
            }
        }
    }
}

/// `setPriority: p` sets `bgp_local_pref` to MAX − p and `priority: p` matches it, for
/// any p.
#[test]
fn set_priority_and_priority_match_use_local_pref() {
    for p in [1_i64, 100, 512, 1024, 65_535, 2_000_000] {
        let mut y = node("a", "10.0.0.1/24", "", "") + &node("b", "10.0.0.2/24", "", "");
        y += &peer("p", "peerIP: 10.0.0.200\nasNumber: 65001\nfilters: [f]");
        y += &filter(
            "f",
            &format!(
                "importV4:\n- {{action: Accept, asPathPrefix: [65001], operations: [{{setPriority: {{value: {p}}}}}]}}\nexportV4:\n- {{action: Accept, priority: {p}, operations: [{{addCommunity: {{value: \"65000:9\"}}}}]}}"
            ),
        );
        let c = cluster(&y);
        let t = conf(&c, "a", Family::V4);
        let lp = PRIORITY_MAX - p;
        assert!(t.contains(&format!(
            "if ( bgp_path ~ [= 65001 * =] ) then {{ bgp_local_pref = {lp}; accept; }}"
        )));
        assert!(
            t.contains(&format!(
                "if ( defined(bgp_local_pref) && bgp_local_pref = {lp} ) then {{ bgp_community.add((65000,9)); accept; }}"
            )),
            "{t}"
        );
        assert!(!t.contains("krt_metric = 1;"));
    }
}

// ---------------------------------------------------------------------------------------
// peerType

/// A filter whose rules use `peerType` takes the session type; each session passes its
/// own (iBGP: the peer's AS equals the local AS, `localASNumber` included); a filter
/// without `peerType` keeps the plain signature.
#[test]
fn peer_type_rules_apply_per_session() {
    let mut y = bgp_config(false);
    y += &node("a", "10.0.0.1/24", "", "");
    y += &node("b", "10.0.0.2/24", "", "");
    y += &peer(
        "ebgp",
        "node: a\npeerIP: 10.0.0.200\nasNumber: 65001\nfilters: [typed, plain]",
    );
    y += &peer(
        "ibgp",
        "node: a\npeerIP: 10.0.0.201\nasNumber: 64512\nfilters: [typed, plain]",
    );
    y += &peer(
        "local-as",
        "node: a\npeerIP: 10.0.0.202\nasNumber: 65002\nlocalASNumber: 65002\nfilters: [typed]",
    );
    y += &filter(
        "typed",
        "exportV4:\n- {action: Reject, peerType: eBGP, matchOperator: In, cidr: 10.244.1.0/24}\n- {action: Accept, peerType: iBGP, matchOperator: In, cidr: 10.244.2.0/24}\n- {action: Accept, matchOperator: Equal, cidr: 10.244.3.0/26}\nimportV4:\n- {action: Reject, matchOperator: In, cidr: 192.0.2.0/24}",
    );
    y += &filter(
        "plain",
        "exportV4:\n- {action: Reject, matchOperator: In, cidr: 10.9.0.0/16}",
    );
    let c = cluster(&y);
    let t = conf(&c, "a", Family::V4);
    assert!(t.contains(
        "function bgp_typed_exportFilterV4(bool is_same_as)\n{\n  if ( !is_same_as ) then { if ( net ~ [ 10.244.1.0/24+ ] ) then { reject; } }\n  if ( is_same_as ) then { if ( net ~ [ 10.244.2.0/24+ ] ) then { accept; } }\n  if ( net = 10.244.3.0/26 ) then { accept; }\n}\n"
    ), "{t}");
    assert!(t.contains("function bgp_typed_importFilterV4()\n{"));
    assert!(t.contains("function bgp_plain_exportFilterV4()\n{"));
    let e = stanza(&t, "Node_10_0_0_200");
    let i = stanza(&t, "Node_10_0_0_201");
    assert!(e.contains("export filter { calico_export_priority(); bgp_typed_exportFilterV4(false); bgp_plain_exportFilterV4(); calico_export_to_bgp_peers(false); reject; };"), "{e}");
    // eBGP: BIRD 2's default local preference is dropped before the filters run.
    assert!(e.contains("import filter { unset(bgp_local_pref); bgp_typed_importFilterV4(); calico_import_priority(); accept; };"));
    assert!(i.contains(
        "import filter { bgp_typed_importFilterV4(); calico_import_priority(); accept; };"
    ));
    assert!(i.contains("bgp_typed_exportFilterV4(true); bgp_plain_exportFilterV4(); calico_export_to_bgp_peers(true);"), "{i}");
    let l = stanza(&t, "Node_10_0_0_202");
    assert!(
        l.contains("bgp_typed_exportFilterV4(true); calico_export_to_bgp_peers(true);"),
        "{l}"
    );
    let out = render(&c, "a", Family::V4).unwrap();
    assert!(out.skipped_rules.is_empty(), "{:?}", out.skipped_rules);
}

// ---------------------------------------------------------------------------------------
// Names

/// With a listen port set, mesh protocols keep plain names (and still connect to the
/// port); BGPPeer protocols carry `_port_<n>`.
#[test]
fn mesh_names_never_carry_the_port() {
    let mut y = default_config("listenPort: 1790");
    y += &node("a", "10.0.0.1/24", "", "");
    y += &node("b", "10.0.0.2/24", "", "");
    y += &node_config("b", "listenPort: 1791");
    y += &peer("tor", "peerIP: \"10.0.0.200:1179\"\nasNumber: 65001");
    let c = cluster(&y);
    let t = conf(&c, "a", Family::V4);
    let m = stanza(&t, "Mesh_10_0_0_2");
    assert!(
        m.contains("  neighbor 10.0.0.2 port 1791 as 64512;\n"),
        "{m}"
    );
    assert!(m.contains("  local 10.0.0.1 port 1790 as 64512;\n"));
    assert!(t.contains("protocol bgp Global_10_0_0_200_port_1179 from bgp_template {"));
    assert!(!t.contains("Mesh_10_0_0_2_port"));
    let t = conf(&c, "b", Family::V4);
    assert!(stanza(&t, "Mesh_10_0_0_1").contains("  neighbor 10.0.0.1 port 1790 as 64512;\n"));
}

// ---------------------------------------------------------------------------------------
// Per-node communities and prefix advertisements

/// A node's own BGPConfiguration replaces the default's prefix advertisements, with names
/// resolved against its own communities; other nodes keep the default's. Literal values
/// pass as they are; unknown names are reported, never attached.
#[test]
fn per_node_configuration_overrides_communities_and_advertisements() {
    let mut y = default_config(
        "communities: [{name: gold, value: \"65000:100\"}, {name: big, value: \"65000:1:2\"}]\nprefixAdvertisements:\n- {cidr: 10.244.0.0/16, communities: [gold, \"65000:7\", big]}\n- {cidr: \"fd00:10::/48\", communities: [gold]}",
    );
    y += &node("n1", "10.0.0.1/24", "    ipv6Address: fd00::1/64\n", "");
    y += &node("n2", "10.0.0.2/24", "    ipv6Address: fd00::2/64\n", "");
    y += &node_config(
        "n1",
        "communities: [{name: gold, value: \"65001:5\"}]\nprefixAdvertisements:\n- {cidr: 10.244.1.0/24, communities: [gold, big, \"65001:9\", \"65001:10\"]}",
    );
    let c = cluster(&y);
    let n1 = conf(&c, "n1", Family::V4);
    let comm = |t: &str| -> String {
        t.split("function apply_communities()\n{\n")
            .nth(1)
            .unwrap()
            .split("}\n\n")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        comm(&n1),
        "  if ( net ~ [ 10.244.1.0/24+ ] ) then { bgp_community.add((65001,10)); bgp_community.add((65001,5)); bgp_community.add((65001,9)); }\n",
        "node list only; gold = the node's value; `big` is not defined there; sorted as text"
    );
    // n1's own list has no IPv6 entry: nothing in IPv6, although the default has one.
    assert_eq!(comm(&conf(&c, "n1", Family::V6)), "");
    assert_eq!(
        comm(&conf(&c, "n2", Family::V4)),
        "  if ( net ~ [ 10.244.0.0/16+ ] ) then { bgp_community.add((65000,100)); bgp_large_community.add((65000,1,2)); bgp_community.add((65000,7)); }\n"
    );
    assert_eq!(
        comm(&conf(&c, "n2", Family::V6)),
        "  if ( net ~ [ fd00:10::/48+ ] ) then { bgp_community.add((65000,100)); }\n"
    );
    let notes = render(&c, "n1", Family::V4).unwrap().notes;
    assert!(notes.iter().any(|n| matches!(n, SessionNote::UnknownCommunity { community, config, .. } if community == "big" && config == "node.n1")), "{notes:?}");
    let report = calico_route::check::check(&c).to_text();
    assert!(report.contains("unknown-community"), "{report}");
}

// ---------------------------------------------------------------------------------------
// Router ID

/// Known values worked out by hand from SHA-256(name): "node-a" → 66 57 0f f0; "a" → ca 97
/// 81 12 (202 ≤ 223, kept); "t" → e3 b9 8a 4d (227 − 32 = 195); "x1" → ec 31 68 2f (236 −
/// 32 = 204).
#[test]
fn router_id_source_hash_fixed_and_address() {
    let mut y = String::new();
    for (i, n) in ["node-a", "a", "t", "x1"].iter().enumerate() {
        y += &node(n, &format!("10.0.0.{}/24", i + 1), "", "");
    }
    let mut c = cluster(&y);
    let want = [
        ("node-a", [102, 87, 15, 240]),
        ("a", [202, 151, 129, 18]),
        ("t", [195, 185, 138, 77]),
        ("x1", [204, 49, 104, 47]),
    ];
    for (name, octets) in want {
        let n = c.node(name).unwrap();
        assert_eq!(router_id(n, true), Ipv4Addr::from(octets), "{name}");
    }
    assert_eq!("hash".parse::<RouterIdSource>(), Ok(RouterIdSource::Hash));
    assert_eq!(
        "".parse::<RouterIdSource>(),
        Ok(RouterIdSource::NodeAddress)
    );
    assert_eq!(
        "192.0.2.9".parse::<RouterIdSource>(),
        Ok(RouterIdSource::Fixed(Ipv4Addr::new(192, 0, 2, 9)))
    );
    assert!("fd00::1".parse::<RouterIdSource>().is_err());
    assert!("hashed".parse::<RouterIdSource>().is_err());
    let first = |t: &str| t.lines().nth(1).unwrap().to_owned();
    assert_eq!(first(&conf(&c, "t", Family::V4)), "router id 10.0.0.3;");
    c.router_id = RouterIdSource::Hash;
    for (name, octets) in want {
        let t = conf(&c, name, Family::V4);
        assert_eq!(first(&t), format!("router id {};", Ipv4Addr::from(octets)));
        assert_eq!(
            router_id_for(&c, c.node(name).unwrap()),
            Ipv4Addr::from(octets)
        );
    }
    c.router_id = RouterIdSource::Fixed(Ipv4Addr::new(192, 0, 2, 9));
    assert_eq!(first(&conf(&c, "a", Family::V4)), "router id 192.0.2.9;");
}

proptest::proptest! {
    /// For any name: the hashed ID is the first four SHA-256 bytes, the first one reduced by
    /// 32 exactly when above 223 (never multicast or reserved).
    #[test]
    fn hashed_router_id_rule(name in "node-[a-z0-9.-]{0,40}") {
        use sha2::Digest;
        let c = cluster(&node(&name, "10.0.0.1/24", "", ""));
        let id = router_id(c.node(&name).unwrap(), true).octets();
        let d = sha2::Sha256::digest(name.as_bytes());
        let first = if d[0] > 223 { d[0] - 32 } else { d[0] };
        proptest::prop_assert_eq!(id, [first, d[1], d[2], d[3]]);
        proptest::prop_assert!(id[0] <= 223);
    }
}

// ---------------------------------------------------------------------------------------
// Passwords

fn secret(ns: &str, name: &str, body: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n{body}"
    )
}

/// Passwords come from Secrets in kube-system (`stringData` as written, `data` base64):
/// readable ones become `password "…";`, unreadable ones leave the line out with a note
/// naming the reason, and `route check` reports them.
#[test]
fn passwords_from_secrets() {
    let mut y = default_config("nodeMeshPassword:\n  secretKeyRef: {name: mesh, key: pw}");
    y += &node("a", "10.0.0.1/24", "", "");
    y += &node("b", "10.0.0.2/24", "", "");
    y += &secret("kube-system", "mesh", "data:\n  pw: bWVzaC1zM2NyZXQ=\n"); // mesh-s3cret
    y += &secret(
        "kube-system",
        "peers",
        "data:\n  bad: \"!!notbase64\"\nstringData:\n  tor: \"tor pass\"\n  quote: 'a\"b'\n",
    );
    y += &secret("default", "elsewhere", "stringData:\n  k: v\n");
    let cases = [
        ("tor", "peers", "tor", Some("tor pass"), ""),
        ("nokey", "peers", "missing", None, "has no key"),
        (
            "nosecret",
            "absent",
            "k",
            None,
            "no Secret kube-system/absent",
        ),
        (
            "otherns",
            "elsewhere",
            "k",
            None,
            "no Secret kube-system/elsewhere",
        ),
        ("badb64", "peers", "bad", None, "not valid base64"),
        ("quoted", "peers", "quote", None, "double quote"),
    ];
    for (i, (name, sec, key, _, _)) in cases.iter().enumerate() {
        y += &peer(
            name,
            &format!(
                "node: a\npeerIP: 10.0.0.{}\nasNumber: 65001\npassword:\n  secretKeyRef: {{name: {sec}, key: {key}}}",
                200 + i
            ),
        );
    }
    let c = cluster(&y);
    let out = render(&c, "a", Family::V4).unwrap();
    bird_accepts("passwords", &out.text);
    assert!(stanza(&out.text, "Mesh_10_0_0_2").contains("  password \"mesh-s3cret\";\n"));
    for (i, (name, _, _, value, reason)) in cases.iter().enumerate() {
        let proto = format!("Node_10_0_0_{}", 200 + i);
        let s = stanza(&out.text, &proto);
        match value {
            Some(v) => assert!(s.contains(&format!("  password \"{v}\";\n")), "{name}: {s}"),
            None => {
                assert!(!s.contains("password"), "{name}: {s}");
                assert!(
                    out.notes.iter().any(|n| matches!(n, SessionNote::PasswordUnreadable { protocol, reason: r, .. } if *protocol == proto && r.contains(reason))),
                    "{name}: {:?}",
                    out.notes
                );
            }
        }
    }
    assert!(!out.notes.iter().any(|n| matches!(n, SessionNote::PasswordUnreadable { protocol, .. } if protocol.starts_with("Mesh_"))));
    let report = calico_route::check::check(&c).to_text();
    assert_eq!(report.matches("password-missing").count(), 5, "{report}");
    // Without the mesh Secret every mesh session is reported.
    let c = cluster(&y.replace("name: mesh\n", "name: gone\n"));
    let out = render(&c, "a", Family::V4).unwrap();
    assert!(!stanza(&out.text, "Mesh_10_0_0_2").contains("password"));
    assert!(out.notes.iter().any(|n| matches!(n, SessionNote::PasswordUnreadable { protocol, .. } if protocol == "Mesh_10_0_0_2")));
}

// ---------------------------------------------------------------------------------------
// Services

fn service(name: &str, spec: &str, status_ips: &[&str]) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let status = if status_ips.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = status_ips.iter().map(|i| format!("{{ip: {i}}}")).collect();
        format!(
            "status:\n  loadBalancer:\n    ingress: [{}]\n",
            list.join(", ")
        )
    };
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: web\nspec:\n{body}{status}"
    )
}

fn slice(service: &str, family: &str, nodes: &[&str]) -> String {
    let eps: String = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("- addresses: [10.244.{i}.9]\n  nodeName: {n}\n"))
        .collect();
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-{family}\n  namespace: web\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: {family}\nendpoints:\n{eps}"
    )
}

/// The cluster of the Service tests: n1–n3 (n3 excluded from load balancers), every
/// range configured, and Services covering each rule.
fn service_cluster() -> String {
    let mut y = default_config(
        "serviceClusterIPs: [{cidr: 10.96.0.0/12}, {cidr: \"fd00:96::/112\"}]\nserviceExternalIPs: [{cidr: 198.51.100.0/24}, {cidr: 203.0.113.5/32}]\nserviceLoadBalancerIPs: [{cidr: 192.0.2.0/24}, {cidr: 192.0.2.200/32}]",
    );
    y += &node("n1", "10.0.0.1/24", "    ipv6Address: fd00::1/64\n", "");
    y += &node("n2", "10.0.0.2/24", "    ipv6Address: fd00::2/64\n", "");
    y += &node(
        "n3",
        "10.0.0.3/24",
        "    ipv6Address: fd00::3/64\n",
        "node.kubernetes.io/exclude-from-external-load-balancers: \"true\"",
    );
    // Local, endpoints on n1 and n3: cluster IP, allowed external IP, LB address.
    y += &service(
        "local",
        "type: LoadBalancer\nclusterIP: 10.96.0.10\nclusterIPs: [10.96.0.10, \"fd00:96::a\"]\nipFamilies: [IPv4, IPv6]\nexternalTrafficPolicy: Local\nexternalIPs: [198.51.100.7, 172.16.0.1]",
        &["192.0.2.7", "10.1.1.1"],
    );
    y += &slice("local", "IPv4", &["n1", "n3"]);
    y += &slice("local", "IPv6", &["n1"]);
    // Cluster policy with a single-address LoadBalancer entry: every non-excluded node.
    y += &service(
        "single",
        "type: LoadBalancer\nclusterIP: 10.96.0.20\nexternalTrafficPolicy: Cluster",
        &["192.0.2.200"],
    );
    y += &slice("single", "IPv4", &["n2"]);
    // Cluster policy, external IP in a single-address entry.
    y += &service(
        "ext",
        "type: ClusterIP\nclusterIP: 10.96.0.30\nexternalTrafficPolicy: Cluster\nexternalIPs: [203.0.113.5]",
        &[],
    );
    y += &slice("ext", "IPv4", &["n2"]);
    // Not advertised: Cluster policy without single entries, Local without endpoints,
    // headless, no EndpointSlice, ExternalName.
    y += &service(
        "plain",
        "type: LoadBalancer\nclusterIP: 10.96.0.40\nexternalTrafficPolicy: Cluster",
        &["192.0.2.40"],
    );
    y += &slice("plain", "IPv4", &["n1"]);
    y += &service(
        "elsewhere",
        "clusterIP: 10.96.0.50\nexternalTrafficPolicy: Local",
        &[],
    );
    y += &slice("elsewhere", "IPv4", &["n2"]);
    y += &service(
        "headless",
        "clusterIP: None\nexternalTrafficPolicy: Local",
        &[],
    );
    y += &slice("headless", "IPv4", &["n1"]);
    y += &service(
        "noslice",
        "clusterIP: 10.96.0.60\nexternalTrafficPolicy: Local",
        &[],
    );
    y += &service(
        "name",
        "type: ExternalName\nclusterIP: 10.96.0.70\nexternalTrafficPolicy: Local",
        &[],
    );
    y += &slice("name", "IPv4", &["n1"]);
    y
}

fn statics(t: &str) -> Vec<String> {
    t.split("protocol static calico_static {\n")
        .nth(1)
        .map(|s| {
            s.split("}\n")
                .next()
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn service_addresses_follow_policy_endpoints_and_ranges() {
    let c = cluster(&service_cluster());
    let ranges = [
        "route 10.96.0.0/12 blackhole;",
        "route 198.51.100.0/24 blackhole;",
        "route 203.0.113.5/32 blackhole;",
        "route 192.0.2.0/24 blackhole;",
        "route 192.0.2.200/32 blackhole;",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        ranges
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let n1 = conf(&c, "n1", Family::V4);
    assert_eq!(
        statics(&n1),
        with(&[
            "route 10.96.0.10/32 blackhole;",
            "route 10.96.0.20/32 blackhole;",
            "route 10.96.0.30/32 blackhole;",
            "route 192.0.2.7/32 blackhole;",
            "route 198.51.100.7/32 blackhole;",
        ]),
        "single entries give 10.96.0.20 and 10.96.0.30 everywhere"
    );
    // The single addresses outside an accepted range are exported explicitly.
    let export = n1
        .split("function calico_export_to_bgp_peers")
        .nth(1)
        .unwrap();
    let export = format!("{}\n", export.split("\n}\n").next().unwrap());
    for line in [
        "  if ( net ~ [ 10.96.0.0/12+ ] ) then { accept; }\n",
        "  if ( net = 198.51.100.0/24 ) then { accept; }\n",
        "  if ( net = 203.0.113.5/32 ) then { accept; }\n",
        "  if ( net = 192.0.2.200/32 ) then { accept; }\n",
        "  if ( net = 192.0.2.7/32 ) then { accept; }\n",
        "  if ( net = 198.51.100.7/32 ) then { accept; }\n",
    ] {
        assert!(export.contains(line), "{line}{export}");
    }
    assert_eq!(export.matches("203.0.113.5/32").count(), 1);
    assert!(
        !export.contains("10.96.0.10/32"),
        "inside the cluster range already"
    );
    // Every range stays out of the kernel.
    let kernel = n1
        .split("filter calico_kernel_programming\n{\n")
        .nth(1)
        .unwrap();
    assert!(kernel.starts_with("  if ( source = RTS_DEVICE ) then { reject; }\n  if ( net ~ [ 10.96.0.0/12+ ] ) then { reject; }\n  if ( net ~ [ 198.51.100.0/24+ ] ) then { reject; }\n  if ( net ~ [ 203.0.113.5/32+ ] ) then { reject; }\n  if ( net ~ [ 192.0.2.0/24+ ] ) then { reject; }\n  if ( net ~ [ 192.0.2.200/32+ ] ) then { reject; }\n  calico_kernel_priority();\n"), "{kernel}");
    // n2: no Local endpoint of `local`; `elsewhere` is Local with its endpoint here.
    assert_eq!(
        statics(&conf(&c, "n2", Family::V4)),
        with(&[
            "route 10.96.0.20/32 blackhole;",
            "route 10.96.0.30/32 blackhole;",
            "route 10.96.0.50/32 blackhole;",
        ])
    );
    // n3 is excluded: nothing advertised, the kernel rejects remain.
    let n3 = conf(&c, "n3", Family::V4);
    assert!(statics(&n3).is_empty(), "{n3}");
    assert!(!n3.contains("then { accept; }\n  if ( net ~ [ 10.96"));
    assert!(n3.contains("  if ( net ~ [ 10.96.0.0/12+ ] ) then { reject; }\n"));
    assert!(
        !n3.split("function calico_export_to_bgp_peers")
            .nth(1)
            .unwrap()
            .split("\n}\n")
            .next()
            .unwrap()
            .contains("10.96")
    );
    // IPv6: the /128 of the dual-stack Service's cluster IP on n1 only.
    assert_eq!(
        statics(&conf(&c, "n1", Family::V6)),
        [
            "route fd00:96::/112 blackhole;",
            "route fd00:96::a/128 blackhole;"
        ]
    );
    assert_eq!(
        statics(&conf(&c, "n2", Family::V6)),
        ["route fd00:96::/112 blackhole;"]
    );
    // Without serviceClusterIPs, cluster IPs are not advertised (external ones still are).
    let c = cluster(&service_cluster().replace(
        "  serviceClusterIPs: [{cidr: 10.96.0.0/12}, {cidr: \"fd00:96::/112\"}]\n",
        "",
    ));
    let s = statics(&conf(&c, "n1", Family::V4));
    assert!(!s.iter().any(|l| l.contains("10.96.")), "{s:?}");
    assert!(s.contains(&"route 198.51.100.7/32 blackhole;".to_owned()));
}

/// A route reflector passes on its clients' routes inside the external and LoadBalancer
/// ranges even when it is itself excluded from advertising Service addresses.
#[test]
fn excluded_reflector_still_reflects_service_routes() {
    let y = service_cluster().replace(
        "    ipv6Address: fd00::3/64\n",
        "    ipv6Address: fd00::3/64\n    routeReflectorClusterID: 1.1.1.1\n",
    );
    let c = cluster(&y);
    let t = conf(&c, "n3", Family::V4);
    assert!(statics(&t).is_empty());
    let export = t
        .split("function calico_export_to_bgp_peers")
        .nth(1)
        .unwrap();
    let export = export.split("\n}\n").next().unwrap();
    for r in [
        "198.51.100.0/24",
        "203.0.113.5/32",
        "192.0.2.0/24",
        "192.0.2.200/32",
    ] {
        assert!(
            export.contains(&format!("  if ( net ~ [ {r}+ ] ) then {{ accept; }}")),
            "{export}"
        );
    }
    assert!(!export.contains("10.96.0.0/12"));
    // Not excluded, the same reflector advertises its own single addresses too, inside
    // the reflected ranges or explicitly.
    let c = cluster(&y.replace(
        "node.kubernetes.io/exclude-from-external-load-balancers: \"true\"",
        "",
    ));
    let t = conf(&c, "n3", Family::V4);
    assert!(t.contains("  route 10.96.0.10/32 blackhole;\n"));
    assert!(
        !t.contains("if ( net = 192.0.2.7/32 ) then { accept; }"),
        "inside a reflected range"
    );
}

/// A Service address outside every range is a blackhole for BGP only: the kernel filter
/// rejects it explicitly.
#[test]
fn service_address_outside_ranges_never_reaches_the_kernel() {
    let mut y = default_config("serviceClusterIPs: [{cidr: 10.96.0.0/12}]");
    y += &node("n1", "10.0.0.1/24", "", "");
    y += &service(
        "odd",
        "clusterIP: 172.20.0.1\nexternalTrafficPolicy: Local",
        &[],
    );
    y += &slice("odd", "IPv4", &["n1"]);
    let c = cluster(&y);
    let t = conf(&c, "n1", Family::V4);
    assert!(t.contains("  route 172.20.0.1/32 blackhole;\n"));
    assert!(t.contains("  if ( net = 172.20.0.1/32 ) then { accept; }\n"));
    assert!(
        t.contains("  if ( net = 172.20.0.1/32 ) then { reject; }\n  calico_kernel_priority();\n")
    );
}
