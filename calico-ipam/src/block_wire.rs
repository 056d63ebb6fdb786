//! The stored JSON of a [`Block`]: Calico's `AllocationBlock`, field for field and in the
//! order Go's encoder writes it:
//!
//! ```text
//! {"cidr":"10.65.226.64/26","affinity":"host:worker-1","affinity_claim_time":"2026-08-20T08:58:44Z",
//!  "allocations":[0,1,2,null,…],"unallocated":[3,4,…],
//!  "attributes":[{"handle_id":"…","secondary":{"node":"worker-1",…}},…],
//!  "sequenceNumber":1787216324318205120,
//!  "sequenceNumberForAllocation":{"0":1787216324318205117,…},"deleted":false}
//! ```
//!
//! * `affinity` is always present (`null` when unaffine); `affinity_claim_time` (RFC 3339,
//!   whole seconds, UTC) only when set;
//! * `attributes` is `null` when there are none (as in a fresh block); an attribute writes
//!   `handle_id`, `secondary`, `alternateOwnerAttrs` and `releasedAt` only when set;
//! * `sequenceNumberForAllocation` is `{}` when empty, its keys (ordinals as text) sorted as
//!   strings, as Go sorts map keys;
//! * `deleted` is always `false`.
//!
//! Reading is lenient where Calico's reader is: a missing or `null` array or map reads as
//! empty, `deleted` is ignored (a live value whatever it says), the legacy `hostAffinity`
//! stands for `affinity: "host:<node>"` when `affinity` is not set, and a `cidr` with host
//! bits is masked. What cannot be represented is an error naming the field: a negative or
//! huge index, a free ordinal that is not a number, a stamp key that is not an ordinal or is
//! given twice, a time that is not RFC 3339.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::block::{Attribute, Block};
use calico_model::gotime::{UnixSeconds, format_rfc3339, parse_rfc3339};

/// A block as stored (the fields a reader looks at).
#[derive(Deserialize)]
pub(crate) struct BlockWire {
    cidr: String,
    #[serde(default)]
    affinity: Option<String>,
    #[serde(default)]
    affinity_claim_time: Option<String>,
    #[serde(default)]
    allocations: Option<Vec<Option<i64>>>,
    #[serde(default)]
    unallocated: Option<Vec<i64>>,
    #[serde(default)]
    attributes: Option<Vec<AttrWire>>,
    #[serde(default, rename = "sequenceNumber")]
    sequence_number: u64,
    #[serde(default, rename = "sequenceNumberForAllocation")]
    stamps: Option<BTreeMap<String, u64>>,
    #[serde(default, rename = "hostAffinity")]
    host_affinity: Option<String>,
}

/// An attribute as stored.
#[derive(Deserialize)]
struct AttrWire {
    #[serde(default)]
    handle_id: Option<String>,
    #[serde(default)]
    secondary: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "alternateOwnerAttrs")]
    alternate: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "releasedAt")]
    released_at: Option<String>,
}

fn time_of(field: &str, s: Option<String>) -> Result<Option<UnixSeconds>, String> {
    match s {
        None => Ok(None),
        Some(t) => parse_rfc3339(&t)
            .map(Some)
            .ok_or_else(|| format!("{field}: {t:?} is not an RFC 3339 time")),
    }
}

fn index(field: &str, i: usize, v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{field}[{i}]: {v} is not an ordinal or index"))
}

impl TryFrom<BlockWire> for Block {
    type Error = String;

