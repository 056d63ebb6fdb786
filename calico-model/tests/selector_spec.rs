//! Table tests of the selector language's documented behaviour (see the `selector` module
//! docs): canonical strings and their one non-idempotent case, unique IDs checked against
//! Calico's, every error kind with its offset, accepted and rejected token and grammar
//! examples, evaluation tables, derived selectors and label restrictions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use calico_model::selector::{
    BuildError, FieldSelectorError, GlobalRule, MAX_DEPTH, Node, ParenKeyword, Selector,
    SelectorError, SelectorErrorKind as K, Text, TokenKind, check_field, normalise,
    rewrite_rule_namespace_selector, tokenize, unique_id_of_canonical, validate,
};

/// `src`, shortened for assertion messages.
fn short(src: &str) -> String {
    let mut s: String = src.chars().take(80).collect();
    if s.len() < src.len() {
        s.push('…');
    }
    format!("{s:?}")
}

fn parse_ok(src: &str) -> Selector {
    let sel = Selector::parse(src).unwrap_or_else(|e| panic!("{} failed: {e}", short(src)));
    assert_eq!(
        validate(src),
        Ok(()),
        "validate disagrees on {}",
        short(src)
    );
    sel
}

fn parse_err(src: &str) -> SelectorError {
    let err = match Selector::parse(src) {
        Ok(_) => panic!("{} parsed", short(src)),
        Err(e) => e,
    };
    assert_eq!(
        validate(src),
        Err(err),
        "validate disagrees on {}",
        short(src)
    );
    err
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn b(s: &str) -> Text {
    s.into()
}

fn eq(label: &str, value: &str) -> Node {
    Node::Eq {
        label: b(label),
        value: b(value),
    }
}

fn has(label: &str) -> Node {
    Node::Has { label: b(label) }
}

fn not(n: Node) -> Node {
    Node::Not(Box::new(n))
}

fn set(values: &[&str]) -> Box<[Text]> {
    values.iter().map(|v| b(v)).collect()
}

mod canonical {
    use super::*;

    /// Canonical strings of varied spellings.
    const CANONICAL: &[(&str, &str)] = &[
        ("", "all()"),
        ("   ", "all()"),
        ("all()", "all()"),
        ("a==\"x\"", "a == \"x\""),
        ("a == 'x'", "a == \"x\""),
        ("((((a=='x'))))", "a == \"x\""),
        ("has( a )", "has(a)"),
        (
            "a in {\"b\",\"a\",\"B\",\"\",\"a\"}",
            "a in {\"\", \"B\", \"a\", \"b\"}",
        ),
        ("a in {'x',}", "a in {\"x\"}"),
        ("a startswith 'he'", "a starts with \"he\""),
        ("a == 'it\"s'", "a == 'it\"s'"),
        ("a in {'\"', \"'\"}", "a in {'\"', \"'\"}"),
        ("a == 'x\\'", "a == \"x\\\""),
        ("!(a=='x')", "!a == \"x\""),
        ("!a in {'x'}", "!a in {\"x\"}"),
        (
            "a == '1' || b == '1' && c == '1'",
            "(a == \"1\" || (b == \"1\" && c == \"1\"))",
        ),
        (
            "(a == '1' || b == '1') && c == '1'",
            "((a == \"1\" || b == \"1\") && c == \"1\")",
        ),
        (
            "a in {\"b\", \"a\"} || !(c not in {\"z\"})",
            "(a in {\"a\", \"b\"} || !c not in {\"z\"})",
        ),
        ("not in {'x'}", "not in {\"x\"}"),
        (
            "contains contains 'contains'",
            "contains contains \"contains\"",
        ),
        (
            "! (a == \"b\"&&! c != \"d\") || !(a == \"b\" && !c != \"d\")",
            "(!(a == \"b\" && !c != \"d\") || !(a == \"b\" && !c != \"d\"))",
        ),
        // Nothing simplified, grouping kept.
        ("(a == 'x' && all())", "(a == \"x\" && all())"),
        (
            "((a == 'x' && b == 'y') && c == 'z')",
            "((a == \"x\" && b == \"y\") && c == \"z\")",
        ),
        (
            "a == 'x' && b == 'y' && c == 'z'",
            "(a == \"x\" && b == \"y\" && c == \"z\")",
        ),
        ("a not in {}", "a not in {}"),
        ("a ends with 'lo'", "a ends with \"lo\""),
        ("a endswith'lo'", "a ends with \"lo\""),
        ("a contains 'ell'", "a contains \"ell\""),
        ("global()", "global()"),
        ("!all()", "!all()"),
    ];

    #[test]
    fn canonical_strings() {
        for &(input, want) in CANONICAL {
            let sel = parse_ok(input);
            assert_eq!(sel.canonical(), want, "input {input:?}");
            assert_eq!(sel.to_string(), want, "Display of {input:?}");
            assert_eq!(sel.root().canonical(), want, "Node::canonical of {input:?}");
        }
    }

    #[test]
    fn canonical_strings_are_fixed_points_without_nested_not() {
        for &(_, want) in CANONICAL {
            assert_eq!(parse_ok(want).canonical(), want);
        }
    }

    /// Nested `Not`s: the canonical string is not its own canonical form.
    #[test]
    fn nested_not_is_not_idempotent() {
        for (input, first, second) in [
            ("!(!has(a))", "!!has(a)", "has(a)"),
            ("!(!(!has(a)))", "!!!has(a)", "!has(a)"),
        ] {
            let sel = parse_ok(input);
            assert_eq!(sel.canonical(), first);
            assert_eq!(parse_ok(sel.canonical()).canonical(), second);
        }
        assert_ne!(
            parse_ok("!(!has(a))").unique_id(),
            parse_ok("has(a)").unique_id()
        );
    }

    /// Unique IDs as Calico computes them.
    const IDS: &[(&str, &str)] = &[
        ("all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
        ("global()", "s:fiJDJdBoaP_zQxty70sMjIrxwAb5lgM6LYCAow"),
        ("!all()", "s:Z9zLaL1EHxF9kgXz1JwBD_e-AJbeJyFDpG-oKw"),
        ("has(a)", "s:JpRGrxZ4kdS6g7WoF-uG_g7qlh2ipw2zGYBMpQ"),
        ("!has(a)", "s:o54_r2fLf2o-LJfoAaKVj8JvPRHKmJA2mXVR7g"),
        ("!!has(a)", "s:VZFYmDV_Drir7seXQB5vQXF8-34s2nf1b8ItRA"),
        ("!!!has(a)", "s:u-KefmlxkjX93h0hfor0VQADQKHRSbR4knE8Gg"),
        ("a == \"x\"", "s:0LriL27abMJ0N52C5_wqdiGYzoN0tcD__T7VRw"),
        ("a != \"x\"", "s:lSfhWG6cY87cFM5rJEPG8B9tbtf0boHKEmrvTA"),
        ("!a == \"x\"", "s:1yIc14GDFvQydvTbs_tHov9u78u4uTbHUxmaCQ"),
        (
            "a in {\"\", \"B\", \"a\", \"b\"}",
            "s:wIvMRfM3HkpMHdXskpBy0LZDsaq3xpVob3RHHw",
        ),
        ("a in {\"x\"}", "s:LIEAMYtAwWnEUL6GFeidjkTht5bQ0nxyaWKABw"),
        ("a not in {}", "s:Bg4ONC7zmSROAdxwdGHq4RKf_s32O173Jm-mjA"),
        (
            "a contains \"ell\"",
            "s:IxJH3NmL_uQonOkkVE9MWjDcgT0BTtnQPrP-wA",
        ),
        (
            "a starts with \"he\"",
            "s:FrGyYheFuvV15EfgTJVokIujPOXcc9XTy5n56g",
        ),
        (
            "a ends with \"lo\"",
            "s:PADI6nZLoQnoFAlQj_R7IrlxeqnHRLyA9kXejA",
        ),
        ("a == 'it\"s'", "s:xyyfX4RhugSo4cTZT2SvAiWuYL9F2WxwBqb4RQ"),
        ("a == \"it's\"", "s:G_gfQG5VFZVzs1e3D5nBiOVyxsXZI3jcHGXrzA"),
        (
            "a in {'\"', \"'\"}",
            "s:dxTSI_pEfi8jDxZLiHKT4_jYFaw2hpB86uEdbw",
        ),
        ("a == \"x\\\"", "s:REluvFunXiLgGHzHrq72MOmdw5tpT1JENgjBaw"),
        (
            "(a == \"1\" || (b == \"1\" && c == \"1\"))",
            "s:DN_Ghc3glSXX5NTumkYVRVvTAkD4wsWMhJhqgA",
        ),
        (
            "((a == \"1\" || b == \"1\") && c == \"1\")",
            "s:op0ToNgic-XxrHId2Oh17PJ8ziFsVoJuM4Hl0Q",
        ),
        (
            "((a == \"x\" && b == \"y\") && c == \"z\")",
            "s:Tykfr7VKoqjKTik18GazfSvbV0hFYipfhVpyAA",
        ),
        (
            "(a == \"x\" && b == \"y\" && c == \"z\")",
            "s:1lM902zFCdFNFChXj9n7op_jxWHbNdG8FB6h_w",
        ),
        (
            "(a == \"x\" && all())",
            "s:oi6LLblNM5BNz0fgczPUQAER72ouwV5ehM92Zw",
        ),
        (
            "!(has(b) || !has(a))",
            "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q",
        ),
        (
            "!(a == \"b\" && !c != \"d\")",
            "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w",
        ),
        (
            "(!(a == \"b\" && !c != \"d\") || !(a == \"b\" && !c != \"d\"))",
            "s:Be3Ot3s9fh9rfvKHuHQl-VYx0wmAhPrTFkK1hg",
        ),
        (
            "(projectcalico.org/namespace == \"default\" && has(projectcalico.org/orchestrator))",
            "s:qK6VYO2xWBUKtlLSDiUx4hlCB-2Kk1m6321dkQ",
        ),
        (
            "contains contains \"contains\"",
            "s:5PPGvsC2skY_SBacjsxUo16-dtVoe6zyNoW6sw",
        ),
    ];

    #[test]
    fn unique_ids() {
        for &(canonical, id) in IDS {
            assert_eq!(unique_id_of_canonical(canonical), id, "{canonical}");
            assert_eq!(id.len(), 40);
        }
    }

    /// The canonical strings of `IDS` parse back to themselves, except the nested-`Not` rows
    /// (`!!has(a)`, `!!!has(a)`), which must be obtained from nested `Not` trees.
    #[test]
    fn unique_ids_through_the_parser() {
        for &(canonical, id) in IDS {
            let sel = match canonical {
                "!!has(a)" => parse_ok("!(!has(a))"),
                "!!!has(a)" => parse_ok("!(!(!has(a)))"),
                _ => parse_ok(canonical),
            };
            assert_eq!(sel.canonical(), canonical);
            assert_eq!(sel.unique_id(), id, "{canonical}");
        }
        // A non-canonical spelling has the same ID.
        assert_eq!(
            parse_ok("a=='x'").unique_id(),
            "s:0LriL27abMJ0N52C5_wqdiGYzoN0tcD__T7VRw"
        );
        assert_eq!(
            Selector::all().unique_id(),
            "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
        );
    }

    #[test]
    fn equality_and_hash_follow_the_canonical_string() {
        use std::collections::HashSet;
        let a = parse_ok("a=='x'");
        let b = parse_ok("((a == \"x\"))");
        let c = parse_ok("a == 'y'");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let set: HashSet<Selector> = [a, b, c].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert_eq!(Selector::all(), parse_ok(""));
        assert_eq!(Selector::default(), parse_ok("all()"));
        let from_str: Selector = "has(x)".parse().unwrap();
        assert_eq!(from_str.canonical(), "has(x)");
    }
}

mod tree_shape {
    use super::*;

    fn tree(src: &str) -> Node {
        parse_ok(src).into_root()
    }

    /// Tree shapes: n-ary `And`/`Or`, parentheses, `!` runs.
    #[test]
    fn tree_shapes() {
        let a = || eq("a", "1");
        let bb = || eq("b", "1");
        let c = || eq("c", "1");
        assert_eq!(
            tree("a == '1' && b == '1' && c == '1'"),
            Node::And(vec![a(), bb(), c()])
        );
        assert_eq!(
            tree("(a == '1' && b == '1') && c == '1'"),
            Node::And(vec![Node::And(vec![a(), bb()]), c()])
        );
        assert_eq!(
            tree("a == '1' && (b == '1' && c == '1')"),
            Node::And(vec![a(), Node::And(vec![bb(), c()])])
        );
        assert_eq!(
            tree("a == '1' || b == '1' || c == '1'"),
            Node::Or(vec![a(), bb(), c()])
        );
        assert_eq!(
            tree("a == '1' || b == '1' && c == '1'"),
            Node::Or(vec![a(), Node::And(vec![bb(), c()])])
        );
        assert_eq!(tree("((((a == 'x'))))"), tree("a == 'x'"));
        assert_eq!(tree("!(!has(a))"), not(not(has("a"))));
        assert_eq!(tree("!!has(a)"), has("a"));
        assert_eq!(tree("!!!has(a)"), not(has("a")));
        assert_eq!(tree("!! !\t!has(a)"), has("a"));
        assert_eq!(tree("!(has(a))"), not(has("a")));
        assert_eq!(
            tree("!a == 'x' && b == 'y'"),
            Node::And(vec![not(eq("a", "x")), eq("b", "y")])
        );
        assert_eq!(
            tree("!a in {'x'}"),
            not(Node::In {
                label: b("a"),
                values: set(&["x"]),
            })
        );
        assert_eq!(
            tree("a not in {'x'}"),
            Node::NotIn {
                label: b("a"),
                values: set(&["x"]),
            }
        );
        assert_eq!(
            tree("a in {'b', 'a', 'b', ''}"),
            Node::In {
                label: b("a"),
                values: set(&["", "a", "b"]),
            }
        );
        assert_eq!(
            tree("a in {}"),
            Node::In {
                label: b("a"),
                values: set(&[]),
            }
        );
        assert_eq!(tree(""), Node::All);
        assert_eq!(tree(" \t "), Node::All);
        assert_eq!(tree("all( )"), Node::All);
        assert_eq!(tree("global()"), Node::Global);
        assert_eq!(
            tree("a contains 'x' || a starts with 'y' || a ends with 'z' || a != 'w'"),
            Node::Or(vec![
                Node::Contains {
                    label: b("a"),
                    value: b("x")
                },
                Node::StartsWith {
                    label: b("a"),
                    value: b("y")
                },
                Node::EndsWith {
                    label: b("a"),
                    value: b("z")
                },
                Node::Ne {
                    label: b("a"),
                    value: b("w")
                },
            ])
        );
    }

    /// Operator keywords accepted by the tokenizer.
    #[test]
    fn accepted_operator_spellings() {
        for (input, canonical) in [
            ("a notin {'x'}", "a not in {\"x\"}"),
            ("a startswith 'x'", "a starts with \"x\""),
            ("a endswith 'x'", "a ends with \"x\""),
            ("a not\tin {'x'}", "a not in {\"x\"}"),
            ("a starts  with 'x'", "a starts with \"x\""),
            ("a contains'x'", "a contains \"x\""),
            ("a in{'x'}", "a in {\"x\"}"),
            ("has( a )", "has(a)"),
            ("all( )", "all()"),
            ("global( )", "global()"),
            ("has(\ta\t)", "has(a)"),
            ("a\t==\t'x'", "a == \"x\""),
            ("in in {'x'}", "in in {\"x\"}"),
            ("not in {'x'}", "not in {\"x\"}"),
            ("has == 'x'", "has == \"x\""),
            ("all == 'x'", "all == \"x\""),
            ("global == 'x'", "global == \"x\""),
            ("starts starts with 'x'", "starts starts with \"x\""),
            ("-a == 'x'", "-a == \"x\""),
            ("1 == '1'", "1 == \"1\""),
            ("a/ == 'x'", "a/ == \"x\""),
            ("a == 'line1\nline2'", "a == \"line1\nline2\""),
            ("a == ''", "a == \"\""),
            ("a == 'é'", "a == \"é\""),
            ("a in {'x',}", "a in {\"x\"}"),
            ("a in {}", "a in {}"),
            ("a in {\"}\", \",\", \"{\"}", "a in {\",\", \"{\", \"}\"}"),
        ] {
            assert_eq!(parse_ok(input).canonical(), canonical, "{input:?}");
        }
    }

    #[test]
    fn labels_of_512_bytes_are_accepted() {
        let label = "a".repeat(512);
        let sel = parse_ok(&format!("{label} == 'x' && has({label})"));
        assert_eq!(
            sel.canonical(),
            format!("({label} == \"x\" && has({label}))")
        );
    }
}

mod errors {
    use super::*;

    /// (input, kind, offset): every error kind with its offset, plus
    /// rejected token and grammar examples.
    fn cases() -> Vec<(String, K, usize)> {
        let nc = |after| K::NoClosingParen { after };
        let long = "a".repeat(513);
        let mut v: Vec<(String, K, usize)> = [
            // unterminated string
            ("a == \"b", K::UnterminatedString, 5),
            ("a == \"b'", K::UnterminatedString, 5),
            ("a == \"x\\\"y\"", K::UnterminatedString, 10),
            ("'", K::UnterminatedString, 0),
            // expected ==
            ("a = 'x'", K::ExpectedEqEq, 2),
            ("a ! = 'x'", K::ExpectedEqEq, 4),
            ("a === 'x'", K::ExpectedEqEq, 4),
            ("a !== 'x'", K::ExpectedEqEq, 4),
            ("=", K::ExpectedEqEq, 0),
            // expected && / ||
            ("a == 'x' & b == 'y'", K::ExpectedAndAnd, 9),
            ("a == 'x' | b == 'y'", K::ExpectedOrOr, 9),
            ("a == 'x' &", K::ExpectedAndAnd, 9),
            // no closing )
            ("has(a", nc(ParenKeyword::Has), 5),
            ("has(a b)", nc(ParenKeyword::Has), 6),
            ("has(a,b)", nc(ParenKeyword::Has), 5),
            ("has( a ", nc(ParenKeyword::Has), 7),
            ("all(x)", nc(ParenKeyword::All), 4),
            ("all(", nc(ParenKeyword::All), 4),
            ("global(", nc(ParenKeyword::Global), 7),
            ("global( x)", nc(ParenKeyword::Global), 8),
            // expected identifier
            ("%", K::ExpectedIdentifier, 0),
            ("é == 'x'", K::ExpectedIdentifier, 0),
            ("has()", K::ExpectedIdentifier, 4),
            ("has( )", K::ExpectedIdentifier, 5),
            ("has('a')", K::ExpectedIdentifier, 4),
            ("a == 'x'\n", K::ExpectedIdentifier, 8),
            ("\na == 'x'", K::ExpectedIdentifier, 0),
            ("a == 'x'\r", K::ExpectedIdentifier, 8),
            ("a == 'x' &&\u{0}", K::ExpectedIdentifier, 11),
            ("a == 'x' && \u{a0}", K::ExpectedIdentifier, 12),
            // expected operator after label
            ("a IN {'x'}", K::ExpectedOperator, 2),
            ("a b == 'c'", K::ExpectedOperator, 2),
            ("a:b == 'c'", K::ExpectedOperator, 1),
            ("a+b == 'x'", K::ExpectedOperator, 1),
            ("a inx {'x'}", K::ExpectedOperator, 2),
            ("a containsx 'x'", K::ExpectedOperator, 2),
            ("a startswithx 'x'", K::ExpectedOperator, 2),
            ("a endswithx 'x'", K::ExpectedOperator, 2),
            ("a starts 'x'", K::ExpectedOperator, 2),
            ("a not 'x'", K::ExpectedOperator, 2),
            ("a \u{e9} == 'x'", K::ExpectedOperator, 2),
            // unexpected end of string looking for op
            ("a", K::UnexpectedEndLookingForOp, 1),
            ("a  ", K::UnexpectedEndLookingForOp, 3),
            ("(a", K::UnexpectedEndLookingForOp, 2),
            ("has(x) && a", K::UnexpectedEndLookingForOp, 11),
            // expected string
            ("a == 1", K::ExpectedString, 5),
            ("a == b", K::ExpectedString, 5),
            ("a ==", K::ExpectedString, 4),
            ("a ==  ", K::ExpectedString, 6),
            ("a contains b", K::ExpectedString, 11),
            ("a != {'x'}", K::ExpectedString, 5),
            // expected set literal
            ("a in 'x'", K::ExpectedSetLiteral, 5),
            ("a in ('x')", K::ExpectedSetLiteral, 5),
            ("a notin\"x\"", K::ExpectedSetLiteral, 7),
            ("a in", K::ExpectedSetLiteral, 4),
            // expected }
            ("a in {,}", K::ExpectedCloseBrace, 6),
            ("a in {'x'", K::ExpectedCloseBrace, 9),
            ("a in {x}", K::ExpectedCloseBrace, 6),
            ("a in {,'x'}", K::ExpectedCloseBrace, 6),
            ("a in {'x',,'y'}", K::ExpectedCloseBrace, 10),
            ("a in {'x' 'y'}", K::ExpectedCloseBrace, 10),
            ("a in {'x',", K::ExpectedCloseBrace, 10),
            // expected == or !=
            ("has (a)", K::ExpectedEqOrNe, 4),
            ("a !in {'x'}", K::ExpectedEqOrNe, 2),
            ("ain {'x'}", K::ExpectedEqOrNe, 4),
            ("HAS(a)", K::ExpectedEqOrNe, 3),
            ("ALL()", K::ExpectedEqOrNe, 3),
            ("all ()", K::ExpectedEqOrNe, 4),
            ("a 'x'", K::ExpectedEqOrNe, 2),
            ("a && b == 'x'", K::ExpectedEqOrNe, 2),
            // unexpected token
            ("()", K::UnexpectedToken, 1),
            ("!", K::UnexpectedToken, 1),
            ("&& a == 'x'", K::UnexpectedToken, 0),
            ("'b' == a", K::UnexpectedToken, 0),
            ("!()", K::UnexpectedToken, 2),
            (")", K::UnexpectedToken, 0),
            ("a == 'x' &&", K::UnexpectedToken, 11),
            ("a == 'x' || || b == 'y'", K::UnexpectedToken, 12),
            ("== 'x'", K::UnexpectedToken, 0),
            ("{}", K::UnexpectedToken, 0),
            // expected )
            ("(a == 'x'", K::ExpectedCloseParen, 9),
            ("((a == 'x')", K::ExpectedCloseParen, 11),
            ("(a == 'x' b == 'y')", K::ExpectedCloseParen, 10),
            // unexpected content at end of selector
            ("a == 'x')", K::UnexpectedContentAtEnd, 8),
            ("a == 'x' b == 'y'", K::UnexpectedContentAtEnd, 9),
            ("a == 'x' !", K::UnexpectedContentAtEnd, 9),
            ("a == 'x',", K::UnexpectedContentAtEnd, 8),
            ("a in {'x'}x", K::UnexpectedContentAtEnd, 10),
            ("has(a)has(b)", K::UnexpectedContentAtEnd, 6),
            ("all() (has(a))", K::UnexpectedContentAtEnd, 6),
            // A tokenizer error anywhere wins over an earlier parser error.
            (") a = 'x'", K::ExpectedEqEq, 4),
            ("a == b && c == 'x' % ", K::ExpectedIdentifier, 19),
            ("a in {x} '", K::UnterminatedString, 9),
        ]
        .into_iter()
        .map(|(s, k, o)| (s.to_owned(), k, o))
        .collect();
        v.push((long.clone(), K::LabelTooLong, 0));
        v.push((format!("{long} == 'x'"), K::LabelTooLong, 0));
        v.push((format!("has( {long})"), K::LabelTooLong, 5));
        v.push((format!("a == 'x' && {long} == 'x'"), K::LabelTooLong, 12));
        v.push((format!("a == 'x' && {long}"), K::LabelTooLong, 12));
        v
    }

    #[test]
    fn error_kinds_and_offsets() {
        for (input, kind, offset) in cases() {
            let err = parse_err(&input);
            assert_eq!(
                (err.kind, err.offset),
                (kind, offset),
                "input {input:?}: got {err}"
            );
            assert_eq!(err.kind.is_tokenizer_error(), tokenize(&input).is_err());
        }
    }

    #[test]
    fn messages_name_the_kind_and_the_offset() {
        assert_eq!(
            parse_err("a == 1").to_string(),
            "expected string (at byte 5)"
        );
        assert_eq!(
            parse_err("has(a").to_string(),
            "no closing ) after has( (at byte 5)"
        );
        assert_eq!(
            parse_err("a == 'x')").to_string(),
            "unexpected content at end of selector (at byte 8)"
        );
        assert_eq!(
            parse_err("a").to_string(),
            "unexpected end of string looking for op (at byte 1)"
        );
    }

    /// Limits: parentheses that add no node are unlimited; a tree up to `MAX_DEPTH` nodes deep
    /// is accepted and a deeper one is an error at the `)` that completes it.
    #[test]
    fn depth_limit() {
        let parens = format!("{}a == 'x'{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse_ok(&parens).canonical(), "a == \"x\"");

        let nots = |n: usize| format!("{}has(z){}", "!(".repeat(n), ")".repeat(n));
        // `n` nested `!( )` groups around `has(z)`: height n + 1.
        let ok = parse_ok(&nots(MAX_DEPTH - 1));
        assert_eq!(ok.canonical().len(), MAX_DEPTH - 1 + 6);
        let err = parse_err(&nots(MAX_DEPTH));
        let last_paren = 2 * MAX_DEPTH + 6 + MAX_DEPTH - 1;
        assert_eq!((err.kind, err.offset), (K::NestingTooDeep, last_paren));
        // The limit also applies at the top level (reported at the end of input)...
        let top = format!("has(y) && {}", nots(MAX_DEPTH - 1));
        let err = parse_err(&top);
        assert_eq!((err.kind, err.offset), (K::NestingTooDeep, top.len()));
        // ...and a tokenizer error still wins.
        let err = parse_err(&format!("{} %", nots(MAX_DEPTH)));
        assert_eq!(err.kind, K::ExpectedIdentifier);
        assert!(
            K::NestingTooDeep
                .to_string()
                .starts_with("nesting too deep")
        );
    }

    /// The deepest tree shape (`Not`, `Or`, `And` per group) at the limit: parsing,
    /// printing, evaluating, cloning and dropping must not overflow the stack.
    ///
    /// Runs on an 8 MiB thread (the main thread's default): unoptimised builds need more
    /// than the 2 MiB of a test thread to clone or drop a 4096-deep tree; optimised builds
    /// do not.
    #[test]
    fn deepest_trees_are_safe() {
        let worker = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(|| {
                let group = |n: usize| {
                    format!(
                        "{}has(z){}",
                        "!(a == '' || b == '' && ".repeat(n),
                        ")".repeat(n)
                    )
                };
                // Height 3n + 1.
                let n = (MAX_DEPTH - 1) / 3;
                let sel = parse_ok(&group(n));
                let again = parse_ok(sel.canonical());
                assert_eq!(again, sel);
                // Each group is Not(Or[a == '', And[b == '', inner]]).
                assert!(sel.matches(&labels(&[])));
                assert!(!sel.matches(&labels(&[("a", "")])));
                assert!(again.matches(&labels(&[("b", "")])));
                assert!(!again.matches(&labels(&[("a", ""), ("z", "")])));
                assert_eq!(Selector::from_node(sel.root().clone()), Ok(sel.clone()));
                assert_eq!(
                    sel.prefixed("p.").root().canonical().len(),
                    sel.canonical().len() + 4 * n + 2
                );
                assert_eq!(parse_err(&group(n + 1)).kind, K::NestingTooDeep);
            })
            .unwrap();
        worker.join().unwrap();
    }
}

mod evaluation {
    use super::*;

    /// Evaluation table; `None` means the selector is rejected.
    #[test]
    fn evaluation_table() {
        type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<bool>);
        let rows: &[Row<'_>] = &[
            ("a != \"b\"", &[], Some(true)),
            ("a != ''", &[("a", "")], Some(false)),
            ("has(a)", &[("a", "")], Some(true)),
            ("A == \"b\"", &[("a", "b")], Some(false)),
            ("a in {''}", &[("a", "")], Some(true)),
            ("a not in {}", &[], Some(true)),
            ("a notin {'x'}", &[("a", "y")], Some(true)),
            ("!a in {'x'}", &[], Some(true)),
            ("a in {\"}\", \",\", \"{\"}", &[("a", ",")], Some(true)),
            ("a contains \"\"", &[], Some(false)),
            ("a starts with ''", &[("a", "")], Some(true)),
            ("global() || a == 'x'", &[], Some(true)),
            ("!global()", &[], Some(false)),
            ("!!a == 'x'", &[], Some(false)),
            ("!(!(!(has(a))))", &[("a", "1")], Some(false)),
            (
                "a == '1' || !b == '1' && c == '1'",
                &[("c", "1")],
                Some(true),
            ),
            (
                "(a == 'x' && (b == 'y' || (c == 'z' && !has(d))))",
                &[("a", "x"), ("c", "z"), ("d", "")],
                Some(false),
            ),
            ("a == 'x\\'", &[("a", "x\\")], Some(true)),
            ("a == \"x\\\"y\"", &[], None),
            ("a == 'é'", &[("a", "é")], Some(true)),
            ("é == 'x'", &[], None),
            ("-a == 'x'", &[("-a", "x")], Some(true)),
            ("1 == '1'", &[("1", "1")], Some(true)),
            ("a/ == 'x'", &[("a/", "x")], Some(true)),
            ("in in {'x'}", &[("in", "x")], Some(true)),
            ("not in {'x'}", &[], Some(false)),
            ("has == 'x'", &[("has", "x")], Some(true)),
            ("starts starts with 'x'", &[("starts", "xy")], Some(true)),
            ("a == \"all()\"", &[("a", "all()")], Some(true)),
            ("a\t==\t'x'", &[("a", "x")], Some(true)),
            ("a == 'x'\n", &[], None),
            ("a == 'line1\nline2'", &[("a", "line1\nline2")], Some(true)),
            ("a notin\"x\"", &[], None),
            ("a in {'x'}x", &[], None),
            ("has(a)has(b)", &[], None),
            ("", &[], Some(true)),
        ];
        for &(src, pairs, want) in rows {
            let map = labels(pairs);
            match want {
                None => {
                    parse_err(src);
                }
                Some(want) => {
                    let sel = parse_ok(src);
                    assert_eq!(sel.matches(&map), want, "{src:?} on {map:?}");
                    let hash: HashMap<String, String> = map.clone().into_iter().collect();
                    assert_eq!(sel.matches(&hash), want, "{src:?} on HashMap");
                    assert_eq!(sel.matches(&&hash), want, "{src:?} on &HashMap");
                    let reparsed = parse_ok(sel.canonical());
                    assert_eq!(reparsed.matches(&map), want, "canonical of {src:?}");
                }
            }
        }
    }

    /// Evaluation edge cases and each node kind both ways.
    #[test]
    fn evaluation_semantics() {
        let none = labels(&[]);
        let ax = labels(&[("a", "x")]);
        let aempty = labels(&[("a", "")]);
        let hello = labels(&[("a", "hello")]);
        let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
            ("a in {}", &ax, false),
            ("a in {}", &none, false),
            ("a not in {}", &none, true),
            ("a not in {}", &ax, true),
            ("!(a != 'x')", &ax, true),
            ("!(a != 'x')", &none, false),
            ("a == ''", &aempty, true),
            ("a == ''", &none, false),
            ("!all()", &none, false),
            ("!all()", &ax, false),
            ("a == 'x'", &ax, true),
            ("a == 'x'", &hello, false),
            ("a != 'x'", &ax, false),
            ("a != 'x'", &hello, true),
            ("a in {'x', 'y'}", &ax, true),
            ("a in {'y', 'z'}", &ax, false),
            ("a not in {'x'}", &ax, false),
            ("a not in {'y'}", &ax, true),
            ("a contains 'ell'", &hello, true),
            ("a contains 'elo'", &hello, false),
            ("a contains 'x'", &none, false),
            ("a contains ''", &aempty, true),
            ("a starts with 'he'", &hello, true),
            ("a starts with 'lo'", &hello, false),
            ("a ends with 'lo'", &hello, true),
            ("a ends with 'he'", &hello, false),
            ("a ends with ''", &none, false),
            ("has(a)", &none, false),
            ("has(A)", &ax, false),
            ("global()", &none, true),
            ("all()", &none, true),
            ("has(a) && a == 'x'", &ax, true),
            ("has(a) && a == 'y'", &ax, false),
            ("has(b) || a == 'x'", &ax, true),
            ("has(b) || a == 'y'", &ax, false),
        ];
        for &(src, map, want) in cases {
            assert_eq!(parse_ok(src).matches(map), want, "{src:?} on {map:?}");
        }
        // Large sets (binary search) agree with small ones.
        let many: Vec<String> = (0..40).map(|i| format!("'v{i}'")).collect();
        let sel = parse_ok(&format!("a in {{{}}}", many.join(", ")));
        for i in 0..40 {
            let v = format!("v{i}");
            assert!(sel.matches(&labels(&[("a", &v)])), "{v}");
        }
        assert!(!sel.matches(&labels(&[("a", "v40")])));
        assert!(!sel.matches(&labels(&[("a", "")])));
    }
}

