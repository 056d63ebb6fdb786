//! One node's ruleset kept up to date change by change.
//!
//! [`NodeRuleset`] holds the rendered table of one node and takes the [`ProgramChanges`] of
//! the incremental compiler. A change that touches nothing the node's table was rendered
//! from costs nothing. A change of set members only (a pod elsewhere relabelled, added,
//! removed or readdressed: the commonest change in a large cluster) patches just the elements
//! of the sets concerned, using the compiler's member deltas when it has them, and the delta
//! names only those elements; nothing else of the table is rendered or compared. Anything
//! else (an endpoint of the node, a policy or profile whose chain the table holds, a set
//! appearing or going) renders the table again and compares it with the old one.
//!
//! Either way the result equals a fresh [`build_ruleset`](super::build_ruleset) of the same
//! program, and the delta turns the old table into it.
//!
//! ```
//! use calico_model::loader::load_str;
//! use calico_policy::incremental::{Change, Compiler};
//! use calico_policy::nft::{NodeRuleset, RenderOptions, RenderPath};
//!
//! let cluster = load_str("c.yaml", r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, namespace: ns, labels: {app: web}}
//! spec: {nodeName: n1}
//! status: {podIP: 10.0.0.1}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: db, namespace: ns, labels: {app: db}}
//! spec: {nodeName: n2}
//! status: {podIP: 10.0.0.2}
//! ---
//! apiVersion: projectcalico.org/v3
//! kind: NetworkPolicy
//! metadata: {name: web, namespace: ns}
//! spec:
//!   selector: app == 'web'
//!   egress: [{action: Allow, destination: {selector: app == 'db'}}]
//! "#);
//! let mut compiler = Compiler::new(&cluster).unwrap();
//! let mut table = NodeRuleset::build(
//!     compiler.model(), compiler.program(), "n1", &RenderOptions::default());
//! // The pod on the other node moves: only its address set changes on n1.
//! let moved = load_str("m.yaml", r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: db, namespace: ns, labels: {app: db}}
//! spec: {nodeName: n2}
//! status: {podIP: 10.0.0.9}
//! "#);
//! let update = compiler
//!     .apply(Change::Upsert(Box::new(moved.objects[0].clone())))
//!     .unwrap();
//! let step = table.update(compiler.model(), compiler.program(), &update.changes);
//! assert_eq!(step.path, RenderPath::Patched);
//! assert_eq!(step.delta.add_elements.len(), 1);
//! assert_eq!(step.delta.remove_elements.len(), 1);
//! assert!(step.delta.fill_chains.is_empty());
//! ```

use std::collections::{BTreeSet, HashMap};

use crate::addr::Family;
use crate::compile::{MemberDelta, Program, ProgramChanges, SetDef, SetId};
use crate::model::Model;
use calico_nft::{Ruleset, RulesetDelta, SetElement};

use super::build::{
    Built, NamedSet, build, has_pass, named_elements, policy_chain_name, range_element, rerender,
    selector_elements, selector_set_name,
};
use super::{NodeRefs, RenderOptions};
use crate::direction::Direction;
use crate::model::PolicyId;
use calico_nft::ChainFill;

/// How [`NodeRuleset::update`] brought the table up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenderPath {
    /// Nothing the table was rendered from changed.
    Unchanged,
    /// Only set elements changed; they were patched.
    Patched,
    /// The table was rendered again and compared with the old one.
    Rebuilt,
}

/// The outcome of [`NodeRuleset::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeUpdate {
    /// What turns the old table into the new one (empty when nothing changed).
    pub delta: RulesetDelta,
    /// How it was computed.
    pub path: RenderPath,
}

