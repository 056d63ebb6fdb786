//! Affinities: `claim_affinity` and the releases

use calico_datastore::{ReadOp, Store};
use ipnet::IpNet;

use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::net::{base, is_v4, overlaps};
use crate::records::{AffinityRecord, Owner};
use crate::work::{Work, encode};

use crate::ipam::*;

impl Ipam {
    /// `claim_affinity`: claims every block of `cidr` for `owner` in address order. Returns
    /// (blocks claimed or already owned, blocks owned by someone else).
    ///
    /// Errors: `BadCidr` (smaller than a block, or in no pool), `Contention`, `Store`.
    pub fn claim_affinity(
        &self,
        cidr: IpNet,
        owner: &Owner,
    ) -> Result<(Vec<IpNet>, Vec<IpNet>), IpamError> {
        let cidr = cidr.trunc();
        check_name(owner.kind_str(), owner.name())?;
        let env = self.env()?;
        let pool = env
            .pools
            .iter()
            .find(|p| p.contains_net(&cidr))
            .ok_or_else(|| IpamError::BadCidr {
                cidr,
                reason: "not in any pool".to_owned(),
            })?;
        if cidr.prefix_len() > pool.block_size {
            return Err(IpamError::BadCidr {
                cidr,
                reason: format!("smaller than a block (/{})", pool.block_size),
            });
        }
        let first = pool.index_of(base(&cidr));
        let count = 1u128 << (pool.block_size - cidr.prefix_len());
        let mut claimed = Vec::new();
        let mut elsewhere = Vec::new();
        for i in first..first + count {
            let net = pool.block(i);
            let mine = self.retrying(|| {
                let now = self.now();
                let key = keys::block(&net);
                let aff_key = keys::affinity(owner, &net);
                let mut resp = self
                    .store
                    .read(&[ReadOp::get(key.clone()), ReadOp::get(aff_key.clone())])?;
                let bkv = take_get(&mut resp.results, 0);
                let akv = take_get(&mut resp.results, 1);
                let mut work = Work::default();
                work.load_block(key.clone(), bkv.as_ref())?;
                match work.block(&key) {
                    Some(b) => Ok(b.owner().as_ref() == Some(owner)),
                    None => {
                        work.create_block(Block::new(net, Some(owner), now));
                        work.compare(aff_key.clone(), akv.map(|kv| kv.mod_revision));
                        work.put(aff_key, encode(&AffinityRecord::confirmed()));
                        self.commit(work, now, env.cooldown())?;
                        Ok(true)
                    }
                }
            })?;
            if mine {
                claimed.push(net)
            } else {
                elsewhere.push(net)
            }
        }
        Ok((claimed, elsewhere))
    }

    /// Releases one affinity. Returns `false` when the block named another owner
    /// (our stale affinity was deleted) or the affinity did not exist.
    ///
    /// Errors: `BlockNotEmpty`, `Contention`, `Store`, `Decode`.
    pub fn release_block_affinity(
        &self,
        owner: &Owner,
        net: IpNet,
        must_be_empty: bool,
    ) -> Result<bool, IpamError> {
        self.ensure_layout()?;
        self.retrying(|| {
            let now = self.now();
            let key = keys::block(&net);
            let aff_key = keys::affinity(owner, &net);
            let mut resp = self.store.read(&[
                ReadOp::get(key.clone()),
                ReadOp::get(aff_key.clone()),
                ReadOp::get(keys::CONFIG),
            ])?;
            let bkv = take_get(&mut resp.results, 0);
            let Some(akv) = take_get(&mut resp.results, 1) else {
                return Ok(false);
            };
            let mut work = Work::default();
            work.load_block(key.clone(), bkv.as_ref())?;
            work.compare(aff_key.clone(), Some(akv.mod_revision));
            work.delete(aff_key.clone());
            let result = match work.block(&key) {
                None => false,
                Some(b) if b.owner().as_ref() != Some(owner) => false,
                Some(b) => {
                    if must_be_empty && !b.is_empty() {
                        return Err(IpamError::BlockNotEmpty { block: net });
                    }
                    match work.block_mut(&key) {
                        Some(b) => {
                            b.affinity = None;
                            b.affinity_claim_time = None;
                        }
                        None => {
                            return Err(work
                                .take_refused()
                                .unwrap_or(IpamError::BlockNotEmpty { block: net }));
                        }
                    }
                    true
                }
            };
            self.commit(work, now, u64::MAX)?;
            Ok(result)
        })
    }

