//! Label restrictions: which labels a selector requires (see [label restrictions](crate::selector#label-restrictions)).

use std::collections::{BTreeMap, BTreeSet, btree_map};

use super::ast::Node;
use super::parsed::Selector;

/// What a selector requires of one label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present.
    pub must_be_present: bool,
    /// The label must be absent.
    pub must_be_absent: bool,
    /// If set, the label's value must be one of these.
    pub must_have_one_of: Option<BTreeSet<String>>,
}

impl LabelRestriction {
    /// Whether no label map can satisfy this restriction: the label must be both present
    /// and absent, or its value must be one of an empty set.
    #[must_use]
    pub fn can_never_match(&self) -> bool {
        (self.must_be_present && self.must_be_absent)
            || self
                .must_have_one_of
                .as_ref()
                .is_some_and(BTreeSet::is_empty)
    }

    fn present(values: Option<BTreeSet<String>>) -> Self {
        Self {
            must_be_present: true,
            must_be_absent: false,
            must_have_one_of: values,
        }
    }

    /// Both restrictions at once (`And`).
    fn and(self, other: Self) -> Self {
        let must_have_one_of = match (self.must_have_one_of, other.must_have_one_of) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        Self {
            must_be_present: self.must_be_present || other.must_be_present,
            must_be_absent: self.must_be_absent || other.must_be_absent,
            must_have_one_of,
        }
    }

    /// What both alternatives require (`Or`).
    fn or(self, other: Self) -> Self {
        let must_have_one_of = match (self.must_have_one_of, other.must_have_one_of) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        Self {
            must_be_present: self.must_be_present && other.must_be_present,
            must_be_absent: self.must_be_absent && other.must_be_absent,
            must_have_one_of,
        }
    }
}

/// The restrictions a selector places on labels, by label name. Empty means "no
/// restriction".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRestrictions(BTreeMap<String, LabelRestriction>);

impl LabelRestrictions {
    /// The restrictions of the tree `node` (see [label restrictions](crate::selector#label-restrictions)).
    #[must_use]
    pub fn of(node: &Node) -> Self {
        Self(of_node(node))
    }

    /// The restriction on `label`, if any.
    #[must_use]
    pub fn get(&self, label: &str) -> Option<&LabelRestriction> {
        self.0.get(label)
    }

    /// The restrictions, ordered by label name.
    pub fn iter(&self) -> btree_map::Iter<'_, String, LabelRestriction> {
        self.0.iter()
    }

    /// Number of restricted labels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no restriction at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some restriction can never be satisfied, so the selector matches nothing.
    #[must_use]
    pub fn can_never_match(&self) -> bool {
        self.0.values().any(LabelRestriction::can_never_match)
    }

    /// The underlying map.
    #[must_use]
    pub const fn as_map(&self) -> &BTreeMap<String, LabelRestriction> {
        &self.0
    }

    /// The underlying map, by value.
    #[must_use]
    pub fn into_map(self) -> BTreeMap<String, LabelRestriction> {
        self.0
    }
}

impl IntoIterator for LabelRestrictions {
    type Item = (String, LabelRestriction);
    type IntoIter = btree_map::IntoIter<String, LabelRestriction>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a LabelRestrictions {
    type Item = (&'a String, &'a LabelRestriction);
    type IntoIter = btree_map::Iter<'a, String, LabelRestriction>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

type Map = BTreeMap<String, LabelRestriction>;

fn single(label: &str, r: LabelRestriction) -> Map {
    BTreeMap::from([(label.to_owned(), r)])
}

fn of_node(node: &Node) -> Map {
    match node {
        Node::Eq { label, value } => single(
            label,
            LabelRestriction::present(Some(BTreeSet::from([value.to_string()]))),
        ),
        Node::In { label, values } => single(
            label,
            LabelRestriction::present(Some(values.iter().map(|v| v.to_string()).collect())),
        ),
        Node::Has { label }
        | Node::Contains { label, .. }
        | Node::StartsWith { label, .. }
        | Node::EndsWith { label, .. } => single(label, LabelRestriction::present(None)),
        Node::Ne { .. } | Node::NotIn { .. } | Node::All | Node::Global => Map::new(),
        Node::Not(operand) => match &**operand {
            Node::Has { label } => single(
                label,
                LabelRestriction {
                    must_be_absent: true,
                    ..LabelRestriction::default()
                },
            ),
            _ => Map::new(),
        },
        Node::And(operands) => {
            let mut acc = Map::new();
            for n in operands {
                for (label, r) in of_node(n) {
                    let merged = match acc.remove(&label) {
                        Some(prev) => prev.and(r),
                        None => r,
                    };
                    acc.insert(label, merged);
                }
            }
            acc
        }
        Node::Or(operands) => {
            let mut iter = operands.iter();
            let mut acc = iter.next().map(of_node).unwrap_or_default();
            for n in iter {
                if acc.is_empty() {
                    break;
                }
                let mut other = of_node(n);
                acc = std::mem::take(&mut acc)
                    .into_iter()
                    .filter_map(|(label, r)| {
                        let merged = r.or(other.remove(&label)?);
                        (merged.must_be_present || merged.must_be_absent).then_some((label, merged))
                    })
                    .collect();
            }
            acc
        }
    }
}

impl Selector {
    /// The restrictions this selector places on labels (see [label restrictions](crate::selector#label-restrictions)).
    #[must_use]
    pub fn restrictions(&self) -> LabelRestrictions {
        LabelRestrictions::of(self.root())
    }
}
