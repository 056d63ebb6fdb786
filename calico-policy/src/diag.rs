//! Diagnostics: problems found while building the model, each naming file, document,
//! resource and field.

use std::fmt;

use calico_model::loader::Origin;
use calico_model::resources::Resource;
use calico_model::validation::Problem;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The input cannot be used as it is (strict builds fail).
    Error,
    /// The input is used, but something in it is ignored or suspicious.
    Warning,
}

/// One problem or warning, located by file, document, resource and field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where and what (rendered like `calico validate` problems).
    pub problem: Problem,
}

impl Diagnostic {
    /// A diagnostic about `resource` (from `origin`) at `field`.
    pub fn about(
        severity: Severity,
        origin: &Origin,
        resource: &Resource,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            problem: Problem {
                file: origin.file.clone(),
                doc_index: origin.doc_index,
                kind: resource.kind().as_str().to_owned(),
                namespace: resource.namespace().map(str::to_owned),
                name: resource.name().to_owned(),
                field_path: field.into(),
                message: message.into(),
            },
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Errors print as the problem line; warnings are prefixed with `warning: `.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}", self.problem),
            Severity::Warning => write!(f, "warning: {}", self.problem),
        }
    }
}

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
