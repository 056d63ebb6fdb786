//! Turning the manifests into the demo's live cluster: node addresses, the IPAM store the
//! CNI plugin allocates from, the `calico-cni` invocations, and the manifests patched with
//! what was really allocated (pod IPs, VXLAN tunnel addresses, block affinities).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use calico_ipam::{AutoAssignRequest, Ipam, Owner};
use calico_model::loader::LoadedSet;
use calico_model::resources::Resource;
use calico_model::resources::ipam::{AllowedUse, EncapMode};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::matrix::DemoPod;

/// Errors building the live cluster.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    /// The IPAM store could not be opened or written.
    #[error("IPAM store {url}: {message}")]
    Store {
        /// The store URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// A CNI ADD failed.
    #[error("calico-cni ADD for {pod} on {node} failed: {message}")]
    Cni {
        /// `namespace/name`.
        pod: String,
        /// The node.
        node: String,
        /// The plugin's error or output.
        message: String,
    },
    /// A node agent could not be started.
    #[error("cannot start the agent of {node}: {message}")]
    Agent {
        /// The node.
        node: String,
        /// What failed.
        message: String,
    },
    /// A generated resource did not decode (a bug).
    #[error("cannot build the {kind} resource for {name}: {message}")]
    Resource {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Cause.
        message: String,
    },
}

/// The node's address on the demo LAN: its `spec.bgp.ipv4Address`, else `10.99.0.N/24`.
pub(crate) fn node_addresses(set: &LoadedSet, nodes: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let declared = set.resources().find_map(|r| match r {
            Resource::Node(node) if node.metadata.name == *n => node
                .spec
                .bgp
                .as_ref()
                .and_then(|b| b.ipv4_address.as_ref())
                .map(ToString::to_string),
            _ => None,
        });
        let addr = declared
            .filter(|a| a.contains('/'))
            .unwrap_or_else(|| format!("10.99.0.{}/24", i + 1));
        out.insert(n.clone(), addr);
    }
    out
}

fn is_v4_pool(r: &Resource) -> bool {
    matches!(r, Resource::IpPool(p) if p.spec.cidr.is_ipv4())
}

/// The IPv4 pools as the demo runs them: workload pools VXLAN always, no IPIP (this kernel has
/// no ipip device, and the demo is meant to show VXLAN).
fn demo_pools(set: &LoadedSet) -> Vec<Resource> {
    set.resources()
        .filter(|r| is_v4_pool(r))
        .cloned()
        .map(|mut r| {
            if let Resource::IpPool(p) = &mut r
                && (p.spec.allowed_uses.is_empty()
                    || p.spec.allowed_uses.contains(&AllowedUse::Workload))
            {
                p.spec.vxlan_mode = Some(EncapMode::Always);
                p.spec.ipip_mode = Some(EncapMode::Never);
            }
            r
        })
        .collect()
}

/// Adds IPv4 pools for what the manifests' pools do not cover: the /16 around each declared
/// pod address outside every workload pool, or `10.244.0.0/16` when there is no IPv4
/// workload pool at all. Returns the CIDRs added.
pub(crate) fn add_missing_pools(
    set: &mut LoadedSet,
    pods: &[DemoPod],
) -> Result<Vec<String>, ClusterError> {
    let mut nets: Vec<IpNet> = set
        .resources()
        .filter_map(|r| match r {
            Resource::IpPool(p)
                if p.spec.cidr.is_ipv4()
                    && !p.spec.disabled
                    && (p.spec.allowed_uses.is_empty()
                        || p.spec.allowed_uses.contains(&AllowedUse::Workload)) =>
            {
                p.spec.cidr.to_string().parse::<IpNet>().ok()
            }
            _ => None,
        })
        .collect();
    let mut added = Vec::new();
    for ip in pods.iter().filter_map(|p| p.declared_ip) {
        if nets.iter().any(|n| n.contains(&IpAddr::V4(ip))) {
            continue;
        }
        let net = IpNet::new(IpAddr::V4(ip), 16)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(IpAddr::V4(ip)));
        nets.push(net);
        added.push(net);
    }
    if nets.is_empty()
        && let Ok(net) = "10.244.0.0/16".parse::<IpNet>()
    {
        added.push(net);
    }
    let mut names = Vec::new();
    for (i, net) in added.iter().enumerate() {
        let name = format!("calico-demo-pool-{}", i + 1);
        let resource = decode(
            "IPPool",
            &name,
            json!({"metadata": {"name": name}, "spec": {"cidr": net.to_string(), "blockSize": 26, "vxlanMode": "Always", "ipipMode": "Never", "nodeSelector": "all()"}}),
        )?;
        set.objects.push(calico_model::loader::LoadedObject {
            origin: calico_model::loader::Origin {
                file: "(calico demo)".to_owned(),
                doc_index: i,
                item_index: None,
            },
            resource,
        });
        names.push(format!("{name} {net}"));
    }
    Ok(names)
}

