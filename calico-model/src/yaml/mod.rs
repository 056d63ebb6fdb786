//! YAML as Kubernetes reads and writes it: the YAML 1.1 reading of plain scalars
//! ([`scalars`]) and the emitter that quotes every string such a reader would take for a
//! boolean or number (used by [`Resource::to_yaml`](crate::resources::Resource::to_yaml)).
//!
//! This module depends on nothing else in the crate; [`resources`](crate::resources) uses
//! its emitter and [`loader`](crate::loader) its reader.

pub(crate) mod emit;
pub mod scalars;
