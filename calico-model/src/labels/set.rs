//! [`LabelSet`]: an interned, immutable label map.

use super::interner::{Interner, KeyId, ValueId};

/// Keys with ids below this have their value stored directly in the label set.
const DIRECT_KEYS: usize = 16;

/// Keys with ids below this are found through the presence mask and a population count.
const MASK_BITS: u32 = 64;

/// Beyond the mask, tails with at most this many keys are searched linearly (branch-free
/// count), longer ones by binary search.
const LINEAR_SEARCH_MAX: usize = 16;

/// Raw value returned by [`LabelSet::raw_value`] for an absent key; no interned value has
/// this id (it would take 2^32 distinct values).
pub(crate) const ABSENT: u32 = u32::MAX;

/// An interned label map: distinct keys, each with one value, sorted by [`KeyId`].
///
/// Interners hand out key ids densely in first-seen order, so the keys every object carries
/// get the smallest ids. A label set exploits that with three tiers:
///
/// - key ids `0..16`: the value is stored in a fixed table inside the set itself, so a
///   lookup is one load, with no branch, search or pointer chase;
/// - key ids `0..64`: a presence bit mask; the position in the sorted pairs is the
///   population count of the lower bits;
/// - larger ids: searched in the sorted tail of the pairs.
///
/// The pairs live in one allocation: `n` key ids, then `n` value ids. Lookups never
/// allocate. Two label sets built with the same interner are equal exactly when the label
/// maps they were built from are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelSet {
    /// Value id of key id `k < 16`, or [`ABSENT`].
    direct: [u32; DIRECT_KEYS],
    /// Bit `k` is set when key id `k < 64` is present.
    low: u64,
    /// `[k0, k1, …, k(n-1), v0, v1, …, v(n-1)]`, keys strictly increasing.
    data: Box<[u32]>,
}

impl Default for LabelSet {
    fn default() -> Self {
        LabelSet {
            direct: [ABSENT; DIRECT_KEYS],
            low: 0,
            data: Box::new([]),
        }
    }
}

impl LabelSet {
    /// The empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interns and collects `(key, value)` pairs. When a key occurs more than once the last
    /// value wins, as with inserting into a map.
    pub fn from_pairs<I, K, V>(pairs: I, interner: &mut Interner) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_ids(pairs.into_iter().map(|(k, v)| {
            (
                interner.intern_key(k.as_ref()),
                interner.intern_value(v.as_ref()),
            )
        }))
    }

    /// Collects already-interned pairs. When a key occurs more than once the last value wins.
    pub fn from_ids<I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (KeyId, ValueId)>,
    {
        let mut pairs: Vec<(KeyId, ValueId)> = pairs.into_iter().collect();
        // Stable sort keeps duplicates in input order, so the last of each run is the winner.
        pairs.sort_by_key(|&(k, _)| k);
        let mut uniq: Vec<(KeyId, ValueId)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match uniq.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => uniq.push((k, v)),
            }
        }
        let mut set = LabelSet::default();
        let mut data = Vec::with_capacity(uniq.len() * 2);
        data.extend(uniq.iter().map(|&(k, _)| k.as_u32()));
        data.extend(uniq.iter().map(|&(_, v)| v.as_u32()));
        for &(k, v) in &uniq {
            if let Some(slot) = set.direct.get_mut(k.index()) {
                *slot = v.as_u32();
            }
            if k.as_u32() < MASK_BITS {
                set.low |= 1u64 << k.as_u32();
            }
        }
        set.data = data.into_boxed_slice();
        set
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.data.len() / 2
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn keys(&self) -> &[u32] {
        &self.data[..self.len()]
    }

    fn values(&self) -> &[u32] {
        let n = self.len();
        &self.data[n..2 * n]
    }

    /// The value of `key`, if present. Never allocates.
    #[inline]
    pub fn get(&self, key: KeyId) -> Option<ValueId> {
        let raw = self.raw_value(key);
        (raw != ABSENT).then(|| value_id(raw))
    }

    /// The raw value id of `key`, or [`ABSENT`].
    #[inline]
    pub(crate) fn raw_value(&self, key: KeyId) -> u32 {
        let k = key.index();
        if k < DIRECT_KEYS {
            self.direct[k % DIRECT_KEYS]
        } else {
            self.raw_value_far(key)
        }
    }

    /// [`raw_value`](Self::raw_value) for keys outside the direct table, kept out of line so
    /// the common path stays small.
    #[inline(never)]
    fn raw_value_far(&self, key: KeyId) -> u32 {
        let n = self.len();
        let k = key.as_u32();
        let below = self.low.count_ones() as usize;
        let pos = if k < MASK_BITS {
            let bit = 1u64 << k;
            if self.low & bit == 0 {
                return ABSENT;
            }
            (self.low & (bit - 1)).count_ones() as usize
        } else {
            let Some(tail) = self.data.get(below..n) else {
                return ABSENT;
            };
            let i = if tail.len() <= LINEAR_SEARCH_MAX {
                // Count of keys below `k`: straight-line (vectorisable) code.
                tail.iter().map(|&x| u32::from(x < k)).sum::<u32>() as usize
            } else {
                tail.partition_point(|&x| x < k)
            };
            if tail.get(i) != Some(&k) {
                return ABSENT;
            }
            below + i
        };
        self.data.get(n + pos).copied().unwrap_or(ABSENT)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: KeyId) -> bool {
        self.get(key).is_some()
    }

    /// The value of the label named `key`, resolved through `interner` (which must be the one
    /// this set was built with).
    pub fn get_str<'i>(&self, key: &str, interner: &'i Interner) -> Option<&'i str> {
        let k = interner.key_id(key)?;
        self.get(k).map(|v| interner.value(v))
    }

    /// The labels as interned pairs, in key-id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (KeyId, ValueId)> + '_ {
        self.keys()
            .iter()
            .zip(self.values())
            .map(|(&k, &v)| (key_id(k), value_id(v)))
    }

    /// Keys whose value differs between `self` and `other` (present in only one of them, or
    /// present in both with different values), in key-id order.
    pub fn changed_keys(&self, other: &LabelSet) -> Vec<KeyId> {
        let mut out = Vec::new();
        let mut a = self.iter().peekable();
        let mut b = other.iter().peekable();
        loop {
            match (a.peek().copied(), b.peek().copied()) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    out.push(k);
                    a.next();
                }
                (None, Some((k, _))) => {
                    out.push(k);
                    b.next();
                }
                (Some((ka, va)), Some((kb, vb))) => {
                    if ka < kb {
                        out.push(ka);
                        a.next();
                    } else if kb < ka {
                        out.push(kb);
                        b.next();
                    } else {
                        if va != vb {
                            out.push(ka);
                        }
                        a.next();
                        b.next();
                    }
                }
            }
        }
        out
    }

    /// The labels as strings, resolved through `interner`, in key-id order.
    pub fn iter_str<'a>(
        &'a self,
        interner: &'a Interner,
    ) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        self.iter()
            .map(|(k, v)| (interner.key(k), interner.value(v)))
    }
}

