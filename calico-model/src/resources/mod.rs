//! Typed resources: every projectcalico.org/v3 and Kubernetes kind the `calico` tools read
//! from manifests.
//!
//! | Module | Kinds |
//! |---|---|
//! | [`policy`] | NetworkPolicy, GlobalNetworkPolicy, StagedNetworkPolicy, StagedGlobalNetworkPolicy, Tier, Profile |
//! | [`network`] | NetworkSet, GlobalNetworkSet, HostEndpoint, WorkloadEndpoint |
//! | [`ipam`] | IPPool, IPReservation, BlockAffinity, IPAMConfiguration |
//! | [`bgp`] | Node, BGPConfiguration, BGPPeer, BGPFilter |
//! | [`felix`] | FelixConfiguration |
//! | [`k8s`] | Namespace, Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, ServiceAccount, networking.k8s.io/v1 NetworkPolicy |
//! | [`k8s_services`] | Service, discovery.k8s.io/v1 EndpointSlice, Secret (route advertisement and BGP passwords) |
//!
//! # Decoding rules
//!
//! - Field names are the manifests' camelCase JSON names; optional fields are omitted on output
//!   when unset.
//! - **Unknown fields in `spec` of projectcalico.org kinds are rejected** (a decode error naming
//!   the field), as Calico's strict decoding does — except FelixConfiguration, of which we
//!   model only a subset and whose other fields are kept verbatim (see [`felix`]).
//! - **Unknown fields in Kubernetes kinds are ignored**, as are unknown `metadata` fields and
//!   unknown top-level fields (`status` of Calico kinds) of every kind.
//! - Fixed value sets are typed enums (case-sensitive); a value outside the set is a decode
//!   error. Value rules that need context are left to [`crate::validation`].
//! - Defaults are **not** applied on decode: call [`Resource::apply_defaults`] (or
//!   [`crate::loader::LoadedSet::apply_defaults`]) before validation: Calico applies its
//!   defaults before it validates, so validation judges the defaulted object.
//!
//! # Defaults
//!
//! [`Resource::apply_defaults`] fills in what Calico's API server (or Kubernetes' API server
//! for Kubernetes kinds) would, and is idempotent:
//!
//! - NetworkPolicy, GlobalNetworkPolicy and their staged forms: `tier` `default`; empty
//!   `types` from the rules ([`policy::default_policy_types`]); staged `stagedAction` `Set`
//!   (a staged `Delete` keeps its other fields empty).
//! - Tier: `defaultAction` `Deny`; the built-in tiers `kube-admin`, `default` and
//!   `kube-baseline` get their fixed order and action ([`policy::builtin_tier`]).
//! - IPPool: block size 26 (IPv4) or 122 (IPv6), `ipipMode` and `vxlanMode` `Never`,
//!   `nodeSelector` `all()`, `allowedUses` `[Workload, Tunnel]`, `assignmentMode`
//!   `Automatic`.
//! - Kubernetes: NetworkPolicy `policyTypes` `[Ingress]`, plus `Egress` when it has egress
//!   rules; port and container-port `protocol` `TCP`; workload `replicas` 1; pod
//!   `serviceAccountName` `default`.

pub mod bgp;
pub mod felix;
pub mod ipam;
pub mod k8s;
pub mod k8s_services;
pub mod meta;
pub mod network;
pub mod policy;
pub mod values;

mod defaults;

use std::fmt;

use serde::{Serialize, Serializer};

pub use meta::{Labels, ObjectMeta};

/// The projectcalico.org API version.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";

