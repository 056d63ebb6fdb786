//! Kernel routes, neighbour and FDB entries and devices of one node.
//!
//! [`plan_node`] computes what node L programs: local workload routes, blackholes for its
//! blocks, one route per remote block shaped by the pool's encapsulation (VXLAN, IPIP,
//! none; Always or CrossSubnet), /32 routes for borrowed addresses and remote VXLAN tunnel
//! addresses outside blocks, the VXLAN neighbour/FDB pairs, and the MTUs. [`KernelRoute`]'s
//! `Display` is the `ip route` text (`calico route plan -o text`).
//!
//! The kernel objects themselves ([`Route`], [`Neighbour`], [`FdbEntry`], [`Device`], ...) are
//! the [`crate::state`] types, re-exported here; calico-dataplane programs the same types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_model::resources::ipam::EncapMode;
use ipnet::IpNet;
use serde::Serialize;

use crate::input::{BIRD_PROTO, Cluster, FELIX_PROTO, Family, NodeInfo, PoolEncap, PoolInfo};
use crate::ownership::{ClusterRouteOwners, Owner, cluster_route_owners};
pub use crate::state::{
    Device, DeviceKind, FdbEntry, IPIP_DEVICE, IfName, Mac, Neighbour, Route, RouteProtocol,
    RouteScope, VXLAN_V4_DEVICE, VXLAN_V6_DEVICE,
};
use crate::state::{MacParseError, RouteKind};

/// Errors of [`plan_node`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The node does not exist.
    #[error("no Node named {node:?}")]
    UnknownNode {
        /// Requested name.
        node: String,
    },
    /// A MAC address (a Node's VXLAN MAC, a workload's MAC) does not parse.
    #[error("{owner}: {source}")]
    Mac {
        /// Whose MAC it is (`Node/NAME`, `workload IFACE`).
        owner: String,
        /// Cause.
        #[source]
        source: MacParseError,
    },
    /// A Felix setting outside the range the kernel takes.
    #[error("node {node}: FelixConfiguration {field} {value} is out of range")]
    Range {
        /// The node.
        node: String,
        /// The field (`vxlanVNI`, `vxlanPort`).
        field: &'static str,
        /// The value.
        value: i64,
    },
}

/// Route class for tie-breaking equal (destination, metric) candidates: lower wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteClass {
    /// Local workload.
    LocalWorkload,
    /// WireGuard.
    WireGuard,
    /// VXLAN to a same-subnet node (no encapsulation).
    VxlanSameSubnet,
    /// VXLAN tunnel.
    VxlanTunnel,
    /// IPIP to a same-subnet node.
    IpipSameSubnet,
    /// IPIP tunnel.
    IpipTunnel,
    /// No encapsulation.
    NoEncap,
    /// Blackhole for a local block.
    Blackhole,
}

/// One route of a plan: the kernel [`Route`], its multipath next hops, and why and by whom
/// it is programmed. Serializes as one flat record (`blackhole`, `dst`, `via`, `nexthops`,
/// `dev`, `proto`, `scope`, `src`, `metric`, `onlink`, `mtu`, `class`, `owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// The route (its `via` is the first next hop of a multipath route).
    pub route: Route,
    /// Every next hop of a multipath (ECMP) route, sorted, all on the route's `dev`; empty
    /// for a single-path route. BIRD's `merge paths on` produces these.
    pub nexthops: Vec<IpAddr>,
    /// Class (tie-breaking).
    pub class: RouteClass,
    /// Who programs it.
    pub owner: Owner,
}

impl Serialize for KernelRoute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let r = &self.route;
        let scope = match r.scope {
            RouteScope::Universe => None,
            RouteScope::Link => Some("link"),
            RouteScope::Host => Some("host"),
        };
        let mut st = s.serialize_struct("KernelRoute", 13)?;
        st.serialize_field("blackhole", &r.is_blackhole())?;
        st.serialize_field("dst", &r.dst)?;
        st.serialize_field("via", &r.via)?;
        st.serialize_field("nexthops", &self.nexthops)?;
        st.serialize_field("dev", &r.dev)?;
        st.serialize_field("proto", &r.proto)?;
        st.serialize_field("scope", &scope)?;
        st.serialize_field("src", &r.src)?;
        st.serialize_field("metric", &r.metric)?;
        st.serialize_field("onlink", &r.onlink)?;
        st.serialize_field("mtu", &r.mtu)?;
        st.serialize_field("class", &self.class)?;
        st.serialize_field("owner", &self.owner)?;
        st.end()
    }
}

