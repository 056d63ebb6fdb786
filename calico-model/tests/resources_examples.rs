//! The example cluster validates cleanly; the invalid examples produce the expected problems.

use std::path::PathBuf;

use calico_model::loader::load_paths;
use calico_model::resources::Kind;
use calico_model::validation::validate;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn example_cluster_is_valid() {
    let mut set = load_paths(&[examples().join("cluster")]).expect("the manifests load");
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "load errors:\n{}", errors.join("\n"));
    set.apply_defaults();
    let problems: Vec<String> = validate(&set).iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));

    // The cluster has what the example promises.
    let count = |k: Kind| set.resources().filter(|r| r.kind() == k).count();
    assert!(count(Kind::Namespace) >= 3);
    assert!(count(Kind::Node) >= 4);
    assert_eq!(count(Kind::ServiceAccount), 4, "List items are expanded");
    assert_eq!(count(Kind::Tier), 2);
    let workloads = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
        Kind::Pod,
    ]
    .iter()
    .map(|k| count(*k))
    .sum::<usize>();
    assert!(workloads >= 12, "{workloads} workloads");
    let skipped: Vec<&str> = set.skipped.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(skipped, ["ConfigMap"]);
    assert_eq!(
        count(Kind::Service),
        1,
        "Services are read (route advertisement)"
    );
}

#[test]
fn invalid_examples_report_expected_problems() {
    let dir = examples().join("invalid");
    let mut set = *load_paths(&[&dir])
        .expect_err("one file does not parse")
        .partial;
    let prefix = format!("{}/", dir.display());
    let errors: Vec<String> = set
        .errors
        .iter()
        .map(|e| e.to_string().replace(&prefix, ""))
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("broken.yaml:1: cannot parse YAML: "),
        "{errors:?}"
    );
    set.apply_defaults();
    let lines: Vec<String> = validate(&set)
        .iter()
        .map(|p| p.to_string().replace(&prefix, ""))
        .collect();
    assert_eq!(
        lines,
        [
            "ipam.yaml:1 IPPool/pool-b: spec.ipipMode: IPIP is not supported on IPv6 pools",
            "ipam.yaml:2 IPPool/pool-c: spec.cidr: 10.244.128.0/17 overlaps IPPool \"pool-a\" (10.244.0.0/16)",
            "ipam.yaml:3 BGPPeer/tor: spec: peerIP and peerSelector cannot both be set",
            "ipam.yaml:3 BGPPeer/tor: spec.filters[0]: BGPFilter \"missing-filter\" does not exist",
            "policies.yaml:0 GlobalNetworkPolicy/security.too.many.dots: metadata.name: invalid name \"security.too.many.dots\": must be a DNS label optionally preceded by one \"label.\", at most 253 characters",
            "policies.yaml:0 GlobalNetworkPolicy/security.too.many.dots: spec.selector: global() is not allowed in this field",
            "policies.yaml:0 GlobalNetworkPolicy/security.too.many.dots: spec.ingress[0]: destination.ports[0]: numeric port 80 requires protocol TCP, UDP or SCTP; without a protocol only named ports are allowed",
            "policies.yaml:0 GlobalNetworkPolicy/security.too.many.dots: spec.ingress[1].source.notNets[0]: notNets may not be a catch-all (/0)",
            "policies.yaml:0 GlobalNetworkPolicy/security.too.many.dots: spec.tier: tier \"security\" does not exist",
            "policies.yaml:1 NetworkPolicy/prod/typo: spec.ingres: unknown field `ingres`, expected one of `tier`, `order`, `selector`, `serviceAccountSelector`, `types`, `ingress`, `egress`, `performanceHints`",
            "policies.yaml:2 NetworkPolicy/prod/bad-ports: spec.ingress[0].ports[0].endPort: endPort must be between port and 65535",
        ]
    );
}
