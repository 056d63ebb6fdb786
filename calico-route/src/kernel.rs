//! Kernel routes, neighbour and FDB entries and devices of one node.
//!
//! [`plan_node`] computes what node L programs: local workload routes, blackholes for its
//! blocks, one route per remote block shaped by the pool's encapsulation (VXLAN, IPIP,
//! none; Always or CrossSubnet), /32 routes for borrowed addresses and remote VXLAN tunnel
//! addresses outside blocks, the VXLAN neighbour/FDB pairs, and the MTUs. [`KernelRoute`]'s
//! `Display` is the `ip route` text (`calico route plan -o text`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_model::resources::ipam::EncapMode;
use ipnet::IpNet;
use serde::Serialize;

use crate::input::{BIRD_PROTO, Cluster, FELIX_PROTO, Family, NodeInfo, PoolEncap, PoolInfo};
use crate::ownership::{Owner, Ownership};

/// Errors of [`plan_node`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The node does not exist.
    #[error("no Node named {node:?}")]
    UnknownNode {
        /// Requested name.
        node: String,
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

/// Route scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteScope {
    /// `scope link`.
    Link,
    /// `scope host`.
    Host,
}

/// One kernel route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelRoute {
    /// `blackhole` type.
    pub blackhole: bool,
    /// Destination.
    pub dst: IpNet,
    /// Gateway (the first next hop of a multipath route).
    pub via: Option<IpAddr>,
    /// Every next hop of a multipath (ECMP) route, sorted, all on `dev`; empty for a
    /// single-path route. BIRD's `merge paths on` produces these.
    pub nexthops: Vec<IpAddr>,
    /// Device.
    pub dev: Option<IfName>,
    /// Route protocol number.
    pub proto: u32,
    /// Scope (universe when `None`).
    pub scope: Option<RouteScope>,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Metric (0 = none).
    pub metric: u32,
    /// `onlink`.
    pub onlink: bool,
    /// Route MTU.
    pub mtu: Option<u32>,
    /// Class (tie-breaking).
    pub class: RouteClass,
    /// Who programs it.
    pub owner: Owner,
}

/// An interface name, stored inline (Linux names have at most 15 bytes, IFNAMSIZ − 1), so
/// that the millions of routes of a large cluster's plans share no allocation or counter.
/// Longer names (invalid for the kernel, possible in manifests) are kept on the heap.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IfName(IfNameRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum IfNameRepr {
    Inline(InlineName),
    Heap(Box<str>),
}

/// Up to 15 bytes of name and, last, the length. Aligned so that copies of routes move it
/// as whole words (a byte-aligned layout made the compiler copy it in overlapping pieces,
/// which stalled store forwarding on every route planned).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
struct InlineName([u8; 16]);

