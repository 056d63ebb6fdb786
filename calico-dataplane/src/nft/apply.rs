//! Planning and applying one transaction that turns the current table into the desired one.

use std::collections::BTreeSet;

use super::batch::{Batch, KElem};
use super::error::{ApplyError, ReadError};
use super::objects::Table;
use super::socket::NftSocket;
use super::state::{ChainState, Prepared, SetState, TableState, read_table};

/// What one apply sent to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyStats {
    /// nf_tables messages in the batch (0 = nothing to do, nothing sent).
    pub messages: usize,
    /// Bytes of the batch.
    pub bytes: usize,
    /// Chains created or whose rules were rewritten.
    pub chains_written: usize,
    /// Sets created or whose elements changed.
    pub sets_written: usize,
}

/// Objects whose kernel state differs from the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Drift {
    /// Whether the table is missing.
    pub table_missing: bool,
    /// Chains missing, extra, or with different hooks or rules.
    pub chains: Vec<String>,
    /// Sets missing, extra, or with a different definition or elements.
    pub sets: Vec<String>,
}

impl Drift {
    /// True when the kernel holds exactly the desired state.
    pub fn is_empty(&self) -> bool {
        !self.table_missing && self.chains.is_empty() && self.sets.is_empty()
    }
}

/// Programs one nftables table (family `inet`) over a netlink socket, one kernel
/// transaction per call. Remembers what it applied last, so applying the same table twice
/// sends nothing the second time; the first apply reads the table back to plan.
#[derive(Debug)]
pub struct NftApplier {
    sock: NftSocket,
    table: String,
    applied: Option<TableState>,
    batch_limit: usize,
}

impl NftApplier {
    /// Opens a netlink socket in the calling thread's network namespace for table `table`.
    pub fn new(table: &str) -> Result<NftApplier, ApplyError> {
        let sock = NftSocket::open().map_err(|source| ApplyError::Socket {
            context: "open",
            source,
        })?;
        Ok(NftApplier {
            sock,
            table: table.to_string(),
            applied: None,
            batch_limit: BATCH_BYTES,
        })
    }

