//! Assignment: `auto_assign`, `assign_ip` and `ensure_block`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use calico_datastore::{Compare, KeyValue, ReadOp, ReadResult, Revision, Store};
use calico_model::resources::Labels;
use calico_model::resources::ipam::AllowedUse;
use ipnet::IpNet;

use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::net::{base, block_of, last, overlaps, start_index};
use crate::pools::Pool;
use crate::records::{AffinityRecord, AffinityState, Nanos, Owner};
use crate::resources::{kind_prefix, resource_key};
use crate::work::{Work, decode, decode_affinity, encode};

use crate::ipam::*;

/// The block limit when neither the request nor the IPAM configuration sets one.
const DEFAULT_BLOCK_LIMIT: usize = 20;

/// The IPAM configuration's block limit (`maxBlocksPerHost`, where 0 means unset).
fn config_block_limit(env: &Env) -> Option<usize> {
    usize::try_from(env.config.max_blocks_per_host)
        .ok()
        .filter(|c| *c > 0)
}

/// A block owned by someone else may be reclaimed only this long after its claim.
pub(crate) const RECLAIM_GUARD: Nanos = 60_000_000_000;

/// An `auto_assign` request. `AutoAssignRequest::default()` asks for nothing, for a workload.
#[derive(Clone, Debug)]
pub struct AutoAssignRequest {
    /// IPv4 addresses wanted.
    pub num4: usize,
    /// IPv6 addresses wanted.
    pub num6: usize,
    /// Handle ID (cut at the first `\r`).
    pub handle: Option<String>,
    /// Owner attributes.
    pub attrs: BTreeMap<String, String>,
    /// The host.
    pub host: String,
    /// Requested IPv4 pools (names or CIDRs), in order.
    pub pools4: Option<Vec<String>>,
    /// Requested IPv6 pools.
    pub pools6: Option<Vec<String>>,
    /// The request's block limit (`None`: the IPAM configuration's, else 20; a configured
    /// limit caps it).
    pub max_blocks_per_host: Option<NonZeroU32>,
    /// The intended use (pools must allow it).
    pub intended_use: AllowedUse,
    /// The workload's namespace.
    pub namespace: Option<String>,
    /// Windows host: new blocks pre-allocate their first 3 and last ordinals under handle
    /// `windows-reserved-ipam-handle`, and pools with blocks under 16 addresses are skipped.
    pub windows_reserved: bool,
}

impl Default for AutoAssignRequest {
    fn default() -> Self {
        AutoAssignRequest {
            num4: 0,
            num6: 0,
            handle: None,
            attrs: BTreeMap::new(),
            host: String::new(),
            pools4: None,
            pools6: None,
            max_blocks_per_host: None,
            intended_use: AllowedUse::Workload,
            namespace: None,
            windows_reserved: false,
        }
    }
}

/// Why fewer addresses of a family than requested were assigned. Displays as the allocator's
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shortfall {
    /// The host owns its maximum of blocks (`block limit reached`).
    BlockLimit,
    /// Automatic block allocation is off (`auto-allocation of blocks is disabled`).
    AutoAllocationDisabled,
    /// No pool has a block left to claim (`no free blocks`).
    NoFreeBlocks,
    /// The host's own blocks are full and strict affinity forbids borrowing.
    StrictAffinity,
    /// No address was left to borrow in the candidate pools (their CIDRs, in order).
    PoolsExhausted {
        /// The candidate pools' CIDRs.
        pools: Vec<String>,
    },
    /// A later transaction of a request too large for one failed after earlier ones
    /// committed (the error's message); what they assigned stays assigned.
    Interrupted {
        /// The error.
        message: String,
    },
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shortfall::BlockLimit => f.write_str("block limit reached"),
            Shortfall::AutoAllocationDisabled => {
                f.write_str("auto-allocation of blocks is disabled")
            }
            Shortfall::NoFreeBlocks => f.write_str("no free blocks"),
            Shortfall::StrictAffinity => {
                f.write_str("No more free affine blocks and strict affinity enabled")
            }
            Shortfall::PoolsExhausted { pools } => {
                write!(f, "No IPs available in pools: [{}]", pools.join(" "))
            }
            Shortfall::Interrupted { message } => f.write_str(message),
        }
    }
}

/// The result of `auto_assign`: addresses with the block prefix length, and shortfall reasons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// IPv4 addresses in allocation order.
    pub v4: Vec<IpNet>,
    /// IPv6 addresses in allocation order.
    pub v6: Vec<IpNet>,
    /// Why fewer IPv4 addresses than requested were assigned.
    pub shortfall4: Vec<Shortfall>,
    /// Why fewer IPv6 addresses than requested were assigned.
    pub shortfall6: Vec<Shortfall>,
}

/// An `assign_ip` request.
#[derive(Clone, Debug)]
pub struct AssignIpRequest {
    /// The address.
    pub addr: IpAddr,
    /// Handle ID.
    pub handle: Option<String>,
    /// Owner attributes.
    pub attrs: BTreeMap<String, String>,
    /// The host.
    pub host: String,
    /// The intended use.
    pub intended_use: AllowedUse,
}

/// One family's (addresses, shortfall reasons, `Some((owned, cap))` if the block limit
/// stopped it).
pub(crate) type FamilyOutcome = (Vec<IpNet>, Vec<Shortfall>, Option<(usize, usize)>);

