//! The cluster model: endpoints, network sets, profiles, tiers and policies built
//! from a [`LoadedSet`](calico_model::loader::LoadedSet), with every selector rewritten and
//! resolved.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use calico_model::loader::Origin;
use calico_model::resources::Kind;
use calico_model::resources::Labels;
use calico_model::resources::felix::ProtoPort;
use calico_model::resources::policy::TierAction;

use crate::check::FailsafeDirection;
use crate::diag::Diagnostic;
pub(crate) use crate::direction::{Direction, PerDirection};
use crate::matching::{SelId, SelectorTable};
use crate::rules::CRule;

mod build;
mod endpoint;
mod tables;

pub(crate) use endpoint::EndpointContext;
#[cfg(feature = "incremental")]
pub(crate) use endpoint::{endpoint_from, workloads_of};
use tables::FelixConfigs;
pub(crate) use tables::{EndpointTable, PolicyTable};

/// What an endpoint was built from. Displays (and serializes) as the manifest kind: `Pod`,
/// the controller's kind (`Deployment`, ...), `WorkloadEndpoint` or `HostEndpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[non_exhaustive]
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
#[non_exhaustive]
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

    /// The endpoint's identity.
    pub fn key(&self) -> EndpointKey {
        EndpointKey {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// An endpoint's identity: what it was built from, its namespace and its name. Unlike a
/// position in [`Model::endpoints`], it does not change when other endpoints come and go,
/// so programs and changes are keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// What the endpoint was built from.
    pub kind: EndpointKind,
    /// Namespace (`None` for host endpoints).
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

/// `Kind ns/name` or `Kind name`.
impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl serde::Serialize for EndpointKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A NetworkSet or GlobalNetworkSet: selectable addresses.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct ProfileEntry {
    /// Name.
    pub name: String,
    pub(crate) ingress: Vec<CRule>,
    pub(crate) egress: Vec<CRule>,
}

/// A tier.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[non_exhaustive]
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
    /// Whether the policy applies to each direction (its `types`).
    pub types: PerDirection<bool>,
    pub(crate) rules: PerDirection<Vec<CRule>>,
    /// Staged: parsed and reported, never enforced.
    pub staged: bool,
    /// `doNotTrack` or `preDNAT`: host endpoints only, not evaluated offline.
    pub host_only: bool,
}

impl Policy {
    /// Whether the policy has rules for `dir` (its `types` include it).
    pub fn applies_in(&self, dir: Direction) -> bool {
        self.types[dir]
    }
}

/// A connlist workload: the endpoints sharing one printed name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Workload {
    /// Printed name (`ns/name[Kind]`).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Member endpoints, in model order; the first stands for the workload.
    pub members: Vec<EndpointKey>,
    /// The members' positions in the model.
    pub(crate) positions: Vec<usize>,
}

/// The cluster model.
#[derive(Debug)]
pub struct Model {
    pub(crate) endpoints: EndpointTable,
    pub(crate) network_sets: Vec<NetworkSetEntry>,
    pub(crate) profiles: HashMap<String, Arc<ProfileEntry>>,
    pub(crate) policies: PolicyTable,
    pub(crate) selectors: SelectorTable,
    /// Connlist workloads, grouped when first asked for (the agent never asks; grouping
    /// 100,000 endpoints again at every pod change would cost it milliseconds).
    pub(crate) workloads: std::sync::OnceLock<Vec<Workload>>,
    diagnostics: Vec<Diagnostic>,
    felix: FelixConfigs,
    /// What endpoint construction needs (kept for incremental updates).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) endpoint_context: EndpointContext,
}

impl Model {
    /// Gives the policies ranks with room between them and renumbers the endpoints'
    /// applying lists (before incremental inserts).
    #[cfg_attr(not(feature = "incremental"), allow(dead_code))]
    pub(crate) fn spread_ranks(&mut self) {
        let new_rank = self.policies.spread();
        for lists in self.endpoints.applying_mut() {
            for dir in Direction::ALL {
                for r in lists[dir].iter_mut() {
                    *r = new_rank(*r);
                }
            }
        }
    }

