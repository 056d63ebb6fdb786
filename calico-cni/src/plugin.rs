//! The `calico` main plugin: `ADD`, `DEL` and `CHECK` orchestration over the IPAM plugin
//! (delegated through `CNI_PATH`) and a [`PodNetwork`] (the veth plumbing).
//!
//! `ADD`: IPAM `ADD`; remove a stale host veth of the same name (as Calico does); create the
//! pod network; on any failure remove what was created and IPAM `DEL`, so nothing
//! half-created remains. `DEL`: remove the pod network and IPAM `DEL`; both are attempted
//! and succeed when things are already gone. `CHECK`: IPAM `CHECK` and the pod network's
//! check against `prevResult`.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::config::{NetConf, Workload};
use crate::delegate;
use crate::error::PluginError;
use crate::spec::{CniEnv, CniResult, Command, Interface, IpConfig, Route};

/// The pod's IPv4 default gateway: a link-local address answered by the host side's proxy ARP.
pub const GATEWAY_V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 1, 1));
/// The pod's IPv6 default gateway: the host side's fixed link-local address.
pub const GATEWAY_V6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(
    0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee,
));

/// What the pod network consists of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec<'a> {
    /// The container's network namespace (a path such as `/var/run/netns/NAME`).
    pub netns: &'a Path,
    /// The container side of the veth (`CNI_IFNAME`).
    pub container_ifname: &'a str,
    /// The host side (Calico's name).
    pub host_ifname: &'a str,
    /// MTU of both sides.
    pub mtu: u32,
    /// The pod's addresses, /32 and /128.
    pub addresses: &'a [IpNet],
}

/// What [`PodNetwork::remove`] removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Teardown<'a> {
    /// The host side (Calico's name, derived from the pod: a newer sandbox of the same pod
    /// uses the same name).
    pub host_ifname: &'a str,
    /// The container's network namespace, when given and still there.
    pub netns: Option<&'a Path>,
    /// The container side (`CNI_IFNAME`).
    pub container_ifname: &'a str,
    /// The container's addresses when known (`prevResult` of `DEL`): a host side whose routes
    /// lead only to other addresses belongs to a newer sandbox of the pod and is left alone.
    /// `None`: remove the host side whatever it routes to.
    pub addresses: Option<&'a [IpNet]>,
}

/// The links [`PodNetwork::create`] made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLinks {
    /// MAC of the host side.
    pub host_mac: String,
    /// MAC of the container side.
    pub container_mac: String,
}

