//! Stored values: decoding what Calico (or we) stored into typed objects, encoding objects
//! the way Calico's Go client writes them, and carrying fields we do not model across a
//! read–modify–write.

use calico_datastore::Revision;
use calico_model::resources::Resource;
use serde_json::{Map, Value};

use super::layout::{
    KeyError, POLICY_NAME_ANNOTATION, ResourceKey, ResourceType, TIER_LABEL, parse_key,
};

/// A stored value that cannot be used, with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct DecodeError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// One stored object as read.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// Its type.
    pub ty: &'static ResourceType,
    /// The key's mod revision (the object's `metadata.resourceVersion`).
    pub mod_revision: Revision,
    /// The value exactly as stored (decoded JSON, every field kept).
    pub raw: Map<String, Value>,
    /// The object as Calico's tools show it: the stored value with its real name (the
    /// policy-name annotation resolved and removed), its namespace, and
    /// `metadata.resourceVersion` set; for IPPools, the defaults Calico re-applies on read.
    /// Fields we do not model are kept.
    pub value: Map<String, Value>,
    /// The typed object, for modelled kinds (fields we do not model dropped).
    pub object: Option<Resource>,
}

impl StoredObject {
    /// The object's name (as Calico's tools show it).
    pub fn name(&self) -> &str {
        meta_str(&self.value, "name").unwrap_or_default()
    }

    /// The object's namespace (namespaced kinds).
    pub fn namespace(&self) -> Option<&str> {
        if self.ty.namespaced {
            meta_str(&self.value, "namespace")
        } else {
            None
        }
    }

    /// `Kind(name)` / `Kind(namespace/name)`.
    pub fn ident(&self) -> String {
        self.ty.ident(self.namespace(), self.name())
    }
}

fn meta_str<'a>(v: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

/// Decodes one stored key–value pair.
pub fn decode(
    key: &[u8],
    value: &[u8],
    mod_revision: Revision,
) -> Result<StoredObject, DecodeError> {
    let key_text = String::from_utf8_lossy(key).into_owned();
    let bad = |reason: String| DecodeError {
        key: key_text.clone(),
        reason,
    };
    let parsed = parse_key(key).map_err(|e: KeyError| bad(e.to_string()))?;
    decode_parsed(&parsed, &key_text, value, mod_revision).map_err(bad)
}

fn decode_parsed(
    parsed: &ResourceKey,
    key: &str,
    value: &[u8],
    mod_revision: Revision,
) -> Result<StoredObject, String> {
    let raw = parse_object(value)?;
    let (shown, object) = normalize(parsed, raw.clone(), mod_revision, true)?;
    Ok(StoredObject {
        key: key.to_owned(),
        ty: parsed.ty,
        mod_revision,
        raw,
        value: shown,
        object,
    })
}

/// Decodes one stored key–value pair into the object alone (what [`decode`] gives as
/// [`StoredObject::object`]), without keeping the stored JSON: for a follower of the
/// datastore that decodes every object and keeps only the resources.
pub fn decode_resource(
    key: &[u8],
    value: &[u8],
    mod_revision: Revision,
) -> Result<Option<Resource>, DecodeError> {
    let bad = |reason: String| DecodeError {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let parsed = parse_key(key).map_err(|e: KeyError| bad(e.to_string()))?;
    let raw = parse_object(value).map_err(bad)?;
    normalize(&parsed, raw, mod_revision, false)
        .map(|(_, object)| object)
        .map_err(bad)
}

/// The stored value as a JSON object.
fn parse_object(value: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "the value is not a JSON object but {}",
            kind_of(&other)
        )),
        Err(e) => Err(format!("the value is not JSON: {e}")),
    }
}