    /// Sets the size above which an apply is split (32 MiB by default): the new sets are
    /// created and filled first, in transactions of about this size, while no rule refers
    /// to them yet; everything else follows in one transaction.
    pub fn set_batch_limit(&mut self, bytes: usize) {
        self.batch_limit = bytes;
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Forgets the remembered state: the next apply reads the table back first.
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// Reads the table back from the kernel.
    pub fn read_back(&mut self) -> Result<TableState, ReadError> {
        read_table(&mut self.sock, &self.table)
    }

    /// Compares the kernel's table with `desired` (rule digests from rule userdata, set
    /// definitions and elements, base-chain hooks).
    pub fn drift(&mut self, desired: &Table) -> Result<Drift, ReadError> {
        let cur = self.read_back()?;
        let want = Prepared::new(desired).into_state(desired);
        let mut d = Drift {
            table_missing: !cur.exists,
            ..Drift::default()
        };
        let names: BTreeSet<&String> = cur.chains.keys().chain(want.chains.keys()).collect();
        for n in names {
            if cur.chains.get(n) != want.chains.get(n) {
                d.chains.push(n.clone());
            }
        }
        let names: BTreeSet<&String> = cur.sets.keys().chain(want.sets.keys()).collect();
        for n in names {
            if cur.sets.get(n) != want.sets.get(n) {
                d.sets.push(n.clone());
            }
        }
        Ok(d)
    }

    /// Makes the table hold exactly `desired`, in one transaction that changes only what
    /// differs from the last applied (or read-back) state. On error nothing changed, and
    /// the remembered state is dropped so the next apply re-reads the kernel.
    pub fn apply(&mut self, desired: &Table) -> Result<ApplyStats, ApplyError> {
        let cur = match self.applied.take() {
            Some(s) => s,
            None => self.read_back()?,
        };
        let prep = Prepared::new(desired);
        let rewrite = desired
            .sets
            .iter()
            .any(|(n, s)| cur.sets.get(n).is_some_and(|c| !c.same_definition(s)));
        self.run(&cur, desired, prep, rewrite)
    }

    /// Rewrites the table's whole contents in one transaction (all rules, sets and chains
    /// deleted and created again; the table itself is never deleted).
    pub fn apply_full(&mut self, desired: &Table) -> Result<ApplyStats, ApplyError> {
        self.applied = None;
        let cur = self.read_back()?;
        let prep = Prepared::new(desired);
        self.run(&cur, desired, prep, true)
    }

    /// Reserves sequence numbers for a batch about to be built.
    pub(crate) fn reserve_seq(&mut self) -> u32 {
        self.sock.reserve_seq(0)
    }

    /// Whether the table is known to exist (it was applied or read back).
    pub(crate) fn table_known(&self) -> bool {
        self.applied.as_ref().is_some_and(|s| s.exists)
    }

    /// Sends a batch built by a caller. On success the caller updates the remembered state
    /// with [`NftApplier::remember_chain`] / [`NftApplier::remember_set`].
    pub(crate) fn send(&mut self, batch: Batch) -> Result<(), ApplyError> {
        if batch.len() == 0 {
            return Ok(());
        }
        self.sock
            .reserve_seq(u32::try_from(batch.len() + 2).unwrap_or(u32::MAX));
        self.sock.send_batch(batch)?;
        if let Some(s) = &mut self.applied {
            s.exists = true;
        }
        Ok(())
    }

    /// Records a chain's new state (`None`: deleted).
    pub(crate) fn remember_chain(&mut self, name: &str, st: Option<ChainState>) {
        if let Some(a) = &mut self.applied {
            match st {
                Some(c) => a.chains.insert(name.to_string(), c),
                None => a.chains.remove(name),
            };
        }
    }

    /// Records a set's new state (`None`: deleted).
    pub(crate) fn remember_set(&mut self, name: &str, st: Option<SetState>) {
        if let Some(a) = &mut self.applied {
            match st {
                Some(c) => a.sets.insert(name.to_string(), c),
                None => a.sets.remove(name),
            };
        }
    }

    /// Records element changes of a set (removed, then added) in its remembered state.
    pub(crate) fn patch_set(&mut self, name: &str, removed: Vec<KElem>, added: Vec<KElem>) {
        if let Some(st) = self.applied.as_mut().and_then(|a| a.sets.get_mut(name)) {
            for e in &removed {
                st.elements.remove(e);
            }
            st.elements.extend(added);
        }
    }

    fn run(
        &mut self,
        cur: &TableState,
        desired: &Table,
        prep: Prepared,
        rewrite: bool,
    ) -> Result<ApplyStats, ApplyError> {
        let first = self.sock.reserve_seq(0);
        let mut batch = Batch::new(&self.table, first);
        let mut stats = plan(&mut batch, cur, desired, &prep, rewrite);
        let filled;
        let cur = if batch.buf.buf.len() > self.batch_limit && !rewrite {
            // Too large for one transaction: fill the new sets first, in transactions of
            // their own (no rule refers to them yet, so traffic sees none of it), then the
            // rest in one.
            let mut pre = cur.clone();
            let pre_stats = self.fill_new_sets(&mut pre, desired, &prep)?;
            let first = self.sock.reserve_seq(0);
            batch = Batch::new(&self.table, first);
            stats = plan(&mut batch, &pre, desired, &prep, rewrite);
            stats.sets_written += pre_stats.sets_written;
            stats.messages += pre_stats.messages;
            stats.bytes += pre_stats.bytes;
            filled = pre;
            &filled
        } else {
            cur
        };
        if batch.len() == 0 {
            self.applied = Some(prep.into_state(desired));
            return Ok(stats);
        }
        stats.messages += batch.len();
        stats.bytes += batch.buf.buf.len();
        let _ = cur;
        self.sock
            .reserve_seq(u32::try_from(batch.len() + 2).unwrap_or(u32::MAX));
        self.sock.send_batch(batch)?;
        self.applied = Some(prep.into_state(desired));
        Ok(stats)
    }

    /// Creates the sets (not the verdict maps) of `desired` that `cur` lacks and adds their
    /// elements, in
    /// transactions of about the batch limit at most; `cur` records them.
    fn fill_new_sets(
        &mut self,
        cur: &mut TableState,
        desired: &Table,
        prep: &Prepared,
    ) -> Result<ApplyStats, ApplyError> {
        let mut stats = ApplyStats::default();
        let mut batch = Batch::new(&self.table, self.sock.reserve_seq(0));
        if !cur.exists {
            batch.new_table();
        }
        for (n, s) in &desired.sets {
            // Verdict maps point at chains, which come with the rest.
            if cur.sets.contains_key(n) || s.verdict_map {
                continue;
            }
            let want: &[KElem] = prep.elements.get(n).map(Vec::as_slice).unwrap_or(&[]);
            batch.new_set(n, s);
            // Interval sets keep each start with its end marker (the leading end marker
            // goes with the first chunk).
            let lead = usize::from(s.interval && want.first().is_some_and(|e| e.flags != 0));
            let chunk = 4096;
            let mut at = 0;
            while at < want.len() {
                let end = (at + chunk + if at == 0 { lead } else { 0 }).min(want.len());
                batch.set_elems(n, &want[at..end], true);
                at = end;
                if batch.buf.buf.len() > self.batch_limit {
                    self.send_counted(batch, &mut stats)?;
                    cur.exists = true;
                    batch = Batch::new(&self.table, self.sock.reserve_seq(0));
                }
            }
            stats.sets_written += 1;
            cur.sets.insert(
                n.clone(),
                SetState {
                    flags: s.flags(),
                    key_type: s.key_type(),
                    key_len: s.key_len(),
                    verdict_map: s.verdict_map,
                    elements: want.iter().cloned().collect(),
                },
            );
        }
        if batch.len() > 0 {
            self.send_counted(batch, &mut stats)?;
            cur.exists = true;
        }
        Ok(stats)
    }

    /// Sends `batch` as one transaction, counting its messages and bytes in `stats`.
    fn send_counted(&mut self, batch: Batch, stats: &mut ApplyStats) -> Result<(), ApplyError> {
        stats.messages += batch.len();
        stats.bytes += batch.buf.buf.len();
        self.sock
            .reserve_seq(u32::try_from(batch.len() + 2).unwrap_or(u32::MAX));
        self.sock.send_batch(batch)
    }
}

/// The largest transaction sent at once (the socket's send buffer is at most twice
/// `SEND_BUF_MAX`); a larger apply fills its new sets in transactions of their own first.
const BATCH_BYTES: usize = 32 << 20;

/// Appends to `batch` the messages turning `cur` into `desired`.
fn plan(
    batch: &mut Batch,
    cur: &TableState,
    desired: &Table,
    prep: &Prepared,
    rewrite: bool,
) -> ApplyStats {
    let mut stats = ApplyStats::default();
    let empty = TableState::default();
    if !cur.exists {
        batch.new_table();
    }
    // In rewrite mode, drop everything first: rules (and with them all jumps and set
    // references), then sets and maps (and with them all goto elements), then chains.
    let cur = if rewrite && cur.exists {
        batch.flush_rules(None);
        for n in cur.sets.keys() {
            batch.del_set(n);
        }
        for n in cur.chains.keys() {
            batch.del_chain(n);
        }
        &empty
    } else {
        cur
    };
    // a. sets missing
    for (n, s) in &desired.sets {
        if !cur.sets.contains_key(n) {
            batch.new_set(n, s);
        }
    }
    // b. chains missing, and base chains whose hook changed (recreated)
    let mut recreated = BTreeSet::new();
    for (n, c) in &desired.chains {
        match cur.chains.get(n) {
            None => batch.new_chain(n, c),
            Some(old) if old.base != c.base => {
                batch.del_chain(n);
                batch.new_chain(n, c);
                recreated.insert(n.clone());
            }
            Some(_) => {}
        }
    }
    // c. elements (after chains exist, so verdict-map gotos resolve)
    for (n, s) in &desired.sets {
        let want: &[KElem] = prep.elements.get(n).map(Vec::as_slice).unwrap_or(&[]);
        match cur.sets.get(n) {
            None => {
                batch.set_elems(n, want, true);
                stats.sets_written += 1;
            }
            Some(old) => {
                let want_set: BTreeSet<&KElem> = want.iter().collect();
                let old_set: BTreeSet<&KElem> = old.elements.iter().collect();
                if want_set == old_set {
                    continue;
                }
                stats.sets_written += 1;
                if s.interval {
                    batch.flush_set(n);
                    batch.set_elems(n, want, true);
                } else {
                    let gone: Vec<KElem> = old_set
                        .difference(&want_set)
                        .map(|e| (*e).clone())
                        .collect();
                    let new: Vec<KElem> = want_set
                        .difference(&old_set)
                        .map(|e| (*e).clone())
                        .collect();
                    batch.set_elems(n, &gone, false);
                    batch.set_elems(n, &new, true);
                }
            }
        }
    }
    // d. rules of new, recreated or changed chains
    for (n, c) in &desired.chains {
        let rules: &[(Vec<u8>, u64)] = prep.rules.get(n).map(Vec::as_slice).unwrap_or(&[]);
        let fresh = recreated.contains(n);
        match cur.chains.get(n) {
            Some(old) if !fresh => {
                let same = old.rule_digests.len() == rules.len()
                    && old
                        .rule_digests
                        .iter()
                        .zip(rules)
                        .all(|(o, (_, d))| *o == Some(*d));
                if same {
                    continue;
                }
                batch.flush_rules(Some(n));
            }
            _ => {}
        }
        stats.chains_written += 1;
        for (i, ((enc, digest), rule)) in rules.iter().zip(&c.rules).enumerate() {
            batch.new_rule(n, i, enc, rule.comment.as_deref(), *digest);
        }
    }
    // e. chains no longer wanted, then sets. Their rules are flushed first, all of them
    // before any deletion: one unwanted chain may jump to another (a tier chain to a policy
    // chain), and the kernel refuses to delete a chain something still jumps to (EBUSY).
    let unwanted: Vec<&String> = cur
        .chains
        .keys()
        .filter(|n| !desired.chains.contains_key(*n))
        .collect();
    for n in &unwanted {
        batch.flush_rules(Some(n));
    }
    for n in &unwanted {
        batch.del_chain(n);
    }
    for n in cur.sets.keys() {
        if !desired.sets.contains_key(n) {
            batch.del_set(n);
        }
    }
    stats
}