mod derived {
    use super::*;

    #[test]
    fn normalise_examples() {
        for (input, want) in [
            ("\na == 'x'\n", "a == \"x\""),
            ("", "all()"),
            ("  \t ", "all()"),
            ("\u{a0}has(a)\u{85}", "has(a)"),
            ("\r\n\x0b\x0ca in {'b','a'}\x0c", "a in {\"a\", \"b\"}"),
            ("  a ==  ", "a =="),
            ("\tnot a selector\n", "not a selector"),
            ("!(!has(a))", "!!has(a)"),
        ] {
            assert_eq!(normalise(input), want, "{input:?}");
        }
    }

    #[test]
    fn prefixing() {
        let sel = parse_ok(
            "a == 'a' && !has(b) || c in {'y', 'x'} || d not in {} || e contains 'e' \
             || f starts with 'f' || g ends with 'g' || h != 'h' || all() || global()",
        );
        let p = sel.prefixed("pcns.");
        assert_eq!(
            p.canonical(),
            "((pcns.a == \"a\" && !has(pcns.b)) || pcns.c in {\"x\", \"y\"} || \
             pcns.d not in {} || pcns.e contains \"e\" || pcns.f starts with \"f\" || \
             pcns.g ends with \"g\" || pcns.h != \"h\" || all() || global())"
        );
        assert_eq!(p.unique_id(), unique_id_of_canonical(p.canonical()));
        assert_eq!(parse_ok(p.canonical()), p);
        assert!(p.matches(&labels(&[("pcns.c", "x")])));
        assert!(!p.prefixed("").matches(&labels(&[("c", "x")])) || p.matches(&labels(&[])));
        // Nested Not is kept and the new label is not length-checked.
        assert_eq!(
            parse_ok("!(!has(a))").prefixed("pcsa.").canonical(),
            "!!has(pcsa.a)"
        );
        let long = "p".repeat(600);
        assert_eq!(
            parse_ok("has(a)").prefixed(&long).canonical(),
            format!("has({long}a)")
        );
    }

