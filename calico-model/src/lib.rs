//! `calico-model`: the projectcalico.org/v3 and Kubernetes resource model, its validation,
//! and the Calico label-selector language, with Calico's exact semantics.
//!
//! | module | what it holds |
//! |---|---|
//! | [`selector`] | the selector language: parser, canonical string, unique ID, evaluation, derived selectors (selector.md) |
//! | [`labels`], [`selector::compiled`] | interned label sets and a compiled, allocation-free selector evaluator |
//! | [`index`] | an incremental selector index: which objects each selector matches, with match events |
//! | [`resources`] | typed Kubernetes and projectcalico.org/v3 resources (serde YAML/JSON) with defaults |
//! | [`loader`] | manifests from files, directories, multi-document YAML and List kinds, read as Kubernetes reads them (YAML 1.1 scalars, booleans and numbers in string fields as text); strict or lenient ([`loader::LoadMode`]) |
//! | [`validation`] | Calico's validation rules, every problem with its field path; [`validation::Diagnostic`]: a problem with a severity, the one warning/error type of the loader and the analyses |
//! | [`derived`] | implicit objects and labels: pod workload endpoints, `kns.`/`ksa.` profiles, namespace and service-account labels |
//!
//! Pipeline: [`loader::load_paths`] / [`loader::load_str`] (or their `_with` forms with a
//! [`loader::LoadMode`]) → [`loader::LoadedSet::apply_defaults`] → [`validation::validate`];
//! [`derived`] computes the implicit objects and labels.
//!
//! This crate is pure: it performs no I/O beyond the manifest loader reading the files it
//! is pointed at, starts no threads and needs no async runtime. No function panics on
//! any input.
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
pub mod gotime;
pub mod index;
pub mod labels;
pub mod loader;
pub mod resources;
pub mod selector;
pub mod validation;
