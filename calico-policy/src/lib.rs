//! `calico-policy`: Calico policy semantics for offline analysis.
//!
//! - [`Model::build`] turns a [`LoadedSet`](calico_model::loader::LoadedSet) into the
//!   cluster model: endpoints (Pods, workload controllers as synthetic pods,
//!   WorkloadEndpoints, HostEndpoints), network sets, profiles (derived `kns.`/`ksa.` ones
//!   included), tiers and policies — Kubernetes NetworkPolicies converted exactly as Calico
//!   converts them ([`convert`]), every selector rewritten per policy.md §5 ([`rewrite`]).
//!   Anything it cannot use is a [`Diagnostic`] naming file, document, resource and field.
//! - [`Model::check`] decides one flow, with the tier, policy, rule and action (or the
//!   default) that decided each direction.
//! - [`Model::connlist`] lists every allowed connection (connlist-format.md), rendered by
//!   [`Connlist::render`].
//! - [`Model::compile`] gives the address-set IR; [`nft::build_ruleset`] turns it into the
//!   structured nftables ruleset of one node (policy.md §13), rendered by
//!   [`nft::Ruleset::to_nft`] and diffed by [`nft::RulesetDelta::between`];
//!   [`iptables::render`] gives the reference iptables layout (§11).
//!
//! ```
//! use calico_model::loader::load_str;
//! use calico_policy::{FlowQuery, Model, PeerQuery, Verdict};
//! use calico_model::resources::values::Protocol;
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
//! let model = Model::build(&load_str("m.yaml", yaml)).unwrap();
//! let q = |port| FlowQuery {
//!     from: PeerQuery::Name("ns/a".into()),
//!     to: PeerQuery::Name("ns/b".into()),
//!     protocol: Protocol::Tcp,
//!     port: Some(port),
//!     icmp_type: None,
//!     icmp_code: None,
//! };
//! assert_eq!(model.check(&q(80)).unwrap().verdict, Verdict::Allow);
//! assert_eq!(model.check(&q(81)).unwrap().verdict, Verdict::Deny);
//! let txt = model.connlist().unwrap().render(calico_policy::Format::Txt);
//! assert!(txt.contains("ns/a[Pod] => ns/b[Pod] : TCP 80\n"));
//! ```
#![deny(missing_docs)]

pub mod addr;
pub mod check;
pub mod compile;
pub mod conn;
pub mod connlist;
pub mod convert;
pub mod diag;
mod eval;
pub mod iptables;
pub mod lint;
mod matching;
pub mod model;
pub mod nft;
mod prepared;
pub mod rewrite;
mod rules;

pub use check::{
    CheckError, CheckResult, Decision, DirectionResult, FlowQuery, PeerQuery, Verdict,
};
pub use compile::{Program, ProgramChanges};
pub use conn::{ConnSet, PortProtocol, PortSet};
pub use connlist::{
    ConnDiff, ConnRow, Connlist, ConnlistError, ConnlistPlan, DiffRow, Format, diff,
};
pub use diag::{BuildError, Diagnostic, Severity};
pub use eval::{Packet, PeerSpec};
pub use lint::Finding;
pub use model::{
    Direction, Endpoint, EndpointKind, Model, Policy, PolicyId, PolicyKind, TierEntry,
};
