//! Incremental compilation: a [`Compiler`] keeps the manifests, the [`Model`]
//! and its [`Program`], and applies one resource change at a time, recomputing only what the
//! change affects and saying what changed ([`ProgramChanges`]).
//!
//! | change | what is recomputed |
//! |---|---|
//! | a policy (any kind) added, changed or removed | its rules and the sets they newly use; which endpoints it selects (one selector-index query); the program of each endpoint it selected before or selects now; sets no rule uses any more are dropped |
//! | an endpoint (Pod, workload controller, WorkloadEndpoint, HostEndpoint) added, changed or removed | its labels in the selector index (only selectors reading its labels are re-evaluated); the members of the sets whose selectors match it before or after, and of the named-port sets for its port names, patched member by member (the members added and removed are reported in [`ProgramChanges::member_deltas`]); its own program |
//! | anything else (Namespace, ServiceAccount, Profile, Tier, NetworkSet, FelixConfiguration, ...) | the whole model, then [`Program::changes`] against the previous program |
//!
//! The program always equals a fresh [`Model::build`] + [`Model::compile`] of the same
//! manifests (programs are keyed by [`PolicyId`] and [`EndpointKey`](crate::EndpointKey),
//! never by positions). Two things differ from a fresh build: the order of
//! [`Model::endpoints`] (a removed endpoint's place is taken by the last one), and
//! validation of an upserted object is per object ([`validate_object`]), without the
//! cross-object checks of a full build.
//!
//! Each endpoint keeps the list of the policies applying to it by *rank*, a number that
//! grows with the policy's place in evaluation order and that other policies' coming and
//! going leaves alone (ranks start spread apart and are spread again when two neighbours
//! leave no room). So a policy that moves in the order touches only the endpoints it
//! selected or selects, never the whole cluster.
//!
//! A node's agent needs programs only for its own endpoints:
//! [`Compiler::with_scope`] with [`EndpointScope::Node`] works out policy lists and programs
//! only for them (policies, profiles and sets are compiled whole, since sets hold the
//! addresses of the whole cluster); the program then equals a fresh
//! [`Model::compile_where`] with the same scope.
//!
//! ```
//! use calico_model::loader::load_str;
//! use calico_policy::incremental::{Change, Compiler};
//!
//! let base = load_str("c.yaml", r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: a, namespace: ns, labels: {app: a}}
//! status: {podIP: 10.0.0.1}
//! "#);
//! let mut compiler = Compiler::new(&base).unwrap();
//! let policy = load_str("p.yaml", r#"
//! apiVersion: projectcalico.org/v3
//! kind: NetworkPolicy
//! metadata: {name: p, namespace: ns}
//! spec: {selector: app == 'a', ingress: [{action: Allow}]}
//! "#);
//! let update = compiler
//!     .apply(Change::Upsert(Box::new(policy.objects[0].clone())))
//!     .unwrap();
//! assert_eq!(update.changes.policies_changed.len(), 1);
//! assert!(!update.changes.endpoints_changed.is_empty());
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use calico_model::derived;
use calico_model::loader::{LoadedObject, LoadedSet};
use calico_model::resources::{Kind, Resource};
use calico_model::validation::validate_object;

use crate::compile::{
    IrMatch, IrRule, MemberChanges, MemberDelta, Program, ProgramChanges, SetDef, SetId,
};
use crate::diag::{BuildError, Diagnostic, Severity};
use crate::direction::PerDirection;
use crate::model::{Direction, Endpoint, Model, Policy, PolicyId, PolicyKind, endpoint_from};

/// Identifies one object of the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Kind.
    pub kind: Kind,
    /// Namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `resource`.
    pub fn of(resource: &Resource) -> ObjectKey {
        ObjectKey {
            kind: resource.kind(),
            namespace: resource.namespace().map(str::to_owned),
            name: resource.name().to_owned(),
        }
    }
}

/// `Kind ns/name` or `Kind name`.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// One change of the manifests.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add the object, or replace the object with the same key.
    Upsert(Box<LoadedObject>),
    /// Remove the object with this key.
    Delete(ObjectKey),
}

/// How an update was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePath {
    /// Only what the change affects was recomputed.
    Incremental,
    /// The model was rebuilt (kinds without an incremental path, or a change of tiers).
    Rebuild,
}

/// The outcome of [`Compiler::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// What changed in the program.
    pub changes: ProgramChanges,
    /// How it was computed.
    pub path: UpdatePath,
}

/// Why a change was refused (the compiler is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The object (or, after a rebuild, the manifests) has errors.
    #[error("{key}: {} error(s), first: {}", errors.len(), errors.first().map(ToString::to_string).unwrap_or_default())]
    Invalid {
        /// The object changed.
        key: ObjectKey,
        /// Every error.
        errors: Vec<Diagnostic>,
    },
    /// `Delete` of an object that is not there.
    #[error("{0}: no such object")]
    NotFound(ObjectKey),
}

