//! Calico's network configuration (the `calico` entry of a conflist) and the workload
//! identity derived from it and the CNI environment.
//!
//! Keys: `type: calico`, `mtu` (default 1500), `log_level`, `nodename` (default: the host
//! name), `ipam: {type: calico-ipam, ipv4_pools, ipv6_pools, assign_ipv4, assign_ipv6}`,
//! the etcd connection as in Calico's conflist (`datastore_type`, `etcd_endpoints`
//! `http(s)://HOST:PORT[,...]`, `etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file`,
//! `etcd_username`, `etcd_password`) and `datastore` (`file:PATH`, `etcd://HOST:PORT[,...]`
//! or `memory:`, the URLs of the CLI's `--store`). Other keys are ignored, as Calico does.
//!
//! The datastore is resolved by [`calico_datastore::resolve_datastore`], as Calico's plugin
//! does it: a `datastore` URL is used alone; otherwise the etcd keys of the configuration
//! stand in for the variables `ETCD_ENDPOINTS`, `ETCD_CA_CERT_FILE`, ... of the environment
//! (which fills in the keys not given, and whose `CALICO_`-prefixed variables win, since
//! Calico's plugin exports the keys as the bare variables); with no endpoints anywhere,
//! `http://127.0.0.1:2379`.

use std::collections::BTreeMap;
use std::path::Path;

use calico_datastore::{
    ConfigInputs, DatastoreConfigError, DatastoreRequest, DatastoreTarget, resolve_datastore,
};
use serde::Deserialize;

use crate::spec::{CniEnv, SUPPORTED_VERSIONS};

/// The store used when the configuration names none: Calico's default etcd endpoint.
pub const DEFAULT_STORE: &str = "etcd://127.0.0.1:2379";
/// The default MTU of the pod interface (Calico's).
pub const DEFAULT_MTU: u32 = 1500;

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON or not the expected shape (CNI code 6).
    #[error("cannot decode the network configuration: {0}")]
    Decode(#[from] serde_json::Error),
    /// A version not in [`SUPPORTED_VERSIONS`] (code 1).
    #[error("cniVersion {version:?} is not supported (supported: {})", SUPPORTED_VERSIONS.join(", "))]
    Version {
        /// The version asked for.
        version: String,
    },
    /// A key's value is invalid (code 7).
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key names a feature this plugin does not have (code 2).
    #[error("{key}: {reason}")]
    Unsupported {
        /// The key.
        key: &'static str,
        /// What is not supported.
        reason: String,
    },
}

/// A boolean that Calico's configurations spell either as JSON `true` or as `"true"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn value(&self, key: &'static str) -> Result<bool, ConfigError> {
        match self {
            Flag::Bool(b) => Ok(*b),
            Flag::Text(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    key,
                    reason: format!("{s:?} is neither true nor false"),
                }),
            },
        }
    }
}

/// The `ipam` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct RawIpam {
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    ipv4_pools: Vec<String>,
    #[serde(default)]
    ipv6_pools: Vec<String>,
    #[serde(default)]
    assign_ipv4: Option<Flag>,
    #[serde(default)]
    assign_ipv6: Option<Flag>,
    #[serde(default)]
    gateway: Option<std::net::IpAddr>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct RawConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    nodename: Option<String>,
    #[serde(default)]
    ipam: Option<RawIpam>,
    #[serde(default)]
    etcd_endpoints: Option<String>,
    #[serde(default)]
    etcd_discovery_srv: Option<String>,
    #[serde(default)]
    etcd_key_file: Option<String>,
    #[serde(default)]
    etcd_cert_file: Option<String>,
    #[serde(default)]
    etcd_ca_cert_file: Option<String>,
    #[serde(default)]
    etcd_username: Option<String>,
    #[serde(default)]
    etcd_password: Option<String>,
    #[serde(default)]
    datastore_type: Option<String>,
    #[serde(default)]
    datastore: Option<String>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<serde_json::Value>,
}

/// The IPAM part of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpamConf {
    /// The IPAM plugin (`calico-ipam`, or a reference plugin such as `host-local`).
    pub plugin_type: String,
    /// Pools (names or CIDRs) to take IPv4 addresses from, in order; empty: any.
    pub ipv4_pools: Vec<String>,
    /// Pools to take IPv6 addresses from.
    pub ipv6_pools: Vec<String>,
    /// Whether to assign an IPv4 address (default true).
    pub assign_ipv4: bool,
    /// Whether to assign an IPv6 address (default false).
    pub assign_ipv6: bool,
    /// A gateway to report with each address of its family (`ipam.gateway`, our addition:
    /// Calico reports none; main plugins such as ptp need one, e.g. `169.254.1.1`).
    pub gateway: Option<std::net::IpAddr>,
}

