//! Property tests for `SelectorIndex`: after any sequence of updates, every selector's match
//! set equals brute-force evaluation, and the emitted events replayed from an empty table
//! reproduce the current match table.

use std::collections::{BTreeMap, BTreeSet};

use calico_model::index::{MatchEvent, SelectorIndex};
use calico_model::selector::{Node, Text};
use proptest::prelude::*;

type Labels = BTreeMap<String, String>;

/// Calico's evaluation rules, transcribed independently of the library.
fn reference(node: &Node, labels: &Labels) -> bool {
    let get = |k: &str| labels.get(k).map(String::as_str);
    match node {
        Node::Eq { label, value } => get(label) == Some(&**value),
        Node::Ne { label, value } => get(label) != Some(&**value),
        Node::In { label, values } => get(label).is_some_and(|v| values.iter().any(|s| **s == *v)),
        Node::NotIn { label, values } => {
            !get(label).is_some_and(|v| values.iter().any(|s| **s == *v))
        }
        Node::Contains { label, value } => get(label).is_some_and(|v| v.contains(&**value)),
        Node::StartsWith { label, value } => get(label).is_some_and(|v| v.starts_with(&**value)),
        Node::EndsWith { label, value } => get(label).is_some_and(|v| v.ends_with(&**value)),
        Node::Has { label } => get(label).is_some(),
        Node::All | Node::Global => true,
        Node::Not(e) => !reference(e, labels),
        Node::And(xs) => xs.iter().all(|x| reference(x, labels)),
        Node::Or(xs) => xs.iter().any(|x| reference(x, labels)),
    }
}

const KEYS: &[&str] = &["a", "b", "c", "d"];
const VALUES: &[&str] = &["", "x", "y", "xy"];

fn arb_key() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}
fn arb_value() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(VALUES).prop_map(str::to_owned)
}

fn sorted_set(vs: Vec<String>) -> Box<[Text]> {
    let set: BTreeSet<String> = vs.into_iter().collect();
    set.into_iter().map(Text::from).collect()
}

fn arb_leaf() -> impl Strategy<Value = Node> {
    let kv = (arb_key(), arb_value());
    let kset = (arb_key(), prop::collection::vec(arb_value(), 0..4));
    prop_oneof![
        3 => kv.clone().prop_map(|(k, v)| Node::Eq { label: k.into(), value: v.into() }),
        1 => kv.clone().prop_map(|(k, v)| Node::Ne { label: k.into(), value: v.into() }),
        1 => kv.clone().prop_map(|(k, v)| Node::Contains { label: k.into(), value: v.into() }),
        1 => kv.clone().prop_map(|(k, v)| Node::StartsWith { label: k.into(), value: v.into() }),
        1 => kv.prop_map(|(k, v)| Node::EndsWith { label: k.into(), value: v.into() }),
        2 => kset.clone().prop_map(|(k, vs)| Node::In { label: k.into(), values: sorted_set(vs) }),
        1 => kset.prop_map(|(k, vs)| Node::NotIn { label: k.into(), values: sorted_set(vs) }),
        2 => arb_key().prop_map(|k| Node::Has { label: k.into() }),
        1 => arb_key().prop_map(|k| Node::Not(Box::new(Node::Has { label: k.into() }))),
        1 => Just(Node::All),
        1 => Just(Node::Global),
    ]
}

fn arb_node() -> impl Strategy<Value = Node> {
    arb_leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|n| Node::Not(Box::new(n))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Node::And),
            prop::collection::vec(inner, 2..4).prop_map(Node::Or),
        ]
    })
}

fn arb_labels() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(arb_key(), arb_value(), 0..4)
}

#[derive(Debug, Clone)]
enum Op {
    UpsertSelector(u8, Node),
    RemoveSelector(u8),
    UpsertObject(u8, Labels),
    RemoveObject(u8),
    Compact,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..8, arb_node()).prop_map(|(s, n)| Op::UpsertSelector(s, n)),
        1 => (0u8..8).prop_map(Op::RemoveSelector),
        6 => (0u8..48, arb_labels()).prop_map(|(o, l)| Op::UpsertObject(o, l)),
        2 => (0u8..48).prop_map(Op::RemoveObject),
        1 => Just(Op::Compact),
    ]
}

