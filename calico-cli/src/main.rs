//! The `calico` command line: a thin front over the calico-* library crates.
//!
//! Exit status: `0` success, `1` the command ran and found problems, `2` it could
//! not run. Errors go to stderr as one summary line, then details.

mod dataplane_cmd;
mod datastore;
mod datastore_cmd;
mod demo;
mod exit;
mod get_table;
mod ipam_cmd;
mod manifests;
mod node_cmd;
mod policy_cmd;
mod route_cmd;
mod selector_cmd;
mod store_cmd;
mod validate_cmd;

use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: the node agent decodes and derives 100,000s of
/// small objects on several threads at its cold start, where glibc's per-thread arenas
/// fragment (higher peak memory, slower frees); measured with `nodebench`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Calico networking and network-policy tools: selectors, manifests, policy analysis,
/// IPAM, routing and the dataplane.
#[derive(Debug, Parser)]
#[command(name = "calico", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// The datastore: `file:PATH` (embedded; default `file:./calico.db`),
    /// `etcd://HOST:PORT[,HOST:PORT...]` or `memory:`. `route plan|bird|check` read block
    /// affinities from it only when it is given.
    #[arg(long, global = true, env = "CALICO_STORE", value_name = "URL")]
    store: Option<String>,
    /// calicoctl's configuration file (`kind: CalicoAPIConfig`: datastoreType etcdv3,
    /// etcdEndpoints, TLS files or inline PEM, user name and password). Default:
    /// /etc/calico/calicoctl.cfg when it exists. Without a file, the calicoctl environment
    /// (ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ... or CALICO_ETCD_...) is used. `--store` and
    /// CALICO_STORE take precedence over the default file and the environment, `--config`
    /// over CALICO_STORE.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Say on stderr which datastore is used and where its configuration came from.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    /// How long a datastore request may keep retrying before the command gives up (exit
    /// 2), in seconds; an etcd store no member of which answers within it is reported at
    /// once.
    #[arg(long, global = true, env = "CALICO_STORE_TIMEOUT", default_value_t = store_cmd::DEFAULT_STORE_TIMEOUT.as_secs_f64(), value_name = "SECONDS", value_parser = parse_timeout)]
    store_timeout: f64,
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
    /// Program a node's kernel state (routes, neighbours, devices, nftables) from manifests.
    #[command(subcommand)]
    Dataplane(dataplane_cmd::DataplaneCommand),
    /// Store projectcalico.org/v3 (and Kubernetes) resources from manifests in --store.
    Apply(store_cmd::ApplyArgs),
    /// Print resources from --store: a table (default), `-o wide`, `-o yaml` or `-o json`.
    Get(store_cmd::GetArgs),
    /// Delete resources from --store, by KIND NAME or by manifest (-f PATH).
    Delete(store_cmd::DeleteArgs),
    /// Block IP address management against --store.
    #[command(subcommand)]
    Ipam(ipam_cmd::IpamCommand),
    /// Build the cluster in network namespaces and prove its policies with real packets.
    ///
    /// Predicts the connectivity matrix of every ordered pair of scheduled pods with
    /// calico-policy; as root, builds one namespace per node on a bridge, adds the pods with
    /// calico-cni, programs VXLAN routes and nftables with calico-dataplane, probes every pair
    /// (TCP to each declared TCP port or 80, UDP to each declared UDP port or 5353, ICMP echo)
    /// and prints what the kernel did beside the prediction. Exit 1 if any probe disagrees.
    /// Without root only the prediction is printed, with the reason.
    Demo(demo::DemoArgs),
    /// The node agent: `status` shows its BGP sessions as calicoctl does.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
    /// Raw access to the datastore: `dump` prints every key and value.
    #[command(subcommand)]
    Datastore(datastore_cmd::DatastoreCommand),
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds above 0 (at most 86400), got {s:?}"
        )),
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    store_cmd::set_store_timeout(std::time::Duration::from_secs_f64(cli.store_timeout));
    // `--store` on the command line wins over everything; CALICO_STORE (which clap also
    // fills it from) comes after an explicit --config, so the resolver reads it itself.
    let store_option = cli
        .store
        .as_deref()
        .filter(|_| matches.value_source("store") == Some(ValueSource::CommandLine));
    let config = cli.config.as_deref();
    datastore::remember_request(store_option, config, cli.verbose);
    let resolve = || datastore::resolve(store_option, config, cli.verbose);
    let result = match cli.command {
        Command::Selector(cmd) => selector_cmd::run(cmd),
        Command::Validate(args) => validate_cmd::run(&args),
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Route(cmd) => resolve().and_then(|(store, configured)| {
            route_cmd::run(cmd, configured.then_some(store.as_str()))
        }),
        Command::Dataplane(cmd) => dataplane_cmd::run(cmd),
        Command::Apply(args) => {
            resolve().and_then(|(store, _)| store_cmd::run_apply(&store, &args))
        }
        Command::Get(args) => resolve().and_then(|(store, _)| store_cmd::run_get(&store, &args)),
        Command::Delete(args) => {
            resolve().and_then(|(store, _)| store_cmd::run_delete(&store, &args))
        }
        Command::Ipam(cmd) => resolve().and_then(|(store, _)| ipam_cmd::run(&store, cmd)),
        Command::Demo(mut args) => {
            args.store = demo::DemoStore::from_option(store_option);
            demo::run(&args)
        }
        Command::Node(cmd) => node_cmd::run(cmd),
        Command::Datastore(cmd) => resolve().and_then(|(store, _)| datastore_cmd::run(&store, cmd)),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
