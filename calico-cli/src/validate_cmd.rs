//! `calico validate PATH...`.

use std::path::PathBuf;
use std::process::ExitCode;

use calico_model::loader::load_paths;
use calico_model::validation::validate;
use clap::Args;

use crate::exit::CliError;

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or directories of manifests (.yaml, .yml, .json; directories recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Runs `validate`: problems on stdout, one per line; a summary on stderr.
///
/// Inputs that cannot be read or parsed make the command exit 2 after it has reported
/// the problems of everything it could read.
pub(crate) fn run(args: &ValidateArgs) -> Result<ExitCode, CliError> {
    // Unreadable inputs are reported with the other problems below.
    let mut set = load_paths(&args.paths).unwrap_or_else(|e| *e.partial);
    set.apply_defaults();
    let problems = validate(&set);
    for p in &problems {
        println!("{p}");
    }
    let objects = set.objects.len() + set.decode_failures.len();
    let files = set.files.len();
    if !set.errors.is_empty() {
        return Err(CliError::with_details(
            format!(
                "{} input(s) could not be read or parsed ({} problem(s) found in what could)",
                set.errors.len(),
                problems.len()
            ),
            set.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    let skipped = match set.skipped.len() {
        0 => String::new(),
        n => format!("; {n} object(s) of kinds calico does not model skipped"),
    };
    if problems.is_empty() {
        eprintln!("calico: {objects} object(s) in {files} file(s) valid{skipped}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "calico: {} problem(s) in {objects} object(s) from {files} file(s){skipped}",
            problems.len()
        );
        Ok(ExitCode::from(1))
    }
}
