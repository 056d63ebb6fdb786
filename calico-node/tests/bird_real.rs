//! Real BIRD 2 daemons on loopback: two BIRDs peer with each other (no kernel protocol,
//! so nothing outside their own state changes; BGP runs only between 127.0.0.1 and
//! 127.0.0.2 on ports derived from the test's pid). Checks the control-socket client,
//! `calico node status`'s rows, configuration installs (unchanged, reloaded without
//! resetting the session, rejected and kept), and restarts of a killed BIRD.
//!
//! Without `bird` the test says on stderr that it did NOT run and passes, unless
//! `CALICO_REQUIRE_BIRD=1` or `CALICO_REQUIRE_ROOT_TESTS=1` (CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_node::protocols::parse_show_protocols;
use calico_node::{
    BirdControl, BirdError, BirdPaths, BirdProcess, ConfigError, InstallOutcome, NodeStatus,
    install_config,
};

fn required() -> bool {
    ["CALICO_REQUIRE_ROOT_TESTS", "CALICO_REQUIRE_BIRD"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("1"))
}

fn bird_available() -> bool {
    Command::new("bird")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(me: &str, peer: &str, my_port: u16, peer_port: u16, extra: &str) -> String {
    let name = format!("Mesh_{}", peer.replace('.', "_"));
    format!(
        "router id {me};\n\
         protocol device {{ }}\n\
         protocol bgp {name} {{\n  local {me} port {my_port} as 64512;\n  neighbor {peer} port {peer_port} as 64512;\n  connect delay time 1;\n  ipv4 {{ import all; export none; }};\n}}\n{extra}"
    )
}

fn show(socket: &Path) -> Vec<calico_node::protocols::ProtocolRow> {
    let mut c = BirdControl::connect(socket, Duration::from_secs(5)).unwrap();
    parse_show_protocols(&c.command("show protocols").unwrap().text())
}

fn wait_established(socket: &Path, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rows = show(socket);
        if let Some(r) = rows
            .iter()
            .find(|r| r.name == name && r.info.starts_with("Established"))
        {
            return r.since.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name} never established: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_birds_on_loopback() {
    if !bird_available() {
        assert!(
            !required(),
            "the real-BIRD test is required but `bird` is missing"
        );
        eprintln!("NOTE: real-BIRD test was NOT RUN: `bird` is not installed");
        return;
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("calico-node-bird-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let (port_a, port_b) = (base, base + 1);
    let paths = |n: &str| BirdPaths {
        binary: PathBuf::from("bird"),
        config: dir.0.join(format!("{n}.conf")),
        socket: dir.0.join(format!("{n}.ctl")),
        log: Some(dir.0.join(format!("{n}.log"))),
    };
    let (pa, pb) = (paths("a"), paths("b"));
    let conf_a = config("127.0.0.1", "127.0.0.2", port_a, port_b, "");
    std::fs::write(&pa.config, &conf_a).unwrap();
    std::fs::write(
        &pb.config,
        config("127.0.0.2", "127.0.0.1", port_b, port_a, ""),
    )
    .unwrap();
    let mut a = BirdProcess::start(pa.clone()).unwrap();
    let mut b = BirdProcess::start(pb.clone()).unwrap();

    // The control socket: greeting, version, an error code as a typed error.
    let mut control = BirdControl::connect(&pa.socket, Duration::from_secs(5)).unwrap();
    assert!(control.version().starts_with('2'), "{}", control.version());
    match control.command("show nonsense") {
        Err(BirdError::Refused { code, .. }) => assert!((8000..10000).contains(&code)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let status = control.command("show status").unwrap();
    assert!(
        status.text().contains("Router ID is 127.0.0.1"),
        "{}",
        status.text()
    );

    let since = wait_established(&pa.socket, "Mesh_127_0_0_2");
    let node = NodeStatus::from_protocols(true, &show(&pa.socket));
    assert_eq!(node.ipv4.len(), 1, "{node:?}");
    assert_eq!(node.ipv4[0].peer_address, "127.0.0.2");
    assert_eq!(node.ipv4[0].peer_type, "node-to-node mesh");
    assert_eq!(node.ipv4[0].state, "up");
    assert_eq!(node.ipv4[0].info, "Established");
    assert!(node.ipv6.is_empty());
    let table = node.to_table();
    assert!(
        table.contains("| 127.0.0.2    | node-to-node mesh | up    |"),
        "{table}"
    );

    // Installing the same text changes nothing.
    let bird = Path::new("bird");
    assert_eq!(
        install_config(bird, &pa.config, &conf_a, Some(&pa.socket)).unwrap(),
        InstallOutcome::Unchanged
    );
    // A new protocol: installed and reloaded; the unchanged session is not reset.
    let extended = config(
        "127.0.0.1",
        "127.0.0.2",
        port_a,
        port_b,
        "protocol static extra1 { ipv4; }\n",
    );
    assert_eq!(
        install_config(bird, &pa.config, &extended, Some(&pa.socket)).unwrap(),
        InstallOutcome::Installed { reloaded: true }
    );
    std::thread::sleep(Duration::from_millis(500));
    let rows = show(&pa.socket);
    assert!(rows.iter().any(|r| r.name == "extra1"), "{rows:?}");
    let mesh = rows.iter().find(|r| r.name == "Mesh_127_0_0_2").unwrap();
    assert_eq!(mesh.info, "Established", "{rows:?}");
    assert_eq!(
        mesh.since, since,
        "the unchanged session was reset by the reload"
    );
    // A configuration BIRD rejects: the file and the running BIRD stay as they were.
    let broken = format!("{extended}\nprotocol bgp broken {{ neighbor; }}\n");
    match install_config(bird, &pa.config, &broken, Some(&pa.socket)) {
        Err(ConfigError::Rejected { message }) => {
            assert!(message.contains("a.conf"), "names the file: {message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&pa.config).unwrap(), extended);
    assert!(
        !dir.0.join("a.conf.new").exists(),
        "the temporary file is removed"
    );
    assert_eq!(wait_established(&pa.socket, "Mesh_127_0_0_2"), since);

    // BIRD B dies: it is restarted and the session comes back.
    let pid = b.pid().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.ensure_running().unwrap(), "a dead BIRD is restarted");
    assert_eq!(b.restarts(), 1);
    assert_ne!(b.pid(), Some(pid));
    assert!(!b.ensure_running().unwrap(), "a live BIRD is left alone");
    wait_established(&pb.socket, "Mesh_127_0_0_1");

    // Stopping removes the process and its socket.
    let pid_a = a.pid().unwrap();
    a.stop().unwrap();
    assert!(!pa.socket.exists());
    assert!(
        !Path::new(&format!("/proc/{pid_a}")).exists() || {
            // A zombie is reaped by `stop`; anything left must not be BIRD.
            std::fs::read_to_string(format!("/proc/{pid_a}/comm"))
                .map_or(true, |c| c.trim() != "bird")
        }
    );
    drop(b);
    assert!(!pb.socket.exists(), "dropping stops BIRD too");
}
