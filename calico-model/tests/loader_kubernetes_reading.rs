//! The loader reads manifests as Kubernetes and calicoctl do: YAML 1.1 plain scalars, booleans
//! and numbers written into string fields as text, `spec:` with no value as an empty spec;
//! and, in lenient mode, skips what is not a manifest and drops only what does not decode.

use calico_model::loader::{LoadMode, load_paths_with, load_str, load_str_with};
use calico_model::resources::{Kind, Resource};
use calico_model::selector::Selector;
use calico_model::validation::{Severity, validate};

fn node_labels(labels_yaml: &str) -> std::collections::BTreeMap<String, String> {
    let text = format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n  labels:\n{labels_yaml}  annotations:\n{labels_yaml}"
    );
    let set = load_str("n.yaml", &text);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let r = &set.objects[0].resource;
    assert_eq!(r.metadata().annotations, r.metadata().labels);
    r.metadata().labels.clone()
}

#[test]
fn label_values_read_as_kubernetes_writes_them() {
    // (value as written, the label value Kubernetes stores)
    let cases = [
        ("true", "true"),
        ("false", "false"),
        ("True", "true"),
        ("yes", "true"),
        ("Yes", "true"),
        ("YES", "true"),
        ("y", "true"),
        ("Y", "true"),
        ("on", "true"),
        ("ON", "true"),
        ("no", "false"),
        ("n", "false"),
        ("off", "false"),
        ("Off", "false"),
        ("1", "1"),
        ("-7", "-7"),
        ("0x10", "16"),
        ("017", "15"),
        ("0o17", "15"),
        ("1_000", "1000"),
        ("08", "8"),
        ("1.0", "1"),
        ("1.5", "1.5"),
        ("1e3", "1000"),
        ("1e6", "1e+06"),
        ("0.00001", "1e-05"),
        ("", ""),
        ("~", ""),
        ("null", ""),
        // Strings stay as written.
        ("yES", "yES"),
        ("'yes'", "yes"),
        ("\"on\"", "on"),
        ("'1.0'", "1.0"),
        ("\"0x10\"", "0x10"),
        ("rack-1", "rack-1"),
        ("1.2.3", "1.2.3"),
        ("2001-12-14", "2001-12-14"),
    ];
    let yaml: String = cases
        .iter()
        .enumerate()
        .map(|(i, (v, _))| format!("    k{i}: {v}\n"))
        .collect();
    let labels = node_labels(&yaml);
    for (i, (written, want)) in cases.iter().enumerate() {
        assert_eq!(
            labels.get(&format!("k{i}")).map(String::as_str),
            Some(*want),
            "label value written {written}"
        );
    }
}

#[test]
fn selectors_see_the_stored_text() {
    for written in ["true", "yes", "on", "Y", "TRUE"] {
        let labels = node_labels(&format!("    route-reflector: {written}\n    rack: 1\n"));
        let sel = Selector::parse("route-reflector == 'true' && rack == '1'").unwrap();
        assert!(sel.matches(&labels), "{written}: {labels:?}");
    }
    let labels = node_labels("    route-reflector: 'yes'\n");
    assert!(
        !Selector::parse("route-reflector == 'true'")
            .unwrap()
            .matches(&labels)
    );
}

#[test]
fn keys_and_other_string_fields_too() {
    let text = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: 123}\n\
                spec: {labelsToApply: {1: yes, true: 2.50}}\n";
    let set = load_str("p.yaml", text);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    let Resource::Profile(p) = &set.objects[0].resource else {
        panic!()
    };
    assert_eq!(p.metadata.name, "123");
    let want: Vec<(String, String)> =
        vec![("1".into(), "true".into()), ("true".into(), "2.5".into())];
    assert_eq!(
        p.spec
            .labels_to_apply
            .clone()
            .into_iter()
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn numbers_in_number_fields_as_kubernetes_reads_them() {
    // (port as written, the port Kubernetes stores)
    for (written, want) in [
        ("80", 80),
        ("0x50", 80),
        ("0o120", 80),
        ("0120", 80),
        ("080", 80),
        ("8_080", 8080),
        ("8.08e3", 8080),
        ("80.0", 80),
    ] {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    ports: [{{containerPort: {written}}}]\n"
        );
        let set = load_str("p.yaml", &text);
        assert!(
            set.decode_failures.is_empty(),
            "{written}: {:?}",
            set.decode_failures
        );
        let Resource::Pod(pod) = &set.objects[0].resource else {
            panic!()
        };
        assert_eq!(
            pod.spec.containers[0].ports[0].container_port, want,
            "{written}"
        );
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: p}}\n\
             spec: {{ingress: [{{action: Allow, protocol: TCP, destination: {{ports: [{written}]}}}}]}}\n"
        );
        let set = load_str("p.yaml", &text);
        assert!(
            set.decode_failures.is_empty(),
            "{written}: {:?}",
            set.decode_failures
        );
        let Resource::GlobalNetworkPolicy(p) = &set.objects[0].resource else {
            panic!()
        };
        assert_eq!(
            p.spec.ingress[0].destination.ports[0].range(),
            Some((want as u16, want as u16)),
            "{written}"
        );
    }
    // A fraction stays an error.
    let set = load_str(
        "p.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 80.5}]}]}\n",
    );
    assert_eq!(set.decode_failures.len(), 1);
}

