//! The selector tree (selector.md §3.2).
//!
//! This is the shape the parser builds and every other part of the crate consumes: the
//! canonical printer, the unique ID, the tree evaluator, the compiled evaluator and the
//! selector index. It is kept exactly as parsed (nested `Not` nodes are not collapsed and
//! explicit grouping of n-ary nodes is kept) because the canonical string and the ID must
//! match Calico's byte for byte.

/// One node of a parsed selector.
///
/// The tokenizer works on bytes and never decodes UTF-8, but the parser takes `&str` and
/// every token boundary is an ASCII byte, so labels and values are always valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// `label == "value"`
    Eq {
        /// Label name (1–512 label bytes).
        label: Box<str>,
        /// Compared value.
        value: Box<str>,
    },
    /// `label != "value"` (true when the label is absent)
    Ne {
        /// Label name.
        label: Box<str>,
        /// Compared value.
        value: Box<str>,
    },
    /// `label contains "value"`
    Contains {
        /// Label name.
        label: Box<str>,
        /// Substring looked for.
        value: Box<str>,
    },
    /// `label starts with "value"`
    StartsWith {
        /// Label name.
        label: Box<str>,
        /// Prefix looked for.
        value: Box<str>,
    },
    /// `label ends with "value"`
    EndsWith {
        /// Label name.
        label: Box<str>,
        /// Suffix looked for.
        value: Box<str>,
    },
    /// `label in {…}`; the set is sorted bytewise and de-duplicated.
    In {
        /// Label name.
        label: Box<str>,
        /// Sorted, de-duplicated set members.
        values: Box<[Box<str>]>,
    },
    /// `label not in {…}` (true when the label is absent); sorted and de-duplicated.
    NotIn {
        /// Label name.
        label: Box<str>,
        /// Sorted, de-duplicated set members.
        values: Box<[Box<str>]>,
    },
    /// `has(label)`
    Has {
        /// Label name.
        label: Box<str>,
    },
    /// `all()` and the empty selector.
    All,
    /// `global()`: evaluates to true; a scope marker for rule namespace selectors.
    Global,
    /// An odd run of `!` before a primary.
    Not(Box<Node>),
    /// Two or more operands joined by `&&`, in source order.
    And(Vec<Node>),
    /// Two or more operands joined by `||`, in source order.
    Or(Vec<Node>),
}
