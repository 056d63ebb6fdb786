//! Installing a BIRD configuration the way confd does, but safer: check it with
//! `bird -p` first, replace the file atomically only when the text changed, then ask the
//! running BIRD to `configure`. A configuration BIRD rejects leaves the old file and the
//! running BIRD untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bird_control::{BirdControl, BirdError};

/// What [`install_config`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallOutcome {
    /// The file already held this text: nothing written, nothing reloaded.
    Unchanged,
    /// The file was replaced; `reloaded` when a running BIRD was told to `configure`.
    Installed {
        /// Whether BIRD reloaded it.
        reloaded: bool,
    },
}

/// Why a configuration was not installed or not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// BIRD's parser rejected the text; the old configuration stays.
    #[error("BIRD rejects the new configuration (the old one stays): {message}")]
    Rejected {
        /// BIRD's message.
        message: String,
    },
    /// A file could not be written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The checker could not be run.
    #[error("cannot run {binary} -p: {source}")]
    Check {
        /// The program.
        binary: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file was installed but BIRD did not reload it.
    #[error("the configuration was installed but BIRD did not reload it: {source}")]
    Reload {
        /// Cause.
        #[source]
        source: BirdError,
    },
}

/// Checks `text` with `<bird> -p`, writes it to `path` (through a temporary file renamed
/// over it) when it differs from what `path` holds, and, when `socket` is given, makes the
/// BIRD listening there reload it.
pub fn install_config(
    bird: &Path,
    path: &Path,
    text: &str,
    socket: Option<&Path>,
) -> Result<InstallOutcome, ConfigError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(InstallOutcome::Unchanged);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    let out = Command::new(bird)
        .arg("-p")
        .arg("-c")
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            ConfigError::Check {
                binary: bird.to_path_buf(),
                source,
            }
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if message.is_empty() {
            message = format!("{} -p exited with {}", bird.display(), out.status);
        }
        // BIRD names the temporary file; name the real one.
        let message = message.replace(&tmp.display().to_string(), &path.display().to_string());
        return Err(ConfigError::Rejected { message });
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let Some(socket) = socket else {
        return Ok(InstallOutcome::Installed { reloaded: false });
    };
    let mut control = BirdControl::connect(socket, Duration::from_secs(10))
        .map_err(|source| ConfigError::Reload { source })?;
    control
        .command("configure")
        .map_err(|source| ConfigError::Reload { source })?;
    Ok(InstallOutcome::Installed { reloaded: true })
}
