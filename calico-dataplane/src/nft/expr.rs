//! nf_tables expressions (the kernel's rule bytecode) and their netlink encoding.

use super::consts::*;
use super::wire::MsgBuf;

/// An nf_tables register number as the kernel numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(pub u32);

impl Reg {
    /// The verdict register.
    pub const VERDICT: Reg = Reg(0);
    /// The first 16-byte data register (`NFT_REG_1`).
    pub const R1: Reg = Reg(1);

    /// The register holding the 32-bit word `word` of a value loaded at `NFT_REG_1`
    /// (word 0 is `NFT_REG_1` itself, later words are `NFT_REG32_01` ...), as nft numbers
    /// the fields of a concatenation.
    pub fn word(word: u32) -> Reg {
        if word == 0 { Reg::R1 } else { Reg(8 + word) }
    }
}

/// A verdict as the kernel encodes it: what an `immediate` statement or a verdict-map
/// element decides. Unlike the ruleset model's [`calico_nft::Verdict`] (what a rule may say),
/// it also has [`KernelVerdict::Continue`], which the kernel reports for rules that end
/// without one, and it knows its netlink encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelVerdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `continue`.
    Continue,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
}

impl KernelVerdict {
    fn code(&self) -> i32 {
        match self {
            KernelVerdict::Accept => NF_ACCEPT,
            KernelVerdict::Drop => NF_DROP,
            KernelVerdict::Continue => NFT_CONTINUE,
            KernelVerdict::Return => NFT_RETURN,
            KernelVerdict::Jump(_) => NFT_JUMP,
            KernelVerdict::Goto(_) => NFT_GOTO,
        }
    }

    /// The chain a jump or goto targets.
    pub fn target(&self) -> Option<&str> {
        match self {
            KernelVerdict::Jump(c) | KernelVerdict::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// Encodes `NFTA_DATA_VERDICT` (inside an already opened data nest).
    pub(crate) fn encode(&self, b: &mut MsgBuf) {
        let v = b.nest_begin(NFTA_DATA_VERDICT);
        b.attr(NFTA_VERDICT_CODE, &self.code().to_be_bytes());
        if let Some(c) = self.target() {
            b.attr_str(NFTA_VERDICT_CHAIN, c);
        }
        b.nest_end(v);
    }

    /// Decodes `NFTA_DATA_VERDICT`'s payload.
    pub(crate) fn decode(p: &[u8]) -> Option<KernelVerdict> {
        let code = super::wire::attr_be32(super::wire::find(p, NFTA_VERDICT_CODE)?)? as i32;
        let chain = super::wire::find(p, NFTA_VERDICT_CHAIN).map(super::wire::attr_string);
        Some(match (code, chain) {
            (NF_ACCEPT, _) => KernelVerdict::Accept,
            (NF_DROP, _) => KernelVerdict::Drop,
            (NFT_CONTINUE, _) => KernelVerdict::Continue,
            (NFT_RETURN, _) => KernelVerdict::Return,
            (NFT_JUMP, Some(c)) => KernelVerdict::Jump(c),
            (NFT_GOTO, Some(c)) => KernelVerdict::Goto(c),
            _ => return None,
        })
    }
}

/// Meta keys (`NFT_META_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MetaKey {
    /// Packet length.
    Len = 0,
    /// Ethertype.
    Protocol = 1,
    /// Packet mark.
    Mark = 3,
    /// Input interface index.
    Iif = 4,
    /// Output interface index.
    Oif = 5,
    /// Input interface name (16 bytes).
    IifName = 6,
    /// Output interface name (16 bytes).
    OifName = 7,
    /// Netfilter protocol family (1 byte).
    NfProto = 15,
    /// Layer-4 protocol number (1 byte).
    L4Proto = 16,
}

/// Payload bases (`NFT_PAYLOAD_*_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PayloadBase {
    /// Link-layer header.
    LinkLayer = 0,
    /// Network header.
    Network = 1,
    /// Transport header.
    Transport = 2,
}

/// Comparison operators (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CmpOp {
    /// `==`.
    Eq = 0,
    /// `!=`.
    Neq = 1,
    /// `<`.
    Lt = 2,
    /// `<=`.
    Lte = 3,
    /// `>`.
    Gt = 4,
    /// `>=`.
    Gte = 5,
}

/// Conntrack keys (`NFT_CT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CtKey {
    /// Connection state bits (4 bytes, host order).
    State = 0,
    /// Direction.
    Direction = 1,
    /// Status bits.
    Status = 2,
    /// Connection mark.
    Mark = 3,
}

