//! Tests for the compiled evaluator against an independent reference evaluator.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Labels = BTreeMap<String, String>;

/// Straight transcription of the evaluation rules (absent label: only `!=` and `not in`
/// are true), kept independent of the compiler.
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

fn eq(k: &str, v: &str) -> Node {
    Node::Eq {
        label: k.into(),
        value: v.into(),
    }
}
fn ne(k: &str, v: &str) -> Node {
    Node::Ne {
        label: k.into(),
        value: v.into(),
    }
}
fn set(vs: &[&str]) -> Box<[Text]> {
    let mut v: Vec<Text> = vs.iter().map(|s| (*s).into()).collect();
    v.sort();
    v.dedup();
    v.into_boxed_slice()
}
fn in_(k: &str, vs: &[&str]) -> Node {
    Node::In {
        label: k.into(),
        values: set(vs),
    }
}
fn not_in(k: &str, vs: &[&str]) -> Node {
    Node::NotIn {
        label: k.into(),
        values: set(vs),
    }
}
fn has(k: &str) -> Node {
    Node::Has { label: k.into() }
}
fn not(n: Node) -> Node {
    Node::Not(Box::new(n))
}
fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Compiles and evaluates with a fresh interner, and checks agreement with the reference.
fn eval(node: &Node, l: &Labels) -> bool {
    let mut i = Interner::new();
    let c = CompiledSelector::compile(node, &mut i);
    let ls = LabelSet::from_pairs(l, &mut i);
    let got = c.matches(&ls, &i);
    assert_eq!(got, reference(node, l), "{node:?} on {l:?}");
    got
}

#[test]
fn evaluation_table_rows() {
    let empty = labels(&[]);
    assert!(eval(&ne("a", "b"), &empty));
    assert!(!eval(&ne("a", ""), &labels(&[("a", "")])));
    assert!(eval(&has("a"), &labels(&[("a", "")])));
    assert!(!eval(&eq("A", "b"), &labels(&[("a", "b")])));
    assert!(eval(&in_("a", &[""]), &labels(&[("a", "")])));
    assert!(eval(&not_in("a", &[]), &empty));
    assert!(!eval(&in_("a", &[]), &labels(&[("a", "")])));
    assert!(eval(&not_in("a", &["x"]), &labels(&[("a", "y")])));
    assert!(eval(&not(in_("a", &["x"])), &empty));
    assert!(eval(&in_("a", &["}", ",", "{"]), &labels(&[("a", ",")])));
    let contains_empty = Node::Contains {
        label: "a".into(),
        value: "".into(),
    };
    assert!(!eval(&contains_empty, &empty));
    assert!(eval(&contains_empty, &labels(&[("a", "")])));
    let starts_empty = Node::StartsWith {
        label: "a".into(),
        value: "".into(),
    };
    assert!(eval(&starts_empty, &labels(&[("a", "")])));
    assert!(eval(&Node::Or(vec![Node::Global, eq("a", "x")]), &empty));
    assert!(!eval(&not(Node::Global), &empty));
    assert!(!eval(&not(Node::All), &empty));
    assert!(!eval(&eq("a", "x"), &empty));
    assert!(!eval(&not(not(not(has("a")))), &labels(&[("a", "1")])));
    // a == '1' || !b == '1' && c == '1'
    let n = Node::Or(vec![
        eq("a", "1"),
        Node::And(vec![not(eq("b", "1")), eq("c", "1")]),
    ]);
    assert!(eval(&n, &labels(&[("c", "1")])));
    // (a == 'x' && (b == 'y' || (c == 'z' && !has(d))))
    let n = Node::And(vec![
        eq("a", "x"),
        Node::Or(vec![
            eq("b", "y"),
            Node::And(vec![eq("c", "z"), not(has("d"))]),
        ]),
    ]);
    assert!(!eval(&n, &labels(&[("a", "x"), ("c", "z"), ("d", "")])));
    assert!(eval(&n, &labels(&[("a", "x"), ("c", "z")])));
    assert!(eval(&eq("a", "x\\"), &labels(&[("a", "x\\")])));
    assert!(eval(&eq("a", "é"), &labels(&[("a", "é")])));
    assert!(eval(&Node::All, &empty));
    assert!(eval(&eq("a", ""), &labels(&[("a", "")])));
    assert!(!eval(&not(ne("a", "x")), &labels(&[("a", "y")])));
    assert!(eval(&not(ne("a", "x")), &labels(&[("a", "x")])));
}

