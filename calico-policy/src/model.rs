//! The cluster model: endpoints, network sets, profiles, tiers and policies built
//! from a [`LoadedSet`], with every selector rewritten and resolved.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use calico_model::derived;
use calico_model::loader::{LoadedObject, LoadedSet, Origin};
use calico_model::resources::felix::{FelixConfigurationSpec, ProtoPort};
use calico_model::resources::policy::{
    BUILTIN_TIERS, GlobalNetworkPolicySpec, NetworkPolicySpec, PolicyType, Rule, TierAction,
    builtin_tier,
};
use calico_model::resources::{Kind, Labels, Resource};
use calico_model::validation::validate;

use crate::convert::{KNP_ORDER, convert};
use crate::diag::{BuildError, Diagnostic, Severity};
use crate::matching::{SelId, SelectorTable};
use crate::rewrite::{global_policy_selector, namespaced_policy_selector};
use crate::rules::{CRule, compile_rule};

/// A direction of traffic relative to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

impl Direction {
    /// Both directions, in the order of the `[ingress, egress]` pairs the model keeps
    /// (see [`Policy::applies_in`] and [`crate::Program::endpoint_program`]).
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// What an endpoint was built from. Displays (and serializes) as the manifest kind: `Pod`,
/// the controller's kind (`Deployment`, ...), `WorkloadEndpoint` or `HostEndpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// A Pod manifest.
    Pod,
    /// A workload controller's synthetic pod (the controller's kind).
    Controller(Kind),
    /// A WorkloadEndpoint given directly.
    WorkloadEndpoint,
    /// A HostEndpoint.
    HostEndpoint,
}

impl EndpointKind {
    /// The manifest kind the endpoint was built from.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Pod => "Pod",
            EndpointKind::Controller(k) => k.as_str(),
            EndpointKind::WorkloadEndpoint => "WorkloadEndpoint",
            EndpointKind::HostEndpoint => "HostEndpoint",
        }
    }
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EndpointKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A named port an endpoint declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedPort {
    /// Port name.
    pub name: String,
    /// IP protocol number.
    pub protocol: u8,
    /// Port number.
    pub port: u16,
}

/// An endpoint: something policy applies to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// What it was built from.
    pub kind: EndpointKind,
    /// Namespace (`None` for host endpoints).
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The workload name connlist prints; for a host endpoint its
    /// name.
    pub workload: String,
    /// The labels the endpoint presents to selectors.
    pub labels: Labels,
    /// Profiles, in order.
    pub profiles: Vec<String>,
    /// Known addresses (empty for synthetic pods).
    pub addrs: Vec<IpAddr>,
    /// Declared named ports.
    pub ports: Vec<NamedPort>,
    /// Where it came from.
    pub origin: Origin,
    /// A `hostNetwork: true` pod (not a dataplane endpoint; modelled like any workload).
    pub host_network: bool,
    /// The node it runs on, when known (not for synthetic pods).
    pub node: Option<String>,
    /// The host-side interface name: `cali` + 11 hex digits of SHA-1(`ns.pod`) for a pod, the
    /// WorkloadEndpoint's `interfaceName` (or the same derived name), the HostEndpoint's
    /// `interfaceName` (`None` when empty: the endpoint covers its expected IPs, not one
    /// interface). `None` for synthetic pods.
    pub interface: Option<String>,
}

impl Endpoint {
    /// Whether this is a workload (not a host endpoint).
    pub fn is_workload(&self) -> bool {
        self.kind != EndpointKind::HostEndpoint
    }
}

/// A NetworkSet or GlobalNetworkSet: selectable addresses.
#[derive(Debug, Clone)]
pub struct NetworkSetEntry {
    /// Namespace (`None` for global ones).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Labels (with `projectcalico.org/namespace` for namespaced ones).
    pub labels: Labels,
    /// The CIDRs as ranges.
    pub nets: Vec<crate::addr::AddrRange>,
}

/// A profile with compiled rules.
#[derive(Debug, Clone)]
pub struct ProfileEntry {
    /// Name.
    pub name: String,
    pub(crate) ingress: Vec<CRule>,
    pub(crate) egress: Vec<CRule>,
}

/// A tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierEntry {
    /// Name.
    pub name: String,
    /// Order (`None` = after every ordered tier).
    pub order: Option<f64>,
    /// Default action.
    pub default_action: TierAction,
    /// False for a tier policies reference but that does not exist (sorted last, Deny).
    pub defined: bool,
}

