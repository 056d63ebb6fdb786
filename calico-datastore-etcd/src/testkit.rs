//! Test harnesses that run real etcd servers (feature `testkit`).
//!
//! [`EtcdServer`] starts one `etcd` on free loopback ports (127.0.0.1 only) with a fresh
//! temporary data directory, waits until it reports healthy, and on drop (also when a test
//! panics) kills it and removes the directory. [`EtcdCluster`] does the same for a
//! multi-member cluster and can find and kill the leader.
//!
//! Secure members: [`TestPki`] makes a CA and certificates with the `openssl` command
//! (server certificates name 127.0.0.1 and localhost), [`EtcdCluster::start_secure`] starts
//! a member serving `https` with them (and requiring client certificates when asked), and
//! [`EtcdCluster::enable_auth`] turns on etcd's authentication with a root user and users
//! whose roles cover one key prefix each.
//!
//! The binary is `$CALICO_ETCD_BIN`, else `etcd` on `PATH`, else `/usr/bin/etcd` (Debian's
//! `etcd-server`). Tests call [`etcd_or_skip`] first: without etcd it prints that the test
//! was NOT run and returns `None`, unless `CALICO_REQUIRE_ETCD=1`, where it panics.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

pub use crate::etcd_binary;

/// [`etcd_or_skip`] for tests that also make certificates: `None` after printing that `test`
/// was NOT run when etcd or the `openssl` command is missing; panics instead when
/// `CALICO_REQUIRE_ETCD=1` (CI).
pub fn tls_or_skip(test: &str) -> Option<PathBuf> {
    let etcd = etcd_or_skip(test)?;
    if !openssl_available() {
        assert!(
            std::env::var("CALICO_REQUIRE_ETCD").as_deref() != Ok("1"),
            "{test}: CALICO_REQUIRE_ETCD=1 but the openssl command is missing"
        );
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: {test} was NOT run: the openssl command is missing"
        );
        return None;
    }
    Some(etcd)
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

/// A certificate authority and certificates for one test, made with the `openssl`
/// command in a temporary directory (removed on drop). Keys are EC P-256.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    /// The CA certificate.
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Whether the `openssl` command is available (certificates for the TLS tests).
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl TestPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Self, HarnessError> {
        let dir = TempDir::new()?;
        let ca = dir.0.join(format!("{name}-ca.pem"));
        let ca_key = dir.0.join(format!("{name}-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &path_str(&ca_key),
            "-out",
            &path_str(&ca),
        ])?;
        Ok(TestPki { dir, ca, ca_key })
    }

    /// A certificate signed by this CA for 127.0.0.1 and localhost, usable by servers and
    /// clients; `days` of validity from now, or with `days < 0` one that expired already.
    pub fn issue(&self, name: &str, days: i32) -> Result<CertFiles, HarnessError> {
        let cert = self.dir.0.join(format!("{name}.pem"));
        let key = self.dir.0.join(format!("{name}.key"));
        let csr = self.dir.0.join(format!("{name}.csr"));
        let ext = self.dir.0.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth
",
        )
        .map_err(io(format!("writing {}", ext.display())))?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &path_str(&key),
            "-out",
            &path_str(&csr),
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path_str(&csr),
            "-CA",
            &path_str(&self.ca),
            "-CAkey",
            &path_str(&self.ca_key),
            "-CAcreateserial",
            "-days",
            &days.to_string(),
            "-extfile",
            &path_str(&ext),
            "-out",
            &path_str(&cert),
        ])?;
        Ok(CertFiles { cert, key })
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn openssl(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io("running openssl (apt-get install openssl)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Io {
            context: format!("openssl {}", args.join(" ")),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        })
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

/// How a member serves its clients.
#[derive(Clone, Debug, Default)]
pub struct MemberOptions {
    /// Serve `https` with these files.
    pub tls: Option<ServerTls>,
    /// Lifetime of etcd's authentication tokens in seconds (`--auth-token-ttl`; etcd's
    /// default is 300).
    pub auth_token_ttl: Option<u32>,
}

/// The TLS files of a member.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The member's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that signs client certificates; with it the member requires and checks a
    /// client certificate (`--client-cert-auth`).
    pub client_ca: Option<PathBuf>,
}

/// One etcd process.
#[derive(Debug)]
struct Proc {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// For members whose clients use TLS, a second, plain-http client port on loopback:
    /// the harness's own door (health, leader, setting up authentication).
    admin_port: u16,
    options: MemberOptions,
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
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let listen = if self.options.tls.is_some() {
            format!("{client},http://127.0.0.1:{}", self.admin_port)
        } else {
            client.clone()
        };
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut extra: Vec<std::ffi::OsString> = Vec::new();
        if let Some(tls) = &self.options.tls {
            extra.push("--cert-file".into());
            extra.push(tls.cert.clone().into());
            extra.push("--key-file".into());
            extra.push(tls.key.clone().into());
            if let Some(ca) = &tls.client_ca {
                extra.push("--client-cert-auth".into());
                extra.push("--trusted-ca-file".into());
                extra.push(ca.clone().into());
            }
        }
        if let Some(ttl) = self.options.auth_token_ttl {
            extra.push("--auth-token-ttl".into());
            extra.push(ttl.to_string().into());
        }
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
            .args(["--listen-client-urls", &listen])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", token])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(&extra)
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

