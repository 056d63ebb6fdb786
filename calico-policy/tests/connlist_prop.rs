//! Property: the connlist agrees with per-flow verdicts of `check` on random clusters
//! (workload controllers, so every workload is matched by selectors only, and literal
//! external addresses taken from the connlist's own ranges).

use std::collections::HashMap;

use calico_model::loader::load_str;
use calico_model::resources::values::Protocol;
use calico_policy::{FlowQuery, Model, PeerQuery, PortProtocol, Verdict};
use proptest::prelude::*;
use serde_json::{Value, json};

const APPS: [&str; 3] = ["x", "y", "z"];
const PORTS: [u16; 6] = [1, 53, 80, 443, 8050, 8080];

fn label_selector(app: Option<usize>) -> Value {
    match app {
        Some(a) => json!({"matchLabels": {"app": APPS[a]}}),
        None => json!({}),
    }
}

fn k8s_peer(kind: u8, app: usize, team: usize) -> Value {
    match kind % 4 {
        0 => json!({"podSelector": label_selector(Some(app))}),
        1 => json!({"namespaceSelector": {"matchLabels": {"team": (["a", "b"][team])}}}),
        2 => json!({"namespaceSelector": {}, "podSelector": label_selector(Some(app))}),
        _ => json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}),
    }
}

fn k8s_ports(choice: u8, named_ok: bool) -> Value {
    match choice % 5 {
        0 => json!([]),
        1 => json!([{"port": 80}, {"protocol": "UDP", "port": 53}]),
        2 if named_ok => json!([{"port": "http"}]),
        3 => json!([{"port": 8000, "endPort": 8100}, {"protocol": "SCTP"}]),
        _ => json!([{"protocol": "UDP"}]),
    }
}

fn calico_rule(action: u8, proto: u8, side: u8, app: usize, port: u8) -> Value {
    let action = ["Allow", "Deny", "Pass", "Log"][usize::from(action % 4)];
    let mut r = json!({"action": action});
    let proto = [None, Some("TCP"), Some("UDP")][usize::from(proto % 3)];
    let mut entity = match side % 4 {
        0 => json!({}),
        1 => json!({"selector": format!("app == '{}'", APPS[app])}),
        2 => json!({"nets": ["10.0.0.0/8"]}),
        _ => {
            json!({"notSelector": format!("app == '{}'", APPS[app]), "namespaceSelector": "all()"})
        }
    };
    if let Some(p) = proto {
        r["protocol"] = json!(p);
        let ports = match port % 4 {
            0 => None,
            1 => Some(json!([80, "8000:8100"])),
            2 => Some(json!(["http"])),
            _ => Some(json!([53, 443])),
        };
        if let Some(ports) = ports {
            entity["ports"] = ports;
        }
    }
    r["destination"] = entity;
    r
}