/// The kind of a policy, as used in its tie-break key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// projectcalico.org/v3 NetworkPolicy.
    NetworkPolicy,
    /// GlobalNetworkPolicy.
    GlobalNetworkPolicy,
    /// A converted networking.k8s.io/v1 NetworkPolicy.
    KubernetesNetworkPolicy,
    /// StagedNetworkPolicy.
    StagedNetworkPolicy,
    /// StagedGlobalNetworkPolicy.
    StagedGlobalNetworkPolicy,
}

impl PolicyKind {
    /// The kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::KubernetesNetworkPolicy => "KubernetesNetworkPolicy",
            PolicyKind::StagedNetworkPolicy => "StagedNetworkPolicy",
            PolicyKind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PolicyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether validation's `problem` is about a document that has no `kind` at all (the loader
/// marks its kind `?`): such a document is skipped with a warning, not an error.
fn is_kindless_document(problem: &calico_model::validation::Problem) -> bool {
    /// The kind the loader gives a document whose kind it could not read.
    const UNKNOWN_KIND: &str = "?";
    problem.kind == UNKNOWN_KIND && problem.field_path == "kind"
}

/// What happens to traffic from a workload to its own host once the workload's egress
/// policy allowed it (FelixConfiguration `defaultEndpointToHostAction`).
///
/// Displays (and serializes) as `Drop`, `Accept` or `Return`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EndpointToHostAction {
    /// The traffic is dropped (the default).
    #[default]
    Drop,
    /// The traffic is accepted.
    Accept,
    /// The traffic goes on to the host's own rules; offline analysis counts it as allowed.
    Return,
}

impl EndpointToHostAction {
    /// The configuration value: `Drop`, `Accept` or `Return`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointToHostAction::Drop => "Drop",
            EndpointToHostAction::Accept => "Accept",
            EndpointToHostAction::Return => "Return",
        }
    }

    /// Whether the traffic gets past the host's input hook (`Accept` and `Return`).
    pub fn allows(self) -> bool {
        self != EndpointToHostAction::Drop
    }

    /// The action a configuration value names, case-insensitively and ignoring surrounding
    /// blanks; `None` for anything else.
    pub fn from_config(value: &str) -> Option<EndpointToHostAction> {
        [
            EndpointToHostAction::Drop,
            EndpointToHostAction::Accept,
            EndpointToHostAction::Return,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

impl fmt::Display for EndpointToHostAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EndpointToHostAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A policy's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyId {
    /// Kind.
    pub kind: PolicyKind,
    /// Namespace (`None` for global policies).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl PolicyId {
    /// The tie-break key `name/namespace/kind`.
    pub fn sort_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.name,
            self.namespace.as_deref().unwrap_or(""),
            self.kind.as_str()
        )
    }
}

/// `Kind namespace/name` or `Kind name`.
impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// A policy with its rewritten selector and compiled rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Identity.
    pub id: PolicyId,
    /// Where it came from.
    pub origin: Origin,
    /// Tier name.
    pub tier: String,
    /// Order (`None` = +∞).
    pub order: Option<f64>,
    /// The rewritten endpoint selector.
    pub selector: String,
    pub(crate) selector_id: Option<SelId>,
    /// Whether the policy applies to `[ingress, egress]` (its `types`); see
    /// [`Policy::applies_in`].
    pub types: [bool; 2],
    pub(crate) rules: [Vec<CRule>; 2],
    /// Staged: parsed and reported, never enforced.
    pub staged: bool,
    /// `doNotTrack` or `preDNAT`: host endpoints only, not evaluated offline.
    pub host_only: bool,
}

impl Policy {
    /// Whether the policy has rules for `dir` (its `types` include it).
    pub fn applies_in(&self, dir: Direction) -> bool {
        self.types[dir.index()]
    }
}

/// A connlist workload: the endpoints sharing one printed name.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Printed name (`ns/name[Kind]`).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Member endpoints, in input order; the first stands for the workload.
    pub members: Vec<usize>,
}

