//! Helpers shared by the integration tests: clusters from YAML text.
#![allow(dead_code)]

use calico_model::loader::load_str;
use calico_route::Cluster;

/// A cluster from YAML manifests (panics on load problems: test input is fixed).
pub fn cluster(yaml: &str) -> Cluster {
    let set = load_str("test.yaml", yaml);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    Cluster::from_resources(set.resources())
}

/// A Node manifest.
pub fn node(name: &str, v4: &str, extra_bgp: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  bgp:\n    ipv4Address: {v4}\n{extra_bgp}"
    )
}

/// A BGPConfiguration `default` with the mesh on or off.
pub fn bgp_config(mesh: bool) -> String {
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: {mesh}\n"
    )
}

/// A BGPPeer manifest with the given spec lines (each indented by two spaces).
pub fn peer(name: &str, spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {name}\nspec:\n{body}"
    )
}

/// `n` plain nodes `node-1..node-n` at 10.0.0.1..n/24.
pub fn plain_nodes(n: usize) -> String {
    (1..=n)
        .map(|i| node(&format!("node-{i}"), &format!("10.0.0.{i}/24"), "", ""))
        .collect()
}

/// The example cluster shipped in the repository.
pub fn example_cluster() -> Cluster {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster");
    let set = calico_model::loader::load_paths(&[dir]).expect("manifests load");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    Cluster::from_resources(set.resources())
}