/// One node's nftables table, kept up to date from the compiler's changes (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct NodeRuleset {
    node: String,
    opts: RenderOptions,
    rs: Ruleset,
    refs: NodeRefs,
    /// The named-port sets that merge each program set.
    named: HashMap<SetId, Vec<NamedSet>>,
    /// Selector sets (by table set name) whose members are all single addresses, so that
    /// each member is one element.
    singles: HashMap<String, bool>,
    /// Policy chains of the table whose policy has a Pass rule (the tier chains that jump
    /// to them depend on it).
    passes: std::collections::HashSet<(PolicyId, Direction)>,
    /// The interface of each workload endpoint with chains in the table.
    ifaces: HashMap<crate::EndpointKey, String>,
}

fn all_singles(program: &Program, id: &str) -> bool {
    match program.sets.get(id) {
        Some(SetDef::Selector { members, .. }) => members.iter().all(|r| r.lo == r.hi),
        _ => false,
    }
}

impl NodeRuleset {
    /// Renders the table of `node` for `program` (compiled from `model`).
    pub fn build(model: &Model, program: &Program, node: &str, opts: &RenderOptions) -> Self {
        let mut t = NodeRuleset {
            node: node.to_owned(),
            opts: opts.clone(),
            rs: Ruleset::default(),
            refs: NodeRefs::default(),
            named: HashMap::new(),
            singles: HashMap::new(),
            passes: std::collections::HashSet::new(),
            ifaces: HashMap::new(),
        };
        t.render(model, program);
        t
    }

    fn render(&mut self, model: &Model, program: &Program) {
        let built = build(model, program, &self.node, &self.opts);
        self.rs = built.rs;
        self.refs = built.refs;
        self.named.clear();
        self.singles.clear();
        self.passes.clear();
        self.index(program, built.named);
        self.ifaces = built.workloads.into_iter().collect();
    }

    /// Records what [`NodeRuleset::patch_set`] and the policy path need of sets and policy
    /// chains just rendered.
    fn index(&mut self, program: &Program, named: Vec<NamedSet>) {
        for n in named {
            for id in &n.ids {
                self.named.entry(id.clone()).or_default().push(n.clone());
            }
        }
        for id in &self.refs.sets {
            for f in [Family::V4, Family::V6] {
                let name = selector_set_name(id.as_str(), f);
                if self.rs.sets.contains_key(&name) && !self.singles.contains_key(&name) {
                    self.singles.insert(name, all_singles(program, id.as_str()));
                }
            }
        }
        for p in &self.refs.policies {
            for dir in Direction::ALL {
                if self.rs.chains.contains_key(&policy_chain_name(p, dir))
                    && has_pass(program, p, dir)
                {
                    self.passes.insert((p.clone(), dir));
                }
            }
        }
    }

    /// The table.
    pub fn ruleset(&self) -> &Ruleset {
        &self.rs
    }

    /// What the table was rendered from.
    pub fn refs(&self) -> &NodeRefs {
        &self.refs
    }

    /// The node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The rendering options.
    pub fn options(&self) -> &RenderOptions {
        &self.opts
    }

    /// Renders the whole table again for `program` (new rendering options, or changes not
    /// described by [`ProgramChanges`]); returns the delta from the old table.
    pub fn rebuild(
        &mut self,
        model: &Model,
        program: &Program,
        opts: &RenderOptions,
    ) -> NodeUpdate {
        let old = std::mem::take(&mut self.rs);
        self.opts = opts.clone();
        self.render(model, program);
        NodeUpdate {
            delta: RulesetDelta::between(&old, &self.rs),
            path: RenderPath::Rebuilt,
        }
    }

