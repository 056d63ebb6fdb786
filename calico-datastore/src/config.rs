//! Which datastore to use and how to connect to it, resolved the way calicoctl does it:
//! an explicit store URL, a `CalicoAPIConfig` file, or the calicoctl environment.
//!
//! [`resolve_datastore`] is the one place that decides; the CLI, the CNI plugin and the node
//! agent call it with their own [`DatastoreRequest`]. It reads variables and files only
//! through [`ConfigInputs`], so it is pure and testable.
//!
//! Order (the first that applies is used alone):
//!
//! 1. an explicit store URL (`--store URL`, or the CNI `datastore` key);
//! 2. an explicit config file (`--config FILE`; a missing file is an error);
//! 3. the store URL variable (`CALICO_STORE`), when the request names one;
//! 4. the default config file (`/etc/calico/calicoctl.cfg`), when it exists;
//! 5. the calicoctl environment, when `DATASTORE_TYPE` or `ETCD_ENDPOINTS` is set;
//! 6. the request's default store URL.
//!
//! A config file in use is used alone: the environment is not consulted then (calicoctl
//! reads one or the other). Each calicoctl variable is looked up first as `CALICO_<NAME>`,
//! then as `<NAME>`; a `CALICO_` variable that is set wins even when it is empty, as in
//! calicoctl.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::connection::{
    ClientIdentity, DatastoreTarget, EtcdConnection, EtcdCredentials, EtcdEndpoint, EtcdScheme,
    EtcdTls, Pem,
};
use crate::url::{StoreUrl, parse_member};

/// calicoctl's default config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/calico/calicoctl.cfg";

/// The etcd client port used when an endpoint names none.
pub const DEFAULT_ETCD_PORT: u16 = 2379;

/// Where [`resolve_datastore`] reads variables and files.
pub trait ConfigInputs {
    /// The value of an environment variable, if it is set (possibly empty).
    fn var(&self, name: &str) -> Option<String>;
    /// The contents of a file.
    fn read_file(&self, path: &Path) -> io::Result<String>;
}

/// The process environment and the file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemInputs;

impl ConfigInputs for SystemInputs {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// What a program asks [`resolve_datastore`] for.
#[derive(Clone, Copy, Debug)]
pub struct DatastoreRequest<'a> {
    /// A store URL given explicitly (`--store`, the CNI `datastore` key).
    pub store: Option<&'a str>,
    /// A config file given explicitly (`--config`); it must exist.
    pub config_file: Option<&'a Path>,
    /// A variable naming a store URL (`CALICO_STORE`), read after an explicit config file.
    pub store_variable: Option<&'a str>,
    /// The config file used when it exists (`/etc/calico/calicoctl.cfg` for the CLI).
    pub default_config_file: Option<&'a Path>,
    /// Whether the calicoctl variables (`DATASTORE_TYPE`, `ETCD_ENDPOINTS`, ...) are read.
    pub environment: bool,
    /// The store URL when nothing is configured.
    pub default_store: &'a str,
}

impl<'a> DatastoreRequest<'a> {
    /// The `calico` CLI: `--store`, `--config`, `CALICO_STORE`, the default config file, the
    /// environment, else `file:./calico.db`.
    pub fn cli(store: Option<&'a str>, config_file: Option<&'a Path>) -> Self {
        DatastoreRequest {
            store,
            config_file,
            store_variable: Some("CALICO_STORE"),
            default_config_file: Some(Path::new(DEFAULT_CONFIG_FILE)),
            environment: true,
            default_store: crate::url::DEFAULT_STORE_URL,
        }
    }
}

/// Where the resolved datastore came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatastoreSource {
    /// The explicit store URL.
    Store,
    /// The store URL variable (its name).
    StoreVariable(String),
    /// A `CalicoAPIConfig` file.
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Whether it was the default path (not given explicitly).
        default: bool,
    },
    /// The calicoctl environment: the variables that were set.
    Environment {
        /// Names of the variables read (as found: `CALICO_ETCD_ENDPOINTS` or `ETCD_ENDPOINTS`).
        variables: Vec<String>,
    },
    /// Nothing was configured: the default store.
    Default,
}

