//! `calico route sessions|plan|bird|check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use calico_datastore::ReadOp;
use calico_ipam::keys;
use calico_route::input::Affinity;
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::{Cluster, Family, SessionGraph};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;
use crate::manifests::{self, LoadArgs};

/// `calico route …` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RouteCommand {
    /// The BGP sessions of the cluster (mesh, BGPPeers, route reflectors).
    Sessions(SessionsArgs),
    /// The kernel routes a node programs, one per line in `ip route` syntax.
    Plan(PlanArgs),
    /// The node's BIRD 2 configuration (IPv4, or IPv6 with --ipv6).
    Bird(BirdArgs),
    /// Session-graph and route-propagation analysis; exits 1 on problems.
    Check(CheckArgs),
}

/// Arguments of `route check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Manifest file or directory; without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`), block
    /// affinities included.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: TextJson,
}

/// Arguments of `route bird`.
#[derive(Debug, Args)]
pub(crate) struct BirdArgs {
    /// Manifest file or directory; without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`), block
    /// affinities included.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// The node to render for.
    #[arg(long)]
    node: String,
    /// Render the IPv6 configuration.
    #[arg(long)]
    ipv6: bool,
    /// Router ID: `hash` (from the node name), an IPv4 address, or the node's IPv4
    /// address when not given (what calico-node's CALICO_ROUTER_ID says).
    #[arg(long, value_name = "hash|IP", value_parser = parse_router_id)]
    router_id: Option<calico_route::input::RouterIdSource>,
}

fn parse_router_id(s: &str) -> Result<calico_route::input::RouterIdSource, String> {
    s.parse()
        .map_err(|e: calico_route::input::BadRouterId| e.to_string())
}

/// Output formats of `route plan` and `route check`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TextJson {
    /// Plain text.
    Text,
    /// JSON.
    Json,
}

/// Arguments of `route plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Manifest file or directory; without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`), block
    /// affinities included.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// The node to plan for.
    #[arg(long)]
    node: String,
    /// Output format (`json` adds devices, neighbour and FDB entries).
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: TextJson,
    /// The interface holding the node's BGP address.
    #[arg(long, default_value = "eth0")]
    parent_iface: String,
    /// Host MTU assumed for the MTU arithmetic.
    #[arg(long, default_value_t = 1500)]
    host_mtu: u32,
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
    /// Manifest file or directory; without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`), block
    /// affinities included.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: SessionsFormat,
}

/// Runs a `route` subcommand. With `store` (the global `--store`, when given), block
/// affinities come from the IPAM state in that store instead of BlockAffinity resources in
/// `PATH`.
pub(crate) fn run(cmd: RouteCommand, store: Option<&str>) -> Result<ExitCode, CliError> {
    match cmd {
        RouteCommand::Sessions(args) => sessions(&args),
        RouteCommand::Plan(args) => plan(&args, store),
        RouteCommand::Bird(args) => bird(&args, store),
        RouteCommand::Check(args) => check(&args, store),
    }
}

/// Loads `path` (or the datastore) and, with a store, replaces its block affinities by the
/// store's (always when the resources came from the store).
fn load_with(
    path: Option<&Path>,
    opts: LoadArgs,
    store: Option<&str>,
) -> Result<Cluster, CliError> {
    let (mut cluster, from_store) = load_from(path, opts)?;
    if let Some(url) = from_store.as_deref().or(store) {
        cluster.affinities = store_affinities(url)?;
        cluster.sort();
    }
    Ok(cluster)
}

/// The host affinities of the IPAM state (`/calico/ipam/v2/host/<node>/ipv<4|6>/block/…`, as
/// Calico stores them); virtual owners are not nodes and are not read.
fn store_affinities(url: &str) -> Result<Vec<Affinity>, CliError> {
    let store = crate::store_cmd::open(url)?;
    let resp = store
        .read(&[ReadOp::prefix(
            keys::HOST_AFFINITY_PREFIX.as_bytes().to_vec(),
            0,
        )])
        .map_err(|e| CliError::could_not_run(format!("cannot read affinities from {url}: {e}")))?;
    let kvs = resp
        .results
        .into_iter()
        .next()
        .and_then(|r| r.into_range())
        .map(|r| r.kvs)
        .unwrap_or_default();
    let mut out = Vec::new();
    for kv in kvs {
        let affinity = calico_node::view::affinity_of(&kv).map_err(|e| {
            CliError::could_not_run(format!(
                "affinity {} in {url} does not decode: {e}",
                String::from_utf8_lossy(&kv.key)
            ))
        })?;
        out.extend(affinity);
    }
    Ok(out)
}

