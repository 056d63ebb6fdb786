//! Expression sequences for the matches and statements Calico's rules use, laid out exactly
//! as `nft` compiles the equivalent text (including its implicit protocol dependencies), so
//! that `nft list` prints our rules as it prints rules loaded from text.

use std::net::IpAddr;

use ipnet::IpNet;

use super::expr::{CmpOp, CtKey, Expr, KernelVerdict, MetaKey, PayloadBase, Reg};

/// `NFPROTO_IPV4`.
pub const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
pub const NFPROTO_IPV6: u8 = 10;

/// Conntrack state bits (`ct state`).
pub mod ct_state {
    /// invalid.
    pub const INVALID: u32 = 1;
    /// established.
    pub const ESTABLISHED: u32 = 2;
    /// related.
    pub const RELATED: u32 = 4;
    /// new.
    pub const NEW: u32 = 8;
    /// untracked.
    pub const UNTRACKED: u32 = 64;
}

fn load_cmp(load: Expr, op: CmpOp, data: Vec<u8>) -> Vec<Expr> {
    vec![
        load,
        Expr::Cmp {
            sreg: Reg::R1,
            op,
            data,
        },
    ]
}

/// `meta KEY == value` (or `!=`) with a raw value.
pub fn meta_cmp(key: MetaKey, op: CmpOp, data: Vec<u8>) -> Vec<Expr> {
    load_cmp(Expr::Meta { key, dreg: Reg::R1 }, op, data)
}

/// The implicit `meta nfproto ipv4|ipv6` dependency of an address match in an inet table.
pub fn nfproto(v6: bool) -> Vec<Expr> {
    meta_cmp(
        MetaKey::NfProto,
        CmpOp::Eq,
        vec![if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }],
    )
}

/// `meta l4proto P`.
pub fn l4proto(proto: u8) -> Vec<Expr> {
    meta_cmp(MetaKey::L4Proto, CmpOp::Eq, vec![proto])
}

/// `meta l4proto != P`.
pub fn l4proto_not(proto: u8) -> Vec<Expr> {
    meta_cmp(MetaKey::L4Proto, CmpOp::Neq, vec![proto])
}

fn addr_load(v6: bool, source: bool, len: u32) -> Expr {
    let offset = match (v6, source) {
        (false, true) => 12,
        (false, false) => 16,
        (true, true) => 8,
        (true, false) => 24,
    };
    Expr::Payload {
        base: PayloadBase::Network,
        offset,
        len,
        dreg: Reg::R1,
    }
}

/// `ip saddr @set` / `ip6 daddr != @set` (with the nfproto dependency).
pub fn addr_in_set(v6: bool, source: bool, set: &str, negate: bool) -> Vec<Expr> {
    let mut v = nfproto(v6);
    v.push(addr_load(v6, source, if v6 { 16 } else { 4 }));
    v.push(Expr::Lookup {
        set: set.to_string(),
        sreg: Reg::R1,
        dreg: None,
        invert: negate,
    });
    v
}

/// `ip saddr 10.0.0.0/8` / `ip6 daddr != fd00::1` (with the nfproto dependency). Prefixes
/// on a byte boundary load only the prefix bytes; others load the whole address and mask it.
pub fn addr_match(source: bool, net: IpNet, negate: bool) -> Vec<Expr> {
    let v6 = matches!(net, IpNet::V6(_));
    let bytes: Vec<u8> = match net.network() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let plen = usize::from(net.prefix_len());
    let op = if negate { CmpOp::Neq } else { CmpOp::Eq };
    let mut v = nfproto(v6);
    if plen % 8 == 0 {
        let n = plen / 8;
        v.push(addr_load(v6, source, u32::try_from(n).unwrap_or(0)));
        v.push(Expr::Cmp {
            sreg: Reg::R1,
            op,
            data: bytes[..n].to_vec(),
        });
    } else {
        // As nft: the whole address, masked, compared with the network address.
        let n = bytes.len();
        let mut mask = vec![0u8; n];
        for (i, m) in mask.iter_mut().enumerate() {
            let bits = plen.saturating_sub(i * 8).min(8);
            *m = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        v.push(addr_load(v6, source, u32::try_from(n).unwrap_or(0)));
        v.push(Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask,
            xor: vec![0; n],
        });
        v.push(Expr::Cmp {
            sreg: Reg::R1,
            op,
            data: bytes,
        });
    }
    v
}

fn port_load(source: bool) -> Expr {
    Expr::Payload {
        base: PayloadBase::Transport,
        offset: if source { 0 } else { 2 },
        len: 2,
        dreg: Reg::R1,
    }
}

/// `tcp dport 443` / `udp sport != 53` (after the caller's `meta l4proto` match).
pub fn port_eq(source: bool, port: u16, negate: bool) -> Vec<Expr> {
    load_cmp(
        port_load(source),
        if negate { CmpOp::Neq } else { CmpOp::Eq },
        port.to_be_bytes().to_vec(),
    )
}

