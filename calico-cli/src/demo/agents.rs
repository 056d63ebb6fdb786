//! The demo's node agents: the cluster written to the datastore the agents follow, and one
//! `calico node run` per node, started inside that node's namespace as calico-node runs on a
//! host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use calico_datastore::Store;
use calico_ipam::resources::Resources;
use calico_model::loader::LoadedSet;
use calico_model::resources::Resource;
use serde_json::{Value, json};

use super::cluster::ClusterError;

/// FelixConfiguration the demo runs with: status every 5 s, refreshes every 10 s, metrics on.
pub(crate) const FELIX_SETTINGS: [(&str, &str); 4] = [
    ("reportingInterval", "5s"),
    ("routeRefreshInterval", "10s"),
    ("nftablesRefreshInterval", "10s"),
    ("interfaceRefreshInterval", "10s"),
];

fn store_err(url: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Store {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// The demo's FelixConfiguration `default`: the manifests' (if any) with [`FELIX_SETTINGS`]
/// and `prometheusMetricsEnabled: true`.
fn felix_default(set: &LoadedSet) -> Result<Resource, ClusterError> {
    let mut v = set
        .resources()
        .find(|r| matches!(r, Resource::FelixConfiguration(f) if f.metadata.name == "default"))
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_else(|| {
            json!({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                   "metadata": {"name": "default"}, "spec": {}})
        });
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        for (k, val) in FELIX_SETTINGS {
            spec.insert(k.to_owned(), Value::String(val.to_owned()));
        }
        spec.insert("prometheusMetricsEnabled".to_owned(), Value::Bool(true));
    }
    let kind = calico_model::resources::Kind::FelixConfiguration;
    Resource::from_value(kind, v).map_err(|e| ClusterError::Resource {
        kind: "FelixConfiguration",
        name: "default".to_owned(),
        message: e.to_string(),
    })
}

/// Writes the (patched) manifests into the store the agents follow: every resource but the
/// block affinities (IPAM's own keys hold those), with the demo's FelixConfiguration.
pub(crate) fn write_cluster(
    store: &Arc<dyn Store>,
    url: &str,
    resources: &[Resource],
    set: &LoadedSet,
) -> Result<usize, ClusterError> {
    let mut objects: Vec<Resource> = resources
        .iter()
        .filter(|r| {
            !matches!(r, Resource::BlockAffinity(_))
                && !matches!(r, Resource::FelixConfiguration(f) if f.metadata.name == "default")
        })
        .cloned()
        .collect();
    objects.push(felix_default(set)?);
    let written =
        calico_ipam::resources::apply(&**store, &objects).map_err(|e| store_err(url, e))?;
    Ok(written.len())
}

/// Writes one resource.
pub(crate) fn put(store: &Arc<dyn Store>, url: &str, r: &Resource) -> Result<(), ClusterError> {
    Resources::new(&**store)
        .apply(r)
        .map(|_| ())
        .map_err(|e| store_err(url, e))
}

/// Deletes one resource.
pub(crate) fn delete(store: &Arc<dyn Store>, url: &str, r: &Resource) -> Result<(), ClusterError> {
    let ty = calico_ipam::resources::layout::ResourceType::of(r.kind());
    Resources::new(&**store)
        .delete(ty, r.namespace(), r.name())
        .map(|_| ())
        .map_err(|e| store_err(url, e))
}

/// One running agent.
#[derive(Debug)]
pub(crate) struct AgentProc {
    /// The node.
    pub(crate) node: String,
    /// Its namespace.
    pub(crate) netns: String,
    /// Its state directory (pid file, bird.ctl, endpoint-status/).
    pub(crate) state_dir: PathBuf,
    /// Its pid.
    pub(crate) pid: u32,
    /// The argv that restarts it when run inside the node's namespace.
    pub(crate) command: Vec<String>,
    /// Its log file.
    pub(crate) log: PathBuf,
}

/// Starts `calico node run` for `node` inside `netns`; its output goes to
/// `dir/<node>/agent.log`. The process is in its own process group, so it survives the demo
/// with `--keep`; the lab stops it with its namespace otherwise.
pub(crate) fn start_agent(
    calico: &Path,
    netns: &str,
    node: &str,
    url: &str,
    dir: &Path,
    bgp: bool,
) -> Result<AgentProc, ClusterError> {
    let state_dir = dir.join(node);
    let err = |message: String| ClusterError::Agent {
        node: node.to_owned(),
        message,
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| err(format!("{}: {e}", state_dir.display())))?;
    let log = state_dir.join("agent.log");
    let mut command = vec![
        "calico".to_owned(),
        "--store".to_owned(),
        url.to_owned(),
        "node".to_owned(),
        "run".to_owned(),
        "--node".to_owned(),
        node.to_owned(),
        "--state-dir".to_owned(),
        state_dir.display().to_string(),
    ];
    if !bgp {
        command.push("--no-bgp".to_owned());
    }
    let file = std::fs::File::create(&log).map_err(|e| err(format!("{}: {e}", log.display())))?;
    let file2 = file
        .try_clone()
        .map_err(|e| err(format!("{}: {e}", log.display())))?;
    use std::os::unix::process::CommandExt;
    let child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(calico)
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .process_group(0)
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    Ok(AgentProc {
        node: node.to_owned(),
        netns: netns.to_owned(),
        state_dir,
        pid: child.id(),
        command,
        log,
    })
}