/// A parsed and validated configuration (of `calico` or of `calico-ipam`'s main plugin).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: results are written in its format.
    pub cni_version: String,
    /// The network name (part of the IPAM handle).
    pub name: String,
    /// The main plugin's type.
    pub plugin_type: String,
    /// MTU of the pod interface.
    pub mtu: u32,
    /// `log_level` (lower case); `None` logs nothing.
    pub log_level: Option<String>,
    /// The node (Calico's host name for IPAM affinity).
    pub nodename: String,
    /// The IPAM section.
    pub ipam: IpamConf,
    /// The datastore as [`NetConf::datastore`] displays it (a store URL of the CLI's `--store`
    /// syntax, or `https://HOST:PORT,...` for etcd over TLS); never holds a secret.
    pub store_url: String,
    /// The datastore with its TLS material and credentials.
    pub datastore: DatastoreTarget,
    /// `prevResult`, as given.
    pub prev_result: Option<serde_json::Value>,
}

impl NetConf {
    /// Parses the configuration from stdin's bytes with no environment variables.
    /// `hostname` is the default node name (trimmed and lower-cased, as Calico does).
    pub fn parse(bytes: &[u8], hostname: &str) -> Result<NetConf, ConfigError> {
        Self::parse_with_env(bytes, hostname, &|_| None)
    }

    /// Parses the configuration; `env` looks up the environment's datastore variables.
    pub fn parse_with_env(
        bytes: &[u8],
        hostname: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NetConf, ConfigError> {
        let raw: RawConf = serde_json::from_slice(bytes)?;
        if !SUPPORTED_VERSIONS.contains(&raw.cni_version.as_str()) {
            return Err(ConfigError::Version {
                version: raw.cni_version,
            });
        }
        if raw.name.is_empty() {
            return Err(ConfigError::Invalid {
                key: "name",
                reason: "the network name is required".into(),
            });
        }
        let datastore = resolve_store(&raw, env)?;
        let ipam = raw.ipam.unwrap_or_default();
        let assign_ipv4 = match &ipam.assign_ipv4 {
            Some(f) => f.value("ipam.assign_ipv4")?,
            None => true,
        };
        let assign_ipv6 = match &ipam.assign_ipv6 {
            Some(f) => f.value("ipam.assign_ipv6")?,
            None => false,
        };
        let nodename = match raw.nodename.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => hostname.trim().to_ascii_lowercase(),
        };
        if nodename.is_empty() {
            return Err(ConfigError::Invalid {
                key: "nodename",
                reason: "no nodename and the host name is empty".into(),
            });
        }
        let mtu = raw.mtu.unwrap_or(DEFAULT_MTU);
        if !(68..=65535).contains(&mtu) {
            return Err(ConfigError::Invalid {
                key: "mtu",
                reason: format!("{mtu} is outside 68..=65535"),
            });
        }
        Ok(NetConf {
            cni_version: raw.cni_version,
            name: raw.name,
            plugin_type: raw.plugin_type,
            mtu,
            log_level: raw
                .log_level
                .map(|l| l.to_ascii_lowercase())
                .filter(|l| !l.is_empty() && l != "none"),
            nodename,
            ipam: IpamConf {
                plugin_type: ipam.plugin_type,
                ipv4_pools: ipam.ipv4_pools,
                ipv6_pools: ipam.ipv6_pools,
                assign_ipv4,
                assign_ipv6,
                gateway: ipam.gateway,
            },
            store_url: datastore.to_string(),
            datastore,
            prev_result: raw.prev_result,
        })
    }
}

/// The configuration keys that stand in for datastore variables.
const KEY_VARIABLES: [(&str, &str); 8] = [
    ("datastore_type", "DATASTORE_TYPE"),
    ("etcd_endpoints", "ETCD_ENDPOINTS"),
    ("etcd_discovery_srv", "ETCD_DISCOVERY_SRV"),
    ("etcd_key_file", "ETCD_KEY_FILE"),
    ("etcd_cert_file", "ETCD_CERT_FILE"),
    ("etcd_ca_cert_file", "ETCD_CA_CERT_FILE"),
    ("etcd_username", "ETCD_USERNAME"),
    ("etcd_password", "ETCD_PASSWORD"),
];

