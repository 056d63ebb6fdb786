//! Releases: `release_ips` and `release_by_handle`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use calico_datastore::{ReadOp, ReadResult, Store};
use calico_model::resources::Labels;
use ipnet::IpNet;

use crate::error::IpamError;
use crate::keys;
use crate::net::block_of;
use crate::pools::Pool;
use crate::records::{Nanos, Owner};
use crate::resources::resource_key;
use crate::work::Work;

use crate::ipam::*;

/// One address to release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseItem {
    /// The address.
    pub addr: IpAddr,
    /// When given, the address's handle must equal it.
    pub handle: Option<String>,
    /// When given, the address's sequence stamp must equal it.
    pub sequence: Option<u64>,
}

impl ReleaseItem {
    /// An unguarded release of `addr`.
    pub fn addr(addr: IpAddr) -> ReleaseItem {
        ReleaseItem {
            addr,
            handle: None,
            sequence: None,
        }
    }
}

/// The result of `release_ips`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Addresses that were not allocated (or already in cooldown).
    pub not_allocated: Vec<IpAddr>,
    /// Addresses released.
    pub released: Vec<IpAddr>,
    /// Addresses rejected because an address of their block failed its handle or sequence
    /// guard, with the reason.
    pub rejected: Vec<(IpAddr, String)>,
}

