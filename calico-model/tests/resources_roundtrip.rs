//! Round trips: read → write → read gives equal objects, in YAML and JSON, for every kind;
//! and the defaults `Resource::apply_defaults` fills in.

use std::path::PathBuf;

use calico_model::loader::{load_paths, load_str};
use calico_model::resources::ipam::{AllowedUse, AssignmentMode, EncapMode};
use calico_model::resources::k8s::{K8sPolicyType, K8sProtocol};
use calico_model::resources::policy::{PolicyType, StagedAction, TierAction};
use calico_model::resources::{Kind, Resource};

/// Manifests for the kinds the example cluster does not contain.
const EXTRA: &str = "\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: prod, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
  - addresses: [10.0.0.1]
    conditions: {ready: true}
    nodeName: node-1
---
apiVersion: v1
kind: Secret
metadata: {name: bgp-secrets, namespace: kube-system}
type: Opaque
data: {peer: c2VjcmV0}
stringData: {mesh: plain}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: prod}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  externalIPs: [192.0.2.1]
  externalTrafficPolicy: Local
  ipFamilies: [IPv4]
status:
  loadBalancer:
    ingress: [{ip: 198.51.100.7}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-web--0-eth0, namespace: prod, labels: {app: web}}
spec:
  orchestrator: k8s
  node: node-1
  pod: web-0
  endpoint: eth0
  containerID: abc123
  serviceAccountName: web
  ipNetworks: [10.0.0.1/32, 'fd00::1/128']
  ipNATs: [{internalIP: 10.0.0.1, externalIP: 1.2.3.4}]
  ipv4Gateway: 169.254.1.1
  profiles: [kns.prod, ksa.prod.web]
  interfaceName: cali0123456789a
  mac: 'ee:ee:ee:ee:ee:ee'
  ports: [{name: http, protocol: TCP, port: 80}, {protocol: UDP, port: 53, hostPort: 5353, hostIP: 10.0.0.9}]
  allowSpoofedSourcePrefixes: [10.9.0.0/16]
  qosControls: {ingressBandwidth: 1000000}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: staged, namespace: prod}
spec:
  stagedAction: Set
  order: 1.5
  selector: app == 'web'
  serviceAccountSelector: role == 'x'
  ingress:
    - action: Allow
      ipVersion: 6
      protocol: 58
      icmp: {type: 128, code: 0}
      source: {nets: ['fd00::/64'], notSelector: has(x), namespaceSelector: all()}
    - action: Allow
      protocol: TCP
      notProtocol: UDP
      http: {methods: [GET], paths: [{exact: /a}, {prefix: /b}]}
      source: {serviceAccounts: {names: [a], selector: x == 'y'}}
      destination: {ports: [80, '81:90', http], notPorts: [8080]}
    - action: Allow
      source: {services: {name: api}}
  egress:
    - action: Deny
      protocol: ICMP
      notICMP: {type: 8}
      metadata: {annotations: {why: because}}
  performanceHints: [AssumeNeededOnEveryNode]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: sg}
