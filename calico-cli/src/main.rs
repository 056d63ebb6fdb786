//! The `calico` command line: a thin front over the calico-* library crates.
//!
//! Exit status (cli.md): `0` success, `1` the command ran and found problems, `2` it could
//! not run. Errors go to stderr as one summary line, then details.

mod exit;
mod selector_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Calico networking and network-policy tools: selectors, manifests, policy analysis,
/// IPAM, routing and the dataplane.
#[derive(Debug, Parser)]
#[command(name = "calico", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse, evaluate and identify Calico label selectors.
    #[command(subcommand)]
    Selector(selector_cmd::SelectorCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Selector(cmd) => selector_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