    /// The plain-http client port the harness talks to.
    fn admin(&self) -> u16 {
        if self.options.tls.is_some() {
            self.admin_port
        } else {
            self.client_port
        }
    }

    /// Whether the member answers `/health` with `true`.
    fn healthy(&self) -> bool {
        healthy(self.admin())
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
    // No half-close after the request: etcd's gateway takes it for a client that went away
    // and cancels the request. HTTP/1.0 closes the connection after the answer.
    s.write_all(req.as_bytes()).ok()?;
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
        Self::start_with(members, &MemberOptions::default())
    }

    /// Starts one member serving its clients as `options` says (e.g. `https` with a
    /// [`TestPki`]'s files) and waits until it is healthy.
    pub fn start_secure(options: &MemberOptions) -> Result<Self, HarnessError> {
        Self::start_with(1, options)
    }

    /// Starts `members` members, each with `options`.
    pub fn start_with(members: usize, options: &MemberOptions) -> Result<Self, HarnessError> {
        let binary = etcd_binary().ok_or(HarnessError::NotInstalled)?;
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(&binary, members.max(1), options) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(HarnessError::NotInstalled))
    }

    fn try_start(binary: &Path, n: usize, options: &MemberOptions) -> Result<Self, HarnessError> {
        let dir = TempDir::new()?;
        let ports = free_ports(3 * n)?;
        let procs: Vec<Proc> = (0..n)
            .map(|i| Proc {
                name: format!("m{i}"),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                admin_port: ports[3 * i + 2],
                options: options.clone(),
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
                all &= self.procs[i].healthy();
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

    /// The endpoints of every member as calicoctl lists them:
    /// `https://127.0.0.1:P1,...` (or `http://` for plain members).
    pub fn endpoints(&self) -> String {
        let members: Vec<String> = self
            .procs
            .iter()
            .map(|p| {
                let scheme = if p.options.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://127.0.0.1:{}", p.client_port)
            })
            .collect();
        members.join(",")
    }

    /// Enables etcd's authentication (through the harness's plain port, also for TLS
    /// members): creates `root` with
    /// `root_password`, and for each `(user, password, prefix)` a user whose role may read
    /// and write only the keys under `prefix`.
    pub fn enable_auth(
        &self,
        root_password: &str,
        users: &[(&str, &str, &str)],
    ) -> Result<(), HarnessError> {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let port = self.procs.first().map(Proc::admin).unwrap_or(0);
        let call = |path: &str, body: serde_json::Value| -> Result<(), HarnessError> {
            http(port, "POST", path, &body.to_string())
                .map(|_| ())
                .ok_or_else(|| HarnessError::NotHealthy {
                    waited: Duration::ZERO,
                    detail: format!("setting up authentication: POST {path} {body} failed"),
                })
        };
        call("/v3/auth/role/add", serde_json::json!({"name": "root"}))?;
        call(
            "/v3/auth/user/add",
            serde_json::json!({"name": "root", "password": root_password}),
        )?;
        call(
            "/v3/auth/user/grant",
            serde_json::json!({"user": "root", "role": "root"}),
        )?;
        for (user, password, prefix) in users {
            let role = format!("{user}-role");
            let mut end = prefix.as_bytes().to_vec();
            // The end of the prefix range: the prefix with its last byte incremented.
            while let Some(last) = end.pop() {
                if last < 0xff {
                    end.push(last + 1);
                    break;
                }
            }
            call("/v3/auth/role/add", serde_json::json!({"name": role}))?;
            call(
                "/v3/auth/role/grant",
                serde_json::json!({"name": role, "perm": {
                    "permType": "READWRITE",
                    "key": b64(prefix.as_bytes()),
                    "range_end": b64(&end),
                }}),
            )?;
            call(
                "/v3/auth/user/add",
                serde_json::json!({"name": user, "password": password}),
            )?;
            call(
                "/v3/auth/user/grant",
                serde_json::json!({"user": user, "role": role}),
            )?;
        }
        call("/v3/auth/enable", serde_json::json!({}))
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
            .map(|p| p.child.as_ref().and_then(|_| status(p.admin())))
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

    /// The process id of member `i`, while it runs (to pause it with SIGSTOP, say).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i)?.child.as_ref().map(Child::id)
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
