//! Objects and labels Calico derives implicitly.
//!
//! Pure functions used by the policy, IPAM and routing engines: Pod → WorkloadEndpoint,
//! interface and endpoint names, the labels an endpoint presents to selectors, the `kns.`/`ksa.`
//! profiles, implicit namespaces and service accounts, and the synthetic pods that stand for
//! workload controllers.
//!
//! # Pods as workload endpoints
//!
//! A pod scheduled to a node (`spec.nodeName` set) and not on the host network is a
//! WorkloadEndpoint ([`pod_workload_endpoint`]) named
//! [`workload_endpoint_name`]`(node, "k8s", pod, "eth0")`, with an interface name derived from
//! a hash of `<namespace>.<pod>` ([`interface_name`]), the pod's addresses
//! ([`pod_ip_networks`]), its named or host-mapped container ports ([`pod_endpoint_ports`]),
//! and the profiles `kns.<namespace>` then `ksa.<namespace>.<serviceAccount>` (a pod without
//! `serviceAccountName` uses `default`, as the API server would assign). Calico's CNI
//! annotations supply the container ID, allowed source prefixes and floating IPs.
//!
//! # Labels an endpoint presents to selectors
//!
//! Three layers, where an earlier layer always wins over a later one ([`endpoint_labels`]):
//!
//! 1. Calico's own labels ([`calico_endpoint_labels`]): `projectcalico.org/namespace`,
//!    `projectcalico.org/orchestrator` and, when the name is shorter than 63 characters,
//!    `projectcalico.org/serviceaccount`. They replace pod labels of the same name.
//! 2. The endpoint's own labels (the pod's `metadata.labels`).
//! 3. The profiles' `labelsToApply`, in profile order: the namespace profile gives
//!    `pcns.<key>=<value>` for each namespace label and `pcns.projectcalico.org/name=<ns>`;
//!    the service-account profile gives `pcsa.<key>=<value>` and
//!    `pcsa.projectcalico.org/name=<sa>`.
//!
//! NetworkSets carry `projectcalico.org/namespace` too; host endpoints and global network sets
//! carry no namespace label, which is what `global()` in a rule's `namespaceSelector` selects.
//!
//! # Implicit namespaces and service accounts
//!
//! Every namespace carries `kubernetes.io/metadata.name=<name>`, as the API server adds it.
//! A namespace or service account that objects refer to but the input does not define exists
//! implicitly, with only its name label ([`implicit_namespaces`], [`derived_profiles`]).
//!
//! # Workload controllers
//!
//! For offline analysis a Deployment, StatefulSet, ReplicaSet, ReplicationController,
//! DaemonSet, Job or CronJob stands for the pods its template describes: their labels, ports
//! and service account come from the template. Such pods have no node and no address; they
//! take part in selector matching only and are never programmed into a dataplane.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::resources::k8s::{Namespace, Pod, PodSpec, PodTemplateSpec};
use crate::resources::meta::{Labels, ObjectMeta, OwnerReference};
use crate::resources::network::{
    IpNat, WorkloadEndpoint, WorkloadEndpointPort, WorkloadEndpointSpec,
};
use crate::resources::policy::{Action, Profile, ProfileSpec, Rule};
use crate::resources::values::IpCidr;
use crate::resources::{Kind, Resource};

/// Label Calico sets to an endpoint's (or network set's) namespace.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Label Calico sets to an endpoint's orchestrator.
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
/// Label Calico sets to an endpoint's service account.
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
/// Label every policy carries with its tier.
pub const LABEL_TIER: &str = "projectcalico.org/tier";
/// Label the API server adds to every namespace.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// Prefix of namespace labels inherited through `kns.` profiles.
pub const PREFIX_NAMESPACE_LABELS: &str = "pcns.";
/// Prefix of service-account labels inherited through `ksa.` profiles.
pub const PREFIX_SERVICE_ACCOUNT_LABELS: &str = "pcsa.";
/// Name label inside the `pcns.`/`pcsa.` inherited labels (`pcns.projectcalico.org/name`).
pub const LABEL_PROFILE_NAME: &str = "projectcalico.org/name";
/// Orchestrator of Kubernetes workload endpoints.
pub const ORCHESTRATOR_K8S: &str = "k8s";
/// Endpoint name of Kubernetes pod endpoints.
pub const POD_ENDPOINT: &str = "eth0";
/// Prefix of namespace profiles.
pub const PROFILE_PREFIX_NAMESPACE: &str = "kns.";
/// Prefix of service-account profiles.
pub const PROFILE_PREFIX_SERVICE_ACCOUNT: &str = "ksa.";

