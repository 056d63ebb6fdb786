//! Loader behaviour: documents, lists, skipped kinds, directories, errors with origins.

use std::fs;
use std::path::PathBuf;

use calico_model::loader::{LoadError, load_path, load_paths, load_str};
use calico_model::resources::{Kind, Resource};
use calico_model::validation::validate;

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";

#[test]
fn bad_yaml_in_document_two_names_file_and_index() {
    let text = format!("{NS}---\n{NS}---\nkind: [unclosed\n---\n{NS}");
    let set = load_str("f.yaml", &text);
    assert_eq!(set.objects.len(), 2);
    assert_eq!(set.errors.len(), 1);
    match &set.errors[0] {
        LoadError::Parse {
            file,
            doc_index,
            stopped,
            ..
        } => {
            assert_eq!(file, "f.yaml");
            assert_eq!(*doc_index, 2);
            assert!(*stopped);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = set.errors[0].to_string();
    assert!(msg.starts_with("f.yaml:2: cannot parse YAML: "), "{msg}");
    assert!(
        msg.contains("later documents in this file were not read"),
        "{msg}"
    );
}

#[test]
fn document_indexes_count_empty_documents() {
    let text = format!(
        "---\n# only a comment\n---\n{NS}---\n---\n{}",
        NS.replace("a}", "b}")
    );
    let set = load_str("f.yaml", &text);
    let origins: Vec<usize> = set.objects.iter().map(|o| o.origin.doc_index).collect();
    assert_eq!(origins, [1, 3]);
    assert!(set.errors.is_empty() && set.decode_failures.is_empty());
}

#[test]
fn lists_are_expanded() {
    let text = "\
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: a}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: s}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: B}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicyList
items:
  - metadata: {name: p1, namespace: x}
  - metadata: {name: p2}
    spec: {bogus: 1}
---
apiVersion: projectcalico.org/v3
kind: IPPoolList
items: []
";
    let set = load_str("l.yaml", text);
    assert!(set.errors.is_empty());
    let got: Vec<(usize, Option<usize>, Kind, &str)> = set
        .objects
        .iter()
        .map(|o| {
            (
                o.origin.doc_index,
                o.origin.item_index,
                o.resource.kind(),
                o.resource.name(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(0), Kind::Namespace, "a"),
            (0, Some(2), Kind::Namespace, "B"),
            (1, Some(0), Kind::NetworkPolicy, "p1"),
        ]
    );
    assert_eq!(set.skipped.len(), 1);
    assert_eq!(set.skipped[0].kind, "ConfigMap");
    assert_eq!(set.skipped[0].origin.item_index, Some(1));
    let lines: Vec<String> = validate(&set).iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("l.yaml:0 Namespace/B: metadata.name: invalid name"),
        "{lines:?}"
    );
    assert!(
        lines[1]
            .starts_with("l.yaml:1 NetworkPolicy/default/p2: spec.bogus: unknown field `bogus`"),
        "{lines:?}"
    );
}

#[test]
fn unmodelled_kinds_are_skipped_and_counted() {
    let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: p}
---
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata: {name: default}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: cert}
";
    let set = load_str("s.yaml", text);
    assert!(set.objects.is_empty());
    let skipped: Vec<(&str, &str, &str)> = set
        .skipped
        .iter()
        .map(|s| (s.api_version.as_str(), s.kind.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("v1", "ConfigMap", "c"),
            ("crd.projectcalico.org/v1", "IPPool", "p"),
            (
                "projectcalico.org/v3",
                "KubeControllersConfiguration",
                "default"
            ),
            ("cert-manager.io/v1", "Certificate", "cert"),
        ]
    );
    assert!(validate(&set).is_empty());
}

#[test]
fn decode_failures_are_problems_with_origin() {
    let text = "\
apiVersion: projectcalico.org/v2
kind: NetworkPolicy
metadata: {name: old}
---
metadata: {name: nokind}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h}
spec: {node: n, expectedIPs: [not-an-ip]}
---
just a string
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: ns}
spec: {replicas: many}
";
    let set = load_str("d.yaml", text);
    assert!(set.objects.is_empty());
    let lines: Vec<String> = validate(&set).iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "d.yaml:0 NetworkPolicy/default/old: apiVersion: unsupported apiVersion \"projectcalico.org/v2\" for kind NetworkPolicy (expected projectcalico.org/v3)",
            "d.yaml:1 ?/nokind: kind: kind is required",
            "d.yaml:2 HostEndpoint/h: spec.expectedIPs[0]: invalid IP address syntax",
            "d.yaml:3 ?/: -: expected an object, found a string",
            "d.yaml:4 Deployment/ns/d: spec.replicas: invalid type: string \"many\", expected i64",
        ]
    );
}

