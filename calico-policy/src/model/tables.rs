//! The model's private tables: endpoints (with what is resolved per endpoint), tiers and
//! policies in evaluation order, and the Felix configuration. Positions in these tables are
//! internal: they move under incremental updates, and the public API names endpoints by
//! [`EndpointKey`] and policies by [`PolicyId`].

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Index;
use std::sync::Arc;

use calico_model::resources::felix::{FelixConfigurationSpec, ProtoPort};

use super::{Endpoint, EndpointKey, Policy, PolicyId, ProfileEntry, TierEntry};
use crate::check::FailsafeDirection;
use crate::direction::{Direction, PerDirection};
use crate::matching::SelectorTable;

/// `a` before `b` in policy or tier order: set orders ascending, unset last.
pub(super) fn cmp_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(f64::INFINITY)
        .total_cmp(&b.unwrap_or(f64::INFINITY))
}

/// The endpoints in model order, with what each one resolves to: its profiles and the
/// enforced policies applying to it.
#[derive(Debug, Default)]
pub(crate) struct EndpointTable {
    items: Vec<Endpoint>,
    /// Per endpoint, its profiles resolved by name (`None` = missing).
    profiles: Vec<Vec<Option<Arc<ProfileEntry>>>>,
    /// Per endpoint and direction, the ranks ([`PolicyTable::rank_of`]) of the enforced
    /// policies applying to it, in evaluation order.
    applying: Vec<PerDirection<Vec<usize>>>,
    /// Position by key (the first endpoint of a key wins), and how many endpoints have it.
    by_key: HashMap<EndpointKey, KeySlot>,
    /// Positions by address (an address may belong to several endpoints).
    by_addr: HashMap<IpAddr, Vec<usize>>,
    /// How many of the endpoints are host endpoints.
    hosts: usize,
}

fn is_host(e: &Endpoint) -> bool {
    e.kind == crate::EndpointKind::HostEndpoint
}

/// Where the endpoints of one key are.
#[derive(Debug, Clone, Copy)]
struct KeySlot {
    /// The position of the first.
    at: usize,
    /// How many endpoints have the key (more than one is rare: only then does a removal
    /// look for the next).
    count: u32,
}

impl EndpointTable {
    /// A table of `items` with their resolved profiles and applying policies.
    pub(super) fn new(
        items: Vec<Endpoint>,
        profiles: Vec<Vec<Option<Arc<ProfileEntry>>>>,
        applying: Vec<PerDirection<Vec<usize>>>,
    ) -> EndpointTable {
        let mut by_key = HashMap::with_capacity(items.len());
        let mut by_addr: HashMap<IpAddr, Vec<usize>> = HashMap::with_capacity(items.len());
        for (i, e) in items.iter().enumerate() {
            by_key
                .entry(e.key())
                .or_insert(KeySlot { at: i, count: 0 })
                .count += 1;
            for a in &e.addrs {
                by_addr.entry(*a).or_default().push(i);
            }
        }
        let hosts = items.iter().filter(|e| is_host(e)).count();
        EndpointTable {
            items,
            profiles,
            applying,
            by_key,
            by_addr,
            hosts,
        }
    }

