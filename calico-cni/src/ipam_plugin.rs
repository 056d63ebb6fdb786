//! The `calico-ipam` plugin: `ADD` assigns addresses under the handle
//! `<network>.<container ID>`, `DEL` releases the handle, `CHECK` compares the handle's
//! addresses with `prevResult`. Usable under any main plugin (calico, ptp, bridge).
//!
//! Addresses are reported with their block's prefix length (`10.65.3.7/26`), as Calico's
//! current plugin does: main plugins such as ptp need a prefix route to work with; the
//! `calico` main plugin programs them as /32 and /128 whatever the IPAM plugin reports.

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_ipam::{AssignIpRequest, AutoAssignRequest, Ipam, IpamError};
use calico_model::family::Family;
use calico_model::resources::ipam::AllowedUse;
use ipnet::IpNet;

use crate::config::{NetConf, Workload};
use crate::error::PluginError;
use crate::spec::{CniResult, IpConfig};

/// `ADD`: the addresses of `w`, assigned now or (a repeated `ADD`) already held by its
/// handle, with their block's prefix length and without gateway. On failure nothing stays
/// assigned under the handle.
pub fn add(ipam: &Ipam, conf: &NetConf, w: &Workload) -> Result<CniResult, PluginError> {
    let held = held(ipam, &w.handle)?;
    let addrs = if !held.is_empty() {
        let env = ipam.env().map_err(|source| PluginError::Ipam {
            operation: "query",
            handle: w.handle.clone(),
            source,
        })?;
        held.into_iter()
            .map(|a| {
                let len = env
                    .pool_of(a)
                    .map_or(if a.is_ipv4() { 32 } else { 128 }, |p| p.block_size);
                IpNet::new(a, len).unwrap_or_else(|_| IpNet::from(a))
            })
            .collect()
    } else {
        match assign(ipam, conf, w) {
            Ok(a) => a,
            // Whatever was committed before the failure goes back.
            Err(first) => match ipam.release_by_handle(&w.handle) {
                Ok(_) | Err(IpamError::HandleNotFound { .. }) => return Err(first),
                Err(undo) => {
                    return Err(PluginError::Rollback {
                        first: Box::new(first),
                        undo: format!("releasing handle {}: {undo}", w.handle),
                    });
                }
            },
        }
    };
    let mut result = CniResult::new(&conf.cni_version);
    result.ips = addrs
        .into_iter()
        .map(|a| IpConfig {
            address: a,
            gateway: conf
                .ipam
                .gateway
                .filter(|g| g.is_ipv4() == a.addr().is_ipv4()),
            interface: None,
        })
        .collect();
    Ok(result)
}

fn held(ipam: &Ipam, handle: &str) -> Result<Vec<IpAddr>, PluginError> {
    match ipam.ips_by_handle(handle) {
        Ok(mut v) => {
            v.sort();
            Ok(v)
        }
        Err(IpamError::HandleNotFound { .. }) => Ok(Vec::new()),
        Err(source) => Err(PluginError::Ipam {
            operation: "query",
            handle: handle.to_owned(),
            source,
        }),
    }
}

fn assign(ipam: &Ipam, conf: &NetConf, w: &Workload) -> Result<Vec<IpNet>, PluginError> {
    let ipam_err = |source| PluginError::Ipam {
        operation: "assign",
        handle: w.handle.clone(),
        source,
    };
    if !w.requested_ips.is_empty() {
        let mut out = Vec::new();
        for &addr in &w.requested_ips {
            let net = ipam
                .assign_ip(&AssignIpRequest {
                    addr,
                    handle: Some(w.handle.clone()),
                    attrs: w.attributes(ipam.now()),
                    host: w.node.clone(),
                    intended_use: AllowedUse::Workload,
                })
                .map_err(ipam_err)?;
            out.push(net);
        }
        return Ok(out);
    }
    let (num4, num6) = (
        usize::from(conf.ipam.assign_ipv4),
        usize::from(conf.ipam.assign_ipv6),
    );
    if num4 + num6 == 0 {
        return Err(PluginError::NothingToAssign);
    }
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let got = ipam
        .auto_assign(&AutoAssignRequest {
            num4,
            num6,
            handle: Some(w.handle.clone()),
            attrs: w.attributes(ipam.now()),
            host: w.node.clone(),
            pools4: nonempty(&conf.ipam.ipv4_pools),
            pools6: nonempty(&conf.ipam.ipv6_pools),
            intended_use: AllowedUse::Workload,
            namespace: w.namespace.clone(),
            ..Default::default()
        })
        .map_err(ipam_err)?;
    for (family, want, have, reasons) in [
        (Family::V4, num4, got.v4.len(), &got.shortfall4),
        (Family::V6, num6, got.v6.len(), &got.shortfall6),
    ] {
        if have < want {
            return Err(PluginError::NoAddress {
                family,
                handle: w.handle.clone(),
                reasons: reasons.clone(),
            });
        }
    }
    Ok(got.v4.into_iter().chain(got.v6).collect())
}

/// `DEL`: releases every address of the handle; succeeds when there is none.
pub fn del(ipam: &Ipam, w: &Workload) -> Result<Vec<IpAddr>, PluginError> {
    match ipam.release_by_handle(&w.handle) {
        Ok(v) => Ok(v),
        Err(IpamError::HandleNotFound { .. }) => Ok(Vec::new()),
        Err(source) => Err(PluginError::Ipam {
            operation: "release",
            handle: w.handle.clone(),
            source,
        }),
    }
}

/// `CHECK`: the handle holds exactly the addresses `prev` lists.
pub fn check(ipam: &Ipam, w: &Workload, prev: &CniResult) -> Result<(), PluginError> {
    let held: BTreeSet<IpAddr> = held(ipam, &w.handle)?.into_iter().collect();
    let listed: BTreeSet<IpAddr> = prev.ips.iter().map(|c| c.address.addr()).collect();
    if held.is_empty() {
        return Err(PluginError::Check(format!(
            "handle {} holds no address",
            w.handle
        )));
    }
    if held != listed {
        return Err(PluginError::Check(format!(
            "handle {} holds {:?} but prevResult lists {:?}",
            w.handle, held, listed
        )));
    }
    Ok(())
}
