//! `calico dataplane apply`: program a node's kernel routes, devices and policy rule set.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use calico_dataplane::Dataplane;
use calico_dataplane::desired::from_plan;
use calico_dataplane::netlink::NetlinkDataplane;
use calico_dataplane::reconcile::{plan, reconcile};
use calico_dataplane::state::DesiredState;
use calico_route::input::FelixSettings;
use calico_route::kernel::{PlanOptions, plan_node};
use calico_route::{Cluster, Family};
use clap::{Args, Subcommand};

use crate::exit::CliError;
use crate::policy_cmd::{build_model, load_set};

/// `calico dataplane …` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DataplaneCommand {
    /// Program the node's routes, neighbour and FDB entries, owned devices (vxlan.calico,
    /// tunl0) and nftables table; only what differs is changed.
    ///
    /// A node with pods but no Node object is in policy-only mode (Calico enforcing policy
    /// over another network plugin, as Canal runs it): its nftables table is programmed and,
    /// with one warning, its routes, devices and neighbours are left alone.
    Apply(ApplyArgs),
}

/// Arguments of `dataplane apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Manifest file or directory.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// The node to program.
    #[arg(long)]
    node: String,
    /// Work in this network namespace (`ip netns` name) instead of the current one.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Print the changes without making them.
    #[arg(long)]
    dry_run: bool,
}

/// Runs a `dataplane` subcommand.
pub(crate) fn run(cmd: DataplaneCommand) -> Result<ExitCode, CliError> {
    match cmd {
        DataplaneCommand::Apply(a) => apply(&a),
    }
}

/// The interface holding `ip` and its MTU, read from the kernel.
fn parent_of(
    dp: &mut NetlinkDataplane,
    ip: Option<IpAddr>,
) -> Result<Option<(String, u32)>, CliError> {
    let Some(ip) = ip else { return Ok(None) };
    let o = dp
        .observe(&[])
        .map_err(|e| CliError::could_not_run(format!("cannot read the kernel state: {e}")))?;
    Ok(o.addresses
        .iter()
        .find(|a| a.addr.addr() == ip)
        .and_then(|a| o.link(&a.dev))
        .map(|l| (l.name.clone(), l.mtu)))
}

fn apply(a: &ApplyArgs) -> Result<ExitCode, CliError> {
    let set = load_set(&a.path)?;
    let model = match build_model(&set, &a.path.display().to_string())? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let cluster = Cluster::from_resources(set.resources());
    let mut dp = match &a.netns {
        Some(n) => NetlinkDataplane::named(n),
        None => NetlinkDataplane::current(),
    }
    .map_err(|e| CliError::could_not_run(format!("cannot open the dataplane: {e}")))?;
    let felix = cluster.felix_for(&a.node);
    let mut desired = match cluster.node(&a.node) {
        Some(node) => routed_state(&cluster, a, node.ip(Family::V4), &mut dp, &felix)?,
        None => {
            // Policy-only mode (Calico enforcing policy over another network plugin, as
            // Canal runs it): nothing of the routing is ours, so nothing of it is touched.
            eprintln!(
                "calico: warning: no Node named {:?} in {}: policy-only mode, the node's policy is programmed and its routes, devices and neighbours are left alone",
                a.node,
                a.path.display()
            );
            DesiredState::default()
        }
    };
    let program = model.compile();
    let render = calico_policy::nft::RenderOptions {
        vxlan_port: u16::try_from(felix.vxlan_port).ok().or(Some(4789)),
        ..Default::default()
    };
    desired.nft = Some(calico_policy::nft::build_ruleset(
        &model, &program, &a.node, &render,
    ));

    if a.dry_run {
        let changes =
            plan(&mut dp, &desired).map_err(|e| CliError::could_not_run(e.to_string()))?;
        for op in &changes.ops {
            println!("{op}");
        }
        for line in &changes.nft {
            println!("nft: {line}");
        }
        let mut problems = Vec::new();
        for i in &changes.missing_interfaces {
            problems.push(format!(
                "interface {i} does not exist; its entries would be skipped"
            ));
        }
        if changes.is_empty() {
            eprintln!("calico: nothing to change");
        }
        return Ok(report_problems(&problems));
    }

    let report =
        reconcile(&mut dp, &desired).map_err(|e| CliError::could_not_run(e.to_string()))?;
    for op in &report.applied {
        println!("{op}");
    }
    for line in &report.nft_changes {
        println!("nft: {line}");
    }
    if !report.changed() {
        eprintln!("calico: nothing to change");
    }
    let mut problems = Vec::new();
    for d in &report.unsupported_devices {
        problems.push(format!(
            "{d}: this kernel lacks the device type; it and its routes were not programmed"
        ));
    }
    for op in &report.skipped {
        problems.push(format!("skipped (device missing): {op}"));
    }
    for i in &report.missing_interfaces {
        problems.push(format!(
            "interface {i} does not exist; its routes, neighbours and sysctls were skipped"
        ));
    }
    for (op, e) in &report.failed {
        problems.push(format!("failed: {op}: {e}"));
    }
    if let Some(e) = &report.nft_error {
        problems.push(format!("nftables not programmed: {e}"));
    }
    Ok(report_problems(&problems))
}

/// The routes, devices, neighbour and FDB entries of a node that has a Node object.
fn routed_state(
    cluster: &Cluster,
    a: &ApplyArgs,
    node_ip: Option<IpAddr>,
    dp: &mut NetlinkDataplane,
    felix: &FelixSettings,
) -> Result<DesiredState, CliError> {
    // The parent interface and host MTU come from the kernel: the interface holding the
    // node's address.
    let mut opts = PlanOptions::default();
    match parent_of(dp, node_ip)? {
        Some((iface, mtu)) => {
            opts.parent_iface = iface;
            opts.host_mtu = mtu;
        }
        None => {
            if let Some(ip) = node_ip {
                eprintln!(
                    "calico: warning: no interface holds the node address {ip}; assuming parent {} and MTU {}",
                    opts.parent_iface, opts.host_mtu
                );
            }
        }
    }
    let kplan =
        plan_node(cluster, &a.node, &opts).map_err(|e| CliError::could_not_run(e.to_string()))?;
    for u in &kplan.unrouted {
        eprintln!(
            "calico: warning: no route to {} (on {}): {}",
            u.dst, u.node, u.reason
        );
    }
    Ok(from_plan(&kplan, &felix.interface_prefix))
}

fn report_problems(problems: &[String]) -> ExitCode {
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "calico: {} problem(s) programming the dataplane",
        problems.len()
    );
    for p in problems {
        eprintln!("  {p}");
    }
    ExitCode::from(1)
}
