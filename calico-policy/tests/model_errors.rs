//! Bad input: errors name file, document, resource and field; nothing is dropped silently.

use calico_model::loader::load_str;
use calico_model::resources::policy::TierAction;
use calico_model::resources::values::Protocol;
use calico_policy::{BuildError, Diagnostic, FlowQuery, Model, PeerQuery, PolicyKind, Verdict};

fn errors(yaml: &str) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    match Model::build(&load_str("m.yaml", yaml)) {
        Err(BuildError::Invalid { errors, warnings }) => (errors, warnings),
        other => panic!("expected invalid, got {other:?}"),
    }
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns, labels: {app: b}}
";

#[test]
fn invalid_policy_fields_are_located() {
    let yaml = format!(
        "{PODS}---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: p, namespace: ns}}
spec:
  tier: nope
  ingress:
    - action: Allow
      source: {{selector: \"a ==\"}}
    - action: Allow
      source: {{services: {{name: svc}}}}
    - action: Allow
      protocol: TCP
      destination: {{ports: [nosuch]}}
"
    );
    let (errors, warnings) = errors(&yaml);
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        lines.contains(
            &"m.yaml:2 NetworkPolicy/ns/p: spec.tier: tier \"nope\" does not exist".to_owned()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "m.yaml:2 NetworkPolicy/ns/p: spec.ingress[0].source.selector: invalid selector"
        )),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l == "m.yaml:2 NetworkPolicy/ns/p: spec.ingress[1].source.services: service matches are not modelled offline (no EndpointSlices)"), "{lines:#?}");
    // Each problem once, even when validation and the model both see it.
    let mut dedup = lines.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), lines.len());
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        "warning: m.yaml:2 NetworkPolicy/ns/p: spec.ingress[2].destination.ports: named port \"nosuch\" is declared by no endpoint: it matches nothing"
    );
}

#[test]
fn kubernetes_conversion_errors_fail_closed() {
    let yaml = format!(
        "{PODS}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: k, namespace: ns}}
spec:
  podSelector: {{}}
  ingress:
    - from: [{{ipBlock: {{cidr: 10.0.0.0/8}}}}]
      ports: [{{port: 70000}}]
    - from: [{{podSelector: {{matchLabels: {{\"a b\": x}}}}}}]
"
    );
    let (errors, _) = errors(&yaml);
    let fields: Vec<&str> = errors
        .iter()
        .map(|d| d.problem.field_path.as_str())
        .collect();
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.ingress[0].ports[0]")),
        "{errors:#?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("spec.ingress[1]")),
        "{errors:#?}"
    );
    // Lenient: the broken rules are left out, never opened up.
    let model = Model::build_lenient(&load_str("m.yaml", &yaml));
    let q = FlowQuery {
        from: PeerQuery::Ip("10.1.1.1".parse().unwrap()),
        to: PeerQuery::Name("ns/b".into()),
        protocol: Protocol::Tcp,
        port: Some(80),
        icmp_type: None,
        icmp_code: None,
    };
    assert_eq!(model.check(&q).unwrap().verdict, Verdict::Deny);
}

#[test]
fn undefined_tier_is_reported_but_enforced_last_with_deny() {
    let yaml = format!(
        "{PODS}---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: ghost.p}}
spec:
  tier: ghost
  selector: app == 'b'
  ingress: [{{action: Allow, protocol: TCP, destination: {{ports: [80]}}}}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {{name: staged}}
spec:
  selector: app == 'b'
  ingress: [{{action: Deny}}]
"
    );
    let (errors, _) = errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let model = Model::build_lenient(&load_str("m.yaml", &yaml));
    let last = model.tiers().last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.defined, last.default_action),
        ("ghost", false, TierAction::Deny)
    );
    let staged: Vec<_> = model.policies().iter().filter(|p| p.staged).collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].id.kind, PolicyKind::StagedGlobalNetworkPolicy);
    let q = |port| FlowQuery {
        from: PeerQuery::Name("ns/a".into()),
        to: PeerQuery::Name("ns/b".into()),
        protocol: Protocol::Tcp,
        port: Some(port),
        icmp_type: None,
        icmp_code: None,
    };
    assert_eq!(model.check(&q(80)).unwrap().verdict, Verdict::Allow);
    let r = model.check(&q(81)).unwrap();
    assert_eq!(r.verdict, Verdict::Deny);
    assert_eq!(r.explanation[1].reason, "end of tier ghost: Deny");
}

#[test]
fn connlist_fatal_errors() {
    // A Kubernetes egress rule with a named port toward external addresses.
    let yaml = format!(
        "{PODS}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: out, namespace: ns}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
    - to: [{{ipBlock: {{cidr: 0.0.0.0/0}}}}]
      ports: [{{port: http}}]
"
    );
    let model = Model::build(&load_str("m.yaml", &yaml)).expect("valid for the model");
    let e = model.connlist().unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(
        e.problems[0]
            .to_string()
            .starts_with("m.yaml:2 NetworkPolicy/ns/out: spec.egress: named port"),
        "{}",
        e.problems[0]
    );

    // Pods of one workload that a selector tells apart.
    let pods = "apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: ns
  labels: {app: web, canary: \"true\"}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web, uid: u, controller: true}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  namespace: ns
  labels: {app: web}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web, uid: u, controller: true}]
";
    let harmless = format!(
        "{pods}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: all-web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
"
    );
    let model = Model::build(&load_str("m.yaml", &harmless)).unwrap();
    assert_eq!(model.workloads().len(), 1);
    assert!(
        model.connlist().is_ok(),
        "labels differ but no selector tells the pods apart"
    );
    let splitting = format!(
        "{pods}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: canary, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{canary: \"true\"}}}}
"
    );
    let model = Model::build(&load_str("m.yaml", &splitting)).unwrap();
    let e = model.connlist().unwrap_err();
    assert!(
        e.problems[0].to_string().contains("ns/web[ReplicaSet]"),
        "{}",
        e.problems[0]
    );
}

#[test]
fn document_without_kind_is_a_warning() {
    let yaml = format!("{PODS}---\napiVersion: v1\nmetadata: {{name: x}}\n");
    let model = Model::build(&load_str("m.yaml", &yaml)).expect("only a warning");
    let w: Vec<String> = model
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        w,
        vec!["warning: m.yaml:2 ?/x: kind: document without kind: skipped".to_owned()]
    );
    assert_eq!(model.endpoints().len(), 2);
}