#[test]
fn string_tests() {
    let l = labels(&[("app", "svc12-api")]);
    let c = |v: &str| Node::Contains {
        label: "app".into(),
        value: v.into(),
    };
    let s = |v: &str| Node::StartsWith {
        label: "app".into(),
        value: v.into(),
    };
    let e = |v: &str| Node::EndsWith {
        label: "app".into(),
        value: v.into(),
    };
    assert!(eval(&c("c12"), &l));
    assert!(!eval(&c("c13"), &l));
    assert!(eval(&s("svc1"), &l));
    assert!(!eval(&s("api"), &l));
    assert!(eval(&e("api"), &l));
    assert!(!eval(&e("svc"), &l));
    assert!(eval(&e("svc12-api"), &l));
    assert!(!eval(&e("xsvc12-api"), &l));
}

#[test]
fn large_in_sets_use_binary_search() {
    let members: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let n = in_("k", &refs);
    for i in 0..45 {
        let want = i < 40;
        assert_eq!(eval(&n, &labels(&[("k", &format!("v{i}"))])), want);
    }
    assert!(!eval(&n, &labels(&[("j", "v1")])));
    assert!(eval(&not_in("k", &refs), &labels(&[("k", "v99")])));
}

#[test]
fn constants_and_program_shape() {
    let mut i = Interner::new();
    let c = |n: &Node, i: &mut Interner| CompiledSelector::compile(n, i);
    assert_eq!(c(&Node::All, &mut i).constant(), Some(true));
    assert_eq!(c(&Node::Global, &mut i).constant(), Some(true));
    assert_eq!(c(&not(Node::All), &mut i).constant(), Some(false));
    assert_eq!(c(&in_("a", &[]), &mut i).constant(), Some(false));
    assert_eq!(c(&not_in("a", &[]), &mut i).constant(), Some(true));
    assert_eq!(c(&eq("a", "x"), &mut i).constant(), None);
    // Tests after a constant-false operand are dropped.
    let n = Node::And(vec![in_("a", &[]), eq("b", "y"), has("c")]);
    let p = c(&n, &mut i);
    assert_eq!(p.constant(), Some(false));
    assert_eq!(p.test_count(), 0);
    // `all()` operands cost nothing; `!=` and `!` are folded into the jumps.
    let n = Node::And(vec![Node::All, not(ne("a", "x")), not(not(has("b")))]);
    assert_eq!(c(&n, &mut i).test_count(), 2);
    // Jumps only go forward.
    let n = Node::Or(vec![
        Node::And(vec![eq("a", "1"), not(has("b"))]),
        Node::And(vec![in_("c", &["1", "2", "3"]), ne("d", "x")]),
    ]);
    let p = c(&n, &mut i);
    assert_eq!(p.test_count(), 4);
    for (at, ins) in p.instrs().iter().enumerate() {
        for t in [ins.on_true, ins.on_false] {
            assert!(t >= REJECT || t as usize > at, "{p:?}");
        }
    }
    // Same tree, same interner: equal programs.
    assert_eq!(p, c(&n, &mut i));
}

#[test]
fn selector_compiled_before_labels_interned_still_matches() {
    // Interning order must not matter: values first seen in the selector or in labels.
    let mut i = Interner::new();
    let ls1 = LabelSet::from_pairs([("app", "web"), ("tier", "fe")], &mut i);
    let n = Node::And(vec![
        in_("app", &["db", "web", "zzz"]),
        ne("tier", "be"),
        has("tier"),
    ]);
    let c = CompiledSelector::compile(&n, &mut i);
    let ls2 = LabelSet::from_pairs([("app", "zzz"), ("tier", "be")], &mut i);
    assert!(c.matches(&ls1, &i));
    assert!(!c.matches(&ls2, &i));
}

// ---- property test: compiled ≡ reference on random trees and label maps ----

const KEYS: &[&str] = &["a", "b", "c", "app.x/y", ""];
const VALUES: &[&str] = &["", "x", "y", "xy", "yx", "xyz", "é"];

fn arb_key() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}
fn arb_value() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(VALUES).prop_map(str::to_owned)
}

