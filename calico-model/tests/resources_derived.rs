//! Derived objects and implicit labels (see the `calico_model::derived` module docs).

use calico_model::derived::*;
use calico_model::loader::load_str;
use calico_model::resources::k8s::{Namespace, Pod};
use calico_model::resources::meta::Labels;
use calico_model::resources::values::Protocol;
use calico_model::resources::{Kind, Resource};
use sha1::{Digest, Sha1};

fn load(text: &str) -> Vec<Resource> {
    let mut set = load_str("d.yaml", text);
    assert!(set.errors.is_empty() && set.decode_failures.is_empty());
    set.apply_defaults();
    set.resources().cloned().collect()
}

fn pod(text: &str) -> Pod {
    match load(text).remove(0) {
        Resource::Pod(p) => p,
        other => panic!("not a pod: {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web-7f
  namespace: prod-ns
  labels: {app: web, projectcalico.org/namespace: spoofed}
  annotations:
    cni.projectcalico.org/containerID: c0ffee
    cni.projectcalico.org/floatingIPs: '[\"1.2.3.4\", \"2001:db8::9\"]'
    cni.projectcalico.org/allowedSourcePrefixes: '[\"10.9.0.0/16\"]'
    cni.projectcalico.org/podIPs: 10.1.1.1/32
spec:
  nodeName: node-1
  serviceAccountName: web-sa
  containers:
    - ports:
        - {name: http, containerPort: 8080}
        - {containerPort: 9000}
        - {containerPort: 53, hostPort: 5353, protocol: UDP}
  initContainers:
    - ports: [{name: init, containerPort: 7000, protocol: SCTP}]
status:
  podIPs: [{ip: 'fd00::5'}, {ip: 10.0.0.5}]
  podIP: 10.0.0.5
";

#[test]
fn pod_to_workload_endpoint() {
    let p = pod(POD);
    let wep = pod_workload_endpoint(&p, "cali").expect("a dataplane endpoint");
    assert_eq!(wep.metadata.name, "node--1-k8s-web--7f-eth0");
    assert_eq!(wep.metadata.namespace.as_deref(), Some("prod-ns"));
    // Interface name computed independently: cali + 11 hex digits of SHA-1("prod-ns.web-7f").
    let digest: String = Sha1::digest(b"prod-ns.web-7f")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(wep.spec.interface_name, format!("cali{}", &digest[..11]));
    assert_eq!(wep.spec.interface_name.len(), 15);
    assert_eq!(
        pod_workload_endpoint(&p, "tap")
            .expect("wep")
            .spec
            .interface_name,
        format!("tap{}", &digest[..11])
    );
    // status.podIPs order wins over the other sources.
    let nets: Vec<String> = wep
        .spec
        .ip_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["fd00::5/128", "10.0.0.5/32"]);
    assert_eq!(wep.spec.profiles, ["kns.prod-ns", "ksa.prod-ns.web-sa"]);
    assert_eq!(wep.spec.service_account_name, "web-sa");
    assert_eq!(wep.spec.container_id, "c0ffee");
    assert_eq!(wep.spec.node, "node-1");
    assert_eq!(wep.spec.orchestrator, "k8s");
    assert_eq!(wep.spec.endpoint, "eth0");
    let ports: Vec<(&str, Protocol, u16, u16)> = wep
        .spec
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol, p.port, p.host_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("http", Protocol::Tcp, 8080, 0),
            ("", Protocol::Udp, 53, 5353),
            ("init", Protocol::Sctp, 7000, 0),
        ]
    );
    let nats: Vec<String> = wep
        .spec
        .ip_nats
        .iter()
        .map(|n| format!("{}>{}", n.internal_ip, n.external_ip))
        .collect();
    assert_eq!(nats, ["10.0.0.5>1.2.3.4", "fd00::5>2001:db8::9"]);
    assert_eq!(
        wep.spec.allow_spoofed_source_prefixes[0].to_string(),
        "10.9.0.0/16"
    );
    // Calico's labels replace the pod's label of the same name.
    assert_eq!(
        wep.metadata.labels["projectcalico.org/namespace"],
        "prod-ns"
    );
    assert_eq!(
        wep.metadata.labels["projectcalico.org/serviceaccount"],
        "web-sa"
    );
    assert_eq!(wep.metadata.labels["app"], "web");
    // The derived endpoint passes validation.
    let yaml = Resource::WorkloadEndpoint(wep).to_yaml().expect("yaml");
    let mut set = load_str("wep.yaml", &yaml);
    set.apply_defaults();
    assert!(
        calico_model::validation::validate(&set).is_empty(),
        "{yaml}"
    );
}

