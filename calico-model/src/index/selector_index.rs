//! The [`SelectorIndex`] type.

use std::collections::HashMap;
use std::hash::Hash;

use super::candidates::{Bucket, Candidates};
use super::postings::Postings;
use super::slots::{Bitset, SlotSet};
use crate::labels::{Interner, KeyId, LabelSet, Remap};
use crate::selector::Node;
use crate::selector::compiled::CompiledSelector;

/// A change in the match table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MatchEvent<S, O> {
    /// `selector` now matches `object` (and did not before).
    Started {
        /// The selector's id.
        selector: S,
        /// The object's id.
        object: O,
    },
    /// `selector` no longer matches `object` (it did before).
    Stopped {
        /// The selector's id.
        selector: S,
        /// The object's id.
        object: O,
    },
}

#[derive(Debug, Clone)]
struct ObjectEntry<O> {
    id: O,
    labels: LabelSet,
}

#[derive(Debug, Clone)]
struct SelectorEntry<S> {
    id: S,
    compiled: CompiledSelector,
    /// The keys `compiled` reads (filed in `Candidates::readers`).
    reads: Box<[KeyId]>,
    bucket: Bucket,
    matches: SlotSet,
}

/// Slot numbers are `u32`; a slab never holds more than `u32::MAX` entries (see
/// [`Slab::insert`]), so this does not saturate in practice.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Re-evaluates selector `sel` against object `slot` (id `id`), now labelled `labels`, and
/// records the change, if any.
fn reevaluate<S: Clone, O: Clone>(
    selectors: &mut Slab<SelectorEntry<S>>,
    interner: &Interner,
    sel: u32,
    slot: u32,
    id: &O,
    labels: &LabelSet,
    events: &mut Vec<MatchEvent<S, O>>,
) {
    let Some(s) = selectors.get_mut(sel) else {
        return;
    };
    let now = s.compiled.matches(labels, interner);
    if now == s.matches.contains(slot) {
        return;
    }
    let (selector, object) = (s.id.clone(), id.clone());
    if now {
        s.matches.insert(slot);
        events.push(MatchEvent::Started { selector, object });
    } else {
        s.matches.remove(slot);
        events.push(MatchEvent::Stopped { selector, object });
    }
}

/// Slot allocator: a vector of optional entries with a free list.
#[derive(Debug, Clone)]
struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop() {
            if let Some(entry) = self.entries.get_mut(slot as usize) {
                *entry = Some(value);
                return slot;
            }
        }
        // Slots are u32: more than 2^32 - 1 live entries cannot be represented. Such a table
        // would need hundreds of gigabytes, so allocation fails first; saturating keeps this
        // total.
        let slot = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(Some(value));
        slot
    }

    fn remove(&mut self, slot: u32) -> Option<T> {
        let taken = self.entries.get_mut(slot as usize)?.take();
        if taken.is_some() {
            self.free.push(slot);
        }
        taken
    }

    fn get(&self, slot: u32) -> Option<&T> {
        self.entries.get(slot as usize)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.entries.get_mut(slot as usize)?.as_mut()
    }
}

/// The match table between selectors (ids `S`) and labelled objects (ids `O`), maintained
/// incrementally. See the [module documentation](super) for the design.
///
/// Ids are chosen by the caller (a policy name, an endpoint key, a `u32`…): anything
/// `Hash + Eq + Clone`. They are cloned into events, so cheap clones are best. Internally
/// everything is keyed by dense `u32` slots.
///
/// Every mutating method returns the [`MatchEvent`]s it caused, in no particular order but
/// deterministically for a given sequence of calls; a pair appears at most once per call.
#[derive(Debug, Clone)]
pub struct SelectorIndex<S, O> {
    interner: Interner,
    object_slots: HashMap<O, u32>,
    objects: Slab<ObjectEntry<O>>,
    postings: Postings,
    selector_slots: HashMap<S, u32>,
    selectors: Slab<SelectorEntry<S>>,
    candidates: Candidates,
}

impl<S, O> Default for SelectorIndex<S, O> {
    fn default() -> Self {
        SelectorIndex {
            interner: Interner::new(),
            object_slots: HashMap::new(),
            objects: Slab::default(),
            postings: Postings::new(),
            selector_slots: HashMap::new(),
            selectors: Slab::default(),
            candidates: Candidates::default(),
        }
    }
}