/// Which endpoints get a program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EndpointScope {
    /// Every endpoint.
    #[default]
    All,
    /// Only the endpoints of this node (what the node's agent programs). Policies, profiles
    /// and sets are still compiled whole: the sets hold the whole cluster's addresses.
    Node(String),
}

impl EndpointScope {
    /// Whether endpoint `e` gets a program.
    pub fn includes(&self, e: &Endpoint) -> bool {
        match self {
            EndpointScope::All => true,
            EndpointScope::Node(n) => e.node.as_deref() == Some(n.as_str()),
        }
    }
}

/// Keeps a compiled cluster up to date one change at a time.
#[derive(Debug)]
pub struct Compiler {
    objects: Vec<LoadedObject>,
    positions: HashMap<ObjectKey, usize>,
    model: Model,
    program: Program,
    /// How many compiled rules use each set.
    set_refs: HashMap<SetId, u32>,
    /// What the derived profiles and implicit namespaces depend on.
    derived: DerivedRefs,
    /// How many WorkloadEndpoints name each pod (`namespace`, `pod`).
    weps: HashMap<(String, String), u32>,
    /// Which endpoints get a program.
    scope: EndpointScope,
}

/// The pod a WorkloadEndpoint names.
fn wep_pod(r: &Resource) -> Option<(String, String)> {
    match r {
        Resource::WorkloadEndpoint(w) => Some((
            r.namespace().unwrap_or("default").to_owned(),
            w.spec.pod.clone(),
        )),
        _ => None,
    }
}

/// Counts of what makes Calico derive `kns.`/`ksa.` profiles and implicit namespaces: a
/// change that makes one appear or disappear needs a rebuild.
#[derive(Debug, Default)]
struct DerivedRefs {
    /// Namespace objects.
    namespaces: HashSet<String>,
    /// ServiceAccount objects.
    accounts: HashSet<(String, String)>,
    /// Objects in each namespace (other than Namespace objects).
    ns_refs: HashMap<String, u32>,
    /// Pods and pod templates using each service account.
    sa_refs: HashMap<(String, String), u32>,
}

impl DerivedRefs {
    fn keys(r: &Resource) -> (Option<String>, Option<(String, String)>) {
        if matches!(r, Resource::Namespace(_)) {
            return (None, None);
        }
        let ns = r.namespace().map(str::to_owned);
        let spec_sa = match r {
            Resource::Pod(p) => Some(derived::pod_service_account(&p.spec).to_owned()),
            other => derived::synthetic_pod(other)
                .map(|p| derived::pod_service_account(&p.spec).to_owned()),
        };
        let sa = match (&ns, spec_sa) {
            (Some(ns), Some(sa)) => Some((ns.clone(), sa)),
            _ => None,
        };
        (ns, sa)
    }

    fn add(&mut self, r: &Resource, delta: i64) {
        match r {
            Resource::Namespace(n) => {
                if delta > 0 {
                    self.namespaces.insert(n.metadata.name.clone());
                } else {
                    self.namespaces.remove(&n.metadata.name);
                }
            }
            Resource::ServiceAccount(a) => {
                let k = (
                    r.namespace().unwrap_or("default").to_owned(),
                    a.metadata.name.clone(),
                );
                if delta > 0 {
                    self.accounts.insert(k);
                } else {
                    self.accounts.remove(&k);
                }
            }
            _ => {}
        }
        let (ns, sa) = Self::keys(r);
        let bump = |n: &mut u32| {
            *n = u32::try_from((i64::from(*n) + delta).max(0)).unwrap_or(0);
        };
        if let Some(ns) = ns {
            bump(self.ns_refs.entry(ns).or_default());
        }
        if let Some(sa) = sa {
            bump(self.sa_refs.entry(sa).or_default());
        }
    }

    /// Whether replacing `old` by `new` makes a derived profile or implicit namespace appear
    /// or disappear.
    fn shifts(&self, old: Option<&Resource>, new: Option<&Resource>) -> bool {
        let (old_ns, old_sa) = old.map(Self::keys).unwrap_or_default();
        let (new_ns, new_sa) = new.map(Self::keys).unwrap_or_default();
        let ns_shift = |ns: &Option<String>, delta: i64| {
            ns.as_ref().is_some_and(|ns| {
                if self.namespaces.contains(ns) {
                    return false;
                }
                let n = i64::from(self.ns_refs.get(ns).copied().unwrap_or(0));
                (n == 0) != (n + delta == 0)
            })
        };
        let sa_shift = |sa: &Option<(String, String)>, delta: i64| {
            sa.as_ref().is_some_and(|sa| {
                if self.accounts.contains(sa) {
                    return false;
                }
                let n = i64::from(self.sa_refs.get(sa).copied().unwrap_or(0));
                (n == 0) != (n + delta == 0)
            })
        };
        if old_ns != new_ns && (ns_shift(&old_ns, -1) || ns_shift(&new_ns, 1)) {
            return true;
        }
        old_sa != new_sa && (sa_shift(&old_sa, -1) || sa_shift(&new_sa, 1))
    }
}