impl IfName {
    /// The name.
    pub fn new(name: &str) -> IfName {
        let b = name.as_bytes();
        if b.len() <= 15 {
            let mut bytes = [0u8; 16];
            if let Some(dst) = bytes.get_mut(..b.len()) {
                dst.copy_from_slice(b);
            }
            bytes[15] = u8::try_from(b.len()).unwrap_or(0);
            IfName(IfNameRepr::Inline(InlineName(bytes)))
        } else {
            IfName(IfNameRepr::Heap(name.into()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            IfNameRepr::Inline(InlineName(bytes)) => bytes
                .get(..usize::from(bytes[15]))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            IfNameRepr::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for IfName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for IfName {
    fn from(s: &str) -> IfName {
        IfName::new(s)
    }
}

impl PartialEq<str> for IfName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for IfName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for IfName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn proto_name(p: u32) -> Option<String> {
    match p {
        3 => None,
        2 => Some("kernel".to_owned()),
        4 => Some("static".to_owned()),
        12 => Some("bird".to_owned()),
        n => Some(n.to_string()),
    }
}

impl fmt::Display for KernelRoute {
    /// `[blackhole ]DST[ via GW][ dev IFACE][ proto P][ scope S][ src A][ metric M][ onlink][ mtu N]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.blackhole {
            f.write_str("blackhole ")?;
        }
        let host = self.dst.prefix_len() == self.dst.max_prefix_len();
        if host {
            write!(f, "{}", self.dst.addr())?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        let multipath = self.nexthops.len() > 1;
        if !multipath {
            if let Some(v) = self.via {
                write!(f, " via {v}")?;
            }
            if let Some(d) = &self.dev {
                write!(f, " dev {d}")?;
            }
        }
        if let Some(p) = proto_name(self.proto) {
            write!(f, " proto {p}")?;
        }
        match self.scope {
            Some(RouteScope::Link) => f.write_str(" scope link")?,
            Some(RouteScope::Host) => f.write_str(" scope host")?,
            None => {}
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        let metric = if self.metric == 0 && self.dst.addr().is_ipv6() {
            1024
        } else {
            self.metric
        };
        if metric != 0 {
            write!(f, " metric {metric}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        if multipath {
            // `ip route` prints the next hops of a multipath route after its attributes.
            for v in &self.nexthops {
                write!(f, " nexthop via {v}")?;
                if let Some(d) = &self.dev {
                    write!(f, " dev {d}")?;
                }
                f.write_str(" weight 1")?;
            }
        }
        Ok(())
    }
}

/// A permanent neighbour (ARP/NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    /// Address.
    pub ip: IpAddr,
    /// Link-layer address.
    pub lladdr: String,
    /// Device.
    pub dev: String,
}

/// A permanent FDB entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdbEntry {
    /// MAC.
    pub mac: String,
    /// Device.
    pub dev: String,
    /// Remote underlay address.
    pub dst: IpAddr,
}

/// A device the dataplane owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Interface name.
    pub name: String,
    /// Kind (`vxlan`, `ipip`).
    pub kind: String,
    /// Address (/32 or /128).
    pub address: IpAddr,
    /// MTU.
    pub mtu: u32,
    /// MAC (VXLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// VNI (VXLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<i64>,
    /// UDP port (VXLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Underlay local address (VXLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    /// Parent device (VXLAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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
    /// Devices.
    pub devices: Vec<Device>,
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

pub use crate::ownership::ownership;

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The VXLAN device name of a family.
pub fn vxlan_device(family: Family) -> &'static str {
    match family {
        Family::V4 => "vxlan.calico",
        Family::V6 => "vxlan-v6.calico",
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
    own: Ownership,
    mtu: Mtus,
    felix_proto: u32,
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
            blackhole: false,
            dst,
            via: None,
            nexthops: Vec::new(),
            dev: None,
            proto: match owner {
                Owner::Dataplane => self.felix_proto,
                Owner::Bird => BIRD_PROTO,
            },
            scope: None,
            src: None,
            metric: 0,
            onlink: false,
            mtu: None,
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
                r.via = Some(remote_ip);
                r.dev = Some(parent);
                r.onlink = true;
                self.add(r);
            }
            (PoolEncap::Vxlan, _) => self.vxlan_tunnel(dst, remote, fam),
            (PoolEncap::Ipip, _) if cross_same => {
                let mut r = self.base(dst, RouteClass::IpipSameSubnet, owner);
                r.via = Some(remote_ip);
                r.dev = Some(parent);
                r.onlink = true;
                self.add(r);
            }
            (PoolEncap::Ipip, _) => {
                let mut r = self.base(dst, RouteClass::IpipTunnel, owner);
                r.via = Some(remote_ip);
                r.dev = Some(self.tunl.clone());
                r.onlink = true;
                r.mtu = Some(self.mtu.ipip);
                self.add(r);
            }
            (PoolEncap::None, Owner::Bird) => {
                let hops = ctx.bird_next_hops(self.local_idx, ri, fam, remote_ip, &dst);
                let mut r = self.base(dst, RouteClass::NoEncap, Owner::Bird);
                // BIRD installs BGP routes with their priority as the metric (the normal
                // priority unless a BGPFilter's setPriority changed it).
                r.metric = ctx.bird_metric(self.local_idx, ri, fam, &dst);
                match hops {
                    Hops::None => {
                        self.unrouted.push(Unrouted {
                            dst,
                            node: remote.name.clone(),
                            reason: "not learned over BGP (see `route check`)".to_owned(),
                        });
                        return;
                    }
                    Hops::One(h) => r.via = Some(h),
                    Hops::Many(hs) => {
                        r.via = hs.first().copied();
                        r.nexthops = hs;
                    }
                }
                r.dev = Some(parent);
                self.add(r);
            }
            (PoolEncap::None, Owner::Dataplane) => {
                let mut r = self.base(dst, RouteClass::NoEncap, Owner::Dataplane);
                r.via = Some(remote_ip);
                r.dev = Some(parent);
                r.onlink = true;
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
        r.via = Some(vtep);
        r.dev = Some(self.vxlan_dev(fam));
        r.onlink = true;
        r.mtu = Some(match fam {
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
    macs: Vec<[String; 2]>,
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
    fn vtep_mac(&self, i: usize, fam: Family) -> String {
        let slot = match fam {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        match self.macs.get(i).and_then(|m| m.get(slot)) {
            Some(m) => m.clone(),
            None => self
                .cluster
                .nodes
                .get(i)
                .map(|n| n.vtep_mac(fam))
                .unwrap_or_default(),
        }
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
    let felix_proto = if fx.device_route_protocol == 3 {
        FELIX_PROTO
    } else {
        fx.device_route_protocol
    };
    Some(Planner {
        ctx,
        local,
        own: ownership(cluster, &local.name),
        mtu: mtus(cluster, &local.name, opts.host_mtu),
        felix_proto,
        routes: Vec::with_capacity(ctx.groups.len() + 8),
        unrouted: Vec::new(),
        local_idx: li,
        parent: IfName::new(&opts.parent_iface),
        tunl: IfName::new("tunl0"),
        vxlan_dev: [
            IfName::new(vxlan_device(Family::V4)),
            IfName::new(vxlan_device(Family::V6)),
        ],
    })
}

/// Whether `a` comes strictly before `b` in [`route_key`] order (a cheaper comparison for
/// the common case of two IPv4 destinations).
fn key_less(a: &KernelRoute, b: &KernelRoute) -> bool {
    match (a.dst, b.dst) {
        (IpNet::V4(x), IpNet::V4(y)) => {
            (u32::from(x.addr()), x.prefix_len(), a.metric)
                < (u32::from(y.addr()), y.prefix_len(), b.metric)
        }
        _ => route_key(a) < route_key(b),
    }
}

/// The order of [`KernelPlan::routes`]: family, destination address, prefix length, metric.
pub(crate) fn route_key(r: &KernelRoute) -> (Family, IpAddr, u8, u32) {
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
) -> PlanDelta {
    let cluster = ctx.cluster;
    let (Some(&li), Some(&ri)) = (
        ctx.node_idx.get(local.name.as_str()),
        ctx.node_idx.get(remote.name.as_str()),
    ) else {
        return PlanDelta::default();
    };
    let Some(mut p) = planner(ctx, li, opts) else {
        return PlanDelta::default();
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
            let mac = ctx.vtep_mac(ri, fam);
            d.neighbours.push(Neighbour {
                ip: vtep,
                lladdr: mac.clone(),
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
                r.dev = Some(p.vxlan_dev(fam));
                r.scope = Some(RouteScope::Link);
                r.mtu = Some(match fam {
                    Family::V4 => mtu.vxlan_v4,
                    Family::V6 => mtu.vxlan_v6,
                });
                p.add(r);
            }
        }
    }
    d.routes = p.finish();
    d.unrouted = p.unrouted;
    d
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
            r.proto = fx.device_route_protocol;
            r.dev = Some(IfName::new(&w.interface));
            r.scope = Some(RouteScope::Link);
            r.metric = u32::try_from(prio).unwrap_or(1024);
            p.add(r);
            if fam == Family::V4 && !w.mac.is_empty() {
                neighbours.push(Neighbour {
                    ip: *ip,
                    lladdr: w.mac.to_lowercase(),
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
                r.blackhole = true;
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
            devices.push(Device {
                name: dev.to_owned(),
                kind: "vxlan".to_owned(),
                address: addr,
                mtu: match fam {
                    Family::V4 => mtu.vxlan_v4,
                    Family::V6 => mtu.vxlan_v6,
                },
                mac: Some(local.vtep_mac(fam)),
                vni: Some(fx.vxlan_vni),
                port: Some(fx.vxlan_port),
                local: Some(parent_ip),
                parent: Some(opts.parent_iface.clone()),
            });
        }
        for (ri, remote) in cluster.nodes.iter().enumerate().filter(|(i, _)| *i != li) {
            let Some(vtep) = remote.vtep(fam) else {
                continue;
            };
            let mac = ctx.vtep_mac(ri, fam);
            neighbours.push(Neighbour {
                ip: vtep,
                lladdr: mac.clone(),
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
                r.dev = Some(p.vxlan_dev(fam));
                r.scope = Some(RouteScope::Link);
                r.mtu = Some(match fam {
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
        devices.push(Device {
            name: "tunl0".to_owned(),
            kind: "ipip".to_owned(),
            address: addr,
            mtu: mtu.ipip,
            mac: None,
            vni: None,
            port: None,
            local: None,
            parent: None,
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
