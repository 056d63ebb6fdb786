//! `calico demo`: the example cluster built in network namespaces and its policies proved
//! with real packets.
//!
//! Steps (progress on stderr):
//! 1. load and validate the manifests, build calico-policy's model and predict the
//!    connectivity matrix (probe set in [`matrix`]);
//! 2. check that the live part can run (root, `ip`, `ping`, `calico-cni` next to `calico`);
//!    when it cannot, print the prediction and why the rest was skipped, and exit 0;
//! 3. build the cluster: a `lan` namespace with bridge `br0`, one namespace per node joined
//!    to it by a veth (`eth0`, the Node's `bgp.ipv4Address`, or `10.99.0.N/24`), one per pod;
//! 4. the datastore (the embedded file store in the scratch directory by default; with the
//!    global `--store etcd`, an etcd the demo starts in a namespace of its own on the
//!    bridge, at 198.18.0.250, where the node namespaces reach it; with any other
//!    `--store URL`, that store) with the manifests' IPv4 pools (run as VXLAN `Always`) and
//!    block affinities (a /16 pool is added around pod addresses no pool covers); each pod
//!    added by the real `calico-cni` binary (asking for its manifest IP);
//! 5. the cluster written to the datastore; the example's top-of-rack routers started as
//!    BIRDs in namespaces of their own;
//! 6. one agent (`calico node run`, with its BIRD) per node, inside the node's namespace,
//!    following the datastore;
//! 7. listeners in every pod, every probe sent with real packets until the observed matrix
//!    equals the predicted one;
//! 8. live changes through the datastore (a policy applied and deleted, a pod added and
//!    deleted, a route reflector removed and restored), each timed from the write until
//!    the agents applied it and the probes (or BIRD's sessions) agree.
//!
//! Everything is removed at the end (and on Ctrl-C, SIGTERM or a panic), unless `--keep`.
//!
//! `CALICO_DEMO_MUTATE=no-policy` (for tests) programs an empty nftables ruleset, so the
//! kernel allows what the policies deny and the demo must report disagreements.

mod agents;
mod changes;
mod cluster;
mod etcd;
mod lab;
mod matrix;
mod tor;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use calico_dataplane::netns::Netns;
use calico_dataplane::probe::{self, Probe, Responders};
use calico_route::Cluster;
use clap::{Args, ValueEnum};

use crate::exit::CliError;
use crate::policy_cmd::{build_model, load_set};
use matrix::Matrix;

const STEPS: usize = 8;

/// Output format of `calico demo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Tables for people.
    Text,
    /// One JSON document.
    Json,
}

/// Arguments of `calico demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Manifest file or directory.
    #[arg(value_name = "PATH", default_value = "examples/cluster")]
    path: PathBuf,
    /// Leave the namespaces (with their routes and nftables tables) and the IPAM store in
    /// place for inspection, and print how to remove them; the listeners end with the process.
    #[arg(long)]
    keep: bool,
    /// Only the offline analysis, even as root (also `CALICO_DEMO_OFFLINE=1`).
    #[arg(long, env = "CALICO_DEMO_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    offline: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Remove what earlier runs left (also with --keep): namespaces, the processes started
    /// inside them (agents, BIRDs), scratch directories; then exit.
    #[arg(long)]
    clean: bool,
    /// The datastore, from the global `--store` (see [`DemoStore::from_option`]).
    #[arg(skip)]
    pub(crate) store: DemoStore,
}

/// The datastore the demo's cluster runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum DemoStore {
    /// The embedded file store, in the demo's scratch directory (the default).
    #[default]
    File,
    /// An etcd the demo starts in a namespace of its own on the bridge, where the node
    /// namespaces reach it (`--store etcd` or `--store etcd://` without an address).
    Own,
    /// This store URL as given (an etcd the node namespaces can reach, or a file store).
    Given(String),
}

impl DemoStore {
    /// The demo's datastore for the global `--store` given on the command line.
    pub(crate) fn from_option(store: Option<&str>) -> DemoStore {
        match store.map(str::trim) {
            None | Some("") => DemoStore::File,
            Some("etcd" | "etcd://" | "etcd:") => DemoStore::Own,
            Some(url) => match url.strip_prefix("file:") {
                // Relative file stores are made absolute: the agents run elsewhere.
                Some(path) if !path.starts_with('/') => std::env::current_dir()
                    .map(|d| DemoStore::Given(format!("file:{}", d.join(path).display())))
                    .unwrap_or_else(|_| DemoStore::Given(url.to_owned())),
                _ => DemoStore::Given(url.to_owned()),
            },
        }
    }
}

