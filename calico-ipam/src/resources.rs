//! The key layout of projectcalico.org/v3 (and Kubernetes) resources in the store, shared by
//! `calico apply|get|delete` and the allocator, which reads IPPools, IPReservations, Nodes and
//! Namespaces from it.
//!
//! | Resource | Key |
//! |---|---|
//! | cluster-scoped | `resources/v3/<Kind>/<name>` |
//! | namespaced | `resources/v3/<Kind>/<namespace>/<name>` |
//!
//! `<Kind>` is the manifest kind (`IPPool`, `Node`, `Namespace`, ...); names and namespaces
//! have `%` and `/` percent-encoded. The value is the resource as JSON (`apiVersion`, `kind`,
//! `metadata`, `spec`).

use crate::keys::escape;

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
    }
}
