//! Metadata checks shared by every kind: names, namespaces, labels, annotations.

use super::Ctx;
use super::format::{
    is_dns_label, is_dns_subdomain, is_global_policy_name, is_label_value,
    is_namespaced_policy_name, is_qualified_name,
};
use crate::resources::meta::Labels;
use crate::resources::{Kind, Resource};

/// Maximum total size of annotation keys plus values.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

pub(super) fn check_metadata(cx: &mut Ctx<'_>, r: &Resource) {
    let md = r.metadata();
    let kind = r.kind();
    if md.name.is_empty() {
        cx.report("metadata.name", "name is required");
    } else if let Err(msg) = check_name(kind, &md.name) {
        cx.report("metadata.name", msg);
    }
    if let Some(ns) = r.namespace() {
        if !is_dns_label(ns) {
            cx.report(
                "metadata.namespace",
                format!("invalid namespace {ns:?}: must be a DNS label (at most 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit)"),
            );
        }
    }
    check_labels(cx, "metadata.labels", &md.labels);
    check_annotations(cx, "metadata.annotations", &md.annotations);
}

fn check_name(kind: Kind, name: &str) -> Result<(), String> {
    let (ok, what) = match kind {
        Kind::NetworkPolicy | Kind::StagedNetworkPolicy => (
            is_namespaced_policy_name(name),
            "a DNS label, label.label, or knp.default.<subdomain> / ossg.default.<subdomain>, at most 253 characters",
        ),
        Kind::GlobalNetworkPolicy | Kind::StagedGlobalNetworkPolicy => (
            is_global_policy_name(name),
            "a DNS label optionally preceded by one \"label.\", at most 253 characters",
        ),
        Kind::Tier | Kind::Namespace => (
            is_dns_label(name),
            "a DNS label (at most 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit; no dots)",
        ),
        _ => (
            is_dns_subdomain(name),
            "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid name {name:?}: must be {what}"))
    }
}

/// Checks a label map; problems are reported at `path[key]`.
pub(super) fn check_labels(cx: &mut Ctx<'_>, path: &str, labels: &Labels) {
    for (k, v) in labels {
        if !is_qualified_name(k) {
            cx.report(
                format!("{path}[{k}]"),
                format!("invalid label key {k:?}: must be an optional DNS-subdomain prefix and '/', then at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
            );
        }
        if !is_label_value(v) {
            cx.report(
                format!("{path}[{k}]"),
                format!("invalid label value {v:?}: must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
            );
        }
    }
}

/// Checks an annotation map: qualified-name keys, total size ≤ 256 KiB.
pub(super) fn check_annotations(cx: &mut Ctx<'_>, path: &str, annotations: &Labels) {
    let mut total = 0usize;
    for (k, v) in annotations {
        total += k.len() + v.len();
        if !is_qualified_name(k) {
            cx.report(
                format!("{path}[{k}]"),
                format!("invalid annotation key {k:?}: must be a qualified name"),
            );
        }
    }
    if total > MAX_ANNOTATIONS_BYTES {
        cx.report(
            path,
            format!("annotations total {total} bytes; at most {MAX_ANNOTATIONS_BYTES} are allowed"),
        );
    }
}

/// Reports `path` when `value` is empty (`"<what> is required"`) or not a DNS-1123
/// subdomain.
pub(super) fn check_required_subdomain(cx: &mut Ctx<'_>, path: &str, what: &str, value: &str) {
    if value.is_empty() {
        cx.report(path, format!("{what} is required"));
    } else if !is_dns_subdomain(value) {
        cx.report(
            path,
            format!("invalid {what} {value:?}: must be a DNS-1123 subdomain"),
        );
    }
}
