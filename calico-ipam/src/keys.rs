//! The IPAM keys: exactly the ones Calico's own components use in an etcd v3 datastore, so
//! both allocators share one store.
//!
//! | Key | Value |
//! |---|---|
//! | `/calico/ipam/v2/config` | IPAM config ([`IpamConfigWire`](crate::IpamConfigWire)) |
//! | `/calico/ipam/v2/assignment/ipv<4\|6>/block/<cidr>` | [`Block`](crate::Block) |
//! | `/calico/ipam/v2/<host\|virtual>/<owner>/ipv<4\|6>/block/<cidr>` | [`AffinityRecord`](crate::AffinityRecord) |
//! | `/calico/ipam/v2/handle/<id>` | [`Handle`](crate::Handle) |
//!
//! `<cidr>` is the block's canonical CIDR text with its one `/` written as `-`
//! (`10.65.226.64-26`, `fd00:65::40-122`). Owner names and handle IDs are written verbatim;
//! they may not be empty or contain `/` ([`valid_name`]). Key order is therefore *not*
//! address order: range reads over a pool are filtered and sorted by address after reading.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::net::{is_v4, width};
use crate::records::Owner;

/// The config key.
pub const CONFIG: &str = "/calico/ipam/v2/config";
/// Prefix of every block key (both families).
pub const BLOCK_PREFIX: &str = "/calico/ipam/v2/assignment/";
/// Prefix of every host affinity key (and of the legacy per-host key, which is not one).
pub const HOST_AFFINITY_PREFIX: &str = "/calico/ipam/v2/host/";
/// Prefix of every virtual-owner affinity key.
pub const VIRTUAL_AFFINITY_PREFIX: &str = "/calico/ipam/v2/virtual/";
/// Both affinity prefixes.
pub const AFFINITY_PREFIXES: [&str; 2] = [HOST_AFFINITY_PREFIX, VIRTUAL_AFFINITY_PREFIX];
/// Prefix of every handle key.
pub const HANDLE_PREFIX: &str = "/calico/ipam/v2/handle/";
/// Prefix of the layout earlier versions of this crate wrote (no longer read).
pub const OLD_IPAM_PREFIX: &str = "ipam/v1/";

fn fam(v4: bool) -> &'static str {
    if v4 { "ipv4" } else { "ipv6" }
}

/// Whether `s` can be an owner name or handle ID inside a key: non-empty, without `/`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

/// `<addr>-<len>`: the key form of a network (its canonical text, `/` as `-`).
pub fn cidr_part(net: &IpNet) -> String {
    format!("{}-{}", net.addr(), net.prefix_len())
}

/// The network of a `<addr>-<len>` key segment, of the given family. Only the canonical form
/// is accepted (what [`cidr_part`] writes for a network without host bits).
pub fn parse_cidr_part(s: &str, v4: bool) -> Option<IpNet> {
    let (addr, len) = s.rsplit_once('-')?;
    let addr: IpAddr = addr.parse().ok()?;
    if addr.is_ipv4() != v4 || len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    if len > width(v4) {
        return None;
    }
    let net = IpNet::new(addr, len).ok()?;
    (net.trunc() == net && cidr_part(&net) == s).then_some(net)
}

/// Prefix of the block keys of one family.
pub fn block_family_prefix(v4: bool) -> String {
    format!("{BLOCK_PREFIX}{}/block/", fam(v4))
}

/// Key of a block.
pub fn block(net: &IpNet) -> String {
    format!("{}{}", block_family_prefix(is_v4(net)), cidr_part(net))
}

/// The block network of a block key.
pub fn parse_block(key: &[u8]) -> Option<IpNet> {
    let s = std::str::from_utf8(key).ok()?;
    let rest = s.strip_prefix(BLOCK_PREFIX)?;
    let (f, rest) = rest.split_once('/')?;
    let v4 = match f {
        "ipv4" => true,
        "ipv6" => false,
        _ => return None,
    };
    parse_cidr_part(rest.strip_prefix("block/")?, v4)
}

/// The longest key prefix shared by the keys of every block inside `pool` (the family
/// prefix, plus the pool's fixed leading octets for IPv4, or its first hextet for IPv6 when
/// it is fixed and not zero). Blocks outside the pool may share it too: filter after reading.
pub fn pool_block_prefix(pool: &IpNet) -> String {
    let mut p = block_family_prefix(is_v4(pool));
    match pool.addr() {
        IpAddr::V4(a) => {
            let fixed = usize::from(pool.prefix_len() / 8).min(3);
            for o in &a.octets()[..fixed] {
                p.push_str(&format!("{o}."));
            }
        }
        IpAddr::V6(a) => {
            let h0 = a.segments()[0];
            if pool.prefix_len() >= 16 && h0 != 0 {
                p.push_str(&format!("{h0:x}:"));
            }
        }
    }
    p
}

/// Key of an affinity.
pub fn affinity(owner: &Owner, net: &IpNet) -> String {
    format!(
        "{}{}",
        affinity_family_prefix(owner, is_v4(net)),
        cidr_part(net)
    )
}

/// Prefix of every affinity of `owner`.
pub fn affinity_owner_prefix(owner: &Owner) -> String {
    format!("/calico/ipam/v2/{}/{}/", owner.kind_str(), owner.name())
}