impl fmt::Display for KernelRoute {
    /// The route in `ip route` syntax; a multipath route prints `nexthop via A dev D weight 1`
    /// per next hop after its attributes (as `ip -o route` does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.route.write_with_nexthops(&self.nexthops, f)
    }
}

/// A tunnel device a plan creates, with its address (/32 or /128). Serializes as one flat
/// record (`name`, `kind`, `address`, `mtu`, and for VXLAN `mac`, `vni`, `port`, `local`,
/// `parent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelDevice {
    /// The device.
    pub device: Device,
    /// Its address.
    pub address: IpAddr,
}

impl Serialize for TunnelDevice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let d = &self.device;
        let mut st = s.serialize_struct("Device", 9)?;
        st.serialize_field("name", &d.name)?;
        st.serialize_field("kind", d.kind.name())?;
        st.serialize_field("address", &self.address)?;
        st.serialize_field("mtu", &d.mtu)?;
        if let Some(m) = &d.mac {
            st.serialize_field("mac", m)?;
        }
        if let DeviceKind::Vxlan {
            vni,
            port,
            local,
            parent,
        } = &d.kind
        {
            st.serialize_field("vni", vni)?;
            st.serialize_field("port", port)?;
            if let Some(l) = local {
                st.serialize_field("local", l)?;
            }
            if let Some(p) = parent {
                st.serialize_field("parent", p)?;
            }
        }
        st.end()
    }
}

/// Options of [`plan_node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The interface holding the node's BGP address.
    pub parent_iface: String,
    /// Host MTU assumed offline.
    pub host_mtu: u32,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            parent_iface: "eth0".to_owned(),
            host_mtu: 1500,
        }
    }
}

/// MTUs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mtus {
    /// Host MTU.
    pub host: u32,
    /// IPIP tunnel MTU.
    pub ipip: u32,
    /// VXLAN IPv4 MTU.
    pub vxlan_v4: u32,
    /// VXLAN IPv6 MTU.
    pub vxlan_v6: u32,
    /// WireGuard IPv4 MTU.
    pub wireguard_v4: u32,
    /// Pod (veth) MTU: the minimum over enabled encapsulations, else the host MTU.
    pub pod: u32,
}

/// A remote destination the node could not route, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrouted {
    /// Destination.
    pub dst: IpNet,
    /// Owning node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// What one node programs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelPlan {
    /// Node name.
    pub node: String,
    /// Routes, sorted by family, destination, prefix length.
    pub routes: Vec<KernelRoute>,
    /// Tunnel devices.
    pub devices: Vec<TunnelDevice>,
    /// Neighbour entries.
    pub neighbours: Vec<Neighbour>,
    /// FDB entries.
    pub fdb: Vec<FdbEntry>,
    /// MTUs.
    pub mtu: Mtus,
    /// Remote destinations left without a route.
    pub unrouted: Vec<Unrouted>,
}

impl KernelPlan {
    /// The `-o text` form: one route per line.
    pub fn to_text(&self) -> String {
        self.routes.iter().map(|r| format!("{r}\n")).collect()
    }
}

fn sub(host: u32, over: u32) -> u32 {
    host.saturating_sub(over)
}

fn configured(v: i64, default: u32) -> u32 {
    if v > 0 {
        u32::try_from(v).unwrap_or(default)
    } else {
        default
    }
}

/// The MTUs of a node.
pub fn mtus(cluster: &Cluster, node: &str, host: u32) -> Mtus {
    let fx = cluster.felix_for(node);
    let ipip = configured(fx.ipip_mtu, sub(host, 20));
    let vxlan_v4 = configured(fx.vxlan_mtu, sub(host, 50));
    let vxlan_v6 = configured(fx.vxlan_mtu_v6, sub(host, 70));
    let wireguard_v4 = configured(fx.wireguard_mtu, sub(host, 60));
    let used = |encap: PoolEncap, fam: Family| {
        cluster
            .pools
            .iter()
            .any(|p| !p.disabled && p.encap() == encap && p.family() == fam)
    };
    let mut pod = host;
    if used(PoolEncap::Ipip, Family::V4) {
        pod = pod.min(ipip);
    }
    if used(PoolEncap::Vxlan, Family::V4) {
        pod = pod.min(vxlan_v4);
    }
    if used(PoolEncap::Vxlan, Family::V6) {
        pod = pod.min(vxlan_v6);
    }
    if fx.wireguard_enabled {
        pod = pod.min(wireguard_v4);
    }
    Mtus {
        host,
        ipip,
        vxlan_v4,
        vxlan_v6,
        wireguard_v4,
        pod,
    }
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The VXLAN device name of a family.
pub fn vxlan_device(family: Family) -> &'static str {
    match family {
        Family::V4 => VXLAN_V4_DEVICE,
        Family::V6 => VXLAN_V6_DEVICE,
    }
}

