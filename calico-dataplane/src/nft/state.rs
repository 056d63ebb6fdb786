//! The state of our table as the kernel holds it (read back with dumps) or as we last
//! applied it, in a form the planner compares against the desired [`Table`].

use std::collections::{BTreeMap, BTreeSet};

use super::batch::{KElem, encode_exprs, kernel_elements, rule_digest};
use super::consts::*;
use super::error::ReadError;
use super::expr::KernelVerdict;
use super::objects::{BaseChain, Hook, Set, Table};
use super::socket::NftSocket;
use super::wire;

/// What the kernel holds for one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Base-chain attachment.
    pub base: Option<BaseChain>,
    /// Per rule, the digest stored in its userdata (`None` for a rule we did not write).
    pub rule_digests: Vec<Option<u64>>,
}

/// What the kernel holds for one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetState {
    /// Set flags.
    pub flags: u32,
    /// Key type.
    pub key_type: u32,
    /// Key length.
    pub key_len: u32,
    /// A verdict map.
    pub verdict_map: bool,
    pub(crate) elements: BTreeSet<KElem>,
}

impl SetState {
    /// Number of kernel elements (interval sets count start and end markers).
    pub fn element_count(&self) -> usize {
        self.elements.len()
    }

    pub(crate) fn same_definition(&self, set: &Set) -> bool {
        self.flags == set.flags()
            && self.key_type == set.key_type()
            && self.key_len == set.key_len()
            && self.verdict_map == set.verdict_map
    }
}

/// Our table's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableState {
    /// Whether the table exists.
    pub exists: bool,
    /// Chains by name.
    pub chains: BTreeMap<String, ChainState>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, SetState>,
}

/// The desired table with everything the planner needs precomputed.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// Per chain, per rule: encoded expressions and digest.
    pub(crate) rules: BTreeMap<String, Vec<(Vec<u8>, u64)>>,
    /// Per set, its kernel elements.
    pub(crate) elements: BTreeMap<String, Vec<KElem>>,
}

impl Prepared {
    pub(crate) fn new(t: &Table) -> Prepared {
        let rules = t
            .chains
            .iter()
            .map(|(n, c)| {
                let rs = c
                    .rules
                    .iter()
                    .map(|r| {
                        let e = encode_exprs(r);
                        let d = rule_digest(&e, r.comment.as_deref());
                        (e, d)
                    })
                    .collect();
                (n.clone(), rs)
            })
            .collect();
        let elements = t
            .sets
            .iter()
            .map(|(n, s)| (n.clone(), kernel_elements(s)))
            .collect();
        Prepared { rules, elements }
    }

    /// The state the kernel holds once `t` is applied.
    pub(crate) fn into_state(mut self, t: &Table) -> TableState {
        TableState {
            exists: true,
            chains: t
                .chains
                .iter()
                .map(|(n, c)| {
                    let d = self
                        .rules
                        .get(n)
                        .map(|v| v.iter().map(|(_, d)| Some(*d)).collect())
                        .unwrap_or_default();
                    (
                        n.clone(),
                        ChainState {
                            base: c.base,
                            rule_digests: d,
                        },
                    )
                })
                .collect(),
            sets: t
                .sets
                .iter()
                .map(|(n, s)| {
                    let elements = self
                        .elements
                        .remove(n)
                        .map(|v| v.into_iter().collect())
                        .unwrap_or_default();
                    let st = SetState {
                        flags: s.flags(),
                        key_type: s.key_type(),
                        key_len: s.key_len(),
                        verdict_map: s.verdict_map,
                        elements,
                    };
                    (n.clone(), st)
                })
                .collect(),
        }
    }
}

fn hook_from(n: u32) -> Option<Hook> {
    Some(match n {
        0 => Hook::Prerouting,
        1 => Hook::Input,
        2 => Hook::Forward,
        3 => Hook::Output,
        4 => Hook::Postrouting,
        _ => return None,
    })
}

fn str_attr(p: &[u8], ty: u16) -> Option<String> {
    wire::find(p, ty).map(wire::attr_string)
}

fn be32_attr(p: &[u8], ty: u16) -> Option<u32> {
    wire::find(p, ty).and_then(wire::attr_be32)
}

fn data_value(p: &[u8]) -> Option<Vec<u8>> {
    wire::find(p, NFTA_DATA_VALUE).map(<[u8]>::to_vec)
}