impl fmt::Display for DatastoreSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatastoreSource::Store => f.write_str("the store URL given (--store)"),
            DatastoreSource::StoreVariable(v) => write!(f, "${v}"),
            DatastoreSource::ConfigFile {
                path,
                default: false,
            } => write!(f, "config file {} (--config)", path.display()),
            DatastoreSource::ConfigFile {
                path,
                default: true,
            } => write!(f, "config file {} (default path)", path.display()),
            DatastoreSource::Environment { variables } => {
                write!(f, "environment ({})", variables.join(", "))
            }
            DatastoreSource::Default => f.write_str("default (nothing configured)"),
        }
    }
}

/// The datastore to use and where that was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedDatastore {
    /// What to connect to.
    pub target: DatastoreTarget,
    /// Where it was configured.
    pub source: DatastoreSource,
}

/// Why the datastore configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatastoreConfigError {
    /// A config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A config file is not a valid `CalicoAPIConfig`.
    #[error("config file {}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the field path when known).
        reason: String,
    },
    /// A store URL is malformed.
    #[error("{origin}: {source}")]
    Url {
        /// Where the URL came from.
        origin: String,
        /// The parse error.
        #[source]
        source: Box<crate::error::OpenError>,
    },
    /// A setting has an invalid value.
    #[error("{origin}: {field}: {reason}")]
    Invalid {
        /// The file or environment.
        origin: String,
        /// The field (`spec.etcdEndpoints`) or variable (`ETCD_ENDPOINTS`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting names something this program does not support.
    #[error("{origin}: {field}: {reason}")]
    Unsupported {
        /// The file or environment.
        origin: String,
        /// The field or variable.
        field: String,
        /// What is not supported.
        reason: String,
    },
}

