//! Building the model from manifests, in named steps: labels of namespaces and service
//! accounts, profiles, endpoints, network sets, tiers and policies, then selector resolution.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use calico_model::derived;
use calico_model::loader::{LoadedObject, LoadedSet};
use calico_model::resources::policy::{
    BUILTIN_TIERS, GlobalNetworkPolicySpec, NetworkPolicySpec, PolicyType, Rule, TierAction,
    builtin_tier,
};
use calico_model::resources::{Labels, Resource};
use calico_model::validation::validate;

use super::endpoint::{EMPTY_LABELS, EndpointContext, endpoint_from};
use super::tables::{EndpointTable, FelixConfigs, PolicyTable, cmp_order};
use super::{
    Endpoint, Model, NetworkSetEntry, Policy, PolicyId, PolicyKind, ProfileEntry, TierEntry,
};
use crate::convert::{KNP_ORDER, convert};
use crate::diag::{BuildError, Diagnostic, Severity};
use crate::direction::PerDirection;
use crate::matching::SelectorTable;
use crate::rewrite::{global_policy_selector, namespaced_policy_selector};
use crate::rules::{CRule, compile_rule};

/// Whether validation's `problem` is about a document that has no `kind` at all: such a
/// document is skipped with a warning, not an error.
fn is_kindless_document(problem: &calico_model::validation::Problem) -> bool {
    problem.kind.is_none() && problem.field_path == "kind"
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

impl Model {
    /// Builds the model; fails when the manifests hold any error (validation problems,
    /// unusable selectors, conversion errors) or could not all be read.
    ///
    /// # Errors
    ///
    /// [`BuildError::Load`] when inputs could not be read or parsed;
    /// [`BuildError::Invalid`] with every error (and the warnings) otherwise.
    pub fn build(set: &LoadedSet) -> Result<Model, BuildError> {
        Model::build_checked(set, None)
    }

    /// Builds the model from whatever is usable, recording every problem in
    /// [`Model::diagnostics`]: first the warnings of a lenient load
    /// ([`LoadedSet::warnings`]: documents skipped, parts dropped), then validation's and
    /// the builder's. Rules and policies with errors are left out.
    pub fn build_lenient(set: &LoadedSet) -> Model {
        Model::build_lenient_where(set, None)
    }

    /// [`Model::build`] working out the policies that apply only to the endpoints `keep`
    /// accepts: enough to compile their programs ([`Model::compile_where`] with the same
    /// filter) without the cost for the rest of a large cluster. Evaluating traffic of the
    /// other endpoints with this model finds no policy applying to them.
    ///
    /// # Errors
    ///
    /// As [`Model::build`].
    pub fn build_where(
        set: &LoadedSet,
        keep: &dyn Fn(&Endpoint) -> bool,
    ) -> Result<Model, BuildError> {
        Model::build_checked(set, Some(keep))
    }

    fn build_checked(
        set: &LoadedSet,
        keep: Option<&dyn Fn(&Endpoint) -> bool>,
    ) -> Result<Model, BuildError> {
        if !set.errors.is_empty() {
            return Err(BuildError::Load {
                errors: set.errors.clone(),
            });
        }
        let model = Model::build_lenient_where(set, keep);
        if model.diagnostics.iter().any(Diagnostic::is_error) {
            let (errors, warnings) = model
                .diagnostics
                .into_iter()
                .partition(Diagnostic::is_error);
            return Err(BuildError::Invalid { errors, warnings });
        }
        Ok(model)
    }

    fn build_lenient_where(set: &LoadedSet, keep: Option<&dyn Fn(&Endpoint) -> bool>) -> Model {
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
            keep,
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
}

pub(super) struct Builder<'a> {
    objects: &'a [LoadedObject],
    table: SelectorTable,
    diagnostics: Vec<Diagnostic>,
    /// The endpoints whose applying policies are worked out (all when `None`).
    keep: Option<&'a dyn Fn(&Endpoint) -> bool>,
}

impl<'a> Builder<'a> {
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
            PerDirection {
                ingress: true,
                egress: true,
            }
        } else {
            PerDirection {
                ingress: src.types.contains(&PolicyType::Ingress),
                egress: src.types.contains(&PolicyType::Egress),
            }
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
            rules: PerDirection { ingress, egress },
            staged: src.staged,
            host_only: src.host_only,
        })
    }

    /// The whole model, step by step.
    fn build(&mut self) -> Model {
        let (ns_labels, sa_labels) = self.namespace_and_account_labels();
        let (profiles, profile_labels) = self.profiles();
        let ctx = EndpointContext {
            pod_keys: self.pod_keys(),
            ns_layers: ns_labels
                .into_iter()
                .map(|(ns, l)| {
                    let layer = derived::namespace_label_layer(&l, &ns);
                    (ns, layer)
                })
                .collect(),
            sa_layers: sa_labels
                .into_iter()
                .map(|((ns, sa), l)| {
                    let layer = derived::service_account_label_layer(&l, &sa);
                    ((ns, sa), layer)
                })
                .collect(),
            profile_labels,
        };
        let endpoints: Vec<Endpoint> =
            calico_model::parallel::map(self.objects, |o| endpoint_from(&ctx, o))
                .into_iter()
                .flatten()
                .collect();
        let network_sets = self.network_sets(&ctx);
        let policies = self.policy_table();

        // Resolve every selector against the endpoints and network sets.
        let mut selectors = std::mem::take(&mut self.table);
        selectors.resolve(
            endpoints.iter().map(|e| &e.labels),
            network_sets.iter().map(|n| &n.labels),
        );
        self.check_named_ports(policies.as_slice(), &endpoints);

        let resolved = endpoints
            .iter()
            .map(|e| {
                e.profiles
                    .iter()
                    .map(|p| profiles.get(p).cloned())
                    .collect()
            })
            .collect();
        let applying = (0..endpoints.len())
            .map(|ei| match self.keep {
                Some(keep) if !keep(&endpoints[ei]) => PerDirection::default(),
                _ => policies.applying_to(&selectors, ei),
            })
            .collect();
        Model {
            endpoints: EndpointTable::new(endpoints, resolved, applying),
            network_sets,
            profiles,
            policies,
            selectors,
            workloads: std::sync::OnceLock::new(),
            diagnostics: Vec::new(),
            felix: self.felix_configs(),
            endpoint_context: ctx,
        }
    }

    fn resources(&self) -> impl Iterator<Item = &'a Resource> + Clone + use<'a> {
        self.objects.iter().map(|o| &o.resource)
    }

    /// Labels of namespaces (implicit ones included) and of service accounts.
    fn namespace_and_account_labels(
        &self,
    ) -> (HashMap<String, Labels>, HashMap<(String, String), Labels>) {
        let mut ns_labels: HashMap<String, Labels> = HashMap::new();
        for r in self.resources() {
            if let Resource::Namespace(ns) = r {
                ns_labels.insert(ns.metadata.name.clone(), derived::namespace_labels(ns));
            }
        }
        for ns in derived::implicit_namespaces(self.resources()) {
            ns_labels.insert(ns.metadata.name.clone(), derived::namespace_labels(&ns));
        }
        let mut sa_labels: HashMap<(String, String), Labels> = HashMap::new();
        for r in self.resources() {
            if let Resource::ServiceAccount(sa) = r {
                let ns = r.namespace().unwrap_or("default").to_owned();
                sa_labels.insert((ns, sa.metadata.name.clone()), sa.metadata.labels.clone());
            }
        }
        (ns_labels, sa_labels)
    }

    /// Profiles with compiled rules and the labels they apply: user profiles, then the
    /// derived `kns.`/`ksa.` ones.
    fn profiles(&mut self) -> (HashMap<String, Arc<ProfileEntry>>, HashMap<String, Labels>) {
        let mut profile_labels: HashMap<String, Labels> = HashMap::new();
        let mut profiles: HashMap<String, Arc<ProfileEntry>> = HashMap::new();
        for o in self.objects {
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
        for p in derived::derived_profiles(self.resources()) {
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
        (profiles, profile_labels)
    }

    /// The (namespace, name) of every listed pod.
    fn pod_keys(&self) -> HashSet<(String, String)> {
        self.resources()
            .filter_map(|r| match r {
                Resource::Pod(p) => Some((
                    r.namespace().unwrap_or("default").to_owned(),
                    p.metadata.name.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// NetworkSets and GlobalNetworkSets, in input order.
    fn network_sets(&self, ctx: &EndpointContext) -> Vec<NetworkSetEntry> {
        let mut network_sets = Vec::new();
        for r in self.resources() {
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
        network_sets
    }

    /// Tiers (defined, built-in, then the missing ones policies name) and every policy, in
    /// evaluation order.
    fn policy_table(&mut self) -> PolicyTable {
        let objects = self.objects;
        let policies: Vec<Policy> = objects.iter().filter_map(|o| self.policy_from(o)).collect();
        let mut tiers: Vec<TierEntry> = Vec::new();
        for r in self.resources() {
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
        PolicyTable::new(tiers, policies)
    }

    /// FelixConfiguration specs by name.
    fn felix_configs(&self) -> FelixConfigs {
        FelixConfigs(
            self.resources()
                .filter_map(|r| match r {
                    Resource::FelixConfiguration(f) => {
                        Some((f.metadata.name.clone(), f.spec.clone()))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// Warns about named ports no endpoint declares (they match nothing).
    fn check_named_ports(&mut self, policies: &[Policy], endpoints: &[Endpoint]) {
        let declared: HashSet<&str> = endpoints
            .iter()
            .flat_map(|e| e.ports.iter().map(|p| p.name.as_str()))
            .collect();
        let mut found = Vec::new();
        for p in policies {
            for (d, rules) in ["spec.ingress", "spec.egress"]
                .iter()
                .zip([&p.rules.ingress, &p.rules.egress])
            {
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
            keep: None,
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
