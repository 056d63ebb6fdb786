//! The scenario suite: `tests/scenarios/<name>/manifests.yaml` plus `cases.txt`, one flow
//! per line:
//!
//! ```text
//! FROM TO PROTOCOL[:PORT | :TYPE[/CODE]] allow|deny [because <text in the decisive reason>]
//! ```
//!
//! `#` starts a comment. Each scenario's README comment (top of `cases.txt`) says which rule
//! of Calico's policy semantics it covers and where a naive implementation goes wrong. A scenario with an
//! `expected.txt` also checks the connlist byte for byte.

use std::path::Path;

use calico_model::loader::load_paths;
use calico_model::resources::values::Protocol;
use calico_policy::{FlowQuery, Format, Model, PeerQuery, Verdict};

struct Case {
    line: usize,
    query: FlowQuery,
    expected: Verdict,
    because: Option<String>,
}

fn parse_case(line_no: usize, line: &str) -> Option<Case> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return None;
    }
    let (main, because) = match line.split_once(" because ") {
        Some((m, b)) => (m, Some(b.trim().to_owned())),
        None => (line, None),
    };
    let f: Vec<&str> = main.split_whitespace().collect();
    assert_eq!(f.len(), 4, "line {line_no}: {line}");
    let (proto, arg) = match f[2].split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (f[2], None),
    };
    let protocol = Protocol::parse(proto).unwrap_or_else(|e| panic!("line {line_no}: {e}"));
    let is_icmp = protocol.is_icmp_v4() || protocol.is_icmp_v6();
    let (mut port, mut icmp_type, mut icmp_code) = (None, None, None);
    if let Some(a) = arg {
        if is_icmp {
            let (t, c) = match a.split_once('/') {
                Some((t, c)) => (t, Some(c)),
                None => (a, None),
            };
            icmp_type = Some(t.parse().expect("icmp type"));
            icmp_code = c.map(|c| c.parse().expect("icmp code"));
        } else {
            port = Some(a.parse().expect("port"));
        }
    }
    Some(Case {
        line: line_no,
        query: FlowQuery {
            from: f[0].parse::<PeerQuery>().unwrap_or_else(|e| match e {}),
            to: f[1].parse::<PeerQuery>().unwrap_or_else(|e| match e {}),
            protocol,
            port,
            icmp_type,
            icmp_code,
        },
        expected: match f[3] {
            "allow" => Verdict::Allow,
            "deny" => Verdict::Deny,
            other => panic!("line {line_no}: verdict {other:?}"),
        },
        because,
    })
}

fn run_scenario(dir: &Path) -> Vec<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let set = load_paths(&[dir.join("manifests.yaml")]).expect("the manifests load");
    let model = match Model::build(&set) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: model: {e:?}")],
    };
    let mut failures = Vec::new();
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap_or_default();
    for (i, line) in cases.lines().enumerate() {
        let Some(case) = parse_case(i + 1, line) else {
            continue;
        };
        match model.check(&case.query) {
            Err(e) => failures.push(format!("{name}:{}: {e}", case.line)),
            Ok(r) => {
                if r.verdict != case.expected {
                    failures.push(format!(
                        "{name}:{}: {line}\n  got {}:\n{r}",
                        case.line, r.verdict
                    ));
                } else if let Some(b) = &case.because {
                    let reasons: Vec<&str> =
                        r.explanation.iter().map(|d| d.reason.as_str()).collect();
                    let decisive = r
                        .explanation
                        .iter()
                        .find(|d| d.verdict == Verdict::Deny)
                        .map_or(reasons.join(" | "), |d| d.reason.clone());
                    if !decisive.contains(b.as_str())
                        && !reasons.iter().any(|x| x.contains(b.as_str()))
                    {
                        failures.push(format!(
                            "{name}:{}: reason {decisive:?} does not mention {b:?}",
                            case.line
                        ));
                    }
                }
            }
        }
    }
    if let Ok(expected) = std::fs::read_to_string(dir.join("expected.txt")) {
        match model.connlist() {
            Ok(l) => {
                let got = l.render(Format::Txt);
                if got != expected {
                    failures.push(format!(
                        "{name}: connlist differs:\n--- got\n{got}--- expected\n{expected}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: connlist: {e:?}")),
        }
    }
    failures
}

#[test]
fn scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("scenarios dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("manifests.yaml").exists())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    let mut cases = 0;
    for d in &dirs {
        cases += std::fs::read_to_string(d.join("cases.txt"))
            .unwrap_or_default()
            .lines()
            .enumerate()
            .filter_map(|(i, l)| parse_case(i + 1, l))
            .count();
        failures.extend(run_scenario(d));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        dirs.len() >= 10,
        "expected the full suite, found {}",
        dirs.len()
    );
    assert!(cases >= 60, "only {cases} cases");
}
