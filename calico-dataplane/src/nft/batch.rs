//! Building one nfnetlink batch (one kernel transaction) of nf_tables messages.

use super::consts::*;
use super::expr::{KernelVerdict, value};
use super::objects::{Chain, Rule, Set, datatype};
use super::wire::{MsgBuf, comment_value, fnv64, udata};

/// An element as the kernel stores it: interval sets are sent as start and end-marker
/// elements (`NFT_SET_ELEM_INTERVAL_END`), concatenated ranges with a key end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KElem {
    pub(crate) key: Vec<u8>,
    pub(crate) key_end: Option<Vec<u8>>,
    pub(crate) flags: u32,
    pub(crate) verdict: Option<KernelVerdict>,
}

/// What a message of a batch does, to name the object in an error.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub(crate) op: &'static str,
    pub(crate) object: String,
}

/// Adds one to a big-endian byte string; `None` when it overflows (all 0xff).
fn incr(key: &[u8]) -> Option<Vec<u8>> {
    let mut k = key.to_vec();
    for b in k.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(k);
        }
    }
    None
}

/// The kernel elements of one single-key element of a single-field interval set that
/// overlaps no other: its start and the END marker after it. `None` for the lowest and
/// highest keys, whose encoding depends on the rest of the set.
pub(crate) fn lone_interval_elements(key: &[u8]) -> Option<[KElem; 2]> {
    if key.iter().all(|b| *b == 0) {
        return None;
    }
    let next = incr(key)?;
    Some([
        KElem {
            key: key.to_vec(),
            key_end: None,
            flags: 0,
            verdict: None,
        },
        KElem {
            key: next,
            key_end: None,
            flags: NFT_SET_ELEM_INTERVAL_END,
            verdict: None,
        },
    ])
}

/// The kernel elements of a set (interval encoding done here, as nft does it in userspace).
pub(crate) fn kernel_elements(set: &Set) -> Vec<KElem> {
    if !set.interval {
        return set
            .elements
            .iter()
            .map(|e| KElem {
                key: e.key.clone(),
                key_end: None,
                flags: 0,
                verdict: e.verdict.clone(),
            })
            .collect();
    }
    if set.key_lens.len() > 1 {
        return set
            .elements
            .iter()
            .map(|e| KElem {
                key: e.key.clone(),
                key_end: Some(e.key_end.clone().unwrap_or_else(|| e.key.clone())),
                flags: 0,
                verdict: e.verdict.clone(),
            })
            .collect();
    }
    // Single-field interval set: sorted, overlaps merged, start + (end+1 with END flag).
    let mut ranges: Vec<(Vec<u8>, Vec<u8>, Option<KernelVerdict>)> = set
        .elements
        .iter()
        .map(|e| {
            let end = e.key_end.clone().unwrap_or_else(|| e.key.clone());
            (e.key.clone(), end, e.verdict.clone())
        })
        .collect();
    ranges.sort();
    let mut merged: Vec<(Vec<u8>, Vec<u8>, Option<KernelVerdict>)> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.0 <= last.1 && last.2 == r.2 => {
                if r.1 > last.1 {
                    last.1 = r.1;
                }
            }
            _ => merged.push(r),
        }
    }
    let mut out = Vec::with_capacity(merged.len() * 2 + 1);
    if let Some(first) = merged.first() {
        if first.0.iter().any(|b| *b != 0) {
            out.push(KElem {
                key: vec![0; first.0.len()],
                key_end: None,
                flags: NFT_SET_ELEM_INTERVAL_END,
                verdict: None,
            });
        }
    }
    // Adjacent ranges keep both the end marker of the first and the start of the next (same
    // key, different flags), as nft sends them; the kernel rejects two starts in a row.
    for (start, end, verdict) in &merged {
        out.push(KElem {
            key: start.clone(),
            key_end: None,
            flags: 0,
            verdict: verdict.clone(),
        });
        if let Some(next) = incr(end) {
            out.push(KElem {
                key: next,
                key_end: None,
                flags: NFT_SET_ELEM_INTERVAL_END,
                verdict: None,
            });
        }
    }
    out
}

/// Pads each field of a concatenated key to 4 bytes (helper for building [`Element`](super::Element) keys).
pub fn concat_key(fields: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for f in fields {
        k.extend_from_slice(f);
        let pad = (4 - f.len() % 4) % 4;
        k.extend(std::iter::repeat_n(0u8, pad));
    }
    k
}

/// A rule's digest: FNV-1a of its encoded expressions and comment.
pub(crate) fn rule_digest(encoded_exprs: &[u8], comment: Option<&str>) -> u64 {
    fnv64(&[encoded_exprs, comment.unwrap_or("").as_bytes()])
}

