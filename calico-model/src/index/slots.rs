//! Sets of dense slot numbers: a fixed-width scratch [`Bitset`] for set algebra, and the
//! adaptive [`SlotSet`] used for stored posting lists and match sets.

/// Bits per word.
const WORD: usize = 64;

/// Sparse sets at most this long never switch to the dense form (avoids flapping on tiny
/// sets).
const SPARSE_ALWAYS: usize = 32;

fn word_and_mask(slot: u32) -> (usize, u64) {
    let s = slot as usize;
    (s / WORD, 1u64 << (s % WORD))
}

/// Number of words needed to hold bit `slot`.
fn words_for(slot: u32) -> usize {
    slot as usize / WORD + 1
}

/// Iterates over the set bits of `words`, ascending.
#[derive(Debug, Clone)]
pub(crate) struct Ones<'a> {
    words: &'a [u64],
    /// Index of the word in `current`.
    at: usize,
    /// Remaining bits of `words[at]`.
    current: u64,
}

impl<'a> Ones<'a> {
    fn new(words: &'a [u64]) -> Self {
        Ones {
            words,
            at: 0,
            current: words.first().copied().unwrap_or(0),
        }
    }
}

impl Iterator for Ones<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.current == 0 {
            self.at += 1;
            self.current = *self.words.get(self.at)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        self.current &= self.current - 1;
        // Slots are u32 and the word count is bounded by u32 slots, so this cannot truncate.
        Some((self.at * WORD + bit) as u32)
    }
}