fn step(n: usize, what: &str) {
    eprintln!("[{n}/{STEPS}] {what}");
}

fn could_not(e: impl std::fmt::Display) -> CliError {
    CliError::could_not_run(format!("demo: {e}"))
}

/// Runs `calico demo`.
pub(crate) fn run(a: &DemoArgs) -> Result<ExitCode, CliError> {
    if a.clean {
        let n = lab::clean_all();
        eprintln!("calico demo --clean: removed {n} namespace(s) and director(ies)");
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    step(
        1,
        &format!(
            "loading {} and predicting connectivity with calico-policy",
            a.path.display()
        ),
    );
    let set = load_set(&a.path)?;
    let model = match build_model(&set, &a.path.display().to_string())? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let pods = matrix::demo_pods(&set);
    if pods.len() < 2 {
        return Err(could_not(format!(
            "{}: fewer than two scheduled pods (spec.nodeName) to connect",
            a.path.display()
        )));
    }
    let predicted = Matrix::predict(&model, pods).map_err(could_not)?;
    eprintln!(
        "      {} pods, {} probes predicted",
        predicted.pods.len(),
        predicted.cells.len()
    );

    step(2, "checking whether the cluster can be built here");
    if let Some(why) = skip_reason(a) {
        eprintln!("      live part skipped: {why}");
        match a.output {
            Format::Text => {
                print!("{}", predicted.text(false));
                println!("Live part skipped: {why}.");
                println!("Only the offline analysis ran; nothing was built.");
            }
            Format::Json => println!("{}", predicted.json(Some(&why))),
        }
        return Ok(ExitCode::SUCCESS);
    }

    lab::clean_up_on_signals();
    let swept = lab::sweep_leftovers();
    if swept > 0 {
        eprintln!("      removed {swept} leftover(s) of earlier demo runs");
    }
    let mut lab = lab::Lab::new().map_err(could_not)?;
    let offline: Vec<bool> = predicted.cells.iter().map(|c| c.predicted).collect();
    let result = live(a, set, predicted, &mut lab);
    let kept = if a.keep { lab.keep() } else { Vec::new() };
    drop(lab);
    let run = result?;
    let observed = &run.matrix;
    let (agree, disagree) = observed.agreement();
    let changed = observed
        .cells
        .iter()
        .zip(&offline)
        .filter(|(c, o)| c.predicted != **o)
        .count();
    if changed > 0 {
        eprintln!(
            "      note: {changed} prediction(s) differ from the manifests' with the addresses \
             calico-cni allocated; the live comparison uses the allocated ones"
        );
    }
    let converged =
        run.changes.iter().all(|c| c.converged) && run.phases.iter().all(|p| p.converged);
    match a.output {
        Format::Text => {
            print!("{}", observed.text(true));
            println!();
            println!("Phases:");
            for p in &run.phases {
                println!(
                    "  {:<52} {:>3}/{:<3} {:>7.2} s",
                    p.description, p.agree, p.probes, p.seconds
                );
            }
            println!("Live changes (time from the datastore write):");
            for c in &run.changes {
                println!(
                    "  {:<70} {:<15} {:>6.2} s",
                    c.description,
                    if c.converged {
                        "converged"
                    } else {
                        "NOT converged"
                    },
                    c.seconds
                );
            }
            if let Some(agent) = run.agents.first() {
                println!();
                println!("calico node status ({}):", agent.node);
                if let Some(ns) = &run.node_status {
                    print!("{}", ns.to_table());
                }
            }
        }
        Format::Json => {
            let mut v = observed.json(None);
            v["store"] = serde_json::Value::String(run.store.clone());
            v["nodes"] = run
                .agents
                .iter()
                .map(|n| {
                    serde_json::json!({"name": n.node, "netns": n.netns, "agent_pid": n.pid,
                        "agent_command": n.command, "state_dir": n.state_dir,
                        "bird_socket": n.state_dir.join("bird.ctl")})
                })
                .collect();
            v["pods"] = observed
                .pods
                .iter()
                .zip(&run.pod_ns)
                .map(|(p, ns)| {
                    serde_json::json!({"namespace": p.namespace, "name": p.name, "node": p.node,
                        "netns": ns, "ip": p.ip.map(|i| i.to_string())})
                })
                .collect();
            v["phases"] = run
                .phases
                .iter()
                .map(changes::Outcome::phase_json)
                .collect();
            v["changes"] = run
                .changes
                .iter()
                .map(changes::Outcome::change_json)
                .collect();
            v["node_status"] = run
                .node_status
                .as_ref()
                .and_then(|n| serde_json::to_value(n).ok())
                .unwrap_or_default();
            println!("{v}");
        }
    }
    if kept.is_empty() {
        eprintln!(
            "      done in {:.1} s; agents, namespaces, store and listeners removed",
            started.elapsed().as_secs_f64()
        );
    } else {
        eprintln!(
            "      --keep: agents, BIRDs and namespaces left running; `calico demo --clean` (or the \
             next `calico demo`) removes them, or:"
        );
        for k in &kept {
            eprintln!("        {k}");
        }
    }
    debug_assert_eq!(agree + disagree, observed.cells.len());
    Ok(if disagree == 0 && converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Why the live part cannot run here, if it cannot.
fn skip_reason(a: &DemoArgs) -> Option<String> {
    if a.offline {
        return Some("--offline (or CALICO_DEMO_OFFLINE=1) was given".to_owned());
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !root {
        return Some(
            "not running as root (network namespaces, veths and nftables need root)".to_owned(),
        );
    }
    for tool in ["ip", "ping"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    match cluster::cni_dir() {
        Some(d) if d.join("calico-cni").is_file() && d.join("calico-ipam").is_file() => None,
        Some(d) => Some(format!(
            "calico-cni and calico-ipam are not in {} (build them: cargo build -p calico-cni, \
             or set CALICO_CNI_DIR)",
            d.display()
        )),
        None => Some("cannot find the directory of the calico executable".to_owned()),
    }
}

/// The nodes of the demo: those hosting demo pods, then the other Node resources.
fn demo_nodes(set: &calico_model::loader::LoadedSet, m: &Matrix) -> Vec<String> {
    let mut nodes: Vec<String> = Vec::new();
    let named = set.resources().filter_map(|r| match r {
        calico_model::resources::Resource::Node(n) => Some(n.metadata.name.clone()),
        _ => None,
    });
    for n in m.pods.iter().map(|p| p.node.clone()).chain(named) {
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    nodes.sort();
    nodes
}

fn live(
    a: &DemoArgs,
    set: calico_model::loader::LoadedSet,
    m: Matrix,
    lab: &mut lab::Lab,
) -> Result<LiveRun, CliError> {
    let nodes = demo_nodes(&set, &m);
    let addresses = cluster::node_addresses(&set, &nodes);

    step(
        3,
        &format!(
            "building {} node namespaces on a bridge, {} pod namespaces",
            nodes.len(),
            m.pods.len()
        ),
    );
    let lan = lab.netns("lan").map_err(could_not)?;
    let sh = |args: &[&str]| lab::run(args).map_err(could_not);
    sh(&["ip", "-n", &lan, "link", "add", "br0", "type", "bridge"])?;
    sh(&["ip", "-n", &lan, "link", "set", "br0", "up"])?;
    let mut node_ns = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let ns = lab.netns(&format!("node{}", i + 1)).map_err(could_not)?;
        let port = format!("p{}", i + 1);
        let addr = addresses.get(n).map(String::as_str).unwrap_or_default();
        sh(&[
            "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
            &lan,
        ])?;
        sh(&[
            "ip", "-n", &lan, "link", "set", &port, "master", "br0", "up",
        ])?;
        sh(&["ip", "-n", &ns, "addr", "add", addr, "dev", "eth0"])?;
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        // Every node subnet on the LAN is reached on-link (ARP across the bridge).
        sh(&["ip", "-n", &ns, "route", "add", "default", "dev", "eth0"])?;
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        eprintln!("      {n}: netns {ns}, eth0 {addr}");
        node_ns.insert(n.clone(), ns);
    }
    let mut pod_ns = Vec::new();
    for i in 0..m.pods.len() {
        pod_ns.push(lab.netns(&format!("pod{}", i + 1)).map_err(could_not)?);
    }

    let store = match &a.store {
        DemoStore::Own => {
            let (ns, url) = etcd::start(lab, &lan).map_err(could_not)?;
            eprintln!("      datastore: etcd in {ns} on the bridge, {url}");
            StorePlace {
                url,
                netns: Some(ns),
            }
        }
        DemoStore::Given(url) => StorePlace {
            url: url.clone(),
            netns: None,
        },
        DemoStore::File => StorePlace {
            url: format!("file:{}", lab.dir.join("calico.db").display()),
            netns: None,
        },
    };
    // Everything that talks to the datastore runs where it is reachable: inside the etcd
    // namespace when the demo runs its own etcd (threads started there stay there).
    let place = match &store.netns {
        Some(ns) => Netns::named(ns).map_err(could_not)?,
        None => Netns::current(),
    };
    let url = store.url;
    place
        .run(|| {
            live_rest(
                a, set, m, lab, &lan, &nodes, &addresses, &node_ns, &pod_ns, &url,
            )
        })
        .map_err(could_not)?
}

/// Where the demo's datastore is.
struct StorePlace {
    url: String,
    netns: Option<String>,
}

/// The live part from the pods on, with the datastore at `url`.
#[allow(clippy::too_many_arguments)]
fn live_rest(
    a: &DemoArgs,
    mut set: calico_model::loader::LoadedSet,
    mut m: Matrix,
    lab: &mut lab::Lab,
    lan: &str,
    nodes: &[String],
    addresses: &BTreeMap<String, String>,
    node_ns: &BTreeMap<String, String>,
    pod_ns: &[String],
    url: &str,
) -> Result<LiveRun, CliError> {
    step(
        4,
        &format!("adding the pods with calico-cni (IPAM: calico-ipam on {url})"),
    );
    let cni_dir = cluster::cni_dir().ok_or_else(|| could_not("no calico-cni directory"))?;
    for pool in cluster::add_missing_pools(&mut set, &m.pods).map_err(could_not)? {
        eprintln!("      note: no IPv4 pool of the manifests covers the pods; added {pool}");
    }
    let notes = cluster::prepare_store(&set, url, nodes).map_err(could_not)?;
    for n in notes {
        eprintln!("      note: {n}");
    }
    for (i, p) in m.pods.iter_mut().enumerate() {
        let Some(node) = node_ns.get(&p.node) else {
            continue;
        };
        let ip = cluster::cni_add(
            &cni_dir,
            node,
            &pod_ns[i],
            p,
            url,
            &format!("demo{}", i + 1),
        )
        .map_err(could_not)?;
        eprintln!("      {} on {}: {ip}", p.label(), p.node);
        p.ip = Some(ip);
    }
    let alloc = cluster::allocate_tunnels(url, nodes).map_err(could_not)?;
    cluster::patch_set(&mut set, &m.pods, &alloc, addresses);
    let resources = cluster::route_resources(&set, &alloc, addresses).map_err(could_not)?;
    // The live model: the manifests with the addresses really allocated.
    let model = match build_model(&set, &a.path.display().to_string())? {
        Ok(model) => model,
        Err(_) => return Err(could_not("the patched manifests do not validate (a bug)")),
    };
    m = Matrix::predict(&model, m.pods).map_err(could_not)?;

    step(5, "writing the cluster to the datastore the agents follow");
    let store = calico_datastore_etcd::open_store(url)
        .map(std::sync::Arc::from)
        .map_err(could_not)?;
    let written = agents::write_cluster(&store, url, &resources, &set).map_err(could_not)?;
    eprintln!("      {written} resource(s) in {url}");

    let bgp = Command::new("bird").arg("--version").output().is_ok();
    // The external peers (top-of-rack routers) the cluster declares, as BIRDs of their own.
    let mut tor_ips: Vec<String> = Vec::new();
    if bgp {
        let affinities = Cluster::from_resources(resources.iter()).affinities;
        for (n, peer) in tor::external_peers(&resources, &affinities, nodes)
            .iter()
            .enumerate()
        {
            let ns = tor::start(lab, lan, n + 1, peer, &lab.dir.clone()).map_err(could_not)?;
            eprintln!(
                "      external peer {} (AS {}): BIRD in {ns}, {} session(s)",
                peer.ip,
                peer.asn,
                peer.sessions.len()
            );
            tor_ips.push(peer.ip.to_string());
        }
    }
    step(
        6,
        &format!(
            "starting one agent per node inside its namespace (calico node run{})",
            if bgp {
                ", with BIRD"
            } else {
                " --no-bgp: BIRD is not installed"
            }
        ),
    );
    let calico = std::env::current_exe().map_err(could_not)?;
    let mut agents_run = Vec::new();
    let started = Instant::now();
    for (n, ns) in node_ns {
        let a = agents::start_agent(&calico, ns, n, url, &lab.dir, bgp).map_err(could_not)?;
        eprintln!("      {n}: pid {}, log {}", a.pid, a.log.display());
        agents_run.push(a);
    }
    let mut run = LiveRun {
        matrix: m,
        phases: Vec::new(),
        changes: Vec::new(),
        agents: agents_run,
        pod_ns: pod_ns.to_vec(),
        store: url.to_owned(),
        node_status: None,
    };
    let mutate = std::env::var("CALICO_DEMO_MUTATE").as_deref() == Ok("no-policy");
    if mutate {
        // For tests that the comparison can fail: once the agents have programmed the
        // nodes, they are stopped and the policy is removed from the kernel.
        std::thread::sleep(Duration::from_secs(3));
        for a in &run.agents {
            lab::stop_processes_in(std::slice::from_ref(&a.netns));
        }
        for ns in node_ns.values() {
            let _ = lab::run(&[
                "ip", "netns", "exec", ns, "nft", "flush", "table", "inet", "calico",
            ]);
        }
    }

    step(
        7,
        &format!(
            "probing {} flows with real packets until they match the prediction",
            run.matrix.cells.len()
        ),
    );
    let first = changes::probe_until_agree(
        "agents programmed the cluster",
        &mut run.matrix,
        &run.pod_ns,
        started,
        Duration::from_secs(if mutate { 3 } else { 30 }),
        None,
        &mut || true,
    )?;
    eprintln!(
        "      {} of {} probes agree after {:.2} s",
        first.agree, first.probes, first.seconds
    );
    let initial = run.matrix.clone();
    run.phases.push(first);
    if mutate {
        return Ok(run);
    }
    let sockets: BTreeMap<String, PathBuf> = run
        .agents
        .iter()
        .map(|a| (a.node.clone(), a.state_dir.join("bird.ctl")))
        .collect();
    // Sessions that must be Established: to every node and to the external peers started.
    let internal: BTreeSet<String> = addresses
        .values()
        .filter_map(|a| a.split('/').next().map(str::to_owned))
        .chain(tor_ips.iter().cloned())
        .collect();
    let mut live_resources = resources.clone();
    let affinities: Vec<calico_route::input::Affinity> =
        Cluster::from_resources(resources.iter()).affinities;
    if bgp {
        let planned = changes::planned_sessions(&live_resources, &affinities, nodes);
        let t = Instant::now();
        let ok = wait_for(Duration::from_secs(30), || {
            changes::sessions_match(&planned, &sockets, &internal)
        });
        let n: usize = planned.values().map(BTreeSet::len).sum();
        eprintln!(
            "      BGP: {n} planned session(s) {} after {:.2} s",
            if ok { "up" } else { "NOT all up" },
            t.elapsed().as_secs_f64()
        );
        run.phases.push(changes::Outcome {
            description: "BGP sessions as planned".to_owned(),
            probes: n,
            agree: if ok { n } else { 0 },
            converged: ok,
            seconds: t.elapsed().as_secs_f64(),
        });
    }

    step(
        8,
        "changing the cluster live through the datastore, timing each change",
    );
    let ctx = LiveCtx {
        path: a.path.display().to_string(),
        store: &store,
        url,
        cni_dir: &cni_dir,
        node_ns,
        sockets: &sockets,
        internal: &internal,
        affinities: &affinities,
        nodes,
    };
    live_changes(&ctx, &mut set, &mut live_resources, &mut run, lab)?;
    if let Some(a) = run.agents.first() {
        run.node_status = Some(node_status_of(&a.state_dir));
    }
    run.matrix = initial;
    Ok(run)
}

/// What the live part produced.
pub(crate) struct LiveRun {
    /// The matrix observed once the agents had programmed the cluster.
    pub(crate) matrix: Matrix,
    /// Phases (start-up).
    pub(crate) phases: Vec<changes::Outcome>,
    /// Live changes.
    pub(crate) changes: Vec<changes::Outcome>,
    /// The agents.
    pub(crate) agents: Vec<agents::AgentProc>,
    /// Pod namespaces, in `matrix.pods` order.
    pub(crate) pod_ns: Vec<String>,
    /// The store URL.
    pub(crate) store: String,
    /// `calico node status` of the first node.
    pub(crate) node_status: Option<calico_node::NodeStatus>,
}

struct LiveCtx<'a> {
    path: String,
    store: &'a std::sync::Arc<dyn calico_datastore::Store>,
    url: &'a str,
    cni_dir: &'a std::path::Path,
    node_ns: &'a BTreeMap<String, String>,
    sockets: &'a BTreeMap<String, PathBuf>,
    internal: &'a BTreeSet<String>,
    affinities: &'a [calico_route::input::Affinity],
    nodes: &'a [String],
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_status_of(state_dir: &std::path::Path) -> calico_node::NodeStatus {
    let rows =
        calico_node::BirdControl::connect(&state_dir.join("bird.ctl"), Duration::from_secs(2))
            .and_then(|mut c| c.command("show protocols"))
            .map(|r| calico_node::protocols::parse_show_protocols(&r.text()))
            .unwrap_or_default();
    let running = std::fs::read_to_string(state_dir.join("calico-node.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    calico_node::NodeStatus::from_protocols(running, &rows)
}

/// The predicted matrix of `set` for `pods`.
fn predict(
    ctx: &LiveCtx<'_>,
    set: &calico_model::loader::LoadedSet,
    pods: Vec<matrix::DemoPod>,
) -> Result<Matrix, CliError> {
    let model = match build_model(set, &ctx.path)? {
        Ok(m) => m,
        Err(_) => return Err(could_not("the changed manifests do not validate (a bug)")),
    };
    Matrix::predict(&model, pods).map_err(could_not)
}

fn demo_object(
    resource: calico_model::resources::Resource,
    i: usize,
) -> calico_model::loader::LoadedObject {
    calico_model::loader::LoadedObject {
        origin: calico_model::diagnostic::Origin {
            file: "(calico demo, live change)".to_owned(),
            doc_index: i,
            item_index: None,
        },
        resource,
    }
}

/// Makes one change (`write`) and records how long the agents took: until every agent
/// applied the write's revision, confirmed by probes agreeing with `m` (and `extra`).
#[allow(clippy::too_many_arguments)]
fn timed_change(
    ctx: &LiveCtx<'_>,
    run: &mut LiveRun,
    netns: &[String],
    description: &str,
    m: &mut Matrix,
    write: impl FnOnce() -> Result<(), CliError>,
    extra: &mut dyn FnMut() -> bool,
) -> Result<(), CliError> {
    let limit = Duration::from_secs(10);
    // The write's revision is after the store's revision just before it. (Read after it,
    // the store's revision may already count other writers' keys, such as the agents'
    // status keys, which the agents do not follow.)
    let before = revision(ctx)?;
    let t = Instant::now();
    write()?;
    let applied = changes::wait_applied(netns, before.saturating_add(1), t, limit);
    let o = changes::probe_until_agree(description, m, &run.pod_ns, t, limit, applied, extra)?;
    record(run, o);
    Ok(())
}

/// The store's current revision.
fn revision(ctx: &LiveCtx<'_>) -> Result<i64, CliError> {
    let r = ctx.store.revision().map_err(could_not)?;
    Ok(i64::try_from(r).unwrap_or(i64::MAX))
}

fn record(run: &mut LiveRun, o: changes::Outcome) {
    eprintln!(
        "      {}: {} in {:.2} s ({} of {} probes agree)",
        o.description,
        if o.converged {
            "converged"
        } else {
            "DID NOT converge"
        },
        o.seconds,
        o.agree,
        o.probes
    );
    run.changes.push(o);
}

fn live_changes(
    ctx: &LiveCtx<'_>,
    set: &mut calico_model::loader::LoadedSet,
    resources: &mut [calico_model::resources::Resource],
    run: &mut LiveRun,
    lab: &mut lab::Lab,
) -> Result<(), CliError> {
    use calico_model::resources::{Kind, Resource};
    let limit = Duration::from_secs(10);

    // 1. A policy that isolates the pod most others reach.
    let mut incoming = vec![0usize; run.matrix.pods.len()];
    for c in run.matrix.cells.iter().filter(|c| c.predicted) {
        incoming[c.to] += 1;
    }
    let target = (0..incoming.len())
        .max_by_key(|&i| incoming[i])
        .unwrap_or(0);
    let tp = run.matrix.pods[target].clone();
    let tier = set
        .resources()
        .filter_map(|r| match r {
            Resource::Tier(t) => Some((t.spec.order.unwrap_or(f64::MAX), t.metadata.name.clone())),
            _ => None,
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
        .unwrap_or_else(|| "default".to_owned());
    let name = if tier == "default" {
        "demo-isolate".to_owned()
    } else {
        format!("{tier}.demo-isolate")
    };
    let policy = Resource::from_value(
        Kind::GlobalNetworkPolicy,
        serde_json::json!({
            "apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"tier": tier, "order": 0,
                     "selector": format!("projectcalico.org/namespace == '{}' && projectcalico.org/orchestrator == 'k8s'", tp.namespace),
                     "types": ["Ingress"], "ingress": [{"action": "Deny"}]}
        }),
    )
    .map_err(could_not)?;
    set.objects.push(demo_object(policy.clone(), 0));
    let mut m = predict(ctx, set, run.matrix.pods.clone())?;
    let netns: Vec<String> = run.agents.iter().map(|a| a.netns.clone()).collect();
    let what = format!(
        "apply GlobalNetworkPolicy {name} (deny ingress to namespace {})",
        tp.namespace
    );
    timed_change(
        ctx,
        run,
        &netns,
        &what,
        &mut m,
        || agents::put(ctx.store, ctx.url, &policy).map_err(could_not),
        &mut || true,
    )?;

    // 2. Delete it again.
    set.objects.retain(|o| o.resource != policy);
    let mut m = predict(ctx, set, run.matrix.pods.clone())?;
    timed_change(
        ctx,
        run,
        &netns,
        &format!("delete GlobalNetworkPolicy {name}"),
        &mut m,
        || agents::delete(ctx.store, ctx.url, &policy).map_err(could_not),
        &mut || true,
    )?;

    // 3. Add a pod: a copy of the first pod, through the API (Pod), the CNI plugin and the
    //    kubelet's status update.
    let src = run.matrix.pods[0].clone();
    let Some(src_pod) = set.resources().find_map(|r| match r {
        Resource::Pod(p)
            if p.metadata.name == src.name
                && p.metadata.namespace.as_deref() == Some(src.namespace.as_str()) =>
        {
            Some(p.clone())
        }
        _ => None,
    }) else {
        return Err(could_not("the first demo pod has no Pod resource (a bug)"));
    };
    let mut pod = src_pod.clone();
    pod.metadata.name = format!("{}-live", src.name);
    pod.status.pod_ip = String::new();
    pod.status.pod_ips.clear();
    let mut dp = src.clone();
    dp.name = pod.metadata.name.clone();
    dp.declared_ip = None;
    dp.ip = None;
    let pod_netns = lab
        .netns(&format!("pod{}", run.pod_ns.len() + 1))
        .map_err(could_not)?;
    let node_netns = ctx.node_ns.get(&dp.node).cloned().unwrap_or_default();
    agents::put(ctx.store, ctx.url, &Resource::Pod(pod.clone())).map_err(could_not)?;
    let ip = cluster::cni_add(
        ctx.cni_dir,
        &node_netns,
        &pod_netns,
        &dp,
        ctx.url,
        "demo-live",
    )
    .map_err(could_not)?;
    dp.ip = Some(ip);
    pod.status.pod_ip = ip.to_string();
    pod.status.pod_ips = vec![calico_model::resources::k8s::PodIp { ip: ip.to_string() }];
    set.objects.push(demo_object(Resource::Pod(pod.clone()), 1));
    let mut pods = run.matrix.pods.clone();
    pods.push(dp.clone());
    run.pod_ns.push(pod_netns.clone());
    let mut m = predict(ctx, set, pods)?;
    timed_change(
        ctx,
        run,
        &netns,
        &format!("add pod {}/{} on {} ({ip})", dp.namespace, dp.name, dp.node),
        &mut m,
        || agents::put(ctx.store, ctx.url, &Resource::Pod(pod.clone())).map_err(could_not),
        &mut || true,
    )?;

    // 4. Delete it: the CNI plugin's DEL, then the Pod.
    let iface = calico_dataplane::workload::host_interface_name("cali", &dp.namespace, &dp.name);
    let status_file = run
        .agents
        .iter()
        .find(|a| a.node == dp.node)
        .map(|a| a.state_dir.join("endpoint-status").join(&iface));
    cluster::cni_del(
        ctx.cni_dir,
        &node_netns,
        &pod_netns,
        &dp,
        ctx.url,
        "demo-live",
    )
    .map_err(could_not)?;
    set.objects
        .retain(|o| o.resource != Resource::Pod(pod.clone()));
    run.pod_ns.pop();
    let mut m = predict(ctx, set, run.matrix.pods.clone())?;
    timed_change(
        ctx,
        run,
        &netns,
        &format!("delete pod {}/{}", dp.namespace, dp.name),
        &mut m,
        || agents::delete(ctx.store, ctx.url, &Resource::Pod(pod.clone())).map_err(could_not),
        &mut || status_file.as_ref().is_none_or(|f| !f.exists()),
    )?;

    // 5. Remove a route reflector and restore it.
    if run
        .agents
        .iter()
        .all(|a| a.state_dir.join("bird.ctl").exists())
    {
        let rr = resources.iter().find_map(|r| match r {
            Resource::Node(n)
                if n.spec
                    .bgp
                    .as_ref()
                    .is_some_and(|b| !b.route_reflector_cluster_id.is_empty())
                    && ctx.nodes.contains(&n.metadata.name) =>
            {
                Some(n.clone())
            }
            _ => None,
        });
        if let Some(node) = rr {
            let mut plain = node.clone();
            if let Some(b) = plain.spec.bgp.as_mut() {
                b.route_reflector_cluster_id = String::new();
            }
            // And the label BGPPeers select route reflectors by: its sessions go.
            plain
                .metadata
                .labels
                .retain(|k, _| !k.contains("route-reflector"));
            for (desc, new) in [
                (
                    format!(
                        "remove route reflector {} (its cluster ID and route-reflector label)",
                        node.metadata.name
                    ),
                    plain,
                ),
                (
                    format!("restore route reflector {}", node.metadata.name),
                    node.clone(),
                ),
            ] {
                for r in resources.iter_mut() {
                    if matches!(r, Resource::Node(n) if n.metadata.name == new.metadata.name) {
                        *r = Resource::Node(new.clone());
                    }
                }
                let planned = changes::planned_sessions(resources, ctx.affinities, ctx.nodes);
                let t = Instant::now();
                agents::put(ctx.store, ctx.url, &Resource::Node(new.clone())).map_err(could_not)?;
                let dirs: BTreeMap<String, PathBuf> = run
                    .agents
                    .iter()
                    .map(|a| (a.node.clone(), a.state_dir.clone()))
                    .collect();
                let ok = wait_for(limit, || {
                    changes::bird_configs_match(resources, ctx.affinities, &dirs)
                        && changes::sessions_match(&planned, ctx.sockets, ctx.internal)
                });
                let n: usize = planned.values().map(BTreeSet::len).sum();
                record(
                    run,
                    changes::Outcome {
                        description: desc,
                        probes: n,
                        agree: if ok { n } else { 0 },
                        converged: ok,
                        seconds: t.elapsed().as_secs_f64(),
                    },
                );
            }
        } else {
            eprintln!("      no node of the example is a route reflector; that change is skipped");
        }
    }
    Ok(())
}

/// Binds the listeners, sends every probe, and records what happened.
fn observe(m: &mut Matrix, pod_ns: &[String]) -> Result<(), CliError> {
    let mut responders = Vec::new();
    let mut handles = Vec::new();
    for (p, ns) in m.pods.iter().zip(pod_ns) {
        let h = Netns::named(ns).map_err(could_not)?;
        responders.push(Responders::bind(&h, &p.tcp_ports(), &p.udp_ports()).map_err(could_not)?);
        handles.push(h);
    }
    let targets: Vec<(usize, Option<IpAddr>)> =
        m.cells.iter().map(|c| (c.from, m.pods[c.to].ip)).collect();
    let tokens: Vec<String> = (0..m.cells.len())
        .map(|i| format!("calico-demo-probe-{i}"))
        .collect();
    let mut seen: Vec<Option<bool>> = vec![None; m.cells.len()];
    let indices: Vec<usize> = (0..m.cells.len()).collect();
    for chunk in indices.chunks(64) {
        let results: Vec<(usize, Result<bool, probe::ProbeError>)> = std::thread::scope(|sc| {
            let hs: Vec<_> = chunk
                .iter()
                .filter_map(|&i| {
                    let (from, ip) = targets[i];
                    let ip = ip?;
                    let probe_kind = m.cells[i].probe;
                    let ns = &handles[from];
                    let name = &pod_ns[from];
                    let token = &tokens[i];
                    Some(sc.spawn(move || {
                        let r = match probe_kind {
                            Probe::Tcp(port) => probe::tcp_connect(
                                ns,
                                SocketAddr::new(ip, port),
                                Duration::from_millis(800),
                            ),
                            Probe::Udp(port) => {
                                probe::udp_send(ns, SocketAddr::new(ip, port), token.as_bytes())
                                    .map(|()| false)
                            }
                            Probe::Icmp => probe::ping(name, ip, 1),
                        };
                        (i, r)
                    }))
                })
                .collect();
            hs.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (i, r) in results {
            seen[i] = Some(r.map_err(could_not)?);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let received: BTreeSet<Vec<u8>> = responders.iter().flat_map(Responders::received).collect();
    for (i, c) in m.cells.iter_mut().enumerate() {
        c.observed = match c.probe {
            Probe::Udp(_) => seen[i].map(|_| received.contains(tokens[i].as_bytes())),
            _ => seen[i],
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DemoStore;

    #[test]
    fn the_global_store_option_chooses_the_demo_datastore() {
        assert_eq!(DemoStore::from_option(None), DemoStore::File);
        for own in ["etcd", "etcd://", " etcd: "] {
            assert_eq!(DemoStore::from_option(Some(own)), DemoStore::Own, "{own}");
        }
        assert_eq!(
            DemoStore::from_option(Some("etcd://10.0.0.5:2379")),
            DemoStore::Given("etcd://10.0.0.5:2379".to_owned())
        );
        assert_eq!(
            DemoStore::from_option(Some("file:/srv/c.db")),
            DemoStore::Given("file:/srv/c.db".to_owned())
        );
        // A relative file store is made absolute: the agents run in other directories.
        let DemoStore::Given(url) = DemoStore::from_option(Some("file:c.db")) else {
            panic!("a file store is used as given");
        };
        let path = url.strip_prefix("file:").expect("file URL");
        assert!(path.starts_with('/') && path.ends_with("/c.db"), "{url}");
    }
}