/// The cluster of `path` (or of the datastore's resources, whose name is returned too):
/// leniently, what is not a manifest or does not decode is skipped with a warning; with
/// `--strict` any such problem fails the command.
fn load_from(path: Option<&Path>, opts: LoadArgs) -> Result<(Cluster, Option<String>), CliError> {
    let (set, source) = manifests::load_input(path, opts.mode())?;
    manifests::print_warnings(&set);
    if !set.decode_failures.is_empty() {
        return Err(CliError::with_details(
            format!("{source} could not be loaded"),
            set.decode_failures
                .iter()
                .map(|f| format!("{}:{}: {}", f.origin.file, f.origin.doc_index, f.problem))
                .collect(),
        ));
    }
    let from_store = path.is_none().then_some(source);
    Ok((Cluster::from_resources(set.resources()), from_store))
}

/// The cluster of `path` (or of the datastore), without the store's affinities.
fn load(path: Option<&Path>, opts: LoadArgs) -> Result<Cluster, CliError> {
    load_with(path, opts, None)
}

fn sessions(args: &SessionsArgs) -> Result<ExitCode, CliError> {
    let cluster = load(args.path.as_deref(), args.load)?;
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

fn plan(args: &PlanArgs, store: Option<&str>) -> Result<ExitCode, CliError> {
    let cluster = load_with(args.path.as_deref(), args.load, store)?;
    let opts = PlanOptions {
        parent_iface: args.parent_iface.clone(),
        host_mtu: args.host_mtu,
    };
    let plan = plan_node(&cluster, &args.node, &opts)
        .map_err(|e| CliError::could_not_run(e.to_string()))?;
    for u in &plan.unrouted {
        eprintln!(
            "calico: warning: no route to {} (on {}): {}",
            u.dst, u.node, u.reason
        );
    }
    match args.output {
        TextJson::Text => print!("{}", plan.to_text()),
        TextJson::Json => {
            let v = serde_json::to_value(&plan)
                .map_err(|e| CliError::could_not_run(format!("cannot write JSON: {e}")))?;
            let mut v = v;
            if let Some(routes) = v.get_mut("routes").and_then(|r| r.as_array_mut()) {
                for (r, text) in routes.iter_mut().zip(plan.routes.iter()) {
                    if let Some(o) = r.as_object_mut() {
                        o.insert(
                            "text".to_owned(),
                            serde_json::Value::String(text.to_string()),
                        );
                    }
                }
            }
            println!("{}", json_text(&v)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bird(args: &BirdArgs, store: Option<&str>) -> Result<ExitCode, CliError> {
    let mut cluster = load_with(args.path.as_deref(), args.load, store)?;
    if let Some(source) = args.router_id {
        cluster.router_id = source;
    }
    let family = if args.ipv6 { Family::V6 } else { Family::V4 };
    let config = calico_route::bird::render(&cluster, &args.node, family)
        .map_err(|e| CliError::could_not_run(e.to_string()))?;
    print!("{}", config.text);
    for note in &config.notes {
        if let Ok(text) = serde_json::to_string(note) {
            eprintln!("calico: warning: {text}");
        }
    }
    for (filter, index, why) in &config.skipped_rules {
        eprintln!("calico: warning: BGPFilter {filter} rule {index} not rendered: {why}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: &CheckArgs, store: Option<&str>) -> Result<ExitCode, CliError> {
    let cluster = load_with(args.path.as_deref(), args.load, store)?;
    let report = calico_route::check::check(&cluster);
    match args.output {
        TextJson::Text => print!("{}", report.to_text()),
        TextJson::Json => {
            let mut v = serde_json::to_value(&report)
                .map_err(|e| CliError::could_not_run(format!("cannot write JSON: {e}")))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("ok".to_owned(), serde_json::Value::Bool(report.ok()));
            }
            println!("{}", json_text(&v)?);
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
