//! The errors of IPAM operations.

use calico_model::family::Family;
use std::net::IpAddr;
use std::num::NonZeroU32;

use calico_datastore::StoreError;
use ipnet::IpNet;

use crate::block::Violation;
use crate::layout::LayoutError;

/// Why an IPAM operation failed. The operations' docs list which variants each returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpamError {
    /// The store failed (or a conflict outlived the retries' budget only via `Contention`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Conflicts kept recurring: the retries were used up.
    #[error("too much contention: gave up after {attempts} attempt(s)")]
    Contention {
        /// Attempts made (at least one).
        attempts: NonZeroU32,
    },
    /// A stored value does not decode.
    #[error("{key}: cannot decode: {reason}")]
    Decode {
        /// The key.
        key: String,
        /// The decoder's message.
        reason: String,
    },
    /// A block breaks an invariant every writer relies on (written by someone else): it is
    /// not written, and the operation that needed to change it fails.
    #[error("{key}: refusing to write a block that breaks an invariant: {violation}")]
    BrokenBlock {
        /// The block's key.
        key: String,
        /// The broken invariant.
        violation: Violation,
    },
    /// The store holds keys of an old layout of this project, which are no longer read.
    #[error(
        "the store holds keys of an old layout that this version no longer reads: found {key:?} under {prefix:?}; remove them (or migrate) before using this store"
    )]
    OldLayout {
        /// The old prefix.
        prefix: String,
        /// A key found under it.
        key: String,
    },
    /// A host name or handle ID that cannot be part of a key (empty, or with a `/`).
    #[error("{what} {name:?} cannot be stored: it must be non-empty and contain no '/'")]
    BadName {
        /// `host` or `handle`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An IPPool is malformed.
    #[error("IPPool {name}: {reason}")]
    BadPool {
        /// The pool (name or key).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A pool annotation does not parse.
    #[error("annotation {key}: {reason}")]
    BadAnnotation {
        /// The annotation.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A requested pool of the other family (or unknown, or not enabled).
    #[error("requested pool {pool} is not an enabled {family} pool")]
    RequestedPool {
        /// The pool as requested.
        pool: String,
        /// IPv4 or IPv6.
        family: Family,
    },
    /// No enabled pool of the family selects the host.
    #[error("no configured {family} pools for host {host}")]
    NoPools {
        /// The host.
        host: String,
        /// IPv4 or IPv6.
        family: Family,
    },
    /// No candidate pool allows the intended use.
    #[error("no qualified {family} pool for use {intended_use}")]
    NoQualifiedPool {
        /// IPv4 or IPv6.
        family: Family,
        /// The use.
        intended_use: String,
    },
    /// The host owns its maximum of blocks and they are full (what was assigned is kept).
    #[error("block limit reached for host {host}: it owns {owned} block(s), the limit is {limit}; assigned {} address(es)", assigned.len())]
    BlockLimit {
        /// The host.
        host: String,
        /// Blocks owned.
        owned: usize,
        /// The limit.
        limit: usize,
        /// Addresses assigned (and committed) before the limit stopped the request.
        assigned: Vec<IpNet>,
    },
    /// The address is in no enabled pool.
    #[error("{addr} is not in any enabled pool")]
    NotInPool {
        /// The address.
        addr: IpAddr,
    },
    /// The pool does not allow the intended use.
    #[error("pool {pool} does not allow use {intended_use}")]
    UseNotAllowed {
        /// The pool.
        pool: String,
        /// The use.
        intended_use: String,
    },
    /// The address is already allocated (or in cooldown).
    #[error("{addr} is already allocated")]
    AlreadyAllocated {
        /// The address.
        addr: IpAddr,
    },
    /// The address is covered by an IPReservation.
    #[error("{addr} is reserved")]
    Reserved {
        /// The address.
        addr: IpAddr,
    },
    /// Strict affinity forbids using a block owned by someone else.
    #[error("strict affinity: block {block} of {addr} is not owned by {host}")]
    StrictAffinity {
        /// The address.
        addr: IpAddr,
        /// The block.
        block: IpNet,
        /// The requesting host.
        host: String,
    },
    /// A release's handle or sequence number did not match.
    #[error("release rejected for block {block}: {reason}")]
    ReleaseMismatch {
        /// The block whose batch was rejected.
        block: IpNet,
        /// Which address and what did not match.
        reason: String,
    },
    /// A handle does not exist.
    #[error("handle {handle} not found")]
    HandleNotFound {
        /// The handle ID.
        handle: String,
    },
    /// An address is not allocated.
    #[error("{addr} is not allocated")]
    NotAllocated {
        /// The address.
        addr: IpAddr,
    },
    /// The address is in cooldown.
    #[error("{addr} is in cooldown")]
    InCooldown {
        /// The address.
        addr: IpAddr,
    },
    /// A precondition of `set_owner_attributes` failed.
    #[error("{addr}: precondition failed: {reason}")]
    Precondition {
        /// The address.
        addr: IpAddr,
        /// What differed.
        reason: String,
    },
    /// A CIDR smaller than a block, or in no pool.
    #[error("{cidr}: {reason}")]
    BadCidr {
        /// The CIDR.
        cidr: IpNet,
        /// What is wrong.
        reason: String,
    },
    /// A block to release is not empty.
    #[error("block {block} is not empty")]
    BlockNotEmpty {
        /// The block.
        block: IpNet,
    },
    /// An invalid IPAM configuration.
    #[error("invalid IPAM configuration: {reason}")]
    BadConfig {
        /// What is wrong.
        reason: String,
    },
    /// A transaction would exceed the store's operation limit.
    #[error("the operation needs {ops} store operations in one transaction (the limit is {max})")]
    TooLarge {
        /// Operations needed.
        ops: usize,
        /// The store's limit.
        max: usize,
    },
}

impl From<LayoutError> for IpamError {
    fn from(e: LayoutError) -> IpamError {
        match e {
            LayoutError::Old { prefix, key } => IpamError::OldLayout { prefix, key },
            LayoutError::Store(s) => IpamError::Store(s),
        }
    }
}

impl IpamError {
    /// Whether the operation may be retried after re-reading (a conflict or a transient
    /// store failure).
    pub fn is_retriable(&self) -> bool {
        matches!(self, IpamError::Store(e) if e.is_retriable())
    }
}