/// The endpoints used when neither the configuration nor the environment names any.
const DEFAULT_ENDPOINTS: &str = "http://127.0.0.1:2379";

/// Variables as Calico's plugin sees them after exporting the configuration's keys: a key
/// given (not empty) sets the bare variable; `CALICO_` variables and keys not given come
/// from the environment; `ETCD_ENDPOINTS` defaults to [`DEFAULT_ENDPOINTS`].
struct ConfInputs<'a> {
    keys: Vec<(&'static str, String)>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl ConfigInputs for ConfInputs<'_> {
    fn var(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.keys.iter().find(|(n, _)| *n == name) {
            return Some(v.clone());
        }
        (self.env)(name)
            .or_else(|| (name == "ETCD_ENDPOINTS").then(|| DEFAULT_ENDPOINTS.to_owned()))
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{}: the CNI plugin reads no datastore config file",
                path.display()
            ),
        ))
    }
}

/// The datastore of a configuration (see the module documentation).
fn resolve_store(
    raw: &RawConf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DatastoreTarget, ConfigError> {
    let values = [
        &raw.datastore_type,
        &raw.etcd_endpoints,
        &raw.etcd_discovery_srv,
        &raw.etcd_key_file,
        &raw.etcd_cert_file,
        &raw.etcd_ca_cert_file,
        &raw.etcd_username,
        &raw.etcd_password,
    ];
    let keys = KEY_VARIABLES
        .iter()
        .zip(values)
        .filter_map(|((_, var), v)| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| (*var, v.clone()))
        })
        .collect();
    let inputs = ConfInputs { keys, env };
    let request = DatastoreRequest {
        store: raw.datastore.as_deref().filter(|d| !d.is_empty()),
        config_file: None,
        store_variable: None,
        default_config_file: None,
        environment: true,
        default_store: DEFAULT_STORE,
    };
    match resolve_datastore(&request, &inputs) {
        Ok(r) => Ok(r.target),
        Err(e) => Err(config_error(e)),
    }
}

/// The configuration key a variable stands for (`datastore` when none does).
fn key_of(field: &str) -> &'static str {
    let bare = field.strip_prefix("CALICO_").unwrap_or(field);
    KEY_VARIABLES
        .iter()
        .find(|(_, var)| *var == bare)
        .map_or("datastore", |(key, _)| key)
}

fn config_error(e: DatastoreConfigError) -> ConfigError {
    match e {
        DatastoreConfigError::Unsupported { field, reason, .. } => ConfigError::Unsupported {
            key: key_of(&field),
            reason,
        },
        DatastoreConfigError::Invalid { field, reason, .. } => ConfigError::Invalid {
            key: key_of(&field),
            reason,
        },
        other => ConfigError::Invalid {
            key: "datastore",
            reason: other.to_string(),
        },
    }
}

/// Who a container is, as Calico names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The IPAM handle: `<network name>.<container ID>`.
    pub handle: String,
    /// The pod's namespace (`K8S_POD_NAMESPACE`).
    pub namespace: Option<String>,
    /// The pod's name (`K8S_POD_NAME`).
    pub pod: Option<String>,
    /// The node.
    pub node: String,
    /// The host side of the veth: `cali` + 11 hex digits of SHA-1(`namespace.pod`) for a
    /// pod, else `cali` + the first 11 characters of the container ID.
    pub host_ifname: String,
    /// A specific address asked for with `IP=` in `CNI_ARGS`.
    pub requested_ips: Vec<std::net::IpAddr>,
}

