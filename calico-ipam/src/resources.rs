//! The key layout of projectcalico.org/v3 (and Kubernetes) resources in the store, shared by
//! `calico apply|get|delete` and the allocator, which reads IPPools, IPReservations, Nodes and
//! Namespaces from it.
//!
//! | Resource | Key |
//! |---|---|
//! | cluster-scoped | `resources/v3/<Kind>/<name>` |
//! | namespaced | `resources/v3/<Kind>/<namespace>/<name>` |
//!
//! `<Kind>` is the manifest kind, except `NetworkPolicy.networking.k8s.io` for the Kubernetes
//! NetworkPolicy (whose kind name the Calico NetworkPolicy shares);  (`IPPool`, `Node`, `Namespace`, ...); names and namespaces
//! have `%` and `/` percent-encoded. The value is the resource as JSON (`apiVersion`, `kind`,
//! `metadata`, `spec`).

use calico_datastore::{Compare, KeyValue, ReadOp, Store, StoreError, TxnOp};
use calico_model::resources::{Kind, Resource};

use crate::keys::{escape, unescape};

/// Prefix of every resource key.
pub const RESOURCE_PREFIX: &str = "resources/v3/";

/// The key of a resource.
pub fn resource_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{RESOURCE_PREFIX}{kind}/{}/{}", escape(ns), escape(name)),
        None => format!("{RESOURCE_PREFIX}{kind}/{}", escape(name)),
    }
}

/// The prefix of every resource of a kind (and namespace, for namespaced kinds).
pub fn kind_prefix(kind: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{RESOURCE_PREFIX}{kind}/{}/", escape(ns)),
        None => format!("{RESOURCE_PREFIX}{kind}/"),
    }
}

/// The key segment of a kind.
pub fn kind_segment(kind: Kind) -> &'static str {
    match kind {
        Kind::KubernetesNetworkPolicy => "NetworkPolicy.networking.k8s.io",
        k => k.as_str(),
    }
}

/// The key of a resource object.
pub fn key_of(r: &Resource) -> String {
    resource_key(kind_segment(r.kind()), r.namespace(), r.name())
}

/// Why a resource operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode.
    #[error("{key}: cannot decode: {reason}")]
    Decode {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The object does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// The kind.
        kind: String,
        /// `[namespace/]name`.
        name: String,
    },
}

fn decode_kv(kind: Kind, kv: &KeyValue) -> Result<Resource, ResourceError> {
    let bad = |reason: String| ResourceError::Decode {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_slice(&kv.value).map_err(|e| bad(e.to_string()))?;
    Resource::from_value(kind, v).map_err(|e| bad(e.to_string()))
}

/// Stores (creates or replaces) objects, in transactions of at most the store's limit.
/// Returns the keys written.
pub fn apply(store: &dyn Store, objects: &[Resource]) -> Result<Vec<String>, ResourceError> {
    let mut keys = Vec::with_capacity(objects.len());
    let mut ops = Vec::with_capacity(objects.len());
    for r in objects {
        let key = key_of(r);
        let value = serde_json::to_vec(r).map_err(|e| ResourceError::Decode {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        keys.push(key.clone());
        ops.push(TxnOp::put(key.into_bytes(), value));
    }
    for chunk in ops.chunks(store.max_txn_ops().max(1)) {
        store.txn(&[], chunk)?;
    }
    Ok(keys)
}

/// Objects of a kind: one by name, or all (of a namespace, or of every namespace when
/// `namespace` is `None` for a namespaced kind). Sorted by key.
pub fn get(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Resource>, ResourceError> {
    let seg = kind_segment(kind);
    let ns = if kind.is_namespaced() {
        namespace
    } else {
        None
    };
    match name {
        Some(n) => {
            let ns = if kind.is_namespaced() {
                Some(namespace.unwrap_or("default"))
            } else {
                None
            };
            let key = resource_key(seg, ns, n);
            match store.get(key.as_bytes())? {
                Some(kv) => Ok(vec![decode_kv(kind, &kv)?]),
                None => Err(ResourceError::NotFound {
                    kind: kind.as_str().to_owned(),
                    name: ns.map_or(n.to_owned(), |ns| format!("{ns}/{n}")),
                }),
            }
        }
        None => {
            let prefix = kind_prefix(seg, ns);
            let resp = store.read(&[ReadOp::prefix(prefix.into_bytes(), 0)])?;
            let kvs = resp
                .results
                .into_iter()
                .next()
                .and_then(|r| r.into_range())
                .map(|r| r.kvs)
                .unwrap_or_default();
            kvs.iter().map(|kv| decode_kv(kind, kv)).collect()
        }
    }
}

/// Deletes one object. Errors with `NotFound` when it does not exist.
pub fn delete(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ResourceError> {
    let ns = if kind.is_namespaced() {
        Some(namespace.unwrap_or("default"))
    } else {
        None
    };
    let key = resource_key(kind_segment(kind), ns, name);
    match store.get(key.as_bytes())? {
        Some(kv) => {
            store.txn(
                &[Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
                &[TxnOp::delete(kv.key)],
            )?;
            Ok(())
        }
        None => Err(ResourceError::NotFound {
            kind: kind.as_str().to_owned(),
            name: ns.map_or(name.to_owned(), |ns| format!("{ns}/{name}")),
        }),
    }
}

/// The (namespace, name) of a resource key under `prefix` (`kind_prefix(kind, None)`).
pub fn parse_key(prefix: &str, key: &[u8]) -> Option<(Option<String>, String)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    match rest.split_once('/') {
        Some((ns, name)) => Some((Some(unescape(ns)?), unescape(name)?)),
        None => Some((None, unescape(rest)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(resource_key("IPPool", None, "p"), "resources/v3/IPPool/p");
        assert_eq!(
            resource_key("NetworkPolicy", Some("ns"), "a/b"),
            "resources/v3/NetworkPolicy/ns/a%2Fb"
        );
        assert!(resource_key("IPPool", None, "p").starts_with(&kind_prefix("IPPool", None)));
        assert_eq!(
            parse_key("resources/v3/Pod/", b"resources/v3/Pod/ns/a%2Fb"),
            Some((Some("ns".to_owned()), "a/b".to_owned()))
        );
    }

    #[test]
    fn apply_get_delete_round_trip() {
        let store = calico_datastore::MemoryStore::new();
        let set = calico_model::loader::load_str(
            "m.yaml",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.0.0.0/16}\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\nspec: {}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: a}\nspec: {podSelector: {}}\n",
        );
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let objs: Vec<Resource> = set.resources().cloned().collect();
        assert_eq!(apply(&store, &objs).unwrap().len(), 3);
        assert_eq!(get(&store, Kind::IpPool, None, None).unwrap().len(), 1);
        assert_eq!(
            get(&store, Kind::NetworkPolicy, Some("a"), None)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            get(&store, Kind::KubernetesNetworkPolicy, None, None)
                .unwrap()
                .len(),
            1
        );
        delete(&store, Kind::IpPool, None, "p1").unwrap();
        assert!(matches!(
            delete(&store, Kind::IpPool, None, "p1"),
            Err(ResourceError::NotFound { .. })
        ));
        assert!(get(&store, Kind::IpPool, None, None).unwrap().is_empty());
    }
}
