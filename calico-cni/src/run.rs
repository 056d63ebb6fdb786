//! The plugins' entry points: environment and stdin in, stdout text and success out.

use std::sync::Arc;

use calico_datastore::Store;
use calico_ipam::Ipam;

use crate::config::{NetConf, Workload};
use crate::error::PluginError;
use crate::ipam_plugin;
use crate::plugin::{self, PodNetwork};
use crate::spec::{CNI_VERSION, CniEnv, Command, VersionInfo};

/// What a plugin prints and whether it succeeded (exit status 0) or not (1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The text for stdout (a result, an error object, a version answer, or nothing).
    pub stdout: String,
    /// Success.
    pub success: bool,
}

impl Outcome {
    fn ok(v: Option<serde_json::Value>) -> Outcome {
        Outcome {
            stdout: v.map(|v| format!("{v}\n")).unwrap_or_default(),
            success: true,
        }
    }

    fn err(e: &PluginError, version: &str) -> Outcome {
        let obj = e.to_cni(version);
        Outcome {
            stdout: serde_json::to_string(&obj)
                .map(|s| s + "\n")
                .unwrap_or_default(),
            success: false,
        }
    }
}

/// The host name (the default node name): `/proc/sys/kernel/hostname`, else `$HOSTNAME`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Opens the configuration's store.
pub fn open_store(conf: &NetConf) -> Result<Arc<dyn Store>, PluginError> {
    calico_datastore_etcd::open_target(
        &conf.datastore,
        calico_datastore_etcd::EtcdOptions::default(),
    )
    .map(Arc::from)
    .map_err(|source| PluginError::Store {
        url: conf.store_url.clone(),
        source,
    })
}

/// Parses the environment and configuration; `Err` carries the outcome to print.
fn prepare(
    lookup: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    hostname: &str,
) -> Result<(CniEnv, NetConf), Outcome> {
    let env = CniEnv::from_lookup(lookup).map_err(|e| Outcome::err(&e.into(), CNI_VERSION))?;
    if env.command == Command::Version {
        let v = serde_json::to_value(VersionInfo::default()).ok();
        return Err(Outcome::ok(v));
    }
    let conf = NetConf::parse_with_env(stdin, hostname, lookup)
        .map_err(|e| Outcome::err(&e.into(), CNI_VERSION))?;
    if env.command == Command::Check && !crate::spec::supports_check(&conf.cni_version) {
        return Err(Outcome::err(
            &PluginError::CheckNotSupported(conf.cni_version.clone()),
            &conf.cni_version,
        ));
    }
    Ok((env, conf))
}

/// Runs the `calico-ipam` plugin.
pub fn run_ipam(lookup: &dyn Fn(&str) -> Option<String>, stdin: &[u8], hostname: &str) -> Outcome {
    let (env, conf) = match prepare(lookup, stdin, hostname) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let r = (|| {
        let w = Workload::new(&conf, &env)?;
        let store = open_store(&conf)?;
        if env.command == Command::Add {
            // As Calico's plugin expects: ClusterInformation exists and says ready.
            calico_ipam::resources::Resources::new(&*store)
                .ensure_initialized()
                .map_err(|source| PluginError::Init {
                    url: conf.store_url.clone(),
                    source,
                })?;
        }
        let ipam = Ipam::new(store);
        match env.command {
            Command::Add => ipam_plugin::add(&ipam, &conf, &w).map(|r| Some(r.to_json())),
            Command::Del => ipam_plugin::del(&ipam, &w).map(|_| None),
            Command::Check => {
                let prev = plugin::prev_result(&conf)?;
                ipam_plugin::check(&ipam, &w, &prev).map(|()| None)
            }
            Command::Version => Ok(None),
        }
    })();
    finish("calico-ipam", &env, &conf, r)
}

/// The outcome of `r`, logged to stderr when `log_level` asks for it (`info` and `debug`
/// log every invocation, `warning` and `error` failures only).
fn finish(
    plugin: &str,
    env: &CniEnv,
    conf: &NetConf,
    r: Result<Option<serde_json::Value>, PluginError>,
) -> Outcome {
    let verbose = matches!(conf.log_level.as_deref(), Some("info" | "debug"));
    let quiet = conf.log_level.is_none();
    match r {
        Ok(v) => {
            if verbose {
                eprintln!(
                    "{plugin}: {} container {} ({}): ok {}",
                    env.command.as_str(),
                    env.container_id,
                    env.ifname,
                    v.as_ref().map(ToString::to_string).unwrap_or_default()
                );
            }
            Outcome::ok(v)
        }
        Err(e) => {
            if !quiet {
                eprintln!(
                    "{plugin}: {} container {} ({}): error {}: {e}",
                    env.command.as_str(),
                    env.container_id,
                    env.ifname,
                    e.code().code()
                );
            }
            Outcome::err(&e, &conf.cni_version)
        }
    }
}

/// Runs the `calico` main plugin over `net`.
pub fn run_calico<N: PodNetwork>(
    net: &N,
    lookup: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    hostname: &str,
) -> Outcome {
    let (env, conf) = match prepare(lookup, stdin, hostname) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let r = match env.command {
        Command::Add => plugin::add(net, &env, &conf, stdin).map(|r| Some(r.to_json())),
        Command::Del => plugin::del(net, &env, &conf, stdin).map(|()| None),
        Command::Check => plugin::check(net, &env, &conf, stdin).map(|()| None),
        Command::Version => Ok(None),
    };
    finish("calico", &env, &conf, r)
}

/// The whole `main` of a plugin binary: `--version`, reading stdin,
/// running `plugin` on the process's environment, printing, the exit status.
pub fn plugin_main(
    binary: &str,
    plugin: impl FnOnce(&dyn Fn(&str) -> Option<String>, &[u8], &str) -> Outcome,
) -> std::process::ExitCode {
    use std::io::{Read, Write};
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--version" || a == "-v")
    {
        println!("{}", crate::version::about(binary));
        return std::process::ExitCode::SUCCESS;
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let out = match read {
        Ok(_) => plugin(&|k| std::env::var(k).ok(), &stdin, &hostname()),
        Err(e) => Outcome::err(&PluginError::Stdin(e), CNI_VERSION),
    };
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    if out.success {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
