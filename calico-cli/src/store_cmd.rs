//! `calico apply -f PATH`, `calico get KIND [NAME]`, `calico delete KIND NAME` / `-f PATH`
//! (cli.md "datastore"), against `--store`.
//!
//! Objects are stored as JSON under `resources/v3/<Kind>/[<namespace>/]<name>`
//! (`calico_ipam::resources`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use calico_datastore::{Store, StoreError};
use calico_ipam::resources::{self, ResourceError};
use calico_model::loader::load_paths;
use calico_model::resources::{Kind, Resource};
use calico_model::validation::validate;
use clap::{Args, ValueEnum};

use crate::exit::CliError;

/// The default of `--store-timeout`.
pub(crate) const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

static STORE_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Sets how long a store request may keep retrying (`--store-timeout`), once at start-up.
pub(crate) fn set_store_timeout(limit: Duration) {
    let _ = STORE_TIMEOUT.set(limit);
}

/// Opens the store named by `--store`. An `etcd://` store is probed first (one read, within
/// `--store-timeout`), so that a cluster with no member answering is reported at once as
/// such rather than as the failure of whatever the command did first.
pub(crate) fn open(url: &str) -> Result<Arc<dyn Store>, CliError> {
    let limit = STORE_TIMEOUT
        .get()
        .copied()
        .unwrap_or(DEFAULT_STORE_TIMEOUT);
    let options = calico_datastore_etcd::EtcdOptions::default().with_time_limit(limit);
    let store: Arc<dyn Store> = crate::datastore::open_store(url, options)
        .map(Arc::from)
        .map_err(|e| CliError::could_not_run(format!("cannot open store {url}: {e}")))?;
    if crate::datastore::is_etcd(url) {
        probe(&*store, url, limit)?;
    }
    Ok(store)
}

fn probe(store: &dyn Store, url: &str, limit: Duration) -> Result<(), CliError> {
    match store.revision() {
        Ok(_) => Ok(()),
        Err(e @ (StoreError::Unavailable { .. } | StoreError::Timeout { .. })) => {
            Err(CliError::CouldNotRun {
                summary: format!(
                    "cannot reach store {url}: no etcd member answered within {limit:?}"
                ),
                details: vec![
                    e.to_string(),
                    "is etcd running and reachable? (--store-timeout SECONDS or \
                     CALICO_STORE_TIMEOUT waits longer)"
                        .to_owned(),
                ],
            })
        }
        Err(e) => Err(CliError::could_not_run(format!(
            "cannot use store {url}: {e}"
        ))),
    }
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Files or directories of manifests (.yaml, .yml, .json; directories recursively).
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GetFormat {
    /// One YAML document per object.
    Yaml,
    /// One JSON object (a `List` when several).
    Json,
    /// A table with more columns.
    Wide,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The kind (`IPPool`, `ippools`, `ippool`, ...).
    kind: String,
    /// One object's name.
    name: Option<String>,
    /// The namespace of namespaced kinds (default: `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Output format (default: a table).
    #[arg(short = 'o', long, value_enum)]
    output: Option<GetFormat>,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The kind.
    #[arg(required_unless_present = "paths", requires = "name")]
    kind: Option<String>,
    /// The name.
    name: Option<String>,
    /// The namespace of namespaced kinds (default: `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Delete the objects of these manifests instead.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        conflicts_with = "kind"
    )]
    paths: Vec<PathBuf>,
}

/// Resolves a kind as typed: the manifest kind or its lowercase, singular or plural.
pub(crate) fn parse_kind(s: &str) -> Result<Kind, CliError> {
    let l = s.to_ascii_lowercase();
    let l = l
        .strip_suffix(".networking.k8s.io")
        .map_or(l.clone(), |b| format!("k8s:{b}"));
    let matches = |k: &Kind| {
        let name = k.as_str().to_ascii_lowercase();
        let name = if *k == Kind::KubernetesNetworkPolicy {
            format!("k8s:{name}")
        } else {
            name
        };
        l == name
            || l == format!("{name}s")
            || l == format!("{name}es")
            || (name.ends_with('y') && l == format!("{}ies", &name[..name.len() - 1]))
    };
    Kind::ALL
        .iter()
        .copied()
        .find(matches)
        .ok_or_else(|| CliError::could_not_run(format!("unknown kind {s:?}")))
}

