//! Pools as the allocator uses them and reservations.

use std::collections::BTreeMap;

use calico_model::resources::ipam::{AllowedUse, AssignmentMode, IpPool, IpReservation};
use calico_model::selector::Selector;
use ipnet::IpNet;

use crate::error::IpamError;
use crate::net::{base, is_v4, last, merge_intervals, net_of, width};

/// A validated IPPool.
#[derive(Clone, Debug)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The pool CIDR (masked).
    pub cidr: IpNet,
    /// The effective block prefix length.
    pub block_size: u8,
    /// Enabled: not disabled and not being deleted.
    pub enabled: bool,
    /// The node selector (`all()` when empty).
    pub node_selector: Selector,
    /// The node selector is empty or `all()`: it selects every node whatever its labels.
    pub selects_every_node: bool,
    /// The namespace selector (`None`: every namespace).
    pub namespace_selector: Option<Selector>,
    /// The effective allowed uses.
    pub allowed_uses: Vec<AllowedUse>,
    /// `assignmentMode: Manual`.
    pub manual: bool,
}

/// The largest number of addresses a block may hold (block size at least /16 of host bits).
pub const MAX_BLOCK_HOST_BITS: u8 = 16;

impl Pool {
    /// Validates an IPPool resource.
    pub fn from_resource(p: &IpPool) -> Result<Pool, IpamError> {
        let name = p.metadata.name.clone();
        let bad = |reason: String| IpamError::BadPool {
            name: name.clone(),
            reason,
        };
        let cidr = p.spec.cidr;
        if !cidr.has_prefix() {
            return Err(bad(format!("cidr {cidr} has no prefix length")));
        }
        let net = cidr.network();
        let block_size = p.spec.effective_block_size();
        let w = width(cidr.is_ipv4());
        if block_size < net.prefix_len() || block_size > w {
            return Err(bad(format!(
                "blockSize {block_size} must lie between the pool prefix {} and {w}",
                net.prefix_len()
            )));
        }
        if w - block_size > MAX_BLOCK_HOST_BITS {
            return Err(bad(format!(
                "blockSize {block_size} makes blocks too large"
            )));
        }
        let parse =
            |s: &str, field: &str| Selector::parse(s).map_err(|e| bad(format!("{field}: {e}")));
        let node_selector = if p.spec.node_selector.trim().is_empty() {
            parse("all()", "nodeSelector")?
        } else {
            parse(&p.spec.node_selector, "nodeSelector")?
        };
        let namespace_selector = if p.spec.namespace_selector.trim().is_empty() {
            None
        } else {
            Some(parse(&p.spec.namespace_selector, "namespaceSelector")?)
        };
        Ok(Pool {
            name: name.clone(),
            cidr: net,
            block_size,
            enabled: !p.spec.disabled && p.metadata.deletion_timestamp.is_none(),
            node_selector,
            selects_every_node: matches!(p.spec.node_selector.trim(), "" | "all()"),
            namespace_selector,
            allowed_uses: p.spec.effective_allowed_uses(),
            manual: p.spec.assignment_mode == Some(AssignmentMode::Manual),
        })
    }

    /// Whether the pool is IPv4.
    pub fn is_v4(&self) -> bool {
        is_v4(&self.cidr)
    }

    /// The number of blocks.
    pub fn block_count(&self) -> u128 {
        1u128
            .checked_shl(u32::from(self.block_size - self.cidr.prefix_len()))
            .unwrap_or(u128::MAX)
    }

    /// Addresses per block.
    pub fn block_len(&self) -> u128 {
        1u128 << (width(self.is_v4()) - self.block_size)
    }

    /// Block `i` of the pool.
    pub fn block(&self, i: u128) -> IpNet {
        net_of(
            base(&self.cidr) + i * self.block_len(),
            self.block_size,
            self.is_v4(),
        )
    }

    /// The block index of an address inside the pool.
    pub fn index_of(&self, addr_int: u128) -> u128 {
        (addr_int - base(&self.cidr)) / self.block_len()
    }

    /// Whether the pool contains `net` entirely.
    pub fn contains_net(&self, net: &IpNet) -> bool {
        is_v4(net) == self.is_v4() && base(net) >= base(&self.cidr) && last(net) <= last(&self.cidr)
    }
}

/// Parses every pool, sorted by name. A malformed pool is an error naming it.
pub fn parse_pools(values: &[(String, Vec<u8>)]) -> Result<Vec<Pool>, IpamError> {
    let mut pools = Vec::with_capacity(values.len());
    for (key, v) in values {
        let p: IpPool = serde_json::from_slice(v).map_err(|e| IpamError::BadPool {
            name: key.clone(),
            reason: e.to_string(),
        })?;
        pools.push(Pool::from_resource(&p)?);
    }
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pools)
}

/// Merged reserved intervals per family (`true` = IPv4).
#[derive(Clone, Debug, Default)]
pub struct Reservations {
    /// IPv4 intervals.
    pub v4: Vec<(u128, u128)>,
    /// IPv6 intervals.
    pub v6: Vec<(u128, u128)>,
}

impl Reservations {
    /// Reservations from IPReservation values.
    pub fn parse(values: &[(String, Vec<u8>)]) -> Result<Reservations, IpamError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (key, v) in values {
            let r: IpReservation = serde_json::from_slice(v).map_err(|e| IpamError::Decode {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            for c in &r.spec.reserved_cidrs {
                let n = c.network();
                let iv = (base(&n), last(&n));
                if is_v4(&n) { v4.push(iv) } else { v6.push(iv) }
            }
        }
        Ok(Reservations {
            v4: merge_intervals(v4),
            v6: merge_intervals(v6),
        })
    }

    /// The intervals of one family.
    pub fn family(&self, v4: bool) -> &[(u128, u128)] {
        if v4 { &self.v4 } else { &self.v6 }
    }

    /// Whether every address of `net` is reserved.
    pub fn covers(&self, net: &IpNet) -> bool {
        crate::net::covered(self.family(is_v4(net)), base(net), last(net)) == crate::net::size(net)
    }

    /// Whether `addr` is reserved.
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        let a = crate::net::addr_to_u128(addr);
        crate::net::covered(self.family(addr.is_ipv4()), a, a) > 0
    }

    /// How many addresses of `net` are reserved.
    pub fn count_in(&self, net: &IpNet) -> u128 {
        crate::net::covered(self.family(is_v4(net)), base(net), last(net))
    }
}

/// Requested (IPv4, IPv6) pools; `None` when not requested.
pub type RequestedPools = (Option<Vec<String>>, Option<Vec<String>>);

/// The pools requested by the Calico CNI annotations `cni.projectcalico.org/ipv4pools` and
/// `.../ipv6pools` (JSON lists of names or CIDRs); the pod's annotations win over the
/// namespace's. Returns (v4 pools, v6 pools); `None` when not annotated.
pub fn pools_from_annotations(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
) -> Result<RequestedPools, IpamError> {
    let get = |key: &str| -> Result<Option<Vec<String>>, IpamError> {
        match pod.get(key).or_else(|| namespace.get(key)) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| IpamError::BadAnnotation {
                    key: key.to_owned(),
                    reason: e.to_string(),
                }),
        }
    };
    Ok((
        get("cni.projectcalico.org/ipv4pools")?,
        get("cni.projectcalico.org/ipv6pools")?,
    ))
}