macro_rules! kinds {
    ($( $variant:ident => $ty:ty, $kind:literal, $api:literal, $namespaced:literal; )*) => {
        /// A modelled kind. Kubernetes and Calico `NetworkPolicy` are distinct kinds that share
        /// the manifest kind name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $api, "` `", $kind, "`.")]
                $variant,
            )*
        }

        /// One decoded object of any modelled kind.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Resource {
            $(
                #[doc = concat!("`", $api, "` `", $kind, "`.")]
                $variant($ty),
            )*
        }

        impl Kind {
            /// Every modelled kind.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The manifest `kind` string.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $kind,)* }
            }

            /// The manifest `apiVersion`.
            pub fn api_version(self) -> &'static str {
                match self { $(Kind::$variant => $api,)* }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn is_namespaced(self) -> bool {
                match self { $(Kind::$variant => $namespaced,)* }
            }
        }

        impl Resource {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self { $(Resource::$variant(_) => Kind::$variant,)* }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(Resource::$variant(o) => &o.metadata,)* }
            }

            /// The object's metadata, mutably.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Resource::$variant(o) => &mut o.metadata,)* }
            }

            fn decode_typed(
                kind: Kind,
                value: &serde_json::Value,
            ) -> Result<Resource, serde_path_to_error::Error<serde_json::Error>> {
                Ok(match kind {
                    $(Kind::$variant => Resource::$variant(serde_path_to_error::deserialize(value)?),)*
                })
            }

            fn serialize_body<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Resource::$variant(o) => Envelope {
                        api_version: Kind::$variant.api_version(),
                        kind: $kind,
                        body: o,
                    }.serialize(s),)*
                }
            }
        }
    };
}

kinds! {
    NetworkPolicy => policy::NetworkPolicy, "NetworkPolicy", "projectcalico.org/v3", true;
    GlobalNetworkPolicy => policy::GlobalNetworkPolicy, "GlobalNetworkPolicy", "projectcalico.org/v3", false;
    StagedNetworkPolicy => policy::StagedNetworkPolicy, "StagedNetworkPolicy", "projectcalico.org/v3", true;
    StagedGlobalNetworkPolicy => policy::StagedGlobalNetworkPolicy, "StagedGlobalNetworkPolicy", "projectcalico.org/v3", false;
    Tier => policy::Tier, "Tier", "projectcalico.org/v3", false;
    Profile => policy::Profile, "Profile", "projectcalico.org/v3", false;
    NetworkSet => network::NetworkSet, "NetworkSet", "projectcalico.org/v3", true;
    GlobalNetworkSet => network::GlobalNetworkSet, "GlobalNetworkSet", "projectcalico.org/v3", false;
    HostEndpoint => network::HostEndpoint, "HostEndpoint", "projectcalico.org/v3", false;
    WorkloadEndpoint => network::WorkloadEndpoint, "WorkloadEndpoint", "projectcalico.org/v3", true;
    IpPool => ipam::IpPool, "IPPool", "projectcalico.org/v3", false;
    IpReservation => ipam::IpReservation, "IPReservation", "projectcalico.org/v3", false;
    BlockAffinity => ipam::BlockAffinity, "BlockAffinity", "projectcalico.org/v3", false;
    IpamConfiguration => ipam::IpamConfiguration, "IPAMConfiguration", "projectcalico.org/v3", false;
    Node => bgp::Node, "Node", "projectcalico.org/v3", false;
    BgpConfiguration => bgp::BgpConfiguration, "BGPConfiguration", "projectcalico.org/v3", false;
    BgpPeer => bgp::BgpPeer, "BGPPeer", "projectcalico.org/v3", false;
    BgpFilter => bgp::BgpFilter, "BGPFilter", "projectcalico.org/v3", false;
    FelixConfiguration => felix::FelixConfiguration, "FelixConfiguration", "projectcalico.org/v3", false;
    Namespace => k8s::Namespace, "Namespace", "v1", false;
    Pod => k8s::Pod, "Pod", "v1", true;
    ServiceAccount => k8s::ServiceAccount, "ServiceAccount", "v1", true;
    ReplicationController => k8s::ReplicationController, "ReplicationController", "v1", true;
    Deployment => k8s::Deployment, "Deployment", "apps/v1", true;
    StatefulSet => k8s::StatefulSet, "StatefulSet", "apps/v1", true;
    DaemonSet => k8s::DaemonSet, "DaemonSet", "apps/v1", true;
    ReplicaSet => k8s::ReplicaSet, "ReplicaSet", "apps/v1", true;
    Job => k8s::Job, "Job", "batch/v1", true;
    CronJob => k8s::CronJob, "CronJob", "batch/v1", true;
    KubernetesNetworkPolicy => k8s::KubernetesNetworkPolicy, "NetworkPolicy", "networking.k8s.io/v1", true;
    Service => k8s_services::Service, "Service", "v1", true;
    EndpointSlice => k8s_services::EndpointSlice, "EndpointSlice", "discovery.k8s.io/v1", true;
    Secret => k8s_services::Secret, "Secret", "v1", true;
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// API groups whose kinds we model; an object of a modelled kind name in one of these groups
/// but at another version is an error rather than a skipped object.
const KNOWN_GROUPS: &[&str] = &[
    "projectcalico.org",
    "",
    "apps",
    "batch",
    "networking.k8s.io",
    "extensions",
];

/// What an (apiVersion, kind) pair from a manifest refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindLookup {
    /// A modelled kind.
    Known(Kind),
    /// A modelled kind name in a group we know, at an unsupported version (an error).
    UnsupportedVersion {
        /// The modelled kind of that name (its `api_version()` is the one required).
        expected: Kind,
    },
    /// A kind we do not model (skipped).
    Unmodelled,
}

