//! `diff` and `lint`.

use calico_model::loader::load_str;
use calico_policy::{Model, diff};

const BASE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: ns}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: ns}
spec:
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, namespace: ns}
spec:
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: i}]}
";

fn model(extra: &str) -> Model {
    Model::build_lenient(&load_str("m.yaml", &format!("{BASE}{extra}")))
}

#[test]
fn diff_reports_added_and_removed_on_common_ranges() {
    let a = model(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-in, namespace: ns}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: a}}}]
      ports: [{port: 80}, {port: 443}]
",
    );
    let b = model(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-in, namespace: ns}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: a}}}]
      ports: [{port: 443}, {port: 8443}]
    - from: [{ipBlock: {cidr: 10.0.0.0/8}}]
      ports: [{protocol: UDP, port: 53}]
",
    );
    let d = diff(&a, &b).unwrap();
    assert_eq!(
        d.render(),
        "+ 10.0.0.0-10.255.255.255[External] => ns/b[Deployment] : UDP 53\n\
         + ns/a[Deployment] => ns/b[Deployment] : TCP 8443\n\
         - ns/a[Deployment] => ns/b[Deployment] : TCP 80\n"
    );
    // B's range split does not show up as spurious changes of A's single range.
    assert!(!d.render().contains("0.0.0.0-255.255.255.255"));
    assert!(diff(&a, &a).unwrap().is_empty());
}

#[test]
fn lint_findings() {
    let m = model(
        "---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: nothing}
spec:
  selector: app == 'nope'
  ingress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: rules}
spec:
  selector: app == 'b'
  ingress:
    - {action: Allow, protocol: TCP, source: {selector: colour == 'red', ports: [1000]}}
    - {action: Allow, protocol: TCP, source: {selector: colour == 'red', ports: [1000]}}
    - {action: Pass}
    - {action: Deny, protocol: UDP}
    - {action: Allow, source: {selector: app == 'a' && !has(app)}}
",
    );
    let findings = m.lint();
    let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has("GlobalNetworkPolicy/nothing: spec.selector: [selects-nothing]"),
        "{lines:#?}"
    );
    assert!(
        has(
            "GlobalNetworkPolicy/rules: spec.ingress[0].source.selector: [unknown-label] selector colour == \"red\" reads label \"colour\""
        ),
        "{lines:#?}"
    );
    assert!(
        has("GlobalNetworkPolicy/rules: spec.ingress[0].source.ports: [source-ports]"),
        "{lines:#?}"
    );
    assert!(
        has(
            "GlobalNetworkPolicy/rules: spec.ingress[1]: [shadowed] never decides anything: spec.ingress[0]"
        ),
        "{lines:#?}"
    );
    assert!(
        has("GlobalNetworkPolicy/rules: spec.ingress[2].action: [pass-in-last-tier]"),
        "{lines:#?}"
    );
    assert!(
        has(
            "GlobalNetworkPolicy/rules: spec.ingress[3]: [shadowed] never decides anything: spec.ingress[2] (Pass)"
        ),
        "{lines:#?}"
    );
    assert!(
        has("GlobalNetworkPolicy/rules: spec.ingress[4].source.selector: [never-matches]"),
        "{lines:#?}"
    );
    assert!(!has(
        "GlobalNetworkPolicy/rules: spec.selector: [selects-nothing]"
    ));
    // A clean input has no finding.
    let clean = model(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-in, namespace: ns}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]
",
    );
    assert_eq!(clean.lint(), vec![]);
}

#[test]
fn lint_subset_shadowing_and_redundancy() {
    let m = model(
        "---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: subsets}
spec:
  selector: app == 'b'
  ingress:
    - {action: Allow, protocol: TCP, source: {nets: [10.0.0.0/8]}, destination: {ports: [80, 443, 8000:8080]}}
    - {action: Deny, protocol: TCP, source: {nets: [10.1.0.0/16]}, destination: {ports: [8080]}}
    - {action: Allow, protocol: TCP, source: {nets: [10.2.0.0/16, 10.3.0.0/16], selector: app == 'a'}, destination: {ports: [443]}}
    - {action: Deny, protocol: TCP, source: {nets: [10.1.0.0/16]}, destination: {ports: [9090]}}
    - {action: Deny, protocol: UDP, source: {nets: [10.1.0.0/16]}, destination: {ports: [80]}}
    - {action: Deny, protocol: TCP, source: {nets: [11.0.0.0/8]}, destination: {ports: [80]}}
    - {action: Deny, protocol: TCP, source: {nets: [10.1.0.0/16]}, destination: {notPorts: [80]}}
",
    );
    let lines: Vec<String> = m.lint().iter().map(ToString::to_string).collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has(
            "GlobalNetworkPolicy/subsets: spec.ingress[1]: [shadowed] never decides anything: spec.ingress[0] (Allow) matches a superset"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            "GlobalNetworkPolicy/subsets: spec.ingress[2]: [redundant] can be removed: spec.ingress[0] (Allow)"
        ),
        "{lines:#?}"
    );
    // Port 9090 is outside rule 0's ports, UDP is another protocol, 11/8 is outside 10/8,
    // and notPorts [80] allows ports rule 0 does not match.
    for i in 3..=6 {
        let prefix = format!("GlobalNetworkPolicy/subsets: spec.ingress[{i}]: [");
        assert!(!has(&prefix), "rule {i} reported: {lines:#?}");
    }
}

#[test]
fn program_changes_name_what_one_policy_change_affects() {
    let pods = "---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: ns, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: p2, namespace: ns, labels: {app: b}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
";
    let policy = |sel: &str| {
        format!(
            "{pods}---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: g}}
spec:
  selector: app == 'b'
  ingress: [{{action: Allow, source: {{selector: \"{sel}\"}}}}]
"
        )
    };
    let before = model(&policy("app == 'a'")).compile();
    let same = model(&policy("app == 'a'")).compile();
    assert!(before.changes(&same).is_empty());
    let after = model(&policy("app == 'b'")).compile();
    let c = before.changes(&after);
    assert_eq!(c.policies_changed.len(), 1);
    assert_eq!(c.policies_changed[0].0.to_string(), "GlobalNetworkPolicy g");
    assert_eq!(c.sets_added.len(), 1);
    assert_eq!(c.sets_removed.len(), 1);
    assert!(c.endpoints_changed.is_empty(), "{c:?}");
    // Selecting another endpoint changes that endpoint's program only.
    let wider = model(&policy("app == 'a'").replace("selector: app == 'b'", "selector: has(app)"))
        .compile();
    let c = before.changes(&wider);
    assert!(
        c.policies_changed.is_empty() && c.sets_added.is_empty(),
        "{c:?}"
    );
    assert!(!c.endpoints_changed.is_empty());
    // Exactly the endpoints labelled app=a (Deployment a and pod p1) gain the policy.
    let m = model(&policy("app == 'a'"));
    let mut newly: Vec<(calico_policy::EndpointKey, calico_policy::Direction)> = m
        .endpoints()
        .iter()
        .filter(|e| e.labels.get("app").map(String::as_str) == Some("a"))
        .map(|e| (e.key(), calico_policy::Direction::Ingress))
        .collect();
    newly.sort();
    assert_eq!(newly.len(), 2);
    assert_eq!(c.endpoints_changed, newly);
}
