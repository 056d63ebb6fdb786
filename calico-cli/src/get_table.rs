//! The tables of `calico get`, column for column and byte for byte as calicoctl prints them.
//!
//! Every row is its cells each followed by a TAB (the last one too), aligned the way Go's
//! `text/tabwriter` does with calicoctl's settings (minimum cell width 5, padding 3, padded
//! with spaces): a column is as wide as its longest cell plus 3, at least 5, and every cell —
//! the last one included — is padded to it. The table is followed by one blank line. Cells
//! print Go's way: an unset optional number is `<nil>`, floats in Go's `%v` form (`1e+06`).

use std::cell::OnceCell;

use calico_ipam::resources::{ResourceType, Resources, StoredObject};
use serde_json::Value;

/// What some cells need beyond the object (the cluster's default AS number).
pub(crate) struct Context<'a> {
    client: &'a Resources<'a>,
    global_as: OnceCell<String>,
}

impl<'a> Context<'a> {
    /// A context reading from `client`'s store when a cell needs it.
    pub(crate) fn new(client: &'a Resources<'a>) -> Context<'a> {
        Context {
            client,
            global_as: OnceCell::new(),
        }
    }

    /// The AS number of BGPConfiguration `default`, 64512 when it has none or is missing,
    /// `unknown` when it cannot be read.
    fn global_as(&self) -> &str {
        self.global_as.get_or_init(|| {
            let Some(ty) = ResourceType::by_kind("BGPConfiguration") else {
                return "unknown".to_owned();
            };
            match self.client.get(ty, None, "default") {
                Ok(o) => match o.value.get("spec").and_then(|s| s.get("asNumber")) {
                    Some(v) => as_number(v),
                    None => "64512".to_owned(),
                },
                Err(calico_ipam::resources::ResourceError::NotFound { .. }) => "64512".to_owned(),
                Err(_) => "unknown".to_owned(),
            }
        })
    }
}

/// The headings of a type's table.
pub(crate) fn headings(ty: &ResourceType, wide: bool) -> &'static [&'static str] {
    match (ty.kind, wide) {
        ("Node", false) => &["NAME"],
        ("Node", true) => &["NAME", "ASN", "IPV4", "IPV6"],
        ("IPPool", false) => &["NAME", "CIDR", "SELECTOR"],
        ("IPPool", true) => &[
            "NAME",
            "CIDR",
            "NAT",
            "IPIPMODE",
            "VXLANMODE",
            "DISABLED",
            "DISABLEBGPEXPORT",
            "SELECTOR",
            "ASSIGNMENTMODE",
        ],
        ("WorkloadEndpoint", false) => &["WORKLOAD", "NODE", "NETWORKS", "INTERFACE"],
        ("WorkloadEndpoint", true) => &[
            "NAME",
            "WORKLOAD",
            "NODE",
            "NETWORKS",
            "INTERFACE",
            "PROFILES",
            "NATS",
        ],
        ("BGPPeer", _) => &["NAME", "PEERIP", "NODE", "ASN"],
        ("BGPConfiguration", _) => &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
        ("CalicoNodeStatus", false) => &["NAME", "NODE"],
        ("CalicoNodeStatus", true) => &["NAME", "NODE", "CLASSES"],
        ("HostEndpoint", false) => &["NAME", "NODE"],
        ("HostEndpoint", true) => &["NAME", "NODE", "INTERFACE", "IPS", "PROFILES"],
        ("GlobalNetworkPolicy", false) => &["NAME"],
        ("GlobalNetworkPolicy", true) => &["NAME", "ORDER", "SELECTOR"],
        ("NetworkPolicy" | "StagedNetworkPolicy" | "StagedGlobalNetworkPolicy", false)
            if ty.is_calico() =>
        {
            &["NAME", "TIER"]
        }
        ("NetworkPolicy" | "StagedNetworkPolicy" | "StagedGlobalNetworkPolicy", true)
            if ty.is_calico() =>
        {
            &["NAME", "TIER", "ORDER", "SELECTOR"]
        }
        ("Tier", _) => &["NAME", "ORDER"],
        ("Profile", false) => &["NAME"],
        ("Profile", true) => &["NAME", "LABELS"],
        ("NetworkSet" | "GlobalNetworkSet", false) => &["NAME"],
        ("NetworkSet" | "GlobalNetworkSet", true) => &["NAME", "NETS"],
        ("IPReservation", false) => &["NAME"],
        ("IPReservation", true) => &["NAME", "CIDRS"],
        ("IPAMConfiguration", false) => &["NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS"],
        ("IPAMConfiguration", true) => &[
            "NAME",
            "STRICTAFFINITY",
            "AUTOALLOCATEBLOCKS",
            "MAXBLOCKSPERHOST",
        ],
        ("BGPFilter", _) => &["NAME", "NUMEXPORT", "NUMIMPORT"],
        ("ClusterInformation", _) => &[
            "NAME",
            "CLUSTERGUID",
            "CLUSTERTYPE",
            "CALICOVERSION",
            "DATASTOREREADY",
        ],
        _ => &["NAME"],
    }
}