    #[test]
    fn rule_namespace_selector_rewrite() {
        for (input, want) in [
            ("global()", "!has(projectcalico.org/namespace)"),
            ("all()", "has(projectcalico.org/namespace)"),
            ("", "has(projectcalico.org/namespace)"),
            ("name == 'x'", "pcns.name == \"x\""),
            (
                "has(a) || all()",
                "(has(pcns.a) || has(projectcalico.org/namespace))",
            ),
            (
                "a == 'all()'",
                "pcns.a == \"has(projectcalico.org/namespace)\"",
            ),
            (
                "a in {'global()'}",
                "pcns.a in {\"!has(projectcalico.org/namespace)\"}",
            ),
        ] {
            assert_eq!(
                rewrite_rule_namespace_selector(&parse_ok(input)),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn check_field_rules() {
        use FieldSelectorError as F;
        use GlobalRule::{Anywhere, Forbidden, WholeSelectorOnly as Whole};
        let cases: &[(&str, GlobalRule, Result<&str, F>)] = &[
            ("global()", Whole, Ok("global()")),
            ("global( )", Whole, Ok("global()")),
            (" global()\t", Whole, Ok("global()")),
            ("", Whole, Ok("all()")),
            ("has(a)", Whole, Ok("has(a)")),
            ("global() && x == 'y'", Whole, Err(F::GlobalNotAlone)),
            ("(global())", Whole, Err(F::GlobalNotAlone)),
            ("!!global()", Whole, Err(F::GlobalNotAlone)),
            ("a == 'global('", Whole, Err(F::GlobalNotAlone)),
            ("global()", Forbidden, Err(F::GlobalForbidden)),
            ("a == 'global('", Forbidden, Err(F::GlobalForbidden)),
            ("has(a) || global()", Forbidden, Err(F::GlobalForbidden)),
            ("a == 'global'", Forbidden, Ok("a == \"global\"")),
            ("", Forbidden, Ok("all()")),
            (
                "global() && a == 'x'",
                Anywhere,
                Ok("(global() && a == \"x\")"),
            ),
            ("", Anywhere, Ok("all()")),
        ];
        for (src, rule, want) in cases {
            let got = check_field(src, *rule);
            match want {
                Ok(canonical) => assert_eq!(
                    got.as_ref().map(Selector::canonical),
                    Ok(*canonical),
                    "{src:?} {rule:?}"
                ),
                Err(e) => assert_eq!(got.as_ref().err(), Some(e), "{src:?} {rule:?}"),
            }
        }
        for rule in [Whole, Forbidden, Anywhere] {
            for src in ["global(", "a ==", "global() &"] {
                assert!(
                    matches!(check_field(src, rule), Err(F::Syntax(_))),
                    "{src:?} {rule:?}"
                );
            }
        }
        assert_eq!(
            check_field("a ==", Anywhere).unwrap_err().to_string(),
            "invalid selector: expected string (at byte 4)"
        );
    }

    #[test]
    fn tokenize_shows_the_token_stream() {
        let kinds = |s: &str| -> Vec<TokenKind> {
            tokenize(s).unwrap().into_iter().map(|t| t.kind).collect()
        };
        use TokenKind as T;
        assert_eq!(kinds("global( )"), [T::Global, T::Eof]);
        assert_eq!(kinds(""), [T::Eof]);
        assert_eq!(
            kinds("a notin {'x',} && !has(b)"),
            [
                T::Label,
                T::NotIn,
                T::LBrace,
                T::String,
                T::Comma,
                T::RBrace,
                T::And,
                T::Not,
                T::Has,
                T::Eof
            ]
        );
        let toks = tokenize("  in in 'v'").unwrap();
        assert_eq!(
            (toks[0].kind, toks[0].text, toks[0].offset),
            (T::Label, "in", 2)
        );
        assert_eq!((toks[1].kind, toks[1].offset), (T::In, 5));
        assert_eq!(
            (toks[2].kind, toks[2].text, toks[2].offset),
            (T::String, "v", 8)
        );
        assert_eq!((toks[3].kind, toks[3].offset), (T::Eof, 11));
    }
}

mod restrictions {
    use super::*;

    fn r(src: &str) -> BTreeMap<String, (bool, bool, Option<Vec<String>>)> {
        parse_ok(src)
            .restrictions()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    (
                        v.must_be_present,
                        v.must_be_absent,
                        v.must_have_one_of.map(|s| s.into_iter().collect()),
                    ),
                )
            })
            .collect()
    }

