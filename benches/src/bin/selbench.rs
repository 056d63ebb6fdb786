//! `selbench DIR`: times selector parsing, compiled evaluation and index building on the
//! workload in DIR (`selectors.txt`, `labels.jsonl`, as written by
//! `benches/scripts/gen_selector_workload.py`), checks that the evaluators and the index agree, and prints
//! one JSON line:
//!
//! `{"impl":"calico-rs","selectors":N,"labels":M,"parse_ns_per_selector":F,
//!   "eval_ns_per_pair":F,"index_ns_per_pair":F,"matches":TOTAL,"per_selector_hash":"HEX"}`
//!
//! Each phase is repeated for at least [`MIN_ROUNDS`] rounds and [`MIN_PHASE`] of wall time,
//! and the median round is reported (the machine may be shared). Preparation (interning
//! label sets, compiling selectors) is timed separately and reported on stderr.
//!
//! Exit status: 0 on success, 1 if the implementations disagree, 2 on bad input.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use calico_benches::input::read_dir;
use calico_benches::per_selector_hash;
use calico_model::index::SelectorIndex;
use calico_model::labels::{Interner, LabelSet};
use calico_model::selector::Selector;
use calico_model::selector::compiled::CompiledSelector;

/// Minimum rounds per timed phase.
const MIN_ROUNDS: usize = 5;
/// Minimum total time per timed phase.
const MIN_PHASE: Duration = Duration::from_millis(500);
/// Selectors cross-checked against the tree evaluator (each against every label set).
const TREE_SAMPLE: usize = 200;

/// Runs `round` until both minimums are met; returns the median round time and the last
/// round's result.
fn timed<T>(mut round: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let out = black_box(round());
        times.push(t.elapsed());
        if times.len() >= MIN_ROUNDS && started.elapsed() >= MIN_PHASE {
            times.sort_unstable();
            return (times[times.len() / 2], out);
        }
    }
}

fn per(d: Duration, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        d.as_secs_f64() * 1e9 / n as f64
    }
}

fn run(dir: PathBuf) -> Result<String, (u8, String)> {
    let raw = read_dir(&dir).map_err(|e| (2, e.to_string()))?;
    let mut selectors = Vec::with_capacity(raw.selectors.len());
    for (i, text) in raw.selectors.iter().enumerate() {
        let sel = Selector::parse(text).map_err(|e| {
            let path = raw.selectors_path.display();
            (2, format!("{path}:{}: invalid selector: {e}", i + 1))
        })?;
        selectors.push(sel);
    }
    let (n_sel, n_lab) = (selectors.len(), raw.labels.len());

    // Parsing.
    let (parse_round, _) = timed(|| {
        let mut nodes = 0usize;
        for text in &raw.selectors {
            if let Ok(s) = Selector::parse(black_box(text)) {
                nodes += usize::from(matches!(s.root(), calico_model::selector::Node::And(_)));
            }
        }
        nodes
    });

    // Preparation: intern label sets, compile selectors.
    let prep = Instant::now();
    let mut interner = Interner::new();
    let sets: Vec<LabelSet> = raw
        .labels
        .iter()
        .map(|l| LabelSet::from_pairs(l, &mut interner))
        .collect();
    let compiled: Vec<CompiledSelector> = selectors
        .iter()
        .map(|s| CompiledSelector::compile(s.root(), &mut interner))
        .collect();
    let prep = prep.elapsed();

    // Compiled evaluation of every pair.
    let (eval_round, eval_counts) = timed(|| {
        compiled
            .iter()
            .map(|c| sets.iter().filter(|l| c.matches(l, &interner)).count())
            .collect::<Vec<usize>>()
    });

    // The full match table with the index, from strings.
    let (index_round, index_counts) = timed(|| {
        let mut index: SelectorIndex<usize, usize> = SelectorIndex::new();
        for (i, l) in raw.labels.iter().enumerate() {
            index.upsert_object(i, l);
        }
        for (i, s) in selectors.iter().enumerate() {
            index.upsert_selector(i, s.root());
        }
        let counts = (0..n_sel)
            .map(|i| index.match_count(&i).unwrap_or(usize::MAX))
            .collect::<Vec<usize>>();
        // Returned so that dropping the index is not timed.
        (index, counts)
    });
    let (_, index_counts) = index_counts;

    // Agreement checks.
    if eval_counts != index_counts {
        let first = eval_counts
            .iter()
            .zip(&index_counts)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err((
            1,
            format!(
                "compiled evaluator and index disagree: selector {} (line {}) matches {} label sets by evaluation but {} in the index",
                first,
                first + 1,
                eval_counts.get(first).copied().unwrap_or(0),
                index_counts.get(first).copied().unwrap_or(0),
            ),
        ));
    }
    let step = n_sel.div_ceil(TREE_SAMPLE).max(1);
    for s in (0..n_sel).step_by(step) {
        for (l, labels) in raw.labels.iter().enumerate() {
            let tree = selectors[s].matches(labels);
            let fast = compiled[s].matches(&sets[l], &interner);
            if tree != fast {
                return Err((
                    1,
                    format!(
                        "tree and compiled evaluators disagree on selector line {} and label line {}: tree {tree}, compiled {fast}",
                        s + 1,
                        l + 1
                    ),
                ));
            }
        }
    }

    let total: usize = eval_counts.iter().sum();
    eprintln!(
        "selbench: prepare (intern {n_lab} label sets, compile {n_sel} selectors): {:.2} ms; rounds of {:.2} / {:.2} / {:.2} ms",
        prep.as_secs_f64() * 1e3,
        parse_round.as_secs_f64() * 1e3,
        eval_round.as_secs_f64() * 1e3,
        index_round.as_secs_f64() * 1e3,
    );
    // Keys in the documented order (serde_json's map would sort them).
    let line = format!(
        concat!(
            r#"{{"impl":"calico-rs","selectors":{},"labels":{},"parse_ns_per_selector":{:.3},"#,
            r#""eval_ns_per_pair":{:.3},"index_ns_per_pair":{:.3},"matches":{},"per_selector_hash":"{:x}"}}"#
        ),
        n_sel,
        n_lab,
        per(parse_round, n_sel),
        per(eval_round, n_sel * n_lab),
        per(index_round, n_sel * n_lab),
        total,
        per_selector_hash(&eval_counts),
    );
    Ok(line)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: selbench DIR   (DIR holds selectors.txt and labels.jsonl)");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            eprintln!("selbench: {msg}");
            ExitCode::from(code)
        }
    }
}