/// The table of `objects` (with a leading NAMESPACE column when `print_namespace`).
pub(crate) fn render(
    ty: &ResourceType,
    objects: &[StoredObject],
    wide: bool,
    print_namespace: bool,
    ctx: &Context<'_>,
) -> String {
    let mut columns: Vec<&str> = Vec::new();
    if print_namespace {
        columns.push("NAMESPACE");
    }
    columns.extend(headings(ty, wide));
    let mut rows: Vec<Vec<String>> = vec![columns.iter().map(|c| (*c).to_owned()).collect()];
    for o in objects {
        rows.push(columns.iter().map(|c| cell(o, c, ctx)).collect());
    }
    tabwrite(&rows)
}

/// Go's `text/tabwriter` with calicoctl's settings, for rows whose every cell is
/// TAB-terminated; then one blank line.
pub(crate) fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            let longest = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0);
            (longest + 3).max(5)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, text) in r.iter().enumerate() {
            out.push_str(text);
            for _ in text.chars().count()..widths[c] {
                out.push(' ');
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

fn spec<'a>(o: &'a StoredObject, field: &str) -> Option<&'a Value> {
    o.value.get("spec")?.get(field)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A Go `bool` field (`false` when unset).
fn go_bool(v: Option<&Value>) -> String {
    (v.and_then(Value::as_bool) == Some(true)).to_string()
}

/// A Go pointer field printed by `text/template`: `<nil>` when unset.
fn go_pointer(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<nil>".to_owned(),
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), go_float),
        Some(other) => text(Some(other)),
    }
}

/// Go's `%v` of a float64 (`%g` with the shortest precision): the shortest digits that
/// round-trip, in exponent form (`1e+06`) when the decimal exponent is below -4 or at
/// least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    // Shortest round-trip digits and decimal exponent, from Rust's `{:e}` (also shortest).
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_owned();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let s = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{s}")
}

fn as_number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "0".to_owned(),
    }
}

/// calicoctl's `join`: the list's items joined by `,`.
fn join(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::Object(m) => {
                    // A struct prints as `{field field}`.
                    let fields: Vec<String> = m.values().map(|f| text(Some(f))).collect();
                    format!("{{{}}}", fields.join(" "))
                }
                other => text(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(Some(v))))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// calicoctl's `joinAndTruncate` at 80 characters.
fn join_truncated(v: Option<&Value>) -> String {
    let s = join(v);
    if s.chars().count() > 80 {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    } else {
        s
    }
}

fn count(v: Option<&Value>) -> usize {
    v.and_then(Value::as_array).map_or(0, Vec::len)
}

