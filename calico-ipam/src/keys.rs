//! The store layout of ipam.md §1.7.
//!
//! | Key | Value |
//! |---|---|
//! | `ipam/v1/config` | IPAM config (IPAMConfiguration spec, JSON) |
//! | `ipam/v1/block/<4\|6>/<addr-hex>-<len>` | [`Block`](crate::Block) |
//! | `ipam/v1/affinity/<host\|virtual>/<owner>/<4\|6>/<addr-hex>-<len>` | [`AffinityRecord`](crate::AffinityRecord) |
//! | `ipam/v1/handle/<escaped id>` | [`Handle`](crate::Handle) |
//! | `ipam/v1/empty/<4\|6>/<addr-hex>-<len>` | [`EmptyMarker`](crate::EmptyMarker) |
//!
//! `addr-hex` is fixed width (8 or 32 lowercase digits) and `len` 2 or 3 digits, so key order
//! is address order. Owners and handle IDs have `%` and `/` percent-encoded.

use ipnet::IpNet;

use crate::net::{addr_to_u128, base, is_v4, net_of};
use crate::records::Owner;

/// The config key.
pub const CONFIG: &str = "ipam/v1/config";
/// Prefix of every block key.
pub const BLOCK_PREFIX: &str = "ipam/v1/block/";
/// Prefix of every affinity key.
pub const AFFINITY_PREFIX: &str = "ipam/v1/affinity/";
/// Prefix of every handle key.
pub const HANDLE_PREFIX: &str = "ipam/v1/handle/";
/// Prefix of every empty-marker key.
pub const EMPTY_PREFIX: &str = "ipam/v1/empty/";

fn fam(v4: bool) -> &'static str {
    if v4 { "4" } else { "6" }
}

/// `<4|6>/<addr-hex>-<len>` of a network.
pub fn cidr_part(net: &IpNet) -> String {
    if is_v4(net) {
        format!("4/{:08x}-{:02}", base(net) as u32, net.prefix_len())
    } else {
        format!("6/{:032x}-{:03}", base(net), net.prefix_len())
    }
}

/// The network of a `<4|6>/<addr-hex>-<len>` suffix.
pub fn parse_cidr_part(s: &str) -> Option<IpNet> {
    let (f, rest) = s.split_once('/')?;
    let (hex, len) = rest.split_once('-')?;
    let v4 = match f {
        "4" if hex.len() == 8 && len.len() == 2 => true,
        "6" if hex.len() == 32 && len.len() == 3 => false,
        _ => return None,
    };
    let b = u128::from_str_radix(hex, 16).ok()?;
    let l: u8 = len.parse().ok()?;
    if l > crate::net::width(v4) {
        return None;
    }
    let net = net_of(b, l, v4);
    (base(&net) == b).then_some(net)
}

/// Key of a block.
pub fn block(net: &IpNet) -> String {
    format!("{BLOCK_PREFIX}{}", cidr_part(net))
}

/// Key of a block key for an address position (used as a range start).
pub fn block_at(addr: u128, len: u8, v4: bool) -> String {
    block(&net_of(addr, len, v4))
}

/// Prefix of the block keys of one family.
pub fn block_family_prefix(v4: bool) -> String {
    format!("{BLOCK_PREFIX}{}/", fam(v4))
}

/// The block network of a block key.
pub fn parse_block(key: &[u8]) -> Option<IpNet> {
    let s = std::str::from_utf8(key).ok()?;
    parse_cidr_part(s.strip_prefix(BLOCK_PREFIX)?)
}

/// Key of an affinity.
pub fn affinity(owner: &Owner, net: &IpNet) -> String {
    format!("{}{}", affinity_owner_prefix(owner), cidr_part(net))
}

/// Prefix of every affinity of `owner`.
pub fn affinity_owner_prefix(owner: &Owner) -> String {
    format!(
        "{AFFINITY_PREFIX}{}/{}/",
        owner.kind_str(),
        escape(owner.name())
    )
}

/// Prefix of the affinities of `owner` in one family.
pub fn affinity_family_prefix(owner: &Owner, v4: bool) -> String {
    format!("{}{}/", affinity_owner_prefix(owner), fam(v4))
}

