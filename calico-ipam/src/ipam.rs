//! The allocator: [`Ipam`], its injected clock, seed and backoff, and what every operation
//! reads (configuration, pools, reservations).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calico_datastore::{Backoff, BackoffPolicy, KeyValue, ReadOp, ReadResult, Revision, Store};
use calico_model::resources::Labels;
use calico_model::resources::ipam::{AllowedUse, IpamConfigurationSpec};
use ipnet::IpNet;

use crate::block::Block;
use crate::error::IpamError;
use crate::keys;
use crate::mirror::Mirror;
use crate::net::splitmix64;
use crate::pools::{Pool, Reservations, parse_pools};
use crate::records::{IpamConfigWire, Nanos};
use crate::resources::kind_prefix;
use crate::work::{Work, decode};

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

/// The block allocator over a [`Store`]. Time and randomness are injected: see
/// [`Ipam::with_clock`] and [`Ipam::with_seed`].
pub struct Ipam {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Fn() -> Nanos + Send + Sync>,
    pub(crate) seed: AtomicU64,
    pub(crate) policy: BackoffPolicy,
    /// Block keys of each owner-family affinity prefix, as last seen (revalidated on use).
    pub(crate) cache: Mutex<HashMap<String, Vec<String>>>,
    /// Blocks known to have no free ordinal (and nothing in cooldown) at a revision: such a
    /// block read at that same revision is skipped without decoding it.
    pub(crate) full: Mutex<HashMap<String, Revision>>,
    /// What the last reads and transactions saw, for one-round-trip assignments.
    pub(crate) mirror: Mutex<Mirror>,
    /// Blocks this allocator last wrote, decoded, with the revision they were written at:
    /// a block read back at that revision is taken from here instead of decoding its value.
    pub(crate) decoded: Mutex<HashMap<String, (Revision, Block)>>,
    /// Whether assignments may first try the one-round-trip path on the mirror.
    pub(crate) optimistic: bool,
    /// Set once a read found no key of the old private layout.
    pub(crate) layout_checked: AtomicBool,
}

/// Where [`Ipam::env_reads`] put its reads in a batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnvIdx {
    pub(crate) config: usize,
    pub(crate) pools: usize,
    pub(crate) reservations: usize,
    pub(crate) probe: Option<usize>,
}

/// Decoded blocks kept past this many are dropped (and the cache refilled).
const MAX_DECODED: usize = 4096;

pub(crate) fn system_now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn normalize_handle(h: &str) -> String {
    h.split('\r').next().unwrap_or_default().to_owned()
}

/// Checks that a host name or handle ID can be written into a key.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), IpamError> {
    if keys::valid_name(name) {
        Ok(())
    } else {
        Err(IpamError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

/// Locks one of the allocator's caches (`cache`, `full`, `mirror`, `decoded`). A lock
/// poisoned by a thread that panicked while holding it is handled, not skipped: the cache
/// may be half-updated, so it is emptied, its poison cleared, and it is used again. The
/// caches only save reads and decoding (what they held is read again from the store), so
/// emptying one costs time, never correctness.
pub(crate) fn lock_cache<T: Default>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => {
            let mut g = poisoned.into_inner();
            *g = T::default();
            m.clear_poison();
            g
        }
    }
}

pub(crate) fn family(v4: bool) -> calico_model::family::Family {
    use calico_model::family::Family;
    if v4 { Family::V4 } else { Family::V6 }
}

pub(crate) fn use_str(u: AllowedUse) -> String {
    format!("{u:?}")
}

/// Position-tracked read batch.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) ops: Vec<ReadOp>,
}

impl Batch {
    pub(crate) fn push(&mut self, op: ReadOp) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }
}

pub(crate) fn take_get(results: &mut [ReadResult], i: usize) -> Option<KeyValue> {
    match results.get_mut(i) {
        Some(ReadResult::Get(kv)) => kv.take(),
        _ => None,
    }
}

pub(crate) fn take_range(results: &mut [ReadResult], i: usize) -> Vec<KeyValue> {
    match results.get_mut(i) {
        Some(ReadResult::Range(r)) => std::mem::take(&mut r.kvs),
        _ => Vec::new(),
    }
}