fn cell(o: &StoredObject, column: &str, ctx: &Context<'_>) -> String {
    let kind = o.ty.kind;
    match column {
        "NAME" => o.name().to_owned(),
        "NAMESPACE" => o.namespace().unwrap_or_default().to_owned(),
        "ASN" if kind == "Node" => match spec(o, "bgp") {
            Some(Value::Object(bgp)) => match bgp.get("asNumber") {
                Some(v) if !v.is_null() => as_number(v),
                _ => format!("({})", ctx.global_as()),
            },
            _ => String::new(),
        },
        "ASN" => spec(o, "asNumber").map_or_else(|| "0".to_owned(), as_number),
        "IPV4" => text(spec(o, "bgp").and_then(|b| b.get("ipv4Address"))),
        "IPV6" => text(spec(o, "bgp").and_then(|b| b.get("ipv6Address"))),
        "CIDR" => text(spec(o, "cidr")),
        "NAT" => go_bool(spec(o, "natOutgoing")),
        "IPIPMODE" => non_empty_or(spec(o, "ipipMode"), "Never"),
        "VXLANMODE" => non_empty_or(spec(o, "vxlanMode"), "Never"),
        "DISABLED" => go_bool(spec(o, "disabled")),
        "DISABLEBGPEXPORT" => go_bool(spec(o, "disableBGPExport")),
        "SELECTOR" if kind == "IPPool" => text(spec(o, "nodeSelector")),
        "SELECTOR" => text(spec(o, "selector")),
        "ASSIGNMENTMODE" => go_pointer(spec(o, "assignmentMode")),
        "WORKLOAD" => match spec(o, "workload") {
            Some(Value::String(w)) if !w.is_empty() => w.clone(),
            _ => text(spec(o, "pod")),
        },
        "NODE" if kind == "BGPPeer" => {
            let node = text(spec(o, "node"));
            let selector = text(spec(o, "nodeSelector"));
            if !node.is_empty() {
                node
            } else if !selector.is_empty() {
                selector
            } else {
                "(global)".to_owned()
            }
        }
        "NODE" => text(spec(o, "node")),
        "NETWORKS" => join(spec(o, "ipNetworks")),
        "INTERFACE" => text(spec(o, "interfaceName")),
        "PROFILES" => join(spec(o, "profiles")),
        "NATS" => join(spec(o, "ipNATs")),
        "PEERIP" => text(spec(o, "peerIP")),
        "LOGSEVERITY" => text(spec(o, "logSeverityScreen")),
        "MESHENABLED" => match spec(o, "nodeToNodeMeshEnabled") {
            Some(Value::Bool(b)) => b.to_string(),
            _ => "-".to_owned(),
        },
        "ASNUMBER" => match spec(o, "asNumber") {
            Some(v) if !v.is_null() => as_number(v),
            _ => "-".to_owned(),
        },
        "CLASSES" => join(spec(o, "classes")),
        "IPS" => join(spec(o, "expectedIPs")),
        "ORDER" => go_pointer(spec(o, "order")),
        "TIER" => text(spec(o, "tier")),
        "LABELS" => join(spec(o, "labelsToApply")),
        "NETS" => join_truncated(spec(o, "nets")),
        "CIDRS" => join_truncated(spec(o, "reservedCIDRs")),
        "STRICTAFFINITY" => go_bool(spec(o, "strictAffinity")),
        "AUTOALLOCATEBLOCKS" => go_bool(spec(o, "autoAllocateBlocks")),
        "MAXBLOCKSPERHOST" => spec(o, "maxBlocksPerHost").map_or_else(|| "0".to_owned(), as_number),
        "NUMEXPORT" => (count(spec(o, "exportV4")) + count(spec(o, "exportV6"))).to_string(),
        "NUMIMPORT" => (count(spec(o, "importV4")) + count(spec(o, "importV6"))).to_string(),
        "CLUSTERGUID" => text(spec(o, "clusterGUID")),
        "CLUSTERTYPE" => text(spec(o, "clusterType")),
        "CALICOVERSION" => text(spec(o, "calicoVersion")),
        "DATASTOREREADY" => match spec(o, "datastoreReady") {
            Some(Value::Bool(b)) => b.to_string(),
            _ => "<nil>".to_owned(),
        },
        _ => String::new(),
    }
}

fn non_empty_or(v: Option<&Value>, default: &str) -> String {
    match v {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => default.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, want) in [
            (1000.0, "1000"),
            (1_000_000.0, "1e+06"),
            (100_000.0, "100000"),
            (1.5, "1.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (10_000_000.0, "1e+07"),
            (123_456_789.0, "1.23456789e+08"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn tabwriter_pads_every_cell() {
        let rows = vec![
            vec!["NAME".to_owned(), "ASN".to_owned()],
            vec!["node-a".to_owned(), "(64512)".to_owned()],
        ];
        assert_eq!(
            tabwrite(&rows),
            "NAME     ASN       \nnode-a   (64512)   \n\n"
        );
        let rows = vec![vec!["A".to_owned()], vec![String::new()]];
        assert_eq!(tabwrite(&rows), "A    \n     \n\n");
    }
}