/// The stored object as Calico's tools show it (real name, namespace, resource version,
/// kind, IP pool defaults; see [`StoredObject::value`]) and the resource it decodes to.
/// Without `shown_too`, the shown JSON of an IP pool is not brought up to date with the
/// defaults (only the resource is wanted).
fn normalize(
    parsed: &ResourceKey,
    mut shown: Map<String, Value>,
    mod_revision: Revision,
    shown_too: bool,
) -> Result<(Map<String, Value>, Option<Resource>), String> {
    let ty = parsed.ty;
    let tier = shown
        .get("spec")
        .and_then(|s| s.get("tier"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let meta = match shown
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => m,
        other => return Err(format!("metadata is {}, not an object", kind_of(other))),
    };
    let stored_name = match meta.get("name") {
        None | Some(Value::Null) => parsed.name.clone(),
        Some(Value::String(s)) if s.is_empty() => parsed.name.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("metadata.name is {}, not a string", kind_of(other))),
    };
    let name = if ty.is_tiered_policy() {
        policy_name(meta, &stored_name, &tier)?
    } else {
        stored_name
    };
    meta.insert("name".into(), Value::String(name));
    if let Some(ns) = &parsed.namespace {
        let missing = !matches!(meta.get("namespace"), Some(Value::String(s)) if !s.is_empty());
        if missing {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert(
        "resourceVersion".into(),
        Value::String(mod_revision.to_string()),
    );
    // A zero timestamp (`null`, older Go) means none.
    if meta.get("creationTimestamp") == Some(&Value::Null) {
        meta.remove("creationTimestamp");
    }
    shown.insert("kind".into(), Value::String(ty.kind.into()));
    shown.insert("apiVersion".into(), Value::String(ty.api_version.into()));
    let object = match ty.model {
        None => None,
        Some(kind) => {
            let mut r = decode_lenient(kind, &mut shown)?;
            if kind == calico_model::resources::Kind::IpPool {
                // Calico applies the pool defaults to what it reads.
                r.apply_defaults();
                if shown_too {
                    let typed = r
                        .to_json_value()
                        .map_err(|e| format!("cannot re-encode: {e}"))?;
                    let projected = project(kind, &shown)?;
                    let mut v = typed;
                    merge_unknown(&mut v, &Value::Object(shown.clone()), &projected);
                    if let Value::Object(m) = v {
                        shown = m;
                    }
                }
            }
            Some(r)
        }
    };
    Ok((shown, object))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The real name of a stored tiered policy: the name annotation when present (which is then
/// removed from `meta`), else the stored name with a leading `default.` dropped for the
/// default tier (how versions before the annotation stored default-tier policies), else the
/// stored name.
fn policy_name(meta: &mut Map<String, Value>, stored: &str, tier: &str) -> Result<String, String> {
    let annotation = match meta.get_mut("annotations") {
        Some(Value::Object(a)) => {
            let v = a.remove(POLICY_NAME_ANNOTATION);
            if a.is_empty() {
                meta.remove("annotations");
            }
            v
        }
        _ => None,
    };
    if let Some(v) = annotation {
        let text = v
            .as_str()
            .ok_or_else(|| format!("annotation {POLICY_NAME_ANNOTATION} is not a string"))?;
        let parsed: Value = serde_json::from_str(text).map_err(|e| {
            format!("annotation {POLICY_NAME_ANNOTATION} is not JSON ({e}): {text:?}")
        })?;
        return match parsed.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => Ok(n.to_owned()),
            _ => Err(format!(
                "annotation {POLICY_NAME_ANNOTATION} has no name: {text:?}"
            )),
        };
    }
    if (tier.is_empty() || tier == "default")
        && let Some(rest) = stored.strip_prefix("default.")
    {
        return Ok(rest.to_owned());
    }
    Ok(stored.to_owned())
}

/// Decodes a typed object, dropping fields calico-model does not know (as Calico's lenient
/// decoding does) one at a time; a value that is wrong in a field we do model is an error
/// naming the field.
fn decode_lenient(
    kind: calico_model::resources::Kind,
    value: &mut Map<String, Value>,
) -> Result<Resource, String> {
    // The value as stored decodes (the common case) without a copy of it.
    let v = Value::Object(std::mem::take(value));
    let first = Resource::from_json_ref(kind, &v);
    if let Value::Object(back) = v {
        *value = back;
    }
    if let Ok(r) = first {
        return Ok(r);
    }
    let mut v = Value::Object(value.clone());
    // Each round removes one field; a value cannot hold more fields than bytes.
    for _ in 0..10_000 {
        match Resource::from_json_ref(kind, &v) {
            Ok(r) => return Ok(r),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.inner().to_string();
                match unknown_field(&inner) {
                    Some(field) if remove_at(&mut v, &path, field) => {}
                    _ => return Err(format!("{path}: {inner}")),
                }
            }
        }
    }
    Err("too many unknown fields".into())
}

/// The field an "unknown field `x`, expected ..." error names.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f)
}

/// Removes `field` from the object at `path` (a serde_path_to_error path: `.`-separated
/// map keys and `[i]` indices; the path may or may not end with the field itself).
fn remove_at(v: &mut Value, path: &str, field: &str) -> bool {
    let mut segs = split_path(path);
    if segs.last().map(String::as_str) == Some(field) {
        segs.pop();
    }
    let mut cur = v;
    for s in &segs {
        cur = match (s.strip_prefix('[').and_then(|r| r.strip_suffix(']')), cur) {
            (Some(i), Value::Array(a)) => {
                match i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    Some(x) => x,
                    None => return false,
                }
            }
            (None, Value::Object(m)) => match m.get_mut(s.as_str()) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(m) => m.remove(field).is_some(),
        _ => false,
    }
}

fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if path == "." || path.is_empty() {
        return out;
    }
    for part in path.split('.') {
        // `a[0][1]` is a key followed by indices.
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_owned());
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push(rest[..=end].to_owned());
                rest = &rest[end + 1..];
            }
        } else {
            out.push(rest.to_owned());
        }
    }
    out
}

