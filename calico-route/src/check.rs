//! `calico route check`: reachability of every remote block from every
//! node, and the misconfiguration findings.
//!
//! Severity: the findings that break routing or make the configuration ambiguous are
//! errors; advice (redundancy, scale, ignored options, asymmetric CrossSubnet paths,
//! pending affinities) are warnings. [`CheckReport::ok`] is false on any error or any
//! unreachable (node, block) pair.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use calico_model::resources::ipam::{AffinityState, EncapMode};
use ipnet::IpNet;
use serde::Serialize;

use crate::graph::SessionGraph;
use crate::input::{Cluster, Family, PoolEncap};
use crate::kernel::same_subnet;
use crate::ownership::{Owner, OwnershipProblem, cluster_route_owners};
use crate::propagation::{Adjacency, Propagation};
use crate::sessions::{PeerKind, SessionNote, SessionOrigin};

/// Finding severity: calico-model's one severity type. An error breaks routing or is
/// ambiguous (`route check` exits 1); a warning is advice. Serialized `error` or `warning`.
pub use calico_model::diagnostic::Severity;

fn severity_lowercase<S: serde::Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    })
}

/// One finding about the routing configuration: a severity, a stable code and a message.
/// (Named apart from calico-ipam's `check::Inconsistency`, a stored-data fact with a repair.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ConfigFinding {
    /// Severity.
    #[serde(serialize_with = "severity_lowercase")]
    pub severity: Severity,
    /// Stable kebab-case code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// A (node, remote block) pair the node would not route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The node lacking the route.
    pub node: String,
    /// The block.
    pub block: IpNet,
    /// The block's owner.
    pub owner: String,
    /// Why.
    pub reason: String,
}

/// Scale figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    /// Nodes.
    pub nodes: usize,
    /// Route reflectors.
    pub route_reflectors: usize,
    /// Distinct sessions (unordered address pairs per family).
    pub sessions: usize,
    /// Most BGP protocols in one BIRD configuration (one family).
    pub max_protocols_per_daemon: usize,
    /// Confirmed blocks.
    pub blocks: usize,
    /// Sessions a full mesh of these nodes would need (per family, summed): N(N − 1)/2.
    pub full_mesh_sessions: usize,
    /// Sessions with 3 route reflectors meshed together: R(N − R) + R(R − 1)/2 per family.
    pub three_reflector_sessions: usize,
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Findings, errors first.
    pub findings: Vec<ConfigFinding>,
    /// Unrouted (node, block) pairs.
    pub unreachable: Vec<Unreachable>,
    /// (node, block) pairs checked.
    pub pairs_checked: usize,
    /// Scale figures.
    pub scale: Scale,
}

impl CheckReport {
    /// Whether the cluster passes: no error finding and nothing unreachable.
    pub fn ok(&self) -> bool {
        self.unreachable.is_empty() && self.findings.iter().all(|f| f.severity != Severity::Error)
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(s, "{sev}: {}: {}", f.code, f.message);
        }
        for u in &self.unreachable {
            let _ = writeln!(
                s,
                "unreachable: {} has no route to {} (on {}): {}",
                u.node, u.block, u.owner, u.reason
            );
        }
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let _ = writeln!(
            s,
            "{} error(s), {} warning(s), {} of {} (node, block) pairs unreachable; {} sessions, {} route reflector(s), {} node(s)",
            errors,
            self.findings.len() - errors,
            self.unreachable.len(),
            self.pairs_checked,
            self.scale.sessions,
            self.scale.route_reflectors,
            self.scale.nodes
        );
        let _ = writeln!(
            s,
            "scale: {} sessions now; node-to-node sessions with a full mesh {}, with 3 route reflectors {}",
            self.scale.sessions, self.scale.full_mesh_sessions, self.scale.three_reflector_sessions
        );
        s
    }
}

struct Findings(Vec<ConfigFinding>);

impl Findings {
    fn error(&mut self, code: &'static str, message: String) {
        self.0.push(ConfigFinding {
            severity: Severity::Error,
            code,
            message,
        });
    }
    fn warn(&mut self, code: &'static str, message: String) {
        self.0.push(ConfigFinding {
            severity: Severity::Warning,
            code,
            message,
        });
    }
}

