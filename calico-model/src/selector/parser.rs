//! The selector grammar (see [syntax](crate::selector#syntax)) and the validate-only path ([`validate`]).
//!
//! One iterative parser drives a [`Builder`]: [`TreeBuilder`] assembles the [`Node`] tree
//! (see [tree shape](crate::selector#tree-shape)) and [`Validator`] does nothing, so parsing and validation accept exactly the same
//! inputs and report the same errors by construction. Parentheses are tracked on an explicit
//! heap stack, so no input can overflow the call stack while parsing.
//!
//! The parser also tracks the height of the tree it describes. A tree more than
//! [`MAX_DEPTH`] nodes deep is the error [`SelectorErrorKind::NestingTooDeep`] (see
//! [limits](crate::selector#limits)), reported at the `)` (or end of input) that completes the too-deep group. This keeps
//! every recursive consumer of a parsed tree (printing, evaluation, and the derived `Clone`,
//! `PartialEq` and `Drop` of [`Node`]) within a bounded stack. Parentheses that add no node
//! (`((((a == 'x'))))`) do not count, so any number of them is accepted.
//!
//! Tokens are pulled from the streaming [`Tokenizer`]. Because Calico tokenizes the
//! whole input before parsing, a parser error is only reported after the rest of the input
//! has been tokenized without error; otherwise the tokenizer error wins.

use super::ast::{Node, Text};
use super::error::{SelectorError, SelectorErrorKind};
use super::tokenizer::{Token, TokenKind, Tokenizer};

/// Height, in nodes, of the deepest tree the parser accepts (see [limits](crate::selector#limits)): `has(a)` has
/// height 1, `!has(a)` height 2, `!(has(a) || !(b == 'x'))` height 4.
pub const MAX_DEPTH: usize = 4096;

/// The comparison operators that take a string literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
}

