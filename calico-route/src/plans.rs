//! Kernel plans of every node, kept up to date incrementally: a node joining
//! recomputes only what changes.
//!
//! [`ClusterPlans::new`] plans every node once (one [`PlanContext`] for the cluster).
//! [`ClusterPlans::apply`] takes a [`ClusterChange`] — a node joining with its blocks, or a
//! new block affinity of an existing node —, edits the [`Cluster`] accordingly and updates
//! the plans:
//!
//! - **incremental path**: the changed node is planned in full; every other node only gets
//!   the routes (and VXLAN neighbour and FDB entries) for the new blocks and endpoint,
//!   computed by the same code as [`crate::kernel::plan_node`] and merged into its sorted
//!   plan. Taken when nothing else can change: the cluster is plain iBGP (every path's next
//!   hop is its origin, so a new non-reflector node adds paths only for its own routes), the
//!   node is not a route reflector, its addresses are new (no duplicate node address, no
//!   BGPPeer `peerIP` turning into a Calico node) and the new blocks overlap no existing
//!   block and hold no existing tunnel or workload address (which would change other routes'
//!   shapes);
//! - **full path** otherwise: every plan is recomputed and compared with the previous one.
//!
//! Either way `apply` returns the nodes whose plan changed, and the plans equal what
//! [`crate::kernel::plan_node`] gives on the edited cluster (tests/plans.rs checks both
//! against full recomputation on random clusters).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::input::{Affinity, Cluster, Family, NodeInfo};
use crate::kernel::{
    KernelPlan, PlanContext, PlanError, PlanOptions, fdb_order, neighbour_order, plan_delta,
    route_key, unrouted_order,
};
use crate::sessions::parse_peer_ip;

/// A change to the cluster that [`ClusterPlans::apply`] understands.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterChange {
    /// A node joins (or, if one with that name exists, is replaced) with its block
    /// affinities (their `node` is set to the joining node's name).
    Join {
        /// The node.
        node: Box<NodeInfo>,
        /// Its blocks.
        affinities: Vec<Affinity>,
    },
    /// A new block affinity of a node.
    Affinity(Affinity),
}

/// Which way [`ClusterPlans::apply`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyPath {
    /// Only the changed node was replanned; the others got the new routes merged in.
    Incremental,
    /// Every node was replanned.
    Full,
}

/// What [`ClusterPlans::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Nodes whose plan changed, sorted by name.
    pub changed: Vec<String>,
    /// The path taken.
    pub path: ApplyPath,
}

/// The kernel plans of every node of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterPlans {
    opts: PlanOptions,
    plans: BTreeMap<String, KernelPlan>,
}

impl ClusterPlans {
    /// Plans every node of `cluster`.
    pub fn new(cluster: &Cluster, opts: PlanOptions) -> Result<ClusterPlans, PlanError> {
        let plans = plan_all(cluster, &opts)?;
        Ok(ClusterPlans { opts, plans })
    }

    /// The plan of `node`.
    pub fn plan(&self, node: &str) -> Option<&KernelPlan> {
        self.plans.get(node)
    }

    /// Every plan, by node name.
    pub fn plans(&self) -> &BTreeMap<String, KernelPlan> {
        &self.plans
    }

