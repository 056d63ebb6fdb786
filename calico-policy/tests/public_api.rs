//! The typed public API: decisions carry enums (with `Display` and JSON giving Calico's
//! names), errors name their first problems and no command-line flags, and everything a
//! user needs is re-exported at the crate root.

use calico_policy::{
    Action, BuildError, CheckError, Decision, Direction, EndpointKey, EndpointKind,
    EndpointToHostAction, FailsafeDirection, Family, FindingCode, FlowQuery, Model, PeerKind,
    PeerQuery, PolicyId, PolicyKind, Protocol, TierAction, Verdict, load_str,
};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns, labels: {app: a}}
spec: {nodeName: node1}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns, labels: {app: b}}
spec: {nodeName: node1}
status: {podIP: 10.0.0.2}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 10, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.log-all}
spec:
  tier: security
  selector: all()
  types: [Ingress]
  ingress: [{action: Log}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-in, namespace: ns}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {host: node1}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [192.168.1.1]}
"#;

fn model(extra: &str) -> Model {
    let text = format!("{CLUSTER}{extra}");
    match Model::build(&load_str("m.yaml", &text)) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

fn flow(from: &str, to: &str, protocol: Protocol, port: Option<u16>) -> FlowQuery {
    FlowQuery {
        from: from.parse::<PeerQuery>().unwrap(),
        to: to.parse::<PeerQuery>().unwrap(),
        protocol,
        port,
        icmp_type: None,
        icmp_code: None,
    }
}

#[test]
fn decisions_are_typed_and_print_calicos_names() {
    let m = model("");
    for (port, verdict) in [(80, Verdict::Allow), (81, Verdict::Deny)] {
        let r = m
            .check(&flow("ns/a", "ns/b", Protocol::Tcp, Some(port)))
            .unwrap();
        assert_eq!(r.verdict, verdict);
        assert_eq!(r.family, Family::V4);
        let ingress = &r.explanation[1];
        assert_eq!(ingress.direction, Direction::Ingress);
        // The Log rule of the first tier, then the end of that tier (Pass), then the default
        // tier's decision.
        match &ingress.steps[0] {
            Decision::PolicyRule {
                kind, action, tier, ..
            } => {
                assert_eq!(*kind, PolicyKind::GlobalNetworkPolicy);
                assert_eq!(*action, Action::Log);
                assert_eq!(tier, "security");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ingress.steps[1],
            Decision::EndOfTier {
                action: TierAction::Pass,
                ..
            }
        ));
        match (&ingress.decided_by, verdict) {
            (
                Decision::PolicyRule {
                    kind,
                    action,
                    namespace,
                    policy,
                    rule,
                    ..
                },
                Verdict::Allow,
            ) => {
                assert_eq!(*kind, PolicyKind::KubernetesNetworkPolicy);
                assert_eq!(*action, Action::Allow);
                assert_eq!(namespace.as_deref(), Some("ns"));
                assert_eq!((policy.as_str(), *rule), ("b-in", 0));
                assert_eq!(
                    ingress.reason,
                    "tier default, KubernetesNetworkPolicy ns/b-in, rule 0: Allow"
                );
            }
            (Decision::EndOfTier { action, tier }, Verdict::Deny) => {
                assert_eq!(*action, TierAction::Deny);
                assert_eq!(ingress.reason, format!("end of tier {tier}: Deny"));
            }
            (other, v) => panic!("{v:?}: {other:?}"),
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["family"], "IPv4");
        assert_eq!(
            json["explanation"][1]["steps"][0]["kind"],
            "GlobalNetworkPolicy"
        );
        assert_eq!(json["explanation"][1]["steps"][0]["action"], "Log");
        assert_eq!(json["explanation"][1]["steps"][1]["action"], "Pass");
    }
    let v6 = m
        .check(&flow("2001:db8::1", "2001:db8::2", Protocol::Tcp, Some(80)))
        .unwrap();
    assert_eq!(v6.family, Family::V6);
    assert_eq!(serde_json::to_value(&v6).unwrap()["family"], "IPv6");
}

#[test]
fn endpoint_to_host_action_follows_felix_configuration() {
    let felix = |node: &str, value: &str| {
        format!(
            "---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {{name: {node}}}\nspec: {{defaultEndpointToHostAction: {value}}}\n"
        )
    };
    let cases = [
        (String::new(), EndpointToHostAction::Drop),
        (felix("default", "Accept"), EndpointToHostAction::Accept),
        (felix("default", "Return"), EndpointToHostAction::Return),
        (
            felix("default", "Accept") + &felix("node.node1", "Drop"),
            EndpointToHostAction::Drop,
        ),
    ];
    for (extra, want) in cases {
        let m = model(&extra);
        assert_eq!(m.endpoint_to_host_action("node1"), want, "{extra}");
        let r = m
            .check(&flow("ns/a", "node1-eth0", Protocol::Tcp, Some(80)))
            .unwrap();
        assert_eq!(
            r.explanation[1].decided_by,
            Decision::EndpointToHost { action: want }
        );
        assert_eq!(r.explanation[1].verdict == Verdict::Allow, want.allows());
        assert_eq!(
            r.explanation[1].reason,
            format!("workload to its own host: defaultEndpointToHostAction {want}")
        );
    }
    for (text, want) in [
        ("accept", Some(EndpointToHostAction::Accept)),
        (" RETURN ", Some(EndpointToHostAction::Return)),
        ("Drop", Some(EndpointToHostAction::Drop)),
        ("Allow", None),
        ("", None),
    ] {
        assert_eq!(EndpointToHostAction::from_config(text), want, "{text:?}");
    }
}

#[test]
fn failsafe_direction_is_typed() {
    let r = model("")
        .check(&flow("203.0.113.9", "node1-eth0", Protocol::Tcp, Some(22)))
        .unwrap();
    match &r.explanation[1].decided_by {
        Decision::Failsafe { direction, port } => {
            assert_eq!(*direction, FailsafeDirection::Inbound);
            assert_eq!(port, "tcp:22");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.explanation[1].reason,
        "failsafe inbound port tcp:22: Allow"
    );
    assert_eq!(r.from.kind, PeerKind::External);
    assert_eq!(r.to.kind, PeerKind::Endpoint(EndpointKind::HostEndpoint));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["from"]["kind"], "External");
    assert_eq!(json["to"]["kind"], "HostEndpoint");
    assert_eq!(json["explanation"][1]["decided_by"]["direction"], "inbound");
    let pod = model("")
        .check(&flow("10.0.0.1", "ns/b", Protocol::Tcp, Some(80)))
        .unwrap();
    assert_eq!(pod.from.kind, PeerKind::Endpoint(EndpointKind::Pod));
    assert_eq!(pod.from.kind.to_string(), "Pod");
}

#[test]
fn check_errors_speak_library_terms() {
    let m = model("");
    let mut icmp_code = flow("ns/a", "ns/b", Protocol::Icmp, None);
    icmp_code.icmp_code = Some(0);
    let mut icmp_on_tcp = flow("ns/a", "ns/b", Protocol::Tcp, None);
    icmp_on_tcp.icmp_type = Some(8);
    let cases = [
        (flow("ns/a", "ns/b", Protocol::Icmp, Some(80)), "port"),
        (icmp_code, "ICMP code"),
        (icmp_on_tcp, "ICMP type"),
        (
            flow("10.0.0.1", "2001:db8::1", Protocol::Tcp, None),
            "families",
        ),
        (flow("ns/a", "2001:db8::1", Protocol::Icmp, None), "IPv6"),
        (flow("ns/nobody", "ns/b", Protocol::Tcp, None), "ns/nobody"),
    ];
    for (q, word) in cases {
        let e: CheckError = m.check(&q).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(word), "{text}");
        assert!(!text.contains("--"), "a library error names a flag: {text}");
    }
}

