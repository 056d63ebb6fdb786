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
//!
//! Applying the policy crate's rulesets (needs `CAP_NET_ADMIN`; works in the calling
//! thread's network namespace):
//!
//! ```no_run
//! use calico_dataplane::nft::{ApplyError, NftDataplane};
//! use calico_nft::{Ruleset, RulesetDelta};
//!
//! # fn main() -> Result<(), ApplyError> {
//! let old = Ruleset::default();
//! let new = Ruleset::default();
//! let mut dp = NftDataplane::new()?;
//! dp.apply_ruleset(&old)?; // one kernel transaction; a second identical apply sends nothing
//! dp.apply_delta(&RulesetDelta::between(&old, &new))?; // one transaction, all or nothing
//! assert!(dp.drift()?.is_empty()); // read back: rule digests, set elements, hooks
//! # Ok(())
//! # }
//! ```
//!
//! What a rule becomes in the kernel (pure, no I/O):
//!
//! ```
//! use calico_dataplane::nft::{Expr, MetaKey, KernelVerdict, model::rule_exprs};
//! use calico_nft as m;
//!
//! let rule = m::Rule {
//!     matches: vec![m::Match::Port {
//!         proto: m::PortProto::Tcp,
//!         side: m::Side::Dst,
//!         value: m::PortValue::Single(443),
//!         negate: false,
//!     }],
//!     verdict: Some(m::RuleVerdict::Verdict(m::Verdict::Accept)),
//!     ..m::Rule::default()
//! };
//! let exprs = rule_exprs(&rule);
//! // `meta l4proto tcp` (the dependency nft adds too), `th dport 443`, `accept`.
//! assert!(matches!(exprs[0], Expr::Meta { key: MetaKey::L4Proto, .. }));
//! assert_eq!(exprs.len(), 5);
//! assert_eq!(exprs[4], Expr::Verdict(KernelVerdict::Accept));
//! ```

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use apply::{ApplyStats, Drift, NftApplier};
pub use batch::concat_key;
pub use error::{ApplyError, ReadError, Rejection};
pub use expr::{CmpOp, CtKey, Expr, KernelVerdict, MetaKey, PayloadBase, Reg};
pub use model::NftDataplane;
pub use objects::{BaseChain, Chain, Element, Hook, Rule, Set, Table, datatype};
pub use state::{ChainState, SetState, TableState};
