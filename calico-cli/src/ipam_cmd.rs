//! `calico ipam assign|assign-ip|release|show|check|repair`,
//! against `--store`. Pools are the IPPool resources in the store (`calico apply`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

use calico_ipam::{AssignIpRequest, AutoAssignRequest, Ipam, IpamError, ReleaseItem, check};
use calico_model::resources::ipam::AllowedUse;
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;
use crate::store_cmd::{open, print_table};

/// IPAM subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum IpamCommand {
    /// Assign addresses to a host from the pools that select it; prints each address on its
    /// own line, bare, IPv4 first. With neither --count nor --count6, one IPv4 address.
    /// A shortfall prints what was assigned, explains on stderr and exits 1.
    Assign(AssignArgs),
    /// Assign one given address; prints it, or exits 1 if it is taken, reserved or outside
    /// every enabled pool.
    AssignIp(AssignIpArgs),
    /// Release addresses (or every address of a handle); prints each released address and
    /// lists the ones that were not allocated on stderr (exit 1).
    Release(ReleaseArgs),
    /// Utilization per pool (and per block with --blocks).
    Show(ShowArgs),
    /// Check every IPAM invariant online; exit 1 and one line per finding when inconsistent.
    Check(CheckArgs),
    /// Fix what `check` reports that can be fixed safely; one line per action.
    Repair,
}

/// Arguments of `ipam assign`.
#[derive(Debug, Args)]
pub(crate) struct AssignArgs {
    /// The host (node) the addresses are for.
    #[arg(long)]
    host: String,
    /// Handle ID; without it the addresses have no handle.
    #[arg(long)]
    handle: Option<String>,
    /// IPv4 addresses to assign.
    #[arg(long)]
    count: Option<usize>,
    /// IPv6 addresses to assign.
    #[arg(long)]
    count6: Option<usize>,
    /// Pools to use, in order (CIDR or name; IPv4 and IPv6 pools may be mixed).
    #[arg(long = "pool", value_name = "CIDR")]
    pools: Vec<String>,
    /// Owner attribute KEY=VALUE (repeatable).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attrs: Vec<String>,
}

/// Arguments of `ipam assign-ip`.
#[derive(Debug, Args)]
pub(crate) struct AssignIpArgs {
    /// The address.
    ip: IpAddr,
    /// The host.
    #[arg(long)]
    host: String,
    /// Handle ID.
    #[arg(long)]
    handle: Option<String>,
}

/// Arguments of `ipam release`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// Addresses to release.
    #[arg(required_unless_present = "handle", conflicts_with = "handle")]
    ips: Vec<IpAddr>,
    /// Release every address of this handle instead.
    #[arg(long)]
    handle: Option<String>,
}

/// Output formats of `show` and `check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum TextOrJson {
    /// Lines of text.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// Arguments of `ipam show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Also one line per block.
    #[arg(long)]
    blocks: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: TextOrJson,
}

/// Arguments of `ipam check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: TextOrJson,
}

