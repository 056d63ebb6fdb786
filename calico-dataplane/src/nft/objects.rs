//! The desired contents of one nftables table, at the kernel's level (sets with encoded
//! elements, chains with expression lists).

use std::collections::BTreeMap;

use super::expr::{Expr, KernelVerdict};

/// Netfilter hooks (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Hook {
    /// prerouting.
    Prerouting = 0,
    /// input.
    Input = 1,
    /// forward.
    Forward = 2,
    /// output.
    Output = 3,
    /// postrouting.
    Postrouting = 4,
}

/// The hook attachment of a base chain (`type filter hook H priority P; policy V;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// Hook.
    pub hook: Hook,
    /// Priority (filter = 0).
    pub priority: i32,
    /// Policy: true = accept, false = drop.
    pub policy_accept: bool,
}

/// One rule: its expressions and an optional comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Expressions in order.
    pub exprs: Vec<Expr>,
    /// Comment shown by `nft list`.
    pub comment: Option<String>,
}

/// A chain: optional base-chain attachment and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// `Some` for a base chain.
    pub base: Option<BaseChain>,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// One element of a set or map: its key (fields padded to 4 bytes and concatenated, as the
/// kernel stores them), for interval sets the inclusive last key, and for maps the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Element {
    /// First (or only) key.
    pub key: Vec<u8>,
    /// Inclusive end of a range (interval sets only; `None` = single value).
    pub key_end: Option<Vec<u8>>,
    /// Verdict (verdict maps only).
    pub verdict: Option<KernelVerdict>,
}

/// A named set or verdict map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// nft datatype ids of the key fields (one entry unless concatenated), e.g. 7 = ipv4_addr.
    pub key_types: Vec<u32>,
    /// Byte length of each key field (unpadded), e.g. 4 for ipv4_addr, 16 for ifname.
    pub key_lens: Vec<u32>,
    /// `flags interval`.
    pub interval: bool,
    /// A verdict map (`type K : verdict`).
    pub verdict_map: bool,
    /// Elements (order irrelevant).
    pub elements: Vec<Element>,
}

/// nft datatype ids (`enum datatypes` of nft) for the key types Calico uses.
pub mod datatype {
    /// `verdict`.
    pub const VERDICT: u32 = 1;
    /// `integer`.
    pub const INTEGER: u32 = 4;
    /// `ipv4_addr`.
    pub const IPADDR: u32 = 7;
    /// `ipv6_addr`.
    pub const IP6ADDR: u32 = 8;
    /// `inet_proto`.
    pub const INET_PROTOCOL: u32 = 12;
    /// `inet_service`.
    pub const INET_SERVICE: u32 = 13;
    /// `mark`.
    pub const MARK: u32 = 19;
    /// `ifname`.
    pub const IFNAME: u32 = 41;
}

impl Set {
    /// A set of single-field keys.
    pub fn new(key_type: u32, key_len: u32, interval: bool) -> Set {
        Set {
            key_types: vec![key_type],
            key_lens: vec![key_len],
            interval,
            verdict_map: false,
            elements: Vec::new(),
        }
    }

    /// The set's key type as nft encodes it (concatenations fold 6 bits per field).
    pub fn key_type(&self) -> u32 {
        self.key_types.iter().fold(0u32, |acc, t| (acc << 6) | t)
    }

    /// The key length in bytes (fields padded to 4 bytes when concatenated).
    pub fn key_len(&self) -> u32 {
        if self.key_lens.len() == 1 {
            self.key_lens[0]
        } else {
            self.key_lens.iter().map(|l| l.div_ceil(4) * 4).sum()
        }
    }

    /// The set flags sent to the kernel.
    pub fn flags(&self) -> u32 {
        use super::consts::{NFT_SET_CONCAT, NFT_SET_INTERVAL, NFT_SET_MAP};
        let mut f = 0;
        if self.interval {
            f |= NFT_SET_INTERVAL;
            if self.key_lens.len() > 1 {
                f |= NFT_SET_CONCAT;
            }
        }
        if self.verdict_map {
            f |= NFT_SET_MAP;
        }
        f
    }
}

/// The desired contents of one table in the `inet` family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Sets and maps by name.
    pub sets: BTreeMap<String, Set>,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
}
