//! Route propagation over the session graph under iBGP rules.
//!
//! For each originating node and family, a breadth-first walk over established sessions
//! (both sides configure them; external peers are sinks) applies the advertisement rules:
//! originated or eBGP-learned routes go to every peer; an RR sends client-learned routes to
//! all peers and non-client-learned routes to clients only (and eBGP peers); a non-RR sends
//! iBGP-learned routes to eBGP peers only; an RR discards routes carrying its own cluster
//! ID; every node discards routes it originated; a node discards eBGP routes whose AS path
//! holds its own AS.
//!
//! Every rendered session has `add paths on` (set in the shared BGP template), so BIRD announces
//! every path it holds, not only its best one: the walk therefore follows each path on its
//! own and records, per receiving node, every path's BGP next hop, AS-path length and
//! whether it arrived over iBGP. Next hops follow BIRD 2: a locally originated route (the
//! static blackhole) leaves with the sender's address; over iBGP the next hop is kept; over
//! eBGP (every session is `multihop`, so there is no shared-interface exception) it is set
//! to the sender's address; `next hop self` / `next hop keep` on the sending session
//! override both. A route reflector stamps the originator (the first iBGP sender) and a
//! node drops paths carrying itself as originator. [`Propagation::kernel_next_hops`] gives
//! what the kernel protocol (`merge paths on`) installs: the next hops of the best path and
//! of every path equal to it in local preference (all 100), AS-path length, origin (all
//! from `calico_static`) and iBGP/eBGP, i.e. BIRD's `bgp_rte_mergable`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use crate::filters::{Community, FilterOutcome, FilterProgram, RouteAttrs, prefix_matches};
use crate::graph::SessionGraph;
use crate::input::{Cluster, Family};
use crate::sessions::{NextHop, Peering};
use ipnet::IpNet;

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
    /// The sender's channel next-hop setting: 0 default, 1 `next hop self`, 2 `next hop keep`.
    next_hop: u8,
    /// The sender's export filter program (index into `Adjacency::programs`; 0: none).
    export_prog: u32,
    /// The receiver's import filter program.
    import_prog: u32,
}

/// One path a node holds for an origin's routes (over node indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PathInfo {
    /// The node whose address is the BGP next hop.
    next_hop: usize,
    as_path_len: usize,
    /// Arrived over iBGP.
    interior: bool,
    /// The priority its local preference carries (`None`: no local preference, a route
    /// received over eBGP that no filter gave a priority).
    priority: Option<i64>,
}

impl PathInfo {
    /// BIRD's preference order: higher local preference (lower priority; a path without
    /// one compares as BIRD's default local preference, 100), then the shorter AS path,
    /// then eBGP over iBGP.
    fn rank(&self) -> (i64, usize, bool) {
        (
            self.priority
                .unwrap_or(crate::filters::PRIORITY_MAX - DEFAULT_LOCAL_PREF),
            self.as_path_len,
            self.interior,
        )
    }
}

/// BIRD 2's `default bgp_local_pref`.
const DEFAULT_LOCAL_PREF: i64 = 100;

/// One path a node holds for an origin's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LearnedPath {
    /// The BGP next hop (a node's address in the family).
    pub next_hop: IpAddr,
    /// AS-path length.
    pub as_path_len: usize,
    /// Whether the path arrived over iBGP.
    pub ibgp: bool,
}

/// A walk's result: per node index, the distinct paths it holds (empty: not learned).
type Walk = Vec<Vec<PathInfo>>;

/// Walks by (representative index, prefix signature).
type WalkCache = HashMap<(usize, Vec<bool>), std::sync::Arc<Walk>>;

/// A walk from one of the caches: borrowed from the per-representative slots, or shared
/// out of the per-prefix map.
enum WalkRef<'a> {
    Borrowed(&'a Walk),
    Shared(std::sync::Arc<Walk>),
}

impl std::ops::Deref for WalkRef<'_> {
    type Target = Walk;
    fn deref(&self) -> &Walk {
        match self {
            WalkRef::Borrowed(w) => w,
            WalkRef::Shared(w) => w,
        }
    }
}

/// State of one path in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PathState {
    node: usize,
    arrival: usize,
    next_hop: usize,
    as_path: Vec<u32>,
    clusters: Vec<usize>,
    /// The node that brought the path into iBGP.
    originator: usize,
    communities: Vec<Community>,
    krt_metric: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default)]
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
    core: Core,
}

