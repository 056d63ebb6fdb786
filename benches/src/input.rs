//! Reading a selector workload directory (`selectors.txt`, `labels.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a workload directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of `labels.jsonl` is not a JSON object of string values.
    #[error("{path}:{line}: not a JSON object of string values: {source}")]
    BadLabels {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The raw workload: selector lines and label maps.
#[derive(Debug, Clone)]
pub struct RawWorkload {
    /// Path of the selectors file (for error messages).
    pub selectors_path: PathBuf,
    /// One selector per line (line terminators removed; a trailing `\r` is kept, since it is
    /// part of the selector text).
    pub selectors: Vec<String>,
    /// One label map per line.
    pub labels: Vec<BTreeMap<String, String>>,
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads `dir/selectors.txt` and `dir/labels.jsonl`. Blank lines in `labels.jsonl` are
/// skipped; every line of `selectors.txt` is a selector (an empty line is `all()`), except
/// that a final newline does not start another line.
pub fn read_dir(dir: &Path) -> Result<RawWorkload, InputError> {
    let selectors_path = dir.join("selectors.txt");
    let text = read(&selectors_path)?;
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let selectors = if text.is_empty() {
        Vec::new()
    } else {
        body.split('\n').map(str::to_owned).collect()
    };
    let labels_path = dir.join("labels.jsonl");
    let text = read(&labels_path)?;
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let map = serde_json::from_str(line).map_err(|source| InputError::BadLabels {
            path: labels_path.clone(),
            line: i + 1,
            source,
        })?;
        labels.push(map);
    }
    Ok(RawWorkload {
        selectors_path,
        selectors,
        labels,
    })
}