/// Prefix of the affinities of `owner` in one family.
pub fn affinity_family_prefix(owner: &Owner, v4: bool) -> String {
    format!("{}{}/block/", affinity_owner_prefix(owner), fam(v4))
}

/// The owner and block of an affinity key (`None` for any other key, such as the legacy
/// per-host key `/calico/ipam/v2/host/<host>`).
pub fn parse_affinity(key: &[u8]) -> Option<(Owner, IpNet)> {
    let s = std::str::from_utf8(key).ok()?;
    let rest = s.strip_prefix("/calico/ipam/v2/")?;
    let (kind, rest) = rest.split_once('/')?;
    let (name, rest) = rest.split_once('/')?;
    if name.is_empty() {
        return None;
    }
    let owner = match kind {
        "host" => Owner::Host(name.to_owned()),
        "virtual" => Owner::Virtual(name.to_owned()),
        _ => return None,
    };
    let (f, rest) = rest.split_once('/')?;
    let v4 = match f {
        "ipv4" => true,
        "ipv6" => false,
        _ => return None,
    };
    Some((owner, parse_cidr_part(rest.strip_prefix("block/")?, v4)?))
}

/// Key of a handle (the ID verbatim; see [`valid_name`]).
pub fn handle(id: &str) -> String {
    format!("{HANDLE_PREFIX}{id}")
}

/// The handle ID of a handle key.
pub fn parse_handle(key: &[u8]) -> Option<String> {
    let id = std::str::from_utf8(key).ok()?.strip_prefix(HANDLE_PREFIX)?;
    valid_name(id).then(|| id.to_owned())
}

/// Percent-encodes `%` and `/` (resource names in resource keys).
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
pub fn addr_int(addr: IpAddr) -> u128 {
    crate::net::addr_to_u128(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_keys_are_calicos_and_round_trip() {
        for (net, key) in [
            (
                "10.65.226.64/26",
                "/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-26",
            ),
            (
                "fd00:65::40/122",
                "/calico/ipam/v2/assignment/ipv6/block/fd00:65::40-122",
            ),
            (
                "0.0.0.0/0",
                "/calico/ipam/v2/assignment/ipv4/block/0.0.0.0-0",
            ),
        ] {
            let n: IpNet = net.parse().unwrap();
            assert_eq!(block(&n), key);
            assert_eq!(parse_block(key.as_bytes()), Some(n));
        }
        for bad in [
            "/calico/ipam/v2/assignment/ipv4/block/10.65.226.65-26",
            "/calico/ipam/v2/assignment/ipv6/block/10.65.226.64-26",
            "/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-33",
            "/calico/ipam/v2/assignment/ipv4/block/10.65.226.64-+6",
            "/calico/ipam/v2/assignment/ipv6/block/FD00:65::40-122",
            "/calico/ipam/v2/assignment/ipv6/block/fd00:65:0:0::40-122",
            "/calico/ipam/v2/assignment/ipv4/blocks/10.65.226.64-26",
        ] {
            assert_eq!(parse_block(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn affinity_and_handle_keys_are_verbatim() {
        let o = Owner::host("worker-1");
        let n: IpNet = "10.65.226.64/26".parse().unwrap();
        let k = affinity(&o, &n);
        assert_eq!(
            k,
            "/calico/ipam/v2/host/worker-1/ipv4/block/10.65.226.64-26"
        );
        assert_eq!(parse_affinity(k.as_bytes()), Some((o, n)));
        let v = Owner::Virtual("load-balancer".into());
        let k = affinity(&v, &n);
        assert_eq!(
            k,
            "/calico/ipam/v2/virtual/load-balancer/ipv4/block/10.65.226.64-26"
        );
        assert_eq!(parse_affinity(k.as_bytes()), Some((v, n)));
        assert_eq!(parse_affinity(b"/calico/ipam/v2/host/worker-1"), None);
        let id = "k8s-pod-network.d21ee51a";
        assert_eq!(
            handle(id),
            "/calico/ipam/v2/handle/k8s-pod-network.d21ee51a"
        );
        assert_eq!(parse_handle(handle(id).as_bytes()).as_deref(), Some(id));
        assert_eq!(parse_handle(b"/calico/ipam/v2/handle/a/b"), None);
        assert!(!valid_name("a/b") && !valid_name("") && valid_name("a.b"));
    }

    #[test]
    fn pool_prefix_covers_every_block_of_the_pool() {
        let cases = [
            ("10.244.0.0/22", 26, "10.244."),
            ("10.0.0.0/8", 26, "10."),
            ("10.65.0.0/16", 26, "10.65."),
            ("192.168.3.0/24", 28, "192.168.3."),
            ("0.0.0.0/4", 8, ""),
            ("fd00:65::/48", 122, "fd00:"),
            ("::/64", 122, ""),
        ];
        for (pool, bs, text) in cases {
            let pool: IpNet = pool.parse().unwrap();
            let prefix = pool_block_prefix(&pool);
            assert_eq!(
                prefix,
                format!("{}{text}", block_family_prefix(is_v4(&pool)))
            );
            for sub in pool.subnets(bs).unwrap().take(300) {
                assert!(block(&sub).starts_with(&prefix), "{sub} {prefix}");
            }
        }
    }
}