/// Whether `remote`'s BGP address lies in `local`'s BGP subnet (the CrossSubnet test: the
/// local prefix contains the remote address).
pub fn same_subnet(local: &NodeInfo, remote: &NodeInfo, family: Family) -> bool {
    match (local.cidr(family), remote.ip(family)) {
        (Some(l), Some(r)) => !l.is_single_address() && l.contains(r),
        _ => false,
    }
}

struct Planner<'a> {
    ctx: &'a PlanContext<'a>,
    local: &'a NodeInfo,
    own: ClusterRouteOwners,
    mtu: Mtus,
    felix_proto: RouteProtocol,
    /// Candidate routes in production order; [`Planner::finish`] keeps, per (destination,
    /// metric), the lowest class (the first of equal classes).
    routes: Vec<KernelRoute>,
    unrouted: Vec<Unrouted>,
    /// Index of the local node in `Cluster::nodes`.
    local_idx: usize,
    parent: IfName,
    tunl: IfName,
    vxlan_dev: [IfName; 2],
}

impl Planner<'_> {
    fn add(&mut self, r: KernelRoute) {
        self.routes.push(r);
    }

    /// The routes in [`route_key`] order, one per (destination, metric): the lowest class,
    /// the first produced among equal classes.
    fn finish(&mut self) -> Vec<KernelRoute> {
        let mut routes = std::mem::take(&mut self.routes);
        // Blocks are produced in address order already: usually the routes are strictly
        // increasing by key (sorted, no duplicate), which one pass confirms.
        if routes.windows(2).all(|w| match w {
            [a, b] => key_less(a, b),
            _ => true,
        }) {
            return routes;
        }
        if !routes.is_sorted_by_key(|a| (route_key(a), a.class)) {
            routes.sort_by_key(|a| (route_key(a), a.class));
        }
        routes.dedup_by(|later, first| route_key(later) == route_key(first));
        routes
    }

    fn vxlan_dev(&self, fam: Family) -> IfName {
        match fam {
            Family::V4 => self.vxlan_dev[0].clone(),
            Family::V6 => self.vxlan_dev[1].clone(),
        }
    }

    fn base(&self, dst: IpNet, class: RouteClass, owner: Owner) -> KernelRoute {
        KernelRoute {
            route: Route {
                proto: match owner {
                    Owner::Dataplane => self.felix_proto,
                    Owner::Bird => BIRD_PROTO,
                },
                ..Route::new(dst)
            },
            nexthops: Vec::new(),
            class,
            owner,
        }
    }

    /// A route toward node `ri` (index in `Cluster::nodes`) for `dst` in `pool` (remote
    /// block or borrowed /32).
    fn remote_route(&mut self, dst: IpNet, pool: &PoolInfo, ri: usize) {
        let ctx = self.ctx;
        let Some(remote) = ctx.cluster.nodes.get(ri) else {
            return;
        };
        let fam = Family::of(dst.addr());
        let encap = pool.encap();
        let Some(owner) = self.own.owner(encap) else {
            self.unrouted.push(Unrouted {
                dst,
                node: remote.name.clone(),
                reason: format!("no component owns {encap:?} pool routes"),
            });
            return;
        };
        let parent = self.parent.clone();
        let cross_same =
            pool.mode() == EncapMode::CrossSubnet && same_subnet(self.local, remote, fam);
        let Some(remote_ip) = remote.ip(fam) else {
            if encap != PoolEncap::Vxlan || cross_same {
                self.unrouted.push(Unrouted {
                    dst,
                    node: remote.name.clone(),
                    reason: format!("{} has no BGP {} address", remote.name, fam.label()),
                });
                return;
            }
            // VXLAN Always does not need the BGP address of the remote for the route.
            return self.vxlan_tunnel(dst, remote, fam);
        };
        match (encap, owner) {
            (PoolEncap::Vxlan, _) if cross_same => {
                let mut r = self.base(dst, RouteClass::VxlanSameSubnet, Owner::Dataplane);
                r.route.via = Some(remote_ip);
                r.route.dev = Some(parent);
                r.route.onlink = true;
                self.add(r);
            }
            (PoolEncap::Vxlan, _) => self.vxlan_tunnel(dst, remote, fam),
            (PoolEncap::Ipip, _) if cross_same => {
                let mut r = self.base(dst, RouteClass::IpipSameSubnet, owner);
                r.route.via = Some(remote_ip);
                r.route.dev = Some(parent);
                r.route.onlink = true;
                self.add(r);
            }
            (PoolEncap::Ipip, _) => {
                let mut r = self.base(dst, RouteClass::IpipTunnel, owner);
                r.route.via = Some(remote_ip);
                r.route.dev = Some(self.tunl.clone());
                r.route.onlink = true;
                r.route.mtu = Some(self.mtu.ipip);
                self.add(r);
            }
            (PoolEncap::None, Owner::Bird) => {
                let hops = ctx.bird_next_hops(self.local_idx, ri, fam, remote_ip, &dst);
                let mut r = self.base(dst, RouteClass::NoEncap, Owner::Bird);
                // BIRD installs BGP routes with their priority as the metric (the normal
                // priority unless a BGPFilter's setPriority changed it).
                r.route.metric = ctx.bird_metric(self.local_idx, ri, fam, &dst);
                match hops {
                    Hops::None => {
                        self.unrouted.push(Unrouted {
                            dst,
                            node: remote.name.clone(),
                            reason: "not learned over BGP (see `route check`)".to_owned(),
                        });
                        return;
                    }
                    Hops::One(h) => r.route.via = Some(h),
                    Hops::Many(hs) => {
                        r.route.via = hs.first().copied();
                        r.nexthops = hs;
                    }
                }
                r.route.dev = Some(parent);
                self.add(r);
            }
            (PoolEncap::None, Owner::Dataplane) => {
                let mut r = self.base(dst, RouteClass::NoEncap, Owner::Dataplane);
                r.route.via = Some(remote_ip);
                r.route.dev = Some(parent);
                r.route.onlink = true;
                self.add(r);
            }
        }
    }

    fn vxlan_tunnel(&mut self, dst: IpNet, remote: &NodeInfo, fam: Family) {
        let Some(vtep) = remote.vtep(fam) else {
            self.unrouted.push(Unrouted {
                dst,
                node: remote.name.clone(),
                reason: format!(
                    "{} has no {} VXLAN tunnel address",
                    remote.name,
                    fam.label()
                ),
            });
            return;
        };
        let mut r = self.base(dst, RouteClass::VxlanTunnel, Owner::Dataplane);
        r.route.via = Some(vtep);
        r.route.dev = Some(self.vxlan_dev(fam));
        r.route.onlink = true;
        r.route.mtu = Some(match fam {
            Family::V4 => self.mtu.vxlan_v4,
            Family::V6 => self.mtu.vxlan_v6,
        });
        self.add(r);
    }
}