impl<S: Hash + Eq + Clone, O: Hash + Eq + Clone> SelectorIndex<S, O> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    // ---- selectors ----

    /// Adds selector `id`, or replaces its expression. Returns the pairs that started or
    /// stopped matching.
    pub fn upsert_selector(&mut self, id: S, selector: &Node) -> Vec<MatchEvent<S, O>> {
        let compiled = CompiledSelector::compile(selector, &mut self.interner);
        let existing = self.selector_slots.get(&id).copied();
        if let Some(slot) = existing {
            if self
                .selectors
                .get(slot)
                .is_some_and(|e| e.compiled == compiled)
            {
                return Vec::new();
            }
        }
        let bucket = Bucket::choose(selector, &mut self.interner, &self.postings);
        let new_bits = match bucket {
            Bucket::Never => Bitset::zeroed(0),
            _ => self.postings.match_set(&compiled, &self.interner),
        };
        let mut events = Vec::new();
        match existing.and_then(|slot| self.selectors.get_mut(slot).map(|e| (slot, e))) {
            None => {
                events.reserve_exact(new_bits.count());
                for object in new_bits.iter() {
                    if let Some(o) = self.objects.get(object) {
                        events.push(MatchEvent::Started {
                            selector: id.clone(),
                            object: o.id.clone(),
                        });
                    }
                }
                let reads: Box<[KeyId]> = compiled.keys().into();
                let slot = self.selectors.insert(SelectorEntry {
                    id: id.clone(),
                    compiled,
                    reads: reads.clone(),
                    bucket: bucket.clone(),
                    matches: SlotSet::from_bitset(&new_bits),
                });
                self.candidates.file(slot, &bucket);
                self.candidates.file_reader(slot, &reads);
                self.selector_slots.insert(id, slot);
            }
            Some((slot, entry)) => {
                let mut old_bits = Bitset::zeroed(new_bits.word_len());
                entry.matches.add_to(&mut old_bits);
                let mut started = new_bits.clone();
                started.subtract(&old_bits);
                let mut stopped = old_bits;
                stopped.subtract(&new_bits);
                for (bits, is_start) in [(&started, true), (&stopped, false)] {
                    for object in bits.iter() {
                        if let Some(o) = self.objects.get(object) {
                            let (selector, object) = (id.clone(), o.id.clone());
                            events.push(if is_start {
                                MatchEvent::Started { selector, object }
                            } else {
                                MatchEvent::Stopped { selector, object }
                            });
                        }
                    }
                }
                let reads: Box<[KeyId]> = compiled.keys().into();
                if reads != entry.reads {
                    self.candidates.unfile_reader(slot, &entry.reads);
                    self.candidates.file_reader(slot, &reads);
                    entry.reads = reads;
                }
                entry.compiled = compiled;
                entry.matches = SlotSet::from_bitset(&new_bits);
                let old_bucket = std::mem::replace(&mut entry.bucket, bucket.clone());
                if old_bucket != bucket {
                    self.candidates.unfile(slot, &old_bucket);
                    self.candidates.file(slot, &bucket);
                }
            }
        }
        events
    }

    /// Removes selector `id`. Returns a `Stopped` event for every object it matched (none if
    /// the selector was unknown).
    pub fn remove_selector(&mut self, id: &S) -> Vec<MatchEvent<S, O>> {
        let Some(slot) = self.selector_slots.remove(id) else {
            return Vec::new();
        };
        let Some(entry) = self.selectors.remove(slot) else {
            return Vec::new();
        };
        self.candidates.unfile(slot, &entry.bucket);
        self.candidates.unfile_reader(slot, &entry.reads);
        entry
            .matches
            .iter()
            .filter_map(|object| self.objects.get(object))
            .map(|o| MatchEvent::Stopped {
                selector: entry.id.clone(),
                object: o.id.clone(),
            })
            .collect()
    }

    // ---- objects ----

    /// Adds object `id` with `labels`, or replaces its labels. When a key occurs more than
    /// once in `labels` the last value wins. Returns the pairs that started or stopped
    /// matching.
    pub fn upsert_object<I, K, V>(&mut self, id: O, labels: I) -> Vec<MatchEvent<S, O>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let labels = LabelSet::from_pairs(labels, &mut self.interner);
        self.upsert_object_labels(id, labels)
    }

    /// Like [`upsert_object`](Self::upsert_object) with labels already interned by this
    /// index's [`interner_mut`](Self::interner_mut).
    pub fn upsert_object_labels(&mut self, id: O, labels: LabelSet) -> Vec<MatchEvent<S, O>> {
        let mut events = Vec::new();
        let Some(&slot) = self.object_slots.get(&id) else {
            return self.insert_object(id, labels);
        };
        let Some(entry) = self.objects.get(slot) else {
            return events;
        };
        if entry.labels == labels {
            return events;
        }
        let old = entry.labels.clone();
        self.postings.relabel(slot, &old, &labels);
        // Two supersets of the selectors whose result can change; visit the smaller.
        // (a) Readers of a changed key: a selector reading none evaluates the same on the old
        //     and new labels. A selector reading several changed keys is visited more than
        //     once, which is harmless: re-evaluation compares with the stored match.
        // (b) Candidates for the old or the new labels: a selector that matched before or
        //     matches now is one. A candidate for both is visited once: in the second pass,
        //     selectors whose bucket admits the old labels were already handled.
        let changed = old.changed_keys(&labels);
        let by_readers: usize = changed
            .iter()
            .map(|&k| self.candidates.readers_of(k).len())
            .sum();
        let by_buckets =
            self.candidates.count_for_labels(&old) + self.candidates.count_for_labels(&labels);
        if by_readers <= by_buckets {
            for &k in &changed {
                for &sel in self.candidates.readers_of(k) {
                    reevaluate(
                        &mut self.selectors,
                        &self.interner,
                        sel,
                        slot,
                        &id,
                        &labels,
                        &mut events,
                    );
                }
            }
        } else {
            for sel in self.candidates.for_labels(&old) {
                reevaluate(
                    &mut self.selectors,
                    &self.interner,
                    sel,
                    slot,
                    &id,
                    &labels,
                    &mut events,
                );
            }
            for sel in self.candidates.for_labels(&labels) {
                let seen = self
                    .selectors
                    .get(sel)
                    .is_some_and(|s| s.bucket.admits(&old));
                if !seen {
                    reevaluate(
                        &mut self.selectors,
                        &self.interner,
                        sel,
                        slot,
                        &id,
                        &labels,
                        &mut events,
                    );
                }
            }
        }
        if let Some(entry) = self.objects.get_mut(slot) {
            entry.labels = labels;
        }
        events
    }

    fn insert_object(&mut self, id: O, labels: LabelSet) -> Vec<MatchEvent<S, O>> {
        let mut events = Vec::new();
        let slot = self.objects.insert(ObjectEntry {
            id: id.clone(),
            labels: LabelSet::new(),
        });
        self.postings.insert(slot, &labels);
        for sel in self.candidates.for_labels(&labels) {
            if let Some(s) = self.selectors.get_mut(sel) {
                if s.compiled.matches(&labels, &self.interner) {
                    s.matches.insert(slot);
                    events.push(MatchEvent::Started {
                        selector: s.id.clone(),
                        object: id.clone(),
                    });
                }
            }
        }
        if let Some(entry) = self.objects.get_mut(slot) {
            entry.labels = labels;
        }
        self.object_slots.insert(id, slot);
        events
    }

    /// Removes object `id`. Returns a `Stopped` event for every selector that matched it
    /// (none if the object was unknown).
    pub fn remove_object(&mut self, id: &O) -> Vec<MatchEvent<S, O>> {
        let Some(slot) = self.object_slots.remove(id) else {
            return Vec::new();
        };
        let Some(entry) = self.objects.remove(slot) else {
            return Vec::new();
        };
        self.postings.remove(slot, &entry.labels);
        let mut events = Vec::new();
        for sel in self.candidates.for_labels(&entry.labels) {
            if let Some(s) = self.selectors.get_mut(sel) {
                if s.matches.remove(slot) {
                    events.push(MatchEvent::Stopped {
                        selector: s.id.clone(),
                        object: entry.id.clone(),
                    });
                }
            }
        }
        events
    }

    // ---- queries ----

    /// The objects selector `id` matches, in internal slot order (empty if unknown).
    pub fn matching_objects<'a>(&'a self, id: &S) -> impl Iterator<Item = &'a O> + use<'a, S, O> {
        let entry = self
            .selector_slots
            .get(id)
            .and_then(|&slot| self.selectors.get(slot));
        entry
            .into_iter()
            .flat_map(|e| e.matches.iter())
            .filter_map(move |object| self.objects.get(object).map(|o| &o.id))
    }

    /// The selectors that match object `id` (empty if unknown). Cost is proportional to the
    /// number of candidate selectors for the object's labels, not to all selectors.
    pub fn matching_selectors<'a>(&'a self, id: &O) -> impl Iterator<Item = &'a S> + use<'a, S, O> {
        let found = self
            .object_slots
            .get(id)
            .and_then(|&slot| self.objects.get(slot).map(|e| (slot, e)));
        found.into_iter().flat_map(move |(slot, entry)| {
            self.candidates
                .for_labels(&entry.labels)
                .filter_map(move |sel| self.selectors.get(sel))
                .filter(move |s| s.matches.contains(slot))
                .map(|s| &s.id)
        })
    }

    /// Whether selector `selector` currently matches object `object`.
    pub fn is_match(&self, selector: &S, object: &O) -> bool {
        let (Some(&s), Some(&o)) = (
            self.selector_slots.get(selector),
            self.object_slots.get(object),
        ) else {
            return false;
        };
        self.selectors.get(s).is_some_and(|e| e.matches.contains(o))
    }

    /// Number of objects selector `id` matches, or `None` if the selector is unknown.
    pub fn match_count(&self, id: &S) -> Option<usize> {
        let slot = self.selector_slots.get(id)?;
        self.selectors.get(*slot).map(|e| e.matches.len())
    }

    /// Total number of matching (selector, object) pairs.
    pub fn total_matches(&self) -> usize {
        self.selectors
            .entries
            .iter()
            .flatten()
            .map(|e| e.matches.len())
            .sum()
    }

    /// Number of selectors.
    pub fn selector_count(&self) -> usize {
        self.selector_slots.len()
    }

    /// Number of objects.
    pub fn object_count(&self) -> usize {
        self.object_slots.len()
    }

    /// Whether selector `id` is known.
    pub fn contains_selector(&self, id: &S) -> bool {
        self.selector_slots.contains_key(id)
    }

    /// Whether object `id` is known.
    pub fn contains_object(&self, id: &O) -> bool {
        self.object_slots.contains_key(id)
    }

    /// The labels of object `id`, resolved through [`interner`](Self::interner).
    pub fn object_labels(&self, id: &O) -> Option<&LabelSet> {
        let slot = self.object_slots.get(id)?;
        self.objects.get(*slot).map(|e| &e.labels)
    }

    /// Rebuilds the interner so that it holds only the label keys and values still used by
    /// an object or a selector, and renumbers keys by how many objects carry them (the most
    /// common keys get the ids that [`LabelSet`] looks up fastest).
    ///
    /// Interned strings are otherwise never freed, so label values that come and go (a
    /// `pod-template-hash` per rollout) accumulate; call this now and then, e.g. when
    /// [`Interner::value_count`] has grown well past what is in use. It changes no match and
    /// emits no events. Label sets obtained from [`interner_mut`](Self::interner_mut)
    /// before compaction must not be used after it. Cost: proportional to the total number
    /// of labels and selector tests.
    pub fn compact(&mut self) {
        let old = std::mem::take(&mut self.interner);
        let mut remap = Remap::new(&old);

        let mut key_use = vec![0usize; old.key_count()];
        for entry in self.objects.entries.iter().flatten() {
            for (k, _) in entry.labels.iter() {
                if let Some(n) = key_use.get_mut(k.index()) {
                    *n += 1;
                }
            }
        }
        let mut by_use: Vec<(usize, usize)> = key_use
            .into_iter()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .collect();
        by_use.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (k, _) in by_use {
            remap.key(KeyId::from_raw(to_u32(k)));
        }

        self.postings = Postings::new();
        for (slot, entry) in self.objects.entries.iter_mut().enumerate() {
            if let Some(entry) = entry {
                let pairs: Vec<_> = entry
                    .labels
                    .iter()
                    .map(|(k, v)| (remap.key(k), remap.value(v)))
                    .collect();
                entry.labels = LabelSet::from_ids(pairs);
                self.postings.insert(to_u32(slot), &entry.labels);
            }
        }

        self.candidates = Candidates::default();
        for (slot, entry) in self.selectors.entries.iter_mut().enumerate() {
            if let Some(entry) = entry {
                entry.compiled = entry.compiled.remap(&mut remap);
                entry.reads = entry.compiled.keys().into();
                entry.bucket = entry.bucket.remap(&mut remap);
                self.candidates.file(to_u32(slot), &entry.bucket);
                self.candidates.file_reader(to_u32(slot), &entry.reads);
            }
        }
        self.interner = remap.finish();
    }

    /// The interner that all of this index's label sets and selectors use.
    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// Mutable access to the interner, to pre-intern label sets for
    /// [`upsert_object_labels`](Self::upsert_object_labels). Interning never changes
    /// existing ids.
    pub fn interner_mut(&mut self) -> &mut Interner {
        &mut self.interner
    }
}
