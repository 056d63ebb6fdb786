//! Running work inside a named network namespace without `unsafe`: a scoped thread joins the
//! namespace (`setns`) and runs the closure; sockets it creates stay bound to that
//! namespace after the thread ends, and `/proc/sys/net` reads and writes from it address the
//! namespace's sysctls.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// Where `ip netns add NAME` puts its namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// Errors of [`Netns`].
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file cannot be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// Path of the namespace file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// Path of the namespace file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// The worker thread panicked.
    #[error("the thread working in network namespace {path} panicked")]
    Panicked {
        /// Path of the namespace file.
        path: PathBuf,
    },
    /// A sysctl could not be read or written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        /// Path below /proc/sys.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A network namespace: the caller's own, or one named by a file (`/var/run/netns/NAME`,
/// `/proc/PID/ns/net`).
#[derive(Debug)]
pub struct Netns {
    target: Option<(PathBuf, File)>,
}

impl Netns {
    /// The caller's current namespace.
    pub fn current() -> Netns {
        Netns { target: None }
    }

    /// The namespace `ip netns` knows as `name`.
    pub fn named(name: &str) -> Result<Netns, NetnsError> {
        Netns::at(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// The namespace whose file is at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Result<Netns, NetnsError> {
        let path = path.into();
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(Netns {
            target: Some((path, file)),
        })
    }

    /// Another handle on the same namespace.
    pub fn try_clone(&self) -> Result<Netns, NetnsError> {
        match &self.target {
            None => Ok(Netns::current()),
            Some((path, file)) => Ok(Netns {
                target: Some((
                    path.clone(),
                    file.try_clone().map_err(|source| NetnsError::Open {
                        path: path.clone(),
                        source,
                    })?,
                )),
            }),
        }
    }

    /// The namespace file, if this is not the caller's namespace.
    pub fn file(&self) -> Option<&File> {
        self.target.as_ref().map(|(_, f)| f)
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match &self.target {
            Some((p, _)) => p.display().to_string(),
            None => "the current network namespace".to_owned(),
        }
    }

    /// Runs `f` inside the namespace (on a scoped thread when it is not the caller's).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, NetnsError> {
        let Some((path, file)) = &self.target else {
            return Ok(f());
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| -> Result<R, NetnsError> {
                setns(file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                    path: path.clone(),
                    source,
                })?;
                Ok(f())
            });
            h.join()
                .map_err(|_| NetnsError::Panicked { path: path.clone() })?
        })
    }

    /// Reads sysctls (paths below `/proc/sys`); a path that does not exist is left out.
    pub fn read_sysctls(&self, paths: &[&str]) -> Result<Vec<(String, String)>, NetnsError> {
        self.run(|| {
            let mut out = Vec::new();
            for p in paths {
                match std::fs::read_to_string(Path::new("/proc/sys").join(p)) {
                    Ok(v) => out.push(((*p).to_owned(), v.trim().to_owned())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(NetnsError::Sysctl {
                            path: (*p).to_owned(),
                            source,
                        });
                    }
                }
            }
            Ok(out)
        })?
    }

    /// Writes sysctls; one result per entry.
    pub fn write_sysctls(
        &self,
        entries: &[(&str, &str)],
    ) -> Result<Vec<Result<(), NetnsError>>, NetnsError> {
        self.run(|| {
            entries
                .iter()
                .map(|(p, v)| {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(Path::new("/proc/sys").join(p))
                        .and_then(|mut f| f.write_all(v.as_bytes()))
                        .map_err(|source| NetnsError::Sysctl {
                            path: (*p).to_owned(),
                            source,
                        })
                })
                .collect()
        })
    }
}