#[test]
fn pod_address_sources_and_finished_pods() {
    let base = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {cni.projectcalico.org/podIPs: '10.1.1.1/32, fd00::1', cni.projectcalico.org/podIP: 10.2.2.2/32}\nspec: {nodeName: n}\n";
    let nets =
        |p: &Pod| -> Vec<String> { pod_ip_networks(p).iter().map(ToString::to_string).collect() };
    assert_eq!(nets(&pod(base)), ["10.1.1.1/32", "fd00::1/128"]);
    let only_ip = base.replace("cni.projectcalico.org/podIPs: '10.1.1.1/32, fd00::1', ", "");
    assert_eq!(nets(&pod(&only_ip)), ["10.2.2.2/32"]);
    let with_status = format!("{base}status: {{podIP: 10.3.3.3}}\n");
    assert_eq!(nets(&pod(&with_status)), ["10.3.3.3/32"]);
    let finished = format!("{base}status: {{phase: Succeeded, podIP: 10.3.3.3}}\n");
    assert!(pod_is_finished(&pod(&finished)));
    assert!(nets(&pod(&finished)).is_empty());
    let deleting = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, deletionTimestamp: '2024-01-01T00:00:00Z', annotations: {cni.projectcalico.org/podIP: ''}}\nspec: {nodeName: n}\nstatus: {podIP: 10.3.3.3}\n";
    assert!(nets(&pod(deleting)).is_empty());
    // Not dataplane endpoints.
    assert!(
        pod_workload_endpoint(
            &pod("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"),
            "cali"
        )
        .is_none()
    );
    let host =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n, hostNetwork: true}\n";
    assert!(pod_workload_endpoint(&pod(host), "cali").is_none());
}

#[test]
fn endpoint_labels_three_layers() {
    let p = pod(POD);
    let ns = Namespace {
        metadata: calico_model::resources::ObjectMeta {
            name: "prod-ns".into(),
            labels: labels(&[("team", "a"), ("app", "ns-app")]),
            ..Default::default()
        },
    };
    let sa_labels = labels(&[("role", "frontend")]);
    let l = pod_labels(&p, &namespace_labels(&ns), &sa_labels);
    let expected = labels(&[
        ("app", "web"),
        ("projectcalico.org/namespace", "prod-ns"),
        ("projectcalico.org/orchestrator", "k8s"),
        ("projectcalico.org/serviceaccount", "web-sa"),
        ("pcns.team", "a"),
        ("pcns.app", "ns-app"),
        ("pcns.kubernetes.io/metadata.name", "prod-ns"),
        ("pcns.projectcalico.org/name", "prod-ns"),
        ("pcsa.role", "frontend"),
        ("pcsa.projectcalico.org/name", "web-sa"),
    ]);
    assert_eq!(l, expected);
}

#[test]
fn derived_profiles_and_implicit_objects() {
    let resources = load(
        "\
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: x}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa1, namespace: a, labels: {k: v}}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: a}
spec: {template: {metadata: {labels: {app: d}}, spec: {serviceAccountName: sa2, containers: [{ports: [{name: http, containerPort: 80}]}]}}}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: s, namespace: c}
",
    );
    let implicit: Vec<(String, Labels)> = implicit_namespaces(&resources)
        .into_iter()
        .map(|n| (n.metadata.name, n.metadata.labels))
        .collect();
    assert_eq!(
        implicit,
        [
            (
                "b".to_owned(),
                labels(&[("kubernetes.io/metadata.name", "b")])
            ),
            (
                "c".to_owned(),
                labels(&[("kubernetes.io/metadata.name", "c")])
            ),
        ]
    );
    let profiles = derived_profiles(&resources);
    let names: Vec<&str> = profiles.iter().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kns.a",
            "kns.b",
            "kns.c",
            "ksa.a.sa1",
            "ksa.a.sa2",
            "ksa.b.default"
        ]
    );
    let kns_a = &profiles[0];
    assert_eq!(kns_a.spec.ingress.len(), 1);
    assert_eq!(kns_a.spec.egress.len(), 1);
    assert_eq!(
        kns_a.spec.labels_to_apply,
        labels(&[
            ("pcns.team", "x"),
            ("pcns.kubernetes.io/metadata.name", "a"),
            ("pcns.projectcalico.org/name", "a"),
        ])
    );
    let ksa1 = &profiles[3];
    assert!(ksa1.spec.ingress.is_empty() && ksa1.spec.egress.is_empty());
    assert_eq!(
        ksa1.spec.labels_to_apply,
        labels(&[("pcsa.k", "v"), ("pcsa.projectcalico.org/name", "sa1")])
    );
    assert_eq!(
        profiles[4].spec.labels_to_apply,
        labels(&[("pcsa.projectcalico.org/name", "sa2")])
    );
    assert_eq!(service_account_profile_name("", "x"), "ksa.default.x");
}

#[test]
fn synthetic_pods_from_controllers() {
    let resources = load(
        "\
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: data}
spec: {jobTemplate: {spec: {template: {metadata: {labels: {app: backup}}, spec: {containers: [{ports: [{name: m, containerPort: 9}]}]}}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec: {template: {metadata: {labels: {app: db}}, spec: {serviceAccountName: dbsa, nodeName: pinned}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: data}
",
    );
    let pods: Vec<Pod> = resources.iter().filter_map(synthetic_pod).collect();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].metadata.name, "backup");
    assert_eq!(pods[0].metadata.namespace.as_deref(), Some("data"));
    assert_eq!(pods[0].metadata.labels, labels(&[("app", "backup")]));
    assert_eq!(pods[0].spec.service_account_name, "default");
    assert_eq!(pods[0].metadata.owner_references[0].kind, "CronJob");
    assert_eq!(pod_endpoint_ports(&pods[0].spec)[0].name, "m");
    assert_eq!(pods[1].spec.service_account_name, "dbsa");
    assert!(
        pods[1].spec.node_name.is_empty(),
        "synthetic pods have no node"
    );
    assert!(pod_ip_networks(&pods[1]).is_empty());
    assert!(pod_workload_endpoint(&pods[1], "cali").is_none());
    assert!(
        resources
            .iter()
            .all(|r| r.kind() != Kind::Namespace || synthetic_pod(r).is_none())
    );
}
