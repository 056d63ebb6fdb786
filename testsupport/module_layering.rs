//! Shared by the crates' module-layering tests (included with `#[path]`): finds the
//! `crate::<module>` paths in a crate's code and checks them against a table of what each
//! top-level module may use.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The names following `crate::` in the code of `text` (comment text ignored). A name that
/// is not a module (`crate::Cluster`, a root re-export) is reported too, so that a use
/// through the crate root cannot hide a dependency.
pub fn crate_uses(text: &str) -> BTreeSet<String> {
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

/// Checks every source file under `src` against `allowed` (module → modules it may use):
/// each module must be in the table, use only what its row lists, and the table must name
/// exactly the crate's modules. Panics with every violation.
pub fn check_modules(src: &Path, allowed: &[(&str, &[&str])], min_files: usize) {
    let allowed: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(
        files.len() >= min_files,
        "found only {} source files",
        files.len()
    );
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        seen.insert(module.clone());
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
    assert_eq!(seen, table, "the table and the crate's modules differ");
}

/// Panics unless every module's uses are listed below it (`allowed` is highest first).
pub fn check_acyclic(allowed: &[(&str, &[&str])]) {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    for (module, uses) in allowed.iter().rev() {
        for used in *uses {
            assert!(
                placed.contains(used),
                "{module} uses {used}, which is not below it"
            );
        }
        placed.insert(module);
    }
}