impl Ipam {
    /// `auto_assign`: IPv4 then IPv6 addresses for a host, in one transaction.
    ///
    /// Errors: `RequestedPool`, `NoPools`, `NoQualifiedPool`, `BlockLimit`
    /// (with what was assigned and committed), `Contention`, `Store`, `Decode`, `BadPool`.
    pub fn auto_assign(&self, req: &AutoAssignRequest) -> Result<Assigned, IpamError> {
        let intended_use = req.intended_use;
        // Normally one transaction; a request too large for the store's operation limit is
        // committed in several, each self-consistent.
        let mut total = Assigned::default();
        let mut rest = req.clone();
        loop {
            let mut first = self.optimistic;
            // The gap search's first read, when the optimistic plan found that a claim is
            // needed: sent with the fresh read, so a claim costs one round trip less.
            let mut hint: Vec<ReadOp> = Vec::new();
            let attempt = self.retrying_stale(|| {
                if std::mem::take(&mut first) {
                    // One optimistic transaction planned on the mirror; whatever keeps it
                    // from committing (a conflict, a stale or uncovered view, an error
                    // decided on unverified data) falls back to a fresh read at once.
                    if let Ok(Some(r)) = self.try_auto_assign(&rest, intended_use, true, &mut hint)
                    {
                        return Ok(Some(r));
                    }
                }
                // A fresh read whose plan still finds its view stale is read again.
                self.try_auto_assign(&rest, intended_use, false, &mut hint)
            });
            let (got, truncated) = match attempt {
                Ok(r) => r,
                Err(IpamError::BlockLimit {
                    host,
                    owned,
                    limit,
                    assigned,
                }) => {
                    let mut all: Vec<IpNet> = total.v4.into_iter().chain(total.v6).collect();
                    all.extend(assigned);
                    return Err(IpamError::BlockLimit {
                        host,
                        owned,
                        limit,
                        assigned: all,
                    });
                }
                Err(e) if total.v4.is_empty() && total.v6.is_empty() => return Err(e),
                Err(e) => {
                    // What earlier transactions committed stays assigned; report it.
                    total.shortfall4.push(Shortfall::Interrupted {
                        message: e.to_string(),
                    });
                    return Ok(total);
                }
            };
            total.v4.extend(got.v4);
            total.v6.extend(got.v6);
            total.shortfall4 = got.shortfall4;
            total.shortfall6 = got.shortfall6;
            if !truncated {
                return Ok(total);
            }
            rest.num4 = req.num4.saturating_sub(total.v4.len());
            rest.num6 = req.num6.saturating_sub(total.v6.len());
            if rest.num4 == 0 && rest.num6 == 0 {
                return Ok(total);
            }
        }
    }

