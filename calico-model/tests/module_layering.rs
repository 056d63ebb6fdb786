//! The crate's modules stay layered as the crate documentation's "Modules" table says: every
//! `crate::<module>` path in a module's code (comments and doc comments excluded) names the
//! module itself or one the table lets it use.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The "uses" column of the table in `src/lib.rs`.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "validation",
        &[
            "loader",
            "diagnostic",
            "resources",
            "format",
            "selector",
            "derived",
        ],
    ),
    ("loader", &["diagnostic", "resources", "yaml"]),
    ("diagnostic", &["resources"]),
    ("derived", &["resources"]),
    ("resources", &["format", "yaml"]),
    ("index", &["selector", "labels"]),
    ("selector", &["labels"]),
    ("labels", &[]),
    ("format", &[]),
    ("yaml", &[]),
    ("gotime", &[]),
    ("family", &[]),
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

/// The top-level module a source file belongs to (`src/loader/decode.rs` → `loader`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The modules named by `crate::<name>` in the code of `text` (comment text ignored).
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
            if !name.is_empty() && !preceded_by_ident {
                out.insert(name);
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
    assert!(files.len() > 20, "found only {} source files", files.len());
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
    // Every module's uses are listed before it when the table is read bottom-up.
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
fn the_scanner_finds_code_uses_and_skips_comments() {
    let text = "use crate::loader::Origin;\n/// [`crate::validation`]\nlet x = crate::yaml::emit::f(); // crate::index\nsupercrate::nope";
    let got: Vec<String> = crate_uses(text).into_iter().collect();
    assert_eq!(got, ["loader", "yaml"]);
}
