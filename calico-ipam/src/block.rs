//! A block (§1.2): the per-address state of one aligned slice of a pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::net::{addr_to_u128, base, covered, is_v4, size, u128_to_addr};
use crate::records::{Nanos, Owner};

/// The handle of the Windows host-reserved addresses; blocks holding only those are empty.
pub const WINDOWS_RESERVED_HANDLE: &str = "windows-reserved-ipam-handle";

/// The attributes shared by one or more allocated ordinals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    /// Owning handle ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Owner attributes (`pod`, `namespace`, `node`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owner: BTreeMap<String, String>,
    /// KubeVirt live-migration peer attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alternate_owner: BTreeMap<String, String>,
    /// Present: the address is in cooldown since this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Nanos>,
}

/// One block. Ordinal `i` is address `cidr.base + i`.
///
/// Stored as JSON in a compact form (see `block_wire`): an attribute holding only a handle
/// is the bare handle string, and sequence stamps are ages relative to `sequenceNumber`
/// in an array by ordinal. The plain form (every attribute an object, every stamp in the
/// `sequenceNumberForAllocation` map) is still read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "crate::block_wire::BlockWire")]
pub struct Block {
    /// The block prefix.
    pub cidr: IpNet,
    /// `host:<node>`, `virtual:<name>` or none.
    pub affinity: Option<String>,
    /// When the current owner claimed the block (0: unset).
    pub affinity_claim_time: Nanos,
    /// Per ordinal: none (free) or an index into `attributes`.
    pub allocations: Vec<Option<u32>>,
    /// FIFO of free ordinals.
    pub unallocated: Vec<u32>,
    /// De-duplicated attributes.
    pub attributes: Vec<Attribute>,
    /// Incremented before every write; starts at the creation time in ns.
    pub sequence_number: u64,
    /// Ordinal → the block's sequence number when it was allocated (or released).
    pub sequence_number_for_allocation: BTreeMap<u32, u64>,
}

impl Block {
    /// A new block of `cidr`, owned by `owner`, created at `now`: every ordinal free.
    pub fn new(cidr: IpNet, owner: Option<&Owner>, now: Nanos) -> Block {
        let n = size(&cidr).min(u128::from(u32::MAX)) as u32;
        Block {
            cidr,
            affinity: owner.map(Owner::to_string),
            affinity_claim_time: if owner.is_some() { now } else { 0 },
            allocations: vec![None; n as usize],
            unallocated: (0..n).collect(),
            attributes: Vec::new(),
            sequence_number: now,
            sequence_number_for_allocation: BTreeMap::new(),
        }
    }

    /// Number of ordinals.
    pub fn len(&self) -> usize {
        self.allocations.len()
    }

    /// Whether the block has no ordinals (never, for a well-formed block).
    pub fn is_zero_sized(&self) -> bool {
        self.allocations.is_empty()
    }

    /// The owner named by `affinity`.
    pub fn owner(&self) -> Option<Owner> {
        self.affinity.as_deref().and_then(Owner::parse)
    }

    /// The address of an ordinal.
    pub fn addr(&self, ordinal: u32) -> IpAddr {
        u128_to_addr(base(&self.cidr) + u128::from(ordinal), is_v4(&self.cidr))
    }

    /// The ordinal of an address inside the block.
    pub fn ordinal(&self, addr: IpAddr) -> Option<u32> {
        if !self.cidr.contains(&addr) {
            return None;
        }
        u32::try_from(addr_to_u128(addr) - base(&self.cidr)).ok()
    }

    /// The attribute of an allocated ordinal.
    pub fn attribute(&self, ordinal: u32) -> Option<&Attribute> {
        let idx = (*self.allocations.get(ordinal as usize)?)?;
        self.attributes.get(idx as usize)
    }

    /// Whether the ordinal is allocated (including cooldown).
    pub fn is_allocated(&self, ordinal: u32) -> bool {
        matches!(self.allocations.get(ordinal as usize), Some(Some(_)))
    }

    /// Whether the ordinal is allocated and in cooldown.
    pub fn in_cooldown(&self, ordinal: u32) -> bool {
        self.attribute(ordinal)
            .is_some_and(|a| a.released_at.is_some())
    }

