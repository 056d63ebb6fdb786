//! Who peers with whom: the node-to-node mesh, BGPPeer expansion with its
//! order and duplicate rules, route-reflector clients, passive sides and session names.
//!
//! [`PeerExpansion::new`] expands every BGPPeer once for the whole cluster (forward
//! global peers, forward node-scoped peers, then reverse peerings; first writer wins and a
//! global key shadows a node-scoped one);
//! [`node_peerings`] then renders one node's peer protocols (mesh, explicit and
//! local-workload peers, minus entries for the node's own address, with route-reflector
//! clients, options and names), sorted by protocol name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::resources::bgp::{
    BgpPeer, BgpPeerSpec, BindMode, NextHopMode, ReversePeering, SecretKeyRef, SourceAddress,
};
use calico_model::resources::values::AsNumber;
use calico_model::selector::Selector;
use serde::Serialize;

use crate::input::{Cluster, Family, NodeInfo, duration_seconds};

/// The kind of a peer protocol (the prefix of its name: `Mesh_`, `Global_`, `Node_` or
/// `Local_Workload_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerKind {
    /// Node-to-node mesh (`Mesh_`).
    Mesh,
    /// Global BGPPeer (`Global_`).
    Global,
    /// Node-scoped BGPPeer or reverse peering (`Node_`).
    Node,
    /// Local workload peer (`Local_Workload_`).
    LocalWorkload,
}

impl PeerKind {
    /// The protocol-name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            PeerKind::Mesh => "Mesh_",
            PeerKind::Global => "Global_",
            PeerKind::Node => "Node_",
            PeerKind::LocalWorkload => "Local_Workload_",
        }
    }

    /// The kind as printed (`mesh`, `global`, `node`, `local-workload`).
    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Mesh => "mesh",
            PeerKind::Global => "global",
            PeerKind::Node => "node",
            PeerKind::LocalWorkload => "local-workload",
        }
    }
}

/// The channel next-hop setting of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NextHop {
    /// `next hop self;`
    SelfHop,
    /// `next hop keep;`
    Keep,
}

/// Why a peering exists (for explaining the session graph).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SessionOrigin {
    /// The node-to-node mesh.
    Mesh,
    /// A BGPPeer in the forward direction.
    Forward {
        /// BGPPeer name.
        peer: String,
    },
    /// A BGPPeer's implied reverse peering.
    Reverse {
        /// BGPPeer name.
        peer: String,
    },
    /// A BGPPeer's `localWorkloadSelector`.
    LocalWorkload {
        /// BGPPeer name.
        peer: String,
    },
}

/// Options a BGPPeer gives its sessions (compared to detect payload collisions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerOptions {
    /// `localASNumber`.
    pub local_as: Option<AsNumber>,
    /// `sourceAddress`.
    pub source_address: Option<SourceAddress>,
    /// `ttlSecurity`.
    pub ttl_security: Option<u8>,
    /// Password secret.
    pub password: Option<SecretKeyRef>,
    /// `maxRestartTime` in seconds.
    pub graceful_restart: Option<u64>,
    /// `keepaliveTime` in seconds.
    pub keepalive: Option<u64>,
    /// `nextHopMode`.
    pub next_hop_mode: Option<NextHopMode>,
    /// `keepOriginalNextHop`.
    pub keep_original_next_hop: bool,
    /// `numAllowedLocalASNumbers`.
    pub allow_local_as: Option<i32>,
    /// `reachableBy` as written.
    pub reachable_by: String,
    /// BGPFilter names.
    pub filters: Vec<String>,
}