    /// Brings the table up to date with `changes`, which turned the previous program into
    /// `program` (several updates' changes may be summed with [`ProgramChanges::absorb`]).
    pub fn update(
        &mut self,
        model: &Model,
        program: &Program,
        changes: &ProgramChanges,
    ) -> NodeUpdate {
        if !self.refs.affected_by(changes, model, &self.node) {
            return NodeUpdate {
                delta: RulesetDelta::default(),
                path: RenderPath::Unchanged,
            };
        }
        // Policy chains to render again (a policy whose Pass rules come or go changes the
        // tier chains too: render everything).
        let policies: Vec<(PolicyId, Direction)> = changes
            .policies_changed
            .iter()
            .filter(|(p, d)| {
                self.refs.policies.contains(p)
                    && self.rs.chains.contains_key(&policy_chain_name(p, *d))
            })
            .cloned()
            .collect();
        let pass_shift = policies
            .iter()
            .any(|(p, d)| has_pass(program, p, *d) != self.passes.contains(&(p.clone(), *d)));
        // Endpoints of the node whose programs changed: their chains are rendered again
        // when they keep their interface (a new, vanished or renamed one renders all).
        let mut endpoints: Vec<(crate::EndpointKey, String)> = Vec::new();
        let mut moved = false;
        for (k, _) in &changes.endpoints_changed {
            let e = model.endpoint(k);
            let here = self.refs.endpoints.contains(k)
                || e.is_some_and(|e| e.node.as_deref() == Some(self.node.as_str()));
            if !here {
                continue;
            }
            match (self.ifaces.get(k), e) {
                (Some(iface), Some(e))
                    if e.interface.as_ref() == Some(iface)
                        && e.node.as_deref() == Some(self.node.as_str())
                        && !e.host_network
                        && e.kind != crate::EndpointKind::HostEndpoint =>
                {
                    if !endpoints.iter().any(|(x, _)| x == k) {
                        endpoints.push((k.clone(), iface.clone()));
                    }
                }
                _ => moved = true,
            }
        }
        if moved || pass_shift || self.needs_render(changes) {
            let opts = self.opts.clone();
            return self.rebuild(model, program, &opts);
        }
        let mut delta = RulesetDelta::default();
        let held: Vec<&SetId> = changes
            .sets_changed
            .iter()
            .filter(|id| self.refs.sets.contains(*id))
            .collect();
        for id in held {
            self.patch_set(program, id, changes.member_deltas.get(id), &mut delta);
        }
        if !policies.is_empty() || !endpoints.is_empty() {
            self.patch_chains(model, program, &policies, &endpoints, &mut delta);
            // A set the program dropped is used by no compiled rule, so the chains that
            // used it were rendered again above and it went with them.
            debug_assert!(
                !changes
                    .sets_removed
                    .iter()
                    .any(|id| !program.sets.contains_key(id.as_str()) && self.holds(id)),
                "a set the program dropped is still in the table"
            );
        }
        NodeUpdate {
            delta,
            path: RenderPath::Patched,
        }
    }

