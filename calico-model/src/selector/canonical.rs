//! The canonical string (see [canonical string](crate::selector#canonical-string)) and the unique ID (see
//! [unique ID](crate::selector#unique-id)).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha224};

use super::ast::{Node, Text};

/// Appends `value` quoted: `"v"`, or `'v'` if it contains a `"` (a parsed value never holds both).
#[inline]
fn push_quoted(out: &mut String, value: &str) {
    let q = if value.contains('"') { '\'' } else { '"' };
    out.push(q);
    out.push_str(value);
    out.push(q);
}

fn push_set(out: &mut String, label: &str, op: &str, values: &[Text]) {
    out.push_str(label);
    out.push_str(op);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_quoted(out, v);
    }
    out.push('}');
}

fn push_list(out: &mut String, operands: &[Node], sep: &str) {
    out.push('(');
    for (i, n) in operands.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        n.write_canonical(out);
    }
    out.push(')');
}

impl Node {
    /// Appends this node's canonical string (see [canonical string](crate::selector#canonical-string)) to `out`.
    pub fn write_canonical(&self, out: &mut String) {
        let (label, op, value) = match self {
            Self::Eq { label, value } => (label, " == ", value),
            Self::Ne { label, value } => (label, " != ", value),
            Self::Contains { label, value } => (label, " contains ", value),
            Self::StartsWith { label, value } => (label, " starts with ", value),
            Self::EndsWith { label, value } => (label, " ends with ", value),
            Self::In { label, values } => return push_set(out, label, " in {", values),
            Self::NotIn { label, values } => return push_set(out, label, " not in {", values),
            Self::Has { label } => {
                out.push_str("has(");
                out.push_str(label);
                out.push(')');
                return;
            }
            Self::All => return out.push_str("all()"),
            Self::Global => return out.push_str("global()"),
            Self::Not(operand) => {
                out.push('!');
                return operand.write_canonical(out);
            }
            Self::And(operands) => return push_list(out, operands, " && "),
            Self::Or(operands) => return push_list(out, operands, " || "),
        };
        out.push_str(label);
        out.push_str(op);
        push_quoted(out, value);
    }

    /// This node's canonical string (see [canonical string](crate::selector#canonical-string)).
    #[must_use]
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(64);
        self.write_canonical(&mut out);
        out
    }
}

/// Prints the canonical string (see [canonical string](crate::selector#canonical-string)).
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The unique ID of the selector whose canonical string is `canonical` (see [unique ID](crate::selector#unique-id)):
/// `"s:"` + base64url-no-pad(SHA-224(`"s:"` + canonical)), always 40 characters.
#[must_use]
pub fn unique_id_of_canonical(canonical: &str) -> String {
    let mut h = Sha224::new();
    h.update(b"s:");
    h.update(canonical.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(40);
    out.push_str("s:");
    URL_SAFE_NO_PAD.encode_string(digest, &mut out);
    out
}