const ANN_POD_IPS: &str = "cni.projectcalico.org/podIPs";
const ANN_POD_IP: &str = "cni.projectcalico.org/podIP";
const ANN_CONTAINER_ID: &str = "cni.projectcalico.org/containerID";
const ANN_ALLOWED_SOURCE_PREFIXES: &str = "cni.projectcalico.org/allowedSourcePrefixes";
const ANN_FLOATING_IPS: &str = "cni.projectcalico.org/floatingIPs";

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// The WorkloadEndpoint name `<node>-<orchestrator>-<pod>-<endpoint>`, each segment with every
/// `-` doubled: `("node-1", "k8s", "web-7f", "eth0")` → `node--1-k8s-web--7f-eth0`.
pub fn workload_endpoint_name(node: &str, orchestrator: &str, pod: &str, endpoint: &str) -> String {
    [node, orchestrator, pod, endpoint]
        .iter()
        .map(|s| s.replace('-', "--"))
        .collect::<Vec<_>>()
        .join("-")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host-side interface name of a pod: `prefix` + the first 11 lower-case hex digits of
/// SHA-1(`<namespace>.<pod>`). With the default prefix `cali` this is 15 characters.
pub fn interface_name(prefix: &str, namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let mut h = hex(&digest);
    h.truncate(11);
    format!("{prefix}{h}")
}

/// The interface prefix to use from a FelixConfiguration `interfacePrefix` value: its first
/// comma-separated entry, or `cali` when unset or empty.
pub fn first_interface_prefix(interface_prefix: Option<&str>) -> &str {
    interface_prefix
        .and_then(|p| p.split(',').next())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("cali")
}

/// The BlockAffinity name for `host` and block `cidr`:
/// `<host>-<cidr with '.', ':' and '/' replaced by '-'>`. When that is 253 characters or more,
/// the host part is truncated so that `<host>-<cidr>-<hash>` is at most 252 characters, where
/// `<hash>` is the first 11 hex digits of SHA-256 of the untruncated name.
pub fn block_affinity_name(host: &str, cidr: &IpCidr) -> String {
    let cidr_part: String = cidr
        .network()
        .to_string()
        .chars()
        .map(|c| if matches!(c, '.' | ':' | '/') { '-' } else { c })
        .collect();
    let name = format!("{host}-{cidr_part}");
    if name.len() < 253 {
        return name;
    }
    let mut hash = hex(&Sha256::digest(name.as_bytes()));
    hash.truncate(11);
    let keep = 252usize.saturating_sub(cidr_part.len() + hash.len() + 2);
    let mut end = keep.min(host.len());
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{cidr_part}-{hash}", &host[..end])
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

/// The labels of a namespace including the implicit `kubernetes.io/metadata.name=<name>`.
pub fn namespace_labels(ns: &Namespace) -> Labels {
    let mut l = ns.metadata.labels.clone();
    l.insert(LABEL_NAMESPACE_NAME.to_owned(), ns.metadata.name.clone());
    l
}

/// The first [label layer](self#labels-an-endpoint-presents-to-selectors): the labels Calico
/// sets on an endpoint. The service-account label
/// is set only for names shorter than 63 characters.
pub fn calico_endpoint_labels(
    namespace: &str,
    orchestrator: &str,
    service_account: Option<&str>,
) -> Labels {
    let mut l = Labels::new();
    l.insert(LABEL_NAMESPACE.to_owned(), namespace.to_owned());
    l.insert(LABEL_ORCHESTRATOR.to_owned(), orchestrator.to_owned());
    if let Some(sa) = service_account.filter(|s| !s.is_empty() && s.len() < 63) {
        l.insert(LABEL_SERVICE_ACCOUNT.to_owned(), sa.to_owned());
    }
    l
}

/// Merges label layers; a later layer never overrides an earlier one.
pub fn layered_labels(layers: &[&Labels]) -> Labels {
    let mut out = Labels::new();
    for layer in layers {
        for (k, v) in *layer {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// The labels an endpoint presents to selectors (see
/// [the layers](self#labels-an-endpoint-presents-to-selectors)): Calico's own labels, then the
/// endpoint's labels, then each profile's `labelsToApply` in profile order.
pub fn endpoint_labels(calico: &Labels, own: &Labels, profiles: &[&Labels]) -> Labels {
    let mut layers: Vec<&Labels> = vec![calico, own];
    layers.extend_from_slice(profiles);
    layered_labels(&layers)
}

/// The labels a pod presents to selectors, given the labels of its namespace (with the implicit
/// name label, see [`namespace_labels`]) and of its service account (empty if the account is
/// absent).
pub fn pod_labels(pod: &Pod, namespace_labels: &Labels, service_account_labels: &Labels) -> Labels {
    let ns = pod_namespace(pod);
    let sa = pod_service_account(&pod.spec);
    let kns = namespace_label_layer(namespace_labels, ns);
    let ksa = service_account_label_layer(service_account_labels, sa);
    pod_labels_from_layers(pod, &kns, &ksa)
}

/// The layer a namespace adds to its pods' labels (its labels with the `pcns.` prefix, and
/// its name), the same for every pod of it: see [`pod_labels_from_layers`].
pub fn namespace_label_layer(namespace_labels: &Labels, namespace: &str) -> Labels {
    prefixed_labels(PREFIX_NAMESPACE_LABELS, namespace_labels, namespace)
}

/// The layer a service account adds to its pods' labels (its labels with the `pcsa.`
/// prefix, and its name): see [`pod_labels_from_layers`].
pub fn service_account_label_layer(service_account_labels: &Labels, account: &str) -> Labels {
    prefixed_labels(
        PREFIX_SERVICE_ACCOUNT_LABELS,
        service_account_labels,
        account,
    )
}

/// [`pod_labels`] from its namespace's and service account's layers
/// ([`namespace_label_layer`], [`service_account_label_layer`]), worked out once for many
/// pods.
pub fn pod_labels_from_layers(
    pod: &Pod,
    namespace_layer: &Labels,
    account_layer: &Labels,
) -> Labels {
    let ns = pod_namespace(pod);
    let sa = pod_service_account(&pod.spec);
    let calico = calico_endpoint_labels(ns, ORCHESTRATOR_K8S, Some(sa));
    endpoint_labels(
        &calico,
        &pod.metadata.labels,
        &[namespace_layer, account_layer],
    )
}

fn prefixed_labels(prefix: &str, labels: &Labels, name: &str) -> Labels {
    let mut out: Labels = labels
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect();
    out.insert(format!("{prefix}{LABEL_PROFILE_NAME}"), name.to_owned());
    out
}

fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// The service account a pod spec names (`default` when unset).
pub fn pod_service_account(spec: &PodSpec) -> &str {
    if spec.service_account_name.is_empty() {
        "default"
    } else {
        &spec.service_account_name
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------------

/// The name of a namespace's profile: `kns.<ns>`.
pub fn namespace_profile_name(namespace: &str) -> String {
    format!("{PROFILE_PREFIX_NAMESPACE}{namespace}")
}

/// The name of a service account's profile: `ksa.<ns>.<sa>` (namespace `default` if empty).
pub fn service_account_profile_name(namespace: &str, service_account: &str) -> String {
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    format!("{PROFILE_PREFIX_SERVICE_ACCOUNT}{ns}.{service_account}")
}

/// The derived profile of a namespace, `kns.<ns>`: one Allow rule each way, and
/// `pcns.<key>=<value>` for every namespace label (implicit name label included) plus
/// `pcns.projectcalico.org/name=<ns>`.
pub fn namespace_profile(ns: &Namespace) -> Profile {
    let name = &ns.metadata.name;
    Profile {
        metadata: ObjectMeta {
            name: namespace_profile_name(name),
            ..ObjectMeta::default()
        },
        spec: ProfileSpec {
            ingress: vec![Rule::new(Action::Allow)],
            egress: vec![Rule::new(Action::Allow)],
            labels_to_apply: prefixed_labels(PREFIX_NAMESPACE_LABELS, &namespace_labels(ns), name),
        },
    }
}

/// The derived profile of a service account, `ksa.<ns>.<sa>` (namespace `default` when
/// empty): no rules, and
/// `pcsa.<key>=<value>` for every label plus `pcsa.projectcalico.org/name=<sa>`.
pub fn service_account_profile(namespace: &str, name: &str, labels: &Labels) -> Profile {
    Profile {
        metadata: ObjectMeta {
            name: service_account_profile_name(namespace, name),
            ..ObjectMeta::default()
        },
        spec: ProfileSpec {
            ingress: Vec::new(),
            egress: Vec::new(),
            labels_to_apply: prefixed_labels(PREFIX_SERVICE_ACCOUNT_LABELS, labels, name),
        },
    }
}

/// Namespaces referenced by namespaced objects but absent from `resources`, in name order; each
/// carries only the implicit `kubernetes.io/metadata.name` label, as the API server sets it.
pub fn implicit_namespaces<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
) -> Vec<Namespace> {
    let mut present = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    for r in resources {
        if let Resource::Namespace(ns) = r {
            present.insert(ns.metadata.name.clone());
        } else if let Some(ns) = r.namespace() {
            referenced.insert(ns.to_owned());
        }
    }
    referenced
        .difference(&present)
        .map(|name| {
            let mut labels = Labels::new();
            labels.insert(LABEL_NAMESPACE_NAME.to_owned(), name.clone());
            Namespace {
                metadata: ObjectMeta {
                    name: name.clone(),
                    labels,
                    ..ObjectMeta::default()
                },
            }
        })
        .collect()
}

/// Every derived profile of an input set: `kns.` for each namespace (present or implicit) and
/// `ksa.` for each service account present or referenced by a pod or pod template (an absent
/// one gets only its `pcsa.projectcalico.org/name` label). Sorted by name.
pub fn derived_profiles<'a>(
    resources: impl IntoIterator<Item = &'a Resource> + Clone,
) -> Vec<Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    for r in resources.clone() {
        if let Resource::Namespace(ns) = r {
            let p = namespace_profile(ns);
            out.insert(p.metadata.name.clone(), p);
        }
    }
    for ns in implicit_namespaces(resources.clone()) {
        let p = namespace_profile(&ns);
        out.entry(p.metadata.name.clone()).or_insert(p);
    }
    let mut accounts: BTreeMap<(String, String), Labels> = BTreeMap::new();
    for r in resources.clone() {
        if let Resource::ServiceAccount(sa) = r {
            let ns = r.namespace().unwrap_or("default").to_owned();
            accounts.insert((ns, sa.metadata.name.clone()), sa.metadata.labels.clone());
        }
    }
    for r in resources {
        let spec = match r {
            Resource::Pod(p) => Some(&p.spec),
            other => pod_template(other).map(|t| &t.spec),
        };
        if let (Some(spec), Some(ns)) = (spec, r.namespace()) {
            accounts
                .entry((ns.to_owned(), pod_service_account(spec).to_owned()))
                .or_default();
        }
    }
    for ((ns, name), labels) in accounts {
        let p = service_account_profile(&ns, &name, &labels);
        out.insert(p.metadata.name.clone(), p);
    }
    out.into_values().collect()
}

// ---------------------------------------------------------------------------------------------
// Pods and workload endpoints
// ---------------------------------------------------------------------------------------------

/// Whether a pod has finished: phase Succeeded, Failed or Completed, or being deleted with the
/// `cni.projectcalico.org/podIP` annotation set to `""`.
pub fn pod_is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.phase.as_str(),
        "Succeeded" | "Failed" | "Completed"
    ) || (pod.metadata.deletion_timestamp.is_some()
        && pod
            .metadata
            .annotations
            .get(ANN_POD_IP)
            .is_some_and(String::is_empty))
}

fn single_address(text: &str) -> Option<IpCidr> {
    let c: IpCidr = text.trim().parse().ok()?;
    let addr = c.addr();
    IpCidr::new(addr, if addr.is_ipv4() { 32 } else { 128 })
}

/// A pod's addresses as /32 or /128 networks: the first non-empty of
/// `status.podIPs`, `status.podIP`, the `cni.projectcalico.org/podIPs` annotation (comma list)
/// and the `cni.projectcalico.org/podIP` annotation. Empty for a finished pod. Unparseable
/// entries are skipped.
pub fn pod_ip_networks(pod: &Pod) -> Vec<IpCidr> {
    if pod_is_finished(pod) {
        return Vec::new();
    }
    let parse_all = |texts: Vec<&str>| -> Vec<IpCidr> {
        texts
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .filter_map(single_address)
            .collect()
    };
    let ann = |key: &str| {
        pod.metadata
            .annotations
            .get(key)
            .map(String::as_str)
            .unwrap_or("")
    };
    let candidates = [
        pod.status
            .pod_ips
            .iter()
            .map(|p| p.ip.as_str())
            .collect::<Vec<_>>(),
        vec![pod.status.pod_ip.as_str()],
        ann(ANN_POD_IPS).split(',').collect(),
        vec![ann(ANN_POD_IP)],
    ];
    for texts in candidates {
        let nets = parse_all(texts);
        if !nets.is_empty() {
            return nets;
        }
    }
    Vec::new()
}

/// The endpoint ports of a pod spec: from containers then init containers, every
/// port with a non-zero container port and a name or a host port; protocol TCP by default.
pub fn pod_endpoint_ports(spec: &PodSpec) -> Vec<WorkloadEndpointPort> {
    let mut out = Vec::new();
    for c in spec.containers.iter().chain(&spec.init_containers) {
        for p in &c.ports {
            let Ok(port) = u16::try_from(p.container_port) else {
                continue;
            };
            let host_port = p.host_port.and_then(|h| u16::try_from(h).ok()).unwrap_or(0);
            if port == 0 || (p.name.is_empty() && host_port == 0) {
                continue;
            }
            out.push(WorkloadEndpointPort {
                name: p.name.clone(),
                protocol: p
                    .protocol
                    .unwrap_or(crate::resources::k8s::K8sProtocol::Tcp)
                    .to_calico(),
                port,
                host_port,
                host_ip: p.host_ip.clone(),
            });
        }
    }
    out
}

fn json_string_list(text: Option<&String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default()
}

/// The WorkloadEndpoint Calico derives from a pod (see
/// [pods as workload endpoints](self#pods-as-workload-endpoints)), or `None` for a pod that is
/// not a dataplane endpoint (`hostNetwork: true` or no `spec.nodeName`). `interface_prefix` is
/// the prefix for the interface name (see [`first_interface_prefix`]).
///
/// The endpoint's labels are the pod's labels overlaid with Calico's own labels (the first two
/// [label layers](self#labels-an-endpoint-presents-to-selectors)); profile labels are not copied in.
pub fn pod_workload_endpoint(pod: &Pod, interface_prefix: &str) -> Option<WorkloadEndpoint> {
    if pod.spec.host_network || pod.spec.node_name.is_empty() {
        return None;
    }
    let ns = pod_namespace(pod);
    let sa = pod_service_account(&pod.spec);
    let pod_name = &pod.metadata.name;
    let ip_networks = pod_ip_networks(pod);
    let ann = &pod.metadata.annotations;
    let ip_nats = json_string_list(ann.get(ANN_FLOATING_IPS))
        .iter()
        .filter_map(|s| {
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| single_address(s).map(|c| c.addr()))
        })
        .filter_map(|external| {
            ip_networks
                .iter()
                .find(|n| n.is_ipv4() == external.is_ipv4())
                .map(|n| IpNat {
                    internal_ip: n.addr(),
                    external_ip: external,
                })
        })
        .collect();
    let allow_spoofed = json_string_list(ann.get(ANN_ALLOWED_SOURCE_PREFIXES))
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let calico = calico_endpoint_labels(ns, ORCHESTRATOR_K8S, Some(sa));
    Some(WorkloadEndpoint {
        metadata: ObjectMeta {
            name: workload_endpoint_name(
                &pod.spec.node_name,
                ORCHESTRATOR_K8S,
                pod_name,
                POD_ENDPOINT,
            ),
            namespace: Some(ns.to_owned()),
            labels: layered_labels(&[&calico, &pod.metadata.labels]),
            ..ObjectMeta::default()
        },
        spec: WorkloadEndpointSpec {
            orchestrator: ORCHESTRATOR_K8S.to_owned(),
            workload: String::new(),
            node: pod.spec.node_name.clone(),
            container_id: ann.get(ANN_CONTAINER_ID).cloned().unwrap_or_default(),
            pod: pod_name.clone(),
            endpoint: POD_ENDPOINT.to_owned(),
            service_account_name: sa.to_owned(),
            ip_networks,
            ip_nats,
            ipv4_gateway: None,
            ipv6_gateway: None,
            profiles: vec![
                namespace_profile_name(ns),
                service_account_profile_name(ns, sa),
            ],
            interface_name: interface_name(interface_prefix, ns, pod_name),
            mac: String::new(),
            ports: pod_endpoint_ports(&pod.spec),
            allow_spoofed_source_prefixes: allow_spoofed,
            qos_controls: None,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Workload controllers (see the module docs)
// ---------------------------------------------------------------------------------------------

/// The pod template of a workload controller (`spec.template`, or
/// `spec.jobTemplate.spec.template` for a CronJob); `None` for other kinds.
pub fn pod_template(r: &Resource) -> Option<&PodTemplateSpec> {
    match r {
        Resource::Deployment(d) => Some(&d.spec.template),
        Resource::StatefulSet(d) => Some(&d.spec.template),
        Resource::ReplicaSet(d) => Some(&d.spec.template),
        Resource::ReplicationController(d) => Some(&d.spec.template),
        Resource::DaemonSet(d) => Some(&d.spec.template),
        Resource::Job(j) => Some(&j.spec.template),
        Resource::CronJob(c) => Some(&c.spec.job_template.spec.template),
        _ => None,
    }
}

/// The synthetic pod standing for a workload controller's pods: named and namespaced like the
/// controller, with the template's labels, annotations and spec (service account defaulted to
/// `default`), an owner reference to the controller, no node and no IP. `None` for kinds that
/// are not workload controllers. Never a dataplane endpoint.
pub fn synthetic_pod(r: &Resource) -> Option<Pod> {
    let template = pod_template(r)?;
    let kind: Kind = r.kind();
    let mut spec = template.spec.clone();
    if spec.service_account_name.is_empty() {
        "default".clone_into(&mut spec.service_account_name);
    }
    spec.node_name.clear();
    Some(Pod {
        metadata: ObjectMeta {
            name: r.name().to_owned(),
            namespace: r.namespace().map(str::to_owned),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                api_version: kind.api_version().to_owned(),
                kind: kind.as_str().to_owned(),
                name: r.name().to_owned(),
                uid: String::new(),
                controller: Some(true),
            }],
            ..ObjectMeta::default()
        },
        spec,
        status: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wep_name_doubles_dashes() {
        assert_eq!(
            workload_endpoint_name("node-1", "k8s", "web-7f", "eth0"),
            "node--1-k8s-web--7f-eth0"
        );
        assert_eq!(
            workload_endpoint_name("a", "k8s", "b", "eth0"),
            "a-k8s-b-eth0"
        );
    }

    #[test]
    fn interface_name_matches_sha1() {
        let name = interface_name("cali", "prod", "web-0");
        let full = hex(&Sha1::digest(b"prod.web-0"));
        assert_eq!(name, format!("cali{}", &full[..11]));
        assert_eq!(name.len(), 15);
        assert_eq!(first_interface_prefix(Some("tap,cali")), "tap");
        assert_eq!(first_interface_prefix(None), "cali");
    }

    #[test]
    fn block_affinity_names() {
        let c: IpCidr = "10.244.1.0/26".parse().unwrap();
        assert_eq!(block_affinity_name("node-1", &c), "node-1-10-244-1-0-26");
        let v6: IpCidr = "fd00::/122".parse().unwrap();
        assert_eq!(block_affinity_name("n", &v6), "n-fd00---122");
        let long = "h".repeat(260);
        let n = block_affinity_name(&long, &c);
        assert!(n.len() <= 252, "{}", n.len());
        assert!(n.ends_with(&hex(&Sha256::digest(format!("{long}-10-244-1-0-26")))[..11]));
    }

    #[test]
    fn label_layers() {
        let mut own = Labels::new();
        own.insert(LABEL_NAMESPACE.into(), "spoof".into());
        own.insert("app".into(), "web".into());
        let calico = calico_endpoint_labels("prod", "k8s", Some("sa"));
        let mut prof = Labels::new();
        prof.insert("app".into(), "other".into());
        prof.insert("pcns.x".into(), "1".into());
        let l = endpoint_labels(&calico, &own, &[&prof]);
        assert_eq!(l[LABEL_NAMESPACE], "prod");
        assert_eq!(l["app"], "web");
        assert_eq!(l["pcns.x"], "1");
        assert_eq!(l[LABEL_SERVICE_ACCOUNT], "sa");
        let long_sa = "s".repeat(63);
        assert!(
            !calico_endpoint_labels("p", "k8s", Some(&long_sa)).contains_key(LABEL_SERVICE_ACCOUNT)
        );
    }
}
