//! Where each resource type lives in the key space: the type table (kind, plural key
//! segment, scope, the names `calico get` accepts) and key formatting and parsing.

use calico_model::resources::Kind;

/// The root of every key these tools read or write.
pub const CALICO_ROOT: &str = "/calico/";

/// The prefix of Calico's v3 resources: `<plural>/[<namespace>/]<name>` follows.
pub const CALICO_RESOURCES: &str = "/calico/resources/v3/projectcalico.org/";

/// The prefix of the Kubernetes objects these tools keep (Namespaces, Pods, workload
/// controllers, Kubernetes NetworkPolicies), which Calico keeps in the Kubernetes API
/// rather than in etcd: `<resource>[.<group>]/[<namespace>/]<name>` follows. Under
/// `/calico/`, so one etcd role covering `/calico/` covers everything, and away from every
/// prefix Calico's own components list or watch.
pub const K8S_RESOURCES: &str = "/calico/calico-rs/k8s/";

/// The annotation Calico's etcd backend stores a tiered policy's name in.
pub const POLICY_NAME_ANNOTATION: &str = "projectcalico.org/metadata";

/// The label naming a tiered policy's tier.
pub const TIER_LABEL: &str = "projectcalico.org/tier";

/// One resource type: its kind, where its objects are stored, and what `calico get` calls it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The manifest `kind`.
    pub kind: &'static str,
    /// The `apiVersion` of its objects.
    pub api_version: &'static str,
    /// The plural key segment (for Calico kinds, exactly the name Calico registers).
    pub plural: &'static str,
    /// Whether its objects live in a namespace.
    pub namespaced: bool,
    /// The modelled kind, when calico-model decodes it (else the objects are kept as JSON).
    pub model: Option<Kind>,
    /// The names `calico get|delete` accept for it, lower-case (calicoctl's, for Calico kinds).
    pub names: &'static [&'static str],
    root: &'static str,
}

const V3: &str = "projectcalico.org/v3";

macro_rules! calico {
    ($kind:literal, $plural:literal, $ns:literal, $model:expr, [$($n:literal),*]) => {
        ResourceType {
            kind: $kind,
            api_version: V3,
            plural: $plural,
            namespaced: $ns,
            model: $model,
            names: &[$($n),*],
            root: CALICO_RESOURCES,
        }
    };
}

macro_rules! k8s {
    ($kind:literal, $api:literal, $plural:literal, $ns:literal, $model:expr, [$($n:literal),*]) => {
        ResourceType {
            kind: $kind,
            api_version: $api,
            plural: $plural,
            namespaced: $ns,
            model: Some($model),
            names: &[$($n),*],
            root: K8S_RESOURCES,
        }
    };
}