/// `tcp dport 8000-8080` (two comparisons, as nft emits) or `!= 8000-8080` (a range).
pub fn port_range(source: bool, lo: u16, hi: u16, negate: bool) -> Vec<Expr> {
    if negate {
        vec![
            port_load(source),
            Expr::Range {
                sreg: Reg::R1,
                op: CmpOp::Neq,
                from: lo.to_be_bytes().to_vec(),
                to: hi.to_be_bytes().to_vec(),
            },
        ]
    } else {
        vec![
            port_load(source),
            Expr::Cmp {
                sreg: Reg::R1,
                op: CmpOp::Gte,
                data: lo.to_be_bytes().to_vec(),
            },
            Expr::Cmp {
                sreg: Reg::R1,
                op: CmpOp::Lte,
                data: hi.to_be_bytes().to_vec(),
            },
        ]
    }
}

/// `tcp dport @set` / `!= @set`.
pub fn port_in_set(source: bool, set: &str, negate: bool) -> Vec<Expr> {
    vec![
        port_load(source),
        Expr::Lookup {
            set: set.to_string(),
            sreg: Reg::R1,
            dreg: None,
            invert: negate,
        },
    ]
}

/// `ip daddr . meta l4proto . th dport @set` (the named-port concatenation).
pub fn addr_proto_port_in_set(v6: bool, source: bool, set: &str) -> Vec<Expr> {
    let alen = if v6 { 16 } else { 4 };
    let mut v = nfproto(v6);
    v.push(addr_load(v6, source, alen));
    let w = alen / 4;
    v.push(Expr::Meta {
        key: MetaKey::L4Proto,
        dreg: Reg::word(w),
    });
    v.push(Expr::Payload {
        base: PayloadBase::Transport,
        offset: if source { 0 } else { 2 },
        len: 2,
        dreg: Reg::word(w + 1),
    });
    v.push(Expr::Lookup {
        set: set.to_string(),
        sreg: Reg::R1,
        dreg: None,
        invert: false,
    });
    v
}

/// `icmp type T` / `icmp code C` (byte 0 or 1 of the ICMP header).
pub fn icmp_field(code: bool, value: u8, negate: bool) -> Vec<Expr> {
    load_cmp(
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: u32::from(code),
            len: 1,
            dreg: Reg::R1,
        },
        if negate { CmpOp::Neq } else { CmpOp::Eq },
        vec![value],
    )
}

fn ifname_bytes(name: &str) -> Vec<u8> {
    match name.strip_suffix('*') {
        Some(prefix) => prefix.as_bytes().to_vec(),
        None => {
            let mut b = name.as_bytes().to_vec();
            b.resize(16, 0);
            b
        }
    }
}

/// `iifname "cali*"` / `oifname "eth0"` (a trailing `*` matches a prefix).
pub fn ifname(input: bool, name: &str, negate: bool) -> Vec<Expr> {
    let key = if input {
        MetaKey::IifName
    } else {
        MetaKey::OifName
    };
    meta_cmp(
        key,
        if negate { CmpOp::Neq } else { CmpOp::Eq },
        ifname_bytes(name),
    )
}

/// An interface name as a set or map key (16 bytes, NUL padded).
pub fn ifname_key(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

/// `iifname vmap @map` / `oifname vmap @map`.
pub fn ifname_vmap(input: bool, map: &str) -> Vec<Expr> {
    let key = if input {
        MetaKey::IifName
    } else {
        MetaKey::OifName
    };
    vec![
        Expr::Meta { key, dreg: Reg::R1 },
        Expr::Lookup {
            set: map.to_string(),
            sreg: Reg::R1,
            dreg: Some(Reg::VERDICT),
            invert: false,
        },
    ]
}

/// `ct state S1,S2` (any of the bits).
pub fn ct_state_any(bits: u32) -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CtKey::State,
            dreg: Reg::R1,
        },
        Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: Reg::R1,
            op: CmpOp::Neq,
            data: vec![0; 4],
        },
    ]
}

/// `meta mark & BITS == BITS`.
pub fn mark_all_set(bits: u32) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::Mark,
            dreg: Reg::R1,
        },
        Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: Reg::R1,
            op: CmpOp::Eq,
            data: bits.to_ne_bytes().to_vec(),
        },
    ]
}

/// `meta mark set (meta mark & AND) | OR` (one bitwise expression: mask `AND & !OR`, xor `OR`).
pub fn mark_set(and: u32, or: u32) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::Mark,
            dreg: Reg::R1,
        },
        Expr::Bitwise {
            sreg: Reg::R1,
            dreg: Reg::R1,
            mask: (and & !or).to_ne_bytes().to_vec(),
            xor: or.to_ne_bytes().to_vec(),
        },
        Expr::MetaSet {
            key: MetaKey::Mark,
            sreg: Reg::R1,
        },
    ]
}

/// `meta mark set meta mark | BITS`.
pub fn mark_or(bits: u32) -> Vec<Expr> {
    mark_set(u32::MAX, bits)
}

/// `meta mark set meta mark & MASK`.
pub fn mark_and(mask: u32) -> Vec<Expr> {
    mark_set(mask, 0)
}

/// `log prefix "P" level L` (syslog levels: 6 = info).
pub fn log(prefix: Option<&str>, level: Option<u32>) -> Vec<Expr> {
    vec![Expr::Log {
        prefix: prefix.map(str::to_string),
        level,
        group: None,
    }]
}

/// `counter`.
pub fn counter() -> Vec<Expr> {
    vec![Expr::Counter]
}

/// A verdict statement.
pub fn verdict(v: KernelVerdict) -> Vec<Expr> {
    vec![Expr::Verdict(v)]
}
