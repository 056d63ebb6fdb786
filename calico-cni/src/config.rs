//! Calico's network configuration (the `calico` entry of a conflist) and the workload
//! identity derived from it and the CNI environment.
//!
//! Keys: `type: calico`, `mtu` (default 1500), `log_level`, `nodename` (default: the host
//! name), `ipam: {type: calico-ipam, ipv4_pools, ipv6_pools, assign_ipv4, assign_ipv6}`,
//! `etcd_endpoints` (`http://HOST:PORT[,...]`, as in Calico's conflist) and `datastore`
//! (`file:PATH`, `etcd://HOST:PORT[,...]` or `memory:`, the URLs of the CLI's `--store`).
//! Other keys are ignored, as Calico does.

use std::collections::BTreeMap;

use calico_datastore::StoreUrl;
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
    /// The store, as a URL of the CLI's `--store` syntax.
    pub store_url: String,
    /// `prevResult`, as given.
    pub prev_result: Option<serde_json::Value>,
}

impl NetConf {
    /// Parses the configuration from stdin's bytes. `hostname` is the default node name
    /// (trimmed and lower-cased, as Calico does).
    pub fn parse(bytes: &[u8], hostname: &str) -> Result<NetConf, ConfigError> {
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
        let store_url = store_url(
            raw.datastore.as_deref(),
            raw.etcd_endpoints.as_deref(),
            raw.datastore_type.as_deref(),
        )?;
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
            store_url,
            prev_result: raw.prev_result,
        })
    }
}

/// The store URL: `datastore` if given, else `etcd_endpoints` converted
/// (`http://h1:2379,http://h2:2379` → `etcd://h1:2379,h2:2379`), else [`DEFAULT_STORE`].
/// `datastore_type: kubernetes` is not supported.
pub fn store_url(
    datastore: Option<&str>,
    etcd_endpoints: Option<&str>,
    datastore_type: Option<&str>,
) -> Result<String, ConfigError> {
    if let Some(t) = datastore_type.filter(|t| !t.is_empty() && *t != "etcdv3") {
        return Err(ConfigError::Unsupported {
            key: "datastore_type",
            reason: format!("{t:?}: only etcdv3 (or a `datastore` URL) is supported"),
        });
    }
    let url = match (datastore.filter(|d| !d.is_empty()), etcd_endpoints) {
        (Some(d), _) => d.to_owned(),
        (None, Some(e)) if !e.trim().is_empty() => etcd_url(e)?,
        _ => DEFAULT_STORE.to_owned(),
    };
    StoreUrl::parse(&url).map_err(|e| ConfigError::Invalid {
        key: "datastore",
        reason: e.to_string(),
    })?;
    Ok(url)
}

fn etcd_url(endpoints: &str) -> Result<String, ConfigError> {
    let mut members = Vec::new();
    for ep in endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let rest = if let Some(r) = ep.strip_prefix("http://") {
            r
        } else if ep.starts_with("https://") {
            return Err(ConfigError::Unsupported {
                key: "etcd_endpoints",
                reason: format!("{ep}: TLS to etcd is not supported"),
            });
        } else {
            ep
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(ConfigError::Invalid {
                key: "etcd_endpoints",
                reason: format!("{ep:?} is not http://HOST:PORT"),
            });
        }
        let has_port = match rest.rsplit_once(':') {
            Some((h, p)) => !h.ends_with(':') && p.parse::<u16>().is_ok() && !p.is_empty(),
            None => false,
        };
        members.push(if has_port {
            rest.to_owned()
        } else {
            format!("{rest}:2379")
        });
    }
    Ok(format!("etcd://{}", members.join(",")))
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
            bad(r#"{"cniVersion":"1.0.0","name":"n","etcd_endpoints":"https://h:1"}"#),
            ConfigError::Unsupported { .. }
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