impl PeerOptions {
    fn from_spec(spec: &BgpPeerSpec) -> PeerOptions {
        PeerOptions {
            local_as: spec.local_as_number,
            source_address: spec.source_address,
            ttl_security: spec.ttl_security,
            password: spec
                .password
                .as_ref()
                .and_then(|p| p.secret_key_ref.clone()),
            graceful_restart: spec.max_restart_time.as_deref().and_then(duration_seconds),
            keepalive: spec.keepalive_time.as_deref().and_then(duration_seconds),
            next_hop_mode: spec.next_hop_mode,
            keep_original_next_hop: spec.keep_original_next_hop,
            allow_local_as: spec.num_allowed_local_as_numbers,
            reachable_by: spec.reachable_by.clone(),
            filters: spec.filters.clone(),
        }
    }
}

/// One expanded peering key's payload: AS, password, the target's cluster ID and options.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerEntry {
    /// Peer address.
    pub ip: IpAddr,
    /// Peer port, when set.
    pub port: Option<u16>,
    /// Peer AS.
    pub as_number: AsNumber,
    /// The target's RR cluster ID (empty for peerIP entries and non-RRs).
    pub cluster_id: String,
    /// The Calico node at `ip`, if any.
    pub peer_node: Option<String>,
    /// Whether the entry came from a `peerIP` (not a selector).
    pub via_peer_ip: bool,
    /// Options of the BGPPeer.
    pub options: PeerOptions,
    /// Origin.
    pub origin: SessionOrigin,
}

impl PeerEntry {
    fn same_payload(&self, other: &PeerEntry) -> bool {
        self.as_number == other.as_number
            && self.cluster_id == other.cluster_id
            && self.options == other.options
    }
}

/// Two BGPPeers that produced the same key with different payloads; BGPPeers are
/// processed sorted by name, so the first by name wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    /// `global` or the node name.
    pub scope: String,
    /// Peer address.
    pub ip: IpAddr,
    /// Peer port.
    pub port: Option<u16>,
    /// The BGPPeer that won (first by name, forward before reverse).
    pub winner: String,
    /// The BGPPeer whose entry was dropped.
    pub loser: String,
}

/// A note about the expansion: something dropped or not resolvable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SessionNote {
    /// A BGPPeer whose selectors or peer IP resolved to no session at all.
    PeerUnresolved {
        /// BGPPeer name.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A BGPPeer field that could not be read (bad selector, bad peerIP).
    PeerInvalid {
        /// BGPPeer name.
        peer: String,
        /// What is wrong.
        reason: String,
    },
    /// A peer entry equal to the node's own address was skipped, with a different port.
    SelfPeerPortMismatch {
        /// Node.
        node: String,
        /// Address.
        ip: IpAddr,
        /// Port of the entry.
        port: Option<u16>,
    },
    /// `reachableBy` of another family than the peer IP: the peer is dropped.
    ReachableByFamily {
        /// Node.
        node: String,
        /// Peer.
        ip: IpAddr,
    },
    /// A password secret that cannot be read: the `password` line is omitted.
    PasswordUnreadable {
        /// Node.
        node: String,
        /// Protocol name.
        protocol: String,
        /// Secret name.
        secret: String,
        /// Why it cannot be read (no such Secret, no such key, bad encoding).
        reason: String,
    },
    /// A prefix advertisement names a community nothing defines: it is not attached.
    UnknownCommunity {
        /// Node.
        node: String,
        /// The advertisement's CIDR.
        cidr: String,
        /// The name.
        community: String,
        /// The BGPConfiguration holding the advertisement.
        config: String,
    },
    /// Two Nodes share a BGP address; only the first by name is a mesh candidate.
    DuplicateNodeAddress {
        /// Address.
        ip: IpAddr,
        /// Nodes sharing it.
        nodes: Vec<String>,
    },
}

