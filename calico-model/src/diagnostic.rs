//! Where an object came from ([`Origin`]), what is wrong with it ([`Problem`]) and how
//! serious that is ([`Diagnostic`], [`Severity`]).
//!
//! These types are shared by the [`loader`](crate::loader) (decode failures, and in lenient
//! mode the documents and fields it skipped or dropped), by
//! [`validation`](crate::validation) (every rule it checks) and by the analyses built on this
//! crate, so one type carries every warning and error from file to analysis. They are also
//! re-exported where they were first defined: [`loader::Origin`](crate::loader::Origin) and
//! [`validation::{Problem, Diagnostic, Severity}`](crate::validation).
//!
//! A problem renders as one line,
//! `FILE:DOC_INDEX KIND/[NAMESPACE/]NAME: FIELD.PATH: message`: the file as loaded, the
//! 0-based document index, the kind (`?` when unknown), the namespace for namespaced kinds,
//! the name (empty when missing), and the field path (`-` for the document as a whole).

use std::fmt;

use crate::resources::Resource;

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// File path as given (or as found under a directory), or the name passed to
    /// [`load_str`](crate::loader::load_str).
    pub file: String,
    /// 0-based index of the YAML document in the file (0 for JSON).
    pub doc_index: usize,
    /// 0-based index in the `items` of a List document, if the object came from one.
    pub item_index: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.doc_index)
    }
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// File (as loaded).
    pub file: String,
    /// 0-based document index in the file.
    pub doc_index: usize,
    /// The manifest kind as the document spells it (a kind this crate does not model
    /// included); `None` when the document has no kind or it could not be read. Displays as
    /// `?` then.
    pub kind: Option<String>,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Object name (may be empty when missing).
    pub name: String,
    /// Field path (see [field paths](crate::validation#field-paths)), empty for the whole
    /// document.
    pub field_path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.as_deref().unwrap_or("?");
        write!(f, "{}:{} {kind}/", self.file, self.doc_index)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        let path = if self.field_path.is_empty() {
            "-"
        } else {
            &self.field_path
        };
        write!(f, "{}: {}: {}", self.name, path, self.message)
    }
}

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
                kind: Some(resource.kind().as_str().to_owned()),
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