/// The owner and block of an affinity key.
pub fn parse_affinity(key: &[u8]) -> Option<(Owner, IpNet)> {
    let s = std::str::from_utf8(key).ok()?;
    let rest = s.strip_prefix(AFFINITY_PREFIX)?;
    let (kind, rest) = rest.split_once('/')?;
    let (name, rest) = rest.split_once('/')?;
    let name = unescape(name)?;
    let owner = match kind {
        "host" => Owner::Host(name),
        "virtual" => Owner::Virtual(name),
        _ => return None,
    };
    Some((owner, parse_cidr_part(rest)?))
}

/// Key of a handle.
pub fn handle(id: &str) -> String {
    format!("{HANDLE_PREFIX}{}", escape(id))
}

/// The handle ID of a handle key.
pub fn parse_handle(key: &[u8]) -> Option<String> {
    unescape(std::str::from_utf8(key).ok()?.strip_prefix(HANDLE_PREFIX)?)
}

/// Key of an empty marker.
pub fn empty(net: &IpNet) -> String {
    format!("{EMPTY_PREFIX}{}", cidr_part(net))
}

/// The block of an empty-marker key.
pub fn parse_empty(key: &[u8]) -> Option<IpNet> {
    let s = std::str::from_utf8(key).ok()?;
    parse_cidr_part(s.strip_prefix(EMPTY_PREFIX)?)
}

/// `[start, end)` of the keys under `prefix_base` for blocks whose address lies in `pool`.
pub fn pool_range(prefix_base: &str, pool: &IpNet) -> (String, String) {
    let v4 = is_v4(pool);
    // Keys of blocks at addresses below the pool base sort below `<base>-00`.
    let start = key_at(prefix_base, base(pool), v4);
    let end = match crate::net::last(pool).checked_add(1) {
        Some(next) if !(v4 && next > u128::from(u32::MAX)) => key_at(prefix_base, next, v4),
        // The pool reaches the end of the family: end after every key of the family.
        _ => format!("{prefix_base}{}0", fam(v4)),
    };
    (start, end)
}

/// The lowest key under `prefix_base` of any network starting at address `addr`.
pub fn key_at(prefix_base: &str, addr: u128, v4: bool) -> String {
    if v4 {
        format!("{prefix_base}4/{:08x}-00", addr as u32)
    } else {
        format!("{prefix_base}6/{:032x}-000", addr)
    }
}

/// Percent-encodes `%` and `/`.
pub fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// Reverses [`escape`].
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        match code {
            "25" => out.push('%'),
            "2F" | "2f" => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The integer address of an IP (re-exported helper for key arithmetic).
pub fn addr_int(addr: std::net::IpAddr) -> u128 {
    addr_to_u128(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_keys_are_fixed_width_and_round_trip() {
        let n: IpNet = "10.244.0.0/26".parse().unwrap();
        assert_eq!(block(&n), "ipam/v1/block/4/0af40000-26");
        assert_eq!(parse_block(block(&n).as_bytes()), Some(n));
        let n6: IpNet = "fd00::/122".parse().unwrap();
        assert_eq!(
            block(&n6),
            "ipam/v1/block/6/fd000000000000000000000000000000-122"
        );
        assert_eq!(parse_block(block(&n6).as_bytes()), Some(n6));
    }

    #[test]
    fn key_order_is_address_order() {
        let a: IpNet = "10.0.0.0/26".parse().unwrap();
        let b: IpNet = "10.0.0.64/26".parse().unwrap();
        let c: IpNet = "9.255.255.192/26".parse().unwrap();
        assert!(block(&c) < block(&a) && block(&a) < block(&b));
    }

    #[test]
    fn affinity_keys_round_trip_with_escapes() {
        let o = Owner::Host("a/b%c".into());
        let n: IpNet = "10.0.0.0/26".parse().unwrap();
        let k = affinity(&o, &n);
        assert_eq!(k, "ipam/v1/affinity/host/a%2Fb%25c/4/0a000000-26");
        assert_eq!(parse_affinity(k.as_bytes()), Some((o, n)));
        assert_eq!(
            parse_handle(handle("x/y").as_bytes()).as_deref(),
            Some("x/y")
        );
    }

    #[test]
    fn pool_range_bounds_the_pool_blocks() {
        let pool: IpNet = "10.244.0.0/22".parse().unwrap();
        let (s, e) = pool_range(BLOCK_PREFIX, &pool);
        let inside = block(&"10.244.3.192/26".parse().unwrap());
        let after = block(&"10.244.4.0/26".parse().unwrap());
        let before = block(&"10.243.255.192/26".parse().unwrap());
        assert!(s <= inside && inside < e);
        assert!(after >= e && before < s);
    }
}
