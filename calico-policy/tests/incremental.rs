//! The incremental compiler against a fresh compile: after every change of a random sequence
//! (policies of every kind, pods, namespaces, network sets added, changed and removed), the
//! program the [`Compiler`] keeps equals `Model::build(objects).compile()` keyed by identity,
//! and an update that changed the program says so.

use calico_model::loader::{LoadedObject, LoadedSet, load_str};
use calico_model::resources::Kind;
use calico_policy::incremental::{Change, Compiler, EndpointScope, ObjectKey, UpdatePath};
use calico_policy::nft::{NodeRuleset, RenderOptions, RenderPath, build_ruleset};
use calico_policy::{MemberDelta, Model, Program, ProgramChanges, SetDef};
use proptest::prelude::*;

const BASE: &str = r#"
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns0, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {team: b}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: ext, labels: {zone: ext}}
spec: {nets: [192.0.2.0/24]}
"#;

fn one(yaml: &str) -> LoadedObject {
    let set = load_str("gen.yaml", yaml);
    assert!(set.errors.is_empty(), "{yaml}: {:?}", set.errors);
    set.objects.into_iter().next().expect("one object")
}

const SELECTORS: [&str; 5] = [
    "app == 'web'",
    "app == 'db'",
    "all()",
    "has(tier)",
    "app in {'web', 'api'}",
];

fn pod(i: u8, ns: u8, app: u8, tier: bool, port: bool) -> String {
    let apps = ["web", "db", "api"];
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: pod{i}, namespace: ns{ns}, labels: {{app: {app}{tier}}}}}
spec:
  nodeName: node-{node}
  containers: [{{name: c, image: i{ports}}}]
status: {{podIP: 10.0.{ns}.{ip}}}
"#,
        app = apps[app as usize % 3],
        node = 1 + i % 2,
        // Pods share addresses (i and i + 5): set members must stay while any holder does.
        ip = i % 5,
        tier = if tier { ", tier: t1" } else { "" },
        ports = if port {
            ", ports: [{name: http, containerPort: 8080}]"
        } else {
            ""
        },
    )
}

fn policy(kind: u8, name: u8, sel: u8, order: u8, tier: bool, action: u8, peer: u8) -> String {
    let selector = SELECTORS[sel as usize % SELECTORS.len()];
    let peer_sel = SELECTORS[peer as usize % SELECTORS.len()];
    let action = ["Allow", "Deny", "Pass", "Log"][action as usize % 4];
    let order = match order % 3 {
        0 => String::new(),
        1 => "order: 10, ".to_owned(),
        _ => "order: 100, ".to_owned(),
    };
    let tier_name = if tier { "security" } else { "default" };
    let rule = match peer % 6 {
        0 => format!("{{action: {action}, source: {{selector: \"{peer_sel}\"}}}}"),
        1 => format!("{{action: {action}, protocol: TCP, destination: {{ports: [http, 80]}}}}"),
        2 => format!(
            "{{action: {action}, source: {{nets: [10.0.1.0/24], notSelector: \"{peer_sel}\"}}}}"
        ),
        3 => format!("{{action: {action}, source: {{selector: \"zone == 'ext'\"}}}}"),
        // Namespaced network sets match through their namespace's labels.
        4 => format!("{{action: {action}, source: {{namespaceSelector: \"team == 'a'\"}}}}"),
        _ => format!(
            "{{action: {action}, source: {{namespaceSelector: \"has(team)\", selector: \"role == 'db'\"}}}}"
        ),
    };
    match kind % 4 {
        0 => format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: {tier_name}.p{name}, namespace: ns0}}\nspec: {{tier: {tier_name}, {order}selector: \"{selector}\", ingress: [{rule}], egress: [{rule}]}}\n"
        ),
        1 => format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: {tier_name}.g{name}}}\nspec: {{tier: {tier_name}, {order}selector: \"{selector}\", types: [Ingress], ingress: [{rule}]}}\n"
        ),
        2 => format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: k{name}, namespace: ns1}}\nspec: {{podSelector: {{matchLabels: {{app: {}}}}}, ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: http}}]}}]}}\n",
            ["web", "db", "api"][sel as usize % 3]
        ),
        _ => format!(
            "apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {{name: default.s{name}, namespace: ns0}}\nspec: {{selector: \"{selector}\", ingress: [{rule}]}}\n"
        ),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Pod(u8, u8, u8, bool, bool),
    DeletePod(u8, u8),
    Policy(u8, u8, u8, u8, bool, u8, u8),
    DeletePolicy(u8, u8, bool),
    Namespace(u8, bool),
    /// A namespaced NetworkSet: name, namespace (ns2 has no Namespace object), role db.
    NetworkSet(u8, u8, bool),
    DeleteNetworkSet(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..8, 0u8..2, 0u8..3, any::<bool>(), any::<bool>())
            .prop_map(|(i, n, a, t, p)| Op::Pod(i, n, a, t, p)),
        1 => (0u8..8, 0u8..2).prop_map(|(i, n)| Op::DeletePod(i, n)),
        4 => (0u8..4, 0u8..3, 0u8..5, 0u8..3, any::<bool>(), 0u8..4, 0u8..8)
            .prop_map(|(k, n, s, o, t, a, p)| Op::Policy(k, n, s, o, t, a, p)),
        1 => (0u8..4, 0u8..3, 0u8..5, 0u8..3, any::<bool>(), 0u8..4, 4u8..6)
            .prop_map(|(k, n, s, o, t, a, p)| Op::Policy(k, n, s, o, t, a, p)),
        1 => (0u8..4, 0u8..3, any::<bool>()).prop_map(|(k, n, t)| Op::DeletePolicy(k, n, t)),
        1 => (0u8..2, any::<bool>()).prop_map(|(n, b)| Op::Namespace(n, b)),
        2 => (0u8..3, 0u8..3, any::<bool>()).prop_map(|(i, n, d)| Op::NetworkSet(i, n, d)),
        1 => (0u8..3, 0u8..3).prop_map(|(i, n)| Op::DeleteNetworkSet(i, n)),
    ]
}

