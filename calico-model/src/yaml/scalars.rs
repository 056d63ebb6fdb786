//! Plain YAML scalars read as Kubernetes reads them, and non-string values written into string
//! fields as Kubernetes writes them.
//!
//! Kubernetes and calicoctl parse manifests with a YAML 1.1 resolver (go-yaml v2 behind
//! `sigs.k8s.io/yaml`), then convert the document to JSON with the target Go type at hand:
//!
//! - An unquoted (plain) scalar is a boolean when it is one of `y Y yes Yes YES on On ON true
//!   True TRUE` (true) or `n N no No NO off Off OFF false False FALSE` (false); exactly these
//!   spellings, no others (`yES` stays a string). It is null when empty or `~ null Null NULL`.
//! - A plain scalar starting with a digit or a sign is an integer when, with every `_`
//!   removed, it reads as a Go integer literal with its base prefix: `0x1F`/`0X1F` (hex),
//!   `0o17`/`0O17` or a leading zero `017` (octal, so `017` is 15 and `08` is no integer),
//!   `0b101` (binary), else decimal; first as a signed 64-bit value, then as an unsigned one.
//!   Otherwise it is a float when it has the shape `[-+]?(.D+|D+(.D*)?)([eE][-+]?D+)?` and
//!   is finite (so `08` is the float 8). A plain scalar starting with `.` is a float when it
//!   reads as one (`.5`), and `.inf`, `-.inf`, `.nan` (three spellings each) are the
//!   special floats.
//! - Everything else, and every quoted or block scalar, is a string.
//!
//! When such a boolean or number lands in a string field (a label or annotation value,
//! `nodeSelector`, a name, ...), it becomes text: `true`/`false`; an integer in decimal
//! (`0x10` → `16`, `1_000` → `1000`); a float rounded to 32-bit precision and written in
//! Go's shortest `%g` form (`1.0` → `1`, `1e3` → `1000`, `1e6` → `1e+06`,
//! `1.23456789` → `1.2345679`, `0.00001` → `1e-05`). A null there is the empty
//! string. The loader applies this to every string field of the typed model.
//!
//! Known differences: a non-finite float in a string field (`.inf`, `.nan`) becomes the
//! empty string (JSON has no infinity), where Kubernetes writes `+Inf`/`NaN`; an explicitly
//! tagged plain scalar other than the YAML core tags is read as untagged.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::value::TaggedValue;
use serde_yaml_ng::{Mapping, Number, Value};

/// Reads one YAML document of `src` into a value, resolving plain scalars as Kubernetes'
/// YAML 1.1 reader does.
pub(crate) fn read_document<'de>(
    doc: serde_yaml_ng::Deserializer<'de>,
    src: &'de str,
) -> Result<Value, serde_yaml_ng::Error> {
    Node { src }.deserialize(doc)
}

#[derive(Clone, Copy)]
struct Node<'de> {
    src: &'de str,
}

impl<'de> DeserializeSeed<'de> for Node<'de> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    // Beyond 64 bits Go's reader falls back to a float.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Number(Number::from(v as f64)))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Number(Number::from(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(Number::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        // Not borrowed from the text: a quoted scalar with escapes or a block scalar.
        Ok(Value::String(v.to_owned()))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        if is_plain(self.src, v) {
            Ok(resolve_plain(v))
        } else {
            Ok(Value::String(v.to_owned()))
        }
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            // JSON keys are strings: a boolean or number key becomes its text, as in
            // Kubernetes' YAML-to-JSON conversion.
            let k = match k {
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Number(n) => Value::String(number_key(&n)),
                other => other,
            };
            out.insert(k, v);
        }
        Ok(Value::Mapping(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, contents) = data.variant::<String>()?;
        let value = de::VariantAccess::newtype_variant_seed(contents, self)?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: serde_yaml_ng::value::Tag::new(tag),
            value,
        })))
    }
}

