//! YAML text the loader (and Kubernetes' YAML 1.1 reader) reads back as written.
//!
//! A YAML 1.2 emitter writes `yes`, `on`, `y`, `0x1F` or `1_000` unquoted, since YAML 1.2
//! reads them as strings; Kubernetes' reader (and so this crate's loader) reads them as a
//! boolean or a number. This emitter writes block-style YAML in which a string is plain only
//! when every reader takes it for that string, and double-quoted with escapes otherwise.

use serde_yaml_ng::Value;

use super::scalars::reads_as_string;

/// The block-style YAML document of `value` (a mapping or sequence at the top), or `None`
/// when it holds something this emitter does not write (a tagged value).
pub(crate) fn to_yaml_text(value: &Value) -> Option<String> {
    let lines = match value {
        Value::Mapping(m) if !m.is_empty() => block(value)?,
        Value::Sequence(s) if !s.is_empty() => block(value)?,
        other => vec![scalar(other)?],
    };
    let mut out = lines.join("\n");
    out.push('\n');
    Some(out)
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Mapping(m) => !m.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        _ => false,
    }
}

/// The lines of a non-empty mapping or sequence, at indent 0.
fn block(v: &Value) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = scalar(k)?;
                if is_block(v) {
                    out.push(format!("{key}:"));
                    let child = block(v)?;
                    // A sequence under a key may stay at the key's indent.
                    let pad = if matches!(v, Value::Sequence(_)) {
                        ""
                    } else {
                        "  "
                    };
                    out.extend(child.into_iter().map(|l| format!("{pad}{l}")));
                } else {
                    out.push(format!("{key}: {}", scalar(v)?));
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                if is_block(item) {
                    let mut child = block(item)?.into_iter();
                    let first = child.next()?;
                    out.push(format!("- {first}"));
                    out.extend(child.map(|l| format!("  {l}")));
                } else {
                    out.push(format!("- {}", scalar(item)?));
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

fn scalar(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Mapping(m) if m.is_empty() => "{}".to_owned(),
        Value::Sequence(s) if s.is_empty() => "[]".to_owned(),
        _ => return None,
    })
}

/// Plain when it is safe for every reader, else double-quoted with escapes.
fn string(s: &str) -> String {
    if is_safe_plain(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // What YAML does not allow as written or would read as a line break: C0 and
            // C1 controls, DEL, the line and paragraph separators, the BOM and the
            // non-characters at the end of the BMP.
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A conservative plain-scalar test: letters, digits and `._/-+@=,()` with no space at the
/// ends, not starting with an indicator, and read back as the same string by both the YAML
/// 1.1 and the YAML 1.2 rules.
fn is_safe_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let body_ok = s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '.' | '_' | '/' | '-' | '+' | '@' | '=' | ',' | '(' | ')' | ' ' | ':'
            )
    });
    let ends_ok = !s.ends_with([' ', ':']) && !s.contains(": ") && !s.contains(" #");
    let start_ok = first.is_ascii_alphanumeric() || matches!(first, '.' | '_' | '/' | '(');
    body_ok
        && ends_ok
        && start_ok
        && reads_as_string(s)
        && matches!(serde_yaml_ng::from_str::<Value>(s), Ok(Value::String(t)) if t == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(text: &str) -> Value {
        let mut docs = serde_yaml_ng::Deserializer::from_str(text);
        let doc = docs.next().expect("one document");
        crate::yaml::scalars::read_document(doc, text).expect("valid YAML")
    }

    #[test]
    fn yaml11_lookalikes_are_quoted() {
        for s in [
            "yes",
            "on",
            "Y",
            "n",
            "OFF",
            "0x1F",
            "0X1F",
            "017",
            "08",
            "1_000",
            "1e3",
            ".5",
            "true",
            "null",
            "~",
            "",
            " a",
            "a: b",
            "#x",
            "- a",
            "multi\nline",
        ] {
            let text = to_yaml_text(&Value::String(s.to_owned())).expect("text");
            assert!(text.starts_with('"'), "{s:?} → {text}");
            assert_eq!(back(&text), Value::String(s.to_owned()), "{text}");
        }
        for s in [
            "web",
            "projectcalico.org/v3",
            "10.0.0.0/8",
            "all()",
            "app == web",
            "a-b_c.d",
        ] {
            let text = to_yaml_text(&Value::String(s.to_owned())).expect("text");
            assert_eq!(text, format!("{s}\n"));
        }
    }

    proptest::proptest! {
        /// Any tree of strings, numbers and booleans reads back unchanged.
        #[test]
        fn round_trip(
            entries in proptest::collection::vec(("[ -~]{0,8}", "\\PC{0,10}|[ -~\\n\\t\\x7f\\u{85}\\u{2028}\\u{feff}]{0,10}", proptest::option::of(0i64..2000)), 0..8),
            nested in proptest::collection::vec("[a-zA-Z0-9 ._:-]{0,8}", 0..4),
        ) {
            let mut m = serde_yaml_ng::Mapping::new();
            for (k, v, n) in &entries {
                let value = match n {
                    Some(n) => Value::Number((*n).into()),
                    None => Value::String(v.clone()),
                };
                m.insert(Value::String(k.clone()), value);
            }
            let seq: Vec<Value> = nested.iter().cloned().map(Value::String).collect();
            m.insert(Value::String("list".into()), Value::Sequence(seq.clone()));
            let mut inner = serde_yaml_ng::Mapping::new();
            inner.insert(Value::String("items".into()), Value::Sequence(vec![Value::Mapping(m.clone()), Value::Bool(true)]));
            let top = Value::Mapping(inner);
            let text = to_yaml_text(&top).expect("text");
            proptest::prop_assert_eq!(back(&text), top, "{}", text);
        }
    }
}
