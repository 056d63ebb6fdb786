//! A block: the per-address state of one aligned slice of a pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::net::{addr_to_u128, base, covered, is_v4, size, u128_to_addr};
use crate::records::{Nanos, Owner};
use calico_model::gotime::UnixSeconds;

/// The handle of the Windows host-reserved addresses; blocks holding only those are empty.
pub const WINDOWS_RESERVED_HANDLE: &str = "windows-reserved-ipam-handle";

/// The note of the Windows-reserved attribute.
pub const WINDOWS_RESERVED_NOTE: &str = "windows host";

/// The attributes shared by one or more allocated ordinals (stored as Calico's
/// `AllocationAttribute`: `handle_id`, `secondary`, `alternateOwnerAttrs`, `releasedAt`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribute {
    /// Owning handle ID.
    pub handle: Option<String>,
    /// Owner attributes (`pod`, `namespace`, `node`, ...).
    pub owner: BTreeMap<String, String>,
    /// KubeVirt live-migration peer attributes.
    pub alternate_owner: BTreeMap<String, String>,
    /// Present: the address is in cooldown since this time (whole Unix seconds).
    pub released_at: Option<UnixSeconds>,
}

/// Whole Unix seconds of a time in nanoseconds.
pub(crate) fn secs(now: Nanos) -> UnixSeconds {
    i64::try_from(now / 1_000_000_000).unwrap_or(i64::MAX)
}

/// A broken block invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "invariant", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Violation {
    /// `allocations` does not have one slot per address.
    #[error("allocations has {slots} slots for a block of {addresses} addresses")]
    WrongLength {
        /// Slots present.
        slots: usize,
        /// Addresses in the block.
        addresses: u128,
    },
    /// An allocation points past `attributes`.
    #[error("ordinal {ordinal} points at attribute {index} of {attributes}")]
    DanglingIndex {
        /// The ordinal.
        ordinal: u32,
        /// Its attribute index.
        index: u32,
        /// Attributes present.
        attributes: usize,
    },
    /// An attribute no allocation points at.
    #[error("attribute {index} is referenced by no allocation")]
    UnusedAttribute {
        /// The attribute.
        index: u32,
    },
    /// A cooldown attribute released after now.
    #[error("attribute {index} was released in the future")]
    ReleasedInFuture {
        /// The attribute.
        index: u32,
    },
    /// `unallocated` names an ordinal outside the block.
    #[error("free ordinal {ordinal} is outside the block")]
    FreeOutside {
        /// The ordinal.
        ordinal: u32,
    },
    /// `unallocated` names an ordinal twice.
    #[error("ordinal {ordinal} is listed twice as free")]
    FreeTwice {
        /// The ordinal.
        ordinal: u32,
    },
    /// `unallocated` names an allocated ordinal (Calico would hand it out again).
    #[error("ordinal {ordinal} is both free and allocated")]
    FreeAndAllocated {
        /// The ordinal.
        ordinal: u32,
    },
    /// The block's `cidr` is not the one its key names.
    #[error("its cidr {cidr} is not the one its key names")]
    CidrNotKey {
        /// The block's `cidr`.
        cidr: IpNet,
    },
    /// Ordinals neither allocated nor listed as free.
    #[error("{count} ordinal(s) neither free nor allocated, the first {first}")]
    NotFreeNorAllocated {
        /// The lowest.
        first: u32,
        /// How many.
        count: usize,
    },
}

