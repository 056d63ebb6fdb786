//! What renderers share: which endpoints of the model a node programs, and the ids of
//! policy chains.

use std::collections::BTreeSet;

use crate::model::{EndpointKey, EndpointKind, Model, PolicyId, PolicyKind};

/// The dataplane endpoints of one node, as `(endpoint, interface name)` in model order
/// (the first endpoint of an interface wins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NodeEndpoints {
    /// Workload endpoints (pods and WorkloadEndpoints; not `hostNetwork` pods).
    pub workloads: Vec<(EndpointKey, String)>,
    /// Host endpoints with an interface name.
    pub host_endpoints: Vec<(EndpointKey, String)>,
}

/// The dataplane endpoints of `node`.
pub fn node_endpoints(model: &Model, node: &str) -> NodeEndpoints {
    let mut seen = BTreeSet::new();
    let mut wl = Vec::new();
    let mut hep = Vec::new();
    for e in model.endpoints() {
        if e.node.as_deref() != Some(node) || e.host_network {
            continue;
        }
        let Some(iface) = &e.interface else { continue };
        if !seen.insert(iface.clone()) {
            continue;
        }
        if e.kind == EndpointKind::HostEndpoint {
            hep.push((e.key(), iface.clone()));
        } else {
            wl.push((e.key(), iface.clone()));
        }
    }
    NodeEndpoints {
        workloads: wl,
        host_endpoints: hep,
    }
}

impl PolicyId {
    /// The short id renderers name this policy's chains by: `np/<ns>/<name>`, `gnp/<name>`,
    /// `knp/<ns>/<name>` (staged kinds `snp`, `sgnp`).
    pub fn chain_id(&self) -> String {
        let k = match self.kind {
            PolicyKind::NetworkPolicy => "np",
            PolicyKind::GlobalNetworkPolicy => "gnp",
            PolicyKind::KubernetesNetworkPolicy => "knp",
            PolicyKind::StagedNetworkPolicy => "snp",
            PolicyKind::StagedGlobalNetworkPolicy => "sgnp",
        };
        match &self.namespace {
            Some(ns) => format!("{k}/{ns}/{}", self.name),
            None => format!("{k}/{}", self.name),
        }
    }
}
