//! Scenario tests for `SelectorIndex` with hand-built selectors.

use std::collections::BTreeSet;

use calico_model::index::{MatchEvent, SelectorIndex};
use calico_model::selector::Node;

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
fn has(k: &str) -> Node {
    Node::Has { label: k.into() }
}

fn started(s: &str, o: u32) -> MatchEvent<String, u32> {
    MatchEvent::Started {
        selector: s.to_owned(),
        object: o,
    }
}
fn stopped(s: &str, o: u32) -> MatchEvent<String, u32> {
    MatchEvent::Stopped {
        selector: s.to_owned(),
        object: o,
    }
}

fn sorted(mut v: Vec<MatchEvent<String, u32>>) -> Vec<MatchEvent<String, u32>> {
    v.sort_by_key(|e| format!("{e:?}"));
    v
}

#[test]
fn lifecycle_events() {
    let mut ix: SelectorIndex<String, u32> = SelectorIndex::new();
    assert!(
        ix.upsert_object(1, [("app", "web"), ("env", "prod")])
            .is_empty()
    );
    assert!(ix.upsert_object(2, [("app", "db")]).is_empty());

    // New selector: Started for current matches, found by set algebra.
    let ev = ix.upsert_selector("web".into(), &eq("app", "web"));
    assert_eq!(ev, vec![started("web", 1)]);
    let ev = ix.upsert_selector("not-prod".into(), &ne("env", "prod"));
    assert_eq!(ev, vec![started("not-prod", 2)]);

    // Object relabelled: only affected pairs change.
    let ev = ix.upsert_object(1, [("app", "web"), ("env", "dev")]);
    assert_eq!(ev, vec![started("not-prod", 1)]);
    // Same labels again: nothing.
    assert!(
        ix.upsert_object(1, [("env", "dev"), ("app", "web")])
            .is_empty()
    );

    // New object.
    let ev = sorted(ix.upsert_object(3, [("app", "web")]));
    assert_eq!(ev, sorted(vec![started("web", 3), started("not-prod", 3)]));

    // Selector changed.
    let ev = sorted(ix.upsert_selector("web".into(), &has("env")));
    assert_eq!(ev, sorted(vec![stopped("web", 3)]));
    // Unchanged selector: nothing.
    assert!(ix.upsert_selector("web".into(), &has("env")).is_empty());

    let mut objs: Vec<u32> = ix
        .matching_objects(&"not-prod".to_owned())
        .copied()
        .collect();
    objs.sort_unstable();
    assert_eq!(objs, vec![1, 2, 3]);
    let sels: BTreeSet<&String> = ix.matching_selectors(&1).collect();
    assert_eq!(sels.len(), 2);
    assert_eq!(ix.match_count(&"web".to_owned()), Some(1));
    assert_eq!(ix.total_matches(), 4);

    // Object removed: Stopped for each matching selector; its slot is reused.
    let ev = sorted(ix.remove_object(&1));
    assert_eq!(ev, sorted(vec![stopped("web", 1), stopped("not-prod", 1)]));
    assert!(ix.remove_object(&1).is_empty());
    let ev = ix.upsert_object(4, [("env", "prod")]);
    assert_eq!(ev, vec![started("web", 4)]);
    assert!(!ix.is_match(&"not-prod".to_owned(), &4));

    // Selector removed.
    let ev = sorted(ix.remove_selector(&"not-prod".to_owned()));
    assert_eq!(
        ev,
        sorted(vec![stopped("not-prod", 2), stopped("not-prod", 3)])
    );
    assert!(ix.remove_selector(&"not-prod".to_owned()).is_empty());
    assert_eq!(ix.selector_count(), 1);
    assert_eq!(ix.object_count(), 3);
    assert_eq!(ix.match_count(&"nope".to_owned()), None);
    assert_eq!(ix.matching_objects(&"nope".to_owned()).count(), 0);
    assert_eq!(ix.matching_selectors(&99).count(), 0);
}

#[test]
fn constant_and_contradictory_selectors() {
    let mut ix: SelectorIndex<u32, u32> = SelectorIndex::new();
    ix.upsert_object(1, [("a", "x")]);
    ix.upsert_object(2, Vec::<(&str, &str)>::new());
    assert_eq!(ix.upsert_selector(1, &Node::All).len(), 2);
    assert!(
        ix.upsert_selector(2, &Node::Not(Box::new(Node::All)))
            .is_empty()
    );
    let contradiction = Node::And(vec![eq("a", "x"), eq("a", "y")]);
    assert!(ix.upsert_selector(3, &contradiction).is_empty());
    let empty_not_in = Node::NotIn {
        label: "a".into(),
        values: Box::new([]),
    };
    assert_eq!(ix.upsert_selector(4, &empty_not_in).len(), 2);
    assert_eq!(ix.upsert_object(3, [("a", "y")]).len(), 2);
    assert_eq!(ix.match_count(&1), Some(3));
    assert_eq!(ix.match_count(&2), Some(0));
    assert_eq!(ix.match_count(&3), Some(0));
    assert_eq!(ix.match_count(&4), Some(3));
}