fn store_err(url: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Store {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

fn open(url: &str) -> Result<Arc<dyn calico_datastore::Store>, ClusterError> {
    calico_datastore_etcd::open_store(url)
        .map(Arc::from)
        .map_err(|e| store_err(url, e))
}

/// Creates the file store at `dir/calico.db` (the datastore of the whole demo) with the IPv4 pools and reservations, and claims
/// the manifests' IPv4 block affinities for their nodes (so pods get the blocks the manifests
/// show). Returns the store URL and notes for the user.
pub(crate) fn prepare_store(
    set: &LoadedSet,
    url: &str,
    nodes: &[String],
) -> Result<Vec<String>, ClusterError> {
    let store = open(url)?;
    let mut objects = demo_pools(set);
    objects.extend(
        set.resources()
            .filter(|r| matches!(r, Resource::IpReservation(_)))
            .cloned(),
    );
    calico_ipam::resources::apply(&*store, &objects).map_err(|e| store_err(url, e))?;
    let ipam = Ipam::new(store);
    let mut notes = Vec::new();
    for r in set.resources() {
        let Resource::BlockAffinity(a) = r else {
            continue;
        };
        if !a.spec.cidr.is_ipv4() || !nodes.contains(&a.spec.node) {
            continue;
        }
        let Ok(net) = a.spec.cidr.to_string().parse::<IpNet>() else {
            continue;
        };
        if let Err(e) = ipam.claim_affinity(net, &Owner::host(a.spec.node.clone())) {
            notes.push(format!("block {net} not claimed for {}: {e}", a.spec.node));
        }
    }
    Ok(notes)
}

/// Runs `calico-cni ADD` for `pod` as a runtime does (clean environment with the `CNI_*`
/// variables, configuration on stdin) inside the node's namespace; returns the address.
pub(crate) fn cni_add(
    cni_dir: &Path,
    node_ns: &str,
    pod_ns: &str,
    pod: &DemoPod,
    store_url: &str,
    container_id: &str,
) -> Result<IpAddr, ClusterError> {
    let stdout = cni(
        cni_dir,
        "ADD",
        node_ns,
        pod_ns,
        pod,
        store_url,
        container_id,
    )?;
    let err = |message: String| ClusterError::Cni {
        pod: pod.label(),
        node: pod.node.clone(),
        message,
    };
    let result: Value =
        serde_json::from_str(&stdout).map_err(|e| err(format!("result is not JSON: {e}")))?;
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .filter_map(|a| a.split('/').next())
        .find_map(|a| a.parse::<IpAddr>().ok())
        .ok_or_else(|| err(format!("no address in the result: {stdout}")))
}

/// Runs `calico-cni DEL` for `pod` (its interface and address go).
pub(crate) fn cni_del(
    cni_dir: &Path,
    node_ns: &str,
    pod_ns: &str,
    pod: &DemoPod,
    store_url: &str,
    container_id: &str,
) -> Result<(), ClusterError> {
    cni(
        cni_dir,
        "DEL",
        node_ns,
        pod_ns,
        pod,
        store_url,
        container_id,
    )
    .map(|_| ())
}

fn cni(
    cni_dir: &Path,
    command: &str,
    node_ns: &str,
    pod_ns: &str,
    pod: &DemoPod,
    store_url: &str,
    container_id: &str,
) -> Result<String, ClusterError> {
    let err = |message: String| ClusterError::Cni {
        pod: pod.label(),
        node: pod.node.clone(),
        message,
    };
    let config = json!({
        "cniVersion": "1.0.0",
        "name": "calico-demo",
        "type": "calico",
        "log_level": "warning",
        "nodename": pod.node,
        "mtu": 1450,
        "datastore": store_url,
        "ipam": {"type": "calico-ipam"},
    });
    let mut args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id}",
        pod.namespace, pod.name
    );
    if let Some(ip) = pod.declared_ip {
        args += &format!(";IP={ip}");
    }
    let netns_path = Path::new(calico_dataplane::netns::NETNS_RUN_DIR).join(pod_ns);
    let mut child = Command::new("ip")
        .args(["netns", "exec", node_ns])
        .arg(cni_dir.join("calico-cni"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", &netns_path)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", &args)
        .env("CNI_PATH", cni_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(config.to_string().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("cannot wait: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(err(format!(
            "{command}: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(stdout)
}

/// What IPAM holds after the pods were added: one VXLAN tunnel address per node (allocated
/// now, as calico-node does) and the blocks' host affinities.
pub(crate) struct Allocations {
    /// Node → VXLAN tunnel address.
    pub(crate) tunnels: BTreeMap<String, IpAddr>,
    /// (node, block) pairs.
    pub(crate) blocks: Vec<(String, IpNet)>,
}

/// Allocates the nodes' VXLAN tunnel addresses and reads the block affinities.
pub(crate) fn allocate_tunnels(
    store_url: &str,
    nodes: &[String],
) -> Result<Allocations, ClusterError> {
    let ipam = Ipam::new(open(store_url)?);
    let mut tunnels = BTreeMap::new();
    for n in nodes {
        let req = AutoAssignRequest {
            num4: 1,
            handle: Some(format!("vxlan-tunnel-addr-{n}")),
            attrs: BTreeMap::from([
                ("node".to_owned(), n.clone()),
                ("type".to_owned(), "vxlanTunnelAddress".to_owned()),
            ]),
            host: n.clone(),
            intended_use: AllowedUse::Tunnel,
            ..Default::default()
        };
        let got = ipam
            .auto_assign(&req)
            .map_err(|e| store_err(store_url, e))?;
        if let Some(a) = got.v4.first() {
            tunnels.insert(n.clone(), a.addr());
        }
    }
    let mut blocks = Vec::new();
    for (_, b) in ipam.all_blocks().map_err(|e| store_err(store_url, e))? {
        if let Some(Owner::Host(h)) = b.owner() {
            blocks.push((h, b.cidr));
        }
    }
    Ok(Allocations { tunnels, blocks })
}

/// Patches the manifests with what the demo really built: pod IPs, IPv4-only VXLAN pools
/// (IPv6 pools dropped), node tunnel addresses and LAN addresses (IPIP, IPv6 and WireGuard
/// settings cleared). Block affinities are left out; [`route_resources`] adds the real ones.
pub(crate) fn patch_set(
    set: &mut LoadedSet,
    pods: &[DemoPod],
    alloc: &Allocations,
    addresses: &BTreeMap<String, String>,
) {
    let pools: Vec<Resource> = demo_pools(set);
    set.objects.retain(|o| {
        !matches!(&o.resource, Resource::IpPool(p) if !p.spec.cidr.is_ipv4())
            && !matches!(o.resource, Resource::BlockAffinity(_))
    });
    for o in &mut set.objects {
        match &mut o.resource {
            Resource::Pod(p) => {
                let ns = p.metadata.namespace.as_deref().unwrap_or("default");
                if let Some(dp) = pods
                    .iter()
                    .find(|d| d.namespace == ns && d.name == p.metadata.name)
                    && let Some(ip) = dp.ip
                {
                    p.status.pod_ip = ip.to_string();
                    p.status.pod_ips =
                        vec![calico_model::resources::k8s::PodIp { ip: ip.to_string() }];
                }
            }
            Resource::IpPool(p) => {
                if let Some(Resource::IpPool(new)) =
                    pools.iter().find(|r| r.metadata().name == p.metadata.name)
                {
                    p.spec = new.spec.clone();
                }
            }
            Resource::Node(n) => {
                let name = n.metadata.name.clone();
                n.spec.ipv4_vxlan_tunnel_addr = alloc.tunnels.get(&name).copied();
                n.spec.ipv6_vxlan_tunnel_addr = None;
                n.spec.vxlan_tunnel_mac_addr_v6.clear();
                n.spec.wireguard = None;
                let mut bgp = n.spec.bgp.clone().unwrap_or_default();
                bgp.ipv4_ipip_tunnel_addr = None;
                bgp.ipv6_address = None;
                if let Some(a) = addresses.get(&name) {
                    bgp.ipv4_address = a.parse().ok();
                }
                n.spec.bgp = Some(bgp);
            }
            _ => {}
        }
    }
}

fn decode(kind: &'static str, name: &str, v: Value) -> Result<Resource, ClusterError> {
    let k = calico_model::resources::Kind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == kind && k.api_version() == "projectcalico.org/v3");
    let err = |message: String| ClusterError::Resource {
        kind,
        name: name.to_owned(),
        message,
    };
    let k = k.ok_or_else(|| err("unknown kind".to_owned()))?;
    Resource::from_value(k, v).map_err(|e| err(e.to_string()))
}

/// The resources calico-route plans from: the patched manifests, a Node for each node
/// that has none, and the block affinities IPAM really holds.
pub(crate) fn route_resources(
    set: &LoadedSet,
    alloc: &Allocations,
    addresses: &BTreeMap<String, String>,
) -> Result<Vec<Resource>, ClusterError> {
    let mut out: Vec<Resource> = set.resources().cloned().collect();
    for (name, addr) in addresses {
        let known = out
            .iter()
            .any(|r| matches!(r, Resource::Node(n) if n.metadata.name == *name));
        if !known {
            let mut spec = json!({"bgp": {"ipv4Address": addr}});
            if let Some(t) = alloc.tunnels.get(name) {
                spec["ipv4VXLANTunnelAddr"] = json!(t.to_string());
            }
            out.push(decode(
                "Node",
                name,
                json!({"metadata": {"name": name}, "spec": spec}),
            )?);
        }
    }
    for (node, cidr) in &alloc.blocks {
        let name = format!("{node}-{}", cidr.to_string().replace(['.', '/', ':'], "-"));
        out.push(decode(
            "BlockAffinity",
            &name,
            json!({"metadata": {"name": name}, "spec": {"state": "confirmed", "node": node, "cidr": cidr.to_string()}}),
        )?);
    }
    Ok(out)
}

/// Where `calico-cni` and `calico-ipam` are: `$CALICO_CNI_DIR`, else the directory of the
/// running `calico` executable.
pub(crate) fn cni_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CALICO_CNI_DIR") {
        return Some(PathBuf::from(d));
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
}
