//! `connlist`: every allowed connection between workloads, and between workloads and
//! external IPv4 ranges.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::{self, Write as _};
use std::rc::Rc;

use calico_model::validation::Problem;

use crate::addr::{AddrRange, Family};
use crate::conn::ConnSet;
use crate::diag::{Diagnostic, Severity};
use crate::direction::PerDirection;
use crate::eval::PeerSpec;
use crate::matching::SelId;
use crate::model::{Direction, Model, Policy, PolicyKind};
use crate::rules::CRule;

/// One line: `src => dst : conns`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnRow {
    /// Source peer name.
    pub src: String,
    /// Destination peer name.
    pub dst: String,
    /// Allowed connections (never empty).
    pub conns: ConnSet,
}

/// Something a connectivity list leaves out or assumes. Displays as one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnlistWarning {
    /// No enforced NetworkPolicy of any kind: every connection is allowed.
    NoPolicy,
    /// An IPv6 CIDR in a rule is not one of the (IPv4) address ranges.
    Ipv6RuleCidr {
        /// The CIDR.
        cidr: String,
        /// The policy (`Kind ns/name`) or profile (`Profile name`) holding the rule.
        owner: String,
    },
    /// An IPv6 CIDR of a network set is not one of the (IPv4) address ranges.
    Ipv6NetworkSetCidr {
        /// The CIDR.
        cidr: String,
        /// The network set's name.
        network_set: String,
    },
}

impl fmt::Display for ConnlistWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnlistWarning::NoPolicy => {
                f.write_str("no NetworkPolicy in the input: every connection is allowed")
            }
            ConnlistWarning::Ipv6RuleCidr { cidr, owner } => write!(
                f,
                "IPv6 CIDR {cidr} in {owner} left out of the address ranges (connlist covers IPv4)"
            ),
            ConnlistWarning::Ipv6NetworkSetCidr { cidr, network_set } => write!(
                f,
                "IPv6 CIDR {cidr} in network set {network_set} left out of the address ranges"
            ),
        }
    }
}

/// Warnings in the order they are reported: by text, each once.
#[derive(Default)]
struct Warnings(BTreeMap<String, ConnlistWarning>);

impl Warnings {
    fn insert(&mut self, w: ConnlistWarning) {
        self.0.entry(w.to_string()).or_insert(w);
    }

    fn into_vec(self) -> Vec<ConnlistWarning> {
        self.0.into_values().collect()
    }
}

/// The connectivity list and the warnings produced while computing it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Connlist {
    /// Rows, sorted by `src` then `dst` (byte order).
    pub rows: Vec<ConnRow>,
    /// Warnings, ordered by their text.
    pub warnings: Vec<ConnlistWarning>,
    /// The external source-side ranges, ascending.
    pub source_ranges: Vec<AddrRange>,
    /// The external destination-side ranges, ascending.
    pub destination_ranges: Vec<AddrRange>,
}

/// Problems that make a connectivity list meaningless, beyond those [`Model::build`]
/// already rejects: a Kubernetes egress rule with named ports toward external addresses
/// (external ranges declare no port names), and the pods of one workload controller that
/// some selector tells apart (the list has one row per workload, not per pod). The message
/// names the first few (file, document, resource and field) and how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::diag::Shown("fatal problem(s)", .problems))]
pub struct ConnlistError {
    /// One per problem.
    pub problems: Vec<Diagnostic>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The connlist text format.
    Txt,
    /// JSON array.
    Json,
    /// CSV with a header.
    Csv,
    /// Markdown table.
    Md,
    /// Graphviz digraph.
    Dot,
}

fn policy_problem(p: &Policy, field: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        problem: crate::lint::policy_problem(p, field, message),
    }
}

/// One peer of a side of the connlist.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// A workload, by its representative endpoint.
    Workload(usize),
    /// An external range.
    Range(AddrRange),
}

const V4_MAX: u128 = u32::MAX as u128;