impl Workload {
    /// The identity of the container of `env` on network `conf`.
    pub fn new(conf: &NetConf, env: &CniEnv) -> Result<Workload, ConfigError> {
        let namespace = env
            .arg("K8S_POD_NAMESPACE")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let pod = env
            .arg("K8S_POD_NAME")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let host_ifname = match (&namespace, &pod) {
            (Some(ns), Some(p)) => calico_model::derived::interface_name("cali", ns, p),
            _ => {
                let id: String = env.container_id.chars().take(11).collect();
                format!("cali{id}")
            }
        };
        let requested_ips = match env.arg("IP") {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| {
                    s.trim().parse().map_err(|_| ConfigError::Invalid {
                        key: "CNI_ARGS IP",
                        reason: format!("{s:?} is not an IP address"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Workload {
            handle: format!("{}.{}", conf.name, env.container_id),
            namespace,
            pod,
            node: conf.nodename.clone(),
            host_ifname,
            requested_ips,
        })
    }

    /// The owner attributes stored with each address, as Calico's plugin stores them:
    /// `node`, `namespace` and `pod` (for pods) and `timestamp` (`now`, Unix nanoseconds, in
    /// Go's `time.Time.String()` form for UTC, e.g. `2023-11-14 22:13:20.5 +0000 UTC`).
    pub fn attributes(&self, now: u64) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("node".to_owned(), self.node.clone());
        a.insert("timestamp".to_owned(), go_utc_timestamp(now));
        if let (Some(ns), Some(p)) = (&self.namespace, &self.pod) {
            a.insert("namespace".to_owned(), ns.clone());
            a.insert("pod".to_owned(), p.clone());
        }
        a
    }
}

/// Unix nanoseconds as Go prints a UTC `time.Time`: `YYYY-MM-DD hh:mm:ss[.fraction] +0000
/// UTC`, the fraction without trailing zeros.
pub fn go_utc_timestamp(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian; eras of 400 years).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let fraction = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}").trim_end_matches('0').to_owned()
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::spec::{CniEnv, Command};

    const CALICO: &str = r#"{
        "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
        "log_level": "INFO", "mtu": 1440, "nodename": "node-a",
        "etcd_endpoints": "http://10.0.0.1:2379,http://10.0.0.2",
        "ipam": {"type": "calico-ipam", "assign_ipv6": "true", "ipv4_pools": ["default-ipv4-ippool"]},
        "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "/x"}
    }"#;

    #[test]
    fn parses_calicos_conflist_entry() {
        let c = NetConf::parse(CALICO.as_bytes(), "ignored").unwrap();
        assert_eq!(c.mtu, 1440);
        assert_eq!(c.nodename, "node-a");
        assert_eq!(c.log_level.as_deref(), Some("info"));
        assert_eq!(c.store_url, "etcd://10.0.0.1:2379,10.0.0.2:2379");
        assert_eq!(c.ipam.plugin_type, "calico-ipam");
        assert!(c.ipam.assign_ipv4 && c.ipam.assign_ipv6);
        assert_eq!(c.ipam.ipv4_pools, ["default-ipv4-ippool"]);
    }

    #[test]
    fn defaults_and_datastore_key() {
        let c = NetConf::parse(
            br#"{"cniVersion":"0.3.1","name":"n","type":"calico","datastore":"file:/tmp/x.db"}"#,
            " Host-1\n",
        )
        .unwrap();
        assert_eq!(c.nodename, "host-1");
        assert_eq!(c.mtu, DEFAULT_MTU);
        assert_eq!(c.store_url, "file:/tmp/x.db");
        assert!(c.ipam.assign_ipv4 && !c.ipam.assign_ipv6);
        let d = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n"}"#, "h").unwrap();
        assert_eq!(d.store_url, DEFAULT_STORE);
    }