/// What our model keeps of a stored object: it decoded leniently and encoded again.
pub(crate) fn project(
    kind: calico_model::resources::Kind,
    value: &Map<String, Value>,
) -> Result<Value, String> {
    let r = decode_lenient(kind, &mut value.clone())?;
    r.to_json_value()
        .map_err(|e| format!("cannot re-encode: {e}"))
}

/// Carries the fields of `raw` that our model does not know onto `new`: a field of `raw`
/// absent from `projected` (what our model made of `raw`) is copied into `new` unless `new`
/// sets it; fields both know are merged recursively (objects by key, arrays index by index
/// when all three have the same length). Fields our model knows take `new`'s value, so a
/// field removed on purpose stays removed.
pub fn merge_unknown(new: &mut Value, raw: &Value, projected: &Value) {
    match (new, raw, projected) {
        (Value::Object(n), Value::Object(r), Value::Object(p)) => {
            for (k, rv) in r {
                match p.get(k) {
                    None => {
                        n.entry(k.clone()).or_insert_with(|| rv.clone());
                    }
                    Some(pv) => {
                        if let Some(nv) = n.get_mut(k) {
                            merge_unknown(nv, rv, pv);
                        }
                    }
                }
            }
        }
        (Value::Array(n), Value::Array(r), Value::Array(p))
            if n.len() == r.len() && r.len() == p.len() =>
        {
            for ((nv, rv), pv) in n.iter_mut().zip(r).zip(p) {
                merge_unknown(nv, rv, pv);
            }
        }
        _ => {}
    }
}

/// Top-level fields in the order Go writes a v3 object.
const TOP_ORDER: &[&str] = &["kind", "apiVersion", "metadata", "spec", "status"];
/// `metadata` fields in the order Go writes Kubernetes object metadata.
const META_ORDER: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Encodes a stored value as Go's `encoding/json` would: envelope and metadata fields in
/// Go's declaration order (other objects with their keys sorted, as Go writes maps), no
/// whitespace, integral numbers without a decimal point, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped.
pub fn encode(value: &Map<String, Value>) -> Vec<u8> {
    let mut out = String::new();
    write_ordered(&mut out, value, TOP_ORDER, |k, v, out| {
        if k == "metadata"
            && let Value::Object(m) = v
        {
            write_ordered(out, m, META_ORDER, |_, v, out| write_value(out, v));
            return;
        }
        write_value(out, v);
    });
    go_escape(&out).into_bytes()
}

