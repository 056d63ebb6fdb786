//! Property tests for the selector language.
//!
//! The test has its own expression model ([`Expr`]) and reference interpreter, written from
//! the evaluation rules (see the `Evaluation` section of the `selector` module docs) and
//! independent of the crate's `Node`. Random expressions are rendered to
//! text with random spacing, quote styles, redundant parentheses, `!!` runs and keyword
//! spellings, then parsed by the crate.

use std::collections::BTreeMap;

use calico_model::selector::{Node, Selector, validate};
use proptest::prelude::*;

/// Label names: ordinary ones and words that are operators elsewhere.
const KEYS: &[&str] = &[
    "a", "b", "x.y/z-_1", "in", "not", "has", "all", "contains", "starts",
];
/// Values: empty, overlapping prefixes/suffixes, both quote kinds (never together),
/// punctuation of the language, non-ASCII bytes and a backslash.
const VALUES: &[&str] = &[
    "",
    "x",
    "y",
    "xy",
    "yx",
    "it's",
    "say \"hi\"",
    "a b",
    "é",
    "\\",
    "{,}",
    "()",
    "x\ny",
];

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
enum Expr {
    Cmp(Cmp, usize, usize),
    In(bool, usize, Vec<usize>),
    Has(usize),
    All,
    Global,
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// The reference interpreter: Calico's evaluation rules, written independently.
fn eval(e: &Expr, labels: &Labels) -> bool {
    let get = |k: usize| labels.get(KEYS[k]).map(String::as_str);
    match e {
        Expr::Cmp(op, k, v) => {
            let s = VALUES[*v];
            match (op, get(*k)) {
                (Cmp::Eq, Some(x)) => x == s,
                (Cmp::Ne, Some(x)) => x != s,
                (Cmp::Contains, Some(x)) => x.contains(s),
                (Cmp::StartsWith, Some(x)) => x.starts_with(s),
                (Cmp::EndsWith, Some(x)) => x.ends_with(s),
                (Cmp::Ne, None) => true,
                (_, None) => false,
            }
        }
        Expr::In(not_in, k, vs) => {
            let member = get(*k).is_some_and(|x| vs.iter().any(|v| VALUES[*v] == x));
            member != *not_in
        }
        Expr::Has(k) => get(*k).is_some(),
        Expr::All | Expr::Global => true,
        Expr::Not(inner) => !eval(inner, labels),
        Expr::And(es) => es.iter().all(|e| eval(e, labels)),
        Expr::Or(es) => es.iter().any(|e| eval(e, labels)),
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    let k = 0..KEYS.len();
    let v = 0..VALUES.len();
    let cmp = prop_oneof![
        Just(Cmp::Eq),
        Just(Cmp::Ne),
        Just(Cmp::Contains),
        Just(Cmp::StartsWith),
        Just(Cmp::EndsWith)
    ];
    let leaf = prop_oneof![
        4 => (cmp, k.clone(), v.clone()).prop_map(|(c, k, v)| Expr::Cmp(c, k, v)),
        2 => (any::<bool>(), k.clone(), prop::collection::vec(v, 0..4))
            .prop_map(|(n, k, vs)| Expr::In(n, k, vs)),
        2 => k.prop_map(Expr::Has),
        1 => Just(Expr::All),
        1 => Just(Expr::Global),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

/// A tiny deterministic PRNG for rendering choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }

    /// Optional whitespace.
    fn ws(&mut self) -> &'static str {
        self.pick(&["", "", " ", " ", "  ", "\t"])
    }

    /// Mandatory whitespace.
    fn ws1(&mut self) -> &'static str {
        self.pick(&[" ", " ", "\t", " \t "])
    }
}

fn quote(value: &str, rng: &mut Rng) -> String {
    let q = if value.contains('"') {
        '\''
    } else if value.contains('\'') || rng.below(2) == 0 {
        '"'
    } else {
        '\''
    };
    format!("{q}{value}{q}")
}

/// Renders `e` as a primary or a `!`-prefixed primary (what may follow `!`, `&&` or `||`
/// without parentheses), adding optional redundant parentheses and `!!` runs.
fn render_unary(e: &Expr, rng: &mut Rng, out: &mut String) {
    // An even run of `!` changes nothing.
    if rng.below(6) == 0 {
        for _ in 0..2 * (1 + rng.below(2)) {
            out.push('!');
            out.push_str(rng.ws());
        }
    }
    let extra_parens = if rng.below(5) == 0 {
        1 + rng.below(2)
    } else {
        0
    };
    for _ in 0..extra_parens {
        out.push('(');
        out.push_str(rng.ws());
    }
    match e {
        Expr::Cmp(op, k, v) => {
            out.push_str(KEYS[*k]);
            let word = |rng: &mut Rng, w: &str| format!("{}{w}{}", rng.ws1(), rng.ws());
            let op = match op {
                Cmp::Eq => format!("{}=={}", rng.ws(), rng.ws()),
                Cmp::Ne => format!("{}!={}", rng.ws(), rng.ws()),
                Cmp::Contains => word(rng, "contains"),
                Cmp::StartsWith => {
                    let w =
                        rng.pick(&["starts with", "startswith", "starts  with", "starts\twith"]);
                    word(rng, w)
                }
                Cmp::EndsWith => {
                    let w = rng.pick(&["ends with", "endswith", "ends \t with"]);
                    word(rng, w)
                }
            };
            out.push_str(&op);
            out.push_str(&quote(VALUES[*v], rng));
        }
        Expr::In(not_in, k, vs) => {
            out.push_str(KEYS[*k]);
            out.push_str(rng.ws1());
            out.push_str(if *not_in {
                rng.pick(&["not in", "notin", "not  in", "not\tin"])
            } else {
                "in"
            });
            out.push_str(rng.ws());
            out.push('{');
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    out.push_str(rng.ws());
                    out.push(',');
                }
                out.push_str(rng.ws());
                out.push_str(&quote(VALUES[*v], rng));
            }
            if !vs.is_empty() && rng.below(4) == 0 {
                out.push(',');
            }
            out.push_str(rng.ws());
            out.push('}');
        }
        Expr::Has(k) => {
            out.push_str("has(");
            out.push_str(rng.ws());
            out.push_str(KEYS[*k]);
            out.push_str(rng.ws());
            out.push(')');
        }
        Expr::All => {
            out.push_str("all(");
            out.push_str(rng.ws());
            out.push(')');
        }
        Expr::Global => {
            out.push_str("global(");
            out.push_str(rng.ws());
            out.push(')');
        }
        Expr::Not(inner) => {
            out.push('!');
            out.push_str(rng.ws());
            render_unary(inner, rng, out);
        }
        Expr::And(_) | Expr::Or(_) => {
            out.push('(');
            out.push_str(rng.ws());
            render(e, rng, out);
            out.push_str(rng.ws());
            out.push(')');
        }
    }
    for _ in 0..extra_parens {
        out.push_str(rng.ws());
        out.push(')');
    }
}

