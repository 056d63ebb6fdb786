//! Reading manifests for the commands that analyse them.
//!
//! `calico policy check|connlist|diff|lint` and `calico route …` analyse what they can by
//! default (the way established policy analyzers do on real directories): a file that is
//! not a manifest is skipped, a field that does not decode is dropped, an object that fails
//! validation is still analysed as written, each with a warning on stderr naming file,
//! document, object and field, and the exit status is that of the analysis. `--strict`
//! makes any such problem fail the command instead. `calico validate`, `calico apply` and
//! the commands that program or render a node's dataplane are always strict.

use std::path::Path;

use calico_model::loader::{LoadMode, LoadedSet, load_paths_with};
use clap::Args;

use crate::exit::CliError;

/// The `--strict` option of the analysis commands.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct LoadArgs {
    /// Fail on the first problem in the manifests (files that are not manifests, fields
    /// that do not decode, objects that fail validation) instead of warning and analysing
    /// the rest.
    #[arg(long)]
    pub(crate) strict: bool,
}

impl LoadArgs {
    /// The loader mode these options ask for.
    pub(crate) fn mode(self) -> LoadMode {
        if self.strict {
            LoadMode::Strict
        } else {
            LoadMode::Lenient
        }
    }
}

/// Loads `path` in `mode` with defaults applied. `Err` (exit 2) when a path cannot be read
/// (or, strictly, parsed) or holds no manifest file. The loader's warnings are in
/// [`LoadedSet::warnings`] for the caller to print ([`print_warnings`]) or to hand on.
pub(crate) fn load(path: &Path, mode: LoadMode) -> Result<LoadedSet, CliError> {
    let mut set = load_paths_with(&[path], mode).map_err(|e| {
        CliError::with_details(
            format!("{}: cannot load the manifests", path.display()),
            e.errors.iter().map(ToString::to_string).collect(),
        )
    })?;
    if set.files.is_empty() {
        return Err(CliError::could_not_run(format!(
            "{}: no .yaml, .yml or .json file",
            path.display()
        )));
    }
    set.apply_defaults();
    Ok(set)
}

/// Loads the analysis input: the manifests under `path`, or, without a path, every
/// resource stored in the datastore (`--store`, `--config`, the calicoctl environment, or
/// the default `file:./calico.db`). Returns the set and a name for messages.
pub(crate) fn load_input(
    path: Option<&Path>,
    mode: LoadMode,
) -> Result<(LoadedSet, String), CliError> {
    match path {
        Some(p) => Ok((load(p, mode)?, p.display().to_string())),
        None => {
            let (store, _) = crate::datastore::resolve_remembered()?;
            Ok((load_store(&store, mode)?, store))
        }
    }
}

/// Every resource of a modelled kind stored in the datastore `store`, as a loaded set
/// whose origins are the keys. A value that does not decode is a warning and skipped
/// (as Calico's tools skip it), or fails the command in `Strict` mode.
pub(crate) fn load_store(store: &str, mode: LoadMode) -> Result<LoadedSet, CliError> {
    use calico_ipam::resources::Resources;
    use calico_ipam::resources::layout::TYPES;
    use calico_model::diagnostic::{Diagnostic, Origin, Problem, Severity};
    use calico_model::loader::LoadedObject;
    let s = crate::store_cmd::open(store)?;
    let resources = Resources::new(&*s);
    let mut set = LoadedSet::new();
    for ty in TYPES.iter().filter(|t| t.model.is_some()) {
        let listing = resources
            .list(ty, None)
            .map_err(|e| CliError::could_not_run(format!("reading {store}: {e}")))?;
        if mode == LoadMode::Strict && !listing.bad.is_empty() {
            return Err(CliError::with_details(
                format!("{store}: stored values that do not decode"),
                listing.bad.iter().map(ToString::to_string).collect(),
            ));
        }
        for bad in listing.bad {
            set.warnings.push(Diagnostic {
                severity: Severity::Warning,
                problem: Problem {
                    file: bad.key.clone(),
                    doc_index: 0,
                    kind: Some(ty.kind.to_owned()),
                    namespace: None,
                    name: String::new(),
                    field_path: String::new(),
                    message: format!("{}; the value is skipped", bad.reason),
                },
            });
        }
        for o in listing.items {
            if let Some(resource) = o.object {
                set.objects.push(LoadedObject {
                    origin: Origin {
                        file: o.key,
                        doc_index: 0,
                        item_index: None,
                    },
                    resource,
                });
            }
        }
    }
    set.files.push(store.to_owned());
    set.apply_defaults();
    Ok(set)
}

/// Prints the loader's warnings on stderr.
pub(crate) fn print_warnings(set: &LoadedSet) {
    for w in &set.warnings {
        eprintln!("{w}");
    }
}