/// Elementary IPv4 intervals cut at every start and end + 1 of `ranges` (plus 0.0.0.0/0).
fn elementary(ranges: &[AddrRange]) -> Vec<AddrRange> {
    let mut cuts: BTreeSet<u128> = BTreeSet::new();
    cuts.insert(0);
    for r in ranges {
        cuts.insert(r.lo);
        if r.hi < V4_MAX {
            cuts.insert(r.hi + 1);
        }
    }
    let cuts: Vec<u128> = cuts.into_iter().collect();
    cuts.iter()
        .enumerate()
        .map(|(i, &lo)| AddrRange {
            family: Family::V4,
            lo,
            hi: cuts.get(i + 1).map_or(V4_MAX, |n| n - 1),
        })
        .collect()
}

/// The intervals of `net` outside the union of `holes` (holes of other families ignored).
/// Touching or overlapping holes merge, so they cut `net` once.
pub(crate) fn subtract_union(net: AddrRange, holes: &[AddrRange]) -> Vec<AddrRange> {
    let mut hs: Vec<(u128, u128)> = holes
        .iter()
        .filter(|h| h.family == net.family && h.overlaps(&net))
        .map(|h| (h.lo.max(net.lo), h.hi.min(net.hi)))
        .collect();
    hs.sort_unstable();
    let mut out = Vec::new();
    let mut next = Some(net.lo);
    for (lo, hi) in hs {
        let Some(from) = next else { break };
        if lo > from {
            out.push(AddrRange {
                family: net.family,
                lo: from,
                hi: lo - 1,
            });
        }
        if hi >= from {
            next = hi.checked_add(1).filter(|n| *n <= net.hi);
        }
    }
    if let Some(from) = next {
        if from <= net.hi {
            out.push(AddrRange {
                family: net.family,
                lo: from,
                hi: net.hi,
            });
        }
    }
    out
}

impl Model {
    fn side_cidrs(&self, dir: Direction, warnings: &mut Warnings) -> Vec<AddrRange> {
        let mut out = Vec::new();
        let mut take = |r: &CRule, what: &str, ip_block: bool| {
            let e = match dir {
                Direction::Ingress => &r.src,
                Direction::Egress => &r.dst,
            };
            if ip_block {
                // A Kubernetes ipBlock stands for `cidr` minus the union of its excepts: the
                // excepts add no cut of their own where they touch or overlap.
                for n in &e.nets {
                    if n.family == Family::V4 {
                        out.extend(subtract_union(*n, &e.not_nets));
                    } else {
                        warnings.insert(ConnlistWarning::Ipv6RuleCidr {
                            cidr: n.to_cidr_string(),
                            owner: what.to_owned(),
                        });
                    }
                }
                return;
            }
            for n in e.nets.iter().chain(&e.not_nets) {
                if n.family == Family::V4 {
                    out.push(*n);
                } else {
                    warnings.insert(ConnlistWarning::Ipv6RuleCidr {
                        cidr: n.to_cidr_string(),
                        owner: what.to_owned(),
                    });
                }
            }
        };
        for p in self.policies.iter() {
            if p.staged || p.host_only {
                continue;
            }
            let ip_block = p.id.kind == PolicyKind::KubernetesNetworkPolicy;
            for r in &p.rules[dir] {
                take(r, &p.id.to_string(), ip_block);
            }
        }
        let mut names: Vec<&String> = self.profiles.keys().collect();
        names.sort();
        for name in names {
            if let Some(p) = self.profiles.get(name) {
                let rules = match dir {
                    Direction::Ingress => &p.ingress,
                    Direction::Egress => &p.egress,
                };
                for r in rules {
                    take(r, &format!("Profile {name}"), false);
                }
            }
        }
        for n in &self.network_sets {
            for r in &n.nets {
                if r.family == Family::V4 {
                    out.push(*r);
                } else {
                    warnings.insert(ConnlistWarning::Ipv6NetworkSetCidr {
                        cidr: r.to_cidr_string(),
                        network_set: n.name.clone(),
                    });
                }
            }
        }
        out
    }

    /// The IPv4 CIDRs that cut the source and destination address space into ranges.
    pub(crate) fn range_cidrs(&self) -> (Vec<AddrRange>, Vec<AddrRange>) {
        let mut w = Warnings::default();
        (
            self.side_cidrs(Direction::Ingress, &mut w),
            self.side_cidrs(Direction::Egress, &mut w),
        )
    }

