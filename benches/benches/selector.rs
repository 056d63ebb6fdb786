//! Criterion benchmarks for the selector engine: parsing, tree evaluation, compiled
//! evaluation, building the index, and incremental index updates.
//!
//! The workload is generated in-process (a port of `benches/scripts/gen_selector_workload.py`), smaller than the
//! default `selbench` run so that `cargo bench` stays short. Set `SELBENCH_DIR` to a directory
//! written by `benches/scripts/gen_selector_workload.py` to use that workload instead.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use calico_benches::input::read_dir;
use calico_benches::workload::generate;
use calico_model::index::SelectorIndex;
use calico_model::labels::{Interner, LabelSet};
use calico_model::selector::Selector;
use calico_model::selector::compiled::CompiledSelector;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SELECTORS: usize = 500;
const LABELS: usize = 2000;

type Workload = (Vec<String>, Vec<BTreeMap<String, String>>);

fn workload() -> Workload {
    if let Some(dir) = std::env::var_os("SELBENCH_DIR") {
        match read_dir(dir.as_ref()) {
            Ok(raw) => return (raw.selectors, raw.labels),
            Err(e) => eprintln!("SELBENCH_DIR: {e}; using the generated workload"),
        }
    }
    let w = generate(SELECTORS, LABELS, 7);
    (w.selectors.into_iter().map(|(t, _)| t).collect(), w.labels)
}

fn benches(c: &mut Criterion) {
    let (texts, labels) = workload();
    let selectors: Vec<Selector> = texts
        .iter()
        .filter_map(|t| Selector::parse(t).ok())
        .collect();
    let mut interner = Interner::new();
    let sets: Vec<LabelSet> = labels
        .iter()
        .map(|l| LabelSet::from_pairs(l, &mut interner))
        .collect();
    let compiled: Vec<CompiledSelector> = selectors
        .iter()
        .map(|s| CompiledSelector::compile(s.root(), &mut interner))
        .collect();
    let pairs = (selectors.len() * sets.len()) as u64;

    let mut g = c.benchmark_group("selector");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));

    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            texts
                .iter()
                .filter(|t| Selector::parse(black_box(t)).is_ok())
                .count()
        })
    });

    // Tree evaluation is slow; a tenth of the label sets keeps the run short.
    let tree_labels = &labels[..labels.len() / 10];
    g.throughput(Throughput::Elements(
        (selectors.len() * tree_labels.len()) as u64,
    ));
    g.bench_function("tree_eval_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &selectors {
                for l in tree_labels {
                    n += usize::from(s.matches(l));
                }
            }
            n
        })
    });

    g.throughput(Throughput::Elements(pairs));
    g.bench_function("compiled_eval_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &compiled {
                for l in &sets {
                    n += usize::from(s.matches(l, &interner));
                }
            }
            n
        })
    });

    let build = || {
        let mut ix: SelectorIndex<usize, usize> = SelectorIndex::new();
        for (i, l) in labels.iter().enumerate() {
            ix.upsert_object(i, l);
        }
        for (i, s) in selectors.iter().enumerate() {
            ix.upsert_selector(i, s.root());
        }
        ix
    };
    g.throughput(Throughput::Elements(pairs));
    g.bench_function("index_build_pairs", |b| b.iter(build));

    let mut ix = build();
    g.throughput(Throughput::Elements(1));
    let mut flip = false;
    g.bench_function("index_update_one_object", |b| {
        b.iter(|| {
            flip = !flip;
            let l = &labels[usize::from(flip) + 1];
            ix.upsert_object(0, l).len()
        })
    });
    let mut flip = false;
    g.bench_function("index_update_one_selector", |b| {
        b.iter(|| {
            flip = !flip;
            let s = &selectors[usize::from(flip) + 1];
            ix.upsert_selector(0, s.root()).len()
        })
    });
    g.finish();
}

criterion_group!(selector, benches);
criterion_main!(selector);