    /// One attempt of `auto_assign`: on a fresh read (two round trips), or with
    /// `optimistic`, on the mirror (one round trip); `Ok(None)` when the mirror cannot
    /// serve the request (never on a fresh read). An optimistic plan that needs a claim
    /// leaves the claim's first read in `hint`; a fresh read sends `hint` along.
    pub(crate) fn try_auto_assign(
        &self,
        req: &AutoAssignRequest,
        intended_use: AllowedUse,
        optimistic: bool,
        hint: &mut Vec<ReadOp>,
    ) -> Result<Option<(Assigned, bool)>, IpamError> {
        let now = self.now();
        check_name("host", &req.host)?;
        let owner = Owner::Host(req.host.clone());
        let handle = req.handle.as_deref().map(normalize_handle);
        if let Some(h) = &handle {
            check_name("handle", h)?;
        }
        let mut b = Batch::default();
        let env_idx = self.env_reads(&mut b);
        let node_i = b.push(ReadOp::get(resource_key("Node", None, &req.host)));
        let ns_i = req
            .namespace
            .as_ref()
            .map(|ns| b.push(ReadOp::get(resource_key("Namespace", None, ns))));
        let handle_i = handle
            .as_ref()
            .map(|h| b.push(ReadOp::get(keys::handle(h))));
        let fams: Vec<(bool, usize)> = [(true, req.num4), (false, req.num6)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut fam_reads = Vec::new();
        // Pre-read the host's blocks as last seen, within the batch limit (the rest, if any,
        // in a second read).
        let room = self.store.max_txn_ops().saturating_sub(b.ops.len() + 2) / fams.len().max(1);
        for &(v4, _) in &fams {
            let prefix = keys::affinity_family_prefix(&owner, v4);
            let aff_i = b.push(ReadOp::prefix(prefix.clone(), 0));
            let cached: Vec<String> = lock_cache(&self.cache)
                .get(&prefix)
                .cloned()
                .unwrap_or_default();
            let gets: Vec<(String, usize)> = cached
                .into_iter()
                .take(room)
                .map(|k| {
                    let i = b.push(ReadOp::get(k.clone()));
                    (k, i)
                })
                .collect();
            fam_reads.push((v4, prefix, aff_i, gets));
        }
        let handle_key = handle.as_deref().map(keys::handle);
        let hint_at = (!optimistic
            && !hint.is_empty()
            && b.ops.len() + hint.len() <= self.store.max_txn_ops())
        .then(|| {
            let at = b.ops.len();
            b.ops.extend(hint.iter().cloned());
            at
        });
        let mirrored = if optimistic {
            match lock_cache(&self.mirror).answer(&b.ops, |k| {
                handle_key.as_ref().is_some_and(|h| h.as_bytes() == k)
            }) {
                Some(a) => Some(a),
                None => return Ok(None),
            }
        } else {
            None
        };
        let (mut results, guards) = match mirrored {
            Some(a) => a,
            None => {
                let resp = self.store.read(&b.ops)?;
                lock_cache(&self.mirror).record(&b.ops, &resp);
                // The ranges read (pools, reservations, the host's affinities) are guarded
                // too: the plan acts on all of them, and a transaction that guarded a range
                // keeps it in the mirror across its own writes (a claim's new affinity).
                let guards = b
                    .ops
                    .iter()
                    .filter_map(|op| match op {
                        ReadOp::Range { start, end, .. } => Some(Compare::range_unmodified(
                            start.clone(),
                            end.clone(),
                            resp.revision,
                        )),
                        ReadOp::Get { .. } | ReadOp::Keys { .. } => None,
                    })
                    .collect();
                (resp.results, guards)
            }
        };
        let prefetched = hint_at
            .filter(|&at| results.len() >= at)
            .map(|at| (b.ops.split_off(at), results.split_off(at)));
        // Each pool is compared by key too: a range compare does not see a deleted pool.
        let mut guards = guards;
        if let Some(ReadResult::Range(pools)) = results.get(env_idx.pools) {
            guards.extend(
                pools
                    .kvs
                    .iter()
                    .map(|kv| Compare::mod_revision(kv.key.clone(), kv.mod_revision)),
            );
        }
        let r = &mut results;
        let env = self.env_parse(r, env_idx)?;
        let node_labels = labels_of(take_get(r, node_i))?;
        let ns_labels = match ns_i {
            Some(i) => labels_of(take_get(r, i))?,
            None => Labels::new(),
        };
        let mut work = Work::default();
        work.windows_reserved = req.windows_reserved;
        work.optimistic = optimistic;
        work.guards = guards;
        work.prefetched = prefetched;
        if let (Some(h), Some(i)) = (&handle, handle_i) {
            work.load_handle(h, take_get(r, i).as_ref())?;
        }
        // Per family: candidates, the host's affinities (address order), cached blocks.
        struct Fam<'e> {
            v4: bool,
            n: usize,
            prefix: String,
            candidates: Vec<&'e Pool>,
            requested: bool,
            /// With each affinity's state (`None`: its value does not decode).
            affinities: Vec<(IpNet, KeyValue, Option<AffinityState>)>,
        }
        let mut fam_state = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for ((v4, prefix, aff_i, gets), &(_, n)) in fam_reads.into_iter().zip(&fams) {
            let requested = if v4 { &req.pools4 } else { &req.pools6 };
            let candidates = Self::candidates(
                &env,
                v4,
                requested.as_deref(),
                &req.host,
                &node_labels,
                &ns_labels,
                intended_use,
            )?;
            let candidates: Vec<&Pool> = if req.windows_reserved {
                let c: Vec<&Pool> = candidates
                    .into_iter()
                    .filter(|p| p.block_len() >= 16)
                    .collect();
                if c.is_empty() {
                    return Err(IpamError::NoQualifiedPool {
                        family: family(v4),
                        intended_use: format!(
                            "{} (Windows: blocks of at least 16 addresses)",
                            use_str(intended_use)
                        ),
                    });
                }
                c
            } else {
                candidates
            };
            let mut affinities = Vec::new();
            for kv in take_range(r, aff_i) {
                if let Some((_, net)) = keys::parse_affinity(&kv.key) {
                    let state = decode_affinity(&kv.key, &kv.value).ok().map(|a| a.state);
                    work.known_affinities.insert(
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        kv.mod_revision,
                    );
                    affinities.push((net, kv, state));
                }
            }
            // Key order is text order: use them in address order.
            affinities.sort_by_key(|(net, _, _)| (base(net), net.prefix_len()));
            let wanted: Vec<String> = affinities.iter().map(|(n, _, _)| keys::block(n)).collect();
            // Blocks that may be skipped when still full: confirmed affinities of blocks in
            // candidate pools.
            let skippable: std::collections::HashSet<&String> = affinities
                .iter()
                .zip(&wanted)
                .filter(|((net, _, state), _)| {
                    *state == Some(AffinityState::Confirmed)
                        && candidates.iter().any(|p| p.contains_net(net))
                })
                .map(|(_, key)| key)
                .collect();
            let got: Vec<(String, Option<KeyValue>)> = gets
                .into_iter()
                .filter(|(k, _)| wanted.contains(k))
                .map(|(k, i)| {
                    let kv = take_get(r, i);
                    (k, kv)
                })
                .collect();
            let still_full: Vec<bool> = {
                let full = lock_cache(&self.full);
                got.iter()
                    .map(|(k, kv)| {
                        kv.as_ref().is_some_and(|kv| {
                            skippable.contains(k) && full.get(k) == Some(&kv.mod_revision)
                        })
                    })
                    .collect()
            };
            for ((k, kv), still) in got.into_iter().zip(still_full) {
                if still {
                    work.known_full.insert(k);
                    continue;
                }
                // A block as this allocator last wrote it is not decoded again.
                let mine = kv.as_ref().and_then(|kv| {
                    let d = lock_cache(&self.decoded);
                    let (rev, b) = d.get(&k)?;
                    (*rev == kv.mod_revision).then(|| b.clone())
                });
                match (mine, &kv) {
                    (Some(b), Some(kv)) => work.load_decoded_block(k, kv.mod_revision, b),
                    _ => work.load_block(k, kv.as_ref())?,
                }
            }
            missing.extend(
                wanted
                    .into_iter()
                    .filter(|k| !work.blocks.contains_key(k) && !work.known_full.contains(k)),
            );
            fam_state.push(Fam {
                v4,
                n,
                prefix,
                candidates,
                requested: requested.as_ref().is_some_and(|v| !v.is_empty()),
                affinities,
            });
        }
        if optimistic && !missing.is_empty() {
            return Ok(None);
        }
        self.load_blocks(&mut work, &missing)?;

        let mut out = Assigned::default();
        let mut limit_error = None;
        for f in &fam_state {
            let mut owned: Vec<IpNet> = Vec::new();
            for (net, kv, state) in &f.affinities {
                if f.candidates.iter().any(|p| p.contains_net(net)) {
                    owned.push(*net);
                    // Repair a non-confirmed affinity (reference data) on sight.
                    match state {
                        Some(AffinityState::Confirmed) => {}
                        Some(_) => self.repair_affinity(&mut work, &owner, net, kv, now),
                        None => {
                            // Not decodable: report why.
                            decode_affinity(&kv.key, &kv.value)?;
                        }
                    }
                } else if !f.requested {
                    // The pool no longer selects the host: release the affinity if empty.
                    let key = keys::block(net);
                    let empty = work.block(&key).is_none_or(|b| b.is_empty());
                    if empty
                        && work
                            .block(&key)
                            .is_none_or(|b| b.owner().as_ref() == Some(&owner))
                    {
                        work.compare(
                            String::from_utf8_lossy(&kv.key).into_owned(),
                            Some(kv.mod_revision),
                        );
                        work.delete(String::from_utf8_lossy(&kv.key).into_owned());
                        work.delete_block(&key);
                    }
                }
            }
            let (got, reasons, limit) = self.assign_family(
                &mut work,
                &env,
                f.v4,
                f.n,
                &f.candidates,
                owned,
                &owner,
                handle.as_deref(),
                &req.attrs,
                req.max_blocks_per_host,
                now,
            )?;
            if f.v4 {
                out.v4 = got;
                out.shortfall4 = reasons;
            } else {
                out.v6 = got;
                out.shortfall6 = reasons;
            }
            if let Some((owned, limit)) = limit {
                limit_error = Some((owned, limit));
                break;
            }
            if work.truncated || work.stale {
                break;
            }
        }
        if work.stale {
            if let Some(h) = work.claim_hint.take() {
                *hint = h;
            }
            return Ok(None);
        }
        if optimistic {
            let pools_prefix = kind_prefix("IPPool", None);
            let mut ranges: Vec<&str> = fam_state.iter().map(|f| f.prefix.as_str()).collect();
            ranges.push(&pools_prefix);
            // Node labels matter only through pool node selectors.
            let node_key = env
                .pools
                .iter()
                .filter(|p| p.enabled)
                .all(|p| p.selects_every_node)
                .then(|| resource_key("Node", None, &req.host));
            Self::drop_unused_guards(&mut work, &owner, &ranges, node_key.as_deref());
        }
        let truncated = work.truncated;
        // Keep the host's block keys for the next request (revalidated by revision).
        let mut new_cache: Vec<(String, Vec<String>)> = Vec::new();
        for f in &fam_state {
            let fam_prefix = keys::block_family_prefix(f.v4);
            let mut keys_: Vec<String> = work
                .blocks
                .iter()
                .filter(|(k, l)| {
                    k.starts_with(&fam_prefix)
                        && l.block
                            .as_ref()
                            .is_some_and(|b| b.owner().as_ref() == Some(&owner))
                })
                .map(|(k, _)| k.clone())
                .chain(
                    work.known_full
                        .iter()
                        .filter(|k| k.starts_with(&fam_prefix))
                        .cloned(),
                )
                .collect();
            keys_.sort();
            new_cache.push((f.prefix.clone(), keys_));
        }
        // Which of our blocks are full after this operation (for the next one).
        let fullness: Vec<(String, bool, Option<Revision>, bool)> = work
            .blocks
            .iter()
            .filter_map(|(k, l)| {
                let b = l.block.as_ref()?;
                let full = b.owner().as_ref() == Some(&owner)
                    && b.unallocated.is_empty()
                    && b.attributes.iter().all(|a| a.released_at.is_none());
                Some((k.clone(), l.dirty, l.rev, full))
            })
            .collect();
        let committed = self.commit(work, now, env.cooldown())?;
        {
            let mut c = lock_cache(&self.cache);
            for (p, k) in new_cache {
                c.insert(p, k);
            }
        }
        {
            let mut f = lock_cache(&self.full);
            for (k, dirty, rev, full) in fullness {
                let rev = if dirty {
                    committed.filter(|r| *r > 0)
                } else {
                    rev
                };
                match rev {
                    Some(r) if full => {
                        f.insert(k, r);
                    }
                    _ => {
                        f.remove(&k);
                    }
                }
            }
        }
        if let Some((owned, limit)) = limit_error {
            let mut assigned = out.v4;
            assigned.extend(out.v6);
            return Err(IpamError::BlockLimit {
                host: req.host.clone(),
                owned,
                limit,
                assigned,
            });
        }
        Ok(Some((out, truncated)))
    }