/// The expressions of a rule encoded (the payload of `NFTA_RULE_EXPRESSIONS`).
pub(crate) fn encode_exprs(rule: &Rule) -> Vec<u8> {
    let mut b = MsgBuf {
        buf: Vec::with_capacity(64 * rule.exprs.len()),
    };
    for e in &rule.exprs {
        e.encode(&mut b);
    }
    b.buf
}

/// One batch under construction.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) buf: MsgBuf,
    pub(crate) table: String,
    pub(crate) first_seq: u32,
    pub(crate) labels: Vec<Label>,
}

/// nft datatypes stored in host byte order.
const HOST_ORDER_TYPES: [u32; 3] = [datatype::IFNAME, datatype::MARK, datatype::INTEGER];

const ELEMS_PER_MSG_BYTES: usize = 32 * 1024;

impl Batch {
    pub(crate) fn new(table: &str, first_seq: u32) -> Batch {
        let mut buf = MsgBuf::default();
        buf.empty_msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            first_seq,
            NFNL_SUBSYS_NFTABLES,
        );
        Batch {
            buf,
            table: table.to_string(),
            first_seq,
            labels: Vec::new(),
        }
    }

    /// Number of object messages so far.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    fn seq_of(&self, index: usize) -> u32 {
        self.first_seq
            .wrapping_add(1)
            .wrapping_add(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// The label of the message with sequence number `seq`.
    pub(crate) fn label(&self, seq: u32) -> Option<&Label> {
        let idx = seq.wrapping_sub(self.first_seq).checked_sub(1)?;
        self.labels.get(usize::try_from(idx).ok()?)
    }

    fn begin(&mut self, msg: u16, flags: u16, op: &'static str, object: &str) -> usize {
        let seq = self.seq_of(self.labels.len());
        self.labels.push(Label {
            op,
            object: object.to_string(),
        });
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.buf
            .begin_msg(ty, NLM_F_REQUEST | flags, seq, NFPROTO_INET, 0)
    }

    /// Closes the batch and returns its bytes.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Batch) {
        let seq = self.seq_of(self.labels.len());
        self.buf
            .empty_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, NFNL_SUBSYS_NFTABLES);
        let bytes = std::mem::take(&mut self.buf.buf);
        (bytes, self)
    }

    pub(crate) fn new_table(&mut self) {
        let t = self.table.clone();
        let s = self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE, "add table", &t);
        self.buf.attr_str(NFTA_TABLE_NAME, &t);
        self.buf.attr_u32(NFTA_TABLE_FLAGS, 0);
        self.buf.end_msg(s);
    }

    pub(crate) fn new_chain(&mut self, name: &str, chain: &Chain) {
        let s = self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add chain", name);
        self.buf.attr_str(NFTA_CHAIN_TABLE, &self.table);
        self.buf.attr_str(NFTA_CHAIN_NAME, name);
        if let Some(base) = &chain.base {
            let h = self.buf.nest_begin(NFTA_CHAIN_HOOK);
            self.buf.attr_u32(NFTA_HOOK_HOOKNUM, base.hook as u32);
            self.buf
                .attr(NFTA_HOOK_PRIORITY, &base.priority.to_be_bytes());
            self.buf.nest_end(h);
            self.buf
                .attr_u32(NFTA_CHAIN_POLICY, if base.policy_accept { 1 } else { 0 });
            self.buf.attr_str(NFTA_CHAIN_TYPE, "filter");
        }
        self.buf.end_msg(s);
    }

    pub(crate) fn del_chain(&mut self, name: &str) {
        let s = self.begin(NFT_MSG_DELCHAIN, 0, "delete chain", name);
        self.buf.attr_str(NFTA_CHAIN_TABLE, &self.table);
        self.buf.attr_str(NFTA_CHAIN_NAME, name);
        self.buf.end_msg(s);
    }

    /// Deletes every rule of `chain` (or of the whole table when `None`).
    pub(crate) fn flush_rules(&mut self, chain: Option<&str>) {
        let s = self.begin(
            NFT_MSG_DELRULE,
            0,
            "flush chain",
            chain.unwrap_or("<all chains>"),
        );
        self.buf.attr_str(NFTA_RULE_TABLE, &self.table);
        if let Some(c) = chain {
            self.buf.attr_str(NFTA_RULE_CHAIN, c);
        }
        self.buf.end_msg(s);
    }

    /// Appends a rule; the encoded expressions and digest are computed by the caller.
    pub(crate) fn new_rule(
        &mut self,
        chain: &str,
        index: usize,
        exprs: &[u8],
        comment: Option<&str>,
        digest: u64,
    ) {
        let s = self.begin(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            "add rule",
            &format!("{chain} #{index}"),
        );
        self.buf.attr_str(NFTA_RULE_TABLE, &self.table);
        self.buf.attr_str(NFTA_RULE_CHAIN, chain);
        let n = self.buf.nest_begin(NFTA_RULE_EXPRESSIONS);
        self.buf.buf.extend_from_slice(exprs);
        self.buf.nest_end(n);
        let d = digest.to_be_bytes();
        let c = comment.map(comment_value);
        let mut items: Vec<(u8, &[u8])> = Vec::with_capacity(2);
        if let Some(c) = &c {
            items.push((UDATA_COMMENT, c));
        }
        items.push((UDATA_CALICO_DIGEST, &d));
        self.buf.attr(NFTA_RULE_USERDATA, &udata(&items));
        self.buf.end_msg(s);
    }

    pub(crate) fn new_set(&mut self, name: &str, set: &Set) {
        let s = self.begin(NFT_MSG_NEWSET, NLM_F_CREATE, "add set", name);
        self.buf.attr_str(NFTA_SET_TABLE, &self.table);
        self.buf.attr_str(NFTA_SET_NAME, name);
        self.buf.attr_u32(NFTA_SET_FLAGS, set.flags());
        self.buf.attr_u32(NFTA_SET_KEY_TYPE, set.key_type());
        self.buf.attr_u32(NFTA_SET_KEY_LEN, set.key_len());
        // The kernel requires a transaction-local set id (used by anonymous sets).
        let id = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        self.buf.attr_u32(NFTA_SET_ID, id);
        // nft reads the key's byte order from the set's userdata to print elements (strings
        // such as interface names are host order, addresses and ports big endian).
        let order: u32 = if set.key_types.len() == 1
            && set.key_types.iter().all(|t| HOST_ORDER_TYPES.contains(t))
        {
            1
        } else {
            2
        };
        self.buf.attr(
            NFTA_SET_USERDATA,
            &udata(&[(UDATA_SET_KEYBYTEORDER, &order.to_ne_bytes())]),
        );
        if set.verdict_map {
            self.buf.attr_u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
        }
        if set.interval && set.key_lens.len() > 1 {
            // Field lengths: only interval concatenations (the pipapo backend) need them.
            let d = self.buf.nest_begin(NFTA_SET_DESC);
            let c = self.buf.nest_begin(NFTA_SET_DESC_CONCAT);
            for l in &set.key_lens {
                let e = self.buf.nest_begin(NFTA_LIST_ELEM);
                self.buf.attr_u32(NFTA_SET_FIELD_LEN, *l);
                self.buf.nest_end(e);
            }
            self.buf.nest_end(c);
            self.buf.nest_end(d);
        }
        self.buf.end_msg(s);
    }

    pub(crate) fn del_set(&mut self, name: &str) {
        let s = self.begin(NFT_MSG_DELSET, 0, "delete set", name);
        self.buf.attr_str(NFTA_SET_TABLE, &self.table);
        self.buf.attr_str(NFTA_SET_NAME, name);
        self.buf.end_msg(s);
    }

    /// Deletes every element of a set.
    pub(crate) fn flush_set(&mut self, name: &str) {
        let s = self.begin(NFT_MSG_DELSETELEM, 0, "flush set", name);
        self.buf.attr_str(NFTA_SET_ELEM_LIST_TABLE, &self.table);
        self.buf.attr_str(NFTA_SET_ELEM_LIST_SET, name);
        self.buf.end_msg(s);
    }

    /// Adds (or deletes) elements, several messages when they exceed one attribute's size.
    pub(crate) fn set_elems(&mut self, name: &str, elems: &[KElem], add: bool) {
        let mut rest = elems;
        while !rest.is_empty() {
            let (msg, op, flags) = if add {
                (NFT_MSG_NEWSETELEM, "add elements to", NLM_F_CREATE)
            } else {
                (NFT_MSG_DELSETELEM, "delete elements from", 0)
            };
            let s = self.begin(msg, flags, op, name);
            self.buf.attr_str(NFTA_SET_ELEM_LIST_TABLE, &self.table);
            self.buf.attr_str(NFTA_SET_ELEM_LIST_SET, name);
            let list = self.buf.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            let mut used = 0;
            for e in rest {
                if self.buf.buf.len() - list > ELEMS_PER_MSG_BYTES {
                    break;
                }
                used += 1;
                let el = self.buf.nest_begin(NFTA_LIST_ELEM);
                value(&mut self.buf, NFTA_SET_ELEM_KEY, &e.key);
                if let Some(k) = &e.key_end {
                    value(&mut self.buf, NFTA_SET_ELEM_KEY_END, k);
                }
                if e.flags != 0 {
                    self.buf.attr_u32(NFTA_SET_ELEM_FLAGS, e.flags);
                }
                if let Some(v) = &e.verdict {
                    let d = self.buf.nest_begin(NFTA_SET_ELEM_DATA);
                    v.encode(&mut self.buf);
                    self.buf.nest_end(d);
                }
                self.buf.nest_end(el);
            }
            self.buf.nest_end(list);
            self.buf.end_msg(s);
            rest = &rest[used..];
        }
    }
}
