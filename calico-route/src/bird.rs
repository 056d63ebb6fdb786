//! BIRD 2 configuration per node and family.
//!
//! [`render`] produces one self-contained file, its sections in confd's order. Output is
//! deterministic byte for byte: pools are sorted as strings, peers by protocol name, filters
//! by name. Passwords come from Kubernetes Secrets; a password that cannot be read leaves
//! the `password` line out and is reported in [`BirdConfig::notes`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use calico_model::resources::bgp::{BgpFilterRule, BindMode};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::filters::{community_adds, in_family, rule_statement};
use crate::input::{Cluster, Family, NodeInfo, PoolEncap, RouterIdSource};
use crate::ownership::cluster_route_owners;
use crate::sessions::{
    NextHop, PeerExpansion, Peering, SessionNote, mesh_candidates, node_peerings,
};

/// Errors of [`render`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BirdError {
    /// The node does not exist.
    #[error("no Node named {node:?}")]
    UnknownNode {
        /// Requested name.
        node: String,
    },
}

/// A rendered configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BirdConfig {
    /// The configuration text.
    pub text: String,
    /// Peer protocols rendered.
    pub peerings: Vec<Peering>,
    /// Notes (omitted passwords, dropped peers, skipped filter rules).
    pub notes: Vec<SessionNote>,
    /// Filter rules that could not be rendered (`filter name`, rule index, reason).
    pub skipped_rules: Vec<(String, usize, String)>,
}

pub use crate::filters::PRIORITY_MAX;

/// What an eBGP session's import filter starts with. BIRD 2 gives every route received
/// over eBGP a LOCAL_PREF (its `default bgp_local_pref`, 100), which the priority functions
/// would read as a priority of 2147483547; BIRD 1.x, which the reference drives, leaves it
/// unset, so that such a route has the normal priority unless a BGPFilter sets one.
pub const EBGP_IMPORT_PREFIX: &str = "unset(bgp_local_pref); ";

/// The `preference` an imported route gets when its priority beats the normal one (so that
/// it wins over a local route to the same address, as in a live migration).
pub const OVERRIDE_PREFERENCE: u32 = 200;

pub use crate::input::normal_priority;

/// The router ID of node `node` as the cluster's [`RouterIdSource`] says.
pub fn router_id_for(cluster: &Cluster, node: &NodeInfo) -> Ipv4Addr {
    match cluster.router_id {
        RouterIdSource::NodeAddress => router_id(node, false),
        RouterIdSource::Hash => router_id(node, true),
        RouterIdSource::Fixed(ip) => ip,
    }
}

/// The router ID of a node: its IPv4 address, else (or with `hash`) the first 4 bytes
/// of SHA-256(name), first octet reduced by 32 when above 223.
pub fn router_id(node: &NodeInfo, hash: bool) -> Ipv4Addr {
    if !hash && let Some(IpAddr::V4(v4)) = node.ip(Family::V4) {
        return v4;
    }
    let d = Sha256::digest(node.name.as_bytes());
    let mut b = [d[0], d[1], d[2], d[3]];
    if b[0] > 223 {
        b[0] -= 32;
    }
    Ipv4Addr::from(b)
}

/// The BIRD function name of a BGPFilter (`bgp_<name>_importFilterV4` and the like; names
/// over 45 bytes are shortened with a SHA-256 suffix), quoted when not a plain identifier.
pub fn filter_function(name: &str, import: bool, family: Family) -> String {
    let short = if name.len() > 45 {
        let d = Sha256::digest(name.as_bytes());
        let hex: String = d.iter().take(8).map(|b| format!("{b:02X}")).collect();
        let head: String = name.chars().take(28).collect();
        format!("{head}_{hex}")
    } else {
        name.to_owned()
    };
    let dir = if import { "import" } else { "export" };
    let v = match family {
        Family::V4 => "V4",
        Family::V6 => "V6",
    };
    quote_symbol(&format!("bgp_{short}_{dir}Filter{v}"))
}

fn quote_symbol(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("'{s}'")
    }
}

/// Whether a BGPFilter's function for one direction and family takes the session type
/// (`bool is_same_as`, true on iBGP): when any of its rules has a `peerType`.
pub fn takes_session_type(rules: &[BgpFilterRule]) -> bool {
    rules.iter().any(|r| r.peer_type.is_some())
}

