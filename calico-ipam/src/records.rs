//! The values stored under the IPAM keys other than blocks: owners, handles, affinities,
//! empty markers.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Unix time in nanoseconds: the unit of every time the allocator stores.
pub type Nanos = u64;

/// The owner of a block affinity: `host:<node>` or `virtual:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A host (node).
    Host(String),
    /// A virtual owner (only `load-balancer` is used).
    Virtual(String),
}

impl Owner {
    /// A host owner.
    pub fn host(name: impl Into<String>) -> Owner {
        Owner::Host(name.into())
    }

    /// `host` or `virtual`.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Owner::Host(_) => "host",
            Owner::Virtual(_) => "virtual",
        }
    }

    /// The host or virtual name.
    pub fn name(&self) -> &str {
        match self {
            Owner::Host(n) | Owner::Virtual(n) => n,
        }
    }

    /// Parses `host:<name>` or `virtual:<name>`.
    pub fn parse(s: &str) -> Option<Owner> {
        if let Some(n) = s.strip_prefix("host:") {
            Some(Owner::Host(n.to_owned()))
        } else {
            s.strip_prefix("virtual:")
                .map(|n| Owner::Virtual(n.to_owned()))
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind_str(), self.name())
    }
}

/// A handle: the blocks holding its addresses and how many in each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// The handle ID.
    pub id: String,
    /// Block CIDR → number of addresses of this handle in that block.
    #[serde(default)]
    pub blocks: BTreeMap<String, u64>,
}

/// The state of an affinity (§1.3). Only `confirmed` is ever written by this crate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityState {
    /// Owned and usable.
    #[default]
    #[serde(rename = "confirmed", alias = "")]
    Confirmed,
    /// A claim in progress (reference data only).
    #[serde(rename = "pending")]
    Pending,
    /// A release in progress (reference data only).
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
}

/// The value of an affinity key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AffinityRecord {
    /// The state.
    #[serde(default)]
    pub state: AffinityState,
    /// When the owner claimed the block.
    #[serde(default)]
    pub claim_time: Nanos,
}

/// The value of an empty marker: the block's owner and claim time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyMarker {
    /// The block's owner (`host:<node>`).
    pub owner: String,
    /// The owner's claim time.
    #[serde(default)]
    pub claim_time: Nanos,
}
