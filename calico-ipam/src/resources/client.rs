//! Typed create/apply/get/list/delete of resources on a [`Store`], with Calico's wire
//! semantics: one key per object, creates guarded by "absent", updates and deletes by a
//! compare-and-swap on the key's mod revision.

use std::time::Duration;

use calico_datastore::{Compare, KeyValue, Revision, Store, StoreError, TxnOp};
use calico_model::resources::{Kind, Resource};
use serde_json::{Map, Value, json};

use super::codec::{
    self, DecodeError, StoredObject, merge_unknown, object_field, set_policy_storage_meta, tier_of,
};
use super::ids;
use super::layout::ResourceType;

/// The profile Calico synthesises on every read and never stores.
pub const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";

/// The built-in tiers: name, default action, order.
pub const BUILTIN_TIERS: &[(&str, &str, u64)] = &[
    ("default", "Deny", 1_000_000),
    ("kube-admin", "Pass", 1_000),
    ("kube-baseline", "Pass", 10_000_000),
];

/// How many times an update that lost a race is retried (as calicoctl does).
const ATTEMPTS: usize = 5;

/// Why a resource operation failed. The messages of the Calico conditions are Calico's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The object does not exist.
    #[error("resource does not exist: {ident} with error: <nil>")]
    NotFound {
        /// `Kind(name)` or `Kind(namespace/name)`.
        ident: String,
    },
    /// The object exists (a create).
    #[error("resource already exists: {ident} with error: <nil>")]
    AlreadyExists {
        /// `Kind(name)` or `Kind(namespace/name)`.
        ident: String,
    },
    /// The object changed since the given revision, or kept changing while we retried.
    #[error("update conflict: {ident}")]
    UpdateConflict {
        /// `Kind(name)` or `Kind(namespace/name)`.
        ident: String,
    },
    /// The operation is not allowed on this object.
    #[error("operation {operation} is not supported on {ident}: {reason}")]
    NotSupported {
        /// The operation (`create or apply`, `delete`).
        operation: &'static str,
        /// The object.
        ident: String,
        /// Why.
        reason: String,
    },
    /// The object could not be encoded.
    #[error("{ident}: cannot encode: {reason}")]
    Encode {
        /// The object.
        ident: String,
        /// What failed.
        reason: String,
    },
}

/// What [`Resources::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was updated.
    Updated,
}

/// The objects of one listing, read at one revision.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The store revision of the read.
    pub revision: Revision,
    /// The objects, in key order.
    pub items: Vec<StoredObject>,
    /// Stored values that could not be decoded (skipped, as Calico skips them).
    pub bad: Vec<DecodeError>,
}

/// Resource operations on a store.
pub struct Resources<'a> {
    store: &'a dyn Store,
    now: fn() -> i64,
    random: fn() -> u128,
    pause: Duration,
}