/// One peer protocol on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Peering {
    /// Local node.
    pub node: String,
    /// Family (serialized `ipv4` or `ipv6`).
    #[serde(serialize_with = "calico_model::family::lowercase")]
    pub family: Family,
    /// Kind.
    pub kind: PeerKind,
    /// Protocol name: kind prefix, then the peer IP with `.` and `:` replaced by `_`, then
    /// `_port_<n>` for `Global_` and `Node_` sessions whose peer port is set.
    pub name: String,
    /// Peer address.
    #[serde(rename = "peerIP")]
    pub peer_ip: IpAddr,
    /// Peer port.
    pub port: Option<u16>,
    /// Calico node at the peer address.
    pub peer_node: Option<String>,
    /// Peer AS.
    pub peer_as: AsNumber,
    /// Local AS.
    pub local_as: AsNumber,
    /// Whether this node treats the peer as a route-reflector client.
    pub route_reflector_client: bool,
    /// The cluster ID rendered with `rr cluster id` (when a client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rr_cluster_id: Option<String>,
    /// Whether this side is passive.
    pub passive: bool,
    /// Local address (`local <ip>`).
    pub source_address: Option<IpAddr>,
    /// TTL security hops.
    #[serde(skip)]
    pub ttl_security: Option<u8>,
    /// Password secret.
    #[serde(skip)]
    pub password: Option<SecretKeyRef>,
    /// The password, when the secret could be read.
    #[serde(skip)]
    pub password_value: Option<String>,
    /// Graceful-restart time (s).
    #[serde(skip)]
    pub graceful_restart: Option<u64>,
    /// Keepalive time (s).
    #[serde(skip)]
    pub keepalive: Option<u64>,
    /// Channel next-hop setting.
    #[serde(skip)]
    pub next_hop: Option<NextHop>,
    /// `allow local as n`.
    #[serde(skip)]
    pub allow_local_as: Option<i32>,
    /// Static route to the peer.
    #[serde(skip)]
    pub reachable_by: Option<IpAddr>,
    /// BGPFilter names.
    #[serde(skip)]
    pub filters: Vec<String>,
    /// Why the peering exists.
    pub origin: SessionOrigin,
    /// `keepOriginalNextHop` set on an iBGP session (ignored, a lint).
    #[serde(skip)]
    pub ignored_keep_next_hop: bool,
}

impl Peering {
    /// Whether the session is iBGP (same AS on both ends).
    pub fn is_ibgp(&self) -> bool {
        self.peer_as == self.local_as
    }
}

/// The protocol name for a peer: `_port_<n>` only on `Global_` and `Node_` names (mesh
/// names never carry the port, whatever port the mesh uses).
pub fn protocol_name(kind: PeerKind, ip: IpAddr, port: Option<u16>) -> String {
    let mut s = String::from(kind.prefix());
    s.extend(
        ip.to_string()
            .chars()
            .map(|c| if c == '.' || c == ':' { '_' } else { c }),
    );
    if let Some(p) = port
        && matches!(kind, PeerKind::Global | PeerKind::Node)
    {
        s.push_str(&format!("_port_{p}"));
    }
    s
}

/// A password as a BIRD string can hold it, or why not.
pub fn password_text(cluster: &Cluster, r: &SecretKeyRef) -> Result<String, String> {
    let v = cluster.secret_value(r)?;
    if v.contains('"') || v.contains('\n') || v.contains('\r') {
        return Err(format!(
            "the value of Secret {}/{} key {:?} holds a double quote or a line break, which a BIRD string cannot",
            cluster.secret_namespace(),
            r.name,
            r.key
        ));
    }
    Ok(v)
}

/// Parses a BGPPeer `peerIP`: `IP`, `IPv4:port` or `[IPv6]:port`.
pub fn parse_peer_ip(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:")?;
        return Some((ip.parse().ok()?, Some(port.parse().ok()?)));
    }
    let (ip, port) = text.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some((IpAddr::V4(ip), Some(port.parse().ok()?)))
}

/// Scope of a peering key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Global,
    /// Index into `Cluster::nodes`.
    Node(usize),
}

type Key = (Scope, IpAddr, Option<u16>);

