//! Interned label maps for fast selector evaluation and indexing.
//!
//! Label keys and values are strings; comparing and hashing strings on every evaluation is
//! what makes naive selector matching slow. An [`Interner`] maps each distinct key and each
//! distinct value to a small integer ([`KeyId`], [`ValueId`]) once, and a [`LabelSet`] is a
//! label map stored as sorted `(KeyId, ValueId)` pairs. A compiled selector
//! ([`crate::selector::compiled::CompiledSelector`]) then compares integers, and the selector
//! index ([`crate::index::SelectorIndex`]) keys its posting lists by them.
//!
//! Ids are only meaningful together with the interner that issued them.

mod hash;
mod interner;
mod set;

pub(crate) use hash::IdBuildHasher;
pub(crate) use interner::Remap;
pub use interner::{Interner, KeyId, ValueId};
pub(crate) use set::ABSENT;
pub use set::LabelSet;