/// One block. Ordinal `i` is address `cidr.base + i`. Stored as Calico's `AllocationBlock`
/// JSON (see the crate README); times are whole seconds, as that JSON holds them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "crate::block_wire::BlockWire")]
pub struct Block {
    /// The block prefix.
    pub cidr: IpNet,
    /// `host:<node>`, `virtual:<name>` or none.
    pub affinity: Option<String>,
    /// When the current owner claimed the block (whole Unix seconds; `None`: unset, which
    /// reads as "long ago").
    pub affinity_claim_time: Option<UnixSeconds>,
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
            affinity_claim_time: owner.map(|_| secs(now)),
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
        u128_to_addr(
            base(&self.cidr).wrapping_add(u128::from(ordinal)),
            is_v4(&self.cidr),
        )
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
                .is_some_and(|t| {
                    i128::from(t) * 1_000_000_000 + i128::from(cooldown) <= i128::from(now)
                });
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
            let a = b.wrapping_add(u128::from(o));
            if taken.len() < n
                && (o as usize) < self.allocations.len()
                && covered(reserved, a, a) == 0
                && !self.is_allocated(o)
            {
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

    /// Pre-allocates the Windows host-reserved ordinals of a new block (its first three
    /// and last) under one attribute, handle `windows-reserved-ipam-handle` with note
    /// `windows host`, without sequence stamps: what Calico's block creation writes.
    pub fn reserve_windows(&mut self) {
        let n = self.allocations.len();
        if n < 4 {
            return;
        }
        let mut note = BTreeMap::new();
        note.insert("note".to_owned(), WINDOWS_RESERVED_NOTE.to_owned());
        let idx = self.attribute_index(Attribute {
            handle: Some(WINDOWS_RESERVED_HANDLE.to_owned()),
            owner: note,
            ..Attribute::default()
        });
        let reserved = [0, 1, 2, n - 1];
        for o in reserved {
            self.allocations[o] = Some(idx);
        }
        self.unallocated
            .retain(|&o| !reserved.contains(&(o as usize)));
    }

    /// Puts allocated ordinals into cooldown (one attribute `{releasedAt: now}`) and
    /// re-stamps them.
    pub fn release(&mut self, ordinals: &[u32], now: Nanos) {
        if ordinals.is_empty() {
            return;
        }
        let idx = self.attribute_index(Attribute {
            released_at: Some(secs(now)),
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

    /// The invariants a block must satisfy before anyone may write it, in order: the first
    /// one found, or `None`. These are what every writer (Calico's or ours) relies on:
    /// one allocation slot per address, attribute indexes in range, every attribute used,
    /// and `unallocated` exactly the free ordinals (Calico hands out its head unchecked).
    pub fn broken_invariant(&self) -> Option<Violation> {
        self.check(None, true).into_iter().next()
    }

    /// Every invariant that fails; with `now`, also attributes released in the future.
    pub fn violations(&self, now: Nanos) -> Vec<Violation> {
        self.check(Some(now), false)
    }

    fn check(&self, now: Option<Nanos>, first_only: bool) -> Vec<Violation> {
        let mut v = Vec::new();
        let n = self.allocations.len();
        if size(&self.cidr) != n as u128 {
            v.push(Violation::WrongLength {
                slots: n,
                addresses: size(&self.cidr),
            });
            if first_only {
                return v;
            }
        }
        let mut referenced = vec![false; self.attributes.len()];
        for (o, a) in self.allocations.iter().enumerate() {
            if let Some(i) = a {
                match referenced.get_mut(*i as usize) {
                    Some(r) => *r = true,
                    None => v.push(Violation::DanglingIndex {
                        ordinal: o as u32,
                        index: *i,
                        attributes: self.attributes.len(),
                    }),
                }
            }
        }
        for (i, r) in referenced.iter().enumerate() {
            if !r {
                v.push(Violation::UnusedAttribute { index: i as u32 });
            }
        }
        if first_only && !v.is_empty() {
            return v;
        }
        if let Some(now) = now {
            let now = secs(now);
            for (i, a) in self.attributes.iter().enumerate() {
                if a.released_at.is_some_and(|t| t > now) {
                    v.push(Violation::ReleasedInFuture { index: i as u32 });
                }
            }
        }
        let mut free = vec![false; n];
        for &o in &self.unallocated {
            match free.get_mut(o as usize) {
                None => v.push(Violation::FreeOutside { ordinal: o }),
                Some(true) => v.push(Violation::FreeTwice { ordinal: o }),
                Some(f) => {
                    *f = true;
                    if self.is_allocated(o) {
                        v.push(Violation::FreeAndAllocated { ordinal: o });
                    }
                }
            }
        }
        let missing: Vec<u32> = (0..n)
            .filter(|&o| !free[o] && self.allocations[o].is_none())
            .map(|o| o as u32)
            .collect();
        if let Some(&first) = missing.first() {
            v.push(Violation::NotFreeNorAllocated {
                first,
                count: missing.len(),
            });
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
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    fn blk() -> Block {
        Block::new(
            "10.0.0.0/30".parse().unwrap(),
            Some(&Owner::host("a")),
            100 * S,
        )
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
        assert_eq!(
            b.stamp(0),
            100 * S,
            "stamped with the pre-write sequence number"
        );
        assert!(b.violations(100 * S).is_empty());
        assert!(!b.is_empty());
        b.release(&[0], 200 * S + 7);
        assert_eq!(b.attribute(0).and_then(|a| a.released_at), Some(200));
        assert!(b.in_cooldown(0));
        assert!(!b.gc(250 * S, 100 * S));
        assert!(b.gc(300 * S, 100 * S));
        assert_eq!(b.unallocated, vec![1, 3, 0]);
        assert_eq!(b.attributes.len(), 1);
        assert!(b.violations(300 * S).is_empty());
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
        assert_eq!(
            b.violations(0),
            vec![
                Violation::FreeAndAllocated { ordinal: 0 },
                Violation::FreeTwice { ordinal: 2 },
                Violation::FreeOutside { ordinal: 9 },
                Violation::NotFreeNorAllocated { first: 1, count: 2 },
            ]
        );
        b.rebuild();
        assert_eq!(b.unallocated, vec![2, 1, 3]);
        assert!(b.violations(0).is_empty());
    }

    #[test]
    fn windows_reservation_is_calicos() {
        let mut b = Block::new("10.0.0.0/28".parse().unwrap(), None, 5);
        b.reserve_windows();
        assert_eq!(b.unallocated, (3..15).collect::<Vec<u32>>());
        assert_eq!(b.attributes.len(), 1);
        assert!(b.sequence_number_for_allocation.is_empty());
        assert!(b.is_empty() && b.broken_invariant().is_none());
    }

    /// A block built by allocator operations (always valid), from a script of steps.
    fn built(steps: &[(u8, u8)]) -> Block {
        let mut b = Block::new(
            "10.0.0.0/28".parse().unwrap(),
            Some(&Owner::host("h")),
            10 * S,
        );
        for &(op, arg) in steps {
            match op % 4 {
                0 => {
                    let mut owner = BTreeMap::new();
                    owner.insert("pod".to_owned(), format!("p{}", arg % 3));
                    b.take(
                        usize::from(arg % 4),
                        Some(&format!("h{}", arg % 5)),
                        &owner,
                        &[],
                    );
                }
                1 => {
                    let ords: Vec<u32> = b
                        .live()
                        .map(|(o, _)| o)
                        .filter(|o| o % 3 == u32::from(arg % 3))
                        .collect();
                    b.release(&ords, 20 * S);
                }
                2 => {
                    b.gc(u64::from(arg) * S, 5 * S);
                }
                _ => {
                    b.allocate(u32::from(arg % 16), None, &BTreeMap::new());
                }
            }
            // What every commit does before writing.
            b.compact();
            b.sequence_number += 1;
        }
        b
    }

    /// One random corruption of a valid block, and whether it must break an invariant.
    fn corrupt(b: &mut Block, kind: u8, x: u32) -> bool {
        let n = b.allocations.len() as u32;
        match kind % 6 {
            0 => {
                b.allocations.pop();
                true
            }
            1 => {
                let o = x % n;
                b.allocations[o as usize] = Some(b.attributes.len() as u32 + x % 3);
                b.unallocated.retain(|&f| f != o);
                true
            }
            2 => {
                b.attributes.push(Attribute {
                    handle: Some("stray".into()),
                    ..Attribute::default()
                });
                true
            }
            3 => match b.unallocated.first().copied() {
                Some(f) => {
                    b.unallocated.push(f);
                    true
                }
                None => false,
            },
            4 => match (0..n).find(|&o| b.is_allocated(o)) {
                Some(o) => {
                    b.unallocated.push(o);
                    true
                }
                None => false,
            },
            _ => {
                if b.unallocated.is_empty() {
                    false
                } else {
                    let i = x as usize % b.unallocated.len();
                    b.unallocated.remove(i);
                    true
                }
            }
        }
    }

    proptest! {
        #[test]
        fn allocator_operations_keep_every_invariant_and_round_trip(
            steps in proptest::collection::vec((0u8..4, 0u8..40), 0..40),
        ) {
            let b = built(&steps);
            prop_assert_eq!(b.violations(40 * S), Vec::<Violation>::new());
            prop_assert!(b.broken_invariant().is_none());
            let text = crate::work::encode(&b);
            let back: Block = serde_json::from_slice(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &b);
            prop_assert_eq!(crate::work::encode(&back), text);
        }

        #[test]
        fn the_checker_finds_every_corruption(
            steps in proptest::collection::vec((0u8..4, 0u8..40), 0..30),
            kind in 0u8..6,
            x in 0u32..64,
        ) {
            let mut b = built(&steps);
            let broken = corrupt(&mut b, kind, x);
            prop_assert_eq!(b.broken_invariant().is_some(), broken, "{:?}", b);
            prop_assert_eq!(!b.violations(40 * S).is_empty(), broken);
            // Whatever it holds, a block round-trips and its methods do not panic.
            let back: Block = serde_json::from_slice(&crate::work::encode(&b)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &b);
            let mut t = b.clone();
            t.gc(100 * S, 0);
            t.take(20, Some("z"), &BTreeMap::new(), &[]);
            let _ = (t.is_empty(), t.handle_counts(), t.allocated_count());
        }
    }
}