fn is_policy_kind(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::NetworkPolicy
            | Kind::GlobalNetworkPolicy
            | Kind::KubernetesNetworkPolicy
            | Kind::StagedNetworkPolicy
            | Kind::StagedGlobalNetworkPolicy
    )
}

fn is_endpoint_resource(r: &Resource) -> bool {
    matches!(
        r,
        Resource::Pod(_) | Resource::WorkloadEndpoint(_) | Resource::HostEndpoint(_)
    ) || derived::synthetic_pod(r).is_some()
}

fn match_set_ids(m: &IrMatch) -> impl Iterator<Item = &SetId> {
    m.set
        .iter()
        .chain(&m.not_set)
        .chain(&m.named_ports)
        .chain(&m.not_named_ports)
}

fn rule_set_ids(rules: &[IrRule]) -> impl Iterator<Item = &SetId> {
    rules
        .iter()
        .flat_map(|r| match_set_ids(&r.src).chain(match_set_ids(&r.dst)))
}

fn count_refs(program: &Program) -> HashMap<SetId, u32> {
    let mut refs: HashMap<SetId, u32> = HashMap::new();
    let all = program
        .policies
        .values()
        .map(|p| p.rules.as_slice())
        .chain(program.profiles.values().map(Vec::as_slice));
    for rules in all {
        for id in rule_set_ids(rules) {
            *refs.entry(id.clone()).or_default() += 1;
        }
    }
    refs
}

/// The identity the model gives the policy `r`.
fn policy_id_of(r: &Resource) -> Option<PolicyId> {
    let (kind, namespaced) = match r.kind() {
        Kind::NetworkPolicy => (PolicyKind::NetworkPolicy, true),
        Kind::GlobalNetworkPolicy => (PolicyKind::GlobalNetworkPolicy, false),
        Kind::KubernetesNetworkPolicy => (PolicyKind::KubernetesNetworkPolicy, true),
        Kind::StagedNetworkPolicy => (PolicyKind::StagedNetworkPolicy, true),
        Kind::StagedGlobalNetworkPolicy => (PolicyKind::StagedGlobalNetworkPolicy, false),
        _ => return None,
    };
    Some(PolicyId {
        kind,
        namespace: namespaced.then(|| r.namespace().unwrap_or("default").to_owned()),
        name: r.name().to_owned(),
    })
}

impl Compiler {
    /// Builds the model and compiles it.
    ///
    /// # Errors
    ///
    /// As [`Model::build`].
    pub fn new(set: &LoadedSet) -> Result<Compiler, BuildError> {
        Compiler::with_scope(set, EndpointScope::All)
    }

    /// [`Compiler::new`] giving programs only to the endpoints in `scope` (the program
    /// always equals a fresh [`Model::compile_where`] with that scope).
    ///
    /// # Errors
    ///
    /// As [`Model::build`].
    pub fn with_scope(set: &LoadedSet, scope: EndpointScope) -> Result<Compiler, BuildError> {
        let mut owned = LoadedSet::new();
        owned.objects = set.objects.clone();
        owned.errors = set.errors.clone();
        owned.warnings = set.warnings.clone();
        owned.decode_failures = set.decode_failures.clone();
        owned.files = set.files.clone();
        Compiler::from_set(owned, scope)
    }

    /// [`Compiler::with_scope`] taking the manifests over (no copy of them is made).
    ///
    /// # Errors
    ///
    /// As [`Model::build`].
    pub fn from_set(set: LoadedSet, scope: EndpointScope) -> Result<Compiler, BuildError> {
        Compiler::try_from_set(set, scope).map_err(|(e, _)| e)
    }

