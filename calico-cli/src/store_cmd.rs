//! `calico apply -f PATH`, `calico get KIND [NAME]`, `calico delete KIND NAME` / `-f PATH`
//! against `--store`.
//!
//! Objects are stored as Calico's etcd datastore stores them (see `calico_ipam::resources`),
//! and the commands behave as calicoctl's do: the same kind names (`wep`, `gnp`, `ippools`,
//! ...), the same tables (`get_table`) and the same messages for missing objects and
//! unknown kinds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use calico_datastore::{Store, StoreError};
use calico_ipam::resources::{ResourceError, ResourceType, Resources, StoredObject};
use calico_model::loader::{LoadedObject, Origin, load_paths};
use calico_model::resources::{Kind, Resource};
use calico_model::validation::validate;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

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

/// Output formats of `get` (calicoctl's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GetFormat {
    /// A table with the default columns.
    Ps,
    /// A table with more columns.
    Wide,
    /// YAML: the object, or a `<Kind>List` of them.
    #[value(alias = "yml")]
    Yaml,
    /// JSON: the object, or a `<Kind>List` of them.
    Json,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The kind, as calicoctl names it (`ippool`, `ippools`, `wep`, `gnp`, `bgpconfig`, ...).
    kind: String,
    /// One object's name.
    name: Option<String>,
    /// The namespace of namespaced kinds (default: `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(
        short = 'A',
        visible_short_alias = 'a',
        long,
        conflicts_with = "namespace"
    )]
    all_namespaces: bool,
    /// Output format: ps (default), wide, yaml, json.
    #[arg(short = 'o', long, value_enum, default_value = "ps")]
    output: GetFormat,
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
    /// Succeed when an object does not exist.
    #[arg(short = 's', long)]
    skip_not_exists: bool,
}

/// The type a kind argument names, or calicoctl's "not supported" message.
fn resource_type(s: &str) -> Result<&'static ResourceType, String> {
    ResourceType::by_name(s).ok_or_else(|| format!("resource type '{s}' is not supported"))
}

/// A failure reported as calicoctl reports it: the message alone on stderr, exit 1.
fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(1)
}