    fn connlist_fatal(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        // Named ports toward external ranges in Kubernetes egress rules.
        for (pi, p) in self.policies.iter().enumerate() {
            if p.id.kind != PolicyKind::KubernetesNetworkPolicy {
                continue;
            }
            let selects = self
                .workloads()
                .iter()
                .any(|w| self.policy_selects_at(pi, w.positions[0]));
            if !selects {
                continue;
            }
            for r in &p.rules[Direction::Egress] {
                if !r.dst.named.is_empty() && r.dst.pos.is_none() {
                    out.push(policy_problem(
                        p,
                        "spec.egress",
                        format!(
                            "named port(s) {} in an egress rule toward external addresses (empty peers or ipBlock)",
                            r.dst.named.join(", ")
                        ),
                    ));
                }
            }
        }
        // Pods of one workload that some selector tells apart.
        for w in self.workloads() {
            let first = w.positions[0];
            for &other in &w.positions[1..] {
                if self.endpoints[first].labels == self.endpoints[other].labels {
                    continue;
                }
                let split = (0..self.selectors.len()).find(|&s| {
                    let id = SelId(u32::try_from(s).unwrap_or(u32::MAX));
                    self.selectors.matches_endpoint(id, first)
                        != self.selectors.matches_endpoint(id, other)
                });
                if let Some(s) = split {
                    let id = SelId(u32::try_from(s).unwrap_or(u32::MAX));
                    let text = self
                        .selectors
                        .get(id)
                        .map(|x| x.canonical().to_owned())
                        .unwrap_or_default();
                    let e = &self.endpoints[other];
                    out.push(Diagnostic {
                        severity: Severity::Error,
                        problem: Problem {
                            file: e.origin.file.clone(),
                            doc_index: e.origin.doc_index,
                            kind: Some("Pod".to_owned()),
                            namespace: e.namespace.clone(),
                            name: e.name.clone(),
                            field_path: "metadata.labels".to_owned(),
                            message: format!(
                                "pods of workload {} have different labels and selector {text} selects only some of them",
                                w.name
                            ),
                        },
                    });
                }
            }
        }
        out
    }

    /// Computes the connectivity list: workloads matched by selectors
    /// only, external IPv4 ranges by `nets` only.
    ///
    /// # Errors
    ///
    /// [`ConnlistError`] with the problems that make the list meaningless (see there).
    pub fn connlist(&self) -> Result<Connlist, ConnlistError> {
        self.connlist_with_cuts(&[], &[])
    }

    /// [`Model::connlist`] with the external ranges also cut at the bounds of `extra_src` /
    /// `extra_dst` (used to compare two connlists range by range).
    ///
    /// # Errors
    ///
    /// As [`Model::connlist`].
    pub fn connlist_with_cuts(
        &self,
        extra_src: &[AddrRange],
        extra_dst: &[AddrRange],
    ) -> Result<Connlist, ConnlistError> {
        Ok(self.connlist_plan(extra_src, extra_dst)?.collect())
    }

