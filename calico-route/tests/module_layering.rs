//! The crate's modules stay layered as the crate documentation's "Modules" table says: every
//! `crate::<module>` path in a module's code (comments and doc comments excluded) names the
//! module itself or one the table lets it use, and the table has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The "uses" column of the table in `src/lib.rs`, highest layer first.
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

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`src/kernel.rs` → `kernel`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The names following `crate::` in the code of `text` (comment text ignored). A name that
/// is not a module (`crate::Cluster`, a root re-export) is reported too, so that a use
/// through the crate root cannot hide a dependency.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let preceded_by_ident = rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !preceded_by_ident {
                // `crate::{a, b}` names every module in the braces.
                if name.is_empty() && after.starts_with('{') {
                    let inner = after[1..].split('}').next().unwrap_or("");
                    for part in inner.split(',') {
                        let m: String = part
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !m.is_empty() {
                            out.insert(m);
                        }
                    }
                } else if !name.is_empty() {
                    out.insert(name);
                }
            }
            rest = after;
        }
    }
    out
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "found only {} source files", files.len());
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        seen_modules.insert(module.clone());
        let Some(uses) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module {module} is not in the table",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for used in crate_uses(&text) {
            if used != module && !uses.contains(&used.as_str()) {
                violations.push(format!("{}: {module} uses {used}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
    let table: BTreeSet<String> = allowed.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        seen_modules, table,
        "the table and the crate's modules differ"
    );
}

#[test]
fn the_table_is_acyclic() {
    // Every module's uses are listed after it (below it) in the table.
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for (module, uses) in ALLOWED.iter().rev() {
        for used in *uses {
            assert!(
                placed.contains(used),
                "{module} uses {used}, which is not below it"
            );
        }
        placed.insert(module);
    }
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