/// What the walks need, owned.
#[derive(Debug, Clone, Default)]
struct Core {
    ips: Vec<Option<IpAddr>>,
    attrs: Vec<Attr>,
    out: Vec<Vec<Edge>>,
    /// Filter programs; index 0 is the empty one.
    programs: Vec<FilterProgram>,
    /// Per node index: its prefix advertisements of the family (CIDR, communities), which
    /// its `apply_communities()` adds on export.
    adv: Vec<Vec<(IpNet, Vec<Community>)>>,
    /// The CIDR conditions of every program's rules.
    sig_rules: Vec<calico_model::resources::bgp::BgpFilterRule>,
    /// The distinct advertisement CIDRs.
    adv_cidrs: Vec<IpNet>,
    /// The family's normal route priority (a route's priority when nothing set one).
    normal_priority: i64,
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
        let mut programs = vec![FilterProgram::default()];
        let mut prog_index: HashMap<(bool, Vec<String>), u32> = HashMap::new();
        let mut program = |filters: &[String], import: bool| -> u32 {
            let known: Vec<String> = filters
                .iter()
                .filter(|f| cluster.filters.contains_key(*f))
                .cloned()
                .collect();
            if known.is_empty() {
                return 0;
            }
            *prog_index
                .entry((import, known))
                .or_insert_with_key(|(imp, names)| {
                    let prog = FilterProgram::new(
                        names.iter().filter_map(|f| cluster.filters.get(f)),
                        *imp,
                        family,
                    );
                    if prog.is_empty() {
                        return 0;
                    }
                    programs.push(prog);
                    u32::try_from(programs.len() - 1).unwrap_or(0)
                })
        };
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
                    next_hop: match p.next_hop {
                        None => 0,
                        Some(NextHop::SelfHop) => 1,
                        Some(NextHop::Keep) => 2,
                    },
                    export_prog: program(&p.filters, false),
                    import_prog: program(&back.filters, true),
                });
            }
        }
        let adv: Vec<Vec<(IpNet, Vec<Community>)>> = cluster
            .nodes
            .iter()
            .map(|n| advertisements(cluster, &n.name, family))
            .collect();
        let sig_rules = programs
            .iter()
            .flat_map(|p| p.prefix_conditions())
            .cloned()
            .collect();
        let mut adv_cidrs: Vec<IpNet> = adv
            .iter()
            .flat_map(|l: &Vec<(IpNet, Vec<Community>)>| l.iter().map(|(c, _)| *c))
            .collect();
        adv_cidrs.sort();
        adv_cidrs.dedup();
        Adjacency {
            names,
            index,
            core: Core {
                ips: cluster.nodes.iter().map(|n| n.ip(family)).collect(),
                attrs,
                out,
                programs,
                adv,
                sig_rules,
                adv_cidrs,
                normal_priority: crate::input::normal_priority(cluster, family),
            },
        }
    }
}

impl Core {
    /// Whether filters or community-adding advertisements can make a route's fate depend on
    /// its prefix.
    fn prefix_sensitive(&self) -> bool {
        self.programs.len() > 1 || !self.adv_cidrs.is_empty()
    }

    /// Groups prefixes that every filter rule and advertisement treats alike.
    fn signature(&self, net: Option<&IpNet>) -> Vec<bool> {
        self.sig_rules
            .iter()
            .map(|r| prefix_matches(r, net))
            .chain(
                self.adv_cidrs
                    .iter()
                    .map(|c| net.is_some_and(|n| c.contains(n))),
            )
            .collect()
    }

