//! Kubernetes kinds that BGP route advertisement reads: `Service` and
//! `discovery.k8s.io/v1` `EndpointSlice` (which Services a node advertises), and `Secret`
//! (BGP passwords). Only the fields routing needs are modelled.
//!
//! As for every Kubernetes kind, unknown fields are **ignored**, so writing an object back
//! drops them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;

/// The label of an EndpointSlice naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `spec.type` of a Service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// `ClusterIP` (the default).
    #[default]
    ClusterIP,
    /// `NodePort`.
    NodePort,
    /// `LoadBalancer`.
    LoadBalancer,
    /// `ExternalName` (no addresses to route).
    ExternalName,
}

/// `spec.externalTrafficPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrafficPolicy {
    /// Traffic may go to endpoints on any node.
    Cluster,
    /// Traffic only goes to endpoints on the node that received it.
    Local,
}

/// `spec` of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type (unset reads as `ClusterIP`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// The primary cluster IP (`None` for a headless Service).
    #[serde(
        default,
        rename = "clusterIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster_ip: String,
    /// Every cluster IP (dual stack).
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// External IPs.
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// The requested LoadBalancer address (deprecated in Kubernetes, still honoured).
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "String::is_empty"
    )]
    pub load_balancer_ip: String,
    /// External traffic policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// IP families (`IPv4`, `IPv6`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
}

impl ServiceSpec {
    /// The effective type (`ClusterIP` when unset).
    pub fn effective_type(&self) -> ServiceType {
        self.service_type.unwrap_or_default()
    }

    /// The cluster IPs: `clusterIPs`, else `clusterIP`; empty for a headless Service
    /// (`None`).
    pub fn all_cluster_ips(&self) -> Vec<&str> {
        let list: Vec<&str> = if self.cluster_ips.is_empty() {
            vec![self.cluster_ip.as_str()]
        } else {
            self.cluster_ips.iter().map(String::as_str).collect()
        };
        list.into_iter()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .collect()
    }
}

/// One `status.loadBalancer.ingress` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    /// Assigned address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Assigned host name (not routed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

/// `status.loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// Assigned addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// `status` of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// LoadBalancer status.
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
}

/// A Kubernetes `v1` Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Status (the LoadBalancer addresses).
    #[serde(default)]
    pub status: ServiceStatus,
}

/// `conditions` of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConditions {
    /// Ready (unset reads as ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Conditions.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// The node hosting the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

/// A Kubernetes `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata (the `kubernetes.io/service-name` label names the Service).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address_type: String,
    /// Endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSlice {
    /// The name of the Service the slice belongs to (its `kubernetes.io/service-name`
    /// label).
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

/// Why a Secret key cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Neither `data` nor `stringData` has the key.
    #[error("Secret {secret} has no key {key:?}")]
    MissingKey {
        /// `namespace/name`.
        secret: String,
        /// The key.
        key: String,
    },
    /// `data.<key>` is not valid base64.
    #[error("Secret {secret} data.{key} is not valid base64: {reason}")]
    BadBase64 {
        /// `namespace/name`.
        secret: String,
        /// The key.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// The decoded value is not UTF-8 text.
    #[error("Secret {secret} data.{key} is not UTF-8 text")]
    NotText {
        /// `namespace/name`.
        secret: String,
        /// The key.
        key: String,
    },
}

/// A Kubernetes `v1` Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Secret type.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub secret_type: String,
    /// Base64-encoded values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Plain values (written into `data` by the API server; they win over `data`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
}

impl Secret {
    /// The value of `key`: `stringData` as written, else `data` decoded from base64.
    pub fn value(&self, key: &str) -> Result<String, SecretError> {
        let secret = format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name
        );
        if let Some(v) = self.string_data.get(key) {
            return Ok(v.clone());
        }
        let Some(encoded) = self.data.get(key) else {
            return Err(SecretError::MissingKey {
                secret,
                key: key.to_owned(),
            });
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| SecretError::BadBase64 {
                secret: secret.clone(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
        String::from_utf8(bytes).map_err(|_| SecretError::NotText {
            secret,
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values() {
        let mut s = Secret::default();
        s.metadata.name = "bgp".into();
        s.data.insert("a".into(), "c2VjcmV0".into()); // "secret"
        s.data.insert("bad".into(), "!!".into());
        s.data.insert("bin".into(), "/w==".into()); // 0xff
        s.string_data.insert("b".into(), "plain".into());
        assert_eq!(s.value("a").as_deref(), Ok("secret"));
        assert_eq!(s.value("b").as_deref(), Ok("plain"));
        assert!(matches!(s.value("c"), Err(SecretError::MissingKey { .. })));
        assert!(matches!(s.value("bad"), Err(SecretError::BadBase64 { .. })));
        assert!(matches!(s.value("bin"), Err(SecretError::NotText { .. })));
        s.string_data.insert("a".into(), "override".into());
        assert_eq!(s.value("a").as_deref(), Ok("override"));
    }

    proptest::proptest! {
        /// Any text stored base64-encoded in `data` reads back as written; `stringData`
        /// wins over `data`.
        #[test]
        fn data_round_trips(value in ".*", other in ".*") {
            let mut s = Secret::default();
            s.data.insert(
                "k".into(),
                base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
            );
            proptest::prop_assert_eq!(s.value("k"), Ok(value));
            s.string_data.insert("k".into(), other.clone());
            proptest::prop_assert_eq!(s.value("k"), Ok(other));
        }
    }

    #[test]
    fn cluster_ips_skip_headless() {
        let mut spec = ServiceSpec {
            cluster_ip: "None".into(),
            ..ServiceSpec::default()
        };
        assert!(spec.all_cluster_ips().is_empty());
        spec.cluster_ip = "10.96.0.10".into();
        assert_eq!(spec.all_cluster_ips(), ["10.96.0.10"]);
        spec.cluster_ips = vec!["10.96.0.10".into(), "fd00::a".into()];
        assert_eq!(spec.all_cluster_ips(), ["10.96.0.10", "fd00::a"]);
    }
}