prop_compose! {
    fn cluster()(
        teams in prop::collection::vec(0usize..2, 2),
        workloads in prop::collection::vec((0usize..2, 0usize..3, 0u8..2, any::<bool>()), 2..5),
        knps in prop::collection::vec(
            (0usize..2, prop::option::of(0usize..3), 0u8..3,
             prop::collection::vec((prop::collection::vec((any::<u8>(), 0usize..3, 0usize..2), 0..3), any::<u8>()), 0..3),
             prop::collection::vec((prop::collection::vec((any::<u8>(), 0usize..3, 0usize..2), 0..3), any::<u8>()), 0..3)),
            0..3),
        gnps in prop::collection::vec(
            (any::<bool>(), prop::option::of(0u8..3), prop::option::of(0usize..3),
             prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), 0usize..3, any::<u8>()), 0..4),
             prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), 0usize..3, any::<u8>()), 0..4)),
            0..3),
        tier_pass in any::<bool>(),
    ) -> String {
        let mut items = Vec::new();
        for (i, t) in teams.iter().enumerate() {
            items.push(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": format!("n{i}"), "labels": {"team": (["a", "b"][*t])}}}));
        }
        for (i, (ns, app, proto, named)) in workloads.iter().enumerate() {
            let mut ports = vec![];
            if *named {
                ports.push(json!({"name": "http", "containerPort": ([80, 8080][usize::from(*proto)]),
                    "protocol": (["TCP", "UDP"][usize::from(*proto)])}));
            }
            items.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("w{i}"), "namespace": format!("n{ns}")},
                "spec": {"selector": {"matchLabels": {"app": APPS[*app]}},
                    "template": {"metadata": {"labels": {"app": APPS[*app]}},
                        "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]}}}}));
        }
        for (i, (ns, sel, types, ingress, egress)) in knps.iter().enumerate() {
            let ing: Vec<Value> = ingress.iter().map(|(peers, ports)| json!({
                "from": peers.iter().map(|(k, a, t)| k8s_peer(*k, *a, *t)).collect::<Vec<_>>(),
                "ports": k8s_ports(*ports, true)})).collect();
            let eg: Vec<Value> = egress.iter().map(|(peers, ports)| json!({
                "to": peers.iter().map(|(k, a, t)| k8s_peer(*k % 3, *a, *t)).collect::<Vec<_>>(),
                "ports": k8s_ports(*ports, !peers.is_empty())})).collect();
            let mut spec = json!({"podSelector": label_selector(*sel), "ingress": ing, "egress": eg});
            match types {
                0 => {}
                1 => spec["policyTypes"] = json!(["Ingress", "Egress"]),
                _ => spec["policyTypes"] = json!(["Egress"]),
            }
            items.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": format!("k{i}"), "namespace": format!("n{ns}")}, "spec": spec}));
        }
        items.push(json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier",
            "metadata": {"name": "t1"}, "spec": {"order": 10, "defaultAction": if tier_pass {"Pass"} else {"Deny"}}}));
        for (i, (in_t1, order, sel, ingress, egress)) in gnps.iter().enumerate() {
            let rules = |rs: &Vec<(u8, u8, u8, usize, u8)>| rs.iter()
                .map(|(a, p, s, app, port)| calico_rule(*a, *p, *s, *app, *port)).collect::<Vec<_>>();
            let name = if *in_t1 { format!("t1.g{i}") } else { format!("g{i}") };
            let mut spec = json!({"tier": if *in_t1 {"t1"} else {"default"},
                "ingress": rules(ingress), "egress": rules(egress), "types": ["Ingress", "Egress"]});
            if let Some(o) = order { spec["order"] = json!(f64::from(*o) * 500.0); }
            if let Some(a) = sel { spec["selector"] = json!(format!("app == '{}'", APPS[*a])); }
            items.push(json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                "metadata": {"name": name}, "spec": spec}));
        }
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }
}

fn query(from: &str, to: &str, p: PortProtocol, port: u16) -> FlowQuery {
    let protocol = match p {
        PortProtocol::Sctp => Protocol::Sctp,
        PortProtocol::Tcp => Protocol::Tcp,
        PortProtocol::Udp => Protocol::Udp,
    };
    FlowQuery {
        from: from.parse::<PeerQuery>().unwrap_or_else(|e| match e {}),
        to: to.parse::<PeerQuery>().unwrap_or_else(|e| match e {}),
        protocol,
        port: Some(port),
        icmp_type: None,
        icmp_code: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn connlist_agrees_with_check(json in cluster()) {
        let set = load_str("gen.json", &json);
        let model = match Model::build(&set) {
            Ok(m) => m,
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}\n{json}"))),
        };
        let list = model.connlist().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let rows: HashMap<(&str, &str), &calico_policy::ConnSet> =
            list.rows.iter().map(|r| ((r.src.as_str(), r.dst.as_str()), &r.conns)).collect();
        // Printed name ↔ check name (ns/name) of each workload.
        let names: Vec<(String, String)> = model.workloads().iter().map(|w| {
            (w.name.clone(), format!("{}/{}", w.namespace, w.members[0].name))
        }).collect();
        // (printed name, check name, is external) of every peer of each side.
        let ext = |r: &calico_policy::AddrRange| (format!("{r}[External]"), r.first().to_string(), true);
        let ws: Vec<(String, String, bool)> = names.into_iter().map(|(p, q)| (p, q, false)).collect();
        let mut srcs = ws.clone();
        srcs.extend(list.source_ranges.iter().map(ext));
        let mut dsts = ws.clone();
        dsts.extend(list.destination_ranges.iter().map(ext));
        for (sp, sq, se) in &srcs {
            for (dp, dq, de) in &dsts {
                if sp == dp || (*se && *de) {
                    continue;
                }
                for p in PortProtocol::ALL {
                    for port in PORTS {
                        let listed = rows.get(&(sp.as_str(), dp.as_str())).is_some_and(|c| c.contains(p, port));
                        let r = model.check(&query(sq, dq, p, port)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(listed, r.verdict == Verdict::Allow,
                            "{} -> {} {:?} {}: connlist {} check {}\n{}", sp, dp, p, port, listed, r, json);
                    }
                }
            }
        }
    }
}