/// Exit status for an IPAM error: 2 when the store or its data failed, 1 when the operation
/// ran and was refused.
fn ipam_error(e: &IpamError) -> Result<ExitCode, CliError> {
    match e {
        IpamError::Store(_)
        | IpamError::Decode { .. }
        | IpamError::BadPool { .. }
        | IpamError::Contention { .. } => Err(CliError::could_not_run(e.to_string())),
        _ => {
            eprintln!("calico: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn parse_attrs(attrs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    attrs
        .iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::could_not_run(format!("--attr {a:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// Runs an IPAM subcommand against the store at `store_url`.
pub(crate) fn run(store_url: &str, cmd: IpamCommand) -> Result<ExitCode, CliError> {
    let store = open(store_url)?;
    if matches!(cmd, IpamCommand::Assign(_) | IpamCommand::AssignIp(_)) {
        // Allocating makes the datastore one Calico's components use: ClusterInformation
        // must exist and say ready, as Calico's own clients ensure before writing.
        calico_ipam::resources::Resources::new(&*store)
            .ensure_initialized()
            .map_err(|e| CliError::could_not_run(format!("preparing {store_url}: {e}")))?;
    }
    let ipam = Ipam::new(store);
    match cmd {
        IpamCommand::Assign(a) => assign(&ipam, a),
        IpamCommand::AssignIp(a) => {
            let req = AssignIpRequest {
                addr: a.ip,
                handle: a.handle,
                attrs: BTreeMap::new(),
                host: a.host,
                intended_use: AllowedUse::Workload,
            };
            match ipam.assign_ip(&req) {
                Ok(net) => {
                    println!("{}", net.addr());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => ipam_error(&e),
            }
        }
        IpamCommand::Release(a) => release(&ipam, a),
        IpamCommand::Show(a) => show(&ipam, &a),
        IpamCommand::Check(a) => {
            let report = check::check(&ipam).map_err(|e| CliError::could_not_run(e.to_string()))?;
            match a.output {
                TextOrJson::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| CliError::could_not_run(e.to_string()))?
                ),
                TextOrJson::Text => {
                    for f in &report.findings {
                        println!("{f}");
                    }
                }
            }
            if report.findings.is_empty() {
                eprintln!(
                    "calico: IPAM consistent ({} block(s) at revision {})",
                    report.blocks, report.revision
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("calico: {} IPAM finding(s)", report.findings.len());
                Ok(ExitCode::from(1))
            }
        }
        IpamCommand::Repair => {
            let actions =
                check::repair(&ipam).map_err(|e| CliError::could_not_run(e.to_string()))?;
            let mut unfixed = 0;
            for a in &actions {
                if a.fixed {
                    println!("fixed {}: {}", a.finding, a.message);
                } else {
                    unfixed += 1;
                    println!("not fixed {}: {}", a.finding, a.message);
                }
            }
            if actions.is_empty() {
                eprintln!("calico: nothing to repair");
            }
            Ok(if unfixed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn assign(ipam: &Ipam, a: AssignArgs) -> Result<ExitCode, CliError> {
    let (num4, num6) = match (a.count, a.count6) {
        (None, None) => (1, 0),
        (c4, c6) => (c4.unwrap_or(0), c6.unwrap_or(0)),
    };
    let (mut pools4, mut pools6) = (Vec::new(), Vec::new());
    for p in a.pools {
        match p.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V6(_)) => pools6.push(p),
            _ => pools4.push(p),
        }
    }
    let req = AutoAssignRequest {
        num4,
        num6,
        handle: a.handle,
        attrs: parse_attrs(&a.attrs)?,
        host: a.host,
        pools4: (!pools4.is_empty()).then_some(pools4),
        pools6: (!pools6.is_empty()).then_some(pools6),
        max_blocks_per_host: None,
        intended_use: AllowedUse::Workload,
        namespace: None,
        windows_reserved: false,
    };
    match ipam.auto_assign(&req) {
        Ok(got) => {
            for n in got.v4.iter().chain(&got.v6) {
                println!("{}", n.addr());
            }
            let mut short = false;
            if got.v4.len() < num4 {
                short = true;
                eprintln!(
                    "calico: assigned {} of {num4} IPv4 address(es): {}",
                    got.v4.len(),
                    join_shortfall(&got.shortfall4)
                );
            }
            if got.v6.len() < num6 {
                short = true;
                eprintln!(
                    "calico: assigned {} of {num6} IPv6 address(es): {}",
                    got.v6.len(),
                    join_shortfall(&got.shortfall6)
                );
            }
            Ok(if short {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(IpamError::BlockLimit {
            assigned,
            host,
            owned,
            limit,
        }) => {
            for n in &assigned {
                println!("{}", n.addr());
            }
            eprintln!(
                "calico: block limit reached for host {host} ({owned} of {limit} blocks): assigned {} address(es)",
                assigned.len()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => ipam_error(&e),
    }
}

fn release(ipam: &Ipam, a: ReleaseArgs) -> Result<ExitCode, CliError> {
    if let Some(h) = a.handle {
        return match ipam.release_by_handle(&h) {
            Ok(addrs) => {
                for addr in addrs {
                    println!("{addr}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => ipam_error(&e),
        };
    }
    let items: Vec<ReleaseItem> = a.ips.iter().map(|ip| ReleaseItem::addr(*ip)).collect();
    match ipam.release_ips(&items) {
        Ok(r) => {
            for addr in &r.released {
                println!("{addr}");
            }
            for addr in &r.not_allocated {
                eprintln!("calico: {addr} was not allocated");
            }
            for (addr, why) in &r.rejected {
                eprintln!("calico: {addr} not released: {why}");
            }
            Ok(if r.not_allocated.is_empty() && r.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(e) => ipam_error(&e),
    }
}

fn show(ipam: &Ipam, a: &ShowArgs) -> Result<ExitCode, CliError> {
    let u = ipam
        .utilization(None)
        .map_err(|e| CliError::could_not_run(e.to_string()))?;
    if a.output == TextOrJson::Json {
        let text =
            serde_json::to_string_pretty(&u).map_err(|e| CliError::could_not_run(e.to_string()))?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        [
            "GROUPING",
            "CIDR",
            "CAPACITY",
            "IN USE",
            "RESERVED",
            "AVAILABLE",
            "AFFINITY",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let pct = |n: u128, d: u128| match n.saturating_mul(100).checked_div(d) {
        Some(p) => format!("{n} ({p}%)"),
        None => format!("{n}"),
    };
    for p in &u.pools {
        rows.push(vec![
            format!("IP Pool {}", p.name),
            p.cidr.to_string(),
            p.capacity.to_string(),
            pct(p.in_use, p.capacity),
            p.reserved.to_string(),
            pct(p.available, p.capacity),
            String::new(),
        ]);
        if a.blocks {
            for b in &p.blocks {
                rows.push(vec![
                    "Block".to_owned(),
                    b.cidr.to_string(),
                    b.capacity.to_string(),
                    pct(b.in_use, b.capacity),
                    b.reserved.to_string(),
                    pct(b.available, b.capacity),
                    b.affinity.clone().unwrap_or_default(),
                ]);
            }
        }
    }
    for b in &u.orphaned {
        rows.push(vec![
            "Orphaned block".to_owned(),
            b.cidr.to_string(),
            b.capacity.to_string(),
            pct(b.in_use, b.capacity),
            b.reserved.to_string(),
            pct(b.available, b.capacity),
            b.affinity.clone().unwrap_or_default(),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// The allocator's shortfall reasons, `; `-separated.
fn join_shortfall(reasons: &[calico_ipam::Shortfall]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