fn key_id(raw: u32) -> KeyId {
    KeyId::from_raw(raw)
}

fn value_id(raw: u32) -> ValueId {
    ValueId::from_raw(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_present_absent_and_empty_value() {
        let mut i = Interner::new();
        let ls = LabelSet::from_pairs([("b", "2"), ("a", "1"), ("e", "")], &mut i);
        assert_eq!(ls.len(), 3);
        assert_eq!(ls.get_str("a", &i), Some("1"));
        assert_eq!(ls.get_str("b", &i), Some("2"));
        assert_eq!(ls.get_str("e", &i), Some(""));
        assert_eq!(ls.get_str("c", &i), None);
        let c = i.intern_key("c");
        assert!(!ls.contains_key(c));
        assert!(LabelSet::new().get(c).is_none());
    }

    #[test]
    fn changed_keys_lists_added_removed_and_changed() {
        let mut i = Interner::new();
        let a = LabelSet::from_pairs([("a", "1"), ("b", "2"), ("c", "3")], &mut i);
        let b = LabelSet::from_pairs([("b", "2"), ("c", "4"), ("d", "5")], &mut i);
        let names: Vec<&str> = a.changed_keys(&b).into_iter().map(|k| i.key(k)).collect();
        assert_eq!(names, vec!["a", "c", "d"]);
        assert_eq!(b.changed_keys(&a), a.changed_keys(&b));
        assert!(a.changed_keys(&a.clone()).is_empty());
        assert_eq!(LabelSet::new().changed_keys(&a).len(), 3);
    }

    #[test]
    fn last_duplicate_wins_and_order_is_irrelevant() {
        let mut i = Interner::new();
        let a = LabelSet::from_pairs([("x", "1"), ("y", "2"), ("x", "3")], &mut i);
        let b = LabelSet::from_pairs([("y", "2"), ("x", "3")], &mut i);
        assert_eq!(a, b);
        assert_eq!(a.get_str("x", &i), Some("3"));
        let pairs: Vec<_> = a.iter_str(&i).collect();
        assert_eq!(pairs, vec![("x", "3"), ("y", "2")]);
    }

    #[test]
    fn large_sets_use_binary_search_correctly() {
        let mut i = Interner::new();
        let names: Vec<String> = (0..100).map(|n| format!("k{n}")).collect();
        // Ids 0..100: some keys fall in the mask, the rest in the sorted tail.
        for k in &names {
            i.intern_key(k);
        }
        let ls = LabelSet::from_pairs(
            names.iter().step_by(2).map(|k| (k.as_str(), k.as_str())),
            &mut i,
        );
        assert_eq!(ls.len(), 50);
        for (n, k) in names.iter().enumerate() {
            let expect = (n % 2 == 0).then_some(k.as_str());
            assert_eq!(ls.get_str(k, &i), expect, "{k}");
        }
        // A key interned later (largest id) is absent.
        let late = i.intern_key("zzz");
        assert_eq!(ls.get(late), None);
        // Keys past the 64-bit mask, with a short tail (linear search).
        let short = LabelSet::from_pairs(
            names.iter().step_by(3).map(|k| (k.as_str(), k.as_str())),
            &mut i,
        );
        for (n, k) in names.iter().enumerate() {
            let expect = (n % 3 == 0).then_some(k.as_str());
            assert_eq!(short.get_str(k, &i), expect, "{k}");
        }
        assert_eq!(short.get(late), None);
    }
}