/// Whether `v`, a slice of `src`, was written as a plain scalar: not between quotes, and not
/// after an explicit tag.
fn is_plain(src: &str, v: &str) -> bool {
    let base = src.as_ptr() as usize;
    let at = v.as_ptr() as usize;
    let Some(start) = at.checked_sub(base).filter(|s| s + v.len() <= src.len()) else {
        return false;
    };
    let bytes = src.as_bytes();
    let before = start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    let after = bytes.get(start + v.len()).copied();
    if matches!(before, Some(b'\'' | b'"')) && before == after {
        return false;
    }
    // `!!str yes`, `!custom 1`: the word before the scalar is a tag.
    let head = src[..start].trim_end_matches([' ', '\t']);
    let word_start = head
        .rfind(|c: char| c.is_ascii_whitespace() || matches!(c, '[' | '{' | ',' | ':'))
        .map_or(0, |i| i + 1);
    !(head.len() < start && head[word_start..].starts_with('!'))
}

/// The value go-yaml v2 gives a plain scalar that YAML 1.2 reads as a string.
fn resolve_plain(s: &str) -> Value {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Value::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Number(Number::from(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(Number::from(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Value::Number(Number::from(f64::NAN)),
        _ => {}
    }
    let number = match s.as_bytes().first() {
        Some(b'.') if s.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => {
            finite_float(s).map(Number::from)
        }
        Some(b'0'..=b'9' | b'+' | b'-') => go_number(s),
        _ => None,
    };
    if let Some(n) = number {
        return Value::Number(n);
    }
    Value::String(s.to_owned())
}

/// Whether the plain scalar `s` reads back as the string `s` (not as a boolean, number or
/// null) under Kubernetes' rules.
pub(crate) fn reads_as_string(s: &str) -> bool {
    matches!(resolve_plain(s), Value::String(t) if t == s)
}

fn number_key(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        match n.as_f64() {
            Some(f) if f.is_nan() => ".nan".to_owned(),
            Some(f) if f.is_infinite() => if f > 0.0 { ".inf" } else { "-.inf" }.to_owned(),
            Some(f) => format_float32(f),
            None => n.to_string(),
        }
    }
}

fn finite_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// go-yaml v2's number reading of a plain scalar starting with a digit or a sign.
fn go_number(s: &str) -> Option<Number> {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    // Go's unsigned reading takes no sign.
    let unsigned_ok = !plain.starts_with('+');
    if let Some((negative, magnitude)) = go_int_literal(&plain) {
        if negative {
            if magnitude <= 1u128 << 63 {
                let v = i128::try_from(magnitude).ok().map(|m| -m)?;
                return i64::try_from(v).ok().map(Number::from);
            }
        } else if let Ok(v) = i64::try_from(magnitude) {
            return Some(Number::from(v));
        } else if let Some(v) = u64::try_from(magnitude).ok().filter(|_| unsigned_ok) {
            return Some(Number::from(v));
        }
    }
    if yaml_float_shape(&plain) {
        return finite_float(&plain).map(Number::from);
    }
    None
}

/// A Go integer literal as `strconv.ParseInt(s, 0, …)` reads it: an optional sign, then
/// `0x`/`0X`, `0o`/`0O`, `0b`/`0B`, a leading `0` (octal) or decimal digits. The magnitude is
/// `None` past 128 bits.
fn go_int_literal(s: &str) -> Option<(bool, u128)> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u128::from_str_radix(digits, radix)
        .ok()
        .map(|m| (negative, m))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_float_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The text Kubernetes writes for a boolean or number read into a string field; `None` for
/// other values.
pub(crate) fn go_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            i.to_string()
        } else if let Some(u) = n.as_u64() {
            u.to_string()
        } else {
            format_float32(n.as_f64().unwrap_or(0.0))
        }),
        _ => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`: the shortest decimal that reads back as the
/// same 32-bit float, in `%e` form (at least two exponent digits) when the exponent is below
/// -4 or at least 6, else in plain form.
#[allow(clippy::cast_possible_truncation)]
pub fn format_float32(f: f64) -> String {
    let x = f as f32;
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip form: `-1.2345679e8`.
    let e = format!("{x:e}");
    let (neg, e) = match e.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, e.as_str()),
    };
    let (mantissa, exp) = e.split_once('e').unwrap_or((e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Value {
        let mut docs = serde_yaml_ng::Deserializer::from_str(text);
        let doc = docs.next().expect("one document");
        read_document(doc, text).expect("valid YAML")
    }

    fn scalar(text: &str) -> Value {
        match read(&format!("k: {text}\n")) {
            Value::Mapping(m) => m.get("k").cloned().expect("key k"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn yaml11_booleans_exactly_these_spellings() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(scalar(t), Value::Bool(true), "{t}");
            assert_eq!(
                read(&format!("[{t}]\n")),
                Value::Sequence(vec![Value::Bool(true)])
            );
        }
        for t in [
            "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(scalar(t), Value::Bool(false), "{t}");
        }
        for t in ["yES", "oN", "tRUE", "nO", "yess", "Yes!", "onn", "t", "f"] {
            assert_eq!(scalar(t), Value::String(t.to_owned()), "{t}");
        }
    }

    #[test]
    fn quoted_and_block_scalars_stay_strings() {
        for t in ["yes", "on", "1", "0x10", "1.0", "017", "true", "~", ""] {
            for q in [format!("'{t}'"), format!("\"{t}\"")] {
                assert_eq!(scalar(&q), Value::String(t.to_owned()), "{q}");
            }
            if !t.is_empty() {
                assert_eq!(scalar(&format!("!!str {t}")).as_str(), Some(t), "!!str {t}");
            }
        }
        assert_eq!(scalar("|\n  yes\n"), Value::String("yes\n".into()));
        assert_eq!(scalar("\"y\\x65s\""), Value::String("yes".into()));
    }

    #[test]
    fn numbers_as_go_yaml_reads_them() {
        let int = |t: &str, n: i64| assert_eq!(scalar(t), Value::Number(n.into()), "{t}");
        int("1", 1);
        int("+1", 1);
        int("-1", -1);
        int("0x10", 16);
        int("0X1f", 31);
        int("0o17", 15);
        int("0O17", 15);
        int("017", 15);
        int("-017", -15);
        int("0b101", 5);
        int("1_000", 1000);
        int("0x_1F", 31);
        int("00", 0);
        assert_eq!(
            scalar("18446744073709551615"),
            Value::Number(u64::MAX.into())
        );
        let float = |t: &str, f: f64| assert_eq!(scalar(t), Value::Number(f.into()), "{t}");
        float("1.0", 1.0);
        float("1e3", 1000.0);
        float("08", 8.0);
        float("09.5", 9.5);
        float(".5", 0.5);
        float("+.5", 0.5);
        float("5.", 5.0);
        float("1_0.5", 10.5);
        float("99999999999999999999", 1e20);
        for t in [
            "0x",
            "1e",
            "1e400",
            "1.2.3",
            "12:30",
            "2001-12-14",
            "0b2",
            "1-2",
            "+",
            "-x",
        ] {
            assert_eq!(scalar(t), Value::String(t.to_owned()), "{t}");
        }
    }

    #[test]
    fn go_string_forms() {
        use serde_json::json;
        let cases = [
            (json!(true), "true"),
            (json!(false), "false"),
            (json!(16), "16"),
            (json!(-3), "-3"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1.0), "1"),
            (json!(1000.0), "1000"),
            (json!(100000.0), "100000"),
            (json!(1e6), "1e+06"),
            (json!(1e20), "1e+20"),
            (json!(1.5), "1.5"),
            (json!(-2.25), "-2.25"),
            (json!(0.1), "0.1"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1.234_567_890_123_45), "1.2345679"),
            (json!(123456789.0), "1.2345679e+08"),
            (json!(0.0), "0"),
        ];
        for (v, want) in cases {
            assert_eq!(go_string(&v).as_deref(), Some(want), "{v}");
        }
        assert_eq!(go_string(&json!("x")), None);
        assert_eq!(go_string(&json!(null)), None);
    }

    proptest::proptest! {
        /// A 32-bit float's Go text reads back as the same 32-bit float.
        #[test]
        fn float_text_round_trips(x in proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL) {
            let text = format_float32(f64::from(x));
            let back: f32 = text.parse().expect("a float");
            proptest::prop_assert_eq!(back, x, "{}", text);
        }

        /// Decimal integers read as themselves, whatever their size within 64 bits.
        #[test]
        fn decimal_integers(n in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(scalar(&n.to_string()), Value::Number(n.into()));
        }

        /// No plain scalar panics the reader, and quoting it always gives the text back.
        #[test]
        fn quoted_is_text(t in "[ -~]{0,12}") {
            let _ = resolve_plain(&t);
            let q = format!("'{}'", t.replace('\'', "''"));
            proptest::prop_assert_eq!(scalar(&q), Value::String(t.clone()));
        }
    }
}
