//! Property: the compiled programs (address sets, IR rules), run by the IR interpreter, agree
//! with the direct interpreter of the policies (`Model::check`) for flows between pods with
//! unique addresses and external addresses.

use std::net::IpAddr;

use calico_model::loader::load_str;
use calico_model::resources::values::Protocol;
use calico_policy::{Direction, FlowQuery, Model, Packet, PeerQuery, Verdict};
use proptest::prelude::*;
use serde_json::{Value, json};

const APPS: [&str; 3] = ["x", "y", "z"];
const EXTERNAL: [&str; 4] = ["10.200.0.1", "192.0.2.5", "8.8.8.8", "10.1.2.3"];

fn selector(kind: u8, app: usize) -> Value {
    match kind % 6 {
        0 => json!({}),
        1 => json!({"selector": format!("app == '{}'", APPS[app])}),
        2 => json!({"nets": ["10.0.0.0/8"], "notNets": ["10.1.0.0/16"]}),
        3 => json!({"notSelector": format!("app == '{}'", APPS[app])}),
        4 => json!({"namespaceSelector": "team == 'a'", "selector": "has(app)"}),
        _ => json!({"selector": "feed == 'bad'"}),
    }
}

fn rule(action: u8, proto: u8, src: u8, dst: u8, app: usize, port: u8) -> Value {
    let action = ["Allow", "Deny", "Pass", "Log"][usize::from(action % 4)];
    let mut r = json!({"action": action, "source": selector(src, app), "destination": selector(dst, (app + 1) % 3)});
    match proto % 5 {
        0 => {}
        1 | 2 => {
            r["protocol"] = json!(if proto % 5 == 1 { "TCP" } else { "UDP" });
            match port % 4 {
                0 => {}
                1 => r["destination"]["ports"] = json!([80, "8000:8100"]),
                2 => r["destination"]["ports"] = json!(["http", 443]),
                _ => r["destination"]["notPorts"] = json!([53, "http"]),
            }
        }
        3 => {
            r["protocol"] = json!("ICMP");
            if port % 2 == 0 {
                r["notICMP"] = json!({"type": 8, "code": 0});
            } else {
                r["icmp"] = json!({"type": 8});
            }
        }
        _ => r["notProtocol"] = json!("TCP"),
    }
    r
}

prop_compose! {
    fn cluster()(
        pods in prop::collection::vec((0usize..2, 0usize..3, any::<bool>()), 2..6),
        policies in prop::collection::vec(
            (0u8..3, prop::option::of(0u8..4), prop::option::of(0usize..3),
             prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), 0usize..3, any::<u8>()), 0..4),
             prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), 0usize..3, any::<u8>()), 0..4)),
            0..4),
        knp in prop::option::of((0usize..3, any::<u8>())),
        tier_pass in any::<bool>(),
    ) -> String {
        let mut items = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n0", "labels": {"team": "a"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1", "labels": {"team": "b"}}}),
            json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                "metadata": {"name": "feed", "labels": {"feed": "bad"}}, "spec": {"nets": ["192.0.2.0/24", "10.0.0.3/32"]}}),
            json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "t1"},
                "spec": {"order": 10, "defaultAction": if tier_pass {"Pass"} else {"Deny"}}}),
        ];
        for (i, (ns, app, port80)) in pods.iter().enumerate() {
            items.push(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("p{i}"), "namespace": format!("n{ns}"), "labels": {"app": APPS[*app]}},
                "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": if *port80 {80} else {8080}}]}]},
                "status": {"podIP": format!("10.0.0.{}", i + 1)}}));
        }
        for (i, (kind, order, sel, ingress, egress)) in policies.iter().enumerate() {
            let rules = |rs: &Vec<(u8, u8, u8, u8, usize, u8)>| rs.iter()
                .map(|(a, p, s, d, app, port)| rule(*a, *p, *s, *d, *app, *port)).collect::<Vec<_>>();
            let mut spec = json!({"ingress": rules(ingress), "egress": rules(egress), "types": ["Ingress", "Egress"]});
            if let Some(o) = order { spec["order"] = json!(f64::from(*o) * 400.0); }
            if let Some(a) = sel { spec["selector"] = json!(format!("app == '{}'", APPS[*a])); }
            let (kind, name, meta) = match kind {
                0 => ("GlobalNetworkPolicy", format!("g{i}"), json!({"name": format!("g{i}")})),
                1 => {
                    spec["tier"] = json!("t1");
                    ("GlobalNetworkPolicy", format!("t1.g{i}"), json!({"name": format!("t1.g{i}")}))
                }
                _ => ("NetworkPolicy", format!("np{i}"), json!({"name": format!("np{i}"), "namespace": "n0"})),
            };
            let _ = name;
            items.push(json!({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}));
        }
        if let Some((app, ports)) = knp {
            let port = match ports % 3 { 0 => json!([]), 1 => json!([{"port": "http"}]), _ => json!([{"port": 80}, {"protocol": "UDP"}]) };
            items.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "k", "namespace": "n0"},
                "spec": {"podSelector": {"matchLabels": {"app": APPS[app]}},
                    "ingress": [{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "8.0.0.0/8"}}], "ports": port}]}}));
        }
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }
}

type Point = (Protocol, Option<u16>, Option<u8>, Option<u8>);

fn packets() -> Vec<Point> {
    let mut v = Vec::new();
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        for port in [53, 80, 443, 8050, 8080] {
            v.push((p, Some(port), None, None));
        }
    }
    for (t, c) in [(8, 0), (8, 1), (0, 0), (3, 1)] {
        v.push((Protocol::Icmp, None, Some(t), Some(c)));
    }
    v.push((Protocol::Number(47), None, None, None));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn compiled_programs_agree_with_the_interpreter(json in cluster()) {
        let model = Model::build(&load_str("gen.json", &json))
            .map_err(|e| TestCaseError::fail(format!("{e:?}\n{json}")))?;
        let program = model.compile();
        let mut addrs: Vec<IpAddr> = model.endpoints().iter().flat_map(|e| e.addrs.clone()).collect();
        addrs.extend(EXTERNAL.iter().map(|a| a.parse::<IpAddr>().expect("ip")));
        for &src in &addrs {
            for &dst in &addrs {
                if src == dst {
                    continue;
                }
                for (protocol, port, icmp_type, icmp_code) in packets() {
                    let q = FlowQuery {
                        from: PeerQuery::Ip(src),
                        to: PeerQuery::Ip(dst),
                        protocol, port, icmp_type, icmp_code,
                    };
                    let checked = model.check(&q).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let packet = Packet { protocol: protocol.number(), port, icmp_type, icmp_code };
                    let eg = model.endpoint_with_addr(src)
                        .is_none_or(|e| program.evaluate(&e.key(), Direction::Egress, src, dst, &packet));
                    let ing = model.endpoint_with_addr(dst)
                        .is_none_or(|e| program.evaluate(&e.key(), Direction::Ingress, src, dst, &packet));
                    prop_assert_eq!(checked.verdict == Verdict::Allow, eg && ing,
                        "{} -> {} {:?}: check {}\n{}", src, dst, packet, checked, json);
                }
            }
        }
    }
}
