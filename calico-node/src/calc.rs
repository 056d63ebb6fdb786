//! Calculation: from the view of the datastore to what this node's kernel and BIRD should
//! hold. Policy goes through calico-policy's incremental compiler (one resource change at a
//! time); routes, tunnel devices, neighbours and FDB come from calico-route's per-node plan;
//! BIRD's configuration from calico-route's renderer.

use std::collections::{BTreeMap, BTreeSet};

use calico_dataplane::DesiredState;
use calico_dataplane::desired::from_plan;
use calico_model::loader::{LoadedObject, LoadedSet};
use calico_model::resources::Kind;
use calico_policy::incremental::{
    Change, Compiler, EndpointScope, ObjectKey, UpdateError, UpdatePath,
};
use calico_policy::nft::{NodeRuleset, RenderOptions, RenderPath, Ruleset, RulesetDelta};
use calico_policy::{BuildError, Model, ProgramChanges};
use calico_route::Family;
use calico_route::kernel::{PlanOptions, plan_node};

use crate::endpoint_status::EndpointStatus;
use crate::view::{View, ViewChange, on_node};

/// Something the calculation could not use (the rest goes on without it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalcProblem {
    /// A resource fails validation, alone or with the others; it is left out.
    #[error("{key}: left out: {message}")]
    Invalid {
        /// The object.
        key: String,
        /// The first error.
        message: String,
    },
    /// The node's routes could not be planned.
    #[error("routes of {node}: {message}")]
    Routes {
        /// This node.
        node: String,
        /// Why.
        message: String,
    },
    /// BIRD's configuration could not be rendered.
    #[error("BIRD configuration of {node}: {message}")]
    Bird {
        /// This node.
        node: String,
        /// Why.
        message: String,
    },
}

/// What a batch of changes touched, so that only those outputs are recomputed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touched {
    /// Policy inputs (anything the compiler reads).
    pub policy: bool,
    /// Routing inputs (Nodes, pools, affinities, BGP resources, endpoints, Felix settings).
    pub routes: bool,
    /// BGP inputs (what BIRD's configuration is rendered from).
    pub bgp: bool,
}

impl Touched {
    /// Everything.
    pub fn all() -> Touched {
        Touched {
            policy: true,
            routes: true,
            bgp: true,
        }
    }

    /// What a change of a resource of `kind` touches.
    pub fn of_kind(kind: Kind) -> Touched {
        let bgp = matches!(
            kind,
            Kind::Node
                | Kind::BgpConfiguration
                | Kind::BgpPeer
                | Kind::BgpFilter
                | Kind::IpPool
                | Kind::FelixConfiguration
        );
        let routes = bgp
            || matches!(
                kind,
                Kind::Pod | Kind::WorkloadEndpoint | Kind::HostEndpoint | Kind::IpReservation
            );
        Touched {
            policy: true,
            routes,
            bgp,
        }
    }

    fn merge(&mut self, other: Touched) {
        self.policy |= other.policy;
        self.routes |= other.routes;
        self.bgp |= other.bgp;
    }
}

/// What the nftables table needs since it was last taken ([`Calculator::take_nft`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NftPending {
    /// Nothing changed.
    #[default]
    Nothing,
    /// This delta turns the table last taken into [`Calculator::ruleset`].
    Delta(Box<RulesetDelta>),
    /// The whole table must be compared (the first one, or changes no delta describes).
    Whole,
}

/// Per-node outputs of the calculation (the nftables table is [`Calculator::ruleset`]).
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Devices, routes, neighbours, FDB and sysctls (`None` when route programming is off).
    pub routes: Option<DesiredState>,
    /// BIRD's configuration (IPv4 and IPv6 protocols in one file), when BGP is on.
    pub bird: Option<String>,
    /// This node's workload endpoints with a program, by host-side interface.
    pub workloads: BTreeMap<String, EndpointStatus>,
}

/// Settings of the calculation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalcOptions {
    /// This node's name.
    pub node: String,
    /// The interface holding the node's address (VXLAN's parent).
    pub parent_iface: String,
    /// Its MTU.
    pub host_mtu: u32,
    /// Whether routes are programmed.
    pub routes: bool,
    /// Whether BIRD's configuration is rendered.
    pub bgp: bool,
}