/// Enough objects for posting lists and match sets to switch to bitmaps and back.
#[test]
fn many_objects_dense_and_back() {
    let mut ix: SelectorIndex<u32, u32> = SelectorIndex::new();
    let node = Node::And(vec![
        eq("kind", "pod"),
        Node::Contains {
            label: "name".into(),
            value: "7".into(),
        },
    ]);
    ix.upsert_selector(0, &node);
    ix.upsert_selector(1, &ne("kind", "pod"));
    let name = |i: u32| format!("n{i}");
    let want = |i: u32| name(i).contains('7');
    let mut started = 0;
    for i in 0..2000u32 {
        let ev = ix.upsert_object(i, [("kind", "pod"), ("name", name(i).as_str())]);
        started += ev.len();
    }
    let expect = (0..2000).filter(|&i| want(i)).count();
    assert_eq!(started, expect);
    assert_eq!(ix.match_count(&0), Some(expect));
    assert_eq!(ix.match_count(&1), Some(0));
    // Re-adding the selector recomputes by set algebra: no change.
    assert!(
        ix.upsert_selector(0, &Node::And(vec![node.clone(), Node::All]))
            .is_empty()
    );
    assert_eq!(ix.match_count(&0), Some(expect));
    // Flip most objects to another kind.
    for i in 0..1900u32 {
        ix.upsert_object(i, [("kind", "node"), ("name", name(i).as_str())]);
    }
    let expect0 = (1900..2000).filter(|&i| want(i)).count();
    assert_eq!(ix.match_count(&0), Some(expect0));
    assert_eq!(ix.match_count(&1), Some(1900));
    for i in 0..1000u32 {
        ix.remove_object(&i);
    }
    assert_eq!(ix.match_count(&1), Some(900));
    let mut objs: Vec<u32> = ix.matching_objects(&1).copied().collect();
    objs.sort_unstable();
    assert_eq!(objs, (1000..1900).collect::<Vec<_>>());
    // Freed slots are reused.
    for i in 5000..5500u32 {
        ix.upsert_object(i, [("kind", "vm")]);
    }
    assert_eq!(ix.match_count(&1), Some(1400));
    assert_eq!(ix.object_count(), 1500);
}

#[test]
fn compact_drops_unused_strings_and_keeps_matches() {
    let mut ix: SelectorIndex<u32, u32> = SelectorIndex::new();
    ix.upsert_selector(0, &eq("app", "web"));
    ix.upsert_selector(
        1,
        &Node::In {
            label: "tier".into(),
            values: vec!["a".into(), "b".into(), "c".into()].into_boxed_slice(),
        },
    );
    for i in 0..1000u32 {
        let hash = format!("h{i}");
        let tier = ["a", "b", "z"][i as usize % 3];
        ix.upsert_object(i, [("app", "web"), ("hash", hash.as_str()), ("tier", tier)]);
    }
    for i in 0..990u32 {
        ix.remove_object(&i);
    }
    let before = ix.interner().value_count();
    assert!(before >= 1000);
    let matches0: BTreeSet<u32> = ix.matching_objects(&0).copied().collect();
    let matches1: BTreeSet<u32> = ix.matching_objects(&1).copied().collect();
    ix.compact();
    // 10 hashes, "web", "a", "b", "c", "z" remain.
    assert_eq!(ix.interner().value_count(), 15);
    assert_eq!(
        ix.matching_objects(&0).copied().collect::<BTreeSet<_>>(),
        matches0
    );
    assert_eq!(
        ix.matching_objects(&1).copied().collect::<BTreeSet<_>>(),
        matches1
    );
    // Updates after compaction still work, through both candidate paths.
    // Object 995 had tier "z".
    let ev = sorted_u32(ix.upsert_object(995, [("app", "db"), ("tier", "a")]));
    assert_eq!(
        ev,
        vec![
            MatchEvent::Started {
                selector: 1,
                object: 995
            },
            MatchEvent::Stopped {
                selector: 0,
                object: 995
            },
        ]
    );
    let ev = ix.upsert_object(5000, [("app", "web"), ("tier", "c")]);
    assert_eq!(ev.len(), 2);
    let l = ix.object_labels(&5000).expect("present");
    assert_eq!(l.get_str("tier", ix.interner()), Some("c"));
    // Keys were renumbered by use; ties keep their old order, so "app" stays first.
    assert_eq!(ix.interner().key_id("app").map(|k| k.as_u32()), Some(0));
}

fn sorted_u32(mut v: Vec<MatchEvent<u32, u32>>) -> Vec<MatchEvent<u32, u32>> {
    v.sort_by_key(|e| format!("{e:?}"));
    v
}