fn vxlan_in_use(cluster: &Cluster, fam: Family) -> bool {
    cluster
        .pools
        .iter()
        .any(|p| !p.disabled && p.encap() == PoolEncap::Vxlan && p.family() == fam)
}

/// The next hops of a BIRD route.
enum Hops {
    /// Not learned.
    None,
    /// One next hop.
    One(IpAddr),
    /// Several (merged paths), sorted.
    Many(Vec<IpAddr>),
}

/// What planning shares across the nodes of one cluster: the block index, whether every
/// BGP path's next hop is its origin, and (built on first use) the propagation analysis
/// per family. Build it once to plan many nodes.
pub struct PlanContext<'a> {
    cluster: &'a Cluster,
    index: crate::input::BlockIndex<'a>,
    /// Every session between Calico nodes is iBGP with the default next-hop handling, so
    /// every path a node holds has the origin's address as next hop.
    plain_ibgp: bool,
    /// Some BGPFilter rule sets a priority (`setPriority`), so route metrics can differ
    /// from the normal priority.
    priorities_set: bool,
    props: std::sync::OnceLock<BTreeMap<Family, crate::propagation::Propagation>>,
    /// Node name → index in `Cluster::nodes`.
    node_idx: std::collections::HashMap<&'a str, usize>,
    /// Confirmed affinities grouped by block, in block order.
    groups: Vec<BlockGroup<'a>>,
    /// VXLAN MACs per node index (IPv4, IPv6), when a VXLAN pool exists.
    macs: Vec<[Result<Mac, MacParseError>; 2]>,
}

/// The confirmed affinities of one block.
#[derive(Debug)]
struct BlockGroup<'a> {
    block: IpNet,
    /// Index of the block's pool in `Cluster::pools`.
    pool: Option<usize>,
    /// Owners in affinity order: name and node index (`None`: no such Node).
    owners: Vec<(&'a str, Option<usize>)>,
}

impl fmt::Debug for PlanContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanContext")
            .field("plain_ibgp", &self.plain_ibgp)
            .field("priorities_set", &self.priorities_set)
            .finish_non_exhaustive()
    }
}

