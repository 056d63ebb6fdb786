//! Diagnostics: problems found while building the model, each naming file, document,
//! resource and field.

pub use calico_model::validation::{Diagnostic, Severity};

/// Why a model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Some inputs could not be read or parsed (the CLI exits 2).
    #[error("{} input(s) could not be read or parsed", .messages.len())]
    Load {
        /// One message per input.
        messages: Vec<String>,
    },
    /// The manifests hold errors (the CLI exits 1).
    #[error("{} problem(s) in the manifests", .errors.len())]
    Invalid {
        /// The errors.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way.
        warnings: Vec<Diagnostic>,
    },
}