    /// The positions of the endpoints holding address `a`.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn with_addr(&self, a: &IpAddr) -> &[usize] {
        self.by_addr.get(a).map_or(&[], Vec::as_slice)
    }

    fn index_addrs(&mut self, i: usize, add: bool) {
        let Some(e) = self.items.get(i) else {
            return;
        };
        for a in &e.addrs {
            if add {
                let v = self.by_addr.entry(*a).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            } else if let Some(v) = self.by_addr.get_mut(a) {
                v.retain(|&j| j != i);
                if v.is_empty() {
                    self.by_addr.remove(a);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// How many endpoints are workloads (not host endpoints).
    pub(crate) fn workload_count(&self) -> usize {
        self.items.len() - self.hosts
    }

    pub(crate) fn as_slice(&self) -> &[Endpoint] {
        &self.items
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Endpoint> {
        self.items.iter()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Endpoint> {
        self.items.get(i)
    }

    /// The position of the endpoint with this key.
    pub(crate) fn position(&self, key: &EndpointKey) -> Option<usize> {
        self.by_key.get(key).map(|s| s.at)
    }

    /// The resolved profiles of endpoint `i`, in order (`None` = missing).
    pub(crate) fn profiles(&self, i: usize) -> &[Option<Arc<ProfileEntry>>] {
        self.profiles.get(i).map_or(&[], Vec::as_slice)
    }

    /// The ranks of the enforced policies applying to endpoint `i` in `dir`, in order (see
    /// [`Model::applying`](crate::Model) for positions).
    pub(crate) fn applying(&self, i: usize, dir: Direction) -> &[usize] {
        self.applying.get(i).map_or(&[], |a| a[dir].as_slice())
    }

    /// The applying lists of every endpoint, mutably (ranks of policies).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn applying_mut(&mut self) -> &mut [PerDirection<Vec<usize>>] {
        &mut self.applying
    }

    /// Sets endpoint `i` (appends it when `i` is the length) with its resolved profiles and
    /// applying policies.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn upsert(
        &mut self,
        i: usize,
        e: Endpoint,
        profiles: Vec<Option<Arc<ProfileEntry>>>,
        applying: PerDirection<Vec<usize>>,
    ) {
        let key = e.key();
        self.hosts += usize::from(is_host(&e));
        if i >= self.items.len() {
            self.items.push(e);
            self.profiles.push(profiles);
            self.applying.push(applying);
            let at = self.items.len() - 1;
            self.count_key(key, at);
            self.index_addrs(at, true);
            return;
        }
        let old = self.items[i].key();
        self.hosts -= usize::from(is_host(&self.items[i]));
        self.index_addrs(i, false);
        self.items[i] = e;
        self.index_addrs(i, true);
        self.profiles[i] = profiles;
        self.applying[i] = applying;
        if old != key {
            self.forget(&old, i);
            self.count_key(key, i);
        }
    }

    /// Removes endpoint `i`; the last endpoint takes its position.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn swap_remove(&mut self, i: usize) {
        if i >= self.items.len() {
            return;
        }
        let last = self.items.len() - 1;
        self.index_addrs(i, false);
        self.index_addrs(last, false);
        let removed = self.items.swap_remove(i);
        self.hosts -= usize::from(is_host(&removed));
        if i != last {
            self.index_addrs(i, true);
        }
        self.profiles.swap_remove(i);
        self.applying.swap_remove(i);
        self.forget(&removed.key(), i);
        if i != last {
            let moved = self.items[i].key();
            if let Some(slot) = self.by_key.get_mut(&moved)
                && slot.at == last
            {
                slot.at = i;
            }
        }
    }

    /// Counts one more endpoint of `key`, at `i` (where the key is found if it is the
    /// first).
    fn count_key(&mut self, key: EndpointKey, i: usize) {
        self.by_key
            .entry(key)
            .or_insert(KeySlot { at: i, count: 0 })
            .count += 1;
    }

    /// Counts one endpoint of `key` less (the one at `i`, gone); when it was the one the key
    /// is found at, another endpoint of the key takes over.
    fn forget(&mut self, key: &EndpointKey, i: usize) {
        let Some(slot) = self.by_key.get_mut(key) else {
            return;
        };
        slot.count = slot.count.saturating_sub(1);
        if slot.count == 0 {
            self.by_key.remove(key);
        } else if slot.at == i {
            // Rare: several endpoints share the key.
            match self.items.iter().position(|e| e.key() == *key) {
                Some(j) => slot.at = j,
                None => {
                    self.by_key.remove(key);
                }
            }
        }
    }
}

impl Index<usize> for EndpointTable {
    type Output = Endpoint;

    fn index(&self, i: usize) -> &Endpoint {
        &self.items[i]
    }
}

/// Tiers and policies in evaluation order, with each policy's tier.
#[derive(Debug, Default)]
pub(crate) struct PolicyTable {
    tiers: Vec<TierEntry>,
    /// Policies (staged ones included) in evaluation order.
    policies: Vec<Policy>,
    /// Per policy, the position of its tier in `tiers`.
    tier_of: Vec<usize>,
    /// Per policy, its rank: a number that grows with the position and stays when other
    /// policies come and go, so that lists of ranks (the endpoints' applying lists) need no
    /// renumbering when a policy is inserted or removed. `None`: the rank is the position
    /// (a model built once).
    ranks: Option<Vec<usize>>,
}

/// The distance between the ranks of neighbouring policies after [`PolicyTable::spread`].
const RANK_GAP: usize = 1 << 16;

impl PolicyTable {
    /// Orders `policies` by tier (`tiers` is in evaluation order), order and name.
    pub(super) fn new(tiers: Vec<TierEntry>, policies: Vec<Policy>) -> PolicyTable {
        let tier_pos: HashMap<&str, usize> = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut keyed: Vec<(usize, String, Policy)> = policies
            .into_iter()
            .map(|p| {
                let t = tier_pos.get(p.tier.as_str()).copied().unwrap_or(usize::MAX);
                (t, p.id.sort_key(), p)
            })
            .collect();
        keyed.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| cmp_order(a.2.order, b.2.order))
                .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
        });
        let (tier_of, policies) = keyed.into_iter().map(|(t, _, p)| (t, p)).unzip();
        PolicyTable {
            tiers,
            policies,
            tier_of,
            ranks: None,
        }
    }

    /// The rank of the policy at `pi`.
    pub(crate) fn rank_of(&self, pi: usize) -> usize {
        match &self.ranks {
            None => pi,
            Some(r) => r.get(pi).copied().unwrap_or(usize::MAX),
        }
    }

    /// The position of the policy of rank `rank`.
    pub(crate) fn position_of_rank(&self, rank: usize) -> Option<usize> {
        match &self.ranks {
            None => (rank < self.policies.len()).then_some(rank),
            Some(r) => r.binary_search(&rank).ok(),
        }
    }

    /// Whether ranks are positions.
    pub(crate) fn ranks_are_positions(&self) -> bool {
        self.ranks.is_none()
    }

    /// Gives the policies ranks `RANK_GAP` apart; returns the function from an old rank to
    /// the new one.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn spread(&mut self) -> impl Fn(usize) -> usize + use<> {
        // Old ranks need not be in order here (an insert that found no room left one out).
        let old: Option<HashMap<usize, usize>> = self
            .ranks
            .take()
            .map(|r| r.into_iter().enumerate().map(|(p, r)| (r, p)).collect());
        self.ranks = Some((1..=self.policies.len()).map(|i| i * RANK_GAP).collect());
        move |rank| {
            let pos = match &old {
                None => Some(rank),
                Some(r) => r.get(&rank).copied(),
            };
            pos.map_or(usize::MAX, |p| (p + 1) * RANK_GAP)
        }
    }

    /// Tiers, in evaluation order.
    pub(crate) fn tiers(&self) -> &[TierEntry] {
        &self.tiers
    }

    /// Policies, in evaluation order.
    pub(crate) fn as_slice(&self) -> &[Policy] {
        &self.policies
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Policy> {
        self.policies.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.policies.len()
    }

    pub(crate) fn get(&self, pi: usize) -> Option<&Policy> {
        self.policies.get(pi)
    }

    /// The position of policy `pi`'s tier.
    pub(crate) fn tier_of(&self, pi: usize) -> usize {
        self.tier_of.get(pi).copied().unwrap_or(usize::MAX)
    }

    /// The tier of policy `pi`.
    pub(crate) fn tier_entry_of(&self, pi: usize) -> Option<&TierEntry> {
        self.tiers.get(self.tier_of(pi))
    }

    /// The position of the policy with this id.
    pub(crate) fn position(&self, id: &PolicyId) -> Option<usize> {
        self.policies.iter().position(|p| p.id == *id)
    }

    /// The position of the tier of this name.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn tier_position(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// Removes the policy at `pi`.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn remove(&mut self, pi: usize) -> Policy {
        self.tier_of.remove(pi);
        if let Some(r) = &mut self.ranks {
            r.remove(pi);
        }
        self.policies.remove(pi)
    }

    /// Inserts `p` (of the tier at `tier`) at its place in evaluation order; returns its
    /// position.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn insert(&mut self, p: Policy, tier: usize) -> usize {
        let (mut lo, mut hi) = (0, self.policies.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if policy_order(self.tier_of[mid], &self.policies[mid], tier, &p).is_lt() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.policies.insert(lo, p);
        self.tier_of.insert(lo, tier);
        if let Some(r) = &mut self.ranks {
            let below = lo.checked_sub(1).map_or(0, |i| r[i]);
            let above = r
                .get(lo)
                .copied()
                .unwrap_or(below.saturating_add(2 * RANK_GAP));
            // No room between the neighbours: the caller spreads the ranks again.
            let rank = if above - below >= 2 {
                below + (above - below) / 2
            } else {
                usize::MAX
            };
            r.insert(lo, rank);
        }
        lo
    }

    /// Whether every policy has a rank of its own (false after an insert found no room).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn ranks_ok(&self) -> bool {
        self.ranks
            .as_ref()
            .is_none_or(|r| r.windows(2).all(|w| w[0] < w[1]))
    }

    /// The ranks of the enforced policies selecting endpoint `ei`, per direction, in
    /// evaluation order.
    pub(crate) fn applying_to(
        &self,
        selectors: &SelectorTable,
        ei: usize,
    ) -> PerDirection<Vec<usize>> {
        let mut out = PerDirection::<Vec<usize>>::default();
        for (pi, p) in self.policies.iter().enumerate() {
            if p.staged || p.host_only {
                continue;
            }
            let Some(sel) = p.selector_id else { continue };
            if selectors.matches_endpoint(sel, ei) {
                for dir in Direction::ALL {
                    if p.types[dir] {
                        out[dir].push(self.rank_of(pi));
                    }
                }
            }
        }
        out
    }
}