    /// Everything [`Model::connlist`] computes before its rows (warnings, ranges, the peers
    /// and their prepared policies): the rows are then produced one by one, in order, by
    /// [`ConnlistPlan::for_each_row`] without being held in memory.
    ///
    /// # Errors
    ///
    /// As [`Model::connlist`].
    pub fn connlist_plan(
        &self,
        extra_src: &[AddrRange],
        extra_dst: &[AddrRange],
    ) -> Result<ConnlistPlan<'_>, ConnlistError> {
        let problems = self.connlist_fatal();
        if !problems.is_empty() {
            return Err(ConnlistError { problems });
        }
        let mut warnings = Warnings::default();
        if self.policies.iter().all(|p| p.staged) {
            warnings.insert(ConnlistWarning::NoPolicy);
        }
        let mut src_cidrs = self.side_cidrs(Direction::Ingress, &mut warnings);
        src_cidrs.extend_from_slice(extra_src);
        let mut dst_cidrs = self.side_cidrs(Direction::Egress, &mut warnings);
        dst_cidrs.extend_from_slice(extra_dst);
        let src_ranges = elementary(&src_cidrs);
        let dst_ranges = elementary(&dst_cidrs);
        // Peers of each side, sorted by printed name, so rows come out in order.
        let workloads = self
            .workloads()
            .iter()
            .map(|w| (w.name.clone(), Side::Workload(w.positions[0])));
        let mut srcs: Vec<(String, Side)> = workloads.clone().collect();
        srcs.extend(
            src_ranges
                .iter()
                .map(|r| (format!("{r}[External]"), Side::Range(*r))),
        );
        srcs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut dsts: Vec<(String, Side)> = workloads.collect();
        dsts.extend(
            dst_ranges
                .iter()
                .map(|r| (format!("{r}[External]"), Side::Range(*r))),
        );
        dsts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut prepared: Vec<Option<PerDirection<crate::prepared::Prepared<'_>>>> =
            (0..self.endpoints.len()).map(|_| None).collect();
        for w in self.workloads() {
            let e = w.positions[0];
            prepared[e] = Some(PerDirection::from_fn(|dir| self.prepare(e, dir)));
        }
        Ok(ConnlistPlan {
            model: self,
            srcs,
            dsts,
            prepared,
            warnings: warnings.into_vec(),
            source_ranges: src_ranges,
            destination_ranges: dst_ranges,
        })
    }
}

/// A connlist ready to produce its rows (see [`Model::connlist_plan`]).
pub struct ConnlistPlan<'m> {
    model: &'m Model,
    srcs: Vec<(String, Side)>,
    dsts: Vec<(String, Side)>,
    prepared: Vec<Option<PerDirection<crate::prepared::Prepared<'m>>>>,
    /// Warnings, ordered by their text.
    pub warnings: Vec<ConnlistWarning>,
    /// The external source-side ranges, ascending.
    pub source_ranges: Vec<AddrRange>,
    /// The external destination-side ranges, ascending.
    pub destination_ranges: Vec<AddrRange>,
}

impl ConnlistPlan<'_> {
    fn conns_of(&self, e: usize, dir: Direction, other: &PeerSpec) -> Rc<ConnSet> {
        let m = self.model;
        match self.prepared.get(e).and_then(Option::as_ref) {
            Some(p) => m.prepared_conns_memo(&p[dir], other),
            None => Rc::new(m.direction_conns(e, dir, &peer(e), other, Family::V4)),
        }
    }

    /// Calls `row(src, dst, conns)` for every row, sorted by `src` then `dst` (byte order);
    /// `conns` is never empty.
    pub fn for_each_row(&self, mut row: impl FnMut(&str, &str, &ConnSet)) {
        for (sname, s) in &self.srcs {
            for (dname, d) in &self.dsts {
                match (*s, *d) {
                    (Side::Range(_), Side::Range(_)) => {}
                    // One workload per printed name: the same representative is the same name.
                    (Side::Workload(a), Side::Workload(b)) if a == b => {}
                    (Side::Workload(s), Side::Workload(d)) => {
                        let eg = self.conns_of(s, Direction::Egress, &peer(d));
                        if eg.is_empty() {
                            continue;
                        }
                        let ing = self.conns_of(d, Direction::Ingress, &peer(s));
                        if eg.is_all() {
                            if !ing.is_empty() {
                                row(sname, dname, &ing);
                            }
                        } else if ing.is_all() {
                            row(sname, dname, &eg);
                        } else {
                            let conns = eg.intersect(&ing);
                            if !conns.is_empty() {
                                row(sname, dname, &conns);
                            }
                        }
                    }
                    (Side::Workload(s), Side::Range(r)) => {
                        let conns = self.conns_of(s, Direction::Egress, &PeerSpec::External(r));
                        if !conns.is_empty() {
                            row(sname, dname, &conns);
                        }
                    }
                    (Side::Range(r), Side::Workload(d)) => {
                        let conns = self.conns_of(d, Direction::Ingress, &PeerSpec::External(r));
                        if !conns.is_empty() {
                            row(sname, dname, &conns);
                        }
                    }
                }
            }
        }
    }

    /// All the rows, in memory.
    pub fn collect(self) -> Connlist {
        let mut rows = Vec::new();
        self.for_each_row(|src, dst, conns| {
            rows.push(ConnRow {
                src: src.to_owned(),
                dst: dst.to_owned(),
                conns: conns.clone(),
            });
        });
        Connlist {
            rows,
            warnings: self.warnings,
            source_ranges: self.source_ranges,
            destination_ranges: self.destination_ranges,
        }
    }

    /// Writes the rows in the txt format to `out`, one by one.
    ///
    /// # Errors
    ///
    /// The first write error of `out`.
    pub fn write_txt<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        let mut result = Ok(());
        self.for_each_row(|src, dst, conns| {
            if result.is_ok() {
                result = writeln!(out, "{src} => {dst} : {conns}");
            }
        });
        result
    }
}

