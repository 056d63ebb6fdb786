//! The `calico` command line: a thin front over the calico-* library crates.
//!
//! Exit status (cli.md): `0` success, `1` the command ran and found problems, `2` it could
//! not run. Errors go to stderr as one summary line, then details.

mod exit;
mod policy_cmd;
mod route_cmd;
mod selector_cmd;
mod validate_cmd;

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
    /// Check manifests against Calico's validation rules.
    ///
    /// Reads every .yaml, .yml and .json file under each PATH (directories recursively;
    /// multi-document YAML and List kinds expanded). Prints one line per problem,
    /// `FILE:DOC_INDEX KIND/[NAMESPACE/]NAME: FIELD.PATH: message`, and exits 1 if there
    /// is any; exits 0 when everything is valid and 2 when a path cannot be read.
    Validate(validate_cmd::ValidateArgs),
    /// Offline policy analysis: check one flow, list allowed connections.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// BGP sessions, kernel route plans, BIRD 2 configuration and route analysis.
    #[command(subcommand)]
    Route(route_cmd::RouteCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Selector(cmd) => selector_cmd::run(cmd),
        Command::Validate(args) => validate_cmd::run(&args),
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Route(cmd) => route_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
