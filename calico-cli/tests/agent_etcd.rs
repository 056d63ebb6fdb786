//! `calico node run` on a real etcd and a real kernel, through faults (root and etcd only;
//! otherwise prints that it did NOT run and passes, unless `CALICO_REQUIRE_ROOT_TESTS=1` /
//! `CALICO_REQUIRE_ETCD=1`).
//!
//! A node namespace (etcd and the agent run inside it) and a pod namespace wired to it by a
//! `cali…` veth. A ping from the node to the pod runs for the whole test and must lose no
//! packet (one in flight at the end is allowed), because:
//! - etcd killed for 30 s: the agent keeps the kernel as it is (table and routes unchanged),
//!   `/readiness` answers 503 while etcd is away and 200 again once it is back;
//! - a change written after etcd's return is programmed;
//! - the agent SIGKILLed, a policy deleted while it is down, the agent started again: the
//!   kernel keeps forwarding during the restart and the first apply removes the stale chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_dataplane::netns::Netns;

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Cleanup {
    netns: Vec<String>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.netns {
            let pids = Command::new("ip").args(["netns", "pids", n]).output();
            if let Ok(p) = pids {
                for pid in String::from_utf8_lossy(&p.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn http_status(ns: &Netns, port: u16, path: &str) -> Option<u16> {
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    ns.run(move || -> Option<u16> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_whitespace().nth(1)?.parse().ok()
    })
    .ok()?
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_etcd(etcd: &std::path::Path, node: &str, data: &std::path::Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", node])
        .arg(etcd)
        .args(["--name", "t", "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:23791",
            "--advertise-client-urls",
            "http://127.0.0.1:23791",
            "--listen-peer-urls",
            "http://127.0.0.1:23801",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23801",
            "--initial-cluster",
            "t=http://127.0.0.1:23801",
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

const URL: &str = "etcd://127.0.0.1:23791";
const RES: &str = "/calico/resources/v3/projectcalico.org";
const HEALTH: u16 = 29199;

fn store_in(ns: &Netns) -> std::sync::Arc<dyn calico_datastore::Store> {
    ns.run(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = calico_datastore_etcd::open_store(URL)
                && s.revision().is_ok()
            {
                return std::sync::Arc::<dyn calico_datastore::Store>::from(s);
            }
            assert!(Instant::now() < deadline, "etcd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .unwrap()
}

fn put(
    ns: &Netns,
    store: &std::sync::Arc<dyn calico_datastore::Store>,
    key: &str,
    v: serde_json::Value,
) {
    let s = store.clone();
    let key = key.to_owned();
    ns.run(move || s.put(key.as_bytes(), v.to_string().as_bytes()).unwrap())
        .unwrap();
}

fn start_agent(node: &str, state: &std::path::Path) -> Child {
    std::fs::create_dir_all(state).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("agent.log"))
        .unwrap();
    Command::new("ip")
        .args(["netns", "exec", node])
        .arg(env!("CARGO_BIN_EXE_calico"))
        .args([
            "--store",
            URL,
            "node",
            "run",
            "--node",
            "n1",
            "--no-bgp",
            "--state-dir",
        ])
        .arg(state)
        .args(["--health-port", &HEALTH.to_string()])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn agent_keeps_the_kernel_through_an_etcd_outage_and_a_sigkill() {
    if !root() {
        assert!(
            std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
            "agent_etcd is required but cannot run as non-root"
        );
        eprintln!("agent_etcd: NOT run (needs root)");
        return;
    }
    let Some(etcd) = calico_datastore_etcd::testkit::etcd_or_skip("agent_etcd") else {
        return;
    };
    let tag = std::process::id();
    let node = format!("calico-agentetcd-{tag}-node");
    let pod = format!("calico-agentetcd-{tag}-pod");
    let dir = std::env::temp_dir().join(format!("calico-agentetcd-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Cleanup {
        netns: vec![node.clone(), pod.clone()],
        children: Vec::new(),
        dir: dir.clone(),
    };
    for n in [&node, &pod] {
        sh(&["ip", "netns", "add", n]);
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    sh(&[
        "ip", "-n", &node, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    sh(&[
        "ip",
        "-n",
        &node,
        "addr",
        "add",
        "10.0.0.1/24",
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &node, "link", "set", "eth0", "up"]);
    sh(&["ip", "-n", &node, "link", "set", "peer0", "up"]);
    // As on a host: a default route, so proxy ARP answers the pods' gateway 169.254.1.1.
    sh(&["ip", "-n", &node, "route", "add", "default", "dev", "eth0"]);
    let iface = calico_dataplane::workload::host_interface_name("cali", "web", "a");
    sh(&[
        "ip", "-n", &node, "link", "add", &iface, "type", "veth", "peer", "name", "eth0", "netns",
        &pod,
    ]);
    sh(&["ip", "-n", &node, "link", "set", &iface, "up"]);
    sh(&[
        "ip",
        "-n",
        &pod,
        "addr",
        "add",
        "10.244.0.5/32",
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &pod, "link", "set", "eth0", "up"]);
    sh(&[
        "ip",
        "-n",
        &pod,
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
    ]);
    sh(&[
        "ip",
        "-n",
        &pod,
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ]);

    let data = dir.join("etcd");
    c.children.push(start_etcd(&etcd, &node, &data));
    let ns = Netns::named(&node).unwrap();
    let store = store_in(&ns);
    put(
        &ns,
        &store,
        &format!("{RES}/nodes/n1"),
        serde_json::json!({
        "kind": "Node", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "n1"}, "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}}),
    );
    put(
        &ns,
        &store,
        &format!("{RES}/felixconfigurations/default"),
        serde_json::json!({
        "kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "default"},
        "spec": {"routeRefreshInterval": "2s", "nftablesRefreshInterval": "2s"}}),
    );
    put(
        &ns,
        &store,
        "/calico/calico-rs/k8s/pods/web/a",
        serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "a", "namespace": "web", "labels": {"app": "a"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}]}}),
    );
    let policy_key = format!("{RES}/globalnetworkpolicies/allow-a");
    let policy = serde_json::json!({
        "kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "allow-a"},
        "spec": {"tier": "default", "selector": "app == 'a'", "types": ["Ingress"],
                 "ingress": [{"action": "Allow"}]}});

    let state = dir.join("state");
    c.children.push(start_agent(&node, &state));
    wait("readiness", Duration::from_secs(20), || {
        http_status(&ns, HEALTH, "/readiness").is_some_and(|s| s < 300)
    });
    let route = || sh(&["ip", "-n", &node, "route", "show", "10.244.0.5"]);
    wait("the pod's route", Duration::from_secs(10), || {
        route().contains(&iface)
    });

    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node,
            "ping",
            "-n",
            "-i",
            "0.05",
            "-W",
            "1",
            "10.244.0.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let table = || {
        sh(&[
            "ip", "netns", "exec", &node, "nft", "list", "table", "inet", "calico",
        ])
    };
    let before = (table(), route());

    // etcd away for 30 s.
    let mut etcd_child = c.children.remove(0);
    etcd_child.kill().unwrap();
    etcd_child.wait().unwrap();
    wait("readiness to go bad", Duration::from_secs(15), || {
        http_status(&ns, HEALTH, "/readiness") == Some(503)
    });
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(
        (table(), route()),
        before,
        "the kernel changed while etcd was away"
    );
    assert_eq!(http_status(&ns, HEALTH, "/readiness"), Some(503));
    assert_eq!(
        http_status(&ns, HEALTH, "/liveness").map(|s| s < 300),
        Some(true)
    );
    c.children.insert(0, start_etcd(&etcd, &node, &data));
    wait(
        "readiness after etcd's return",
        Duration::from_secs(30),
        || http_status(&ns, HEALTH, "/readiness").is_some_and(|s| s < 300),
    );
    let store = store_in(&ns);
    put(&ns, &store, &policy_key, policy);
    wait("the new policy's chain", Duration::from_secs(10), || {
        table().contains("allow-a")
    });

    // Compaction past the agent's revision: the agent is paused while 3 MB of updates
    // pile up (its watch stream stalls), etcd compacts them away, the agent resumes. One
    // re-list, and nothing in the kernel changes (no spurious deletes).
    let before = (table(), route());
    let agent_pid = c.children[1].id().to_string();
    sh(&["kill", "-STOP", &agent_pid]);
    let s = store.clone();
    ns.run(move || {
        let big = "x".repeat(1000);
        let mut rev = 0;
        for i in 0..3000 {
            let v = serde_json::json!({
                "kind": "GlobalNetworkSet", "apiVersion": "projectcalico.org/v3",
                "metadata": {"name": "bulk", "labels": {"n": i.to_string()}, "annotations": {"pad": big}},
                "spec": {"nets": ["192.0.2.0/24"]}});
            rev = s
                .put(
                    format!("{RES}/globalnetworksets/bulk").as_bytes(),
                    v.to_string().as_bytes(),
                )
                .unwrap();
        }
        s.compact(rev).unwrap();
    })
    .unwrap();
    sh(&["kill", "-CONT", &agent_pid]);
    let log = || std::fs::read_to_string(state.join("agent.log")).unwrap_or_default();
    wait(
        "the re-list after compaction",
        Duration::from_secs(20),
        || log().contains("1 after compaction)"),
    );
    assert_eq!(log().matches("in sync again").count(), 2, "{}", log());
    assert!(log().contains("1 after compaction)"), "{}", log());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (table(), route()),
        before,
        "the kernel changed after the re-list"
    );

    // SIGKILL; the policy goes while the agent is down; the restart sweeps its chain.
    let mut agent = c.children.remove(1);
    agent.kill().unwrap();
    agent.wait().unwrap();
    let s = store.clone();
    let key = policy_key.clone();
    ns.run(move || {
        let rev = s.get(key.as_bytes()).unwrap().unwrap().mod_revision;
        s.delete(key.as_bytes(), rev).unwrap();
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        table().contains("allow-a"),
        "the kernel stays as it was while the agent is down"
    );
    c.children.push(start_agent(&node, &state));
    wait("the stale chain's removal", Duration::from_secs(20), || {
        !table().contains("allow-a")
    });
    wait(
        "readiness after the restart",
        Duration::from_secs(20),
        || http_status(&ns, HEALTH, "/readiness").is_some_and(|s| s < 300),
    );
    std::thread::sleep(Duration::from_secs(1));

    // No ping was lost.
    let pid = ping.id();
    sh(&["kill", "-INT", &pid.to_string()]);
    let out = ping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_owned();
    let nums: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 2, "{text}");
    assert!(nums[0] > 500, "too few pings: {summary}");
    assert!(nums[0] - nums[1] <= 1, "pings lost: {summary}");

    // SIGTERM: exit 0.
    let mut agent = c.children.pop().unwrap();
    sh(&["kill", "-TERM", &agent.id().to_string()]);
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
