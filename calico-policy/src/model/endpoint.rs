//! Endpoints from manifests: what a Pod, a workload controller, a WorkloadEndpoint or a
//! HostEndpoint stands for, and the connlist workloads they group into.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use calico_model::derived;
use calico_model::loader::LoadedObject;
use calico_model::resources::{Labels, Resource};

use super::{Endpoint, EndpointKind, NamedPort, Workload};

/// The printed workload name of a pod.
fn pod_workload_name(ns: &str, pod: &calico_model::resources::k8s::Pod) -> String {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true));
    match owner {
        Some(o) if o.kind != "Node" => {
            let kind = if o.kind.is_empty() { "Pod" } else { &o.kind };
            format!("{ns}/{}[{kind}]", o.name)
        }
        _ => format!("{ns}/{}[Pod]", pod.metadata.name),
    }
}

/// What endpoint construction needs from the rest of the manifests: namespace,
/// service-account and profile labels, and which pods exist (a WorkloadEndpoint of a listed
/// pod is the same endpoint).
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointContext {
    pub(crate) pod_keys: HashSet<(String, String)>,
    /// What each namespace adds to its pods' labels ([`derived::namespace_label_layer`]).
    pub(crate) ns_layers: HashMap<String, Labels>,
    /// What each service account adds ([`derived::service_account_label_layer`]).
    pub(crate) sa_layers: HashMap<(String, String), Labels>,
    pub(crate) profile_labels: HashMap<String, Labels>,
}

pub(super) static EMPTY_LABELS: std::sync::LazyLock<Labels> = std::sync::LazyLock::new(Labels::new);

