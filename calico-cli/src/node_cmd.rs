//! `calico node status`: the node agent's BGP sessions, from BIRD's control socket only
//! (never the datastore), as calicoctl prints them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use calico_node::protocols::parse_show_protocols;
use calico_node::{BirdControl, NodeStatus};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;

/// The default state directory of the agent (its pid file and BIRD's control socket).
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/run/calico";

/// The node agent.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Whether the agent runs on this node and the state of its BGP sessions.
    ///
    /// The agent runs when the pid in STATE_DIR/calico-node.pid is a live process. Its BGP
    /// sessions come from BIRD's control socket STATE_DIR/bird.ctl (`show protocols`),
    /// split into IPv4 and IPv6 by peer address. Exit 1 when the agent is not running.
    Status(StatusArgs),
}

/// Arguments of `node status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The agent's state directory.
    #[arg(long, default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    state_dir: PathBuf,
    /// Output format: calicoctl's tables, or JSON for scripts.
    #[arg(short, long, value_enum, default_value_t = StatusFormat::Table)]
    output: StatusFormat,
}

/// Output formats of `node status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    /// calicoctl's text.
    Table,
    /// `{"running", "ipv4", "ipv6"}`.
    Json,
}

/// Whether the process whose pid `dir/calico-node.pid` holds is alive.
fn agent_running(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("calico-node.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Runs a `node` command.
pub(crate) fn run(cmd: NodeCommand) -> Result<ExitCode, CliError> {
    let NodeCommand::Status(args) = cmd;
    let running = agent_running(&args.state_dir);
    let status = if running {
        let socket = args.state_dir.join("bird.ctl");
        let rows = BirdControl::connect(&socket, Duration::from_secs(5))
            .and_then(|mut c| c.command("show protocols"))
            .map(|reply| parse_show_protocols(&reply.text()))
            .map_err(|e| {
                CliError::with_details(
                    "Calico process is running, but BIRD's status cannot be read".to_owned(),
                    vec![e.to_string()],
                )
            })?;
        NodeStatus::from_protocols(true, &rows)
    } else {
        NodeStatus::from_protocols(false, &[])
    };
    match args.output {
        StatusFormat::Table => print!("{}", status.to_table()),
        StatusFormat::Json => println!("{}", status.to_json()),
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
