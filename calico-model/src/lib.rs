//! `calico-model`: the projectcalico.org/v3 and Kubernetes resource model, its validation,
//! and the Calico label-selector language.
//!
//! This crate is pure: it performs no I/O beyond the optional manifest loader reading
//! files it is pointed at, starts no threads and needs no async runtime.
#![deny(missing_docs)]

pub mod index;
pub mod labels;
pub mod selector;
