//! [`SelectorIndex`]: which objects each of many selectors matches, kept up to date
//! incrementally.
//!
//! This is what IP sets and endpoint policy lists are built from: objects are labelled
//! things (workload and host endpoints, network sets, namespaces), selectors come from
//! policies and rules. It is designed for about 100,000 objects and 10,000 selectors.
//!
//! # How it works
//!
//! - Objects and selectors get dense internal slots (freed slots are reused). Labels are
//!   interned ([`crate::labels`]).
//! - An inverted index maps each label key, and each (key, value), to the set of objects
//!   carrying it. Sets are sorted vectors while small and bitmaps once dense.
//! - Adding or changing a **selector** computes its match set by set algebra over those
//!   posting lists (intersection, union, complement within the live objects, and a scan of
//!   a key's distinct values for `contains` / `starts with` / `ends with`), never by
//!   evaluating it against each object.
//! - Each selector is filed under the labels it requires (its label restrictions,
//!   selector.md §11): under (k, v) for each allowed value when it requires `k` to have one
//!   of a set of values, under `k` when it only requires `k` to be present, or among the
//!   always-candidates. Adding, changing or removing an **object** then evaluates only the
//!   selectors filed under its old or new labels, with the compiled evaluator
//!   ([`crate::selector::compiled`]).
//! - Every update returns the [`MatchEvent`]s it caused, so consumers (IP set writers) can
//!   follow along incrementally; replaying all events from an empty table yields the current
//!   match table.

mod candidates;
mod postings;
mod selector_index;
mod slots;

pub use selector_index::{MatchEvent, SelectorIndex};