/// Every resource type, Calico's first.
pub static TYPES: &[ResourceType] = &[
    calico!(
        "BGPConfiguration",
        "bgpconfigurations",
        false,
        Some(Kind::BgpConfiguration),
        [
            "bgpconfiguration",
            "bgpconfigurations",
            "bgpconfig",
            "bgpconfigs"
        ]
    ),
    calico!(
        "BGPFilter",
        "bgpfilters",
        false,
        Some(Kind::BgpFilter),
        ["bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"]
    ),
    calico!(
        "BGPPeer",
        "bgppeers",
        false,
        Some(Kind::BgpPeer),
        ["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"]
    ),
    calico!(
        "CalicoNodeStatus",
        "caliconodestatuses",
        false,
        None,
        [
            "caliconodestatus",
            "caliconodestatuses",
            "nodestatus",
            "nodestatuses"
        ]
    ),
    calico!(
        "ClusterInformation",
        "clusterinformations",
        false,
        None,
        [
            "clusterinformation",
            "clusterinformations",
            "clusterinfo",
            "clusterinfos"
        ]
    ),
    calico!(
        "FelixConfiguration",
        "felixconfigurations",
        false,
        Some(Kind::FelixConfiguration),
        [
            "felixconfiguration",
            "felixconfigurations",
            "felixconfig",
            "felixconfigs"
        ]
    ),
    calico!(
        "GlobalNetworkPolicy",
        "globalnetworkpolicies",
        false,
        Some(Kind::GlobalNetworkPolicy),
        [
            "globalnetworkpolicy",
            "globalnetworkpolicies",
            "gnp",
            "gnps"
        ]
    ),
    calico!(
        "GlobalNetworkSet",
        "globalnetworksets",
        false,
        Some(Kind::GlobalNetworkSet),
        ["globalnetworkset", "globalnetworksets", "gnetsets"]
    ),
    calico!(
        "HostEndpoint",
        "hostendpoints",
        false,
        Some(Kind::HostEndpoint),
        ["hostendpoint", "hostendpoints", "hep", "heps"]
    ),
    calico!(
        "IPAMConfiguration",
        "ipamconfigurations",
        false,
        Some(Kind::IpamConfiguration),
        [
            "ipamconfiguration",
            "ipamconfigurations",
            "ipamconfig",
            "ipamconfigs"
        ]
    ),
    calico!(
        "IPPool",
        "ippools",
        false,
        Some(Kind::IpPool),
        ["ippool", "ippools", "ipp", "ipps", "pool", "pools"]
    ),
    calico!(
        "IPReservation",
        "ipreservations",
        false,
        Some(Kind::IpReservation),
        [
            "ipreservation",
            "ipreservations",
            "reservation",
            "reservations"
        ]
    ),
    calico!(
        "KubeControllersConfiguration",
        "kubecontrollersconfigurations",
        false,
        None,
        [
            "kubecontrollersconfiguration",
            "kubecontrollersconfigurations",
            "kubecontrollersconfig",
            "kubecontrollersconfigs"
        ]
    ),
    calico!(
        "NetworkPolicy",
        "networkpolicies",
        true,
        Some(Kind::NetworkPolicy),
        [
            "networkpolicy",
            "networkpolicies",
            "policy",
            "np",
            "policies",
            "pol",
            "pols"
        ]
    ),
    calico!(
        "NetworkSet",
        "networksets",
        true,
        Some(Kind::NetworkSet),
        ["networkset", "networksets", "netsets"]
    ),
    calico!(
        "Node",
        "nodes",
        false,
        Some(Kind::Node),
        ["node", "nodes", "no", "nos"]
    ),
    calico!(
        "Profile",
        "profiles",
        false,
        Some(Kind::Profile),
        ["profile", "profiles", "pro", "pros"]
    ),
    calico!(
        "StagedGlobalNetworkPolicy",
        "stagedglobalnetworkpolicies",
        false,
        Some(Kind::StagedGlobalNetworkPolicy),
        [
            "stagedglobalnetworkpolicy",
            "stagedglobalnetworkpolicies",
            "sgnp",
            "sgnps"
        ]
    ),
    calico!(
        "StagedKubernetesNetworkPolicy",
        "stagedkubernetesnetworkpolicies",
        true,
        None,
        [
            "stagedkubernetesnetworkpolicy",
            "stagedkubernetesnetworkpolicies",
            "sknp",
            "sknps"
        ]
    ),
    calico!(
        "StagedNetworkPolicy",
        "stagednetworkpolicies",
        true,
        Some(Kind::StagedNetworkPolicy),
        [
            "stagednetworkpolicy",
            "stagednetworkpolicies",
            "stagedpolicy",
            "snp",
            "stagedpolicies",
            "spol",
            "spols"
        ]
    ),
    calico!("Tier", "tiers", false, Some(Kind::Tier), ["tier", "tiers"]),
    calico!(
        "WorkloadEndpoint",
        "workloadendpoints",
        true,
        Some(Kind::WorkloadEndpoint),
        ["workloadendpoint", "workloadendpoints", "wep", "weps"]
    ),
    calico!(
        "BlockAffinity",
        "blockaffinities",
        false,
        Some(Kind::BlockAffinity),
        ["blockaffinity", "blockaffinities"]
    ),
    k8s!(
        "Namespace",
        "v1",
        "namespaces",
        false,
        Kind::Namespace,
        ["namespace", "namespaces", "ns"]
    ),
    k8s!("Pod", "v1", "pods", true, Kind::Pod, ["pod", "pods", "po"]),
    k8s!(
        "ServiceAccount",
        "v1",
        "serviceaccounts",
        true,
        Kind::ServiceAccount,
        ["serviceaccount", "serviceaccounts", "sa"]
    ),
    k8s!(
        "ReplicationController",
        "v1",
        "replicationcontrollers",
        true,
        Kind::ReplicationController,
        ["replicationcontroller", "replicationcontrollers", "rc"]
    ),
    k8s!(
        "Deployment",
        "apps/v1",
        "deployments.apps",
        true,
        Kind::Deployment,
        ["deployment", "deployments", "deploy", "deployments.apps"]
    ),
    k8s!(
        "StatefulSet",
        "apps/v1",
        "statefulsets.apps",
        true,
        Kind::StatefulSet,
        ["statefulset", "statefulsets", "sts", "statefulsets.apps"]
    ),
    k8s!(
        "DaemonSet",
        "apps/v1",
        "daemonsets.apps",
        true,
        Kind::DaemonSet,
        ["daemonset", "daemonsets", "ds", "daemonsets.apps"]
    ),
    k8s!(
        "ReplicaSet",
        "apps/v1",
        "replicasets.apps",
        true,
        Kind::ReplicaSet,
        ["replicaset", "replicasets", "rs", "replicasets.apps"]
    ),
    k8s!(
        "Job",
        "batch/v1",
        "jobs.batch",
        true,
        Kind::Job,
        ["job", "jobs", "jobs.batch"]
    ),
    k8s!(
        "CronJob",
        "batch/v1",
        "cronjobs.batch",
        true,
        Kind::CronJob,
        ["cronjob", "cronjobs", "cj", "cronjobs.batch"]
    ),
    k8s!(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "networkpolicies.networking.k8s.io",
        true,
        Kind::KubernetesNetworkPolicy,
        [
            "networkpolicy.networking.k8s.io",
            "networkpolicies.networking.k8s.io"
        ]
    ),
    k8s!(
        "Service",
        "v1",
        "services",
        true,
        Kind::Service,
        ["service", "services", "svc"]
    ),
    k8s!(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        "endpointslices.discovery.k8s.io",
        true,
        Kind::EndpointSlice,
        [
            "endpointslice",
            "endpointslices",
            "endpointslices.discovery.k8s.io"
        ]
    ),
    k8s!(
        "Secret",
        "v1",
        "secrets",
        true,
        Kind::Secret,
        ["secret", "secrets"]
    ),
];

