//! The node agent's scale workload: a generated cluster of pods spread over nodes (100 per
//! node, so [`NODE`] holds 100 of them) and policies, as `nodebench` writes it to etcd and
//! `calcbench` feeds it to the agent's calculation in-process.

use calico_model::resources::Resource;
use serde_json::json;

use crate::policy_scale::PolicyScale;

/// The measured node's name.
pub const NODE: &str = "node-0";

/// The generated policies' selectors match a pod's app (1 in 200) or its tier (1 in 4);
/// with `narrow`, the tier alternative is dropped, so address sets hold about 1 in 200 pods
/// (the dense variant puts a quarter of the cluster in hundreds of sets: 25,000 addresses
/// each at 100,000 pods).
pub fn narrowed(json: &str, narrow: bool) -> String {
    if !narrow {
        return json.to_owned();
    }
    let mut s = json.to_owned();
    for t in ["frontend", "backend", "data", "infra"] {
        s = s.replace(&format!(" || tier == '{t}'"), "");
    }
    s
}

/// The generated cluster: `pods` pods over `pods / 100` nodes (100 on [`NODE`]).
pub fn cluster(pods: usize, policies: usize, narrow: bool) -> Vec<Resource> {
    let json = narrowed(
        &crate::policy_scale::policy_cluster_json(PolicyScale {
            namespaces: 100,
            pods,
            policies,
        }),
        narrow,
    );
    let set = calico_model::loader::load_str("cluster.json", &json);
    let nodes = (pods / 100).max(1);
    let mut out: Vec<Resource> = Vec::with_capacity(set.objects.len() + 1);
    let mut i = 0usize;
    for o in set.objects {
        let mut r = o.resource;
        if let Resource::Pod(p) = &mut r {
            p.spec.node_name = format!("node-{}", i % nodes);
            i += 1;
        }
        out.push(r);
    }
    if let Ok(Resource::Node(n)) = Resource::from_value(
        calico_model::resources::Kind::Node,
        json!({"apiVersion": "projectcalico.org/v3", "kind": "Node",
               "metadata": {"name": NODE}, "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}}),
    ) {
        out.push(Resource::Node(n));
    }
    out
}

/// The `i`-th update of the sustained load: even updates relabel a pod on another node
/// (`app` moves, so the pod leaves some address sets and joins others), odd ones change the
/// rules of a policy (a new variant of policy `j * 5 + 2`). `remote_pods` are the pods not
/// on [`NODE`].
pub fn update(
    i: usize,
    remote_pods: &[&Resource],
    policies: usize,
    narrow: bool,
) -> Option<Resource> {
    if i.is_multiple_of(2) && !remote_pods.is_empty() {
        let mut r = remote_pods[i / 2 % remote_pods.len()].clone();
        if let Resource::Pod(p) = &mut r {
            p.metadata
                .labels
                .insert("app".to_owned(), format!("app{}", (i * 7919) % 200));
        }
        Some(r)
    } else {
        let j = (i / 2) % policies.max(1);
        let text = narrowed(
            &crate::policy_scale::calico_policy_json(j * 5 + 2, 100, i + 1),
            narrow,
        );
        crate::policy_scale::object(&text).map(|o| o.resource)
    }
}