    fn one(
        label: &str,
        present: bool,
        absent: bool,
        values: Option<&[&str]>,
    ) -> BTreeMap<String, (bool, bool, Option<Vec<String>>)> {
        BTreeMap::from([(
            label.to_owned(),
            (
                present,
                absent,
                values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
            ),
        )])
    }

    #[test]
    fn restrictions_of_leaves() {
        assert_eq!(r("a == 'x'"), one("a", true, false, Some(&["x"])));
        assert_eq!(
            r("a in {'y', 'x'}"),
            one("a", true, false, Some(&["x", "y"]))
        );
        assert_eq!(r("a in {}"), one("a", true, false, Some(&[])));
        for src in [
            "has(a)",
            "a contains 'x'",
            "a starts with 'x'",
            "a ends with 'x'",
        ] {
            assert_eq!(r(src), one("a", true, false, None), "{src}");
        }
        for src in [
            "a != 'x'",
            "a not in {'x'}",
            "all()",
            "global()",
            "",
            "!a == 'x'",
            "!(!has(a))",
            "!(has(a) && has(b))",
        ] {
            assert!(r(src).is_empty(), "{src}");
        }
        assert_eq!(r("!has(a)"), one("a", false, true, None));
        assert_eq!(r("!!has(a)"), one("a", true, false, None));
    }

