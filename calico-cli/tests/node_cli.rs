//! `calico datastore dump` and `calico node status` run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use calico_datastore::{FileStore, Store};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
        .env_remove("CALICO_STORE")
        .output()
        .expect("run calico")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("calico-nodecli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dump_prints_every_key_as_text_or_json_lines() {
    let dir = TempDir::new("dump");
    let db = dir.0.join("d.db");
    let store = FileStore::open(&db).unwrap();
    // More keys than one page, plus keys outside the prefix.
    for i in 0..1_200 {
        store
            .put(
                format!("/calico/x/{i:05}").as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .unwrap();
    }
    let lease = store.grant_lease(Duration::from_secs(90)).unwrap();
    store
        .put_with_lease(
            b"/calico/felix/v2/no-region/host/n1/status",
            br#"{"time":"2026-12-07T13:00:00Z","uptime":5,"first_update":true}"#,
            lease,
        )
        .unwrap();
    store.put(b"/other/key", &[0xff, 0xfe]).unwrap();
    drop(store);
    let url = format!("file:{}", db.display());
    let o = calico(&[
        "--store",
        &url,
        "datastore",
        "dump",
        "--prefix",
        "/calico/x/",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1_200);
    assert_eq!(lines[0], "/calico/x/00000 v0");
    assert_eq!(lines[1_199], "/calico/x/01199 v1199");
    let o = calico(&["--store", &url, "datastore", "dump", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let objs: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 1_202);
    let status = objs
        .iter()
        .find(|v| v["key"] == "/calico/felix/v2/no-region/host/n1/status")
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(status["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["first_update"], true);
    let other = objs.iter().find(|v| v["key"] == "/other/key").unwrap();
    assert_eq!(other["value_base64"], "//4=");
}

#[test]
fn status_says_when_the_agent_is_not_running() {
    let dir = TempDir::new("down");
    let state = dir.0.to_str().unwrap();
    let o = calico(&["node", "status", "--state-dir", state]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "Calico process is not running.\n");
    // A pid file naming a process that is gone.
    std::fs::write(dir.0.join("calico-node.pid"), "999999999\n").unwrap();
    let o = calico(&["node", "status", "--state-dir", state, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["running"], false);
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_reads_birds_sessions() {
    let required = ["CALICO_REQUIRE_ROOT_TESTS", "CALICO_REQUIRE_BIRD"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("1"));
    if Command::new("bird")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        assert!(
            !required,
            "the BIRD status test is required but `bird` is missing"
        );
        eprintln!("NOTE: BIRD status test was NOT RUN: `bird` is not installed");
        return;
    }
    let dir = TempDir::new("bird");
    let port = 30_000 + (std::process::id() % 20_000) as u16;
    // Sessions to loopback addresses where nothing answers: they stay down, but are listed.
    let conf = format!(
        "router id 127.0.0.1;\nprotocol device {{ }}\n\
         protocol bgp Mesh_127_0_0_2 {{ local 127.0.0.1 port {port} as 64512; neighbor 127.0.0.2 port {port} as 64512; ipv4 {{ import all; export none; }}; }}\n\
         protocol bgp Global_127_0_0_3_port_{p2} {{ local 127.0.0.1 port {port} as 64512; neighbor 127.0.0.3 port {p2} as 64513; ipv4 {{ import all; export none; }}; }}\n\
         protocol bgp Node_fd00__7 {{ local ::1 port {port} as 64512; neighbor ::1 port {p3} as 64512; ipv6 {{ import all; export none; }}; }}\n",
        p2 = port + 1,
        p3 = port + 2
    );
    let conf_path = dir.0.join("bird.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let socket = dir.0.join("bird.ctl");
    let mut bird = Command::new("bird")
        .args(["-f", "-c"])
        .arg(&conf_path)
        .arg("-s")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&socket);
    // This test process stands for the agent.
    std::fs::write(
        dir.0.join("calico-node.pid"),
        std::process::id().to_string(),
    )
    .unwrap();
    let state = dir.0.to_str().unwrap();
    let o = calico(&["node", "status", "--state-dir", state]);
    let out = text(&o.stdout);
    let _ = bird.kill();
    let _ = bird.wait();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.starts_with("Calico process is running.\n\nIPv4 BGP status\n+"),
        "{out}"
    );
    assert!(
        out.contains("| 127.0.0.2    | node-to-node mesh |"),
        "{out}"
    );
    assert!(
        out.contains("| 127.0.0.3    | global            |"),
        "{out}"
    );
    assert!(out.contains("IPv6 BGP status\n+"), "{out}");
    assert!(out.contains("| fd00::7      | node specific |"), "{out}");
    assert!(out.ends_with("+\n\n"), "{out:?}");
}
