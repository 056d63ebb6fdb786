//! Synthetic clusters for the routing benchmarks.

use std::net::{IpAddr, Ipv4Addr};

use calico_model::resources::ObjectMeta;
use calico_model::resources::bgp::{BgpPeer, BgpPeerSpec};
use calico_model::resources::ipam::{AffinityState, EncapMode};
use calico_model::resources::values::IpCidr;
use calico_route::Cluster;
use calico_route::input::{Affinity, NodeInfo, PoolInfo};
use ipnet::{IpNet, Ipv4Net};

/// Encapsulation of the benchmark pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// No encapsulation (BIRD programs the routes).
    None,
    /// VXLAN Always (the dataplane programs the routes).
    Vxlan,
}

fn v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i)
}

/// Node `i`'s name.
pub fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A Node's routing view: address 10.0.x.y/16, VXLAN tunnel address in 10.200/16.
pub fn node_info(i: usize, rr: bool) -> NodeInfo {
    let idx = u32::try_from(i).unwrap_or(u32::MAX);
    let mut labels = calico_model::resources::Labels::new();
    if rr {
        labels.insert("rr".to_owned(), String::new());
    }
    NodeInfo {
        name: node_name(i),
        labels,
        ipv4: IpCidr::new(IpAddr::V4(v4(idx + 1)), 16),
        ipv6: None,
        as_number: None,
        cluster_id: if rr {
            "224.0.0.1".to_owned()
        } else {
            String::new()
        },
        ipip_tunnel: None,
        vxlan_v4: Some(IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 200, 0, 0)) + idx + 1,
        ))),
        vxlan_mac_v4: String::new(),
        vxlan_v6: None,
        vxlan_mac_v6: String::new(),
        wireguard_v4: None,
    }
}

/// `n` nodes, the first `rrs` of them route reflectors (the usual recipe when
/// `rrs > 0`), the mesh on or off, one /26 per node in a 10.64.0.0/10 pool.
pub fn scale_cluster(n: usize, rrs: usize, mesh: bool, encap: Encap) -> Cluster {
    let mut c = Cluster::default();
    c.bgp.node_to_node_mesh_enabled = Some(mesh);
    for i in 0..n {
        c.nodes.push(node_info(i, i < rrs));
        let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + u32::try_from(i).unwrap_or(0) * 64;
        if let Ok(net) = Ipv4Net::new(Ipv4Addr::from(base), 26) {
            c.affinities.push(Affinity {
                node: node_name(i),
                block: IpNet::V4(net),
                state: AffinityState::Confirmed,
            });
        }
    }
    if rrs > 0 {
        c.peers.push(BgpPeer {
            metadata: ObjectMeta {
                name: "peer-with-rrs".to_owned(),
                ..ObjectMeta::default()
            },
            spec: BgpPeerSpec {
                node_selector: "all()".to_owned(),
                peer_selector: "has(rr)".to_owned(),
                ..BgpPeerSpec::default()
            },
        });
    }
    if let Ok(net) = Ipv4Net::new(Ipv4Addr::new(10, 64, 0, 0), 10) {
        c.pools.push(PoolInfo {
            name: "pool".to_owned(),
            cidr: IpNet::V4(net),
            block_size: 26,
            ipip: EncapMode::Never,
            vxlan: if encap == Encap::Vxlan {
                EncapMode::Always
            } else {
                EncapMode::Never
            },
            disable_bgp_export: false,
            disabled: false,
        });
    }
    c.sort();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_route::kernel::{PlanOptions, plan_node};
    use calico_route::scale::count_sessions;

    #[test]
    fn small_scale_clusters_have_the_expected_sessions_and_routes() {
        let mesh = scale_cluster(50, 0, true, Encap::None);
        assert_eq!(count_sessions(&mesh), 50 * 49 / 2);
        let rr = scale_cluster(50, 3, false, Encap::None);
        assert_eq!(count_sessions(&rr), 3 * 47 + 3);
        for c in [&mesh, &rr] {
            let plan = plan_node(c, &node_name(10), &PlanOptions::default()).expect("plan");
            assert_eq!(plan.routes.len(), 50, "49 remote blocks + 1 blackhole");
            assert!(plan.unrouted.is_empty());
        }
    }
}
