//! Test harnesses that run real etcd servers (feature `testkit`).
//!
//! [`EtcdServer`] starts one `etcd` on free loopback ports (127.0.0.1 only) with a fresh
//! temporary data directory, waits until it reports healthy, and on drop (also when a test
//! panics) kills it and removes the directory. [`EtcdCluster`] does the same for a
//! multi-member cluster and can find and kill the leader.
//!
//! The binary is `$CALICO_ETCD_BIN`, else `etcd` on `PATH`, else `/usr/bin/etcd` (Debian's
//! `etcd-server`). Tests call [`etcd_or_skip`] first: without etcd it prints that the test
//! was NOT run and returns `None`, unless `CALICO_REQUIRE_ETCD=1`, where it panics.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a harness could not start etcd.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No etcd binary was found.
    #[error(
        "etcd is not installed (looked for $CALICO_ETCD_BIN, etcd on PATH, /usr/bin/etcd); on Debian: apt-get install etcd-server"
    )]
    NotInstalled,
    /// An I/O step failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// etcd did not become healthy.
    #[error("etcd did not become healthy within {waited:?}: {detail}")]
    NotHealthy {
        /// How long the harness waited.
        waited: Duration,
        /// The end of etcd's log, or its exit status.
        detail: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}

/// The etcd binary, if installed.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CALICO_ETCD_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("etcd");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = PathBuf::from("/usr/bin/etcd");
    p.is_file().then_some(p)
}

/// The etcd binary, or `None` after printing that `test` was NOT run. Panics instead when
/// `CALICO_REQUIRE_ETCD=1` (CI), so a missing etcd cannot pass silently.
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    match etcd_binary() {
        Some(p) => Some(p),
        None => {
            if std::env::var("CALICO_REQUIRE_ETCD").as_deref() == Ok("1") {
                panic!(
                    "{test}: CALICO_REQUIRE_ETCD=1 but {}",
                    HarnessError::NotInstalled
                );
            }
            // Written to the stderr handle directly: the test harness captures eprintln!
            // output of passing tests, and this note must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "NOTE: {test} was NOT run: {} (set CALICO_REQUIRE_ETCD=1 to make this a failure)",
                HarnessError::NotInstalled
            );
            None
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, HarnessError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "calico-etcd-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free loopback ports (bound then released; etcd binds them right after).
fn free_ports(n: usize) -> Result<Vec<u16>, HarnessError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(io("reading a bound port"))
        })
        .collect()
}

/// One etcd process.
#[derive(Debug)]
struct Proc {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(
        &mut self,
        binary: &Path,
        initial_cluster: &str,
        state: &str,
        token: &str,
    ) -> Result<(), HarnessError> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("opening {}", self.log.display())))?;
        let log2 = log.try_clone().map_err(io("duplicating the log file"))?;
        let child = Command::new(binary)
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", token])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited with {status}", self.name)),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one HTTP/1.0 request to 127.0.0.1:`port` and returns the body of a 200 answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let _ = s.shutdown(Shutdown::Write);
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}

fn healthy(port: u16) -> bool {
    http(port, "GET", "/health", "").is_some_and(|b| b.contains("\"health\":\"true\""))
}

/// A member's (member id, leader id) from the v3 JSON gateway.
fn status(port: u16) -> Option<(String, String)> {
    let body = http(port, "POST", "/v3/maintenance/status", "{}")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let member = v.get("header")?.get("member_id")?;
    let leader = v.get("leader")?;
    let text = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some((text(member), text(leader)))
}

/// An etcd cluster of one or more members on loopback, killed and deleted on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    binary: PathBuf,
    procs: Vec<Proc>,
    initial_cluster: String,
    token: String,
    // Dropped after the processes (fields drop in order).
    _dir: TempDir,
}

/// A single etcd server: a one-member [`EtcdCluster`].
pub type EtcdServer = EtcdCluster;

/// How long to wait for a cluster to become healthy.
const START_PATIENCE: Duration = Duration::from_secs(30);

