//! The agent's view of the datastore: every stored resource decoded the way Calico's tools
//! decode it, and the IPAM block affinities (which blocks live on which node), kept up to
//! date from the syncer's events.
//!
//! Once the calculation has taken the objects over ([`View::hand_over`]), the view keeps
//! endpoints of other nodes (Pods and WorkloadEndpoints) only as what routing needs of them
//! and a fingerprint of their stored value: the policy compiler holds the objects, and a
//! second copy of 100,000 pods would double the agent's memory. Their changes then reach the
//! calculation as [`ViewChange::Elsewhere`], carrying the decoded object itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use calico_datastore::KeyValue;
use calico_ipam::keys::{self, HOST_AFFINITY_PREFIX};
use calico_ipam::resources::DecodeError;
use calico_ipam::{AffinityRecord, AffinityState as IpamAffinityState, Owner};
use calico_model::diagnostic::Origin;
use calico_model::loader::{LoadedObject, LoadedSet};
use calico_model::resources::Resource;
use calico_model::resources::felix::FelixConfigurationSpec;
use calico_model::resources::ipam::AffinityState;
use calico_policy::incremental::ObjectKey;
use calico_route::input::Affinity;
use calico_route::{Cluster, EndpointWorkload};

/// The key prefixes the agent follows: Calico's resources, the Kubernetes objects our tools
/// keep beside them (Pods, Namespaces, NetworkPolicies, …) and the host block affinities.
pub const PREFIXES: [&str; 3] = [
    "/calico/resources/v3/projectcalico.org/",
    "/calico/calico-rs/k8s/",
    HOST_AFFINITY_PREFIX,
];

/// What one event changed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ViewChange {
    /// A resource appeared, changed or went away.
    Object {
        /// Its previous state (`None` also when the view kept only a summary of it, see
        /// [`View::hand_over`]; the new state then replaces it by key).
        old: Option<Arc<LoadedObject>>,
        /// Its new state (shared with the view, which keeps it).
        new: Option<Arc<LoadedObject>>,
    },
    /// An endpoint on another node appeared, changed or went away, after
    /// [`View::hand_over`]: the view keeps only a summary of it, `new` is the object itself.
    Elsewhere {
        /// The object's key.
        key: ObjectKey,
        /// Its new state (`None`: deleted).
        new: Option<Box<LoadedObject>>,
    },
    /// A block affinity appeared, changed or went away.
    Affinity,
    /// A key the agent does not use, or whose value is the same.
    Nothing,
}

/// How the view holds one resource.
#[derive(Debug)]
enum Held {
    /// The decoded object.
    Object(Arc<LoadedObject>),
    /// An endpoint on another node, after the hand-over: its key and what routing needs.
    Elsewhere(Box<Summary>),
}

/// What the view keeps of an endpoint on another node.
#[derive(Debug)]
struct Summary {
    key: ObjectKey,
    route: Option<EndpointWorkload>,
}

#[derive(Debug)]
struct Entry {
    /// A hash of the stored value: the same value again is no change (and is not decoded).
    fingerprint: u64,
    held: Held,
}

/// A value decoded ahead of [`View::put`] (see [`View::put_many`]).
enum Decoded {
    /// Not a resource key (status, affinity), or a summary whose value did not change.
    NotDecoded,
    /// The object (`None`: the key holds nothing Calico decodes into a resource), or why
    /// the value does not decode.
    Resource(Result<Option<Box<LoadedObject>>, String>),
}

/// Decoded resources and affinities, by key.
#[derive(Debug, Default)]
pub struct View {
    objects: BTreeMap<Vec<u8>, Entry>,
    affinities: BTreeMap<Vec<u8>, Affinity>,
    undecodable: BTreeMap<Vec<u8>, String>,
    /// Keys that failed to decode since the last [`View::take_new_undecodable`].
    new_undecodable: Vec<Vec<u8>>,
    node_statuses: BTreeMap<Vec<u8>, KeyValue>,
    /// This node, once the objects were handed over: endpoints elsewhere are summarised.
    node: Option<String>,
}

/// The host block affinity a stored IPAM key and value stand for (`Ok(None)`: the key is
/// not a host affinity, e.g. a virtual owner's); an error when the value does not decode.
pub fn affinity_of(kv: &KeyValue) -> Result<Option<Affinity>, String> {
    let Some((Owner::Host(node), block)) = keys::parse_affinity(&kv.key) else {
        return Ok(None);
    };
    let record = AffinityRecord::decode(&kv.value).map_err(|e| e.to_string())?;
    Ok(Some(Affinity {
        node,
        block,
        state: match record.state {
            IpamAffinityState::Confirmed => AffinityState::Confirmed,
            IpamAffinityState::Pending => AffinityState::Pending,
            IpamAffinityState::PendingDeletion => AffinityState::PendingDeletion,
        },
    }))
}

