//! The online consistency check and repair.
//!
//! [`check`] reads every block, affinity, handle and pool (and WorkloadEndpoints,
//! Pods and Nodes when the store holds any) in one read batch, at one store revision, and reports [`Inconsistency`]s.
//! [`repair`] applies each finding's fix as one transaction comparing the revisions of every
//! key the finding was derived from; on conflict the check is recomputed and the finding
//! skipped if it no longer holds. Running repair twice changes nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use calico_datastore::{Compare, KeyValue, ReadOp, ReadResult, Revision, TxnOp};
use ipnet::IpNet;

use crate::block::{Block, Violation, WINDOWS_RESERVED_HANDLE};
use crate::error::IpamError;
use crate::ipam::Ipam;
use crate::keys;
use crate::pools::parse_pools;
use crate::records::{AffinityRecord, AffinityState, Handle, Owner};
use crate::release::ReleaseItem;
use crate::resources::kind_prefix;
use crate::work::{block_problem, decode, decode_affinity, decode_handle, encode};

/// The kinds of inconsistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InconsistencyKind {
    /// An allocated address whose handle, pod or node does not exist.
    LeakedAddress,
    /// A handle none of whose blocks holds an address with it.
    OrphanedHandle,
    /// A handle's count for a block differs from the block's contents.
    HandleCountMismatch,
    /// More than one affinity for one block.
    DuplicateAffinity,
    /// An affinity without its block, naming another owner than its block, or not confirmed;
    /// or an affine block without its affinity.
    DanglingAffinity,
    /// A block contained in no IPPool.
    BlockOutsidePool,
    /// A block breaking an invariant (see [`Violation`]): no allocator
    /// may write it until it is repaired.
    InvalidBlock,
    /// A value that does not decode (or an IPAM key that names nothing): skipped by every
    /// reader, as Calico skips it.
    UndecodableValue,
}

impl fmt::Display for InconsistencyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            InconsistencyKind::LeakedAddress => "leaked-address",
            InconsistencyKind::OrphanedHandle => "orphaned-handle",
            InconsistencyKind::HandleCountMismatch => "handle-count-mismatch",
            InconsistencyKind::DuplicateAffinity => "duplicate-affinity",
            InconsistencyKind::DanglingAffinity => "dangling-affinity",
            InconsistencyKind::BlockOutsidePool => "block-outside-pool",
            InconsistencyKind::InvalidBlock => "invalid-block",
            InconsistencyKind::UndecodableValue => "undecodable-value",
        };
        f.write_str(s)
    }
}

/// How a finding is fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// One transaction.
    Txn {
        /// Revisions of every key the finding was derived from.
        compares: Vec<Compare>,
        /// The fix.
        ops: Vec<TxnOp>,
    },
    /// A release guarded by handle and sequence number.
    Release(ReleaseItem),
    /// Fixed by the fix of another finding of the same run (e.g. the other addresses of a
    /// handle that is recreated once).
    Covered,
    /// Not fixable safely; the reason.
    None(String),
}

/// One inconsistency in the stored IPAM data, with the fix [`repair`] applies. (Named apart
/// from calico-route's `check::ConfigFinding` and calico-policy's lint `Finding`: this is a
/// fact about stored records and comes with a repair; those are advice about configuration.)
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Inconsistency {
    /// What kind.
    pub kind: InconsistencyKind,
    /// What it is about (an address, a handle ID, a block CIDR, an affinity).
    pub subject: String,
    /// Details.
    pub detail: String,
    /// For `invalid-block`: every invariant the block breaks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// The fix.
    #[serde(skip)]
    pub fix: Fix,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.subject, self.detail)
    }
}

/// The result of [`check`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// The store revision everything was read at.
    pub revision: Revision,
    /// Blocks checked.
    pub blocks: usize,
    /// Findings, in a stable order.
    pub findings: Vec<Inconsistency>,
}

fn range(prefix: &str) -> ReadOp {
    ReadOp::prefix(prefix.to_owned(), 0)
}

