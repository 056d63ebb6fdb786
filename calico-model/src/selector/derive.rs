//! Selectors derived from user selectors (see [derived selectors](crate::selector#derived-selectors)).

use super::ast::{Node, Text};
use super::parsed::Selector;

/// Label prefix for namespace labels (`pcns.`).
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";
/// Label prefix for service-account labels (`pcsa.`).
pub const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";
/// The label carrying an endpoint's namespace.
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// The label carrying an endpoint's service account.
pub const SERVICE_ACCOUNT_LABEL: &str = "projectcalico.org/serviceaccount";

fn join(prefix: &str, label: &str) -> Text {
    let mut s = String::with_capacity(prefix.len() + label.len());
    s.push_str(prefix);
    s.push_str(label);
    s.into()
}

impl Node {
    /// A copy of this tree with `prefix` prepended to the label of every label-bearing node
    /// (see [derived selectors](crate::selector#derived-selectors)). Values, `All` and `Global` are untouched.
    #[must_use]
    pub fn prefixed(&self, prefix: &str) -> Self {
        let p = |label: &str| join(prefix, label);
        match self {
            Self::Eq { label, value } => Self::Eq {
                label: p(label),
                value: value.clone(),
            },
            Self::Ne { label, value } => Self::Ne {
                label: p(label),
                value: value.clone(),
            },
            Self::Contains { label, value } => Self::Contains {
                label: p(label),
                value: value.clone(),
            },
            Self::StartsWith { label, value } => Self::StartsWith {
                label: p(label),
                value: value.clone(),
            },
            Self::EndsWith { label, value } => Self::EndsWith {
                label: p(label),
                value: value.clone(),
            },
            Self::In { label, values } => Self::In {
                label: p(label),
                values: values.clone(),
            },
            Self::NotIn { label, values } => Self::NotIn {
                label: p(label),
                values: values.clone(),
            },
            Self::Has { label } => Self::Has { label: p(label) },
            Self::All => Self::All,
            Self::Global => Self::Global,
            Self::Not(operand) => Self::Not(Box::new(operand.prefixed(prefix))),
            Self::And(operands) => Self::And(operands.iter().map(|n| n.prefixed(prefix)).collect()),
            Self::Or(operands) => Self::Or(operands.iter().map(|n| n.prefixed(prefix)).collect()),
        }
    }
}

impl Selector {
    /// This selector with `prefix` prepended to every label (see [derived selectors](crate::selector#derived-selectors)), with its
    /// canonical string recomputed. The new labels are not length-checked, so with a prefix
    /// that is not made of label bytes the canonical string may not re-parse.
    #[must_use]
    pub fn prefixed(&self, prefix: &str) -> Self {
        Self::from_parsed(self.root().prefixed(prefix))
    }
}

/// Trims `s` (Rust `str::trim`, Unicode whitespace), parses it and returns its canonical
/// string; if it does not parse, returns the trimmed input unchanged (see [derived selectors](crate::selector#derived-selectors)).
#[must_use]
pub fn normalise(s: &str) -> String {
    let trimmed = s.trim();
    match Selector::parse(trimmed) {
        Ok(sel) => sel.canonical().to_owned(),
        Err(_) => trimmed.to_owned(),
    }
}

/// The text a rule's non-empty `namespaceSelector` becomes when Calico
/// compiles a policy: the canonical string of the `pcns.`-prefixed selector, with every occurrence of
/// the text `all()` replaced by `has(projectcalico.org/namespace)` and every `global()` by
/// `!has(projectcalico.org/namespace)`.
///
/// The replacement is textual, exactly as Calico does it, so a value literal such as
/// `"all()"` is rewritten too. (The two patterns cannot overlap, so the order of the
/// replacements does not matter.) The caller decides whether the field was set: an empty
/// field is not rewritten at all.
#[must_use]
pub fn rewrite_rule_namespace_selector(namespace_selector: &Selector) -> String {
    namespace_selector
        .prefixed(NAMESPACE_LABEL_PREFIX)
        .canonical()
        .replace("all()", "has(projectcalico.org/namespace)")
        .replace("global()", "!has(projectcalico.org/namespace)")
}
