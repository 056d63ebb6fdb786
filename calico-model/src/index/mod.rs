//! [`SelectorIndex`]: which objects each of many selectors matches, kept up to date
//! incrementally.
//!
//! This is what IP sets and endpoint policy lists are built from: objects are labelled
//! things (workload and host endpoints, network sets, namespaces), selectors come from
//! policies and rules. It is designed for about 100,000 objects and 10,000 selectors.
//!
//! ```
//! use calico_model::index::{MatchEvent, SelectorIndex};
//! use calico_model::selector::Selector;
//! # fn main() -> Result<(), calico_model::selector::SelectorError> {
//! let mut index: SelectorIndex<&str, u32> = SelectorIndex::new();
//! index.upsert_object(1, [("app", "web"), ("env", "prod")]);
//! index.upsert_object(2, [("app", "db")]);
//!
//! let web = Selector::parse("app == 'web' && env != 'dev'")?;
//! let events = index.upsert_selector("web", web.root());
//! assert_eq!(events, vec![MatchEvent::Started { selector: "web", object: 1 }]);
//!
//! let events = index.upsert_object(1, [("app", "web"), ("env", "dev")]);
//! assert_eq!(events, vec![MatchEvent::Stopped { selector: "web", object: 1 }]);
//! assert_eq!(index.matching_objects(&"web").count(), 0);
//! # Ok(())
//! # }
//! ```
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
//! - Each selector is filed under the labels it requires (its [label
//!   restrictions](crate::selector#label-restrictions)): under (k, v) for each allowed value when it requires `k` to have one
//!   of a set of values, under `k` when it only requires `k` to be present, or among the
//!   always-candidates. Adding or removing an **object** then evaluates only the selectors
//!   filed under its labels, with the compiled evaluator ([`crate::selector::compiled`]).
//!   Changing an object's labels evaluates the selectors filed under its old or new labels,
//!   or, when fewer, the selectors that read a key whose value changed (a selector reading
//!   none of them cannot change its result).
//! - Interned strings are kept until [`SelectorIndex::compact`] rebuilds the interner from
//!   the strings still in use.
//! - Every update returns the [`MatchEvent`]s it caused, so consumers (IP set writers) can
//!   follow along incrementally; replaying all events from an empty table yields the current
//!   match table.

mod candidates;
mod postings;
mod selector_index;
mod slots;

pub use selector_index::{MatchEvent, SelectorIndex};
