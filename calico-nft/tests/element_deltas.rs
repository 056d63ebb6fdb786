//! Element-only deltas compose: one delta followed by another, summed with
//! `RulesetDelta::then_elements`, does what applying them one after the other does.

use std::collections::BTreeSet;

use calico_nft::{Ruleset, RulesetDelta, Set, SetElement, SetKey};
use proptest::prelude::*;

fn el(i: u8) -> SetElement {
    SetElement::Port(8000 + u16::from(i))
}

fn table(members: &[BTreeSet<u8>]) -> Ruleset {
    let mut rs = Ruleset::default();
    for (i, m) in members.iter().enumerate() {
        rs.sets.insert(
            format!("s{i}"),
            Set {
                key: SetKey::InetService,
                interval: false,
                elements: m.iter().map(|&x| el(x)).collect(),
            },
        );
    }
    rs
}

/// The element-only delta from `a` to `b` (same sets).
fn delta(a: &[BTreeSet<u8>], b: &[BTreeSet<u8>]) -> RulesetDelta {
    let mut d = RulesetDelta::default();
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        d.change_elements(
            &format!("s{i}"),
            x.difference(y).map(|&v| el(v)).collect(),
            y.difference(x).map(|&v| el(v)).collect(),
        );
    }
    d
}

fn state() -> impl Strategy<Value = Vec<BTreeSet<u8>>> {
    prop::collection::vec(prop::collection::btree_set(0u8..12, 0..8), 3)
}

proptest! {
    #[test]
    fn composed_deltas_apply_like_the_sequence(a in state(), b in state(), c in state()) {
        let d1 = delta(&a, &b);
        let d2 = delta(&b, &c);
        prop_assert!(d1.only_elements() && d2.only_elements());
        let mut sum = d1.clone();
        sum.then_elements(d2.clone());
        let stepwise = d2.apply(&d1.apply(&table(&a)).unwrap()).unwrap();
        let at_once = sum.apply(&table(&a)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&at_once, &table(&c));
        prop_assert_eq!(stepwise, at_once);
        // From a state back to itself nothing is left.
        let mut back = d1;
        back.then_elements(delta(&b, &a));
        prop_assert!(back.is_empty(), "{:?}", back);
    }
}
