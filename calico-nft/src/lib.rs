//! `calico-nft`: a typed model of the one nftables table Calico programs on a node
//! (`table inet calico`), with no I/O.
//!
//! - [`Ruleset`] holds named [`Set`]s, [`VerdictMap`]s and [`Chain`]s. A [`Rule`] is a list
//!   of typed [`Match`]es, then [`Statement`]s, then an optional [`RuleVerdict`]: there is no
//!   free-form text, so the same value can be written as `nft -f` input
//!   ([`Ruleset::to_nft`]) or encoded as nf_tables netlink messages by a dataplane.
//! - [`RulesetDelta::between`] computes the changes that turn one ruleset into another as one
//!   ordered transaction ([`RulesetDelta::ops`], [`RulesetDelta::to_nft`]);
//!   [`RulesetDelta::apply`] replays it on a ruleset the way the kernel would, refusing
//!   what the kernel refuses ([`ApplyError`]).
//!
//! Producers (the policy renderer) and consumers (the kernel encoder) live in other crates;
//! this one only defines what passes between them. The enums are deliberately exhaustive:
//! an encoder must handle every match and statement, so a new variant is a breaking change.
//!
//! ```
//! use calico_nft::{
//!     Chain, Match, PortProto, PortValue, Rule, RuleVerdict, Ruleset, RulesetDelta, Side,
//!     Verdict,
//! };
//!
//! let mut old = Ruleset::default();
//! old.chains.insert("pol-i-web".into(), Chain::default());
//!
//! let mut new = old.clone();
//! let web = new.chains.get_mut("pol-i-web").ok_or("no chain")?;
//! web.rules.push(Rule {
//!     matches: vec![Match::Port {
//!         proto: PortProto::Tcp,
//!         side: Side::Dst,
//!         value: PortValue::Single(443),
//!         negate: false,
//!     }],
//!     verdict: Some(RuleVerdict::Verdict(Verdict::Accept)),
//!     ..Rule::default()
//! });
//! assert_eq!(web.rules[0].to_string(), "tcp dport 443 accept");
//!
//! // One transaction: flush the chain and write its new rule.
//! let delta = RulesetDelta::between(&old, &new);
//! assert_eq!(delta.fill_chains.len(), 1);
//! assert_eq!(delta.apply(&old)?, new);
//! assert!(delta.to_nft().contains("add rule inet calico pol-i-web tcp dport 443 accept"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod delta;
mod ruleset;
mod text;

pub use delta::{ApplyError, reachable_chains};
pub use ruleset::{
    AddrValue, BaseChain, Chain, ChainFill, ChainPolicy, Hook, IfnameMatch, IpFamily, LogLevel,
    Match, NAME_MAX, Op, PortProto, PortValue, Rule, RuleVerdict, Ruleset, RulesetDelta, Set,
    SetElement, SetKey, Side, Statement, TABLE, Verdict, VerdictMap, ct_state,
};
