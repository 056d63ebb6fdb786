//! Defaults applied before validation (see [defaults](super#defaults)).

use super::Resource;
use super::ipam::{AllowedUse, AssignmentMode, EncapMode, IpPoolSpec};
use super::k8s::{K8sPolicyType, K8sProtocol, PodSpec};
use super::policy::{StagedAction, TierAction, builtin_tier, default_policy_types};

pub(super) fn apply(r: &mut Resource) {
    match r {
        Resource::NetworkPolicy(p) => {
            default_tier(&mut p.spec.tier);
            if p.spec.types.is_empty() {
                p.spec.types = default_policy_types(&p.spec.ingress, &p.spec.egress);
            }
        }
        Resource::GlobalNetworkPolicy(p) => {
            default_tier(&mut p.spec.tier);
            if p.spec.types.is_empty() {
                p.spec.types = default_policy_types(&p.spec.ingress, &p.spec.egress);
            }
        }
        Resource::StagedNetworkPolicy(p) => {
            default_tier(&mut p.spec.tier);
            let action = *p.spec.staged_action.get_or_insert(StagedAction::Set);
            // A staged delete must keep every other field empty.
            if action != StagedAction::Delete && p.spec.types.is_empty() {
                p.spec.types = default_policy_types(&p.spec.ingress, &p.spec.egress);
            }
        }
        Resource::StagedGlobalNetworkPolicy(p) => {
            default_tier(&mut p.spec.tier);
            let action = *p.spec.staged_action.get_or_insert(StagedAction::Set);
            if action != StagedAction::Delete && p.spec.types.is_empty() {
                p.spec.types = default_policy_types(&p.spec.ingress, &p.spec.egress);
            }
        }
        Resource::Tier(t) => {
            if let Some(b) = builtin_tier(&t.metadata.name) {
                t.spec.order.get_or_insert(b.order);
                t.spec.default_action.get_or_insert(b.default_action);
            }
            t.spec.default_action.get_or_insert(TierAction::Deny);
        }
        Resource::IpPool(p) => default_pool(&mut p.spec),
        Resource::Pod(p) => default_pod_spec(&mut p.spec),
        Resource::Deployment(d) => {
            d.spec.replicas.get_or_insert(1);
            default_pod_spec(&mut d.spec.template.spec);
        }
        Resource::StatefulSet(d) => {
            d.spec.replicas.get_or_insert(1);
            default_pod_spec(&mut d.spec.template.spec);
        }
        Resource::ReplicaSet(d) => {
            d.spec.replicas.get_or_insert(1);
            default_pod_spec(&mut d.spec.template.spec);
        }
        Resource::ReplicationController(d) => {
            d.spec.replicas.get_or_insert(1);
            default_pod_spec(&mut d.spec.template.spec);
        }
        Resource::DaemonSet(d) => default_pod_spec(&mut d.spec.template.spec),
        Resource::Job(j) => default_pod_spec(&mut j.spec.template.spec),
        Resource::CronJob(c) => default_pod_spec(&mut c.spec.job_template.spec.template.spec),
        Resource::KubernetesNetworkPolicy(np) => {
            let spec = &mut np.spec;
            if spec.policy_types.is_empty() {
                spec.policy_types.push(K8sPolicyType::Ingress);
                if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                    spec.policy_types.push(K8sPolicyType::Egress);
                }
            }
            for rule in spec.ingress.iter_mut().flatten() {
                for port in &mut rule.ports {
                    port.protocol.get_or_insert(K8sProtocol::Tcp);
                }
            }
            for rule in spec.egress.iter_mut().flatten() {
                for port in &mut rule.ports {
                    port.protocol.get_or_insert(K8sProtocol::Tcp);
                }
            }
        }
        _ => {}
    }
}

fn default_tier(tier: &mut String) {
    if tier.is_empty() {
        "default".clone_into(tier);
    }
}

fn default_pool(spec: &mut IpPoolSpec) {
    if spec.block_size == 0 {
        spec.block_size = spec.effective_block_size();
    }
    spec.ipip_mode.get_or_insert(EncapMode::Never);
    spec.vxlan_mode.get_or_insert(EncapMode::Never);
    if spec.node_selector.is_empty() {
        "all()".clone_into(&mut spec.node_selector);
    }
    if spec.allowed_uses.is_empty() {
        spec.allowed_uses = vec![AllowedUse::Workload, AllowedUse::Tunnel];
    }
    spec.assignment_mode
        .get_or_insert(AssignmentMode::Automatic);
}

fn default_pod_spec(spec: &mut PodSpec) {
    if spec.service_account_name.is_empty() {
        "default".clone_into(&mut spec.service_account_name);
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut())
    {
        for p in &mut c.ports {
            p.protocol.get_or_insert(K8sProtocol::Tcp);
        }
    }
}