/// The zone label used for the failure-domain check.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Mesh size beyond which route reflectors are advised.
pub const MESH_THRESHOLD: usize = 100;

/// Runs every analysis.
pub fn check(cluster: &Cluster) -> CheckReport {
    let graph = SessionGraph::new(cluster);
    let mut f = Findings(Vec::new());
    session_findings(cluster, &graph, &mut f);
    ipam_findings(cluster, &mut f);
    ownership_findings(cluster, &mut f);
    let (unreachable, pairs) = reachability(cluster, &graph);
    let mut per_daemon: BTreeMap<(&str, Family), usize> = BTreeMap::new();
    for p in &graph.peerings {
        *per_daemon.entry((p.node.as_str(), p.family)).or_default() += 1;
    }
    let scale = Scale {
        nodes: cluster.nodes.len(),
        route_reflectors: cluster.nodes.iter().filter(|n| n.is_rr()).count(),
        sessions: graph.session_count(),
        max_protocols_per_daemon: per_daemon.values().copied().max().unwrap_or(0),
        blocks: cluster
            .affinities
            .iter()
            .filter(|a| a.is_confirmed())
            .count(),
        full_mesh_sessions: Family::BOTH
            .iter()
            .map(|f| {
                let n = cluster.nodes.iter().filter(|x| x.ip(*f).is_some()).count();
                n * n.saturating_sub(1) / 2
            })
            .sum(),
        three_reflector_sessions: Family::BOTH
            .iter()
            .map(|f| {
                let n = cluster.nodes.iter().filter(|x| x.ip(*f).is_some()).count();
                let r = n.min(3);
                r * (n - r) + r * r.saturating_sub(1) / 2
            })
            .sum(),
    };
    let mut findings = f.0;
    findings.sort();
    findings.dedup();
    CheckReport {
        findings,
        unreachable,
        pairs_checked: pairs,
        scale,
    }
}