    /// The positions of the enforced policies applying to endpoint `ei` in `dir`, in
    /// evaluation order.
    pub(crate) fn applying(&self, ei: usize, dir: Direction) -> std::borrow::Cow<'_, [usize]> {
        let ranks = self.endpoints.applying(ei, dir);
        if self.policies.ranks_are_positions() {
            return std::borrow::Cow::Borrowed(ranks);
        }
        std::borrow::Cow::Owned(
            ranks
                .iter()
                .filter_map(|&r| self.policies.position_of_rank(r))
                .collect(),
        )
    }

    /// Every diagnostic (errors and warnings), in input order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The endpoints, in model order (input order for a model built at once). Positions in
    /// this list are not identities: name an endpoint by its [`EndpointKey`].
    pub fn endpoints(&self) -> &[Endpoint] {
        self.endpoints.as_slice()
    }

    /// How many endpoints are workloads (pods, controllers, WorkloadEndpoints), i.e. not
    /// host endpoints; kept as endpoints come and go, not counted.
    pub fn workload_endpoint_count(&self) -> usize {
        self.endpoints.workload_count()
    }

    /// The endpoint with this key.
    pub fn endpoint(&self, key: &EndpointKey) -> Option<&Endpoint> {
        self.endpoints
            .position(key)
            .and_then(|i| self.endpoints.get(i))
    }

    /// The network sets, in input order.
    pub fn network_sets(&self) -> &[NetworkSetEntry] {
        &self.network_sets
    }

    /// Tiers, in evaluation order.
    pub fn tiers(&self) -> &[TierEntry] {
        self.policies.tiers()
    }

    /// Policies (staged ones included), in evaluation order.
    pub fn policies(&self) -> &[Policy] {
        self.policies.as_slice()
    }

    /// The policy with this id.
    pub fn policy(&self, id: &PolicyId) -> Option<&Policy> {
        self.policies
            .position(id)
            .and_then(|i| self.policies.get(i))
    }

    /// Connlist workloads, in model order of their first member.
    pub fn workloads(&self) -> &[Workload] {
        self.workloads
            .get_or_init(|| workloads_of(self.endpoints.as_slice()))
    }

    /// The profile of this name, if it exists.
    pub fn profile(&self, name: &str) -> Option<&ProfileEntry> {
        self.profiles.get(name).map(|p| &**p)
    }

    /// The enforced policies applying to the endpoint `endpoint` in `direction`, in
    /// evaluation order (none for an unknown endpoint).
    pub fn applying_policies(&self, endpoint: &EndpointKey, direction: Direction) -> Vec<&Policy> {
        self.endpoints
            .position(endpoint)
            .map(|ei| {
                self.applying(ei, direction)
                    .iter()
                    .filter_map(|&i| self.policies.get(i))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the (rewritten) selector of policy `policy` selects endpoint `endpoint`.
    pub fn policy_selects(&self, policy: &PolicyId, endpoint: &EndpointKey) -> bool {
        let Some(ei) = self.endpoints.position(endpoint) else {
            return false;
        };
        self.policy(policy)
            .and_then(|p| p.selector_id)
            .is_some_and(|s| self.selectors.matches_endpoint(s, ei))
    }

    /// Whether the selector of the policy at position `pi` selects the endpoint at `ei`.
    pub(crate) fn policy_selects_at(&self, pi: usize, ei: usize) -> bool {
        self.policies
            .get(pi)
            .and_then(|p| p.selector_id)
            .is_some_and(|s| self.selectors.matches_endpoint(s, ei))
    }

    /// Finds an endpoint by `NAMESPACE/NAME` (Pod, WorkloadEndpoint, then controller) or
    /// `NAME` (HostEndpoint).
    pub fn find_endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.find_endpoint_position(name)
            .and_then(|i| self.endpoints.get(i))
    }

    /// The position of the endpoint [`Model::find_endpoint`] finds.
    pub(crate) fn find_endpoint_position(&self, name: &str) -> Option<usize> {
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

    /// `defaultEndpointToHostAction` on `node`: the FelixConfiguration `node.<node>`, then
    /// `default`; [`EndpointToHostAction::Drop`] when unset or not one of the three values.
    pub fn endpoint_to_host_action(&self, node: &str) -> EndpointToHostAction {
        self.felix
            .value(node, |s| s.default_endpoint_to_host_action.clone())
            .and_then(|v| EndpointToHostAction::from_config(&v))
            .unwrap_or_default()
    }

    /// The failsafe ports of `node` in `direction`: the FelixConfiguration `node.<node>`
    /// when it sets the list, else `default`'s, else Felix's defaults.
    pub fn failsafe_ports(&self, node: &str, direction: FailsafeDirection) -> Vec<ProtoPort> {
        self.felix.failsafe_ports(node, direction)
    }

    /// The endpoint whose addresses include `ip` (workloads before host endpoints).
    pub fn endpoint_with_addr(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoint_position_with_addr(ip)
            .and_then(|i| self.endpoints.get(i))
    }

    /// The position of the endpoint [`Model::endpoint_with_addr`] finds.
    pub(crate) fn endpoint_position_with_addr(&self, ip: IpAddr) -> Option<usize> {
        let hit = |host: bool| {
            self.endpoints
                .iter()
                .position(|e| e.is_workload() != host && e.addrs.contains(&ip))
        };
        hit(false).or_else(|| hit(true))
    }
}