/// The cluster model.
#[derive(Debug)]
pub struct Model {
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) network_sets: Vec<NetworkSetEntry>,
    pub(crate) profiles: HashMap<String, Arc<ProfileEntry>>,
    /// Per endpoint, its profiles resolved by name (`None` = missing).
    pub(crate) endpoint_profiles: Vec<Vec<Option<Arc<ProfileEntry>>>>,
    pub(crate) tiers: Vec<TierEntry>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) selectors: SelectorTable,
    /// Per endpoint and direction, the enforced policies applying to it, in evaluation order.
    pub(crate) applying: Vec<[Vec<usize>; 2]>,
    pub(crate) tier_of_policy: Vec<usize>,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// FelixConfiguration specs by name (`default`, `node.<name>`).
    pub(crate) felix: HashMap<String, FelixConfigurationSpec>,
    /// What endpoint construction needs (kept for incremental updates).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) endpoint_context: EndpointContext,
}

fn cmp_order(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(f64::INFINITY)
        .total_cmp(&b.unwrap_or(f64::INFINITY))
}

struct PolicySource<'a> {
    kind: PolicyKind,
    namespace: Option<String>,
    tier: String,
    order: Option<f64>,
    selector: Result<String, (String, String)>,
    types: Vec<PolicyType>,
    ingress: &'a [Rule],
    egress: &'a [Rule],
    staged: bool,
    host_only: bool,
}

impl<'a> PolicySource<'a> {
    /// A (staged or enforced) projectcalico.org NetworkPolicy in namespace `ns`.
    fn namespaced(
        kind: PolicyKind,
        ns: &str,
        spec: &'a NetworkPolicySpec,
        staged: bool,
    ) -> PolicySource<'a> {
        PolicySource {
            kind,
            namespace: Some(ns.to_owned()),
            tier: spec.tier.clone(),
            order: spec.order,
            selector: namespaced_policy_selector(
                &spec.selector,
                ns,
                &spec.service_account_selector,
            )
            .map_err(|e| ("spec.serviceAccountSelector".into(), e.to_string())),
            types: spec.types.clone(),
            ingress: &spec.ingress,
            egress: &spec.egress,
            staged,
            host_only: false,
        }
    }

    /// A (staged or enforced) GlobalNetworkPolicy. A preDNAT policy is ingress-only.
    fn global(
        kind: PolicyKind,
        spec: &'a GlobalNetworkPolicySpec,
        staged: bool,
    ) -> PolicySource<'a> {
        PolicySource {
            kind,
            namespace: None,
            tier: spec.tier.clone(),
            order: spec.order,
            selector: global_policy_selector(
                &spec.selector,
                &spec.namespace_selector,
                &spec.service_account_selector,
            )
            .map_err(|e| ("spec".into(), e.to_string())),
            types: if spec.pre_dnat {
                vec![PolicyType::Ingress]
            } else {
                spec.types.clone()
            },
            ingress: &spec.ingress,
            egress: &spec.egress,
            staged,
            host_only: spec.do_not_track || spec.pre_dnat,
        }
    }
}

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

impl Model {
    /// Builds the model; fails when the manifests hold any error (validation problems,
    /// unusable selectors, conversion errors) or could not all be read.
    ///
    /// # Errors
    ///
    /// [`BuildError::Load`] when inputs could not be read or parsed;
    /// [`BuildError::Invalid`] with every error (and the warnings) otherwise.
    pub fn build(set: &LoadedSet) -> Result<Model, BuildError> {
        if !set.errors.is_empty() {
            return Err(BuildError::Load {
                messages: set.errors.iter().map(ToString::to_string).collect(),
            });
        }
        let model = Model::build_lenient(set);
        if model.diagnostics.iter().any(Diagnostic::is_error) {
            let (errors, warnings) = model
                .diagnostics
                .into_iter()
                .partition(Diagnostic::is_error);
            return Err(BuildError::Invalid { errors, warnings });
        }
        Ok(model)
    }

