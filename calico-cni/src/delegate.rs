//! Delegation: running another plugin (the IPAM plugin named in `ipam.type`) found in
//! `CNI_PATH`, with the same environment and configuration, as the CNI specification
//! prescribes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::spec::{CniEnv, CniError, CniResult, Command, ErrorCode};

/// Why a delegated plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// No executable of that name in `CNI_PATH` (code 7: the configuration names it).
    #[error("plugin {plugin:?} not found in CNI_PATH {}", path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// `CNI_PATH`.
        path: Vec<PathBuf>,
    },
    /// It could not be run (code 5).
    #[error("cannot run {}: {source}", plugin.display())]
    Spawn {
        /// The executable.
        plugin: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It failed and printed an error object (its code).
    #[error("{}: {error}", plugin.display())]
    Failed {
        /// The executable.
        plugin: PathBuf,
        /// Its error.
        error: CniError,
    },
    /// It failed or succeeded with output that does not decode (code 6).
    #[error("{}: unexpected output (exit status {status}): {output}", plugin.display())]
    BadOutput {
        /// The executable.
        plugin: PathBuf,
        /// Exit status.
        status: String,
        /// What it printed.
        output: String,
    },
}

impl DelegateError {
    /// The CNI error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            DelegateError::NotFound { .. } => ErrorCode::InvalidConfig,
            DelegateError::Spawn { .. } => ErrorCode::Io,
            DelegateError::Failed { error, .. } => match error.code {
                1 => ErrorCode::IncompatibleVersion,
                2 => ErrorCode::UnsupportedField,
                3 => ErrorCode::UnknownContainer,
                4 => ErrorCode::InvalidEnvironment,
                5 => ErrorCode::Io,
                6 => ErrorCode::Decode,
                7 => ErrorCode::InvalidConfig,
                11 => ErrorCode::TryAgainLater,
                c => ErrorCode::Plugin(c),
            },
            DelegateError::BadOutput { .. } => ErrorCode::Decode,
        }
    }
}

/// The executable named `plugin` in `path` (the first directory holding it).
pub fn find(plugin: &str, path: &[PathBuf]) -> Result<PathBuf, DelegateError> {
    let not_found = || DelegateError::NotFound {
        plugin: plugin.to_owned(),
        path: path.to_vec(),
    };
    if plugin.is_empty() || plugin.contains('/') {
        return Err(not_found());
    }
    path.iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(not_found)
}

/// Runs `plugin` for `command` with `env` and `config` on stdin. Returns its result for
/// `ADD`, `None` for `DEL` and `CHECK`.
pub fn run(
    plugin: &str,
    command: Command,
    env: &CniEnv,
    config: &[u8],
) -> Result<Option<CniResult>, DelegateError> {
    let exe = find(plugin, &env.path)?;
    exec(&exe, command, env, config)
}

fn exec(
    exe: &Path,
    command: Command,
    env: &CniEnv,
    config: &[u8],
) -> Result<Option<CniResult>, DelegateError> {
    let spawn_err = |source| DelegateError::Spawn {
        plugin: exe.to_owned(),
        source,
    };
    let path = std::env::join_paths(&env.path).unwrap_or_default();
    let args: Vec<String> = env.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut p = Process::new(exe);
    p.env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", args.join(";"))
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match &env.netns {
        Some(n) => p.env("CNI_NETNS", n),
        None => p.env_remove("CNI_NETNS"),
    };
    let mut child = p.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let bad = || DelegateError::BadOutput {
        plugin: exe.to_owned(),
        status: out.status.to_string(),
        output: text.trim().to_owned(),
    };
    if !out.status.success() {
        let error: CniError = serde_json::from_str(&text).map_err(|_| bad())?;
        return Err(DelegateError::Failed {
            plugin: exe.to_owned(),
            error,
        });
    }
    if command != Command::Add {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    CniResult::from_json(&v).map(Some).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn find_searches_cni_path_in_order() {
        let dirs = vec![PathBuf::from("/nonexistent-dir"), PathBuf::from("/bin")];
        assert_eq!(find("sh", &dirs).unwrap(), PathBuf::from("/bin/sh"));
        let e = find("no-such-plugin", &dirs).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert!(e.to_string().contains("/nonexistent-dir:/bin"), "{e}");
        // A type is a file name, never a path.
        assert!(find("../bin/sh", &dirs).is_err());
        assert!(find("", &dirs).is_err());
    }

    #[test]
    fn a_delegates_error_keeps_its_code() {
        let e = DelegateError::Failed {
            plugin: "/x".into(),
            error: CniError::new(ErrorCode::TryAgainLater, "busy", ""),
        };
        assert_eq!(e.code(), ErrorCode::TryAgainLater);
        let e = DelegateError::Failed {
            plugin: "/x".into(),
            error: CniError::new(ErrorCode::Plugin(100), "full", ""),
        };
        assert_eq!(e.code(), ErrorCode::Plugin(100));
    }
}