    /// The paths every node index holds for the routes node `origin` originates for `net`
    /// (`None`: a prefix outside every filter CIDR and advertisement).
    fn walk(&self, origin: usize, net: Option<IpNet>) -> Walk {
        let n = self.attrs.len();
        let mut held: Walk = vec![Vec::new(); n];
        if origin >= n {
            return held;
        }
        let filtering = self.prefix_sensitive();
        let mut seen: HashSet<PathState> = HashSet::new();
        let mut queue: VecDeque<PathState> = VecDeque::new();
        let first = PathState {
            node: origin,
            arrival: ORIGINATED,
            next_hop: origin,
            as_path: Vec::new(),
            clusters: Vec::new(),
            originator: origin,
            communities: Vec::new(),
            krt_metric: None,
        };
        seen.insert(first.clone());
        queue.push_back(first);
        while let Some(st) = queue.pop_front() {
            let node = st.node;
            let arrival = st.arrival;
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
                // Export filter: the session's BGPFilters, else calico_export_to_bgp_peers
                // (which accepts pool routes after apply_communities()).
                // The export priority function: a route without a local preference (one
                // the node originates or learned over eBGP) gets the normal priority.
                let mut route = RouteAttrs {
                    net,
                    from_bgp: arrival != ORIGINATED,
                    as_path: st.as_path.clone(),
                    communities: st.communities.clone(),
                    krt_metric: Some(st.krt_metric.unwrap_or(self.normal_priority)),
                };
                if filtering {
                    let prog = self.programs.get(e.export_prog as usize);
                    match prog.map_or(FilterOutcome::NoMatch, |p| p.run(&mut route, e.ibgp)) {
                        FilterOutcome::Reject => continue,
                        FilterOutcome::Accept => {}
                        FilterOutcome::NoMatch => {
                            for (cidr, cs) in self.adv.get(node).into_iter().flatten() {
                                if net.is_some_and(|x| cidr.contains(&x)) {
                                    for c in cs {
                                        route.add_community(*c);
                                    }
                                }
                            }
                        }
                    }
                }
                let (new_clusters, new_path, new_originator) = if ebgp {
                    let mut p2 = Vec::with_capacity(route.as_path.len() + 1);
                    p2.push(e.local_as);
                    p2.extend(&route.as_path);
                    (Vec::new(), p2, e.to)
                } else {
                    let mut c2 = st.clusters.clone();
                    let reflected = arrival == FROM_CLIENT || arrival == FROM_NON_CLIENT;
                    if attr.is_rr && reflected {
                        c2.push(attr.cluster);
                    }
                    // The originator is the node that brought the path into iBGP.
                    let orig = if reflected { st.originator } else { node };
                    (c2, route.as_path, orig)
                };
                if !ebgp && new_originator == e.to {
                    continue;
                }
                if ebgp && !e.back_allow_local_as && new_path.contains(&e.back_local_as) {
                    continue;
                }
                if m.is_rr && new_clusters.contains(&m.cluster) {
                    continue;
                }
                // Import filter at the receiver: its BGPFilters, else `accept`. The local
                // preference (the priority) crosses iBGP sessions only.
                let mut received = RouteAttrs {
                    net,
                    from_bgp: true,
                    as_path: new_path,
                    communities: route.communities,
                    krt_metric: if ebgp { None } else { route.krt_metric },
                };
                if filtering {
                    let prog = self.programs.get(e.import_prog as usize);
                    if prog.map_or(FilterOutcome::NoMatch, |p| p.run(&mut received, e.ibgp))
                        == FilterOutcome::Reject
                    {
                        continue;
                    }
                }
                // BIRD 2's next-hop rules (bgp_use_next_hop / bgp_use_gateway).
                let new_nh = if arrival == ORIGINATED || e.next_hop == 1 {
                    node
                } else if e.next_hop == 2 || !ebgp {
                    st.next_hop
                } else {
                    node
                };
                let m_arrival = if ebgp {
                    EBGP
                } else if e.back_client {
                    FROM_CLIENT
                } else {
                    FROM_NON_CLIENT
                };
                if let Some(h) = held.get_mut(e.to) {
                    let info = PathInfo {
                        next_hop: new_nh,
                        as_path_len: received.as_path.len(),
                        interior: !ebgp,
                        priority: received.krt_metric,
                    };
                    if !h.contains(&info) {
                        h.push(info);
                    }
                }
                let state = PathState {
                    node: e.to,
                    arrival: m_arrival,
                    next_hop: new_nh,
                    as_path: received.as_path,
                    clusters: new_clusters,
                    originator: new_originator,
                    communities: received.communities,
                    krt_metric: received.krt_metric,
                };
                if !seen.contains(&state) {
                    seen.insert(state.clone());
                    queue.push_back(state);
                }
            }
        }
        held
    }
}

/// A node's prefix advertisements of `family` (node-specific over global)
/// with their communities resolved.
fn advertisements(cluster: &Cluster, node: &str, family: Family) -> Vec<(IpNet, Vec<Community>)> {
    crate::advertise::prefix_communities(cluster, node, family)
        .0
        .iter()
        .map(|p| (p.cidr, p.communities()))
        .collect()
}