fn change(op: &Op) -> Change {
    match *op {
        Op::Pod(i, n, a, t, p) => Change::Upsert(Box::new(one(&pod(i, n, a, t, p)))),
        Op::DeletePod(i, n) => Change::Delete(ObjectKey {
            kind: Kind::Pod,
            namespace: Some(format!("ns{n}")),
            name: format!("pod{i}"),
        }),
        Op::Policy(k, n, s, o, t, a, p) => {
            Change::Upsert(Box::new(one(&policy(k, n, s, o, t, a, p))))
        }
        Op::DeletePolicy(k, n, t) => {
            let o = one(&policy(k, n, 0, 0, t, 0, 0));
            Change::Delete(ObjectKey::of(&o.resource))
        }
        Op::Namespace(n, b) => Change::Upsert(Box::new(one(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}, labels: {{team: {}}}}}\n",
            if b { "a" } else { "b" }
        )))),
        Op::NetworkSet(i, n, db) => Change::Upsert(Box::new(one(&format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {{name: set{i}, namespace: ns{n}, labels: {{role: {}}}}}\nspec: {{nets: [198.51.{n}.{i}/32]}}\n",
            if db { "db" } else { "web" }
        )))),
        Op::DeleteNetworkSet(i, n) => Change::Delete(ObjectKey {
            kind: Kind::NetworkSet,
            namespace: Some(format!("ns{n}")),
            name: format!("set{i}"),
        }),
    }
}

fn fresh(objects: &[LoadedObject]) -> (Program, Vec<(String, Vec<String>)>) {
    let mut set = LoadedSet::new();
    set.objects = objects.to_vec();
    set.apply_defaults();
    let model = Model::build(&set).expect("valid manifests");
    (model.compile(), workloads(&model))
}

/// Connlist workloads by name with their members' names (order-insensitive).
fn workloads(model: &Model) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = model
        .workloads()
        .iter()
        .map(|w| {
            let mut m: Vec<String> = w.members.iter().map(ToString::to_string).collect();
            m.sort();
            (w.name.clone(), m)
        })
        .collect();
    out.sort();
    out
}

