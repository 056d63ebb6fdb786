//! Validates manifest files or directories and prints one line per problem, like
//! `calico validate`: `cargo run -p calico-model --example validate_manifests -- PATH...`.

use std::process::ExitCode;

use calico_model::loader::load_paths;
use calico_model::validation::validate;

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let mut set = load_paths(&paths).unwrap_or_else(|e| {
        eprintln!("{e}");
        *e.partial
    });
    for e in &set.errors {
        eprintln!("{e}");
    }
    set.apply_defaults();
    let problems = validate(&set);
    for p in &problems {
        println!("{p}");
    }
    if !set.errors.is_empty() {
        ExitCode::from(2)
    } else if !problems.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
