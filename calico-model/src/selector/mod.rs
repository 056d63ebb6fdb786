//! The Calico label-selector language (selector.md).

pub mod ast;
pub mod compiled;

pub use ast::Node;