#[test]
fn build_errors_name_the_first_problems() {
    for n in [1usize, 3, 4, 7] {
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: bad{i}}}\nspec: {{selector: \"a ==\"}}\n"
                )
            })
            .collect();
        let err = Model::build(&load_str("bad.yaml", &text)).unwrap_err();
        let BuildError::Invalid { errors, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(errors.len(), n);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{n} problem(s) in the manifests: ")),
            "{msg}"
        );
        for (i, d) in errors.iter().enumerate() {
            assert_eq!(msg.contains(&d.to_string()), i < 3, "{msg}");
        }
        assert!(
            msg.contains("bad.yaml:0 GlobalNetworkPolicy/bad0: spec.selector"),
            "{msg}"
        );
        assert_eq!(
            msg.ends_with(&format!("and {} more", n.saturating_sub(3))),
            n > 3,
            "{msg}"
        );
    }
}

#[test]
fn connlist_errors_name_the_first_problems() {
    let policies: String = (0..5)
        .map(|i| {
            format!(
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: out{i}, namespace: ns}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress: [{{to: [{{ipBlock: {{cidr: 192.0.2.0/24}}}}], ports: [{{port: http{i}}}]}}]\n"
            )
        })
        .collect();
    let err = model(&policies).connlist().unwrap_err();
    assert_eq!(err.problems.len(), 5);
    let msg = err.to_string();
    assert!(msg.starts_with("5 fatal problem(s): "), "{msg}");
    for (i, p) in err.problems.iter().enumerate() {
        assert_eq!(msg.contains(&p.to_string()), i < 3, "{msg}");
    }
    assert!(msg.contains("spec.egress"), "{msg}");
    assert!(msg.ends_with("; and 2 more"), "{msg}");
}

