//! The `calico` binary against etcd members that use TLS with client certificates and
//! etcd's authentication, configured as calicoctl is: a `CalicoAPIConfig` file
//! (`--config`) or the environment (`ETCD_ENDPOINTS`, `ETCD_CA_CERT_FILE`, ...). Failures
//! (wrong CA, missing or foreign client certificate, expired certificates, wrong password)
//! exit 2 within `--store-timeout` with one line naming the member and the cause.
//! Without etcd these tests print that they were NOT run (and fail if
//! `CALICO_REQUIRE_ETCD=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use calico_datastore_etcd::testkit::{
    CertFiles, EtcdCluster, MemberOptions, ServerTls, TestPki, etcd_or_skip, tls_or_skip,
};

/// Every variable that configures the datastore, removed from the child's environment.
const DATASTORE_VARS: [&str; 9] = [
    "DATASTORE_TYPE",
    "ETCD_ENDPOINTS",
    "ETCD_DISCOVERY_SRV",
    "ETCD_USERNAME",
    "ETCD_PASSWORD",
    "ETCD_KEY_FILE",
    "ETCD_CERT_FILE",
    "ETCD_CA_CERT_FILE",
    "STORE",
];

const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool1\nspec:\n  cidr: 10.244.0.0/22\n  blockSize: 26\n";

/// The store timeout given to every command, and how long a failing command may take.
const TIMEOUT_SECS: u64 = 3;

struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "calico-etcd-secure-cli-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `calico` with `env` (and no other datastore variable) in the scratch directory.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> (Output, Duration) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calico"));
        cmd.current_dir(&self.dir);
        for v in DATASTORE_VARS {
            cmd.env_remove(v);
            cmd.env_remove(format!("CALICO_{v}"));
        }
        cmd.env_remove("CALICO_STORE_TIMEOUT");
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .args(["--store-timeout", &TIMEOUT_SECS.to_string()]);
        let started = Instant::now();
        let out = cmd.output().unwrap();
        (out, started.elapsed())
    }

    fn ok(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let (o, _) = self.run(env, args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Runs a command that must fail with exit 2 within the store timeout, printing one
    /// line that names `endpoint` and contains every one of `words`.
    fn refused(&self, env: &[(&str, &str)], args: &[&str], endpoint: &str, words: &[&str]) {
        let (o, took) = self.run(env, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            took < Duration::from_secs(TIMEOUT_SECS + 2),
            "{args:?} took {took:?}: {err}"
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "not one line: {err}");
        assert!(
            lines[0].contains(&format!("etcd {endpoint}: ")),
            "no endpoint in {err}"
        );
        for w in words {
            assert!(lines[0].contains(w), "{err:?} lacks {w:?}");
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tools(test: &str) -> bool {
    tls_or_skip(test).is_some()
}

fn tls_member(pki: &TestPki, cert: &CertFiles) -> EtcdCluster {
    EtcdCluster::start_secure(&MemberOptions {
        tls: Some(ServerTls {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
            client_ca: Some(pki.ca.clone()),
        }),
        auth_token_ttl: None,
    })
    .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `CalicoAPIConfig` with file paths.
fn config(endpoints: &str, ca: &Path, client: Option<&CertFiles>) -> String {
    let mut spec = format!(
        "  datastoreType: etcdv3\n  etcdEndpoints: {endpoints}\n  etcdCACertFile: {}\n",
        ca.display()
    );
    if let Some(c) = client {
        spec.push_str(&format!(
            "  etcdCertFile: {}\n  etcdKeyFile: {}\n",
            c.cert.display(),
            c.key.display()
        ));
    }
    format!(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n{spec}"
    )
}

/// YAML literal block of a file's text, indented for a spec field.
fn block(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::from("|\n");
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn config_file_and_environment_reach_a_tls_member() {
    if !tools("config_file_and_environment_reach_a_tls_member") {
        return;
    }
    let pki = TestPki::new("good").unwrap();
    let server = tls_member(&pki, &pki.issue("server", 1).unwrap());
    let client = pki.issue("client", 1).unwrap();
    let ep = server.endpoints();
    let dir = Scratch::new("reach");
    let pool = dir.write("pool.yaml", POOL);

    // --config after the subcommand; -v names the file.
    let cfg = dir.write("calicoctl.cfg", &config(&ep, &pki.ca, Some(&client)));
    let o = dir.ok(&[], &["apply", "-f", s(&pool), "--config", s(&cfg), "-v"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "calico: datastore {ep} (client certificate) from config file {} (--config)",
            cfg.display()
        )
    );
    // --config before the subcommand.
    let o = dir.ok(&[], &["--config", s(&cfg), "get", "ippools"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pool1"));

    // Inline PEM in the file.
    let inline = format!(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n  etcdEndpoints: {ep}\n  etcdCACert: {}  etcdCert: {}  etcdKey: {}",
        block(&pki.ca),
        block(&client.cert),
        block(&client.key)
    );
    let icfg = dir.write("inline.cfg", &inline);
    let o = dir.ok(&[], &["get", "ippools", "--config", s(&icfg)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pool1"));

    // The environment, bare and CALICO_-prefixed (the prefixed one wins).
    let env = [
        ("ETCD_ENDPOINTS", ep.as_str()),
        ("ETCD_CA_CERT_FILE", s(&pki.ca)),
        ("ETCD_CERT_FILE", s(&client.cert)),
        ("ETCD_KEY_FILE", s(&client.key)),
    ];
    let o = dir.ok(&env, &["-v", "get", "ippools"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pool1"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("from environment (ETCD_ENDPOINTS, "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut prefixed = env.to_vec();
    prefixed.push(("CALICO_ETCD_ENDPOINTS", ep.as_str()));
    prefixed[0].1 = "https://127.0.0.1:1";
    let o = dir.ok(&prefixed, &["get", "ippools"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pool1"));

    // --store still wins: the embedded store in the scratch directory has no pool.
    let o = dir.ok(
        &env,
        &[
            "get",
            "ippools",
            "--config",
            s(&cfg),
            "--store",
            "file:./x.db",
        ],
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("pool1"));
    // A config file in use is used alone: the environment does not fill in its gaps.
    let no_client = dir.write("noclient.cfg", &config(&ep, &pki.ca, None));
    dir.refused(
        &env,
        &["get", "ippools", "--config", s(&no_client)],
        &ep,
        &["requires a client certificate"],
    );
}

#[test]
fn tls_failures_exit_2_naming_the_member_and_cause() {
    if !tools("tls_failures_exit_2_naming_the_member_and_cause") {
        return;
    }
    let pki = TestPki::new("good").unwrap();
    let other = TestPki::new("other").unwrap();
    let server = tls_member(&pki, &pki.issue("server", 1).unwrap());
    let client = pki.issue("client", 1).unwrap();
    let ep = server.endpoints();
    let dir = Scratch::new("tls-fail");
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "wrong-ca",
            config(&ep, &other.ca, Some(&client)),
            &["TLS handshake failed", "not signed by the configured CA"],
        ),
        (
            "no-client-cert",
            config(&ep, &pki.ca, None),
            &["TLS handshake failed", "requires a client certificate"],
        ),
        (
            "foreign-client-cert",
            config(&ep, &pki.ca, Some(&other.issue("foreign", 1).unwrap())),
            &["TLS handshake failed", "rejected our client certificate"],
        ),
        (
            "expired-client-cert",
            config(&ep, &pki.ca, Some(&pki.issue("old-client", -1).unwrap())),
            &[
                "TLS handshake failed: certificate expired",
                "our client certificate, which expired at",
            ],
        ),
    ];
    for (name, text, words) in &cases {
        let cfg = dir.write(&format!("{name}.cfg"), text);
        dir.refused(&[], &["get", "ippools", "--config", s(&cfg)], &ep, words);
    }

    // A member whose own certificate expired.
    let old = tls_member(&pki, &pki.issue("old-server", -1).unwrap());
    let cfg = dir.write("old.cfg", &config(&old.endpoints(), &pki.ca, Some(&client)));
    dir.refused(
        &[],
        &["ipam", "check", "--config", s(&cfg)],
        &old.endpoints(),
        &["TLS handshake failed: certificate expired"],
    );

    // A certificate file that does not exist is named.
    let (o, _) = dir.run(
        &[
            ("ETCD_ENDPOINTS", ep.as_str()),
            ("ETCD_CA_CERT_FILE", "/nonexistent/etcd-ca"),
        ],
        &["get", "ippools"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/etcd-ca"));
}

#[test]
fn credentials_from_config_and_environment() {
    if etcd_or_skip("credentials_from_config_and_environment").is_none() {
        return;
    }
    let server = EtcdCluster::start_single().unwrap();
    server
        .enable_auth("root-pw", &[("calico", "calico-pw", "/calico/")])
        .unwrap();
    let ep = server.endpoints();
    let dir = Scratch::new("auth");
    let pool = dir.write("pool.yaml", POOL);
    let env = [
        ("ETCD_ENDPOINTS", ep.as_str()),
        ("ETCD_USERNAME", "root"),
        ("ETCD_PASSWORD", "root-pw"),
    ];
    let o = dir.ok(&env, &["-v", "apply", "-f", s(&pool)]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("(user root) from environment"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg = dir.write(
        "auth.cfg",
        &format!(
            "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n  etcdEndpoints: {ep}\n  etcdUsername: root\n  etcdPassword: root-pw\n"
        ),
    );
    let o = dir.ok(&[], &["get", "ippools", "--config", s(&cfg)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("pool1"));

    let wrong = [env[0], env[1], ("ETCD_PASSWORD", "nope")];
    dir.refused(
        &wrong,
        &["get", "ippools"],
        &ep,
        &["authentication failed", "wrong user name or password"],
    );
    // Without credentials.
    dir.refused(
        &[env[0]],
        &["get", "ippools"],
        &ep,
        &["authentication failed", "requires a user name"],
    );
}
