//! The connlist worked example (`tests/scenarios/worked-example`), byte for byte.

use std::path::Path;

use calico_model::loader::load_paths;
use calico_policy::{Format, Model};

#[test]
fn worked_example_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/worked-example");
    let set = load_paths(&[dir.join("manifests.yaml")]).expect("the manifests load");
    let model = Model::build(&set).expect("valid manifests");
    let list = model.connlist().expect("no fatal problem");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
    assert_eq!(list.render(Format::Txt), expected);
    assert!(list.warnings.is_empty(), "{:?}", list.warnings);
}
