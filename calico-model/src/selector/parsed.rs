//! [`Selector`]: a parsed selector with its canonical string.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;

use super::ast::Node;
use super::build::check_node;
use super::canonical::unique_id_of_canonical;
use super::error::{BuildError, SelectorError};
use super::eval::Labels;
use super::parser::parse_node;

/// A parsed selector: its tree, kept exactly as parsed, and its canonical string, computed
/// on first use and then cached (as Calico's Go implementation does), so parsing a
/// selector that is only evaluated never pays for printing it.
///
/// Two selectors are equal (and hash, and order) by their canonical strings, which is the
/// same as comparing their unique IDs (see [unique ID](crate::selector#unique-id)). The cache never changes what a
/// selector hashes or compares as, so a `Selector` is a sound `HashMap` key (clippy's
/// `mutable_key_type` lint sees the cell; allow it for this type with clippy's
/// `ignore-interior-mutability` setting).
#[derive(Clone)]
pub struct Selector {
    root: Node,
    canonical: OnceLock<String>,
}

impl Selector {
    /// Parses `src` (see [syntax](crate::selector#syntax)). The empty or whitespace-only selector is `all()`.
    ///
    /// # Errors
    ///
    /// The first [`SelectorError`] (see [errors](crate::selector#errors)); a tokenizer error anywhere in the input
    /// wins over a parser error.
    pub fn parse(src: &str) -> Result<Self, SelectorError> {
        Ok(Self::from_parsed(parse_node(src)?))
    }

    /// The selector `all()`, which matches everything.
    #[must_use]
    pub fn all() -> Self {
        Self::from_parsed(Node::All)
    }

    /// A selector from a tree built by hand.
    ///
    /// Set members of `In` / `NotIn` nodes are sorted bytewise and de-duplicated, as the
    /// parser does. Trees whose canonical string would not re-parse are rejected.
    ///
    /// # Errors
    ///
    /// [`BuildError`] if a label name is not 1–512 label bytes, a value contains both quote
    /// characters, an `And` / `Or` node has fewer than two operands, or the tree is nested
    /// deeper than a parsed selector can be.
    pub fn from_node(root: Node) -> Result<Self, BuildError> {
        check_node(root).map(Self::from_parsed)
    }

    /// Wraps a tree that is known to be well-formed.
    pub(crate) fn from_parsed(root: Node) -> Self {
        Self {
            root,
            canonical: OnceLock::new(),
        }
    }

    /// The tree, exactly as parsed.
    #[must_use]
    pub const fn root(&self) -> &Node {
        &self.root
    }

    /// Consumes the selector, returning its tree.
    #[must_use]
    pub fn into_root(self) -> Node {
        self.root
    }

    /// The canonical string (see [canonical string](crate::selector#canonical-string)).
    #[must_use]
    pub fn canonical(&self) -> &str {
        self.canonical.get_or_init(|| self.root.canonical())
    }

    /// The unique ID (see [unique ID](crate::selector#unique-id)): `s:` followed by 38 base64url characters.
    #[must_use]
    pub fn unique_id(&self) -> String {
        unique_id_of_canonical(self.canonical())
    }

    /// Whether the selector matches `labels` (see [evaluation](crate::selector#evaluation)).
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.root.matches(labels)
    }
}

impl Default for Selector {
    /// `all()`, the meaning of an empty selector field.
    fn default() -> Self {
        Self::all()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Selector {
    /// The canonical string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical())
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Selector").field(&self.canonical()).finish()
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for Selector {}

impl Hash for Selector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

impl PartialOrd for Selector {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Selector {
    /// Bytewise order of the canonical strings.
    fn cmp(&self, other: &Self) -> Ordering {
        self.canonical().cmp(other.canonical())
    }
}

impl TryFrom<&str> for Selector {
    type Error = SelectorError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<Node> for Selector {
    type Error = BuildError;

    fn try_from(root: Node) -> Result<Self, Self::Error> {
        Self::from_node(root)
    }
}