/// One nf_tables expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Load a meta key into `dreg`.
    Meta {
        /// Key.
        key: MetaKey,
        /// Destination register.
        dreg: Reg,
    },
    /// Set a meta key from `sreg` (`meta mark set ...`).
    MetaSet {
        /// Key.
        key: MetaKey,
        /// Source register.
        sreg: Reg,
    },
    /// Load `len` bytes at `offset` of a header into `dreg`.
    Payload {
        /// Header.
        base: PayloadBase,
        /// Byte offset.
        offset: u32,
        /// Byte count.
        len: u32,
        /// Destination register.
        dreg: Reg,
    },
    /// Compare a register with data; break the rule when false.
    Cmp {
        /// Source register.
        sreg: Reg,
        /// Operator.
        op: CmpOp,
        /// Data (length = compared bytes).
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor` over `mask.len()` bytes.
    Bitwise {
        /// Source register.
        sreg: Reg,
        /// Destination register.
        dreg: Reg,
        /// Mask.
        mask: Vec<u8>,
        /// Xor (same length as mask).
        xor: Vec<u8>,
    },
    /// Look a register up in a named set or map.
    Lookup {
        /// Set name.
        set: String,
        /// Source register.
        sreg: Reg,
        /// For maps: where the element's data goes (`Reg::VERDICT` for verdict maps).
        dreg: Option<Reg>,
        /// Match when NOT found.
        invert: bool,
    },
    /// Load a constant value into a data register.
    ImmediateData {
        /// Destination register.
        dreg: Reg,
        /// Value.
        data: Vec<u8>,
    },
    /// Set the verdict.
    Verdict(KernelVerdict),
    /// Load a conntrack key.
    Ct {
        /// Key.
        key: CtKey,
        /// Destination register.
        dreg: Reg,
    },
    /// Range test `from <= sreg <= to` (or its negation).
    Range {
        /// Source register.
        sreg: Reg,
        /// `Eq` (inside) or `Neq` (outside).
        op: CmpOp,
        /// Low bound.
        from: Vec<u8>,
        /// High bound.
        to: Vec<u8>,
    },
    /// Log the packet.
    Log {
        /// Prefix.
        prefix: Option<String>,
        /// Syslog level.
        level: Option<u32>,
        /// NFLOG group instead of syslog.
        group: Option<u16>,
    },
    /// Count packets and bytes.
    Counter,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::ImmediateData { .. } | Expr::Verdict(_) => "immediate",
            Expr::Ct { .. } => "ct",
            Expr::Range { .. } => "range",
            Expr::Log { .. } => "log",
            Expr::Counter => "counter",
        }
    }

    /// Encodes this expression as one `NFTA_LIST_ELEM` of a rule's expression list.
    pub(crate) fn encode(&self, b: &mut MsgBuf) {
        let el = b.nest_begin(NFTA_LIST_ELEM);
        b.attr_str(NFTA_EXPR_NAME, self.name());
        let d = b.nest_begin(NFTA_EXPR_DATA);
        match self {
            Expr::Meta { key, dreg } => {
                b.attr_u32(NFTA_META_KEY, *key as u32);
                b.attr_u32(NFTA_META_DREG, dreg.0);
            }
            Expr::MetaSet { key, sreg } => {
                b.attr_u32(NFTA_META_KEY, *key as u32);
                b.attr_u32(NFTA_META_SREG, sreg.0);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                b.attr_u32(NFTA_PAYLOAD_DREG, dreg.0);
                b.attr_u32(NFTA_PAYLOAD_BASE, *base as u32);
                b.attr_u32(NFTA_PAYLOAD_OFFSET, *offset);
                b.attr_u32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                b.attr_u32(NFTA_CMP_SREG, sreg.0);
                b.attr_u32(NFTA_CMP_OP, *op as u32);
                value(b, NFTA_CMP_DATA, data);
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                b.attr_u32(NFTA_BITWISE_SREG, sreg.0);
                b.attr_u32(NFTA_BITWISE_DREG, dreg.0);
                b.attr_u32(NFTA_BITWISE_LEN, u32::try_from(mask.len()).unwrap_or(0));
                value(b, NFTA_BITWISE_MASK, mask);
                value(b, NFTA_BITWISE_XOR, xor);
            }
            Expr::Lookup {
                set,
                sreg,
                dreg,
                invert,
            } => {
                b.attr_str(NFTA_LOOKUP_SET, set);
                b.attr_u32(NFTA_LOOKUP_SREG, sreg.0);
                if let Some(d) = dreg {
                    b.attr_u32(NFTA_LOOKUP_DREG, d.0);
                }
                if *invert {
                    b.attr_u32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::ImmediateData { dreg, data } => {
                b.attr_u32(NFTA_IMMEDIATE_DREG, dreg.0);
                value(b, NFTA_IMMEDIATE_DATA, data);
            }
            Expr::Verdict(v) => {
                b.attr_u32(NFTA_IMMEDIATE_DREG, Reg::VERDICT.0);
                let n = b.nest_begin(NFTA_IMMEDIATE_DATA);
                v.encode(b);
                b.nest_end(n);
            }
            Expr::Ct { key, dreg } => {
                b.attr_u32(NFTA_CT_KEY, *key as u32);
                b.attr_u32(NFTA_CT_DREG, dreg.0);
            }
            Expr::Range { sreg, op, from, to } => {
                b.attr_u32(NFTA_RANGE_SREG, sreg.0);
                b.attr_u32(NFTA_RANGE_OP, *op as u32);
                value(b, NFTA_RANGE_FROM_DATA, from);
                value(b, NFTA_RANGE_TO_DATA, to);
            }
            Expr::Log {
                prefix,
                level,
                group,
            } => {
                if let Some(g) = group {
                    b.attr(NFTA_LOG_GROUP, &g.to_be_bytes());
                }
                if let Some(p) = prefix {
                    b.attr_str(NFTA_LOG_PREFIX, p);
                }
                if let Some(l) = level {
                    b.attr_u32(NFTA_LOG_LEVEL, *l);
                }
            }
            Expr::Counter => {}
        }
        b.nest_end(d);
        b.nest_end(el);
    }
}

/// Encodes `NFTA_DATA_VALUE` inside a nest of type `ty`.
pub(crate) fn value(b: &mut MsgBuf, ty: u16, data: &[u8]) {
    let n = b.nest_begin(ty);
    b.attr(NFTA_DATA_VALUE, data);
    b.nest_end(n);
}