fn kvs(r: ReadResult) -> Vec<KeyValue> {
    r.into_range().map(|r| r.kvs).unwrap_or_default()
}

fn key_str(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.key).into_owned()
}

/// The (namespace, pod) of each WorkloadEndpoint naming a pod (`spec.pod`); the namespace
/// is the key's. Endpoints that do not decode name nothing.
fn workloads_of_endpoints(kvs: &[KeyValue]) -> BTreeSet<(String, String)> {
    #[derive(serde::Deserialize, Default)]
    struct Spec {
        #[serde(default)]
        pod: String,
    }
    #[derive(serde::Deserialize)]
    struct Wep {
        #[serde(default)]
        spec: Spec,
    }
    let prefix = kind_prefix("WorkloadEndpoint", None);
    kvs.iter()
        .filter_map(|kv| {
            let key = key_str(kv);
            let (ns, _) = key.strip_prefix(&prefix)?.split_once('/')?;
            let wep: Wep = serde_json::from_slice(&kv.value).ok()?;
            (!wep.spec.pod.is_empty()).then(|| Some((keys::unescape(ns)?, wep.spec.pod)))?
        })
        .collect()
}

fn undecodable(kv: &KeyValue, detail: String) -> Inconsistency {
    Inconsistency {
        kind: InconsistencyKind::UndecodableValue,
        subject: key_str(kv),
        detail,
        violations: Vec::new(),
        fix: Fix::None("not decodable; fix or delete the value by hand".to_owned()),
    }
}

