//! Synthetic large clusters for the policy compiler benchmarks: namespaces,
//! pods with realistic labels, addresses and a named port, and a mix of Kubernetes
//! NetworkPolicies, Calico NetworkPolicies in two tiers and GlobalNetworkPolicies.
//! Deterministic for a given size.

use std::fmt::Write as _;

use calico_model::loader::{LoadedObject, LoadedSet, load_str};

/// The size of a generated cluster.
#[derive(Debug, Clone, Copy)]
pub struct PolicyScale {
    /// Namespaces.
    pub namespaces: usize,
    /// Pods (spread over the namespaces and 100 nodes).
    pub pods: usize,
    /// Policies (40% Kubernetes, 40% Calico namespaced, 20% global).
    pub policies: usize,
}

/// Small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TIERS: [&str; 4] = ["frontend", "backend", "data", "infra"];

/// The JSON of a Calico NetworkPolicy or GlobalNetworkPolicy number `i` (`variant` changes
/// its selector and rules, for update benchmarks).
pub fn calico_policy_json(i: usize, namespaces: usize, variant: usize) -> String {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 * 7919 + variant as u64 * 104_729 + 1));
    let app = r.below(200);
    let peer = r.below(200);
    let tier = TIERS[r.below(4)];
    let ports: Vec<String> = (0..1 + r.below(3))
        .map(|_| [80, 443, 5432, 6379, 8000, 9090][r.below(6)].to_string())
        .collect();
    let rules = format!(
        r#"[{{"action":"Allow","protocol":"TCP","source":{{"selector":"app == 'app{peer}' || tier == '{tier}'"}},"destination":{{"ports":[{}, "http"]}}}},
            {{"action":"Deny","source":{{"nets":["10.{}.0.0/16","192.168.{}.0/24"]}}}},
            {{"action":"Pass","source":{{"namespaceSelector":"team == 't{}'"}}}}]"#,
        ports.join(","),
        r.below(200),
        r.below(250),
        r.below(10)
    );
    if i % 3 == 2 {
        format!(
            r#"{{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy","metadata":{{"name":"security.g{i}"}},
               "spec":{{"tier":"security","order":{},"selector":"app == 'app{app}'","ingress":{rules},"egress":[{{"action":"Allow"}}]}}}}"#,
            r.below(1000)
        )
    } else {
        format!(
            r#"{{"apiVersion":"projectcalico.org/v3","kind":"NetworkPolicy","metadata":{{"name":"default.c{i}","namespace":"ns{}"}},
               "spec":{{"order":{},"selector":"app == 'app{app}' && tier == '{tier}'","ingress":{rules}}}}}"#,
            i % namespaces,
            r.below(1000)
        )
    }
}

fn knp_json(i: usize, namespaces: usize, r: &mut Rng) -> String {
    format!(
        r#"{{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{{"name":"k{i}","namespace":"ns{}"}},
           "spec":{{"podSelector":{{"matchLabels":{{"tier":"{}"}}}},
                    "ingress":[{{"from":[{{"podSelector":{{"matchLabels":{{"app":"app{}"}}}}}},{{"namespaceSelector":{{"matchLabels":{{"team":"t{}"}}}}}}],
                                 "ports":[{{"port":"http"}},{{"port":{}}}]}}]}}}}"#,
        i % namespaces,
        TIERS[r.below(4)],
        r.below(200),
        r.below(10),
        [80, 443, 5432][r.below(3)]
    )
}

/// The JSON of pod number `i`.
pub fn pod_json(i: usize, namespaces: usize, app: usize) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"pod{i}","namespace":"ns{}","labels":{{"app":"app{app}","tier":"{}","version":"v{}"}}}},
           "spec":{{"nodeName":"node-{}","containers":[{{"name":"c","image":"i","ports":[{{"name":"http","containerPort":8080}}]}}]}},
           "status":{{"podIP":"10.{}.{}.{}"}}}}"#,
        i % namespaces,
        TIERS[i % 4],
        i % 3,
        i % 100,
        100 + i / 65536,
        (i / 256) % 256,
        i % 256
    )
}

/// Generates the cluster as one JSON List document.
pub fn policy_cluster_json(s: PolicyScale) -> String {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut items: Vec<String> = Vec::with_capacity(s.namespaces + s.pods + s.policies + 1);
    items.push(r#"{"apiVersion":"projectcalico.org/v3","kind":"Tier","metadata":{"name":"security"},"spec":{"order":100}}"#.to_owned());
    for n in 0..s.namespaces {
        items.push(format!(
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"ns{n}","labels":{{"team":"t{}","env":"{}"}}}}}}"#,
            n % 10,
            if n % 2 == 0 { "prod" } else { "dev" }
        ));
    }
    for i in 0..s.pods {
        let app = r.below(200);
        items.push(pod_json(i, s.namespaces, app));
    }
    for i in 0..s.policies {
        if i % 5 < 2 {
            items.push(knp_json(i, s.namespaces, &mut r));
        } else {
            items.push(calico_policy_json(i, s.namespaces, 0));
        }
    }
    let mut out = String::from(r#"{"apiVersion":"v1","kind":"List","items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{item}");
    }
    out.push_str("]}");
    out
}

/// Generates and loads the cluster.
pub fn policy_cluster(s: PolicyScale) -> LoadedSet {
    load_str("cluster.json", &policy_cluster_json(s))
}

/// Loads one object from its JSON.
pub fn object(json: &str) -> Option<LoadedObject> {
    load_str("change.json", json).objects.into_iter().next()
}
