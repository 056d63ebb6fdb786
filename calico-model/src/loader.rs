//! The manifest loader: files, directories and in-memory text → typed resources with origins.
//!
//! - A directory is read recursively in sorted order; files ending in `.yaml`, `.yml` or
//!   `.json` are loaded. A file named explicitly is loaded whatever its extension (as JSON when
//!   it ends in `.json`, as YAML otherwise).
//! - A YAML file may hold several documents (`---`); document indexes are 0-based and count
//!   every document, empty ones included (an empty document is ignored). A JSON file is
//!   document 0.
//! - `kind: List` and any `<Kind>List` with `items` are expanded; items share their document's
//!   index and are told apart by kind and name. An item without `apiVersion`/`kind` inherits
//!   them from a `<Kind>List`.
//! - Kinds we do not model (ConfigMap, CRDs, ...) are recorded in
//!   [`LoadedSet::skipped`], not decoded.
//! - Values are read as Kubernetes and calicoctl read them (see [`scalars`]): YAML 1.1 plain
//!   scalars (`yes`, `on`, `017`, `1_000` are a boolean and numbers), and a boolean, number
//!   or null written where the model has a string (label and annotation values,
//!   `labelsToApply`, `matchLabels`, names, ...) becomes its text (`true`, `16`, `1`, ``).
//!   `spec:` or `metadata:` with no value is empty, and a null list or map field is empty,
//!   as Go's decoder leaves a null.
//! - [`LoadMode::Strict`] (the default): a document that is not valid YAML/JSON is a
//!   [`LoadError`] (the rest of that file is not read, and the error says so). An object that
//!   does not decode (bad value, unknown `spec` field, missing `kind`, unsupported
//!   `apiVersion`) becomes a [`Problem`] in [`LoadedSet::decode_failures`], with the field
//!   path. Nothing is dropped silently.
//! - [`LoadMode::Lenient`] (for analysis of real directories): such documents are skipped and
//!   such fields dropped (a whole policy rule when the field is inside one, else the
//!   innermost list item holding it, else the field), each reported as a warning
//!   [`Diagnostic`] in [`LoadedSet::warnings`] with file, document, object and field (list
//!   indexes as written). Objects are otherwise kept as written: validation judges them.
//! - A namespaced object without `metadata.namespace` gets `default`.
//!
//! Decoding goes through a generic JSON value: each document is parsed, YAML merge keys are
//! applied, `apiVersion`/`kind`/`metadata` are read, and the typed decode records the failing
//! field path.

mod decode;

pub use crate::yaml::scalars;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use crate::diagnostic::Origin;
use crate::diagnostic::{Diagnostic, Problem};
use crate::resources::{Kind, KindLookup, Resource};

use decode::Decoded;

/// A decoded object and its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedObject {
    /// Where it came from.
    pub origin: Origin,
    /// The object.
    pub resource: Resource,
}