/// The rules of one direction and family of a BGPFilter.
fn rules_of(
    spec: &calico_model::resources::bgp::BgpFilterSpec,
    import: bool,
    family: Family,
) -> &[BgpFilterRule] {
    match (family, import) {
        (Family::V4, true) => &spec.import_v4,
        (Family::V4, false) => &spec.export_v4,
        (Family::V6, true) => &spec.import_v6,
        (Family::V6, false) => &spec.export_v6,
    }
}

/// Renders node `node`'s configuration for `family`.
pub fn render(cluster: &Cluster, node: &str, family: Family) -> Result<BirdConfig, BirdError> {
    let expansion = PeerExpansion::new(cluster);
    let (mesh, _) = mesh_candidates(cluster, family);
    render_with(cluster, &expansion, &mesh, node, family)
}

/// [`render`] with a precomputed expansion and mesh candidate list (for rendering many nodes).
pub fn render_with(
    cluster: &Cluster,
    expansion: &PeerExpansion,
    mesh: &[(IpAddr, &NodeInfo)],
    node: &str,
    family: Family,
) -> Result<BirdConfig, BirdError> {
    let n = cluster.node(node).ok_or_else(|| BirdError::UnknownNode {
        node: node.to_owned(),
    })?;
    let peers = MeshPeers::new(cluster, mesh, family);
    let mut text = String::new();
    let summary = render_to(&mut text, cluster, expansion, &peers, node, family)?;
    let (peerings, mut notes) = node_peerings(cluster, expansion, mesh, n, family);
    notes.extend(
        summary
            .notes
            .into_iter()
            .filter(|n| matches!(n, SessionNote::UnknownCommunity { .. })),
    );
    Ok(BirdConfig {
        text,
        peerings,
        notes,
        skipped_rules: summary.skipped_rules,
    })
}

/// One mesh candidate, prepared once for rendering every node's configuration.
#[derive(Debug, Clone)]
struct MeshPeer {
    ip: IpAddr,
    name: String,
    peer_as: calico_model::resources::values::AsNumber,
    is_rr: bool,
    /// The address as text, for the passive rule (the side whose peer IP
    /// string sorts above its own is passive).
    ip_text: String,
    /// `\nprotocol bgp <name> from bgp_template {\n`: the stanza's first line.
    head: String,
    /// `  neighbor <ip>[ port <port>] as <AS>;\n`.
    neighbor: String,
}

/// The mesh candidates of one family sorted by protocol name, with their names and
/// peers resolved once for every node's configuration.
#[derive(Debug, Clone, Default)]
pub struct MeshPeers {
    family: Option<Family>,
    peers: Vec<MeshPeer>,
    /// Node name → indexes of its affinities in `Cluster::affinities` (`None`: not built,
    /// scan instead), so that rendering every node does not scan every affinity per node.
    affinities_by_node: Option<std::collections::HashMap<String, Vec<usize>>>,
}

impl MeshPeers {
    /// Prepares the candidates `mesh` (from [`mesh_candidates`]) of `family`.
    pub fn new(cluster: &Cluster, mesh: &[(IpAddr, &NodeInfo)], family: Family) -> MeshPeers {
        let mut peers: Vec<MeshPeer> = mesh
            .iter()
            .map(|(ip, cand)| {
                let port = cluster.node_port(&cand.name);
                let peer_as = cand.as_number.unwrap_or_else(|| cluster.global_as());
                let name =
                    crate::sessions::protocol_name(crate::sessions::PeerKind::Mesh, *ip, port);
                let head = format!("\nprotocol bgp {name} from bgp_template {{\n");
                let neighbor = match port {
                    Some(port) => format!("  neighbor {ip} port {port} as {peer_as};\n"),
                    None => format!("  neighbor {ip} as {peer_as};\n"),
                };
                MeshPeer {
                    ip: *ip,
                    name,
                    head,
                    neighbor,
                    peer_as,
                    is_rr: cand.is_rr(),
                    ip_text: ip.to_string(),
                }
            })
            .collect();
        peers.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut by_node: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, a) in cluster.affinities.iter().enumerate() {
            by_node.entry(a.node.clone()).or_default().push(i);
        }
        MeshPeers {
            family: Some(family),
            peers,
            affinities_by_node: Some(by_node),
        }
    }

    /// The affinities of `node` in `cluster` (the cluster these were prepared from), in
    /// `Cluster::affinities` order.
    fn affinities_of<'c>(
        &self,
        cluster: &'c Cluster,
        node: &str,
    ) -> Vec<&'c crate::input::Affinity> {
        match &self.affinities_by_node {
            Some(map) => map
                .get(node)
                .map(|idx| {
                    idx.iter()
                        .filter_map(|&i| cluster.affinities.get(i))
                        .filter(|a| a.node == node)
                        .collect()
                })
                .unwrap_or_default(),
            None => cluster
                .affinities
                .iter()
                .filter(|a| a.node == node)
                .collect(),
        }
    }
}

