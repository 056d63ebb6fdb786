//! The stored JSON form of a [`Block`] (keys are fixed by ipam.md §1, values are not).
//!
//! A full block of 64 addresses is written on every allocation, so its size matters: the
//! plain form spent about half of it on 19-digit sequence stamps and a third on
//! `{"handle":…}` wrappers. The compact form writes:
//!
//! * an attribute holding only a handle as the bare handle string (others as objects);
//! * `sequenceAges`: by ordinal, `sequenceNumber − stamp` (small: the writes since the
//!   ordinal was stamped), `null` for an ordinal without a stamp, trailing `null`s cut;
//! * `sequenceNumberForAllocation`: only stamps the ages cannot express (above
//!   `sequenceNumber`, or beyond the block), omitted when there are none.
//!
//! Both forms are read: a plain value (every attribute an object, every stamp in the map,
//! as earlier versions wrote) decodes to the same block.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::block::{Attribute, Block};
use crate::records::Nanos;

/// A block as stored, in either form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockWire {
    cidr: IpNet,
    #[serde(default)]
    affinity: Option<String>,
    #[serde(default)]
    affinity_claim_time: Nanos,
    allocations: Vec<Option<u32>>,
    unallocated: Vec<u32>,
    #[serde(default)]
    attributes: Vec<AttrWire>,
    sequence_number: u64,
    #[serde(default)]
    sequence_number_for_allocation: BTreeMap<u32, u64>,
    #[serde(default)]
    sequence_ages: Vec<Option<u64>>,
}

impl From<BlockWire> for Block {
    fn from(w: BlockWire) -> Block {
        let mut stamps = w.sequence_number_for_allocation;
        for (o, age) in w.sequence_ages.into_iter().enumerate() {
            let (Some(age), Ok(o)) = (age, u32::try_from(o)) else {
                continue;
            };
            // An age above the sequence number cannot have been written; keep what the
            // map says (if anything) rather than inventing a stamp.
            if let Some(stamp) = w.sequence_number.checked_sub(age) {
                stamps.entry(o).or_insert(stamp);
            }
        }
        Block {
            cidr: w.cidr,
            affinity: w.affinity,
            affinity_claim_time: w.affinity_claim_time,
            allocations: w.allocations,
            unallocated: w.unallocated,
            attributes: w.attributes.into_iter().map(|a| a.0).collect(),
            sequence_number: w.sequence_number,
            sequence_number_for_allocation: stamps,
        }
    }
}

/// An attribute as stored: a bare handle string, or an object.
struct AttrWire(Attribute);

