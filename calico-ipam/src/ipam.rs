//! The allocator: [`Ipam`] and the operations of ipam.md §2.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calico_datastore::{Backoff, BackoffPolicy, KeyValue, ReadOp, ReadResult, Revision, Store};
use calico_model::resources::Labels;
use calico_model::resources::ipam::{AllowedUse, IpamConfigurationSpec};
use ipnet::IpNet;

use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::net::{base, block_of, is_v4, last, overlaps, splitmix64, start_index};
use crate::pools::{Pool, Reservations, parse_pools};
use crate::records::{AffinityRecord, AffinityState, Nanos, Owner};
use crate::resources::{kind_prefix, resource_key};
use crate::work::{Work, decode, encode};

/// Page size of the gap search (§3.5).
const GAP_PAGE: usize = 128;
/// A block owned by someone else may be reclaimed only this long after its claim.
const RECLAIM_GUARD: Nanos = 60_000_000_000;

/// The inputs every allocation reads: configuration, pools, reservations.
#[derive(Clone, Debug)]
pub struct Env {
    /// The IPAM configuration (defaults when not stored).
    pub config: IpamConfigurationSpec,
    /// Every pool, sorted by name.
    pub pools: Vec<Pool>,
    /// Reserved ranges.
    pub reservations: Reservations,
}

impl Env {
    /// Cooldown in nanoseconds.
    pub fn cooldown(&self) -> Nanos {
        u64::try_from(self.config.ip_cooldown_seconds.max(0))
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
    }

    /// The pool (enabled or not) containing `addr`.
    pub fn pool_of(&self, addr: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.cidr.contains(&addr))
    }

    /// The pool containing block `net`.
    pub fn pool_of_net(&self, net: &IpNet) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains_net(net))
    }
}

/// An `auto_assign` request.
#[derive(Clone, Debug, Default)]
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
    /// The request's block limit (0: the config's, else 20).
    pub max_blocks_per_host: usize,
    /// The intended use (required).
    pub intended_use: Option<AllowedUse>,
    /// The workload's namespace.
    pub namespace: Option<String>,
    /// Windows host: new blocks pre-allocate their first 3 and last ordinals under handle
    /// `windows-reserved-ipam-handle`, and pools with blocks under 16 addresses are skipped.
    pub windows_reserved: bool,
}

/// The result of `auto_assign`: addresses with the block prefix length, and shortfall reasons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// IPv4 addresses in allocation order.
    pub v4: Vec<IpNet>,
    /// IPv6 addresses in allocation order.
    pub v6: Vec<IpNet>,
    /// Why fewer IPv4 addresses than requested were assigned.
    pub shortfall4: Vec<String>,
    /// Why fewer IPv6 addresses than requested were assigned.
    pub shortfall6: Vec<String>,
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

/// The block allocator over a [`Store`]. Time and randomness are injected: see
/// [`Ipam::with_clock`] and [`Ipam::with_seed`].
pub struct Ipam {
    store: Arc<dyn Store>,
    clock: Arc<dyn Fn() -> Nanos + Send + Sync>,
    seed: AtomicU64,
    policy: BackoffPolicy,
    /// Block keys of each owner-family affinity prefix, as last seen (revalidated on use).
    cache: Mutex<HashMap<String, Vec<String>>>,
    /// Blocks known to have no free ordinal (and nothing in cooldown) at a revision: such a
    /// block read at that same revision is skipped without decoding it.
    full: Mutex<HashMap<String, Revision>>,
}

fn system_now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn normalize_handle(h: &str) -> String {
    h.split('\r').next().unwrap_or_default().to_owned()
}

fn family(v4: bool) -> u8 {
    if v4 { 4 } else { 6 }
}

fn use_str(u: AllowedUse) -> String {
    format!("{u:?}")
}

/// One family's (addresses, shortfall reasons, `Some((owned, cap))` if the block limit
/// stopped it).
type FamilyOutcome = (Vec<IpNet>, Vec<String>, Option<(usize, usize)>);

/// Position-tracked read batch.
#[derive(Default)]
struct Batch {
    ops: Vec<ReadOp>,
}

impl Batch {
    fn push(&mut self, op: ReadOp) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }
}

