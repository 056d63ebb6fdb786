//! `calico demo`.
//!
//! - Offline path (any user): `--offline`, `CALICO_DEMO_OFFLINE=1` and, when this runs as
//!   root and `setpriv` exists, a real non-root run: the predicted matrix and the reason the
//!   live part was skipped are printed, exit 0; the JSON form carries the same prediction.
//! - Live (root only; otherwise the tests say they were NOT run and pass, unless
//!   `CALICO_REQUIRE_ROOT_TESTS=1`): the example cluster built in namespaces, every probe
//!   agrees with the prediction, exit 0, no namespace or scratch directory left; with the
//!   policies left out of the kernel (`CALICO_DEMO_MUTATE=no-policy`) the demo reports the
//!   disagreements and exits 1; a SIGINT in the middle removes everything.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The live tests run one at a time: each run sweeps leftovers of dead earlier runs, which
/// would include a `--keep` run being inspected.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live_lock() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cluster() -> String {
    format!("{}/../examples/cluster", env!("CARGO_MANIFEST_DIR"))
}

fn calico() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calico"));
    c.env_remove("CALICO_DEMO_OFFLINE")
        .env_remove("CALICO_DEMO_MUTATE");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn required() -> bool {
    std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

fn cni_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_calico"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Root, `ip`, `ping`, and calico-cni/calico-ipam built next to `calico` (`cargo test
/// --workspace` builds them; alone: `cargo build -p calico-cni`).
fn can_run(test: &str) -> bool {
    let tools = ["ip", "ping"]
        .iter()
        .all(|t| Command::new(t).arg("-V").output().is_ok());
    let cni = cni_dir().join("calico-cni").is_file() && cni_dir().join("calico-ipam").is_file();
    let why = if !is_root() {
        "not root"
    } else if !tools {
        "ip/ping missing"
    } else if !cni {
        "calico-cni/calico-ipam not built next to calico (cargo build -p calico-cni)"
    } else {
        return true;
    };
    assert!(!required(), "{test} is required but cannot run: {why}");
    eprintln!("NOTE: {test} was NOT RUN: {why}");
    false
}

/// Namespaces and scratch directories of the demo run with this PID.
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("calico-demo-{pid}-");
    let mut out = Vec::new();
    for dir in [
        "/var/run/netns",
        &std::env::temp_dir().display().to_string(),
    ] {
        if let Ok(d) = std::fs::read_dir(dir) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) || n == prefix.trim_end_matches('-') {
                    out.push(format!("{dir}/{n}"));
                }
            }
        }
    }
    out
}

/// Runs the demo as a child; its output and PID.
fn demo(args: &[&str], env: &[(&str, &str)]) -> (Output, u32) {
    let mut c = calico();
    c.arg("demo").arg(cluster()).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn assert_offline(o: &Output, reason: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("Predicted connectivity"), "{out}");
    // One row per pod of the example cluster (4 scheduled pods).
    for row in ["[1]", "[2]", "[3]", "[4]"] {
        assert!(out.contains(&format!("  {row}  ")), "{out}");
    }
    assert!(out.contains("frontend/web-7f9c6d5b8-x2kqp"), "{out}");
    assert!(
        out.contains(&format!("Live part skipped: {reason}")),
        "{out}"
    );
    assert!(err.contains("[1/8]") && err.contains("[2/8]"), "{err}");
    assert!(!err.contains("[3/8]"), "{err}");
}

#[test]
fn offline_flag_prints_prediction_and_reason() {
    let (o, pid) = demo(&["--offline"], &[]);
    assert_offline(&o, "--offline");
    assert!(leftovers(pid).is_empty());
    let (o, _) = demo(&[], &[("CALICO_DEMO_OFFLINE", "1")]);
    assert_offline(&o, "--offline (or CALICO_DEMO_OFFLINE=1)");
}

