//! BIRD as a child of the agent: started in the foreground with our configuration and
//! control socket, restarted when it dies, stopped (SIGTERM, then SIGKILL) when the agent
//! stops.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bird_control::BirdControl;

/// Where BIRD's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdPaths {
    /// The `bird` program (a name looked up in `PATH`, or a path).
    pub binary: PathBuf,
    /// The configuration file (BIRD re-reads it on `configure`).
    pub config: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// Where BIRD's standard error goes (`None`: discarded).
    pub log: Option<PathBuf>,
}

/// Errors of the BIRD process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// BIRD could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The program.
        binary: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// BIRD started but exited, or its control socket did not answer in time.
    #[error("BIRD did not come up within {waited:?}: {detail}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What was seen.
        detail: String,
    },
    /// Stopping BIRD failed.
    #[error("cannot stop BIRD (pid {pid}): {detail}")]
    Stop {
        /// Its pid.
        pid: u32,
        /// What went wrong.
        detail: String,
    },
}

/// A supervised BIRD.
#[derive(Debug)]
pub struct BirdProcess {
    paths: BirdPaths,
    child: Option<Child>,
    restarts: u32,
    ready_timeout: Duration,
}

impl BirdProcess {
    /// Starts BIRD and waits (up to 10 s) until its control socket answers.
    pub fn start(paths: BirdPaths) -> Result<BirdProcess, ProcessError> {
        let mut p = BirdProcess {
            paths,
            child: None,
            restarts: 0,
            ready_timeout: Duration::from_secs(10),
        };
        p.spawn()?;
        Ok(p)
    }

    /// The paths it runs with.
    pub fn paths(&self) -> &BirdPaths {
        &self.paths
    }

    /// BIRD's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How often it was restarted after dying.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    fn spawn(&mut self) -> Result<(), ProcessError> {
        let stderr = match &self.paths.log {
            Some(path) => File::options()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|source| ProcessError::Spawn {
                    binary: self.paths.binary.clone(),
                    source,
                })?,
            None => Stdio::null(),
        };
        // A socket left by a BIRD that died would make the new one fail to bind.
        let _ = std::fs::remove_file(&self.paths.socket);
        let child = Command::new(&self.paths.binary)
            .arg("-f")
            .arg("-c")
            .arg(&self.paths.config)
            .arg("-s")
            .arg(&self.paths.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: self.paths.binary.clone(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), ProcessError> {
        let started = Instant::now();
        let mut last = String::from("no control socket yet");
        while started.elapsed() < self.ready_timeout {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(ProcessError::NotReady {
                    waited: started.elapsed(),
                    detail: format!("BIRD exited with {status}"),
                });
            }
            match BirdControl::connect(&self.paths.socket, Duration::from_secs(2)) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(ProcessError::NotReady {
            waited: started.elapsed(),
            detail: last,
        })
    }

    /// Restarts BIRD if it died; whether it did.
    pub fn ensure_running(&mut self) -> Result<bool, ProcessError> {
        let alive = match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        };
        if alive {
            return Ok(false);
        }
        self.child = None;
        self.restarts += 1;
        self.spawn()?;
        Ok(true)
    }

    /// Stops BIRD: SIGTERM, then SIGKILL after 5 s. Routes BIRD installed in the kernel
    /// stay (its kernel protocol is configured to keep them).
    pub fn stop(&mut self) -> Result<(), ProcessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let raw = i32::try_from(pid).map_err(|_| ProcessError::Stop {
            pid,
            detail: "pid out of range".to_owned(),
        })?;
        if let Ok(None) = child.try_wait() {
            let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    let _ = std::fs::remove_file(&self.paths.socket);
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            child.kill().map_err(|e| ProcessError::Stop {
                pid,
                detail: e.to_string(),
            })?;
        }
        child.wait().map_err(|e| ProcessError::Stop {
            pid,
            detail: e.to_string(),
        })?;
        let _ = std::fs::remove_file(&self.paths.socket);
        Ok(())
    }
}

impl Drop for BirdProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
