//! Property: for any two rulesets, the delta applied to the old one (with the kernel's
//! ordering checks of `RulesetDelta::apply`) gives exactly the new one, and a ruleset's delta
//! to itself is empty.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use calico_policy::nft::{
    AddrValue, BaseChain, Chain, ChainPolicy, Hook, IpFamily, Match, PortProto, PortValue, Rule,
    RuleVerdict, Ruleset, RulesetDelta, Set, SetElement, SetKey, Side, Verdict, VerdictMap,
};
use proptest::prelude::*;

const SETS: [&str; 4] = ["sa", "sb", "sc", "sd"];
const CHAINS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];

/// (kind, target chain, set) of one generated rule.
type RuleSpec = (u8, usize, usize);

#[derive(Debug, Clone)]
struct Spec {
    sets: Vec<(usize, bool, Vec<u16>)>,
    base_hook: [Option<bool>; 2],
    chains: Vec<(usize, Vec<RuleSpec>)>,
    map: Vec<(u8, usize)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(
            (
                0usize..4,
                any::<bool>(),
                proptest::collection::vec(1u16..40, 0..5),
            ),
            0..4,
        ),
        [
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        ],
        proptest::collection::vec(
            (
                0usize..5,
                proptest::collection::vec((0u8..4, 0usize..5, 0usize..4), 0..4),
            ),
            0..5,
        ),
        proptest::collection::vec((0u8..4, 0usize..5), 0..4),
    )
        .prop_map(|(sets, base_hook, chains, map)| Spec {
            sets,
            base_hook,
            chains,
            map,
        })
}

/// A valid ruleset: every reference points at an existing object.
fn build(s: &Spec) -> Ruleset {
    let mut rs = Ruleset::default();
    for (i, port_key, els) in &s.sets {
        let (key, elements): (SetKey, BTreeSet<SetElement>) = if *port_key {
            (
                SetKey::InetService,
                els.iter().map(|p| SetElement::Port(*p)).collect(),
            )
        } else {
            (
                SetKey::Ipv4Addr,
                els.iter()
                    .map(|p| SetElement::Net(format!("10.0.{p}.0/24").parse().unwrap()))
                    .collect(),
            )
        };
        rs.sets.insert(
            SETS[*i].to_owned(),
            Set {
                key,
                interval: true,
                elements,
            },
        );
    }
    for (ci, _) in &s.chains {
        rs.chains.insert(CHAINS[*ci].to_owned(), Chain::default());
    }
    for (ci, rules) in &s.chains {
        let mut out = Vec::new();
        for (kind, target, set) in rules {
            let mut r = Rule::default();
            match kind {
                0 => {
                    // Jump to a later chain if it exists (no loops).
                    if *target > *ci && rs.chains.contains_key(CHAINS[*target]) {
                        r.verdict = Some(RuleVerdict::Verdict(Verdict::Jump(
                            CHAINS[*target].to_owned(),
                        )));
                    } else {
                        r.verdict = Some(RuleVerdict::Verdict(Verdict::Accept));
                    }
                }
                1 => {
                    if let Some(st) = rs.sets.get(SETS[*set]) {
                        r.matches.push(match st.key {
                            SetKey::InetService => Match::Port {
                                proto: PortProto::Tcp,
                                side: Side::Dst,
                                value: PortValue::Set(SETS[*set].to_owned()),
                                negate: false,
                            },
                            _ => Match::Addr {
                                family: IpFamily::V4,
                                side: Side::Src,
                                value: AddrValue::Set(SETS[*set].to_owned()),
                                negate: *target % 2 == 0,
                            },
                        });
                    }
                    r.verdict = Some(RuleVerdict::Verdict(Verdict::Drop));
                }
                2 => {
                    r.comment = Some(format!("r{target}"));
                }
                _ => {
                    r.verdict = Some(RuleVerdict::Verdict(Verdict::Return));
                }
            }
            out.push(r);
        }
        rs.chains.get_mut(CHAINS[*ci]).unwrap().rules = out;
    }
    let mut map = VerdictMap::default();
    for (k, c) in &s.map {
        if rs.chains.contains_key(CHAINS[*c]) {
            map.elements
                .insert(format!("cali{k}"), Verdict::Goto(CHAINS[*c].to_owned()));
        }
    }
    rs.maps.insert("from-wl".to_owned(), map);
    for (i, hook) in s.base_hook.iter().enumerate() {
        if let Some(h) = hook {
            rs.chains.insert(
                format!("base{i}"),
                Chain {
                    base: Some(BaseChain {
                        hook: if *h { Hook::Forward } else { Hook::Input },
                        priority: 5 + i32::try_from(i).unwrap(),
                        policy: ChainPolicy::Accept,
                    }),
                    rules: vec![Rule {
                        verdict: Some(RuleVerdict::Vmap {
                            side: Side::Src,
                            map: "from-wl".to_owned(),
                        }),
                        ..Rule::default()
                    }],
                },
            );
        }
    }
    rs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn delta_applied_to_old_is_new(a in spec(), b in spec()) {
        let old = build(&a);
        let new = build(&b);
        let d = RulesetDelta::between(&old, &new);
        prop_assert_eq!(d.apply(&old), Ok(new.clone()));
        prop_assert!(RulesetDelta::between(&new, &new).is_empty());
        prop_assert_eq!(d.is_empty(), old == new);
        // Chains that are identical in both are neither filled nor recreated.
        let touched: BTreeMap<&str, ()> = d
            .fill_chains
            .iter()
            .map(|f| (f.chain.as_str(), ()))
            .chain(d.create_chains.iter().map(|(n, _)| (n.as_str(), ())))
            .collect();
        for (name, c) in &new.chains {
            let same_refs = c.rules.iter().all(|r| r.referenced_sets().all(|s| {
                old.sets.get(s).map(|o| (o.key, o.interval)) == new.sets.get(s).map(|n| (n.key, n.interval))
            }));
            if old.chains.get(name) == Some(c) && same_refs {
                prop_assert!(!touched.contains_key(name.as_str()), "{} touched", name);
            }
        }
    }
}
