//! Criterion benchmarks for the selector engine.
//!
//! The workload is generated in-process (a port of gen_selector_workload.py), smaller than the
//! default `selbench` run so that `cargo bench` stays short.

use std::hint::black_box;
use std::time::Duration;

use calico_benches::workload::generate;
use calico_model::index::SelectorIndex;
use calico_model::labels::{Interner, LabelSet};
use calico_model::selector::compiled::CompiledSelector;
use criterion::{Criterion, criterion_group, criterion_main};

const SELECTORS: usize = 500;
const LABELS: usize = 2000;

fn benches(c: &mut Criterion) {
    let w = generate(SELECTORS, LABELS, 7);
    let mut interner = Interner::new();
    let compiled: Vec<CompiledSelector> = w
        .selectors
        .iter()
        .map(|(_, n)| CompiledSelector::compile(n, &mut interner))
        .collect();
    let sets: Vec<LabelSet> = w
        .labels
        .iter()
        .map(|l| LabelSet::from_pairs(l, &mut interner))
        .collect();

    let mut g = c.benchmark_group("selector");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));

    g.bench_function("compiled_eval_all_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &compiled {
                for l in &sets {
                    n += usize::from(s.matches(l, &interner));
                }
            }
            black_box(n)
        })
    });

    g.bench_function("index_build", |b| {
        b.iter(|| {
            let mut ix: SelectorIndex<usize, usize> = SelectorIndex::new();
            for (i, l) in w.labels.iter().enumerate() {
                ix.upsert_object(i, l);
            }
            for (i, (_, n)) in w.selectors.iter().enumerate() {
                ix.upsert_selector(i, n);
            }
            black_box(ix.total_matches())
        })
    });

    let mut ix: SelectorIndex<usize, usize> = SelectorIndex::new();
    for (i, l) in w.labels.iter().enumerate() {
        ix.upsert_object(i, l);
    }
    for (i, (_, n)) in w.selectors.iter().enumerate() {
        ix.upsert_selector(i, n);
    }
    let mut flip = false;
    g.bench_function("index_update_one_object", |b| {
        b.iter(|| {
            flip = !flip;
            let l = &w.labels[if flip { 1 } else { 2 }];
            black_box(ix.upsert_object(0, l).len())
        })
    });
    let mut flip = false;
    g.bench_function("index_update_one_selector", |b| {
        b.iter(|| {
            flip = !flip;
            let n = &w.selectors[if flip { 1 } else { 2 }].1;
            black_box(ix.upsert_selector(0, n).len())
        })
    });
    g.finish();
}

criterion_group!(selector, benches);
criterion_main!(selector);
