//! Test helpers: root gating and network namespaces that are deleted on drop.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether root tests must run (`CALICO_REQUIRE_ROOT_TESTS=1`).
pub fn required() -> bool {
    std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `true` when the test can run as root with `ip`; otherwise prints that it did NOT run (and
/// fails when required).
pub fn can_run(test: &str) -> bool {
    let why = if effective_uid() != Some(0) {
        Some("not root")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("`ip` (iproute2) not installed")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            assert!(
                !required(),
                "{test} is required (CALICO_REQUIRE_ROOT_TESTS=1) but cannot run: {why}"
            );
            eprintln!("NOTE: {test} was NOT RUN: {why}");
            false
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace made with `ip netns add`, deleted on drop (panics included).
pub struct NsGuard {
    /// Its name.
    pub name: String,
}

impl NsGuard {
    /// A fresh namespace `cdp-<pid>-<tag>-<n>` with `lo` up.
    pub fn new(tag: &str) -> NsGuard {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("cdp-{}-{tag}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let g = NsGuard { name };
        g.ip(&["link", "set", "lo", "up"]);
        g
    }

    /// Gives a node namespace what a real node has and proxy ARP needs: an uplink `eth0`
    /// (veth, peer `eth0p` in the same namespace) with `addr` and a default route through it,
    /// and IPv4 forwarding.
    pub fn add_uplink(&self, addr: &str) {
        self.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        self.ip(&["link", "set", "eth0", "up"]);
        self.ip(&["link", "set", "eth0p", "up"]);
        self.ip(&["addr", "add", addr, "dev", "eth0"]);
        self.ip(&["route", "add", "default", "dev", "eth0"]);
        let ns = calico_dataplane::netns::Netns::named(&self.name).unwrap();
        for r in ns.write_sysctls(&[("net/ipv4/ip_forward", "1")]).unwrap() {
            r.unwrap();
        }
    }

    /// Runs `ip -n NAME ARGS`, asserting success; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", self.name.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs `ip netns exec NAME ARGS`; returns (success, stdout, stderr).
    pub fn exec(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs a command, asserting success; returns stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