impl<'a> Resources<'a> {
    /// Operations on `store` with the system clock and random identifiers.
    pub fn new(store: &'a dyn Store) -> Resources<'a> {
        Resources {
            store,
            now: ids::unix_now,
            random: ids::random_u128,
            pause: Duration::from_millis(100),
        }
    }

    /// Uses `now` (seconds since the Unix epoch) for creation times.
    pub fn with_clock(mut self, now: fn() -> i64) -> Self {
        self.now = now;
        self
    }

    /// Uses `random` for UIDs and the cluster GUID.
    pub fn with_random(mut self, random: fn() -> u128) -> Self {
        self.random = random;
        self
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store
    }

    /// One object by name. For tiered policies the historical key of a default-tier policy
    /// (`default.<name>`) is found too.
    pub fn get(
        &self,
        ty: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, ResourceError> {
        if ty.kind == "Profile" && name == DEFAULT_ALLOW_PROFILE {
            return Ok(default_allow_profile());
        }
        self.find(ty, namespace, name)?
            .map(|(_, o)| o)
            .ok_or_else(|| ResourceError::NotFound {
                ident: ty.ident(namespace, name),
            })
    }

    /// Finds an object: its stored key–value and decoded object.
    fn find(
        &self,
        ty: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<(KeyValue, StoredObject)>, ResourceError> {
        let key = ty.key(namespace, name);
        let mut keys = vec![key];
        if ty.is_tiered_policy() && !name.starts_with("default.") {
            keys.push(ty.key(namespace, &format!("default.{name}")));
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let (_, found) = self.store.get_many(&refs)?;
        for kv in found.into_iter().flatten() {
            let o = codec::decode(&kv.key, &kv.value, kv.mod_revision)?;
            // A historical key holds this object only if it reads back under this name.
            if o.name() == name {
                return Ok(Some((kv, o)));
            }
        }
        Ok(None)
    }

    /// Every object of a type, or of one namespace of a namespaced type. Values that do not
    /// decode are returned in [`Listing::bad`], not as an error. A policy stored under both
    /// its current and a historical key is listed once (the current key's).
    pub fn list(
        &self,
        ty: &'static ResourceType,
        namespace: Option<&str>,
    ) -> Result<Listing, ResourceError> {
        let prefix = ty.list_prefix(namespace);
        let resp = self.store.range(
            prefix.as_bytes(),
            calico_datastore::prefix_end(prefix.as_bytes()).as_deref(),
            0,
        )?;
        let mut listing = Listing {
            revision: resp.revision,
            ..Listing::default()
        };
        if ty.kind == "Profile" {
            listing.items.push(default_allow_profile());
        }
        for kv in resp.kvs {
            match codec::decode(&kv.key, &kv.value, kv.mod_revision) {
                Ok(o) => listing.items.push(o),
                Err(e) => listing.bad.push(e),
            }
        }
        if ty.is_tiered_policy() {
            // Keep the object whose key is its name when a historical key duplicates it.
            let current = |o: &StoredObject| o.key == ty.key(o.namespace(), o.name());
            let mut seen = std::collections::HashSet::new();
            for o in listing.items.iter().filter(|o| current(o)) {
                seen.insert((o.namespace().map(str::to_owned), o.name().to_owned()));
            }
            listing.items.retain(|o| {
                current(o)
                    || !seen.contains(&(o.namespace().map(str::to_owned), o.name().to_owned()))
            });
        }
        Ok(listing)
    }

    /// Creates or updates an object (calicoctl's apply): a create guarded by "absent"; when
    /// the object exists, an update that keeps its stored metadata (uid, creation time, ...)
    /// but takes labels, annotations and spec from `object`, keeps every stored field our
    /// model does not know, and is a compare-and-swap on the key's revision — retried up to
    /// five times when it loses a race, unless `object` names the revision it expects
    /// (`metadata.resourceVersion`), which must then be current. A default-tier policy found
    /// under its historical `default.<name>` key moves to the key `<name>` in the same
    /// transaction.
    pub fn apply(&self, object: &Resource) -> Result<Applied, ResourceError> {
        let ty = ResourceType::of(object.kind());
        let name = object.name().to_owned();
        let namespace = object.namespace().map(str::to_owned);
        let ns = namespace.as_deref();
        let ident = ty.ident(ns, &name);
        if ty.kind == "Profile" && name == DEFAULT_ALLOW_PROFILE {
            return Err(ResourceError::NotSupported {
                operation: "create or apply",
                ident,
                reason: "the default-allow profile is built in".into(),
            });
        }
        check_identity(ty, object, &ident, "create or apply")?;
        self.check_tier(object)?;
        let desired = self.desired_value(ty, object, &ident)?;
        let key = ty.key(ns, &name);
        let expected = object.metadata().resource_version.clone();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(self.pause * attempt as u32);
            }
            match self.find(ty, ns, &name)? {
                None => {
                    // As calicoctl: a create ignores the revision the input names.
                    let value = self.created_value(ty, desired.clone());
                    match self.store.txn(
                        &[Compare::absent(key.as_bytes())],
                        &[TxnOp::put(key.as_bytes(), codec::encode(&value))],
                    ) {
                        Ok(_) => return Ok(Applied::Created),
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some((kv, existing)) => {
                    if let Some(rv) = &expected
                        && *rv != kv.mod_revision.to_string()
                    {
                        return Err(ResourceError::UpdateConflict { ident });
                    }
                    let mut value = updated_value(ty, &existing, desired.clone(), &ident)?;
                    self.fill_identity(&mut value);
                    let bytes = codec::encode(&value);
                    let result = if kv.key == key.as_bytes() {
                        self.store.txn(
                            &[Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
                            &[TxnOp::put(kv.key.clone(), bytes)],
                        )
                    } else {
                        self.store.txn(
                            &[
                                Compare::mod_revision(kv.key.clone(), kv.mod_revision),
                                Compare::absent(key.as_bytes()),
                            ],
                            &[
                                TxnOp::put(key.as_bytes(), bytes),
                                TxnOp::delete(kv.key.clone()),
                            ],
                        )
                    };
                    match result {
                        Ok(_) => return Ok(Applied::Updated),
                        Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
                        Err(StoreError::Conflict { .. }) => {
                            return Err(ResourceError::UpdateConflict { ident });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(ResourceError::UpdateConflict { ident })
    }

    /// Creates an object; [`ResourceError::AlreadyExists`] when it exists.
    pub fn create(&self, object: &Resource) -> Result<(), ResourceError> {
        let ty = ResourceType::of(object.kind());
        let ns = object.namespace();
        let ident = ty.ident(ns, object.name());
        if self.find(ty, ns, object.name())?.is_some()
            || (ty.kind == "Profile" && object.name() == DEFAULT_ALLOW_PROFILE)
        {
            return Err(ResourceError::AlreadyExists { ident });
        }
        check_identity(ty, object, &ident, "create")?;
        self.check_tier(object)?;
        let desired = self.desired_value(ty, object, &ident)?;
        let value = self.created_value(ty, desired);
        let key = ty.key(ns, object.name());
        match self.store.txn(
            &[Compare::absent(key.as_bytes())],
            &[TxnOp::put(key.as_bytes(), codec::encode(&value))],
        ) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(ResourceError::AlreadyExists { ident }),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one object (compare-and-swap on its revision, retried when it changes
    /// meanwhile). Built-in tiers, tiers that still hold policies, the default-allow profile
    /// and ClusterInformation cannot be deleted.
    pub fn delete(
        &self,
        ty: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, ResourceError> {
        let ident = ty.ident(namespace, name);
        let refuse = |reason: &str| ResourceError::NotSupported {
            operation: "delete",
            ident: ident.clone(),
            reason: reason.to_owned(),
        };
        if ty.kind == "ClusterInformation" {
            return Err(refuse("resource is readonly"));
        }
        if ty.kind == "Profile" && name == DEFAULT_ALLOW_PROFILE {
            return Err(refuse("the default-allow profile is built in"));
        }
        if ty.kind == "Tier" {
            if BUILTIN_TIERS.iter().any(|(t, _, _)| *t == name) {
                return Err(refuse("built-in tiers cannot be deleted"));
            }
            if self.tier_in_use(name)? {
                return Err(refuse("the tier still holds policies"));
            }
        }
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(self.pause * attempt as u32);
            }
            let Some((kv, o)) = self.find(ty, namespace, name)? else {
                return Err(ResourceError::NotFound { ident });
            };
            match self.store.txn(
                &[Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
                &[TxnOp::delete(kv.key.clone())],
            ) {
                Ok(_) => return Ok(o),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ResourceError::UpdateConflict { ident })
    }

    fn tier_in_use(&self, tier: &str) -> Result<bool, ResourceError> {
        for kind in [
            Kind::NetworkPolicy,
            Kind::GlobalNetworkPolicy,
            Kind::StagedNetworkPolicy,
            Kind::StagedGlobalNetworkPolicy,
        ] {
            let l = self.list(ResourceType::of(kind), None)?;
            if l.items.iter().any(|o| tier_of(&o.value) == tier) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Makes the datastore ready for Calico's components, as Calico's clients do before
    /// their first write: creates `ClusterInformation default` when missing (a random
    /// cluster GUID, `datastoreReady: true`, no `calicoVersion`, so calicoctl's version
    /// check is not triggered by us), fills in a missing GUID or ready flag (an explicit
    /// `false` is kept), and creates the built-in tiers that are missing.
    pub fn ensure_initialized(&self) -> Result<(), ResourceError> {
        let ci = ResourceType::by_kind("ClusterInformation").unwrap_or(&super::layout::TYPES[0]);
        let key = ci.key(None, "default");
        let mut done = false;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(self.pause * attempt as u32);
            }
            let result = match self.store.get(key.as_bytes())? {
                None => {
                    let spec = json!({
                        "clusterGUID": ids::cluster_guid((self.random)()),
                        "datastoreReady": true,
                    });
                    let value = self.fresh(ci, "default", spec);
                    self.store.txn(
                        &[Compare::absent(key.as_bytes())],
                        &[TxnOp::put(key.as_bytes(), codec::encode(&value))],
                    )
                }
                Some(kv) => {
                    let existing = codec::decode(&kv.key, &kv.value, kv.mod_revision)?;
                    let mut value = existing.raw.clone();
                    let spec = object_field(&mut value, "spec");
                    let mut changed = false;
                    if !matches!(spec.get("clusterGUID"), Some(Value::String(s)) if !s.is_empty()) {
                        spec.insert(
                            "clusterGUID".into(),
                            Value::String(ids::cluster_guid((self.random)())),
                        );
                        changed = true;
                    }
                    if !matches!(spec.get("datastoreReady"), Some(Value::Bool(_))) {
                        spec.insert("datastoreReady".into(), Value::Bool(true));
                        changed = true;
                    }
                    if !changed {
                        done = true;
                        break;
                    }
                    self.store.txn(
                        &[Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
                        &[TxnOp::put(kv.key, codec::encode(&value))],
                    )
                }
            };
            match result {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !done {
            return Err(ResourceError::UpdateConflict {
                ident: ci.ident(None, "default"),
            });
        }
        let tier = ResourceType::of(Kind::Tier);
        let keys: Vec<String> = BUILTIN_TIERS
            .iter()
            .map(|(n, _, _)| tier.key(None, n))
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let (_, found) = self.store.get_many(&refs)?;
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for ((name, action, order), (key, kv)) in BUILTIN_TIERS.iter().zip(keys.iter().zip(found)) {
            if kv.is_none() {
                let mut value =
                    self.fresh(tier, name, json!({"order": order, "defaultAction": action}));
                value.insert("status".into(), json!({}));
                compares.push(Compare::absent(key.as_bytes()));
                ops.push(TxnOp::put(key.as_bytes(), codec::encode(&value)));
            }
        }
        if !ops.is_empty() {
            match self.store.txn(&compares, &ops) {
                // Someone else created them meanwhile: fine.
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A new object's value with fresh metadata.
    fn fresh(&self, ty: &ResourceType, name: &str, spec: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), Value::String(ty.kind.into()));
        m.insert("apiVersion".into(), Value::String(ty.api_version.into()));
        m.insert(
            "metadata".into(),
            json!({
                "name": name,
                "uid": ids::uuid_v4((self.random)()),
                "creationTimestamp": ids::rfc3339((self.now)()),
            }),
        );
        m.insert("spec".into(), spec);
        m
    }

    /// The value an object is stored as, before create- or update-specific metadata:
    /// `kind`, `apiVersion`, metadata reduced to name, namespace, labels and annotations
    /// (and owner references for Kubernetes kinds), the kind's defaults, and for tiered
    /// policies the tier label and name annotation.
    fn desired_value(
        &self,
        ty: &ResourceType,
        object: &Resource,
        ident: &str,
    ) -> Result<Map<String, Value>, ResourceError> {
        let mut object = object.clone();
        object.apply_defaults();
        let mut v = match object.to_json_value() {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(ResourceError::Encode {
                    ident: ident.to_owned(),
                    reason: "not an object".into(),
                });
            }
            Err(e) => {
                return Err(ResourceError::Encode {
                    ident: ident.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let meta = object_field(&mut v, "metadata");
        let keep: &[&str] = if ty.is_calico() {
            &["name", "namespace", "labels", "annotations"]
        } else {
            &[
                "name",
                "namespace",
                "labels",
                "annotations",
                "ownerReferences",
            ]
        };
        meta.retain(|k, _| keep.contains(&k.as_str()));
        if !ty.namespaced {
            meta.remove("namespace");
        }
        let name = object.name().to_owned();
        match ty.kind {
            _ if ty.is_tiered_policy() => set_policy_storage_meta(&mut v, &name),
            "Tier" => {
                let spec = object_field(&mut v, "spec");
                spec.entry("order").or_insert(json!(1_000_000));
                spec.entry("defaultAction").or_insert(json!("Deny"));
            }
            "FelixConfiguration" => {
                let spec = object_field(&mut v, "spec");
                spec.entry("floatingIPs").or_insert(json!("Disabled"));
                spec.entry("bpfConnectTimeLoadBalancing")
                    .or_insert(json!("TCP"));
                spec.entry("bpfHostNetworkedNATWithoutCTLB")
                    .or_insert(json!("Enabled"));
                spec.entry("bpfLogLevel").or_insert(json!(""));
            }
            "WorkloadEndpoint" => {
                let ns = object.namespace().unwrap_or("default").to_owned();
                let orchestrator = v
                    .get("spec")
                    .and_then(|s| s.get("orchestrator"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let labels = object_field(object_field(&mut v, "metadata"), "labels");
                labels.insert("projectcalico.org/namespace".into(), Value::String(ns));
                if !orchestrator.is_empty() {
                    labels.insert(
                        "projectcalico.org/orchestrator".into(),
                        Value::String(orchestrator),
                    );
                }
            }
            _ => {}
        }
        if matches!(ty.kind, "Tier" | "Node") {
            v.entry("status").or_insert(json!({}));
        }
        Ok(v)
    }

    /// Fills a missing (or null) uid or creation time of an object being rewritten: a
    /// stored object always carries both.
    fn fill_identity(&self, v: &mut Map<String, Value>) {
        let meta = object_field(v, "metadata");
        if !matches!(meta.get("uid"), Some(Value::String(s)) if !s.is_empty()) {
            meta.insert("uid".into(), Value::String(ids::uuid_v4((self.random)())));
        }
        if !matches!(meta.get("creationTimestamp"), Some(Value::String(s)) if !s.is_empty()) {
            meta.insert(
                "creationTimestamp".into(),
                Value::String(ids::rfc3339((self.now)())),
            );
        }
    }

    /// A tiered policy's tier must exist.
    fn check_tier(&self, object: &Resource) -> Result<(), ResourceError> {
        let tier = match object {
            Resource::NetworkPolicy(p) => &p.spec.tier,
            Resource::GlobalNetworkPolicy(p) => &p.spec.tier,
            Resource::StagedNetworkPolicy(p) => &p.spec.tier,
            Resource::StagedGlobalNetworkPolicy(p) => &p.spec.tier,
            _ => return Ok(()),
        };
        let tier = if tier.is_empty() { "default" } else { tier };
        let ty = ResourceType::of(Kind::Tier);
        match self.store.get(ty.key(None, tier).as_bytes())? {
            Some(_) => Ok(()),
            None => Err(ResourceError::NotFound {
                ident: ty.ident(None, tier),
            }),
        }
    }

    fn created_value(&self, _ty: &ResourceType, mut v: Map<String, Value>) -> Map<String, Value> {
        let meta = object_field(&mut v, "metadata");
        meta.insert("uid".into(), Value::String(ids::uuid_v4((self.random)())));
        meta.insert(
            "creationTimestamp".into(),
            Value::String(ids::rfc3339((self.now)())),
        );
        v
    }
}

/// Calico's identity rules on write: a WorkloadEndpoint's name must be the one its spec's
/// identifiers give (when the spec has them all), and a Calico NetworkPolicy may not use the
/// `knp.default.` prefix reserved for copies of Kubernetes policies.
fn check_identity(
    ty: &ResourceType,
    object: &Resource,
    ident: &str,
    operation: &'static str,
) -> Result<(), ResourceError> {
    match object {
        Resource::WorkloadEndpoint(w) => {
            let s = &w.spec;
            if let Some(expected) = workload_endpoint_name(
                &s.node,
                &s.orchestrator,
                &s.pod,
                &s.container_id,
                &s.workload,
                &s.endpoint,
            ) && expected != object.name()
            {
                return Err(ResourceError::NotSupported {
                    operation,
                    ident: ident.to_owned(),
                    reason: format!(
                        "the WorkloadEndpoint name does not match the primary identifiers \
                         assigned in the Spec (expected {expected})"
                    ),
                });
            }
            Ok(())
        }
        Resource::NetworkPolicy(_)
            if ty.is_calico() && object.name().starts_with("knp.default.") =>
        {
            Err(ResourceError::NotSupported {
                operation,
                ident: ident.to_owned(),
                reason: "kubernetes network policies must be managed through the kubernetes API"
                    .into(),
            })
        }
        _ => Ok(()),
    }
}

/// The name Calico gives a WorkloadEndpoint: its identifiers joined by `-`, each with its own
/// `-` doubled — `<node>-k8s-<pod>-<endpoint>`, `<node>-cni-<containerID>-<endpoint>`,
/// `<node>-<orchestrator>-<workload>-<endpoint>`. `None` when an identifier is missing.
pub fn workload_endpoint_name(
    node: &str,
    orchestrator: &str,
    pod: &str,
    container_id: &str,
    workload: &str,
    endpoint: &str,
) -> Option<String> {
    let middle = match orchestrator {
        "k8s" => pod,
        "cni" => container_id,
        _ => workload,
    };
    let parts = [node, orchestrator, middle, endpoint];
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|p| p.replace('-', "--"))
            .collect::<Vec<_>>()
            .join("-"),
    )
}

/// The value an update writes: `desired` with every stored field our model does not know
/// carried over, and the stored metadata (uid, creation time, owner references, ...) with
/// the name, namespace, labels and annotations of `desired`.
fn updated_value(
    ty: &ResourceType,
    existing: &StoredObject,
    desired: Map<String, Value>,
    ident: &str,
) -> Result<Map<String, Value>, ResourceError> {
    let mut out = Value::Object(desired);
    if let Some(kind) = ty.model {
        let projected = codec::project(kind, &existing.value).map_err(|reason| {
            ResourceError::Decode(DecodeError {
                key: existing.key.clone(),
                reason,
            })
        })?;
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Value::Object(m) = &mut v {
                m.remove("metadata");
            }
            v
        };
        merge_unknown(
            &mut out,
            &strip(&Value::Object(existing.raw.clone())),
            &strip(&projected),
        );
    }
    let Value::Object(mut out) = out else {
        return Err(ResourceError::Encode {
            ident: ident.to_owned(),
            reason: "not an object".into(),
        });
    };
    let desired_meta = match out.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut meta = match existing.raw.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    for field in ["name", "namespace", "labels", "annotations"] {
        match desired_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    if !ty.is_calico() {
        match desired_meta.get("ownerReferences") {
            Some(v) => meta.insert("ownerReferences".into(), v.clone()),
            None => meta.remove("ownerReferences"),
        };
    }
    out.insert("metadata".into(), Value::Object(meta));
    Ok(out)
}

/// The profile Calico synthesises: allow everything, revision 1.
fn default_allow_profile() -> StoredObject {
    let ty = ResourceType::of(Kind::Profile);
    let value = match json!({
        "kind": "Profile",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": DEFAULT_ALLOW_PROFILE, "resourceVersion": "1"},
        "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]},
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let object = Resource::from_value(Kind::Profile, Value::Object(value.clone())).ok();
    StoredObject {
        key: ty.key(None, DEFAULT_ALLOW_PROFILE),
        ty,
        mod_revision: 1,
        raw: value.clone(),
        value,
        object,
    }
}