/// What [`render_to`] reports besides the text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderSummary {
    /// Peer protocols written.
    pub protocols: usize,
    /// Notes about explicit peers (dropped peers, unreadable passwords), one
    /// `PasswordUnreadable` per mesh session when the `nodeMeshPassword` Secret cannot be
    /// read, and one `UnknownCommunity` per community name nothing defines.
    pub notes: Vec<SessionNote>,
    /// Filter rules that could not be rendered (`filter name`, rule index, reason).
    pub skipped_rules: Vec<(String, usize, String)>,
}

/// Appends node `node`'s configuration for `family` to `out` — the same text as
/// [`render`] — from a shared expansion and prepared mesh candidates. Meant for rendering
/// many nodes into one reused buffer: per mesh session it writes a few precomputed strings.
pub fn render_to(
    out: &mut String,
    cluster: &Cluster,
    expansion: &PeerExpansion,
    mesh: &MeshPeers,
    node: &str,
    family: Family,
) -> Result<RenderSummary, BirdError> {
    let n = cluster.node(node).ok_or_else(|| BirdError::UnknownNode {
        node: node.to_owned(),
    })?;
    let t = out;
    let own = cluster_route_owners(cluster, node);
    let severity = cluster.log_severity(node).to_lowercase();
    let (dbg_simple, dbg_bgp) = match severity.as_str() {
        "debug" => (Some("debug all;"), Some("debug all;")),
        "none" => (None, None),
        _ => (
            Some("debug { states };"),
            Some("debug { states, routes, filters, events };"),
        ),
    };
    let priority = normal_priority(cluster, family);
    let ch = family.channel();
    let _ = writeln!(
        t,
        "# BIRD 2 configuration for node {} ({})",
        n.name,
        family.label()
    );
    let _ = writeln!(t, "router id {};", router_id_for(cluster, n));

    // 3. Communities.
    t.push_str("\nfunction apply_communities()\n{\n");
    let (advs, unknown) = crate::advertise::prefix_communities(cluster, node, family);
    for a in &advs {
        let adds: Vec<String> = a.values.iter().filter_map(|v| community_adds(v)).collect();
        let _ = writeln!(
            t,
            "  if ( net ~ [ {}+ ] ) then {{ {} }}",
            a.cidr,
            adds.join(" ")
        );
    }
    t.push_str("}\n");

    // 4. Static.
    let mut local_blocks = mesh.affinities_of(cluster, node);
    local_blocks.retain(|a| a.is_confirmed() && in_family(&a.block, family));
    let svc = crate::advertise::service_advertisement(cluster, n, family);
    // Explicit and local-workload peers; mesh sessions come from `mesh`.
    let (peerings, mut notes) = node_peerings(cluster, expansion, &[], n, family);
    notes.extend(unknown.into_iter().map(|u| SessionNote::UnknownCommunity {
        node: n.name.clone(),
        cidr: u.cidr.to_string(),
        community: u.community,
        config: u.config,
    }));
    let mesh_on = cluster.mesh_enabled() && !n.is_rr() && mesh.family == Some(family);
    let own_ip_opt = n.ip(family);
    let mesh_peers: Vec<&MeshPeer> = if mesh_on {
        mesh.peers
            .iter()
            .filter(|m| Some(m.ip) != own_ip_opt && !m.is_rr)
            .collect()
    } else {
        Vec::new()
    };
    let mut statics: Vec<String> = Vec::new();
    let mut push_static = |line: String| {
        if !statics.contains(&line) {
            statics.push(line);
        }
    };
    for a in &local_blocks {
        if a.block.prefix_len() != family.host_len() {
            push_static(format!("route {} blackhole;", a.block));
        }
    }
    for s in svc
        .cluster_ranges
        .iter()
        .chain(&svc.external_ranges)
        .chain(&svc.load_balancer_ranges)
        .chain(&svc.service_routes)
    {
        push_static(format!("route {s} blackhole;"));
    }
    for p in &peerings {
        if let Some(g) = p.reachable_by {
            push_static(format!(
                "route {}/{} via {g};",
                p.peer_ip,
                family.host_len()
            ));
        }
    }
    if !statics.is_empty() {
        let _ = writeln!(t, "\nprotocol static calico_static {{\n  {ch};");
        for s in &statics {
            let _ = writeln!(t, "  {s}");
        }
        t.push_str("}\n");
    }

    // 5. Aggregation.
    t.push_str("\nfunction calico_aggr()\n{\n");
    for a in &local_blocks {
        let b = a.block;
        let _ = writeln!(t, "  # Block {b} is confirmed");
        let _ = writeln!(t, "  if ( net = {b} ) then {{ accept; }}");
        let _ = writeln!(t, "  if ( net ~ [ {b}+ ] ) then {{");
        let _ = writeln!(
            t,
            "    if ( defined(krt_metric) && krt_metric < {priority} ) then {{ accept; }}"
        );
        t.push_str("    reject;\n  }\n");
    }
    t.push_str("}\n");

    // 6. Local routes.
    t.push_str("\nfunction reject_local_routes()\n{\n  if ( defined(ifname) && ifname ~ \"bpf*.cali\" ) then { reject; }\n}\n");

    // 7. Export policy.
    let mut pools: Vec<&crate::input::PoolInfo> = cluster
        .pools
        .iter()
        .filter(|p| in_family(&p.cidr, family))
        .collect();
    pools.sort_by_key(|p| p.cidr.to_string());
    t.push_str("\nfunction calico_export_to_bgp_peers(bool internal_peer)\n{\n");
    for p in pools.iter().filter(|p| p.disable_bgp_export) {
        let _ = writeln!(t, "  if ( net ~ [ {}+ ] ) then {{ reject; }}", p.cidr);
    }
    let tunl = if own.bird_claims(PoolEncap::Ipip) {
        ""
    } else {
        " || ifname ~ \"tunl0\""
    };
    let _ = writeln!(
        t,
        "  if ( internal_peer && defined(ifname) && ( ifname ~ \"*.cali\" || ifname ~ \"*.calico\"{tunl} ) ) then {{ reject; }}"
    );
    t.push_str("  reject_local_routes();\n  apply_communities();\n  calico_aggr();\n");
    for s in &svc.cluster_ranges {
        let _ = writeln!(t, "  if ( net ~ [ {s}+ ] ) then {{ accept; }}");
    }
    // External and LoadBalancer ranges: the aggregate itself; on RRs anything inside every
    // configured one (excluded or not), so that clients' per-service routes are reflected.
    if n.is_rr() {
        for s in &svc.reflected_ranges {
            let _ = writeln!(t, "  if ( net ~ [ {s}+ ] ) then {{ accept; }}");
        }
    } else {
        for s in svc.external_ranges.iter().chain(&svc.load_balancer_ranges) {
            let _ = writeln!(t, "  if ( net = {s} ) then {{ accept; }}");
        }
    }
    // Single Service addresses not already accepted above.
    let covered = |r: &IpNet| {
        svc.cluster_ranges.iter().any(|c| c.contains(r))
            || if n.is_rr() {
                svc.reflected_ranges.iter().any(|c| c.contains(r))
            } else {
                svc.external_ranges
                    .iter()
                    .chain(&svc.load_balancer_ranges)
                    .any(|c| c == r)
            }
    };
    for r in svc.service_routes.iter().filter(|r| !covered(r)) {
        let _ = writeln!(t, "  if ( net = {r} ) then {{ accept; }}");
    }
    for p in pools.iter().filter(|p| !p.disable_bgp_export) {
        let _ = writeln!(t, "  if ( net ~ [ {}+ ] ) then {{ accept; }}", p.cidr);
    }
    t.push_str("}\n");

    // 8. Priority: a route's priority travels as bgp_local_pref = MAX − priority.
    let max = PRIORITY_MAX;
    let _ = write!(
        t,
        "\nfunction calico_export_priority()\n{{\n  if ( source = RTS_BGP && defined(bgp_local_pref) ) then {{\n    krt_metric = {max} - bgp_local_pref;\n  }} else {{\n    if ( !defined(krt_metric) ) then {{ krt_metric = {priority}; }}\n    bgp_local_pref = {max} - krt_metric;\n  }}\n}}\n"
    );
    let _ = write!(
        t,
        "\nfunction calico_import_priority()\n{{\n  if ( defined(bgp_local_pref) && bgp_local_pref > {} ) then {{ preference = {OVERRIDE_PREFERENCE}; }}\n}}\n",
        max - priority
    );
    let _ = write!(
        t,
        "\nfunction calico_kernel_priority()\n{{\n  if ( source = RTS_BGP && !defined(krt_metric) ) then {{\n    krt_metric = {priority};\n    if ( defined(bgp_local_pref) ) then {{ krt_metric = {max} - bgp_local_pref; }}\n    if ( krt_metric < {priority} ) then {{ preference = {OVERRIDE_PREFERENCE}; }}\n  }}\n}}\n"
    );

    // 9. Kernel programming filter.
    t.push_str("\nfilter calico_kernel_programming\n{\n");
    // Interface routes (protocol direct) are in the table only to resolve BGP next hops.
    // BIRD 1.x's kernel protocol never exported them (`device routes` off by default);
    // BIRD 2 has no such default and would copy every interface subnet into the kernel
    // as `proto bird` (seen with real BIRD 2.0.12 in tests/bird_netns.rs).
    t.push_str("  if ( source = RTS_DEVICE ) then { reject; }\n");
    for s in &svc.kernel_rejects {
        let _ = writeln!(t, "  if ( net ~ [ {s}+ ] ) then {{ reject; }}");
    }
    // Single Service addresses outside every range: blackholes for BGP only, never for
    // the kernel.
    for r in svc
        .service_routes
        .iter()
        .filter(|r| !svc.kernel_rejects.iter().any(|k| k.contains(*r)))
    {
        let _ = writeln!(t, "  if ( net = {r} ) then {{ reject; }}");
    }
    t.push_str("  calico_kernel_priority();\n");
    // WireGuard on (IPv4): routes via another node's WireGuard peer are the dataplane's.
    if family == Family::V4 && cluster.felix_for(node).wireguard_enabled {
        for peer in cluster
            .nodes
            .iter()
            .filter(|m| m.name != n.name && m.wireguard_v4.is_some())
        {
            if let Some(ip) = peer.ip(family) {
                let _ = writeln!(
                    t,
                    "  if ( defined(bgp_next_hop) && bgp_next_hop = {ip} ) then {{ reject; }}"
                );
            }
        }
    }
    for p in &pools {
        let accept = p.encap() == PoolEncap::None && own.bird_claims(PoolEncap::None);
        if accept && family == Family::V6 {
            continue;
        }
        let verdict = if accept { "accept" } else { "reject" };
        let _ = writeln!(t, "  if ( net ~ [ {}+ ] ) then {{ {verdict}; }}", p.cidr);
    }
    t.push_str("  accept;\n}\n");

    // 10–12. Kernel, device, direct. `metric 0`: BIRD 2 gives every route the protocol's
    // metric (default 32) unless it is 0, and only then uses the route's `krt_metric` —
    // the priority the kernel filter derived.
    let _ = write!(
        t,
        "\nprotocol kernel calico_kernel {{\n  {ch} {{\n    import all;\n    export filter calico_kernel_programming;\n  }};\n  learn;\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;\n  metric 0;\n}}\n"
    );
    t.push_str("\nprotocol device {\n");
    if let Some(d) = dbg_simple {
        let _ = writeln!(t, "  {d}");
    }
    t.push_str("  scan time 2;\n}\n");
    t.push_str("\nprotocol direct calico_direct {\n");
    if let Some(d) = dbg_simple {
        let _ = writeln!(t, "  {d}");
    }
    let _ = writeln!(t, "  {ch};");
    let mut ifaces: Vec<String> = cluster
        .bgp
        .ignored_interfaces
        .iter()
        .map(|i| format!("-\"{i}\""))
        .collect();
    ifaces.extend(["-\"cali*\"", "-\"kube-ipvs*\"", "\"*\""].map(str::to_owned));
    let _ = writeln!(t, "  interface {};", ifaces.join(", "));
    t.push_str("}\n");

    // 13. No address in the family.
    let Some(own_ip) = n.ip(family) else {
        let _ = writeln!(t, "\n# {} disabled on this node.", family.label());
        return Ok(RenderSummary {
            protocols: 0,
            notes,
            skipped_rules: Vec::new(),
        });
    };

    // 14. Template.
    let node_as = cluster.node_as(n);
    t.push_str("\ntemplate bgp bgp_template {\n");
    if let Some(d) = dbg_bgp {
        let _ = writeln!(t, "  {d}");
    }
    t.push_str("  description \"Connection to BGP peer\";\n");
    let _ = writeln!(t, "  local as {node_as};");
    let strict = cluster.bgp.bind_mode == Some(BindMode::NodeIP);
    if strict {
        t.push_str("  strict bind on;\n");
    }
    let _ = write!(
        t,
        "  {ch} {{\n    gateway recursive;\n    add paths on;\n  }};\n  graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n}}\n"
    );

    // Options every mesh session of this node shares.
    let local_port = cluster.node_port(node).filter(|p| *p != 179);
    let mesh_gr = cluster
        .bgp
        .node_mesh_max_restart_time
        .as_deref()
        .and_then(crate::input::duration_seconds);
    let mesh_password = cluster
        .bgp
        .node_mesh_password
        .as_ref()
        .and_then(|p| p.secret_key_ref.clone());
    let (mesh_password_text, mesh_password_error) = match &mesh_password {
        Some(r) => match crate::sessions::password_text(cluster, r) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };

    // 15. BGPFilter functions.
    let mut skipped_rules = Vec::new();
    for (fname, spec) in &cluster.filters {
        for import in [true, false] {
            let rules = rules_of(spec, import, family);
            if rules.is_empty() {
                continue;
            }
            let param = if takes_session_type(rules) {
                "bool is_same_as"
            } else {
                ""
            };
            let _ = writeln!(
                t,
                "\nfunction {}({param})\n{{",
                filter_function(fname, import, family)
            );
            for (i, r) in rules.iter().enumerate() {
                match rule_statement(r, family) {
                    Ok(s) => {
                        let _ = writeln!(t, "  {s}");
                    }
                    Err(why) => {
                        let _ = writeln!(t, "  # rule {i} skipped: {why}");
                        skipped_rules.push((fname.clone(), i, why));
                    }
                }
            }
            t.push_str("}\n");
        }
    }

    // 16. Peers, sorted by name: explicit ones merged into the (sorted) mesh ones.
    if peerings.is_empty() && mesh_peers.is_empty() {
        t.push_str("\n# No BGP peers configured for this node\n");
    }
    let ctx = PeerCtx {
        cluster,
        family,
        own_ip,
        strict,
        local_port,
    };
    let own_text = own_ip.to_string();
    let parts = MeshStanzaParts::new(&ctx, node_as, mesh_gr, mesh_password_text.as_deref());
    let mut explicit = peerings.iter().peekable();
    for m in &mesh_peers {
        while let Some(p) = explicit.next_if(|p| p.name.as_bytes() < m.name.as_bytes()) {
            write_peer(t, &ctx, p);
        }
        if let (Some(secret), Some(reason)) = (&mesh_password, &mesh_password_error) {
            notes.push(SessionNote::PasswordUnreadable {
                node: n.name.clone(),
                protocol: m.name.clone(),
                secret: secret.name.clone(),
                reason: reason.clone(),
            });
        }
        let passive = m.ip_text > own_text;
        parts.write(t, m, passive);
    }
    for p in explicit {
        write_peer(t, &ctx, p);
    }
    Ok(RenderSummary {
        protocols: peerings.len() + mesh_peers.len(),
        notes,
        skipped_rules,
    })
}

