//! The selector tree (see [tree shape](crate::selector#tree-shape)).
//!
//! This is the shape the parser builds and every other part of the crate consumes: the
//! canonical printer, the unique ID, the tree evaluator, the compiled evaluator and the
//! selector index. It is kept exactly as parsed (nested `Not` nodes are not collapsed and
//! explicit grouping of n-ary nodes is kept) because the canonical string and the ID must
//! match Calico's byte for byte.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use compact_str::CompactString;

/// A label name or a value in a selector tree.
///
/// Strings of up to 24 bytes are stored inline, so parsing a typical selector allocates
/// only for its longer labels, its sets and its `&&`/`||` lists. It dereferences to `str`
/// and compares, orders and hashes exactly as the `str` it holds.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(CompactString);

impl Text {
    /// The text as a `str`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl Hash for Text {
    /// Hashes as the `str` it holds, as [`Borrow<str>`] requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(CompactString::new(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(CompactString::from(s))
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Self {
        Self(CompactString::from(s))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// One node of a parsed selector.
///
/// The tokenizer works on bytes and never decodes UTF-8, but the parser takes `&str` and
/// every token boundary is an ASCII byte, so labels and values are always valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// `label == "value"`
    Eq {
        /// Label name (1–512 label bytes).
        label: Text,
        /// Compared value.
        value: Text,
    },
    /// `label != "value"` (true when the label is absent)
    Ne {
        /// Label name.
        label: Text,
        /// Compared value.
        value: Text,
    },
    /// `label contains "value"`
    Contains {
        /// Label name.
        label: Text,
        /// Substring looked for.
        value: Text,
    },
    /// `label starts with "value"`
    StartsWith {
        /// Label name.
        label: Text,
        /// Prefix looked for.
        value: Text,
    },
    /// `label ends with "value"`
    EndsWith {
        /// Label name.
        label: Text,
        /// Suffix looked for.
        value: Text,
    },
    /// `label in {…}`; the set is sorted bytewise and de-duplicated.
    In {
        /// Label name.
        label: Text,
        /// Sorted, de-duplicated set members.
        values: Box<[Text]>,
    },
    /// `label not in {…}` (true when the label is absent); sorted and de-duplicated.
    NotIn {
        /// Label name.
        label: Text,
        /// Sorted, de-duplicated set members.
        values: Box<[Text]>,
    },
    /// `has(label)`
    Has {
        /// Label name.
        label: Text,
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