fn load(paths: &[PathBuf]) -> Result<Vec<Resource>, CliError> {
    let mut set = load_paths(paths);
    if !set.errors.is_empty() {
        return Err(CliError::with_details(
            format!(
                "{} input(s) could not be read or parsed; nothing was changed",
                set.errors.len()
            ),
            set.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    set.apply_defaults();
    let problems = validate(&set);
    if !problems.is_empty() {
        return Err(CliError::with_details(
            format!(
                "{} problem(s) in the manifests; nothing was changed",
                problems.len()
            ),
            problems.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(set.resources().cloned().collect())
}

fn describe(r: &Resource) -> String {
    match r.namespace() {
        Some(ns) => format!("{} {ns}/{}", r.kind(), r.name()),
        None => format!("{} {}", r.kind(), r.name()),
    }
}

fn resource_error(e: ResourceError) -> Result<ExitCode, CliError> {
    match e {
        ResourceError::NotFound { .. } => {
            eprintln!("calico: {e}");
            Ok(ExitCode::from(1))
        }
        e => Err(CliError::could_not_run(e.to_string())),
    }
}

/// Runs `apply`: validates everything first; stores nothing if anything is invalid.
pub(crate) fn run_apply(store_url: &str, args: &ApplyArgs) -> Result<ExitCode, CliError> {
    let objects = load(&args.paths)?;
    let store = open(store_url)?;
    if let Err(e) = resources::apply(&*store, &objects) {
        return resource_error(e);
    }
    for r in &objects {
        println!("applied {}", describe(r));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `get`.
pub(crate) fn run_get(store_url: &str, args: &GetArgs) -> Result<ExitCode, CliError> {
    let kind = parse_kind(&args.kind)?;
    let store = open(store_url)?;
    let ns = if args.all_namespaces && args.name.is_none() {
        None
    } else {
        Some(args.namespace.as_deref().unwrap_or("default"))
    };
    let objs = match resources::get(&*store, kind, ns, args.name.as_deref()) {
        Ok(o) => o,
        Err(e) => return resource_error(e),
    };
    let fail = |e: String| CliError::could_not_run(format!("cannot encode: {e}"));
    match args.output {
        Some(GetFormat::Yaml) => {
            for (i, o) in objs.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", o.to_yaml().map_err(|e| fail(e.to_string()))?);
            }
        }
        Some(GetFormat::Json) => {
            let v = if args.name.is_some() && objs.len() == 1 {
                objs[0].to_json_value().map_err(|e| fail(e.to_string()))?
            } else {
                let items: Result<Vec<_>, _> = objs.iter().map(Resource::to_json_value).collect();
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items.map_err(|e| fail(e.to_string()))?})
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| fail(e.to_string()))?
            );
        }
        format => {
            let wide = format == Some(GetFormat::Wide);
            let mut rows: Vec<Vec<String>> = Vec::new();
            let mut header = Vec::new();
            if kind.is_namespaced() {
                header.push("NAMESPACE".to_owned());
            }
            header.push("NAME".to_owned());
            if wide {
                header.extend(wide_header(kind).iter().map(|s| (*s).to_owned()));
            }
            rows.push(header);
            for o in &objs {
                let mut row = Vec::new();
                if let Some(ns) = o.namespace() {
                    row.push(ns.to_owned());
                }
                row.push(o.name().to_owned());
                if wide {
                    row.extend(wide_row(o));
                }
                rows.push(row);
            }
            print_table(&rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn wide_header(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::IpPool => &["CIDR", "BLOCKSIZE", "DISABLED", "SELECTOR", "ASSIGNMENT"],
        Kind::IpReservation => &["CIDRS"],
        _ => &["LABELS"],
    }
}

fn wide_row(r: &Resource) -> Vec<String> {
    match r {
        Resource::IpPool(p) => vec![
            p.spec.cidr.to_string(),
            p.spec.effective_block_size().to_string(),
            p.spec.disabled.to_string(),
            if p.spec.node_selector.is_empty() {
                "all()".to_owned()
            } else {
                p.spec.node_selector.clone()
            },
            format!("{:?}", p.spec.assignment_mode.unwrap_or_default()),
        ],
        Resource::IpReservation(r) => vec![
            r.spec
                .reserved_cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ],
        other => vec![
            other
                .metadata()
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ],
    }
}

/// Prints rows as left-aligned columns.
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i + 1 == r.len() {
                    v.clone()
                } else {
                    format!("{v:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("   "));
    }
}

/// Runs `delete`.
pub(crate) fn run_delete(store_url: &str, args: &DeleteArgs) -> Result<ExitCode, CliError> {
    let targets: Vec<(Kind, Option<String>, String)> = if args.paths.is_empty() {
        let kind = parse_kind(args.kind.as_deref().unwrap_or_default())?;
        let name = args
            .name
            .clone()
            .ok_or_else(|| CliError::could_not_run("delete needs KIND NAME or -f PATH"))?;
        vec![(kind, args.namespace.clone(), name)]
    } else {
        load(&args.paths)?
            .iter()
            .map(|r| {
                (
                    r.kind(),
                    r.namespace().map(str::to_owned),
                    r.name().to_owned(),
                )
            })
            .collect()
    };
    let store = open(store_url)?;
    let mut code = ExitCode::SUCCESS;
    for (kind, ns, name) in targets {
        match resources::delete(&*store, kind, ns.as_deref(), &name) {
            Ok(()) => println!(
                "deleted {kind} {}",
                ns.map_or(name.clone(), |ns| format!("{ns}/{name}"))
            ),
            Err(e) => code = resource_error(e)?,
        }
    }
    Ok(code)
}