/// The BGPPeer expansion of a cluster, before per-node filtering of a node's own address.
#[derive(Debug, Clone, Default)]
pub struct PeerExpansion {
    /// Global entries.
    pub global: Vec<PeerEntry>,
    /// Node-scoped entries by node name (shadowed ones already removed).
    pub by_node: BTreeMap<String, Vec<PeerEntry>>,
    /// Local-workload BGPPeers by node name.
    pub local_workload: BTreeMap<String, Vec<String>>,
    /// Key collisions.
    pub collisions: Vec<Collision>,
    /// Notes.
    pub notes: Vec<SessionNote>,
}

fn parse_selector(peer: &BgpPeer, text: &str, notes: &mut Vec<SessionNote>) -> Option<Selector> {
    match Selector::parse(text) {
        Ok(s) => Some(s),
        Err(e) => {
            notes.push(SessionNote::PeerInvalid {
                peer: peer.metadata.name.clone(),
                reason: format!("selector {text:?}: {e}"),
            });
            None
        }
    }
}

struct Expander<'a> {
    cluster: &'a Cluster,
    map: BTreeMap<Key, PeerEntry>,
    collisions: Vec<Collision>,
    notes: Vec<SessionNote>,
}

impl Expander<'_> {
    fn insert(&mut self, scope: Scope, entry: PeerEntry) -> bool {
        let key = (scope, entry.ip, entry.port);
        if let Some(existing) = self.map.get(&key) {
            if !existing.same_payload(&entry) {
                self.collisions.push(Collision {
                    scope: match &key.0 {
                        Scope::Global => "global".to_owned(),
                        Scope::Node(i) => self
                            .cluster
                            .nodes
                            .get(*i)
                            .map_or_else(String::new, |n| n.name.clone()),
                    },
                    ip: entry.ip,
                    port: entry.port,
                    winner: origin_peer(&existing.origin),
                    loser: origin_peer(&entry.origin),
                });
            }
            return false;
        }
        self.map.insert(key, entry);
        true
    }

    /// Remote entries of a BGPPeer in the forward direction.
    fn remotes(&mut self, peer: &BgpPeer) -> Vec<PeerEntry> {
        let spec = &peer.spec;
        let options = PeerOptions::from_spec(spec);
        let origin = SessionOrigin::Forward {
            peer: peer.metadata.name.clone(),
        };
        let c = self.cluster;
        let mut out = Vec::new();
        if !spec.peer_ip.is_empty() {
            let Some((ip, port)) = parse_peer_ip(&spec.peer_ip) else {
                self.notes.push(SessionNote::PeerInvalid {
                    peer: peer.metadata.name.clone(),
                    reason: format!("peerIP {:?} is not IP, IP:port or [IP]:port", spec.peer_ip),
                });
                return out;
            };
            let as_number = spec.as_number.unwrap_or_else(|| c.global_as());
            let node = c.nodes.iter().find(|n| n.ip(Family::of(ip)) == Some(ip));
            let port = port.or_else(|| {
                node.filter(|n| c.node_as(n) == as_number)
                    .and_then(|n| c.node_port(&n.name))
            });
            out.push(PeerEntry {
                ip,
                port,
                as_number,
                cluster_id: String::new(),
                peer_node: node.map(|n| n.name.clone()),
                via_peer_ip: true,
                options,
                origin,
            });
        } else if !spec.peer_selector.is_empty() {
            let Some(sel) = parse_selector(peer, &spec.peer_selector, &mut self.notes) else {
                return out;
            };
            for n in c.nodes.iter().filter(|n| sel.matches(&n.labels)) {
                for fam in Family::BOTH {
                    if let Some(ip) = n.ip(fam) {
                        out.push(PeerEntry {
                            ip,
                            port: c.node_port(&n.name),
                            as_number: c.node_as(n),
                            cluster_id: n.cluster_id.clone(),
                            peer_node: Some(n.name.clone()),
                            via_peer_ip: false,
                            options: options.clone(),
                            origin: origin.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Local nodes of a node-scoped BGPPeer (`node` or `nodeSelector`).
    fn local_nodes(&mut self, peer: &BgpPeer) -> Vec<usize> {
        let spec = &peer.spec;
        let c = self.cluster;
        if !spec.node.is_empty() {
            return c
                .nodes
                .binary_search_by(|n| n.name.as_str().cmp(&spec.node))
                .ok()
                .into_iter()
                .collect();
        }
        if spec.node_selector.is_empty() {
            return (0..c.nodes.len()).collect();
        }
        match parse_selector(peer, &spec.node_selector, &mut self.notes) {
            Some(sel) => c
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| sel.matches(&n.labels))
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        }
    }
}

fn bump(counts: &mut [usize], i: usize) {
    if let Some(c) = counts.get_mut(i) {
        *c += 1;
    }
}

fn origin_peer(o: &SessionOrigin) -> String {
    match o {
        SessionOrigin::Mesh => "mesh".to_owned(),
        SessionOrigin::Forward { peer }
        | SessionOrigin::Reverse { peer }
        | SessionOrigin::LocalWorkload { peer } => peer.clone(),
    }
}

fn is_global(spec: &BgpPeerSpec) -> bool {
    spec.node.is_empty() && spec.node_selector.is_empty()
}

impl PeerExpansion {
    /// Expands every BGPPeer of the cluster.
    pub fn new(cluster: &Cluster) -> PeerExpansion {
        let mut ex = Expander {
            cluster,
            map: BTreeMap::new(),
            collisions: Vec::new(),
            notes: Vec::new(),
        };
        let mut local_workload: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut produced = vec![0usize; cluster.peers.len()];
        // 1. Forward, global.
        for (pi, peer) in cluster.peers.iter().enumerate() {
            if !peer.spec.local_workload_selector.is_empty() || !is_global(&peer.spec) {
                continue;
            }
            for e in ex.remotes(peer) {
                bump(&mut produced, pi);
                ex.insert(Scope::Global, e);
            }
        }
        // 2. Forward, node-scoped.
        for (pi, peer) in cluster.peers.iter().enumerate() {
            if is_global(&peer.spec) {
                continue;
            }
            let locals = ex.local_nodes(peer);
            if !peer.spec.local_workload_selector.is_empty() {
                for l in locals {
                    if let Some(n) = cluster.nodes.get(l) {
                        local_workload
                            .entry(n.name.clone())
                            .or_default()
                            .push(peer.metadata.name.clone());
                    }
                }
                continue;
            }
            let remotes = ex.remotes(peer);
            for l in &locals {
                for e in &remotes {
                    bump(&mut produced, pi);
                    ex.insert(Scope::Node(*l), e.clone());
                }
            }
        }
        for peer in &cluster.peers {
            if is_global(&peer.spec) && !peer.spec.local_workload_selector.is_empty() {
                for n in &cluster.nodes {
                    local_workload
                        .entry(n.name.clone())
                        .or_default()
                        .push(peer.metadata.name.clone());
                }
            }
        }
        // 3. Reverse.
        for (pi, peer) in cluster.peers.iter().enumerate() {
            let spec = &peer.spec;
            if spec.reverse_peering == Some(ReversePeering::Manual)
                || !spec.local_workload_selector.is_empty()
            {
                continue;
            }
            let options = PeerOptions::from_spec(spec);
            // New local nodes and the families they peer in.
            let mut new_locals: Vec<(usize, Option<Family>)> = Vec::new();
            if !spec.peer_selector.is_empty() {
                if let Ok(sel) = Selector::parse(&spec.peer_selector) {
                    new_locals.extend(
                        cluster
                            .nodes
                            .iter()
                            .enumerate()
                            .filter(|(_, n)| sel.matches(&n.labels))
                            .map(|(i, _)| (i, None)),
                    );
                }
            } else if let Some((ip, port)) = parse_peer_ip(&spec.peer_ip) {
                let want_as = match spec.as_number {
                    Some(AsNumber(0)) | None => cluster.global_as(),
                    Some(a) => a,
                };
                let fam = Family::of(ip);
                new_locals.extend(
                    cluster
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| {
                            n.ip(fam) == Some(ip)
                                && cluster.node_as(n) == want_as
                                && port
                                    .is_none_or(|p| cluster.node_port(&n.name).unwrap_or(179) == p)
                        })
                        .map(|(i, _)| (i, Some(fam))),
                );
            }
            if new_locals.is_empty() {
                continue;
            }
            let remote_nodes = ex.local_nodes(peer);
            for (li, fam_only) in new_locals {
                let Some(local) = cluster.nodes.get(li) else {
                    continue;
                };
                for rn in &remote_nodes {
                    let Some(r) = cluster.nodes.get(*rn) else {
                        continue;
                    };
                    for fam in Family::BOTH {
                        if fam_only.is_some_and(|f| f != fam) || local.ip(fam).is_none() {
                            continue;
                        }
                        let Some(ip) = r.ip(fam) else { continue };
                        bump(&mut produced, pi);
                        ex.insert(
                            Scope::Node(li),
                            PeerEntry {
                                ip,
                                port: cluster.node_port(&r.name),
                                as_number: cluster.node_as(r),
                                cluster_id: r.cluster_id.clone(),
                                peer_node: Some(r.name.clone()),
                                via_peer_ip: false,
                                options: options.clone(),
                                origin: SessionOrigin::Reverse {
                                    peer: peer.metadata.name.clone(),
                                },
                            },
                        );
                    }
                }
            }
        }
        for (pi, peer) in cluster.peers.iter().enumerate() {
            if peer.spec.local_workload_selector.is_empty()
                && produced.get(pi).copied().unwrap_or(0) == 0
                && !ex
                    .notes
                    .iter()
                    .any(|n| matches!(n, SessionNote::PeerInvalid { peer: p, .. } if *p == peer.metadata.name))
            {
                ex.notes.push(SessionNote::PeerUnresolved {
                    peer: peer.metadata.name.clone(),
                    reason: "its node and peer selectors or peerIP matched no node pair"
                        .to_owned(),
                });
            }
        }
        // 5. Global shadows node.
        let mut out = PeerExpansion {
            local_workload,
            collisions: ex.collisions,
            notes: ex.notes,
            ..PeerExpansion::default()
        };
        let globals: std::collections::BTreeSet<(IpAddr, Option<u16>)> = ex
            .map
            .keys()
            .filter(|k| k.0 == Scope::Global)
            .map(|k| (k.1, k.2))
            .collect();
        for ((scope, ip, port), entry) in ex.map {
            match scope {
                Scope::Global => out.global.push(entry),
                Scope::Node(i) => {
                    if !globals.contains(&(ip, port))
                        && let Some(n) = cluster.nodes.get(i)
                    {
                        match out.by_node.get_mut(&n.name) {
                            Some(v) => v.push(entry),
                            None => {
                                out.by_node.insert(n.name.clone(), vec![entry]);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// The mesh candidates of a family: non-RR nodes with an address, deduplicated by address
/// (first by name wins), with the duplicates found.
pub fn mesh_candidates(
    cluster: &Cluster,
    family: Family,
) -> (Vec<(IpAddr, &NodeInfo)>, Vec<SessionNote>) {
    let mut by_ip: BTreeMap<IpAddr, Vec<&NodeInfo>> = BTreeMap::new();
    for n in &cluster.nodes {
        if let Some(ip) = n.ip(family) {
            by_ip.entry(ip).or_default().push(n);
        }
    }
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for (ip, nodes) in by_ip {
        if nodes.len() > 1 {
            notes.push(SessionNote::DuplicateNodeAddress {
                ip,
                nodes: nodes.iter().map(|n| n.name.clone()).collect(),
            });
        }
        if let Some(first) = nodes.first() {
            out.push((ip, *first));
        }
    }
    (out, notes)
}

/// Whether node `n` is a route-reflector client of RR `rr` on a session: the
/// session is iBGP, `rr` has a cluster ID and the peer's cluster ID is empty or different.
fn rr_client(rr: &NodeInfo, local_as: AsNumber, peer_as: AsNumber, peer_cluster: &str) -> bool {
    rr.is_rr() && peer_as == local_as && peer_cluster != rr.cluster_id
}

/// One node's peer protocols in one family, sorted by name, with notes.
///
/// `mesh` is the family's mesh candidate list from [`mesh_candidates`] (computed once per
/// cluster and family).
pub fn node_peerings(
    cluster: &Cluster,
    expansion: &PeerExpansion,
    mesh: &[(IpAddr, &NodeInfo)],
    node: &NodeInfo,
    family: Family,
) -> (Vec<Peering>, Vec<SessionNote>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let Some(own_ip) = node.ip(family) else {
        return (out, notes);
    };
    let node_as = cluster.node_as(node);
    let strict_bind = cluster.bgp.bind_mode == Some(BindMode::NodeIP);
    // Mesh (route reflectors never take part).
    if cluster.mesh_enabled() && !node.is_rr() {
        for (ip, cand) in mesh {
            if *ip == own_ip || cand.is_rr() {
                continue;
            }
            let port = cluster.node_port(&cand.name);
            out.push(Peering {
                node: node.name.clone(),
                family,
                kind: PeerKind::Mesh,
                name: protocol_name(PeerKind::Mesh, *ip, port),
                peer_ip: *ip,
                port,
                peer_node: Some(cand.name.clone()),
                peer_as: cand.as_number.unwrap_or_else(|| cluster.global_as()),
                local_as: node_as,
                route_reflector_client: false,
                rr_cluster_id: None,
                passive: ip.to_string() > own_ip.to_string(),
                source_address: Some(own_ip),
                ttl_security: None,
                password: cluster
                    .bgp
                    .node_mesh_password
                    .as_ref()
                    .and_then(|p| p.secret_key_ref.clone()),
                password_value: None,
                graceful_restart: cluster
                    .bgp
                    .node_mesh_max_restart_time
                    .as_deref()
                    .and_then(duration_seconds),
                keepalive: None,
                next_hop: None,
                allow_local_as: None,
                reachable_by: None,
                filters: Vec::new(),
                origin: SessionOrigin::Mesh,
                ignored_keep_next_hop: false,
            });
        }
    }
    // Explicit peers, minus those at the node's own address.
    let scoped = expansion.by_node.get(&node.name).into_iter().flatten();
    for (kind, e) in expansion
        .global
        .iter()
        .map(|e| (PeerKind::Global, e))
        .chain(scoped.map(|e| (PeerKind::Node, e)))
    {
        if Family::of(e.ip) != family {
            continue;
        }
        if e.ip == own_ip {
            let own_port = cluster.node_port(&node.name);
            if e.port.is_some() && e.port != own_port {
                notes.push(SessionNote::SelfPeerPortMismatch {
                    node: node.name.clone(),
                    ip: e.ip,
                    port: e.port,
                });
            }
            continue;
        }
        let reachable_by = if e.options.reachable_by.is_empty() {
            None
        } else {
            match e.options.reachable_by.parse::<IpAddr>() {
                Ok(g) if Family::of(g) == family => Some(g),
                _ => {
                    notes.push(SessionNote::ReachableByFamily {
                        node: node.name.clone(),
                        ip: e.ip,
                    });
                    continue;
                }
            }
        };
        let local_as = e.options.local_as.unwrap_or(node_as);
        let client = rr_client(node, local_as, e.as_number, &e.cluster_id);
        let ebgp = e.as_number != local_as;
        let next_hop = match e.options.next_hop_mode {
            Some(NextHopMode::SelfHop) => Some(NextHop::SelfHop),
            Some(NextHopMode::Keep) => Some(NextHop::Keep),
            Some(NextHopMode::Auto) => None,
            None if e.options.keep_original_next_hop && ebgp => Some(NextHop::Keep),
            None => None,
        };
        let passive = kind == PeerKind::Global
            && e.via_peer_ip
            && e.peer_node.is_some()
            && e.ip.to_string() > own_ip.to_string();
        let source_address = match e.options.source_address {
            Some(SourceAddress::None) if !strict_bind => None,
            _ => Some(own_ip),
        };
        out.push(Peering {
            node: node.name.clone(),
            family,
            kind,
            name: protocol_name(kind, e.ip, e.port),
            peer_ip: e.ip,
            port: e.port,
            peer_node: e.peer_node.clone(),
            peer_as: e.as_number,
            local_as,
            route_reflector_client: client,
            rr_cluster_id: client.then(|| node.cluster_id.clone()),
            passive,
            source_address,
            ttl_security: e.options.ttl_security.filter(|t| *t > 0),
            password: e.options.password.clone(),
            password_value: None,
            graceful_restart: e.options.graceful_restart,
            keepalive: e.options.keepalive,
            next_hop,
            allow_local_as: e.options.allow_local_as,
            reachable_by,
            filters: e.options.filters.clone(),
            origin: e.origin.clone(),
            ignored_keep_next_hop: e.options.keep_original_next_hop
                && !ebgp
                && e.options.next_hop_mode.is_none(),
        });
    }
    // Local workloads: one passive session per matching local workload address.
    if let Some(peers) = expansion.local_workload.get(&node.name) {
        let mut seen = std::collections::BTreeSet::new();
        for pname in peers {
            let Some(peer) = cluster.peers.iter().find(|p| &p.metadata.name == pname) else {
                continue;
            };
            let Ok(sel) = Selector::parse(&peer.spec.local_workload_selector) else {
                continue;
            };
            for w in cluster
                .workloads
                .iter()
                .filter(|w| w.node == node.name && sel.matches(&w.labels))
            {
                for ip in w.ips.iter().filter(|ip| Family::of(**ip) == family) {
                    if !seen.insert(*ip) {
                        continue;
                    }
                    let opts = PeerOptions::from_spec(&peer.spec);
                    let peer_as = peer.spec.as_number.unwrap_or_else(|| cluster.global_as());
                    out.push(Peering {
                        node: node.name.clone(),
                        family,
                        kind: PeerKind::LocalWorkload,
                        name: protocol_name(PeerKind::LocalWorkload, *ip, None),
                        peer_ip: *ip,
                        port: None,
                        peer_node: None,
                        peer_as,
                        local_as: opts.local_as.unwrap_or(node_as),
                        route_reflector_client: false,
                        rr_cluster_id: None,
                        passive: true,
                        source_address: None,
                        ttl_security: opts.ttl_security.filter(|t| *t > 0),
                        password: opts.password,
                        password_value: None,
                        graceful_restart: opts.graceful_restart,
                        keepalive: opts.keepalive,
                        next_hop: None,
                        allow_local_as: opts.allow_local_as,
                        reachable_by: None,
                        filters: opts.filters,
                        origin: SessionOrigin::LocalWorkload {
                            peer: pname.clone(),
                        },
                        ignored_keep_next_hop: false,
                    });
                }
            }
        }
    }
    // Each Secret key is read once per node (every mesh session shares one).
    let mut read: Vec<(SecretKeyRef, Result<String, String>)> = Vec::new();
    for p in &mut out {
        if let Some(secret) = &p.password {
            let result = match read.iter().find(|(r, _)| r == secret) {
                Some((_, v)) => v.clone(),
                None => {
                    let v = password_text(cluster, secret);
                    read.push((secret.clone(), v.clone()));
                    v
                }
            };
            match result {
                Ok(v) => p.password_value = Some(v),
                Err(reason) => notes.push(SessionNote::PasswordUnreadable {
                    node: node.name.clone(),
                    protocol: p.name.clone(),
                    secret: secret.name.clone(),
                    reason,
                }),
            }
        }
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    (out, notes)
}
