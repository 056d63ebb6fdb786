//! `calico-model`: the projectcalico.org/v3 and Kubernetes resource model, its validation,
//! and the Calico label-selector language.
//!
//! This crate is pure: it performs no I/O beyond the optional manifest loader reading
//! files it is pointed at, starts no threads and needs no async runtime.
//!
//! Pipeline: [`loader::load_paths`] / [`loader::load_str`] → [`loader::LoadedSet::apply_defaults`]
//! → [`validation::validate`]; [`derived`] computes the implicit objects and labels.
#![deny(missing_docs)]

pub mod derived;
pub mod loader;
pub mod resources;
pub mod selector;
pub mod validation;