#[test]
fn json_files_and_default_namespace() {
    let set = load_str(
        "p.json",
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n"}}"#,
    );
    assert_eq!(set.objects.len(), 1);
    assert_eq!(set.objects[0].origin.doc_index, 0);
    let r = &set.objects[0].resource;
    assert_eq!(r.namespace(), Some("default"));
    assert!(matches!(r, Resource::Pod(p) if p.spec.node_name == "n"));
    let bad = load_str("p.json", "{\"apiVersion\": ");
    assert_eq!(bad.errors.len(), 1);
    assert!(
        bad.errors[0]
            .to_string()
            .starts_with("p.json:0: cannot parse JSON: ")
    );
    // Cluster-scoped kinds get no namespace.
    let set = load_str(
        "t.yaml",
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\n",
    );
    assert_eq!(set.objects[0].resource.namespace(), None);
}

#[test]
fn yaml_merge_keys_and_anchors() {
    let text = "\
apiVersion: v1
kind: List
items:
  - &ns {apiVersion: v1, kind: Namespace, metadata: {name: a, labels: {x: y}}}
  - <<: *ns
    metadata: {name: b}
";
    let set = load_str("m.yaml", text);
    let names: Vec<&str> = set.resources().map(Resource::name).collect();
    assert_eq!(names, ["a", "b"]);
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calico-loader-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn directories_are_read_recursively_in_sorted_order() {
    let dir = temp_dir("dirs");
    fs::create_dir_all(dir.join("b/nested")).expect("mkdir");
    let ns = |n: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n");
    fs::write(dir.join("z.yaml"), ns("z")).expect("write");
    fs::write(dir.join("a.yml"), ns("a")).expect("write");
    fs::write(
        dir.join("b/nested/c.json"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
    )
    .expect("write");
    fs::write(dir.join("b/m.yaml"), ns("m")).expect("write");
    fs::write(dir.join("README.md"), "not a manifest: [").expect("write");
    fs::write(dir.join("notes.txt"), ns("ignored")).expect("write");
    let set = load_path(&dir).expect("every input loads");
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let names: Vec<&str> = set.resources().map(Resource::name).collect();
    assert_eq!(names, ["a", "m", "c", "z"]);
    let files: Vec<String> = set
        .files
        .iter()
        .map(|f| f.trim_start_matches(&*dir.to_string_lossy()).to_owned())
        .collect();
    assert_eq!(
        files,
        ["/a.yml", "/b/m.yaml", "/b/nested/c.json", "/z.yaml"]
    );

    // A file given explicitly is read whatever its extension.
    let err = load_paths(&[dir.join("notes.txt"), dir.join("missing.yaml")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("1 input(s) could not be read or parsed: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let set = *err.partial;
    assert_eq!(
        set.resources().map(Resource::name).collect::<Vec<_>>(),
        ["ignored"]
    );
    assert_eq!(set.errors.len(), 1);
    assert!(
        matches!(&set.errors[0], LoadError::Read { path, .. } if path.ends_with("missing.yaml"))
    );

    // Invalid UTF-8 is a parse error naming the file.
    fs::write(dir.join("bin.yaml"), [0xff, 0xfe, b'a']).expect("write");
    let err = load_path(&dir.join("bin.yaml")).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let set = *err.partial;
    assert!(
        set.errors[0]
            .to_string()
            .contains("bin.yaml:0: cannot parse YAML: file is not valid UTF-8")
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn problems_follow_input_order_across_files() {
    let mut set = load_str(
        "b.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: X}\n",
    );
    set.extend(load_str("a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: Z}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: X}\n"));
    let lines: Vec<String> = validate(&set)
        .iter()
        .map(|p| format!("{}:{} {}", p.file, p.doc_index, p.field_path))
        .collect();
    assert_eq!(
        lines,
        [
            "b.yaml:0 metadata.name",
            "a.yaml:0 metadata.name",
            "a.yaml:1 metadata.name",
            "a.yaml:1 metadata.name"
        ]
    );
}
