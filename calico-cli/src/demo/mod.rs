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
//! 4. a file IPAM store with the manifests' IPv4 pools (run as VXLAN `Always`) and block
//!    affinities (a /16 pool is added around pod addresses no pool covers); each pod added by
//!    the real `calico-cni` binary (asking for its manifest IP);
//! 5. each node programmed by calico-dataplane: vxlan.calico, routes, neighbour and FDB
//!    entries from calico-route and the nftables table from calico-policy, all built from
//!    the manifests patched with what was really allocated;
//! 6. listeners in every pod (sockets this process opens inside the pod namespaces), every
//!    probe sent with real packets, the observed matrix printed beside the predicted one;
//!    exit 1 when any probe disagrees.
//!
//! Everything is removed at the end (and on Ctrl-C, SIGTERM or a panic), unless `--keep`.
//!
//! `CALICO_DEMO_MUTATE=no-policy` (for tests) programs an empty nftables ruleset, so the
//! kernel allows what the policies deny and the demo must report disagreements.

mod cluster;
mod lab;
mod matrix;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use calico_dataplane::DesiredState;
use calico_dataplane::desired::from_plan;
use calico_dataplane::netlink::NetlinkDataplane;
use calico_dataplane::netns::Netns;
use calico_dataplane::probe::{self, Probe, Responders};
use calico_dataplane::reconcile::reconcile;
use calico_policy::Model;
use calico_route::Cluster;
use calico_route::kernel::{PlanOptions, plan_node};
use clap::{Args, ValueEnum};

use crate::exit::CliError;
use crate::policy_cmd::{build_model, load_set};
use matrix::Matrix;

const STEPS: usize = 6;

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
}

fn step(n: usize, what: &str) {
    eprintln!("[{n}/{STEPS}] {what}");
}

fn could_not(e: impl std::fmt::Display) -> CliError {
    CliError::could_not_run(format!("demo: {e}"))
}

/// Runs `calico demo`.
pub(crate) fn run(a: &DemoArgs) -> Result<ExitCode, CliError> {
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
    let observed = result?;
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
    match a.output {
        Format::Text => print!("{}", observed.text(true)),
        Format::Json => println!("{}", observed.json(None)),
    }
    if kept.is_empty() {
        eprintln!(
            "      done in {:.1} s; namespaces, store and listeners removed",
            started.elapsed().as_secs_f64()
        );
    } else {
        eprintln!(
            "      --keep: left in place (the next `calico demo` also removes them); remove with:"
        );
        for k in &kept {
            eprintln!("        {k}");
        }
    }
    debug_assert_eq!(agree + disagree, observed.cells.len());
    Ok(if disagree == 0 {
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
    mut set: calico_model::loader::LoadedSet,
    mut m: Matrix,
    lab: &mut lab::Lab,
) -> Result<Matrix, CliError> {
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

    step(
        4,
        "adding the pods with calico-cni (IPAM: calico-ipam on a file store)",
    );
    let cni_dir = cluster::cni_dir().ok_or_else(|| could_not("no calico-cni directory"))?;
    for pool in cluster::add_missing_pools(&mut set, &m.pods).map_err(could_not)? {
        eprintln!("      note: no IPv4 pool of the manifests covers the pods; added {pool}");
    }
    let (url, notes) = cluster::prepare_store(&set, &lab.dir, &nodes).map_err(could_not)?;
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
            &url,
            &format!("demo{}", i + 1),
        )
        .map_err(could_not)?;
        eprintln!("      {} on {}: {ip}", p.label(), p.node);
        p.ip = Some(ip);
    }
    let alloc = cluster::allocate_tunnels(&url, &nodes).map_err(could_not)?;
    cluster::patch_set(&mut set, &m.pods, &alloc, &addresses);
    let resources = cluster::route_resources(&set, &alloc, &addresses).map_err(could_not)?;
    // The live model: the manifests with the addresses really allocated.
    let model = match build_model(&set, &a.path.display().to_string())? {
        Ok(model) => model,
        Err(_) => return Err(could_not("the patched manifests do not validate (a bug)")),
    };
    m = Matrix::predict(&model, m.pods).map_err(could_not)?;

    step(
        5,
        "programming each node: VXLAN routes (calico-route), nftables (calico-policy)",
    );
    let cluster = Cluster::from_resources(resources.iter());
    let program = model.compile();
    for (n, ns) in &node_ns {
        program_node(&cluster, &model, &program, n, ns)?;
    }

    step(
        6,
        &format!("probing {} flows with real packets", m.cells.len()),
    );
    observe(&mut m, &pod_ns)?;
    Ok(m)
}

fn program_node(
    cluster: &Cluster,
    model: &Model,
    program: &calico_policy::Program,
    node: &str,
    ns: &str,
) -> Result<(), CliError> {
    let opts = PlanOptions {
        parent_iface: "eth0".to_owned(),
        host_mtu: 1500,
    };
    let kplan = plan_node(cluster, node, &opts).map_err(could_not)?;
    let felix = cluster.felix_for(node);
    let mut desired: DesiredState = from_plan(&kplan, &felix.interface_prefix);
    let render = calico_policy::nft::RenderOptions {
        vxlan_port: u16::try_from(felix.vxlan_port).ok().or(Some(4789)),
        ..Default::default()
    };
    desired.nft = Some(calico_policy::nft::build_ruleset(
        model, program, node, &render,
    ));
    if std::env::var("CALICO_DEMO_MUTATE").as_deref() == Ok("no-policy") {
        // For tests that the comparison can fail: no policy in the kernel at all.
        desired.nft = Some(calico_policy::nft::Ruleset::default());
    }
    let mut dp = NetlinkDataplane::named(ns).map_err(could_not)?;
    let report = reconcile(&mut dp, &desired).map_err(could_not)?;
    let mut problems: Vec<String> = Vec::new();
    problems.extend(
        report
            .unsupported_devices
            .iter()
            .map(|d| format!("{d}: device type missing")),
    );
    problems.extend(report.skipped.iter().map(|o| format!("skipped: {o}")));
    problems.extend(
        report
            .failed
            .iter()
            .map(|(o, e)| format!("failed: {o}: {e}")),
    );
    if let Some(e) = &report.nft_error {
        problems.push(format!("nftables: {e}"));
    }
    if !problems.is_empty() {
        return Err(CliError::with_details(
            format!("demo: cannot program {node}"),
            problems,
        ));
    }
    eprintln!(
        "      {node}: {} change(s), {} route(s), nftables table programmed",
        report.applied.len(),
        desired.routes.len()
    );
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