    /// [`Compiler::from_set`] giving the set back (with defaults applied) when the build
    /// fails, e.g. to try again without the objects the errors name.
    ///
    /// # Errors
    ///
    /// As [`Model::build`], with the set.
    #[allow(clippy::result_large_err)]
    pub fn try_from_set(
        mut set: LoadedSet,
        scope: EndpointScope,
    ) -> Result<Compiler, (BuildError, LoadedSet)> {
        if !set.defaults_applied() {
            set.apply_defaults();
        }
        let built = match &scope {
            EndpointScope::All => Model::build(&set),
            scope => Model::build_where(&set, &|e| scope.includes(e)),
        };
        let mut model = match built {
            Ok(m) => m,
            Err(e) => return Err((e, set)),
        };
        model.spread_ranks();
        let program = model.compile_where(|e| scope.includes(e));
        let objects = set.objects;
        let set_refs = count_refs(&program);
        let mut derived = DerivedRefs::default();
        for o in &objects {
            derived.add(&o.resource, 1);
        }
        let positions = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (ObjectKey::of(&o.resource), i))
            .collect();
        let mut weps: HashMap<(String, String), u32> = HashMap::new();
        for k in objects.iter().filter_map(|o| wep_pod(&o.resource)) {
            *weps.entry(k).or_default() += 1;
        }
        Ok(Compiler {
            objects,
            positions,
            model,
            program,
            set_refs,
            derived,
            weps,
            scope,
        })
    }

    /// The current model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The current program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The current manifests (defaults applied).
    pub fn objects(&self) -> &[LoadedObject] {
        &self.objects
    }

    /// Applies one change.
    ///
    /// # Errors
    ///
    /// [`UpdateError::Invalid`] when the object has errors (nothing changes);
    /// [`UpdateError::NotFound`] for the `Delete` of an unknown object.
    pub fn apply(&mut self, change: Change) -> Result<Update, UpdateError> {
        let (key, old, new) = match change {
            Change::Upsert(o) => {
                let mut o = *o;
                o.resource.apply_defaults();
                let key = ObjectKey::of(&o.resource);
                let errors: Vec<Diagnostic> = validate_object(&o)
                    .into_iter()
                    .map(|problem| Diagnostic {
                        severity: Severity::Error,
                        problem,
                    })
                    .collect();
                if !errors.is_empty() {
                    return Err(UpdateError::Invalid { key, errors });
                }
                let old = self.positions.get(&key).map(|&i| self.objects[i].clone());
                (key, old, Some(o))
            }
            Change::Delete(key) => {
                let Some(&i) = self.positions.get(&key) else {
                    return Err(UpdateError::NotFound(key));
                };
                (key.clone(), Some(self.objects[i].clone()), None)
            }
        };
        let resource = new.as_ref().or(old.as_ref()).map(|o| &o.resource);
        let shifts = self.derived.shifts(
            old.as_ref().map(|o| &o.resource),
            new.as_ref().map(|o| &o.resource),
        );
        let incremental = match resource {
            _ if shifts => None,
            Some(r) if is_policy_kind(r.kind()) => {
                self.update_policy(&key, old.as_ref(), new.as_ref())?
            }
            Some(r) if is_endpoint_resource(r) => self.update_endpoint(old.as_ref(), new.as_ref()),
            _ => None,
        };
        self.store(&key, new);
        match incremental {
            Some(changes) => Ok(Update {
                changes,
                path: UpdatePath::Incremental,
            }),
            None => self.rebuild(&key, old),
        }
    }

    fn store(&mut self, key: &ObjectKey, new: Option<LoadedObject>) {
        if let Some(&i) = self.positions.get(key) {
            self.derived.add(&self.objects[i].resource, -1);
            if let Some(k) = wep_pod(&self.objects[i].resource)
                && let Some(n) = self.weps.get_mut(&k)
            {
                *n -= 1;
                if *n == 0 {
                    self.weps.remove(&k);
                }
            }
        }
        if let Some(o) = &new {
            self.derived.add(&o.resource, 1);
            if let Some(k) = wep_pod(&o.resource) {
                *self.weps.entry(k).or_default() += 1;
            }
        }
        match (self.positions.get(key).copied(), new) {
            (Some(i), Some(o)) => self.objects[i] = o,
            (None, Some(o)) => {
                self.positions.insert(key.clone(), self.objects.len());
                self.objects.push(o);
            }
            (Some(i), None) => {
                // The last object takes the place (a rebuild orders objects as they are
                // kept; the program does not depend on the order).
                self.objects.swap_remove(i);
                self.positions.remove(key);
                if let Some(o) = self.objects.get(i) {
                    self.positions.insert(ObjectKey::of(&o.resource), i);
                }
            }
            (None, None) => {}
        }
    }

    /// Rebuilds everything from the (already updated) manifests; on errors restores `old`.
    fn rebuild(
        &mut self,
        key: &ObjectKey,
        old: Option<LoadedObject>,
    ) -> Result<Update, UpdateError> {
        let mut set = LoadedSet::new();
        set.objects = self.objects.clone();
        set.apply_defaults();
        let built = match &self.scope {
            EndpointScope::All => Model::build(&set),
            scope => Model::build_where(&set, &|e| scope.includes(e)),
        };
        match built {
            Ok(mut model) => {
                model.spread_ranks();
                let program = model.compile_where(|e| self.scope.includes(e));
                let changes = self.program.changes(&program);
                self.set_refs = count_refs(&program);
                self.model = model;
                self.program = program;
                Ok(Update {
                    changes,
                    path: UpdatePath::Rebuild,
                })
            }
            Err(e) => {
                self.store(key, old);
                let errors = match e {
                    BuildError::Invalid { errors, .. } => errors,
                    BuildError::Load { .. } => Vec::new(),
                };
                Err(UpdateError::Invalid {
                    key: key.clone(),
                    errors,
                })
            }
        }
    }

    /// Adds the references of `rules` to their sets; returns the sets that became used.
    fn add_refs(&mut self, rules: &[IrRule]) -> Vec<SetId> {
        let mut added = Vec::new();
        for id in rule_set_ids(rules) {
            let n = self.set_refs.entry(id.clone()).or_default();
            *n += 1;
            if *n == 1 {
                added.push(id.clone());
            }
        }
        added
    }

    /// Drops the references of `rules`; returns the sets no rule uses any more (removed).
    fn drop_refs(&mut self, rules: &[IrRule]) -> Vec<SetId> {
        let mut removed = Vec::new();
        for id in rule_set_ids(rules) {
            if let Some(n) = self.set_refs.get_mut(id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.set_refs.remove(id);
                    self.program.sets.remove(id);
                    removed.push(id.clone());
                }
            }
        }
        removed
    }

    /// A policy added, changed or removed. `Ok(None)` asks for a rebuild.
    fn update_policy(
        &mut self,
        key: &ObjectKey,
        old: Option<&LoadedObject>,
        new: Option<&LoadedObject>,
    ) -> Result<Option<ProgramChanges>, UpdateError> {
        let model = &mut self.model;
        let new_policy = match new {
            Some(o) => model
                .build_policy(o)
                .map_err(|errors| UpdateError::Invalid {
                    key: key.clone(),
                    errors,
                })?,
            None => None,
        };
        let new_tier = match &new_policy {
            Some(p) => match model.policies.tier_position(&p.tier) {
                Some(t) => Some(t),
                // A tier nothing else uses yet: tier positions change, rebuild.
                None => return Ok(None),
            },
            None => None,
        };
        let old_id = old.and_then(|o| policy_id_of(&o.resource));
        let old_k = old_id.as_ref().and_then(|id| model.policies.position(id));
        let old_rank = old_k.map(|k| model.policies.rank_of(k));
        // Reorder: remove the old policy, insert the new one at its place. Endpoints'
        // applying lists hold ranks, which other policies keep: only the endpoints this
        // policy selected before or selects now are visited.
        let removed = old_k.map(|k| model.policies.remove(k));
        let new_k = match (new_policy, new_tier) {
            (Some(p), Some(t)) => Some(model.policies.insert(p, t)),
            _ => None,
        };
        if !model.policies.ranks_ok() {
            // No room between two ranks: spread them out again (renumbers every list).
            model.spread_ranks();
        }
        let new_rank = new_k.map(|k| model.policies.rank_of(k));
        let enforced_selector = |p: &Policy| {
            (!p.staged && !p.host_only)
                .then_some(p.selector_id)
                .flatten()
        };
        // Endpoints the new policy selects (enforced policies only).
        let selects: HashSet<usize> = new_k
            .and_then(|k| model.policies.get(k))
            .and_then(enforced_selector)
            .map(|s| model.selectors.matching_endpoints(s).collect())
            .unwrap_or_default();
        let old_selects: Vec<usize> = removed
            .as_ref()
            .and_then(enforced_selector)
            .map(|s| model.selectors.matching_endpoints(s).collect())
            .unwrap_or_default();
        let new_types = new_k.and_then(|k| model.policies.get(k)).map(|p| p.types);
        let mut touched: Vec<usize> = Vec::new();
        // Endpoints out of scope keep no policy lists (they get no program).
        let scope = &self.scope;
        let mut eis: Vec<usize> = old_selects
            .iter()
            .chain(selects.iter())
            .copied()
            .filter(|&ei| model.endpoints.get(ei).is_some_and(|e| scope.includes(e)))
            .collect();
        eis.sort_unstable();
        eis.dedup();
        let applying = model.endpoints.applying_mut();
        for ei in eis {
            let Some(lists) = applying.get_mut(ei) else {
                continue;
            };
            let mut hit = false;
            for dir in Direction::ALL {
                let list = &mut lists[dir];
                if let Some(r) = old_rank
                    && let Ok(at) = list.binary_search(&r)
                {
                    list.remove(at);
                    hit = true;
                }
                if let (Some(r), Some(types)) = (new_rank, new_types)
                    && types[dir]
                    && selects.contains(&ei)
                    && let Err(at) = list.binary_search(&r)
                {
                    list.insert(at, r);
                    hit = true;
                }
            }
            if hit {
                touched.push(ei);
            }
        }

        // The program: drop the old policy's programs, compile the new one's.
        let mut dropped = Vec::new();
        if let Some(id) = &old_id {
            for d in Direction::ALL {
                if let Some(pp) = self.program.policies.remove(&(id.clone(), d)) {
                    dropped.push((d, pp));
                }
            }
        }
        let mut changes = ProgramChanges::default();
        let new_programs = match new_k {
            Some(k) => self.model.policy_programs(k, &mut self.program.sets),
            None => Vec::new(),
        };
        for (d, pp) in &new_programs {
            changes.sets_added.extend(self.add_refs(&pp.rules));
            let same = dropped
                .iter()
                .any(|(od, op)| od == d && op.policy == pp.policy && op.rules == pp.rules);
            if !same {
                changes.policies_changed.push((pp.policy.clone(), *d));
            }
        }
        for (d, pp) in &dropped {
            changes.sets_removed.extend(self.drop_refs(&pp.rules));
            if !new_programs
                .iter()
                .any(|(nd, np)| nd == d && np.policy == pp.policy)
            {
                changes.policies_changed.push((pp.policy.clone(), *d));
            }
        }
        for (d, pp) in new_programs {
            self.program.policies.insert((pp.policy.clone(), d), pp);
        }
        // The programs of the endpoints whose policy lists changed.
        for ei in touched {
            self.refresh_endpoint(ei, &mut changes);
        }
        changes.finish();
        Ok(Some(changes))
    }

    /// Recompiles the programs of the endpoint at `ei` and records the directions that
    /// changed (the program keeps the first endpoint of a key).
    fn refresh_endpoint(&mut self, ei: usize, changes: &mut ProgramChanges) {
        let model = &self.model;
        let Some(key) = model.endpoints.get(ei).map(Endpoint::key) else {
            return;
        };
        if model.endpoints.position(&key) != Some(ei) {
            return;
        }
        if !model
            .endpoints
            .get(ei)
            .is_some_and(|e| self.scope.includes(e))
        {
            if self.program.endpoints.remove(&key).is_some() {
                changes.endpoints_removed.push(key);
            }
            return;
        }
        let fresh = PerDirection::from_fn(|dir| model.endpoint_program(ei, dir));
        match self.program.endpoints.get_mut(&key) {
            Some(slot) => {
                for dir in Direction::ALL {
                    if slot[dir] != fresh[dir] {
                        changes.endpoints_changed.push((key.clone(), dir));
                    }
                }
                *slot = fresh;
            }
            None => {
                for dir in Direction::ALL {
                    changes.endpoints_changed.push((key.clone(), dir));
                }
                self.program.endpoints.insert(key, fresh);
            }
        }
    }

    /// An endpoint added, changed or removed. `None` asks for a rebuild.
    fn update_endpoint(
        &mut self,
        old: Option<&LoadedObject>,
        new: Option<&LoadedObject>,
    ) -> Option<ProgramChanges> {
        // A pod appearing or disappearing hides or shows the WorkloadEndpoints of that pod.
        let pod_of = |o: &LoadedObject| match &o.resource {
            Resource::Pod(p) => Some((
                o.resource.namespace().unwrap_or("default").to_owned(),
                p.metadata.name.clone(),
            )),
            _ => None,
        };
        for pod in old.iter().chain(new.iter()).filter_map(|o| pod_of(o)) {
            if self.weps.contains_key(&pod) {
                return None;
            }
        }
        let model = &mut self.model;
        let old_ep = old.and_then(|o| endpoint_from(&model.endpoint_context, o));
        let new_ep = new.and_then(|o| endpoint_from(&model.endpoint_context, o));
        if let Some(o) = old {
            if let Some(k) = pod_of(o) {
                model.endpoint_context.pod_keys.remove(&k);
            }
        }
        if let Some(o) = new {
            if let Some(k) = pod_of(o) {
                model.endpoint_context.pod_keys.insert(k);
            }
        }
        let old_key = old_ep.as_ref().map(Endpoint::key);
        let index = old_key.as_ref().and_then(|k| model.endpoints.position(k));
        let mut changes = ProgramChanges::default();
        let mut affected: HashSet<crate::matching::SelId> = HashSet::new();
        let mut port_names: HashSet<String> = HashSet::new();
        for e in old_ep.iter().chain(new_ep.iter()) {
            port_names.extend(e.ports.iter().map(|p| p.name.clone()));
        }
        // Whether the connlist workloads must be grouped again (not when the endpoint keeps
        // its printed workload name).
        let mut regroup = true;
        // The sets are patched with this endpoint's contribution before and after (no other
        // endpoint changed; after a removal, there is no after).
        let patch: SetPatch;
        match (index, new_ep) {
            (None, None) => return Some(changes),
            (index, Some(e)) => {
                let i = index.unwrap_or(model.endpoints.len());
                let same_workload =
                    index.is_some_and(|i| model.endpoints[i].workload == e.workload);
                if same_workload {
                    regroup = false;
                }
                let before = match index {
                    Some(_) => matching(model, i),
                    None => HashSet::new(),
                };
                let old_e = index.and_then(|i| model.endpoints.get(i)).cloned();
                affected.extend(before.iter().copied());
                model.selectors.upsert_endpoint(i, &e.labels);
                let after = matching(model, i);
                affected.extend(after.iter().copied());
                patch = SetPatch {
                    index: i,
                    before,
                    after,
                    old: old_e,
                    new: Some(e.clone()),
                };
                let resolved = e
                    .profiles
                    .iter()
                    .map(|p| model.profiles.get(p).cloned())
                    .collect();
                let applying = if self.scope.includes(&e) {
                    model.policies.applying_to(&model.selectors, i)
                } else {
                    PerDirection::default()
                };
                model.endpoints.upsert(i, e, resolved, applying);
                self.refresh_endpoint(i, &mut changes);
            }
            (Some(i), None) => {
                let last = model.endpoints.len() - 1;
                let before = matching(model, i);
                affected.extend(before.iter().copied());
                // The sets lose what this endpoint alone contributed (the endpoint moved
                // into its place keeps its memberships).
                patch = SetPatch {
                    index: usize::MAX,
                    before,
                    after: HashSet::new(),
                    old: model.endpoints.get(i).cloned(),
                    new: None,
                };
                model.selectors.remove_endpoint(i);
                if i != last {
                    affected.extend(model.selectors.selectors_matching_endpoint(last));
                    model.selectors.remove_endpoint(last);
                    let labels = model.endpoints[last].labels.clone();
                    model.selectors.upsert_endpoint(i, &labels);
                }
                model.selectors.set_endpoint_count(last);
                model.endpoints.swap_remove(i);
                if let Some(key) = old_key {
                    match model.endpoints.position(&key) {
                        // Another endpoint of the same key now stands for it.
                        Some(j) => self.refresh_endpoint(j, &mut changes),
                        None => {
                            if self.program.endpoints.remove(&key).is_some() {
                                changes.endpoints_removed.push(key);
                            }
                        }
                    }
                }
            }
        }
        // Connlist workloads are grouped again when next asked for.
        if regroup {
            self.model.workloads = std::sync::OnceLock::new();
        }
        // Sets whose members may have changed: those of the selectors that matched the
        // endpoint before or match it now, and the named-port sets of its port names.
        let model = &self.model;
        let affected_ids: HashMap<String, crate::matching::SelId> = affected
            .iter()
            .filter_map(|&sel| model.selectors.get(sel).map(|s| (s.unique_id(), sel)))
            .collect();
        for (uid, &sel) in &affected_ids {
            if let Some(SetDef::Selector { members, .. }) = self.program.sets.get_mut(uid.as_str())
            {
                let id = SetId::new(uid.clone());
                let mut delta = MemberChanges::default();
                patch.patch_selector_set(model, sel, members, &mut delta);
                if !delta.is_empty() {
                    changes
                        .member_deltas
                        .insert(id.clone(), MemberDelta::Addrs(delta));
                    changes.sets_changed.push(id);
                }
            }
        }
        if !port_names.is_empty() {
            for (id, def) in self.program.sets.range_mut::<str, _>((
                std::ops::Bound::Included("n:"),
                std::ops::Bound::Excluded("n;"),
            )) {
                let SetDef::NamedPort {
                    protocol,
                    name,
                    members,
                    ..
                } = def
                else {
                    continue;
                };
                if !port_names.contains(name.as_str()) {
                    continue;
                }
                // `n:<selector id>:<protocol>:<name>`
                let uid = id
                    .as_str()
                    .strip_prefix("n:")
                    .and_then(|rest| rest.rsplitn(3, ':').nth(2))
                    .unwrap_or("");
                let sel = if uid == "all" {
                    None
                } else {
                    match affected_ids.get(uid) {
                        Some(&sel) => Some(sel),
                        None => continue,
                    }
                };
                let mut delta = MemberChanges::default();
                patch.patch_named_port_set(model, sel, *protocol, name, members, &mut delta);
                if !delta.is_empty() {
                    changes
                        .member_deltas
                        .insert(id.clone(), MemberDelta::NamedPorts(delta));
                    changes.sets_changed.push(id.clone());
                }
            }
        }
        changes.finish();
        Some(changes)
    }
}

