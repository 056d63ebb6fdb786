//! [Cross-object checks](crate::validation#cross-object-checks). Each problem is returned with the index of the object it
//! is reported on.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::format::is_dns_label;
use super::ipam::overlaps;
use super::problem_for;
use crate::loader::LoadedObject;
use crate::resources::bgp::{BgpConfiguration, ProgramClusterRoutes};
use crate::resources::felix::FelixConfiguration;
use crate::resources::policy::builtin_tier;
use crate::resources::{Kind, Resource};
use crate::validation::Problem;

pub(super) fn check(objects: &[LoadedObject]) -> Vec<(usize, Problem)> {
    let mut out = Vec::new();
    duplicates(objects, &mut out);
    tiers(objects, &mut out);
    pools(objects, &mut out);
    filters(objects, &mut out);
    node_addresses(objects, &mut out);
    cluster_routes(objects, &mut out);
    out
}

fn push(
    out: &mut Vec<(usize, Problem)>,
    objects: &[LoadedObject],
    i: usize,
    path: &str,
    msg: String,
) {
    out.push((i, problem_for(&objects[i], path.to_owned(), msg)));
}

fn duplicates(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let mut seen: HashMap<(Kind, Option<&str>, &str), usize> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        let r = &o.resource;
        let key = (r.kind(), r.namespace(), r.name());
        match seen.get(&key) {
            Some(&first) => {
                let msg = format!(
                    "duplicate {} {:?}: already defined at {}",
                    r.kind(),
                    r.name(),
                    objects[first].origin
                );
                push(out, objects, i, "metadata.name", msg);
            }
            None => {
                seen.insert(key, i);
            }
        }
    }
}

fn policy_tier(r: &Resource) -> Option<&str> {
    match r {
        Resource::NetworkPolicy(p) => Some(&p.spec.tier),
        Resource::GlobalNetworkPolicy(p) => Some(&p.spec.tier),
        Resource::StagedNetworkPolicy(p) => Some(&p.spec.tier),
        Resource::StagedGlobalNetworkPolicy(p) => Some(&p.spec.tier),
        _ => None,
    }
}

fn tiers(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let present: HashSet<&str> = objects
        .iter()
        .filter(|o| o.resource.kind() == Kind::Tier)
        .map(|o| o.resource.name())
        .collect();
    for (i, o) in objects.iter().enumerate() {
        let Some(tier) = policy_tier(&o.resource) else {
            continue;
        };
        let tier = if tier.is_empty() { "default" } else { tier };
        if is_dns_label(tier) && builtin_tier(tier).is_none() && !present.contains(tier) {
            push(
                out,
                objects,
                i,
                "spec.tier",
                format!("tier {tier:?} does not exist"),
            );
        }
    }
}

fn pools(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let pools: Vec<(usize, &crate::resources::ipam::IpPool)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match &o.resource {
            Resource::IpPool(p) => Some((i, p)),
            _ => None,
        })
        .collect();
    for (a, (i, later)) in pools.iter().enumerate() {
        for (_, earlier) in &pools[..a] {
            if earlier.metadata.name != later.metadata.name
                && overlaps(&earlier.spec.cidr, &later.spec.cidr)
            {
                let msg = format!(
                    "{} overlaps IPPool {:?} ({})",
                    later.spec.cidr, earlier.metadata.name, earlier.spec.cidr
                );
                push(out, objects, *i, "spec.cidr", msg);
            }
        }
    }
}

fn filters(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let names: HashSet<&str> = objects
        .iter()
        .filter(|o| o.resource.kind() == Kind::BgpFilter)
        .map(|o| o.resource.name())
        .collect();
    for (i, o) in objects.iter().enumerate() {
        let Resource::BgpPeer(p) = &o.resource else {
            continue;
        };
        for (j, f) in p.spec.filters.iter().enumerate() {
            if !names.contains(f.as_str()) {
                push(
                    out,
                    objects,
                    i,
                    &format!("spec.filters[{j}]"),
                    format!("BGPFilter {f:?} does not exist"),
                );
            }
        }
    }
}

fn node_addresses(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        let Resource::Node(n) = &o.resource else {
            continue;
        };
        let Some(bgp) = &n.spec.bgp else { continue };
        for (field, addr) in [
            ("ipv4Address", &bgp.ipv4_address),
            ("ipv6Address", &bgp.ipv6_address),
        ] {
            let Some(a) = addr else { continue };
            match seen.get(&a.addr()) {
                Some(other) if *other != n.metadata.name => {
                    let msg = format!("BGP address {} is already used by Node {other:?}", a.addr());
                    push(out, objects, i, &format!("spec.bgp.{field}"), msg);
                }
                Some(_) => {}
                None => {
                    seen.insert(a.addr(), &n.metadata.name);
                }
            }
        }
    }
}

fn cluster_routes(objects: &[LoadedObject], out: &mut Vec<(usize, Problem)>) {
    let mut bgp: Option<(usize, &BgpConfiguration)> = None;
    let mut felix: Option<(usize, &FelixConfiguration)> = None;
    for (i, o) in objects.iter().enumerate() {
        match &o.resource {
            Resource::BgpConfiguration(c) if c.metadata.name == "default" && bgp.is_none() => {
                bgp = Some((i, c));
            }
            Resource::FelixConfiguration(f) if f.metadata.name == "default" && felix.is_none() => {
                felix = Some((i, f));
            }
            _ => {}
        }
    }
    if bgp.is_none() && felix.is_none() {
        return;
    }
    let b = bgp.map_or(ProgramClusterRoutes::EnabledNoEncapOnly, |(_, c)| {
        c.spec.effective_program_cluster_routes()
    });
    let f = felix.map_or(ProgramClusterRoutes::EnabledIPIPOnly, |(_, c)| {
        c.spec.effective_program_cluster_routes()
    });
    if f.complement() != b {
        let msg = format!(
            "BGP programClusterRoutes {b:?} does not complement FelixConfiguration programClusterRoutes {f:?} (expected {:?})",
            f.complement()
        );
        match (bgp, felix) {
            (Some((i, _)), _) | (None, Some((i, _))) => {
                push(out, objects, i, "spec.programClusterRoutes", msg);
            }
            (None, None) => {}
        }
    }
    if let Some((i, c)) = bgp {
        for (ipv6, field, v) in [
            (
                false,
                "ipv4NormalRoutePriority",
                c.spec.ipv4_normal_route_priority,
            ),
            (
                true,
                "ipv6NormalRoutePriority",
                c.spec.ipv6_normal_route_priority,
            ),
        ] {
            let felix_v = felix.map_or(1024, |(_, f)| f.spec.effective_normal_route_priority(ipv6));
            let bgp_v = v.unwrap_or(1024);
            if bgp_v != felix_v {
                push(
                    out,
                    objects,
                    i,
                    &format!("spec.{field}"),
                    format!("{bgp_v} differs from the FelixConfiguration value {felix_v}"),
                );
            }
        }
    }
}
