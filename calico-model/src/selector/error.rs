//! Errors of the selector language (see [errors](crate::selector#errors)).

use std::fmt;

/// The keyword whose closing parenthesis is missing (`has(`, `all(` or `global(`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParenKeyword {
    /// `has(`
    Has,
    /// `all(`
    All,
    /// `global(`
    Global,
}

impl ParenKeyword {
    /// The keyword as written, including the opening parenthesis.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Has => "has(",
            Self::All => "all(",
            Self::Global => "global(",
        }
    }
}

impl fmt::Display for ParenKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong while tokenizing or parsing a selector: one kind per kind of error
/// Calico reports, plus [`SelectorErrorKind::NestingTooDeep`] (see
/// [limits](crate::selector#limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelectorErrorKind {
    /// A string literal has no closing quote (tokenizer).
    UnterminatedString,
    /// A lone `=` (tokenizer).
    ExpectedEqEq,
    /// A lone `&` (tokenizer).
    ExpectedAndAnd,
    /// A lone `|` (tokenizer).
    ExpectedOrOr,
    /// `has(`, `all(` or `global(` is not closed where required (tokenizer).
    NoClosingParen {
        /// The keyword that was opened.
        after: ParenKeyword,
    },
    /// No label byte where a label was required (tokenizer).
    ExpectedIdentifier,
    /// A label longer than 512 bytes (tokenizer).
    LabelTooLong,
    /// A label is not followed by an operator (tokenizer).
    ExpectedOperator,
    /// A label is the last token of the input (parser).
    UnexpectedEndLookingForOp,
    /// A comparison operator is not followed by a string literal (parser).
    ExpectedString,
    /// `in` / `not in` is not followed by `{` (parser).
    ExpectedSetLiteral,
    /// A set literal is not closed by `}` where required (parser).
    ExpectedCloseBrace,
    /// A label is followed by a token that is no operator (parser).
    ExpectedEqOrNe,
    /// A token that cannot start an expression (parser).
    UnexpectedToken,
    /// A parenthesised group is not closed (parser).
    ExpectedCloseParen,
    /// Tokens left over after a complete selector (parser).
    UnexpectedContentAtEnd,
    /// The tree would be more than [`MAX_DEPTH`](super::MAX_DEPTH) nodes deep (parser; the
    /// one divergence from Calico, reachable only with inputs longer than any resource
    /// field allows).
    NestingTooDeep,
}

impl SelectorErrorKind {
    /// Whether the tokenizer (rather than the parser) reports this kind.
    #[must_use]
    pub const fn is_tokenizer_error(self) -> bool {
        matches!(
            self,
            Self::UnterminatedString
                | Self::ExpectedEqEq
                | Self::ExpectedAndAnd
                | Self::ExpectedOrOr
                | Self::NoClosingParen { .. }
                | Self::ExpectedIdentifier
                | Self::LabelTooLong
                | Self::ExpectedOperator
        )
    }
}

impl fmt::Display for SelectorErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedString => f.write_str("unterminated string"),
            Self::ExpectedEqEq => f.write_str("expected =="),
            Self::ExpectedAndAnd => f.write_str("expected &&"),
            Self::ExpectedOrOr => f.write_str("expected ||"),
            Self::NoClosingParen { after } => write!(f, "no closing ) after {after}"),
            Self::ExpectedIdentifier => f.write_str("expected identifier"),
            Self::LabelTooLong => f.write_str("label too long (more than 512 bytes)"),
            Self::ExpectedOperator => f.write_str("expected operator after label"),
            Self::UnexpectedEndLookingForOp => {
                f.write_str("unexpected end of string looking for op")
            }
            Self::ExpectedString => f.write_str("expected string"),
            Self::ExpectedSetLiteral => f.write_str("expected set literal"),
            Self::ExpectedCloseBrace => f.write_str("expected }"),
            Self::ExpectedEqOrNe => f.write_str("expected == or !="),
            Self::UnexpectedToken => f.write_str("unexpected token"),
            Self::ExpectedCloseParen => f.write_str("expected )"),
            Self::UnexpectedContentAtEnd => f.write_str("unexpected content at end of selector"),
            Self::NestingTooDeep => write!(
                f,
                "nesting too deep (the expression tree would be more than {} levels deep)",
                super::MAX_DEPTH
            ),
        }
    }
}

/// A selector that failed to tokenize or parse: the kind and the 0-based byte offset in the
/// input (see [errors](crate::selector#errors)). Displays as, for example, `expected string (at byte 5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct SelectorError {
    /// What went wrong.
    pub kind: SelectorErrorKind,
    /// 0-based byte offset into the input (see [errors](crate::selector#errors)).
    pub offset: usize,
}

impl SelectorError {
    /// An error of `kind` at byte `offset`.
    #[must_use]
    pub const fn new(kind: SelectorErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

/// A tree rejected by [`Selector::from_node`](super::Selector::from_node): its canonical
/// string would not re-parse (see [canonical string](crate::selector#canonical-string)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A label name that is empty or contains a byte outside `A–Z a–z 0–9 _ . / -`.
    #[error("invalid label name {label:?}: must be 1–512 of A–Z a–z 0–9 _ . / -")]
    InvalidLabel {
        /// The rejected label name.
        label: String,
    },
    /// A label name longer than 512 bytes.
    #[error("label name of {len} bytes is too long (at most 512)")]
    LabelTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A value containing both `"` and `'`, which no string literal can express.
    #[error("value {value:?} contains both quote characters")]
    ValueHasBothQuotes {
        /// The rejected value.
        value: String,
    },
    /// An `And` or `Or` node with fewer than two operands.
    #[error("{operator} node with {count} operand(s): at least 2 are required")]
    TooFewOperands {
        /// `"And"` or `"Or"`.
        operator: &'static str,
        /// How many operands it had.
        count: usize,
    },
    /// The tree is deeper than a parsed selector may be.
    #[error("tree more than {limit} nodes deep")]
    TooDeep {
        /// Maximum depth in nodes ([`MAX_DEPTH`](super::MAX_DEPTH)).
        limit: usize,
    },
}

/// A selector field rejected by [`check_field`](super::check_field) (see [selector fields](crate::selector#selector-fields-and-global)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldSelectorError {
    /// The selector does not parse.
    #[error("invalid selector: {0}")]
    Syntax(#[from] SelectorError),
    /// `global()` is used together with other expressions where it must be the whole
    /// selector.
    #[error("global() may only be used on its own as the entire selector in this field")]
    GlobalNotAlone,
    /// The field contains the text `global(`, which it may not use.
    #[error("global() is not allowed in this field")]
    GlobalForbidden,
}
