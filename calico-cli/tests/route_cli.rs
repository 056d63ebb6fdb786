//! `calico route …` run as a script would: exit codes and output formats (cli.md "route").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
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