fn base() -> LoadedSet {
    let mut set = load_str("base.yaml", BASE);
    for i in 0..4 {
        set.extend(load_str("pods.yaml", &pod(i, i % 2, i, i % 2 == 0, i < 2)));
    }
    set.extend(load_str("p.yaml", &policy(0, 0, 0, 1, false, 0, 0)));
    set.extend(load_str("g.yaml", &policy(1, 0, 3, 2, true, 2, 1)));
    set.extend(load_str("k.yaml", &policy(2, 0, 1, 0, false, 0, 0)));
    set
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_fresh_compile(ops in prop::collection::vec(op(), 1..24)) {
        let mut compiler = Compiler::new(&base()).expect("base builds");
        for op in &ops {
            let before = compiler.program().clone();
            let result = compiler.apply(change(op));
            let update = match result {
                Ok(u) => u,
                // Deleting what is not there is refused and changes nothing.
                Err(calico_policy::incremental::UpdateError::NotFound(_)) => {
                    prop_assert_eq!(compiler.program(), &before);
                    continue;
                }
                Err(e) => return Err(TestCaseError::fail(format!("{op:?}: {e}"))),
            };
            let kept = compiler.program().clone();
            let (expected, expected_workloads) = fresh(compiler.objects());
            prop_assert_eq!(&kept, &expected, "after {:?} ({:?})", op, update.path);
            prop_assert_eq!(workloads(compiler.model()), expected_workloads, "workloads after {:?}", op);
            // The changes reported are exactly what differs between the programs, and each
            // member delta turns the set's old members into its new ones.
            let mut reported = update.changes.clone();
            let deltas = std::mem::take(&mut reported.member_deltas);
            prop_assert_eq!(&reported, &before.changes(&kept), "changes after {:?} ({:?})", op, update.path);
            check_deltas(&before, &kept, &deltas)?;
        }
    }

    #[test]
    fn scoped_incremental_equals_fresh_scoped_compile(ops in prop::collection::vec(op(), 1..24)) {
        let scope = EndpointScope::Node("node-1".to_owned());
        let mut compiler = Compiler::with_scope(&base(), scope.clone()).expect("base builds");
        for op in &ops {
            let before = compiler.program().clone();
            let Ok(update) = compiler.apply(change(op)) else { continue };
            let mut set = LoadedSet::new();
            set.objects = compiler.objects().to_vec();
            set.apply_defaults();
            let expected = Model::build(&set).expect("valid").compile_where(|e| scope.includes(e));
            prop_assert_eq!(compiler.program(), &expected, "after {:?}", op);
            let mut reported = update.changes.clone();
            let deltas = std::mem::take(&mut reported.member_deltas);
            prop_assert_eq!(&reported, &before.changes(&expected), "changes after {:?}", op);
            check_deltas(&before, &expected, &deltas)?;
        }
    }

    #[test]
    fn absorbed_changes_describe_the_whole_sequence(ops in prop::collection::vec(op(), 1..24)) {
        let mut compiler = Compiler::new(&base()).expect("base builds");
        let first = compiler.program().clone();
        let mut sum = ProgramChanges::default();
        for op in &ops {
            if let Ok(u) = compiler.apply(change(op)) {
                sum.absorb(u.changes);
            }
        }
        let last = compiler.program().clone();
        let real = first.changes(&last);
        // Every real change is reported (the sum may also name things changed and changed
        // back).
        for id in &real.sets_changed {
            prop_assert!(sum.sets_changed.contains(id) || sum.sets_added.contains(id) || sum.sets_removed.contains(id), "{id:?} changed but not reported");
        }
        for p in &real.policies_changed {
            prop_assert!(sum.policies_changed.contains(p));
        }
        for e in &real.endpoints_changed {
            prop_assert!(sum.endpoints_changed.contains(e));
        }
        let deltas: std::collections::BTreeMap<_, _> = sum
            .member_deltas
            .iter()
            .filter(|(id, _)| first.sets.contains_key(id.as_str()) && last.sets.contains_key(id.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        check_deltas(&first, &last, &deltas)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A node's table kept up to date from the compiler's changes (after every change, and
    /// from changes summed over batches of three) equals a fresh rendering, and each delta
    /// turns the old table into the new one under the kernel's rules.
    #[test]
    fn node_ruleset_follows_the_program(ops in prop::collection::vec(op(), 1..24)) {
        let opts = RenderOptions::default();
        let scope = EndpointScope::Node("node-1".to_owned());
        let mut compiler = Compiler::with_scope(&base(), scope).expect("base builds");
        let mut each = NodeRuleset::build(compiler.model(), compiler.program(), "node-1", &opts);
        let mut batched = each.clone();
        let mut sum = ProgramChanges::default();
        for (n, op) in ops.iter().enumerate() {
            let Ok(update) = compiler.apply(change(op)) else { continue };
            sum.absorb(update.changes.clone());
            let expected = build_ruleset(compiler.model(), compiler.program(), "node-1", &opts);
            let old = each.ruleset().clone();
            let step = each.update(compiler.model(), compiler.program(), &update.changes);
            prop_assert_eq!(each.ruleset(), &expected, "after {:?} ({:?})", op, step.path);
            let applied = step.delta.apply(&old).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
            prop_assert_eq!(&applied, &expected, "delta after {:?}", op);
            if n % 3 == 2 || n + 1 == ops.len() {
                let old = batched.ruleset().clone();
                let step = batched.update(compiler.model(), compiler.program(), &std::mem::take(&mut sum));
                prop_assert_eq!(batched.ruleset(), &expected, "batched, after {:?} ({:?})", op, step.path);
                let applied = step.delta.apply(&old).map_err(|e| TestCaseError::fail(format!("batched {op:?}: {e}")))?;
                prop_assert_eq!(&applied, &expected, "batched delta after {:?}", op);
            }
        }
    }
}

/// Each delta applied to the members of the set in `before` gives its members in `after`.
fn check_deltas(
    before: &Program,
    after: &Program,
    deltas: &std::collections::BTreeMap<calico_policy::SetId, MemberDelta>,
) -> Result<(), TestCaseError> {
    for (id, delta) in deltas {
        let (Some(old), Some(new)) = (before.sets.get(id.as_str()), after.sets.get(id.as_str()))
        else {
            return Err(TestCaseError::fail(format!(
                "delta for {id:?}, a set not in both programs"
            )));
        };
        match (old, new, delta) {
            (
                SetDef::Selector { members: o, .. },
                SetDef::Selector { members: n, .. },
                MemberDelta::Addrs(d),
            ) => check_one(id, o, n, d)?,
            (
                SetDef::NamedPort { members: o, .. },
                SetDef::NamedPort { members: n, .. },
                MemberDelta::NamedPorts(d),
            ) => check_one(id, o, n, d)?,
            _ => {
                return Err(TestCaseError::fail(format!(
                    "delta of the wrong kind for {id:?}"
                )));
            }
        }
    }
    Ok(())
}

#[test]
fn one_policy_change_touches_only_that_policy_and_its_endpoints() {
    let mut compiler = Compiler::new(&base()).expect("base builds");
    // Make the Calico policy select db pods instead of web pods.
    let update = compiler
        .apply(Change::Upsert(Box::new(one(&policy(
            0, 0, 1, 1, false, 0, 0,
        )))))
        .expect("valid");
    assert_eq!(update.path, UpdatePath::Incremental);
    // Its rules did not change, so no policy program is reported changed.
    assert!(
        update.changes.policies_changed.is_empty(),
        "{:?}",
        update.changes.policies_changed
    );
    // Endpoints: the web pods it no longer selects and the db pods it now selects.
    let model = compiler.model();
    for (key, _) in &update.changes.endpoints_changed {
        let app = model
            .endpoint(key)
            .expect("a changed endpoint exists")
            .labels
            .get("app")
            .cloned()
            .unwrap_or_default();
        assert!(
            app == "web" || app == "db",
            "endpoint {key} ({app}) was touched"
        );
    }
    assert!(!update.changes.endpoints_changed.is_empty());
    // Applying the same object again changes nothing.
    let again = compiler
        .apply(Change::Upsert(Box::new(one(&policy(
            0, 0, 1, 1, false, 0, 0,
        )))))
        .expect("valid");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

/// The count of workload endpoints is kept as endpoints come and go, host endpoints apart.
#[test]
fn workload_endpoints_are_counted_as_they_come_and_go() {
    let counted = |m: &Model| {
        m.endpoints()
            .iter()
            .filter(|e| e.kind != calico_policy::EndpointKind::HostEndpoint)
            .count()
    };
    let hep = |ip: &str| {
        one(&format!(
            "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {{name: h1, labels: {{role: host}}}}\nspec: {{node: node-1, interfaceName: eth0, expectedIPs: [{ip}]}}\n"
        ))
    };
    let mut set = base();
    set.objects.push(hep("192.0.2.1"));
    let mut compiler = Compiler::new(&set).expect("base builds");
    let workloads = counted(compiler.model());
    assert_eq!(compiler.model().workload_endpoint_count(), workloads);
    assert_eq!(compiler.model().endpoints().len(), workloads + 1);
    let steps = [
        Change::Upsert(Box::new(one(&pod(7, 1, 0, true, true)))),
        Change::Upsert(Box::new(hep("192.0.2.2"))),
        Change::Delete(ObjectKey {
            kind: Kind::Pod,
            namespace: Some("ns0".to_owned()),
            name: "pod0".to_owned(),
        }),
        Change::Delete(ObjectKey {
            kind: Kind::HostEndpoint,
            namespace: None,
            name: "h1".to_owned(),
        }),
    ];
    for step in steps {
        compiler.apply(step).expect("applies");
        let m = compiler.model();
        assert_eq!(m.workload_endpoint_count(), counted(m));
    }
    assert_eq!(compiler.model().workload_endpoint_count(), workloads);
    assert_eq!(compiler.model().endpoints().len(), workloads);
}

#[test]
fn invalid_object_is_refused_and_nothing_changes() {
    let mut compiler = Compiler::new(&base()).expect("base builds");
    let before = compiler.program().clone();
    let bad = one(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: default.bad, namespace: ns0}\nspec: {selector: \"app == \", ingress: [{action: Allow}]}\n",
    );
    let err = compiler
        .apply(Change::Upsert(Box::new(bad)))
        .expect_err("invalid selector");
    assert!(err.to_string().contains("default.bad"), "{err}");
    assert_eq!(compiler.program(), &before);
}

/// A policy of the node changing only its rules re-renders only its chains (and creates and
/// deletes the sets its rules start and stop using); the table still equals a fresh
/// rendering and the delta applies under the kernel's rules.
#[test]
fn rule_changes_of_a_local_policy_patch_its_chains_only() {
    let opts = RenderOptions::default();
    let mut compiler = Compiler::new(&base()).expect("base builds");
    let mut table = NodeRuleset::build(compiler.model(), compiler.program(), "node-1", &opts);
    let mut patched = 0;
    for round in 0..3u8 {
        for peer in 0..6u8 {
            for action in 0..4u8 {
                // Policy kinds 0 (namespaced) and 1 (global), tier and order unchanged.
                let kind = round % 2;
                let text = policy(kind, 0, kind * 3, 1 + kind, kind == 1, action, peer);
                let update = compiler.apply(change_of(&text)).expect("policy applies");
                let old = table.ruleset().clone();
                let step = table.update(compiler.model(), compiler.program(), &update.changes);
                if step.path == RenderPath::Patched && !step.delta.fill_chains.is_empty() {
                    patched += 1;
                    assert!(
                        step.delta
                            .fill_chains
                            .iter()
                            .all(|f| f.chain.starts_with("pol-")),
                        "{:?}",
                        step.delta
                            .fill_chains
                            .iter()
                            .map(|f| &f.chain)
                            .collect::<Vec<_>>()
                    );
                }
                let expected = build_ruleset(compiler.model(), compiler.program(), "node-1", &opts);
                assert_eq!(table.ruleset(), &expected, "peer {peer} action {action}");
                assert_eq!(step.delta.apply(&old).expect("delta applies"), expected);
            }
        }
    }
    assert!(patched > 10, "only {patched} updates took the policy path");
}

fn change_of(text: &str) -> Change {
    Change::Upsert(Box::new(one(text)))
}

/// `old` with `d` applied is `new`, and `d` only removes members `old` holds and adds ones
/// it does not.
fn check_one<T: Ord + Copy + std::fmt::Debug>(
    id: &calico_policy::SetId,
    old: &[T],
    new: &[T],
    d: &calico_policy::MemberChanges<T>,
) -> Result<(), TestCaseError> {
    let mut m = old.to_vec();
    m.retain(|x| !d.removed.contains(x));
    m.extend(d.added.iter().copied());
    m.sort();
    prop_assert_eq!(&m[..], new, "members of {:?} after {:?}", id, d);
    prop_assert!(
        d.removed.iter().all(|x| old.contains(x)) && d.added.iter().all(|x| !old.contains(x))
    );
    Ok(())
}

/// Policies inserted again and again at the same place (each before the last) use up the
/// room between two ranks; the ranks are spread again and the program stays right.
#[test]
fn many_inserts_at_one_place_keep_the_program_right() {
    let mut compiler = Compiler::new(&base()).expect("base builds");
    for name in (10..60u8).rev() {
        let text = policy(0, name, 2, 1, false, name % 4, name % 6);
        compiler.apply(change_of(&text)).expect("policy applies");
    }
    let (expected, _) = fresh(compiler.objects());
    assert_eq!(compiler.program(), &expected);
}
