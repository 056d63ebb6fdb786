//! Address arithmetic, the FNV-1 and splitmix64 mixers and the per-host start index.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The address as an integer (IPv4 in the low 32 bits).
pub fn addr_to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of integer `v` in the given family (IPv4 uses the low 32 bits).
pub fn u128_to_addr(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Bits in the family of `net`: 32 or 128.
pub fn width(v4: bool) -> u8 {
    if v4 { 32 } else { 128 }
}

/// A network from integer base and prefix length (masked).
pub fn net_of(base: u128, len: u8, v4: bool) -> IpNet {
    let addr = u128_to_addr(base, v4);
    let net = match addr {
        IpAddr::V4(a) => Ipv4Net::new(a, len.min(32)).map(IpNet::V4),
        IpAddr::V6(a) => Ipv6Net::new(a, len.min(128)).map(IpNet::V6),
    };
    match net {
        Ok(n) => n.trunc(),
        Err(_) => IpNet::from(addr),
    }
}

/// The number of addresses in `net` (saturating at `u128::MAX` for `::/0`).
pub fn size(net: &IpNet) -> u128 {
    let host_bits = u32::from(width(is_v4(net)) - net.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// Whether `net` is IPv4.
pub fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

/// The first address of `net` as an integer.
pub fn base(net: &IpNet) -> u128 {
    addr_to_u128(net.network())
}

/// The last address of `net` as an integer.
pub fn last(net: &IpNet) -> u128 {
    base(net).saturating_add(size(net) - 1)
}

/// The block of `addr` for a block prefix length `len`.
pub fn block_of(addr: IpAddr, len: u8) -> IpNet {
    net_of(addr_to_u128(addr), len, addr.is_ipv4())
}

/// Whether two networks overlap.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    is_v4(a) == is_v4(b) && base(a) <= last(b) && base(b) <= last(a)
}

/// FNV-1 (multiply before XOR), 32 bits.
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h = h.wrapping_mul(16_777_619);
        h ^= u32::from(b);
    }
    h
}

/// The splitmix64 output function applied once to `z`.
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The start index of `host` in a pool of `n` blocks: `splitmix64(fnv1_32(host)) mod n`.
pub fn start_index(host: &str, n: u128) -> u128 {
    if n == 0 {
        return 0;
    }
    u128::from(splitmix64(u64::from(fnv1_32(host.as_bytes())))) % n
}

/// Merged, sorted, inclusive integer intervals of the networks of one family.
pub fn merge_intervals(nets: impl IntoIterator<Item = (u128, u128)>) -> Vec<(u128, u128)> {
    let mut v: Vec<(u128, u128)> = nets.into_iter().collect();
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// How many integers of `[s, e]` the merged `intervals` cover.
pub fn covered(intervals: &[(u128, u128)], s: u128, e: u128) -> u128 {
    intervals
        .iter()
        .filter(|(a, b)| *a <= e && s <= *b)
        .map(|(a, b)| (*b).min(e) - (*a).max(s) + 1)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_worked_examples() {
        assert_eq!(fnv1_32(b"node-a"), 568_266_999);
        assert_eq!(fnv1_32(b"node-b"), 568_266_996);
        assert_eq!(fnv1_32(b"node-c"), 568_266_997);
        assert_eq!(fnv1_32(b"worker-1"), 2_999_756_865);
    }

    #[test]
    fn start_indexes_match_the_worked_examples() {
        assert_eq!(start_index("node-a", 16), 0);
        assert_eq!(start_index("node-b", 16), 11);
        assert_eq!(start_index("node-c", 16), 7);
        assert_eq!(start_index("worker-1", 16), 1);
    }

    #[test]
    fn intervals_merge_and_cover() {
        let m = merge_intervals([(10, 20), (0, 5), (6, 8), (30, 40)]);
        assert_eq!(m, vec![(0, 8), (10, 20), (30, 40)]);
        assert_eq!(covered(&m, 0, 40), 9 + 11 + 11);
        assert_eq!(covered(&m, 9, 9), 0);
    }
}
