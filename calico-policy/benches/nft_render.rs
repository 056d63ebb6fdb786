//! Building and rendering a large node ruleset, and the delta of a
//! one-policy change.
//!
//! Cluster: 100 namespaces, each with one pod on `node1` and 20 NetworkPolicies selecting
//! it, each policy with 6 ingress rules (a selector source with a 3-port list in both
//! families, a single port, a CIDR deny, a UDP port, a Log); 250 distinct source
//! selectors (pods on other nodes). On `node1`: 2,000 policy chains, ~12,000 policy rules,
//! ~500 selector sets.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use calico_model::loader::load_str;
use calico_policy::Model;
use calico_policy::nft::{RenderOptions, RulesetDelta, build_ruleset};
use criterion::{Criterion, criterion_group, criterion_main};

fn cluster(changed: bool) -> String {
    let mut y = String::new();
    for n in 0..100 {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: ns{n}, labels: {{app: web}}}}\nspec: {{nodeName: node1, containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: 10.1.{}.{}}}\n",
            n / 250,
            n % 250 + 1
        );
        for p in 0..20 {
            let k = (n * 20 + p) % 250;
            let port = if changed && n == 0 && p == 0 {
                8443
            } else {
                8080
            };
            let _ = write!(
                y,
                "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p{p}, namespace: ns{n}}}\nspec:\n  selector: all()\n  order: {p}\n  types: [Ingress]\n  ingress:\n  - {{action: Allow, protocol: TCP, source: {{selector: \"src == 's{k}'\", namespaceSelector: all()}}, destination: {{ports: [80, 443, {port}]}}}}\n  - {{action: Allow, protocol: TCP, destination: {{ports: [{}]}}}}\n  - {{action: Deny, source: {{nets: [10.{}.{}.0/24]}}}}\n  - {{action: Allow, protocol: UDP, destination: {{ports: [53]}}}}\n  - {{action: Allow, protocol: TCP, source: {{nets: [192.168.{}.0/24]}}}}\n  - {{action: Log}}\n",
                1000 + p,
                100 + n,
                p,
                p
            );
        }
    }
    for k in 0..250 {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: src{k}, namespace: srcs, labels: {{src: s{k}}}}}\nspec: {{nodeName: node2, containers: [{{name: c, image: i}}]}}\nstatus: {{podIPs: [{{ip: 10.2.{}.{}}}, {{ip: \"fd00::{:x}\"}}]}}\n",
            k / 250,
            k % 250 + 1,
            k + 1
        );
    }
    y
}

fn bench(c: &mut Criterion) {
    let model = Model::build_lenient(&load_str("big.yaml", &cluster(false)));
    let program = model.compile();
    let opts = RenderOptions::default();
    let rs = build_ruleset(&model, &program, "node1", &opts);
    let rules: usize = rs.chains.values().map(|c| c.rules.len()).sum();
    let pol = rs.chains.keys().filter(|k| k.starts_with("pol-")).count();
    eprintln!(
        "ruleset: {} chains ({pol} policy chains), {rules} rules, {} sets, {} bytes of nft text",
        rs.chains.len(),
        rs.sets.len(),
        rs.to_nft().len()
    );
    // NFT_RENDER_DUMP=DIR writes full.nft and delta.nft (to time `nft -f` by hand).
    let dump = std::env::var("NFT_RENDER_DUMP").ok();
    let model2 = Model::build_lenient(&load_str("big.yaml", &cluster(true)));
    let program2 = model2.compile();
    let rs2 = build_ruleset(&model2, &program2, "node1", &opts);
    let d = RulesetDelta::between(&rs, &rs2);
    eprintln!(
        "one-policy delta: {} chains refilled, {} sets created, {} deleted, {} ops",
        d.fill_chains.len(),
        d.create_sets.len(),
        d.delete_sets.len(),
        d.ops().len()
    );

    if let Some(dir) = &dump {
        std::fs::write(format!("{dir}/full.nft"), rs.to_nft()).unwrap();
        std::fs::write(format!("{dir}/delta.nft"), d.to_nft()).unwrap();
    }
    let mut g = c.benchmark_group("nft");
    g.sample_size(20);
    g.bench_function("compile", |b| b.iter(|| black_box(model.compile())));
    g.bench_function("build_ruleset", |b| {
        b.iter(|| black_box(build_ruleset(&model, &program, "node1", &opts)))
    });
    g.bench_function("render_text", |b| b.iter(|| black_box(rs.to_nft())));
    g.bench_function("delta_one_policy", |b| {
        b.iter(|| black_box(RulesetDelta::between(&rs, &rs2)))
    });
    g.bench_function("delta_one_policy_text", |b| {
        b.iter(|| black_box(RulesetDelta::between(&rs, &rs2).to_nft()))
    });
    g.bench_function("delta_identical", |b| {
        b.iter(|| black_box(RulesetDelta::between(&rs, &rs)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