spec: {stagedAction: Delete, tier: default}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre}
spec: {preDNAT: true, applyOnForward: true, namespaceSelector: a == 'b', ingress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata: {name: default}
spec: {strictAffinity: true, autoAllocateBlocks: false, maxBlocksPerHost: 4, ipCooldownSeconds: 30}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc, namespace: prod}
spec: {replicas: 2, template: {metadata: {labels: {app: rc}}, spec: {containers: [{name: c, ports: [{containerPort: 80, name: http, hostPort: 8080, hostIP: 0.0.0.0}]}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, namespace: prod, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true}]}
spec: {template: {metadata: {labels: {app: rs}}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: full}
spec:
  node: node-1
  peerIP: '[fd00::1]:179'
  asNumber: '1.2'
  localASNumber: 64512
  keepOriginalNextHop: true
  password: {secretKeyRef: {name: s, key: k}}
  sourceAddress: None
  maxRestartTime: 120s
  numAllowedLocalASNumbers: 2
  ttlSecurity: 1
  reversePeering: Manual
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: ops}
spec:
  exportV6:
    - action: Accept
      cidr: 'fd00::/48'
      matchOperator: Equal
      source: RemotePeers
      peerType: eBGP
      communities: {values: ['1:2']}
      asPathPrefix: [65000]
      priority: 5
      operations: [{addCommunity: {value: '1:1'}}, {prependASPath: {prefix: [1, 2]}}, {setPriority: {value: 7}}]
";

fn example_and_extra() -> Vec<Resource> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster");
    let mut set = load_paths(&[dir]).expect("the manifests load");
    set.extend(load_str("extra.yaml", EXTRA));
    assert!(set.errors.is_empty());
    let failures: Vec<String> = set
        .decode_failures
        .iter()
        .map(|f| f.problem.to_string())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    set.resources().cloned().collect()
}

fn reload(name: &str, text: &str) -> Resource {
    let set = load_str(name, text);
    assert!(set.errors.is_empty(), "{:?}\n{text}", set.errors);
    let failures: Vec<String> = set
        .decode_failures
        .iter()
        .map(|f| f.problem.to_string())
        .collect();
    assert!(failures.is_empty(), "{failures:?}\n{text}");
    assert_eq!(set.objects.len(), 1, "{text}");
    set.objects[0].resource.clone()
}

#[test]
fn every_kind_round_trips_in_yaml_and_json() {
    let resources = example_and_extra();
    for kind in Kind::ALL {
        assert!(
            resources.iter().any(|r| r.kind() == *kind),
            "no sample of {kind:?}"
        );
    }
    for defaulted in [false, true] {
        for r in &resources {
            let mut r = r.clone();
            if defaulted {
                r.apply_defaults();
            }
            let yaml = r.to_yaml().expect("yaml");
            assert_eq!(reload("r.yaml", &yaml), r, "YAML:\n{yaml}");
            let json = r.to_json().expect("json");
            assert_eq!(reload("r.json", &json), r, "JSON:\n{json}");
        }
    }
}

#[test]
fn output_is_manifest_shaped() {
    let r = reload(
        "p.yaml",
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: a}\nspec: {ingress: [{action: Allow, protocol: '6', destination: {ports: ['80', '90:99', http]}}]}\n",
    );
    let v = r.to_json_value().expect("json");
    assert_eq!(v["apiVersion"], "projectcalico.org/v3");
    assert_eq!(v["kind"], "NetworkPolicy");
    // Numbers print as numbers, ranges and names as strings; unset fields are omitted.
    assert_eq!(v["spec"]["ingress"][0]["protocol"], 6);
    assert_eq!(
        v["spec"]["ingress"][0]["destination"]["ports"],
        serde_json::json!([80, "90:99", "http"])
    );
    assert!(v["spec"].get("types").is_none());
    assert!(v["spec"]["ingress"][0].get("source").is_none());
    let yaml = r.to_yaml().expect("yaml");
    assert!(
        yaml.starts_with("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"),
        "{yaml}"
    );
}

fn one(text: &str) -> Resource {
    let mut r = reload("d.yaml", text);
    r.apply_defaults();
    let again = {
        let mut x = r.clone();
        x.apply_defaults();
        x
    };
    assert_eq!(again, r, "apply_defaults is idempotent");
    r
}