fn arb_leaf() -> impl Strategy<Value = Node> {
    let kv = (arb_key(), arb_value());
    let kset = (arb_key(), prop::collection::vec(arb_value(), 0..5));
    prop_oneof![
        kv.clone().prop_map(|(k, v)| Node::Eq {
            label: k.into(),
            value: v.into()
        }),
        kv.clone().prop_map(|(k, v)| Node::Ne {
            label: k.into(),
            value: v.into()
        }),
        kv.clone().prop_map(|(k, v)| Node::Contains {
            label: k.into(),
            value: v.into()
        }),
        kv.clone().prop_map(|(k, v)| Node::StartsWith {
            label: k.into(),
            value: v.into()
        }),
        kv.prop_map(|(k, v)| Node::EndsWith {
            label: k.into(),
            value: v.into()
        }),
        kset.clone().prop_map(|(k, vs)| {
            let r: Vec<&str> = vs.iter().map(String::as_str).collect();
            in_(&k, &r)
        }),
        kset.prop_map(|(k, vs)| {
            let r: Vec<&str> = vs.iter().map(String::as_str).collect();
            not_in(&k, &r)
        }),
        arb_key().prop_map(|k| has(&k)),
        Just(Node::All),
        Just(Node::Global),
    ]
}

/// Random selector trees (shared shape with the index property test).
pub(crate) fn arb_node() -> impl Strategy<Value = Node> {
    arb_leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|n| Node::Not(Box::new(n))),
            prop::collection::vec(inner.clone(), 2..5).prop_map(Node::And),
            prop::collection::vec(inner, 2..5).prop_map(Node::Or),
        ]
    })
}

fn arb_labels() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(arb_key(), arb_value(), 0..5)
}

proptest! {
    #[test]
    fn compiled_equals_reference(node in arb_node(), maps in prop::collection::vec(arb_labels(), 1..8)) {
        let mut i = Interner::new();
        let c = CompiledSelector::compile(&node, &mut i);
        for l in &maps {
            let ls = LabelSet::from_pairs(l, &mut i);
            let want = reference(&node, l);
            prop_assert_eq!(c.matches(&ls, &i), want, "{:?} on {:?}", node, l);
            // The tree evaluator (selector::eval) agrees too.
            prop_assert_eq!(node.matches(l), want, "tree evaluator: {:?} on {:?}", node, l);
        }
    }
}

#[test]
fn substring_search_paths() {
    assert!(contains("abc", ""));
    assert!(contains("abc", "b"));
    assert!(!contains("abc", "d"));
    assert!(contains("abc", "bc"));
    assert!(!contains("ab", "abc"));
    let long = "x".repeat(100) + "needle" + &"y".repeat(10);
    assert!(contains(&long, "needle"));
    assert!(!contains(&long, "needles"));
    assert!(contains("é-x", "é"));
    assert!(contains("aab", "ab"));
    assert!(contains("abab", "bab"));
    assert!(!contains("abab", "abb"));
    assert!(contains("xy", "xy"));
    assert!(starts_with("abc", "ab"));
    assert!(starts_with("abc", ""));
    assert!(!starts_with("abc", "abcd"));
    assert!(!starts_with("abc", "b"));
    assert!(ends_with("abc", "bc"));
    assert!(ends_with("abc", "abc"));
    assert!(!ends_with("abc", "zabc"));
    assert!(!ends_with("abc", "ab"));
}

proptest! {
    #[test]
    fn string_helpers_equal_std(h in "[ab]{0,8}", n in "[ab]{0,4}") {
        prop_assert_eq!(contains(&h, &n), h.contains(n.as_str()));
        prop_assert_eq!(starts_with(&h, &n), h.starts_with(n.as_str()));
        prop_assert_eq!(ends_with(&h, &n), h.ends_with(n.as_str()));
    }
}

#[test]
fn remap_keeps_semantics_with_reordered_ids() {
    use crate::labels::Remap;
    let members: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let node = Node::And(vec![in_("k", &refs), ne("j", "v3"), has("k")]);
    let mut old = Interner::new();
    let c = CompiledSelector::compile(&node, &mut old);
    let mut remap = Remap::new(&old);
    // Intern the values in reverse order so every set must be re-sorted.
    for m in members.iter().rev() {
        if let Some(v) = old.value_id(m) {
            remap.value(v);
        }
    }
    let c2 = c.remap(&mut remap);
    let mut new = remap.finish();
    for i in 0..25 {
        let l = labels(&[("k", &format!("v{i}")), ("j", "v3")]);
        let l2 = labels(&[("k", &format!("v{i}"))]);
        for l in [l, l2] {
            let ls = LabelSet::from_pairs(&l, &mut new);
            assert_eq!(c2.matches(&ls, &new), reference(&node, &l), "{l:?}");
        }
    }
}
