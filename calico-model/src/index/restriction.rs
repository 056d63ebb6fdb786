//! Label restrictions: the labels a selector requires (selector.md §11).

use std::collections::{BTreeMap, BTreeSet};

use crate::selector::Node;

/// What a selector requires of one label for it to possibly match.
///
/// Sound by construction: if a selector matches a label map, the map satisfies every
/// restriction computed for the selector (the converse does not hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present.
    pub must_be_present: bool,
    /// The label must be absent.
    pub must_be_absent: bool,
    /// When `Some`, the label's value must be one of these (an empty set: cannot match).
    pub must_have_one_of: Option<BTreeSet<Box<str>>>,
}

impl LabelRestriction {
    /// Whether no label map can satisfy this restriction (present and absent at once, or an
    /// empty value set).
    pub fn is_unsatisfiable(&self) -> bool {
        (self.must_be_present && self.must_be_absent)
            || self
                .must_have_one_of
                .as_ref()
                .is_some_and(BTreeSet::is_empty)
    }

    fn present() -> Self {
        LabelRestriction {
            must_be_present: true,
            ..Self::default()
        }
    }

    fn one_of<'a>(values: impl IntoIterator<Item = &'a Box<str>>) -> Self {
        LabelRestriction {
            must_be_present: true,
            must_be_absent: false,
            must_have_one_of: Some(values.into_iter().cloned().collect()),
        }
    }

    /// `self && other` for the same label.
    fn and(&mut self, other: LabelRestriction) {
        self.must_be_present |= other.must_be_present;
        self.must_be_absent |= other.must_be_absent;
        self.must_have_one_of = match (self.must_have_one_of.take(), other.must_have_one_of) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (a, b) => a.or(b),
        };
    }

    /// `self || other` for the same label (both operands restrict it).
    fn or(&mut self, other: LabelRestriction) {
        self.must_be_present &= other.must_be_present;
        self.must_be_absent &= other.must_be_absent;
        self.must_have_one_of = match (self.must_have_one_of.take(), other.must_have_one_of) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
    }
}

/// Label restrictions of `node`, per label (selector.md §11). An empty map means "no
/// restriction". Recurses once per tree level.
pub fn label_restrictions(node: &Node) -> BTreeMap<Box<str>, LabelRestriction> {
    let mut out = BTreeMap::new();
    match node {
        Node::Eq { label, value } => {
            out.insert(label.clone(), LabelRestriction::one_of([value]));
        }
        Node::In { label, values } => {
            out.insert(label.clone(), LabelRestriction::one_of(values.iter()));
        }
        Node::Has { label }
        | Node::Contains { label, .. }
        | Node::StartsWith { label, .. }
        | Node::EndsWith { label, .. } => {
            out.insert(label.clone(), LabelRestriction::present());
        }
        Node::Ne { .. } | Node::NotIn { .. } | Node::All | Node::Global => {}
        Node::Not(inner) => {
            if let Node::Has { label } = &**inner {
                out.insert(
                    label.clone(),
                    LabelRestriction {
                        must_be_absent: true,
                        ..LabelRestriction::default()
                    },
                );
            }
        }
        Node::And(operands) => {
            for operand in operands {
                for (label, r) in label_restrictions(operand) {
                    match out.get_mut(&label) {
                        Some(existing) => existing.and(r),
                        None => {
                            out.insert(label, r);
                        }
                    }
                }
            }
        }
        Node::Or(operands) => {
            let mut iter = operands.iter();
            if let Some(first) = iter.next() {
                out = label_restrictions(first);
                for operand in iter {
                    let mut next = label_restrictions(operand);
                    out.retain(|label, r| match next.remove(label) {
                        Some(other) => {
                            r.or(other);
                            r.must_be_present || r.must_be_absent
                        }
                        None => false,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(k: &str, v: &str) -> Node {
        Node::Eq {
            label: k.into(),
            value: v.into(),
        }
    }
    fn has(k: &str) -> Node {
        Node::Has { label: k.into() }
    }
    fn in_(k: &str, vs: &[&str]) -> Node {
        Node::In {
            label: k.into(),
            values: vs.iter().map(|s| (*s).into()).collect(),
        }
    }
    fn set(vs: &[&str]) -> Option<BTreeSet<Box<str>>> {
        Some(vs.iter().map(|s| (*s).into()).collect())
    }

    #[test]
    fn leaves() {
        let r = label_restrictions(&eq("a", "x"));
        assert_eq!(r.len(), 1);
        assert!(r["a"].must_be_present);
        assert_eq!(r["a"].must_have_one_of, set(&["x"]));
        let r = label_restrictions(&Node::Contains {
            label: "a".into(),
            value: "x".into(),
        });
        assert_eq!(r["a"], LabelRestriction::present());
        assert!(
            label_restrictions(&Node::Ne {
                label: "a".into(),
                value: "x".into()
            })
            .is_empty()
        );
        assert!(label_restrictions(&Node::All).is_empty());
        let r = label_restrictions(&Node::Not(Box::new(has("a"))));
        assert!(r["a"].must_be_absent && !r["a"].must_be_present);
        assert!(label_restrictions(&Node::Not(Box::new(eq("a", "x")))).is_empty());
        assert!(label_restrictions(&Node::Not(Box::new(Node::Not(Box::new(has("a")))))).is_empty());
    }

    #[test]
    fn and_intersects_and_detects_contradictions() {
        let r = label_restrictions(&Node::And(vec![
            in_("a", &["x", "y"]),
            in_("a", &["y", "z"]),
            has("b"),
            Node::All,
        ]));
        assert_eq!(r["a"].must_have_one_of, set(&["y"]));
        assert!(r["b"].must_be_present);
        let r = label_restrictions(&Node::And(vec![eq("a", "x"), eq("a", "y")]));
        assert!(r["a"].is_unsatisfiable());
        let r = label_restrictions(&Node::And(vec![has("a"), Node::Not(Box::new(has("a")))]));
        assert!(r["a"].is_unsatisfiable());
        assert!(label_restrictions(&in_("a", &[]))["a"].is_unsatisfiable());
        // all() && X == X
        let x = Node::Or(vec![eq("a", "1"), eq("a", "2")]);
        assert_eq!(
            label_restrictions(&Node::And(vec![Node::All, x.clone()])),
            label_restrictions(&x)
        );
    }

    #[test]
    fn or_keeps_only_common_labels() {
        let r = label_restrictions(&Node::Or(vec![
            Node::And(vec![eq("a", "1"), has("b")]),
            eq("a", "2"),
        ]));
        assert_eq!(r.len(), 1);
        assert_eq!(r["a"].must_have_one_of, set(&["1", "2"]));
        let r = label_restrictions(&Node::Or(vec![eq("a", "1"), has("a")]));
        assert_eq!(r["a"], LabelRestriction::present());
        let r = label_restrictions(&Node::Or(vec![
            Node::Not(Box::new(has("a"))),
            Node::Not(Box::new(has("a"))),
        ]));
        assert!(r["a"].must_be_absent);
        let r = label_restrictions(&Node::Or(vec![Node::Not(Box::new(has("a"))), has("a")]));
        assert!(r.is_empty());
        let r = label_restrictions(&Node::Or(vec![eq("a", "1"), Node::All]));
        assert!(r.is_empty());
    }
}