/// An object of a kind we do not model, skipped without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedObject {
    /// Where it came from.
    pub origin: Origin,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name` (empty when absent).
    pub name: String,
}

/// An object that failed to decode, reported as a validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// Where it came from.
    pub origin: Origin,
    /// The problem (file, document, kind/name when known, field path, message).
    pub problem: Problem,
}

/// Input that could not be read or parsed at all. Cheap to clone (an I/O error is shared).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::sync::Arc<std::io::Error>,
    },
    /// A document is not valid YAML or JSON. Later documents of the file are not read.
    #[error("{file}:{doc_index}: cannot parse {format}: {message}{rest}", rest = if *.stopped { " (later documents in this file were not read)" } else { "" })]
    Parse {
        /// The file.
        file: String,
        /// 0-based document index.
        doc_index: usize,
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message (with line and column when known).
        message: String,
        /// Whether reading the file stopped here.
        stopped: bool,
    },
}

/// How the loader treats input it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LoadMode {
    /// Every problem is kept for the caller to fail on: unreadable documents are
    /// [`LoadedSet::errors`], objects that do not decode are [`LoadedSet::decode_failures`]
    /// (what `calico validate` and `calico apply` use).
    #[default]
    Strict,
    /// Analyse what can be analysed (what `calico policy` and `calico route` use by default):
    /// a document that cannot be parsed or is not a manifest (a JSON array, an object
    /// without `kind`, a nested list, an unsupported `apiVersion`) is skipped, and a field
    /// that does not decode is dropped (the smallest enclosing list item when the object
    /// cannot do without it), each with a warning in [`LoadedSet::warnings`] naming file,
    /// document, object and field. Files that cannot be read at all stay
    /// [`LoadedSet::errors`].
    Lenient,
}

/// Everything loaded from a set of inputs.
#[derive(Debug, Default)]
pub struct LoadedSet {
    /// Files in the order they were read.
    pub files: Vec<String>,
    /// Decoded objects, in input order.
    pub objects: Vec<LoadedObject>,
    /// Objects of kinds we do not model.
    pub skipped: Vec<SkippedObject>,
    /// Objects that failed to decode (reported by validation).
    pub decode_failures: Vec<DecodeFailure>,
    /// Inputs that could not be read or parsed.
    pub errors: Vec<LoadError>,
    /// What a lenient load skipped or dropped (always empty in strict mode).
    pub warnings: Vec<Diagnostic>,
    defaults_applied: bool,
    mode: LoadMode,
}

impl LoadedSet {
    /// An empty set.
    pub fn new() -> LoadedSet {
        LoadedSet::default()
    }

    /// An empty set that loads in `mode`.
    pub fn with_mode(mode: LoadMode) -> LoadedSet {
        LoadedSet {
            mode,
            ..LoadedSet::default()
        }
    }

    /// The mode this set loads in.
    pub fn mode(&self) -> LoadMode {
        self.mode
    }

    /// Appends another set (for example from another path).
    pub fn extend(&mut self, other: LoadedSet) {
        self.files.extend(other.files);
        self.objects.extend(other.objects);
        self.skipped.extend(other.skipped);
        self.decode_failures.extend(other.decode_failures);
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
        self.defaults_applied &= other.defaults_applied;
    }

    /// Applies [`Resource::apply_defaults`] to every object (idempotent).
    pub fn apply_defaults(&mut self) {
        for o in &mut self.objects {
            o.resource.apply_defaults();
        }
        self.defaults_applied = true;
    }

    /// Whether [`LoadedSet::apply_defaults`] has run since the last change.
    pub fn defaults_applied(&self) -> bool {
        self.defaults_applied || self.objects.is_empty()
    }

    /// The decoded resources, in input order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.objects.iter().map(|o| &o.resource)
    }
}

/// Inputs that could not be read or parsed, with everything that could be loaded beside
/// them. Displays the first problems, then how many more there are.
#[derive(Debug)]
pub struct LoadErrors {
    /// Every input that failed, in reading order (also in `partial.errors`).
    pub errors: Vec<LoadError>,
    /// What was loaded from the other inputs (and the other documents of a file whose
    /// later documents could not be parsed).
    pub partial: Box<LoadedSet>,
}

/// Problems a [`LoadErrors`] message names before "and N more".
const SHOWN_ERRORS: usize = 3;

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} input(s) could not be read or parsed: ",
            self.errors.len()
        )?;
        for (i, e) in self.errors.iter().take(SHOWN_ERRORS).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.errors.len() > SHOWN_ERRORS {
            write!(f, "; and {} more", self.errors.len() - SHOWN_ERRORS)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl LoadedSet {
    /// The set, or [`LoadErrors`] (holding the set) when some input could not be read or
    /// parsed.
    pub fn into_result(self) -> Result<LoadedSet, LoadErrors> {
        if self.errors.is_empty() {
            Ok(self)
        } else {
            Err(LoadErrors {
                errors: self.errors.clone(),
                partial: Box::new(self),
            })
        }
    }
}

/// Loads files and directories (recursively, sorted) in the order given, strictly. Fails
/// when an input cannot be read or parsed (the error holds what could be loaded).
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<LoadedSet, LoadErrors> {
    load_paths_with(paths, LoadMode::Strict)
}

/// Loads files and directories (recursively, sorted) in the order given, in `mode`. Fails
/// when an input cannot be read or parsed, in either mode (the error holds what could be
/// loaded); a lenient load skips documents it cannot use with a warning instead.
pub fn load_paths_with<P: AsRef<Path>>(
    paths: &[P],
    mode: LoadMode,
) -> Result<LoadedSet, LoadErrors> {
    let mut set = LoadedSet::with_mode(mode);
    for p in paths {
        load_path_into(p.as_ref(), true, 0, &mut set);
    }
    set.into_result()
}

/// Loads one file or directory.
pub fn load_path(path: &Path) -> Result<LoadedSet, LoadErrors> {
    load_paths(&[path])
}

/// Loads manifest text held in memory. `name` stands for the file name in origins and
/// messages; the text is read as JSON when `name` ends in `.json`, as YAML otherwise.
pub fn load_str(name: &str, text: &str) -> LoadedSet {
    load_str_with(name, text, LoadMode::Strict)
}

/// [`load_str`] in `mode`.
pub fn load_str_with(name: &str, text: &str, mode: LoadMode) -> LoadedSet {
    let mut set = LoadedSet::with_mode(mode);
    load_text_into(name, text, &mut set);
    set
}

const MAX_DIR_DEPTH: usize = 64;

fn load_path_into(path: &Path, explicit: bool, depth: usize, set: &mut LoadedSet) {
    let display = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(source) => {
            set.errors.push(LoadError::Read {
                path: display,
                source: std::sync::Arc::new(source),
            });
            return;
        }
    };
    if meta.is_dir() {
        if depth >= MAX_DIR_DEPTH {
            set.errors.push(LoadError::Read {
                path: display,
                source: std::sync::Arc::new(std::io::Error::other("directory nesting too deep")),
            });
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<PathBuf>, _>>(),
            Err(e) => Err(e),
        };
        let mut entries = match entries {
            Ok(v) => v,
            Err(source) => {
                set.errors.push(LoadError::Read {
                    path: display,
                    source: std::sync::Arc::new(source),
                });
                return;
            }
        };
        entries.sort();
        for e in entries {
            load_path_into(&e, false, depth + 1, set);
        }
        return;
    }
    if !explicit && !has_manifest_extension(path) {
        return;
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_text_into(&display, &text, set),
            Err(_) => {
                set.files.push(display.clone());
                push_parse_error(
                    set,
                    LoadError::Parse {
                        file: display,
                        doc_index: 0,
                        format: format_of(path),
                        message: "file is not valid UTF-8".to_owned(),
                        stopped: true,
                    },
                );
            }
        },
        Err(source) => set.errors.push(LoadError::Read {
            path: display,
            source: std::sync::Arc::new(source),
        }),
    }
}

fn has_manifest_extension(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn format_of(path: &Path) -> &'static str {
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        "JSON"
    } else {
        "YAML"
    }
}

fn load_text_into(name: &str, text: &str, set: &mut LoadedSet) {
    set.files.push(name.to_owned());
    set.defaults_applied = false;
    if format_of(Path::new(name)) == "JSON" {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => process_document(name, 0, None, v, None, set),
            Err(e) => push_parse_error(
                set,
                LoadError::Parse {
                    file: name.to_owned(),
                    doc_index: 0,
                    format: "JSON",
                    message: e.to_string(),
                    stopped: false,
                },
            ),
        }
        return;
    }
    for (doc_index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut yaml = match scalars::read_document(doc, text) {
            Ok(v) => v,
            Err(e) => {
                push_parse_error(
                    set,
                    LoadError::Parse {
                        file: name.to_owned(),
                        doc_index,
                        format: "YAML",
                        message: e.to_string(),
                        stopped: true,
                    },
                );
                // The parser cannot resynchronise after a syntax error.
                return;
            }
        };
        let origin = Origin {
            file: name.to_owned(),
            doc_index,
            item_index: None,
        };
        if let Err(e) = yaml.apply_merge() {
            push_failure(set, &origin, None, "", &format!("invalid YAML merge: {e}"));
            continue;
        }
        match serde_json::to_value(&yaml) {
            Ok(v) => process_document(name, doc_index, None, v, None, set),
            Err(e) => push_failure(
                set,
                &origin,
                None,
                "",
                &format!("document cannot be represented as JSON: {e}"),
            ),
        }
    }
}

/// The list's `(apiVersion, item kind)` used for items that lack them.
type ListDefaults<'a> = Option<(&'a str, &'a str)>;

fn process_document(
    file: &str,
    doc_index: usize,
    item_index: Option<usize>,
    mut value: Value,
    list_defaults: ListDefaults<'_>,
    set: &mut LoadedSet,
) {
    let origin = Origin {
        file: file.to_owned(),
        doc_index,
        item_index,
    };
    let Some(obj) = value.as_object_mut() else {
        if value.is_null() && item_index.is_none() {
            return; // an empty document
        }
        push_failure(
            set,
            &origin,
            None,
            "",
            &format!("expected an object, found {}", json_type(&value)),
        );
        return;
    };
    if let Some((api, kind)) = list_defaults {
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String(api.to_owned()));
        obj.entry("kind")
            .or_insert_with(|| Value::String(kind.to_owned()));
    }
    // As the typed decode will read them: a boolean or number name is its text.
    let meta_text = |field: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| scalars::go_string(v))
            })
    };
    let name = meta_text("name").unwrap_or_default();
    let namespace = meta_text("namespace");
    let kind = match obj.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        Some(Value::String(_)) | None => {
            push_named(set, &origin, None, None, &name, "kind", "kind is required");
            return;
        }
        Some(other) => {
            let msg = format!("kind must be a string, found {}", json_type(other));
            push_named(set, &origin, None, None, &name, "kind", &msg);
            return;
        }
    };
    let api_version = match obj.get("apiVersion") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(Value::String(_)) | None => {
            push_named(
                set,
                &origin,
                Some(&kind),
                namespace,
                &name,
                "apiVersion",
                "apiVersion is required",
            );
            return;
        }
        Some(other) => {
            let msg = format!("apiVersion must be a string, found {}", json_type(other));
            push_named(
                set,
                &origin,
                Some(&kind),
                namespace,
                &name,
                "apiVersion",
                &msg,
            );
            return;
        }
    };

    // Lists.
    let item_kind = kind.strip_suffix("List");
    if kind == "List" || (item_kind.is_some() && obj.contains_key("items")) {
        if item_index.is_some() {
            push_named(
                set,
                &origin,
                Some(&kind),
                namespace,
                &name,
                "items",
                "nested lists are not supported",
            );
            return;
        }
        let items = match obj.remove("items") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                let msg = format!("items must be a list, found {}", json_type(&other));
                push_named(set, &origin, Some(&kind), namespace, &name, "items", &msg);
                return;
            }
        };
        let defaults = match item_kind {
            Some(k) if !k.is_empty() => Some((api_version.as_str(), k)),
            _ => None,
        };
        for (i, item) in items.into_iter().enumerate() {
            process_document(file, doc_index, Some(i), item, defaults, set);
        }
        return;
    }

    match Kind::lookup(&api_version, &kind) {
        KindLookup::Unmodelled => set.skipped.push(SkippedObject {
            origin,
            api_version,
            kind,
            name,
        }),
        KindLookup::UnsupportedVersion { expected } => {
            let msg = format!(
                "unsupported apiVersion {api_version:?} for kind {kind} (expected {})",
                expected.api_version()
            );
            let ns = expected.is_namespaced().then(|| {
                namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".to_owned())
            });
            push_named(set, &origin, Some(&kind), ns, &name, "apiVersion", &msg);
        }
        KindLookup::Known(k) => {
            let ns = if k.is_namespaced() {
                Some(
                    namespace
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "default".to_owned()),
                )
            } else {
                None
            };
            // `spec:` or `metadata:` with no value is empty, as calicoctl reads it.
            if let Some(obj) = value.as_object_mut() {
                for key in ["metadata", "spec"] {
                    if obj.get(key).is_some_and(Value::is_null) {
                        obj.insert(key.to_owned(), Value::Object(serde_json::Map::new()));
                    }
                }
            }
            let lenient = set.mode == LoadMode::Lenient;
            let Decoded { result, dropped } = decode::decode(k, value, lenient);
            for d in dropped {
                set.warnings.push(Diagnostic::warning(problem_at(
                    &origin,
                    Some(k.as_str()),
                    ns.clone(),
                    &name,
                    &d.field_path,
                    &d.message,
                )));
            }
            match result {
                Ok(resource) => set.objects.push(LoadedObject { origin, resource }),
                Err(d) => push_named(
                    set,
                    &origin,
                    Some(k.as_str()),
                    ns,
                    &name,
                    &d.field_path,
                    &d.message,
                ),
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn push_failure(set: &mut LoadedSet, origin: &Origin, kind: Option<&str>, path: &str, msg: &str) {
    push_named(set, origin, kind, None, "", path, msg);
}

fn problem_at(
    origin: &Origin,
    kind: Option<&str>,
    namespace: Option<String>,
    name: &str,
    path: &str,
    msg: &str,
) -> Problem {
    Problem {
        file: origin.file.clone(),
        doc_index: origin.doc_index,
        kind: kind.map(str::to_owned),
        namespace,
        name: name.to_owned(),
        field_path: path.to_owned(),
        message: msg.to_owned(),
    }
}

/// An object that cannot be used: a decode failure, or in lenient mode a warning that it
/// was skipped.
fn push_named(
    set: &mut LoadedSet,
    origin: &Origin,
    kind: Option<&str>,
    namespace: Option<String>,
    name: &str,
    path: &str,
    msg: &str,
) {
    if set.mode == LoadMode::Lenient {
        let msg = format!("{msg}; the document is skipped");
        let problem = problem_at(origin, kind, namespace, name, path, &msg);
        set.warnings.push(Diagnostic::warning(problem));
        return;
    }
    set.decode_failures.push(DecodeFailure {
        origin: origin.clone(),
        problem: problem_at(origin, kind, namespace, name, path, msg),
    });
}

/// A document that cannot be parsed: an error, or in lenient mode a warning that the rest
/// of the file is skipped.
fn push_parse_error(set: &mut LoadedSet, e: LoadError) {
    if set.mode == LoadMode::Lenient {
        if let LoadError::Parse {
            file,
            doc_index,
            format,
            message,
            stopped,
        } = &e
        {
            let rest = if *stopped {
                "this and later documents of the file are skipped"
            } else {
                "the file is skipped"
            };
            set.warnings.push(Diagnostic::warning(Problem {
                file: file.clone(),
                doc_index: *doc_index,
                kind: None,
                namespace: None,
                name: String::new(),
                field_path: String::new(),
                message: format!("not a manifest: cannot parse {format}: {message}; {rest}"),
            }));
            return;
        }
    }
    set.errors.push(e);
}