fn peer(i: usize) -> PeerSpec {
    PeerSpec::Endpoint {
        index: i,
        addr: None,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Connlist {
    /// Renders the rows in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        match format {
            Format::Txt => {
                for r in &self.rows {
                    let _ = writeln!(out, "{} => {} : {}", r.src, r.dst, r.conns);
                }
            }
            Format::Json => {
                #[derive(serde::Serialize)]
                struct Row<'a> {
                    src: &'a str,
                    dst: &'a str,
                    conn: String,
                }
                let rows: Vec<Row<'_>> = self
                    .rows
                    .iter()
                    .map(|r| Row {
                        src: &r.src,
                        dst: &r.dst,
                        conn: r.conns.to_string(),
                    })
                    .collect();
                out = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned());
                out.push('\n');
            }
            Format::Csv => {
                out.push_str("src,dst,conn\n");
                for r in &self.rows {
                    let _ = writeln!(
                        out,
                        "{},{},{}",
                        csv_field(&r.src),
                        csv_field(&r.dst),
                        csv_field(&r.conns.to_string())
                    );
                }
            }
            Format::Md => {
                out.push_str("| src | dst | conn |\n|-----|-----|------|\n");
                for r in &self.rows {
                    let _ = writeln!(out, "| {} | {} | {} |", r.src, r.dst, r.conns);
                }
            }
            Format::Dot => out = self.render_dot(),
        }
        out
    }

    fn render_dot(&self) -> String {
        let mut namespaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut external: BTreeSet<String> = BTreeSet::new();
        for r in &self.rows {
            for n in [&r.src, &r.dst] {
                if n.ends_with("[External]") {
                    external.insert(n.clone());
                } else if let Some((ns, _)) = n.split_once('/') {
                    namespaces
                        .entry(ns.to_owned())
                        .or_default()
                        .insert(n.clone());
                }
            }
        }
        let mut out = String::from("digraph {\n");
        let mut seen = HashSet::new();
        for (ns, nodes) in &namespaces {
            let _ = writeln!(
                out,
                "\tsubgraph {} {{",
                dot_quote(&format!("cluster_{ns}[namespace]"))
            );
            let _ = writeln!(out, "\t\tlabel={}", dot_quote(&format!("{ns}[namespace]")));
            for n in nodes {
                let label = n.split_once('/').map_or(n.as_str(), |(_, rest)| rest);
                let _ = writeln!(
                    out,
                    "\t\t{} [label={} shape=box]",
                    dot_quote(n),
                    dot_quote(label)
                );
                seen.insert(n.clone());
            }
            out.push_str("\t}\n");
        }
        for n in &external {
            let _ = writeln!(
                out,
                "\t{} [label={} shape=ellipse]",
                dot_quote(n),
                dot_quote(n)
            );
        }
        for r in &self.rows {
            let _ = writeln!(
                out,
                "\t{} -> {} [label={}]",
                dot_quote(&r.src),
                dot_quote(&r.dst),
                dot_quote(&r.conns.to_string())
            );
        }
        out.push_str("}\n");
        out
    }
}

/// One pair whose allowed connections differ between two inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiffRow {
    /// Source peer name.
    pub src: String,
    /// Destination peer name.
    pub dst: String,
    /// Connections B allows and A does not.
    pub added: ConnSet,
    /// Connections A allows and B does not.
    pub removed: ConnSet,
}