impl<'a> PlanContext<'a> {
    /// Prepares planning for `cluster`.
    pub fn new(cluster: &'a Cluster) -> PlanContext<'a> {
        let asn = cluster.global_as();
        let same_as = cluster.nodes.iter().all(|n| cluster.node_as(n) == asn);
        let plain_ibgp = same_as && {
            let exp = crate::sessions::PeerExpansion::new(cluster);
            exp.global
                .iter()
                .chain(exp.by_node.values().flatten())
                .filter(|e| e.peer_node.is_some())
                .all(|e| {
                    e.as_number == asn
                        && e.options.local_as.is_none_or(|l| l == asn)
                        && e.options.next_hop_mode
                            != Some(calico_model::resources::bgp::NextHopMode::SelfHop)
                })
        };
        let priorities_set = cluster.filters.values().any(|f| {
            f.import_v4
                .iter()
                .chain(&f.export_v4)
                .chain(&f.import_v6)
                .chain(&f.export_v6)
                .any(|r| r.operations.iter().any(|o| o.set_priority.is_some()))
        });
        let node_idx: std::collections::HashMap<&str, usize> = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut groups: Vec<BlockGroup<'a>> = Vec::new();
        for a in cluster.affinities.iter().filter(|a| a.is_confirmed()) {
            let owner = (a.node.as_str(), node_idx.get(a.node.as_str()).copied());
            match groups.last_mut() {
                Some(g) if g.block == a.block => g.owners.push(owner),
                _ => groups.push(BlockGroup {
                    block: a.block,
                    pool: cluster
                        .pools
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.cidr.contains(&a.block))
                        .max_by_key(|(_, p)| p.cidr.prefix_len())
                        .map(|(i, _)| i),
                    owners: vec![owner],
                }),
            }
        }
        let macs = if Family::BOTH.into_iter().any(|f| vxlan_in_use(cluster, f)) {
            cluster
                .nodes
                .iter()
                .map(|n| [n.vtep_mac(Family::V4), n.vtep_mac(Family::V6)])
                .collect()
        } else {
            Vec::new()
        };
        PlanContext {
            cluster,
            index: crate::input::BlockIndex::new(cluster),
            plain_ibgp,
            priorities_set,
            props: std::sync::OnceLock::new(),
            node_idx,
            groups,
            macs,
        }
    }

    /// The VXLAN MAC of node index `i`.
    fn vtep_mac(&self, i: usize, fam: Family) -> Result<Mac, PlanError> {
        let slot = match fam {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        let node = self.cluster.nodes.get(i);
        let mac = match self.macs.get(i).and_then(|m| m.get(slot)) {
            Some(m) => m.clone(),
            None => node.map_or(Ok(Mac::default()), |n| n.vtep_mac(fam)),
        };
        mac.map_err(|source| PlanError::Mac {
            owner: format!("Node/{}", node.map_or("", |n| n.name.as_str())),
            source,
        })
    }

    /// Whether every session between Calico nodes is iBGP with the default next-hop
    /// handling (every BGP path's next hop is then its origin).
    pub fn is_plain_ibgp(&self) -> bool {
        self.plain_ibgp
    }

    /// The cluster.
    pub fn cluster(&self) -> &'a Cluster {
        self.cluster
    }

    fn propagation(&self, fam: Family) -> Option<&crate::propagation::Propagation> {
        self.props
            .get_or_init(|| {
                let graph = crate::graph::SessionGraph::new(self.cluster);
                Family::BOTH
                    .into_iter()
                    .map(|f| {
                        let adj = crate::propagation::Adjacency::new(self.cluster, &graph, f);
                        (
                            f,
                            crate::propagation::Propagation::new(self.cluster, &adj, f),
                        )
                    })
                    .collect()
            })
            .get(&fam)
    }

    /// The next hops of the route BIRD installs on `local` for what `origin` originates in
    /// `fam` (empty: not learned). Mesh members of a plain-iBGP cluster learn each other's
    /// routes directly with the origin as next hop; otherwise the propagation analysis
    /// answers (eBGP next-hop rewriting and multipath included).
    /// The metric BIRD installs `oi`'s route to `dst` with on `li`: the priority of the best
    /// path (a BGPFilter's `setPriority` can change it), else the normal priority.
    fn bird_metric(&self, li: usize, oi: usize, fam: Family, dst: &IpNet) -> u32 {
        let normal = crate::input::normal_priority(self.cluster, fam);
        let prio = if !self.priorities_set {
            normal
        } else {
            self.propagation(fam)
                .and_then(|p| p.kernel_priority_idx(li, oi, Some(dst)))
                .unwrap_or(normal)
        };
        u32::try_from(prio).unwrap_or(1024)
    }