/// Renders `e` as an `or_expr`.
fn render(e: &Expr, rng: &mut Rng, out: &mut String) {
    match e {
        Expr::And(es) | Expr::Or(es) => {
            let is_and = matches!(e, Expr::And(_));
            for (i, operand) in es.iter().enumerate() {
                if i > 0 {
                    out.push_str(rng.ws());
                    out.push_str(if is_and { "&&" } else { "||" });
                    out.push_str(rng.ws());
                }
                // An `&&` operand of `||` needs no parentheses.
                if !is_and && matches!(operand, Expr::And(_)) && rng.below(2) == 0 {
                    render(operand, rng, out);
                } else {
                    render_unary(operand, rng, out);
                }
            }
        }
        _ => render_unary(e, rng, out),
    }
}

fn render_top(e: &Expr, seed: u64) -> String {
    let mut rng = Rng(seed | 1);
    let mut out = String::from(rng.ws());
    render(e, &mut rng, &mut out);
    out.push_str(rng.ws());
    out
}

fn label_map() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(
        (0..KEYS.len()).prop_map(|k| KEYS[k].to_owned()),
        (0..VALUES.len()).prop_map(|v| VALUES[v].to_owned()),
        0..5,
    )
}

fn has_nested_not(n: &Node) -> bool {
    match n {
        Node::Not(inner) => matches!(**inner, Node::Not(_)) || has_nested_not(inner),
        Node::And(ns) | Node::Or(ns) => ns.iter().any(has_nested_not),
        _ => false,
    }
}

