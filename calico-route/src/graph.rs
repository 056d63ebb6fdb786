//! The whole-cluster session graph: every node's peerings, the distinct
//! sessions (unordered address pairs per family), one-sided sessions, and a DOT picture.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use petgraph::graphmap::UnGraphMap;
use serde::Serialize;

use crate::input::{Cluster, Family};
use crate::sessions::{
    Collision, PeerExpansion, PeerKind, Peering, SessionNote, mesh_candidates, node_peerings,
};

/// A session configured on one side only: it never establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OneSided {
    /// The node that configures it.
    pub node: String,
    /// Protocol name on that node.
    pub protocol: String,
    /// The Calico node that does not configure the reverse.
    pub peer_node: String,
}

/// The cluster's session graph.
#[derive(Debug, Clone)]
pub struct SessionGraph {
    /// Every peer protocol of every node, by node name then protocol name (IPv4 first).
    pub peerings: Vec<Peering>,
    /// Sessions: an undirected graph over endpoint addresses; each edge is one session.
    pub graph: UnGraphMap<IpAddr, ()>,
    /// Sessions configured by one side only (between Calico nodes).
    pub one_sided: Vec<OneSided>,
    /// BGPPeer key collisions.
    pub collisions: Vec<Collision>,
    /// Notes from the expansion and rendering.
    pub notes: Vec<SessionNote>,
}

impl SessionGraph {
    /// Builds the graph for every node and both families.
    pub fn new(cluster: &Cluster) -> SessionGraph {
        let expansion = PeerExpansion::new(cluster);
        let mut peerings = Vec::new();
        let mut notes = expansion.notes.clone();
        let mut graph = UnGraphMap::new();
        for family in Family::BOTH {
            let (mesh, dups) = mesh_candidates(cluster, family);
            notes.extend(dups);
            for node in &cluster.nodes {
                let (p, n) = node_peerings(cluster, &expansion, &mesh, node, family);
                notes.extend(n);
                if let Some(own) = node.ip(family) {
                    for peering in &p {
                        graph.add_edge(own, peering.peer_ip, ());
                    }
                }
                peerings.extend(p);
            }
        }
        peerings.sort_by(|a, b| {
            (&a.node, a.family, a.name.as_bytes()).cmp(&(&b.node, b.family, b.name.as_bytes()))
        });
        // One-sided sessions between Calico nodes.
        let mut configured: BTreeSet<(&str, IpAddr)> = BTreeSet::new();
        for p in &peerings {
            configured.insert((p.node.as_str(), p.peer_ip));
        }
        let mut one_sided = Vec::new();
        for p in &peerings {
            if p.kind == PeerKind::LocalWorkload {
                continue;
            }
            let Some(peer_node) = &p.peer_node else {
                continue;
            };
            let Some(own) = cluster.node(&p.node).and_then(|n| n.ip(p.family)) else {
                continue;
            };
            if !configured.contains(&(peer_node.as_str(), own)) {
                one_sided.push(OneSided {
                    node: p.node.clone(),
                    protocol: p.name.clone(),
                    peer_node: peer_node.clone(),
                });
            }
        }
        SessionGraph {
            peerings,
            graph,
            one_sided,
            collisions: expansion.collisions,
            notes,
        }
    }

    /// The number of distinct sessions: each unordered pair of endpoint addresses in one
    /// family counts once, however many protocols configure it.
    pub fn session_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The peerings of one node.
    pub fn peerings_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Peering> {
        self.peerings.iter().filter(move |p| p.node == node)
    }

    /// Sessions per node (distinct peer addresses over both families).
    pub fn sessions_per_node(&self) -> BTreeMap<&str, usize> {
        let mut per: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for p in &self.peerings {
            per.entry(p.node.as_str()).or_default().insert(p.peer_ip);
        }
        per.into_iter().map(|(k, v)| (k, v.len())).collect()
    }

    /// The `calico route sessions -o json` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sessions": self.session_count(),
            "peerings": self.peerings,
            "oneSided": self.one_sided,
            "collisions": self.collisions,
        })
    }

    /// The text report: one line per peering, then the session count.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for p in &self.peerings {
            let _ = write!(
                s,
                "{} {} {} {} {}",
                p.node,
                p.family.channel(),
                p.name,
                p.peer_ip,
                p.kind.as_str()
            );
            if let Some(n) = &p.peer_node {
                let _ = write!(s, " peer-node={n}");
            }
            let _ = write!(s, " as={}", p.peer_as);
            if p.route_reflector_client {
                s.push_str(" rr-client");
            }
            if p.passive {
                s.push_str(" passive");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "sessions: {}", self.session_count());
        s
    }

    /// A DOT picture: Calico nodes by name, external peers by address; route reflectors as
    /// boxes; client sessions drawn as arrows from reflector to client.
    pub fn to_dot(&self, cluster: &Cluster) -> String {
        let mut name_of: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for n in &cluster.nodes {
            for f in Family::BOTH {
                if let Some(ip) = n.ip(f) {
                    name_of.entry(ip).or_insert(&n.name);
                }
            }
        }
        let label = |ip: IpAddr| -> String {
            name_of
                .get(&ip)
                .map_or_else(|| ip.to_string(), |n| (*n).to_owned())
        };
        let mut s = String::from("graph sessions {\n");
        for n in &cluster.nodes {
            let shape = if n.is_rr() { "box" } else { "ellipse" };
            let _ = writeln!(s, "  \"{}\" [shape={shape}];", n.name);
        }
        let mut edges: BTreeSet<(String, String, String, &str)> = BTreeSet::new();
        for p in &self.peerings {
            let a = p.node.clone();
            let b = label(p.peer_ip);
            let (x, y) = if a <= b { (a, b) } else { (b, a) };
            let style = if p.route_reflector_client {
                "bold"
            } else {
                "solid"
            };
            edges.insert((x, y, p.family.channel().to_owned(), style));
        }
        let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
        for (x, y, fam, style) in edges.iter().rev() {
            if seen.insert((x.clone(), y.clone(), fam.clone())) {
                let _ = writeln!(s, "  \"{x}\" -- \"{y}\" [label=\"{fam}\", style={style}];");
            }
        }
        s.push_str("}\n");
        s
    }
}