/// Whether `r` is a workload or host endpoint on `node` (other kinds count as everywhere).
pub(crate) fn on_node(r: &Resource, node: &str) -> bool {
    match r {
        Resource::Pod(p) => p.spec.node_name == node,
        Resource::WorkloadEndpoint(w) => w.spec.node == node,
        Resource::HostEndpoint(h) => h.spec.node == node,
        // Controllers stand for pods whose node is not known here.
        _ => true,
    }
}

/// Whether `r` is a workload endpoint (Pod or WorkloadEndpoint) of another node than `node`:
/// what the view summarises after the hand-over.
fn elsewhere(r: &Resource, node: &str) -> bool {
    matches!(r, Resource::Pod(_) | Resource::WorkloadEndpoint(_)) && !on_node(r, node)
}

/// Whether a key holds a resource (not a status or an affinity).
fn is_resource_key(key: &[u8]) -> bool {
    !key.starts_with(crate::node_status_report::PREFIX.as_bytes())
        && !key.starts_with(HOST_AFFINITY_PREFIX.as_bytes())
}

/// What the view keeps of an endpoint elsewhere: its key, and its node and addresses for
/// routing (borrowed addresses are routed to the node that holds them).
fn summary(r: &Resource) -> Summary {
    Summary {
        key: ObjectKey::of(r),
        route: EndpointWorkload::elsewhere(r),
    }
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// Whether `r` is kept as a summary.
    fn summarised(&self, r: &Resource) -> bool {
        self.node.as_deref().is_some_and(|node| elsewhere(r, node))
    }

    fn decode(&self, kv: &KeyValue, fingerprint: u64) -> Decoded {
        if !is_resource_key(&kv.key) {
            return Decoded::NotDecoded;
        }
        if let Some(e) = self.objects.get(&kv.key)
            && matches!(e.held, Held::Elsewhere(_))
            && e.fingerprint == fingerprint
        {
            return Decoded::NotDecoded;
        }
        // Only the object is decoded (not the stored JSON beside it), and it is made where
        // it is decoded: with several decoding threads, nothing else is allocated on theirs.
        Decoded::Resource(
            calico_ipam::resources::decode_resource(&kv.key, &kv.value, kv.mod_revision)
                .map(|o| {
                    o.map(|resource| {
                        Box::new(LoadedObject {
                            origin: Origin {
                                file: String::from_utf8_lossy(&kv.key).into_owned(),
                                doc_index: 0,
                                item_index: None,
                            },
                            resource,
                        })
                    })
                })
                .map_err(|e: DecodeError| e.reason),
        )
    }

    /// Takes in a put. A value that does not decode is remembered (see
    /// [`View::undecodable`]) and the key's previous state is dropped.
    pub fn put(&mut self, kv: &KeyValue) -> ViewChange {
        let fp = kv.fingerprint();
        let decoded = self.decode(kv, fp);
        self.put_decoded(kv, fp, decoded)
    }

    /// [`View::put`] for each of `kvs` in order, decoding on every core first (a list of
    /// 100,000 pods decodes in half the time on two).
    pub fn put_many(&mut self, kvs: &[KeyValue]) -> Vec<ViewChange> {
        let this = &*self;
        let decoded = calico_model::parallel::map(kvs, |kv| {
            let fp = kv.fingerprint();
            (fp, this.decode(kv, fp))
        });
        kvs.iter()
            .zip(decoded)
            .map(|(kv, (fp, d))| self.put_decoded(kv, fp, d))
            .collect()
    }

    fn put_decoded(&mut self, kv: &KeyValue, fp: u64, decoded: Decoded) -> ViewChange {
        self.undecodable.remove(&kv.key);
        if kv
            .key
            .starts_with(crate::node_status_report::PREFIX.as_bytes())
        {
            // Not an input of the calculation: the agent only fills their status.
            self.node_statuses.insert(kv.key.clone(), kv.clone());
            return ViewChange::Nothing;
        }
        if kv.key.starts_with(HOST_AFFINITY_PREFIX.as_bytes()) {
            return match affinity_of(kv) {
                Ok(Some(a)) => {
                    if self.affinities.get(&kv.key) == Some(&a) {
                        return ViewChange::Nothing;
                    }
                    self.affinities.insert(kv.key.clone(), a);
                    ViewChange::Affinity
                }
                Ok(None) => ViewChange::Nothing,
                Err(reason) => {
                    self.undecodable.insert(kv.key.clone(), reason);
                    self.new_undecodable.push(kv.key.clone());
                    match self.affinities.remove(&kv.key) {
                        Some(_) => ViewChange::Affinity,
                        None => ViewChange::Nothing,
                    }
                }
            };
        }
        let decoded = match decoded {
            // The summary's value is the same.
            Decoded::NotDecoded => return ViewChange::Nothing,
            Decoded::Resource(d) => d,
        };
        let new = match decoded {
            Ok(o) => o,
            Err(reason) => {
                self.undecodable.insert(kv.key.clone(), reason);
                self.new_undecodable.push(kv.key.clone());
                None
            }
        };
        let Some(new) = new else {
            return self.remove_object(&kv.key);
        };
        if self.summarised(&new.resource) {
            let s = summary(&new.resource);
            let key = s.key.clone();
            let entry = Entry {
                fingerprint: fp,
                held: Held::Elsewhere(Box::new(s)),
            };
            return match self.objects.insert(kv.key.clone(), entry).map(|e| e.held) {
                Some(Held::Object(old)) => ViewChange::Object {
                    old: Some(old),
                    new: Some(Arc::new(*new)),
                },
                _ => ViewChange::Elsewhere {
                    key,
                    new: Some(new),
                },
            };
        }
        if let Some(Entry {
            held: Held::Object(o),
            ..
        }) = self.objects.get(&kv.key)
            && o.resource == new.resource
        {
            return ViewChange::Nothing;
        }
        let new = Arc::new(*new);
        let entry = Entry {
            fingerprint: fp,
            held: Held::Object(new.clone()),
        };
        let old = match self.objects.insert(kv.key.clone(), entry).map(|e| e.held) {
            Some(Held::Object(old)) => Some(old),
            _ => None,
        };
        ViewChange::Object {
            old,
            new: Some(new),
        }
    }

    /// Takes in a delete.
    pub fn delete(&mut self, key: &[u8]) -> ViewChange {
        self.undecodable.remove(key);
        if self.node_statuses.remove(key).is_some() {
            return ViewChange::Nothing;
        }
        if self.affinities.remove(key).is_some() {
            return ViewChange::Affinity;
        }
        self.remove_object(key)
    }

    /// Drops the resource at `key`; what its removal changed.
    fn remove_object(&mut self, key: &[u8]) -> ViewChange {
        match self.objects.remove(key).map(|e| e.held) {
            Some(Held::Object(old)) => ViewChange::Object {
                old: Some(old),
                new: None,
            },
            Some(Held::Elsewhere(s)) => ViewChange::Elsewhere {
                key: s.key,
                new: None,
            },
            None => ViewChange::Nothing,
        }
    }

    /// The CalicoNodeStatus objects, as stored.
    pub fn node_statuses(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        &self.node_statuses
    }

    /// Keys that failed to decode since the last call, with the reason (each failure is
    /// reported once; the key is left out until a value that decodes is stored).
    pub fn take_new_undecodable(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.new_undecodable)
            .into_iter()
            .filter_map(|k| {
                let reason = self.undecodable.get(&k)?.clone();
                Some((String::from_utf8_lossy(&k).into_owned(), reason))
            })
            .collect()
    }

    /// Keys whose values did not decode, with the reason (such keys are left out).
    pub fn undecodable(&self) -> &BTreeMap<Vec<u8>, String> {
        &self.undecodable
    }

    /// The resources the view holds whole (after [`View::hand_over`], not the endpoints on
    /// other nodes).
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.objects.values().filter_map(|e| match &e.held {
            Held::Object(o) => Some(&o.resource),
            Held::Elsewhere(_) => None,
        })
    }

    /// How many endpoints on other nodes the view keeps as summaries.
    pub fn summarised_endpoints(&self) -> usize {
        self.objects
            .values()
            .filter(|e| matches!(e.held, Held::Elsewhere(_)))
            .count()
    }

    /// The resources as a loaded set (origins are the keys), copied; see
    /// [`View::hand_over`] for the set without a copy.
    pub fn loaded_set(&self) -> LoadedSet {
        let mut set = LoadedSet::new();
        set.objects = self
            .objects
            .values()
            .filter_map(|e| match &e.held {
                Held::Object(o) => Some(LoadedObject::clone(o)),
                Held::Elsewhere(_) => None,
            })
            .collect();
        set.files.push("datastore".to_owned());
        set
    }

    /// The resources as a loaded set for `node`'s calculation: the endpoints of other nodes
    /// are moved into it (the view keeps a summary of each), the rest is copied. From now on
    /// such endpoints reach the calculation as [`ViewChange::Elsewhere`]. Undone by
    /// [`View::take_back`].
    pub fn hand_over(&mut self, node: &str) -> LoadedSet {
        self.node = Some(node.to_owned());
        let mut set = LoadedSet::new();
        set.files.push("datastore".to_owned());
        let mut objects = Vec::with_capacity(self.objects.len());
        for e in self.objects.values_mut() {
            let Held::Object(o) = &e.held else {
                continue;
            };
            if !elsewhere(&o.resource, node) {
                objects.push(LoadedObject::clone(o));
                continue;
            }
            let s = summary(&o.resource);
            if let Held::Object(o) = std::mem::replace(&mut e.held, Held::Elsewhere(Box::new(s))) {
                // Moved when the view holds the only reference (changes handed out earlier
                // are gone by now), copied otherwise.
                objects.push(Arc::unwrap_or_clone(o));
            }
        }
        set.objects = objects;
        set
    }

    /// Takes back objects of a [`View::hand_over`] the calculation could not use: endpoints
    /// the view summarised are held whole again, and nothing is summarised any more.
    pub fn take_back(&mut self, objects: Vec<LoadedObject>) {
        self.node = None;
        for o in objects {
            if let Some(e) = self.objects.get_mut(o.origin.file.as_bytes())
                && matches!(e.held, Held::Elsewhere(_))
            {
                e.held = Held::Object(Arc::new(o));
            }
        }
    }

    /// The routing input: the resources, with the block affinities IPAM holds.
    pub fn cluster(&self) -> Cluster {
        let summaries: Vec<&EndpointWorkload> = self
            .objects
            .values()
            .filter_map(|e| match &e.held {
                Held::Elsewhere(s) => s.route.as_ref(),
                Held::Object(_) => None,
            })
            .collect();
        let mut c = Cluster::from_parts(self.resources(), &summaries);
        c.affinities = self.affinities.values().cloned().collect();
        c.sort();
        c
    }

    /// FelixConfiguration `default` and `node.<node>`.
    pub fn felix_configs(
        &self,
        node: &str,
    ) -> (
        Option<&FelixConfigurationSpec>,
        Option<&FelixConfigurationSpec>,
    ) {
        let mut default = None;
        let mut own = None;
        let own_name = format!("node.{node}");
        for r in self.resources() {
            if let Resource::FelixConfiguration(f) = r {
                if f.metadata.name == "default" {
                    default = Some(&f.spec);
                } else if f.metadata.name == own_name {
                    own = Some(&f.spec);
                }
            }
        }
        (default, own)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A stored key and value (for tests of the view and the calculation).
    pub(crate) fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: 2,
        }
    }

    #[test]
    fn resources_and_affinities_are_decoded_and_deleted() {
        let mut v = View::new();
        let pol = kv(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.p",
            r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.p"},"spec":{"tier":"default","selector":"all()"}}"#,
        );
        assert!(matches!(
            v.put(&pol),
            ViewChange::Object {
                old: None,
                new: Some(_)
            }
        ));
        assert!(matches!(v.put(&pol), ViewChange::Nothing));
        let aff = kv(
            "/calico/ipam/v2/host/n1/ipv4/block/10.244.1.0-26",
            r#"{"state":"confirmed","deleted":false}"#,
        );
        assert!(matches!(v.put(&aff), ViewChange::Affinity));
        let c = v.cluster();
        assert_eq!(c.affinities.len(), 1);
        assert_eq!(c.affinities[0].node, "n1");
        let bad = kv(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.q",
            "{not json",
        );
        assert!(matches!(v.put(&bad), ViewChange::Nothing));
        assert_eq!(v.undecodable().len(), 1);
        let reported = v.take_new_undecodable();
        assert_eq!(reported.len(), 1);
        assert!(reported[0].0.ends_with("/default.q"), "{reported:?}");
        assert!(reported[0].1.contains("not JSON"), "{reported:?}");
        assert!(v.take_new_undecodable().is_empty(), "reported once");
        assert!(matches!(
            v.delete(&pol.key),
            ViewChange::Object {
                old: Some(_),
                new: None
            }
        ));
        assert!(matches!(v.delete(&aff.key), ViewChange::Affinity));
        assert_eq!(v.resources().count(), 0);
    }

    fn pod(name: &str, node: &str, ip: &str, app: &str) -> KeyValue {
        kv(
            &format!("/calico/calico-rs/k8s/pods/web/{name}"),
            &format!(
                r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"web","labels":{{"app":"{app}"}}}},"spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"x"}}]}},"status":{{"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}"#
            ),
        )
    }

    #[test]
    fn endpoints_elsewhere_are_handed_over_and_summarised() {
        let mut v = View::new();
        let changes = v.put_many(&[
            pod("here", "n1", "10.244.0.5", "a"),
            pod("there", "n2", "10.244.1.7", "b"),
        ]);
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, ViewChange::Object { new: Some(_), .. }))
        );
        let set = v.hand_over("n1");
        let mut names: Vec<&str> = set.objects.iter().map(|o| o.resource.name()).collect();
        names.sort();
        assert_eq!(names, ["here", "there"], "both go to the calculation");
        assert_eq!(v.summarised_endpoints(), 1);
        assert_eq!(
            v.resources().map(|r| r.name()).collect::<Vec<_>>(),
            ["here"],
            "the view keeps only this node's pod whole"
        );
        // Routing still sees the pod elsewhere.
        let c = v.cluster();
        let mut ids: Vec<(&str, &str)> = c
            .workloads
            .iter()
            .map(|w| (w.node.as_str(), w.id.as_str()))
            .collect();
        ids.sort();
        assert_eq!(ids, [("n1", "web/n1-k8s-here-eth0"), ("n2", "web/there")]);
        // The same value again is no change; a new one arrives whole, without its old state.
        assert!(matches!(
            v.put(&pod("there", "n2", "10.244.1.7", "b")),
            ViewChange::Nothing
        ));
        match v.put(&pod("there", "n2", "10.244.1.8", "b")) {
            ViewChange::Elsewhere { key, new: Some(n) } => {
                assert_eq!(key.name, "there");
                assert_eq!(n.resource.name(), "there");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            v.cluster()
                .workloads
                .iter()
                .find(|w| w.id == "web/there")
                .map(|w| w.ips.clone()),
            Some(vec!["10.244.1.8".parse().unwrap()])
        );
        // A pod arriving elsewhere after the hand-over is summarised at once.
        assert!(matches!(
            v.put(&pod("new", "n3", "10.244.2.2", "c")),
            ViewChange::Elsewhere { new: Some(_), .. }
        ));
        assert_eq!(v.summarised_endpoints(), 2);
        match v.delete(b"/calico/calico-rs/k8s/pods/web/there") {
            ViewChange::Elsewhere { key, new: None } => assert_eq!(key.name, "there"),
            other => panic!("{other:?}"),
        }
        // A value that no longer decodes removes the summary too.
        match v.put(&kv("/calico/calico-rs/k8s/pods/web/new", "{")) {
            ViewChange::Elsewhere { key, new: None } => assert_eq!(key.name, "new"),
            other => panic!("{other:?}"),
        }
        assert_eq!(v.summarised_endpoints(), 0);
    }

    #[test]
    fn objects_handed_over_can_be_taken_back() {
        let mut v = View::new();
        v.put_many(&[
            pod("here", "n1", "10.244.0.5", "a"),
            pod("there", "n2", "10.244.1.7", "b"),
        ]);
        let set = v.hand_over("n1");
        v.take_back(set.objects);
        assert_eq!(v.summarised_endpoints(), 0);
        assert_eq!(v.resources().count(), 2);
        // Nothing is summarised any more.
        assert!(matches!(
            v.put(&pod("other", "n2", "10.244.1.9", "b")),
            ViewChange::Object { new: Some(_), .. }
        ));
        assert_eq!(v.loaded_set().objects.len(), 3);
    }

    #[test]
    fn a_long_list_decodes_on_several_threads_in_order() {
        let mut v = View::new();
        let n = calico_model::parallel::MIN_PARALLEL + 600;
        let kvs: Vec<KeyValue> = (0..n)
            .map(|i| {
                if i == 300 {
                    kv("/calico/calico-rs/k8s/pods/web/bad", "not json")
                } else {
                    pod(
                        &format!("p{i}"),
                        "n2",
                        &format!("10.244.{}.{}", i / 250, i % 250),
                        "x",
                    )
                }
            })
            .collect();
        let changes = v.put_many(&kvs);
        assert_eq!(changes.len(), n);
        for (i, c) in changes.iter().enumerate() {
            match c {
                ViewChange::Object { new: Some(n), .. } => {
                    assert_eq!(n.resource.name(), format!("p{i}"))
                }
                ViewChange::Nothing => assert_eq!(i, 300),
                other => panic!("{i}: {other:?}"),
            }
        }
        assert_eq!(v.undecodable().len(), 1);
        assert_eq!(v.resources().count(), n - 1);
    }
}