    /// Builds the model from whatever is usable, recording every problem in
    /// [`Model::diagnostics`]: first the warnings of a lenient load
    /// ([`LoadedSet::warnings`]: documents skipped, parts dropped), then validation's and
    /// the builder's. Rules and policies with errors are left out.
    pub fn build_lenient(set: &LoadedSet) -> Model {
        // What a lenient load skipped or dropped comes first, as warnings.
        let load_warnings = set.warnings.clone();
        let owned;
        let set = if set.defaults_applied() {
            set
        } else {
            let mut s = LoadedSet::new();
            s.objects = set.objects.clone();
            s.decode_failures = set.decode_failures.clone();
            s.apply_defaults();
            owned = s;
            &owned
        };
        let mut diagnostics: Vec<Diagnostic> = load_warnings;
        diagnostics.extend(validate(set).into_iter().map(|mut problem| {
            // A document without `kind` is skipped with a warning.
            let severity = if is_kindless_document(&problem) {
                problem.message = "document without kind: skipped".to_owned();
                Severity::Warning
            } else {
                Severity::Error
            };
            Diagnostic { severity, problem }
        }));
        let mut b = Builder {
            objects: &set.objects,
            table: SelectorTable::default(),
            diagnostics: Vec::new(),
        };
        let model = b.build();
        // Validation already reported some problems at the same field: keep its message.
        let seen: HashSet<(String, usize, String, String)> = diagnostics
            .iter()
            .map(|d| {
                let p = &d.problem;
                (
                    p.file.clone(),
                    p.doc_index,
                    p.name.clone(),
                    p.field_path.clone(),
                )
            })
            .collect();
        diagnostics.extend(b.diagnostics.into_iter().filter(|d| {
            let p = &d.problem;
            !d.is_error()
                || !seen.contains(&(
                    p.file.clone(),
                    p.doc_index,
                    p.name.clone(),
                    p.field_path.clone(),
                ))
        }));
        Model {
            diagnostics,
            ..model
        }
    }

    /// Every diagnostic (errors and warnings), in input order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The endpoints, in input order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The network sets, in input order.
    pub fn network_sets(&self) -> &[NetworkSetEntry] {
        &self.network_sets
    }

    /// Tiers, in evaluation order.
    pub fn tiers(&self) -> &[TierEntry] {
        &self.tiers
    }

    /// Policies (staged ones included), in evaluation order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Connlist workloads, in input order of their first member.
    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// The profile of this name, if it exists.
    pub fn profile(&self, name: &str) -> Option<&ProfileEntry> {
        self.profiles.get(name).map(|p| &**p)
    }

    /// The enforced policies applying to endpoint `endpoint` in `direction`, in order.
    pub fn applying_policies(&self, endpoint: usize, direction: Direction) -> Vec<&Policy> {
        self.applying
            .get(endpoint)
            .map(|a| {
                a[direction.index()]
                    .iter()
                    .map(|&i| &self.policies[i])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the (rewritten) selector of policy `policy` selects endpoint `endpoint`.
    pub fn policy_selects(&self, policy: usize, endpoint: usize) -> bool {
        self.policies
            .get(policy)
            .and_then(|p| p.selector_id)
            .is_some_and(|s| self.selectors.matches_endpoint(s, endpoint))
    }

    /// Finds an endpoint by `NAMESPACE/NAME` (Pod, WorkloadEndpoint, then controller) or
    /// `NAME` (HostEndpoint).
    pub fn find_endpoint(&self, name: &str) -> Option<usize> {
        let (ns, n) = match name.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, name),
        };
        let order = |k: EndpointKind| match k {
            EndpointKind::Pod => 0,
            EndpointKind::WorkloadEndpoint => 1,
            EndpointKind::Controller(_) => 2,
            EndpointKind::HostEndpoint => 3,
        };
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.namespace.as_deref() == ns && e.name == n)
            .min_by_key(|(i, e)| (order(e.kind), *i))
            .map(|(i, _)| i)
    }

    /// The FelixConfiguration value for `node`: `node.<node>` first, then `default`.
    fn felix_value<T>(
        &self,
        node: &str,
        f: impl Fn(&FelixConfigurationSpec) -> Option<T>,
    ) -> Option<T> {
        self.felix
            .get(&format!("node.{node}"))
            .and_then(&f)
            .or_else(|| self.felix.get("default").and_then(&f))
    }

    /// `defaultEndpointToHostAction` on `node`: the FelixConfiguration `node.<node>`, then
    /// `default`; [`EndpointToHostAction::Drop`] when unset or not one of the three values.
    pub fn endpoint_to_host_action(&self, node: &str) -> EndpointToHostAction {
        self.felix_value(node, |s| s.default_endpoint_to_host_action.clone())
            .and_then(|v| EndpointToHostAction::from_config(&v))
            .unwrap_or_default()
    }

    /// The failsafe ports of `node` (inbound when `inbound`, else outbound).
    pub fn failsafe_ports(&self, node: &str, inbound: bool) -> Vec<ProtoPort> {
        let spec = self
            .felix
            .get(&format!("node.{node}"))
            .filter(|s| {
                if inbound {
                    s.failsafe_inbound_host_ports.is_some()
                } else {
                    s.failsafe_outbound_host_ports.is_some()
                }
            })
            .or_else(|| self.felix.get("default"))
            .cloned()
            .unwrap_or_default();
        if inbound {
            spec.effective_failsafe_inbound_host_ports()
        } else {
            spec.effective_failsafe_outbound_host_ports()
        }
    }

