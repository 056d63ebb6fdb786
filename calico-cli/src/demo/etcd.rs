//! The demo's own etcd (`calico demo --store etcd`): an etcd server in a namespace of its
//! own joined to the demo's bridge, where the agents in the node namespaces reach it as
//! they would reach a cluster's etcd. The lab stops it and removes its data with the rest.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::lab::{self, Lab, LabError};

/// The etcd's address on the bridge: from the range reserved for benchmarking networks,
/// which no example node subnet uses; the node namespaces reach it on-link.
const ADDR: &str = "198.18.0.250";

fn failed(command: &str, message: impl Into<String>) -> LabError {
    LabError::Command {
        command: command.to_owned(),
        message: message.into(),
    }
}

/// Starts etcd in namespace `etcd` on the bridge `br0` of `lan` and waits until it answers;
/// returns the namespace and the store URL the agents use.
pub(crate) fn start(lab: &mut Lab, lan: &str) -> Result<(String, String), LabError> {
    let bin = calico_datastore_etcd::etcd_binary().ok_or_else(|| {
        failed(
            "etcd",
            "not found on PATH (install etcd-server, or run the demo on the file store)",
        )
    })?;
    let ns = lab.netns("etcd")?;
    lab::run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
    lab::run(&[
        "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "e0", "netns", lan,
    ])?;
    lab::run(&["ip", "-n", lan, "link", "set", "e0", "master", "br0", "up"])?;
    lab::run(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{ADDR}/24"),
        "dev",
        "eth0",
    ])?;
    lab::run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
    lab::run(&["ip", "-n", &ns, "route", "add", "default", "dev", "eth0"])?;
    let data = lab.dir.join("etcd");
    let log_path = lab.dir.join("etcd.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| failed(&format!("create {}", log_path.display()), e.to_string()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| failed("etcd log", e.to_string()))?;
    let client = format!("http://{ADDR}:2379");
    // Not waited for: the lab stops every process inside its namespaces when it ends.
    Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&bin)
        .args(["--name", "demo", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-client-urls",
            &format!("{client},http://127.0.0.1:2379"),
        ])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-cluster", "demo=http://127.0.0.1:2380"])
        .args(["--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| {
            failed(
                &format!("ip netns exec {ns} {}", bin.display()),
                e.to_string(),
            )
        })?;
    let url = format!("etcd://{ADDR}:2379");
    let place = calico_dataplane::netns::Netns::named(&ns)
        .map_err(|e| failed(&format!("enter {ns}"), e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = place
        .run(|| {
            loop {
                let up = calico_datastore_etcd::open_store(&url)
                    .ok()
                    .is_some_and(|s| s.revision().is_ok());
                if up {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .map_err(|e| failed(&format!("enter {ns}"), e.to_string()))?;
    if !ready {
        return Err(failed(
            &format!("etcd in {ns}"),
            format!("did not answer within 30 s (see {})", log_path.display()),
        ));
    }
    Ok((ns, url))
}