fn take_get(results: &mut [ReadResult], i: usize) -> Option<KeyValue> {
    match results.get_mut(i) {
        Some(ReadResult::Get(kv)) => kv.take(),
        _ => None,
    }
}

fn take_range(results: &mut [ReadResult], i: usize) -> Vec<KeyValue> {
    match results.get_mut(i) {
        Some(ReadResult::Range(r)) => std::mem::take(&mut r.kvs),
        _ => Vec::new(),
    }
}

fn labels_of(kv: Option<KeyValue>) -> Result<Labels, IpamError> {
    #[derive(serde::Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        labels: Labels,
    }
    #[derive(serde::Deserialize)]
    struct Obj {
        #[serde(default)]
        metadata: Meta,
    }
    match kv {
        None => Ok(Labels::new()),
        Some(kv) => Ok(decode::<Obj>(&kv.key, &kv.value)?.metadata.labels),
    }
}

impl Ipam {
    /// An allocator over `store` with the system clock and a clock-derived seed.
    pub fn new(store: Arc<dyn Store>) -> Ipam {
        Ipam {
            store,
            clock: Arc::new(system_now),
            seed: AtomicU64::new(system_now()),
            policy: BackoffPolicy::DEFAULT,
            cache: Mutex::new(HashMap::new()),
            full: Mutex::new(HashMap::new()),
        }
    }

    /// Uses `clock` (Unix nanoseconds) for `now`.
    pub fn with_clock(mut self, clock: impl Fn() -> Nanos + Send + Sync + 'static) -> Ipam {
        self.clock = Arc::new(clock);
        self
    }

    /// Seeds the backoff jitter.
    pub fn with_seed(self, seed: u64) -> Ipam {
        self.seed.store(seed, Ordering::Relaxed);
        self
    }

