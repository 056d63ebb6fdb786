//! What a program connects to: a resolved datastore ([`DatastoreTarget`]), and for etcd
//! the endpoints with their schemes, the TLS material and the credentials
//! ([`EtcdConnection`]).

use std::fmt;
use std::path::PathBuf;

use crate::url::{EtcdMember, StoreUrl};

/// The datastore a program uses, as resolved from `--store`, a `CalicoAPIConfig` file or
/// the environment (see [`crate::resolve_datastore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatastoreTarget {
    /// A process-local store (`memory:`).
    Memory,
    /// The embedded database at this path (`file:PATH`).
    File(PathBuf),
    /// An etcd v3 cluster.
    Etcd(EtcdConnection),
}

impl DatastoreTarget {
    /// The target of a parsed store URL (`etcd://` members are plain `http`).
    pub fn from_url(url: &StoreUrl) -> Self {
        match url {
            StoreUrl::Memory => DatastoreTarget::Memory,
            StoreUrl::File(p) => DatastoreTarget::File(p.clone()),
            StoreUrl::Etcd(members) => DatastoreTarget::Etcd(EtcdConnection::plain(members)),
        }
    }

    /// The store URL equivalent to this target, when there is one (everything except etcd
    /// with TLS or credentials).
    pub fn as_url(&self) -> Option<StoreUrl> {
        match self {
            DatastoreTarget::Memory => Some(StoreUrl::Memory),
            DatastoreTarget::File(p) => Some(StoreUrl::File(p.clone())),
            DatastoreTarget::Etcd(c) => c
                .is_plain()
                .then(|| StoreUrl::Etcd(c.endpoints.iter().map(|e| e.member.clone()).collect())),
        }
    }
}

/// Shows the target without secrets: a store URL, or for etcd with TLS the endpoint URLs
/// (`https://HOST:PORT,...`), as calicoctl's `etcdEndpoints` lists them.
impl fmt::Display for DatastoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatastoreTarget::Memory => f.write_str("memory:"),
            DatastoreTarget::File(p) => write!(f, "file:{}", p.display()),
            DatastoreTarget::Etcd(c) => c.fmt(f),
        }
    }
}

/// How one etcd member is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtcdScheme {
    /// Plain gRPC over TCP.
    Http,
    /// gRPC over TLS.
    Https,
}

/// One etcd member: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdEndpoint {
    /// `http` or `https`.
    pub scheme: EtcdScheme,
    /// Host and client port.
    pub member: EtcdMember,
}

impl fmt::Display for EtcdEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            EtcdScheme::Http => "http",
            EtcdScheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.member)
    }
}

/// PEM text given as a file to read or inline (the `etcdKey`, `etcdCert` and `etcdCACert`
/// fields of a `CalicoAPIConfig`).
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file holding the PEM text.
    File(PathBuf),
    /// The PEM text itself.
    Inline(String),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            // Inline keys are secrets: never printed.
            Pem::Inline(text) => write!(f, "Inline(<{} bytes>)", text.len()),
        }
    }
}

impl fmt::Display for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "{}", p.display()),
            Pem::Inline(_) => f.write_str("(inline PEM)"),
        }
    }
}

/// TLS material for `https` endpoints. Without a CA the system's trusted roots verify the
/// server; a client certificate always comes with its key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate(s) that sign the members' certificates.
    pub ca: Option<Pem>,
    /// The client certificate and its private key.
    pub client: Option<ClientIdentity>,
}

/// A client certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate (chain).
    pub cert: Pem,
    /// The private key.
    pub key: Pem,
}

/// etcd user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for EtcdCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything needed to connect to an etcd cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConnection {
    /// The members, tried in order.
    pub endpoints: Vec<EtcdEndpoint>,
    /// TLS material, used for the `https` endpoints.
    pub tls: EtcdTls,
    /// User name and password, when etcd's authentication is enabled.
    pub credentials: Option<EtcdCredentials>,
}

impl EtcdConnection {
    /// Plain `http` members without TLS or credentials (an `etcd://` store URL).
    pub fn plain(members: &[EtcdMember]) -> Self {
        EtcdConnection {
            endpoints: members
                .iter()
                .map(|m| EtcdEndpoint {
                    scheme: EtcdScheme::Http,
                    member: m.clone(),
                })
                .collect(),
            tls: EtcdTls::default(),
            credentials: None,
        }
    }

    /// Whether this is exactly what an `etcd://` URL says: `http` only, no credentials.
    pub fn is_plain(&self) -> bool {
        self.credentials.is_none() && self.endpoints.iter().all(|e| e.scheme == EtcdScheme::Http)
    }
}

/// `etcd://HOST:PORT,...` when [plain](EtcdConnection::is_plain), else the endpoint URLs
/// joined by commas (`https://HOST:PORT,...`); never a secret.
impl fmt::Display for EtcdConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_plain() {
            let members: Vec<EtcdMember> =
                self.endpoints.iter().map(|e| e.member.clone()).collect();
            return StoreUrl::Etcd(members).fmt(f);
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}
