//! [`LabelSet`]: an interned, immutable label map.

use super::interner::{Interner, KeyId, ValueId};

/// Label sets with at most this many keys are searched linearly (branch-free count), larger
/// ones by binary search.
const LINEAR_SEARCH_MAX: usize = 24;

/// An interned label map: distinct keys, each with one value, sorted by [`KeyId`].
///
/// Stored as one allocation: the `n` key ids followed by the `n` value ids. Lookups are
/// allocation-free. Two label sets built with the same interner are equal exactly when the
/// label maps they were built from are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet {
    /// `[k0, k1, …, k(n-1), v0, v1, …, v(n-1)]`, keys strictly increasing.
    data: Box<[u32]>,
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
        let mut data = Vec::with_capacity(uniq.len() * 2);
        data.extend(uniq.iter().map(|&(k, _)| k.as_u32()));
        data.extend(uniq.iter().map(|&(_, v)| v.as_u32()));
        Self {
            data: data.into_boxed_slice(),
        }
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
        &self.data[self.len()..]
    }

    /// The value of `key`, if present. Never allocates.
    #[inline]
    pub fn get(&self, key: KeyId) -> Option<ValueId> {
        let n = self.len();
        let (keys, values) = self.data.split_at(n);
        let k = key.as_u32();
        let pos = if n <= LINEAR_SEARCH_MAX {
            // Count of keys below `k`: compiles to straight-line (vectorised) code.
            keys.iter().map(|&x| usize::from(x < k)).sum::<usize>()
        } else {
            keys.partition_point(|&x| x < k)
        };
        match keys.get(pos) {
            Some(&found) if found == k => values.get(pos).map(|&v| value_id(v)),
            _ => None,
        }
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
    }
}