    /// Renders the chains of `policies` and `endpoints` again (with the tier and policy
    /// chains those now jump to); chains and sets they newly use are created, and the ones
    /// nothing reaches or uses any more are deleted.
    fn patch_chains(
        &mut self,
        model: &Model,
        program: &Program,
        policies: &[(PolicyId, Direction)],
        endpoints: &[(crate::EndpointKey, String)],
        delta: &mut RulesetDelta,
    ) {
        // The chains about to be rewritten, to send only the ones that change.
        let mut before: HashMap<String, Vec<calico_nft::Rule>> = HashMap::new();
        for (p, d) in policies {
            let n = policy_chain_name(p, *d);
            if let Some(c) = self.rs.chains.get(&n) {
                before.insert(n, c.rules.clone());
            }
        }
        for (_, iface) in endpoints {
            for n in [
                super::object_name("ep-tw-", iface),
                super::object_name("ep-fw-", iface),
            ] {
                if let Some(c) = self.rs.chains.get(&n) {
                    before.insert(n, c.rules.clone());
                }
            }
        }
        let mut built = Built {
            rs: std::mem::take(&mut self.rs),
            refs: std::mem::take(&mut self.refs),
            named: Vec::new(),
            workloads: Vec::new(),
        };
        let (rewritten, created) =
            rerender(&mut built, model, program, &self.opts, policies, endpoints);
        // What the table held before: everything but what the re-render created.
        let mut new_sets: Vec<String> = created.sets;
        new_sets.sort();
        new_sets.dedup();
        let mut new_chains: Vec<String> = created.chains;
        new_chains.sort();
        new_chains.dedup();
        let old_set = |n: &str| new_sets.binary_search_by(|x| x.as_str().cmp(n)).is_err();
        let old_chain = |n: &str| new_chains.binary_search_by(|x| x.as_str().cmp(n)).is_err();
        self.rs = built.rs;
        self.refs = built.refs;
        for p in policies {
            self.passes.remove(p);
        }
        self.index(program, built.named);
        // Chains nothing reaches any more.
        let reachable = calico_nft::reachable_chains(&self.rs);
        let unreachable: Vec<String> = self
            .rs
            .chains
            .keys()
            .filter(|n| !reachable.contains(*n))
            .cloned()
            .collect();
        for n in &unreachable {
            self.rs.chains.remove(n);
        }
        for name in &new_sets {
            let Some(set) = self.rs.sets.get(name) else {
                continue;
            };
            delta
                .create_sets
                .push((name.clone(), set.key, set.interval));
            if !set.elements.is_empty() {
                delta
                    .add_elements
                    .push((name.clone(), set.elements.iter().cloned().collect()));
            }
        }
        for name in &new_chains {
            // Created, then dropped (a profile chain without rules) or unreachable.
            let Some(chain) = self.rs.chains.get(name) else {
                continue;
            };
            delta.create_chains.push((name.clone(), chain.base));
            delta.fill_chains.push(ChainFill {
                chain: name.clone(),
                flush: false,
                rules: chain.rules.clone(),
            });
        }
        for name in rewritten {
            let Some(chain) = self.rs.chains.get(&name) else {
                continue;
            };
            if !old_chain(&name) || before.get(&name) == Some(&chain.rules) {
                continue;
            }
            delta.fill_chains.push(ChainFill {
                chain: name,
                flush: true,
                rules: chain.rules.clone(),
            });
        }
        for n in unreachable {
            if old_chain(&n) {
                delta.delete_chains.push(n);
            }
        }
        // Sets no rule refers to any more.
        let used = self.rs.referenced_set_names();
        let unused: Vec<String> = self
            .rs
            .sets
            .keys()
            .filter(|n| !used.contains(n.as_str()))
            .cloned()
            .collect();
        for name in unused {
            self.rs.sets.remove(&name);
            self.singles.remove(&name);
            if old_set(&name) {
                delta.remove_elements.retain(|(n, _)| *n != name);
                delta.add_elements.retain(|(n, _)| *n != name);
                delta.delete_sets.push(name);
            } else {
                delta.create_sets.retain(|(n, _, _)| *n != name);
                delta.add_elements.retain(|(n, _)| *n != name);
            }
        }
        // Program sets the table no longer holds.
        let held: BTreeSet<SetId> = self
            .refs
            .sets
            .iter()
            .filter(|id| self.holds(id))
            .cloned()
            .collect();
        self.refs.sets = held;
        let rs = &self.rs;
        self.named.retain(|_, g| {
            g.retain(|n| rs.sets.contains_key(&n.name));
            !g.is_empty()
        });
    }

    /// Whether `changes` touch more than the members of sets the table holds and the rules
    /// of policies it holds (a set the program dropped is dropped with the chains that used
    /// it, see [`NodeRuleset::update`]).
    fn needs_render(&self, changes: &ProgramChanges) -> bool {
        changes
            .endpoints_removed
            .iter()
            .any(|k| self.refs.endpoints.contains(k))
            || changes
                .profiles_changed
                .iter()
                .any(|(p, _)| self.refs.profiles.contains(p))
            || changes
                .sets_added
                .iter()
                .any(|s| self.refs.sets.contains(s) || self.holds(s))
    }

    /// Whether the table holds a set rendered from program set `id`.
    fn holds(&self, id: &SetId) -> bool {
        [Family::V4, Family::V6].iter().any(|f| {
            self.rs
                .sets
                .contains_key(&selector_set_name(id.as_str(), *f))
        }) || self
            .named
            .get(id)
            .is_some_and(|g| g.iter().any(|n| self.rs.sets.contains_key(&n.name)))
    }