fn session_findings(cluster: &Cluster, graph: &SessionGraph, f: &mut Findings) {
    for note in &graph.notes {
        match note {
            SessionNote::DuplicateNodeAddress { ip, nodes } => f.error(
                "duplicate-node-address",
                format!("nodes {} share BGP address {ip}: BIRD rejects a config with two protocols to it", nodes.join(", ")),
            ),
            SessionNote::PeerUnresolved { peer, reason } => {
                f.error("peer-unresolved", format!("BGPPeer {peer}: {reason}"));
            }
            SessionNote::PeerInvalid { peer, reason } => {
                f.error("peer-invalid", format!("BGPPeer {peer}: {reason}"));
            }
            SessionNote::SelfPeerPortMismatch { node, ip, port } => f.error(
                "self-peer-port-mismatch",
                format!(
                    "{node}: peer entry {ip} port {} is the node's own address and is skipped although the port differs",
                    port.map_or_else(|| "-".to_owned(), |p| p.to_string())
                ),
            ),
            SessionNote::ReachableByFamily { node, ip } => f.error(
                "reachable-by-family",
                format!("{node}: peer {ip} dropped: reachableBy is of another family"),
            ),
            SessionNote::PasswordUnreadable {
                node,
                protocol,
                secret,
                reason,
            } => f.error(
                "password-missing",
                format!("{node} {protocol}: password secret {secret} cannot be read ({reason}); the session is configured without it"),
            ),
            SessionNote::UnknownCommunity {
                node,
                cidr,
                community,
                config,
            } => f.warn(
                "unknown-community",
                format!("{node}: prefix advertisement {cidr} of BGPConfiguration {config} names community {community:?}, which it does not define; it is not attached"),
            ),
        }
    }
    for n in &cluster.nodes {
        for fam in Family::BOTH {
            for u in crate::advertise::prefix_communities(cluster, &n.name, fam).1 {
                f.warn(
                    "unknown-community",
                    format!(
                        "{}: prefix advertisement {} of BGPConfiguration {} names community {:?}, which it does not define; it is not attached",
                        n.name, u.cidr, u.config, u.community
                    ),
                );
            }
        }
    }
    for c in &graph.collisions {
        f.error(
            "peer-collision",
            format!(
                "BGPPeers {} and {} both produce ({}, {}, port {}) with different settings; {} wins",
                c.winner,
                c.loser,
                c.scope,
                c.ip,
                c.port.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                c.winner
            ),
        );
    }
    for o in &graph.one_sided {
        f.error(
            "one-sided-session",
            format!(
                "{} {}: {} has no matching peer protocol, the session never establishes",
                o.node, o.protocol, o.peer_node
            ),
        );
    }
    let rrs: Vec<_> = cluster.nodes.iter().filter(|n| n.is_rr()).collect();
    let mesh = cluster.mesh_enabled();
    if mesh && !rrs.is_empty() {
        f.warn(
            "mesh-with-reflectors",
            format!(
                "the node-to-node mesh is on while {} route reflector(s) exist: non-RR nodes get both mesh and RR sessions",
                rrs.len()
            ),
        );
    }
    if mesh {
        let meshed = cluster
            .nodes
            .iter()
            .filter(|n| !n.is_rr() && (n.ipv4.is_some() || n.ipv6.is_some()))
            .count();
        if meshed > MESH_THRESHOLD {
            f.warn(
                "mesh-too-large",
                format!("{meshed} nodes in a full mesh; move to route reflectors beyond about {MESH_THRESHOLD}"),
            );
        }
        // A mesh candidate without a per-node AS is peered with the global AS (newer confd
        // uses N's own AS): report per-node AS on N with candidates lacking one.
        for n in cluster
            .nodes
            .iter()
            .filter(|n| n.as_number.is_some() && !n.is_rr())
        {
            if n.as_number != Some(cluster.global_as())
                && cluster
                    .nodes
                    .iter()
                    .any(|m| m.name != n.name && !m.is_rr() && m.as_number.is_none())
            {
                f.warn(
                    "mesh-as-divergence",
                    format!("{} has its own AS; mesh candidates without one are peered with the global AS (newer reference code uses {}'s AS)", n.name, n.name),
                );
            }
        }
    }
    // Mesh plus an explicit peer to a mesh member.
    let mut by_node: BTreeMap<(&str, Family, IpAddr), Vec<PeerKind>> = BTreeMap::new();
    for p in &graph.peerings {
        by_node
            .entry((p.node.as_str(), p.family, p.peer_ip))
            .or_default()
            .push(p.kind);
    }
    for ((node, _, ip), kinds) in &by_node {
        if kinds.len() > 1 {
            f.warn(
                "duplicate-protocol",
                format!(
                    "{node} has {} protocols to {ip} (mesh and BGPPeer)",
                    kinds.len()
                ),
            );
        }
    }
    // Reflector redundancy.
    if !rrs.is_empty() {
        for n in cluster.nodes.iter().filter(|n| !n.is_rr()) {
            for fam in Family::BOTH {
                if n.ip(fam).is_none() {
                    continue;
                }
                let reflectors: BTreeSet<&str> = graph
                    .peerings_of(&n.name)
                    .filter(|p| p.family == fam)
                    .filter_map(|p| p.peer_node.as_deref())
                    .filter(|m| cluster.node(m).is_some_and(|m| m.is_rr()))
                    .collect();
                let meshed = mesh && graph.peerings_of(&n.name).any(|p| p.kind == PeerKind::Mesh);
                match reflectors.len() {
                    0 if !meshed => f.error(
                        "client-without-reflector",
                        format!("{} ({}) peers with no route reflector", n.name, fam.label()),
                    ),
                    1 => f.warn(
                        "single-reflector",
                        format!(
                            "{} ({}) peers with one route reflector only: no redundancy",
                            n.name,
                            fam.label()
                        ),
                    ),
                    _ => {}
                }
            }
        }
        if rrs.len() == 1 {
            f.warn(
                "single-reflector",
                format!("{} is the only route reflector", rrs[0].name),
            );
        }
        let zones: BTreeSet<Option<&String>> =
            rrs.iter().map(|r| r.labels.get(ZONE_LABEL)).collect();
        if rrs.len() > 1 && zones.len() == 1 && zones.iter().next().is_some_and(Option::is_some) {
            f.warn(
                "reflectors-one-zone",
                format!(
                    "all {} route reflectors are in one zone ({ZONE_LABEL})",
                    rrs.len()
                ),
            );
        }
    }
    for p in &graph.peerings {
        let peer_is_rr = p
            .peer_node
            .as_deref()
            .and_then(|m| cluster.node(m))
            .is_some_and(|m| m.is_rr());
        if p.route_reflector_client && peer_is_rr {
            f.warn(
                "reflector-as-client",
                format!(
                    "{} treats route reflector {} as its client ({})",
                    p.node,
                    p.peer_node.as_deref().unwrap_or_default(),
                    if matches!(p.origin, SessionOrigin::Forward { .. }) && p.kind != PeerKind::Mesh
                    {
                        "peerIP peering or different cluster IDs"
                    } else {
                        "different cluster IDs"
                    }
                ),
            );
        }
        if p.ignored_keep_next_hop {
            f.warn(
                "keep-next-hop-ignored",
                format!(
                    "{} {}: keepOriginalNextHop is ignored on iBGP",
                    p.node, p.name
                ),
            );
        }
        for filter in &p.filters {
            if !cluster.filters.contains_key(filter) {
                f.error(
                    "filter-missing",
                    format!("{} {}: BGPFilter {filter} does not exist", p.node, p.name),
                );
            }
        }
    }
}

