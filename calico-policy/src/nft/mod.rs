//! nftables rendering of a compiled [`Program`](crate::Program) (policy.md §13): the structured
//! ruleset model ([`ruleset`]), text rendering for `nft -f`, and deltas between rulesets.

pub mod ruleset;

pub use ruleset::*;