    #[test]
    fn restrictions_of_and() {
        assert_eq!(
            r("a == 'x' && a in {'x', 'y'}"),
            one("a", true, false, Some(&["x"]))
        );
        assert_eq!(
            r("has(a) && a in {'x', 'y'}"),
            one("a", true, false, Some(&["x", "y"]))
        );
        assert_eq!(
            r("a in {'x', 'y'} && has(a)"),
            one("a", true, false, Some(&["x", "y"]))
        );
        assert_eq!(r("all() && a == 'x'"), r("a == 'x'"));
        assert_eq!(r("a != 'x' && a == 'x'"), r("a == 'x'"));
        let both = r("a == 'x' && b == 'y'");
        assert_eq!(both.len(), 2);
        assert_eq!(both["b"], (true, false, Some(vec!["y".to_owned()])));

        let never = parse_ok("a == 'x' && a == 'y'").restrictions();
        assert_eq!(
            never.get("a").unwrap().must_have_one_of,
            Some(BTreeSet::new())
        );
        assert!(never.can_never_match());
        let never = parse_ok("has(a) && !has(a)").restrictions();
        assert!(never.get("a").unwrap().can_never_match());
        assert!(never.can_never_match());
        assert!(parse_ok("a in {}").restrictions().can_never_match());
        assert!(
            !parse_ok("a == 'x' && b == 'x'")
                .restrictions()
                .can_never_match()
        );
        assert!(parse_ok("").restrictions().is_empty());
    }