/// Receives the parse events in source order.
pub(crate) trait Builder<'a> {
    /// A comparison primary, wrapped in `Not` if `negated`.
    fn cmp(&mut self, op: CmpOp, label: &'a str, value: &'a str, negated: bool);
    /// A set element of the set being read.
    fn set_item(&mut self, value: &'a str);
    /// The set being read is complete: an `In` (or `NotIn` if `not_in`) primary.
    fn set_end(&mut self, not_in: bool, label: &'a str, negated: bool);
    /// A primary that is not a comparison or a set: `Has`, `All` or `Global`.
    fn simple(&mut self, kind: TokenKind, label: &'a str, negated: bool);
    /// `||`: the current `&&` list is complete.
    fn or(&mut self);
    /// `(`: a group opens; it is wrapped in `Not` if `negated`.
    fn open(&mut self, negated: bool);
    /// `)`: the innermost group closes and becomes an operand.
    fn close(&mut self);
}

/// Why parsing stopped.
enum Stop {
    /// A tokenizer error: reported as is.
    Token(SelectorError),
    /// A parser error: reported only if the rest of the input tokenizes.
    Parse(SelectorError),
}

impl From<SelectorError> for Stop {
    fn from(e: SelectorError) -> Self {
        Self::Token(e)
    }
}

fn fail(kind: SelectorErrorKind, tok: &Token<'_>) -> Stop {
    Stop::Parse(SelectorError::new(kind, tok.offset))
}

/// Runs the grammar over `src`, feeding `b`. Returns `Ok(false)` for the empty selector
/// (no events at all), `Ok(true)` otherwise.
pub(crate) fn run<'a, B: Builder<'a>>(src: &'a str, b: &mut B) -> Result<bool, SelectorError> {
    let mut tz = Tokenizer::new(src);
    match grammar(&mut tz, b) {
        Ok(nonempty) => Ok(nonempty),
        Err(Stop::Token(e)) => Err(e),
        Err(Stop::Parse(e)) => loop {
            match tz.next_token() {
                Ok(t) if t.kind == TokenKind::Eof => break Err(e),
                Ok(_) => {}
                Err(te) => break Err(te),
            }
        },
    }
}

/// Heights of the operands of one open group (or the top level), to compute the tree
/// height without building the tree.
#[derive(Default)]
struct Heights {
    /// Tallest operand of the current `&&` list.
    and_max: usize,
    /// Whether the current `&&` list has two or more operands (an `And` node).
    and_node: bool,
    /// Whether the current `&&` list has an operand.
    and_any: bool,
    /// Tallest completed `&&` list of the `||` list.
    or_max: usize,
    /// Whether the `||` list has two or more operands (an `Or` node).
    or_node: bool,
    /// Whether the `||` list has an operand.
    or_any: bool,
    /// Whether the group is wrapped in `Not`.
    negated: bool,
}

impl Heights {
    fn operand(&mut self, height: usize) {
        self.and_max = self.and_max.max(height);
        self.and_node = self.and_any;
        self.and_any = true;
    }

    fn or(&mut self) {
        let h = self.and_max + usize::from(self.and_node);
        self.or_max = self.or_max.max(h);
        self.or_node = self.or_any;
        self.or_any = true;
        self.and_max = 0;
        self.and_node = false;
        self.and_any = false;
    }

    /// Height of the group's node.
    fn finish(mut self) -> usize {
        self.or();
        self.or_max + usize::from(self.or_node) + usize::from(self.negated)
    }
}

fn grammar<'a, B: Builder<'a>>(tz: &mut Tokenizer<'a>, b: &mut B) -> Result<bool, Stop> {
    let mut tok = tz.next_token()?;
    if tok.kind == TokenKind::Eof {
        return Ok(false);
    }
    let mut cur = Heights::default();
    let mut outer: Vec<Heights> = Vec::new();
    'unary: loop {
        // unary = { NOT } primary
        let mut negated = false;
        while tok.kind == TokenKind::Not {
            negated = !negated;
            tok = tz.next_token()?;
        }
        match tok.kind {
            TokenKind::LParen => {
                b.open(negated);
                outer.push(std::mem::replace(
                    &mut cur,
                    Heights {
                        negated,
                        ..Heights::default()
                    },
                ));
                tok = tz.next_token()?;
                continue 'unary;
            }
            TokenKind::Has | TokenKind::All | TokenKind::Global => {
                b.simple(tok.kind, tok.text, negated);
            }
            TokenKind::Label => primary_label(tz, b, tok.text, negated)?,
            _ => return Err(fail(SelectorErrorKind::UnexpectedToken, &tok)),
        }
        cur.operand(1 + usize::from(negated));
        // An operand is complete: continue the lists or close groups.
        tok = tz.next_token()?;
        loop {
            match tok.kind {
                TokenKind::And => {
                    tok = tz.next_token()?;
                    continue 'unary;
                }
                TokenKind::Or => {
                    b.or();
                    cur.or();
                    tok = tz.next_token()?;
                    continue 'unary;
                }
                TokenKind::RParen if !outer.is_empty() => {
                    let parent = outer.pop().unwrap_or_default();
                    let height = std::mem::replace(&mut cur, parent).finish();
                    if height > MAX_DEPTH {
                        return Err(fail(SelectorErrorKind::NestingTooDeep, &tok));
                    }
                    cur.operand(height);
                    b.close();
                    tok = tz.next_token()?;
                }
                _ if !outer.is_empty() => {
                    return Err(fail(SelectorErrorKind::ExpectedCloseParen, &tok));
                }
                TokenKind::Eof => {
                    if cur.finish() > MAX_DEPTH {
                        return Err(fail(SelectorErrorKind::NestingTooDeep, &tok));
                    }
                    return Ok(true);
                }
                _ => return Err(fail(SelectorErrorKind::UnexpectedContentAtEnd, &tok)),
            }
        }
    }
}

/// `LABEL op STRING` or `LABEL (IN | NOTIN) set`, the label already consumed.
fn primary_label<'a, B: Builder<'a>>(
    tz: &mut Tokenizer<'a>,
    b: &mut B,
    label: &'a str,
    negated: bool,
) -> Result<(), Stop> {
    let op = tz.next_token()?;
    let cmp = match op.kind {
        TokenKind::Eof => return Err(fail(SelectorErrorKind::UnexpectedEndLookingForOp, &op)),
        TokenKind::Eq => CmpOp::Eq,
        TokenKind::Ne => CmpOp::Ne,
        TokenKind::Contains => CmpOp::Contains,
        TokenKind::StartsWith => CmpOp::StartsWith,
        TokenKind::EndsWith => CmpOp::EndsWith,
        TokenKind::In | TokenKind::NotIn => {
            let brace = tz.next_token()?;
            if brace.kind != TokenKind::LBrace {
                return Err(fail(SelectorErrorKind::ExpectedSetLiteral, &brace));
            }
            let mut t = tz.next_token()?;
            while t.kind == TokenKind::String {
                b.set_item(t.text);
                t = tz.next_token()?;
                if t.kind != TokenKind::Comma {
                    break;
                }
                t = tz.next_token()?;
            }
            if t.kind != TokenKind::RBrace {
                return Err(fail(SelectorErrorKind::ExpectedCloseBrace, &t));
            }
            b.set_end(op.kind == TokenKind::NotIn, label, negated);
            return Ok(());
        }
        _ => return Err(fail(SelectorErrorKind::ExpectedEqOrNe, &op)),
    };
    let value = tz.next_token()?;
    if value.kind != TokenKind::String {
        return Err(fail(SelectorErrorKind::ExpectedString, &value));
    }
    b.cmp(cmp, label, value.text, negated);
    Ok(())
}

/// The builder of the validate-only path: ignores every event.
pub(crate) struct Validator;

impl<'a> Builder<'a> for Validator {
    #[inline]
    fn cmp(&mut self, _: CmpOp, _: &'a str, _: &'a str, _: bool) {}
    #[inline]
    fn set_item(&mut self, _: &'a str) {}
    #[inline]
    fn set_end(&mut self, _: bool, _: &'a str, _: bool) {}
    #[inline]
    fn simple(&mut self, _: TokenKind, _: &'a str, _: bool) {}
    #[inline]
    fn or(&mut self) {}
    #[inline]
    fn open(&mut self, _: bool) {}
    #[inline]
    fn close(&mut self) {}
}

/// Operands of one `&&` or `||` list, avoiding a vector for the common single operand.
#[derive(Default)]
enum List {
    #[default]
    Empty,
    One(Node),
    Many(Vec<Node>),
}

impl List {
    #[inline]
    fn push(&mut self, node: Node) {
        match self {
            Self::Many(v) => v.push(node),
            Self::Empty => *self = Self::One(node),
            Self::One(_) => {
                if let Self::One(first) = std::mem::take(self) {
                    let mut v = Vec::with_capacity(4);
                    v.push(first);
                    v.push(node);
                    *self = Self::Many(v);
                }
            }
        }
    }

    /// One operand → itself; several → `wrap(operands)`.
    #[inline]
    fn into_node(self, wrap: fn(Vec<Node>) -> Node) -> Option<Node> {
        match self {
            Self::Empty => None,
            Self::One(n) => Some(n),
            Self::Many(v) => Some(wrap(v)),
        }
    }
}

/// One open group (or the top level).
#[derive(Default)]
struct Frame {
    ands: List,
    ors: List,
    negated: bool,
}

impl Frame {
    fn finish(mut self) -> Option<Node> {
        if let Some(and) = self.ands.into_node(Node::And) {
            self.ors.push(and);
        }
        self.ors.into_node(Node::Or)
    }
}

/// Members of the set being read; the first few are kept inline so that small sets cost no
/// scratch allocation.
#[derive(Default)]
struct SetItems<'a> {
    inline: [&'a str; 8],
    len: usize,
    spill: Vec<&'a str>,
}

impl<'a> SetItems<'a> {
    #[inline]
    fn push(&mut self, value: &'a str) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = value;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(value);
        }
    }

    /// The members read so far, sorted bytewise and de-duplicated; empties `self`.
    fn take_sorted(&mut self) -> Box<[Text]> {
        let items: &mut [&'a str] = if self.spill.is_empty() {
            self.inline.get_mut(..self.len).unwrap_or_default()
        } else {
            &mut self.spill
        };
        items.sort_unstable();
        let mut out: Vec<Text> = Vec::with_capacity(items.len());
        let mut prev: Option<&str> = None;
        for &v in items.iter() {
            if prev != Some(v) {
                out.push(v.into());
                prev = Some(v);
            }
        }
        self.len = 0;
        self.spill.clear();
        out.into_boxed_slice()
    }
}

/// The builder that assembles the tree (see [syntax](crate::selector#syntax)).
#[derive(Default)]
pub(crate) struct TreeBuilder<'a> {
    cur: Frame,
    stack: Vec<Frame>,
    set: SetItems<'a>,
}

#[inline]
fn negate(node: Node, negated: bool) -> Node {
    if negated {
        Node::Not(Box::new(node))
    } else {
        node
    }
}

impl TreeBuilder<'_> {
    /// The tree; `None` only if no primary was seen (the empty selector).
    pub(crate) fn finish(self) -> Option<Node> {
        self.cur.finish()
    }

    #[inline]
    fn operand(&mut self, node: Node, negated: bool) {
        self.cur.ands.push(negate(node, negated));
    }
}

impl<'a> Builder<'a> for TreeBuilder<'a> {
    fn cmp(&mut self, op: CmpOp, label: &'a str, value: &'a str, negated: bool) {
        let label: Text = label.into();
        let value: Text = value.into();
        let node = match op {
            CmpOp::Eq => Node::Eq { label, value },
            CmpOp::Ne => Node::Ne { label, value },
            CmpOp::Contains => Node::Contains { label, value },
            CmpOp::StartsWith => Node::StartsWith { label, value },
            CmpOp::EndsWith => Node::EndsWith { label, value },
        };
        self.operand(node, negated);
    }

    #[inline]
    fn set_item(&mut self, value: &'a str) {
        self.set.push(value);
    }

    fn set_end(&mut self, not_in: bool, label: &'a str, negated: bool) {
        let values = self.set.take_sorted();
        let label: Text = label.into();
        let node = if not_in {
            Node::NotIn { label, values }
        } else {
            Node::In { label, values }
        };
        self.operand(node, negated);
    }

    fn simple(&mut self, kind: TokenKind, label: &'a str, negated: bool) {
        let node = match kind {
            TokenKind::Has => Node::Has {
                label: label.into(),
            },
            TokenKind::Global => Node::Global,
            _ => Node::All,
        };
        self.operand(node, negated);
    }

    fn or(&mut self) {
        if let Some(and) = std::mem::take(&mut self.cur.ands).into_node(Node::And) {
            self.cur.ors.push(and);
        }
    }

    fn open(&mut self, negated: bool) {
        let outer = std::mem::replace(
            &mut self.cur,
            Frame {
                negated,
                ..Frame::default()
            },
        );
        self.stack.push(outer);
    }

    fn close(&mut self) {
        let outer = self.stack.pop().unwrap_or_default();
        let group = std::mem::replace(&mut self.cur, outer);
        let negated = group.negated;
        if let Some(node) = group.finish() {
            self.operand(node, negated);
        }
    }
}

/// Parses `src` into its tree (see [syntax](crate::selector#syntax)); the empty selector is [`Node::All`].
pub(crate) fn parse_node(src: &str) -> Result<Node, SelectorError> {
    let mut b = TreeBuilder::default();
    run(src, &mut b)?;
    Ok(b.finish().unwrap_or(Node::All))
}

/// Checks that `src` is a valid selector without building its tree.
///
/// Accepts exactly the inputs [`Selector::parse`](super::Selector::parse) accepts and
/// reports the same error (kind and offset).
///
/// # Errors
///
/// The same [`SelectorError`] that parsing would report.
pub fn validate(src: &str) -> Result<(), SelectorError> {
    run(src, &mut Validator).map(|_| ())
}
