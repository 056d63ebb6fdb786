//! The inverted index from labels to objects, and match-set computation over it.

use std::collections::HashMap;

use super::slots::{Bitset, SlotSet};
use crate::labels::{IdBuildHasher, Interner, KeyId, LabelSet, ValueId};
use crate::selector::compiled::{ACCEPT, CompiledSelector, REJECT, Test};

/// Objects carrying one key.
#[derive(Debug, Clone, Default)]
struct KeyPostings {
    /// Every object that has the key.
    all: SlotSet,
    /// Objects per value of the key; a value is removed when its last object goes.
    by_value: HashMap<ValueId, SlotSet, IdBuildHasher>,
}

/// Posting lists over object slots: `key → objects` and `(key, value) → objects`, plus the
/// set of live slots.
#[derive(Debug, Clone)]
pub(crate) struct Postings {
    /// Indexed by [`KeyId`].
    keys: Vec<KeyPostings>,
    /// Slots currently holding an object.
    live: Bitset,
}

impl Postings {
    pub(crate) fn new() -> Self {
        Postings {
            keys: Vec::new(),
            live: Bitset::zeroed(0),
        }
    }

    fn key_mut(&mut self, key: KeyId) -> &mut KeyPostings {
        let i = key.index();
        if i >= self.keys.len() {
            self.keys.resize_with(i + 1, KeyPostings::default);
        }
        &mut self.keys[i]
    }

    fn add_label(&mut self, slot: u32, key: KeyId, value: ValueId) {
        let kp = self.key_mut(key);
        kp.all.insert(slot);
        kp.by_value.entry(value).or_default().insert(slot);
    }

    fn remove_label(&mut self, slot: u32, key: KeyId, value: ValueId) {
        let kp = self.key_mut(key);
        kp.all.remove(slot);
        if let Some(objects) = kp.by_value.get_mut(&value) {
            objects.remove(slot);
            if objects.is_empty() {
                kp.by_value.remove(&value);
            }
        }
    }

    /// Records a new object in `slot`.
    pub(crate) fn insert(&mut self, slot: u32, labels: &LabelSet) {
        self.live.insert(slot);
        for (k, v) in labels.iter() {
            self.add_label(slot, k, v);
        }
    }

    /// Forgets the object in `slot`, whose labels were `labels`.
    pub(crate) fn remove(&mut self, slot: u32, labels: &LabelSet) {
        self.live.remove(slot);
        for (k, v) in labels.iter() {
            self.remove_label(slot, k, v);
        }
    }

    /// Moves the object in `slot` from `old` labels to `new`, touching only labels that
    /// changed.
    pub(crate) fn relabel(&mut self, slot: u32, old: &LabelSet, new: &LabelSet) {
        let mut a = old.iter().peekable();
        let mut b = new.iter().peekable();
        loop {
            match (a.peek().copied(), b.peek().copied()) {
                (None, None) => break,
                (Some((k, v)), None) => {
                    self.remove_label(slot, k, v);
                    a.next();
                }
                (None, Some((k, v))) => {
                    self.add_label(slot, k, v);
                    b.next();
                }
                (Some((ka, va)), Some((kb, vb))) => {
                    if ka < kb {
                        self.remove_label(slot, ka, va);
                        a.next();
                    } else if kb < ka {
                        self.add_label(slot, kb, vb);
                        b.next();
                    } else {
                        if va != vb {
                            self.remove_label(slot, ka, va);
                            self.add_label(slot, kb, vb);
                        }
                        a.next();
                        b.next();
                    }
                }
            }
        }
    }

    /// Number of objects with `key`.
    pub(crate) fn key_count(&self, key: KeyId) -> usize {
        self.keys.get(key.index()).map_or(0, |kp| kp.all.len())
    }

    /// Number of objects with `key` = `value`.
    pub(crate) fn value_count(&self, key: KeyId, value: ValueId) -> usize {
        self.keys
            .get(key.index())
            .and_then(|kp| kp.by_value.get(&value))
            .map_or(0, SlotSet::len)
    }

    /// The objects `selector` matches, by set algebra over the posting lists.
    ///
    /// The branch program is run on sets instead of single label maps: the live objects
    /// enter at the entry instruction; each test splits the set reaching it into the part
    /// that passes (intersection with the test's posting lists: `==` and `has` directly,
    /// `in` as the union over its values, string tests as the union over the key's distinct
    /// values that pass) and the rest (set difference, which is how `!=`, `not in` and `!`
    /// become complements within the live objects), and sends each part along its jump.
    /// Jumps only go forward, so one pass in program order suffices; the result is the union
    /// of the sets arriving at "accept". `And` thus becomes intersection and `Or` union.
    pub(crate) fn match_set(&self, selector: &CompiledSelector, interner: &Interner) -> Bitset {
        let width = self.live.word_len();
        match selector.constant() {
            Some(true) => return self.live.clone(),
            Some(false) => return Bitset::zeroed(width),
            None => {}
        }
        let instrs = selector.instrs();
        let mut incoming: Vec<Option<Bitset>> = vec![None; instrs.len()];
        let mut accepted = Bitset::zeroed(width);
        let mut route = |target: u32, set: Bitset, incoming: &mut Vec<Option<Bitset>>| {
            if target == ACCEPT {
                accepted.union_with(&set);
            } else if target != REJECT {
                if let Some(slot) = incoming.get_mut(target as usize) {
                    match slot {
                        Some(existing) => existing.union_with(&set),
                        None => *slot = Some(set),
                    }
                }
            }
        };
        route(selector.entry(), self.live.clone(), &mut incoming);
        for (at, ins) in instrs.iter().enumerate() {
            let Some(reaching) = incoming.get_mut(at).and_then(Option::take) else {
                continue;
            };
            if reaching.is_empty() {
                continue;
            }
            let mut passed = Bitset::zeroed(width);
            if let Some(kp) = self.keys.get(ins.key.index()) {
                match ins.test {
                    Test::Has => passed.union_intersection(&reaching, &kp.all),
                    Test::Eq(v) => {
                        if let Some(objects) = kp.by_value.get(&v) {
                            passed.union_intersection(&reaching, objects);
                        }
                    }
                    Test::In { start, end } => {
                        for v in selector.set(start, end) {
                            if let Some(objects) = kp.by_value.get(v) {
                                passed.union_intersection(&reaching, objects);
                            }
                        }
                    }
                    Test::Contains(_) | Test::StartsWith(_) | Test::EndsWith(_) => {
                        for (&v, objects) in &kp.by_value {
                            if selector.test(ins.test, v, interner) {
                                passed.union_intersection(&reaching, objects);
                            }
                        }
                    }
                }
            }
            let mut failed = reaching;
            failed.subtract(&passed);
            route(ins.on_true, passed, &mut incoming);
            route(ins.on_false, failed, &mut incoming);
        }
        accepted
    }
}