    #[test]
    fn restrictions_of_or() {
        assert_eq!(
            r("a == 'x' || a == 'y'"),
            one("a", true, false, Some(&["x", "y"]))
        );
        assert_eq!(r("a == 'x' || has(a)"), one("a", true, false, None));
        assert!(r("a == 'x' || b == 'y'").is_empty());
        assert!(r("a == 'x' || a == 'y' || b == 'z'").is_empty());
        assert!(r("a == 'x' || all()").is_empty());
        assert_eq!(r("!has(a) || !has(a)"), one("a", false, true, None));
        assert!(r("has(a) || !has(a)").is_empty());
        assert_eq!(
            r("(a == 'x' && c == 'w') || (a == 'z' && b == 'v')"),
            one("a", true, false, Some(&["x", "z"]))
        );
        assert_eq!(
            r("(a == 'x' && !has(c)) || (a == 'x' && !has(c) && has(d))"),
            BTreeMap::from([
                ("a".to_owned(), (true, false, Some(vec!["x".to_owned()]))),
                ("c".to_owned(), (false, true, None)),
            ])
        );
    }
}

mod builder {
    use super::*;

    #[test]
    fn from_node_accepts_and_normalises() {
        let sel = Selector::from_node(Node::And(vec![
            Node::In {
                label: b("app"),
                values: set(&["b", "a", "b"]),
            },
            not(not(has("x.y/z"))),
            eq("k", "it's"),
            eq("k", "say \"hi\""),
        ]))
        .unwrap();
        assert_eq!(
            sel.canonical(),
            "(app in {\"a\", \"b\"} && !!has(x.y/z) && k == \"it's\" && k == 'say \"hi\"')"
        );
        assert!(Selector::parse(sel.canonical()).is_ok());
        assert_eq!(Selector::from_node(Node::All).unwrap(), Selector::all());
        let label = "l".repeat(512);
        assert!(Selector::from_node(has(&label)).is_ok());
    }

