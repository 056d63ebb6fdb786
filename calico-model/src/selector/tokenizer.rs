//! The selector tokenizer (see [syntax](crate::selector#syntax)).
//!
//! It works on the input bytes without decoding UTF-8. Every token boundary it produces is
//! at an ASCII byte (or at the start or end of the input), so every token text is a valid
//! `&str` slice of the input: tokens borrow the input and nothing is allocated.

use super::error::{ParenKeyword, SelectorError, SelectorErrorKind};

/// Longest label accepted by the tokenizer, in bytes (see [limits](crate::selector#limits)).
pub const MAX_LABEL_LEN: usize = 512;

/// The kind of a token (see [syntax](crate::selector#syntax)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A label name; the text is the label.
    Label,
    /// A string literal; the text is its value, without the quotes.
    String,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `,`
    Comma,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `!`
    Not,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `contains`
    Contains,
    /// `starts with` (also `startswith`)
    StartsWith,
    /// `ends with` (also `endswith`)
    EndsWith,
    /// `in`
    In,
    /// `not in` (also `notin`)
    NotIn,
    /// `has(label)`; the text is the label.
    Has,
    /// `all()`
    All,
    /// `global()`
    Global,
    /// End of input; always the last token.
    Eof,
}

/// One token: its kind, its text (the label for [`TokenKind::Label`] and
/// [`TokenKind::Has`], the value for [`TokenKind::String`], empty otherwise) and the byte
/// offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: TokenKind,
    /// Label or string value (borrowed from the input); empty for other kinds.
    pub text: &'a str,
    /// Byte offset of the token's first byte; the input length for [`TokenKind::Eof`].
    pub offset: usize,
}

/// Byte classes: bit 0 = label byte, bit 1 = whitespace.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-') {
            t[b] = 1;
        }
        if c == b' ' || c == b'\t' {
            t[b] = 2;
        }
        b += 1;
    }
    t
};

/// Whether `b` is a label byte: `A–Z a–z 0–9 _ . / -`.
#[inline]
#[must_use]
pub const fn is_label_byte(b: u8) -> bool {
    CLASS[b as usize] & 1 != 0
}

/// Whether `b` is selector whitespace (space or TAB only).
#[inline]
const fn is_space(b: u8) -> bool {
    CLASS[b as usize] & 2 != 0
}

/// A streaming tokenizer: call [`Tokenizer::next_token`] until it returns
/// [`TokenKind::Eof`] (after which it keeps returning `Eof`) or an error.
#[derive(Debug, Clone)]
pub struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
    prev_was_label: bool,
}