/// A dense bitset over slots `0..words*64`, used as scratch space during set algebra.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// The empty set with room for `words * 64` slots.
    pub(crate) fn zeroed(words: usize) -> Self {
        Bitset {
            words: vec![0; words],
        }
    }

    /// Number of words.
    pub(crate) fn word_len(&self) -> usize {
        self.words.len()
    }

    /// Adds `slot`, growing if needed.
    pub(crate) fn insert(&mut self, slot: u32) {
        let (w, m) = word_and_mask(slot);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= m;
    }

    /// Removes `slot`.
    pub(crate) fn remove(&mut self, slot: u32) {
        let (w, m) = word_and_mask(slot);
        if let Some(word) = self.words.get_mut(w) {
            *word &= !m;
        }
    }

    /// Whether `slot` is in the set.
    pub(crate) fn contains(&self, slot: u32) -> bool {
        let (w, m) = word_and_mask(slot);
        self.words.get(w).is_some_and(|word| word & m != 0)
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Number of members.
    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Members, ascending.
    pub(crate) fn iter(&self) -> Ones<'_> {
        Ones::new(&self.words)
    }

    /// `self |= other` (over `self`'s width).
    pub(crate) fn union_with(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `self &= !other`.
    pub(crate) fn subtract(&mut self, other: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// `self |= scope ∩ set`; `self` and `scope` have the same width.
    pub(crate) fn union_intersection(&mut self, scope: &Bitset, set: &SlotSet) {
        match &set.repr {
            Repr::Sparse(slots) => {
                for &s in slots {
                    if scope.contains(s) {
                        self.insert(s);
                    }
                }
            }
            Repr::Dense { words, .. } => {
                for ((a, s), b) in self.words.iter_mut().zip(&scope.words).zip(words) {
                    *a |= s & b;
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Sorted, distinct slots.
    Sparse(Vec<u32>),
    /// Bitmap plus its population count.
    Dense { words: Vec<u64>, len: usize },
}

/// A set of slots that stores itself as a sorted vector while small relative to its largest
/// member and as a bitmap otherwise.
///
/// Posting lists for rare values (`pod-template-hash`) stay a few bytes; lists for common
/// values (`projectcalico.org/orchestrator == "k8s"`) cost one bit per slot. The switch has
/// 4× hysteresis so alternating inserts and removes never convert back and forth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotSet {
    repr: Repr,
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet {
            repr: Repr::Sparse(Vec::new()),
        }
    }
}

impl SlotSet {
    /// The members of `bits`, in whichever form is smaller.
    pub(crate) fn from_bitset(bits: &Bitset) -> Self {
        let len = bits.count();
        let used = bits
            .words
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1);
        if len <= SPARSE_ALWAYS || len <= 2 * used {
            SlotSet {
                repr: Repr::Sparse(bits.iter().collect()),
            }
        } else {
            SlotSet {
                repr: Repr::Dense {
                    words: bits.words[..used].to_vec(),
                    len,
                },
            }
        }
    }

    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        match &self.repr {
            Repr::Sparse(v) => v.len(),
            Repr::Dense { len, .. } => *len,
        }
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `slot` is a member.
    pub(crate) fn contains(&self, slot: u32) -> bool {
        match &self.repr {
            Repr::Sparse(v) => v.binary_search(&slot).is_ok(),
            Repr::Dense { words, .. } => {
                let (w, m) = word_and_mask(slot);
                words.get(w).is_some_and(|word| word & m != 0)
            }
        }
    }

    /// Adds `slot`; returns whether it was new.
    pub(crate) fn insert(&mut self, slot: u32) -> bool {
        match &mut self.repr {
            Repr::Sparse(v) => {
                let Err(pos) = v.binary_search(&slot) else {
                    return false;
                };
                v.insert(pos, slot);
                let max = v.last().copied().unwrap_or(slot);
                if v.len() > SPARSE_ALWAYS && v.len() > 2 * words_for(max) {
                    let mut words = vec![0u64; words_for(max)];
                    for &s in v.iter() {
                        let (w, m) = word_and_mask(s);
                        words[w] |= m;
                    }
                    let len = v.len();
                    self.repr = Repr::Dense { words, len };
                }
                true
            }
            Repr::Dense { words, len } => {
                let (w, m) = word_and_mask(slot);
                if w >= words.len() {
                    words.resize(w + 1, 0);
                }
                let fresh = words[w] & m == 0;
                words[w] |= m;
                *len += usize::from(fresh);
                fresh
            }
        }
    }

    /// Removes `slot`; returns whether it was a member.
    pub(crate) fn remove(&mut self, slot: u32) -> bool {
        match &mut self.repr {
            Repr::Sparse(v) => match v.binary_search(&slot) {
                Ok(pos) => {
                    v.remove(pos);
                    true
                }
                Err(_) => false,
            },
            Repr::Dense { words, len } => {
                let (w, m) = word_and_mask(slot);
                let Some(word) = words.get_mut(w) else {
                    return false;
                };
                let present = *word & m != 0;
                *word &= !m;
                *len -= usize::from(present);
                if present && *len < words.len() / 2 {
                    let slots: Vec<u32> = Ones::new(words).collect();
                    self.repr = Repr::Sparse(slots);
                }
                present
            }
        }
    }

    /// Members, ascending.
    pub(crate) fn iter(&self) -> SlotIter<'_> {
        match &self.repr {
            Repr::Sparse(v) => SlotIter::Sparse(v.iter()),
            Repr::Dense { words, .. } => SlotIter::Dense(Ones::new(words)),
        }
    }

    /// Adds every member to `bits`.
    pub(crate) fn add_to(&self, bits: &mut Bitset) {
        match &self.repr {
            Repr::Sparse(v) => {
                for &s in v {
                    bits.insert(s);
                }
            }
            Repr::Dense { words, .. } => {
                if bits.words.len() < words.len() {
                    bits.words.resize(words.len(), 0);
                }
                for (a, b) in bits.words.iter_mut().zip(words) {
                    *a |= b;
                }
            }
        }
    }

    /// Whether the set is stored as a bitmap (for tests).
    #[cfg(test)]
    fn is_dense(&self) -> bool {
        matches!(self.repr, Repr::Dense { .. })
    }
}

/// Iterator over a [`SlotSet`], ascending.
#[derive(Debug, Clone)]
pub(crate) enum SlotIter<'a> {
    /// Over a sorted vector.
    Sparse(std::slice::Iter<'a, u32>),
    /// Over a bitmap.
    Dense(Ones<'a>),
}

impl Iterator for SlotIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            SlotIter::Sparse(it) => it.next().copied(),
            SlotIter::Dense(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn switches_representation_with_hysteresis() {
        let mut s = SlotSet::default();
        for i in 0..200 {
            assert!(s.insert(i));
        }
        assert!(s.is_dense());
        assert!(!s.insert(5));
        assert_eq!(s.len(), 200);
        for i in 0..199 {
            assert!(s.remove(i));
        }
        assert!(!s.is_dense());
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![199]);
        assert!(!s.remove(3));
        assert!(s.contains(199));
        assert!(!s.contains(1000));
    }

    #[test]
    fn bitset_basics() {
        let mut b = Bitset::zeroed(2);
        b.insert(3);
        b.insert(64);
        b.insert(200);
        assert_eq!(b.word_len(), 4);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![3, 64, 200]);
        assert_eq!(b.count(), 3);
        b.remove(64);
        assert!(!b.contains(64));
        assert!(b.contains(200));
        let mut c = Bitset::zeroed(4);
        c.insert(3);
        b.subtract(&c);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![200]);
        c.union_with(&b);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![3, 200]);
        assert!(!c.is_empty());
        assert!(Bitset::zeroed(3).is_empty());
    }

    proptest! {
        #[test]
        fn slotset_behaves_like_btreeset(ops in prop::collection::vec((any::<bool>(), 0u32..600), 0..400)) {
            let mut s = SlotSet::default();
            let mut model = BTreeSet::new();
            for (ins, slot) in ops {
                if ins {
                    prop_assert_eq!(s.insert(slot), model.insert(slot));
                } else {
                    prop_assert_eq!(s.remove(slot), model.remove(&slot));
                }
                prop_assert_eq!(s.len(), model.len());
            }
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            for slot in 0..700 {
                prop_assert_eq!(s.contains(slot), model.contains(&slot));
            }
            let mut bits = Bitset::zeroed(1);
            s.add_to(&mut bits);
            prop_assert_eq!(bits.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            let back = SlotSet::from_bitset(&bits);
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(back.len(), model.len());
            // scope ∩ set
            let mut scope = Bitset::zeroed(bits.word_len().max(11));
            for slot in (0..700).step_by(3) { scope.insert(slot); }
            let mut out = Bitset::zeroed(scope.word_len());
            out.union_intersection(&scope, &s);
            let want: Vec<u32> = model.iter().copied().filter(|x| x % 3 == 0).collect();
            prop_assert_eq!(out.iter().collect::<Vec<_>>(), want);
        }
    }
}
