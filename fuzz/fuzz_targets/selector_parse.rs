//! Fuzz target for the selector parser (calico_model::selector).
//!
//! For any UTF-8 input: nothing panics; `validate` agrees with `parse` (same error kind and
//! offset); an accepted selector's canonical string re-parses, evaluates identically on a
//! few label maps (fixed ones and ones built from the selector's own labels and values), is
//! a fixed point when the tree has no nested `Not`, and survives `from_node`; and whatever
//! the label restrictions require holds for every map the selector matches.
#![no_main]

use std::collections::BTreeMap;

use calico_model::selector::{
    GlobalRule, Node, Selector, check_field, normalise, tokenize, validate,
};
use libfuzzer_sys::fuzz_target;

type Labels = BTreeMap<String, String>;

fn collect<'a>(n: &'a Node, labels: &mut Vec<&'a str>, values: &mut Vec<&'a str>) {
    match n {
        Node::Eq { label, value }
        | Node::Ne { label, value }
        | Node::Contains { label, value }
        | Node::StartsWith { label, value }
        | Node::EndsWith { label, value } => {
            labels.push(label);
            values.push(value);
        }
        Node::In { label, values: vs } | Node::NotIn { label, values: vs } => {
            labels.push(label);
            values.extend(vs.iter().map(|v| &**v));
        }
        Node::Has { label } => labels.push(label),
        Node::All | Node::Global => {}
        Node::Not(inner) => collect(inner, labels, values),
        Node::And(ns) | Node::Or(ns) => ns.iter().for_each(|n| collect(n, labels, values)),
    }
}

fn has_nested_not(n: &Node) -> bool {
    match n {
        Node::Not(inner) => matches!(**inner, Node::Not(_)) || has_nested_not(inner),
        Node::And(ns) | Node::Or(ns) => ns.iter().any(has_nested_not),
        _ => false,
    }
}

/// Label maps to evaluate on: fixed ones, then ones built from the selector itself.
fn maps(sel: &Selector) -> Vec<Labels> {
    let map = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut out = vec![
        Labels::new(),
        map(&[("a", "x")]),
        map(&[("a", ""), ("b", "y"), ("in", "x")]),
    ];
    let (mut labels, mut values) = (Vec::new(), Vec::new());
    collect(sel.root(), &mut labels, &mut values);
    values.push("");
    for shift in 0..4 {
        out.push(
            labels
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + shift) % 3 != 0)
                .map(|(i, l)| {
                    (
                        (*l).to_owned(),
                        values[(i + shift) % values.len()].to_owned(),
                    )
                })
                .collect(),
        );
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Selector::parse(s);
    assert_eq!(validate(s), parsed.as_ref().map(|_| ()).map_err(|e| *e));
    let _ = tokenize(s);
    let _ = normalise(s);
    for rule in [
        GlobalRule::WholeSelectorOnly,
        GlobalRule::Forbidden,
        GlobalRule::Anywhere,
    ] {
        let field = check_field(s, rule);
        let expect_ok = parsed.is_ok() && (rule == GlobalRule::Anywhere || !s.contains("global("));
        if expect_ok {
            assert_eq!(field.as_ref().ok(), parsed.as_ref().ok());
        }
        if parsed.is_err() {
            assert!(field.is_err());
        }
    }
    let sel = match parsed {
        Ok(sel) => sel,
        Err(e) => {
            assert!(e.offset <= s.len());
            return;
        }
    };
    let again = Selector::parse(sel.canonical()).expect("canonical string re-parses");
    if !has_nested_not(sel.root()) {
        assert_eq!(again.canonical(), sel.canonical());
        assert_eq!(again.root(), sel.root());
    }
    assert_eq!(
        Selector::from_node(sel.root().clone()).as_ref(),
        Ok(&sel),
        "from_node rejects a parsed tree"
    );
    let restrictions = sel.restrictions();
    for m in maps(&sel) {
        let matched = sel.matches(&m);
        assert_eq!(
            again.matches(&m),
            matched,
            "canonical evaluates differently"
        );
        if matched {
            for (label, r) in &restrictions {
                let v = m.get(label);
                assert!(
                    !r.must_be_present || v.is_some(),
                    "restriction {label}: present"
                );
                assert!(
                    !r.must_be_absent || v.is_none(),
                    "restriction {label}: absent"
                );
                if let (Some(set), Some(v)) = (&r.must_have_one_of, v) {
                    assert!(set.contains(v), "restriction {label}: one of");
                }
            }
        }
    }
    let _ = sel.prefixed("pcns.").unique_id();
});