impl Ipam {
    /// Finds the existing block containing each address that lies in no pool (bounded
    /// gets, one per possible prefix length). Returns block keys.
    pub(crate) fn find_blocks_outside_pools(
        &self,
        addrs: &[IpAddr],
    ) -> Result<Vec<Option<String>>, IpamError> {
        let mut out = Vec::with_capacity(addrs.len());
        for a in addrs {
            let lens: Vec<u8> = if a.is_ipv4() {
                (0..=32).collect()
            } else {
                (64..=128).collect()
            };
            let ops: Vec<ReadOp> = lens
                .iter()
                .map(|&l| ReadOp::get(keys::block(&block_of(*a, l))))
                .collect();
            let resp = self.store.read(&ops)?;
            let found = resp
                .results
                .into_iter()
                .filter_map(ReadResult::into_get)
                .next()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned());
            out.push(found);
        }
        Ok(out)
    }

    /// `release_ips`: releases addresses, idempotently.
    ///
    /// Errors: `Contention`, `Store`, `Decode`. Guard mismatches are reported in
    /// [`Released::rejected`] (every address of that block in the call).
    pub fn release_ips(&self, items: &[ReleaseItem]) -> Result<Released, IpamError> {
        // Each address touches at most a block, its handle and an affinity: a chunk of this many
        // addresses always fits in one transaction.
        let per_txn = (self.store.max_txn_ops().saturating_sub(4) / 3).max(1);
        let mut out = Released::default();
        for chunk in items.chunks(per_txn) {
            let r = self.retrying(|| self.try_release_ips(chunk))?;
            out.not_allocated.extend(r.not_allocated);
            out.released.extend(r.released);
            out.rejected.extend(r.rejected);
        }
        Ok(out)
    }

    pub(crate) fn try_release_ips(&self, items: &[ReleaseItem]) -> Result<Released, IpamError> {
        let now = self.now();
        let env = self.env()?;
        let mut seen = std::collections::BTreeSet::new();
        let items: Vec<&ReleaseItem> = items.iter().filter(|i| seen.insert(i.addr)).collect();
        let mut by_block: BTreeMap<String, Vec<&ReleaseItem>> = BTreeMap::new();
        let mut out = Released::default();
        let mut outside = Vec::new();
        for it in &items {
            match env.pool_of(it.addr) {
                Some(p) => by_block
                    .entry(keys::block(&block_of(it.addr, p.block_size)))
                    .or_default()
                    .push(it),
                None => outside.push(*it),
            }
        }
        let found =
            self.find_blocks_outside_pools(&outside.iter().map(|i| i.addr).collect::<Vec<_>>())?;
        for (it, k) in outside.into_iter().zip(found) {
            match k {
                Some(k) => by_block.entry(k).or_default().push(it),
                None => out.not_allocated.push(it.addr),
            }
        }
        let mut work = Work::default();
        let block_keys: Vec<String> = by_block.keys().cloned().collect();
        self.load_blocks(&mut work, &block_keys)?;
        // Validate guards per block, and collect what to release.
        let mut plan: Vec<(String, Vec<u32>, Vec<IpAddr>)> = Vec::new();
        let mut handles = std::collections::BTreeSet::new();
        for (key, its) in &by_block {
            let Some(b) = work.block(key) else {
                out.not_allocated.extend(its.iter().map(|i| i.addr));
                continue;
            };
            let mut reject = None;
            let mut ords = Vec::new();
            let mut addrs = Vec::new();
            for it in its {
                let Some(o) = b.ordinal(it.addr) else {
                    out.not_allocated.push(it.addr);
                    continue;
                };
                let Some(attr) = b.attribute(o).filter(|a| a.released_at.is_none()) else {
                    out.not_allocated.push(it.addr);
                    continue;
                };
                if let Some(h) = &it.handle
                    && attr.handle.as_deref() != Some(normalize_handle(h).as_str())
                {
                    reject = Some(format!("{}: handle {:?} != {h:?}", it.addr, attr.handle));
                }
                if let Some(s) = it.sequence
                    && b.stamp(o) != s
                {
                    reject = Some(format!(
                        "{}: sequence number {} != {s}",
                        it.addr,
                        b.stamp(o)
                    ));
                }
                if let Some(h) = &attr.handle {
                    handles.insert(h.clone());
                }
                ords.push(o);
                addrs.push(it.addr);
            }
            match reject {
                Some(reason) => out
                    .rejected
                    .extend(addrs.into_iter().map(|a| (a, reason.clone()))),
                None => plan.push((key.clone(), ords, addrs)),
            }
        }
        let hl: Vec<String> = handles.into_iter().collect();
        if !hl.is_empty() {
            let ops: Vec<ReadOp> = hl.iter().map(|h| ReadOp::get(keys::handle(h))).collect();
            let mut resp = self.store.read(&ops)?;
            for (i, h) in hl.iter().enumerate() {
                work.load_handle(h, take_get(&mut resp.results, i).as_ref())?;
            }
        }
        for (key, ords, addrs) in plan {
            if ords.is_empty() {
                continue;
            }
            let mut dec: BTreeMap<String, i64> = BTreeMap::new();
            let Some(b) = work.block(&key) else { continue };
            for &o in &ords {
                if let Some(h) = b.attribute(o).and_then(|a| a.handle.clone()) {
                    *dec.entry(h).or_insert(0) += 1;
                }
            }
            let cidr = b.cidr;
            if let Some(b) = work.block_mut(&key) {
                b.release(&ords, now);
            }
            for (h, n) in dec {
                work.handle_add(&h, &cidr, -n);
            }
            out.released.extend(addrs);
        }
        self.drop_unselected_affinities(&mut work, &env, now)?;
        self.commit(work, now, env.cooldown())?;
        Ok(out)
    }

    /// a host block that this release empties, and whose pool's node selector no
    /// longer matches its owner's Node labels, loses its affinity (and, being empty and
    /// unaffine, is deleted in the same transaction). One extra read, only when needed.
    pub(crate) fn drop_unselected_affinities(
        &self,
        work: &mut Work,
        env: &Env,
        now: Nanos,
    ) -> Result<(), IpamError> {
        let mut candidates: Vec<(String, String, &Pool)> = Vec::new();
        for (key, l) in &work.blocks {
            let Some(b) = l.block.as_ref().filter(|_| l.dirty) else {
                continue;
            };
            let Some(Owner::Host(host)) = b.owner() else {
                continue;
            };
            let Some(pool) = env.pool_of_net(&b.cidr).filter(|p| !p.selects_every_node) else {
                continue;
            };
            let mut t = b.clone();
            t.gc(now, env.cooldown());
            if t.is_empty() {
                candidates.push((key.clone(), host, pool));
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let hosts: Vec<String> = candidates
            .iter()
            .map(|(_, h, _)| h.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut labels: HashMap<String, Labels> = HashMap::new();
        for chunk in hosts.chunks(self.store.max_txn_ops().max(1)) {
            let ops: Vec<ReadOp> = chunk
                .iter()
                .map(|h| ReadOp::get(resource_key("Node", None, h)))
                .collect();
            let mut resp = self.store.read(&ops)?;
            for (i, h) in chunk.iter().enumerate() {
                labels.insert(h.clone(), labels_of(take_get(&mut resp.results, i))?);
            }
        }
        for (key, host, pool) in candidates {
            let selected = labels
                .get(&host)
                .is_some_and(|l| pool.node_selector.matches(l));
            if selected {
                continue;
            }
            if let Some(b) = work.block_mut(&key) {
                let owner = Owner::Host(host);
                let net = b.cidr;
                b.affinity = None;
                b.affinity_claim_time = None;
                work.delete(keys::affinity(&owner, &net));
            }
        }
        Ok(())
    }

    /// `release_by_handle`: releases every address of the handle and deletes it, in one
    /// transaction. Returns the addresses released.
    ///
    /// Errors: `HandleNotFound`, `Contention`, `Store`, `Decode`.
    pub fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let id = normalize_handle(handle);
        check_name("handle", &id)?;
        let mut all = Vec::new();
        let mut first = true;
        loop {
            // A handle spanning more blocks than one transaction can hold is released a few
            // blocks at a time, removing them from the handle; the last step deletes it.
            match self.retrying(|| self.try_release_by_handle(&id)) {
                Ok((released, done)) => {
                    all.extend(released);
                    if done {
                        return Ok(all);
                    }
                }
                Err(IpamError::HandleNotFound { .. }) if !first => return Ok(all),
                Err(e) => return Err(e),
            }
            first = false;
        }
    }

    pub(crate) fn try_release_by_handle(&self, id: &str) -> Result<(Vec<IpAddr>, bool), IpamError> {
        let now = self.now();
        let mut b = Batch::default();
        let hi = b.push(ReadOp::get(keys::handle(id)));
        let env_idx = self.env_reads(&mut b);
        let mut resp = self.store.read(&b.ops)?;
        let kv = take_get(&mut resp.results, hi).ok_or_else(|| IpamError::HandleNotFound {
            handle: id.to_owned(),
        })?;
        let env = self.env_parse(&mut resp.results, env_idx)?;
        let mut work = Work::default();
        work.load_handle(id, Some(&kv))?;
        let listed: Vec<String> = work
            .handles
            .get(id)
            .map(|l| {
                l.handle
                    .blocks
                    .keys()
                    .filter_map(|c| c.parse::<IpNet>().ok())
                    .map(|n| keys::block(&n))
                    .collect()
            })
            .unwrap_or_default();
        let per_txn = (self.store.max_txn_ops().saturating_sub(4) / 3).max(1);
        let done = listed.len() <= per_txn;
        let listed: Vec<String> = listed.into_iter().take(per_txn).collect();
        self.load_blocks(&mut work, &listed)?;
        let mut released = Vec::new();
        if !done && let Some(l) = work.handles.get_mut(id) {
            for key in &listed {
                if let Some(net) = keys::parse_block(key.as_bytes()) {
                    l.handle.blocks.remove(&net.to_string());
                }
            }
            l.dirty = true;
        }
        for key in &listed {
            let Some(b) = work.block(key) else { continue };
            let ords: Vec<u32> = b
                .live()
                .filter(|(_, a)| a.handle.as_deref() == Some(id))
                .map(|(o, _)| o)
                .collect();
            if ords.is_empty() {
                continue;
            }
            released.extend(ords.iter().map(|&o| b.addr(o)));
            if let Some(b) = work.block_mut(key) {
                b.release(&ords, now);
            }
        }
        if done && let Some(l) = work.handles.get_mut(id) {
            l.handle.blocks.clear();
            l.dirty = true;
        }
        self.drop_unselected_affinities(&mut work, &env, now)?;
        self.commit(work, now, env.cooldown())?;
        Ok((released, done))
    }
}
