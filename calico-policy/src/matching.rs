//! The one place where selectors are matched against labelled objects (endpoints and network
//! sets). Built on [`calico_model::index::SelectorIndex`]; after [`SelectorTable::resolve`]
//! each selector's matches are a dense bitset, so a lookup is one bit test.

use std::collections::HashMap;

use calico_model::index::SelectorIndex;
use calico_model::resources::Labels;
use calico_model::selector::{Selector, SelectorError};

/// A selector interned in a [`SelectorTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SelId(pub(crate) u32);

/// Interned selectors and, once resolved, which objects each matches.
#[derive(Debug, Default)]
pub(crate) struct SelectorTable {
    by_canonical: HashMap<String, SelId>,
    selectors: Vec<Selector>,
    /// Per selector, one bit per object (endpoints first, then network sets).
    bits: Vec<Vec<u64>>,
    endpoints: usize,
}

impl SelectorTable {
    /// Parses and interns `text` (by canonical form).
    pub(crate) fn intern(&mut self, text: &str) -> Result<SelId, SelectorError> {
        let sel = Selector::parse(text)?;
        if let Some(id) = self.by_canonical.get(sel.canonical()) {
            return Ok(*id);
        }
        let id = SelId(u32::try_from(self.selectors.len()).unwrap_or(u32::MAX));
        self.by_canonical.insert(sel.canonical().to_owned(), id);
        self.selectors.push(sel);
        Ok(id)
    }

    /// The selector of `id`.
    pub(crate) fn get(&self, id: SelId) -> Option<&Selector> {
        self.selectors.get(id.0 as usize)
    }

    /// Computes every selector's matches over the endpoints and network sets.
    pub(crate) fn resolve<'a>(
        &mut self,
        endpoints: impl ExactSizeIterator<Item = &'a Labels>,
        network_sets: impl Iterator<Item = &'a Labels>,
    ) {
        self.endpoints = endpoints.len();
        let mut index: SelectorIndex<u32, u32> = SelectorIndex::new();
        let mut n = 0u32;
        for labels in endpoints.chain(network_sets) {
            index.upsert_object(n, labels.iter());
            n += 1;
        }
        let words = (n as usize).div_ceil(64);
        self.bits = Vec::with_capacity(self.selectors.len());
        for (i, sel) in self.selectors.iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            index.upsert_selector(id, sel.root());
            let mut bits = vec![0u64; words];
            for &o in index.matching_objects(&id) {
                bits[o as usize / 64] |= 1 << (o % 64);
            }
            self.bits.push(bits);
        }
    }

    fn bit(&self, id: SelId, object: usize) -> bool {
        self.bits
            .get(id.0 as usize)
            .and_then(|b| b.get(object / 64))
            .is_some_and(|w| w & (1 << (object % 64)) != 0)
    }

    /// Whether selector `id` matches endpoint `index`.
    pub(crate) fn matches_endpoint(&self, id: SelId, index: usize) -> bool {
        self.bit(id, index)
    }

    /// Whether selector `id` matches network set `index`.
    pub(crate) fn matches_network_set(&self, id: SelId, index: usize) -> bool {
        self.bit(id, self.endpoints + index)
    }

    /// Number of interned selectors.
    pub(crate) fn len(&self) -> usize {
        self.selectors.len()
    }
}
