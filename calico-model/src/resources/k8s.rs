//! Kubernetes kinds: Namespace, Pod, the workload controllers, ServiceAccount and
//! networking.k8s.io/v1 NetworkPolicy — only the fields Calico's analyses use (names,
//! namespaces, labels, pod specs and templates, replica counts, the NetworkPolicy spec).
//!
//! Unknown fields are **ignored** everywhere in these kinds (manifests routinely carry fields we
//! do not model), so writing an object back drops them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Labels, ObjectMeta};
use super::values::IntOrString;
use super::values::serde_util::is_false;

/// A Kubernetes port protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum K8sProtocol {
    /// TCP (the default).
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl K8sProtocol {
    /// The Calico protocol with the same meaning.
    pub fn to_calico(self) -> super::values::Protocol {
        match self {
            K8sProtocol::Tcp => super::values::Protocol::Tcp,
            K8sProtocol::Udp => super::values::Protocol::Udp,
            K8sProtocol::Sctp => super::values::Protocol::Sctp,
        }
    }
}

/// A container port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Port name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Container port, 1–65535.
    #[serde(default)]
    pub container_port: i64,
    /// Protocol (defaulted to TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<K8sProtocol>,
    /// Host port (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    /// Host IP.
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A container (only its name and ports).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Declared ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
}

/// `spec` of a Pod (and of a pod template).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Node the pod runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Host networking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// Service account (defaulted to `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// Init containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
}

/// One `status.podIPs` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodIp {
    /// The address.
    #[serde(default)]
    pub ip: String,
}

/// `status` of a Pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Phase (`Running`, `Succeeded`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Primary pod IP.
    #[serde(default, rename = "podIP", skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    /// All pod IPs.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
}

impl PodStatus {
    fn is_empty(&self) -> bool {
        *self == PodStatus::default()
    }
}

/// A pod template (`spec.template` of a controller).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodTemplateSpec {
    /// Template metadata (labels, annotations).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Pod spec.
    #[serde(default)]
    pub spec: PodSpec,
}

/// `spec` of Deployment, StatefulSet, ReplicaSet and ReplicationController.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedSpec {
    /// Replica count (defaulted to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Pod template.
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// `spec` of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonSetSpec {
    /// Pod template.
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// `spec` of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// Pod template.
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// `spec.jobTemplate` of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobTemplateSpec {
    /// Template metadata.
    #[serde(default, skip_serializing_if = "is_default_meta")]
    pub metadata: ObjectMeta,
    /// Job spec.
    #[serde(default)]
    pub spec: JobSpec,
}

fn is_default_meta(m: &ObjectMeta) -> bool {
    *m == ObjectMeta::default()
}

/// `spec` of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// Job template.
    #[serde(default)]
    pub job_template: JobTemplateSpec,
}

/// A label-selector requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LabelSelectorOperator {
    /// Value in the set.
    In,
    /// Value not in the set.
    NotIn,
    /// Label present.
    Exists,
    /// Label absent.
    DoesNotExist,
}

/// A label-selector requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// Operator.
    pub operator: LabelSelectorOperator,
    /// Values (≥ 1 for In/NotIn, none for Exists/DoesNotExist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A Kubernetes LabelSelector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    /// Requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `ipBlock` of a NetworkPolicy peer (kept as text: an invalid CIDR is a validation problem, and
/// the policy converter drops the rule, failing closed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpBlock {
    /// CIDR.
    #[serde(default)]
    pub cidr: String,
    /// Excluded CIDRs, each strictly inside `cidr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

/// A NetworkPolicy peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    /// Pod selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespace selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// IP block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// A NetworkPolicy port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// Protocol (defaulted to TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<K8sProtocol>,
    /// Port number or name; absent = every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// End of a port range (needs a numeric `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

/// A NetworkPolicy ingress rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicyIngressRule {
    /// Sources (empty = any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
    /// Ports (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// A NetworkPolicy egress rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicyEgressRule {
    /// Destinations (empty = any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
    /// Ports (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// A Kubernetes NetworkPolicy direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum K8sPolicyType {
    /// Ingress.
    Ingress,
    /// Egress.
    Egress,
}

/// `spec` of a networking.k8s.io/v1 NetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesNetworkPolicySpec {
    /// Selected pods in the policy's namespace.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Policy types (defaulted to `[Ingress]`, plus `Egress` when there are egress rules;
    /// see [defaults](super#defaults)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<K8sPolicyType>,
    /// Ingress rules (`None` = absent, `Some([])` = present and empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<NetworkPolicyEgressRule>>,
}

macro_rules! k8s_object {
    ($(#[$doc:meta])* $name:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            /// Object metadata.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// Object spec.
            #[serde(default)]
            pub spec: $spec,
        }
    };
}

/// v1 Namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// Object metadata (name and labels).
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// v1 ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// Object metadata (name, namespace and labels).
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// v1 Pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Pod spec.
    #[serde(default)]
    pub spec: PodSpec,
    /// Pod status.
    #[serde(default, skip_serializing_if = "PodStatus::is_empty")]
    pub status: PodStatus,
}

k8s_object!(
    /// apps/v1 Deployment.
    Deployment,
    ReplicatedSpec
);
k8s_object!(
    /// apps/v1 StatefulSet.
    StatefulSet,
    ReplicatedSpec
);
k8s_object!(
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    ReplicatedSpec
);
k8s_object!(
    /// v1 ReplicationController.
    ReplicationController,
    ReplicatedSpec
);
k8s_object!(
    /// apps/v1 DaemonSet.
    DaemonSet,
    DaemonSetSpec
);
k8s_object!(
    /// batch/v1 Job.
    Job,
    JobSpec
);
k8s_object!(
    /// batch/v1 CronJob.
    CronJob,
    CronJobSpec
);
k8s_object!(
    /// networking.k8s.io/v1 NetworkPolicy.
    KubernetesNetworkPolicy,
    KubernetesNetworkPolicySpec
);
