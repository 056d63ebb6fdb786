//! Resources in the store, laid out exactly as Calico's etcd datastore keeps them, so that
//! these tools and Calico's own (calicoctl, Felix, confd, the CNI plugin) share one etcd —
//! and a `file:` or `memory:` store holds the same keys and the same bytes as an etcd would.
//! `calico apply|get|delete` use it; the allocator reads IPPools, IPReservations and Nodes
//! through it.
//!
//! # Keys
//!
//! | Objects | Key |
//! |---|---|
//! | Calico kinds, cluster-scoped | `/calico/resources/v3/projectcalico.org/<plural>/<name>` |
//! | Calico kinds, namespaced | `/calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>` |
//! | Kubernetes kinds we keep (Namespace, Pod, ...) | `/calico/calico-rs/k8s/<resource>[.<group>]/[<namespace>/]<name>` |
//!
//! `<plural>` is the lower-case plural Calico registers for the kind (`ippools`,
//! `globalnetworkpolicies`, `workloadendpoints`, `clusterinformations`, ...; see
//! [`layout::TYPES`]). Names and namespaces go into keys as they are (valid names contain no
//! `/` or `%`; should one, it is written `%2f` / `%25`, which Calico's key parser undoes).
//! A listing reads the prefix `<plural>/` or `<plural>/<namespace>/` — always with the
//! trailing `/`, so `worker-1` never matches `worker-10`. Nothing is read or written outside
//! `/calico/`, so an etcd role limited to `/calico/` is enough for every command. The
//! Kubernetes objects have no home in Calico's etcd layout (Calico reads them from the
//! Kubernetes API); they sit under a prefix of ours that no Calico component lists.
//!
//! # Values
//!
//! A value is the whole object as JSON — `kind`, `apiVersion`, `metadata`, `spec`, and
//! `status` where Calico keeps one (`Tier` and `Node` always carry `"status":{}`) — written as
//! Go's encoder writes it (envelope and metadata in Go's field order, no whitespace, integral
//! numbers without a decimal point, `<`, `>`, `&` escaped as `\u003c`, `\u003e`, `\u0026`).
//! `metadata.resourceVersion` is never stored: it is the key's mod revision, filled in on
//! every read. A create fills `metadata.uid` (a random v4 UUID) and
//! `metadata.creationTimestamp` (UTC, whole seconds, `2026-08-20T09:12:31Z`); an update is a
//! compare-and-swap on the key's mod revision and keeps both.
//!
//! # Tiered policies
//!
//! (Global/Staged) network policies are keyed by their name and carry two storage
//! artefacts: the label `projectcalico.org/tier: <tier>` and the annotation
//! `projectcalico.org/metadata: {"name":"<name>"}`. Older Calico versions keyed default-tier
//! policies `default.<name>`, with or without that annotation. On read the annotation, when
//! present, gives the name (and is removed from what is shown); without it a default-tier
//! policy's leading `default.` is dropped. `get` and `delete` find a policy under either key;
//! `apply` moves one found under a historical key to its current key in one transaction.
//!
//! # Fields we do not model
//!
//! Calico's own tools drop fields they do not know when they rewrite an object. These tools
//! do not: an update starts from the stored value and replaces only what the model knows,
//! so fields written by a newer Calico survive (see [`codec::merge_unknown`]). A stored value
//! that does not decode is reported with its key; a listing skips it (as Calico does) and
//! returns it in [`Listing::bad`].
//!
//! # Cluster initialisation
//!
//! Before a write, [`Resources::ensure_initialized`] creates `ClusterInformation default`
//! when missing (`datastoreReady: true`, a random `clusterGUID`, never a `calicoVersion`: that
//! field gates calicoctl's version check and is Calico's to set) and the built-in tiers
//! (`default`, `kube-admin`, `kube-baseline`).
//!
//! # Old layout
//!
//! Earlier versions of these tools stored resources under `resources/v3/<Kind>/...` at the
//! root of the key space. Such a file database is refused when opened (see
//! `calico_datastore::detect_legacy_layout`), never silently reinterpreted.

pub mod client;
pub mod codec;
pub mod ids;
pub mod layout;

use calico_datastore::Store;
use calico_model::resources::{Kind, Resource};

