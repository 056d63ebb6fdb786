//! `calico selector …` run as a script would: exit codes, stdout, stderr.

use std::process::{Command, Output};

fn calico(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calico"))
        .args(args)
        .output()
        .expect("run calico")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn eval_prints_true_or_false_and_exits_zero() {
    let cases = [
        (
            "app == 'web' && env != 'prod'",
            r#"{"app":"web"}"#,
            "true\n",
        ),
        (
            "app == 'web' && env != 'prod'",
            r#"{"app":"web","env":"prod"}"#,
            "false\n",
        ),
        ("a not in {}", "{}", "true\n"),
        ("has(a)", r#"{"a":""}"#, "true\n"),
        ("", "{}", "true\n"),
        ("!all()", "{}", "false\n"),
    ];
    for (sel, labels, want) in cases {
        let o = calico(&["selector", "eval", sel, "--labels", labels]);
        assert_eq!(o.status.code(), Some(0), "{sel}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{sel} on {labels}");
    }
}

#[test]
fn invalid_selector_exits_two_with_kind_and_offset() {
    let o = calico(&["selector", "eval", "a == 1", "--labels", "{}"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains("invalid selector"), "{err}");
    assert!(first.contains("expected string"), "{err}");
    assert!(first.contains("byte 5"), "{err}");

    for args in [
        &["selector", "normalize", "a ="][..],
        &["selector", "id", "(a == 'x'"][..],
        &["selector", "normalize", "a == 'x'\n"][..],
    ] {
        let o = calico(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("invalid selector"), "{args:?}");
    }
}

#[test]
fn labels_must_be_an_object_of_strings() {
    for labels in ["[1]", r#"{"a":1}"#, "not json"] {
        let o = calico(&["selector", "eval", "has(a)", "--labels", labels]);
        assert_eq!(o.status.code(), Some(2), "{labels}");
        assert!(stderr(&o).contains("--labels"), "{labels}: {}", stderr(&o));
    }
}

#[test]
fn normalize_prints_the_canonical_string() {
    let cases = [
        ("a=='x'", "a == \"x\""),
        (
            "a in {\"b\",\"a\",\"B\",\"\",\"a\"}",
            "a in {\"\", \"B\", \"a\", \"b\"}",
        ),
        ("!(!has(a))", "!!has(a)"),
        (
            "a == '1' || b == '1' && c == '1'",
            "(a == \"1\" || (b == \"1\" && c == \"1\"))",
        ),
        ("   ", "all()"),
    ];
    for (input, want) in cases {
        let o = calico(&["selector", "normalize", input]);
        assert_eq!(o.status.code(), Some(0), "{input}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{want}\n"), "{input}");
    }
}

#[test]
fn id_matches_the_reference_vectors() {
    let cases = [
        ("all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
        ("has(a)", "s:JpRGrxZ4kdS6g7WoF-uG_g7qlh2ipw2zGYBMpQ"),
        ("a == 'x'", "s:0LriL27abMJ0N52C5_wqdiGYzoN0tcD__T7VRw"),
        ("", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ];
    for (input, want) in cases {
        let o = calico(&["selector", "id", input]);
        assert_eq!(o.status.code(), Some(0), "{input}");
        assert_eq!(stdout(&o), format!("{want}\n"), "{input}");
    }
}

#[test]
fn double_dash_before_a_selector_starting_with_dash() {
    let o = calico(&["selector", "normalize", "--", "-a == 'x'"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "-a == \"x\"\n");
    let o = calico(&[
        "selector",
        "eval",
        "--labels",
        r#"{"-a":"x"}"#,
        "--",
        "-a == 'x'",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "true\n");
}

#[test]
fn bad_arguments_exit_two() {
    for args in [
        &["selector"][..],
        &["selector", "eval", "has(a)"][..],
        &["selector", "frobnicate"][..],
        &["nonsense"][..],
    ] {
        let o = calico(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn help_explains_every_subcommand() {
    for args in [
        &["--help"][..],
        &["selector", "--help"][..],
        &["selector", "eval", "--help"][..],
        &["validate", "--help"][..],
    ] {
        let o = calico(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(stdout(&o).contains("Usage"), "{args:?}");
    }
}