/// Reads our table back from the kernel (tables, chains, rules, sets and their elements).
pub(crate) fn read_table(sock: &mut NftSocket, table: &str) -> Result<TableState, ReadError> {
    let tables = sock.dump(NFT_MSG_GETTABLE, "tables", table, |_| {})?;
    let exists = tables
        .iter()
        .any(|p| str_attr(p, NFTA_TABLE_NAME).as_deref() == Some(table));
    let mut st = TableState {
        exists,
        ..TableState::default()
    };
    if !exists {
        return Ok(st);
    }
    for p in sock.dump(NFT_MSG_GETCHAIN, "chains", table, |b| {
        b.attr_str(NFTA_CHAIN_TABLE, table)
    })? {
        if str_attr(&p, NFTA_CHAIN_TABLE).as_deref() != Some(table) {
            continue;
        }
        let Some(name) = str_attr(&p, NFTA_CHAIN_NAME) else {
            continue;
        };
        let base = wire::find(&p, NFTA_CHAIN_HOOK).and_then(|h| {
            let hook = hook_from(be32_attr(h, NFTA_HOOK_HOOKNUM)?)?;
            let priority = be32_attr(h, NFTA_HOOK_PRIORITY)? as i32;
            let policy_accept = be32_attr(&p, NFTA_CHAIN_POLICY).unwrap_or(1) == 1;
            Some(BaseChain {
                hook,
                priority,
                policy_accept,
            })
        });
        st.chains.insert(
            name,
            ChainState {
                base,
                rule_digests: Vec::new(),
            },
        );
    }
    for p in sock.dump(NFT_MSG_GETRULE, "rules", table, |b| {
        b.attr_str(NFTA_RULE_TABLE, table)
    })? {
        if str_attr(&p, NFTA_RULE_TABLE).as_deref() != Some(table) {
            continue;
        }
        let Some(chain) = str_attr(&p, NFTA_RULE_CHAIN) else {
            continue;
        };
        let digest = wire::find(&p, NFTA_RULE_USERDATA).and_then(|u| {
            wire::parse_udata(u)
                .into_iter()
                .find(|(t, _)| *t == UDATA_CALICO_DIGEST)
                .and_then(|(_, v)| Some(u64::from_be_bytes(v.try_into().ok()?)))
        });
        if let Some(c) = st.chains.get_mut(&chain) {
            c.rule_digests.push(digest);
        }
    }
    let mut names = Vec::new();
    for p in sock.dump(NFT_MSG_GETSET, "sets", table, |b| {
        b.attr_str(NFTA_SET_TABLE, table)
    })? {
        if str_attr(&p, NFTA_SET_TABLE).as_deref() != Some(table) {
            continue;
        }
        let Some(name) = str_attr(&p, NFTA_SET_NAME) else {
            continue;
        };
        let flags = be32_attr(&p, NFTA_SET_FLAGS).unwrap_or(0);
        let s = SetState {
            flags,
            key_type: be32_attr(&p, NFTA_SET_KEY_TYPE).unwrap_or(0),
            key_len: be32_attr(&p, NFTA_SET_KEY_LEN).unwrap_or(0),
            verdict_map: be32_attr(&p, NFTA_SET_DATA_TYPE) == Some(NFT_DATA_VERDICT),
            elements: BTreeSet::new(),
        };
        names.push(name.clone());
        st.sets.insert(name, s);
    }
    for name in names {
        let replies = sock.dump(NFT_MSG_GETSETELEM, "set elements", table, |b| {
            b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
            b.attr_str(NFTA_SET_ELEM_LIST_SET, &name);
        })?;
        let Some(set) = st.sets.get_mut(&name) else {
            continue;
        };
        for p in replies {
            let Some(list) = wire::find(&p, NFTA_SET_ELEM_LIST_ELEMENTS) else {
                continue;
            };
            for (_, e) in wire::attrs(list) {
                let Some(key) = wire::find(e, NFTA_SET_ELEM_KEY).and_then(data_value) else {
                    continue;
                };
                let key_end = wire::find(e, NFTA_SET_ELEM_KEY_END).and_then(data_value);
                let flags = be32_attr(e, NFTA_SET_ELEM_FLAGS).unwrap_or(0);
                let verdict = wire::find(e, NFTA_SET_ELEM_DATA)
                    .and_then(|d| wire::find(d, NFTA_DATA_VERDICT))
                    .and_then(KernelVerdict::decode);
                set.elements.insert(KElem {
                    key,
                    key_end,
                    flags,
                    verdict,
                });
            }
        }
    }
    Ok(st)
}