    /// Uses another backoff policy.
    pub fn with_backoff(mut self, policy: BackoffPolicy) -> Ipam {
        self.policy = policy;
        self
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The current time from the injected clock.
    pub fn now(&self) -> Nanos {
        (self.clock)()
    }

    fn next_seed(&self) -> u64 {
        splitmix64(self.seed.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs `f` until it does not fail with a retriable error, backing off (§4.4).
    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T, IpamError>) -> Result<T, IpamError> {
        let mut backoff = Backoff::new(self.policy, self.next_seed());
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match f() {
                Err(e) if e.is_retriable() => match backoff.next_delay(started.elapsed()) {
                    Some(d) => {
                        if d > Duration::ZERO {
                            std::thread::sleep(d);
                        }
                    }
                    None => {
                        return Err(if matches!(&e, IpamError::Store(s) if s.is_conflict()) {
                            IpamError::Contention { attempts }
                        } else {
                            e
                        });
                    }
                },
                r => return r,
            }
        }
    }

    fn env_reads(b: &mut Batch) -> [usize; 3] {
        [
            b.push(ReadOp::get(keys::CONFIG)),
            b.push(ReadOp::prefix(kind_prefix("IPPool", None), 0)),
            b.push(ReadOp::prefix(kind_prefix("IPReservation", None), 0)),
        ]
    }

    fn env_parse(results: &mut [ReadResult], idx: [usize; 3]) -> Result<Env, IpamError> {
        let config = match take_get(results, idx[0]) {
            Some(kv) => decode(&kv.key, &kv.value)?,
            None => IpamConfigurationSpec::default(),
        };
        let kvs = |v: Vec<KeyValue>| -> Vec<(String, Vec<u8>)> {
            v.into_iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
                .collect()
        };
        let pools = parse_pools(&kvs(take_range(results, idx[1])))?;
        let reservations = Reservations::parse(&kvs(take_range(results, idx[2])))?;
        Ok(Env {
            config,
            pools,
            reservations,
        })
    }

    /// Reads the configuration, pools and reservations (one round trip).
    pub fn env(&self) -> Result<Env, IpamError> {
        let mut b = Batch::default();
        let idx = Self::env_reads(&mut b);
        let mut resp = self.store.read(&b.ops)?;
        Self::env_parse(&mut resp.results, idx)
    }

    /// Candidate pools of a family (§3.2).
    fn candidates<'e>(
        env: &'e Env,
        v4: bool,
        requested: Option<&[String]>,
        host: &str,
        node_labels: &Labels,
        ns_labels: &Labels,
        intended_use: AllowedUse,
    ) -> Result<Vec<&'e Pool>, IpamError> {
        let enabled = env.pools.iter().filter(|p| p.enabled && p.is_v4() == v4);
        let pools: Vec<&Pool> = match requested {
            Some(req) if !req.is_empty() => {
                let mut out = Vec::with_capacity(req.len());
                for r in req {
                    let found = env.pools.iter().find(|p| {
                        p.enabled
                            && p.is_v4() == v4
                            && (p.name == *r || r.parse::<IpNet>().is_ok_and(|n| n == p.cidr))
                    });
                    match found {
                        Some(p) => out.push(p),
                        None => {
                            return Err(IpamError::RequestedPool {
                                pool: r.clone(),
                                family: family(v4),
                            });
                        }
                    }
                }
                out
            }
            _ => enabled
                .filter(|p| {
                    !p.manual
                        && p.node_selector.matches(node_labels)
                        && p.namespace_selector
                            .as_ref()
                            .is_none_or(|s| s.matches(ns_labels))
                })
                .collect(),
        };
        if pools.is_empty() {
            return Err(IpamError::NoPools {
                host: host.to_owned(),
                family: family(v4),
            });
        }
        let qualified: Vec<&Pool> = pools
            .into_iter()
            .filter(|p| p.allowed_uses.contains(&intended_use))
            .collect();
        if qualified.is_empty() {
            return Err(IpamError::NoQualifiedPool {
                family: family(v4),
                intended_use: use_str(intended_use),
            });
        }
        Ok(qualified)
    }

    /// `auto_assign` (§2, §3): IPv4 then IPv6 addresses for a host, in one transaction.
    ///
    /// Errors: `NoIntendedUse`, `RequestedPool`, `NoPools`, `NoQualifiedPool`, `BlockLimit`
    /// (with what was assigned and committed), `Contention`, `Store`, `Decode`, `BadPool`.
    pub fn auto_assign(&self, req: &AutoAssignRequest) -> Result<Assigned, IpamError> {
        let intended_use = req.intended_use.ok_or(IpamError::NoIntendedUse)?;
        // Normally one transaction; a request too large for the store's operation limit is
        // committed in several, each self-consistent (§4.2).
        let mut total = Assigned::default();
        let mut rest = req.clone();
        loop {
            let (got, truncated) = match self.retrying(|| self.try_auto_assign(&rest, intended_use))
            {
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
                    total.shortfall4.push(e.to_string());
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

    fn try_auto_assign(
        &self,
        req: &AutoAssignRequest,
        intended_use: AllowedUse,
    ) -> Result<(Assigned, bool), IpamError> {
        let now = self.now();
        let owner = Owner::Host(req.host.clone());
        let handle = req.handle.as_deref().map(normalize_handle);
        let mut b = Batch::default();
        let env_idx = Self::env_reads(&mut b);
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
            let cached: Vec<String> = self
                .cache
                .lock()
                .map(|c| c.get(&prefix).cloned().unwrap_or_default())
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
        let mut resp = self.store.read(&b.ops)?;
        let r = &mut resp.results;
        let env = Self::env_parse(r, env_idx)?;
        let node_labels = labels_of(take_get(r, node_i))?;
        let ns_labels = match ns_i {
            Some(i) => labels_of(take_get(r, i))?,
            None => Labels::new(),
        };
        let mut work = Work::default();
        work.windows_reserved = req.windows_reserved;
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
            affinities: Vec<(IpNet, KeyValue)>,
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
                    affinities.push((net, kv));
                }
            }
            let wanted: Vec<String> = affinities.iter().map(|(n, _)| keys::block(n)).collect();
            // Blocks that may be skipped when still full: confirmed affinities of blocks in
            // candidate pools.
            let skippable: std::collections::HashSet<String> = affinities
                .iter()
                .filter(|(net, kv)| {
                    candidates.iter().any(|p| p.contains_net(net))
                        && decode::<AffinityRecord>(&kv.key, &kv.value)
                            .is_ok_and(|a| a.state == AffinityState::Confirmed)
                })
                .map(|(net, _)| keys::block(net))
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
                let full = self.full.lock().ok();
                got.iter()
                    .map(|(k, kv)| {
                        kv.as_ref().is_some_and(|kv| {
                            skippable.contains(k)
                                && full.as_ref().and_then(|f| f.get(k)) == Some(&kv.mod_revision)
                        })
                    })
                    .collect()
            };
            for ((k, kv), still) in got.into_iter().zip(still_full) {
                if still {
                    work.known_full.insert(k);
                } else {
                    work.load_block(k, kv.as_ref())?;
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
        self.load_blocks(&mut work, &missing)?;

        let mut out = Assigned::default();
        let mut limit_error = None;
        for f in &fam_state {
            let mut owned: Vec<IpNet> = Vec::new();
            for (net, kv) in &f.affinities {
                if f.candidates.iter().any(|p| p.contains_net(net)) {
                    owned.push(*net);
                    // Repair a non-confirmed affinity (reference data) on sight.
                    let rec: AffinityRecord = decode(&kv.key, &kv.value)?;
                    if rec.state != AffinityState::Confirmed {
                        self.repair_affinity(&mut work, &owner, net, kv, now);
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
            if work.truncated {
                break;
            }
        }
        let truncated = work.truncated;
        // Keep the host's block keys for the next request (revalidated by revision).
        let mut new_cache: Vec<(String, Vec<String>)> = Vec::new();
        for f in &fam_state {
            let fam_prefix = keys::block_family_prefix(f.v4);
            let keys: Vec<String> = work
                .blocks
                .iter()
                .filter(|(k, l)| {
                    k.starts_with(&fam_prefix)
                        && l.block
                            .as_ref()
                            .is_some_and(|b| b.owner().as_ref() == Some(&owner))
                })
                .map(|(k, _)| k.clone())
                .collect();
            new_cache.push((f.prefix.clone(), keys));
        }
        new_cache.iter_mut().for_each(|(p, keys_)| {
            let fam_prefix = if p.ends_with("/4/") {
                keys::block_family_prefix(true)
            } else {
                keys::block_family_prefix(false)
            };
            keys_.extend(
                work.known_full
                    .iter()
                    .filter(|k| k.starts_with(&fam_prefix))
                    .cloned(),
            );
            keys_.sort();
        });
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
        let committed = work.commit(&*self.store, now, env.cooldown())?;
        if let Ok(mut c) = self.cache.lock() {
            for (p, k) in new_cache {
                c.insert(p, k);
            }
        }
        if let Ok(mut f) = self.full.lock() {
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
        Ok((out, truncated))
    }

    fn repair_affinity(
        &self,
        work: &mut Work,
        owner: &Owner,
        net: &IpNet,
        kv: &KeyValue,
        now: Nanos,
    ) {
        let key = keys::block(net);
        let aff_key = String::from_utf8_lossy(&kv.key).into_owned();
        match work.block(&key).map(Block::owner) {
            Some(Some(o)) if &o == owner => {
                let claim = work.block(&key).map_or(now, |b| b.affinity_claim_time);
                work.compare(aff_key.clone(), Some(kv.mod_revision));
                work.put(
                    aff_key,
                    encode(&AffinityRecord {
                        state: AffinityState::Confirmed,
                        claim_time: claim,
                    }),
                );
            }
            Some(_) => {
                work.compare(aff_key.clone(), Some(kv.mod_revision));
                work.delete(aff_key);
            }
            None => {
                work.create_block(Block::new(*net, Some(owner), now));
                work.compare(aff_key.clone(), Some(kv.mod_revision));
                work.put(
                    aff_key,
                    encode(&AffinityRecord {
                        state: AffinityState::Confirmed,
                        claim_time: now,
                    }),
                );
            }
        }
    }

    /// Reads blocks by key into `work` (batches of at most the store's limit).
    fn load_blocks(&self, work: &mut Work, keys_: &[String]) -> Result<(), IpamError> {
        for chunk in keys_.chunks(self.store.max_txn_ops().max(1)) {
            let ops: Vec<ReadOp> = chunk.iter().map(|k| ReadOp::get(k.clone())).collect();
            let mut resp = self.store.read(&ops)?;
            for (i, k) in chunk.iter().enumerate() {
                work.load_block(k.clone(), take_get(&mut resp.results, i).as_ref())?;
            }
        }
        Ok(())
    }

    /// Takes up to `need` addresses from the block at `key` (garbage-collecting first);
    /// writes the block only if something was taken.
    #[allow(clippy::too_many_arguments)]
    fn take_from(
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
        let mut trial = b.clone();
        trial.gc(now, cooldown);
        if trial.take(need, handle, attrs, reserved).is_empty() {
            return Vec::new();
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

    /// The main loop of §3.4 for one family. Returns (addresses, shortfall reasons,
    /// `Some((owned, cap))` when the block limit stopped it).
    #[allow(clippy::too_many_arguments)]
    fn assign_family(
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
        req_limit: usize,
        now: Nanos,
    ) -> Result<FamilyOutcome, IpamError> {
        let reserved = env.reservations.family(v4);
        let cooldown = env.cooldown();
        let mut out = Vec::new();
        let mut need = n;
        let mut reasons = Vec::new();
        let cap = {
            let c = usize::try_from(env.config.max_blocks_per_host.max(0)).unwrap_or(usize::MAX);
            let mut r = req_limit;
            if c > 0 && (r == 0 || r > c) {
                r = c;
            }
            if r == 0 { 20 } else { r }
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
            }
            if need == 0 {
                break;
            }
            if work.near_limit(self.store.max_txn_ops()) {
                work.truncated = true;
                return Ok((out, Vec::new(), None));
            }
            if owned.len() >= cap {
                reasons.push("block limit reached".to_owned());
                limit = Some((owned.len(), cap));
                no_borrow = true;
                break;
            }
            if !env.config.auto_allocate_blocks {
                reasons.push("auto-allocation of blocks is disabled".to_owned());
                no_borrow = true;
                break;
            }
            match self.claim(work, env, candidates, owner, now)? {
                Some(net) => owned.push(net),
                None => {
                    reasons.push("no free blocks".to_owned());
                    break;
                }
            }
        }
        if need > 0 && !no_borrow {
            if env.config.strict_affinity {
                reasons.push("No more free affine blocks and strict affinity enabled".to_owned());
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
                    let names: Vec<String> =
                        candidates.iter().map(|p| p.cidr.to_string()).collect();
                    reasons.push(format!("No IPs available in pools: [{}]", names.join(" ")));
                }
            }
        }
        if need == 0 {
            reasons.clear();
        }
        Ok((out, reasons, limit))
    }

    /// §3.5: claims a new block (or reclaims an empty one) for `owner`, staged in `work`.
    fn claim(
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
                    let last = block.len().saturating_sub(1) as u32;
                    for o in [0, 1, 2, last] {
                        block.allocate(
                            o,
                            Some(crate::block::WINDOWS_RESERVED_HANDLE),
                            &BTreeMap::new(),
                        );
                    }
                }
                work.create_block(block);
                work.put_affinity(owner, &net, now);
                return Ok(Some(net));
            }
        }
        // Reclaim an empty block someone else has held for at least the guard time.
        for pool in candidates {
            let (s, e) = keys::pool_range(keys::EMPTY_PREFIX, &pool.cidr);
            let resp = self
                .store
                .read(&[ReadOp::range(s, Some(e.into_bytes()), 0)])?;
            let markers = resp
                .results
                .into_iter()
                .next()
                .and_then(ReadResult::into_range)
                .map(|r| r.kvs)
                .unwrap_or_default();
            for kv in markers {
                let Some(net) = keys::parse_empty(&kv.key) else {
                    continue;
                };
                let m: crate::records::EmptyMarker = decode(&kv.key, &kv.value)?;
                if m.owner == owner.to_string() || m.claim_time.saturating_add(RECLAIM_GUARD) > now
                {
                    continue;
                }
                let key = keys::block(&net);
                if work.blocks.contains_key(&key) {
                    continue;
                }
                self.load_blocks(work, std::slice::from_ref(&key))?;
                let Some(b) = work.block(&key) else { continue };
                let Some(old) = b.owner() else { continue };
                if !b.is_empty() || !pool.contains_net(&net) {
                    continue;
                }
                if let Some(b) = work.block_mut(&key) {
                    b.affinity = Some(owner.to_string());
                    b.affinity_claim_time = now;
                }
                work.delete(keys::affinity(&old, &net));
                work.put_affinity(owner, &net, now);
                return Ok(Some(net));
            }
        }
        Ok(None)
    }

    /// The first block index of `pool`, walking from `start` with wrap, whose range overlaps
    /// no existing (or staged) block and is not wholly reserved.
    fn find_gap(
        &self,
        work: &Work,
        env: &Env,
        pool: &Pool,
        start: u128,
    ) -> Result<Option<u128>, IpamError> {
        let n = pool.block_count();
        let v4 = pool.is_v4();
        let staged: Vec<IpNet> = work
            .blocks
            .values()
            .filter_map(|l| l.block.as_ref().map(|b| b.cidr))
            .collect();
        let (_, pool_end) = keys::pool_range(keys::BLOCK_PREFIX, &pool.cidr);
        for (from, to) in [(start, n), (0, start)] {
            let end_key = if to == n {
                pool_end.clone()
            } else {
                keys::key_at(keys::BLOCK_PREFIX, base(&pool.block(to)), v4)
            };
            let mut i = from;
            let mut page_start = keys::key_at(
                keys::BLOCK_PREFIX,
                base(&pool.block(from.min(n.saturating_sub(1)))),
                v4,
            )
            .into_bytes();
            let mut existing: Vec<IpNet> = Vec::new();
            let mut first_page = true;
            while i < to {
                let mut ops = vec![ReadOp::range(
                    page_start.clone(),
                    Some(end_key.clone().into_bytes()),
                    GAP_PAGE,
                )];
                if first_page && i < n {
                    // Aligned blocks nest or are disjoint: a block starting before the walk
                    // that overlaps it contains its first candidate. Such leftovers of a
                    // deleted pool with larger blocks are found by key (same round trip).
                    let first = base(&pool.block(i));
                    let b = pool.block_size;
                    let k = u8::try_from(self.store.max_txn_ops().saturating_sub(1).min(24))
                        .unwrap_or(24);
                    for len in b.saturating_sub(k)..b {
                        ops.push(ReadOp::get(keys::block(&crate::net::net_of(
                            first, len, v4,
                        ))));
                    }
                }
                first_page = false;
                let resp = self.store.read(&ops)?;
                let mut results = resp.results.into_iter();
                let page = results
                    .next()
                    .and_then(ReadResult::into_range)
                    .unwrap_or_default();
                existing.extend(
                    results
                        .filter_map(ReadResult::into_get)
                        .filter_map(|kv| keys::parse_block(&kv.key)),
                );
                let frontier = if page.more {
                    page.kvs
                        .last()
                        .and_then(|kv| keys::parse_block(&kv.key))
                        .map(|n| base(&n))
                } else {
                    None
                };
                if let Some(kv) = page.kvs.last() {
                    page_start = kv.key.clone();
                    page_start.push(0);
                }
                existing.extend(page.kvs.iter().filter_map(|kv| keys::parse_block(&kv.key)));
                while i < to {
                    let b = pool.block(i);
                    if frontier.is_some_and(|f| last(&b) >= f) {
                        break;
                    }
                    let taken = existing.iter().chain(&staged).any(|e| overlaps(e, &b));
                    if !taken && !env.reservations.covers(&b) {
                        return Ok(Some(i));
                    }
                    i += 1;
                }
                if frontier.is_none() {
                    break;
                }
            }
        }
        Ok(None)
    }

    /// §3.7: takes addresses from existing blocks of the candidate pools, walking each pool
    /// from the host's start index.
    #[allow(clippy::too_many_arguments)]
    fn borrow(
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
            let (s, e) = keys::pool_range(keys::BLOCK_PREFIX, &pool.cidr);
            let resp = self
                .store
                .read(&[ReadOp::range(s, Some(e.into_bytes()), 0)])?;
            let kvs = resp
                .results
                .into_iter()
                .next()
                .and_then(ReadResult::into_range)
                .map(|r| r.kvs)
                .unwrap_or_default();
            let start = start_index(host, pool.block_count());
            let mut blocks: Vec<(u128, String, KeyValue)> = kvs
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
                work.load_block(key.clone(), Some(&kv))?;
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
            }
        }
        Ok(out)
    }

    /// `assign_ip` (§3.8): assigns one given address.
    ///
    /// Errors: `NotInPool`, `UseNotAllowed`, `Reserved`, `AlreadyAllocated`,
    /// `StrictAffinity`, `Contention`, `Store`, `Decode`.
    pub fn assign_ip(&self, req: &AssignIpRequest) -> Result<IpNet, IpamError> {
        self.retrying(|| self.try_assign_ip(req))
    }

    fn try_assign_ip(&self, req: &AssignIpRequest) -> Result<IpNet, IpamError> {
        let now = self.now();
        let owner = Owner::Host(req.host.clone());
        let handle = req.handle.as_deref().map(normalize_handle);
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
                work.put(
                    aff_key,
                    encode(&AffinityRecord {
                        state: AffinityState::Confirmed,
                        claim_time: now,
                    }),
                );
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
            return Err(IpamError::NotInPool { addr: req.addr });
        };
        b.gc(now, cooldown);
        b.allocate(ord, handle.as_deref(), &req.attrs);
        if let Some(h) = &handle {
            work.handle_add(h, &net, 1);
        }
        work.commit(&*self.store, now, cooldown)?;
        IpNet::new(req.addr, net.prefix_len()).map_err(|_| IpamError::NotInPool { addr: req.addr })
    }

    /// Finds the existing block containing each address that lies in no pool (bounded
    /// gets, one per possible prefix length). Returns block keys.
    fn find_blocks_outside_pools(
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

    /// `release_ips` (§3.9): releases addresses, idempotently.
    ///
    /// Errors: `Contention`, `Store`, `Decode`. Guard mismatches are reported in
    /// [`Released::rejected`] (every address of that block in the call).
    pub fn release_ips(&self, items: &[ReleaseItem]) -> Result<Released, IpamError> {
        // Each address touches at most a block, its marker and a handle: a chunk of this many
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

    fn try_release_ips(&self, items: &[ReleaseItem]) -> Result<Released, IpamError> {
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
        work.commit(&*self.store, now, env.cooldown())?;
        Ok(out)
    }

    /// §3.9: a host block that this release empties, and whose pool's node selector no
    /// longer matches its owner's Node labels, loses its affinity (and, being empty and
    /// unaffine, is deleted in the same transaction). One extra read, only when needed.
    fn drop_unselected_affinities(
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
            let Some(pool) = env.pool_of_net(&b.cidr) else {
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
                b.affinity_claim_time = 0;
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

    fn try_release_by_handle(&self, id: &str) -> Result<(Vec<IpAddr>, bool), IpamError> {
        let now = self.now();
        let mut b = Batch::default();
        let hi = b.push(ReadOp::get(keys::handle(id)));
        let env_idx = Self::env_reads(&mut b);
        let mut resp = self.store.read(&b.ops)?;
        let kv = take_get(&mut resp.results, hi).ok_or_else(|| IpamError::HandleNotFound {
            handle: id.to_owned(),
        })?;
        let env = Self::env_parse(&mut resp.results, env_idx)?;
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
        work.commit(&*self.store, now, env.cooldown())?;
        Ok((released, done))
    }

    /// `ips_by_handle`: the addresses a handle holds (cooldown excluded).
    ///
    /// Errors: `HandleNotFound`, `Store`, `Decode`.
    pub fn ips_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let id = normalize_handle(handle);
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

    fn block_containing(&self, addr: IpAddr) -> Result<Option<(String, KeyValue)>, IpamError> {
        let env = self.env()?;
        let key = match env.pool_of(addr) {
            Some(p) => Some(keys::block(&block_of(addr, p.block_size))),
            None => self.find_blocks_outside_pools(&[addr])?.pop().flatten(),
        };
        let Some(key) = key else { return Ok(None) };
        Ok(self.store.get(key.as_bytes())?.map(|kv| (key, kv)))
    }

    /// `get_attributes`: the handle and owner attributes of an allocated address.
    ///
    /// Errors: `NotAllocated`, `InCooldown`, `Store`, `Decode`.
    pub fn get_attributes(&self, addr: IpAddr) -> Result<AddressAttributes, IpamError> {
        let (_, kv) = self
            .block_containing(addr)?
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
            let (key, kv) = self
                .block_containing(addr)?
                .ok_or(IpamError::NotAllocated { addr })?;
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
            work.commit(&*self.store, now, 0).map(|_| ())
        })
    }

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
                        work.put(
                            aff_key,
                            encode(&AffinityRecord {
                                state: AffinityState::Confirmed,
                                claim_time: now,
                            }),
                        );
                        work.commit(&*self.store, now, env.cooldown())?;
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

    /// Releases one affinity (§3.10). Returns `false` when the block named another owner
    /// (our stale affinity was deleted) or the affinity did not exist.
    ///
    /// Errors: `BlockNotEmpty`, `Contention`, `Store`, `Decode`.
    pub fn release_block_affinity(
        &self,
        owner: &Owner,
        net: IpNet,
        must_be_empty: bool,
    ) -> Result<bool, IpamError> {
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
                    if let Some(b) = work.block_mut(&key) {
                        b.affinity = None;
                        b.affinity_claim_time = 0;
                    }
                    true
                }
            };
            work.commit(&*self.store, now, u64::MAX)?;
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
        let kvs = self
            .store
            .range(
                keys::AFFINITY_PREFIX.as_bytes(),
                crate::prefix_end_of(keys::AFFINITY_PREFIX).as_deref(),
                0,
            )?
            .kvs;
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

    /// `remove_host`: `release_host_affinities(must_be_empty = false)`.
    pub fn remove_host(&self, host: &str) -> Result<Vec<IpNet>, IpamError> {
        self.release_host_affinities(&Owner::Host(host.to_owned()), false)
    }

    /// `ensure_block`: the block search of §3.4–3.5 without allocating: the first block the
    /// host owns in the candidate pools with a free address, else a newly claimed one.
    ///
    /// Errors: as `auto_assign`, and `BlockLimit` when a claim is needed beyond the cap.
    pub fn ensure_block(
        &self,
        host: &str,
        pools: Option<&[String]>,
        v4: bool,
    ) -> Result<Option<IpNet>, IpamError> {
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
            let owned: Vec<IpNet> = kvs
                .iter()
                .filter_map(|kv| keys::parse_affinity(&kv.key))
                .map(|(_, n)| n)
                .filter(|n| cands.iter().any(|p| p.contains_net(n)))
                .collect();
            let mut work = Work::default();
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
            let c = usize::try_from(env.config.max_blocks_per_host.max(0)).unwrap_or(0);
            let cap = if c == 0 { 20 } else { c };
            if owned.len() >= cap {
                return Err(IpamError::BlockLimit {
                    host: host.to_owned(),
                    owned: owned.len(),
                    limit: cap,
                    assigned: Vec::new(),
                });
            }
            let claimed = self.claim(&mut work, &env, &cands, &owner, now)?;
            work.commit(&*self.store, now, env.cooldown())?;
            Ok(claimed)
        })
    }

    /// `get_config`: the stored configuration, or the defaults (not written).
    pub fn get_config(&self) -> Result<IpamConfigurationSpec, IpamError> {
        match self.store.get(keys::CONFIG.as_bytes())? {
            Some(kv) => decode(&kv.key, &kv.value),
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
        self.store.put(keys::CONFIG.as_bytes(), &encode(config))?;
        Ok(())
    }

    /// Reads every block (cold path, one range).
    pub fn all_blocks(&self) -> Result<Vec<(KeyValue, Block)>, IpamError> {
        let kvs = self
            .store
            .range(
                keys::BLOCK_PREFIX.as_bytes(),
                crate::prefix_end_of(keys::BLOCK_PREFIX).as_deref(),
                0,
            )?
            .kvs;
        kvs.into_iter()
            .map(|kv| {
                let b = decode(&kv.key, &kv.value)?;
                Ok((kv, b))
            })
            .collect()
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
            let _ = work.block_mut(&key);
            match work.commit(&*self.store, now, env.cooldown()) {
                Ok(_) => out.push(b.cidr),
                // Someone wrote the block meanwhile: that write collected it.
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
