//! Validation of loaded resources (model.md §1.3, §2–§5, §7).
//!
//! [`validate`] checks every object of a [`LoadedSet`] and the cross-object rules, and returns
//! **all** problems, each rendered by its `Display` as one line
//! `FILE:DOC_INDEX KIND/[NAMESPACE/]NAME: FIELD.PATH: message` (cli.md). Objects that failed to
//! decode are included as problems too. Problems are ordered by input position (file order,
//! document, list item), then in the order the fields are checked.
//!
//! Rendering conventions where the spec is silent: an unknown kind prints as `?`, a missing
//! name as the empty string (`Tier/: metadata.name: ...`), and a problem about the document as
//! a whole has field path `-`.

mod bgp;
mod common;
mod cross;
mod endpoints;
mod ipam;
mod k8s;
mod policy;
mod selectors;

use std::collections::HashMap;

use crate::loader::{LoadedObject, LoadedSet, Origin};
use crate::resources::Resource;

pub use crate::diagnostic::{Diagnostic, Problem, Severity};
pub use crate::format;

/// Collects the problems of one object.
pub(crate) struct Ctx<'a> {
    object: &'a LoadedObject,
    out: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    fn new(object: &'a LoadedObject) -> Ctx<'a> {
        Ctx {
            object,
            out: Vec::new(),
        }
    }

    /// Records a problem at `path`.
    pub(crate) fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out
            .push(problem_for(self.object, path.into(), message.into()));
    }
}

pub(crate) fn problem_for(object: &LoadedObject, field_path: String, message: String) -> Problem {
    let r = &object.resource;
    Problem {
        file: object.origin.file.clone(),
        doc_index: object.origin.doc_index,
        kind: r.kind().as_str().to_owned(),
        namespace: r.namespace().map(str::to_owned),
        name: r.name().to_owned(),
        field_path,
        message,
    }
}

/// Validates every object of `set` and the cross-object rules of model.md §7.
///
/// Defaults are applied first (to a copy) if [`LoadedSet::apply_defaults`] has not run.
/// Load errors (unreadable files, unparseable documents) are not problems: check
/// [`LoadedSet::errors`] separately.
pub fn validate(set: &LoadedSet) -> Vec<Problem> {
    if !set.defaults_applied() {
        let mut copy = LoadedSet::new();
        copy.files = set.files.clone();
        copy.objects = set.objects.clone();
        copy.decode_failures = set.decode_failures.clone();
        copy.apply_defaults();
        return validate(&copy);
    }
    let mut keyed: Vec<(&Origin, usize, Problem)> = Vec::new();
    let mut seq = 0usize;
    for f in &set.decode_failures {
        keyed.push((&f.origin, seq, f.problem.clone()));
        seq += 1;
    }
    for o in &set.objects {
        for p in validate_object(o) {
            keyed.push((&o.origin, seq, p));
            seq += 1;
        }
    }
    for (i, p) in cross::check(&set.objects) {
        keyed.push((&set.objects[i].origin, seq, p));
        seq += 1;
    }
    let rank: HashMap<&str, usize> = set
        .files
        .iter()
        .enumerate()
        .rev()
        .map(|(i, f)| (f.as_str(), i))
        .collect();
    keyed.sort_by_key(|(o, s, _)| {
        (
            rank.get(o.file.as_str()).copied().unwrap_or(usize::MAX),
            o.doc_index,
            o.item_index,
            *s,
        )
    });
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// Validates one object on its own (no cross-object rules). Expects defaults applied.
pub fn validate_object(object: &LoadedObject) -> Vec<Problem> {
    let mut cx = Ctx::new(object);
    common::check_metadata(&mut cx, &object.resource);
    match &object.resource {
        Resource::NetworkPolicy(p) => policy::check_network_policy(&mut cx, &p.spec),
        Resource::GlobalNetworkPolicy(p) => policy::check_global_network_policy(&mut cx, &p.spec),
        Resource::StagedNetworkPolicy(p) => policy::check_staged_network_policy(&mut cx, &p.spec),
        Resource::StagedGlobalNetworkPolicy(p) => {
            policy::check_staged_global_network_policy(&mut cx, &p.spec)
        }
        Resource::Tier(t) => policy::check_tier(&mut cx, t),
        Resource::Profile(p) => policy::check_profile(&mut cx, &p.spec),
        Resource::NetworkSet(s) => endpoints::check_network_set(&mut cx, &s.metadata, &s.spec),
        Resource::GlobalNetworkSet(s) => {
            endpoints::check_network_set(&mut cx, &s.metadata, &s.spec)
        }
        Resource::HostEndpoint(h) => endpoints::check_host_endpoint(&mut cx, &h.spec),
        Resource::WorkloadEndpoint(w) => endpoints::check_workload_endpoint(&mut cx, w),
        Resource::IpPool(p) => ipam::check_ip_pool(&mut cx, &p.spec),
        Resource::IpReservation(r) => ipam::check_ip_reservation(&mut cx, &r.spec),
        Resource::BlockAffinity(b) => ipam::check_block_affinity(&mut cx, &b.spec),
        Resource::IpamConfiguration(c) => ipam::check_ipam_configuration(&mut cx, c),
        Resource::Node(n) => bgp::check_node(&mut cx, &n.spec),
        Resource::BgpConfiguration(c) => bgp::check_bgp_configuration(&mut cx, c),
        Resource::BgpPeer(p) => bgp::check_bgp_peer(&mut cx, &p.spec),
        Resource::BgpFilter(f) => bgp::check_bgp_filter(&mut cx, &f.spec),
        Resource::FelixConfiguration(f) => bgp::check_felix_configuration(&mut cx, f),
        Resource::Namespace(_) | Resource::ServiceAccount(_) => {}
        Resource::Pod(p) => k8s::check_pod_spec(&mut cx, "spec", &p.spec),
        Resource::Deployment(d) => k8s::check_replicated(&mut cx, &d.spec),
        Resource::StatefulSet(d) => k8s::check_replicated(&mut cx, &d.spec),
        Resource::ReplicaSet(d) => k8s::check_replicated(&mut cx, &d.spec),
        Resource::ReplicationController(d) => k8s::check_replicated(&mut cx, &d.spec),
        Resource::DaemonSet(d) => k8s::check_template(&mut cx, "spec.template", &d.spec.template),
        Resource::Job(j) => k8s::check_job(&mut cx, "spec", &j.spec),
        Resource::CronJob(c) => {
            k8s::check_job(&mut cx, "spec.jobTemplate.spec", &c.spec.job_template.spec)
        }
        Resource::KubernetesNetworkPolicy(np) => k8s::check_network_policy(&mut cx, &np.spec),
    }
    cx.out
}
