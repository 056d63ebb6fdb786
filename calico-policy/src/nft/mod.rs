//! nftables rendering of a compiled [`Program`](crate::Program): [`build_ruleset`] turns it
//! into the [`Ruleset`] of one node. The ruleset model itself (sets, chains, typed rules,
//! `nft -f` text, deltas) is the `calico-nft` crate, re-exported here so that a user of this
//! module needs no other import.

mod build;
mod node_ruleset;

pub use crate::node::{NodeEndpoints, node_endpoints};
pub use build::{
    MAP_FROM_HEP, MAP_FROM_WL, MAP_TO_HEP, MAP_TO_WL, NodeRefs, RenderOptions, WORKLOAD_PREFIX,
    build_node_ruleset, build_ruleset, object_name,
};
pub use calico_nft::*;
pub use node_ruleset::{NodeRuleset, NodeUpdate, RenderPath};