impl ResourceType {
    /// The type of a modelled kind.
    pub fn of(kind: Kind) -> &'static ResourceType {
        TYPES
            .iter()
            .find(|t| t.model == Some(kind))
            .unwrap_or(&TYPES[0])
    }

    /// The type of a manifest kind name (`IPPool`, `Node`, `Namespace`, ...); for
    /// `NetworkPolicy`, Calico's.
    pub fn by_kind(kind: &str) -> Option<&'static ResourceType> {
        TYPES.iter().find(|t| t.kind == kind)
    }

    /// The type a `calico get|delete` argument names (case-insensitive, as calicoctl:
    /// `ippool`, `ippools`, `wep`, `gnp`, `bgpconfig`, ...).
    pub fn by_name(name: &str) -> Option<&'static ResourceType> {
        let l = name.to_ascii_lowercase();
        TYPES.iter().find(|t| t.names.contains(&l.as_str()))
    }

    /// Whether it is a tiered policy kind (its key and stored name follow the policy-name
    /// rules, and it carries the tier label).
    pub fn is_tiered_policy(&self) -> bool {
        matches!(
            self.model,
            Some(
                Kind::NetworkPolicy
                    | Kind::GlobalNetworkPolicy
                    | Kind::StagedNetworkPolicy
                    | Kind::StagedGlobalNetworkPolicy
            )
        )
    }

    /// Whether it is one of Calico's kinds (stored under [`CALICO_RESOURCES`]).
    pub fn is_calico(&self) -> bool {
        self.root == CALICO_RESOURCES
    }

    /// The key of one object. `namespace` is ignored for cluster-scoped types and defaults to
    /// `default` for namespaced ones.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match self.scope(namespace) {
            Some(ns) => format!(
                "{}{}/{}/{}",
                self.root,
                self.plural,
                escape_segment(ns),
                escape_segment(name)
            ),
            None => format!("{}{}/{}", self.root, self.plural, escape_segment(name)),
        }
    }

    /// The prefix of a listing: every object of the type (`namespace` `None`), or of one
    /// namespace of a namespaced type. Always ends in `/`.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{}{}/{}/", self.root, self.plural, escape_segment(ns)),
            None => format!("{}{}/", self.root, self.plural),
        }
    }

    /// The namespace an object of this type is keyed under.
    pub fn scope<'a>(&self, namespace: Option<&'a str>) -> Option<&'a str> {
        self.namespaced
            .then(|| namespace.filter(|n| !n.is_empty()).unwrap_or("default"))
    }

    /// `Kind(name)` or `Kind(namespace/name)`, as Calico's errors name an object.
    pub fn ident(&self, namespace: Option<&str>, name: &str) -> String {
        match self.scope(namespace) {
            Some(ns) => format!("{}({ns}/{name})", self.kind),
            None => format!("{}({name})", self.kind),
        }
    }
}

