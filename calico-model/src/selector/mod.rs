//! The Calico label-selector language (selector.md).

pub mod ast;

pub use ast::Node;