impl<'de> Deserialize<'de> for AttrWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AttrWire, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttrWire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a handle string or an attribute object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrWire, E> {
                Ok(AttrWire(Attribute {
                    handle: Some(v.to_owned()),
                    ..Attribute::default()
                }))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttrWire, E> {
                Ok(AttrWire(Attribute {
                    handle: Some(v),
                    ..Attribute::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttrWire, A::Error> {
                Attribute::deserialize(de::value::MapAccessDeserializer::new(map)).map(AttrWire)
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether an attribute is written as its bare handle.
fn handle_only(a: &Attribute) -> Option<&str> {
    match a {
        Attribute {
            handle: Some(h),
            owner,
            alternate_owner,
            released_at: None,
        } if owner.is_empty() && alternate_owner.is_empty() => Some(h),
        _ => None,
    }
}

struct Attrs<'a>(&'a [Attribute]);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            match handle_only(a) {
                Some(h) => seq.serialize_element(h)?,
                None => seq.serialize_element(a)?,
            }
        }
        seq.end()
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Stamps as ages by ordinal; the rest (not expressible) in the map.
        let n = self.allocations.len();
        let mut ages: Vec<Option<u64>> = Vec::new();
        let mut rest: BTreeMap<u32, u64> = BTreeMap::new();
        for (&o, &stamp) in &self.sequence_number_for_allocation {
            match self.sequence_number.checked_sub(stamp) {
                Some(age) if (o as usize) < n => {
                    let i = o as usize;
                    if ages.len() <= i {
                        ages.resize(i + 1, None);
                    }
                    ages[i] = Some(age);
                }
                _ => {
                    rest.insert(o, stamp);
                }
            }
        }
        let fields = 7 + usize::from(self.affinity.is_some()) + usize::from(!rest.is_empty());
        let mut st = s.serialize_struct("Block", fields)?;
        st.serialize_field("cidr", &self.cidr)?;
        if let Some(a) = &self.affinity {
            st.serialize_field("affinity", a)?;
        }
        st.serialize_field("affinityClaimTime", &self.affinity_claim_time)?;
        st.serialize_field("allocations", &self.allocations)?;
        st.serialize_field("unallocated", &self.unallocated)?;
        st.serialize_field("attributes", &Attrs(&self.attributes))?;
        st.serialize_field("sequenceNumber", &self.sequence_number)?;
        st.serialize_field("sequenceAges", &ages)?;
        if !rest.is_empty() {
            st.serialize_field("sequenceNumberForAllocation", &rest)?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Owner;

    fn full_block() -> Block {
        let mut b = Block::new(
            "10.1.2.0/26".parse().unwrap(),
            Some(&Owner::host("node-1")),
            1_763_800_000_000_000_000,
        );
        for i in 0..64 {
            b.sequence_number += 1;
            b.take(1, Some(&format!("k8s-pod-network.{i:03}")), &BTreeMap::new(), &[]);
        }
        b
    }

    #[test]
    fn compact_form_round_trips_and_is_smaller() {
        let mut b = full_block();
        // An attribute with owner attributes, one in cooldown, a stamp above the sequence
        // number and one beyond the block: all kept.
        let mut owner = BTreeMap::new();
        owner.insert("pod".to_owned(), "p".to_owned());
        b.attributes[3].owner = owner;
        b.release(&[5], 1_763_800_000_000_000_500);
        b.sequence_number_for_allocation
            .insert(7, b.sequence_number + 10);
        b.sequence_number_for_allocation.insert(900, 1);
        b.sequence_number_for_allocation.remove(&9);
        let text = serde_json::to_string(&b).unwrap();
        let back: Block = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, b);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["attributes"][0], "k8s-pod-network.000");
        assert_eq!(v["attributes"][3]["owner"]["pod"], "p");
        assert_eq!(v["sequenceAges"][63], 0);
        assert_eq!(v["sequenceAges"][9], serde_json::Value::Null);
        assert_eq!(v["sequenceNumberForAllocation"].as_object().map(|m| m.len()), Some(2));
    }

    #[test]
    fn plain_form_still_decodes_to_the_same_block() {
        let b = full_block();
        // The plain form as earlier versions wrote it.
        let attrs: Vec<serde_json::Value> = b
            .attributes
            .iter()
            .map(|a| serde_json::to_value(a).unwrap_or_default())
            .collect();
        let plain = serde_json::json!({
            "cidr": b.cidr,
            "affinity": b.affinity,
            "affinityClaimTime": b.affinity_claim_time,
            "allocations": b.allocations,
            "unallocated": b.unallocated,
            "attributes": attrs,
            "sequenceNumber": b.sequence_number,
            "sequenceNumberForAllocation": b.sequence_number_for_allocation,
        });
        let plain_text = plain.to_string();
        let back: Block = serde_json::from_str(&plain_text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, b);
        let compact = serde_json::to_string(&b).unwrap();
        assert!(
            compact.len() * 2 < plain_text.len(),
            "compact {} bytes, plain {}",
            compact.len(),
            plain_text.len()
        );
        // A mistyped attribute is an error, not a panic.
        assert!(serde_json::from_str::<Block>(&plain_text.replace("\"k8s-pod-network.001\"", "7")).is_err());
    }
}