#[test]
fn json_booleans_and_numbers_in_labels() {
    let text = r#"{"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "a", "labels": {"x": true, "y": 3, "z": 0.5, "w": null}}}"#;
    let set = load_str("n.json", text);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    let l = &set.objects[0].resource.metadata().labels;
    assert_eq!(l["x"], "true");
    assert_eq!(l["y"], "3");
    assert_eq!(l["z"], "0.5");
    assert_eq!(l["w"], "");
}

#[test]
fn null_spec_is_an_empty_spec() {
    for (kind, api, ns) in [
        ("Tier", "projectcalico.org/v3", ""),
        ("GlobalNetworkPolicy", "projectcalico.org/v3", ""),
        ("NetworkPolicy", "projectcalico.org/v3", "  namespace: x\n"),
        ("NetworkSet", "projectcalico.org/v3", "  namespace: x\n"),
        ("GlobalNetworkSet", "projectcalico.org/v3", ""),
        ("Profile", "projectcalico.org/v3", ""),
        ("BGPConfiguration", "projectcalico.org/v3", ""),
        ("FelixConfiguration", "projectcalico.org/v3", ""),
    ] {
        for spec in ["spec:\n", "spec: ~\n", "spec: null\n", "spec: {}\n", ""] {
            let text =
                format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: default\n{ns}{spec}");
            let set = load_str("s.yaml", &text);
            assert!(
                set.decode_failures.is_empty() && set.objects.len() == 1,
                "{kind} with {spec:?}: {:?}",
                set.decode_failures
            );
        }
    }
}

#[test]
fn a_null_list_or_map_field_is_empty() {
    let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\n  labels:\nspec:\n  ingress:\n  egress: ~\n  selector: all()\n";
    let set = load_str("p.yaml", text);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
}

#[test]
fn strict_mode_still_reports_what_does_not_decode() {
    let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n\
                spec: {ingress: [{action: Frobnicate}]}\n";
    let set = load_str("p.yaml", text);
    assert!(set.objects.is_empty());
    assert_eq!(set.decode_failures.len(), 1);
    assert_eq!(
        set.decode_failures[0].problem.field_path,
        "spec.ingress[0].action"
    );
    assert!(set.warnings.is_empty());
}

#[test]
fn lenient_mode_drops_the_smallest_part_that_does_not_decode() {
    let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n\
                spec:\n  ingress:\n  - {action: Frobnicate}\n  - {action: Allow}\n  - {action: Allow, protocol: NoSuch}\n  - {action: Deny}\n  egress: [{action: Allow, destination: {ports: [0]}}]\n";
    let set = load_str_with("p.yaml", text, LoadMode::Lenient);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    let Resource::GlobalNetworkPolicy(p) = &set.objects[0].resource else {
        panic!()
    };
    assert_eq!(p.spec.ingress.len(), 2, "{:?}", p.spec.ingress);
    // A rule that lost a condition would match more than written: the whole rule goes.
    assert!(p.spec.egress.is_empty());
    let fields: Vec<&str> = set
        .warnings
        .iter()
        .map(|w| w.problem.field_path.as_str())
        .collect();
    // Paths are those of the input as written, not shifted by earlier drops (fields are
    // read in key order).
    assert_eq!(
        fields,
        [
            "spec.egress[0].destination.ports[0]",
            "spec.ingress[0].action",
            "spec.ingress[2].protocol",
        ]
    );
    for w in &set.warnings {
        assert_eq!(w.severity, Severity::Warning);
        assert_eq!(w.problem.file, "p.yaml");
        assert_eq!(w.problem.kind.as_deref(), Some("GlobalNetworkPolicy"));
        assert_eq!(w.problem.name, "p");
    }
    assert!(
        set.warnings[0]
            .problem
            .message
            .contains("spec.egress[0] is dropped")
    );
    assert!(
        set.warnings[1]
            .problem
            .message
            .contains("spec.ingress[0] is dropped")
    );
    assert!(
        set.warnings[2]
            .problem
            .message
            .contains("spec.ingress[2] is dropped")
    );
}