/// The difference between two connlists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnDiff {
    /// Pairs that differ, sorted by `src` then `dst`.
    pub rows: Vec<DiffRow>,
    /// Warnings of both connlists, ordered by their text, each once.
    pub warnings: Vec<ConnlistWarning>,
}

impl ConnDiff {
    /// Whether the two inputs allow exactly the same connections.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// One line per change: `+ src => dst : conns` for what B adds, then
    /// `- src => dst : conns` for what it removes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            if !r.added.is_empty() {
                let _ = writeln!(out, "+ {} => {} : {}", r.src, r.dst, r.added);
            }
            if !r.removed.is_empty() {
                let _ = writeln!(out, "- {} => {} : {}", r.src, r.dst, r.removed);
            }
        }
        out
    }
}

/// The connections `b` adds and removes compared to `a`. Both connlists are computed on the
/// same external ranges (the union of both inputs' cut points), so a range split in one input
/// only is compared piece by piece.
///
/// # Errors
///
/// The fatal connlist problems of either input.
pub fn diff(a: &Model, b: &Model) -> Result<ConnDiff, ConnlistError> {
    let (a_src, a_dst) = a.range_cidrs();
    let (b_src, b_dst) = b.range_cidrs();
    let la = a.connlist_with_cuts(&b_src, &b_dst)?;
    let lb = b.connlist_with_cuts(&a_src, &a_dst)?;
    let map = |l: &Connlist| -> BTreeMap<(String, String), ConnSet> {
        l.rows
            .iter()
            .map(|r| ((r.src.clone(), r.dst.clone()), r.conns.clone()))
            .collect()
    };
    let (ma, mb) = (map(&la), map(&lb));
    let keys: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    let empty = ConnSet::empty();
    let mut rows = Vec::new();
    for k in keys {
        let ca = ma.get(k).unwrap_or(&empty);
        let cb = mb.get(k).unwrap_or(&empty);
        let added = cb.minus(ca);
        let removed = ca.minus(cb);
        if !added.is_empty() || !removed.is_empty() {
            rows.push(DiffRow {
                src: k.0.clone(),
                dst: k.1.clone(),
                added,
                removed,
            });
        }
    }
    let mut warnings = Warnings::default();
    for w in la.warnings.into_iter().chain(lb.warnings) {
        warnings.insert(w);
    }
    let warnings = warnings.into_vec();
    Ok(ConnDiff { rows, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(lo: u128, hi: u128) -> AddrRange {
        AddrRange {
            family: Family::V4,
            lo,
            hi,
        }
    }

    proptest! {
        /// The result covers exactly the addresses of `net` in no hole, as maximal intervals
        /// (sorted, disjoint, never touching), whatever the holes' order, overlap or adjacency.
        #[test]
        fn subtract_union_is_the_set_difference(
            net in (0u128..64, 0u128..64).prop_map(|(a, b)| r(a.min(b), a.max(b))),
            holes in proptest::collection::vec(
                (0u128..64, 0u128..64).prop_map(|(a, b)| r(a.min(b), a.max(b))), 0..6),
        ) {
            let out = subtract_union(net, &holes);
            for w in out.windows(2) {
                prop_assert!(w[0].hi + 1 < w[1].lo, "{:?} touches {:?}", w[0], w[1]);
            }
            for x in 0u128..64 {
                let want = net.lo <= x && x <= net.hi
                    && !holes.iter().any(|h| h.lo <= x && x <= h.hi);
                let got = out.iter().any(|o| o.lo <= x && x <= o.hi);
                prop_assert_eq!(want, got, "address {}", x);
            }
        }
    }

    #[test]
    fn subtract_union_edges() {
        // Holes at both ends of the whole space, and a hole covering everything.
        assert_eq!(
            subtract_union(r(0, V4_MAX), &[r(0, 9), r(V4_MAX - 9, V4_MAX)]),
            vec![r(10, V4_MAX - 10)]
        );
        assert!(subtract_union(r(5, 9), &[r(0, 20)]).is_empty());
        assert_eq!(subtract_union(r(5, 9), &[]), vec![r(5, 9)]);
    }
}