#[test]
fn direction_accessors_match_the_policy_types() {
    let m = model("");
    for p in m.policies() {
        let name = p.id.to_string();
        let ingress_only = name.contains("log-all") || name.contains("b-in");
        assert!(p.applies_in(Direction::Ingress), "{name}");
        assert_eq!(p.applies_in(Direction::Egress), !ingress_only, "{name}");
    }
    let program = m.compile();
    for e in m.endpoints() {
        for dir in Direction::ALL {
            let p = program.endpoint_program(&e.key(), dir);
            assert!(p.is_some(), "{} {dir}", e.key());
            // Every policy an endpoint program runs applies to the endpoint, in order.
            let run: Vec<&PolicyId> = p
                .iter()
                .flat_map(|p| &p.tiers)
                .flat_map(|t| &t.policies)
                .collect();
            let applying: Vec<&PolicyId> = m
                .applying_policies(&e.key(), dir)
                .into_iter()
                .map(|p| &p.id)
                .collect();
            assert_eq!(run, applying, "{} {dir}", e.key());
        }
    }
    let gone = EndpointKey {
        kind: EndpointKind::Pod,
        namespace: Some("nowhere".into()),
        name: "nobody".into(),
    };
    assert!(program.endpoint_program(&gone, Direction::Egress).is_none());
    assert!(m.endpoint(&gone).is_none());
}

#[test]
fn lint_findings_carry_a_typed_code() {
    let extra = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: nobody}\nspec:\n  selector: app == 'nobody'\n  ingress:\n    - {action: Allow, protocol: TCP}\n    - {action: Allow, protocol: TCP, destination: {ports: [80]}}\n    - {action: Deny}\n    - {action: Deny}\n";
    let findings = model(extra).lint();
    let of = |code: FindingCode| {
        findings
            .iter()
            .filter(|f| f.code == code && f.problem.name == "nobody")
            .collect::<Vec<_>>()
    };
    let nothing = of(FindingCode::SelectsNothing);
    assert_eq!(nothing.len(), 1, "{findings:?}");
    assert!(
        nothing[0].to_string().contains("[selects-nothing] "),
        "{}",
        nothing[0]
    );
    let redundant = of(FindingCode::Redundant);
    assert_eq!(redundant.len(), 1, "{findings:?}");
    assert_eq!(redundant[0].problem.field_path, "spec.ingress[1]");
    // An identical catch-all earlier in the policy: the later rule never decides.
    let shadowed = of(FindingCode::Shadowed);
    assert_eq!(shadowed.len(), 1, "{findings:?}");
    assert_eq!(shadowed[0].problem.field_path, "spec.ingress[3]");
    assert_eq!(FindingCode::PassInLastTier.to_string(), "pass-in-last-tier");
}
