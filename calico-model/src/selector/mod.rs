//! The Calico label-selector language, with the semantics of Calico's own implementation:
//! the same inputs accepted and rejected, the same result for every label map, and the same
//! canonical string and unique ID, byte for byte.
//!
//! - [`Selector::parse`] turns text into a [`Selector`]: the tree ([`Node`], kept exactly as
//!   parsed) and its canonical string; [`validate`] checks text without building a tree and
//!   accepts exactly the same inputs with the same errors.
//! - [`Selector::matches`] evaluates against any [`Labels`] map.
//! - [`Selector::canonical`] and [`Selector::unique_id`] give Calico's canonical string and
//!   ID byte for byte.
//! - [`Selector::prefixed`], [`normalise`], [`rewrite_rule_namespace_selector`],
//!   [`Selector::restrictions`] and [`check_field`] are the derived selectors and analyses
//!   described under [Derived selectors](#derived-selectors), [Selector
//!   fields](#selector-fields-and-global) and [Label restrictions](#label-restrictions).
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
//!
//! # Syntax
//!
//! A selector is read as bytes, never decoded as UTF-8. Only space and tab separate tokens;
//! any other byte outside a string literal that is not part of a token (a newline, a
//! non-ASCII byte, `%`, ...) is an error, even at the end of the input. Labels are runs of
//! `A-Z a-z 0-9 _ . / -`, at most [`MAX_LABEL_LEN`] bytes. String literals are quoted with
//! `"` or `'` and end at the next occurrence of the same quote; there are no escapes (a
//! backslash is an ordinary byte) and a literal may hold the other quote, newlines or any
//! other byte.
//!
//! There are no reserved words. A word right after a label must be an operator
//! (`contains`, `starts with`, `ends with`, `not in`, `in`, lowercase, ending at a non-label
//! byte; the two-word operators may be written with or without spaces between the words:
//! `startswith`, `notin`); anywhere else a word is a label, so `contains contains "x"` is a
//! valid selector. `has(k)`, `all()` and `global()` are recognised only with `(` directly
//! after the keyword (`has (a)` is an error) and allow spaces inside the parentheses.
//! `==`, `!=`, `&&` and `||` are the other operators; `!` alone negates. The whole input is
//! tokenized before it is parsed, so a tokenizer error anywhere in the input wins over a
//! grammar error earlier in it.
//!
//! The grammar, from lowest to highest precedence: `||`, `&&`, prefix `!`, then a primary:
//! `has(k)`, `all()`, `global()`, a parenthesised selector, `k OP "v"` for the five
//! comparison operators, or `k in {...}` / `k not in {...}` with a set of zero or more string
//! literals separated by commas (one trailing comma allowed). The right-hand side is always a
//! literal. The empty (or all-whitespace) selector is `all()`.
//!
//! # Tree shape
//!
//! The tree ([`Node`]) records the input's structure without simplifying it:
//! `a && b && c` is one `And` node with three operands, while `(a && b) && c` is an `And`
//! inside an `And`; parentheses by themselves add no node; an odd run of `!` before a primary
//! is one `Not`, an even run is nothing, but `!(!x)` is two nested `Not` nodes. Set
//! elements are sorted bytewise and de-duplicated when parsed.
//!
//! # Evaluation
//!
//! Labels are a map of strings to strings, looked up exactly and compared bytewise; a label
//! with the empty value is present. A comparison against an absent label is false, except
//! for the negative ones: `k != "v"` and `k not in {...}` are true when `k` is absent (so
//! `k not in {}` matches everything and `k in {}` nothing). `contains`, `starts with` and
//! `ends with` test substrings of the value (the empty string is a substring of every
//! value). `has(k)` tests presence; `all()` and `global()` are always true; `!all()` is
//! Calico's "match nothing". `&&` and `||` evaluate their operands left to right.
//!
//! # Canonical string
//!
//! [`Selector::canonical`] prints the tree: comparisons as `label op value` with single
//! spaces (`starts with`, `ends with` and `not in` always as two words), sets as
//! `{"a", "b"}` (empty: `{}`), `has(k)`, `all()`, `global()`; a `Not` as `!` directly
//! followed by its operand, with no parentheses added; every `And`/`Or` in parentheses,
//! the top level included. A value is written in double quotes unless it contains a `"`, in
//! which case it is written in single quotes (a parsed value never holds both). Nothing is
//! reordered or simplified, so two spellings of the same grouping print differently.
//!
//! One quirk is kept because Calico has it: nested `Not` nodes print as `!!`, and
//! re-parsing `!!` removes both, so the canonical string of `!(!has(a))` (`!!has(a)`) is
//! not its own canonical form, and the two have different IDs.
//!
//! # Unique ID
//!
//! [`Selector::unique_id`] is `s:` followed by the unpadded base64url encoding of the
//! SHA-224 digest of `s:` + canonical string: always 40 characters. Two selectors are the
//! same selector exactly when their IDs are equal; the dataplane names a selector's IP set
//! after this ID.
//!
//! # Errors
//!
//! Every rejected input is one [`SelectorError`]: its [`SelectorErrorKind`] matches the kind
//! of error Calico reports for that input, and its 0-based byte offset points at the first
//! byte the tokenizer could not consume or, for grammar errors, at the start of the token
//! where parsing failed (the input length when the input ended too early). The offsets are
//! this crate's own precision: Calico reports none.
//!
//! # Limits
//!
//! Labels longer than [`MAX_LABEL_LEN`] bytes are rejected. Nesting, token count, set size
//! and value length are unlimited, except that a tree more than [`MAX_DEPTH`] nodes deep
//! is [`SelectorErrorKind::NestingTooDeep`] (Calico has no such error; only inputs far longer
//! than any resource field allows reach it). The selector language does not check label
//! values against Kubernetes' label rules: `a == '<any bytes>'` is valid.
//!
//! # Selector fields and `global()`
//!
//! In a resource field the empty selector is valid and means `all()`, and resource
//! validation limits a selector to 1024 characters. [`check_field`] applies the rule for
//! `global()`, which depends on the field ([`GlobalRule`]): a rule's `namespaceSelector` may
//! be exactly `global()` (meaning: only endpoints outside any namespace, such as host
//! endpoints and global network sets) and nothing else containing `global(`; the policy
//! `selector` and `serviceAccountSelector` fields, a GlobalNetworkPolicy's
//! `namespaceSelector`, a rule's `selector` and an IPPool's `nodeSelector` and
//! `namespaceSelector` reject any text containing `global(` (a plain substring test, so a
//! string literal holding `global(` is rejected too); other fields only check syntax.
//!
//! # Derived selectors
//!
//! - [`Selector::prefixed`] prepends a prefix to every label the selector names (not to
//!   values); Calico uses `pcns.` for namespace labels and `pcsa.` for service-account
//!   labels.
//! - [`normalise`] trims surrounding whitespace (Rust's `str::trim`), parses and returns the
//!   canonical string, or the trimmed input unchanged when it does not parse.
//! - [`rewrite_rule_namespace_selector`] reproduces how Calico turns a rule's
//!   `namespaceSelector` into a selector over endpoint labels: the canonical string of the
//!   `pcns.`-prefixed selector, with every `all()` in the text replaced by
//!   `has(projectcalico.org/namespace)` and every `global()` by
//!   `!has(projectcalico.org/namespace)`. The replacement is textual, as in Calico, so a
//!   string literal `"all()"` is rewritten too; IDs computed from the result match Calico's.
//!
//! # Label restrictions
//!
//! [`Selector::restrictions`] is a static analysis: for each label, whether every matching
//! label map must have it, must not have it, or must give it one of a set of values. `k ==
//! v` and `k in S` require `k` with a value from `{v}` or `S`; `has`, `contains`, `starts
//! with` and `ends with` require `k`; `!has(k)` requires `k` to be absent; negative
//! comparisons, other negations, `all()` and `global()` restrict nothing. `&&` combines the
//! requirements of its operands (intersecting value sets); `||` keeps only what every
//! operand requires (uniting value sets). A restriction that is both present and absent, or
//! whose value set is empty, cannot be met: the selector matches nothing. The
//! [`index`](crate::index) uses these to pick posting lists.

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