/// What a peer stanza needs besides the peering.
struct PeerCtx<'a> {
    cluster: &'a Cluster,
    family: Family,
    own_ip: IpAddr,
    strict: bool,
    local_port: Option<u16>,
}

/// The parts of a node's mesh stanzas that depend on the node only: the `local`
/// line and the four possible endings (passive or not, iBGP or not). A mesh stanza is then
/// the peer's prepared head and neighbour lines around them: the text [`write_peer`]
/// writes for the mesh session's peering (checked by a unit test), in four copies per
/// session, which is what makes a 5,000-node mesh (25 M stanzas) cheap to render.
struct MeshStanzaParts {
    local: String,
    local_as: calico_model::resources::values::AsNumber,
    /// `[passive][ibgp]`.
    tails: [[String; 2]; 2],
}

impl MeshStanzaParts {
    fn new(
        ctx: &PeerCtx<'_>,
        local_as: calico_model::resources::values::AsNumber,
        graceful_restart: Option<u64>,
        password: Option<&str>,
    ) -> MeshStanzaParts {
        // A mesh session's source address is the node's own address, strict or not.
        let local = match ctx.local_port {
            Some(port) => format!("  local {} port {port} as {local_as};\n", ctx.own_ip),
            None => format!("  local {} as {local_as};\n", ctx.own_ip),
        };
        let tail = |passive: bool, ibgp: bool| {
            let mut t = String::new();
            if let Some(pw) = password {
                let _ = writeln!(t, "  password \"{pw}\";");
            }
            if let Some(g) = graceful_restart {
                let _ = writeln!(t, "  graceful restart time {g};");
            }
            t.push_str("  ttl security off;\n  multihop;\n");
            if passive {
                t.push_str("  passive on;\n");
            }
            let _ = writeln!(
                t,
                "  {} {{\n    import filter {{ {}calico_import_priority(); accept; }};\n    export filter {{ calico_export_priority(); calico_export_to_bgp_peers({ibgp}); reject; }};\n  }};\n}}",
                ctx.family.channel(),
                if ibgp { "" } else { EBGP_IMPORT_PREFIX }
            );
            t
        };
        MeshStanzaParts {
            local,
            local_as,
            tails: [
                [tail(false, false), tail(false, true)],
                [tail(true, false), tail(true, true)],
            ],
        }
    }