/// Runs the check (one read batch, at one revision).
pub fn check(ipam: &Ipam) -> Result<Report, IpamError> {
    ipam.ensure_layout()?;
    let store = ipam.store();
    let now = ipam.now();
    let resp = store.read(&[
        range(keys::BLOCK_PREFIX),
        range(keys::HOST_AFFINITY_PREFIX),
        range(keys::VIRTUAL_AFFINITY_PREFIX),
        range(keys::HANDLE_PREFIX),
        range(&kind_prefix("IPPool", None)),
        range(&kind_prefix("Pod", None)),
        range(&kind_prefix("Node", None)),
        range(&kind_prefix("WorkloadEndpoint", None)),
    ])?;
    let mut it = resp.results.into_iter();
    let mut next = || it.next().map(kvs).unwrap_or_default();
    let (block_kvs, mut aff_kvs, virt_kvs, handle_kvs, pool_kvs, pod_kvs, node_kvs, wep_kvs) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    aff_kvs.extend(virt_kvs);
    let pools = parse_pools(
        &pool_kvs
            .iter()
            .map(|kv| (key_str(kv), kv.value.clone()))
            .collect::<Vec<_>>(),
    )?;
    let mut findings = Vec::new();

    let mut blocks: BTreeMap<IpNet, (Revision, Block, String)> = BTreeMap::new();
    for kv in &block_kvs {
        if keys::parse_block(&kv.key).is_none() {
            findings.push(undecodable(kv, "the key names no block".to_owned()));
            continue;
        }
        match decode::<Block>(&kv.key, &kv.value) {
            Ok(b) => {
                blocks.insert(b.cidr, (kv.mod_revision, b, key_str(kv)));
            }
            Err(e) => findings.push(undecodable(kv, e.to_string())),
        }
    }
    let block_compare = |net: &IpNet| -> Compare {
        Compare::unchanged(
            keys::block(net).into_bytes(),
            blocks.get(net).map(|(r, _, _)| *r),
        )
    };
    let mut handles: BTreeMap<String, (Revision, Handle, String)> = BTreeMap::new();
    for kv in &handle_kvs {
        let Some(id) = keys::parse_handle(&kv.key) else {
            findings.push(undecodable(kv, "the key names no handle".to_owned()));
            continue;
        };
        match decode_handle(&id, &kv.key, &kv.value) {
            Ok(h) => {
                handles.insert(id, (kv.mod_revision, h, key_str(kv)));
            }
            Err(e) => findings.push(undecodable(kv, e.to_string())),
        }
    }
    let pods: BTreeSet<(String, String)> = pod_kvs
        .iter()
        .filter_map(|kv| {
            let s = key_str(kv);
            let rest = s.strip_prefix(&kind_prefix("Pod", None))?;
            let (ns, name) = rest.split_once('/')?;
            Some((keys::unescape(ns)?, keys::unescape(name)?))
        })
        .collect();
    // The workloads WorkloadEndpoints stand for: (namespace, spec.pod).
    let weps = workloads_of_endpoints(&wep_kvs);
    let nodes: BTreeSet<String> = node_kvs
        .iter()
        .filter_map(|kv| keys::unescape(key_str(kv).strip_prefix(&kind_prefix("Node", None))?))
        .collect();

    // Blocks: invariants, pools, addresses; actual handle counts.
    let mut actual: BTreeMap<String, BTreeMap<IpNet, u64>> = BTreeMap::new();
    let mut fixed_handles = BTreeSet::new();
    for (net, (rev, b, key)) in &blocks {
        let mut v = b.violations(now);
        if let Some(p @ Violation::CidrNotKey { .. }) = block_problem(key, b) {
            v.insert(0, p);
        }
        if !v.is_empty() {
            let unfixable = v.iter().find(|v| {
                matches!(
                    v,
                    Violation::DanglingIndex { .. }
                        | Violation::WrongLength { .. }
                        | Violation::CidrNotKey { .. }
                )
            });
            let fix = if let Some(u) = unfixable {
                Fix::None(format!("not repaired automatically: {u}"))
            } else {
                let mut nb = b.clone();
                nb.rebuild();
                nb.sequence_number = nb.sequence_number.wrapping_add(1);
                Fix::Txn {
                    compares: vec![Compare::mod_revision(key.clone().into_bytes(), *rev)],
                    ops: vec![TxnOp::put(key.clone().into_bytes(), encode(&nb))],
                }
            };
            findings.push(Inconsistency {
                kind: InconsistencyKind::InvalidBlock,
                subject: net.to_string(),
                detail: v
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                violations: v.clone(),
                fix,
            });
        }
        if !pools.iter().any(|p| p.contains_net(net)) {
            let fix = if b.is_empty() {
                let mut ops = vec![TxnOp::delete(key.clone().into_bytes())];
                if let Some(o) = b.owner() {
                    ops.push(TxnOp::delete(keys::affinity(&o, net).into_bytes()));
                }
                Fix::Txn {
                    compares: vec![Compare::mod_revision(key.clone().into_bytes(), *rev)],
                    ops,
                }
            } else {
                Fix::None(format!(
                    "{} addresses in use; not fixed",
                    b.allocated_count()
                ))
            };
            findings.push(Inconsistency {
                kind: InconsistencyKind::BlockOutsidePool,
                subject: net.to_string(),
                detail: format!("in no IPPool ({} addresses allocated)", b.allocated_count()),
                violations: Vec::new(),
                fix,
            });
        }
        for (o, a) in b.live() {
            if let Some(h) = &a.handle {
                *actual
                    .entry(h.clone())
                    .or_default()
                    .entry(*net)
                    .or_insert(0) += 1;
            }
            if a.handle
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(WINDOWS_RESERVED_HANDLE))
            {
                continue;
            }
            let addr = b.addr(o);
            let guarded = ReleaseItem {
                addr,
                handle: a.handle.clone(),
                sequence: Some(b.stamp(o)),
            };
            if let Some(h) = &a.handle
                && !handles.contains_key(h)
            {
                // Recreate the handle from the blocks (once per handle).
                let fix = if fixed_handles.insert(h.clone()) {
                    handle_rebuild_fix(h, &blocks, None)
                } else {
                    Fix::Covered
                };
                findings.push(leak(addr, format!("handle {h} does not exist"), fix));
                continue;
            }
            // A workload exists if any kind of workload object the store holds has it.
            if (!pods.is_empty() || !wep_kvs.is_empty())
                && let (Some(ns), Some(pod)) = (a.owner.get("namespace"), a.owner.get("pod"))
                && !pods.contains(&(ns.clone(), pod.clone()))
                && !weps.contains(&(ns.clone(), pod.clone()))
            {
                let kinds = match (pods.is_empty(), wep_kvs.is_empty()) {
                    (false, false) => "neither a pod nor a workload endpoint",
                    (false, true) => "no pod",
                    _ => "no workload endpoint",
                };
                findings.push(leak(
                    addr,
                    format!("pod {ns}/{pod} does not exist ({kinds} names it)"),
                    Fix::Release(guarded),
                ));
                continue;
            }
            if !nodes.is_empty()
                && let Some(node) = a.owner.get("node")
                && !nodes.contains(node)
            {
                findings.push(leak(
                    addr,
                    format!("node {node} does not exist"),
                    Fix::Release(guarded),
                ));
            }
        }
    }

    // Handles.
    for (id, (rev, h, key)) in &handles {
        let act = actual.get(id).cloned().unwrap_or_default();
        let listed: BTreeMap<IpNet, u64> = h
            .blocks
            .iter()
            .filter_map(|(c, n)| Some((c.parse::<IpNet>().ok()?, *n)))
            .collect();
        if act.is_empty() {
            let mut compares = vec![Compare::mod_revision(key.clone().into_bytes(), *rev)];
            compares.extend(listed.keys().map(&block_compare));
            findings.push(Inconsistency {
                kind: InconsistencyKind::OrphanedHandle,
                subject: id.clone(),
                detail: format!(
                    "none of its {} block(s) holds an address with it",
                    listed.len()
                ),
                violations: Vec::new(),
                fix: Fix::Txn {
                    compares,
                    ops: vec![TxnOp::delete(key.clone().into_bytes())],
                },
            });
        } else if act != listed || listed.len() != h.blocks.len() {
            let detail = act
                .keys()
                .chain(listed.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|n| act.get(n) != listed.get(n))
                .map(|n| {
                    format!(
                        "{n}: counted {} held {}",
                        listed.get(n).copied().unwrap_or(0),
                        act.get(n).copied().unwrap_or(0)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            findings.push(Inconsistency {
                kind: InconsistencyKind::HandleCountMismatch,
                subject: id.clone(),
                detail,
                violations: Vec::new(),
                fix: handle_rebuild_fix(
                    id,
                    &blocks,
                    Some((*rev, listed.keys().copied().collect())),
                ),
            });
        }
    }

    // Affinities.
    let mut by_block: BTreeMap<IpNet, Vec<(Owner, Revision, AffinityRecord, String)>> =
        BTreeMap::new();
    for kv in &aff_kvs {
        let legacy_host = key_str(kv)
            .strip_prefix(keys::HOST_AFFINITY_PREFIX)
            .is_some_and(keys::valid_name);
        if legacy_host {
            // The per-host key of old Calico releases: not an affinity.
            continue;
        }
        let Some((owner, net)) = keys::parse_affinity(&kv.key) else {
            findings.push(Inconsistency {
                kind: InconsistencyKind::DanglingAffinity,
                subject: key_str(kv),
                detail: "malformed affinity key".to_owned(),
                violations: Vec::new(),
                fix: Fix::Txn {
                    compares: vec![Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
                    ops: vec![TxnOp::delete(kv.key.clone())],
                },
            });
            continue;
        };
        let rec: AffinityRecord = match decode_affinity(&kv.key, &kv.value) {
            Ok(r) => r,
            Err(e) => {
                findings.push(undecodable(kv, e.to_string()));
                continue;
            }
        };
        by_block
            .entry(net)
            .or_default()
            .push((owner, kv.mod_revision, rec, key_str(kv)));
    }
    for (net, affs) in &by_block {
        let block = blocks.get(net);
        let named = block.and_then(|(_, b, _)| b.owner());
        if affs.len() > 1 {
            let mut compares = vec![block_compare(net)];
            let mut ops = Vec::new();
            for (o, r, _, k) in affs {
                compares.push(Compare::mod_revision(k.clone().into_bytes(), *r));
                if Some(o) != named.as_ref() {
                    ops.push(TxnOp::delete(k.clone().into_bytes()));
                }
            }
            findings.push(Inconsistency {
                kind: InconsistencyKind::DuplicateAffinity,
                subject: net.to_string(),
                detail: format!(
                    "{} affinities: {}",
                    affs.len(),
                    affs.iter()
                        .map(|(o, ..)| o.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                violations: Vec::new(),
                fix: Fix::Txn { compares, ops },
            });
            continue;
        }
        for (o, r, rec, k) in affs {
            let problem = match block {
                None => Some("its block does not exist".to_owned()),
                Some(_) if named.as_ref() != Some(o) => Some(format!(
                    "its block names {}",
                    named
                        .as_ref()
                        .map_or("no owner".to_owned(), Owner::to_string)
                )),
                Some(_) if rec.state != AffinityState::Confirmed => {
                    Some(format!("state {:?}", rec.state))
                }
                _ => None,
            };
            let Some(problem) = problem else { continue };
            let compares = vec![
                Compare::mod_revision(k.clone().into_bytes(), *r),
                block_compare(net),
            ];
            let fix = match block {
                // Confirm it, rewriting the block (sequence number + 1) so that a release
                // in progress holding the old block revision fails, as Calico does.
                Some((_, b, bkey)) if named.as_ref() == Some(o) => match block_problem(bkey, b) {
                    Some(v) => Fix::None(format!("its block is broken: {v}")),
                    None => {
                        let mut nb = b.clone();
                        nb.sequence_number = nb.sequence_number.wrapping_add(1);
                        Fix::Txn {
                            compares,
                            ops: vec![
                                TxnOp::put(
                                    k.clone().into_bytes(),
                                    encode(&AffinityRecord::confirmed()),
                                ),
                                TxnOp::put(bkey.clone().into_bytes(), encode(&nb)),
                            ],
                        }
                    }
                },
                _ => Fix::Txn {
                    compares,
                    ops: vec![TxnOp::delete(k.clone().into_bytes())],
                },
            };
            findings.push(Inconsistency {
                kind: InconsistencyKind::DanglingAffinity,
                subject: format!("{o} {net}"),
                detail: problem,
                violations: Vec::new(),
                fix,
            });
        }
    }
    for (net, (rev, b, key)) in &blocks {
        if let Some(o) = b.owner()
            && !by_block.contains_key(net)
        {
            let akey = keys::affinity(&o, net);
            findings.push(Inconsistency {
                kind: InconsistencyKind::DanglingAffinity,
                subject: format!("{o} {net}"),
                detail: "the block names an owner that has no affinity".to_owned(),
                violations: Vec::new(),
                fix: Fix::Txn {
                    compares: vec![
                        Compare::mod_revision(key.clone().into_bytes(), *rev),
                        Compare::absent(akey.clone().into_bytes()),
                    ],
                    ops: vec![TxnOp::put(
                        akey.into_bytes(),
                        encode(&AffinityRecord::confirmed()),
                    )],
                },
            });
        }
    }

    findings.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    Ok(Report {
        revision: resp.revision,
        blocks: blocks.len(),
        findings,
    })
}

fn leak(addr: IpAddr, detail: String, fix: Fix) -> Inconsistency {
    Inconsistency {
        kind: InconsistencyKind::LeakedAddress,
        subject: addr.to_string(),
        detail,
        violations: Vec::new(),
        fix,
    }
}

/// The fix rewriting handle `id` from the blocks' contents; `existing` is its revision and
/// listed blocks (`None`: the handle does not exist).
fn handle_rebuild_fix(
    id: &str,
    blocks: &BTreeMap<IpNet, (Revision, Block, String)>,
    existing: Option<(Revision, Vec<IpNet>)>,
) -> Fix {
    let key = keys::handle(id);
    let mut compares = vec![Compare::unchanged(
        key.clone().into_bytes(),
        existing.as_ref().map(|(r, _)| *r),
    )];
    let mut h = Handle {
        id: id.to_owned(),
        blocks: BTreeMap::new(),
    };
    for (net, (rev, b, bkey)) in blocks {
        let n = b
            .live()
            .filter(|(_, a)| a.handle.as_deref() == Some(id))
            .count() as u64;
        let listed = existing.as_ref().is_some_and(|(_, l)| l.contains(net));
        if n > 0 || listed {
            compares.push(Compare::mod_revision(bkey.clone().into_bytes(), *rev));
        }
        if n > 0 {
            h.blocks.insert(net.to_string(), n);
        }
    }
    if let Some((_, listed)) = &existing {
        for net in listed {
            if !blocks.contains_key(net) {
                compares.push(Compare::absent(keys::block(net).into_bytes()));
            }
        }
    }
    let op = if h.blocks.is_empty() {
        TxnOp::delete(key.into_bytes())
    } else {
        TxnOp::put(key.into_bytes(), encode(&h))
    };
    Fix::Txn {
        compares,
        ops: vec![op],
    }
}

/// What [`repair`] did about one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairAction {
    /// The finding.
    pub finding: String,
    /// Whether it was fixed.
    pub fixed: bool,
    /// What was done, or why not.
    pub message: String,
}

/// Fixes what [`check`] reports that can be fixed safely. Each fix is one transaction
/// guarded by the revisions the finding was computed from; on conflict the check is re-run
/// (up to 10 rounds) and findings that no longer hold are skipped.
pub fn repair(ipam: &Ipam) -> Result<Vec<RepairAction>, IpamError> {
    let mut actions = Vec::new();
    let mut unfixable = BTreeSet::new();
    for _round in 0..10 {
        let report = check(ipam)?;
        let mut conflicted = false;
        let mut progressed = false;
        for f in report.findings {
            let label = f.to_string();
            match &f.fix {
                Fix::Covered => {}
                Fix::None(reason) => {
                    if unfixable.insert(label.clone()) {
                        actions.push(RepairAction {
                            finding: label,
                            fixed: false,
                            message: reason.clone(),
                        });
                    }
                }
                Fix::Txn { compares, ops } => match ipam.store().txn(compares, ops) {
                    Ok(_) => {
                        progressed = true;
                        actions.push(RepairAction {
                            finding: label,
                            fixed: true,
                            message: describe(f.kind),
                        });
                    }
                    Err(e) if e.is_conflict() => conflicted = true,
                    Err(e) => return Err(e.into()),
                },
                Fix::Release(item) => {
                    let r = ipam.release_ips(std::slice::from_ref(item))?;
                    if r.released.is_empty() {
                        conflicted = true;
                    } else {
                        progressed = true;
                        actions.push(RepairAction {
                            finding: label,
                            fixed: true,
                            message: "released (handle and sequence number guarded)".to_owned(),
                        });
                    }
                }
            }
        }
        if !conflicted && !progressed {
            break;
        }
    }
    Ok(actions)
}

fn describe(kind: InconsistencyKind) -> String {
    match kind {
        InconsistencyKind::LeakedAddress => "recreated the handle from the blocks",
        InconsistencyKind::OrphanedHandle => "deleted the handle",
        InconsistencyKind::HandleCountMismatch => "rewrote the handle from the blocks",
        InconsistencyKind::DuplicateAffinity => {
            "kept the affinity the block names, deleted the others"
        }
        InconsistencyKind::DanglingAffinity => "fixed the affinity",
        InconsistencyKind::BlockOutsidePool => "deleted the empty block and its affinity",
        InconsistencyKind::InvalidBlock => "rebuilt the free list and compacted attributes",
        InconsistencyKind::UndecodableValue => "nothing",
    }
    .to_owned()
}