#[test]
fn offline_json_matches_policy_check() {
    let (o, _) = demo(&["--offline", "-o", "json"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["live"], false);
    assert!(v["skipped"].as_str().unwrap().contains("--offline"));
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 4);
    // Every ordered pair, every probe of the destination.
    let per_dest: Vec<usize> = pods
        .iter()
        .map(|p| p["probes"].as_array().unwrap().len())
        .collect();
    let expected: usize = per_dest.iter().map(|n| n * (pods.len() - 1)).sum();
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), expected);
    assert!(probes.iter().all(|p| p["observed"].is_null()));
    // Each prediction equals `calico policy check` for the same flow.
    for p in probes.iter().step_by(5) {
        let probe = p["probe"].as_str().unwrap();
        let mut args = vec![
            "policy".to_owned(),
            "check".to_owned(),
            cluster(),
            "--from".to_owned(),
            p["from"].as_str().unwrap().to_owned(),
            "--to".to_owned(),
            p["to"].as_str().unwrap().to_owned(),
        ];
        match probe.split_once('/') {
            Some((proto, port)) => args.extend([
                "--protocol".into(),
                proto.into(),
                "--port".into(),
                port.into(),
            ]),
            None => args.extend([
                "--protocol".into(),
                "icmp".into(),
                "--icmp-type".into(),
                "8".into(),
                "--icmp-code".into(),
                "0".into(),
            ]),
        }
        args.extend(["-o".into(), "json".into()]);
        let c = calico().args(&args).output().unwrap();
        let (cout, cerr) = text(&c);
        assert_eq!(c.status.code(), Some(0), "{cerr}");
        let checked: Value = serde_json::from_str(&cout).unwrap();
        let verdict = checked["verdict"].as_str().unwrap();
        assert_eq!(p["predicted"], verdict, "{p}: {cout}");
    }
}

