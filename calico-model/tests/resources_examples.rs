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
    let mut set = load_paths(&[examples().join("cluster")]);
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
    assert_eq!(skipped, ["Service", "ConfigMap"]);
}
