//! What a node advertises besides its blocks: the communities it attaches to prefixes, and
//! Service addresses (whole ranges, and single Service addresses).
//!
//! **Communities.** A node uses the `prefixAdvertisements` of its own BGPConfiguration
//! (`node.<name>`) when that lists any, resolving community names against that
//! configuration's `communities`; otherwise the `default` configuration's, resolved against
//! the `default` communities. A literal `a:b` or `a:b:c` is used as is; a name nothing
//! defines is dropped and reported. Each prefix's communities are distinct and sorted as
//! text.
//!
//! **Service ranges.** Every node advertises the `serviceClusterIPs`,
//! `serviceExternalIPs` and `serviceLoadBalancerIPs` ranges of the `default`
//! BGPConfiguration, unless it is labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers=true`. Every node, excluded or
//! not, keeps routes inside those ranges out of its kernel (they are answered by the
//! service proxy, never routed to another node), and a route reflector, excluded or not,
//! passes on its clients' routes inside the external and LoadBalancer ranges.
//!
//! **Single Service addresses.** A node that is not excluded also advertises /32 (/128)
//! routes for a Service of type ClusterIP, NodePort or LoadBalancer with a cluster IP
//! (not headless) and at least one EndpointSlice (label `kubernetes.io/service-name`)
//! when
//!
//! - `externalTrafficPolicy: Local` and one of those slices (of an address type the
//!   Service has) has an endpoint whose `nodeName` is this node — whatever its readiness —
//!   or
//! - `externalTrafficPolicy: Cluster` and the Service has an external IP, or (type
//!   LoadBalancer) a LoadBalancer address, that a single-address (/32, /128) entry of the
//!   corresponding range list allows.
//!
//! The addresses are the Service's cluster IPs (only when `serviceClusterIPs` is
//! configured), its external IPs inside `serviceExternalIPs`, and its
//! `status.loadBalancer.ingress` addresses inside `serviceLoadBalancerIPs`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_model::resources::bgp::{BgpConfigurationSpec, ServiceCidr};
use calico_model::resources::k8s_services::{Service, ServiceType, TrafficPolicy};
use ipnet::IpNet;
use serde::Serialize;

use crate::filters::Community;
use crate::input::{Cluster, Family, NodeInfo};

/// A prefix advertisement resolved for one node and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixCommunities {
    /// The prefix (and everything inside it).
    pub cidr: IpNet,
    /// Community values, distinct, sorted as text.
    pub values: Vec<String>,
}

impl PrefixCommunities {
    /// The values as communities.
    pub fn communities(&self) -> Vec<Community> {
        self.values
            .iter()
            .filter_map(|v| Community::parse(v))
            .collect()
    }
}

/// A community a prefix advertisement names that nothing defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCommunity {
    /// The advertisement's CIDR.
    pub cidr: IpNet,
    /// The name as written.
    pub community: String,
    /// The BGPConfiguration that holds the advertisement.
    pub config: String,
}

fn is_literal(value: &str) -> bool {
    let parts: Vec<&str> = value.split(':').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The prefix advertisements node `node` uses in `family`, with the names it could not
/// resolve.
pub fn prefix_communities(
    cluster: &Cluster,
    node: &str,
    family: Family,
) -> (Vec<PrefixCommunities>, Vec<UnknownCommunity>) {
    let (spec, config): (&BgpConfigurationSpec, String) = match cluster.node_bgp.get(node) {
        Some(b) if !b.prefix_advertisements.is_empty() => (b, format!("node.{node}")),
        _ => (&cluster.bgp, "default".to_owned()),
    };
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for adv in &spec.prefix_advertisements {
        let cidr = adv.cidr.network();
        if Family::of(cidr.addr()) != family {
            continue;
        }
        let mut values = BTreeSet::new();
        for c in &adv.communities {
            if is_literal(c) {
                values.insert(c.clone());
            } else if let Some(def) = spec.communities.iter().find(|d| &d.name == c) {
                values.insert(def.value.clone());
            } else {
                unknown.push(UnknownCommunity {
                    cidr,
                    community: c.clone(),
                    config: config.clone(),
                });
            }
        }
        let values: Vec<String> = values
            .into_iter()
            .filter(|v| Community::parse(v).is_some())
            .collect();
        if !values.is_empty() {
            out.push(PrefixCommunities { cidr, values });
        }
    }
    (out, unknown)
}

/// The Service addresses one node advertises in one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAdvertisement {
    /// `serviceClusterIPs` ranges advertised (empty on an excluded node).
    pub cluster_ranges: Vec<IpNet>,
    /// `serviceExternalIPs` ranges advertised (empty on an excluded node).
    pub external_ranges: Vec<IpNet>,
    /// `serviceLoadBalancerIPs` ranges advertised (empty on an excluded node).
    pub load_balancer_ranges: Vec<IpNet>,
    /// Every configured range of the family, excluded node or not: kept out of the kernel.
    pub kernel_rejects: Vec<IpNet>,
    /// Every configured external and LoadBalancer range of the family, excluded node or
    /// not: what a route reflector passes on from its clients.
    pub reflected_ranges: Vec<IpNet>,
    /// Single Service addresses (/32, /128), sorted, distinct.
    pub service_routes: Vec<IpNet>,
}

