//! Typed decoding of one object from its JSON value, with Kubernetes' conversions and, in
//! lenient mode, dropping what does not decode.
//!
//! The typed decode runs on the value; when it fails, the failing field is looked at:
//!
//! - a boolean or number where a string is expected becomes its text (see
//!   [`super::scalars`]), and a null there the empty string, as Kubernetes' YAML reader
//!   writes them;
//! - a float with no fraction where an integer is expected (YAML 1.1 reads `080` and `1e2`
//!   as floats) becomes that integer, as Kubernetes' JSON step writes it;
//! - a null object field where a list, map or object is expected is removed (the field's
//!   zero value, as Go's JSON decoder leaves it);
//! - otherwise, strictly, the failure is the result; leniently, the smallest part holding
//!   the failure is removed and recorded: the whole policy rule when the failure is inside
//!   one (a rule that lost a condition would match more than written), else the innermost
//!   list item holding it (a bad container port drops that port), else the field itself;
//!   when the enclosing object cannot do without a removed field (a required field), the
//!   object goes too, in the same record.
//!
//! Then the decode runs again. Field paths in records are those of the input as written:
//! list indexes count the items removed before them.

use std::collections::HashMap;

use serde_json::Value;

use super::scalars::go_string;
use crate::resources::{Kind, Resource};

/// A field the decode could not use: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Field path in the input as written.
    pub(crate) field_path: String,
    /// What was wrong and what was dropped.
    pub(crate) message: String,
}

/// The outcome of decoding one object.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The object, or why it could not be decoded at all.
    pub(crate) result: Result<Resource, Dropped>,
    /// Fields dropped on the way (lenient mode only).
    pub(crate) dropped: Vec<Dropped>,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
    /// An enum variant or an unknown step: shown, not followed.
    Other(String),
}

/// Enough for every scalar of any real object; bounds the work on hostile input.
const MAX_FIXES: usize = 1024;

/// Decodes `value` as `kind` (see the module docs).
pub(crate) fn decode(kind: Kind, mut value: Value, lenient: bool) -> Decoded {
    let mut dropped: Vec<Dropped> = Vec::new();
    // Items removed so far from each list, by the list's path as written.
    let mut removed: HashMap<String, usize> = HashMap::new();
    // The path (as decoded now) of the last field dropped, to fold a follow-up
    // "missing field" into the same record.
    let mut last_drop: Option<Vec<Seg>> = None;
    for _ in 0..MAX_FIXES {
        let err = match Resource::from_json_ref(kind, &value) {
            Ok(resource) => {
                return Decoded {
                    result: Ok(resource),
                    dropped,
                };
            }
            Err(e) => e,
        };
        let segs = segments(err.path());
        let msg = err.inner().to_string();
        if fix_like_kubernetes(&mut value, &segs, &msg) {
            continue;
        }
        let written = written_path(&segs, &removed);
        if !lenient {
            return failure(dropped, &written, msg);
        }
        let missing = msg.starts_with("missing field");
        let folds = missing
            && last_drop
                .as_ref()
                .is_some_and(|d| d.len() > segs.len() && d[..segs.len()] == segs[..]);
        if segs.iter().any(|s| matches!(s, Seg::Other(_))) {
            return failure(dropped, &written, msg);
        }
        let cut = drop_point(&segs);
        if cut == 0 || !remove(&mut value, &segs[..cut], &mut removed, &written[..cut]) {
            return failure(dropped, &written, msg);
        }
        let shown = path_string(&written[..cut]);
        let note = if cut == segs.len() && !missing {
            "the field is dropped".to_owned()
        } else {
            format!("{shown} is dropped")
        };
        if folds {
            if let Some(d) = dropped.last_mut() {
                d.message = format!("{}; {note}", strip_drop_note(&d.message));
            }
        } else {
            dropped.push(Dropped {
                field_path: path_string(&written),
                message: format!("{msg}; {note}"),
            });
        }
        last_drop = Some(segs[..cut].to_vec());
    }
    Decoded {
        result: Err(Dropped {
            field_path: String::new(),
            message: "too many fields to repair".to_owned(),
        }),
        dropped,
    }
}

/// How much of `segs` to remove: a whole policy rule (`spec.ingress[i]`, `spec.egress[i]`)
/// when the failure is inside one, since a rule without one of its conditions would match
/// more than written; else the innermost list item holding the failure; else the field.
fn drop_point(segs: &[Seg]) -> usize {
    if let [Seg::Key(spec), Seg::Key(dir), Seg::Index(_), ..] = segs {
        if spec == "spec" && (dir == "ingress" || dir == "egress") {
            return 3;
        }
    }
    segs.iter()
        .rposition(|s| matches!(s, Seg::Index(_)))
        .map_or(segs.len(), |i| i + 1)
}

