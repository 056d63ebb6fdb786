//! `calico policy check|connlist|diff|lint|render`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use calico_model::loader::LoadMode;
use calico_model::resources::values::Protocol;
use calico_policy::{BuildError, CheckError, FlowQuery, Format, Model, PeerQuery};
use clap::{Args, Subcommand, ValueEnum};

use crate::exit::CliError;
use crate::manifests::{self, LoadArgs};

/// `calico policy ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// The verdict for one flow, with the tier, policy, rule and action (or the default)
    /// that decided each direction.
    ///
    /// PEER is NAMESPACE/NAME of a Pod, a workload controller, a WorkloadEndpoint, NAME of a
    /// HostEndpoint, or a literal IP address. Exit 0 whatever the verdict.
    Check(CheckArgs),
    /// The allowed connections between workloads, and between workloads and external IPv4
    /// ranges, one line per (source, destination) pair.
    ///
    /// Problems in the manifests are warnings on stderr and the rest is analysed; with
    /// --strict, exit 1 (nothing on stdout, problems on stderr) when the manifests are
    /// invalid.
    Connlist(ConnlistArgs),
    /// Connections PATH_B adds (`+`) and removes (`-`) compared to PATH_A, per (source,
    /// destination) pair, on common address ranges.
    ///
    /// Exit 0 when both allow the same connections, 1 when they differ (like diff(1)).
    Diff(DiffArgs),
    /// Shadowed rules, policies that select nothing, selectors reading labels no object
    /// carries or that can never match, Pass in the last tier, source ports, hostNetwork pods
    /// selected, and the manifests' own problems and warnings.
    ///
    /// Exit 1 when there is any finding.
    Lint(LintArgs),
    /// The kernel rule set NODE would program for the manifests: `nft -f` input for one
    /// `table inet calico`, or `iptables-restore` input in the reference (Felix) chain
    /// layout.
    ///
    /// Exit 1 (nothing on stdout) when the manifests are invalid.
    Render(RenderArgs),
}

/// Output of `render`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RenderFormat {
    /// `nft -f` input.
    Nft,
    /// `iptables-restore` input (filter table).
    Iptables,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Manifests (file or directory).
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// The node whose rules to render (workload and host endpoints on it).
    #[arg(long, value_name = "NODE")]
    node: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "nft")]
    format: RenderFormat,
    /// Add a counter to every rule (nft).
    #[arg(long)]
    counters: bool,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The manifests before.
    #[arg(value_name = "PATH_A")]
    a: PathBuf,
    /// The manifests after.
    #[arg(value_name = "PATH_B")]
    b: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
}

/// Arguments of `lint`.
#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    /// Manifests (file or directory); without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

/// Output of `check`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CheckOutput {
    /// Human-readable lines.
    Text,
    /// One JSON object.
    Json,
}

/// Output of `connlist`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ConnlistOutput {
    /// `src => dst : conns` lines.
    Txt,
    /// JSON array of {src, dst, conn}.
    Json,
    /// CSV with a header.
    Csv,
    /// Markdown table.
    Md,
    /// Graphviz digraph (`dot -Tsvg`).
    Dot,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Manifests (file or directory); without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Source peer.
    #[arg(long, value_name = "PEER")]
    from: String,
    /// Destination peer.
    #[arg(long, value_name = "PEER")]
    to: String,
    /// TCP, UDP, SCTP, ICMP, ICMPv6, UDPLite or a number.
    #[arg(long, value_name = "P", default_value = "TCP")]
    protocol: String,
    /// Destination port.
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// ICMP type.
    #[arg(long, value_name = "T")]
    icmp_type: Option<u8>,
    /// ICMP code.
    #[arg(long, value_name = "C")]
    icmp_code: Option<u8>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    output: CheckOutput,
    #[command(flatten)]
    load: LoadArgs,
}

/// Arguments of `connlist`.
#[derive(Debug, Args)]
pub(crate) struct ConnlistArgs {
    /// Manifests (file or directory); without it, the resources stored in the datastore
    /// (`--store`, `--config`, the calicoctl environment, or `file:./calico.db`).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "txt")]
    output: ConnlistOutput,
    #[command(flatten)]
    load: LoadArgs,
}