/// The model: current selectors and objects, and the table rebuilt from events.
#[derive(Default)]
struct Model {
    selectors: BTreeMap<u8, Node>,
    objects: BTreeMap<u8, Labels>,
    replayed: BTreeSet<(u8, u8)>,
}

impl Model {
    fn replay(&mut self, events: Vec<MatchEvent<u8, u8>>) -> Result<(), TestCaseError> {
        let mut seen = BTreeSet::new();
        for e in events {
            match e {
                MatchEvent::Started { selector, object } => {
                    prop_assert!(seen.insert((selector, object)), "pair twice in one call");
                    prop_assert!(
                        self.replayed.insert((selector, object)),
                        "Started for an existing match {:?}",
                        (selector, object)
                    );
                }
                MatchEvent::Stopped { selector, object } => {
                    prop_assert!(seen.insert((selector, object)), "pair twice in one call");
                    prop_assert!(
                        self.replayed.remove(&(selector, object)),
                        "Stopped for a non-match {:?}",
                        (selector, object)
                    );
                }
            }
        }
        Ok(())
    }

    fn brute_force(&self) -> BTreeSet<(u8, u8)> {
        let mut out = BTreeSet::new();
        for (&s, node) in &self.selectors {
            for (&o, labels) in &self.objects {
                if reference(node, labels) {
                    out.insert((s, o));
                }
            }
        }
        out
    }

    fn check(&self, index: &SelectorIndex<u8, u8>) -> Result<(), TestCaseError> {
        let want = self.brute_force();
        prop_assert_eq!(
            &self.replayed,
            &want,
            "replayed events differ from brute force"
        );
        let mut from_selectors = BTreeSet::new();
        for &s in self.selectors.keys() {
            let objs: Vec<u8> = index.matching_objects(&s).copied().collect();
            prop_assert_eq!(index.match_count(&s), Some(objs.len()));
            for o in objs {
                prop_assert!(from_selectors.insert((s, o)), "object listed twice");
            }
        }
        prop_assert_eq!(
            &from_selectors,
            &want,
            "matching_objects differ from brute force"
        );
        let mut from_objects = BTreeSet::new();
        for &o in self.objects.keys() {
            for &s in index.matching_selectors(&o) {
                prop_assert!(from_objects.insert((s, o)), "selector listed twice");
            }
        }
        prop_assert_eq!(
            &from_objects,
            &want,
            "matching_selectors differ from brute force"
        );
        for s in 0u8..8 {
            for o in 0u8..48 {
                prop_assert_eq!(index.is_match(&s, &o), want.contains(&(s, o)));
            }
        }
        prop_assert_eq!(index.total_matches(), want.len());
        prop_assert_eq!(index.selector_count(), self.selectors.len());
        prop_assert_eq!(index.object_count(), self.objects.len());
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut index: SelectorIndex<u8, u8> = SelectorIndex::new();
    let mut model = Model::default();
    for (n, op) in ops.into_iter().enumerate() {
        let events = match op {
            Op::UpsertSelector(s, node) => {
                let ev = index.upsert_selector(s, &node);
                model.selectors.insert(s, node);
                ev
            }
            Op::RemoveSelector(s) => {
                model.selectors.remove(&s);
                index.remove_selector(&s)
            }
            Op::UpsertObject(o, labels) => {
                let ev = index.upsert_object(o, &labels);
                model.objects.insert(o, labels);
                ev
            }
            Op::RemoveObject(o) => {
                model.objects.remove(&o);
                index.remove_object(&o)
            }
            Op::Compact => {
                index.compact();
                Vec::new()
            }
        };
        model.replay(events)?;
        if n % 8 == 0 {
            model.check(&index)?;
        }
    }
    model.check(&index)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn index_matches_brute_force_and_events_replay(ops in prop::collection::vec(arb_op(), 1..120)) {
        run(ops)?;
    }

    /// Objects first, then selectors (the set-algebra path does all the work).
    #[test]
    fn selectors_added_after_objects(
        objects in prop::collection::vec((0u8..48, arb_labels()), 0..48),
        selectors in prop::collection::vec((0u8..8, arb_node()), 1..12),
    ) {
        let mut ops: Vec<Op> = objects.into_iter().map(|(o, l)| Op::UpsertObject(o, l)).collect();
        ops.extend(selectors.into_iter().map(|(s, n)| Op::UpsertSelector(s, n)));
        run(ops)?;
    }
}