/// Resolves which datastore to use (see the module documentation for the order).
pub fn resolve_datastore(
    request: &DatastoreRequest<'_>,
    inputs: &dyn ConfigInputs,
) -> Result<ResolvedDatastore, DatastoreConfigError> {
    if let Some(url) = request.store {
        return from_url(url, "--store", DatastoreSource::Store);
    }
    if let Some(path) = request.config_file {
        let text = inputs
            .read_file(path)
            .map_err(|source| DatastoreConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        return from_file(path, &text, false);
    }
    if let Some(var) = request.store_variable
        && let Some(url) = inputs.var(var).filter(|v| !v.is_empty())
    {
        return from_url(
            &url,
            &format!("${var}"),
            DatastoreSource::StoreVariable(var.to_owned()),
        );
    }
    if let Some(path) = request.default_config_file {
        match inputs.read_file(path) {
            Ok(text) => return from_file(path, &text, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DatastoreConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    if request.environment
        && let Some(resolved) = from_environment(inputs)?
    {
        return Ok(resolved);
    }
    from_url(
        request.default_store,
        "the default store",
        DatastoreSource::Default,
    )
}

fn from_url(
    url: &str,
    origin: &str,
    source: DatastoreSource,
) -> Result<ResolvedDatastore, DatastoreConfigError> {
    let parsed = StoreUrl::parse(url).map_err(|e| DatastoreConfigError::Url {
        origin: origin.to_owned(),
        source: Box::new(e),
    })?;
    Ok(ResolvedDatastore {
        target: DatastoreTarget::from_url(&parsed),
        source,
    })
}

/// One setting of a `CalicoAPIConfig` spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    DatastoreType,
    EtcdEndpoints,
    EtcdDiscoverySrv,
    EtcdUsername,
    EtcdPassword,
    EtcdKeyFile,
    EtcdCertFile,
    EtcdCaCertFile,
    EtcdKey,
    EtcdCert,
    EtcdCaCert,
}

impl Field {
    const ALL: [Field; 11] = [
        Field::DatastoreType,
        Field::EtcdEndpoints,
        Field::EtcdDiscoverySrv,
        Field::EtcdUsername,
        Field::EtcdPassword,
        Field::EtcdKeyFile,
        Field::EtcdCertFile,
        Field::EtcdCaCertFile,
        Field::EtcdKey,
        Field::EtcdCert,
        Field::EtcdCaCert,
    ];

    /// The spec field name in a config file.
    fn spec_name(self) -> &'static str {
        match self {
            Field::DatastoreType => "datastoreType",
            Field::EtcdEndpoints => "etcdEndpoints",
            Field::EtcdDiscoverySrv => "etcdDiscoverySrv",
            Field::EtcdUsername => "etcdUsername",
            Field::EtcdPassword => "etcdPassword",
            Field::EtcdKeyFile => "etcdKeyFile",
            Field::EtcdCertFile => "etcdCertFile",
            Field::EtcdCaCertFile => "etcdCACertFile",
            Field::EtcdKey => "etcdKey",
            Field::EtcdCert => "etcdCert",
            Field::EtcdCaCert => "etcdCACert",
        }
    }

    /// The environment variable (without the `CALICO_` prefix); inline PEM has none.
    fn env_name(self) -> Option<&'static str> {
        Some(match self {
            Field::DatastoreType => "DATASTORE_TYPE",
            Field::EtcdEndpoints => "ETCD_ENDPOINTS",
            Field::EtcdDiscoverySrv => "ETCD_DISCOVERY_SRV",
            Field::EtcdUsername => "ETCD_USERNAME",
            Field::EtcdPassword => "ETCD_PASSWORD",
            Field::EtcdKeyFile => "ETCD_KEY_FILE",
            Field::EtcdCertFile => "ETCD_CERT_FILE",
            Field::EtcdCaCertFile => "ETCD_CA_CERT_FILE",
            Field::EtcdKey | Field::EtcdCert | Field::EtcdCaCert => return None,
        })
    }
}

/// The settings found, each with the name it was found under (for messages).
struct Settings {
    origin: String,
    values: Vec<(Field, String, String)>,
}

impl Settings {
    fn get(&self, field: Field) -> Option<(&str, &str)> {
        self.values
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, value, name)| (value.as_str(), name.as_str()))
    }

    /// A non-empty value (calicoctl treats empty strings as unset).
    fn value(&self, field: Field) -> Option<(&str, &str)> {
        self.get(field).filter(|(v, _)| !v.trim().is_empty())
    }

    fn invalid(&self, name: &str, reason: impl Into<String>) -> DatastoreConfigError {
        DatastoreConfigError::Invalid {
            origin: self.origin.clone(),
            field: name.to_owned(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, name: &str, reason: impl Into<String>) -> DatastoreConfigError {
        DatastoreConfigError::Unsupported {
            origin: self.origin.clone(),
            field: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The spec of a `CalicoAPIConfig`: the etcd fields, and the Kubernetes ones (accepted and
/// unused, so that a calicoctl file is not rejected for them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(rename = "datastoreType")]
    datastore_type: Option<String>,
    #[serde(rename = "etcdEndpoints")]
    etcd_endpoints: Option<String>,
    #[serde(rename = "etcdDiscoverySrv")]
    etcd_discovery_srv: Option<String>,
    #[serde(rename = "etcdUsername")]
    etcd_username: Option<String>,
    #[serde(rename = "etcdPassword")]
    etcd_password: Option<String>,
    #[serde(rename = "etcdKeyFile")]
    etcd_key_file: Option<String>,
    #[serde(rename = "etcdCertFile")]
    etcd_cert_file: Option<String>,
    #[serde(rename = "etcdCACertFile")]
    etcd_ca_cert_file: Option<String>,
    #[serde(rename = "etcdKey")]
    etcd_key: Option<String>,
    #[serde(rename = "etcdCert")]
    etcd_cert: Option<String>,
    #[serde(rename = "etcdCACert")]
    etcd_ca_cert: Option<String>,
    // Kubernetes datastore settings: valid in the file, unused here.
    #[serde(rename = "kubeconfig")]
    _kubeconfig: Option<serde_yaml_ng::Value>,
    #[serde(rename = "kubeconfigInline")]
    _kubeconfig_inline: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sAPIEndpoint")]
    _k8s_api_endpoint: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sKeyFile")]
    _k8s_key_file: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sCertFile")]
    _k8s_cert_file: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sCAFile")]
    _k8s_ca_file: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sAPIToken")]
    _k8s_api_token: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sInsecureSkipTLSVerify")]
    _k8s_insecure: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sDisableNodePoll")]
    _k8s_disable_node_poll: Option<serde_yaml_ng::Value>,
    #[serde(rename = "usePodCIDR")]
    _use_pod_cidr: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sClientQPS")]
    _k8s_client_qps: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sClientBurst")]
    _k8s_client_burst: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sCurrentContext")]
    _k8s_current_context: Option<serde_yaml_ng::Value>,
    #[serde(rename = "calicoAPIGroup")]
    _calico_api_group: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    spec: Option<RawSpec>,
}

/// Parses a `CalicoAPIConfig` (YAML or JSON) and builds the target it configures.
fn from_file(
    path: &Path,
    text: &str,
    default: bool,
) -> Result<ResolvedDatastore, DatastoreConfigError> {
    let parse = |reason: String| DatastoreConfigError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        parse(if at == "." {
            e.into_inner().to_string()
        } else {
            format!("{at}: {}", e.into_inner())
        })
    })?;
    if raw.api_version != "projectcalico.org/v3" {
        return Err(parse(format!(
            "apiVersion: expected projectcalico.org/v3, got {:?}",
            raw.api_version
        )));
    }
    if raw.kind != "CalicoAPIConfig" {
        return Err(parse(format!(
            "kind: expected CalicoAPIConfig, got {:?}",
            raw.kind
        )));
    }
    if let Some(m) = &raw.metadata
        && !(m.is_mapping() || m.is_null())
    {
        return Err(parse("metadata: expected a mapping".to_owned()));
    }
    let spec = raw.spec.unwrap_or_default();
    let mut values = Vec::new();
    for field in Field::ALL {
        let value = match field {
            Field::DatastoreType => &spec.datastore_type,
            Field::EtcdEndpoints => &spec.etcd_endpoints,
            Field::EtcdDiscoverySrv => &spec.etcd_discovery_srv,
            Field::EtcdUsername => &spec.etcd_username,
            Field::EtcdPassword => &spec.etcd_password,
            Field::EtcdKeyFile => &spec.etcd_key_file,
            Field::EtcdCertFile => &spec.etcd_cert_file,
            Field::EtcdCaCertFile => &spec.etcd_ca_cert_file,
            Field::EtcdKey => &spec.etcd_key,
            Field::EtcdCert => &spec.etcd_cert,
            Field::EtcdCaCert => &spec.etcd_ca_cert,
        };
        if let Some(v) = value {
            values.push((field, v.clone(), format!("spec.{}", field.spec_name())));
        }
    }
    let settings = Settings {
        origin: format!("config file {}", path.display()),
        values,
    };
    Ok(ResolvedDatastore {
        target: DatastoreTarget::Etcd(build(&settings)?),
        source: DatastoreSource::ConfigFile {
            path: path.to_path_buf(),
            default,
        },
    })
}

/// The calicoctl variables: `Some` when `DATASTORE_TYPE` or `ETCD_ENDPOINTS` is set (to
/// something not empty), `None` when the environment configures nothing.
fn from_environment(
    inputs: &dyn ConfigInputs,
) -> Result<Option<ResolvedDatastore>, DatastoreConfigError> {
    let mut values = Vec::new();
    for field in Field::ALL {
        let Some(name) = field.env_name() else {
            continue;
        };
        let prefixed = format!("CALICO_{name}");
        let found = match inputs.var(&prefixed) {
            Some(v) => Some((v, prefixed)),
            None => inputs.var(name).map(|v| (v, name.to_owned())),
        };
        if let Some((value, var)) = found {
            values.push((field, value, var));
        }
    }
    let settings = Settings {
        origin: "environment".to_owned(),
        values,
    };
    if settings.value(Field::DatastoreType).is_none()
        && settings.value(Field::EtcdEndpoints).is_none()
    {
        return Ok(None);
    }
    let connection = build(&settings)?;
    let variables = settings
        .values
        .iter()
        .map(|(_, _, name)| name.clone())
        .collect();
    Ok(Some(ResolvedDatastore {
        target: DatastoreTarget::Etcd(connection),
        source: DatastoreSource::Environment { variables },
    }))
}

/// Builds and checks the etcd connection the settings describe.
fn build(s: &Settings) -> Result<EtcdConnection, DatastoreConfigError> {
    let endpoints_field = s.value(Field::EtcdEndpoints);
    let type_name = Field::DatastoreType.name_in(s);
    match s.value(Field::DatastoreType).map(|(v, _)| v.trim()) {
        Some("etcdv3") => {}
        Some("kubernetes") => {
            return Err(s.unsupported(
                &type_name,
                "the kubernetes datastore is not supported; use datastoreType etcdv3 with etcdEndpoints",
            ));
        }
        Some(other) => {
            return Err(s.invalid(
                &type_name,
                format!("unknown datastore type {other:?} (expected etcdv3 or kubernetes)"),
            ));
        }
        None if endpoints_field.is_none() => {
            return Err(s.unsupported(
                &type_name,
                "not set and no etcd endpoints are given, which means the kubernetes datastore; \
                 it is not supported: set datastoreType etcdv3 and etcdEndpoints",
            ));
        }
        None => {}
    }
    if let Some((_, name)) = s.value(Field::EtcdDiscoverySrv) {
        return Err(s.unsupported(
            name,
            "etcd discovery through DNS SRV records is not supported; list the members in etcdEndpoints",
        ));
    }
    let Some((list, endpoints_name)) = endpoints_field else {
        return Err(s.invalid(
            &Field::EtcdEndpoints.name_in(s),
            "the etcdv3 datastore needs etcd endpoints (e.g. https://127.0.0.1:2379)",
        ));
    };
    let endpoints = parse_endpoints(list).map_err(|r| s.invalid(endpoints_name, r))?;

    let pem = |file: Field, inline: Field| -> Result<Option<Pem>, DatastoreConfigError> {
        match (s.value(file), s.value(inline)) {
            (Some((_, f)), Some((_, i))) => {
                Err(s.invalid(i, format!("give either {f} or {i}, not both")))
            }
            (Some((path, _)), None) => Ok(Some(Pem::File(PathBuf::from(path.trim())))),
            (None, Some((text, _))) => Ok(Some(Pem::Inline(text.to_owned()))),
            (None, None) => Ok(None),
        }
    };
    let ca = pem(Field::EtcdCaCertFile, Field::EtcdCaCert)?;
    let cert = pem(Field::EtcdCertFile, Field::EtcdCert)?;
    let key = pem(Field::EtcdKeyFile, Field::EtcdKey)?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(s.invalid(
                &Field::EtcdKeyFile.name_in(s),
                "a client certificate is given without its key",
            ));
        }
        (None, Some(_)) => {
            return Err(s.invalid(
                &Field::EtcdCertFile.name_in(s),
                "a client key is given without its certificate",
            ));
        }
    };
    let credentials = match (s.value(Field::EtcdUsername), s.get(Field::EtcdPassword)) {
        (Some((user, _)), password) => Some(EtcdCredentials {
            username: user.to_owned(),
            password: password.map(|(p, _)| p.to_owned()).unwrap_or_default(),
        }),
        (None, Some((p, name))) if !p.is_empty() => {
            return Err(s.invalid(name, "a password is given without a user name"));
        }
        (None, _) => None,
    };
    Ok(EtcdConnection {
        endpoints,
        tls: EtcdTls { ca, client },
        credentials,
    })
}