    /// Drops, from a completed optimistic plan, the mirror guards that cannot change its
    /// outcome into a wrong one: those of the host's own blocks the plan neither changed nor
    /// took from (blocks skipped as known full, blocks it did not need), of the ranges
    /// starting at `ranges` (the host's affinity prefixes and the pools), and of the Node
    /// `node_key` when no enabled pool looks at node labels.
    ///
    /// Why this is safe: the optimistic plan never claims, borrows or stops at the block
    /// limit — anything short of satisfying the request from the host's affine blocks marks
    /// it stale and redoes it on a fresh read (`assign_family`). So when it completes, the
    /// only thing an untouched block of ours contributed is "not used": had another client
    /// freed an address in a block the mirror holds as full, the outcome (addresses from
    /// another affine block with room) is still one a serial execution could give — the
    /// request ran just before that release — and the reference allocator, which reads the
    /// affine blocks one by one without a snapshot, behaves the same. What a stale "full"
    /// must never cause is an unnecessary claim, and that cannot happen here: a plan that
    /// would claim goes to the fresh read, which re-reads every block of the host (a freed
    /// block's revision no longer matches the one recorded as full, so it is decoded and
    /// used). Likewise for the affinity prefix: a block claimed for the host meanwhile is
    /// one more block the plan did not need, and a block that stopped being the host's is
    /// either not used or, if used, compared by key (its value names its affinity). And for
    /// the pools range: pools only decide which of the host's affine blocks count, and a
    /// pool created meanwhile holds none of them until a claim (a fresh read); a pool
    /// changed or deleted meanwhile is still caught, by its key compare. Blocks
    /// the plan writes keep their compare (added by `Work::commit_txn`), and so do blocks of
    /// other owners (their owner decided a skip or an affinity repair), affinity keys the
    /// plan repairs or releases (compared by key), each pool by key, the reservations (a new
    /// one must never be handed out), configuration, a Node whose labels select pools, the
    /// Namespace and the handle.
    ///
    /// Each such compare costs etcd a read (a block value of a few KB, or a range), and a
    /// host that filled `k` blocks carried `k` of them on every allocation.
    pub(crate) fn drop_unused_guards(
        work: &mut Work,
        owner: &Owner,
        ranges: &[&str],
        node_key: Option<&str>,
    ) {
        let guards = std::mem::take(&mut work.guards);
        let unused_block = |key: &[u8]| -> bool {
            let Ok(key) = std::str::from_utf8(key) else {
                return false;
            };
            if work.known_full.contains(key) {
                return true;
            }
            work.blocks.get(key).is_some_and(|l| {
                !l.dirty
                    && l.block
                        .as_ref()
                        .is_some_and(|b| b.owner().as_ref() == Some(owner))
            })
        };
        let node = |key: &[u8]| node_key.is_some_and(|n| n.as_bytes() == key);
        let kept: Vec<Compare> = guards
            .into_iter()
            .filter(|g| match g {
                Compare::ModRevision { key, .. } => !unused_block(key) && !node(key),
                Compare::Absent { key } => !node(key),
                Compare::RangeUnmodified { start, .. } => {
                    !ranges.iter().any(|p| p.as_bytes() == start.as_slice())
                }
            })
            .collect();
        work.guards = kept;
    }