    #[test]
    fn from_node_rejects() {
        assert_eq!(
            Selector::from_node(has("")),
            Err(BuildError::InvalidLabel {
                label: String::new()
            })
        );
        assert_eq!(
            Selector::from_node(eq("a b", "x")),
            Err(BuildError::InvalidLabel {
                label: "a b".to_owned()
            })
        );
        assert_eq!(
            Selector::from_node(has(&"l".repeat(513))),
            Err(BuildError::LabelTooLong { len: 513 })
        );
        assert_eq!(
            Selector::from_node(not(eq("a", "'\""))),
            Err(BuildError::ValueHasBothQuotes {
                value: "'\"".to_owned()
            })
        );
        assert_eq!(
            Selector::from_node(Node::NotIn {
                label: b("a"),
                values: set(&["ok", "'\""]),
            }),
            Err(BuildError::ValueHasBothQuotes {
                value: "'\"".to_owned()
            })
        );
        assert_eq!(
            Selector::from_node(Node::Or(vec![has("a")])),
            Err(BuildError::TooFewOperands {
                operator: "Or",
                count: 1
            })
        );
        assert_eq!(
            Selector::from_node(Node::And(vec![has("a"), Node::And(vec![])])),
            Err(BuildError::TooFewOperands {
                operator: "And",
                count: 0
            })
        );
        let deep = |height: usize| {
            let mut n = has("a");
            for i in 1..height {
                n = if i % 2 == 0 {
                    not(n)
                } else {
                    Node::And(vec![has("b"), n])
                };
            }
            n
        };
        let ok = Selector::from_node(deep(MAX_DEPTH)).unwrap();
        assert_eq!(Selector::parse(ok.canonical()), Ok(ok));
        assert_eq!(
            Selector::from_node(deep(MAX_DEPTH + 1)),
            Err(BuildError::TooDeep { limit: MAX_DEPTH })
        );
    }
}
