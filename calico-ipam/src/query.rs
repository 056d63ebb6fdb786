//! Queries and maintenance: attributes, handles, configuration, utilization, cold GC.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_datastore::{KeyValue, Store};
use calico_model::resources::ipam::IpamConfigurationSpec;
use ipnet::IpNet;

use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::net::block_of;
use crate::records::IpamConfigWire;
use crate::work::{Work, decode, encode};

use crate::ipam::*;

/// Attributes of one allocated address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressAttributes {
    /// The handle.
    pub handle: Option<String>,
    /// Owner attributes.
    pub owner: BTreeMap<String, String>,
    /// Alternate owner attributes.
    pub alternate_owner: BTreeMap<String, String>,
    /// The sequence stamp (for guarded releases).
    pub sequence: u64,
}

/// Utilization of one block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockUsage {
    /// The block.
    pub cidr: IpNet,
    /// Its owner.
    pub affinity: Option<String>,
    /// Addresses in the block.
    pub capacity: u128,
    /// Allocated (including cooldown and Windows-reserved).
    pub in_use: u128,
    /// Reserved by IPReservations.
    pub reserved: u128,
    /// Free and not reserved.
    pub available: u128,
}

/// Utilization of one pool.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    /// The pool's name.
    pub name: String,
    /// The pool CIDR.
    pub cidr: IpNet,
    /// Addresses in the pool.
    pub capacity: u128,
    /// Allocated addresses.
    pub in_use: u128,
    /// Reserved addresses.
    pub reserved: u128,
    /// Addresses neither allocated nor reserved.
    pub available: u128,
    /// Its existing blocks.
    pub blocks: Vec<BlockUsage>,
}

/// The result of `utilization`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Utilization {
    /// Per pool.
    pub pools: Vec<PoolUsage>,
    /// Blocks in no pool.
    pub orphaned: Vec<BlockUsage>,
}