/// The endpoint `o` stands for, if any (Pod, workload controller, WorkloadEndpoint of no
/// listed pod, HostEndpoint).
pub(crate) fn endpoint_from(ctx: &EndpointContext, o: &LoadedObject) -> Option<Endpoint> {
    let r = &o.resource;
    let synthetic;
    let (pod, kind) = match r {
        Resource::Pod(p) => (Some(p), EndpointKind::Pod),
        _ => match derived::synthetic_pod(r) {
            Some(p) => {
                synthetic = p;
                (Some(&synthetic), EndpointKind::Controller(r.kind()))
            }
            None => (None, EndpointKind::Pod),
        },
    };
    if let Some(pod) = pod {
        let ns = r.namespace().unwrap_or("default").to_owned();
        let sa = derived::pod_service_account(&pod.spec).to_owned();
        // Namespaces and accounts without an object of their own add their names.
        let kns = match ctx.ns_layers.get(&ns) {
            Some(l) => Cow::Borrowed(l),
            None => Cow::Owned(derived::namespace_label_layer(&EMPTY_LABELS, &ns)),
        };
        let ksa = match ctx.sa_layers.get(&(ns.clone(), sa.clone())) {
            Some(l) => Cow::Borrowed(l),
            None => Cow::Owned(derived::service_account_label_layer(&EMPTY_LABELS, &sa)),
        };
        let workload = match kind {
            EndpointKind::Controller(k) => format!("{ns}/{}[{}]", r.name(), k.as_str()),
            _ => pod_workload_name(&ns, pod),
        };
        return Some(Endpoint {
            kind,
            namespace: Some(ns.clone()),
            name: r.name().to_owned(),
            workload,
            labels: derived::pod_labels_from_layers(pod, &kns, &ksa),
            profiles: vec![
                derived::namespace_profile_name(&ns),
                derived::service_account_profile_name(&ns, &sa),
            ],
            addrs: derived::pod_ip_networks(pod)
                .iter()
                .map(|c| c.addr())
                .collect(),
            ports: named_ports(
                derived::pod_endpoint_ports(&pod.spec)
                    .iter()
                    .map(|p| (p.name.as_str(), p.protocol.number(), p.port)),
            ),
            origin: o.origin.clone(),
            host_network: pod.spec.host_network,
            node: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
            interface: (kind == EndpointKind::Pod)
                .then(|| derived::interface_name("cali", &ns, &pod.metadata.name)),
        });
    }
    match r {
        Resource::WorkloadEndpoint(w) => {
            let ns = r.namespace().unwrap_or("default").to_owned();
            if ctx.pod_keys.contains(&(ns.clone(), w.spec.pod.clone())) {
                return None;
            }
            let sa = (!w.spec.service_account_name.is_empty())
                .then_some(w.spec.service_account_name.as_str());
            let calico = derived::calico_endpoint_labels(&ns, &w.spec.orchestrator, sa);
            let layers: Vec<&Labels> = w
                .spec
                .profiles
                .iter()
                .map(|p| ctx.profile_labels.get(p).unwrap_or(&EMPTY_LABELS))
                .collect();
            Some(Endpoint {
                kind: EndpointKind::WorkloadEndpoint,
                namespace: Some(ns.clone()),
                name: r.name().to_owned(),
                workload: format!("{ns}/{}[WorkloadEndpoint]", r.name()),
                labels: derived::endpoint_labels(&calico, &w.metadata.labels, &layers),
                profiles: w.spec.profiles.clone(),
                addrs: w.spec.ip_networks.iter().map(|c| c.addr()).collect(),
                ports: named_ports(
                    w.spec
                        .ports
                        .iter()
                        .map(|p| (p.name.as_str(), p.protocol.number(), p.port)),
                ),
                origin: o.origin.clone(),
                host_network: false,
                node: (!w.spec.node.is_empty()).then(|| w.spec.node.clone()),
                interface: Some(if w.spec.interface_name.is_empty() {
                    derived::interface_name("cali", &ns, &w.spec.pod)
                } else {
                    w.spec.interface_name.clone()
                }),
            })
        }
        Resource::HostEndpoint(h) => {
            let layers: Vec<&Labels> = h
                .spec
                .profiles
                .iter()
                .map(|p| ctx.profile_labels.get(p).unwrap_or(&EMPTY_LABELS))
                .collect();
            Some(Endpoint {
                kind: EndpointKind::HostEndpoint,
                namespace: None,
                name: r.name().to_owned(),
                workload: r.name().to_owned(),
                labels: derived::endpoint_labels(&EMPTY_LABELS, &h.metadata.labels, &layers),
                profiles: h.spec.profiles.clone(),
                addrs: h.spec.expected_ips.clone(),
                ports: named_ports(
                    h.spec
                        .ports
                        .iter()
                        .map(|p| (p.name.as_str(), p.protocol.number(), p.port)),
                ),
                origin: o.origin.clone(),
                host_network: false,
                node: (!h.spec.node.is_empty()).then(|| h.spec.node.clone()),
                interface: (!h.spec.interface_name.is_empty() && h.spec.interface_name != "*")
                    .then(|| h.spec.interface_name.clone()),
            })
        }
        _ => None,
    }
}

/// Connlist workloads: endpoints grouped by printed name, in input order.
pub(crate) fn workloads_of(endpoints: &[Endpoint]) -> Vec<Workload> {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut workloads: Vec<Workload> = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        if !e.is_workload() {
            continue;
        }
        match groups.get(&e.workload) {
            Some(&w) => {
                workloads[w].members.push(e.key());
                workloads[w].positions.push(i);
            }
            None => {
                groups.insert(e.workload.clone(), workloads.len());
                workloads.push(Workload {
                    name: e.workload.clone(),
                    namespace: e.namespace.clone().unwrap_or_default(),
                    members: vec![e.key()],
                    positions: vec![i],
                });
            }
        }
    }
    workloads
}

fn named_ports<'a>(ports: impl Iterator<Item = (&'a str, u8, u16)>) -> Vec<NamedPort> {
    ports
        .filter(|(n, _, _)| !n.is_empty())
        .map(|(name, protocol, port)| NamedPort {
            name: name.to_owned(),
            protocol,
            port,
        })
        .collect()
}