    fn bird_next_hops(
        &self,
        li: usize,
        oi: usize,
        fam: Family,
        origin_ip: IpAddr,
        dst: &IpNet,
    ) -> Hops {
        let (Some(local), Some(origin)) = (self.cluster.nodes.get(li), self.cluster.nodes.get(oi))
        else {
            return Hops::None;
        };
        let mesh_member =
            |n: &NodeInfo| self.cluster.mesh_enabled() && !n.is_rr() && n.ip(fam).is_some();
        if self.plain_ibgp
            && mesh_member(local)
            && mesh_member(origin)
            && origin.ip(fam) != local.ip(fam)
        {
            return Hops::One(origin_ip);
        }
        let Some(prop) = self.propagation(fam) else {
            return Hops::None;
        };
        if self.plain_ibgp {
            if prop.learns_idx(li, oi, Some(dst)) {
                Hops::One(origin_ip)
            } else {
                Hops::None
            }
        } else {
            let mut hops = prop.kernel_next_hops_idx(li, oi, Some(dst));
            match hops.len() {
                0 => Hops::None,
                1 => hops.pop().map_or(Hops::None, Hops::One),
                _ => Hops::Many(hops),
            }
        }
    }

    /// Plans node `node`'s kernel state (see [`plan_node`]).
    pub fn plan(&self, node: &str, opts: &PlanOptions) -> Result<KernelPlan, PlanError> {
        plan_with(self, node, opts)
    }
}

/// A planner for the node at index `li`.
fn planner<'a>(ctx: &'a PlanContext<'a>, li: usize, opts: &'a PlanOptions) -> Option<Planner<'a>> {
    let cluster = ctx.cluster;
    let local = cluster.nodes.get(li)?;
    let fx = cluster.felix_for(&local.name);
    let felix_proto = if fx.device_route_protocol == RouteProtocol::BOOT {
        FELIX_PROTO
    } else {
        fx.device_route_protocol
    };
    Some(Planner {
        ctx,
        local,
        own: cluster_route_owners(cluster, &local.name),
        mtu: mtus(cluster, &local.name, opts.host_mtu),
        felix_proto,
        routes: Vec::with_capacity(ctx.groups.len() + 8),
        unrouted: Vec::new(),
        local_idx: li,
        parent: IfName::new(&opts.parent_iface),
        tunl: IfName::new(IPIP_DEVICE),
        vxlan_dev: [
            IfName::new(vxlan_device(Family::V4)),
            IfName::new(vxlan_device(Family::V6)),
        ],
    })
}

/// Whether `a` comes strictly before `b` in [`route_key`] order (a cheaper comparison for
/// the common case of two IPv4 destinations).
fn key_less(a: &KernelRoute, b: &KernelRoute) -> bool {
    match (a.route.dst, b.route.dst) {
        (IpNet::V4(x), IpNet::V4(y)) => {
            (u32::from(x.addr()), x.prefix_len(), a.route.metric)
                < (u32::from(y.addr()), y.prefix_len(), b.route.metric)
        }
        _ => route_key(a) < route_key(b),
    }
}

/// The order of [`KernelPlan::routes`]: family, destination address, prefix length, metric.
pub(crate) fn route_key(r: &KernelRoute) -> (Family, IpAddr, u8, u32) {
    let r = &r.route;
    (
        Family::of(r.dst.addr()),
        r.dst.addr(),
        r.dst.prefix_len(),
        r.metric,
    )
}

pub(crate) fn neighbour_order(a: &Neighbour, b: &Neighbour) -> std::cmp::Ordering {
    (&a.dev, a.ip).cmp(&(&b.dev, b.ip))
}

pub(crate) fn fdb_order(a: &FdbEntry, b: &FdbEntry) -> std::cmp::Ordering {
    (&a.dev, a.dst, &a.mac).cmp(&(&b.dev, b.dst, &b.mac))
}

pub(crate) fn unrouted_order(a: &Unrouted, b: &Unrouted) -> std::cmp::Ordering {
    (a.dst.addr(), a.dst.prefix_len(), &a.node, &a.reason).cmp(&(
        b.dst.addr(),
        b.dst.prefix_len(),
        &b.node,
        &b.reason,
    ))
}

/// What one remote node's new blocks (and, when it just joined, its VXLAN tunnel endpoint)
/// add to another node's plan.
#[derive(Debug, Default)]
pub(crate) struct PlanDelta {
    pub(crate) routes: Vec<KernelRoute>,
    pub(crate) neighbours: Vec<Neighbour>,
    pub(crate) fdb: Vec<FdbEntry>,
    pub(crate) unrouted: Vec<Unrouted>,
}

