//! Scale helpers: counting sessions without materialising the full mesh, and
//! per-node BIRD configurations kept up to date incrementally as nodes join.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use calico_model::resources::bgp::Node;

use crate::bird::{BirdError, MeshPeers, render_to};
use crate::input::{Cluster, Family, NodeInfo};
use crate::sessions::{PeerExpansion, mesh_candidates, node_peerings};

/// The number of distinct sessions (unordered address pairs per family), equal to
/// [`crate::SessionGraph::session_count`], in time linear in the number of nodes plus
/// explicit peerings: mesh pairs are counted, not enumerated.
pub fn count_sessions(cluster: &Cluster) -> usize {
    let expansion = PeerExpansion::new(cluster);
    let mut total = 0usize;
    for family in Family::BOTH {
        let (mesh, _) = mesh_candidates(cluster, family);
        let members: BTreeSet<IpAddr> = if cluster.mesh_enabled() {
            mesh.iter()
                .filter(|(_, n)| !n.is_rr())
                .map(|(ip, _)| *ip)
                .collect()
        } else {
            BTreeSet::new()
        };
        let k = members.len();
        total += k * k.saturating_sub(1) / 2;
        let mut explicit: HashSet<(IpAddr, IpAddr)> = HashSet::new();
        for n in &cluster.nodes {
            let Some(own) = n.ip(family) else { continue };
            let (peerings, _) = node_peerings(cluster, &expansion, &[], n, family);
            for p in peerings {
                if members.contains(&own) && members.contains(&p.peer_ip) {
                    continue;
                }
                let pair = if own <= p.peer_ip {
                    (own, p.peer_ip)
                } else {
                    (p.peer_ip, own)
                };
                explicit.insert(pair);
            }
        }
        total += explicit.len();
    }
    total
}

/// Per-node BIRD configuration texts of one family, re-rendered only where a join changes
/// them. Only the texts are kept (a 5,000-node mesh has 25 million peerings, which a
/// [`crate::bird::BirdConfig`] per node would hold as structures).
#[derive(Debug, Clone)]
pub struct BirdCache {
    family: Family,
    expansion: PeerExpansion,
    configs: BTreeMap<String, String>,
}

impl BirdCache {
    /// Renders every node's configuration.
    pub fn new(cluster: &Cluster, family: Family) -> Result<BirdCache, BirdError> {
        let expansion = PeerExpansion::new(cluster);
        let (mesh, _) = mesh_candidates(cluster, family);
        let peers = MeshPeers::new(cluster, &mesh, family);
        let mut configs = BTreeMap::new();
        for n in &cluster.nodes {
            let mut text = String::new();
            render_to(&mut text, cluster, &expansion, &peers, &n.name, family)?;
            configs.insert(n.name.clone(), text);
        }
        Ok(BirdCache {
            family,
            expansion,
            configs,
        })
    }

    /// The cached configuration text of a node.
    pub fn text(&self, node: &str) -> Option<&str> {
        self.configs.get(node).map(String::as_str)
    }

    /// Number of cached configurations.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Adds `node` to `cluster` and re-renders only the configurations that change: the new
    /// node's and those of the nodes that now peer with it. Returns their names, sorted.
    ///
    /// The BGPPeer expansion is recomputed (it is linear in peers × nodes); rendering, the
    /// expensive part, is limited to the affected nodes.
    pub fn join(&mut self, cluster: &mut Cluster, node: &Node) -> Result<Vec<String>, BirdError> {
        let info = NodeInfo::from_node(node);
        let name = info.name.clone();
        let ip = info.ip(self.family);
        let is_rr = info.is_rr();
        match cluster
            .nodes
            .binary_search_by(|n| n.name.as_str().cmp(&name))
        {
            Ok(i) => {
                if let Some(slot) = cluster.nodes.get_mut(i) {
                    *slot = info;
                }
            }
            Err(i) => cluster.nodes.insert(i, info),
        }
        self.expansion = PeerExpansion::new(cluster);
        let mut affected: BTreeSet<String> = BTreeSet::from([name.clone()]);
        if let Some(ip) = ip {
            if cluster.mesh_enabled() && !is_rr {
                affected.extend(
                    cluster
                        .nodes
                        .iter()
                        .filter(|n| !n.is_rr() && n.ip(self.family).is_some())
                        .map(|n| n.name.clone()),
                );
            }
            if self.expansion.global.iter().any(|e| e.ip == ip) {
                affected.extend(cluster.nodes.iter().map(|n| n.name.clone()));
            }
            for (n, entries) in &self.expansion.by_node {
                if entries.iter().any(|e| e.ip == ip) {
                    affected.insert(n.clone());
                }
            }
        }
        let (mesh, _) = mesh_candidates(cluster, self.family);
        let peers = MeshPeers::new(cluster, &mesh, self.family);
        for n in &affected {
            let text = self.configs.entry(n.clone()).or_default();
            text.clear();
            render_to(text, cluster, &self.expansion, &peers, n, self.family)?;
        }
        Ok(affected.into_iter().collect())
    }
}