/// One endpoint's change, for patching set members instead of recomputing them: which
/// selectors matched it before and after, and the endpoint before and after.
struct SetPatch {
    /// The endpoint's position now (`usize::MAX` when it was removed: every endpoint left
    /// counts as another contributor).
    index: usize,
    before: HashSet<crate::matching::SelId>,
    after: HashSet<crate::matching::SelId>,
    old: Option<Endpoint>,
    /// `None`: removed.
    new: Option<Endpoint>,
}

/// The selectors matching endpoint `i` of `model`.
fn matching(model: &Model, i: usize) -> HashSet<crate::matching::SelId> {
    model
        .selectors
        .selectors_matching_endpoint(i)
        .into_iter()
        .collect()
}

/// Inserts `v` into the sorted, deduplicated `members`; whether it was absent.
fn insert_sorted<T: Ord>(members: &mut Vec<T>, v: T) -> bool {
    match members.binary_search(&v) {
        Ok(_) => false,
        Err(at) => {
            members.insert(at, v);
            true
        }
    }
}

/// Removes `v` from the sorted `members`; whether it was there.
fn remove_sorted<T: Ord>(members: &mut Vec<T>, v: &T) -> bool {
    match members.binary_search(v) {
        Ok(at) => {
            members.remove(at);
            true
        }
        Err(_) => false,
    }
}

