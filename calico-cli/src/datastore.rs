//! Which datastore the store commands use: resolved once from `--store`, `--config`,
//! `CALICO_STORE`, `/etc/calico/calicoctl.cfg` and the calicoctl environment
//! (`calico_datastore::resolve_datastore`), then opened by name.
//!
//! The store commands take the datastore as a name (its display form, which never holds
//! a secret). A target that no store URL can express (etcd over TLS or with credentials)
//! is remembered here under its name, and [`open_store`] opens it with its TLS material
//! and credentials.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use calico_datastore::{
    DatastoreRequest, DatastoreSource, DatastoreTarget, OpenError, ResolvedDatastore, Store,
    SystemInputs, resolve_datastore,
};
use calico_datastore_etcd::EtcdOptions;

use crate::exit::CliError;

/// The datastore options of the command line, for commands that read the datastore only
/// when they are given no manifests.
static REQUEST: OnceLock<(Option<String>, Option<PathBuf>, bool)> = OnceLock::new();

/// Remembers the command line's datastore options ([`resolve_remembered`] uses them).
pub(crate) fn remember_request(store: Option<&str>, config: Option<&Path>, verbose: bool) {
    let _ = REQUEST.set((
        store.map(str::to_owned),
        config.map(Path::to_path_buf),
        verbose,
    ));
}

/// [`resolve`] with the remembered command-line options.
pub(crate) fn resolve_remembered() -> Result<(String, bool), CliError> {
    let (store, config, verbose) = REQUEST.get().cloned().unwrap_or((None, None, false));
    resolve(store.as_deref(), config.as_deref(), verbose)
}

/// The resolved target and the name the commands know it by.
static RESOLVED: OnceLock<(String, DatastoreTarget)> = OnceLock::new();

/// Resolves the datastore of a store command; with `verbose`, says on stderr where it came
/// from. Returns the name to hand to the commands, and whether the datastore was configured
/// at all (anything but the built-in default).
pub(crate) fn resolve(
    store: Option<&str>,
    config: Option<&Path>,
    verbose: bool,
) -> Result<(String, bool), CliError> {
    let resolved = resolve_datastore(&DatastoreRequest::cli(store, config), &SystemInputs)
        .map_err(|e| CliError::could_not_run(format!("datastore configuration: {e}")))?;
    if verbose {
        eprintln!("{}", describe(&resolved));
    }
    let name = resolved.target.to_string();
    let configured = resolved.source != DatastoreSource::Default;
    let _ = RESOLVED.set((name.clone(), resolved.target));
    Ok((name, configured))
}

/// The `-v` line: the datastore and where its configuration came from.
fn describe(resolved: &ResolvedDatastore) -> String {
    let mut extras = Vec::new();
    if let DatastoreTarget::Etcd(c) = &resolved.target {
        if let Some(creds) = &c.credentials {
            extras.push(format!("user {}", creds.username));
        }
        if c.tls.client.is_some() {
            extras.push("client certificate".to_owned());
        }
    }
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!(" ({})", extras.join(", "))
    };
    format!(
        "calico: datastore {}{extras} from {}",
        resolved.target, resolved.source
    )
}

/// Opens the datastore named `name`: the resolved target when it is that one, else `name`
/// as a store URL.
pub(crate) fn open_store(name: &str, options: EtcdOptions) -> Result<Box<dyn Store>, OpenError> {
    match RESOLVED.get() {
        Some((n, target)) if n == name => calico_datastore_etcd::open_target(target, options),
        _ => calico_datastore_etcd::open_store_with(name, options),
    }
}

/// Whether `name` is an etcd datastore (probed before use).
pub(crate) fn is_etcd(name: &str) -> bool {
    match RESOLVED.get() {
        Some((n, target)) if n == name => matches!(target, DatastoreTarget::Etcd(_)),
        _ => name.starts_with("etcd:"),
    }
}