fn ipam_findings(cluster: &Cluster, f: &mut Findings) {
    for (i, a) in cluster.pools.iter().enumerate() {
        for b in cluster.pools.iter().skip(i + 1) {
            if a.cidr.contains(&b.cidr) || b.cidr.contains(&a.cidr) {
                f.error(
                    "overlapping-pools",
                    format!(
                        "IPPools {} ({}) and {} ({}) overlap",
                        a.name, a.cidr, b.name, b.cidr
                    ),
                );
            }
        }
        if a.ipip != EncapMode::Never && a.vxlan != EncapMode::Never {
            f.error(
                "pool-two-encapsulations",
                format!("IPPool {} sets both IPIP and VXLAN", a.name),
            );
        }
    }
    let mut owners: BTreeMap<IpNet, Vec<&str>> = BTreeMap::new();
    for a in &cluster.affinities {
        match a.state {
            AffinityState::Pending | AffinityState::PendingDeletion => f.warn(
                "pending-affinity",
                format!(
                    "block {} on {} is {:?}: no blackhole and no advertisement",
                    a.block, a.node, a.state
                ),
            ),
            _ => {}
        }
        if !a.is_confirmed() {
            continue;
        }
        owners.entry(a.block).or_default().push(&a.node);
        if a.block.prefix_len() == a.block.max_prefix_len() {
            f.error(
                "host-block",
                format!("block {} on {} is a single address", a.block, a.node),
            );
        }
        if cluster.pool_of(&a.block).is_none() {
            f.error(
                "block-outside-pools",
                format!("block {} on {} is in no IPPool", a.block, a.node),
            );
        }
        if cluster.node(&a.node).is_none() {
            f.error(
                "affinity-unknown-node",
                format!("block {} is affine to unknown node {}", a.block, a.node),
            );
        }
    }
    for (block, nodes) in owners {
        if nodes.len() > 1 {
            f.error(
                "duplicate-affinity",
                format!(
                    "block {block} is affine to {} (ECMP or stale routes)",
                    nodes.join(", ")
                ),
            );
        }
    }
    // CrossSubnet with /32 node addresses or differing prefixes.
    for fam in Family::BOTH {
        let cross = cluster
            .pools
            .iter()
            .any(|p| p.family() == fam && p.mode() == EncapMode::CrossSubnet && !p.disabled);
        if !cross {
            continue;
        }
        let lens: BTreeSet<u8> = cluster
            .nodes
            .iter()
            .filter_map(|n| n.cidr(fam))
            .map(|c| c.prefix_len())
            .collect();
        for n in &cluster.nodes {
            if n.cidr(fam).is_some_and(|c| c.is_single_address()) {
                f.warn("cross-subnet-host-address", format!("{} has a host-length {} address: CrossSubnet always encapsulates to and from it", n.name, fam.label()));
            }
        }
        if lens.len() > 1 {
            f.warn(
                "cross-subnet-prefix-mismatch",
                format!(
                    "nodes' {} subnet prefixes differ ({:?}): CrossSubnet paths may be asymmetric",
                    fam.label(),
                    lens
                ),
            );
        }
    }
}