fn named_port_contribution(
    e: &Endpoint,
    protocol: Option<u8>,
    name: &str,
) -> Vec<(std::net::IpAddr, u8, u16)> {
    let mut out = Vec::new();
    for p in &e.ports {
        if p.name == name && protocol.is_none_or(|x| x == p.protocol) {
            out.extend(e.addrs.iter().map(|a| (*a, p.protocol, p.port)));
        }
    }
    out
}

impl SetPatch {
    /// Patches the members of selector `sel`'s set, recording what was added and removed
    /// in `delta`. An address this endpoint no longer contributes stays when another
    /// matching endpoint or network set still has it.
    fn patch_selector_set(
        &self,
        model: &Model,
        sel: crate::matching::SelId,
        members: &mut Vec<crate::addr::AddrRange>,
        delta: &mut MemberChanges<crate::addr::AddrRange>,
    ) {
        use crate::addr::AddrRange;
        let old: Vec<std::net::IpAddr> = match (&self.old, self.before.contains(&sel)) {
            (Some(o), true) => o.addrs.clone(),
            _ => Vec::new(),
        };
        let new: Vec<std::net::IpAddr> = match (&self.new, self.after.contains(&sel)) {
            (Some(n), true) => n.addrs.clone(),
            _ => Vec::new(),
        };
        for a in old.iter().filter(|a| !new.contains(a)) {
            let elsewhere = model
                .endpoints
                .with_addr(a)
                .iter()
                .any(|&j| j != self.index && model.selectors.matches_endpoint(sel, j))
                || model.network_sets.iter().enumerate().any(|(k, n)| {
                    model.selectors.matches_network_set(sel, k)
                        && n.nets.contains(&AddrRange::single(*a))
                });
            if !elsewhere && remove_sorted(members, &AddrRange::single(*a)) {
                delta.removed.push(AddrRange::single(*a));
            }
        }
        for a in new.iter().filter(|a| !old.contains(a)) {
            if insert_sorted(members, AddrRange::single(*a)) {
                delta.added.push(AddrRange::single(*a));
            }
        }
    }

