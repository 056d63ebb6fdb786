//! The test harness: invokes the plugins exactly as a container runtime does (a clean
//! environment with the `CNI_*` variables, the network configuration on stdin, the result
//! or error object read from stdout), chains conflists as libcni does, and manages network
//! namespaces (deleted on drop, panics included) and stores.
//!
//! The "node" is itself a network namespace made by the test (the plugin runs in it through
//! `ip netns exec`), so the root namespace's links, routes and sysctls are never touched.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use calico_datastore::Store;
use calico_ipam::Ipam;
use calico_ipam::resources::resource_key;
use serde_json::{Value, json};

/// Prefix of every namespace these tests create: `cni-<pid>-<tag>`.
pub const PREFIX: &str = "cni-";

pub fn required() -> bool {
    std::env::var("CALICO_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether root tests can run; when not, says so (or fails when they are required).
pub fn root_or_skip(test: &str) -> bool {
    let why = if effective_uid() != Some(0) {
        Some("not root")
    } else if !Path::new("/usr/lib/cni/portmap").exists() {
        Some("the reference CNI plugins are not in /usr/lib/cni")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("`ip` is missing")
    } else {
        None
    };
    match why {
        None => {
            sweep_stale();
            true
        }
        Some(why) => {
            assert!(
                !required(),
                "{test}: root CNI test is required (CALICO_REQUIRE_ROOT_TESTS=1) but cannot run: {why}"
            );
            eprintln!("NOTE: {test}: root CNI namespace test was NOT RUN: {why}");
            false
        }
    }
}

/// Deletes namespaces of earlier runs whose process is gone.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs a command, panicking with its output unless it succeeds.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made by `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("{PREFIX}{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `/var/run/netns/NAME`, the path a runtime passes as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// Runs a command in the namespace; panics unless it succeeds.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs a command in the namespace; whether it succeeded.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Link names in the namespace.
    pub fn links(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.exec(&["ip", "-j", "link", "show"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `ip -j route show` (+ `args`) as JSON.
    pub fn routes(&self, extra: &[&str]) -> Vec<Value> {
        let mut a = vec!["ip", "-j", "route", "show"];
        a.extend_from_slice(extra);
        let out = self.exec(&a);
        if out.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// A sysctl's value in the namespace (`ip netns exec` mounts the namespace's /sys).
    pub fn sysctl(&self, key: &str) -> String {
        self.exec(&["sysctl", "-n", key]).trim().to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The plugins under test.
pub fn calico_cni() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_calico-cni"))
}

pub fn calico_ipam() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_calico-ipam"))
}

/// `CNI_PATH`: our binaries' directory, then the reference plugins.
pub fn default_cni_path() -> String {
    format!("{}:/usr/lib/cni", calico_cni().parent().unwrap().display())
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("calico-cni-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One plugin invocation's outcome.
#[derive(Debug)]
pub struct Invocation {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// The result object of a success; panics with the error object otherwise.
    pub fn ok(&self) -> Value {
        assert!(
            self.success,
            "plugin failed: {}{}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// The CNI error code of a failure.
    pub fn code(&self) -> u64 {
        assert!(
            !self.success,
            "plugin unexpectedly succeeded: {}",
            self.stdout
        );
        self.json()["code"].as_u64().unwrap()
    }
}

/// What a runtime knows about one container attachment.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: String,
}

impl Attachment {
    pub fn pod(container_id: &str, netns: &Netns, namespace: &str, pod: &str) -> Attachment {
        Attachment {
            container_id: container_id.to_owned(),
            netns: Some(netns.path()),
            ifname: "eth0".to_owned(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container_id}"
            ),
        }
    }
}

/// Invokes `plugin` as a runtime does: a clean environment (only `PATH` and the `CNI_*`
/// variables), `config` on stdin; run inside `node` when given.
pub fn invoke(
    node: Option<&Netns>,
    plugin: &Path,
    command: &str,
    att: &Attachment,
    cni_path: &str,
    config: &Value,
) -> Invocation {
    let mut cmd = match node {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &n.name]).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &att.container_id)
        .env("CNI_IFNAME", &att.ifname)
        .env("CNI_ARGS", &att.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = &att.netns {
        cmd.env("CNI_NETNS", n);
    }
    let mut child = cmd.spawn().unwrap();
    // A plugin may exit without reading stdin (a broken pipe is not an error here).
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    Invocation {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A conflist run as libcni runs it: each plugin gets `name`, `cniVersion`, its own keys,
/// `runtimeConfig` for the capabilities it declares, and the previous plugin's result.
pub struct Chain<'a> {
    pub node: &'a Netns,
    pub conflist: Value,
    pub cni_path: String,
    pub runtime_config: Value,
}

impl Chain<'_> {
    fn plugin_config(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut c = plugin.clone();
        let o = c.as_object_mut().unwrap();
        o.insert("name".into(), self.conflist["name"].clone());
        o.insert("cniVersion".into(), self.conflist["cniVersion"].clone());
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            let mut rc = serde_json::Map::new();
            for (cap, on) in caps {
                if on.as_bool() == Some(true)
                    && let Some(v) = self.runtime_config.get(cap)
                {
                    rc.insert(cap.clone(), v.clone());
                }
            }
            if !rc.is_empty() {
                o.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        if let Some(p) = prev {
            o.insert("prevResult".into(), p.clone());
        }
        c
    }

    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"].as_array().unwrap().clone()
    }

    fn exe(plugin: &Value) -> PathBuf {
        let t = plugin["type"].as_str().unwrap();
        match t {
            "calico" => calico_cni(),
            "calico-ipam" => calico_ipam(),
            other => PathBuf::from("/usr/lib/cni").join(other),
        }
    }

    /// ADD through the chain; the final result, or the first failure.
    pub fn add(&self, att: &Attachment) -> Result<Value, Invocation> {
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let inv = invoke(
                Some(self.node),
                &Self::exe(&p),
                "ADD",
                att,
                &self.cni_path,
                &self.plugin_config(&p, prev.as_ref()),
            );
            if !inv.success {
                return Err(inv);
            }
            prev = Some(inv.json());
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// CHECK through the chain with the cached result.
    pub fn check(&self, att: &Attachment, result: &Value) -> Result<(), Invocation> {
        self.check_skipping(att, result, &[])
    }

    /// CHECK through the chain, leaving out plugins of the types in `skip`.
    pub fn check_skipping(
        &self,
        att: &Attachment,
        result: &Value,
        skip: &[&str],
    ) -> Result<(), Invocation> {
        for p in self.plugins() {
            if skip.iter().any(|t| p["type"] == *t) {
                continue;
            }
            let inv = invoke(
                Some(self.node),
                &Self::exe(&p),
                "CHECK",
                att,
                &self.cni_path,
                &self.plugin_config(&p, Some(result)),
            );
            if !inv.success {
                return Err(inv);
            }
        }
        Ok(())
    }

    /// DEL through the chain in reverse order.
    pub fn del(&self, att: &Attachment, result: Option<&Value>) -> Result<(), Invocation> {
        for p in self.plugins().iter().rev() {
            let inv = invoke(
                Some(self.node),
                &Self::exe(p),
                "DEL",
                att,
                &self.cni_path,
                &self.plugin_config(p, result),
            );
            if !inv.success {
                return Err(inv);
            }
        }
        Ok(())
    }
}

/// Stores an IPPool.
pub fn add_pool(store: &dyn Store, name: &str, cidr: &str, block_size: u8) {
    let v = json!({"metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": block_size}});
    store
        .put(
            resource_key("IPPool", None, name).as_bytes(),
            v.to_string().as_bytes(),
        )
        .unwrap();
}

pub fn open(url: &str) -> Arc<dyn Store> {
    Arc::from(calico_datastore_etcd::open_store(url).unwrap())
}

/// Asserts `calico ipam check` (the library's check) finds nothing and nothing is allocated.
pub fn assert_ipam_clean(store: Arc<dyn Store>) {
    let ipam = Ipam::new(store);
    let report = calico_ipam::check::check(&ipam).unwrap();
    assert!(
        report.findings.is_empty(),
        "ipam check findings: {:#?}",
        report.findings
    );
    let usage = ipam.utilization(None).unwrap();
    for p in &usage.pools {
        assert_eq!(p.in_use, 0, "addresses still allocated in {p:?}");
    }
}

/// Calico's conflist with `datastore` and optional extra chained plugins.
pub fn calico_conflist(store_url: &str, extra: &[Value]) -> Value {
    let mut plugins = vec![json!({
        "type": "calico",
        "log_level": "info",
        "nodename": "node-1",
        "mtu": 1450,
        "datastore": store_url,
        "ipam": {"type": "calico-ipam"}
    })];
    plugins.extend_from_slice(extra);
    json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": plugins})
}