fn write_ordered(
    out: &mut String,
    m: &Map<String, Value>,
    order: &[&str],
    mut field: impl FnMut(&str, &Value, &mut String),
) {
    out.push('{');
    let mut first = true;
    let known = order.iter().filter_map(|k| m.get_key_value(*k));
    let rest = m.iter().filter(|(k, _)| !order.contains(&k.as_str()));
    for (k, v) in known.chain(rest) {
        if !first {
            out.push(',');
        }
        first = false;
        write_value(out, &Value::String(k.clone()));
        out.push(':');
        field(k, v, out);
    }
    out.push('}');
}

fn write_value(out: &mut String, v: &Value) {
    let v = integral_numbers(v);
    // Serialising a `Value` cannot fail.
    out.push_str(&serde_json::to_string(&v).unwrap_or_default());
}

/// Floats with no fractional part (below 1e21, as Go prints them) as integers.
fn integral_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Value::Number(serde_json::Number::from(f as i64))
            }
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(integral_numbers).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), integral_numbers(v)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Go's HTML-safe string escaping (these characters appear only inside JSON strings).
fn go_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The tier a tiered policy belongs to (`default` when unset).
pub(crate) fn tier_of(value: &Map<String, Value>) -> String {
    match value
        .get("spec")
        .and_then(|s| s.get("tier"))
        .and_then(Value::as_str)
    {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "default".to_owned(),
    }
}

/// Sets the storage-only metadata of a tiered policy: the name annotation and the tier
/// label.
pub(crate) fn set_policy_storage_meta(value: &mut Map<String, Value>, name: &str) {
    let tier = tier_of(value);
    let meta = object_field(value, "metadata");
    object_field(meta, "labels").insert(TIER_LABEL.into(), Value::String(tier));
    let annotation = serde_json::json!({ "name": name }).to_string();
    object_field(meta, "annotations")
        .insert(POLICY_NAME_ANNOTATION.into(), Value::String(annotation));
}