    /// The endpoint whose addresses include `ip` (workloads before host endpoints).
    pub fn endpoint_with_addr(&self, ip: IpAddr) -> Option<usize> {
        let hit = |host: bool| {
            self.endpoints
                .iter()
                .position(|e| e.is_workload() != host && e.addrs.contains(&ip))
        };
        hit(false).or_else(|| hit(true))
    }
}

struct Builder<'a> {
    objects: &'a [LoadedObject],
    table: SelectorTable,
    diagnostics: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn report(
        &mut self,
        sev: Severity,
        o: &LoadedObject,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::about(sev, &o.origin, &o.resource, field, msg));
    }

    fn compile_rules(
        &mut self,
        o: &LoadedObject,
        rules: &[Rule],
        ns: &str,
        field: &str,
        converted: bool,
    ) -> Vec<CRule> {
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let mut problems = Vec::new();
            let c = compile_rule(r, i, ns, &mut self.table, &mut problems);
            if r.http.is_some() {
                self.report(
                    Severity::Warning,
                    o,
                    format!("{field}[{i}].http"),
                    "http match is enforced by an L7 proxy, not modelled: the rule is evaluated without it",
                );
            }
            let path = if converted {
                format!("{field} (converted rule {i})")
            } else {
                format!("{field}[{i}]")
            };
            if problems.is_empty() {
                out.push(c);
            } else {
                for (f, m) in problems {
                    self.report(Severity::Error, o, format!("{path}.{f}"), m);
                }
            }
        }
        out
    }

    /// The policy `o` stands for (any policy kind), with its rules compiled and selectors
    /// interned; problems are reported as diagnostics.
    pub(crate) fn policy_from(&mut self, o: &LoadedObject) -> Option<Policy> {
        let r = &o.resource;
        let ns = r.namespace().unwrap_or("default").to_owned();
        let converted;
        let enforced_np;
        let enforced_gnp;
        let src = match r {
            Resource::NetworkPolicy(p) => {
                PolicySource::namespaced(PolicyKind::NetworkPolicy, &ns, &p.spec, false)
            }
            Resource::StagedNetworkPolicy(p) => {
                enforced_np = p.spec.to_enforced();
                PolicySource::namespaced(PolicyKind::StagedNetworkPolicy, &ns, &enforced_np, true)
            }
            Resource::GlobalNetworkPolicy(p) => {
                PolicySource::global(PolicyKind::GlobalNetworkPolicy, &p.spec, false)
            }
            Resource::StagedGlobalNetworkPolicy(p) => {
                enforced_gnp = p.spec.to_enforced();
                PolicySource::global(PolicyKind::StagedGlobalNetworkPolicy, &enforced_gnp, true)
            }
            Resource::KubernetesNetworkPolicy(k) => {
                converted = convert(k);
                for (f, m) in &converted.errors {
                    self.report(Severity::Error, o, f.clone(), m.clone());
                }
                for (f, m) in &converted.warnings {
                    self.report(Severity::Warning, o, f.clone(), m.clone());
                }
                PolicySource {
                    kind: PolicyKind::KubernetesNetworkPolicy,
                    namespace: Some(ns.clone()),
                    tier: "default".to_owned(),
                    order: Some(KNP_ORDER),
                    selector: namespaced_policy_selector(&converted.selector, &ns, "")
                        .map_err(|e| ("spec.podSelector".into(), e.to_string())),
                    types: converted.types.clone(),
                    ingress: &converted.ingress,
                    egress: &converted.egress,
                    staged: false,
                    host_only: false,
                }
            }
            _ => return None,
        };
        let is_knp = src.kind == PolicyKind::KubernetesNetworkPolicy;
        let rule_ns = src.namespace.clone().unwrap_or_default();
        let ingress = self.compile_rules(o, src.ingress, &rule_ns, "spec.ingress", is_knp);
        let egress = self.compile_rules(o, src.egress, &rule_ns, "spec.egress", is_knp);
        let (selector, selector_id) = match src.selector {
            Ok(text) => match self.table.intern(&text) {
                Ok(id) => (text, Some(id)),
                Err(e) => {
                    let field = if is_knp {
                        "spec.podSelector"
                    } else {
                        "spec.selector"
                    };
                    self.report(Severity::Error, o, field, format!("invalid selector: {e}"));
                    (text, None)
                }
            },
            Err((field, msg)) => {
                self.report(
                    Severity::Error,
                    o,
                    field,
                    format!("invalid selector: {msg}"),
                );
                (String::new(), None)
            }
        };
        let types = if src.types.is_empty() {
            [true, true]
        } else {
            [
                src.types.contains(&PolicyType::Ingress),
                src.types.contains(&PolicyType::Egress),
            ]
        };
        Some(Policy {
            id: PolicyId {
                kind: src.kind,
                namespace: src.namespace,
                name: r.name().to_owned(),
            },
            origin: o.origin.clone(),
            tier: if src.tier.is_empty() {
                "default".to_owned()
            } else {
                src.tier
            },
            order: src.order,
            selector,
            selector_id,
            types,
            rules: [ingress, egress],
            staged: src.staged,
            host_only: src.host_only,
        })
    }

    fn build(&mut self) -> Model {
        let objects = self.objects;
        let resources = || objects.iter().map(|o| &o.resource);

        // Namespaces (with implicit ones) and service accounts.
        let mut ns_labels: HashMap<String, Labels> = HashMap::new();
        for r in resources() {
            if let Resource::Namespace(ns) = r {
                ns_labels.insert(ns.metadata.name.clone(), derived::namespace_labels(ns));
            }
        }
        for ns in derived::implicit_namespaces(resources()) {
            ns_labels.insert(ns.metadata.name.clone(), derived::namespace_labels(&ns));
        }
        let mut sa_labels: HashMap<(String, String), Labels> = HashMap::new();
        for r in resources() {
            if let Resource::ServiceAccount(sa) = r {
                let ns = r.namespace().unwrap_or("default").to_owned();
                sa_labels.insert((ns, sa.metadata.name.clone()), sa.metadata.labels.clone());
            }
        }

        // Profiles: user profiles, then the derived kns./ksa. ones.
        let mut profile_labels: HashMap<String, Labels> = HashMap::new();
        let mut profiles: HashMap<String, Arc<ProfileEntry>> = HashMap::new();
        for o in objects {
            if let Resource::Profile(p) = &o.resource {
                let ingress = self.compile_rules(o, &p.spec.ingress, "", "spec.ingress", false);
                let egress = self.compile_rules(o, &p.spec.egress, "", "spec.egress", false);
                profile_labels.insert(p.metadata.name.clone(), p.spec.labels_to_apply.clone());
                profiles.insert(
                    p.metadata.name.clone(),
                    Arc::new(ProfileEntry {
                        name: p.metadata.name.clone(),
                        ingress,
                        egress,
                    }),
                );
            }
        }
        for p in derived::derived_profiles(resources()) {
            let mut problems = Vec::new();
            let compile = |rules: &[Rule], table: &mut SelectorTable, problems: &mut Vec<_>| {
                rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| compile_rule(r, i, "", table, problems))
                    .collect::<Vec<_>>()
            };
            let ingress = compile(&p.spec.ingress, &mut self.table, &mut problems);
            let egress = compile(&p.spec.egress, &mut self.table, &mut problems);
            profile_labels.insert(p.metadata.name.clone(), p.spec.labels_to_apply.clone());
            profiles.insert(
                p.metadata.name.clone(),
                Arc::new(ProfileEntry {
                    name: p.metadata.name.clone(),
                    ingress,
                    egress,
                }),
            );
        }

        // Endpoints, in input order.
        let ctx = EndpointContext {
            pod_keys: resources()
                .filter_map(|r| match r {
                    Resource::Pod(p) => Some((
                        r.namespace().unwrap_or("default").to_owned(),
                        p.metadata.name.clone(),
                    )),
                    _ => None,
                })
                .collect(),
            ns_labels,
            sa_labels,
            profile_labels,
        };
        let endpoints: Vec<Endpoint> = objects
            .iter()
            .filter_map(|o| endpoint_from(&ctx, o))
            .collect();

        // Network sets.
        let mut network_sets = Vec::new();
        for r in resources() {
            let (spec, meta) = match r {
                Resource::NetworkSet(n) => (&n.spec, &n.metadata),
                Resource::GlobalNetworkSet(n) => (&n.spec, &n.metadata),
                _ => continue,
            };
            // A namespaced set inherits its namespace's labels (`pcns.*`) through the
            // namespace's `kns.` profile, exactly as a pod does; its own labels win.
            let mut calico = Labels::new();
            let mut layers: Vec<&Labels> = Vec::new();
            if let Some(ns) = r.namespace() {
                calico.insert(derived::LABEL_NAMESPACE.to_owned(), ns.to_owned());
                let profile = derived::namespace_profile_name(ns);
                layers.push(ctx.profile_labels.get(&profile).unwrap_or(&EMPTY_LABELS));
            }
            let labels = derived::endpoint_labels(&calico, &meta.labels, &layers);
            network_sets.push(NetworkSetEntry {
                namespace: r.namespace().map(str::to_owned),
                name: meta.name.clone(),
                labels,
                nets: spec
                    .nets
                    .iter()
                    .map(crate::addr::AddrRange::of_cidr)
                    .collect(),
            });
        }

        // Policies.
        let policies: Vec<Policy> = objects.iter().filter_map(|o| self.policy_from(o)).collect();

        // Tiers.
        let mut tiers: Vec<TierEntry> = Vec::new();
        for r in resources() {
            if let Resource::Tier(t) = r {
                let b = builtin_tier(&t.metadata.name);
                tiers.push(TierEntry {
                    name: t.metadata.name.clone(),
                    order: t.spec.order.or(b.map(|b| b.order)),
                    default_action: t
                        .spec
                        .default_action
                        .or(b.map(|b| b.default_action))
                        .unwrap_or(TierAction::Deny),
                    defined: true,
                });
            }
        }
        for b in BUILTIN_TIERS {
            if !tiers.iter().any(|t| t.name == b.name) {
                tiers.push(TierEntry {
                    name: b.name.to_owned(),
                    order: Some(b.order),
                    default_action: b.default_action,
                    defined: true,
                });
            }
        }
        tiers.sort_by(|a, b| {
            cmp_order(a.order, b.order).then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
        });
        let mut missing: Vec<String> = policies
            .iter()
            .filter(|p| !tiers.iter().any(|t| t.name == p.tier))
            .map(|p| p.tier.clone())
            .collect();
        missing.sort();
        missing.dedup();
        for name in missing {
            tiers.push(TierEntry {
                name,
                order: None,
                default_action: TierAction::Deny,
                defined: false,
            });
        }
        let tier_pos: HashMap<&str, usize> = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let keys: Vec<(usize, String)> = policies
            .iter()
            .map(|p| {
                (
                    tier_pos.get(p.tier.as_str()).copied().unwrap_or(usize::MAX),
                    p.id.sort_key(),
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..policies.len()).collect();
        order.sort_by(|&a, &b| {
            keys[a]
                .0
                .cmp(&keys[b].0)
                .then_with(|| cmp_order(policies[a].order, policies[b].order))
                .then_with(|| keys[a].1.as_bytes().cmp(keys[b].1.as_bytes()))
        });
        let tier_of_policy: Vec<usize> = order.iter().map(|&i| keys[i].0).collect();
        let mut slots: Vec<Option<Policy>> = policies.into_iter().map(Some).collect();
        let policies: Vec<Policy> = order.iter().filter_map(|&i| slots[i].take()).collect();

        // Resolve selectors and the policies applying to each endpoint.
        let mut table = std::mem::take(&mut self.table);
        table.resolve(
            endpoints.iter().map(|e| &e.labels),
            network_sets.iter().map(|n| &n.labels),
        );
        let applying = (0..endpoints.len())
            .map(|ei| applying_of(&policies, &table, ei))
            .collect();

        let workloads = workloads_of(&endpoints);

        self.check_named_ports(&policies, &endpoints);

        let endpoint_profiles = endpoints
            .iter()
            .map(|e| {
                e.profiles
                    .iter()
                    .map(|p| profiles.get(p).cloned())
                    .collect()
            })
            .collect();
        Model {
            endpoints,
            network_sets,
            profiles,
            endpoint_profiles,
            tiers,
            policies,
            selectors: table,
            applying,
            tier_of_policy,
            workloads,
            diagnostics: Vec::new(),
            endpoint_context: ctx,
            felix: objects
                .iter()
                .filter_map(|o| match &o.resource {
                    Resource::FelixConfiguration(f) => {
                        Some((f.metadata.name.clone(), f.spec.clone()))
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// Warns about named ports no endpoint declares (they match nothing).
    fn check_named_ports(&mut self, policies: &[Policy], endpoints: &[Endpoint]) {
        let declared: HashSet<&str> = endpoints
            .iter()
            .flat_map(|e| e.ports.iter().map(|p| p.name.as_str()))
            .collect();
        let mut found = Vec::new();
        for p in policies {
            for (d, rules) in ["spec.ingress", "spec.egress"].iter().zip(&p.rules) {
                for r in rules {
                    for (side, e) in [("source", &r.src), ("destination", &r.dst)] {
                        for n in e.named.iter().chain(&e.not_named) {
                            if !declared.contains(n.as_str()) {
                                found.push((
                                    p.origin.clone(),
                                    p.id.clone(),
                                    format!("{d}[{}].{side}.ports", r.index),
                                    format!("named port {n:?} is declared by no endpoint: it matches nothing"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        for (origin, id, field, msg) in found {
            let Some(o) = self
                .objects
                .iter()
                .find(|o| o.origin == origin && o.resource.name() == id.name)
            else {
                continue;
            };
            self.report(Severity::Warning, o, field, msg);
        }
    }
}

/// What endpoint construction needs from the rest of the manifests: namespace,
/// service-account and profile labels, and which pods exist (a WorkloadEndpoint of a listed
/// pod is the same endpoint).
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointContext {
    pub(crate) pod_keys: HashSet<(String, String)>,
    pub(crate) ns_labels: HashMap<String, Labels>,
    pub(crate) sa_labels: HashMap<(String, String), Labels>,
    pub(crate) profile_labels: HashMap<String, Labels>,
}

static EMPTY_LABELS: std::sync::LazyLock<Labels> = std::sync::LazyLock::new(Labels::new);

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
        let nsl = ctx.ns_labels.get(&ns).unwrap_or(&EMPTY_LABELS);
        let sal = ctx
            .sa_labels
            .get(&(ns.clone(), sa.clone()))
            .unwrap_or(&EMPTY_LABELS);
        let workload = match kind {
            EndpointKind::Controller(k) => format!("{ns}/{}[{}]", r.name(), k.as_str()),
            _ => pod_workload_name(&ns, pod),
        };
        return Some(Endpoint {
            kind,
            namespace: Some(ns.clone()),
            name: r.name().to_owned(),
            workload,
            labels: derived::pod_labels(pod, nsl, sal),
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
            Some(&w) => workloads[w].members.push(i),
            None => {
                groups.insert(e.workload.clone(), workloads.len());
                workloads.push(Workload {
                    name: e.workload.clone(),
                    namespace: e.namespace.clone().unwrap_or_default(),
                    members: vec![i],
                });
            }
        }
    }
    workloads
}

/// The enforced policies applying to endpoint `ei`, per direction, in evaluation order
/// (`policies` is in evaluation order).
pub(crate) fn applying_of(
    policies: &[Policy],
    table: &SelectorTable,
    ei: usize,
) -> [Vec<usize>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for (pi, p) in policies.iter().enumerate() {
        if p.staged || p.host_only {
            continue;
        }
        let Some(sel) = p.selector_id else { continue };
        if table.matches_endpoint(sel, ei) {
            for (list, applies) in out.iter_mut().zip(p.types) {
                if applies {
                    list.push(pi);
                }
            }
        }
    }
    out
}

/// The evaluation order of two policies given their tiers' positions: tier,
/// then order (unset last), then the `name/namespace/kind` tie-break.
#[cfg_attr(not(feature = "incremental"), allow(dead_code))]
pub(crate) fn policy_order(tier_a: usize, a: &Policy, tier_b: usize, b: &Policy) -> Ordering {
    tier_a
        .cmp(&tier_b)
        .then_with(|| cmp_order(a.order, b.order))
        .then_with(|| a.id.sort_key().as_bytes().cmp(b.id.sort_key().as_bytes()))
}

impl Model {
    /// Builds the policy `o` stands for against this model's selector table (new selectors
    /// are resolved). `Ok(None)` when `o` is not a policy; `Err` with the errors found.
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn build_policy(
        &mut self,
        o: &LoadedObject,
    ) -> Result<Option<Policy>, Vec<Diagnostic>> {
        let mut b = Builder {
            objects: std::slice::from_ref(o),
            table: std::mem::take(&mut self.selectors),
            diagnostics: Vec::new(),
        };
        let policy = b.policy_from(o);
        self.selectors = b.table;
        self.selectors.resolve_new();
        let errors: Vec<Diagnostic> = b
            .diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }
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
