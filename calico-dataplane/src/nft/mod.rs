//! nftables over netlink: our own encoding of nf_tables messages (safe Rust, no libnftnl),
//! sent as one nfnetlink batch per apply so every change is one kernel transaction.
//!
//! Layers:
//! - [`Expr`] and friends: the kernel's rule bytecode (meta, payload, cmp, bitwise, lookup,
//!   immediate/verdicts, ct, range, log, counter);
//! - [`Table`], [`Chain`], [`Set`], [`Element`], [`Rule`]: a table's desired contents;
//! - [`NftApplier`]: plans the messages that turn the kernel's table into the desired one
//!   (diff against the last applied or read-back state), sends them as one batch, maps
//!   errors to the object that caused them, and reads the table back for drift detection.
//!
//! Set elements of interval sets are given as ranges and sent in the kernel's interval
//! encoding (start elements and `INTERVAL_END` markers, or key ends for concatenations).

mod apply;
mod batch;
mod consts;
mod error;
mod expr;
pub mod matches;
pub mod model;
mod objects;
mod socket;
mod state;
mod wire;

pub use apply::{ApplyStats, Drift, NftApplier};
pub use batch::concat_key;
pub use error::{ApplyError, ReadError, Rejection};
pub use expr::{CmpOp, CtKey, Expr, MetaKey, PayloadBase, Reg, Verdict};
pub use model::NftDataplane;
pub use objects::{BaseChain, Chain, Element, Hook, Rule, Set, Table, datatype};
pub use state::{ChainState, SetState, TableState};