/// A parsed resource key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKey {
    /// The type (from the plural segment).
    pub ty: &'static ResourceType,
    /// The namespace, for namespaced types.
    pub namespace: Option<String>,
    /// The name as stored in the key (for policies, possibly a historical `default.` form).
    pub name: String,
}

/// Why a key is not a resource key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not under a resource prefix.
    #[error("not under {CALICO_RESOURCES} or {K8S_RESOURCES}")]
    NotAResourceKey,
    /// The plural segment names no type.
    #[error("unknown resource type {0:?}")]
    UnknownType(String),
    /// The wrong number of segments for the type's scope, or an empty one.
    #[error("{0} is {1}, so its key needs {2}")]
    WrongShape(&'static str, &'static str, &'static str),
    /// A segment is not valid UTF-8 or holds a bad escape.
    #[error("bad segment {0:?}")]
    BadSegment(String),
}

/// Parses a resource key (`<root><plural>/[<namespace>/]<name>`).
pub fn parse_key(key: &[u8]) -> Result<ResourceKey, KeyError> {
    let s = std::str::from_utf8(key).map_err(|_| KeyError::NotAResourceKey)?;
    let (root, rest) = [CALICO_RESOURCES, K8S_RESOURCES]
        .iter()
        .find_map(|r| s.strip_prefix(r).map(|rest| (*r, rest)))
        .ok_or(KeyError::NotAResourceKey)?;
    let (plural, rest) = rest
        .split_once('/')
        .ok_or_else(|| KeyError::UnknownType(rest.to_owned()))?;
    let ty = TYPES
        .iter()
        .find(|t| t.root == root && t.plural == plural)
        .ok_or_else(|| KeyError::UnknownType(plural.to_owned()))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let shape = |ty: &'static ResourceType| {
        if ty.namespaced {
            KeyError::WrongShape(ty.kind, "namespaced", "<namespace>/<name>")
        } else {
            KeyError::WrongShape(ty.kind, "cluster-scoped", "<name> alone")
        }
    };
    match (ty.namespaced, parts.as_slice()) {
        (true, [ns, name]) if !ns.is_empty() && !name.is_empty() => Ok(ResourceKey {
            ty,
            namespace: Some(unescape_segment(ns)?),
            name: unescape_segment(name)?,
        }),
        (false, [name]) if !name.is_empty() => Ok(ResourceKey {
            ty,
            namespace: None,
            name: unescape_segment(name)?,
        }),
        _ => Err(shape(ty)),
    }
}

/// Escapes a name or namespace for a key segment: `%` as `%25` and `/` as `%2f`, the two
/// escapes Calico's key parser undoes. Valid names contain neither, so valid names go into
/// keys verbatim, exactly as Calico writes them.
pub fn escape_segment(s: &str) -> String {
    if !s.contains(['%', '/']) {
        return s.to_owned();
    }
    s.replace('%', "%25").replace('/', "%2f")
}

