//! The stored JSON form of a [`Block`] (keys are fixed by ipam.md §1, values are not).
//!
//! A full block of 64 addresses is written on every allocation, so its size matters: the
//! plain form spent about half of it on 19-digit sequence stamps and a third on
//! `{"handle":…}` wrappers. The compact form writes:
//!
//! * an attribute holding only a handle as the bare handle string (others as objects),
//!   less `handlePrefix`, the longest prefix shared by all those handles (workload handles
//!   share one, such as `k8s-pod-network.`);
//! * `sequenceAges`: by ordinal, `sequenceNumber − stamp` (small: the writes since the
//!   ordinal was stamped), `null` for an ordinal without a stamp, trailing `null`s cut;
//! * `sequenceNumberForAllocation`: only stamps the ages cannot express (above
//!   `sequenceNumber`, or beyond the block), omitted when there are none;
//! * `allocations`, `unallocated` and `sequenceAges` as runs: an element is a number, a
//!   `null`, `[first, count, step]` (`count` numbers from `first` by `step`) or
//!   `[null, count]` (`count` nulls). A block filled in order is a few runs.
//!
//! Both forms are read: a plain value (every attribute an object, every stamp in the map,
//! plain arrays, as earlier versions wrote) decodes to the same block.

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
    allocations: Runs<{ u32::MAX as u64 }>,
    unallocated: Runs<{ u32::MAX as u64 }>,
    #[serde(default)]
    attributes: Vec<AttrWire>,
    #[serde(default)]
    handle_prefix: String,
    sequence_number: u64,
    #[serde(default)]
    sequence_number_for_allocation: BTreeMap<u32, u64>,
    #[serde(default)]
    sequence_ages: Runs<{ u64::MAX }>,
}

/// The most elements a run-encoded array may expand to (blocks hold at most 2^12).
const MAX_ELEMENTS: u64 = 1 << 20;

/// A run-encoded array of optional numbers up to `MAX` (a plain array is one too).
#[derive(Default)]
struct Runs<const MAX: u64>(Vec<Option<u64>>);

impl<const MAX: u64> Runs<MAX> {
    fn to_u32(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        // Every value was checked to be at most MAX = u32::MAX.
        self.0
            .iter()
            .map(|v| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
    }
}

impl<'de, const MAX: u64> Deserialize<'de> for Runs<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Runs<MAX>, D::Error> {
        struct V<const MAX: u64>;
        impl<'de, const MAX: u64> Visitor<'de> for V<MAX> {
            type Value = Runs<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of numbers, nulls and runs")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Runs<MAX>, A::Error> {
                let mut out: Vec<Option<u64>> = Vec::new();
                while let Some(item) = seq.next_element::<RunItem>()? {
                    let (first, count, step) = match item {
                        RunItem::One(v) => (v, 1, 0),
                        RunItem::Run(first, count, step) => (first, count, step),
                    };
                    if (out.len() as u64).saturating_add(count) > MAX_ELEMENTS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_ELEMENTS} elements"
                        )));
                    }
                    for k in 0..count {
                        out.push(match first {
                            None => None,
                            Some(f) => {
                                let v = i128::from(f) + i128::from(k) * i128::from(step);
                                match u64::try_from(v) {
                                    Ok(v) if v <= MAX => Some(v),
                                    _ => {
                                        return Err(de::Error::custom(format!(
                                            "run value {v} out of range 0..={MAX}"
                                        )));
                                    }
                                }
                            }
                        });
                    }
                }
                Ok(Runs(out))
            }
        }
        d.deserialize_seq(V::<MAX>)
    }
}

/// One element of a run-encoded array.
enum RunItem {
    /// A number or `null`.
    One(Option<u64>),
    /// `[first, count, step]`, or `[null, count]`.
    Run(Option<u64>, u64, i64),
}

