//! Tree evaluation against a label map (see [evaluation](crate::selector#evaluation)).

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use super::ast::{Node, Text};

/// A read-only map from label name to value, as seen by selector evaluation. Lookup is
/// exact and case-sensitive.
pub trait Labels {
    /// The value of label `key`, if present (an empty value is present).
    fn get(&self, key: &str) -> Option<&str>;
}

impl<T: Labels + ?Sized> Labels for &T {
    #[inline]
    fn get(&self, key: &str) -> Option<&str> {
        (**self).get(key)
    }
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    #[inline]
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    #[inline]
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for HashMap<&str, &str, S> {
    #[inline]
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).copied()
    }
}

impl Labels for BTreeMap<&str, &str> {
    #[inline]
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).copied()
    }
}

/// Whether `v` is in the sorted set `values`.
#[inline]
fn in_set(values: &[Text], v: &str) -> bool {
    if values.len() <= 8 {
        values.iter().any(|x| &**x == v)
    } else {
        values.binary_search_by(|x| (**x).cmp(v)).is_ok()
    }
}

impl Node {
    /// Evaluates this node against `labels` (see [evaluation](crate::selector#evaluation)).
    ///
    /// `In` / `NotIn` sets must be sorted bytewise, as the parser and
    /// [`Selector::from_node`](super::Selector::from_node) leave them; large sets are
    /// searched by bisection.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Self::Eq { label, value } => labels.get(label) == Some(&**value),
            Self::Ne { label, value } => labels.get(label) != Some(&**value),
            Self::Contains { label, value } => {
                labels.get(label).is_some_and(|v| v.contains(&**value))
            }
            Self::StartsWith { label, value } => {
                labels.get(label).is_some_and(|v| v.starts_with(&**value))
            }
            Self::EndsWith { label, value } => {
                labels.get(label).is_some_and(|v| v.ends_with(&**value))
            }
            Self::In { label, values } => labels.get(label).is_some_and(|v| in_set(values, v)),
            Self::NotIn { label, values } => !labels.get(label).is_some_and(|v| in_set(values, v)),
            Self::Has { label } => labels.get(label).is_some(),
            Self::All | Self::Global => true,
            Self::Not(operand) => !operand.matches(labels),
            Self::And(operands) => operands.iter().all(|n| n.matches(labels)),
            Self::Or(operands) => operands.iter().any(|n| n.matches(labels)),
        }
    }
}