/// The plumbing of a pod: a veth pair, the container side in the pod's namespace with the
/// pod's addresses and a default route via [`GATEWAY_V4`] (on-link) and [`GATEWAY_V6`]; the
/// host side with proxy ARP (`proxy_arp=1`, `neigh/…/proxy_delay=0`), forwarding and a /32
/// (/128) route to each address.
pub trait PodNetwork {
    /// The error of the operations.
    type Error: std::error::Error;
    /// Whether `netns` exists.
    fn netns_exists(&self, netns: &Path) -> bool;
    /// Builds everything. May leave a partial state on error; the caller then calls
    /// [`PodNetwork::remove`].
    fn create(&self, spec: &PodSpec<'_>) -> Result<PodLinks, Self::Error>;
    /// Removes the veth pair (by its host side, subject to [`Teardown::addresses`], and by its
    /// container side in `netns`) and with it the host routes. Succeeds when they are
    /// already gone.
    fn remove(&self, teardown: &Teardown<'_>) -> Result<(), Self::Error>;
    /// Verifies everything [`PodNetwork::create`] builds is in place.
    fn check(&self, spec: &PodSpec<'_>) -> Result<(), Self::Error>;
}

fn dp_err<E: std::error::Error>(operation: &'static str, ifname: &str, e: E) -> PluginError {
    PluginError::Dataplane {
        operation,
        ifname: ifname.to_owned(),
        reason: e.to_string(),
    }
}

fn netns_of<'a, N: PodNetwork>(net: &N, env: &'a CniEnv) -> Result<&'a Path, PluginError> {
    let p = env.netns.as_deref().ok_or(PluginError::NoNetns {
        path: String::new(),
    })?;
    if net.netns_exists(p) {
        Ok(p)
    } else {
        Err(PluginError::NoNetns {
            path: p.display().to_string(),
        })
    }
}

/// Removal of the host side by name only (ADD's stale-veth removal and rollback).
fn by_name<'a>(host_ifname: &'a str, container_ifname: &'a str) -> Teardown<'a> {
    Teardown {
        host_ifname,
        netns: None,
        container_ifname,
        addresses: None,
    }
}

/// The pod's addresses as host prefixes, whatever mask the IPAM plugin reported.
pub fn pod_addresses(ipam: &CniResult) -> Vec<IpNet> {
    ipam.ips
        .iter()
        .map(|c| IpNet::from(c.address.addr()))
        .collect()
}

/// `ADD`. `config` is the configuration as read (handed to the IPAM plugin unchanged).
pub fn add<N: PodNetwork>(
    net: &N,
    env: &CniEnv,
    conf: &NetConf,
    config: &[u8],
) -> Result<CniResult, PluginError> {
    let w = Workload::new(conf, env)?;
    let netns = netns_of(net, env)?;
    let ipam = delegate::run(&conf.ipam.plugin_type, Command::Add, env, config)?
        .unwrap_or_else(|| CniResult::new(&conf.cni_version));
    let addresses = pod_addresses(&ipam);
    let spec = PodSpec {
        netns,
        container_ifname: &env.ifname,
        host_ifname: &w.host_ifname,
        mtu: conf.mtu,
        addresses: &addresses,
    };
    let built = if addresses.is_empty() {
        Err(PluginError::NoIpamAddress {
            plugin: conf.ipam.plugin_type.clone(),
        })
    } else {
        net.remove(&by_name(&w.host_ifname, &env.ifname))
            .map_err(|e| dp_err("removal of a stale veth", &w.host_ifname, e))
            .and_then(|()| {
                net.create(&spec)
                    .map_err(|e| dp_err("create", &w.host_ifname, e))
            })
    };
    let links = match built {
        Ok(l) => l,
        Err(first) => {
            let mut undo = Vec::new();
            // Only what this ADD made: the host side by name (never the container's
            // existing CNI_IFNAME, which may belong to someone else).
            if let Err(e) = net.remove(&by_name(&w.host_ifname, &env.ifname)) {
                undo.push(format!("removing {}: {e}", w.host_ifname));
            }
            if let Err(e) = delegate::run(&conf.ipam.plugin_type, Command::Del, env, config) {
                undo.push(format!("IPAM DEL: {e}"));
            }
            return Err(if undo.is_empty() {
                first
            } else {
                PluginError::Rollback {
                    first: Box::new(first),
                    undo: undo.join("; "),
                }
            });
        }
    };
    let mut result = CniResult::new(&conf.cni_version);
    result.interfaces = vec![
        Interface {
            name: w.host_ifname.clone(),
            mac: links.host_mac,
            sandbox: String::new(),
        },
        Interface {
            name: env.ifname.clone(),
            mac: links.container_mac,
            sandbox: netns.display().to_string(),
        },
    ];
    result.ips = addresses
        .iter()
        .map(|a| IpConfig {
            address: *a,
            gateway: None,
            interface: Some(1),
        })
        .collect();
    for (v4, dst, gw) in [(true, "0.0.0.0/0", GATEWAY_V4), (false, "::/0", GATEWAY_V6)] {
        if addresses.iter().any(|a| a.addr().is_ipv4() == v4)
            && let Ok(dst) = dst.parse()
        {
            result.routes.push(Route { dst, gw: Some(gw) });
        }
    }
    result.dns = ipam.dns;
    Ok(result)
}

/// `DEL`: idempotent.
pub fn del<N: PodNetwork>(
    net: &N,
    env: &CniEnv,
    conf: &NetConf,
    config: &[u8],
) -> Result<(), PluginError> {
    let w = Workload::new(conf, env)?;
    let netns = env.netns.as_deref().filter(|p| net.netns_exists(p));
    // The cached result, if the runtime passes it and it decodes, names our addresses.
    let known: Option<Vec<IpNet>> = conf
        .prev_result
        .as_ref()
        .and_then(|v| CniResult::from_json(v).ok())
        .map(|r| pod_addresses(&r))
        .filter(|a| !a.is_empty());
    let removed = net
        .remove(&Teardown {
            host_ifname: &w.host_ifname,
            netns,
            container_ifname: &env.ifname,
            addresses: known.as_deref(),
        })
        .map_err(|e| dp_err("remove", &w.host_ifname, e));
    let released = delegate::run(&conf.ipam.plugin_type, Command::Del, env, config);
    removed?;
    released?;
    Ok(())
}

/// `CHECK` against `prevResult`.
pub fn check<N: PodNetwork>(
    net: &N,
    env: &CniEnv,
    conf: &NetConf,
    config: &[u8],
) -> Result<(), PluginError> {
    let w = Workload::new(conf, env)?;
    let prev = prev_result(conf)?;
    let netns = netns_of(net, env)?;
    for (name, sandbox) in [(&w.host_ifname, false), (&env.ifname, true)] {
        if !prev
            .interfaces
            .iter()
            .any(|i| &i.name == name && sandbox != i.sandbox.is_empty())
        {
            return Err(PluginError::Check(format!(
                "prevResult lists no interface {name}"
            )));
        }
    }
    delegate::run(&conf.ipam.plugin_type, Command::Check, env, config)?;
    let addresses = pod_addresses(&prev);
    net.check(&PodSpec {
        netns,
        container_ifname: &env.ifname,
        host_ifname: &w.host_ifname,
        mtu: conf.mtu,
        addresses: &addresses,
    })
    .map_err(|e| PluginError::Check(e.to_string()))
}

/// The configuration's `prevResult`, decoded (required by `CHECK`).
pub fn prev_result(conf: &NetConf) -> Result<CniResult, PluginError> {
    let v = conf.prev_result.as_ref().ok_or(PluginError::NoPrevResult)?;
    CniResult::from_json(v).map_err(PluginError::PrevResult)
}