    /// Ordinals allocated and not in cooldown, with their attribute.
    pub fn live(&self) -> impl Iterator<Item = (u32, &Attribute)> + '_ {
        (0..self.allocations.len() as u32).filter_map(move |o| {
            self.attribute(o)
                .filter(|a| a.released_at.is_none())
                .map(|a| (o, a))
        })
    }

    /// Number of allocated ordinals (including cooldown).
    pub fn allocated_count(&self) -> usize {
        self.allocations.iter().filter(|a| a.is_some()).count()
    }

    /// Empty: every allocated ordinal (if any) belongs to the Windows-reserved handle.
    pub fn is_empty(&self) -> bool {
        (0..self.allocations.len() as u32).all(|o| match self.allocations[o as usize] {
            None => true,
            Some(_) => {
                self.attribute(o)
                    .and_then(|a| a.handle.as_deref())
                    .is_some_and(|h| h.eq_ignore_ascii_case(WINDOWS_RESERVED_HANDLE))
                    && !self.in_cooldown(o)
            }
        })
    }

    /// Live address counts per handle.
    pub fn handle_counts(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (_, a) in self.live() {
            if let Some(h) = &a.handle {
                *m.entry(h.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Frees ordinals whose cooldown expired (`releasedAt + cooldown ≤ now`), in ordinal
    /// order, then compacts attributes. Returns whether anything changed.
    pub fn gc(&mut self, now: Nanos, cooldown: Nanos) -> bool {
        let mut changed = false;
        for o in 0..self.allocations.len() as u32 {
            let expired = self
                .attribute(o)
                .and_then(|a| a.released_at)
                .is_some_and(|t| t.saturating_add(cooldown) <= now);
            if expired {
                self.allocations[o as usize] = None;
                self.unallocated.push(o);
                self.sequence_number_for_allocation.remove(&o);
                changed = true;
            }
        }
        changed | self.compact()
    }

    /// Drops unreferenced attributes and renumbers the indexes. Returns whether anything
    /// changed.
    pub fn compact(&mut self) -> bool {
        let used: BTreeSet<u32> = self.allocations.iter().flatten().copied().collect();
        if used.len() == self.attributes.len()
            && used.iter().all(|&i| (i as usize) < self.attributes.len())
        {
            return false;
        }
        let mut remap = BTreeMap::new();
        let mut attrs = Vec::with_capacity(used.len());
        for &i in &used {
            if let Some(a) = self.attributes.get(i as usize) {
                remap.insert(i, attrs.len() as u32);
                attrs.push(a.clone());
            }
        }
        // A dangling index (invalid data) is left for `check` to report.
        for i in self.allocations.iter_mut().flatten() {
            if let Some(&j) = remap.get(i) {
                *i = j;
            }
        }
        let changed = attrs != self.attributes;
        self.attributes = attrs;
        changed
    }

    fn attribute_index(&mut self, attr: Attribute) -> u32 {
        if let Some(i) = self.attributes.iter().position(|a| *a == attr) {
            return i as u32;
        }
        self.attributes.push(attr);
        (self.attributes.len() - 1) as u32
    }

    /// Takes up to `n` free ordinals from the head of `unallocated`, skipping reserved ones
    /// (they keep their position), for `handle` and `owner` attributes; stamps them with the
    /// block's current sequence number. `reserved` holds merged inclusive integer intervals.
    pub fn take(
        &mut self,
        n: usize,
        handle: Option<&str>,
        owner: &BTreeMap<String, String>,
        reserved: &[(u128, u128)],
    ) -> Vec<u32> {
        let b = base(&self.cidr);
        let mut taken = Vec::new();
        let mut keep = Vec::with_capacity(self.unallocated.len());
        for &o in &self.unallocated {
            let a = b + u128::from(o);
            if taken.len() < n && covered(reserved, a, a) == 0 && !self.is_allocated(o) {
                taken.push(o);
            } else {
                keep.push(o);
            }
        }
        if taken.is_empty() {
            return taken;
        }
        self.unallocated = keep;
        let idx = self.attribute_index(Attribute {
            handle: handle.map(str::to_owned),
            owner: owner.clone(),
            ..Attribute::default()
        });
        for &o in &taken {
            self.allocations[o as usize] = Some(idx);
            self.sequence_number_for_allocation
                .insert(o, self.sequence_number);
        }
        taken
    }

    /// Allocates one given free ordinal. Returns false if it is allocated.
    pub fn allocate(
        &mut self,
        ordinal: u32,
        handle: Option<&str>,
        owner: &BTreeMap<String, String>,
    ) -> bool {
        if ordinal as usize >= self.allocations.len() || self.is_allocated(ordinal) {
            return false;
        }
        self.unallocated.retain(|&o| o != ordinal);
        let idx = self.attribute_index(Attribute {
            handle: handle.map(str::to_owned),
            owner: owner.clone(),
            ..Attribute::default()
        });
        self.allocations[ordinal as usize] = Some(idx);
        self.sequence_number_for_allocation
            .insert(ordinal, self.sequence_number);
        true
    }

    /// Puts allocated ordinals into cooldown (one attribute `{releasedAt: now}`) and
    /// re-stamps them.
    pub fn release(&mut self, ordinals: &[u32], now: Nanos) {
        if ordinals.is_empty() {
            return;
        }
        let idx = self.attribute_index(Attribute {
            released_at: Some(now),
            ..Attribute::default()
        });
        for &o in ordinals {
            if let Some(slot) = self.allocations.get_mut(o as usize) {
                *slot = Some(idx);
                self.sequence_number_for_allocation
                    .insert(o, self.sequence_number);
            }
        }
    }

    /// The sequence stamp of an ordinal (missing reads as 0).
    pub fn stamp(&self, ordinal: u32) -> u64 {
        self.sequence_number_for_allocation
            .get(&ordinal)
            .copied()
            .unwrap_or(0)
    }

    /// The §1.2 invariants that fail, as messages.
    pub fn violations(&self, now: Nanos) -> Vec<String> {
        let mut v = Vec::new();
        let n = self.allocations.len();
        if size(&self.cidr) != n as u128 {
            v.push(format!(
                "{} allocation slots for a block of {} addresses",
                n,
                size(&self.cidr)
            ));
        }
        let mut referenced = vec![false; self.attributes.len()];
        for (o, a) in self.allocations.iter().enumerate() {
            if let Some(i) = a {
                match referenced.get_mut(*i as usize) {
                    Some(r) => *r = true,
                    None => v.push(format!(
                        "ordinal {o} points at attribute {i} of {}",
                        self.attributes.len()
                    )),
                }
            }
        }
        for (i, r) in referenced.iter().enumerate() {
            if !r {
                v.push(format!("attribute {i} is referenced by no allocation"));
            }
        }
        for (i, a) in self.attributes.iter().enumerate() {
            if a.released_at.is_some_and(|t| t > now) {
                v.push(format!("attribute {i} was released in the future"));
            }
        }
        let mut seen = BTreeSet::new();
        for &o in &self.unallocated {
            if !seen.insert(o) {
                v.push(format!("ordinal {o} is listed twice as free"));
            } else if o as usize >= n {
                v.push(format!("free ordinal {o} is outside the block"));
            } else if self.is_allocated(o) {
                v.push(format!("ordinal {o} is both free and allocated"));
            }
        }
        if self.unallocated.len() + self.allocated_count() != n {
            v.push(format!(
                "{} free + {} allocated != {n}",
                self.unallocated.len(),
                self.allocated_count()
            ));
        }
        v
    }

    /// Rebuilds `unallocated` (duplicates, out-of-range and allocated entries removed,
    /// missing free ordinals appended in ascending order) and compacts attributes.
    pub fn rebuild(&mut self) {
        let n = self.allocations.len() as u32;
        let mut seen = BTreeSet::new();
        let allocs = &self.allocations;
        self.unallocated
            .retain(|&o| o < n && allocs[o as usize].is_none() && seen.insert(o));
        for o in 0..n {
            if self.allocations[o as usize].is_none() && !seen.contains(&o) {
                self.unallocated.push(o);
            }
        }
        self.compact();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk() -> Block {
        Block::new("10.0.0.0/30".parse().unwrap(), Some(&Owner::host("a")), 100)
    }

    #[test]
    fn take_is_fifo_and_skips_reserved_in_place() {
        let mut b = blk();
        let none = BTreeMap::new();
        let reserved = vec![(
            addr_to_u128("10.0.0.1".parse().unwrap()),
            addr_to_u128("10.0.0.1".parse().unwrap()),
        )];
        assert_eq!(b.take(2, Some("h"), &none, &reserved), vec![0, 2]);
        assert_eq!(b.unallocated, vec![1, 3]);
        assert!(b.violations(100).is_empty());
        assert!(!b.is_empty());
        b.release(&[0], 200);
        assert!(b.in_cooldown(0));
        assert!(!b.gc(250, 100));
        assert!(b.gc(300, 100));
        assert_eq!(b.unallocated, vec![1, 3, 0]);
        assert_eq!(b.attributes.len(), 1);
        assert!(b.violations(300).is_empty());
    }

    #[test]
    fn json_round_trip() {
        let mut b = blk();
        b.take(1, None, &BTreeMap::new(), &[]);
        let text = serde_json::to_string(&b).unwrap();
        let back: Block = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn rebuild_fixes_free_list() {
        let mut b = blk();
        b.take(1, None, &BTreeMap::new(), &[]);
        b.unallocated = vec![0, 2, 2, 9];
        assert!(!b.violations(0).is_empty());
        b.rebuild();
        assert_eq!(b.unallocated, vec![2, 1, 3]);
        assert!(b.violations(0).is_empty());
    }
}