/// Fragments of the selector language and near misses, for byte soup.
const FRAGMENTS: &[&str] = &[
    "a",
    "b",
    "in",
    "not",
    "has(",
    "all(",
    "global(",
    "(",
    ")",
    "==",
    "!=",
    "!",
    "&&",
    "||",
    "'x'",
    "\"y\"",
    "{",
    "}",
    ",",
    " ",
    "  ",
    "\t",
    "contains",
    "starts",
    "ends",
    "with",
    "'",
    "\"",
    "=",
    "&",
    "|",
    "\n",
    "é",
    "%",
    "'it\"s'",
    "\\",
    "notin",
    "startswith",
    ":",
    "-a",
];

fn soup() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec((0..FRAGMENTS.len()).prop_map(|i| FRAGMENTS[i]), 0..16)
            .prop_map(|v| v.concat()),
        "[a-z !=&|(){},'\"\\t\\n.%é-]{0,30}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// (a) rendered expressions parse and validate; (b) evaluation agrees with the
    /// reference interpreter, also after re-parsing the canonical string, and the label
    /// restrictions hold on every matching map; (c) the canonical string is a fixed point
    /// when the tree has no nested `Not`, and `from_node` accepts every parsed tree.
    #[test]
    fn rendered_expressions(e in expr(), seed in any::<u64>(), maps in prop::collection::vec(label_map(), 8)) {
        let text = render_top(&e, seed);
        let sel = Selector::parse(&text);
        prop_assert!(sel.is_ok(), "{text:?} failed: {:?}", sel.err());
        let sel = sel.unwrap();
        prop_assert_eq!(validate(&text), Ok(()));
        let again = Selector::parse(sel.canonical());
        prop_assert!(again.is_ok(), "canonical {:?} of {text:?} failed", sel.canonical());
        let again = again.unwrap();
        let restrictions = sel.restrictions();
        for m in maps.iter().chain([&Labels::new()]) {
            let want = eval(&e, m);
            prop_assert_eq!(sel.matches(m), want, "{:?} on {:?}", text, m);
            prop_assert_eq!(again.matches(m), want, "canonical {:?} on {:?}", sel.canonical(), m);
            // The label restrictions are sound: a matching map satisfies all of them.
            if want {
                prop_assert!(!restrictions.can_never_match());
                for (label, r) in &restrictions {
                    let v = m.get(label);
                    prop_assert!(!r.must_be_present || v.is_some(), "{label} present: {text:?}");
                    prop_assert!(!r.must_be_absent || v.is_none(), "{label} absent: {text:?}");
                    if let (Some(set), Some(v)) = (&r.must_have_one_of, v) {
                        prop_assert!(set.contains(v), "{label} one of: {text:?}");
                    }
                }
            }
        }
        if !has_nested_not(sel.root()) {
            prop_assert_eq!(again.canonical(), sel.canonical());
            prop_assert_eq!(again.root(), sel.root());
        }
        let rebuilt = Selector::from_node(sel.root().clone());
        prop_assert_eq!(rebuilt.as_ref(), Ok(&sel));
    }

    /// validate() agrees with parse() on arbitrary strings: same Ok/Err and the same
    /// error (kind and offset); accepted strings have a canonical string that re-parses.
    #[test]
    fn validate_agrees_with_parse(s in soup()) {
        let parsed = Selector::parse(&s);
        prop_assert_eq!(validate(&s), parsed.as_ref().map(|_| ()).map_err(|e| *e));
        if let Ok(sel) = parsed {
            let again = Selector::parse(sel.canonical());
            prop_assert!(again.is_ok(), "canonical {:?} of {s:?}", sel.canonical());
        } else if let Err(e) = parsed {
            prop_assert!(e.offset <= s.len());
        }
    }
}
