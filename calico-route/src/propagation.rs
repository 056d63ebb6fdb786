//! Route propagation over the session graph under iBGP rules (routing.md §10).
//!
//! For each originating node and family, a breadth-first walk over established sessions
//! (both sides configure them; external peers are sinks) applies the advertisement rules:
//! originated or eBGP-learned routes go to every peer; an RR sends client-learned routes to
//! all peers and non-client-learned routes to clients only (and eBGP peers); a non-RR sends
//! iBGP-learned routes to eBGP peers only; an RR discards routes carrying its own cluster
//! ID; every node discards routes it originated; a node discards eBGP routes whose AS path
//! holds its own AS.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use crate::graph::SessionGraph;
use crate::input::{Cluster, Family};
use crate::sessions::Peering;

const ORIGINATED: usize = 0;
const EBGP: usize = 1;
const FROM_CLIENT: usize = 2;
const FROM_NON_CLIENT: usize = 3;

/// One established session seen from its sending side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Edge {
    to: usize,
    /// The sender treats the receiver as its RR client.
    client: bool,
    ibgp: bool,
    /// The receiver treats the sender as its RR client.
    back_client: bool,
    local_as: u32,
    back_local_as: u32,
    back_allow_local_as: bool,
}

#[derive(Debug, Clone, Copy)]
struct Attr {
    present: bool,
    is_rr: bool,
    cluster: usize,
    asn: u32,
}

/// The established-session adjacency of one family, over node indexes.
#[derive(Debug, Clone, Default)]
pub struct Adjacency<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
    attrs: Vec<Attr>,
    out: Vec<Vec<Edge>>,
}

impl<'a> Adjacency<'a> {
    /// Builds the adjacency of `family` from a session graph: sessions both sides configure,
    /// between Calico nodes.
    pub fn new(cluster: &'a Cluster, graph: &'a SessionGraph, family: Family) -> Adjacency<'a> {
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut clusters: HashMap<&str, usize> = HashMap::new();
        let attrs = cluster
            .nodes
            .iter()
            .map(|n| {
                let next = clusters.len() + 1;
                let cid = if n.is_rr() {
                    *clusters.entry(n.cluster_id.as_str()).or_insert(next)
                } else {
                    0
                };
                Attr {
                    present: n.ip(family).is_some(),
                    is_rr: n.is_rr(),
                    cluster: cid,
                    asn: cluster.node_as(n).0,
                }
            })
            .collect();
        let mut by_ip: HashMap<(usize, IpAddr), &Peering> = HashMap::new();
        for p in graph.peerings.iter().filter(|p| p.family == family) {
            if let Some(i) = index.get(p.node.as_str()) {
                by_ip.insert((*i, p.peer_ip), p);
            }
        }
        let mut out = vec![Vec::new(); names.len()];
        for p in graph.peerings.iter().filter(|p| p.family == family) {
            let (Some(&from), Some(&to)) = (
                index.get(p.node.as_str()),
                p.peer_node.as_deref().and_then(|m| index.get(m)),
            ) else {
                continue;
            };
            let Some(own_ip) = cluster.nodes.get(from).and_then(|n| n.ip(family)) else {
                continue;
            };
            if let Some(back) = by_ip.get(&(to, own_ip))
                && let Some(list) = out.get_mut(from)
            {
                list.push(Edge {
                    to,
                    client: p.route_reflector_client,
                    ibgp: p.is_ibgp(),
                    back_client: back.route_reflector_client,
                    local_as: p.local_as.0,
                    back_local_as: back.local_as.0,
                    back_allow_local_as: back.allow_local_as.is_some(),
                });
            }
        }
        Adjacency {
            names,
            index,
            attrs,
            out,
        }
    }

    /// Which node indexes learn the routes node `origin` originates.
    fn walk(&self, origin: usize) -> Vec<bool> {
        let n = self.names.len();
        let mut learned = vec![false; n];
        let mut seen = vec![[false; 4]; n];
        let mut queue: VecDeque<(usize, usize, Vec<usize>, Vec<u32>)> = VecDeque::new();
        if origin >= n {
            return learned;
        }
        queue.push_back((origin, ORIGINATED, Vec::new(), Vec::new()));
        if let Some(s) = seen.get_mut(origin) {
            s[ORIGINATED] = true;
        }
        while let Some((node, arrival, clusters, path)) = queue.pop_front() {
            let (Some(attr), Some(edges)) = (self.attrs.get(node), self.out.get(node)) else {
                continue;
            };
            if !attr.present {
                continue;
            }
            for e in edges {
                let ebgp = !e.ibgp;
                let allowed = match arrival {
                    ORIGINATED | EBGP | FROM_CLIENT => true,
                    _ if attr.is_rr => e.client || ebgp,
                    _ => ebgp,
                };
                if !allowed || e.to == origin {
                    continue;
                }
                let Some(m) = self.attrs.get(e.to) else {
                    continue;
                };
                let (new_clusters, new_path) = if ebgp {
                    let mut p2 = Vec::with_capacity(path.len() + 1);
                    p2.push(e.local_as);
                    p2.extend(&path);
                    (Vec::new(), p2)
                } else {
                    let mut c2 = clusters.clone();
                    if attr.is_rr && (arrival == FROM_CLIENT || arrival == FROM_NON_CLIENT) {
                        c2.push(attr.cluster);
                    }
                    (c2, path.clone())
                };
                if ebgp && !e.back_allow_local_as && new_path.contains(&e.back_local_as) {
                    continue;
                }
                if m.is_rr && new_clusters.contains(&m.cluster) {
                    continue;
                }
                let m_arrival = if ebgp {
                    EBGP
                } else if e.back_client {
                    FROM_CLIENT
                } else {
                    FROM_NON_CLIENT
                };
                if let Some(l) = learned.get_mut(e.to) {
                    *l = true;
                }
                if let Some(s) = seen.get_mut(e.to)
                    && !s[m_arrival]
                {
                    s[m_arrival] = true;
                    queue.push_back((e.to, m_arrival, new_clusters, new_path));
                }
            }
        }
        learned
    }
}

