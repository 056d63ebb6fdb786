//! Loads a directory of manifests, checks one flow with its explanation and lists every
//! allowed connection.
//!
//! ```text
//! cargo run -p calico-policy --example check_flow [DIR]
//! ```
//!
//! `DIR` defaults to `examples/cluster` (relative to the workspace root, where `cargo run`
//! is usually started).

use std::process::ExitCode;

use calico_policy::{FlowQuery, Format, Model, PeerQuery, Protocol, Verdict, load_paths};

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/cluster".to_owned());
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check_flow: {dir}: {e}");
            // The chain of causes, when there is one.
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Strict: any problem in the manifests is an error naming file, document, resource
    // and field (`Model::build_lenient` would keep going without the broken parts).
    let model = Model::build(&load_paths(&[dir])?)?;
    for warning in model.diagnostics() {
        eprintln!("{warning}");
    }

    let query = FlowQuery {
        from: "frontend/web".parse::<PeerQuery>()?,
        to: PeerQuery::Name("backend/api".to_owned()),
        protocol: Protocol::Tcp,
        port: Some(8080),
        icmp_type: None,
        icmp_code: None,
    };
    let result = model.check(&query)?;
    let answer = match result.verdict {
        Verdict::Allow => "reaches",
        Verdict::Deny => "does not reach",
    };
    println!(
        "frontend/web {answer} backend/api on TCP 8080 ({})",
        result.family
    );
    for direction in &result.explanation {
        let endpoint = direction.endpoint.as_deref().unwrap_or("external peer");
        println!(
            "  {} of {endpoint}: {} because {}",
            direction.direction, direction.verdict, direction.decided_by
        );
        for step in &direction.steps {
            println!("    matched: {step}");
        }
    }

    let connlist = model.connlist()?;
    for warning in &connlist.warnings {
        eprintln!("warning: {warning}");
    }
    println!("\nEvery allowed connection ({} rows):", connlist.rows.len());
    print!("{}", connlist.render(Format::Txt));
    Ok(())
}
