//! Benchmarks and comparison harnesses for the calico-* crates.

pub mod route_scale;
