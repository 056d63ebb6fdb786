//! `calico-policy`: Calico policy semantics for offline analysis.
//!
//! Load manifests (Kubernetes and Calico, YAML or JSON) with [`load_paths`] or
//! [`load_str`], build a [`Model`], then ask it questions:
//!
//! - [`Model::build`] turns a [`LoadedSet`] into the cluster model: endpoints (Pods,
//!   workload controllers as synthetic pods, WorkloadEndpoints, HostEndpoints), network
//!   sets, profiles (the derived `kns.<namespace>` and `ksa.<namespace>.<account>` ones
//!   included), tiers and policies. Kubernetes NetworkPolicies are converted exactly as
//!   Calico converts them ([`convert`]), and every selector is rewritten the way Calico
//!   scopes it ([`rewrite`]). Anything it cannot use is a [`Diagnostic`] naming file,
//!   document, resource and field; [`Model::build_lenient`] keeps going without it.
//! - [`Model::check`] decides one [`FlowQuery`] and explains, per [`Direction`], which
//!   tier, policy, rule and action (or which default) decided: a [`CheckResult`].
//! - [`Model::connlist`] lists every allowed connection between workloads and external
//!   address ranges ([`Connlist`]), rendered by [`Connlist::render`] in a [`Format`];
//!   [`diff()`] compares two models' lists.
//! - [`Model::lint`] reports rules that can never match, are shadowed, and the like.
//! - [`Model::compile`] gives the address-set program ([`Program`]) that renderers use,
//!   keyed by stable identities ([`PolicyId`], [`EndpointKey`]) with one value per
//!   [`Direction`] ([`PerDirection`]).
//!
//! # Features
//!
//! Analysis needs none; the rest is opt-in so that `cargo add calico-policy` stays lean.
//!
//! - `nft`: the `nft` module. `nft::build_ruleset` turns a program into the nftables ruleset
//!   of one node (the `calico-nft` crate's model, re-exported there), rendered by
//!   `Ruleset::to_nft` and diffed by `RulesetDelta::between`.
//! - `iptables`: the `iptables` module, the equivalent Felix-style iptables layout.
//! - `incremental`: the `incremental` module, whose `Compiler` keeps a program up to date
//!   one resource change at a time.
//!
//! # How a flow is decided
//!
//! A flow passes when the source endpoint's **egress** and the destination endpoint's
//! **ingress** both allow it; a peer that is not an endpoint (an external address) has no
//! policy of its own and allows its side. For one endpoint and direction:
//!
//! 1. The tiers are walked in order (tier `order`, unset last, then name; a tier that
//!    policies name but no manifest defines comes last and denies). Within a tier, the
//!    policies that select the endpoint and have rules for the direction are walked in
//!    order (policy `order`, unset last, then by `name/namespace/kind`). Their rules are
//!    tried in order: `Allow` and `Deny` decide; `Log` is noted and the walk goes on; `Pass`
//!    skips the rest of the tier and goes to the next one.
//! 2. A tier with at least one such policy in which no rule decided ends with the tier's
//!    default action: `Deny` (the default) drops, `Pass` goes to the next tier. Tiers with
//!    no policy for the endpoint are skipped.
//! 3. What the tiers leave undecided (no tier had a policy for the endpoint, or the last
//!    one passed it on) goes to the endpoint's profiles, in order; for a pod the derived
//!    `kns.<namespace>` profile (which allows everything) then `ksa.<ns>.<account>`. A rule
//!    of a profile decides as in a policy; a profile that does not exist denies, and so
//!    does reaching the end of the profiles.
//!
//! Staged policies are parsed and reported but never enforced. Source ports are not
//! modelled (they are assumed to match).
//!
//! # Example
//!
//! ```
//! use calico_policy::{FlowQuery, Format, Model, PeerQuery, Protocol, Verdict, load_str};
//!
//! let yaml = r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: a, namespace: ns, labels: {app: a}}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: b, namespace: ns, labels: {app: b}}
//! ---
//! apiVersion: networking.k8s.io/v1
//! kind: NetworkPolicy
//! metadata: {name: b-in, namespace: ns}
//! spec:
//!   podSelector: {matchLabels: {app: b}}
//!   ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]
//! "#;
//! let model = Model::build(&load_str("m.yaml", yaml))?;
//! let q = |port| FlowQuery {
//!     from: PeerQuery::Name("ns/a".into()),
//!     to: PeerQuery::Name("ns/b".into()),
//!     protocol: Protocol::Tcp,
//!     port: Some(port),
//!     icmp_type: None,
//!     icmp_code: None,
//! };
//! assert_eq!(model.check(&q(80))?.verdict, Verdict::Allow);
//! assert_eq!(model.check(&q(81))?.verdict, Verdict::Deny);
//! let txt = model.connlist()?.render(Format::Txt);
//! assert!(txt.contains("ns/a[Pod] => ns/b[Pod] : TCP 80\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/check_flow.rs` does the same on a directory of manifests. The [`semantics`]
//! page (also `docs/semantics.md`) explains selector scoping, Kubernetes conversion, host
//! endpoints, IP families and the connlist format.
#![deny(missing_docs)]

mod addr;
mod check;
mod compile;
mod conn;
mod connlist;
pub mod convert;
mod diag;
mod direction;
mod eval;
#[cfg(feature = "incremental")]
pub mod incremental;
#[cfg(feature = "iptables")]
pub mod iptables;
mod lint;
mod matching;
mod model;
#[cfg(feature = "nft")]
pub mod nft;
mod node;
mod prepared;
pub mod rewrite;
mod rules;
#[doc = include_str!("../docs/semantics.md")]
pub mod semantics {}

pub use addr::{AddrRange, Family};
pub use check::{
    CheckError, CheckResult, Decision, DirectionResult, FailsafeDirection, FlowQuery, PeerInfo,
    PeerKind, PeerQuery, Verdict, action_name, tier_action_name,
};
pub use compile::{
    EndpointProgram, IrMatch, IrRule, MemberChanges, MemberDelta, PolicyProgram, Program,
    ProgramChanges, SetDef, SetId, TierProgram,
};
pub use conn::{ConnSet, PortProtocol, PortRange, PortSet};
pub use connlist::{
    ConnDiff, ConnRow, Connlist, ConnlistError, ConnlistPlan, ConnlistWarning, DiffRow, Format,
    diff,
};
pub use diag::{BuildError, Diagnostic, Severity};
pub use direction::{Direction, PerDirection};
pub use eval::Packet;
pub use lint::{Finding, FindingCode};
pub use model::{
    Endpoint, EndpointKey, EndpointKind, EndpointToHostAction, Model, NamedPort, NetworkSetEntry,
    Policy, PolicyId, PolicyKind, ProfileEntry, TierEntry, Workload,
};
pub use node::{NodeEndpoints, node_endpoints};

/// Loading manifests: re-exported from `calico-model` so that a user of this crate needs no
/// other import. [`load_paths`] reads files and directories (recursively, `.yaml`, `.yml`
/// and `.json`) and fails with [`LoadErrors`] when an input cannot be read or parsed;
/// [`load_str`] reads one text; both load strictly (see [`LoadMode`]).
pub use calico_model::loader::{
    LoadErrors, LoadMode, LoadedSet, load_paths, load_paths_with, load_str,
};
/// Rule and tier actions and the protocol of a flow, re-exported from `calico-model`.
pub use calico_model::resources::{
    policy::{Action, TierAction},
    values::Protocol,
};
