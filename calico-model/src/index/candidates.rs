//! Which selectors an object change can affect, from the labels each selector requires.

use std::collections::HashMap;

use super::postings::Postings;
use crate::labels::{IdBuildHasher, Interner, KeyId, LabelSet, Remap, ValueId};
use crate::selector::{LabelRestrictions, Node};

/// Where a selector is filed. Each selector is filed in exactly one place, so the
/// candidates for one label set contain no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// Only objects whose `key` has one of these values can match.
    Values(KeyId, Box<[ValueId]>),
    /// Only objects that have `key` can match.
    Key(KeyId),
    /// Any object can match.
    Always,
    /// No object can match (contradictory restrictions, e.g. `a == "x" && a == "y"`).
    Never,
}

impl Bucket {
    /// The same bucket with its ids translated by `remap`.
    pub(crate) fn remap(&self, remap: &mut Remap<'_>) -> Bucket {
        match self {
            Bucket::Values(key, values) => Bucket::Values(
                remap.key(*key),
                values.iter().map(|&v| remap.value(v)).collect(),
            ),
            Bucket::Key(key) => Bucket::Key(remap.key(*key)),
            Bucket::Always => Bucket::Always,
            Bucket::Never => Bucket::Never,
        }
    }

    /// Whether an object labelled `labels` is filed under this bucket, i.e. whether the
    /// selector is among [`Candidates::for_labels`]`(labels)`.
    pub(crate) fn admits(&self, labels: &LabelSet) -> bool {
        match self {
            Bucket::Values(key, values) => labels.get(*key).is_some_and(|v| values.contains(&v)),
            Bucket::Key(key) => labels.contains_key(*key),
            Bucket::Always => true,
            Bucket::Never => false,
        }
    }

    /// Chooses a bucket for `node` from its label restrictions (see [label restrictions](crate::selector#label-restrictions)): a value
    /// restriction if there is one, else a presence restriction, preferring whichever
    /// currently covers the fewest objects; `Always` when the selector restricts nothing.
    pub(crate) fn choose(node: &Node, interner: &mut Interner, postings: &Postings) -> Bucket {
        let restrictions = LabelRestrictions::of(node);
        if restrictions.can_never_match() {
            return Bucket::Never;
        }
        let mut best: Option<(usize, Bucket)> = None;
        let consider = |best: &mut Option<(usize, Bucket)>, cost: usize, bucket: Bucket| {
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                *best = Some((cost, bucket));
            }
        };
        // Value restrictions first: they prune best.
        for (label, r) in restrictions.iter() {
            if let Some(values) = &r.must_have_one_of {
                let key = interner.intern_key(label);
                let ids: Box<[ValueId]> = values.iter().map(|v| interner.intern_value(v)).collect();
                let cost = ids.iter().map(|&v| postings.value_count(key, v)).sum();
                consider(&mut best, cost, Bucket::Values(key, ids));
            }
        }
        if best.is_none() {
            for (label, r) in restrictions.iter() {
                if r.must_be_present {
                    let key = interner.intern_key(label);
                    consider(&mut best, postings.key_count(key), Bucket::Key(key));
                }
            }
        }
        best.map_or(Bucket::Always, |(_, b)| b)
    }
}

/// Selectors filed by bucket, and by the keys they read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    by_value: HashMap<(KeyId, ValueId), Vec<u32>, IdBuildHasher>,
    by_key: HashMap<KeyId, Vec<u32>, IdBuildHasher>,
    always: Vec<u32>,
    /// Selectors by each key they test: when an object's labels change, only selectors
    /// reading a changed key can change their result.
    readers: HashMap<KeyId, Vec<u32>, IdBuildHasher>,
}

fn remove_from(list: &mut Vec<u32>, selector: u32) {
    if let Some(pos) = list.iter().position(|&s| s == selector) {
        list.swap_remove(pos);
    }
}

impl Candidates {
    /// Files `selector` under `bucket`.
    pub(crate) fn file(&mut self, selector: u32, bucket: &Bucket) {
        match bucket {
            Bucket::Values(key, values) => {
                for &v in values.iter() {
                    self.by_value.entry((*key, v)).or_default().push(selector);
                }
            }
            Bucket::Key(key) => self.by_key.entry(*key).or_default().push(selector),
            Bucket::Always => self.always.push(selector),
            Bucket::Never => {}
        }
    }

    /// Removes `selector` from `bucket`.
    pub(crate) fn unfile(&mut self, selector: u32, bucket: &Bucket) {
        match bucket {
            Bucket::Values(key, values) => {
                for &v in values.iter() {
                    if let Some(list) = self.by_value.get_mut(&(*key, v)) {
                        remove_from(list, selector);
                        if list.is_empty() {
                            self.by_value.remove(&(*key, v));
                        }
                    }
                }
            }
            Bucket::Key(key) => {
                if let Some(list) = self.by_key.get_mut(key) {
                    remove_from(list, selector);
                    if list.is_empty() {
                        self.by_key.remove(key);
                    }
                }
            }
            Bucket::Always => remove_from(&mut self.always, selector),
            Bucket::Never => {}
        }
    }

    /// Files `selector` as a reader of `keys`.
    pub(crate) fn file_reader(&mut self, selector: u32, keys: &[KeyId]) {
        for k in keys {
            self.readers.entry(*k).or_default().push(selector);
        }
    }

    /// Removes `selector` as a reader of `keys`.
    pub(crate) fn unfile_reader(&mut self, selector: u32, keys: &[KeyId]) {
        for k in keys {
            if let Some(list) = self.readers.get_mut(k) {
                remove_from(list, selector);
                if list.is_empty() {
                    self.readers.remove(k);
                }
            }
        }
    }

    /// The selectors that read `key`.
    pub(crate) fn readers_of(&self, key: KeyId) -> &[u32] {
        self.readers.get(&key).map_or(&[][..], Vec::as_slice)
    }

    /// Number of selectors [`for_labels`](Self::for_labels) yields, without visiting them.
    pub(crate) fn count_for_labels(&self, labels: &LabelSet) -> usize {
        let filed: usize = labels
            .iter()
            .map(|(k, v)| {
                self.by_value.get(&(k, v)).map_or(0, Vec::len)
                    + self.by_key.get(&k).map_or(0, Vec::len)
            })
            .sum();
        self.always.len() + filed
    }

    /// Every selector that could match an object labelled `labels`, each exactly once.
    pub(crate) fn for_labels<'a>(
        &'a self,
        labels: &'a LabelSet,
    ) -> impl Iterator<Item = u32> + use<'a> {
        let filed = labels.iter().flat_map(move |(k, v)| {
            let by_value = self.by_value.get(&(k, v)).map_or(&[][..], Vec::as_slice);
            let by_key = self.by_key.get(&k).map_or(&[][..], Vec::as_slice);
            by_value.iter().chain(by_key)
        });
        self.always.iter().chain(filed).copied()
    }
}