#[test]
fn non_root_runs_offline_and_says_why() {
    if !is_root() {
        let (o, _) = demo(&[], &[]);
        assert_offline(&o, "not running as root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("NOTE: the non-root run was NOT RUN: setpriv missing");
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_calico"))
        .args(["demo", &cluster()])
        .env_remove("CALICO_DEMO_OFFLINE")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    if err.contains("Permission denied") && o.status.code() != Some(0) {
        eprintln!("NOTE: the non-root run was NOT RUN: nobody cannot read the binary or manifests");
        return;
    }
    assert_offline(&o, "not running as root");
    let _ = out;
}

#[test]
fn live_demo_agrees_and_cleans_up() {
    if !can_run("live demo") {
        return;
    }
    let _live = live_lock();
    let start = Instant::now();
    let (o, pid) = demo(&[], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("probes agree: the kernel enforced exactly what calico-policy predicted"),
        "{out}"
    );
    assert!(!out.contains("DISAGREE"), "{out}");
    for s in 1..=8 {
        assert!(err.contains(&format!("[{s}/8]")), "{err}");
    }
    // Every live change converged: a policy applied and deleted, a pod added and deleted, a
    // route reflector removed and restored.
    let changes: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Live changes"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(changes.len(), 6, "{out}");
    assert!(changes.iter().all(|l| l.contains(" converged ")), "{out}");
    assert!(out.contains("Calico process is running."), "{out}");
    assert!(out.contains("Established"), "{out}");
    assert!(
        err.contains("calico-cni") && err.contains("10.244.0.70"),
        "{err}"
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
    eprintln!("live demo took {:.1} s", start.elapsed().as_secs_f64());
}

#[test]
fn live_demo_detects_missing_policy() {
    if !can_run("live demo (mutated)") {
        return;
    }
    let _live = live_lock();
    let (o, pid) = demo(&["-o", "json"], &[("CALICO_DEMO_MUTATE", "no-policy")]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["live"], true);
    let probes = v["probes"].as_array().unwrap();
    let denied = probes.iter().filter(|p| p["predicted"] == "deny").count();
    assert!(denied > 0);
    // Without policy in the kernel every probe gets through: each predicted deny disagrees.
    assert_eq!(v["disagree"], denied, "{out}");
    assert!(probes.iter().all(|p| p["observed"] == "allow"), "{out}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn interrupted_demo_cleans_up() {
    if !can_run("interrupted demo") {
        return;
    }
    let _live = live_lock();
    let child = calico()
        .arg("demo")
        .arg(cluster())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the demo has built namespaces, then interrupt it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftovers(pid)
        .iter()
        .filter(|l| l.contains("/netns/"))
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "the demo built no namespaces");
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // Interrupted (130) — or, if the signal came after the end, finished normally.
    assert!(
        o.status.code() == Some(130) || o.status.code() == Some(0),
        "{:?} {err}",
        o.status
    );
    if o.status.code() == Some(130) {
        assert!(err.contains("SIGINT received"), "{err}");
    }
    assert_eq!(leftovers(pid), Vec::<String>::new(), "{err}");
}

#[test]
fn keep_leaves_the_cluster_and_the_next_run_sweeps_it() {
    if !can_run("kept demo") {
        return;
    }
    let _live = live_lock();
    let (o, pid) = demo(&["--keep"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let kept = leftovers(pid);
    assert!(kept.iter().any(|k| k.ends_with("-lan")), "{kept:?}");
    assert!(
        err.contains(&format!("ip netns del calico-demo-{pid}-lan")),
        "{err}"
    );
    // The nodes stay programmed: VXLAN routes to the other nodes' blocks, the nftables table.
    let node = format!("calico-demo-{pid}-node2");
    let routes = Command::new("ip")
        .args(["-n", &node, "route", "show"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(routes.contains("dev vxlan.calico"), "{routes}");
    let tables = Command::new("ip")
        .args(["netns", "exec", &node, "nft", "list", "tables"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&tables.stdout).contains("inet calico"));
    // Its agent (and BIRD) still run inside the namespace.
    let pids = Command::new("ip")
        .args(["netns", "pids", &node])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&pids.stdout).trim().is_empty(),
        "no agent left in {node}"
    );
    // The next run (its process is gone) removes them.
    let (o, next) = demo(&["--offline"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(leftovers(next).is_empty());
    assert_eq!(kept, leftovers(pid), "an offline run touches nothing");
    let (o, next) = demo(&[], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(err.contains("leftover(s) of earlier demo runs"), "{err}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
    assert_eq!(leftovers(next), Vec::<String>::new());
}

#[test]
fn live_demo_on_manifests_without_pools() {
    if !can_run("live demo (scenario without pools)") {
        return;
    }
    let _live = live_lock();
    let path = format!(
        "{}/../calico-policy/tests/scenarios/05-k8s-conversion/manifests.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let o = calico().args(["demo", &path]).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(err.contains("added calico-demo-pool-1"), "{err}");
    assert!(out.contains("probes agree"), "{out}");
    assert!(!out.contains("DISAGREE"), "{out}");
}

/// `--store etcd`: the demo runs its own etcd in a namespace on the bridge; the agents
/// follow it from their node namespaces and every live change converges.
#[test]
fn live_demo_on_its_own_etcd() {
    if !can_run("live demo on etcd") {
        return;
    }
    if Command::new("etcd").arg("--version").output().is_err() {
        assert!(
            !required(),
            "live demo on etcd is required but etcd is not installed"
        );
        eprintln!("NOTE: live demo on etcd was NOT RUN: etcd is not installed");
        return;
    }
    let _live = live_lock();
    let (o, pid) = demo(&["--store", "etcd", "-o", "json"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let store = v["store"].as_str().unwrap_or_default();
    assert_eq!(store, "etcd://198.18.0.250:2379", "{out}");
    for n in v["nodes"].as_array().expect("nodes") {
        let argv: Vec<&str> = n["agent_command"]
            .as_array()
            .expect("agent_command")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(argv.windows(2).any(|w| w == ["--store", store]), "{argv:?}");
    }
    let changes = v["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 6, "{out}");
    for c in changes {
        assert_eq!(c["converged"], true, "{c}");
    }
    assert!(err.contains("etcd in"), "{err}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
}
