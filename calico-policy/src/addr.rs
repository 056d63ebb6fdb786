//! Address families and inclusive address ranges (IPv4 and IPv6 in one `u128` space per
//! family).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_model::resources::values::IpCidr;

/// An IP family: calico-model's one family type, kept at this path for this crate's users.
pub use calico_model::family::Family;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    /// The family.
    pub family: Family,
    /// First address (an IPv4 address is its 32-bit value).
    pub lo: u128,
    /// Last address, inclusive.
    pub hi: u128,
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn value_ip(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

impl AddrRange {
    /// The single address `ip`.
    pub fn single(ip: IpAddr) -> AddrRange {
        let v = ip_value(ip);
        AddrRange {
            family: Family::of(ip),
            lo: v,
            hi: v,
        }
    }

    /// The addresses of a CIDR (host bits are ignored).
    pub fn of_cidr(cidr: &IpCidr) -> AddrRange {
        let net = cidr.network();
        AddrRange {
            family: Family::of(net.network()),
            lo: ip_value(net.network()),
            hi: ip_value(net.broadcast()),
        }
    }

    /// Whether `other` lies wholly inside this range.
    pub fn contains_range(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.lo <= other.lo && other.hi <= self.hi
    }

    /// Whether the address `ip` is in this range.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.contains_range(&AddrRange::single(ip))
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.lo <= other.hi && other.lo <= self.hi
    }

    /// The range as a CIDR (`10.0.0.0/8`) when it is one, else as `first-last`.
    pub fn to_cidr_string(&self) -> String {
        let bits: u32 = match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let diff = self.hi ^ self.lo;
        if self.hi >= self.lo && diff & diff.wrapping_add(1) == 0 && self.lo & diff == 0 {
            format!("{}/{}", self.first(), bits - diff.count_ones())
        } else {
            self.to_string()
        }
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        value_ip(self.family, self.lo)
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        value_ip(self.family, self.hi)
    }
}

/// `first-last`, e.g. `10.0.0.0-10.255.255.255` (never CIDR notation).
impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first(), self.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let c: IpCidr = "10.1.2.3/8".parse().unwrap();
        let r = AddrRange::of_cidr(&c);
        assert_eq!(r.to_string(), "10.0.0.0-10.255.255.255");
        assert!(r.contains_ip("10.9.9.9".parse().unwrap()));
        assert!(!r.contains_ip("11.0.0.0".parse().unwrap()));
        assert!(!r.contains_ip("::a00:1".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(AddrRange::of_cidr(&all).hi, u128::from(u32::MAX));
        let s = AddrRange::single("49.50.0.0".parse().unwrap());
        assert_eq!(s.to_string(), "49.50.0.0-49.50.0.0");
        assert_eq!(s.to_cidr_string(), "49.50.0.0/32");
        assert_eq!(r.to_cidr_string(), "10.0.0.0/8");
        assert_eq!(AddrRange::of_cidr(&all).to_cidr_string(), "0.0.0.0/0");
        let v6: IpCidr = "2001:db8:bad::/48".parse().unwrap();
        assert_eq!(
            AddrRange::of_cidr(&v6).to_cidr_string(),
            "2001:db8:bad::/48"
        );
        let any6: IpCidr = "::/0".parse().unwrap();
        assert_eq!(AddrRange::of_cidr(&any6).to_cidr_string(), "::/0");
        let odd = AddrRange {
            family: Family::V4,
            lo: 1,
            hi: 2,
        };
        assert_eq!(odd.to_cidr_string(), "0.0.0.1-0.0.0.2");
    }
}
