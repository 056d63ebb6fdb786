//! The one place where selectors are matched against labelled objects (endpoints and network
//! sets). Built on [`calico_model::index::SelectorIndex`], which it keeps: after
//! [`SelectorTable::resolve`] each selector's matches are a dense bitset (a lookup is one bit
//! test), and later selectors or endpoint label changes update the bitsets incrementally.

use std::collections::HashMap;

use calico_model::index::{MatchEvent, SelectorIndex};
use calico_model::resources::Labels;
use calico_model::selector::{Selector, SelectorError};

/// A selector interned in a [`SelectorTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SelId(pub(crate) u32);

/// Object ids in the index: endpoints are `0..`, network sets `NETWORK_SET_BASE + i`.
const NETWORK_SET_BASE: u32 = 1 << 31;

/// Interned selectors and, once resolved, which objects each matches.
#[derive(Debug, Default)]
pub(crate) struct SelectorTable {
    by_canonical: HashMap<String, SelId>,
    selectors: Vec<Selector>,
    index: SelectorIndex<u32, u32>,
    /// Per resolved selector, one bit per endpoint.
    endpoint_bits: Vec<Vec<u64>>,
    /// Per resolved selector, one bit per network set.
    network_set_bits: Vec<Vec<u64>>,
    endpoints: usize,
    network_sets: usize,
}

fn set_bit(bits: &mut Vec<u64>, i: usize, on: bool) {
    let w = i / 64;
    if bits.len() <= w {
        bits.resize(w + 1, 0);
    }
    if on {
        bits[w] |= 1 << (i % 64);
    } else {
        bits[w] &= !(1 << (i % 64));
    }
}

fn get_bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn index_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl SelectorTable {
    /// Parses and interns `text` (by canonical form). A selector interned after
    /// [`resolve`](Self::resolve) matches nothing until [`resolve_new`](Self::resolve_new).
    pub(crate) fn intern(&mut self, text: &str) -> Result<SelId, SelectorError> {
        let sel = Selector::parse(text)?;
        if let Some(id) = self.by_canonical.get(sel.canonical()) {
            return Ok(*id);
        }
        let id = SelId(index_of(self.selectors.len()));
        self.by_canonical.insert(sel.canonical().to_owned(), id);
        self.selectors.push(sel);
        Ok(id)
    }

    /// The selector of `id`.
    pub(crate) fn get(&self, id: SelId) -> Option<&Selector> {
        self.selectors.get(id.0 as usize)
    }

    /// Indexes the endpoints and network sets and computes every selector's matches.
    pub(crate) fn resolve<'a>(
        &mut self,
        endpoints: impl ExactSizeIterator<Item = &'a Labels>,
        network_sets: impl ExactSizeIterator<Item = &'a Labels>,
    ) {
        self.index = SelectorIndex::new();
        self.endpoints = endpoints.len();
        self.network_sets = network_sets.len();
        for (i, labels) in endpoints.enumerate() {
            self.index.upsert_object(index_of(i), labels.iter());
        }
        for (i, labels) in network_sets.enumerate() {
            self.index
                .upsert_object(NETWORK_SET_BASE | index_of(i), labels.iter());
        }
        self.endpoint_bits.clear();
        self.network_set_bits.clear();
        self.resolve_new();
    }

    /// Computes the matches of every selector interned since the last resolve. Returns the
    /// ids it resolved.
    pub(crate) fn resolve_new(&mut self) -> std::ops::Range<usize> {
        let start = self.endpoint_bits.len();
        for i in start..self.selectors.len() {
            let id = index_of(i);
            self.index.upsert_selector(id, self.selectors[i].root());
            let mut eb = vec![0u64; self.endpoints.div_ceil(64)];
            let mut nb = vec![0u64; self.network_sets.div_ceil(64)];
            for &o in self.index.matching_objects(&id) {
                if o & NETWORK_SET_BASE != 0 {
                    set_bit(&mut nb, (o & !NETWORK_SET_BASE) as usize, true);
                } else {
                    set_bit(&mut eb, o as usize, true);
                }
            }
            self.endpoint_bits.push(eb);
            self.network_set_bits.push(nb);
        }
        start..self.selectors.len()
    }

    /// Sets the labels of endpoint `index` (a new endpoint when `index` is the endpoint
    /// count). Returns the selectors whose match of it changed.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn upsert_endpoint(&mut self, index: usize, labels: &Labels) -> Vec<SelId> {
        if index >= self.endpoints {
            self.endpoints = index + 1;
        }
        let events = self.index.upsert_object(index_of(index), labels.iter());
        self.apply_events(events)
    }

    /// Forgets endpoint `index` (its bits are cleared). Returns the selectors that matched it.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn remove_endpoint(&mut self, index: usize) -> Vec<SelId> {
        let events = self.index.remove_object(&index_of(index));
        self.apply_events(events)
    }

    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    fn apply_events(&mut self, events: Vec<MatchEvent<u32, u32>>) -> Vec<SelId> {
        let mut changed = Vec::new();
        for e in events {
            let (s, o, on) = match e {
                MatchEvent::Started { selector, object } => (selector, object, true),
                MatchEvent::Stopped { selector, object } => (selector, object, false),
            };
            let bits = if o & NETWORK_SET_BASE != 0 {
                self.network_set_bits.get_mut(s as usize)
            } else {
                self.endpoint_bits.get_mut(s as usize)
            };
            if let Some(bits) = bits {
                set_bit(bits, (o & !NETWORK_SET_BASE) as usize, on);
            }
            changed.push(SelId(s));
        }
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// Whether selector `id` matches endpoint `index`.
    pub(crate) fn matches_endpoint(&self, id: SelId, index: usize) -> bool {
        self.endpoint_bits
            .get(id.0 as usize)
            .is_some_and(|b| get_bit(b, index))
    }

    /// The endpoints selector `id` matches, ascending.
    pub(crate) fn matching_endpoints(&self, id: SelId) -> impl Iterator<Item = usize> + '_ {
        let bits = self
            .endpoint_bits
            .get(id.0 as usize)
            .map_or(&[][..], Vec::as_slice);
        bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let b = word.trailing_zeros() as usize;
                word &= word - 1;
                Some(w * 64 + b)
            })
        })
    }

    /// Whether selector `id` matches network set `index`.
    pub(crate) fn matches_network_set(&self, id: SelId, index: usize) -> bool {
        self.network_set_bits
            .get(id.0 as usize)
            .is_some_and(|b| get_bit(b, index))
    }

    /// The selectors matching endpoint `index`.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn selectors_matching_endpoint(&self, index: usize) -> Vec<SelId> {
        self.index
            .matching_selectors(&index_of(index))
            .map(|&s| SelId(s))
            .collect()
    }

    /// Sets the number of endpoints (after the last one was removed).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn set_endpoint_count(&mut self, n: usize) {
        self.endpoints = n;
    }

    /// Number of interned selectors.
    pub(crate) fn len(&self) -> usize {
        self.selectors.len()
    }
}
