//! The agent's view of the datastore: every stored resource decoded the way Calico's tools
//! decode it, and the IPAM block affinities (which blocks live on which node), kept up to
//! date from the syncer's events.

use std::collections::BTreeMap;

use calico_datastore::KeyValue;
use calico_ipam::keys::{self, HOST_AFFINITY_PREFIX};
use calico_ipam::{AffinityRecord, AffinityState as IpamAffinityState, Owner};
use calico_model::diagnostic::Origin;
use calico_model::loader::{LoadedObject, LoadedSet};
use calico_model::resources::Resource;
use calico_model::resources::felix::FelixConfigurationSpec;
use calico_model::resources::ipam::AffinityState;
use calico_route::Cluster;
use calico_route::input::Affinity;

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
        /// Its previous state.
        old: Option<Box<LoadedObject>>,
        /// Its new state.
        new: Option<Box<LoadedObject>>,
    },
    /// A block affinity appeared, changed or went away.
    Affinity,
    /// A key the agent does not use, or whose value is the same.
    Nothing,
}

/// Decoded resources and affinities, by key.
#[derive(Debug, Default)]
pub struct View {
    objects: BTreeMap<Vec<u8>, LoadedObject>,
    affinities: BTreeMap<Vec<u8>, Affinity>,
    undecodable: BTreeMap<Vec<u8>, String>,
    /// Keys that failed to decode since the last [`View::take_new_undecodable`].
    new_undecodable: Vec<Vec<u8>>,
    node_statuses: BTreeMap<Vec<u8>, KeyValue>,
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

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// Takes in a put. A value that does not decode is remembered (see
    /// [`View::undecodable`]) and the key's previous state is dropped.
    pub fn put(&mut self, kv: &KeyValue) -> ViewChange {
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
        let decoded = calico_ipam::resources::decode(&kv.key, &kv.value, kv.mod_revision);
        let new = match decoded {
            Ok(stored) => stored.object.map(|resource| LoadedObject {
                origin: Origin {
                    file: stored.key,
                    doc_index: 0,
                    item_index: None,
                },
                resource,
            }),
            Err(e) => {
                self.undecodable.insert(kv.key.clone(), e.reason);
                self.new_undecodable.push(kv.key.clone());
                None
            }
        };
        let old = match &new {
            Some(o) => {
                if self.objects.get(&kv.key).map(|x| &x.resource) == Some(&o.resource) {
                    return ViewChange::Nothing;
                }
                self.objects.insert(kv.key.clone(), o.clone())
            }
            None => self.objects.remove(&kv.key),
        };
        if old.is_none() && new.is_none() {
            return ViewChange::Nothing;
        }
        ViewChange::Object {
            old: old.map(Box::new),
            new: new.map(Box::new),
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
        match self.objects.remove(key) {
            Some(old) => ViewChange::Object {
                old: Some(Box::new(old)),
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

    /// The resources.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.objects.values().map(|o| &o.resource)
    }

    /// The resources as a loaded set (origins are the keys).
    pub fn loaded_set(&self) -> LoadedSet {
        let mut set = LoadedSet::new();
        set.objects = self.objects.values().cloned().collect();
        set.files.push("datastore".to_owned());
        set
    }

    /// The routing input: the resources, with the block affinities IPAM holds.
    pub fn cluster(&self) -> Cluster {
        let mut c = Cluster::from_resources(self.resources());
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
}