    /// Brings the table's sets derived from program set `id` up to date, adding their
    /// element changes to `delta`.
    fn patch_set(
        &mut self,
        program: &Program,
        id: &SetId,
        member_delta: Option<&MemberDelta>,
        delta: &mut RulesetDelta,
    ) {
        // Selector sets, one per family.
        for f in [Family::V4, Family::V6] {
            let name = selector_set_name(id.as_str(), f);
            if !self.rs.sets.contains_key(&name) {
                continue;
            }
            let simple = self.singles.get(&name).copied().unwrap_or(false);
            let (added, removed) = match member_delta {
                Some(MemberDelta::Addrs(d))
                    if simple && d.added.iter().chain(&d.removed).all(|r| r.lo == r.hi) =>
                {
                    let of = |v: &[crate::addr::AddrRange]| -> Vec<SetElement> {
                        v.iter()
                            .filter(|r| r.family == f)
                            .map(range_element)
                            .collect()
                    };
                    (of(&d.added), of(&d.removed))
                }
                _ => {
                    let fresh = selector_elements(program, id.as_str(), f);
                    self.singles
                        .insert(name.clone(), all_singles(program, id.as_str()));
                    self.diff_against(&name, fresh)
                }
            };
            self.record(&name, added, removed, delta);
        }
        // Named-port sets merging this set.
        let Some(groups) = self.named.get(id).cloned() else {
            return;
        };
        for g in groups {
            if !self.rs.sets.contains_key(&g.name) {
                continue;
            }
            let (added, removed) = match member_delta {
                Some(MemberDelta::NamedPorts(d)) => {
                    let el = |&(a, p, port): &(std::net::IpAddr, u8, u16)| {
                        SetElement::AddrProtoPort(a, p, port)
                    };
                    let of_family = |m: &&(std::net::IpAddr, u8, u16)| Family::of(m.0) == g.family;
                    let added: Vec<SetElement> = d.added.iter().filter(of_family).map(el).collect();
                    // A member another merged set still holds stays.
                    let removed: Vec<SetElement> = d
                        .removed
                        .iter()
                        .filter(of_family)
                        .filter(|m| {
                            !g.ids.iter().filter(|other| *other != id).any(|other| {
                                matches!(program.sets.get(other.as_str()),
                                    Some(SetDef::NamedPort { members, .. }) if members.binary_search(*m).is_ok())
                            })
                        })
                        .map(el)
                        .collect();
                    (added, removed)
                }
                _ => {
                    let fresh = named_elements(program, &g.ids, g.family);
                    self.diff_against(&g.name, fresh)
                }
            };
            self.record(&g.name, added, removed, delta);
        }
    }

    /// The elements to add and remove to turn set `name` into `fresh`.
    fn diff_against(
        &self,
        name: &str,
        fresh: BTreeSet<SetElement>,
    ) -> (Vec<SetElement>, Vec<SetElement>) {
        let Some(old) = self.rs.sets.get(name) else {
            return (fresh.into_iter().collect(), Vec::new());
        };
        let removed = old.elements.difference(&fresh).cloned().collect();
        let added = fresh.difference(&old.elements).cloned().collect();
        (added, removed)
    }

    /// Applies element changes to set `name` and records the ones that change it.
    fn record(
        &mut self,
        name: &str,
        added: Vec<SetElement>,
        removed: Vec<SetElement>,
        delta: &mut RulesetDelta,
    ) {
        let Some(set) = self.rs.sets.get_mut(name) else {
            return;
        };
        let removed: Vec<SetElement> = removed
            .into_iter()
            .filter(|e| set.elements.remove(e))
            .collect();
        let added: Vec<SetElement> = added
            .into_iter()
            .filter(|e| set.elements.insert(e.clone()))
            .collect();
        delta.change_elements(name, removed, added);
    }
}