#[test]
fn lenient_mode_drops_a_bad_container_port_not_the_pod() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: a, labels: {app: web}}\n\
                spec:\n  containers:\n  - name: c\n    ports:\n    - {name: bad, containerPort: many}\n    - {name: http, containerPort: 80}\n    - {name: worse, containerPort: [1]}\n\
                status: {podIP: 10.0.0.1}\n";
    let set = load_str_with("pod.yaml", text, LoadMode::Lenient);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    let Resource::Pod(pod) = &set.objects[0].resource else {
        panic!()
    };
    let names: Vec<&str> = pod.spec.containers[0]
        .ports
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["http"]);
    let fields: Vec<&str> = set
        .warnings
        .iter()
        .map(|w| w.problem.field_path.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[2].containerPort"
        ]
    );
    assert!(
        set.warnings[1]
            .problem
            .message
            .contains("spec.containers[0].ports[2] is dropped")
    );
    assert_eq!(set.warnings[0].problem.namespace.as_deref(), Some("a"));
    // Strictly, the pod does not decode.
    let strict = load_str("pod.yaml", text);
    assert!(strict.objects.is_empty());
    assert_eq!(strict.decode_failures.len(), 1);
}

#[test]
fn lenient_mode_skips_what_is_not_a_manifest() {
    let dir = std::env::temp_dir().join(format!("calico-lenient-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), r#"[{"src": "a", "dst": "b"}]"#).unwrap();
    std::fs::write(dir.join("README.json"), r#"{"title": "notes"}"#).unwrap();
    std::fs::write(dir.join("broken.yaml"), "kind: [unclosed\n").unwrap();
    std::fs::write(dir.join("bad.json"), "{ not json").unwrap();
    std::fs::write(
        dir.join("ok.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bad_name}\n---\n- just\n- a list\n",
    )
    .unwrap();
    let set = load_paths_with(&[&dir], LoadMode::Lenient).unwrap_or_else(|e| *e.partial);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert!(set.decode_failures.is_empty());
    assert_eq!(set.objects.len(), 1);
    // A name that breaks the naming rules is kept as written (validation reports it).
    assert_eq!(set.objects[0].resource.name(), "bad_name");
    assert_eq!(set.objects[0].resource.kind(), Kind::Namespace);
    let mut files: Vec<String> = set
        .warnings
        .iter()
        .map(|w| {
            let f = std::path::Path::new(&w.problem.file);
            format!(
                "{}:{}",
                f.file_name().unwrap().to_string_lossy(),
                w.problem.doc_index
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "README.json:0",
            "bad.json:0",
            "broken.yaml:0",
            "ok.yaml:1",
            "results.json:0"
        ]
    );
    assert!(
        set.warnings
            .iter()
            .all(|w| w.to_string().starts_with("warning: "))
    );
    assert!(!validate(&set).is_empty());
    // The same inputs strictly: errors and decode failures, as before.
    let strict = load_str("r.json", r#"[{"src": "a"}]"#);
    assert_eq!(strict.decode_failures.len(), 1);
    assert!(strict.warnings.is_empty());
}

#[test]
fn yaml_output_reads_back_as_written() {
    // Strings that look like YAML 1.1 booleans or numbers are quoted on output, so the text
    // reads back (here and in Kubernetes) as the same strings.
    let text = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: p\n  labels: {a: 'yes', b: '0x1F', c: 'on', d: 'y', e: '1_000', f: plain, g: '017', 'no': x}\n\
                spec:\n  labelsToApply: {k: 'off', m: \"1.0\"}\n  ingress: [{action: Allow, source: {selector: \"a == 'yes'\"}}]\n";
    let set = load_str("p.yaml", text);
    assert!(set.decode_failures.is_empty(), "{:?}", set.decode_failures);
    let r = &set.objects[0].resource;
    assert_eq!(r.metadata().labels["a"], "yes");
    assert_eq!(r.metadata().labels["no"], "x");
    let yaml = r.to_yaml().expect("yaml");
    assert!(
        yaml.starts_with("apiVersion: projectcalico.org/v3\nkind: Profile\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("a: \"yes\"") && yaml.contains("\"no\": x") && yaml.contains("f: plain"),
        "{yaml}"
    );
    let again = load_str("again.yaml", &yaml);
    assert!(again.decode_failures.is_empty(), "{yaml}");
    assert_eq!(&again.objects[0].resource, r, "{yaml}");
}

mod generated {
    use calico_model::loader::{LoadMode, load_str, load_str_with};
    use proptest::prelude::*;

    /// Scalars that YAML 1.1 and YAML 1.2 read differently, quoted or not, and a few that
    /// do not decode where they are put.
    fn scalar() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "yes",
            "no",
            "on",
            "Off",
            "y",
            "N",
            "true",
            "0x1F",
            "017",
            "08",
            "1_000",
            "1.0",
            "1e3",
            ".5",
            "-.inf",
            "~",
            "",
            "web",
            "rack-1",
            "2001-12-14",
            "[1]",
            "{a: b}",
        ]);
        (words, 0u8..3).prop_map(|(w, q)| match q {
            0 => w.to_owned(),
            1 => format!("'{w}'"),
            _ => format!("\"{w}\""),
        })
    }

    fn document() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((0u8..4, scalar()), 0..4),
            scalar(),
            0u8..6,
            scalar(),
        )
            .prop_map(|(labels, name, kind, port)| {
                let labels: Vec<String> = labels
                    .iter()
                    .enumerate()
                    .map(|(i, (_, v))| format!("k{i}: {v}"))
                    .collect();
                let meta = format!(
                    "metadata:\n  name: {name}\n  namespace: ns\n  labels: {{{}}}\n",
                    labels.join(", ")
                );
                match kind {
                    0 => format!("apiVersion: v1\nkind: Namespace\n{meta}"),
                    1 => format!(
                        "apiVersion: v1\nkind: Pod\n{meta}spec:\n  containers:\n  - name: c\n    ports: [{{containerPort: {port}}}, {{containerPort: 80, name: http}}]\n"
                    ),
                    2 => format!("apiVersion: projectcalico.org/v3\nkind: NetworkSet\n{meta}spec:\n"),
                    3 => format!(
                        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n{meta}spec:\n  ingress:\n  - {{action: Allow, destination: {{ports: [{port}]}}}}\n  - {{action: {name}}}\n  egress:\n"
                    ),
                    4 => format!("apiVersion: projectcalico.org/v3\nkind: Profile\n{meta}spec: {{labelsToApply: {{a: {port}}}}}\n"),
                    _ => format!("- {name}\n- {port}\n"),
                }
            })
    }

    proptest! {
        /// The lenient load never fails an object, decodes every object the strict load does
        /// (unchanged), and everything it decodes reads back unchanged from its YAML and JSON.
        #[test]
        fn lenient_is_a_superset_and_round_trips(docs in prop::collection::vec(document(), 1..5)) {
            let text = docs.join("---\n");
            let strict = load_str("g.yaml", &text);
            let lenient = load_str_with("g.yaml", &text, LoadMode::Lenient);
            prop_assert!(lenient.decode_failures.is_empty(), "{:?}", lenient.decode_failures);
            prop_assert!(lenient.errors.is_empty(), "{:?}", lenient.errors);
            let mut rest = lenient.objects.iter();
            for o in &strict.objects {
                prop_assert!(rest.any(|l| l == o), "{:?} missing from the lenient load of\n{}", o.resource, text);
            }
            for o in &lenient.objects {
                let yaml = o.resource.to_yaml().expect("yaml");
                let again = load_str("r.yaml", &yaml);
                prop_assert!(again.decode_failures.is_empty(), "{yaml}");
                prop_assert_eq!(&again.objects[0].resource, &o.resource, "{}", yaml);
                let json = o.resource.to_json().expect("json");
                let again = load_str("r.json", &json);
                prop_assert_eq!(&again.objects[0].resource, &o.resource, "{}", json);
            }
        }
    }
}