/// Reverses [`escape_segment`] (accepting `%2F` too); any other `%` sequence is an error.
pub fn unescape_segment(s: &str) -> Result<String, KeyError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("25") => out.push('%'),
            Some("2f" | "2F") => out.push('/'),
            _ => return Err(KeyError::BadSegment(s.to_owned())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_modelled_kind_has_one_type_and_unique_keys() {
        for k in Kind::ALL {
            let t = ResourceType::of(*k);
            assert_eq!(t.model, Some(*k));
            assert_eq!(t.kind, k.as_str());
            assert_eq!(t.api_version, k.api_version());
            assert_eq!(t.namespaced, k.is_namespaced(), "{k}");
        }
        for (i, a) in TYPES.iter().enumerate() {
            for b in &TYPES[i + 1..] {
                assert!(a.root != b.root || a.plural != b.plural, "{}", a.plural);
                for n in a.names {
                    assert!(!b.names.contains(n), "{n} names two types");
                }
            }
            // Plural segments are lower-case, as Calico registers them.
            assert_eq!(a.plural, a.plural.to_ascii_lowercase());
        }
    }

    #[test]
    fn calico_keys_are_calicos() {
        let pool = ResourceType::by_kind("IPPool").unwrap();
        assert_eq!(
            pool.key(None, "default-ipv4-ippool"),
            "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"
        );
        let wep = ResourceType::by_name("wep").unwrap();
        assert_eq!(
            wep.key(Some("shop"), "worker--1-k8s-cart--0-eth0"),
            "/calico/resources/v3/projectcalico.org/workloadendpoints/shop/worker--1-k8s-cart--0-eth0"
        );
        assert_eq!(
            wep.key(None, "x"),
            "/calico/resources/v3/projectcalico.org/workloadendpoints/default/x"
        );
        assert_eq!(
            wep.list_prefix(None),
            "/calico/resources/v3/projectcalico.org/workloadendpoints/"
        );
        assert_eq!(
            wep.list_prefix(Some("a")),
            "/calico/resources/v3/projectcalico.org/workloadendpoints/a/"
        );
        assert_eq!(
            ResourceType::by_name("NetworkPolicies.networking.k8s.io")
                .unwrap()
                .key(Some("a"), "np"),
            "/calico/calico-rs/k8s/networkpolicies.networking.k8s.io/a/np"
        );
        for (name, kind) in [
            ("gnp", "GlobalNetworkPolicy"),
            ("np", "NetworkPolicy"),
            ("hep", "HostEndpoint"),
            ("IPPools", "IPPool"),
            ("bgpconfig", "BGPConfiguration"),
            ("workloadendpoints", "WorkloadEndpoint"),
            ("clusterinfo", "ClusterInformation"),
        ] {
            assert_eq!(ResourceType::by_name(name).map(|t| t.kind), Some(kind));
        }
        assert_eq!(ResourceType::by_name("foos"), None);
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        let k = |s: &str| parse_key(s.as_bytes());
        assert_eq!(k("resources/v3/IPPool/p"), Err(KeyError::NotAResourceKey));
        assert!(matches!(
            k("/calico/resources/v3/projectcalico.org/ipamblocks/x"),
            Err(KeyError::UnknownType(_))
        ));
        assert!(matches!(
            k("/calico/resources/v3/projectcalico.org/ippools/a/b"),
            Err(KeyError::WrongShape(..))
        ));
        assert!(matches!(
            k("/calico/resources/v3/projectcalico.org/networkpolicies/a"),
            Err(KeyError::WrongShape(..))
        ));
        assert!(matches!(
            k("/calico/resources/v3/projectcalico.org/ippools/"),
            Err(KeyError::WrongShape(..))
        ));
        assert!(matches!(
            k("/calico/resources/v3/projectcalico.org/ippools/a%zz"),
            Err(KeyError::BadSegment(_))
        ));
        // Calico's parser undoes %2f and %25.
        assert_eq!(
            k("/calico/resources/v3/projectcalico.org/ippools/a%2Fb%25").map(|k| k.name),
            Ok("a/b%".to_owned())
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        // Arbitrary text, biased towards the characters that need escaping.
        prop_oneof![
            "[a-z0-9.-]{1,20}",
            "[a-z%/.2fF5-]{1,12}",
            any::<String>().prop_filter("not empty", |s| !s.is_empty()),
        ]
    }

    proptest! {
        #[test]
        fn keys_round_trip(ti in 0..TYPES.len(), ns in segment(), name in segment()) {
            let ty = &TYPES[ti];
            let key = ty.key(Some(&ns), &name);
            let parsed = parse_key(key.as_bytes()).unwrap();
            prop_assert_eq!(parsed.ty, ty);
            prop_assert_eq!(&parsed.name, &name);
            prop_assert_eq!(parsed.namespace.as_deref(), ty.namespaced.then_some(ns.as_str()));
            // A listing prefix covers its keys and only them.
            prop_assert!(key.starts_with(&ty.list_prefix(None)));
            prop_assert!(key.starts_with(&ty.list_prefix(Some(&ns))));
        }

        #[test]
        fn escapes_round_trip(s in any::<String>()) {
            let e = escape_segment(&s);
            prop_assert!(!e.contains('/'));
            prop_assert_eq!(unescape_segment(&e).unwrap(), s);
        }

        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), tail in "[a-z/%]{0,20}") {
            let _ = parse_key(&bytes);
            let _ = parse_key(format!("{CALICO_RESOURCES}{tail}").as_bytes());
        }
    }
}