impl Index<usize> for PolicyTable {
    type Output = Policy;

    fn index(&self, pi: usize) -> &Policy {
        &self.policies[pi]
    }
}

/// The evaluation order of two policies given their tiers' positions: tier,
/// then order (unset last), then the `name/namespace/kind` tie-break.
fn policy_order(tier_a: usize, a: &Policy, tier_b: usize, b: &Policy) -> Ordering {
    tier_a
        .cmp(&tier_b)
        .then_with(|| cmp_order(a.order, b.order))
        .then_with(|| a.id.sort_key().as_bytes().cmp(b.id.sort_key().as_bytes()))
}

/// FelixConfiguration specs by name (`default`, `node.<name>`).
#[derive(Debug, Default)]
pub(super) struct FelixConfigs(pub(super) HashMap<String, FelixConfigurationSpec>);

impl FelixConfigs {
    /// The value for `node`: `node.<node>` first, then `default`.
    pub(super) fn value<T>(
        &self,
        node: &str,
        f: impl Fn(&FelixConfigurationSpec) -> Option<T>,
    ) -> Option<T> {
        self.0
            .get(&format!("node.{node}"))
            .and_then(&f)
            .or_else(|| self.0.get("default").and_then(&f))
    }

    /// The failsafe ports of `node` in `direction`: the node's own list when it sets one,
    /// else `default`'s, else Felix's defaults.
    pub(super) fn failsafe_ports(
        &self,
        node: &str,
        direction: FailsafeDirection,
    ) -> Vec<ProtoPort> {
        let inbound = direction == FailsafeDirection::Inbound;
        let spec = self
            .0
            .get(&format!("node.{node}"))
            .filter(|s| {
                if inbound {
                    s.failsafe_inbound_host_ports.is_some()
                } else {
                    s.failsafe_outbound_host_ports.is_some()
                }
            })
            .or_else(|| self.0.get("default"))
            .cloned()
            .unwrap_or_default();
        if inbound {
            spec.effective_failsafe_inbound_host_ports()
        } else {
            spec.effective_failsafe_outbound_host_ports()
        }
    }
}