/// The calculation's state between batches.
#[derive(Debug)]
pub struct Calculator {
    options: CalcOptions,
    compiler: Option<Compiler>,
    outputs: Outputs,
    pending: Touched,
    problems: Vec<CalcProblem>,
    render: Option<RenderOptions>,
    /// The node's table, kept up to date from the compiler's changes.
    table: Option<NodeRuleset>,
    /// The compiler's changes that touch the table, since the last compute.
    changes: ProgramChanges,
    /// The table must be rendered again (kinds the render reads directly changed).
    rerender: bool,
    nft: NftPending,
}

fn object_key(o: &LoadedObject) -> ObjectKey {
    ObjectKey::of(&o.resource)
}

/// Builds a compiler from a set the view handed over, leaving out objects the build names in
/// errors (repeatedly, since removing one object can reveal another's error). Without a
/// compiler, the objects come back for the view to take back.
fn lenient_compiler(
    mut set: LoadedSet,
    node: &str,
    problems: &mut Vec<CalcProblem>,
) -> Result<Compiler, Vec<LoadedObject>> {
    let mut left_out: Vec<LoadedObject> = Vec::new();
    let mut bad: BTreeSet<String> = BTreeSet::new();
    for _ in 0..8 {
        let before = bad.len();
        // Programs only for this node's endpoints; sets still cover the whole cluster.
        match Compiler::try_from_set(set, EndpointScope::Node(node.to_owned())) {
            Ok(c) => return Ok(c),
            Err((BuildError::Invalid { errors, .. }, back)) => {
                set = back;
                for d in &errors {
                    bad.insert(d.problem.file.clone());
                    problems.push(CalcProblem::Invalid {
                        key: d.problem.file.clone(),
                        message: d.problem.to_string(),
                    });
                }
                let (out, kept) = std::mem::take(&mut set.objects)
                    .into_iter()
                    .partition(|o| bad.contains(&o.origin.file));
                set.objects = kept;
                left_out.extend::<Vec<LoadedObject>>(out);
                if bad.len() == before {
                    break;
                }
            }
            Err((e, back)) => {
                set = back;
                problems.push(CalcProblem::Invalid {
                    key: "datastore".to_owned(),
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    left_out.extend(set.objects);
    Err(left_out)
}

impl Calculator {
    /// A calculator with nothing computed yet.
    pub fn new(options: CalcOptions) -> Calculator {
        Calculator {
            options,
            compiler: None,
            outputs: Outputs::default(),
            pending: Touched::all(),
            problems: Vec::new(),
            render: None,
            table: None,
            changes: ProgramChanges::default(),
            rerender: false,
            nft: NftPending::Whole,
        }
    }

    /// The node's nftables table, once computed.
    pub fn ruleset(&self) -> Option<&Ruleset> {
        self.table.as_ref().map(NodeRuleset::ruleset)
    }

    /// What the kernel's table needs since the last call (and forgets it).
    pub fn take_nft(&mut self) -> NftPending {
        std::mem::take(&mut self.nft)
    }

    /// The settings.
    pub fn options(&self) -> &CalcOptions {
        &self.options
    }

    /// The last outputs.
    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// The policy model, once built.
    pub fn model(&self) -> Option<&Model> {
        self.compiler.as_ref().map(Compiler::model)
    }

    /// Problems found since the last call (and forgets them).
    pub fn take_problems(&mut self) -> Vec<CalcProblem> {
        std::mem::take(&mut self.problems)
    }

    /// Takes in one change of the view (applied to the compiler at once when it exists;
    /// before the first [`Calculator::compute`] the view is read whole).
    pub fn change(&mut self, change: ViewChange) {
        match change {
            ViewChange::Elsewhere { key, new } => {
                // An endpoint on another node: its block routes it, not this node.
                self.note(key.kind, false);
                let change = match new {
                    Some(n) => Change::Upsert(n),
                    None => Change::Delete(key.clone()),
                };
                self.apply_change(change, Some(key));
            }
            ViewChange::Object { old, new } => {
                let kind = new
                    .as_ref()
                    .or(old.as_ref())
                    .map(|o| o.resource.kind())
                    .unwrap_or(Kind::Node);
                let mut routes = Touched::of_kind(kind).routes;
                // Workloads elsewhere do not change this node's routes (their blocks do).
                if matches!(
                    kind,
                    Kind::Pod | Kind::WorkloadEndpoint | Kind::HostEndpoint
                ) {
                    let node = &self.options.node;
                    routes = [&old, &new]
                        .into_iter()
                        .flatten()
                        .any(|o| on_node(&o.resource, node));
                }
                self.note(kind, routes);
                let old_key = old.as_deref().map(object_key);
                let change = match (new, old_key.clone()) {
                    (Some(n), _) => Change::Upsert(Box::new(LoadedObject::clone(&n))),
                    (None, Some(k)) => Change::Delete(k),
                    (None, None) => return,
                };
                self.apply_change(change, old_key);
            }
            ViewChange::Affinity => self.pending.merge(Touched {
                policy: false,
                routes: true,
                bgp: true,
            }),
            _ => {}
        }
    }

    /// Notes what a change of a resource of `kind` touches. Whether the policy part needs a
    /// new render is decided from what the compiler says changed; kinds that feed the
    /// render directly force it.
    fn note(&mut self, kind: Kind, routes: bool) {
        let mut touched = Touched::of_kind(kind);
        touched.routes = routes;
        let forced = matches!(kind, Kind::FelixConfiguration | Kind::Tier);
        self.rerender |= forced;
        touched.policy = forced || self.compiler.is_none() || self.table.is_none();
        self.pending.merge(touched);
    }

    /// Hands one change to the compiler, when it exists, and keeps what it affected. An
    /// object that fails validation is left out, and so is its old version (`old`).
    fn apply_change(&mut self, change: Change, old: Option<ObjectKey>) {
        let Some(compiler) = self.compiler.as_mut() else {
            return;
        };
        let file = match &change {
            Change::Upsert(o) => Some(o.origin.file.clone()),
            _ => None,
        };
        match compiler.apply(change) {
            Ok(update) => {
                let affected = update.path == UpdatePath::Rebuild
                    || self.table.as_ref().is_none_or(|t| {
                        t.refs()
                            .affected_by(&update.changes, compiler.model(), &self.options.node)
                    });
                if affected {
                    self.pending.policy = true;
                    self.changes.absorb(update.changes);
                }
            }
            // Deleting what was left out because it was invalid.
            Err(UpdateError::NotFound(_)) => {}
            Err(UpdateError::Invalid { key, errors }) => {
                self.problems.push(CalcProblem::Invalid {
                    key: file.unwrap_or_else(|| key.to_string()),
                    message: errors
                        .first()
                        .map(|d| d.problem.to_string())
                        .unwrap_or_default(),
                });
                // The old version stays out too: the store no longer holds it.
                if let Some(k) = old {
                    let _ = compiler.apply(Change::Delete(k));
                }
            }
        }
    }

    /// Whether changes are waiting for [`Calculator::compute`].
    pub fn dirty(&self) -> bool {
        self.pending != Touched::default()
    }

    /// Recomputes what the pending changes touched; returns what was recomputed.
    pub fn compute(&mut self, view: &mut View) -> Touched {
        let touched = std::mem::take(&mut self.pending);
        let node = self.options.node.clone();
        let wants_cluster = touched.routes || touched.bgp || self.render.is_none();
        let mut cluster = None;
        if self.compiler.is_none() {
            // The view hands its objects over to the compiler; the routing input is read
            // from the view on another core meanwhile.
            let set = view.hand_over(&node);
            let problems = &mut self.problems;
            let shared: &View = view;
            let (built, read) = std::thread::scope(|s| {
                let reader = wants_cluster.then(|| s.spawn(|| shared.cluster()));
                let built = lenient_compiler(set, &node, problems);
                (built, reader.map(|r| r.join()))
            });
            cluster = match read {
                Some(Ok(c)) => Some(c),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => None,
            };
            match built {
                Ok(c) => self.compiler = Some(c),
                Err(back) => view.take_back(back),
            }
        }
        let cluster = cluster.or_else(|| wants_cluster.then(|| view.cluster()));
        let mut touched = touched;
        if let Some(cluster) = &cluster {
            let felix = cluster.felix_for(&node);
            let opts = RenderOptions {
                vxlan_port: u16::try_from(felix.vxlan_port).ok().or(Some(4789)),
                ..RenderOptions::default()
            };
            if self.render.as_ref() != Some(&opts) {
                touched.policy = true;
                self.render = Some(opts);
            }
        }
        if touched.policy
            && let (Some(compiler), Some(opts)) = (&self.compiler, &self.render)
        {
            let changes = std::mem::take(&mut self.changes);
            let rerender = std::mem::take(&mut self.rerender);
            let (model, program) = (compiler.model(), compiler.program());
            let path = match &mut self.table {
                Some(t) if !rerender && t.options() == opts => {
                    let step = t.update(model, program, &changes);
                    let path = step.path;
                    pend(&mut self.nft, path, step.delta);
                    path
                }
                Some(t) => {
                    let step = t.rebuild(model, program, opts);
                    pend(&mut self.nft, step.path, step.delta);
                    RenderPath::Rebuilt
                }
                None => {
                    self.table = Some(NodeRuleset::build(model, program, &node, opts));
                    self.nft = NftPending::Whole;
                    RenderPath::Rebuilt
                }
            };
            // The node's endpoints change only with a new rendering.
            if path == RenderPath::Rebuilt {
                self.outputs.workloads = workloads_of(model, &node);
            }
        }
        if touched.routes
            && self.options.routes
            && let Some(cluster) = &cluster
        {
            let opts = PlanOptions {
                parent_iface: self.options.parent_iface.clone(),
                host_mtu: self.options.host_mtu,
            };
            let felix = cluster.felix_for(&node);
            match plan_node(cluster, &node, &opts) {
                Ok(plan) => {
                    self.outputs.routes = Some(from_plan(&plan, &felix.interface_prefix));
                }
                Err(e) => self.problems.push(CalcProblem::Routes {
                    node: node.clone(),
                    message: e.to_string(),
                }),
            }
        }
        if touched.bgp
            && self.options.bgp
            && let Some(cluster) = &cluster
        {
            match render_bird(cluster, &node) {
                Ok(text) => self.outputs.bird = Some(text),
                Err(message) => self.problems.push(CalcProblem::Bird {
                    node: node.clone(),
                    message,
                }),
            }
        }
        touched
    }
}

/// Adds a table change to what waits for [`Calculator::take_nft`]: element changes
/// compose; anything else after another change needs the whole table.
fn pend(nft: &mut NftPending, path: RenderPath, delta: RulesetDelta) {
    if path == RenderPath::Unchanged || delta.is_empty() {
        return;
    }
    *nft = match std::mem::take(nft) {
        NftPending::Nothing => NftPending::Delta(Box::new(delta)),
        NftPending::Delta(mut d) if d.only_elements() && delta.only_elements() => {
            d.then_elements(delta);
            NftPending::Delta(d)
        }
        _ => NftPending::Whole,
    };
}

/// This node's workload endpoints with a program, by host-side interface.
fn workloads_of(model: &Model, node: &str) -> BTreeMap<String, EndpointStatus> {
    calico_policy::nft::node_endpoints(model, node)
        .workloads
        .into_iter()
        .filter_map(|(key, iface)| {
            let e = model.endpoint(&key)?;
            let workload = match &e.namespace {
                Some(ns) => format!("{ns}/{}", e.name),
                None => e.name.clone(),
            };
            let status = EndpointStatus {
                iface: iface.clone(),
                workload,
                addresses: e.addrs.clone(),
            };
            Some((iface, status))
        })
        .collect()
}

/// BIRD's configuration for `node`: the IPv4 rendering, plus the IPv6 rendering's when the
/// node has an IPv6 address. Calico ran two daemons (BIRD and BIRD6); our one BIRD 2 holds
/// both, so the IPv6 half's own definitions (functions, filters, templates, the kernel,
/// direct and static protocols) get a `_v6` suffix, and what BIRD allows only once
/// (`router id`, `protocol device`) comes from the IPv4 half.
fn render_bird(cluster: &calico_route::Cluster, node: &str) -> Result<String, String> {
    let v4 = calico_route::bird::render(cluster, node, Family::V4).map_err(|e| e.to_string())?;
    if cluster.node(node).is_none_or(|n| n.ipv6.is_none()) {
        return Ok(v4.text);
    }
    let v6 = calico_route::bird::render(cluster, node, Family::V6).map_err(|e| e.to_string())?;
    Ok(merge_families(&v4.text, &v6.text))
}

/// The name a top-level definition line defines (`function f()`, `filter f`,
/// `template bgp t`, `protocol kernel k {`), or `None`.
fn defined_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let name = match words.next()? {
        "function" | "filter" => words.next()?,
        "template" | "protocol" => {
            words.next()?;
            words.next()?
        }
        _ => return None,
    };
    let end = name.find(['(', '{', ';']).unwrap_or(name.len());
    let name = &name[..end];
    (!name.is_empty() && name != "from").then_some(name)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Replaces whole-word occurrences of `name` in `text` by `name_v6`.
fn rename_word(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find(name) {
        let at = i + pos;
        let end = at + name.len();
        let before = at.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(end).copied();
        out.push_str(&text[i..end]);
        if !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte) {
            out.push_str("_v6");
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

/// One BIRD 2 configuration from an IPv4 and an IPv6 rendering (see [`render_bird`]).
pub fn merge_families(v4: &str, v6: &str) -> String {
    let v4_names: BTreeSet<&str> = v4.lines().filter_map(defined_name).collect();
    // Drop the IPv6 half's router id and device protocol.
    let mut kept = String::with_capacity(v6.len());
    let mut skipping = false;
    for line in v6.lines() {
        if skipping {
            if line.trim_start().starts_with('}') {
                skipping = false;
            }
            continue;
        }
        if line.starts_with("router id") {
            continue;
        }
        if line.starts_with("protocol device") {
            skipping = !line.contains('}');
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let clashing: BTreeSet<&str> = v6
        .lines()
        .filter_map(defined_name)
        .filter(|n| v4_names.contains(n))
        .collect();
    let mut text = kept;
    for name in clashing {
        text = rename_word(&text, name);
    }
    format!("{v4}\n{text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::tests::kv;

    /// A calculator for node `n1` without routes or BGP.
    fn policy_only_calculator() -> Calculator {
        Calculator::new(CalcOptions {
            node: "n1".to_owned(),
            parent_iface: "eth0".to_owned(),
            host_mtu: 1500,
            routes: false,
            bgp: false,
        })
    }

    /// A policy the build refuses is left out and reported; the rest is computed, and a
    /// later fix of it is taken in.
    #[test]
    fn a_refused_policy_is_left_out_and_the_rest_computed() {
        let mut view = View::new();
        let mut calc = policy_only_calculator();
        let policy = |name: &str, selector: &str| {
            format!(
                r#"{{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy","metadata":{{"name":"default.{name}"}},"spec":{{"tier":"default","selector":"{selector}","ingress":[{{"action":"Allow"}}]}}}}"#
            )
        };
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"ns","labels":{"app":"web"}},"spec":{"nodeName":"n1"},"status":{"podIP":"10.0.0.1"}}"#;
        // Stored as the tools store them: key of the resource, its JSON as the value.
        let stored = |json: &str| {
            let o = calico_model::loader::load_str("x.json", json)
                .objects
                .into_iter()
                .next()
                .expect("loads");
            (calico_ipam::resources::key_of(&o.resource), json.to_owned())
        };
        let (bad, _) = stored(&policy("bad", "app == 'web'"));
        for json in [
            pod.to_owned(),
            policy("good", "app == 'web'"),
            policy("bad", "app == "),
        ] {
            let (k, v) = if json.contains("default.bad") {
                (bad.clone(), json)
            } else {
                stored(&json)
            };
            let ch = view.put(&kv(&k, &v));
            calc.change(ch);
        }
        calc.compute(&mut view);
        let problems = calc.take_problems();
        assert!(
            problems.iter().any(
                |p| matches!(p, CalcProblem::Invalid { key, .. } if key.contains("default.bad"))
            ),
            "{problems:?}"
        );
        let rs = calc.ruleset().expect("a table without the refused policy");
        assert!(
            rs.chains.keys().any(|c| c.contains("gnp/good")),
            "{:?}",
            rs.chains.keys()
        );
        assert!(!rs.chains.keys().any(|c| c.contains("gnp/bad")));
        // Fixed: it is compiled in.
        let ch = view.put(&kv(&bad, &policy("bad", "app == 'web'")));
        calc.change(ch);
        calc.compute(&mut view);
        let rs = calc.ruleset().expect("table");
        assert!(
            rs.chains.keys().any(|c| c.contains("gnp/bad")),
            "{:?}",
            rs.chains.keys()
        );
    }

    /// After the view handed its objects over, a pod on another node still changes this
    /// node's sets: its new address replaces the old one, its delete removes it.
    #[test]
    fn pods_elsewhere_keep_changing_the_sets_after_the_hand_over() {
        let mut view = View::new();
        let mut calc = policy_only_calculator();
        let pod = |name: &str, node: &str, app: &str, ip: &str| {
            kv(
                &format!("/calico/calico-rs/k8s/pods/ns/{name}"),
                &format!(
                    r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"ns","labels":{{"app":"{app}"}}}},"spec":{{"nodeName":"{node}"}},"status":{{"podIP":"{ip}"}}}}"#
                ),
            )
        };
        let policy = kv(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.from-clients",
            r#"{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkPolicy","metadata":{"name":"default.from-clients"},"spec":{"tier":"default","selector":"app == 'web'","ingress":[{"action":"Allow","source":{"selector":"app == 'client'"}}]}}"#,
        );
        for ch in view.put_many(&[
            pod("web", "n1", "web", "10.0.0.1"),
            pod("c1", "n2", "client", "10.0.1.1"),
            policy,
        ]) {
            calc.change(ch);
        }
        calc.compute(&mut view);
        let problems = calc.take_problems();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(view.summarised_endpoints(), 1);
        let sets = |calc: &Calculator| format!("{:?}", calc.ruleset().expect("table").sets);
        assert!(sets(&calc).contains("10.0.1.1"), "{}", sets(&calc));
        assert_eq!(calc.take_nft(), NftPending::Whole);
        let ch = view.put(&pod("c1", "n2", "client", "10.0.1.2"));
        assert!(matches!(ch, ViewChange::Elsewhere { .. }));
        calc.change(ch);
        calc.compute(&mut view);
        assert!(sets(&calc).contains("10.0.1.2"), "{}", sets(&calc));
        assert!(!sets(&calc).contains("10.0.1.1"), "{}", sets(&calc));
        assert!(matches!(calc.take_nft(), NftPending::Delta(_)));
        calc.change(view.delete(b"/calico/calico-rs/k8s/pods/ns/c1"));
        calc.compute(&mut view);
        assert!(!sets(&calc).contains("10.0.1.2"), "{}", sets(&calc));
        // Routing still sees every workload.
        assert_eq!(view.cluster().workloads.len(), 1);
    }

    #[test]
    fn ipv6_definitions_are_renamed_and_singletons_dropped() {
        let v4 = "router id 1.2.3.4;\nfunction f()\n{\n}\nprotocol device {\n  scan time 2;\n}\n\
                  template bgp bgp_template {\n}\nprotocol bgp Mesh_10_0_0_2 from bgp_template {\n}\n";
        let v6 = "router id 1.2.3.4;\nfunction f()\n{\n}\nfunction f2() { f(); ff(); }\n\
                  protocol device {\n  scan time 2;\n}\ntemplate bgp bgp_template {\n}\n\
                  protocol bgp Mesh_fd00__2 from bgp_template {\n}\n";
        let merged = merge_families(v4, v6);
        assert_eq!(merged.matches("router id").count(), 1);
        assert_eq!(merged.matches("protocol device").count(), 1);
        assert!(merged.contains("function f_v6()"));
        assert!(merged.contains("function f2() { f_v6(); ff(); }"));
        assert!(merged.contains("template bgp bgp_template_v6 {"));
        assert!(merged.contains("protocol bgp Mesh_fd00__2 from bgp_template_v6 {"));
        assert!(merged.contains("protocol bgp Mesh_10_0_0_2 from bgp_template {"));
    }
}
