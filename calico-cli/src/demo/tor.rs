//! The example's external BGP peers (top-of-rack routers), each a BIRD in a namespace of its
//! own on the demo's bridge, configured to accept the sessions calico-route plans toward it,
//! so that every session the cluster declares can come up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use calico_model::resources::Resource;
use calico_route::{Cluster, Family};

use super::lab::{self, Lab, LabError};

/// One external peer and the nodes that peer with it.
#[derive(Debug, Clone)]
pub(crate) struct ExternalPeer {
    /// Its address.
    pub(crate) ip: IpAddr,
    /// Its AS.
    pub(crate) asn: u32,
    /// (node address, node AS) of each session toward it.
    pub(crate) sessions: Vec<(IpAddr, u32)>,
}

/// The IPv4 peers calico-route plans that are not demo nodes.
pub(crate) fn external_peers(
    resources: &[Resource],
    affinities: &[calico_route::input::Affinity],
    nodes: &[String],
) -> Vec<ExternalPeer> {
    let mut cluster = Cluster::from_resources(resources.iter());
    cluster.affinities = affinities.to_vec();
    cluster.sort();
    let mut by_ip: BTreeMap<IpAddr, ExternalPeer> = BTreeMap::new();
    for n in nodes {
        let Ok(cfg) = calico_route::bird::render(&cluster, n, Family::V4) else {
            continue;
        };
        for p in cfg.peerings.iter().filter(|p| p.peer_node.is_none()) {
            let Some(local) = p.source_address.or_else(|| {
                cluster
                    .node(n)
                    .and_then(|i| i.ipv4.as_ref())
                    .map(|c| c.addr())
            }) else {
                continue;
            };
            let e = by_ip.entry(p.peer_ip).or_insert_with(|| ExternalPeer {
                ip: p.peer_ip,
                asn: p.peer_as.0,
                sessions: Vec::new(),
            });
            e.sessions.push((local, p.local_as.0));
        }
    }
    by_ip.into_values().collect()
}

/// BIRD's configuration for `peer`.
fn config(peer: &ExternalPeer) -> String {
    let mut c = format!("router id {};\nprotocol device {{}}\n", peer.ip);
    for (i, (ip, asn)) in peer.sessions.iter().enumerate() {
        let _ = write!(
            c,
            "protocol bgp node{i} {{\n  local {} as {};\n  neighbor {ip} as {asn};\n  ipv4 {{ import all; export none; }};\n}}\n",
            peer.ip, peer.asn
        );
    }
    c
}

/// Starts `peer` as a BIRD in namespace `tor<n>` joined to the bridge of `lan`; returns the
/// namespace.
pub(crate) fn start(
    lab: &mut Lab,
    lan: &str,
    n: usize,
    peer: &ExternalPeer,
    dir: &Path,
) -> Result<String, LabError> {
    let ns = lab.netns(&format!("tor{n}"))?;
    let port = format!("t{n}");
    let addr = format!("{}/24", peer.ip);
    lab::run(&[
        "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", lan,
    ])?;
    lab::run(&["ip", "-n", lan, "link", "set", &port, "master", "br0", "up"])?;
    lab::run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
    lab::run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
    lab::run(&["ip", "-n", &ns, "route", "add", "default", "dev", "eth0"])?;
    let cfg = dir.join(format!("tor{n}.cfg"));
    std::fs::write(&cfg, config(peer)).map_err(|e| LabError::Command {
        command: format!("write {}", cfg.display()),
        message: e.to_string(),
    })?;
    let ctl = dir.join(format!("tor{n}.ctl"));
    let cfg_s = cfg.display().to_string();
    let ctl_s = ctl.display().to_string();
    // BIRD daemonizes; the lab stops every process inside the namespace with it.
    lab::run(&[
        "ip", "netns", "exec", &ns, "bird", "-c", &cfg_s, "-s", &ctl_s,
    ])?;
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_accepts_each_planned_session() {
        let p = ExternalPeer {
            ip: IpAddr::from([10, 0, 1, 1]),
            asn: 65001,
            sessions: vec![(IpAddr::from([10, 0, 1, 11]), 64512)],
        };
        let c = config(&p);
        assert!(c.contains("router id 10.0.1.1;"), "{c}");
        assert!(c.contains("local 10.0.1.1 as 65001;"), "{c}");
        assert!(c.contains("neighbor 10.0.1.11 as 64512;"), "{c}");
    }
}