    /// Patches a named-port set (`sel` `None`: every endpoint), recording what was added
    /// and removed in `delta`.
    fn patch_named_port_set(
        &self,
        model: &Model,
        sel: Option<crate::matching::SelId>,
        protocol: Option<u8>,
        name: &str,
        members: &mut Vec<(std::net::IpAddr, u8, u16)>,
        delta: &mut MemberChanges<(std::net::IpAddr, u8, u16)>,
    ) {
        let matched = |set: &HashSet<crate::matching::SelId>| sel.is_none_or(|s| set.contains(&s));
        let old = match (&self.old, matched(&self.before)) {
            (Some(o), true) => named_port_contribution(o, protocol, name),
            _ => Vec::new(),
        };
        let new = match (&self.new, matched(&self.after)) {
            (Some(n), true) => named_port_contribution(n, protocol, name),
            _ => Vec::new(),
        };
        for m in old.iter().filter(|m| !new.contains(m)) {
            let elsewhere = model.endpoints.with_addr(&m.0).iter().any(|&j| {
                j != self.index
                    && sel.is_none_or(|s| model.selectors.matches_endpoint(s, j))
                    && model
                        .endpoints
                        .get(j)
                        .is_some_and(|e| named_port_contribution(e, protocol, name).contains(m))
            });
            if !elsewhere && remove_sorted(members, m) {
                delta.removed.push(*m);
            }
        }
        for m in new.iter().filter(|m| !old.contains(m)) {
            if insert_sorted(members, *m) {
                delta.added.push(*m);
            }
        }
    }
}