    fn try_from(w: BlockWire) -> Result<Block, String> {
        let cidr: IpNet = w
            .cidr
            .parse()
            .map_err(|_| format!("cidr: {:?} is not a CIDR", w.cidr))?;
        let allocations = w
            .allocations
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.map(|v| index("allocations", i, v)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let unallocated = w
            .unallocated
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, v)| index("unallocated", i, v))
            .collect::<Result<Vec<_>, _>>()?;
        let attributes = w
            .attributes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(Attribute {
                    handle: a.handle_id,
                    owner: a.secondary.unwrap_or_default(),
                    alternate_owner: a.alternate.unwrap_or_default(),
                    released_at: time_of(&format!("attributes[{i}].releasedAt"), a.released_at)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut stamps = BTreeMap::new();
        for (k, v) in w.stamps.unwrap_or_default() {
            let o = (!k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .then(|| k.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| {
                    format!("sequenceNumberForAllocation: key {k:?} is not an ordinal")
                })?;
            if stamps.insert(o, v).is_some() {
                return Err(format!(
                    "sequenceNumberForAllocation: ordinal {o} is given twice"
                ));
            }
        }
        let affinity = w
            .affinity
            .or_else(|| w.host_affinity.map(|h| format!("host:{h}")));
        Ok(Block {
            cidr: cidr.trunc(),
            affinity,
            affinity_claim_time: time_of("affinity_claim_time", w.affinity_claim_time)?,
            allocations,
            unallocated,
            attributes,
            sequence_number: w.sequence_number,
            sequence_number_for_allocation: stamps,
        })
    }
}

impl Block {
    /// The stored value: Calico's `AllocationBlock` JSON as Go writes it.
    pub fn to_json(&self) -> Vec<u8> {
        crate::work::encode(self)
    }

    /// Decodes a stored value; the error names what does not decode (never a panic).
    pub fn from_json(value: &[u8]) -> Result<Block, String> {
        crate::work::decode::<Block>(b"block", value).map_err(|e| match e {
            crate::IpamError::Decode { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

/// An RFC 3339 time (`null` outside the years RFC 3339 can write).
struct Rfc3339(UnixSeconds);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        format_rfc3339(self.0).serialize(s)
    }
}

impl Serialize for Attribute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = usize::from(self.handle.is_some())
            + usize::from(!self.owner.is_empty())
            + usize::from(!self.alternate_owner.is_empty())
            + usize::from(self.released_at.is_some());
        let mut st = s.serialize_struct("AllocationAttribute", n)?;
        if let Some(h) = &self.handle {
            st.serialize_field("handle_id", h)?;
        }
        if !self.owner.is_empty() {
            st.serialize_field("secondary", &self.owner)?;
        }
        if !self.alternate_owner.is_empty() {
            st.serialize_field("alternateOwnerAttrs", &self.alternate_owner)?;
        }
        if let Some(t) = self.released_at {
            st.serialize_field("releasedAt", &Rfc3339(t))?;
        }
        st.end()
    }
}

/// The stamps map with its keys in Go's order (ordinals as strings, sorted as strings).
struct Stamps<'a>(&'a BTreeMap<u32, u64>);

impl Serialize for Stamps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(String, u64)> =
            self.0.iter().map(|(o, v)| (o.to_string(), *v)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut m = s.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = 8 + usize::from(self.affinity_claim_time.is_some());
        let mut st = s.serialize_struct("AllocationBlock", n)?;
        st.serialize_field("cidr", &self.cidr.to_string())?;
        st.serialize_field("affinity", &self.affinity)?;
        if let Some(t) = self.affinity_claim_time {
            st.serialize_field("affinity_claim_time", &Rfc3339(t))?;
        }
        st.serialize_field("allocations", &self.allocations)?;
        st.serialize_field("unallocated", &self.unallocated)?;
        if self.attributes.is_empty() {
            st.serialize_field("attributes", &None::<()>)?;
        } else {
            st.serialize_field("attributes", &self.attributes)?;
        }
        st.serialize_field("sequenceNumber", &self.sequence_number)?;
        st.serialize_field(
            "sequenceNumberForAllocation",
            &Stamps(&self.sequence_number_for_allocation),
        )?;
        st.serialize_field("deleted", &false)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Owner;
    use crate::work::encode;

    fn dec(text: &str) -> Result<Block, String> {
        serde_json::from_str::<Block>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_fresh_block_is_written_as_calico_writes_it() {
        let b = Block::new(
            "10.0.0.0/30".parse().unwrap(),
            Some(&Owner::host("n")),
            1_787_216_324_318_205_117,
        );
        assert_eq!(
            String::from_utf8(encode(&b)).unwrap(),
            r#"{"cidr":"10.0.0.0/30","affinity":"host:n","affinity_claim_time":"2026-08-20T08:58:44Z","allocations":[null,null,null,null],"unallocated":[0,1,2,3],"attributes":null,"sequenceNumber":1787216324318205117,"sequenceNumberForAllocation":{},"deleted":false}"#
        );
        let unaffine = Block::new("fd00::/126".parse().unwrap(), None, 5);
        assert_eq!(
            String::from_utf8(encode(&unaffine)).unwrap(),
            r#"{"cidr":"fd00::/126","affinity":null,"allocations":[null,null,null,null],"unallocated":[0,1,2,3],"attributes":null,"sequenceNumber":5,"sequenceNumberForAllocation":{},"deleted":false}"#
        );
    }

    #[test]
    fn stamps_are_sorted_as_go_sorts_map_keys_and_html_is_escaped() {
        let mut b = Block::new("10.0.0.0/28".parse().unwrap(), None, 7);
        let mut owner = BTreeMap::new();
        owner.insert("note".to_owned(), "a<b>&c\u{2028}".to_owned());
        b.take(12, Some("h"), &owner, &[]);
        let text = String::from_utf8(encode(&b)).unwrap();
        assert!(
            text.contains(r#""sequenceNumberForAllocation":{"0":7,"1":7,"10":7,"11":7,"2":7,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""note":"a\u003cb\u003e\u0026c\u2028""#),
            "{text}"
        );
        assert_eq!(dec(&text).unwrap(), b);
    }

    fn seeds() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/ipam_block");
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_fuzz_seeds_decode_and_round_trip() {
        let seeds = seeds();
        assert!((2..=4).contains(&seeds.len()));
        for s in seeds {
            let b = Block::from_json(&s).unwrap();
            assert_eq!(Block::from_json(&b.to_json()).unwrap(), b);
        }
    }

    proptest::proptest! {
        #[test]
        fn mutated_values_never_panic_and_round_trip_when_they_decode(
            seed in 0usize..3,
            edits in proptest::collection::vec((0usize..4000, proptest::num::u8::ANY), 1..6),
        ) {
            let seeds = seeds();
            let mut v = seeds[seed % seeds.len()].clone();
            for (at, byte) in edits {
                let at = at % v.len();
                v[at] = byte;
            }
            if let Ok(b) = Block::from_json(&v) {
                let text = b.to_json();
                let back = Block::from_json(&text).map_err(proptest::test_runner::TestCaseError::fail)?;
                proptest::prop_assert_eq!(&back, &b);
                proptest::prop_assert_eq!(back.to_json(), text);
                let _ = (b.violations(0), b.broken_invariant());
            }
        }
    }

    #[test]
    fn lenient_where_calico_is_and_errors_name_the_field() {
        let ok = dec(r#"{"cidr":"10.0.0.5/30","hostAffinity":"old","allocations":null,"unallocated":null,"attributes":null,"sequenceNumberForAllocation":null,"deleted":true,"strictAffinity":false}"#).unwrap();
        assert_eq!(ok.cidr, "10.0.0.4/30".parse::<IpNet>().unwrap());
        assert_eq!(ok.affinity.as_deref(), Some("host:old"));
        assert!(ok.allocations.is_empty() && ok.attributes.is_empty());
        for (text, field) in [
            (r#"{"cidr":"x"}"#, "cidr"),
            (
                r#"{"cidr":"10.0.0.0/30","allocations":[-1]}"#,
                "allocations[0]",
            ),
            (
                r#"{"cidr":"10.0.0.0/30","unallocated":[0,4294967296]}"#,
                "unallocated[1]",
            ),
            (
                r#"{"cidr":"10.0.0.0/30","sequenceNumberForAllocation":{"x":1}}"#,
                "sequenceNumberForAllocation",
            ),
            (
                r#"{"cidr":"10.0.0.0/30","sequenceNumberForAllocation":{"1":1,"01":2}}"#,
                "given twice",
            ),
            (
                r#"{"cidr":"10.0.0.0/30","affinity_claim_time":"yesterday"}"#,
                "affinity_claim_time",
            ),
            (
                r#"{"cidr":"10.0.0.0/30","attributes":[{"releasedAt":"1"}]}"#,
                "attributes[0].releasedAt",
            ),
            (r#"{"cidr":"10.0.0.0/30","sequenceNumber":-1}"#, "invalid"),
            (r#""x""#, "invalid type"),
        ] {
            let err = dec(text).unwrap_err();
            assert!(err.contains(field), "{text}: {err}");
        }
    }
}