impl Ipam {
    /// `ips_by_handle`: the addresses a handle holds (cooldown excluded).
    ///
    /// Errors: `HandleNotFound`, `Store`, `Decode`.
    pub fn ips_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        self.ensure_layout()?;
        let id = normalize_handle(handle);
        check_name("handle", &id)?;
        let kv = self
            .store
            .get(keys::handle(&id).as_bytes())?
            .ok_or_else(|| IpamError::HandleNotFound { handle: id.clone() })?;
        let mut work = Work::default();
        work.load_handle(&id, Some(&kv))?;
        let listed: Vec<String> = work
            .handles
            .get(&id)
            .map(|l| {
                l.handle
                    .blocks
                    .keys()
                    .filter_map(|c| c.parse::<IpNet>().ok())
                    .map(|n| keys::block(&n))
                    .collect()
            })
            .unwrap_or_default();
        self.load_blocks(&mut work, &listed)?;
        let mut out = Vec::new();
        for key in &listed {
            if let Some(b) = work.block(key) {
                out.extend(
                    b.live()
                        .filter(|(_, a)| a.handle.as_deref() == Some(id.as_str()))
                        .map(|(o, _)| b.addr(o)),
                );
            }
        }
        Ok(out)
    }

    /// The block holding `addr` (its key and value), with the environment read to find it.
    pub(crate) fn block_containing(
        &self,
        addr: IpAddr,
    ) -> Result<(Env, Option<(String, KeyValue)>), IpamError> {
        let env = self.env()?;
        let key = match env.pool_of(addr) {
            Some(p) => Some(keys::block(&block_of(addr, p.block_size))),
            None => self.find_blocks_outside_pools(&[addr])?.pop().flatten(),
        };
        let Some(key) = key else {
            return Ok((env, None));
        };
        let found = self.store.get(key.as_bytes())?.map(|kv| (key, kv));
        Ok((env, found))
    }

    /// `get_attributes`: the handle and owner attributes of an allocated address.
    ///
    /// Errors: `NotAllocated`, `InCooldown`, `Store`, `Decode`.
    pub fn get_attributes(&self, addr: IpAddr) -> Result<AddressAttributes, IpamError> {
        let (_, kv) = self
            .block_containing(addr)?
            .1
            .ok_or(IpamError::NotAllocated { addr })?;
        let b: Block = decode(&kv.key, &kv.value)?;
        let o = b.ordinal(addr).ok_or(IpamError::NotAllocated { addr })?;
        let a = b.attribute(o).ok_or(IpamError::NotAllocated { addr })?;
        if a.released_at.is_some() {
            return Err(IpamError::InCooldown { addr });
        }
        Ok(AddressAttributes {
            handle: a.handle.clone(),
            owner: a.owner.clone(),
            alternate_owner: a.alternate_owner.clone(),
            sequence: b.stamp(o),
        })
    }

    /// `set_owner_attributes`: replaces the owner (and alternate owner) attributes of an
    /// allocated address held by `handle`, if its current owner attributes equal `expected`
    /// (when given). One block write.
    ///
    /// Errors: `NotAllocated`, `Precondition`, `Contention`, `Store`, `Decode`.
    pub fn set_owner_attributes(
        &self,
        addr: IpAddr,
        handle: &str,
        owner: BTreeMap<String, String>,
        alternate_owner: BTreeMap<String, String>,
        expected: Option<&BTreeMap<String, String>>,
    ) -> Result<(), IpamError> {
        let handle = normalize_handle(handle);
        self.retrying(|| {
            let now = self.now();
            let (env, found) = self.block_containing(addr)?;
            let (key, kv) = found.ok_or(IpamError::NotAllocated { addr })?;
            let mut work = Work::default();
            work.load_block(key.clone(), Some(&kv))?;
            let b = work.block(&key).ok_or(IpamError::NotAllocated { addr })?;
            let o = b.ordinal(addr).ok_or(IpamError::NotAllocated { addr })?;
            let a = b
                .attribute(o)
                .filter(|a| a.released_at.is_none())
                .ok_or(IpamError::NotAllocated { addr })?
                .clone();
            if a.handle.as_deref() != Some(handle.as_str()) {
                return Err(IpamError::Precondition {
                    addr,
                    reason: format!("handle is {:?}", a.handle),
                });
            }
            if let Some(exp) = expected
                && &a.owner != exp
            {
                return Err(IpamError::Precondition {
                    addr,
                    reason: "owner attributes differ".to_owned(),
                });
            }
            if let Some(b) = work.block_mut(&key) {
                let new = crate::block::Attribute {
                    handle: a.handle.clone(),
                    owner: owner.clone(),
                    alternate_owner: alternate_owner.clone(),
                    released_at: None,
                };
                let idx = match b.attributes.iter().position(|x| *x == new) {
                    Some(i) => i as u32,
                    None => {
                        b.attributes.push(new);
                        (b.attributes.len() - 1) as u32
                    }
                };
                b.allocations[o as usize] = Some(idx);
                b.compact();
            }
            self.commit(work, now, env.cooldown()).map(|_| ())
        })
    }

    /// `get_config`: the stored configuration, or the defaults (not written). A stored
    /// value without `auto_allocate_blocks` means automatic allocation is off.
    pub fn get_config(&self) -> Result<IpamConfigurationSpec, IpamError> {
        self.ensure_layout()?;
        match self.store.get(keys::CONFIG.as_bytes())? {
            Some(kv) => Ok(decode::<IpamConfigWire>(&kv.key, &kv.value)?.spec()),
            None => Ok(IpamConfigurationSpec::default()),
        }
    }

    /// `set_config`. Errors: `BadConfig` for `strictAffinity: false` with
    /// `autoAllocateBlocks: false`, or `maxBlocksPerHost > 0` with `strictAffinity: false`.
    pub fn set_config(&self, config: &IpamConfigurationSpec) -> Result<(), IpamError> {
        if !config.strict_affinity && !config.auto_allocate_blocks {
            return Err(IpamError::BadConfig {
                reason: "autoAllocateBlocks: false requires strictAffinity: true".to_owned(),
            });
        }
        if !config.strict_affinity && config.max_blocks_per_host > 0 {
            return Err(IpamError::BadConfig {
                reason: "maxBlocksPerHost > 0 requires strictAffinity: true".to_owned(),
            });
        }
        if config.max_blocks_per_host < 0 || !(0..=1200).contains(&config.ip_cooldown_seconds) {
            return Err(IpamError::BadConfig {
                reason: "maxBlocksPerHost must be ≥ 0 and ipCooldownSeconds within 0–1200"
                    .to_owned(),
            });
        }
        self.ensure_layout()?;
        // As Calico does: every field written (left out when false or zero), other fields
        // of the stored value (the KubeVirt setting) kept.
        let previous = match self.store.get(keys::CONFIG.as_bytes())? {
            Some(kv) => decode::<IpamConfigWire>(&kv.key, &kv.value).ok(),
            None => None,
        };
        let wire = IpamConfigWire::from_spec(config, previous.as_ref());
        self.store.put(keys::CONFIG.as_bytes(), &encode(&wire))?;
        Ok(())
    }

    /// Reads every block (cold path, one range). Values that do not decode are skipped
    /// (`check` reports them).
    pub fn all_blocks(&self) -> Result<Vec<(KeyValue, Block)>, IpamError> {
        self.ensure_layout()?;
        let kvs = self
            .store
            .range(
                keys::BLOCK_PREFIX.as_bytes(),
                crate::prefix_end_of(keys::BLOCK_PREFIX).as_deref(),
                0,
            )?
            .kvs;
        Ok(kvs
            .into_iter()
            .filter(|kv| keys::parse_block(&kv.key).is_some())
            .filter_map(|kv| {
                let b = decode(&kv.key, &kv.value).ok()?;
                Some((kv, b))
            })
            .collect())
    }

    /// `utilization`: per pool (all, or those named / with these CIDRs) and block.
    pub fn utilization(&self, pools: Option<&[String]>) -> Result<Utilization, IpamError> {
        let env = self.env()?;
        let blocks = self.all_blocks()?;
        let usage = |b: &Block| {
            let cap = b.len() as u128;
            let in_use = b.allocated_count() as u128;
            let reserved = env.reservations.count_in(&b.cidr);
            let reserved_free = (0..b.len() as u32)
                .filter(|&o| !b.is_allocated(o) && env.reservations.contains(b.addr(o)))
                .count() as u128;
            BlockUsage {
                cidr: b.cidr,
                affinity: b.affinity.clone(),
                capacity: cap,
                in_use,
                reserved,
                available: cap - in_use - reserved_free,
            }
        };
        let mut out = Utilization::default();
        for p in &env.pools {
            if let Some(sel) = pools
                && !sel
                    .iter()
                    .any(|s| *s == p.name || s.parse::<IpNet>().is_ok_and(|n| n == p.cidr))
            {
                continue;
            }
            let bl: Vec<BlockUsage> = blocks
                .iter()
                .filter(|(_, b)| p.contains_net(&b.cidr))
                .map(|(_, b)| usage(b))
                .collect();
            let capacity = crate::net::size(&p.cidr);
            let in_use: u128 = bl.iter().map(|b| b.in_use).sum();
            let reserved = env.reservations.count_in(&p.cidr);
            let reserved_in_use: u128 = blocks
                .iter()
                .filter(|(_, b)| p.contains_net(&b.cidr))
                .map(|(_, b)| {
                    (0..b.len() as u32)
                        .filter(|&o| b.is_allocated(o) && env.reservations.contains(b.addr(o)))
                        .count() as u128
                })
                .sum();
            let available = capacity
                .saturating_sub(in_use)
                .saturating_sub(reserved.saturating_sub(reserved_in_use));
            out.pools.push(PoolUsage {
                name: p.name.clone(),
                cidr: p.cidr,
                capacity,
                in_use,
                reserved,
                available,
                blocks: bl,
            });
        }
        out.orphaned = blocks
            .iter()
            .filter(|(_, b)| env.pool_of_net(&b.cidr).is_none())
            .map(|(_, b)| usage(b))
            .collect();
        Ok(out)
    }

    /// `gc_cold_ips`: frees expired cooldown addresses in blocks nobody writes. Returns the
    /// blocks written.
    pub fn gc_cold_ips(&self) -> Result<Vec<IpNet>, IpamError> {
        let env = self.env()?;
        let now = self.now();
        let mut out = Vec::new();
        for (kv, b) in self.all_blocks()? {
            let mut t = b.clone();
            if !t.gc(now, env.cooldown()) {
                continue;
            }
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let mut work = Work::default();
            work.load_block(key.clone(), Some(&kv))?;
            if work.is_broken(&key) {
                // Never written: `check` reports it.
                continue;
            }
            let _ = work.block_mut(&key);
            match self.commit(work, now, env.cooldown()) {
                Ok(_) => out.push(b.cidr),
                // Someone wrote the block meanwhile: that write collected it.
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
