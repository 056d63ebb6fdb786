//! The CNI 1.0.0 contract as data: the `CNI_*` environment ([`CniEnv`]), the parts of the
//! network configuration every plugin reads ([`NetConfBase`]), results ([`CniResult`]),
//! errors ([`CniError`], [`ErrorCode`]) and the `VERSION` answer ([`VersionInfo`]).
//!
//! Pure: parsing takes the environment as a lookup function and never reads the process's.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The version this crate speaks.
pub const CNI_VERSION: &str = "1.0.0";

/// The versions a configuration may name (results are written in that version's format).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The spec's well-known error codes (1–99 are reserved by the spec; 100+ are ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnvironment,
    /// 5: I/O failure.
    Io,
    /// 6: failed to decode content.
    Decode,
    /// 7: invalid network configuration.
    InvalidConfig,
    /// 11: try again later.
    TryAgainLater,
    /// 100+: a plugin-specific error.
    Plugin(u32),
}

/// Our plugin-specific code for an IPAM failure (no address available, store failure).
pub const CODE_IPAM: u32 = 100;
/// Our plugin-specific code for a dataplane failure (links, addresses, routes, sysctls).
pub const CODE_DATAPLANE: u32 = 101;
/// Our plugin-specific code for a failed `CHECK`.
pub const CODE_CHECK: u32 = 102;

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::Plugin(c) => c,
        }
    }
}

/// The error object a plugin prints on stdout when it fails (spec "Error").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    /// The version of the configuration (or [`CNI_VERSION`]).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The code.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with `code`, `msg` and `details`, in version [`CNI_VERSION`].
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            cni_version: CNI_VERSION.to_owned(),
            code: code.code(),
            msg: msg.into(),
            details: details.into(),
        }
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// The operation a plugin is asked to perform (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Add the container to the network.
    Add,
    /// Remove the container from the network.
    Del,
    /// Check the container's networking is as expected.
    Check,
    /// Report the versions supported.
    Version,
}

impl Command {
    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }
}

/// Why the environment is unusable (code 4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is missing or empty.
    #[error("{var} is required for {command}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// The command.
        command: &'static str,
    },
    /// `CNI_COMMAND` names no command of CNI 1.0.0.
    #[error("unknown CNI_COMMAND {0:?}")]
    UnknownCommand(String),
    /// A variable's value is invalid.
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The `CNI_*` variables, parsed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for `VERSION`).
    pub container_id: String,
    /// `CNI_NETNS` (the path of the container's network namespace; optional for `DEL`).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (empty for `VERSION`).
    pub ifname: String,
    /// `CNI_ARGS` as `KEY=VALUE` pairs, in order.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Parses the environment given as a lookup (`|k| std::env::var(k).ok()` in a plugin).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, EnvError> {
        let val = |k: &str| get(k).filter(|v| !v.is_empty());
        let command = match val("CNI_COMMAND").as_deref() {
            None => {
                return Err(EnvError::Missing {
                    var: "CNI_COMMAND",
                    command: "any command",
                });
            }
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some(other) => return Err(EnvError::UnknownCommand(other.to_owned())),
        };
        let path = val("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        if command == Command::Version {
            return Ok(CniEnv {
                command,
                container_id: String::new(),
                netns: None,
                ifname: String::new(),
                args: Vec::new(),
                path,
            });
        }
        let cmd = command.as_str();
        let required = |var: &'static str| val(var).ok_or(EnvError::Missing { var, command: cmd });
        let container_id = required("CNI_CONTAINERID")?;
        validate_container_id(&container_id)?;
        let ifname = required("CNI_IFNAME")?;
        validate_ifname(&ifname)?;
        let netns = match command {
            Command::Del => val("CNI_NETNS").map(PathBuf::from),
            _ => Some(PathBuf::from(required("CNI_NETNS")?)),
        };
        if val("CNI_PATH").is_none() {
            return Err(EnvError::Missing {
                var: "CNI_PATH",
                command: cmd,
            });
        }
        let args = parse_args(val("CNI_ARGS").as_deref().unwrap_or(""))?;
        Ok(CniEnv {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// The value of `CNI_ARGS` key `key`, if given.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `CNI_ARGS`: `KEY1=VAL1;KEY2=VAL2`.
pub fn parse_args(s: &str) -> Result<Vec<(String, String)>, EnvError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(EnvError::Invalid {
                var: "CNI_ARGS",
                value: s.to_owned(),
                reason: "each item must be KEY=VALUE, items separated by ';'",
            }),
        })
        .collect()
}

/// Checks a container ID: alphanumeric first, then alphanumerics, `_`, `.` and `-`.
pub fn validate_container_id(id: &str) -> Result<(), EnvError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EnvError::Invalid {
            var: "CNI_CONTAINERID",
            value: id.to_owned(),
            reason: "must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
        })
    }
}

/// Checks an interface name: 1–15 bytes, not `.` or `..`, without `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), EnvError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(EnvError::Invalid {
            var: "CNI_IFNAME",
            value: name.to_owned(),
            reason: "must be 1-15 bytes, not '.' or '..', without '/', ':' or whitespace",
        })
    }
}

