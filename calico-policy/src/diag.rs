//! Diagnostics: problems found while building the model, each naming file, document,
//! resource and field.

use std::fmt;

use calico_model::loader::LoadError;
pub use calico_model::validation::{Diagnostic, Severity};

/// How many problems an error's message spells out before "and N more".
pub const SHOWN_PROBLEMS: usize = 3;

/// Writes `count` and `what`, then the first [`SHOWN_PROBLEMS`] of `items` after a colon,
/// separated by `; `, then `; and N more` when some were left out.
pub(crate) fn write_first<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    items: &[T],
) -> fmt::Result {
    write!(f, "{} {what}", items.len())?;
    for (i, item) in items.iter().take(SHOWN_PROBLEMS).enumerate() {
        f.write_str(if i == 0 { ": " } else { "; " })?;
        write!(f, "{item}")?;
    }
    if items.len() > SHOWN_PROBLEMS {
        write!(f, "; and {} more", items.len() - SHOWN_PROBLEMS)?;
    }
    Ok(())
}

/// Why a model could not be built.
///
/// The message names the first few problems (file, document, resource and field for a
/// manifest problem) and how many more there are; the fields hold all of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Some inputs could not be read or parsed.
    #[error("{}", Shown("input(s) could not be read or parsed", .errors))]
    Load {
        /// One error per input, naming the file (and document).
        errors: Vec<LoadError>,
    },
    /// The manifests hold errors.
    #[error("{}", Shown("problem(s) in the manifests", .errors))]
    Invalid {
        /// The errors.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way.
        warnings: Vec<Diagnostic>,
    },
}

/// Displays a count, the first items and how many more.
pub(crate) struct Shown<'a, T>(pub(crate) &'a str, pub(crate) &'a [T]);

impl<T: fmt::Display> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_first(f, self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(n: usize) -> BuildError {
        let problem = |i: usize| Diagnostic {
            severity: Severity::Error,
            problem: calico_model::validation::Problem {
                file: format!("f{i}.yaml"),
                doc_index: i,
                kind: Some("NetworkPolicy".to_owned()),
                namespace: Some("ns".to_owned()),
                name: format!("p{i}"),
                field_path: "spec.order".to_owned(),
                message: "bad".to_owned(),
            },
        };
        BuildError::Invalid {
            errors: (0..n).map(problem).collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn build_error_names_the_first_problems_then_counts_the_rest() {
        for n in 1..=6 {
            let text = invalid(n).to_string();
            assert!(text.starts_with(&format!("{n} problem(s) in the manifests: ")));
            for i in 0..n {
                let shown = text.contains(&format!(
                    "f{i}.yaml:{i} NetworkPolicy/ns/p{i}: spec.order: bad"
                ));
                assert_eq!(shown, i < SHOWN_PROBLEMS, "{text}");
            }
            assert_eq!(
                text.ends_with(&format!("and {} more", n.saturating_sub(SHOWN_PROBLEMS))),
                n > SHOWN_PROBLEMS,
                "{text}"
            );
        }
    }

    #[test]
    fn load_error_lists_messages() {
        let e = BuildError::Load {
            errors: vec![LoadError::Read {
                path: "a.yaml".to_owned(),
                source: std::sync::Arc::new(std::io::Error::other("gone")),
            }],
        };
        assert_eq!(
            e.to_string(),
            "1 input(s) could not be read or parsed: a.yaml: cannot read: gone"
        );
    }
}