pub(crate) fn labels_of(kv: Option<KeyValue>) -> Result<Labels, IpamError> {
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
            mirror: Mutex::new(Mirror::default()),
            decoded: Mutex::new(HashMap::new()),
            optimistic: true,
            layout_checked: AtomicBool::new(false),
        }
    }

    /// Whether `auto_assign` first tries one optimistic transaction planned on what earlier
    /// requests read and wrote (default `true`): one round trip instead of two while
    /// nothing else changed the keys it relies on; a conflict falls back to a fresh read.
    pub fn with_optimistic(mut self, optimistic: bool) -> Ipam {
        self.optimistic = optimistic;
        self
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

    pub(crate) fn next_seed(&self) -> u64 {
        splitmix64(self.seed.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs `f` until it does not fail with a retriable error, backing off.
    pub(crate) fn retrying<T>(
        &self,
        mut f: impl FnMut() -> Result<T, IpamError>,
    ) -> Result<T, IpamError> {
        self.retrying_stale(|| f().map(Some))
    }

    /// Like [`Ipam::retrying`], for an attempt that can also find its view of the store stale
    /// (`Ok(None)`: read again). A stale view is retried like a conflict; when the retry
    /// budget runs out after conflicts or stale views, the error is `Contention` with the
    /// number of attempts made.
    pub(crate) fn retrying_stale<T>(
        &self,
        mut f: impl FnMut() -> Result<Option<T>, IpamError>,
    ) -> Result<T, IpamError> {
        let mut backoff = Backoff::new(self.policy, self.next_seed());
        let started = Instant::now();
        let mut attempts = NonZeroU32::MIN;
        loop {
            // `None`: a stale view, retried like a conflict.
            let retriable = match f() {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => None,
                Err(e) if e.is_retriable() => Some(e),
                Err(e) => return Err(e),
            };
            match backoff.next_delay(started.elapsed()) {
                Some(d) => {
                    if d > Duration::ZERO {
                        std::thread::sleep(d);
                    }
                }
                None => {
                    return Err(match retriable {
                        Some(e) if !matches!(&e, IpamError::Store(s) if s.is_conflict()) => e,
                        _ => IpamError::Contention { attempts },
                    });
                }
            }
            attempts = attempts.saturating_add(1);
        }
    }

    /// The configuration, pool and reservation reads, and (until it has passed once) the
    /// old-layout probe, added to a batch.
    pub(crate) fn env_reads(&self, b: &mut Batch) -> EnvIdx {
        EnvIdx {
            config: b.push(ReadOp::get(keys::CONFIG)),
            pools: b.push(ReadOp::prefix(kind_prefix("IPPool", None), 0)),
            reservations: b.push(ReadOp::prefix(kind_prefix("IPReservation", None), 0)),
            probe: (!self.layout_checked.load(Ordering::Relaxed))
                .then(|| b.push(crate::layout::old_layout_probe(keys::OLD_IPAM_PREFIX))),
        }
    }

    /// Fails with `OldLayout` when the store holds keys of the old private layout (checked
    /// once per allocator; one keys-only read).
    pub fn ensure_layout(&self) -> Result<(), IpamError> {
        if !self.layout_checked.load(Ordering::Relaxed) {
            crate::layout::refuse_old_layout(&*self.store, keys::OLD_IPAM_PREFIX)?;
            self.layout_checked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn env_parse(
        &self,
        results: &mut [ReadResult],
        idx: EnvIdx,
    ) -> Result<Env, IpamError> {
        if let Some(i) = idx.probe {
            if let Some(r) = results.get(i) {
                crate::layout::old_layout_answer(keys::OLD_IPAM_PREFIX, r)?;
            }
            self.layout_checked.store(true, Ordering::Relaxed);
        }
        let config = match take_get(results, idx.config) {
            Some(kv) => decode::<IpamConfigWire>(&kv.key, &kv.value)?.spec(),
            None => IpamConfigurationSpec::default(),
        };
        let kvs = |v: Vec<KeyValue>| -> Vec<(String, Vec<u8>)> {
            v.into_iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
                .collect()
        };
        let pools = parse_pools(&kvs(take_range(results, idx.pools)))?;
        let reservations = Reservations::parse(&kvs(take_range(results, idx.reservations)))?;
        Ok(Env {
            config,
            pools,
            reservations,
        })
    }

    /// Reads the configuration, pools and reservations (one round trip).
    pub fn env(&self) -> Result<Env, IpamError> {
        let mut b = Batch::default();
        let idx = self.env_reads(&mut b);
        let mut resp = self.store.read(&b.ops)?;
        self.env_parse(&mut resp.results, idx)
    }

    /// Candidate pools of a family.
    pub(crate) fn candidates<'e>(
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

    /// Commits `work` (one transaction) and keeps the mirror up to date with what it wrote.
    /// Returns the new revision as [`Work::commit_txn`] does.
    pub(crate) fn commit(
        &self,
        work: Work,
        now: Nanos,
        cooldown: Nanos,
    ) -> Result<Option<Revision>, IpamError> {
        let result = work.commit_txn(&*self.store, now, cooldown);
        {
            let mut m = lock_cache(&self.mirror);
            match &result {
                Ok(c) => match c.revision {
                    Some(0) => m.forget(&c.ops),
                    Some(r) => m.applied(r, &c.compares, &c.ops),
                    None => {}
                },
                Err(_) => m.clear(),
            }
        }
        let c = result?;
        if let Some(r) = c.revision {
            let mut d = lock_cache(&self.decoded);
            if d.len() + c.blocks.len() > MAX_DECODED {
                d.clear();
            }
            for (k, b) in c.blocks {
                if r > 0 {
                    d.insert(k, (r, b));
                } else {
                    d.remove(&k);
                }
            }
        }
        Ok(c.revision)
    }

    /// Reads blocks by key into `work` (batches of at most the store's limit).
    pub(crate) fn load_blocks(&self, work: &mut Work, keys_: &[String]) -> Result<(), IpamError> {
        for chunk in keys_.chunks(self.store.max_txn_ops().max(1)) {
            let ops: Vec<ReadOp> = chunk.iter().map(|k| ReadOp::get(k.clone())).collect();
            let mut resp = self.store.read(&ops)?;
            lock_cache(&self.mirror).record(&ops, &resp);
            for (i, k) in chunk.iter().enumerate() {
                work.load_block(k.clone(), take_get(&mut resp.results, i).as_ref())?;
            }
        }
        Ok(())
    }
}
