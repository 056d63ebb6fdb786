//! The Calico label-selector language (selector.md).
//!
//! - [`Selector::parse`] turns text into a [`Selector`]: the tree ([`Node`], kept exactly as
//!   parsed) and its canonical string; [`validate`] checks text without building a tree and
//!   accepts exactly the same inputs with the same errors.
//! - [`Selector::matches`] evaluates against any [`Labels`] map.
//! - [`Selector::canonical`] and [`Selector::unique_id`] give Calico's canonical string and
//!   ID byte for byte.
//! - [`Selector::prefixed`], [`normalise`], [`rewrite_rule_namespace_selector`],
//!   [`Selector::restrictions`] and [`check_field`] are the derived selectors and analyses of
//!   selector.md §10–§11.
//!
//! ```
//! use std::collections::BTreeMap;
//! use calico_model::selector::{Selector, validate};
//!
//! let sel = Selector::parse("app == 'web' && tier in {'b', 'a'}").unwrap();
//! assert_eq!(sel.canonical(), r#"(app == "web" && tier in {"a", "b"})"#);
//! assert_eq!(sel.unique_id().len(), 40);
//! let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("tier".to_owned(), "a".to_owned())]);
//! assert!(sel.matches(&labels));
//! assert_eq!(validate("a ==").unwrap_err().to_string(), "expected string (at byte 4)");
//! ```
//!
//! No function here panics on any input. The parser is iterative and rejects trees more
//! than [`MAX_DEPTH`] nodes deep, so the recursive walks over a tree (printing, evaluation,
//! and the derived `Clone`, `PartialEq` and `Drop` of [`Node`]) use a bounded stack; a
//! selector that fits in a resource field (1024 characters) is at most about 350 nodes
//! deep.

pub mod ast;
mod build;
mod canonical;
pub mod compiled;
mod derive;
pub mod error;
mod eval;
mod field;
mod parsed;
mod parser;
mod restrictions;
pub mod tokenizer;

pub use ast::{Node, Text};
pub use canonical::unique_id_of_canonical;
pub use derive::{
    NAMESPACE_LABEL, NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL, SERVICE_ACCOUNT_LABEL_PREFIX,
    normalise, rewrite_rule_namespace_selector,
};
pub use error::{BuildError, FieldSelectorError, ParenKeyword, SelectorError, SelectorErrorKind};
pub use eval::Labels;
pub use field::{GlobalRule, check_field};
pub use parsed::Selector;
pub use parser::{MAX_DEPTH, validate};
pub use restrictions::{LabelRestriction, LabelRestrictions};
pub use tokenizer::{MAX_LABEL_LEN, Token, TokenKind, Tokenizer, tokenize};