impl Kind {
    /// Resolves a manifest's `apiVersion` and `kind`.
    pub fn lookup(api_version: &str, kind: &str) -> KindLookup {
        if let Some(k) = Kind::ALL
            .iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
        {
            return KindLookup::Known(*k);
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let group_of = |k: &Kind| k.api_version().rsplit_once('/').map_or("", |(g, _)| g);
        let candidates: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.as_str() == kind)
            .collect();
        if !KNOWN_GROUPS.contains(&group) {
            return KindLookup::Unmodelled;
        }
        // NetworkPolicy exists twice: prefer the kind of the same group; `extensions` was the
        // old home of several Kubernetes kinds.
        let same_group = candidates.iter().find(|k| {
            group_of(k) == group || (group == "extensions" && group_of(k) != "projectcalico.org")
        });
        match same_group.or(candidates.first()) {
            Some(k) => KindLookup::UnsupportedVersion { expected: *k },
            None => KindLookup::Unmodelled,
        }
    }
}

impl Resource {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The object's namespace (`None` for cluster-scoped kinds).
    pub fn namespace(&self) -> Option<&str> {
        if self.kind().is_namespaced() {
            Some(self.metadata().namespace.as_deref().unwrap_or("default"))
        } else {
            None
        }
    }

    /// Decodes an object of a known kind from a generic JSON value (the whole object, including
    /// `apiVersion` and `kind`, which are ignored here). The error carries the field path.
    /// A namespaced object without `metadata.namespace` gets `default`.
    pub fn from_value(
        kind: Kind,
        value: serde_json::Value,
    ) -> Result<Resource, serde_path_to_error::Error<serde_json::Error>> {
        Resource::from_json_ref(kind, &value)
    }

    /// [`Resource::from_value`] from a borrowed value.
    pub fn from_json_ref(
        kind: Kind,
        value: &serde_json::Value,
    ) -> Result<Resource, serde_path_to_error::Error<serde_json::Error>> {
        let mut r = Resource::decode_typed(kind, value)?;
        if kind.is_namespaced() {
            let md = r.metadata_mut();
            if md.namespace.as_deref().is_none_or(str::is_empty) {
                md.namespace = Some("default".to_owned());
            }
        }
        Ok(r)
    }

    /// The object as a JSON value (with `apiVersion` and `kind`).
    pub fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The object as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The object as one YAML document (without a leading `---`).
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        // Strings that Kubernetes' YAML 1.1 reader would take for a boolean or number
        // (`yes`, `on`, `0x1F`, ...) are quoted, so the text reads back as written.
        let value = serde_yaml_ng::to_value(self)?;
        match crate::yaml::emit::to_yaml_text(&value) {
            Some(text) => Ok(text),
            None => serde_yaml_ng::to_string(&value),
        }
    }

    /// Applies the [defaults](self#defaults) (policy types and tier, Tier default action and
    /// the built-in tiers' values, IPPool block size, modes, selectors and allowed uses, staged
    /// action, Kubernetes defaults). Idempotent.
    pub fn apply_defaults(&mut self) {
        defaults::apply(self);
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_body(s)
    }
}