/// The keys of a network configuration every plugin reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NetConfBase {
    /// `cniVersion`.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `type`.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// `prevResult` (the previous plugin's result in a chain), as given.
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
}

/// An interface in a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The network namespace path of a container interface (absent for host interfaces).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address in a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop (the default gateway when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings in a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        *self == Dns::default()
    }
}

/// A successful `ADD`'s result (also a chained plugin's `prevResult`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Version of the format.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created or used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// An empty result in version `cni_version`.
    pub fn new(cni_version: &str) -> CniResult {
        CniResult {
            cni_version: cni_version.to_owned(),
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }

    /// The result as JSON in its `cni_version`'s format: 0.3.x and 0.4.0 results carry each
    /// address's `version` (`"4"` or `"6"`), 1.0.0 results do not.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if self.cni_version != CNI_VERSION
            && let Some(ips) = v.get_mut("ips").and_then(|i| i.as_array_mut())
        {
            for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                if let Some(o) = ip.as_object_mut() {
                    let fam = if cfg.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".to_owned(), fam.into());
                }
            }
        }
        v
    }

    /// Decodes a result of any supported version (a `prevResult` or a delegated plugin's
    /// answer); unknown keys (`version`, `mtu`, ...) are ignored.
    pub fn from_json(v: &serde_json::Value) -> Result<CniResult, serde_json::Error> {
        CniResult::deserialize(v)
    }
}

/// The answer to `VERSION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version of this answer's format.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Versions a configuration may name.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl Default for VersionInfo {
    fn default() -> Self {
        VersionInfo {
            cni_version: CNI_VERSION.to_owned(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Parses `MAJOR.MINOR.PATCH`.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let out = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(out)
}

/// Whether configurations of `version` may ask for `CHECK` (0.4.0 and later).
pub fn supports_check(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= (0, 4, 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, EnvError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CniEnv::from_lookup(|k| m.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
        ),
    ];

    #[test]
    fn parses_an_add_environment() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "abc123");
        assert_eq!(e.netns.as_deref(), Some("/var/run/netns/x".as_ref()));
        assert_eq!(e.path.len(), 2);
        assert_eq!(e.arg("K8S_POD_NAME"), Some("p"));
        assert_eq!(e.arg("K8S_POD_NAMESPACE"), Some("ns"));
        assert_eq!(e.arg("missing"), None);
    }

    #[test]
    fn missing_and_invalid_variables_are_reported() {
        for drop in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            let v: Vec<_> = ADD.iter().copied().filter(|(k, _)| *k != drop).collect();
            assert!(
                matches!(env(&v), Err(EnvError::Missing { var, .. }) if var == drop),
                "{drop}"
            );
        }
        let mut v = ADD.to_vec();
        v[0] = ("CNI_COMMAND", "GC");
        assert!(matches!(env(&v), Err(EnvError::UnknownCommand(_))));
        let mut v = ADD.to_vec();
        v[3] = ("CNI_IFNAME", "a-very-long-interface");
        assert!(matches!(
            env(&v),
            Err(EnvError::Invalid {
                var: "CNI_IFNAME",
                ..
            })
        ));
        let mut v = ADD.to_vec();
        v[1] = ("CNI_CONTAINERID", "-bad/id");
        assert!(matches!(
            env(&v),
            Err(EnvError::Invalid {
                var: "CNI_CONTAINERID",
                ..
            })
        ));
        let mut v = ADD.to_vec();
        v[5] = ("CNI_ARGS", "novalue");
        assert!(matches!(
            env(&v),
            Err(EnvError::Invalid {
                var: "CNI_ARGS",
                ..
            })
        ));
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        let v: Vec<_> = ADD
            .iter()
            .copied()
            .map(|(k, v)| {
                if k == "CNI_COMMAND" {
                    (k, "DEL")
                } else {
                    (k, v)
                }
            })
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        assert_eq!(env(&v).unwrap().netns, None);
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }

    #[test]
    fn results_follow_their_version() {
        let mut r = CniResult::new("1.0.0");
        r.ips.push(IpConfig {
            address: "10.0.0.1/32".parse().unwrap(),
            gateway: None,
            interface: Some(1),
        });
        r.routes.push(Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("169.254.1.1".parse().unwrap()),
        });
        let j = r.to_json();
        assert_eq!(j["ips"][0]["address"], "10.0.0.1/32");
        assert_eq!(j["ips"][0]["interface"], 1);
        assert!(j["ips"][0].get("version").is_none());
        assert!(j.get("dns").is_none());
        r.cni_version = "0.4.0".into();
        assert_eq!(r.to_json()["ips"][0]["version"], "4");
        let back = CniResult::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn error_codes_and_json() {
        let e = CniError::new(ErrorCode::InvalidConfig, "bad", "");
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad"})
        );
        assert_eq!(ErrorCode::TryAgainLater.code(), 11);
        assert_eq!(ErrorCode::Plugin(CODE_IPAM).code(), 100);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.4.0"), Some((0, 4, 0)));
        assert_eq!(parse_version("1.0"), None);
        assert!(supports_check("1.0.0") && supports_check("0.4.0") && !supports_check("0.3.1"));
        let v = VersionInfo::default();
        assert!(v.supported_versions.contains(&"1.0.0".to_owned()));
    }
}