    /// Repairs an affinity of `owner` that is not confirmed (left by Calico's multi-write
    /// claim or release): its block names the owner → confirm it and rewrite the block
    /// unchanged but for its sequence number, so that a release holding the old block
    /// revision (Calico's affinity release in progress) fails; its block is missing →
    /// create the block (the claim was interrupted after its first write); its block names
    /// someone else → delete the affinity. One transaction with the request's writes.
    pub(crate) fn repair_affinity(
        &self,
        work: &mut Work,
        owner: &Owner,
        net: &IpNet,
        kv: &KeyValue,
        now: Nanos,
    ) {
        let key = keys::block(net);
        let aff_key = String::from_utf8_lossy(&kv.key).into_owned();
        work.compare(aff_key.clone(), Some(kv.mod_revision));
        match work.block(&key).map(Block::owner) {
            Some(Some(o)) if &o == owner => {
                if work.block_mut(&key).is_some() {
                    work.put(aff_key, encode(&AffinityRecord::confirmed()));
                }
            }
            Some(_) => work.delete(aff_key),
            None => {
                let mut b = Block::new(*net, Some(owner), now);
                if work.windows_reserved {
                    b.reserve_windows();
                }
                work.create_block(b);
                work.put(aff_key, encode(&AffinityRecord::confirmed()));
            }
        }
    }

