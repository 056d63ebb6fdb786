//! A deterministic Rust port of `benches/scripts/gen_selector_workload.py`.
//!
//! It draws from the same distributions (label shapes, selector atoms, nesting) with its own
//! PRNG, so the output is statistically alike but not byte-identical to the Python script's.
//! Every selector comes both as text and as the tree the parser must build from that text
//! (the canonical tree of the selector grammar), so benchmarks and tests need no parser to get
//! trees.

use std::collections::BTreeMap;

use calico_model::selector::{Node, Text};

/// SplitMix64: tiny, fast and good enough for workload generation.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A uniformly chosen element. Callers pass non-empty constant tables; indexing an empty
    /// slice would panic.
    pub(crate) fn choice<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `k` distinct elements in random order (partial Fisher–Yates).
    pub(crate) fn sample<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut pool: Vec<T> = items.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

/// The generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Selector text and the tree the parser builds from it.
    pub selectors: Vec<(String, Node)>,
    /// Label maps shaped like Kubernetes pod labels as Calico sees them.
    pub labels: Vec<BTreeMap<String, String>>,
}

struct Vocab {
    apps: Vec<String>,
    tiers: Vec<String>,
    envs: Vec<String>,
    teams: Vec<String>,
    namespaces: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Vocab {
    fn new() -> Self {
        let mut apps: Vec<String> = (0..60).map(|i| format!("svc{i}")).collect();
        apps.extend(strings(&[
            "frontend", "backend", "db", "cache", "api", "web", "worker", "redis", "postgres",
            "kafka",
        ]));
        let mut namespaces: Vec<String> = (0..40).map(|i| format!("ns{i}")).collect();
        namespaces.extend(strings(&["default", "kube-system", "monitoring"]));
        Vocab {
            apps,
            tiers: strings(&["frontend", "backend", "data", "edge", "batch"]),
            envs: strings(&["prod", "staging", "dev", "test"]),
            teams: "abcdefghij".chars().map(|c| format!("team-{c}")).collect(),
            namespaces,
        }
    }
}

fn pod_labels(rng: &mut Rng, v: &Vocab) -> BTreeMap<String, String> {
    let ns = rng.choice(&v.namespaces).clone();
    let app = rng.choice(&v.apps).clone();
    let mut l = BTreeMap::new();
    l.insert("app".to_owned(), app.clone());
    l.insert("projectcalico.org/namespace".to_owned(), ns);
    l.insert(
        "projectcalico.org/orchestrator".to_owned(),
        "k8s".to_owned(),
    );
    l.insert(
        "projectcalico.org/serviceaccount".to_owned(),
        format!("sa-{app}"),
    );
    l.insert(
        "pod-template-hash".to_owned(),
        format!("{:010x}", rng.next_u64() >> 24),
    );
    let mut maybe = |rng: &mut Rng, p: f64, key: &str, value: &dyn Fn(&mut Rng) -> String| {
        if rng.unit() < p {
            l.insert(key.to_owned(), value(rng));
        }
    };
    maybe(rng, 0.8, "tier", &|r| r.choice(&v.tiers).clone());
    maybe(rng, 0.9, "env", &|r| r.choice(&v.envs).clone());
    maybe(rng, 0.6, "team", &|r| r.choice(&v.teams).clone());
    maybe(rng, 0.7, "version", &|r| {
        format!("v{}.{}", r.int(1, 3), r.int(0, 9))
    });
    maybe(rng, 0.3, "app.kubernetes.io/component", &|r| {
        (*r.choice(&["server", "client", "migrator", "sidecar"])).to_owned()
    });
    maybe(rng, 0.2, "role", &|r| {
        (*r.choice(&["leader", "follower", "replica"])).to_owned()
    });
    maybe(rng, 0.15, "pci", &|_| "true".to_owned());
    maybe(rng, 0.5, "app.kubernetes.io/name", &|r| {
        format!("{app}-{}", r.choice(&["api", "ui", "store", "core"]))
    });
    l
}

fn quote(rng: &mut Rng, v: &str) -> String {
    if rng.unit() < 0.6 {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

fn cmp(label: &str, op: &str, value: &str, rng: &mut Rng) -> String {
    format!("{label} {op} {}", quote(rng, value))
}

fn set_text(rng: &mut Rng, label: &str, op: &str, members: &[String]) -> String {
    let quoted: Vec<String> = members.iter().map(|m| quote(rng, m)).collect();
    format!("{label} {op} {{{}}}", quoted.join(", "))
}

fn sorted_set(members: &[String]) -> Box<[Text]> {
    let mut m: Vec<Text> = members.iter().map(|s| s.as_str().into()).collect();
    m.sort();
    m.dedup();
    m.into_boxed_slice()
}

fn atom(rng: &mut Rng, v: &Vocab) -> (String, Node) {
    let k = rng.unit();
    let kv = |label: &str, value: &str| (Text::from(label), Text::from(value));
    if k < 0.30 {
        let a = rng.choice(&v.apps).clone();
        let (label, value) = kv("app", &a);
        (cmp("app", "==", &a, rng), Node::Eq { label, value })
    } else if k < 0.40 {
        let n = rng.int(1, 3);
        let m = rng.sample(&v.tiers, n);
        (
            set_text(rng, "tier", "in", &m),
            Node::In {
                label: "tier".into(),
                values: sorted_set(&m),
            },
        )
    } else if k < 0.48 {
        let e = rng.choice(&v.envs).clone();
        let (label, value) = kv("env", &e);
        (cmp("env", "!=", &e, rng), Node::Ne { label, value })
    } else if k < 0.55 {
        let ns = rng.choice(&v.namespaces).clone();
        let l = "projectcalico.org/namespace";
        let (label, value) = kv(l, &ns);
        (cmp(l, "==", &ns, rng), Node::Eq { label, value })
    } else if k < 0.60 {
        let key = *rng.choice(&["team", "role", "pci", "tier", "version"]);
        (format!("has({key})"), Node::Has { label: key.into() })
    } else if k < 0.64 {
        let key = *rng.choice(&["role", "pci", "team"]);
        (
            format!("!has({key})"),
            Node::Not(Box::new(Node::Has { label: key.into() })),
        )
    } else if k < 0.68 {
        let n = rng.int(1, 4);
        let m = rng.sample(&v.teams, n);
        (
            set_text(rng, "team", "not in", &m),
            Node::NotIn {
                label: "team".into(),
                values: sorted_set(&m),
            },
        )
    } else if k < 0.72 {
        let p = format!("v{}", rng.int(1, 3));
        let (label, value) = kv("version", &p);
        (
            cmp("version", "starts with", &p, rng),
            Node::StartsWith { label, value },
        )
    } else if k < 0.75 {
        let s = *rng.choice(&["api", "ui", "store", "core"]);
        let l = "app.kubernetes.io/name";
        let (label, value) = kv(l, s);
        (cmp(l, "ends with", s, rng), Node::EndsWith { label, value })
    } else if k < 0.78 {
        let s = *rng.choice(&["svc1", "db", "e", "ck"]);
        let (label, value) = kv("app", s);
        (
            cmp("app", "contains", s, rng),
            Node::Contains { label, value },
        )
    } else if k < 0.81 {
        ("all()".to_owned(), Node::All)
    } else if k < 0.84 {
        let r = *rng.choice(&["leader", "replica"]);
        let (label, value) = kv("role", r);
        (cmp("role", "==", r, rng), Node::Eq { label, value })
    } else {
        let n = rng.int(2, 6);
        let m = rng.sample(&v.apps, n);
        (
            set_text(rng, "app", "in", &m),
            Node::In {
                label: "app".into(),
                values: sorted_set(&m),
            },
        )
    }
}

fn expr(rng: &mut Rng, v: &Vocab, depth: usize) -> (String, Node) {
    let n = *rng.choice(&[1, 1, 2, 2, 3, 4]);
    let mut texts = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        if depth < 2 && rng.unit() < 0.15 {
            let (text, node) = expr(rng, v, depth + 1);
            if rng.unit() < 0.2 {
                texts.push(format!("!({text})"));
                nodes.push(Node::Not(Box::new(node)));
            } else {
                texts.push(format!("({text})"));
                nodes.push(node);
            }
        } else {
            let (text, node) = atom(rng, v);
            texts.push(text);
            nodes.push(node);
        }
    }
    let and = rng.unit() < 0.8;
    let text = texts.join(if and { " && " } else { " || " });
    let node = if nodes.len() == 1 {
        nodes.pop().unwrap_or(Node::All)
    } else if and {
        Node::And(nodes)
    } else {
        Node::Or(nodes)
    };
    (text, node)
}

/// Generates `selectors` selectors and `labels` label maps from `seed`.
pub fn generate(selectors: usize, labels: usize, seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    let v = Vocab::new();
    let selectors = (0..selectors).map(|_| expr(&mut rng, &v, 0)).collect();
    let labels = (0..labels).map(|_| pod_labels(&mut rng, &v)).collect();
    Workload { selectors, labels }
}
