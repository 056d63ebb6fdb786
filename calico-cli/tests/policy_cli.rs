//! `calico policy check|connlist` run as a script would: outputs and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
        .output()
        .expect("run calico")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn worked_example() -> PathBuf {
    repo().join("calico-policy/tests/scenarios/worked-example")
}

fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calico-policy-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write");
    }
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn connlist_txt_is_the_worked_example() {
    let dir = worked_example();
    let o = calico(&["policy", "connlist", path(&dir.join("manifests.yaml"))]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected");
    assert_eq!(stdout(&o), expected);
}

#[test]
fn connlist_other_formats() {
    let m = worked_example().join("manifests.yaml");
    let json = calico(&["policy", "connlist", path(&m), "-o", "json"]);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 9);
    assert_eq!(rows[4]["conn"], "TCP 5432-5433,UDP 9000-9010");
    assert!(stdout(&json).starts_with("[\n  {\n    \"src\""));

    let csv = stdout(&calico(&["policy", "connlist", path(&m), "-o", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "src,dst,conn");
    assert_eq!(
        lines[5],
        "shop/backend[Deployment],shop/db[StatefulSet],\"TCP 5432-5433,UDP 9000-9010\""
    );

    let md = stdout(&calico(&["policy", "connlist", path(&m), "-o", "md"]));
    assert!(md.starts_with("| src | dst | conn |\n|-----|-----|------|\n"));
    assert!(md.contains("| shop/frontend[Deployment] | shop/backend[Deployment] | TCP 8080 |\n"));

    let dot = stdout(&calico(&["policy", "connlist", path(&m), "-o", "dot"]));
    assert!(dot.starts_with("digraph {"));
    assert!(dot.contains("subgraph \"cluster_shop[namespace]\""));
    assert!(dot.contains(
        "\"shop/frontend[Deployment]\" -> \"shop/backend[Deployment]\" [label=\"TCP 8080\"]"
    ));
}

#[test]
fn connlist_empty_and_errors() {
    let empty = scratch(
        "empty",
        &[(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )],
    );
    let o = calico(&["policy", "connlist", path(&empty)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let o = calico(&["policy", "connlist", path(&empty), "-o", "json"]);
    assert_eq!(stdout(&o), "[]\n");

    let missing = repo().join("does-not-exist");
    assert_eq!(
        calico(&["policy", "connlist", path(&missing)])
            .status
            .code(),
        Some(2)
    );

    let no_yaml = scratch("noyaml", &[("readme.txt", "hello")]);
    assert_eq!(
        calico(&["policy", "connlist", path(&no_yaml)])
            .status
            .code(),
        Some(2)
    );

    // A file that does not parse: strictly exit 2; by default a warning, and the rest
    // (here nothing) is analysed.
    let broken = scratch("broken", &[("b.yaml", "kind: [\n")]);
    assert_eq!(
        calico(&["policy", "connlist", "--strict", path(&broken)])
            .status
            .code(),
        Some(2)
    );
    let o = calico(&["policy", "connlist", path(&broken)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("b.yaml:0 ?/: -: not a manifest: cannot parse YAML")
    );

    let invalid = scratch(
        "invalid",
        &[(
            "np.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: netpol}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: A}\n",
        )],
    );
    let o = calico(&["policy", "connlist", "--strict", path(&invalid)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("np.yaml:0 NetworkPolicy/netpol/p: spec.ingress[0].from[0].ipBlock.cidr"),
        "{err}"
    );
    // By default the same problem is a warning and the policy is analysed without the rule.
    let o = calico(&["policy", "connlist", path(&invalid)]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: ")
            && err
                .contains("np.yaml:0 NetworkPolicy/netpol/p: spec.ingress[0].from[0].ipBlock.cidr"),
        "{err}"
    );
}

/// A directory as found in real repositories: result files, a README, a pod whose name
/// breaks the naming rules, a container port of 0, a rule that does not decode.
fn messy_dir(name: &str) -> PathBuf {
    scratch(
        name,
        &[
            (
                "results.json",
                r#"[{"src": "a", "dst": "b", "conn": "All Connections"}]"#,
            ),
            ("README.json", r#"{"title": "policies of the shop"}"#),
            ("notes.yaml", "- this\n- is: [not\n"),
            (
                "shop.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata: {name: web_1, namespace: shop, labels: {app: web, canary: yes}}\n\
                 spec:\n  nodeName: n1\n  containers:\n  - name: c\n    ports:\n    - {name: zero, containerPort: 0}\n    - {name: http, containerPort: 8080}\n\
                 status: {podIP: 10.0.0.1}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db}}\nspec: {nodeName: n1}\nstatus: {podIP: 10.0.0.2}\n---\n\
                 apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\n\
                 spec:\n  selector: app == 'db'\n  types: [Ingress]\n  ingress:\n  - {action: Allow, protocol: TCP, source: {selector: canary == 'true'}, destination: {ports: [5432]}}\n  - {action: Frobnicate}\n",
            ),
        ],
    )
}

#[test]
fn messy_directories_warn_and_analyse_the_rest() {
    let dir = messy_dir("messy");
    let o = calico(&["policy", "connlist", path(&dir)]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = stdout(&o);
    // The pod with the bad name is analysed as written; `canary: yes` is the label "true".
    assert!(
        out.contains("shop/web_1[Pod] => shop/db[Pod] : TCP 5432"),
        "{out}"
    );
    for needle in [
        "results.json:0 ?/: -: expected an object, found a list; the document is skipped",
        "README.json:0 ?/: kind: kind is required; the document is skipped",
        "notes.yaml:0 ?/: -: not a manifest: cannot parse YAML",
        "shop.yaml:0 Pod/shop/web_1: metadata.name: invalid name",
        "shop.yaml:0 Pod/shop/web_1: spec.containers[0].ports[0].containerPort",
        "shop.yaml:2 NetworkPolicy/shop/db: spec.ingress[1].action",
    ] {
        assert!(
            err.contains(&format!("warning: {}", dir.join("").display())),
            "{err}"
        );
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
    assert!(
        err.lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with("warning: ") || l.starts_with("calico: ")),
        "{err}"
    );

    // check: the named port of the dropped container port is gone, the other stays.
    let o = calico(&[
        "policy",
        "check",
        path(&dir),
        "--from",
        "shop/web_1",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("verdict: allow"), "{}", stdout(&o));

    // diff against itself: no difference, exit 0.
    let o = calico(&["policy", "diff", path(&dir), path(&dir)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // lint reports the manifests' own problems as findings (exit 1), and reads past the
    // files that are not manifests.
    let o = calico(&["policy", "lint", path(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    let findings = stdout(&o);
    for needle in [
        "Pod/shop/web_1: metadata.name: [invalid] invalid name \"web_1\"",
        "NetworkPolicy/shop/db: spec.ingress[1].action",
        "README.json:0 ?/: kind: ",
    ] {
        assert!(
            findings.contains(needle),
            "missing {needle:?} in\n{findings}"
        );
    }

    // --strict: today's fail-on-first-problem.
    for args in [
        vec!["policy", "connlist", "--strict", path(&dir)],
        vec![
            "policy",
            "check",
            "--strict",
            path(&dir),
            "--from",
            "shop/web_1",
            "--to",
            "shop/db",
        ],
        vec!["policy", "diff", "--strict", path(&dir), path(&dir)],
    ] {
        let code = calico(&args).status.code();
        assert!(matches!(code, Some(1 | 2)), "{args:?}: {code:?}");
    }
    // validate stays strict.
    assert_eq!(calico(&["validate", path(&dir)]).status.code(), Some(2));
}

#[test]
fn render_for_a_node_without_a_node_object() {
    // Policy-only mode: pods on n1, no Node n1 (Calico over another network plugin).
    let dir = scratch(
        "policy-only",
        &[(
            "m.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod, labels: {app: web}}\n\
             spec: {nodeName: n1}\nstatus: {podIP: 10.0.0.1}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: prod}\n\
             spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}\n",
        )],
    );
    for format in ["nft", "iptables"] {
        let o = calico(&[
            "policy",
            "render",
            path(&dir),
            "--node",
            "n1",
            "--format",
            format,
        ]);
        assert_eq!(o.status.code(), Some(0), "{format}: {o:?}");
        assert!(stdout(&o).contains("10.0.0.1"), "{format}");
    }
}

#[test]
fn check_text_json_and_exit_codes() {
    let m = worked_example().join("manifests.yaml");
    let o = calico(&[
        "policy",
        "check",
        path(&m),
        "--from",
        "shop/frontend",
        "--to",
        "shop/backend",
        "--port",
        "8080",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("verdict: allow\n"), "{}", stdout(&o));

    let o = calico(&[
        "policy",
        "check",
        path(&m),
        "--from",
        "shop/db",
        "--to",
        "shop/backend",
        "--port",
        "8080",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "deny still exits 0");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["verdict"], "deny");
    let ex = v["explanation"].as_array().expect("explanation");
    assert_eq!(ex[0]["direction"], "egress");
    assert_eq!(ex[0]["verdict"], "deny");
    assert_eq!(ex[0]["decided_by"]["type"], "end-of-tier");
    assert_eq!(ex[0]["decided_by"]["tier"], "default");

    let o = calico(&[
        "policy",
        "check",
        path(&m),
        "--from",
        "shop/frontend",
        "--to",
        "10.1.2.3",
        "--port",
        "443",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("verdict: deny\n"),
        "except 10.0.0.0/8"
    );

    for bad in [
        vec!["--from", "shop/nope", "--to", "shop/db"],
        vec![
            "--from",
            "shop/db",
            "--to",
            "shop/frontend",
            "--protocol",
            "bogus",
        ],
        vec![
            "--from",
            "shop/db",
            "--to",
            "shop/frontend",
            "--protocol",
            "ICMP",
            "--port",
            "1",
        ],
    ] {
        let mut args = vec!["policy", "check", path(&m)];
        args.extend(bad.iter().copied());
        assert_eq!(calico(&args).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn example_cluster_runs() {
    let dir = repo().join("examples/cluster");
    let o = calico(&["policy", "connlist", path(&dir)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains(
        "warning: IPv6 CIDR 2001:db8:bad::/48 in network set threat-feed left out of the address ranges"
    ));
    assert!(out.contains("frontend/web[Deployment] => backend/api[Deployment] : TCP 8080\n"));
    assert!(!out.contains("198.51.100.0-198.51.100.255[External] => frontend/web[Deployment]"));
    let o = calico(&[
        "policy",
        "check",
        path(&dir),
        "--from",
        "backend/api",
        "--to",
        "data/postgres",
        "--port",
        "5432",
    ]);
    assert!(stdout(&o).starts_with("verdict: allow\n"));
}

#[test]
fn diff_and_lint_exit_codes() {
    let m = worked_example().join("manifests.yaml");
    let o = calico(&["policy", "diff", path(&m), path(&m)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty());
    let text = std::fs::read_to_string(&m).expect("manifests");
    let changed = scratch(
        "diff",
        &[(
            "m.yaml",
            &text.replace(
                "- {protocol: TCP, port: 443}",
                "- {protocol: TCP, port: 8443}",
            ),
        )],
    );
    let o = calico(&["policy", "diff", path(&m), path(&changed)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("+ shop/frontend[Deployment] => 0.0.0.0-9.255.255.255[External] : TCP 8443\n"),
        "{out}"
    );
    assert!(
        out.contains("- shop/frontend[Deployment] => 0.0.0.0-9.255.255.255[External] : TCP 443\n"),
        "{out}"
    );
    assert_eq!(
        calico(&["policy", "diff", path(&m), "/does/not/exist"])
            .status
            .code(),
        Some(2)
    );

    let o = calico(&["policy", "lint", path(&m)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let lint = scratch(
        "lint",
        &[(
            "p.yaml",
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec:\n  selector: app == 'none'\n  ingress: [{action: Allow}]\n",
        )],
    );
    let o = calico(&["policy", "lint", path(&lint)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("p.yaml:0 GlobalNetworkPolicy/g: spec.selector: [selects-nothing]"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn render_nft_and_iptables() {
    let example = repo().join("calico-policy/tests/nft/example.yaml");
    let o = calico(&["policy", "render", path(&example), "--node", "node1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let nft = stdout(&o);
    assert!(nft.starts_with("table inet calico {\n"), "{nft}");
    assert!(nft.contains("\tchain pol-i-np/prod/allow-web {\n"));
    assert!(nft.contains("\"calic36cb0217f8\" : goto ep-tw-calic36cb0217f8"));
    assert!(nft.contains("meta l4proto icmp icmp type 8 icmp code != 0 accept"));
    assert!(!nft.contains("counter"));
    let o = calico(&[
        "policy",
        "render",
        path(&example),
        "--node",
        "node1",
        "--counters",
    ]);
    assert!(stdout(&o).contains(" counter "), "{o:?}");
    let o = calico(&[
        "policy",
        "render",
        path(&example),
        "--node",
        "node1",
        "--format",
        "iptables",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let ipt = stdout(&o);
    assert!(
        ipt.contains("*filter\n") && ipt.ends_with("COMMIT\n"),
        "{ipt}"
    );
    assert!(ipt.contains("-A cali-to-wl-dispatch -o calic36cb0217f8 -g cali-tw-calic36cb0217f8\n"));
    assert!(ipt.contains("-m icmp ! --icmp-type 8/0"));
    // A node without endpoints: base chains only, a warning, exit 0.
    let o = calico(&["policy", "render", path(&example), "--node", "nowhere"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    assert!(!stdout(&o).contains("ep-tw-"));
}

#[test]
fn render_exit_codes() {
    // Invalid manifests: exit 1, nothing on stdout.
    let dir = scratch(
        "render-invalid",
        &[(
            "p.yaml",
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  selector: \"a ==\"\n",
        )],
    );
    let o = calico(&["policy", "render", path(&dir), "--node", "n1"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stdout.is_empty());
    // Missing path or --node: exit 2.
    let o = calico(&["policy", "render", "/nonexistent/dir", "--node", "n1"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = calico(&["policy", "render", path(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = calico(&[
        "policy",
        "render",
        path(&dir),
        "--node",
        "n1",
        "--format",
        "pf",
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