/// The routes and L2 entries node `local` gains from `remote`'s `blocks` (confirmed, not
/// overlapping any other block) and, with `joined`, from `remote`'s VXLAN endpoints, exactly
/// as [`plan_node`] computes them.
pub(crate) fn plan_delta(
    ctx: &PlanContext<'_>,
    local: &NodeInfo,
    remote: &NodeInfo,
    blocks: &[IpNet],
    joined: bool,
    opts: &PlanOptions,
) -> Result<PlanDelta, PlanError> {
    let cluster = ctx.cluster;
    let (Some(&li), Some(&ri)) = (
        ctx.node_idx.get(local.name.as_str()),
        ctx.node_idx.get(remote.name.as_str()),
    ) else {
        return Ok(PlanDelta::default());
    };
    let Some(mut p) = planner(ctx, li, opts) else {
        return Ok(PlanDelta::default());
    };
    let mtu = p.mtu;
    for b in blocks {
        if let Some(pool) = cluster.pool_of(b) {
            p.remote_route(*b, pool, ri);
        }
    }
    let mut d = PlanDelta::default();
    if joined {
        for fam in Family::BOTH {
            if !vxlan_in_use(cluster, fam) {
                continue;
            }
            let Some(vtep) = remote.vtep(fam) else {
                continue;
            };
            let dev = vxlan_device(fam);
            let mac = ctx.vtep_mac(ri, fam)?;
            d.neighbours.push(Neighbour {
                ip: vtep,
                mac,
                dev: dev.to_owned(),
            });
            if let Some(dst) = remote.ip(fam) {
                d.fdb.push(FdbEntry {
                    mac,
                    dev: dev.to_owned(),
                    dst,
                });
            }
            if ctx.index.owner(vtep).is_none_or(|a| a.node != remote.name) {
                let mut r = p.base(host_net(vtep), RouteClass::VxlanTunnel, Owner::Dataplane);
                r.route.dev = Some(p.vxlan_dev(fam));
                r.route.scope = RouteScope::Link;
                r.route.mtu = Some(match fam {
                    Family::V4 => mtu.vxlan_v4,
                    Family::V6 => mtu.vxlan_v6,
                });
                p.add(r);
            }
        }
    }
    d.routes = p.finish();
    d.unrouted = p.unrouted;
    Ok(d)
}

/// Plans node `node`'s kernel state. To plan many nodes of one cluster, build a
/// [`PlanContext`] once and call [`PlanContext::plan`].
pub fn plan_node(
    cluster: &Cluster,
    node: &str,
    opts: &PlanOptions,
) -> Result<KernelPlan, PlanError> {
    PlanContext::new(cluster).plan(node, opts)
}

