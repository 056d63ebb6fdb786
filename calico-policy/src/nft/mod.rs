//! nftables rendering of a compiled [`Program`](crate::Program): the structured
//! ruleset model ([`ruleset`]), the builder ([`build`]), `nft -f` text ([`text`]) and deltas
//! between rulesets ([`delta`]).

pub mod build;
pub mod delta;
pub mod ruleset;
pub mod text;

pub use build::{
    NodeEndpoints, RenderOptions, build_ruleset, node_endpoints, object_name, policy_chain_id,
};
pub use delta::{ApplyError, reachable_chains};
pub use ruleset::*;
