//! [`PluginError`]: every way a plugin invocation fails, and its CNI error code.

use calico_datastore::OpenError;
use calico_ipam::{IpamError, Shortfall};
use calico_model::family::Family;

use crate::config::ConfigError;
use crate::delegate::DelegateError;
use crate::spec::{CODE_CHECK, CODE_DATAPLANE, CODE_IPAM, CniError, EnvError, ErrorCode};

/// Why an invocation failed. [`PluginError::code`] gives the CNI code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The `CNI_*` environment is unusable (4).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The configuration is unusable (1, 2, 6 or 7).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The standard input could not be read (5).
    #[error("cannot read the network configuration from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    /// The store could not be opened (11: try again later).
    #[error("cannot open the datastore {url}: {source}")]
    Store {
        /// The store URL.
        url: String,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The datastore could not be prepared for Calico's components (ClusterInformation)
    /// (11: try again later).
    #[error("preparing the datastore {url}: {source}")]
    Init {
        /// The store URL.
        url: String,
        /// Why.
        #[source]
        source: calico_ipam::resources::ResourceError,
    },
    /// An IPAM operation failed (11 when retriable, else 100).
    #[error("IPAM {operation} for handle {handle}: {source}")]
    Ipam {
        /// `assign`, `release` or `query`.
        operation: &'static str,
        /// The handle.
        handle: String,
        /// Why.
        #[source]
        source: IpamError,
    },
    /// Fewer addresses than asked for could be assigned (100).
    #[error("no {family} address available for handle {handle}: {}", join(reasons))]
    NoAddress {
        /// IPv4 or IPv6.
        family: Family,
        /// The handle.
        handle: String,
        /// The allocator's reasons.
        reasons: Vec<Shortfall>,
    },
    /// The IPAM plugin succeeded without an address (100).
    #[error("IPAM plugin {plugin} returned no address")]
    NoIpamAddress {
        /// The IPAM plugin's type.
        plugin: String,
    },
    /// Neither IPv4 nor IPv6 assignment is enabled (7).
    #[error("ipam: assign_ipv4 and assign_ipv6 are both false")]
    NothingToAssign,
    /// A delegated (IPAM) plugin failed (its code).
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// Setting up or removing the pod's network failed (101).
    #[error("dataplane {operation} of {ifname}: {reason}")]
    Dataplane {
        /// What was being done.
        operation: &'static str,
        /// The interface.
        ifname: String,
        /// Why.
        reason: String,
    },
    /// The container's network namespace does not exist (3).
    #[error("network namespace {path} does not exist")]
    NoNetns {
        /// `CNI_NETNS`.
        path: String,
    },
    /// `CHECK` found a difference (102).
    #[error("CHECK failed: {0}")]
    Check(String),
    /// `CHECK` needs a `prevResult` (7).
    #[error("CHECK needs prevResult in the configuration")]
    NoPrevResult,
    /// The `prevResult` does not decode (6).
    #[error("cannot decode prevResult: {0}")]
    PrevResult(#[source] serde_json::Error),
    /// `CHECK` with a configuration version before 0.4.0 (1).
    #[error("cniVersion {0} does not support CHECK")]
    CheckNotSupported(String),
    /// An ADD failed and undoing it failed too (the code of the first failure).
    #[error("{first}; undoing the partial ADD also failed: {undo}")]
    Rollback {
        /// The failure.
        first: Box<PluginError>,
        /// What the undo reported.
        undo: String,
    },
}

impl PluginError {
    /// The CNI error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PluginError::Env(_) => ErrorCode::InvalidEnvironment,
            PluginError::Config(c) => match c {
                ConfigError::Decode(_) => ErrorCode::Decode,
                ConfigError::Version { .. } => ErrorCode::IncompatibleVersion,
                ConfigError::Invalid { .. } => ErrorCode::InvalidConfig,
                ConfigError::Unsupported { .. } => ErrorCode::UnsupportedField,
            },
            PluginError::Stdin(_) => ErrorCode::Io,
            PluginError::Store { .. } | PluginError::Init { .. } => ErrorCode::TryAgainLater,
            PluginError::Ipam { source, .. } => {
                if source.is_retriable() || matches!(source, IpamError::Contention { .. }) {
                    ErrorCode::TryAgainLater
                } else {
                    ErrorCode::Plugin(CODE_IPAM)
                }
            }
            PluginError::NoAddress { .. } | PluginError::NoIpamAddress { .. } => {
                ErrorCode::Plugin(CODE_IPAM)
            }
            PluginError::NothingToAssign | PluginError::NoPrevResult => ErrorCode::InvalidConfig,
            PluginError::Delegate(d) => d.code(),
            PluginError::Dataplane { .. } => ErrorCode::Plugin(CODE_DATAPLANE),
            PluginError::NoNetns { .. } => ErrorCode::UnknownContainer,
            PluginError::Check(_) => ErrorCode::Plugin(CODE_CHECK),
            PluginError::PrevResult(_) => ErrorCode::Decode,
            PluginError::CheckNotSupported(_) => ErrorCode::IncompatibleVersion,
            PluginError::Rollback { first, .. } => first.code(),
        }
    }

    /// The error object to print, in version `cni_version`.
    pub fn to_cni(&self, cni_version: &str) -> CniError {
        if let PluginError::Delegate(DelegateError::Failed { error, .. }) = self {
            let mut e = error.clone();
            e.cni_version = cni_version.to_owned();
            return e;
        }
        let mut e = CniError::new(self.code(), self.to_string(), "");
        e.cni_version = cni_version.to_owned();
        e
    }
}

/// The allocator's reasons, `; `-separated.
fn join(reasons: &[Shortfall]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