#[test]
fn policy_defaults() {
    let np = |spec: &str| {
        one(&format!(
            "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec: {spec}\n"
        ))
    };
    let types = |r: Resource| match r {
        Resource::NetworkPolicy(p) => (p.spec.tier, p.spec.types),
        _ => unreachable!(),
    };
    use PolicyType::{Egress, Ingress};
    assert_eq!(types(np("{}")), ("default".to_owned(), vec![Ingress]));
    assert_eq!(types(np("{ingress: [{action: Allow}]}")).1, vec![Ingress]);
    assert_eq!(types(np("{egress: [{action: Allow}]}")).1, vec![Egress]);
    assert_eq!(
        types(np(
            "{ingress: [{action: Allow}], egress: [{action: Allow}]}"
        ))
        .1,
        vec![Ingress, Egress]
    );
    assert_eq!(
        types(np("{tier: t, types: [Egress]}")),
        ("t".to_owned(), vec![Egress])
    );
    let Resource::StagedGlobalNetworkPolicy(s) = one(
        "apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: s}\nspec: {stagedAction: Delete}\n",
    ) else {
        unreachable!()
    };
    assert!(s.spec.types.is_empty(), "a staged delete keeps types empty");
    let Resource::StagedNetworkPolicy(s) =
        one("apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: s}\n")
    else {
        unreachable!()
    };
    assert_eq!(s.spec.staged_action, Some(StagedAction::Set));
    assert_eq!(s.spec.types, vec![Ingress]);
}

#[test]
fn tier_defaults() {
    let tier = |name: &str| match one(&format!(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {name}}}\n"
    )) {
        Resource::Tier(t) => (t.spec.order, t.spec.default_action),
        _ => unreachable!(),
    };
    assert_eq!(tier("mine"), (None, Some(TierAction::Deny)));
    assert_eq!(tier("kube-admin"), (Some(1000.0), Some(TierAction::Pass)));
    assert_eq!(tier("default"), (Some(1_000_000.0), Some(TierAction::Deny)));
    assert_eq!(
        tier("kube-baseline"),
        (Some(10_000_000.0), Some(TierAction::Pass))
    );
}

#[test]
fn ip_pool_defaults() {
    let pool = |cidr: &str| match one(&format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: '{cidr}'}}\n"
    )) {
        Resource::IpPool(p) => p.spec,
        _ => unreachable!(),
    };
    let v4 = pool("10.0.0.0/16");
    assert_eq!(v4.block_size, 26);
    assert_eq!(v4.ipip_mode, Some(EncapMode::Never));
    assert_eq!(v4.vxlan_mode, Some(EncapMode::Never));
    assert_eq!(v4.node_selector, "all()");
    assert_eq!(
        v4.allowed_uses,
        vec![AllowedUse::Workload, AllowedUse::Tunnel]
    );
    assert_eq!(v4.assignment_mode, Some(AssignmentMode::Automatic));
    assert_eq!(pool("fd00::/48").block_size, 122);
}

#[test]
fn kubernetes_defaults() {
    let Resource::KubernetesNetworkPolicy(np) = one(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {ingress: [{ports: [{port: 80}]}], egress: [{}]}\n",
    ) else {
        unreachable!()
    };
    assert_eq!(
        np.spec.policy_types,
        vec![K8sPolicyType::Ingress, K8sPolicyType::Egress]
    );
    let ingress = np.spec.ingress.as_ref().expect("ingress");
    assert_eq!(ingress[0].ports[0].protocol, Some(K8sProtocol::Tcp));
    let Resource::KubernetesNetworkPolicy(np) = one(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {egress: []}\n",
    ) else {
        unreachable!()
    };
    assert_eq!(np.spec.policy_types, vec![K8sPolicyType::Ingress]);
    let Resource::Deployment(d) = one(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [{ports: [{containerPort: 80}]}]}}}\n",
    ) else {
        unreachable!()
    };
    assert_eq!(d.spec.replicas, Some(1));
    assert_eq!(d.spec.template.spec.service_account_name, "default");
    assert_eq!(
        d.spec.template.spec.containers[0].ports[0].protocol,
        Some(K8sProtocol::Tcp)
    );
    let Resource::Pod(p) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n") else {
        unreachable!()
    };
    assert_eq!(p.spec.service_account_name, "default");
    assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
}
