//! Route propagation over the session graph under iBGP rules (routing.md §10).
//!
//! For each originating node and family, a breadth-first walk over established sessions
//! (both sides configure them; external peers are sinks) applies the advertisement rules:
//! originated or eBGP-learned routes go to every peer; an RR sends client-learned routes to
//! all peers and non-client-learned routes to clients only (and eBGP peers); a non-RR sends
//! iBGP-learned routes to eBGP peers only; an RR discards routes carrying its own cluster
//! ID; every node discards routes it originated; a node discards eBGP routes whose AS path
//! holds its own AS.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use crate::graph::SessionGraph;
use crate::input::{Cluster, Family};
use crate::sessions::Peering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Arrival {
    Originated,
    Ebgp,
    FromClient,
    FromNonClient,
}

/// The established-session adjacency of one family.
#[derive(Debug, Clone, Default)]
pub struct Adjacency<'a> {
    /// Node → its established peerings toward other Calico nodes.
    out: BTreeMap<&'a str, Vec<&'a Peering>>,
    /// (node, peer IP) → the peering, to look up the receiving side.
    by_ip: BTreeMap<(&'a str, IpAddr), &'a Peering>,
}

impl<'a> Adjacency<'a> {
    /// Builds the adjacency of `family` from a session graph.
    pub fn new(cluster: &Cluster, graph: &'a SessionGraph, family: Family) -> Adjacency<'a> {
        let mut adj = Adjacency::default();
        for p in graph.peerings.iter().filter(|p| p.family == family) {
            adj.by_ip.insert((p.node.as_str(), p.peer_ip), p);
        }
        for p in graph.peerings.iter().filter(|p| p.family == family) {
            let Some(peer) = &p.peer_node else { continue };
            let Some(own_ip) = cluster.node(&p.node).and_then(|n| n.ip(family)) else {
                continue;
            };
            if adj.by_ip.contains_key(&(peer.as_str(), own_ip)) {
                adj.out.entry(p.node.as_str()).or_default().push(p);
            }
        }
        adj
    }
}

/// Which nodes learn the routes a node originates, in one family.
pub fn learners(
    cluster: &Cluster,
    adj: &Adjacency<'_>,
    origin: &str,
    family: Family,
) -> BTreeSet<String> {
    let mut learned = BTreeSet::new();
    let mut seen: BTreeSet<(String, Arrival)> = BTreeSet::new();
    let mut queue: VecDeque<(String, Arrival, Vec<String>, Vec<u32>)> = VecDeque::new();
    queue.push_back((
        origin.to_owned(),
        Arrival::Originated,
        Vec::new(),
        Vec::new(),
    ));
    seen.insert((origin.to_owned(), Arrival::Originated));
    while let Some((n, arrival, clusters, path)) = queue.pop_front() {
        let Some(node) = cluster.node(&n) else {
            continue;
        };
        let Some(own_ip) = node.ip(family) else {
            continue;
        };
        for p in adj.out.get(n.as_str()).into_iter().flatten() {
            let ebgp = !p.is_ibgp();
            let allowed = match arrival {
                Arrival::Originated | Arrival::Ebgp | Arrival::FromClient => true,
                Arrival::FromNonClient if node.is_rr() => p.route_reflector_client || ebgp,
                Arrival::FromNonClient => ebgp,
            };
            if !allowed {
                continue;
            }
            let Some(m_name) = &p.peer_node else { continue };
            if m_name == origin {
                continue;
            }
            let Some(m) = cluster.node(m_name) else {
                continue;
            };
            let Some(back) = adj.by_ip.get(&(m_name.as_str(), own_ip)) else {
                continue;
            };
            let (new_clusters, new_path) = if ebgp {
                let mut path2 = vec![p.local_as.0];
                path2.extend(&path);
                (Vec::new(), path2)
            } else {
                let mut c2 = clusters.clone();
                if node.is_rr() && arrival != Arrival::Originated && arrival != Arrival::Ebgp {
                    c2.push(node.cluster_id.clone());
                }
                (c2, path.clone())
            };
            if ebgp && new_path.contains(&back.local_as.0) && back.allow_local_as.is_none() {
                continue;
            }
            if m.is_rr() && new_clusters.contains(&m.cluster_id) {
                continue;
            }
            let m_arrival = if ebgp {
                Arrival::Ebgp
            } else if back.route_reflector_client {
                Arrival::FromClient
            } else {
                Arrival::FromNonClient
            };
            learned.insert(m_name.clone());
            if seen.insert((m_name.clone(), m_arrival)) {
                queue.push_back((m_name.clone(), m_arrival, new_clusters, new_path));
            }
        }
    }
    learned
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
    /// Node → representative of its class.
    rep_of: BTreeMap<String, String>,
    /// Representative → its learners.
    learned: BTreeMap<String, BTreeSet<String>>,
}

type Label = (String, bool, bool, bool, u32, u32, bool);

impl Propagation {
    /// Computes the learner sets of every node of `cluster` in `family`.
    pub fn new(cluster: &Cluster, adj: &Adjacency<'_>, family: Family) -> Propagation {
        let mut classes: BTreeMap<(bool, String, u32, Vec<Label>), String> = BTreeMap::new();
        let mut rep_of = BTreeMap::new();
        let mut learned = BTreeMap::new();
        for n in &cluster.nodes {
            let Some(own_ip) = n.ip(family) else { continue };
            let mut labels: Vec<Label> = adj
                .out
                .get(n.name.as_str())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let m = p.peer_node.as_ref()?;
                    let back = adj.by_ip.get(&(m.as_str(), own_ip))?;
                    Some((
                        m.clone(),
                        p.route_reflector_client,
                        p.is_ibgp(),
                        back.route_reflector_client,
                        p.local_as.0,
                        back.local_as.0,
                        back.allow_local_as.is_some(),
                    ))
                })
                .collect();
            labels.sort();
            let key = (
                n.is_rr(),
                n.cluster_id.clone(),
                cluster.node_as(n).0,
                labels,
            );
            let rep = classes.entry(key).or_insert_with(|| n.name.clone()).clone();
            if rep == n.name {
                learned.insert(rep.clone(), learners(cluster, adj, &rep, family));
            }
            rep_of.insert(n.name.clone(), rep);
        }
        Propagation {
            family,
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
        if node == origin {
            return false;
        }
        let Some(rep) = self.rep_of.get(origin) else {
            return false;
        };
        let Some(set) = self.learned.get(rep) else {
            return false;
        };
        // Swap origin and its representative.
        let mapped = if node == rep.as_str() { origin } else { node };
        set.contains(mapped)
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
