//! `calico-model`: the projectcalico.org/v3 and Kubernetes resource model, its validation,
//! and the Calico label-selector language, with Calico's exact semantics.
//!
//! | module | what it holds |
//! |---|---|
//! | [`selector`] | the selector language: parser, canonical string, unique ID, evaluation, derived selectors, label restrictions |
//! | [`labels`], [`selector::compiled`] | interned label sets and a compiled, allocation-free selector evaluator |
//! | [`index`] | an incremental selector index: which objects each selector matches, with match events |
//! | [`resources`] | typed Kubernetes and projectcalico.org/v3 resources (serde YAML/JSON) with defaults |
//! | [`loader`] | manifests from files, directories, multi-document YAML and List kinds, read as Kubernetes reads them (YAML 1.1 scalars, booleans and numbers in string fields as text); strict or lenient ([`loader::LoadMode`]) |
//! | [`validation`] | Calico's validation rules, every problem with its field path |
//! | [`diagnostic`] | [`diagnostic::Origin`], [`diagnostic::Problem`] and [`diagnostic::Diagnostic`] (a problem with a severity): the one warning/error type of the loader, validation and the analyses |
//! | [`format`](mod@format) | string-format predicates (DNS labels and subdomains, Kubernetes qualified names and label values, port and interface names, MAC addresses, ...) |
//! | [`yaml`] | YAML 1.1 scalars as Kubernetes reads them, and YAML text that reads back as written |
//! | [`derived`] | implicit objects and labels: pod workload endpoints, `kns.`/`ksa.` profiles, namespace and service-account labels |
//! | [`gotime`] | Go's RFC 3339 time format, as Calico writes timestamps |
//! | [`family`] | [`family::Family`], the one IP family type (IPv4 or IPv6) of every crate |
//!
//! Pipeline: [`loader::load_paths`] (a `Result`: inputs that cannot be read or parsed are a
//! [`loader::LoadErrors`]) / [`loader::load_str`] (or their `_with` forms with a
//! [`loader::LoadMode`]) → [`loader::LoadedSet::apply_defaults`] → [`validation::validate`];
//! [`derived`] computes the implicit objects and labels.
//!
//! This crate is pure: it performs no I/O beyond the manifest loader reading the files it
//! is pointed at, starts no threads and needs no async runtime. No function panics on
//! any input.
//!
//! # Modules
//!
//! Each module uses only modules of lower layers (its "uses" column), so no two modules
//! depend on each other and the table reads bottom-up. (Documentation links to higher
//! modules are not uses.) `tests/module_layering.rs` keeps the code to this table.
//!
//! | layer | module | uses |
//! |---|---|---|
//! | 5 | [`validation`] | `loader`, `diagnostic`, `resources`, `format`, `selector`, `derived`, `parallel` |
//! | 4 | [`loader`] | `diagnostic`, `resources`, `yaml` |
//! | 3 | [`diagnostic`] | `resources` |
//! | 3 | [`derived`] | `resources` |
//! | 2 | [`resources`] | `format`, `yaml` |
//! | 2 | [`index`] | `selector`, `labels` |
//! | 1 | [`selector`] | `labels` (for [`selector::compiled`]) |
//! | 0 | [`labels`], [`format`](mod@format), [`yaml`], [`gotime`], [`family`], [`parallel`] | nothing in this crate |
//!
//! Types that moved down to break a cycle stay reachable at their first path:
//! [`loader::Origin`] is [`diagnostic::Origin`]; [`validation::Problem`],
//! [`validation::Diagnostic`] and [`validation::Severity`] are the [`diagnostic`] types;
//! [`validation::format`] is [`format`](mod@format); [`loader::scalars`] is [`yaml::scalars`].
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use calico_model::loader::load_str;
//! use calico_model::selector::Selector;
//! use calico_model::validation::validate;
//!
//! // Selectors: parse, evaluate, canonical string and Calico's unique ID.
//! let sel = Selector::parse("app == 'web' && env != 'prod'")?;
//! let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
//! assert!(sel.matches(&labels));
//! assert_eq!(sel.canonical(), r#"(app == "web" && env != "prod")"#);
//! assert!(sel.unique_id().starts_with("s:"));
//!
//! // Manifests: load, default, validate; every problem names its field.
//! let mut set = load_str(
//!     "pools.yaml",
//!     "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v6}\n\
//!      spec: {cidr: 'fd00::/64', ipipMode: Always}\n",
//! );
//! set.apply_defaults();
//! let problems = validate(&set);
//! assert_eq!(problems.len(), 1);
//! assert!(problems[0].to_string().starts_with("pools.yaml:0 IPPool/v6: spec.ipipMode: "));
//! # Ok::<(), calico_model::selector::SelectorError>(())
//! ```
#![deny(missing_docs)]

pub mod derived;
pub mod diagnostic;
pub mod family;
pub mod format;
pub mod gotime;
pub mod index;
pub mod labels;
pub mod loader;
pub mod parallel;
pub mod resources;
pub mod selector;
pub mod validation;
pub mod yaml;
