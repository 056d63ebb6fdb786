//! The IP family: one type for "IPv4 or IPv6" wherever the crates of this workspace need it
//! (policy rules, BGP sessions and kernel routes, IPAM pools and errors).

use std::fmt;
use std::net::IpAddr;

/// An IP family.
///
/// Displays (and serializes) as `IPv4` or `IPv6`; [`Family::channel`] is the lower-case
/// `ipv4`/`ipv6` form (a BIRD channel name), which [`lowercase`] serializes for records that
/// are written that way.
///
/// ```
/// use calico_model::family::Family;
///
/// let f = Family::of("fd00::1".parse().unwrap());
/// assert_eq!(f, Family::V6);
/// assert_eq!(f.to_string(), "IPv6");
/// assert_eq!((f.version(), f.host_len(), f.channel()), (6, 128, "ipv6"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The family with `ipVersion` number `version` (4 or 6), if it is one.
    pub fn from_version(version: u8) -> Option<Family> {
        match version {
            4 => Some(Family::V4),
            6 => Some(Family::V6),
            _ => None,
        }
    }

    /// The `ipVersion` number of this family (4 or 6).
    pub fn version(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }

    /// The ICMP protocol number of this family (1 or 58).
    pub fn icmp_protocol(self) -> u8 {
        match self {
            Family::V4 => 1,
            Family::V6 => 58,
        }
    }

    /// `ipv4` or `ipv6` (the BIRD channel name).
    pub fn channel(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// `IPv4` or `IPv6` (the same text as `Display`).
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The host prefix length (32 or 128).
    pub fn host_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl serde::Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// Serializes a [`Family`] as `ipv4` or `ipv6`, for `#[serde(serialize_with =
/// "calico_model::family::lowercase")]` on fields whose records write it that way.
pub fn lowercase<S: serde::Serializer>(family: &Family, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(family.channel())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_text() {
        for (f, label, lower, v) in [
            (Family::V4, "IPv4", "ipv4", 4),
            (Family::V6, "IPv6", "ipv6", 6),
        ] {
            assert_eq!(f.to_string(), label);
            assert_eq!(
                serde_json::to_string(&f).ok().as_deref(),
                Some(&*format!("\"{label}\""))
            );
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::new(&mut out);
            assert!(lowercase(&f, &mut ser).is_ok());
            assert_eq!(String::from_utf8_lossy(&out), format!("\"{lower}\""));
            assert_eq!(Family::from_version(v), Some(f));
        }
        assert_eq!(Family::from_version(5), None);
    }
}
