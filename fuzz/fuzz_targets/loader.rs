//! Manifest loader + validation + derivation must never panic, and every object that decodes
//! must survive a YAML and a JSON round trip unchanged. The lenient load never reports a
//! decode failure, keeps every object the strict load decodes unchanged, and what it
//! decodes round-trips too.
#![no_main]

use calico_model::derived;
use calico_model::loader::{LoadMode, load_str, load_str_with};
use calico_model::validation::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the format; the rest is the file.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = if selector & 1 == 1 { "f.json" } else { "f.yaml" };
    let mut set = load_str(name, text);
    let _ = validate(&set);
    set.apply_defaults();
    let problems = validate(&set);
    for p in &problems {
        let _ = p.to_string();
    }
    for e in &set.errors {
        let _ = e.to_string();
    }
    let lenient = load_str_with(name, text, LoadMode::Lenient);
    assert!(lenient.decode_failures.is_empty());
    for w in &lenient.warnings {
        let _ = w.to_string();
    }
    let mut lenient_objects = lenient.objects.iter().map(|o| &o.resource);
    for strict in &set.objects {
        // Lenient decodes a superset: the strict object appears, unchanged, in order.
        assert!(
            lenient_objects.any(|r| {
                let mut r = r.clone();
                r.apply_defaults();
                r == strict.resource
            }),
            "strict object missing from the lenient load"
        );
    }
    let mut resources: Vec<_> = set.resources().cloned().collect();
    resources.extend(lenient.resources().cloned());
    let _ = derived::implicit_namespaces(&resources);
    let _ = derived::derived_profiles(&resources);
    for r in &resources {
        if let calico_model::resources::Resource::Pod(p) = r {
            let _ = derived::pod_workload_endpoint(p, "cali");
        }
        if let calico_model::resources::Resource::Secret(s) = r {
            for key in s.data.keys().chain(s.string_data.keys()) {
                let _ = s.value(key).map_err(|e| e.to_string());
            }
        }
        let _ = derived::synthetic_pod(r);
        for (file, text) in [
            ("r.yaml", r.to_yaml().expect("YAML output")),
            ("r.json", r.to_json().expect("JSON output")),
        ] {
            let again = load_str(file, &text);
            assert!(again.errors.is_empty(), "{text}");
            assert!(again.decode_failures.is_empty(), "{text}");
            assert_eq!(again.objects.len(), 1, "{text}");
            assert_eq!(&again.objects[0].resource, r, "{text}");
        }
    }
});
