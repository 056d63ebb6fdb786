//! The crate's modules stay layered as the crate documentation's "Modules" table says: every
//! `crate::<module>` path in a module's code (comments and doc comments excluded) names the
//! module itself or one the table lets it use.

use std::path::Path;

/// The "uses" column of the table in `src/lib.rs`.
#[path = "../../testsupport/module_layering.rs"]
mod layering;

use layering::crate_uses;

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
            "parallel",
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
    ("parallel", &[]),
];

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    layering::check_modules(&src, ALLOWED, 20);
}

#[test]
fn the_table_is_acyclic() {
    layering::check_acyclic(ALLOWED);
}

#[test]
fn the_scanner_finds_code_uses_and_skips_comments() {
    let text = "use crate::loader::Origin;\n/// [`crate::validation`]\nlet x = crate::yaml::emit::f(); // crate::index\nsupercrate::nope";
    let got: Vec<String> = crate_uses(text).into_iter().collect();
    assert_eq!(got, ["loader", "yaml"]);
}
