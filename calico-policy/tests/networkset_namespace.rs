//! A namespaced NetworkSet carries its namespace's labels (`pcns.*`, through the namespace's
//! `kns.` profile) exactly as a pod does, so a rule's `namespaceSelector` (with or without a
//! `selector`) matches the set's nets when it matches the set's namespace.

use calico_model::loader::load_str;
use calico_model::resources::values::Protocol;
use calico_policy::{FlowQuery, Model, PeerQuery, Verdict};

/// A pod `app/web` whose egress is allowed only toward `dest` (a Calico EntityRule in flow
/// style); a NetworkSet `db` with 192.0.2.0/24 in namespace `set_ns`; `namespaces` holds
/// extra Namespace documents.
fn egress_verdict(kind: &str, dest: &str, set_ns: &str, namespaces: &str, to: &str) -> Verdict {
    let policy_ns = if kind == "NetworkPolicy" {
        "namespace: app, "
    } else {
        ""
    };
    let selector = if kind == "NetworkPolicy" {
        "all()"
    } else {
        "projectcalico.org/namespace == 'app'"
    };
    let text = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: app}}
status: {{podIP: 10.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {{name: db, namespace: {set_ns}, labels: {{role: db}}}}
spec: {{nets: [192.0.2.0/24]}}
---
apiVersion: projectcalico.org/v3
kind: {kind}
metadata: {{name: p, {policy_ns}}}
spec:
  selector: "{selector}"
  types: [Egress]
  egress:
  - action: Allow
    destination: {dest}
{namespaces}"#
    );
    let set = load_str("m.yaml", &text);
    let model = Model::build(&set).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let q = FlowQuery {
        from: PeerQuery::Name("app/web".to_owned()),
        to: to.parse::<PeerQuery>().expect("infallible"),
        protocol: Protocol::Tcp,
        port: Some(5432),
        icmp_type: None,
        icmp_code: None,
    };
    model.check(&q).expect("the flow can be checked").verdict
}

const PROD: &str = "---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
";

#[test]
fn namespace_selector_matches_the_sets_namespace() {
    // (destination, the set's namespace, namespace documents, verdict toward the set)
    let cases = [
        (
            "{namespaceSelector: env == 'prod'}",
            "prod",
            PROD,
            Verdict::Allow,
        ),
        (
            "{namespaceSelector: has(env)}",
            "prod",
            PROD,
            Verdict::Allow,
        ),
        ("{namespaceSelector: all()}", "prod", PROD, Verdict::Allow),
        (
            "{namespaceSelector: env == 'prod', selector: role == 'db'}",
            "prod",
            PROD,
            Verdict::Allow,
        ),
        (
            "{namespaceSelector: env == 'prod', selector: role == 'cache'}",
            "prod",
            PROD,
            Verdict::Deny,
        ),
        (
            "{namespaceSelector: env == 'dev'}",
            "prod",
            PROD,
            Verdict::Deny,
        ),
        (
            "{namespaceSelector: \"!has(env)\"}",
            "prod",
            PROD,
            Verdict::Deny,
        ),
        // The namespace's implicit name label, with and without a Namespace object.
        (
            "{namespaceSelector: projectcalico.org/name == 'prod'}",
            "prod",
            PROD,
            Verdict::Allow,
        ),
        (
            "{namespaceSelector: projectcalico.org/name == 'prod'}",
            "prod",
            "",
            Verdict::Allow,
        ),
        (
            "{namespaceSelector: projectcalico.org/name == 'app'}",
            "prod",
            "",
            Verdict::Deny,
        ),
        // The set lives in another namespace than the one selected.
        (
            "{namespaceSelector: env == 'prod'}",
            "staging",
            PROD,
            Verdict::Deny,
        ),
    ];
    for kind in ["NetworkPolicy", "GlobalNetworkPolicy"] {
        for (dest, set_ns, nss, want) in cases {
            let got = egress_verdict(kind, dest, set_ns, nss, "192.0.2.7");
            assert_eq!(got, want, "{kind} destination {dest}, set in {set_ns}");
            // Addresses outside the set never match.
            let outside = egress_verdict(kind, dest, set_ns, nss, "198.51.100.7");
            assert_eq!(outside, Verdict::Deny, "{kind} {dest}: outside the set");
        }
    }
}

#[test]
fn inherited_labels_are_read_with_their_prefix() {
    // A set label spelled like an inherited one is the set's own value.
    let text = "{namespaceSelector: env == 'prod', selector: pcns.env == 'mine'}";
    let ns = "---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
";
    // The set's own labels are only `role: db`, so `pcns.env` is the inherited `prod`.
    assert_eq!(
        egress_verdict("NetworkPolicy", text, "prod", ns, "192.0.2.7"),
        Verdict::Deny
    );
    let inherited = "{namespaceSelector: env == 'prod', selector: pcns.env == 'prod'}";
    assert_eq!(
        egress_verdict("NetworkPolicy", inherited, "prod", ns, "192.0.2.7"),
        Verdict::Allow
    );
}