/// The paths the kernel protocol merges (`merge paths on`): the best one and every path
/// equal to it in local preference, AS-path length and iBGP/eBGP (BIRD's
/// `bgp_rte_mergable`; origin, MED and IGP metric are equal for every Calico path).
fn merged(paths: &[PathInfo]) -> impl Iterator<Item = &PathInfo> {
    let best = paths.iter().map(PathInfo::rank).min();
    paths.iter().filter(move |p| Some(p.rank()) == best)
}

/// Which nodes learn the routes `origin` originates for `net`, in the adjacency's family
/// (`None`: a prefix outside every BGPFilter CIDR and prefix advertisement).
pub fn learners(
    _cluster: &Cluster,
    adj: &Adjacency<'_>,
    origin: &str,
    net: Option<&IpNet>,
) -> BTreeSet<String> {
    let Some(&o) = adj.index.get(origin) else {
        return BTreeSet::new();
    };
    adj.core
        .walk(o, net.copied())
        .iter()
        .zip(&adj.names)
        .filter(|(l, _)| !l.is_empty())
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// Learner sets and paths for every origin of one family, computed once per class of
/// structurally identical nodes and per class of prefixes.
///
/// Two nodes with the same attributes (RR flag, cluster ID, AS, prefix advertisements) and
/// the same labelled set of established neighbours are never adjacent, and swapping them is
/// an automorphism of the session graph, so the learners of one follow from the other's by
/// that swap. In the route-reflector recipe all clients form one class: a handful of walks
/// cover the cluster. Prefixes that every BGPFilter rule's CIDR condition and every prefix
/// advertisement treat alike share their walks (without filters and advertisements, all
/// prefixes do). Walks are computed on first use.
#[derive(Debug)]
pub struct Propagation {
    family: Family,
    index: HashMap<String, usize>,
    core: Core,
    /// Node index → representative index of its class.
    rep_of: Vec<usize>,
    /// (representative index, prefix signature) → the paths every node holds.
    /// (The caches make the analysis `Sync`: nodes may be planned from several threads.)
    walks: std::sync::Mutex<WalkCache>,
    /// Representative index → walk, when no prefix matters (one slot per node index).
    plain: Vec<std::sync::OnceLock<std::sync::Arc<Walk>>>,
}

impl Propagation {
    /// Prepares the analysis of `family` over `adj`.
    pub fn new(_cluster: &Cluster, adj: &Adjacency<'_>, family: Family) -> Propagation {
        type ClassKey = (bool, usize, u32, Vec<Edge>, Vec<(IpNet, Vec<Community>)>);
        let mut classes: BTreeMap<ClassKey, usize> = BTreeMap::new();
        let mut rep_of = Vec::with_capacity(adj.names.len());
        for (i, attr) in adj.core.attrs.iter().enumerate() {
            let mut labels = adj.core.out.get(i).cloned().unwrap_or_default();
            labels.sort();
            let adv = adj.core.adv.get(i).cloned().unwrap_or_default();
            let key = (attr.is_rr, attr.cluster, attr.asn, labels, adv);
            rep_of.push(*classes.entry(key).or_insert(i));
        }
        Propagation {
            family,
            index: adj
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).to_owned(), i))
                .collect(),
            core: adj.core.clone(),
            rep_of,
            walks: std::sync::Mutex::new(HashMap::new()),
            plain: (0..adj.core.attrs.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }

    /// The walk of representative `rep` for `net`.
    fn walk_of(&self, rep: usize, net: Option<&IpNet>) -> Option<WalkRef<'_>> {
        if !self.core.attrs.get(rep)?.present {
            return None;
        }
        if !self.core.prefix_sensitive() {
            // Borrowed: no reference count is touched (threads planning nodes in parallel
            // would otherwise contend on it once per route).
            let slot = self.plain.get(rep)?;
            return Some(WalkRef::Borrowed(
                slot.get_or_init(|| std::sync::Arc::new(self.core.walk(rep, None))),
            ));
        }
        let sig = self.core.signature(net);
        let key = (rep, sig);
        if let Some(w) = self.walks.lock().ok()?.get(&key) {
            return Some(WalkRef::Shared(w.clone()));
        }
        // Walked outside the lock: two threads may both walk, the first insert wins.
        let w = std::sync::Arc::new(self.core.walk(rep, net.copied()));
        Some(WalkRef::Shared(
            self.walks.lock().ok()?.entry(key).or_insert(w).clone(),
        ))
    }

    /// The paths `node` holds for `origin`'s routes to `net` (representative walk, swapped
    /// back), with next hops as node indexes.
    fn held(&self, node: &str, origin: &str, net: Option<&IpNet>) -> Option<Vec<PathInfo>> {
        let (Some(&l), Some(&o)) = (self.index.get(node), self.index.get(origin)) else {
            return None;
        };
        self.held_idx(l, o, net)
    }

    fn held_idx(&self, l: usize, o: usize, net: Option<&IpNet>) -> Option<Vec<PathInfo>> {
        if l == o {
            return None;
        }
        let rep = *self.rep_of.get(o)?;
        let walk = self.walk_of(rep, net)?;
        // Swap the origin and its representative.
        let swap = |i: usize| {
            if i == rep {
                o
            } else if i == o {
                rep
            } else {
                i
            }
        };
        let paths = walk
            .get(swap(l))?
            .iter()
            .map(|p| PathInfo {
                next_hop: swap(p.next_hop),
                ..*p
            })
            .collect();
        Some(paths)
    }

    /// Every path `node` holds for the routes `origin` originates for `net` (sorted,
    /// distinct; `None`: a prefix outside every BGPFilter CIDR and prefix advertisement).
    pub fn paths(&self, node: &str, origin: &str, net: Option<&IpNet>) -> Vec<LearnedPath> {
        let Some(paths) = self.held(node, origin, net) else {
            return Vec::new();
        };
        let mut out: Vec<LearnedPath> = paths
            .iter()
            .filter_map(|p| {
                Some(LearnedPath {
                    next_hop: (*self.core.ips.get(p.next_hop)?)?,
                    as_path_len: p.as_path_len,
                    ibgp: p.interior,
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The next hops BIRD's kernel protocol installs on `node` for `origin`'s route to `net`
    /// (`merge paths on`: the best path and the paths mergeable with it), sorted and
    /// distinct. Empty when `node` does not learn it.
    pub fn kernel_next_hops(&self, node: &str, origin: &str, net: Option<&IpNet>) -> Vec<IpAddr> {
        let (Some(&l), Some(&o)) = (self.index.get(node), self.index.get(origin)) else {
            return Vec::new();
        };
        self.kernel_next_hops_idx(l, o, net)
    }

    /// [`Propagation::kernel_next_hops`] by node index (the order of `Cluster::nodes`).
    pub(crate) fn kernel_next_hops_idx(
        &self,
        l: usize,
        o: usize,
        net: Option<&IpNet>,
    ) -> Vec<IpAddr> {
        let Some(paths) = self.held_idx(l, o, net) else {
            return Vec::new();
        };
        let set: BTreeSet<IpAddr> = merged(&paths)
            .filter_map(|p| *self.core.ips.get(p.next_hop)?)
            .collect();
        set.into_iter().collect()
    }

    /// The priority (kernel metric) of the route BIRD installs on node index `l` for
    /// origin `o`'s `net`: that of the best path, the normal priority when its path has
    /// none. `None` when `l` does not learn it.
    pub(crate) fn kernel_priority_idx(
        &self,
        l: usize,
        o: usize,
        net: Option<&IpNet>,
    ) -> Option<i64> {
        let paths = self.held_idx(l, o, net)?;
        let best = merged(&paths).next()?;
        Some(best.priority.unwrap_or(self.core.normal_priority))
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether `node` learns the route `origin` originates for `net`.
    pub fn learns(&self, node: &str, origin: &str, net: Option<&IpNet>) -> bool {
        let (Some(&l), Some(&o)) = (self.index.get(node), self.index.get(origin)) else {
            return false;
        };
        self.learns_idx(l, o, net)
    }

    /// [`Propagation::learns`] by node index (the order of `Cluster::nodes`).
    pub(crate) fn learns_idx(&self, l: usize, o: usize, net: Option<&IpNet>) -> bool {
        if l == o {
            return false;
        }
        let Some(&rep) = self.rep_of.get(o) else {
            return false;
        };
        let Some(walk) = self.walk_of(rep, net) else {
            return false;
        };
        let mapped = if l == rep { o } else { l };
        walk.get(mapped).is_some_and(|p| !p.is_empty())
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
        learners(c, &adj, origin, None).into_iter().collect()
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
                let walk = learners(&c, &adj, &x.name, None);
                for l in &c.nodes {
                    assert_eq!(
                        prop.learns(&l.name, &x.name, None),
                        walk.contains(&l.name),
                        "{} from {}",
                        l.name,
                        x.name
                    );
                }
            }
        }
    }

    fn node_as(name: &str, ip: &str, asn: u32) -> String {
        node(name, ip, "") + &format!("    asNumber: {asn}\n")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn prop(c: &Cluster) -> Propagation {
        let g = SessionGraph::new(c);
        let adj = Adjacency::new(c, &g, Family::V4);
        Propagation::new(c, &adj, Family::V4)
    }

    #[test]
    fn ebgp_member_of_a_mesh_gets_a_multipath_route() {
        let c = cluster(
            &(node("m1", "10.0.0.1", "")
                + &node("m2", "10.0.0.2", "")
                + &node_as("m3", "10.0.0.3", 65003)),
        );
        let p = prop(&c);
        // From m1 directly and from m2 (next hop rewritten to m2 over eBGP).
        assert_eq!(
            p.kernel_next_hops("m3", "m1", None),
            vec![ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(
            p.paths("m3", "m1", None),
            vec![
                LearnedPath {
                    next_hop: ip("10.0.0.1"),
                    as_path_len: 1,
                    ibgp: false
                },
                LearnedPath {
                    next_hop: ip("10.0.0.2"),
                    as_path_len: 1,
                    ibgp: false
                },
            ]
        );
        // m1 holds m3's routes over eBGP and over iBGP from m2 (next hop kept): the eBGP
        // path is preferred and the iBGP one is not mergeable with it.
        assert_eq!(p.kernel_next_hops("m1", "m3", None), vec![ip("10.0.0.3")]);
        assert_eq!(p.paths("m1", "m3", None).len(), 2);
        // m2 gets m1's routes only directly (m3's copy carries AS 64512).
        assert_eq!(p.kernel_next_hops("m2", "m1", None), vec![ip("10.0.0.1")]);
        assert!(p.kernel_next_hops("m1", "m1", None).is_empty());
    }

    #[test]
    fn reflected_routes_keep_the_origin_as_next_hop_unless_next_hop_self() {
        let base = MESH_OFF.to_owned()
            + &node("rr", "10.0.0.1", "1.1.1.1")
            + &node("b", "10.0.0.2", "")
            + &node("c", "10.0.0.3", "");
        let c = cluster(&(base.clone() + RECIPE));
        assert_eq!(
            prop(&c).kernel_next_hops("c", "b", None),
            vec![ip("10.0.0.2")]
        );
        let self_peer = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  nodeSelector: all()\n  peerSelector: has(rr)\n  nextHopMode: Self\n";
        let c = cluster(&(base + self_peer));
        let p = prop(&c);
        assert_eq!(p.kernel_next_hops("c", "b", None), vec![ip("10.0.0.1")]);
        assert_eq!(p.kernel_next_hops("rr", "b", None), vec![ip("10.0.0.2")]);
    }

    #[test]
    fn shorter_as_paths_win_over_longer_ones() {
        // a (65001) – b (65002) – c (65003) and a – c directly: c prefers the direct path.
        let peers = "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n  nodeSelector: all()\n  peerSelector: all()\n";
        let c = cluster(
            &(MESH_OFF.to_owned()
                + &node_as("a", "10.0.0.1", 65001)
                + &node_as("b", "10.0.0.2", 65002)
                + &node_as("c", "10.0.0.3", 65003)
                + peers),
        );
        let p = prop(&c);
        assert_eq!(p.kernel_next_hops("c", "a", None), vec![ip("10.0.0.1")]);
        let lens: Vec<usize> = p
            .paths("c", "a", None)
            .iter()
            .map(|x| x.as_path_len)
            .collect();
        assert_eq!(lens, vec![1, 2]);
    }

    /// Reflector rr with clients c2, c3, c4 (one /26 each, 10.244.i.0/26) and BGPFilter
    /// `f` on every session: export rejects c3's block, tags c2's block 65000:9 (accepting
    /// it past calico's export policy) and rejects tagged routes learned from peers; import
    /// rejects c4's block.
    pub(crate) fn filtered_reflector_yaml() -> String {
        let mut y = MESH_OFF.to_owned() + &node("rr", "10.0.0.1", "1.1.1.1");
        for i in 2..=4 {
            y += &node(&format!("c{i}"), &format!("10.0.0.{i}"), "");
        }
        y += "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  nodeSelector: all()\n  peerSelector: has(rr)\n  filters: [f]\n";
        y += "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: f\nspec:\n  exportV4:\n  - {action: Reject, source: RemotePeers, communities: {values: [\"65000:9\"]}}\n  - {action: Accept, matchOperator: Equal, cidr: 10.244.2.0/26, operations: [{addCommunity: {value: \"65000:9\"}}]}\n  - {action: Reject, matchOperator: Equal, cidr: 10.244.3.0/26}\n  importV4:\n  - {action: Reject, matchOperator: Equal, cidr: 10.244.4.0/26}\n";
        y
    }

    #[test]
    fn bgp_filters_decide_per_prefix() {
        let c = cluster(&filtered_reflector_yaml());
        let p = prop(&c);
        let net = |i: u8| -> IpNet {
            format!("10.244.{i}.0/26")
                .parse()
                .unwrap_or_else(|_| IpNet::from(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)))
        };
        let learners_of = |origin: &str, n: &IpNet| -> Vec<&str> {
            ["rr", "c2", "c3", "c4"]
                .into_iter()
                .filter(|l| p.learns(l, origin, Some(n)))
                .collect()
        };
        // Tagged at c2, accepted by rr, not passed on (tagged and learned from a peer).
        assert_eq!(learners_of("c2", &net(2)), vec!["rr"]);
        // Rejected on export by c3.
        assert!(learners_of("c3", &net(3)).is_empty());
        // Rejected on import by rr.
        assert!(learners_of("c4", &net(4)).is_empty());
        // A prefix no rule names: reflected as usual.
        assert_eq!(learners_of("c4", &net(9)), vec!["rr", "c2", "c3"]);
        assert_eq!(learners_of("rr", &net(1)), vec!["c2", "c3", "c4"]);
        // Outside every CIDR.
        assert_eq!(learners_of("c3", &net(7)), vec!["rr", "c2", "c4"]);
        // Without a prefix, CIDR rules never match (c2's other routes are reflected).
        assert!(p.learns("c3", "c2", None));
        assert_eq!(
            learners(
                &c,
                &Adjacency::new(&c, &SessionGraph::new(&c), Family::V4),
                "c3",
                Some(&net(3))
            ),
            BTreeSet::new()
        );
    }

    #[test]
    fn prepended_paths_lose_to_shorter_ones() {
        // a (65001) peers with b and c (65002, 65003), which both peer with d (65004); b's
        // export to d prepends two ASes, so d prefers the path via c.
        let mut y = MESH_OFF.to_owned();
        for (n, i, asn) in [
            ("a", 1, 65001),
            ("b", 2, 65002),
            ("c", 3, 65003),
            ("d", 4, 65004),
        ] {
            y += &node_as(n, &format!("10.0.0.{i}"), asn);
        }
        for (name, from, to, asn, f) in [
            ("ab", "a", "10.0.0.2", 65002, ""),
            ("ac", "a", "10.0.0.3", 65003, ""),
            ("bd", "b", "10.0.0.4", 65004, "  filters: [pre]\n"),
            ("cd", "c", "10.0.0.4", 65004, ""),
        ] {
            y += &format!(
                "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n  node: {from}\n  peerIP: {to}\n  asNumber: {asn}\n{f}"
            );
        }
        y += "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: pre\nspec:\n  exportV4:\n  - {action: Accept, source: RemotePeers, operations: [{prependASPath: {prefix: [65002, 65002]}}]}\n";
        let c = cluster(&y);
        let p = prop(&c);
        let net: IpNet = "10.244.1.0/26"
            .parse()
            .unwrap_or_else(|_| IpNet::from(ip("0.0.0.0")));
        // Without the prepend both paths have length 2 and would be merged.
        assert_eq!(
            p.kernel_next_hops("d", "a", Some(&net)),
            vec![ip("10.0.0.3")]
        );
        let lens: Vec<(IpAddr, usize)> = p
            .paths("d", "a", Some(&net))
            .iter()
            .map(|x| (x.next_hop, x.as_path_len))
            .collect();
        assert_eq!(lens, vec![(ip("10.0.0.2"), 4), (ip("10.0.0.3"), 2)]);
    }
}