impl Field {
    /// The name to show for this field in messages about `s` (file field or variable).
    fn name_in(self, s: &Settings) -> String {
        if let Some((_, name)) = s.get(self) {
            return name.to_owned();
        }
        if s.origin == "environment" {
            self.env_name().unwrap_or(self.spec_name()).to_owned()
        } else {
            format!("spec.{}", self.spec_name())
        }
    }
}

/// Parses calicoctl's comma-separated endpoint list: `http://HOST:PORT`,
/// `https://HOST:PORT` or `HOST:PORT` (plain), the port defaulting to 2379, a trailing `/`
/// allowed.
pub fn parse_endpoints(list: &str) -> Result<Vec<EtcdEndpoint>, String> {
    let mut out: Vec<EtcdEndpoint> = Vec::new();
    for (i, item) in list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let endpoint =
            parse_endpoint(item).map_err(|r| format!("endpoint {} {item:?}: {r}", i + 1))?;
        if out.contains(&endpoint) {
            return Err(format!("endpoint {} {item:?} is listed twice", i + 1));
        }
        out.push(endpoint);
    }
    if out.is_empty() {
        return Err("no endpoint given".to_owned());
    }
    Ok(out)
}

fn parse_endpoint(item: &str) -> Result<EtcdEndpoint, String> {
    let (scheme, rest) = match item.split_once("://") {
        Some((s, rest)) => match s.to_ascii_lowercase().as_str() {
            "http" => (EtcdScheme::Http, rest),
            "https" => (EtcdScheme::Https, rest),
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} (expected http:// or https://)"
                ));
            }
        },
        None => (EtcdScheme::Http, item),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let has_port = if let Some(v6) = rest.strip_prefix('[') {
        v6.split_once(']')
            .is_some_and(|(_, after)| !after.is_empty())
    } else {
        rest.contains(':')
    };
    let member = if has_port {
        parse_member(rest)?
    } else {
        parse_member(&format!("{rest}:{DEFAULT_ETCD_PORT}"))?
    };
    Ok(EtcdEndpoint { scheme, member })
}

#[cfg(test)]
mod tests;