impl<'de> Deserialize<'de> for RunItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RunItem, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RunItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, null, [first, count, step] or [null, count]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RunItem, E> {
                Ok(RunItem::One(Some(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RunItem, E> {
                Ok(RunItem::One(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<RunItem, E> {
                Ok(RunItem::One(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RunItem, A::Error> {
                let first: Option<u64> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("an empty run"))?;
                let count: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("a run without a count"))?;
                let step: i64 = match first {
                    Some(_) => seq
                        .next_element()?
                        .ok_or_else(|| de::Error::custom("a run without a step"))?,
                    None => 0,
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a run of more than three elements"));
                }
                Ok(RunItem::Run(first, count, step))
            }
        }
        d.deserialize_any(V)
    }
}

/// An element of a run-encoded array as written.
enum RunOut {
    One(Option<u64>),
    Run(u64, u64, i64),
    Nulls(u64),
}

impl Serialize for RunOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RunOut::One(v) => v.serialize(s),
            RunOut::Run(first, count, step) => (first, count, step).serialize(s),
            RunOut::Nulls(count) => (None::<u64>, count).serialize(s),
        }
    }
}

/// Runs of 3 or more numbers with a constant step, and of 2 or more nulls.
fn runs(values: &[Option<u64>]) -> Vec<RunOut> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < values.len() {
        match values[i] {
            None => {
                let n = values[i..].iter().take_while(|v| v.is_none()).count();
                out.push(if n >= 2 {
                    RunOut::Nulls(n as u64)
                } else {
                    RunOut::One(None)
                });
                i += n.max(1);
            }
            Some(first) => {
                let step = match values.get(i + 1) {
                    Some(Some(next)) => i64::try_from(i128::from(*next) - i128::from(first)).ok(),
                    _ => None,
                };
                let mut n = 1;
                if let Some(step) = step {
                    while let Some(Some(v)) = values.get(i + n) {
                        if i128::from(*v) != i128::from(first) + (n as i128) * i128::from(step) {
                            break;
                        }
                        n += 1;
                    }
                }
                match step {
                    Some(step) if n >= 3 => {
                        out.push(RunOut::Run(first, n as u64, step));
                        i += n;
                    }
                    _ => {
                        out.push(RunOut::One(Some(first)));
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

impl TryFrom<BlockWire> for Block {
    type Error = String;

    /// Fails on what no writer produces: an age above the sequence number, a `null` in the
    /// free list, a `handlePrefix` with no bare handle to apply to.
    fn try_from(w: BlockWire) -> Result<Block, String> {
        let mut stamps = w.sequence_number_for_allocation;
        for (o, age) in w.sequence_ages.0.into_iter().enumerate() {
            let Some(age) = age else { continue };
            let o = u32::try_from(o).map_err(|_| format!("sequenceAges: ordinal {o} too large"))?;
            let stamp = w.sequence_number.checked_sub(age).ok_or_else(|| {
                format!(
                    "sequenceAges[{o}]: age {age} exceeds sequenceNumber {}",
                    w.sequence_number
                )
            })?;
            if stamps.insert(o, stamp).is_some() {
                return Err(format!(
                    "ordinal {o} is stamped both in sequenceAges and in sequenceNumberForAllocation"
                ));
            }
        }
        let unallocated = w
            .unallocated
            .to_u32()
            .enumerate()
            .map(|(i, o)| o.ok_or_else(|| format!("unallocated[{i}] is null")))
            .collect::<Result<Vec<u32>, String>>()?;
        if !w.handle_prefix.is_empty() && !w.attributes.iter().any(|a| a.1) {
            return Err("handlePrefix without a bare-handle attribute".to_owned());
        }
        Ok(Block {
            cidr: w.cidr,
            affinity: w.affinity,
            affinity_claim_time: w.affinity_claim_time,
            allocations: w.allocations.to_u32().collect(),
            unallocated,
            attributes: w
                .attributes
                .into_iter()
                .map(|a| match a {
                    AttrWire(a, true) if !w.handle_prefix.is_empty() => Attribute {
                        handle: a.handle.map(|h| format!("{}{h}", w.handle_prefix)),
                        ..a
                    },
                    AttrWire(a, _) => a,
                })
                .collect(),
            sequence_number: w.sequence_number,
            sequence_number_for_allocation: stamps,
        })
    }
}

/// An attribute as stored: a bare handle string (`true`: its `handlePrefix` left off), or
/// an object.
struct AttrWire(Attribute, bool);

impl<'de> Deserialize<'de> for AttrWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AttrWire, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttrWire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a handle string or an attribute object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrWire, E> {
                Ok(AttrWire(
                    Attribute {
                        handle: Some(v.to_owned()),
                        ..Attribute::default()
                    },
                    true,
                ))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttrWire, E> {
                Ok(AttrWire(
                    Attribute {
                        handle: Some(v),
                        ..Attribute::default()
                    },
                    true,
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttrWire, A::Error> {
                Attribute::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|a| AttrWire(a, false))
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

/// The longest prefix (on a character boundary) shared by every handle-only attribute,
/// when there are at least two of them.
fn common_handle_prefix(attrs: &[Attribute]) -> &str {
    let mut handles = attrs.iter().filter_map(handle_only);
    let Some(mut prefix) = handles.next() else {
        return "";
    };
    let mut n = 1;
    for h in handles {
        n += 1;
        let common = prefix
            .char_indices()
            .zip(h.chars())
            .find(|((_, a), b)| a != b)
            .map_or(prefix.len().min(h.len()), |((i, _), _)| i);
        // `common` is a character boundary of `prefix` (an index from char_indices, or
        // the length of the shorter string, whose characters all matched).
        prefix = prefix.get(..common).unwrap_or("");
        if prefix.is_empty() {
            break;
        }
    }
    if n >= 2 { prefix } else { "" }
}

struct Attrs<'a>(&'a [Attribute], &'a str);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            match handle_only(a) {
                Some(h) => seq.serialize_element(h.get(self.1.len()..).unwrap_or(h))?,
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
        let prefix = common_handle_prefix(&self.attributes);
        let fields = 7
            + usize::from(self.affinity.is_some())
            + usize::from(!rest.is_empty())
            + usize::from(!prefix.is_empty());
        let allocations: Vec<Option<u64>> =
            self.allocations.iter().map(|a| a.map(u64::from)).collect();
        let unallocated: Vec<Option<u64>> = self
            .unallocated
            .iter()
            .map(|&o| Some(u64::from(o)))
            .collect();
        let mut st = s.serialize_struct("Block", fields)?;
        st.serialize_field("cidr", &self.cidr)?;
        if let Some(a) = &self.affinity {
            st.serialize_field("affinity", a)?;
        }
        st.serialize_field("affinityClaimTime", &self.affinity_claim_time)?;
        st.serialize_field("allocations", &runs(&allocations))?;
        st.serialize_field("unallocated", &runs(&unallocated))?;
        if !prefix.is_empty() {
            st.serialize_field("handlePrefix", prefix)?;
        }
        st.serialize_field("attributes", &Attrs(&self.attributes, prefix))?;
        st.serialize_field("sequenceNumber", &self.sequence_number)?;
        st.serialize_field("sequenceAges", &runs(&ages))?;
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
            b.take(
                1,
                Some(&format!("k8s-pod-network.{i:03}")),
                &BTreeMap::new(),
                &[],
            );
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
        assert_eq!(v["handlePrefix"], "k8s-pod-network.0");
        assert_eq!(v["attributes"][0], "00");
        assert_eq!(v["attributes"][3]["owner"]["pod"], "p");
        assert_eq!(
            v["sequenceNumberForAllocation"]
                .as_object()
                .map(|m| m.len()),
            Some(2)
        );
        // A block filled in order: each array is one run.
        let text = serde_json::to_string(&full_block()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["allocations"], serde_json::json!([[0, 64, 1]]));
        assert_eq!(v["sequenceAges"], serde_json::json!([[63, 64, -1]]));
        assert_eq!(v["unallocated"], serde_json::json!([]));
        assert!(text.len() < 600, "{} bytes: {text}", text.len());
    }

    #[test]
    fn runs_decode_plain_arrays_and_reject_bad_runs() {
        let r: Runs<{ u32::MAX as u64 }> =
            serde_json::from_str("[1, null, [5, 3, -2], [null, 2], 7]").unwrap();
        assert_eq!(
            r.0,
            vec![
                Some(1),
                None,
                Some(5),
                Some(3),
                Some(1),
                None,
                None,
                Some(7)
            ]
        );
        for bad in [
            "[[5, 4, -2]]",
            "[[0, 2, 4294967296]]",
            "[4294967296]",
            "[[0, 2000000, 1]]",
            "[1, [0, 18446744073709551615, 0]]",
            "[[null, 18446744073709551615]]",
            "[[1, 2]]",
            "[[]]",
            "[[1, 2, 3, 4]]",
            "[-1]",
            "[\"x\"]",
        ] {
            assert!(
                serde_json::from_str::<Runs<{ u32::MAX as u64 }>>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn impossible_blocks_are_errors_naming_the_field() {
        let base = |extra: &str| {
            format!(
                r#"{{"cidr":"10.0.0.0/30","affinityClaimTime":0,"allocations":[0,null,null,null],"unallocated":[1,2,3],"attributes":[{{"handle":"h"}}],"sequenceNumber":10{extra}}}"#
            )
        };
        let ok: Block = serde_json::from_str(&base(r#","sequenceAges":[3]"#)).unwrap();
        assert_eq!(ok.sequence_number_for_allocation.get(&0), Some(&7));
        for (extra, field) in [
            (r#","sequenceAges":[11]"#, "sequenceAges[0]"),
            (
                r#","sequenceAges":[3],"sequenceNumberForAllocation":{"0":7}"#,
                "ordinal 0",
            ),
            (r#","handlePrefix":"k8s.""#, "handlePrefix"),
        ] {
            let err = serde_json::from_str::<Block>(&base(extra)).unwrap_err();
            assert!(err.to_string().contains(field), "{extra}: {err}");
        }
        let null_free = base("").replace("[1,2,3]", "[1,null,3]");
        let err = serde_json::from_str::<Block>(&null_free).unwrap_err();
        assert!(err.to_string().contains("unallocated[1]"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn runs_round_trip(values in proptest::collection::vec(
            proptest::option::of(proptest::prop_oneof![0u64..8, proptest::num::u64::ANY]),
            0..80,
        )) {
            let text = serde_json::to_string(&runs(&values)).unwrap();
            let back: Runs<{ u64::MAX }> = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back.0, values);
        }

        #[test]
        fn handle_prefixes_round_trip(handles in proptest::collection::vec("[ab\u{e9}]{0,4}", 0..6)) {
            let mut b = Block::new("10.0.0.0/29".parse().unwrap(), None, 5);
            for h in &handles {
                b.take(1, Some(h), &BTreeMap::new(), &[]);
            }
            let text = serde_json::to_string(&b).unwrap();
            let back: Block = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back, b);
        }
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
        assert!(
            serde_json::from_str::<Block>(&plain_text.replace("\"k8s-pod-network.001\"", "7"))
                .is_err()
        );
    }
}
