//! End-to-end tests of the `selbench` binary: output format, agreement with brute force,
//! and exit status 2 with a located message on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calico_benches::per_selector_hash;
use calico_benches::workload::generate;
use calico_model::selector::Selector;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("selbench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write(dir: &Path, selectors: &str, labels: &str) {
    std::fs::write(dir.join("selectors.txt"), selectors).expect("write selectors");
    std::fs::write(dir.join("labels.jsonl"), labels).expect("write labels");
}

fn selbench(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selbench"))
        .arg(dir)
        .output()
        .expect("run selbench")
}

#[test]
fn reports_counts_and_hash_that_match_brute_force() {
    let w = generate(40, 60, 3);
    let dir = scratch("ok");
    let selectors: String = w.selectors.iter().map(|(t, _)| format!("{t}\n")).collect();
    let labels: String = w
        .labels
        .iter()
        .map(|l| format!("{}\n", serde_json::to_string(l).expect("json")))
        .collect();
    write(&dir, &selectors, &labels);
    let out = selbench(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let line = lines[0];
    assert!(
        line.starts_with(
            r#"{"impl":"calico-rs","selectors":40,"labels":60,"parse_ns_per_selector":"#
        ),
        "{line}"
    );

    // Brute force with the tree evaluator.
    let counts: Vec<usize> = w
        .selectors
        .iter()
        .map(|(t, _)| {
            let s = Selector::parse(t).expect("parse");
            w.labels.iter().filter(|l| s.matches(*l)).count()
        })
        .collect();
    let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
    assert_eq!(v["matches"], counts.iter().sum::<usize>());
    assert_eq!(
        v["per_selector_hash"],
        format!("{:x}", per_selector_hash(&counts))
    );
    for key in [
        "parse_ns_per_selector",
        "eval_ns_per_pair",
        "index_ns_per_pair",
    ] {
        assert!(v[key].as_f64().is_some_and(|f| f > 0.0), "{key}: {line}");
    }
    let keys: Vec<&str> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|k| {
            !k.starts_with("calico") && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect();
    assert_eq!(
        &keys[..8],
        &[
            "impl",
            "selectors",
            "labels",
            "parse_ns_per_selector",
            "eval_ns_per_pair",
            "index_ns_per_pair",
            "matches",
            "per_selector_hash"
        ]
    );
}

#[test]
fn missing_directory_is_exit_2() {
    let dir = scratch("missing").join("nope");
    let out = selbench(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("selectors.txt"), "{err}");
}

#[test]
fn bad_json_line_is_located() {
    let dir = scratch("badjson");
    write(&dir, "has(a)\n", "{\"a\": \"1\"}\n{\"a\": 1}\n");
    let out = selbench(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("labels.jsonl:2:"), "{err}");
}

#[test]
fn bad_selector_is_located() {
    let dir = scratch("badsel");
    write(&dir, "has(a)\na == 'x\n", "{\"a\": \"1\"}\n");
    let out = selbench(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("selectors.txt:2:"), "{err}");
    assert!(err.contains("unterminated string"), "{err}");
}

#[test]
fn workload_port_builds_the_trees_the_parser_builds() {
    let w = generate(300, 0, 11);
    for (text, node) in &w.selectors {
        let parsed = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.root(), node, "{text}");
    }
}
