//! The CLI's error type and how it maps to exit status and stderr.

use std::process::ExitCode;

/// An error that stops a command: reported on stderr as one summary line, then details,
/// and turned into exit status 2 ("could not run").
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command could not run; `summary` is the first line, `details` follow.
    #[error("{summary}")]
    CouldNotRun {
        /// One summary line.
        summary: String,
        /// Further lines, printed after the summary.
        details: Vec<String>,
    },
}

impl CliError {
    /// An error with a summary line only.
    pub(crate) fn could_not_run(summary: impl Into<String>) -> Self {
        CliError::CouldNotRun {
            summary: summary.into(),
            details: Vec::new(),
        }
    }

    /// An error with a summary line and detail lines.
    pub(crate) fn with_details(summary: impl Into<String>, details: Vec<String>) -> Self {
        CliError::CouldNotRun {
            summary: summary.into(),
            details,
        }
    }

    /// Prints the error to stderr and returns exit status 2.
    pub(crate) fn report(&self) -> ExitCode {
        match self {
            CliError::CouldNotRun { summary, details } => {
                eprintln!("calico: {summary}");
                for line in details {
                    eprintln!("  {line}");
                }
            }
        }
        ExitCode::from(2)
    }
}
