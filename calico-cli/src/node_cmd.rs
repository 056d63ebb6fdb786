//! `calico node status`: the node agent's BGP sessions, from BIRD's control socket only
//! (never the datastore), as calicoctl prints them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calico_node::protocols::parse_show_protocols;
use calico_node::{Agent, AgentConfig, BirdControl, NodeStatus};
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
    /// Runs the node agent: Felix's and confd's jobs, with BIRD supervised.
    ///
    /// Follows the datastore (`--store`, `--config`, the calicoctl environment, or
    /// `file:./calico.db`), programs this node's kernel (nftables table `inet calico`,
    /// routes, VXLAN device, neighbours and FDB) once in sync and by deltas afterwards,
    /// renders BIRD's configuration (checked with `bird -p`, loaded with `configure`) and
    /// keeps BIRD running, writes Felix's status keys, and answers /liveness and /readiness
    /// (port 9099) and /metrics (port 9091, when FelixConfiguration's
    /// prometheusMetricsEnabled is true). SIGTERM or Ctrl-C stops BIRD and exits 0; the
    /// kernel stays programmed, so traffic keeps flowing until the next start converges.
    Run(RunArgs),
}

/// Arguments of `node run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// This node's name (its Node resource).
    #[arg(long, env = "NODENAME", value_name = "NAME")]
    node: String,
    /// State directory: pid file, BIRD's control socket and log, endpoint status files.
    #[arg(long, default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    state_dir: PathBuf,
    /// BIRD's configuration file (default: STATE_DIR/bird.cfg).
    #[arg(long, value_name = "FILE")]
    bird_config: Option<PathBuf>,
    /// The BIRD 2 program.
    #[arg(long, default_value = "bird", value_name = "PATH")]
    bird: PathBuf,
    /// Policy-only mode: no BIRD, no BGP configuration (for example beside flannel).
    #[arg(long)]
    no_bgp: bool,
    /// Follow the datastore and report, but program nothing (for scale tests).
    #[arg(long)]
    no_dataplane: bool,
    /// The interface holding the node's address (VXLAN's parent device).
    #[arg(long, default_value = "eth0", value_name = "IFACE")]
    parent_iface: String,
    /// Health port (default FelixConfiguration healthPort, 9099; 0: any free port).
    #[arg(long, env = "FELIX_HEALTHPORT", value_name = "PORT")]
    health_port: Option<u16>,
    /// Metrics port (default FelixConfiguration prometheusMetricsPort, 9091).
    #[arg(long, env = "FELIX_PROMETHEUSMETRICSPORT", value_name = "PORT")]
    metrics_port: Option<u16>,
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
    match cmd {
        NodeCommand::Status(args) => status(&args),
        NodeCommand::Run(args) => run_agent(&args),
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads started after it) and sets
/// `stop` when one arrives.
fn stop_on_signals(stop: Arc<AtomicBool>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
}

fn run_agent(args: &RunArgs) -> Result<ExitCode, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(stop.clone());
    let (url, _) = crate::datastore::resolve_remembered()?;
    let store = crate::store_cmd::open(&url)?;
    let mut config = AgentConfig::new(&args.node);
    config.state_dir = args.state_dir.clone();
    config.bird_config = args
        .bird_config
        .clone()
        .unwrap_or_else(|| args.state_dir.join("bird.cfg"));
    config.bird_binary = args.bird.clone();
    config.bgp = !args.no_bgp;
    config.dataplane = !args.no_dataplane;
    config.parent_iface = args.parent_iface.clone();
    config.health_port = args.health_port;
    config.metrics_port = args.metrics_port;
    eprintln!(
        "calico-node[{}]: starting on {url} (state in {})",
        args.node,
        args.state_dir.display()
    );
    Agent::new(store, config)
        .run(&stop)
        .map_err(|e| CliError::could_not_run(format!("node run: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn status(args: &StatusArgs) -> Result<ExitCode, CliError> {
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
