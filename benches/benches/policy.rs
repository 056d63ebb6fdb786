//! The policy compiler at scale: 10,000 pods, 100 namespaces, 2,000 policies.
//! Full model build + compile, and one policy updated through the incremental compiler.
//!
//! `cargo bench -p calico-benches --bench policy`

use std::hint::black_box;
use std::time::Duration;

use calico_benches::policy_scale::{PolicyScale, calico_policy_json, object, policy_cluster};
use calico_policy::Model;
use calico_policy::incremental::{Change, Compiler};
use criterion::{Criterion, criterion_group, criterion_main};

const SCALE: PolicyScale = PolicyScale {
    namespaces: 100,
    pods: 10_000,
    policies: 2_000,
};

fn benches(c: &mut Criterion) {
    let set = policy_cluster(SCALE);
    assert!(set.errors.is_empty(), "generated cluster loads");
    let mut g = c.benchmark_group("policy10k");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("model_build_and_compile", |b| {
        b.iter(|| {
            let m = Model::build(black_box(&set)).map(|m| m.compile().sets.len());
            black_box(m.is_ok())
        })
    });
    g.finish();

    let Ok(mut compiler) = Compiler::new(&set) else {
        panic!("generated cluster builds");
    };
    // Policy 3 is a Calico NetworkPolicy; its two variants differ in selector, order, ports
    // and nets, so every update moves it, recompiles its rules and changes its sets.
    let variants: Vec<_> = (1..=2)
        .filter_map(|v| object(&calico_policy_json(3, SCALE.namespaces, v)))
        .collect();
    assert_eq!(variants.len(), 2);
    let mut g = c.benchmark_group("policy10k_incremental");
    g.sample_size(50);
    let mut k = 0usize;
    g.bench_function("update_one_policy", |b| {
        b.iter(|| {
            k += 1;
            let change = Change::Upsert(Box::new(variants[k % 2].clone()));
            black_box(compiler.apply(change).map(|u| u.changes.is_empty()).ok())
        })
    });
    g.finish();
}

criterion_group!(policy, benches);
criterion_main!(policy);
