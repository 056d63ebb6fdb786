//! Benchmarks and comparison harnesses for the calico-* crates.
