//! `calico validate` run as a script would: exit codes and the problem-line format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
        .output()
        .expect("run calico")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calico-validate-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn example_cluster_is_valid() {
    let path = repo().join("examples/cluster");
    let o = calico(&["validate", path.to_str().expect("utf-8 path")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("valid"));
}

#[test]
fn problems_exit_one_with_one_line_each() {
    let dir = scratch("problems");
    let file = dir.join("pools.yaml");
    std::fs::write(
        &file,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ok\nspec:\n  cidr: 10.0.0.0/16\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: v6\nspec:\n  cidr: fd00::/112\n  ipipMode: Always\n  blockSize: 20\n",
    )
    .expect("write manifest");
    let o = calico(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let prefix = format!("{}:1 IPPool/v6: ", file.display());
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line.starts_with(&prefix), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{prefix}spec.ipipMode: "))),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{prefix}spec.blockSize: "))),
        "{out}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unparseable_or_missing_input_exits_two_naming_file_and_document() {
    let dir = scratch("broken");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\nkind: [unclosed\n",
    )
    .expect("write manifest");
    let o = calico(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:1:", file.display())), "{err}");

    let o = calico(&[
        "validate",
        dir.join("absent.yaml").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("absent.yaml"));
    std::fs::remove_dir_all(dir).ok();
}