impl EtcdCluster {
    /// Starts one member and waits until it is healthy.
    pub fn start_single() -> Result<Self, HarnessError> {
        Self::start(1)
    }

    /// Starts `members` members and waits until every one is healthy (has a leader).
    /// Retries with new ports if a port was taken meanwhile.
    pub fn start(members: usize) -> Result<Self, HarnessError> {
        let binary = etcd_binary().ok_or(HarnessError::NotInstalled)?;
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(&binary, members.max(1)) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(HarnessError::NotInstalled))
    }

    fn try_start(binary: &Path, n: usize) -> Result<Self, HarnessError> {
        let dir = TempDir::new()?;
        let ports = free_ports(2 * n)?;
        let procs: Vec<Proc> = (0..n)
            .map(|i| Proc {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: dir.0.join(format!("m{i}.etcd")),
                log: dir.0.join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial_cluster = procs
            .iter()
            .map(|p| format!("{}=http://127.0.0.1:{}", p.name, p.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .0
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "calico-test".to_owned());
        let mut cluster = EtcdCluster {
            binary: binary.to_path_buf(),
            procs,
            initial_cluster,
            token,
            _dir: dir,
        };
        for i in 0..n {
            let (ic, token) = (cluster.initial_cluster.clone(), cluster.token.clone());
            cluster.procs[i].spawn(binary, &ic, "new", &token)?;
        }
        cluster.wait_healthy(&(0..n).collect::<Vec<_>>())?;
        Ok(cluster)
    }

    fn wait_healthy(&mut self, members: &[usize]) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            let mut all = true;
            for &i in members {
                if let Some(exit) = self.procs[i].exited() {
                    return Err(HarnessError::NotHealthy {
                        waited: started.elapsed(),
                        detail: format!("{exit}\n{}", self.procs[i].log_tail()),
                    });
                }
                all &= healthy(self.procs[i].client_port);
            }
            if all {
                return Ok(());
            }
            if started.elapsed() > START_PATIENCE {
                let logs: Vec<String> = members.iter().map(|&i| self.procs[i].log_tail()).collect();
                return Err(HarnessError::NotHealthy {
                    waited: started.elapsed(),
                    detail: logs.join("\n---\n"),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The number of members (running or killed).
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether the cluster has no member (never: it has at least one).
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The store URL naming every member: `etcd://127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn url(&self) -> String {
        let members: Vec<String> = self
            .procs
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.client_port))
            .collect();
        format!("etcd://{}", members.join(","))
    }

    /// The client port of member `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.procs[i].client_port
    }

    /// The index of the current leader, asking the running members.
    pub fn leader(&self) -> Option<usize> {
        let ids: Vec<Option<(String, String)>> = self
            .procs
            .iter()
            .map(|p| p.child.as_ref().and_then(|_| status(p.client_port)))
            .collect();
        let leader_id = ids.iter().flatten().map(|(_, l)| l.clone()).next()?;
        ids.iter()
            .position(|s| s.as_ref().is_some_and(|(m, _)| *m == leader_id))
    }

    /// Waits up to `patience` for a leader among the running members.
    pub fn wait_leader(&self, patience: Duration) -> Option<usize> {
        let started = Instant::now();
        while started.elapsed() < patience {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Kills member `i` with SIGKILL (its data stays, see [`EtcdCluster::restart`]).
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.procs.get_mut(i) {
            p.kill();
        }
    }

    /// Restarts a killed member on its data and waits until it is healthy.
    pub fn restart(&mut self, i: usize) -> Result<(), HarnessError> {
        let (binary, ic, token) = (
            self.binary.clone(),
            self.initial_cluster.clone(),
            self.token.clone(),
        );
        if let Some(p) = self.procs.get_mut(i) {
            p.kill();
            p.spawn(&binary, &ic, "existing", &token)?;
        }
        self.wait_healthy(&[i])
    }

    /// Whether member `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.procs
            .get_mut(i)
            .is_some_and(|p| p.child.is_some() && p.exited().is_none())
    }
}