    /// Applies `change` to `cluster` and updates the plans (see the module documentation).
    pub fn apply(
        &mut self,
        cluster: &mut Cluster,
        change: ClusterChange,
    ) -> Result<Applied, PlanError> {
        let (origin, blocks, joined, fast) = match change {
            ClusterChange::Join { node, affinities } => {
                let name = node.name.clone();
                let affinities: Vec<Affinity> = affinities
                    .into_iter()
                    .map(|a| Affinity {
                        node: name.clone(),
                        ..a
                    })
                    .collect();
                let mut blocks: Vec<IpNet> = affinities
                    .iter()
                    .filter(|a| a.is_confirmed())
                    .map(|a| a.block)
                    .collect();
                blocks.sort();
                blocks.dedup();
                let fast = cluster.node(&name).is_none()
                    && !node.is_rr()
                    && new_addresses(cluster, &node)
                    && blocks_are_isolated(cluster, &blocks, &node);
                cluster.nodes.retain(|n| n.name != name);
                cluster.nodes.push(*node);
                cluster.affinities.extend(affinities);
                cluster.sort();
                (name, blocks, true, fast)
            }
            ClusterChange::Affinity(a) => {
                let name = a.node.clone();
                let blocks: Vec<IpNet> = if a.is_confirmed() {
                    vec![a.block]
                } else {
                    Vec::new()
                };
                let fast = cluster.node(&name).is_some()
                    && cluster.nodes.iter().all(|n| !n.is_rr() || n.name != name)
                    && cluster
                        .node(&name)
                        .is_some_and(|n| blocks_are_isolated(cluster, &blocks, n));
                cluster.affinities.push(a);
                cluster.sort();
                (name, blocks, false, fast)
            }
        };
        let ctx = PlanContext::new(cluster);
        if !(fast && ctx.is_plain_ibgp()) {
            let fresh = plan_all_with(&ctx, &self.opts)?;
            let changed = fresh
                .iter()
                .filter(|(n, p)| self.plans.get(*n) != Some(*p))
                .map(|(n, _)| n.clone())
                .collect();
            self.plans = fresh;
            return Ok(Applied {
                changed,
                path: ApplyPath::Full,
            });
        }
        let mut changed = Vec::new();
        let new_plan = ctx.plan(&origin, &self.opts)?;
        if self.plans.get(&origin) != Some(&new_plan) {
            changed.push(origin.clone());
        }
        self.plans.insert(origin.clone(), new_plan);
        let Some(remote) = cluster.node(&origin) else {
            return Err(PlanError::UnknownNode { node: origin });
        };
        for local in cluster.nodes.iter().filter(|n| n.name != origin) {
            let delta = plan_delta(&ctx, local, remote, &blocks, joined, &self.opts)?;
            let Some(plan) = self.plans.get_mut(&local.name) else {
                continue;
            };
            let mut touched = false;
            for r in delta.routes {
                let key = route_key(&r);
                match plan.routes.binary_search_by(|x| route_key(x).cmp(&key)) {
                    Ok(i) => {
                        if let Some(existing) = plan.routes.get_mut(i)
                            && r.class < existing.class
                        {
                            *existing = r;
                            touched = true;
                        }
                    }
                    Err(i) => {
                        plan.routes.insert(i, r);
                        touched = true;
                    }
                }
            }
            touched |= !(delta.neighbours.is_empty() && delta.fdb.is_empty());
            touched |= !delta.unrouted.is_empty();
            for n in delta.neighbours {
                let i = plan
                    .neighbours
                    .partition_point(|x| neighbour_order(x, &n).is_lt());
                plan.neighbours.insert(i, n);
            }
            for f in delta.fdb {
                let i = plan.fdb.partition_point(|x| fdb_order(x, &f).is_lt());
                plan.fdb.insert(i, f);
            }
            for u in delta.unrouted {
                let i = plan
                    .unrouted
                    .partition_point(|x| unrouted_order(x, &u).is_lt());
                plan.unrouted.insert(i, u);
            }
            if touched {
                changed.push(local.name.clone());
            }
        }
        changed.sort();
        Ok(Applied {
            changed,
            path: ApplyPath::Incremental,
        })
    }
}

fn plan_all(
    cluster: &Cluster,
    opts: &PlanOptions,
) -> Result<BTreeMap<String, KernelPlan>, PlanError> {
    plan_all_with(&PlanContext::new(cluster), opts)
}

fn plan_all_with(
    ctx: &PlanContext<'_>,
    opts: &PlanOptions,
) -> Result<BTreeMap<String, KernelPlan>, PlanError> {
    ctx.cluster()
        .nodes
        .iter()
        .map(|n| Ok((n.name.clone(), ctx.plan(&n.name, opts)?)))
        .collect()
}

/// The node's BGP addresses belong to no other node and to no BGPPeer `peerIP`.
fn new_addresses(cluster: &Cluster, node: &NodeInfo) -> bool {
    Family::BOTH.into_iter().all(|f| {
        let Some(ip) = node.ip(f) else {
            return true;
        };
        cluster.nodes.iter().all(|n| n.ip(f) != Some(ip))
            && cluster
                .peers
                .iter()
                .all(|p| parse_peer_ip(&p.spec.peer_ip).is_none_or(|(pip, _)| pip != ip))
    })
}

/// The blocks overlap no existing block, hold no existing tunnel or workload address, and
/// the node's own tunnel addresses lie in no existing block.
fn blocks_are_isolated(cluster: &Cluster, blocks: &[IpNet], node: &NodeInfo) -> bool {
    let overlaps = |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
    let inside = |ip: IpAddr| blocks.iter().any(|b| b.contains(&ip));
    let tunnels = |n: &NodeInfo| [n.vxlan_v4, n.vxlan_v6, n.ipip_tunnel, n.wireguard_v4];
    blocks
        .iter()
        .all(|b| cluster.affinities.iter().all(|a| !overlaps(&a.block, b)))
        && cluster
            .nodes
            .iter()
            .flat_map(tunnels)
            .flatten()
            .all(|ip| !inside(ip))
        && cluster
            .workloads
            .iter()
            .flat_map(|w| w.ips.iter())
            .all(|ip| !inside(*ip))
        && tunnels(node).into_iter().flatten().all(|ip| {
            cluster
                .affinities
                .iter()
                .all(|a| a.node == node.name || !a.block.contains(&ip))
        })
}