fn ranges(list: &[ServiceCidr]) -> Vec<IpNet> {
    list.iter().map(|s| s.cidr.network()).collect()
}

fn of_family(nets: &[IpNet], family: Family) -> Vec<IpNet> {
    nets.iter()
        .copied()
        .filter(|n| Family::of(n.addr()) == family)
        .collect()
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn allowed(ip: IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

fn single_allowed(ip: IpAddr, nets: &[IpNet]) -> bool {
    nets.iter()
        .any(|n| n.contains(&ip) && n.prefix_len() == n.max_prefix_len())
}

fn parse_ips<'a>(list: impl IntoIterator<Item = &'a str>) -> Vec<IpAddr> {
    list.into_iter()
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The address families a Service has: `ipFamilies`, else those of its cluster IPs.
fn service_families(svc: &Service) -> Vec<Family> {
    let mut out: Vec<Family> = svc
        .spec
        .ip_families
        .iter()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        out = parse_ips(svc.spec.all_cluster_ips())
            .into_iter()
            .map(Family::of)
            .collect();
    }
    out
}

/// Whether `node` advertises Service `svc`'s single addresses.
fn advertises_service(
    cluster: &Cluster,
    node: &NodeInfo,
    svc: &Service,
    external: &[IpNet],
    load_balancer: &[IpNet],
) -> bool {
    if !matches!(
        svc.spec.effective_type(),
        ServiceType::ClusterIP | ServiceType::NodePort | ServiceType::LoadBalancer
    ) || svc.spec.all_cluster_ips().is_empty()
    {
        return false;
    }
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let Some(slices) = cluster
        .endpoint_slices
        .get(&(ns.to_owned(), svc.metadata.name.clone()))
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    match svc.spec.external_traffic_policy {
        Some(TrafficPolicy::Cluster) => {
            let lb = svc.spec.effective_type() == ServiceType::LoadBalancer
                && parse_ips(
                    std::iter::once(svc.spec.load_balancer_ip.as_str()).chain(
                        svc.status
                            .load_balancer
                            .ingress
                            .iter()
                            .map(|i| i.ip.as_str()),
                    ),
                )
                .into_iter()
                .any(|ip| single_allowed(ip, load_balancer));
            lb || parse_ips(svc.spec.external_ips.iter().map(String::as_str))
                .into_iter()
                .any(|ip| single_allowed(ip, external))
        }
        Some(TrafficPolicy::Local) => {
            let families = service_families(svc);
            slices.iter().any(|slice| {
                let fam = match slice.address_type.as_str() {
                    "IPv4" => Family::V4,
                    "IPv6" => Family::V6,
                    _ => return false,
                };
                families.contains(&fam)
                    && slice
                        .endpoints
                        .iter()
                        .any(|e| e.node_name.as_deref() == Some(node.name.as_str()))
            })
        }
        None => false,
    }
}

/// The Service addresses node `node` advertises in `family`.
pub fn service_advertisement(
    cluster: &Cluster,
    node: &NodeInfo,
    family: Family,
) -> ServiceAdvertisement {
    let cluster_all = ranges(&cluster.bgp.service_cluster_ips);
    let external_all = ranges(&cluster.bgp.service_external_ips);
    let lb_all = ranges(&cluster.bgp.service_load_balancer_ips);
    let mut kernel_rejects = Vec::new();
    for n in of_family(&cluster_all, family)
        .into_iter()
        .chain(of_family(&external_all, family))
        .chain(of_family(&lb_all, family))
    {
        if !kernel_rejects.contains(&n) {
            kernel_rejects.push(n);
        }
    }
    let reflected_ranges: Vec<IpNet> = of_family(&external_all, family)
        .into_iter()
        .chain(of_family(&lb_all, family))
        .collect();
    if cluster.excluded_from_service_advertisement(node) {
        return ServiceAdvertisement {
            kernel_rejects,
            reflected_ranges,
            ..ServiceAdvertisement::default()
        };
    }
    let mut routes = BTreeSet::new();
    for svc in &cluster.services {
        if !advertises_service(cluster, node, svc, &external_all, &lb_all) {
            continue;
        }
        let mut ips = Vec::new();
        if !cluster_all.is_empty() {
            ips.extend(parse_ips(svc.spec.all_cluster_ips()));
        }
        ips.extend(
            parse_ips(svc.spec.external_ips.iter().map(String::as_str))
                .into_iter()
                .filter(|ip| allowed(*ip, &external_all)),
        );
        ips.extend(
            parse_ips(
                svc.status
                    .load_balancer
                    .ingress
                    .iter()
                    .map(|i| i.ip.as_str()),
            )
            .into_iter()
            .filter(|ip| allowed(*ip, &lb_all)),
        );
        routes.extend(
            ips.into_iter()
                .filter(|ip| Family::of(*ip) == family)
                .map(host_net),
        );
    }
    ServiceAdvertisement {
        cluster_ranges: of_family(&cluster_all, family),
        external_ranges: of_family(&external_all, family),
        load_balancer_ranges: of_family(&lb_all, family),
        kernel_rejects,
        reflected_ranges,
        service_routes: routes.into_iter().collect(),
    }
}