fn ownership_findings(cluster: &Cluster, f: &mut Findings) {
    let mut seen = BTreeSet::new();
    for n in &cluster.nodes {
        let own = cluster_route_owners(cluster, &n.name);
        if !seen.insert(format!("{own:?}")) {
            continue;
        }
        for p in own.problems() {
            let msg = match p {
                OwnershipProblem::BothOwn { encap } => format!(
                    "Felix ({:?}) and BIRD ({:?}) both program {encap:?} pool routes",
                    own.felix, own.bird
                ),
                OwnershipProblem::NoneOwns { encap } => format!(
                    "neither Felix ({:?}) nor BIRD ({:?}) programs {encap:?} pool routes",
                    own.felix, own.bird
                ),
                OwnershipProblem::IpipToBird => format!(
                    "BIRD ({:?}) is given IPIP routes, which BIRD 2 cannot program",
                    own.bird
                ),
            };
            f.error("route-ownership", msg);
        }
        let ipip_used = cluster
            .pools
            .iter()
            .any(|p| !p.disabled && p.encap() == PoolEncap::Ipip);
        if ipip_used && own.owner(PoolEncap::Ipip) == Some(Owner::Dataplane) {
            f.warn("kernel-lacks-ipip", "IPIP pools need the ipip device kind, which this project's kernels lack: tunl0 and its routes are planned but cannot be programmed here".to_owned());
        }
    }
}

/// Checks every (node, remote block) pair.
fn reachability(cluster: &Cluster, graph: &SessionGraph) -> (Vec<Unreachable>, usize) {
    let mut out = Vec::new();
    let mut pairs = 0;
    let mut props: BTreeMap<Family, Propagation> = BTreeMap::new();
    let mut done = BTreeSet::new();
    for a in cluster.affinities.iter().filter(|a| a.is_confirmed()) {
        if !done.insert(a.block) {
            continue;
        }
        let Some(pool) = cluster.pool_of(&a.block) else {
            continue;
        };
        let Some(x) = cluster.node(&a.node) else {
            continue;
        };
        let fam = Family::of(a.block.addr());
        for l in cluster.nodes.iter().filter(|l| l.name != x.name) {
            pairs += 1;
            let own = cluster_route_owners(cluster, &l.name);
            let encap = pool.encap();
            let reason = match own.owner(encap) {
                None => Some(format!("no component programs {encap:?} pool routes")),
                Some(Owner::Dataplane) => match encap {
                    PoolEncap::Vxlan => {
                        let direct =
                            pool.mode() == EncapMode::CrossSubnet && same_subnet(l, x, fam);
                        if direct && x.ip(fam).is_none() {
                            Some(format!("{} has no BGP {} address", x.name, fam.label()))
                        } else if !direct && x.vtep(fam).is_none() {
                            Some(format!(
                                "{} has no {} VXLAN tunnel address",
                                x.name,
                                fam.label()
                            ))
                        } else {
                            None
                        }
                    }
                    _ => x
                        .ip(fam)
                        .is_none()
                        .then(|| format!("{} has no BGP {} address", x.name, fam.label())),
                },
                Some(Owner::Bird) => {
                    if pool.disable_bgp_export {
                        Some(format!("pool {} has disableBGPExport", pool.name))
                    } else if l.ip(fam).is_none() {
                        Some(format!("{} has no BGP {} address", l.name, fam.label()))
                    } else if x.ip(fam).is_none() {
                        Some(format!("{} has no BGP {} address", x.name, fam.label()))
                    } else {
                        let prop = props.entry(fam).or_insert_with(|| {
                            Propagation::new(cluster, &Adjacency::new(cluster, graph, fam), fam)
                        });
                        (!prop.learns(&l.name, &x.name, Some(&a.block))).then(|| {
                            "not propagated over the BGP sessions (no established path under iBGP/reflection rules)".to_owned()
                        })
                    }
                }
            };
            if let Some(reason) = reason {
                out.push(Unreachable {
                    node: l.name.clone(),
                    block: a.block,
                    owner: x.name.clone(),
                    reason,
                });
            }
        }
    }
    (out, pairs)
}