/// Loads and validates manifests; references (a policy's tier, pool overlaps, BGP filters,
/// node addresses) are checked against the objects in `store` too, so a policy for a tier
/// that exists only in the store is accepted.
fn load(
    paths: &[PathBuf],
    store: Option<&dyn Store>,
    action: &str,
) -> Result<Vec<Resource>, CliError> {
    // Every input's problem is reported below, beside what could be loaded.
    let mut set = load_paths(paths).unwrap_or_else(|e| *e.partial);
    if !set.errors.is_empty() {
        return Err(CliError::with_details(
            format!(
                "{} input(s) could not be read or parsed; nothing was changed",
                set.errors.len()
            ),
            set.errors.iter().map(ToString::to_string).collect(),
        ));
    }
    if let Some(ro) = set
        .skipped
        .iter()
        .find(|o| o.kind == "ClusterInformation" && o.api_version.starts_with("projectcalico.org/"))
    {
        return Err(CliError::could_not_run(format!(
            "{}:{}: operation {action} is not supported on ClusterInformation({}): resource is readonly",
            ro.origin.file, ro.origin.doc_index, ro.name
        )));
    }
    set.apply_defaults();
    let inputs: Vec<Resource> = set.resources().cloned().collect();
    let mut store_origin = None;
    if let Some(store) = store {
        let stored = referenced_objects(store, &inputs)?;
        let origin = format!("{} (stored)", store.url());
        let mut objects: Vec<LoadedObject> = stored
            .into_iter()
            .enumerate()
            .map(|(i, resource)| LoadedObject {
                origin: Origin {
                    file: origin.clone(),
                    doc_index: i,
                    item_index: None,
                },
                resource,
            })
            .collect();
        // Stored objects first: a cross-object problem is reported on the later object,
        // which is then the one from the manifests.
        objects.append(&mut set.objects);
        set.objects = objects;
        store_origin = Some(origin);
    }
    let problems: Vec<_> = validate(&set)
        .into_iter()
        .filter(|p| Some(&p.file) != store_origin.as_ref())
        .collect();
    if !problems.is_empty() {
        return Err(CliError::with_details(
            format!(
                "{} problem(s) in the manifests; nothing was changed",
                problems.len()
            ),
            problems.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(inputs)
}

/// The stored objects manifests may refer to (tiers, pools, BGP filters, nodes, BGP
/// configurations), except those the manifests replace.
fn referenced_objects(store: &dyn Store, inputs: &[Resource]) -> Result<Vec<Resource>, CliError> {
    let client = Resources::new(store);
    let mut out = Vec::new();
    for kind in [
        Kind::Tier,
        Kind::IpPool,
        Kind::BgpFilter,
        Kind::Node,
        Kind::BgpConfiguration,
    ] {
        let listing = client
            .list(ResourceType::of(kind), None)
            .map_err(|e| store_failure(store.url(), e))?;
        for o in listing.items {
            let Some(mut r) = o.object else { continue };
            let replaced = inputs.iter().any(|i| {
                i.kind() == r.kind() && i.name() == r.name() && i.namespace() == r.namespace()
            });
            if !replaced {
                r.apply_defaults();
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn store_failure(url: &str, e: ResourceError) -> CliError {
    CliError::could_not_run(format!("store {url}: {e}"))
}

/// Whether an error is Calico's (reported as calicoctl does, exit 1) rather than a store
/// failure (exit 2).
fn is_calico_error(e: &ResourceError) -> bool {
    !matches!(e, ResourceError::Store(_))
}

/// `Kind` when every object has one kind.
fn single_kind(kinds: &[&str]) -> Option<String> {
    let first = kinds.first()?;
    kinds
        .iter()
        .all(|k| k == first)
        .then(|| (*first).to_owned())
}

/// Runs `apply`: validates everything first (against the store too); stores nothing if
/// anything is invalid. Then initialises the cluster (ClusterInformation, built-in tiers)
/// and creates or updates each object in order, stopping at the first failure.
pub(crate) fn run_apply(store_url: &str, args: &ApplyArgs) -> Result<ExitCode, CliError> {
    let store = open(store_url)?;
    let loaded = load(&args.paths, Some(&*store), "apply")?;
    // Tiers first: a policy needs its tier to exist.
    let objects: Vec<Resource> = calico_ipam::resources::tiers_first(&loaded)
        .into_iter()
        .cloned()
        .collect();
    let client = Resources::new(&*store);
    client
        .ensure_initialized()
        .map_err(|e| store_failure(store_url, e))?;
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| ResourceType::of(o.kind()).kind)
        .collect();
    let single = single_kind(&kinds);
    for (i, o) in objects.iter().enumerate() {
        if let Err(e) = client.apply(o) {
            if !is_calico_error(&e) {
                return Err(store_failure(store_url, e));
            }
            return Ok(if i == 0 {
                match (&single, objects.len()) {
                    (Some(k), 1) => fail(&format!("failed to apply '{k}' resource: [{e}]")),
                    (Some(k), _) => fail(&format!("failed to apply any '{k}' resources: [{e}]")),
                    (None, _) => fail(&format!("failed to apply any resources: [{e}]")),
                }
            } else {
                println!(
                    "Partial success: applied the first {i} out of {} resources:",
                    objects.len()
                );
                fail(&format!("Hit error: {e}"))
            });
        }
    }
    match single {
        Some(k) => println!("Successfully applied {} '{k}' resource(s)", objects.len()),
        None => println!("Successfully applied {} resource(s)", objects.len()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `get`.
pub(crate) fn run_get(store_url: &str, args: &GetArgs) -> Result<ExitCode, CliError> {
    let ty = match resource_type(&args.kind) {
        Ok(t) => t,
        Err(m) => return Ok(fail(&format!("failed to get resources: {m}"))),
    };
    if args.all_namespaces && args.name.is_some() && ty.namespaced {
        return Ok(fail(
            "cannot use --all-namespace flag for getting a single resource",
        ));
    }
    let store = open(store_url)?;
    let client = Resources::new(&*store);
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(args.namespace.as_deref().unwrap_or("default"))
    };
    let (objects, revision) = match &args.name {
        Some(name) => match client.get(ty, namespace, name) {
            Ok(o) => {
                let rev = o.mod_revision;
                (vec![o], rev)
            }
            Err(e) if is_calico_error(&e) => return Ok(fail(&e.to_string())),
            Err(e) => return Err(store_failure(store_url, e)),
        },
        None => match client.list(ty, namespace) {
            Ok(listing) => {
                for bad in &listing.bad {
                    eprintln!("calico: skipped a stored value that does not decode: {bad}");
                }
                let mut items = listing.items;
                if ty.kind == "Tier" {
                    sort_tiers(&mut items);
                }
                (items, listing.revision)
            }
            Err(e) => return Err(store_failure(store_url, e)),
        },
    };
    let encode_failure = |e: String| CliError::could_not_run(format!("cannot encode: {e}"));
    match args.output {
        GetFormat::Yaml | GetFormat::Json => {
            let value = if args.name.is_some() {
                objects
                    .first()
                    .map(|o| Value::Object(o.value.clone()))
                    .unwrap_or(Value::Null)
            } else {
                list_value(ty, &objects, revision)
            };
            let text = if args.output == GetFormat::Json {
                let mut t = serde_json::to_string_pretty(&value)
                    .map_err(|e| encode_failure(e.to_string()))?;
                t.push('\n');
                t
            } else {
                serde_yaml_ng::to_string(&value).map_err(|e| encode_failure(e.to_string()))?
            };
            print!("{text}");
        }
        GetFormat::Ps | GetFormat::Wide => {
            let wide = args.output == GetFormat::Wide;
            let print_namespace =
                ty.namespaced && (args.all_namespaces || args.namespace.is_some());
            let ctx = crate::get_table::Context::new(&client);
            print!(
                "{}",
                crate::get_table::render(ty, &objects, wide, print_namespace, &ctx)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Tiers in calicoctl's order: by order, those without one last.
fn sort_tiers(items: &mut [StoredObject]) {
    let order = |o: &StoredObject| {
        o.value
            .get("spec")
            .and_then(|s| s.get("order"))
            .and_then(Value::as_f64)
    };
    items.sort_by(|a, b| match (order(a), order(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// A `<Kind>List` as calicoctl prints one.
fn list_value(ty: &ResourceType, objects: &[StoredObject], revision: u64) -> Value {
    let items: Vec<Value> = objects
        .iter()
        .map(|o| Value::Object(o.value.clone()))
        .collect();
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(ty.api_version));
    m.insert("items".into(), Value::Array(items));
    m.insert("kind".into(), json!(format!("{}List", ty.kind)));
    m.insert(
        "metadata".into(),
        json!({"resourceVersion": revision.to_string()}),
    );
    Value::Object(m)
}

/// Runs `delete`.
pub(crate) fn run_delete(store_url: &str, args: &DeleteArgs) -> Result<ExitCode, CliError> {
    let targets: Vec<(&'static ResourceType, Option<String>, String)> = if args.paths.is_empty() {
        let kind = args.kind.as_deref().unwrap_or_default();
        let ty = match resource_type(kind) {
            Ok(t) => t,
            Err(m) => return Ok(fail(&format!("failed to delete resources: {m}"))),
        };
        let name = args
            .name
            .clone()
            .ok_or_else(|| CliError::could_not_run("delete needs KIND NAME or -f PATH"))?;
        vec![(ty, args.namespace.clone(), name)]
    } else {
        load(&args.paths, None, "delete")?
            .iter()
            .map(|r| {
                (
                    ResourceType::of(r.kind()),
                    r.namespace().map(str::to_owned),
                    r.name().to_owned(),
                )
            })
            .collect()
    };
    let store = open(store_url)?;
    let client = Resources::new(&*store);
    let kinds: Vec<&str> = targets.iter().map(|(t, _, _)| t.kind).collect();
    let single = single_kind(&kinds);
    let mut deleted = 0;
    for (i, (ty, ns, name)) in targets.iter().enumerate() {
        match client.delete(ty, ns.as_deref(), name) {
            Ok(_) => deleted += 1,
            Err(ResourceError::NotFound { .. }) if args.skip_not_exists => deleted += 1,
            Err(e) if is_calico_error(&e) => {
                if i > 0 {
                    println!(
                        "Partial success: deleted the first {i} out of {} resources:",
                        targets.len()
                    );
                    eprintln!("Hit error: {e}");
                    return Ok(ExitCode::from(1));
                }
                eprintln!("Failed to delete '{}' resource: {e}", ty.kind);
                eprintln!();
                return Ok(ExitCode::from(1));
            }
            Err(e) => return Err(store_failure(store_url, e)),
        }
    }
    match single {
        Some(k) => println!("Successfully deleted {deleted} '{k}' resource(s)"),
        None => println!("Successfully deleted {deleted} resource(s)"),
    }
    Ok(ExitCode::SUCCESS)
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