pub use client::{
    Applied, BUILTIN_TIERS, DEFAULT_ALLOW_PROFILE, Listing, ResourceError, Resources,
};
pub use codec::{DecodeError, StoredObject, decode, decode_resource};
pub use layout::{
    CALICO_RESOURCES, CALICO_ROOT, K8S_RESOURCES, KeyError, ResourceKey, ResourceType, parse_key,
};

/// The key of an object of a manifest kind (`IPPool`, `Node`, `Namespace`, ...; for
/// `NetworkPolicy`, Calico's). A kind no type knows is keyed under Calico's prefix by its
/// lower-cased plural, as Calico would.
pub fn resource_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match ResourceType::by_kind(kind) {
        Some(t) => t.key(namespace, name),
        None => match namespace {
            Some(ns) => format!(
                "{CALICO_RESOURCES}{}s/{}/{}",
                kind.to_ascii_lowercase(),
                layout::escape_segment(ns),
                layout::escape_segment(name)
            ),
            None => format!(
                "{CALICO_RESOURCES}{}s/{}",
                kind.to_ascii_lowercase(),
                layout::escape_segment(name)
            ),
        },
    }
}

/// The listing prefix of a manifest kind (and namespace, for namespaced kinds).
pub fn kind_prefix(kind: &str, namespace: Option<&str>) -> String {
    match ResourceType::by_kind(kind) {
        Some(t) => t.list_prefix(namespace),
        None => match namespace {
            Some(ns) => format!(
                "{CALICO_RESOURCES}{}s/{}/",
                kind.to_ascii_lowercase(),
                layout::escape_segment(ns)
            ),
            None => format!("{CALICO_RESOURCES}{}s/", kind.to_ascii_lowercase()),
        },
    }
}

/// The key of a resource object.
pub fn key_of(r: &Resource) -> String {
    ResourceType::of(r.kind()).key(r.namespace(), r.name())
}

/// Decodes a stored value into the typed object of a modelled kind (what the allocator
/// needs of IPPools, IPReservations and Nodes): fields our model does not know are ignored,
/// as Calico ignores them; `None` for kinds we do not model.
pub fn decode_typed(
    key: &[u8],
    value: &[u8],
    mod_revision: calico_datastore::Revision,
) -> Result<Option<Resource>, DecodeError> {
    Ok(decode(key, value, mod_revision)?.object)
}

/// Initialises the cluster ([`Resources::ensure_initialized`]) and applies every object
/// ([`Resources::apply`]): tiers first (policies need theirs), then the rest in order.
/// Returns the keys written.
pub fn apply(store: &dyn Store, objects: &[Resource]) -> Result<Vec<String>, ResourceError> {
    let r = Resources::new(store);
    r.ensure_initialized()?;
    let mut keys = Vec::with_capacity(objects.len());
    for o in tiers_first(objects) {
        r.apply(o)?;
        keys.push(key_of(o));
    }
    Ok(keys)
}

/// `objects` with the Tiers first, otherwise in order.
pub fn tiers_first(objects: &[Resource]) -> Vec<&Resource> {
    let (tiers, rest): (Vec<&Resource>, Vec<&Resource>) =
        objects.iter().partition(|o| o.kind() == Kind::Tier);
    tiers.into_iter().chain(rest).collect()
}

/// Objects of a modelled kind: one by name, or all (of a namespace, or of every namespace
/// when `namespace` is `None`). Values that do not decode are an error here; see
/// [`Resources::list`] for a listing that skips them.
pub fn get(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Resource>, ResourceError> {
    let r = Resources::new(store);
    let ty = ResourceType::of(kind);
    let objects = match name {
        Some(n) => vec![r.get(ty, namespace, n)?],
        None => {
            let l = r.list(ty, namespace)?;
            if let Some(bad) = l.bad.into_iter().next() {
                return Err(bad.into());
            }
            l.items
        }
    };
    Ok(objects.into_iter().filter_map(|o| o.object).collect())
}

/// Deletes one object of a modelled kind.
pub fn delete(
    store: &dyn Store,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ResourceError> {
    Resources::new(store)
        .delete(ResourceType::of(kind), namespace, name)
        .map(|_| ())
}

#[cfg(test)]
mod tests;