    /// Appends the stanza of the mesh session with `peer`.
    fn write(&self, t: &mut String, peer: &MeshPeer, passive: bool) {
        let ibgp = peer.peer_as == self.local_as;
        t.push_str(&peer.head);
        t.push_str(&self.local);
        t.push_str(&peer.neighbor);
        t.push_str(&self.tails[usize::from(passive)][usize::from(ibgp)]);
    }
}

/// One `protocol bgp … from bgp_template { … }` stanza, with the session's options.
fn write_peer(t: &mut String, ctx: &PeerCtx<'_>, p: &Peering) {
    let (cluster, family, ch) = (ctx.cluster, ctx.family, ctx.family.channel());
    let _ = writeln!(t, "\nprotocol bgp {} from bgp_template {{", p.name);
    let mut local = String::from("  local");
    let src = if ctx.strict {
        Some(ctx.own_ip)
    } else {
        p.source_address
    };
    if let Some(a) = src {
        let _ = write!(local, " {a}");
    }
    if let Some(port) = ctx.local_port {
        let _ = write!(local, " port {port}");
    }
    let _ = writeln!(t, "{local} as {};", p.local_as);
    match p.port {
        Some(port) => {
            let _ = writeln!(t, "  neighbor {} port {port} as {};", p.peer_ip, p.peer_as);
        }
        None => {
            let _ = writeln!(t, "  neighbor {} as {};", p.peer_ip, p.peer_as);
        }
    }
    if let Some(cid) = &p.rr_cluster_id {
        let _ = writeln!(t, "  rr client;\n  rr cluster id {cid};");
    }
    if let Some(pw) = &p.password_value {
        let _ = writeln!(t, "  password \"{pw}\";");
    }
    if let Some(g) = p.graceful_restart {
        let _ = writeln!(t, "  graceful restart time {g};");
    }
    if let Some(k) = p.keepalive {
        let _ = writeln!(t, "  keepalive time {k};");
    }
    if let Some(a) = p.allow_local_as {
        let _ = writeln!(t, "  allow local as {a};");
    }
    match p.ttl_security {
        Some(h) => {
            let _ = writeln!(t, "  ttl security on;\n  multihop {h};");
        }
        None => t.push_str("  ttl security off;\n  multihop;\n"),
    }
    if p.passive {
        t.push_str("  passive on;\n");
    }
    let _ = writeln!(t, "  {ch} {{");
    let used: Vec<(&String, &calico_model::resources::bgp::BgpFilterSpec)> = p
        .filters
        .iter()
        .filter_map(|f| cluster.filters.get(f).map(|s| (f, s)))
        .collect();
    let calls = |import: bool| -> Vec<String> {
        used.iter()
            .filter_map(|(f, spec)| {
                let rules = rules_of(spec, import, family);
                if rules.is_empty() {
                    return None;
                }
                let arg = if takes_session_type(rules) {
                    if p.is_ibgp() { "true" } else { "false" }
                } else {
                    ""
                };
                Some(format!("{}({arg});", filter_function(f, import, family)))
            })
            .collect()
    };
    let mut import = Vec::new();
    if !p.is_ibgp() {
        import.push(EBGP_IMPORT_PREFIX.trim_end().to_owned());
    }
    import.extend(calls(true));
    import.push("calico_import_priority();".to_owned());
    import.push("accept;".to_owned());
    let _ = writeln!(t, "    import filter {{ {} }};", import.join(" "));
    match p.next_hop {
        Some(NextHop::SelfHop) => t.push_str("    next hop self;\n"),
        Some(NextHop::Keep) => t.push_str("    next hop keep;\n"),
        None => {}
    }
    let mut export = vec!["calico_export_priority();".to_owned()];
    export.extend(calls(false));
    export.push(format!("calico_export_to_bgp_peers({});", p.is_ibgp()));
    export.push("reject;".to_owned());
    let _ = writeln!(t, "    export filter {{ {} }};", export.join(" "));
    t.push_str("  };\n}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mesh session's peering as the general stanza writer takes it.
    #[allow(clippy::too_many_arguments)] // one parameter per field the stanzas vary in
    fn mesh_peering(
        own_ip: IpAddr,
        local_as: calico_model::resources::values::AsNumber,
        peer: &MeshPeer,
        port: Option<u16>,
        passive: bool,
        family: Family,
        graceful_restart: Option<u64>,
        password: Option<&str>,
    ) -> Peering {
        Peering {
            node: "local".to_owned(),
            family,
            kind: crate::sessions::PeerKind::Mesh,
            name: peer.name.clone(),
            peer_ip: peer.ip,
            port,
            peer_node: Some("peer".to_owned()),
            peer_as: peer.peer_as,
            local_as,
            route_reflector_client: false,
            rr_cluster_id: None,
            passive,
            source_address: Some(own_ip),
            ttl_security: None,
            password: None,
            password_value: password.map(str::to_owned),
            graceful_restart,
            keepalive: None,
            next_hop: None,
            allow_local_as: None,
            reachable_by: None,
            filters: Vec::new(),
            origin: crate::sessions::SessionOrigin::Mesh,
            ignored_keep_next_hop: false,
        }
    }

    #[test]
    fn mesh_stanza_parts_write_what_write_peer_writes() {
        let cluster = Cluster::default();
        let cases: [(IpAddr, IpAddr); 2] = [
            ("10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap()),
            ("fd00::5".parse().unwrap(), "fd00::16".parse().unwrap()),
        ];
        let mut checked = 0;
        for (own_ip, peer_ip) in cases {
            let family = Family::of(own_ip);
            for port in [None, Some(1790)] {
                for peer_as in [64512, 65000] {
                    let name = crate::sessions::protocol_name(
                        crate::sessions::PeerKind::Mesh,
                        peer_ip,
                        port,
                    );
                    let peer = MeshPeer {
                        ip: peer_ip,
                        head: format!("\nprotocol bgp {name} from bgp_template {{\n"),
                        neighbor: match port {
                            Some(p) => format!("  neighbor {peer_ip} port {p} as {peer_as};\n"),
                            None => format!("  neighbor {peer_ip} as {peer_as};\n"),
                        },
                        name,
                        peer_as: calico_model::resources::values::AsNumber(peer_as),
                        is_rr: false,
                        ip_text: peer_ip.to_string(),
                    };
                    for strict in [false, true] {
                        for local_port in [None, Some(1791)] {
                            for (gr, pw) in [(None, None), (Some(120), Some("s3cret"))] {
                                let ctx = PeerCtx {
                                    cluster: &cluster,
                                    family,
                                    own_ip,
                                    strict,
                                    local_port,
                                };
                                let parts = MeshStanzaParts::new(
                                    &ctx,
                                    calico_model::resources::values::AsNumber(64512),
                                    gr,
                                    pw,
                                );
                                for passive in [false, true] {
                                    let mut fast = String::new();
                                    parts.write(&mut fast, &peer, passive);
                                    let mut general = String::new();
                                    let p = mesh_peering(
                                        own_ip,
                                        calico_model::resources::values::AsNumber(64512),
                                        &peer,
                                        port,
                                        passive,
                                        family,
                                        gr,
                                        pw,
                                    );
                                    write_peer(&mut general, &ctx, &p);
                                    assert_eq!(fast, general);
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 128);
    }
}