fn plan_with(
    ctx: &PlanContext<'_>,
    node: &str,
    opts: &PlanOptions,
) -> Result<KernelPlan, PlanError> {
    let cluster = ctx.cluster;
    let unknown = || PlanError::UnknownNode {
        node: node.to_owned(),
    };
    let li = *ctx.node_idx.get(node).ok_or_else(unknown)?;
    let mut p = planner(ctx, li, opts).ok_or_else(unknown)?;
    let local = p.local;
    let mtu = p.mtu;
    let fx = cluster.felix_for(node);
    let mut neighbours = Vec::new();
    let mut fdb = Vec::new();
    // Local workloads.
    for w in cluster.workloads.iter().filter(|w| w.node == node) {
        for ip in &w.ips {
            let fam = Family::of(*ip);
            let prio = match fam {
                Family::V4 => fx.normal_priority.0,
                Family::V6 => fx.normal_priority.1,
            };
            let mut r = p.base(host_net(*ip), RouteClass::LocalWorkload, Owner::Dataplane);
            r.route.proto = fx.device_route_protocol;
            r.route.dev = Some(IfName::new(&w.interface));
            r.route.scope = RouteScope::Link;
            r.route.metric = u32::try_from(prio).unwrap_or(1024);
            p.add(r);
            if fam == Family::V4 && !w.mac.is_empty() {
                let mac = w.mac.parse().map_err(|source| PlanError::Mac {
                    owner: format!("workload {}", w.interface),
                    source,
                })?;
                neighbours.push(Neighbour {
                    ip: *ip,
                    mac,
                    dev: w.interface.clone(),
                });
            }
        }
    }
    let index = &ctx.index;
    // Blocks: local blackholes and remote routes. Duplicate affinities: the first owner
    // (by name) is routed; `route check` flags it.
    for g in &ctx.groups {
        let Some(pool) = g.pool.and_then(|i| cluster.pools.get(i)) else {
            continue;
        };
        if g.owners.iter().any(|o| o.1 == Some(li)) {
            if g.block.prefix_len() != g.block.max_prefix_len()
                && let Some(owner) = p.own.owner(pool.encap())
            {
                let mut r = p.base(g.block, RouteClass::Blackhole, owner);
                r.route.kind = RouteKind::Blackhole;
                p.add(r);
            }
            continue;
        }
        match g.owners.first() {
            Some((_, Some(ri))) => p.remote_route(g.block, pool, *ri),
            Some((name, None)) => p.unrouted.push(Unrouted {
                dst: g.block,
                node: (*name).to_owned(),
                reason: format!("affine node {name} does not exist"),
            }),
            None => {}
        }
    }
    // Borrowed workload addresses on other nodes.
    for w in cluster.workloads.iter().filter(|w| w.node != node) {
        for ip in &w.ips {
            let owner_node = index.owner(*ip).map(|a| a.node.as_str());
            if owner_node == Some(w.node.as_str()) {
                continue;
            }
            let (Some(pool), Some(ri)) =
                (cluster.pool_of_ip(*ip), ctx.node_idx.get(w.node.as_str()))
            else {
                continue;
            };
            p.remote_route(host_net(*ip), pool, *ri);
        }
    }
    // VXLAN: remote tunnel addresses outside their node's blocks, neighbours, FDB.
    let mut devices = Vec::new();
    for fam in Family::BOTH {
        if !vxlan_in_use(cluster, fam) {
            continue;
        }
        let dev = vxlan_device(fam);
        if let (Some(addr), Some(parent_ip)) = (local.vtep(fam), local.ip(fam)) {
            let range = |field, value: i64| PlanError::Range {
                node: node.to_owned(),
                field,
                value,
            };
            devices.push(TunnelDevice {
                device: Device {
                    name: dev.to_owned(),
                    kind: DeviceKind::Vxlan {
                        vni: u32::try_from(fx.vxlan_vni)
                            .map_err(|_| range("vxlanVNI", fx.vxlan_vni))?,
                        port: u16::try_from(fx.vxlan_port)
                            .map_err(|_| range("vxlanPort", fx.vxlan_port))?,
                        local: Some(parent_ip),
                        parent: Some(opts.parent_iface.clone()),
                    },
                    mtu: match fam {
                        Family::V4 => mtu.vxlan_v4,
                        Family::V6 => mtu.vxlan_v6,
                    },
                    mac: Some(ctx.vtep_mac(li, fam)?),
                },
                address: addr,
            });
        }
        for (ri, remote) in cluster.nodes.iter().enumerate().filter(|(i, _)| *i != li) {
            let Some(vtep) = remote.vtep(fam) else {
                continue;
            };
            let mac = ctx.vtep_mac(ri, fam)?;
            neighbours.push(Neighbour {
                ip: vtep,
                mac,
                dev: dev.to_owned(),
            });
            if let Some(dst) = remote.ip(fam) {
                fdb.push(FdbEntry {
                    mac,
                    dev: dev.to_owned(),
                    dst,
                });
            }
            let in_own_block = index.owner(vtep).is_some_and(|a| a.node == remote.name);
            if !in_own_block {
                let mut r = p.base(host_net(vtep), RouteClass::VxlanTunnel, Owner::Dataplane);
                r.route.dev = Some(p.vxlan_dev(fam));
                r.route.scope = RouteScope::Link;
                r.route.mtu = Some(match fam {
                    Family::V4 => mtu.vxlan_v4,
                    Family::V6 => mtu.vxlan_v6,
                });
                p.add(r);
            }
        }
    }
    let ipip_in_use = cluster
        .pools
        .iter()
        .any(|pl| !pl.disabled && pl.encap() == PoolEncap::Ipip);
    if ipip_in_use && let Some(addr) = local.ipip_tunnel {
        devices.push(TunnelDevice {
            device: Device {
                name: IPIP_DEVICE.to_owned(),
                kind: DeviceKind::Ipip,
                mtu: mtu.ipip,
                mac: None,
            },
            address: addr,
        });
    }
    let routes = p.finish();
    neighbours.sort_by(neighbour_order);
    fdb.sort_by(fdb_order);
    let mut unrouted = p.unrouted;
    unrouted.sort_by(unrouted_order);
    Ok(KernelPlan {
        node: node.to_owned(),
        routes,
        devices,
        neighbours,
        fdb,
        mtu,
        unrouted,
    })
}
