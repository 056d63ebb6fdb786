//! calico-dataplane: a node's kernel state from desired state.
//!
//! (Being built by issue 6; the modules land on their own branches.)
#![deny(missing_docs)]

pub mod nft;
