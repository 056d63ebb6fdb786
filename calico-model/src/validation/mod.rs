//! Validation of loaded resources, with the rules Calico's API server and `calicoctl`
//! apply.
//!
//! [`validate`] checks every object of a [`LoadedSet`] and the cross-object rules, and returns
//! **all** problems, not just the first, each rendered by its `Display` as one line
//! `FILE:DOC_INDEX KIND/[NAMESPACE/]NAME: FIELD.PATH: message` (the line `calico validate`
//! prints). Objects that failed to decode are included as problems too. Problems are ordered
//! by input position (file order, document, list item), then in the order the fields are
//! checked.
//!
//! An unknown kind prints as `?`, a missing name as the empty string
//! (`Tier/: metadata.name: ...`), and a problem about the document as a whole has field path
//! `-`.
//!
//! # Field paths
//!
//! A field path joins the manifest's JSON field names with `.`, writes list indexes as `[i]`
//! and map keys as `[key]`: `spec.ingress[0].destination.ports[1]`,
//! `metadata.labels[app.kubernetes.io/name]`. A rule that relates several fields is reported
//! on their nearest common parent (`spec`, `spec.ingress[2]`) unless one field is clearly at
//! fault.
//!
//! # What is checked
//!
//! - Names, labels and annotations: most names are DNS-1123 subdomains; namespaces and tiers
//!   are DNS labels; NetworkPolicy and GlobalNetworkPolicy names allow at most one dot (plus
//!   the `knp.default.` and `ossg.default.` forms for namespaced ones); label keys are
//!   Kubernetes qualified names, label values at most 63 characters of the label-value
//!   alphabet, and annotations at most 256 KiB in total. The predicates are in
//!   [`format`](mod@crate::format).
//! - Policy kinds: rules (actions, protocols that support ports, ICMP fields, entity rules),
//!   policy types, the GlobalNetworkPolicy `doNotTrack`/`preDNAT`/`applyOnForward`
//!   combinations, the fixed values of the built-in tiers, staged actions.
//! - Endpoints, network sets and IPAM kinds: addresses and CIDRs (a `net` value must have no
//!   host bits, a `cidr` value may), interface names, MAC addresses, the derived name of a
//!   Kubernetes WorkloadEndpoint, IPPool block sizes, modes and selectors.
//! - Node, BGP and Felix kinds: AS numbers, peer addresses and selectors, BGP filters and
//!   communities, the Felix fields this crate models.
//! - Kubernetes kinds: only the fields the model reads, with the API server's rules
//!   (container ports, label selectors, NetworkPolicy peers, ports and `ipBlock`s).
//! - Every selector field: at most 1024 characters, valid syntax, and `global()` only where
//!   the field allows it (see [selector fields](crate::selector#selector-fields-and-global)).
//!
//! # Cross-object checks
//!
//! Over the whole set: a duplicate (kind, namespace, name) is reported on the second
//! object's `metadata.name`; a policy's tier must be built in or present (`spec.tier`);
//! IPPool CIDRs must not overlap (the later pool's `spec.cidr`); BGPPeer filters must name
//! existing BGPFilters; two Nodes must not share a BGP address; and the `default`
//! BGPConfiguration's `programClusterRoutes` must complement the `default`
//! FelixConfiguration's, and their normal route priorities must agree.

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
        kind: Some(r.kind().as_str().to_owned()),
        namespace: r.namespace().map(str::to_owned),
        name: r.name().to_owned(),
        field_path,
        message,
    }
}

/// Validates every object of `set` and the [cross-object rules](self#cross-object-checks).
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
    let per_object = crate::parallel::map(&set.objects, validate_object);
    for (o, problems) in set.objects.iter().zip(per_object) {
        for p in problems {
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
        Resource::Namespace(_)
        | Resource::ServiceAccount(_)
        | Resource::Service(_)
        | Resource::EndpointSlice(_)
        | Resource::Secret(_) => {}
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