/// Which nodes learn the routes `origin` originates, in the adjacency's family.
pub fn learners(
    _cluster: &Cluster,
    adj: &Adjacency<'_>,
    origin: &str,
    _family: Family,
) -> BTreeSet<String> {
    let Some(&o) = adj.index.get(origin) else {
        return BTreeSet::new();
    };
    adj.walk(o)
        .iter()
        .zip(&adj.names)
        .filter(|(l, _)| **l)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// Learner sets for every origin of one family, computed once per class of structurally
/// identical nodes.
///
/// Two nodes with the same attributes (RR flag, cluster ID, AS) and the same labelled set of
/// established neighbours are never adjacent, and swapping them is an automorphism of the
/// session graph, so the learners of one follow from the other's by that swap. In the
/// route-reflector recipe all clients form one class: a handful of walks cover the cluster.
#[derive(Debug, Clone)]
pub struct Propagation {
    family: Family,
    index: HashMap<String, usize>,
    /// Node index → representative index of its class.
    rep_of: Vec<usize>,
    /// Representative index → learned flags.
    learned: HashMap<usize, Vec<bool>>,
}

impl Propagation {
    /// Computes the learner sets of every node in `family`.
    pub fn new(_cluster: &Cluster, adj: &Adjacency<'_>, family: Family) -> Propagation {
        let mut classes: BTreeMap<(bool, usize, u32, Vec<Edge>), usize> = BTreeMap::new();
        let mut rep_of = Vec::with_capacity(adj.names.len());
        let mut learned = HashMap::new();
        for (i, attr) in adj.attrs.iter().enumerate() {
            let mut labels = adj.out.get(i).cloned().unwrap_or_default();
            labels.sort();
            let key = (attr.is_rr, attr.cluster, attr.asn, labels);
            let rep = *classes.entry(key).or_insert(i);
            if rep == i && attr.present {
                learned.insert(i, adj.walk(i));
            }
            rep_of.push(rep);
        }
        Propagation {
            family,
            index: adj
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).to_owned(), i))
                .collect(),
            rep_of,
            learned,
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether `node` learns the routes `origin` originates.
    pub fn learns(&self, node: &str, origin: &str) -> bool {
        let (Some(&l), Some(&o)) = (self.index.get(node), self.index.get(origin)) else {
            return false;
        };
        if l == o {
            return false;
        }
        let Some(&rep) = self.rep_of.get(o) else {
            return false;
        };
        let Some(set) = self.learned.get(&rep) else {
            return false;
        };
        // Swap the origin and its representative.
        let mapped = if l == rep { o } else { l };
        set.get(mapped).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::loader::load_str;

    fn cluster(yaml: &str) -> Cluster {
        Cluster::from_resources(load_str("t.yaml", yaml).resources())
    }

    fn node(name: &str, ip: &str, cid: &str) -> String {
        let c = if cid.is_empty() {
            String::new()
        } else {
            format!("    routeReflectorClusterID: {cid}\n")
        };
        let label = if cid.is_empty() { "{}" } else { "{rr: \"\"}" };
        format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n  labels: {label}\nspec:\n  bgp:\n    ipv4Address: {ip}/24\n{c}"
        )
    }

    const MESH_OFF: &str = "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n";
    const RECIPE: &str = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  nodeSelector: all()\n  peerSelector: has(rr)\n";

    fn learn(c: &Cluster, origin: &str) -> Vec<String> {
        let g = SessionGraph::new(c);
        let adj = Adjacency::new(c, &g, Family::V4);
        learners(c, &adj, origin, Family::V4).into_iter().collect()
    }

    #[test]
    fn mesh_everyone_learns_directly() {
        let c = cluster(
            &(node("a", "10.0.0.1", "") + &node("b", "10.0.0.2", "") + &node("c", "10.0.0.3", "")),
        );
        assert_eq!(learn(&c, "a"), vec!["b", "c"]);
    }

    #[test]
    fn reflector_reflects_client_routes_to_clients() {
        let c = cluster(
            &(MESH_OFF.to_owned()
                + &node("rr", "10.0.0.1", "1.1.1.1")
                + &node("b", "10.0.0.2", "")
                + &node("c", "10.0.0.3", "")
                + RECIPE),
        );
        assert_eq!(learn(&c, "b"), vec!["c", "rr"]);
    }

    #[test]
    fn non_reflector_does_not_readvertise_ibgp_routes() {
        // a–b and b–c explicit iBGP sessions, no RR: c never learns a's routes.
        let peers = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: ab\nspec:\n  node: a\n  peerIP: 10.0.0.2\n  asNumber: 64512\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: bc\nspec:\n  node: b\n  peerIP: 10.0.0.3\n  asNumber: 64512\n";
        let c = cluster(
            &(MESH_OFF.to_owned()
                + &node("a", "10.0.0.1", "")
                + &node("b", "10.0.0.2", "")
                + &node("c", "10.0.0.3", "")
                + peers),
        );
        assert_eq!(learn(&c, "a"), vec!["b"]);
    }

    #[test]
    fn same_cluster_reflectors_share_client_routes_but_not_reflect_back() {
        let c = cluster(
            &(MESH_OFF.to_owned()
                + &node("rr1", "10.0.0.1", "1.1.1.1")
                + &node("rr2", "10.0.0.2", "1.1.1.1")
                + &node("c1", "10.0.0.3", "")
                + &node("c2", "10.0.0.4", "")
                + RECIPE),
        );
        assert_eq!(learn(&c, "c1"), vec!["c2", "rr1", "rr2"]);
        // RR-originated routes reach everybody.
        assert_eq!(learn(&c, "rr1"), vec!["c1", "c2", "rr2"]);
    }

    #[test]
    fn one_sided_sessions_carry_nothing() {
        let peers = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: ab\nspec:\n  node: a\n  peerIP: 10.0.0.2\n  asNumber: 64512\n  reversePeering: Manual\n";
        let c = cluster(
            &(MESH_OFF.to_owned()
                + &node("a", "10.0.0.1", "")
                + &node("b", "10.0.0.2", "")
                + peers),
        );
        assert!(learn(&c, "a").is_empty());
    }

    #[test]
    fn classes_give_the_same_answers_as_walks() {
        let fixtures = [
            MESH_OFF.to_owned()
                + &node("rr1", "10.0.0.1", "1.1.1.1")
                + &node("rr2", "10.0.0.2", "2.2.2.2")
                + &node("c1", "10.0.0.3", "")
                + &node("c2", "10.0.0.4", "")
                + &node("c3", "10.0.0.5", "")
                + RECIPE,
            node("a", "10.0.0.1", "") + &node("b", "10.0.0.2", "") + &node("c", "10.0.0.3", ""),
        ];
        for y in &fixtures {
            let c = cluster(y);
            let g = SessionGraph::new(&c);
            let adj = Adjacency::new(&c, &g, Family::V4);
            let prop = Propagation::new(&c, &adj, Family::V4);
            for x in &c.nodes {
                let walk = learners(&c, &adj, &x.name, Family::V4);
                for l in &c.nodes {
                    assert_eq!(
                        prop.learns(&l.name, &x.name),
                        walk.contains(&l.name),
                        "{} from {}",
                        l.name,
                        x.name
                    );
                }
            }
        }
    }
}