impl<'a> Tokenizer<'a> {
    /// A tokenizer over `src`.
    #[must_use]
    pub const fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            prev_was_label: false,
        }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    /// The byte at `i`, or `None` past the end.
    #[inline]
    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// The input slice `start..end`. Both ends are always at ASCII bytes or the input ends,
    /// so the slice is always on character boundaries.
    #[inline]
    fn slice(&self, start: usize, end: usize) -> &'a str {
        let s = self.src.get(start..end);
        debug_assert!(s.is_some(), "token boundary not on a char boundary");
        s.unwrap_or_default()
    }

    #[inline]
    fn skip_space_from(&self, mut i: usize) -> usize {
        while self.at(i).is_some_and(is_space) {
            i += 1;
        }
        i
    }

    #[inline]
    fn starts_with_at(&self, i: usize, pat: &[u8]) -> bool {
        self.bytes()
            .get(i..)
            .is_some_and(|rest| rest.starts_with(pat))
    }

    /// End of the run of label bytes starting at `i`.
    #[inline]
    fn label_end(&self, i: usize) -> usize {
        let rest = self.bytes().get(i..).unwrap_or_default();
        i + rest
            .iter()
            .position(|&b| !is_label_byte(b))
            .unwrap_or(rest.len())
    }

    /// Reads a non-empty label of at most [`MAX_LABEL_LEN`] bytes at `i`; returns its end.
    #[inline]
    fn read_label(&self, i: usize) -> Result<usize, SelectorError> {
        let end = self.label_end(i);
        if end == i {
            Err(SelectorError::new(SelectorErrorKind::ExpectedIdentifier, i))
        } else if end - i > MAX_LABEL_LEN {
            Err(SelectorError::new(SelectorErrorKind::LabelTooLong, i))
        } else {
            Ok(end)
        }
    }

    /// A word boundary at `i`: end of input or a byte that is not a label byte.
    #[inline]
    fn boundary(&self, i: usize) -> bool {
        !self.at(i).is_some_and(is_label_byte)
    }

    /// `first`, whitespace*, `second`, whitespace*, boundary; returns the end.
    fn two_words(&self, i: usize, first: &[u8], second: &[u8]) -> Option<usize> {
        if !self.starts_with_at(i, first) {
            return None;
        }
        let j = self.skip_space_from(i + first.len());
        if !self.starts_with_at(j, second) {
            return None;
        }
        let k = self.skip_space_from(j + second.len());
        self.boundary(k).then_some(k)
    }

    /// The mandatory operator after a label, at `i` (after whitespace), tried in Calico's
    /// order: `contains`, `starts with`, `ends with`, `not in`, `in` (the first bytes of the alternatives differ, so dispatching on
    /// the first byte keeps that order).
    fn operator(&self, i: usize) -> Option<(TokenKind, usize)> {
        match self.at(i)? {
            b'c' if self.starts_with_at(i, b"contains") && self.boundary(i + 8) => {
                Some((TokenKind::Contains, i + 8))
            }
            b's' => self
                .two_words(i, b"starts", b"with")
                .map(|end| (TokenKind::StartsWith, end)),
            b'e' => self
                .two_words(i, b"ends", b"with")
                .map(|end| (TokenKind::EndsWith, end)),
            b'n' => self
                .two_words(i, b"not", b"in")
                .map(|end| (TokenKind::NotIn, end)),
            b'i' if self.at(i + 1) == Some(b'n') && self.boundary(i + 2) => {
                Some((TokenKind::In, i + 2))
            }
            _ => None,
        }
    }

    /// `kw(` already matched at `start` (`open` bytes long): whitespace, `)`.
    fn empty_call(
        &self,
        start: usize,
        open: usize,
        kind: TokenKind,
        after: ParenKeyword,
    ) -> Result<(Token<'a>, usize), SelectorError> {
        let i = self.skip_space_from(start + open);
        if self.at(i) == Some(b')') {
            Ok((self.token(kind, "", start), i + 1))
        } else {
            Err(SelectorError::new(
                SelectorErrorKind::NoClosingParen { after },
                i,
            ))
        }
    }

    #[inline]
    const fn token(&self, kind: TokenKind, text: &'a str, offset: usize) -> Token<'a> {
        Token { kind, text, offset }
    }

    /// The next token, or the error that stops tokenization.
    ///
    /// # Errors
    ///
    /// A tokenizer-stage [`SelectorError`] (see [errors](crate::selector#errors)) at the first byte that could
    /// not be consumed.
    pub fn next_token(&mut self) -> Result<Token<'a>, SelectorError> {
        let start = self.skip_space_from(self.pos);
        let Some(c) = self.at(start) else {
            self.pos = start;
            return Ok(self.token(TokenKind::Eof, "", start));
        };
        let (tok, end) = match c {
            b'(' => (self.token(TokenKind::LParen, "", start), start + 1),
            b')' => (self.token(TokenKind::RParen, "", start), start + 1),
            b'{' => (self.token(TokenKind::LBrace, "", start), start + 1),
            b'}' => (self.token(TokenKind::RBrace, "", start), start + 1),
            b',' => (self.token(TokenKind::Comma, "", start), start + 1),
            b'"' | b'\'' => {
                let body = start + 1;
                let rest = self.bytes().get(body..).unwrap_or_default();
                let Some(len) = rest.iter().position(|&b| b == c) else {
                    return Err(SelectorError::new(
                        SelectorErrorKind::UnterminatedString,
                        start,
                    ));
                };
                let value = self.slice(body, body + len);
                (self.token(TokenKind::String, value, start), body + len + 1)
            }
            b'=' => {
                if self.at(start + 1) == Some(b'=') {
                    (self.token(TokenKind::Eq, "", start), start + 2)
                } else {
                    return Err(SelectorError::new(SelectorErrorKind::ExpectedEqEq, start));
                }
            }
            b'!' => {
                if self.at(start + 1) == Some(b'=') {
                    (self.token(TokenKind::Ne, "", start), start + 2)
                } else {
                    (self.token(TokenKind::Not, "", start), start + 1)
                }
            }
            b'&' => {
                if self.at(start + 1) == Some(b'&') {
                    (self.token(TokenKind::And, "", start), start + 2)
                } else {
                    return Err(SelectorError::new(SelectorErrorKind::ExpectedAndAnd, start));
                }
            }
            b'|' => {
                if self.at(start + 1) == Some(b'|') {
                    (self.token(TokenKind::Or, "", start), start + 2)
                } else {
                    return Err(SelectorError::new(SelectorErrorKind::ExpectedOrOr, start));
                }
            }
            _ if self.prev_was_label => match self.operator(start) {
                Some((kind, end)) => (self.token(kind, "", start), end),
                None => {
                    return Err(SelectorError::new(
                        SelectorErrorKind::ExpectedOperator,
                        start,
                    ));
                }
            },
            b'h' if self.starts_with_at(start, b"has(") => {
                let label_start = self.skip_space_from(start + 4);
                let label_end = self.read_label(label_start)?;
                let close = self.skip_space_from(label_end);
                if self.at(close) != Some(b')') {
                    return Err(SelectorError::new(
                        SelectorErrorKind::NoClosingParen {
                            after: ParenKeyword::Has,
                        },
                        close,
                    ));
                }
                let label = self.slice(label_start, label_end);
                (self.token(TokenKind::Has, label, start), close + 1)
            }
            b'a' if self.starts_with_at(start, b"all(") => {
                self.empty_call(start, 4, TokenKind::All, ParenKeyword::All)?
            }
            b'g' if self.starts_with_at(start, b"global(") => {
                self.empty_call(start, 7, TokenKind::Global, ParenKeyword::Global)?
            }
            _ => {
                let end = self.read_label(start)?;
                let label = self.slice(start, end);
                (self.token(TokenKind::Label, label, start), end)
            }
        };
        self.pos = end;
        self.prev_was_label = tok.kind == TokenKind::Label;
        Ok(tok)
    }
}

/// Tokenizes the whole of `src`; the result always ends with exactly one
/// [`TokenKind::Eof`].
///
/// # Errors
///
/// The first tokenizer-stage [`SelectorError`].
pub fn tokenize(src: &str) -> Result<Vec<Token<'_>>, SelectorError> {
    let mut tokenizer = Tokenizer::new(src);
    let mut tokens = Vec::new();
    loop {
        let tok = tokenizer.next_token()?;
        tokens.push(tok);
        if tok.kind == TokenKind::Eof {
            return Ok(tokens);
        }
    }
}