    #[test]
    fn rejections() {
        let bad = |s: &str| NetConf::parse(s.as_bytes(), "h").unwrap_err();
        assert!(matches!(bad("{"), ConfigError::Decode(_)));
        assert!(matches!(
            bad(r#"{"cniVersion":"9.9.9","name":"n"}"#),
            ConfigError::Version { .. }
        ));
        assert!(matches!(
            bad(r#"{"cniVersion":"1.0.0"}"#),
            ConfigError::Invalid { key: "name", .. }
        ));
        assert!(matches!(
            bad(r#"{"cniVersion":"1.0.0","name":"n","datastore":"ftp:x"}"#),
            ConfigError::Invalid {
                key: "datastore",
                ..
            }
        ));
        assert!(matches!(
            bad(r#"{"cniVersion":"1.0.0","name":"n","etcd_endpoints":"ftp://h:1"}"#),
            ConfigError::Invalid {
                key: "etcd_endpoints",
                ..
            }
        ));
        assert!(matches!(
            bad(
                r#"{"cniVersion":"1.0.0","name":"n","etcd_endpoints":"https://h:1","etcd_cert_file":"/c"}"#
            ),
            ConfigError::Invalid {
                key: "etcd_key_file",
                ..
            }
        ));
        assert!(matches!(
            bad(r#"{"cniVersion":"1.0.0","name":"n","datastore_type":"kubernetes"}"#),
            ConfigError::Unsupported { .. }
        ));
        assert!(matches!(
            bad(r#"{"cniVersion":"1.0.0","name":"n","ipam":{"assign_ipv4":"maybe"}}"#),
            ConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn etcd_tls_and_credentials_come_from_the_keys_then_the_environment() {
        use calico_datastore::{EtcdScheme, Pem};
        let conf = br#"{"cniVersion":"1.0.0","name":"n","type":"calico",
            "etcd_endpoints":"https://10.0.0.1:2379","etcd_ca_cert_file":"/calico-secrets/etcd-ca",
            "etcd_cert_file":"/calico-secrets/etcd-cert","etcd_key_file":"/calico-secrets/etcd-key",
            "etcd_username":"calico","etcd_password":"pw"}"#;
        let vars = [
            ("ETCD_ENDPOINTS", "https://env:1"),
            ("ETCD_CA_CERT_FILE", "/env-ca"),
        ];
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let c = NetConf::parse_with_env(conf, "h", &env).unwrap();
        let DatastoreTarget::Etcd(e) = &c.datastore else {
            panic!("{:?}", c.datastore)
        };
        assert_eq!(e.endpoints[0].scheme, EtcdScheme::Https);
        assert_eq!(c.store_url, "https://10.0.0.1:2379");
        assert_eq!(e.tls.ca, Some(Pem::File("/calico-secrets/etcd-ca".into())));
        assert_eq!(e.credentials.as_ref().unwrap().username, "calico");
        assert!(!c.store_url.contains("pw"));
        // Keys not given come from the environment.
        let only =
            br#"{"cniVersion":"1.0.0","name":"n","etcd_cert_file":"/c","etcd_key_file":"/k"}"#;
        let c = NetConf::parse_with_env(only, "h", &env).unwrap();
        let DatastoreTarget::Etcd(e) = &c.datastore else {
            panic!("{:?}", c.datastore)
        };
        assert_eq!(c.store_url, "https://env:1");
        assert_eq!(e.tls.ca, Some(Pem::File("/env-ca".into())));
        assert!(e.tls.client.is_some());
        // CALICO_ variables win over the keys, as in Calico's plugin.
        let pref = |k: &str| (k == "CALICO_ETCD_ENDPOINTS").then(|| "http://pref:2".to_owned());
        let c = NetConf::parse_with_env(conf, "h", &pref).unwrap();
        assert_eq!(c.store_url, "http://pref:2");
        // A `datastore` URL is used alone.
        let url = br#"{"cniVersion":"1.0.0","name":"n","datastore":"memory:","etcd_endpoints":"https://x:1"}"#;
        assert_eq!(
            NetConf::parse_with_env(url, "h", &env).unwrap().datastore,
            DatastoreTarget::Memory
        );
    }

    fn env(args: &str, id: &str) -> CniEnv {
        CniEnv {
            command: Command::Add,
            container_id: id.into(),
            netns: None,
            ifname: "eth0".into(),
            args: crate::spec::parse_args(args).unwrap(),
            path: vec![],
        }
    }

    #[test]
    fn workload_identity_follows_calico() {
        let c = NetConf::parse(CALICO.as_bytes(), "h").unwrap();
        let w = Workload::new(
            &c,
            &env(
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
                "0123456789abcdef",
            ),
        )
        .unwrap();
        assert_eq!(w.handle, "k8s-pod-network.0123456789abcdef");
        assert_eq!(
            w.host_ifname,
            calico_model::derived::interface_name("cali", "default", "web-0")
        );
        assert_eq!(w.host_ifname.len(), 15);
        assert_eq!(w.attributes(0)["pod"], "web-0");
        assert_eq!(
            w.attributes(0)["timestamp"],
            "1970-01-01 00:00:00 +0000 UTC"
        );
        let plain = Workload::new(&c, &env("", "0123456789abcdef")).unwrap();
        assert_eq!(plain.host_ifname, "cali0123456789a");
        assert!(!plain.attributes(0).contains_key("pod"));
        let ip = Workload::new(&c, &env("IP=10.1.2.3", "x")).unwrap();
        assert_eq!(
            ip.requested_ips,
            ["10.1.2.3".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(Workload::new(&c, &env("IP=nope", "x")).is_err());
    }

    #[test]
    fn timestamps_print_as_go_does() {
        assert_eq!(
            go_utc_timestamp(1_700_000_000_123_456_789),
            "2023-11-14 22:13:20.123456789 +0000 UTC"
        );
        assert_eq!(
            go_utc_timestamp(951_782_400_500_000_000),
            "2000-02-29 00:00:00.5 +0000 UTC"
        );
        assert_eq!(
            go_utc_timestamp(4_107_542_399_000_000_000),
            "2100-02-28 23:59:59 +0000 UTC"
        );
    }
}
