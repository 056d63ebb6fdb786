//! Scale check: build a `SelectorIndex` with 100,000 objects and 10,000 selectors from the
//! generated workload, then time single-object and single-selector updates.
//!
//! `cargo run --release -p calico-benches --example scale [OBJECTS SELECTORS]`

use std::time::Instant;

use calico_benches::workload::generate;
use calico_model::index::SelectorIndex;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let objects = args.next().flatten().unwrap_or(100_000);
    let selectors = args.next().flatten().unwrap_or(10_000);
    let w = generate(selectors, objects, 42);

    let t = Instant::now();
    let mut ix: SelectorIndex<usize, usize> = SelectorIndex::new();
    for (i, l) in w.labels.iter().enumerate() {
        ix.upsert_object(i, l);
    }
    let t_objects = t.elapsed();
    let t = Instant::now();
    let mut events = 0usize;
    for (i, (_, n)) in w.selectors.iter().enumerate() {
        events += ix.upsert_selector(i, n).len();
    }
    let t_selectors = t.elapsed();
    println!(
        "{objects} objects in {:.1} ms; {selectors} selectors in {:.1} ms ({:.1} µs each); {} matches, {events} events",
        t_objects.as_secs_f64() * 1e3,
        t_selectors.as_secs_f64() * 1e3,
        t_selectors.as_secs_f64() * 1e6 / selectors as f64,
        ix.total_matches()
    );

    // Relabel objects: each takes the labels of another object.
    let rounds = 2000;
    let t = Instant::now();
    let mut events = 0usize;
    for r in 0..rounds {
        let donor = &w.labels[(r * 7919 + 1) % objects];
        events += ix.upsert_object(r % objects, donor).len();
    }
    println!(
        "object relabel: {:.1} µs each ({events} events)",
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );
    // Change one label (a version bump) on objects.
    let rounds = 2000;
    let t = Instant::now();
    let mut events = 0usize;
    for r in 0..rounds {
        let o = (r * 31) % objects;
        let mut labels = w.labels[o].clone();
        labels.insert("version".to_owned(), format!("v{}.{}", r % 3 + 1, r % 10));
        events += ix.upsert_object(o, &labels).len();
    }
    println!(
        "one-label change: {:.1} µs each ({events} events)",
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );
    // Replace selectors with other selectors' expressions.
    let rounds = 200;
    let t = Instant::now();
    let mut events = 0usize;
    for r in 0..rounds {
        let donor = &w.selectors[(r * 104_729 + 3) % selectors].1;
        events += ix.upsert_selector(r % selectors, donor).len();
    }
    println!(
        "selector change: {:.1} µs each ({events} events)",
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    );
    let t = Instant::now();
    let n: usize = (0..1000).map(|o| ix.matching_selectors(&o).count()).sum();
    println!(
        "matching_selectors: {:.1} µs per object ({n} results)",
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
}
