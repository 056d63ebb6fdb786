//! [`Diagnostic`]: a [`Problem`] with a severity. The loader's lenient mode reports what it
//! skipped or dropped with these, and model builders (calico-policy) report theirs the same
//! way, so one type carries every warning and error from file to analysis.

use std::fmt;

use super::Problem;
use crate::loader::Origin;
use crate::resources::Resource;

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

    /// A warning about `problem`.
    pub fn warning(problem: Problem) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            problem,
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The same diagnostic as a warning (what a lenient analysis makes of an error it
    /// tolerates).
    pub fn into_warning(self) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..self
        }
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
