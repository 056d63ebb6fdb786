//! String interning for label keys and values.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Interned label key: an index into an [`Interner`]'s key table.
///
/// Keys and values have separate id spaces, so key ids stay dense even when there are many
/// distinct values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u32);

/// Interned label value: an index into an [`Interner`]'s value table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(u32);

impl KeyId {
    /// The raw id (0-based, dense in the order keys were first interned).
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The raw id as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

impl ValueId {
    /// The raw id (0-based, dense in the order values were first interned).
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The raw id as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// One table: string → id and id → string, sharing the string allocation.
#[derive(Default, Clone)]
struct Table {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Table {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // Reaching 2^32 distinct strings needs hundreds of gigabytes of table memory, so
        // allocation fails long before this saturates; saturating keeps the function total.
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        let shared: Arc<str> = Arc::from(s);
        self.strings.push(Arc::clone(&shared));
        self.ids.insert(shared, id);
        id
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn resolve(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }
}

/// Maps label keys and label values to small integer ids and back.
///
/// Interning is idempotent: the same string always yields the same id from the same
/// interner. Ids are never reused or freed, so an interner grows with the number of distinct
/// strings it has seen; [`crate::index::SelectorIndex::compact`] rebuilds its interner from
/// the strings still in use.
#[derive(Default, Clone)]
pub struct Interner {
    keys: Table,
    values: Table,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of label key `key`, interning it if new.
    pub fn intern_key(&mut self, key: &str) -> KeyId {
        KeyId(self.keys.intern(key))
    }

    /// The id of label value `value`, interning it if new.
    pub fn intern_value(&mut self, value: &str) -> ValueId {
        ValueId(self.values.intern(value))
    }

    /// The id of `key` if it has been interned.
    pub fn key_id(&self, key: &str) -> Option<KeyId> {
        self.keys.get(key).map(KeyId)
    }

    /// The id of `value` if it has been interned.
    pub fn value_id(&self, value: &str) -> Option<ValueId> {
        self.values.get(value).map(ValueId)
    }

    /// The key string for `id`. An id from another interner that is out of range here
    /// resolves to `""`.
    pub fn key(&self, id: KeyId) -> &str {
        self.keys.resolve(id.0)
    }

    /// The value string for `id`. An id from another interner that is out of range here
    /// resolves to `""`.
    pub fn value(&self, id: ValueId) -> &str {
        self.values.resolve(id.0)
    }

    /// Number of distinct keys interned so far (ids are `0..key_count()`).
    pub fn key_count(&self) -> usize {
        self.keys.strings.len()
    }

    /// Number of distinct values interned so far (ids are `0..value_count()`).
    pub fn value_count(&self) -> usize {
        self.values.strings.len()
    }
}

/// Re-interns ids of one interner into a fresh one, in first-use order, so that the fresh
/// interner holds only the strings still in use.
pub(crate) struct Remap<'a> {
    old: &'a Interner,
    new: Interner,
    keys: Vec<Option<KeyId>>,
    values: Vec<Option<ValueId>>,
}

impl<'a> Remap<'a> {
    pub(crate) fn new(old: &'a Interner) -> Self {
        Remap {
            old,
            new: Interner::new(),
            keys: vec![None; old.key_count()],
            values: vec![None; old.value_count()],
        }
    }

    /// The new id of old key `k`.
    pub(crate) fn key(&mut self, k: KeyId) -> KeyId {
        if let Some(Some(id)) = self.keys.get(k.index()) {
            return *id;
        }
        let id = self.new.intern_key(self.old.key(k));
        if let Some(slot) = self.keys.get_mut(k.index()) {
            *slot = Some(id);
        }
        id
    }

    /// The new id of old value `v`.
    pub(crate) fn value(&mut self, v: ValueId) -> ValueId {
        if let Some(Some(id)) = self.values.get(v.index()) {
            return *id;
        }
        let id = self.new.intern_value(self.old.value(v));
        if let Some(slot) = self.values.get_mut(v.index()) {
            *slot = Some(id);
        }
        id
    }

    /// The fresh interner.
    pub(crate) fn finish(self) -> Interner {
        self.new
    }
}

impl fmt::Debug for Interner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("keys", &self.keys.strings)
            .field("values", &self.values.strings)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_reversible() {
        let mut i = Interner::new();
        let a = i.intern_key("app");
        let b = i.intern_key("tier");
        assert_ne!(a, b);
        assert_eq!(i.intern_key("app"), a);
        assert_eq!(i.key(a), "app");
        assert_eq!(i.key(b), "tier");
        assert_eq!(i.key_id("tier"), Some(b));
        assert_eq!(i.key_id("nope"), None);
        assert_eq!(i.key_count(), 2);
    }

    #[test]
    fn keys_and_values_have_separate_id_spaces() {
        let mut i = Interner::new();
        let v = i.intern_value("app");
        let k = i.intern_key("app");
        assert_eq!(v.as_u32(), 0);
        assert_eq!(k.as_u32(), 0);
        assert_eq!(i.value_id("app"), Some(v));
        assert_eq!(i.value(v), "app");
        let empty = i.intern_value("");
        assert_eq!(i.value(empty), "");
        assert_ne!(empty, v);
        assert_eq!(i.value_count(), 2);
    }

    #[test]
    fn foreign_ids_resolve_to_empty() {
        let i = Interner::new();
        assert_eq!(i.key(KeyId(7)), "");
        assert_eq!(i.value(ValueId(7)), "");
    }
}