    /// `release_affinity`: releases `owner`'s affinity for every block of `cidr` it holds.
    /// Returns the blocks released.
    ///
    /// Errors: `BlockNotEmpty` (earlier blocks may already be released), `Store`, ...
    pub fn release_affinity(
        &self,
        cidr: IpNet,
        owner: &Owner,
        must_be_empty: bool,
    ) -> Result<Vec<IpNet>, IpamError> {
        let cidr = cidr.trunc();
        let prefix = keys::affinity_family_prefix(owner, is_v4(&cidr));
        let kvs = self
            .store
            .range(
                prefix.as_bytes(),
                crate::prefix_end_of(&prefix).as_deref(),
                0,
            )?
            .kvs;
        let mut out = Vec::new();
        for kv in kvs {
            let Some((_, net)) = keys::parse_affinity(&kv.key) else {
                continue;
            };
            if overlaps(&net, &cidr) && self.release_block_affinity(owner, net, must_be_empty)? {
                out.push(net);
            }
        }
        Ok(out)
    }

    /// `release_host_affinities`: every block of `owner`, v4 and v6, best effort; the last
    /// error is returned after trying all.
    pub fn release_host_affinities(
        &self,
        owner: &Owner,
        must_be_empty: bool,
    ) -> Result<Vec<IpNet>, IpamError> {
        let prefix = keys::affinity_owner_prefix(owner);
        let kvs = self
            .store
            .range(
                prefix.as_bytes(),
                crate::prefix_end_of(&prefix).as_deref(),
                0,
            )?
            .kvs;
        let mut out = Vec::new();
        let mut last_err = None;
        for kv in kvs {
            let Some((_, net)) = keys::parse_affinity(&kv.key) else {
                continue;
            };
            match self.release_block_affinity(owner, net, must_be_empty) {
                Ok(true) => out.push(net),
                Ok(false) => {}
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// `release_pool_affinities`: every affinity inside `pool`, no emptiness requirement.
    pub fn release_pool_affinities(&self, pool: IpNet) -> Result<Vec<IpNet>, IpamError> {
        let mut kvs = Vec::new();
        for prefix in keys::AFFINITY_PREFIXES {
            kvs.extend(
                self.store
                    .range(
                        prefix.as_bytes(),
                        crate::prefix_end_of(prefix).as_deref(),
                        0,
                    )?
                    .kvs,
            );
        }
        let mut out = Vec::new();
        for kv in kvs {
            let Some((owner, net)) = keys::parse_affinity(&kv.key) else {
                continue;
            };
            if overlaps(&net, &pool) && self.release_block_affinity(&owner, net, false)? {
                out.push(net);
            }
        }
        Ok(out)
    }

    /// `remove_host`: `release_host_affinities(must_be_empty = false)`, then the per-host key
    /// old Calico releases wrote (`/calico/ipam/v2/host/<host>`), if present, as Calico's
    /// host removal does.
    pub fn remove_host(&self, host: &str) -> Result<Vec<IpNet>, IpamError> {
        check_name("host", host)?;
        let released = self.release_host_affinities(&Owner::Host(host.to_owned()), false)?;
        let legacy = format!("{}{host}", keys::HOST_AFFINITY_PREFIX);
        if let Some(kv) = self.store.get(legacy.as_bytes())? {
            match self.store.delete(legacy.as_bytes(), kv.mod_revision) {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(released)
    }
}