/// The object at `field` of `m`, created (or replacing a non-object) when needed.
pub(crate) fn object_field<'a>(
    m: &'a mut Map<String, Value>,
    field: &str,
) -> &'a mut Map<String, Value> {
    let slot = m
        .entry(field.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("just made an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    const GNP: &str = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/";

    #[test]
    fn policy_names_in_every_historical_form() {
        // (key name, stored name, tier, annotation) => name shown
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            // 3.32+: key = name, annotation.
            ("foo", Some("foo"), "", "foo"),
            ("default.foo", Some("default.foo"), "", "default.foo"),
            // 3.30/3.31: default.<name> key, annotation with the real name.
            ("default.foo", Some("foo"), "default", "foo"),
            // <= 3.29: default.<name>, no annotation.
            ("default.foo", None, "", "foo"),
            ("default.foo", None, "default", "foo"),
            // Another tier: the stored name stays.
            ("t.foo", None, "t", "t.foo"),
            ("default.foo", None, "t", "default.foo"),
            ("bar", Some("bar"), "t", "bar"),
        ];
        for (key_name, annotated, tier, want) in cases {
            let mut v = json!({
                "kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
                "metadata": {"name": key_name, "labels": {"projectcalico.org/tier": "x"}},
                "spec": {"tier": tier, "selector": "all()"}
            });
            if let Some(n) = annotated {
                v["metadata"]["annotations"] =
                    json!({POLICY_NAME_ANNOTATION: json!({"name": n}).to_string()});
            }
            let key = format!("{GNP}{key_name}");
            let o = decode(key.as_bytes(), v.to_string().as_bytes(), 7).unwrap();
            assert_eq!(o.name(), *want, "{key_name} {annotated:?} {tier}");
            let typed = o.object.as_ref().unwrap();
            assert_eq!(typed.name(), *want);
            assert!(typed.metadata().annotations.is_empty());
            assert_eq!(typed.metadata().resource_version.as_deref(), Some("7"));
            // The raw value is untouched.
            assert_eq!(o.raw.get("metadata").unwrap()["name"], json!(key_name));
        }
    }

    #[test]
    fn unknown_fields_are_dropped_from_the_typed_object_only() {
        let v = json!({
            "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": "p", "uid": "u", "creationTimestamp": "2026-08-20T09:12:31Z"},
            "spec": {"cidr": "10.0.0.0/16", "futureField": {"a": 1}, "ipipMode": "Always"},
            "status": {"conditions": []}
        });
        let key = "/calico/resources/v3/projectcalico.org/ippools/p";
        let o = decode(key.as_bytes(), v.to_string().as_bytes(), 3).unwrap();
        let Some(Resource::IpPool(p)) = &o.object else {
            panic!("{:?}", o.object)
        };
        assert_eq!(p.spec.cidr.to_string(), "10.0.0.0/16");
        // Defaults re-applied on read; unknown fields kept in the shown value.
        assert_eq!(o.value["spec"]["blockSize"], json!(26));
        assert_eq!(o.value["spec"]["futureField"], json!({"a": 1}));
        assert_eq!(o.value["spec"]["ipipMode"], json!("Always"));
        assert_eq!(o.value["metadata"]["resourceVersion"], json!("3"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = "/calico/resources/v3/projectcalico.org/ippools/p";
        for (value, needle) in [
            ("", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"metadata":5}"#, "metadata"),
            (
                r#"{"metadata":{"name":"p"},"spec":{"cidr":"nope"}}"#,
                "spec.cidr",
            ),
            (r#"{"metadata":{"name":3}}"#, "metadata.name"),
        ] {
            let e = decode(key.as_bytes(), value.as_bytes(), 1).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.to_string().contains(needle), "{value}: {e}");
        }
        let gnp = format!("{GNP}x");
        let e = decode(
            gnp.as_bytes(),
            json!({"metadata": {"name": "x", "annotations": {POLICY_NAME_ANNOTATION: "{"}}})
                .to_string()
                .as_bytes(),
            1,
        )
        .unwrap_err();
        assert!(e.reason.contains(POLICY_NAME_ANNOTATION), "{e}");
    }

    #[test]
    fn merge_keeps_unknown_fields_and_honours_removals() {
        let raw =
            json!({"spec": {"a": 1, "b": 2, "x": {"keep": true}, "list": [{"k": 1, "u": 9}]}});
        let projected = json!({"spec": {"a": 1, "b": 2, "list": [{"k": 1}]}});
        let mut new = json!({"spec": {"a": 5, "list": [{"k": 2}]}});
        merge_unknown(&mut new, &raw, &projected);
        assert_eq!(
            new,
            json!({"spec": {"a": 5, "x": {"keep": true}, "list": [{"k": 2, "u": 9}]}})
        );
    }

    #[test]
    fn floats_survive_a_rewrite_bit_for_bit() {
        // A float the fast (not correctly rounded) JSON float parser gets wrong.
        let key = "/calico/resources/v3/projectcalico.org/ippools/p";
        let value = r#"{"metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16","x":[5.355555555555556e+72,0.1,1e-7]}}"#;
        let o = decode(key.as_bytes(), value.as_bytes(), 1).unwrap();
        let again = decode(key.as_bytes(), &encode(&o.raw), 1).unwrap();
        assert_eq!(again.raw, o.raw);
        assert_eq!(encode(&again.raw), encode(&o.raw));
    }

    #[test]
    fn encoding_is_gos() {
        let v = obj(json!({
            "spec": {"selector": "a == 'x' && b > 1", "order": 1000000.0, "z": 1, "a": 0.5},
            "metadata": {"labels": {"b": "1", "a": "2"}, "uid": "u", "name": "n"},
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
        }));
        let text = String::from_utf8(encode(&v)).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"n","uid":"u","labels":{"a":"2","b":"1"}},"spec":{"a":0.5,"order":1000000,"selector":"a == 'x' \u0026\u0026 b \u003e 1","z":1}}"#
        );
        // And it decodes to the same value.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["spec"]["selector"], json!("a == 'x' && b > 1"));
    }
}
