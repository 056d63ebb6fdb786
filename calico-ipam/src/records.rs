//! The values stored under the IPAM keys other than blocks: owners, handles, affinities and
//! the configuration, as Calico writes them.

use std::collections::BTreeMap;
use std::fmt;

use calico_model::resources::ipam::IpamConfigurationSpec;
use serde::{Deserialize, Serialize};

/// Unix time in nanoseconds: the unit of every time the allocator stores.
pub type Nanos = u64;

/// The owner of a block affinity: `host:<node>` or `virtual:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A host (node).
    Host(String),
    /// A virtual owner (only `load-balancer` is used).
    Virtual(String),
}

impl Owner {
    /// A host owner.
    pub fn host(name: impl Into<String>) -> Owner {
        Owner::Host(name.into())
    }

    /// `host` or `virtual`.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Owner::Host(_) => "host",
            Owner::Virtual(_) => "virtual",
        }
    }

    /// The host or virtual name.
    pub fn name(&self) -> &str {
        match self {
            Owner::Host(n) | Owner::Virtual(n) => n,
        }
    }

    /// Parses `host:<name>` or `virtual:<name>`.
    pub fn parse(s: &str) -> Option<Owner> {
        if let Some(n) = s.strip_prefix("host:") {
            Some(Owner::Host(n.to_owned()))
        } else {
            s.strip_prefix("virtual:")
                .map(|n| Owner::Virtual(n.to_owned()))
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind_str(), self.name())
    }
}

/// A handle: the blocks holding its addresses and how many in each. Stored as
/// `{"block":{"<block cidr>":<count>,…},"deleted":false}`; the ID is only in the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handle {
    /// The handle ID (from the key).
    pub id: String,
    /// Block CIDR → number of addresses of this handle in that block.
    pub blocks: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct HandleWire {
    #[serde(default)]
    block: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    deleted: bool,
}

impl Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HandleWire {
            block: Some(self.blocks.clone()),
            deleted: false,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Handle, D::Error> {
        let w = HandleWire::deserialize(d)?;
        Ok(Handle {
            id: String::new(),
            blocks: w.block.unwrap_or_default(),
        })
    }
}

/// The state of an affinity: `pending` (a claim in progress), `confirmed`, or
/// `pendingDeletion` (a release in progress). This crate's transactions write only
/// `confirmed`: a claim or release is one transaction, so no intermediate state lands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityState {
    /// Owned and usable (an empty state reads as this).
    #[default]
    #[serde(rename = "confirmed", alias = "")]
    Confirmed,
    /// A claim in progress.
    #[serde(rename = "pending")]
    Pending,
    /// A release in progress.
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
}

/// The value of an affinity key: `{"state":"confirmed","deleted":false}`. The claim time
/// lives in the block (`affinity_claim_time`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityRecord {
    /// The state.
    #[serde(default)]
    pub state: AffinityState,
    /// Always written `false` (Calico's etcd readers never look at it).
    #[serde(default)]
    pub deleted: bool,
}

impl AffinityRecord {
    /// A confirmed affinity.
    pub fn confirmed() -> AffinityRecord {
        AffinityRecord {
            state: AffinityState::Confirmed,
            deleted: false,
        }
    }

    /// Decodes an affinity value; an empty value (very old data) or `null` reads as
    /// confirmed, as Go's decoder leaves the state empty for both.
    pub fn decode(value: &[u8]) -> Result<AffinityRecord, serde_json::Error> {
        if value.iter().all(u8::is_ascii_whitespace) || value.trim_ascii() == b"null" {
            return Ok(AffinityRecord::default());
        }
        serde_json::from_slice(value)
    }
}

/// The value at the IPAM config key, as Calico's IPAM reads it: every field is left out
/// when false or zero, so a stored value without `auto_allocate_blocks` means **false**
/// (while a missing key means the defaults, with automatic allocation on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfigWire {
    /// Allocate only from the host's own blocks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_affinity: bool,
    /// Claim new blocks automatically.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_allocate_blocks: bool,
    /// Maximum blocks per host (0: 20).
    #[serde(default, rename = "maxBlocksPerHost", skip_serializing_if = "is_zero")]
    pub max_blocks_per_host: i64,
    /// `Enabled` or `Disabled` (KubeVirt address persistence; kept as read).
    #[serde(
        default,
        rename = "kubeVirtVMAddressPersistence",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubevirt_vm_address_persistence: Option<String>,
    /// Seconds a released address stays unusable.
    #[serde(default, rename = "ipCooldownSeconds", skip_serializing_if = "is_zero")]
    pub ip_cooldown_seconds: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl IpamConfigWire {
    /// The configuration it stands for.
    pub fn spec(&self) -> IpamConfigurationSpec {
        IpamConfigurationSpec {
            strict_affinity: self.strict_affinity,
            auto_allocate_blocks: self.auto_allocate_blocks,
            max_blocks_per_host: self.max_blocks_per_host,
            ip_cooldown_seconds: self.ip_cooldown_seconds,
        }
    }

    /// The value for `spec`, keeping the KubeVirt setting of `previous`.
    pub fn from_spec(spec: &IpamConfigurationSpec, previous: Option<&IpamConfigWire>) -> Self {
        IpamConfigWire {
            strict_affinity: spec.strict_affinity,
            auto_allocate_blocks: spec.auto_allocate_blocks,
            max_blocks_per_host: spec.max_blocks_per_host,
            kubevirt_vm_address_persistence: previous
                .and_then(|p| p.kubevirt_vm_address_persistence.clone()),
            ip_cooldown_seconds: spec.ip_cooldown_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_calicos() {
        let mut h = Handle::default();
        h.blocks.insert("10.65.226.64/26".into(), 1);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"block":{"10.65.226.64/26":1},"deleted":false}"#
        );
        assert_eq!(
            serde_json::to_string(&AffinityRecord::confirmed()).unwrap(),
            r#"{"state":"confirmed","deleted":false}"#
        );
        assert_eq!(
            AffinityRecord::decode(b"").unwrap(),
            AffinityRecord::confirmed()
        );
        assert_eq!(
            AffinityRecord::decode(br#"{"state":""}"#).unwrap().state,
            AffinityState::Confirmed
        );
        assert_eq!(
            AffinityRecord::decode(br#"{"state":"pendingDeletion","deleted":true}"#)
                .unwrap()
                .state,
            AffinityState::PendingDeletion
        );
        assert!(AffinityRecord::decode(br#"{"state":"odd"}"#).is_err());
        let c: IpamConfigWire = serde_json::from_str(
            r#"{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled"}"#,
        )
        .unwrap();
        assert!(c.spec().auto_allocate_blocks && !c.spec().strict_affinity);
        assert!(
            !serde_json::from_str::<IpamConfigWire>("{}")
                .unwrap()
                .spec()
                .auto_allocate_blocks
        );
        let spec = IpamConfigurationSpec {
            strict_affinity: true,
            max_blocks_per_host: 4,
            ..IpamConfigurationSpec::default()
        };
        assert_eq!(
            serde_json::to_string(&IpamConfigWire::from_spec(&spec, Some(&c))).unwrap(),
            r#"{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4,"kubeVirtVMAddressPersistence":"Enabled"}"#
        );
    }
}
