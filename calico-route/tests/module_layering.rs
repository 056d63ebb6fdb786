//! The crate's modules stay layered as the crate documentation's "Modules" table says: every
//! `crate::<module>` path in a module's code (comments and doc comments excluded) names the
//! module itself or one the table lets it use, and the table has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The "uses" column of the table in `src/lib.rs`, highest layer first.
#[path = "../../testsupport/module_layering.rs"]
mod layering;

use layering::crate_uses;

const ALLOWED: &[(&str, &[&str])] = &[
    (
        "check",
        &[
            "advertise",
            "graph",
            "input",
            "kernel",
            "ownership",
            "propagation",
            "sessions",
        ],
    ),
    ("plans", &["input", "kernel", "sessions"]),
    (
        "kernel",
        &[
            "graph",
            "input",
            "ownership",
            "propagation",
            "sessions",
            "state",
        ],
    ),
    ("scale", &["bird", "input", "sessions"]),
    (
        "bird",
        &["advertise", "filters", "input", "ownership", "sessions"],
    ),
    (
        "propagation",
        &["advertise", "filters", "graph", "input", "sessions"],
    ),
    ("advertise", &["filters", "input"]),
    ("graph", &["input", "sessions"]),
    ("filters", &["input"]),
    ("ownership", &["input"]),
    ("sessions", &["input"]),
    ("input", &["state"]),
    ("state", &[]),
];

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    layering::check_modules(&src, ALLOWED, 10);
}

#[test]
fn the_table_is_acyclic() {
    layering::check_acyclic(ALLOWED);
}

#[test]
fn the_table_matches_the_crate_docs() {
    // Each row of the table in lib.rs lists the same uses as ALLOWED.
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut documented = BTreeSet::new();
    for row in lib.lines().filter_map(|l| l.strip_prefix("//! | ")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let [layer, modules, uses] = cells.as_slice() else {
            continue;
        };
        if layer.parse::<u32>().is_err() {
            continue;
        }
        let uses: BTreeSet<String> = uses
            .trim_end_matches(" |")
            .split(", ")
            .map(|u| u.trim_matches('`').to_owned())
            .filter(|u| !u.starts_with("nothing"))
            .collect();
        for m in modules.split(", ") {
            let m = m.trim_start_matches("[`").trim_end_matches("`]");
            let want: BTreeSet<String> = allowed
                .get(m)
                .unwrap_or_else(|| panic!("lib.rs lists {m}, the test's table does not"))
                .iter()
                .map(|u| (*u).to_owned())
                .collect();
            assert_eq!(uses, want, "uses of {m} in lib.rs");
            documented.insert(m.to_owned());
        }
    }
    let table: BTreeSet<String> = allowed.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(documented, table, "lib.rs documents other modules");
}

#[test]
fn the_scanner_finds_code_uses_and_skips_comments() {
    let text = "use crate::input::Family;\n/// [`crate::bird`]\nlet x = crate::graph::f(); // crate::kernel\nsupercrate::nope\nuse crate::{sessions::P, filters};\nlet c = crate::Cluster::new();";
    let got: Vec<String> = crate_uses(text).into_iter().collect();
    assert_eq!(got, ["Cluster", "filters", "graph", "input", "sessions"]);
}