/// Runs a `policy` subcommand.
pub(crate) fn run(cmd: PolicyCommand) -> Result<ExitCode, CliError> {
    match cmd {
        PolicyCommand::Check(a) => check(&a),
        PolicyCommand::Connlist(a) => connlist(&a),
        PolicyCommand::Diff(a) => diff(&a),
        PolicyCommand::Lint(a) => lint(&a),
        PolicyCommand::Render(a) => render(&a),
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, CliError> {
    let canonical = ["TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "UDPLite"]
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(s))
        .unwrap_or(s);
    canonical
        .parse::<Protocol>()
        .map_err(|e| CliError::could_not_run(e.to_string()))
}

/// Loads manifests strictly with defaults applied; `Err` (exit 2) when they cannot be read.
pub(crate) fn load_set(path: &Path) -> Result<calico_model::loader::LoadedSet, CliError> {
    manifests::load(path, LoadMode::Strict)
}

/// Loads and builds the model: `Err` (exit 2) when it cannot run, `Ok(Err(code))` (exit 1)
/// when the manifests are invalid (problems printed on stderr). Leniently, every problem
/// is printed as a warning and the model holds what could be used.
pub(crate) fn load(
    path: Option<&Path>,
    opts: LoadArgs,
) -> Result<Result<Model, ExitCode>, CliError> {
    let (set, source) = manifests::load_input(path, opts.mode())?;
    if opts.strict {
        return build_model(&set, &source);
    }
    let model = Model::build_lenient(&set);
    for d in model.diagnostics() {
        eprintln!("{}", d.clone().into_warning());
    }
    let dropped = model.diagnostics().iter().filter(|d| d.is_error()).count() + set.warnings.len();
    if dropped > 0 {
        eprintln!(
            "calico: {dropped} problem(s) in the manifests under {source} tolerated (--strict fails on them)"
        );
    }
    Ok(Ok(model))
}

/// Builds the model of a loaded set, as [`load`] does.
pub(crate) fn build_model(
    set: &calico_model::loader::LoadedSet,
    source: &str,
) -> Result<Result<Model, ExitCode>, CliError> {
    match Model::build(set) {
        Ok(model) => {
            for w in model.diagnostics() {
                eprintln!("{w}");
            }
            Ok(Ok(model))
        }
        Err(BuildError::Load { errors }) => Err(CliError::with_details(
            format!("{source}: cannot load the manifests"),
            errors.iter().map(ToString::to_string).collect(),
        )),
        Err(BuildError::Invalid { errors, warnings }) => {
            eprintln!(
                "calico: {} problem(s) in the manifests under {source}",
                errors.len(),
            );
            for d in errors.iter().chain(&warnings) {
                eprintln!("{d}");
            }
            Ok(Err(ExitCode::from(1)))
        }
        Err(other) => Err(CliError::could_not_run(format!(
            "{source}: cannot build the model: {other}"
        ))),
    }
}

fn peer(s: &str) -> PeerQuery {
    match s.parse::<PeerQuery>() {
        Ok(p) => p,
        Err(never) => match never {},
    }
}

fn check(a: &CheckArgs) -> Result<ExitCode, CliError> {
    let protocol = parse_protocol(&a.protocol)?;
    let model = match load(a.path.as_deref(), a.load)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let q = FlowQuery {
        from: peer(&a.from),
        to: peer(&a.to),
        protocol,
        port: a.port,
        icmp_type: a.icmp_type,
        icmp_code: a.icmp_code,
    };
    let result = model
        .check(&q)
        .map_err(|e| CliError::could_not_run(check_error_text(&e)))?;
    match a.output {
        CheckOutput::Text => print!("{result}"),
        CheckOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&result)
                .map_err(|e| CliError::could_not_run(e.to_string()))?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A check error in terms of the command's flags.
fn check_error_text(e: &CheckError) -> String {
    match e {
        CheckError::PortWithoutPorts(p) => format!("--port needs TCP, UDP or SCTP, not {p}"),
        CheckError::IcmpWithoutIcmp(p) => {
            format!("--icmp-type/--icmp-code need ICMP or ICMPv6, not {p}")
        }
        CheckError::CodeWithoutType => "--icmp-code needs --icmp-type".to_owned(),
        other => other.to_string(),
    }
}

fn connlist(a: &ConnlistArgs) -> Result<ExitCode, CliError> {
    let model = match load(a.path.as_deref(), a.load)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let plan = match model.connlist_plan(&[], &[]) {
        Ok(l) => l,
        Err(e) => return Ok(print_fatal(&e)),
    };
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let format = match a.output {
        ConnlistOutput::Txt => {
            // Rows are streamed: neither the rows nor the text are held in memory.
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            plan.write_txt(&mut out)
                .and_then(|()| std::io::Write::flush(&mut out))
                .map_err(|e| CliError::could_not_run(format!("writing the connlist: {e}")))?;
            return Ok(ExitCode::SUCCESS);
        }
        ConnlistOutput::Json => Format::Json,
        ConnlistOutput::Csv => Format::Csv,
        ConnlistOutput::Md => Format::Md,
        ConnlistOutput::Dot => Format::Dot,
    };
    let list = plan.collect();
    print!("{}", list.render(format));
    Ok(ExitCode::SUCCESS)
}

fn render(a: &RenderArgs) -> Result<ExitCode, CliError> {
    let model = match load(Some(&a.path), LoadArgs { strict: true })? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let eps = calico_policy::nft::node_endpoints(&model, &a.node);
    if eps.workloads.is_empty() && eps.host_endpoints.is_empty() {
        eprintln!(
            "warning: no workload or host endpoint with an interface runs on node {}",
            a.node
        );
    }
    let program = model.compile();
    let text = match a.format {
        RenderFormat::Nft => {
            let opts = calico_policy::nft::RenderOptions {
                counters: a.counters,
                ..Default::default()
            };
            calico_policy::nft::build_ruleset(&model, &program, &a.node, &opts).to_nft()
        }
        RenderFormat::Iptables => calico_policy::iptables::render(&model, &program, &a.node),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn print_fatal(e: &calico_policy::ConnlistError) -> ExitCode {
    // The error's own message names the first problems; every one is listed below it.
    eprintln!("calico: {} fatal problem(s)", e.problems.len());
    for p in &e.problems {
        eprintln!("{p}");
    }
    ExitCode::from(1)
}

fn diff(a: &DiffArgs) -> Result<ExitCode, CliError> {
    let ma = match load(Some(&a.a), a.load)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let mb = match load(Some(&a.b), a.load)? {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let d = match calico_policy::diff(&ma, &mb) {
        Ok(d) => d,
        Err(e) => return Ok(print_fatal(&e)),
    };
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", d.render());
    Ok(if d.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn lint(a: &LintArgs) -> Result<ExitCode, CliError> {
    // Lint reports the manifests' own problems as findings; leniently these include what
    // the loader skipped or dropped, and the rest is linted.
    let (set, _) = manifests::load_input(a.path.as_deref(), a.load.mode())?;
    let model = Model::build_lenient(&set);
    let findings = model.lint();
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        eprintln!("calico: no findings");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("calico: {} finding(s)", findings.len());
        Ok(ExitCode::from(1))
    }
}