    /// Takes up to `need` addresses from the block at `key` (garbage-collecting first);
    /// writes the block only if something was taken.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take_from(
        work: &mut Work,
        key: &str,
        need: usize,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
        reserved: &[(u128, u128)],
        now: Nanos,
        cooldown: Nanos,
    ) -> Vec<IpNet> {
        let Some(b) = work.block(key) else {
            return Vec::new();
        };
        if work.is_broken(key) {
            // Refused: the operation fails naming the block and its broken invariant.
            let _ = work.block_mut(key);
            return Vec::new();
        }
        // With nothing reserved, a free ordinal is certainly taken (garbage collection only
        // frees more); otherwise try on a copy first.
        let certain =
            need > 0 && reserved.is_empty() && b.unallocated.iter().any(|&o| !b.is_allocated(o));
        if !certain {
            let mut trial = b.clone();
            trial.gc(now, cooldown);
            if trial.take(need, handle, attrs, reserved).is_empty() {
                return Vec::new();
            }
        }
        let Some(b) = work.block_mut(key) else {
            return Vec::new();
        };
        b.gc(now, cooldown);
        let got = b.take(need, handle, attrs, reserved);
        let len = b.cidr.prefix_len();
        let cidr = b.cidr;
        let addrs: Vec<IpNet> = got
            .iter()
            .filter_map(|&o| IpNet::new(b.addr(o), len).ok())
            .collect();
        if let Some(h) = handle {
            work.handle_add(h, &cidr, addrs.len() as i64);
        }
        addrs
    }

    /// The main loop for one family. Returns (addresses, shortfall reasons,
    /// `Some((owned, cap))` when the block limit stopped it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assign_family(
        &self,
        work: &mut Work,
        env: &Env,
        v4: bool,
        n: usize,
        candidates: &[&Pool],
        mut owned: Vec<IpNet>,
        owner: &Owner,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
        req_limit: Option<NonZeroU32>,
        now: Nanos,
    ) -> Result<FamilyOutcome, IpamError> {
        let reserved = env.reservations.family(v4);
        let cooldown = env.cooldown();
        let mut out = Vec::new();
        let mut need = n;
        let mut reasons = Vec::new();
        let cap = {
            let configured = config_block_limit(env);
            let requested = req_limit.map(|r| usize::try_from(r.get()).unwrap_or(usize::MAX));
            match (requested, configured) {
                (Some(r), Some(c)) => r.min(c),
                (Some(r), None) => r,
                (None, Some(c)) => c,
                (None, None) => DEFAULT_BLOCK_LIMIT,
            }
        };
        let mut next = 0;
        let mut no_borrow = false;
        let mut limit = None;
        loop {
            while next < owned.len() && need > 0 {
                let net = owned[next];
                next += 1;
                if env.reservations.covers(&net) {
                    continue;
                }
                let key = keys::block(&net);
                if work.known_full.contains(&key)
                    || work
                        .block(&key)
                        .is_some_and(|b| b.owner().as_ref() != Some(owner))
                {
                    continue;
                }
                if work.near_limit(self.store.max_txn_ops()) {
                    work.truncated = true;
                    return Ok((out, Vec::new(), None));
                }
                let got = Self::take_from(work, &key, need, handle, attrs, reserved, now, cooldown);
                need -= got.len();
                out.extend(got);
                if work.has_refused() {
                    return Ok((out, Vec::new(), None));
                }
            }
            if need == 0 {
                break;
            }
            if work.optimistic {
                // Claims, borrowing and the block limit are decided on a fresh read; when a
                // claim looks likely, its first read goes along with that fresh read.
                if owned.len() < cap && env.config.auto_allocate_blocks {
                    work.claim_hint = candidates.first().map(|pool| self.gap_first_read(pool));
                }
                work.stale = true;
                return Ok((out, Vec::new(), None));
            }
            if work.near_limit(self.store.max_txn_ops()) {
                work.truncated = true;
                return Ok((out, Vec::new(), None));
            }
            if owned.len() >= cap {
                reasons.push(Shortfall::BlockLimit);
                limit = Some((owned.len(), cap));
                no_borrow = true;
                break;
            }
            if !env.config.auto_allocate_blocks {
                reasons.push(Shortfall::AutoAllocationDisabled);
                no_borrow = true;
                break;
            }
            match self.claim(work, env, candidates, owner, now)? {
                Some(net) => owned.push(net),
                None => {
                    reasons.push(Shortfall::NoFreeBlocks);
                    break;
                }
            }
        }
        if need > 0 && !no_borrow {
            if env.config.strict_affinity {
                reasons.push(Shortfall::StrictAffinity);
            } else {
                let got = self.borrow(
                    work,
                    env,
                    candidates,
                    owner.name(),
                    need,
                    handle,
                    attrs,
                    now,
                )?;
                need -= got.len();
                out.extend(got);
                if need > 0 && !work.truncated {
                    let pools = candidates.iter().map(|p| p.cidr.to_string()).collect();
                    reasons.push(Shortfall::PoolsExhausted { pools });
                }
            }
        }
        if need == 0 {
            reasons.clear();
        }
        Ok((out, reasons, limit))
    }

    /// Claims a new block (or reclaims an empty one) for `owner`, staged in `work`: the
    /// block and a confirmed affinity, both compared absent.
    pub(crate) fn claim(
        &self,
        work: &mut Work,
        env: &Env,
        candidates: &[&Pool],
        owner: &Owner,
        now: Nanos,
    ) -> Result<Option<IpNet>, IpamError> {
        for pool in candidates {
            if let Some(i) = self.find_gap(
                work,
                env,
                pool,
                start_index(owner.name(), pool.block_count()),
            )? {
                let net = pool.block(i);
                let mut block = Block::new(net, Some(owner), now);
                if work.windows_reserved {
                    block.reserve_windows();
                }
                work.create_block(block);
                work.put_affinity(owner, &net);
                return Ok(Some(net));
            }
        }
        // Reclaim an empty block someone else has held for at least the guard time: what
        // Calico does in separate writes (release the old affinity, delete the empty block,
        // claim it anew) as one transaction guarded by the block's revision.
        let now_s = crate::block::secs(now);
        let guard_s = (RECLAIM_GUARD / 1_000_000_000) as i64;
        for pool in candidates {
            let mut found: Vec<(IpNet, KeyValue, Block, Owner)> = Vec::new();
            for kv in self.pool_blocks(pool, false)? {
                let Some(net) = keys::parse_block(&kv.key) else {
                    continue;
                };
                // Values that do not decode are skipped here (`check` reports them).
                let Ok(b) = decode::<Block>(&kv.key, &kv.value) else {
                    continue;
                };
                let Some(old) = b.owner() else { continue };
                let guard_passed = b
                    .affinity_claim_time
                    .is_none_or(|t| t.saturating_add(guard_s) <= now_s);
                if &old != owner
                    && guard_passed
                    && b.is_empty()
                    && !work.blocks.contains_key(&keys::block(&net))
                    && crate::work::block_problem(&keys::block(&net), &b).is_none()
                {
                    found.push((net, kv, b, old));
                }
            }
            found.sort_by_key(|(net, ..)| base(net));
            if let Some((net, kv, _, old)) = found.into_iter().next() {
                let key = keys::block(&net);
                work.load_block(key, Some(&kv))?;
                let mut block = Block::new(net, Some(owner), now);
                if work.windows_reserved {
                    block.reserve_windows();
                }
                work.create_block(block);
                work.delete(keys::affinity(&old, &net));
                work.put_affinity(owner, &net);
                return Ok(Some(net));
            }
        }
        Ok(None)
    }

    /// The blocks whose keys share `pool`'s key prefix (a superset of the pool's blocks),
    /// in key order; keys only when `keys_only`.
    pub(crate) fn pool_blocks(
        &self,
        pool: &Pool,
        keys_only: bool,
    ) -> Result<Vec<KeyValue>, IpamError> {
        let prefix = keys::pool_block_prefix(&pool.cidr);
        let end = crate::prefix_end_of(&prefix);
        let op = if keys_only {
            ReadOp::keys(prefix, end, 0)
        } else {
            ReadOp::range(prefix, end, 0)
        };
        Ok(self
            .store
            .read(&[op])?
            .results
            .into_iter()
            .next()
            .and_then(ReadResult::into_range)
            .map(|r| r.kvs)
            .unwrap_or_default())
    }

    /// The reads of the gap search in `pool` (one round trip), also sent ahead with a
    /// fresh read when a claim is likely.
    ///
    /// Block keys are not in address order, so the search reads every block key sharing the
    /// pool's key prefix (keys only). Aligned blocks nest or are disjoint: a block that
    /// overlaps the pool and is not inside it contains the whole pool (a leftover of a
    /// deleted pool with larger blocks); those are found by key, one get per shorter prefix
    /// length.
    pub(crate) fn gap_first_read(&self, pool: &Pool) -> Vec<ReadOp> {
        let prefix = keys::pool_block_prefix(&pool.cidr);
        let end = crate::prefix_end_of(&prefix);
        let mut ops = vec![ReadOp::keys(prefix, end, 0)];
        let len = pool.cidr.prefix_len();
        let k = u8::try_from(self.store.max_txn_ops().saturating_sub(1).min(24)).unwrap_or(24);
        let first = base(&pool.cidr);
        ops.extend(
            (len.saturating_sub(k)..len)
                .map(|l| ReadOp::get(keys::block(&crate::net::net_of(first, l, pool.is_v4())))),
        );
        ops
    }

    /// The first block index of `pool`, walking from `start` with wrap, whose range overlaps
    /// no existing (or staged) block and is not wholly reserved.
    pub(crate) fn find_gap(
        &self,
        work: &Work,
        env: &Env,
        pool: &Pool,
        start: u128,
    ) -> Result<Option<u128>, IpamError> {
        let n = pool.block_count();
        let ops = self.gap_first_read(pool);
        let results = match &work.prefetched {
            Some((o, r)) if *o == ops => r.clone(),
            _ => self.store.read(&ops)?.results,
        };
        let mut existing: Vec<IpNet> = Vec::new();
        for r in results {
            match r {
                ReadResult::Range(page) => existing.extend(
                    page.kvs
                        .iter()
                        .filter_map(|kv| keys::parse_block(&kv.key))
                        .filter(|net| overlaps(net, &pool.cidr)),
                ),
                ReadResult::Get(kv) => {
                    existing.extend(kv.and_then(|kv| keys::parse_block(&kv.key)));
                }
            }
        }
        existing.extend(
            work.blocks
                .values()
                .filter_map(|l| l.block.as_ref().map(|b| b.cidr))
                .filter(|net| overlaps(net, &pool.cidr)),
        );
        existing.sort_by_key(|e| (base(e), e.prefix_len()));
        for (from, to) in [(start, n), (0, start.min(n))] {
            let mut lo = 0usize;
            let mut i = from;
            while i < to {
                let b = pool.block(i);
                while existing.get(lo).is_some_and(|e| last(e) < base(&b)) {
                    lo += 1;
                }
                let taken = existing[lo.min(existing.len())..]
                    .iter()
                    .take_while(|e| base(e) <= last(&b))
                    .any(|e| overlaps(e, &b));
                if !taken && !env.reservations.covers(&b) {
                    return Ok(Some(i));
                }
                i += 1;
            }
        }
        Ok(None)
    }

    /// Takes addresses from existing blocks of the candidate pools (anyone's), walking
    /// each pool from the host's start index.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn borrow(
        &self,
        work: &mut Work,
        env: &Env,
        candidates: &[&Pool],
        host: &str,
        mut need: usize,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
        now: Nanos,
    ) -> Result<Vec<IpNet>, IpamError> {
        let mut out = Vec::new();
        for pool in candidates {
            if need == 0 {
                break;
            }
            let start = start_index(host, pool.block_count());
            let mut blocks: Vec<(u128, String, KeyValue)> = self
                .pool_blocks(pool, false)?
                .into_iter()
                .filter_map(|kv| {
                    let net = keys::parse_block(&kv.key)?;
                    pool.contains_net(&net)
                        .then(|| (pool.index_of(base(&net)), keys::block(&net), kv))
                })
                .collect();
            blocks.sort_by_key(|(i, _, _)| (*i < start, *i));
            for (_, key, kv) in blocks {
                if need == 0 {
                    break;
                }
                if work.near_limit(self.store.max_txn_ops()) {
                    work.truncated = true;
                    return Ok(out);
                }
                // A value that does not decode is skipped, as in any listing.
                if work.load_block(key.clone(), Some(&kv)).is_err() {
                    continue;
                }
                if work
                    .block(&key)
                    .is_some_and(|b| env.reservations.covers(&b.cidr))
                {
                    continue;
                }
                let got = Self::take_from(
                    work,
                    &key,
                    need,
                    handle,
                    attrs,
                    env.reservations.family(pool.is_v4()),
                    now,
                    env.cooldown(),
                );
                need -= got.len();
                out.extend(got);
                if work.has_refused() {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// `assign_ip`: assigns one given address.
    ///
    /// Errors: `NotInPool`, `UseNotAllowed`, `Reserved`, `AlreadyAllocated`,
    /// `StrictAffinity`, `Contention`, `Store`, `Decode`.
    pub fn assign_ip(&self, req: &AssignIpRequest) -> Result<IpNet, IpamError> {
        self.retrying(|| self.try_assign_ip(req))
    }

    pub(crate) fn try_assign_ip(&self, req: &AssignIpRequest) -> Result<IpNet, IpamError> {
        let now = self.now();
        check_name("host", &req.host)?;
        let owner = Owner::Host(req.host.clone());
        let handle = req.handle.as_deref().map(normalize_handle);
        if let Some(h) = &handle {
            check_name("handle", h)?;
        }
        let env = self.env()?;
        let pool = env
            .pools
            .iter()
            .find(|p| p.enabled && p.cidr.contains(&req.addr))
            .ok_or(IpamError::NotInPool { addr: req.addr })?;
        if !pool.allowed_uses.contains(&req.intended_use) {
            return Err(IpamError::UseNotAllowed {
                pool: pool.name.clone(),
                intended_use: use_str(req.intended_use),
            });
        }
        if env.reservations.contains(req.addr) {
            return Err(IpamError::Reserved { addr: req.addr });
        }
        let net = block_of(req.addr, pool.block_size);
        let key = keys::block(&net);
        let aff_key = keys::affinity(&owner, &net);
        let mut b = Batch::default();
        let bi = b.push(ReadOp::get(key.clone()));
        let ai = b.push(ReadOp::get(aff_key.clone()));
        let hi = handle
            .as_ref()
            .map(|h| b.push(ReadOp::get(keys::handle(h))));
        let mut resp = self.store.read(&b.ops)?;
        let mut work = Work::default();
        work.load_block(key.clone(), take_get(&mut resp.results, bi).as_ref())?;
        let aff = take_get(&mut resp.results, ai);
        if let (Some(h), Some(i)) = (&handle, hi) {
            work.load_handle(h, take_get(&mut resp.results, i).as_ref())?;
        }
        match work.block(&key) {
            None => {
                work.create_block(Block::new(net, Some(&owner), now));
                work.compare(aff_key.clone(), aff.as_ref().map(|kv| kv.mod_revision));
                work.put(aff_key, encode(&AffinityRecord::confirmed()));
            }
            Some(b) => {
                if env.config.strict_affinity && b.owner().as_ref() != Some(&owner) {
                    return Err(IpamError::StrictAffinity {
                        addr: req.addr,
                        block: net,
                        host: req.host.clone(),
                    });
                }
            }
        }
        let cooldown = env.cooldown();
        let Some(b) = work.block(&key) else {
            return Err(IpamError::NotInPool { addr: req.addr });
        };
        let ord = b
            .ordinal(req.addr)
            .ok_or(IpamError::NotInPool { addr: req.addr })?;
        let mut trial = b.clone();
        trial.gc(now, cooldown);
        if trial.is_allocated(ord) {
            return Err(IpamError::AlreadyAllocated { addr: req.addr });
        }
        let Some(b) = work.block_mut(&key) else {
            return Err(work
                .take_refused()
                .unwrap_or(IpamError::NotInPool { addr: req.addr }));
        };
        b.gc(now, cooldown);
        b.allocate(ord, handle.as_deref(), &req.attrs);
        if let Some(h) = &handle {
            work.handle_add(h, &net, 1);
        }
        self.commit(work, now, cooldown)?;
        IpNet::new(req.addr, net.prefix_len()).map_err(|_| IpamError::NotInPool { addr: req.addr })
    }

    /// `ensure_block`: the block search without allocating: the first block the
    /// host owns in the candidate pools with a free address, else a newly claimed one.
    ///
    /// Errors: as `auto_assign`, and `BlockLimit` when a claim is needed beyond the cap.
    pub fn ensure_block(
        &self,
        host: &str,
        pools: Option<&[String]>,
        v4: bool,
    ) -> Result<Option<IpNet>, IpamError> {
        check_name("host", host)?;
        self.retrying(|| {
            let now = self.now();
            let owner = Owner::Host(host.to_owned());
            let env = self.env()?;
            let node = self
                .store
                .get(resource_key("Node", None, host).as_bytes())?;
            let labels = labels_of(node)?;
            let cands = Self::candidates(
                &env,
                v4,
                pools,
                host,
                &labels,
                &Labels::new(),
                AllowedUse::Workload,
            )?;
            let prefix = keys::affinity_family_prefix(&owner, v4);
            let kvs = self
                .store
                .range(
                    prefix.as_bytes(),
                    crate::prefix_end_of(&prefix).as_deref(),
                    0,
                )?
                .kvs;
            let mut owned: Vec<IpNet> = kvs
                .iter()
                .filter_map(|kv| keys::parse_affinity(&kv.key))
                .map(|(_, n)| n)
                .filter(|n| cands.iter().any(|p| p.contains_net(n)))
                .collect();
            owned.sort_by_key(|n| (base(n), n.prefix_len()));
            let mut work = Work::default();
            for kv in &kvs {
                work.known_affinities.insert(
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.mod_revision,
                );
            }
            self.load_blocks(
                &mut work,
                &owned.iter().map(keys::block).collect::<Vec<_>>(),
            )?;
            for net in &owned {
                if let Some(b) = work.block(&keys::block(net)) {
                    let mut t = b.clone();
                    t.gc(now, env.cooldown());
                    if !t
                        .take(1, None, &BTreeMap::new(), env.reservations.family(v4))
                        .is_empty()
                    {
                        return Ok(Some(*net));
                    }
                }
            }
            let cap = config_block_limit(&env).unwrap_or(DEFAULT_BLOCK_LIMIT);
            if owned.len() >= cap {
                return Err(IpamError::BlockLimit {
                    host: host.to_owned(),
                    owned: owned.len(),
                    limit: cap,
                    assigned: Vec::new(),
                });
            }
            let claimed = self.claim(&mut work, &env, &cands, &owner, now)?;
            self.commit(work, now, env.cooldown())?;
            Ok(claimed)
        })
    }
}
