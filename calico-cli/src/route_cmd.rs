//! `calico route sessions|plan|bird|check` (cli.md "route", routing.md).

use std::path::PathBuf;
use std::process::ExitCode;

use calico_model::loader::load_paths;
use calico_route::{Cluster, SessionGraph};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;

/// `calico route …` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RouteCommand {
    /// The BGP sessions of the cluster (mesh, BGPPeers, route reflectors).
    Sessions(SessionsArgs),
}

/// Output formats of `route sessions`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SessionsFormat {
    /// One line per peer protocol, then the session count.
    Text,
    /// `{"sessions": N, "peerings": [...]}`.
    Json,
    /// A Graphviz picture of the session graph.
    Dot,
}

/// Arguments of `route sessions`.
#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
    /// Manifest file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: SessionsFormat,
}

/// Runs a `route` subcommand.
pub(crate) fn run(cmd: RouteCommand) -> Result<ExitCode, CliError> {
    match cmd {
        RouteCommand::Sessions(args) => sessions(&args),
    }
}

fn load(path: &PathBuf) -> Result<Cluster, CliError> {
    let mut set = load_paths(std::slice::from_ref(path));
    if !set.errors.is_empty() || !set.decode_failures.is_empty() {
        let mut details: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
        details.extend(
            set.decode_failures
                .iter()
                .map(|f| format!("{}:{}: {}", f.origin.file, f.origin.doc_index, f.problem)),
        );
        return Err(CliError::with_details(
            format!("{} could not be loaded", path.display()),
            details,
        ));
    }
    set.apply_defaults();
    Ok(Cluster::from_resources(set.resources()))
}

fn sessions(args: &SessionsArgs) -> Result<ExitCode, CliError> {
    let cluster = load(&args.path)?;
    let graph = SessionGraph::new(&cluster);
    match args.output {
        SessionsFormat::Text => print!("{}", graph.to_text()),
        SessionsFormat::Json => println!("{}", json_text(&graph.to_json())?),
        SessionsFormat::Dot => print!("{}", graph.to_dot(&cluster)),
    }
    Ok(ExitCode::SUCCESS)
}

fn json_text(v: &serde_json::Value) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map_err(|e| CliError::could_not_run(format!("cannot write JSON: {e}")))
}