fn failure(dropped: Vec<Dropped>, written: &[Seg], message: String) -> Decoded {
    Decoded {
        result: Err(Dropped {
            field_path: path_string(written),
            message,
        }),
        dropped,
    }
}

fn strip_drop_note(m: &str) -> &str {
    m.rsplit_once("; ").map_or(m, |(head, _)| head)
}

/// Kubernetes' own conversions; `true` when the value was changed.
fn fix_like_kubernetes(value: &mut Value, segs: &[Seg], msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix("invalid type: ") else {
        return false;
    };
    if segs.iter().any(|s| matches!(s, Seg::Other(_))) {
        return false;
    }
    // A float with no fraction where the model has an integer (YAML 1.1 reads `080` and
    // `1e2` as floats): Kubernetes' JSON step writes it as an integer.
    if rest.starts_with("floating point") && !rest.ends_with("expected a string") {
        if let Some(slot) = navigate(value, segs) {
            if let Some(n) = slot.as_f64().and_then(integral) {
                *slot = Value::Number(n);
                return true;
            }
        }
    }
    if rest.ends_with("expected a string") {
        if let Some(slot) = navigate(value, segs) {
            if let Some(text) = go_string(slot) {
                *slot = Value::String(text);
                return true;
            }
            if slot.is_null() {
                *slot = Value::String(String::new());
                return true;
            }
        }
        return false;
    }
    if rest.starts_with("null,") && matches!(segs.last(), Some(Seg::Key(_))) {
        let is_null = navigate(value, segs).is_some_and(|v| v.is_null());
        if is_null {
            let mut scratch = HashMap::new();
            return remove(value, segs, &mut scratch, &[]);
        }
    }
    false
}

/// `f` as an integer when it has no fraction and fits 64 bits.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn integral(f: f64) -> Option<serde_json::Number> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    let two_63 = 2f64.powi(63);
    if (-two_63..two_63).contains(&f) {
        Some((f as i64).into())
    } else if (0.0..2f64.powi(64)).contains(&f) {
        Some((f as u64).into())
    } else {
        None
    }
}

fn navigate<'v>(value: &'v mut Value, segs: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = value;
    for s in segs {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the value at `segs`; a list item removal is counted for `written`'s list.
fn remove(
    value: &mut Value,
    segs: &[Seg],
    removed: &mut HashMap<String, usize>,
    written: &[Seg],
) -> bool {
    let Some((last, parent)) = segs.split_last() else {
        return false;
    };
    match (last, navigate(value, parent)) {
        (Seg::Key(k), Some(Value::Object(m))) => m.remove(k).is_some(),
        (Seg::Index(i), Some(Value::Array(a))) if *i < a.len() => {
            a.remove(*i);
            if let Some((_, list)) = written.split_last() {
                *removed.entry(path_string(list)).or_default() += 1;
            }
            true
        }
        _ => false,
    }
}

/// The path as written: a list index plus the items removed from that list so far (they
/// all came before it, since the decode reads lists in order and stops at the first
/// failure).
fn written_path(segs: &[Seg], removed: &HashMap<String, usize>) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::with_capacity(segs.len());
    for s in segs {
        let step = match s {
            Seg::Index(i) => Seg::Index(i + removed.get(&path_string(&out)).copied().unwrap_or(0)),
            other => other.clone(),
        };
        out.push(step);
    }
    out
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|seg| match seg {
            Segment::Seq { index } => Seg::Index(*index),
            Segment::Map { key } => Seg::Key(key.clone()),
            Segment::Enum { variant } => Seg::Other(variant.clone()),
            Segment::Unknown => Seg::Other("?".to_owned()),
        })
        .collect()
}

/// Map-valued fields whose keys are printed as `[key]` in field paths.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "labelsToApply",
    "matchLabels",
    "nodeSelector",
];

/// A field path as printed in problems: `spec.ingress[0].ports`, `metadata.labels[app]`.
fn path_string(segs: &[Seg]) -> String {
    let mut out = String::new();
    let mut prev_key: Option<&str> = None;
    for seg in segs {
        match seg {
            Seg::Index(index) => {
                out.push_str(&format!("[{index}]"));
                prev_key = None;
            }
            Seg::Key(key) => {
                if prev_key.is_some_and(|p| MAP_FIELDS.contains(&p)) {
                    out.push_str(&format!("[{key}]"));
                    prev_key = None;
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                    prev_key = Some(key);
                }
            }
            Seg::Other(text) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(text);
                prev_key = None;
            }
        }
    }
    out
}
