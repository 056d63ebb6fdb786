//! Shared value types of the resource model: protocols, ports, AS numbers,
//! Kubernetes int-or-string values and IP addresses with optional prefix length.
//!
//! Each type decodes from the forms `kubectl`/`calicoctl` accept and encodes to the form they
//! print. Syntactically invalid input (an unknown protocol name, port `0`, `10.0.0.0/33`) is a
//! decode error; semantic rules that depend on the field (a `net` must be strictly masked, a rule
//! net must carry a prefix length, ...) are checked by validation.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::is_port_name;

// ---------------------------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------------------------

/// An IP protocol as written in a Calico rule or endpoint port: a name or a number 1–255.
///
/// Names are case-sensitive (`TCP`, not `tcp`). A numeric string (`"6"`) decodes as the number.
/// Numbers are kept as written: `Number(6)` and `Tcp` are distinct values that mean the same
/// protocol; compare with [`Protocol::number`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `TCP` (6).
    Tcp,
    /// `UDP` (17).
    Udp,
    /// `ICMP` (1).
    Icmp,
    /// `ICMPv6` (58).
    IcmpV6,
    /// `SCTP` (132).
    Sctp,
    /// `UDPLite` (136).
    UdpLite,
    /// A protocol given by number, 1–255.
    Number(u8),
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
            Protocol::IcmpV6 => 58,
            Protocol::Sctp => 132,
            Protocol::UdpLite => 136,
            Protocol::Number(n) => n,
        }
    }

    /// Whether rules with this protocol may match ports: TCP, UDP and SCTP (by name or number).
    /// UDPLite does not support ports.
    pub fn supports_ports(self) -> bool {
        matches!(self.number(), 6 | 17 | 132)
    }

    /// Whether this is ICMP for IPv4 (`ICMP` or 1).
    pub fn is_icmp_v4(self) -> bool {
        self.number() == 1
    }

    /// Whether this is ICMP for IPv6 (`ICMPv6` or 58).
    pub fn is_icmp_v6(self) -> bool {
        self.number() == 58
    }

    /// Parses the exact textual forms: a case-sensitive name or a decimal number 1–255
    /// (also available as [`str::parse`] through [`FromStr`]).
    pub fn parse(s: &str) -> Result<Protocol, ProtocolError> {
        Ok(match s {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "ICMP" => Protocol::Icmp,
            "ICMPv6" => Protocol::IcmpV6,
            "SCTP" => Protocol::Sctp,
            "UDPLite" => Protocol::UdpLite,
            _ => {
                if is_decimal(s) {
                    return Protocol::from_number(s.parse::<u64>().unwrap_or(u64::MAX));
                }
                return Err(ProtocolError::UnknownName(s.to_owned()));
            }
        })
    }

    fn from_number(n: u64) -> Result<Protocol, ProtocolError> {
        match u8::try_from(n) {
            Ok(v) if v >= 1 => Ok(Protocol::Number(v)),
            _ => Err(ProtocolError::NumberOutOfRange(n)),
        }
    }
}

/// Why a text is not a [`Protocol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not one of the names (which are case-sensitive) and not a number.
    #[error(
        "invalid protocol {0:?}: expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite (case-sensitive) or a number 1-255"
    )]
    UnknownName(String),
    /// A number outside 1–255.
    #[error("invalid protocol number {0}: must be 1-255")]
    NumberOutOfRange(u64),
}

impl FromStr for Protocol {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::parse(s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Icmp => f.write_str("ICMP"),
            Protocol::IcmpV6 => f.write_str("ICMPv6"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::UdpLite => f.write_str("UDPLite"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Protocol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a protocol name or number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Protocol, E> {
                Protocol::from_number(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Protocol, E> {
                Protocol::from_number(u64::try_from(v).unwrap_or(u64::MAX)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Protocol, E> {
                Protocol::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Port
// ---------------------------------------------------------------------------------------------

/// A port in a Calico rule: a number, an inclusive range or a named port.
///
/// Numbers are 1–65535; a range `N:M` needs `N ≤ M`; a named port is a Kubernetes port
/// name (at most 15 characters of `a-z`, `0-9` and `-`, at least one letter, no leading,
/// trailing or doubled `-`).
///
/// Encoded as a JSON integer for a single number and as a string (`"8000:8080"`, `"http"`)
/// otherwise. A range with equal ends reads as a single number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// A single port number, 1–65535.
    Number(u16),
    /// An inclusive range `min:max`, 1 ≤ min < max ≤ 65535.
    Range {
        /// First port of the range.
        min: u16,
        /// Last port of the range (inclusive).
        max: u16,
    },
    /// A named port (a Kubernetes port name).
    Named(String),
}

impl Port {
    /// Whether this is a named port.
    pub fn is_named(&self) -> bool {
        matches!(self, Port::Named(_))
    }

    /// The numeric range `(min, max)` of a numeric port, or `None` for a named port.
    pub fn range(&self) -> Option<(u16, u16)> {
        match self {
            Port::Number(n) => Some((*n, *n)),
            Port::Range { min, max } => Some((*min, *max)),
            Port::Named(_) => None,
        }
    }

    /// Parses the string form: `"N"`, `"N:M"` or a port name.
    pub fn parse(s: &str) -> Result<Port, String> {
        if let Some((a, b)) = s.split_once(':') {
            let min = parse_port_number(a).map_err(|e| format!("invalid port range {s:?}: {e}"))?;
            let max = parse_port_number(b).map_err(|e| format!("invalid port range {s:?}: {e}"))?;
            if min > max {
                return Err(format!(
                    "invalid port range {s:?}: the first port must not exceed the second"
                ));
            }
            return Ok(if min == max {
                Port::Number(min)
            } else {
                Port::Range { min, max }
            });
        }
        if is_decimal(s) {
            return parse_port_number(s)
                .map(Port::Number)
                .map_err(|e| format!("invalid port {s:?}: {e}"));
        }
        if is_port_name(s) {
            return Ok(Port::Named(s.to_owned()));
        }
        Err(format!(
            "invalid port {s:?}: expected a number 1-65535, a range \"N:M\" or a port name (at most 15 characters of a-z, 0-9 and '-', with at least one letter)"
        ))
    }
}

fn parse_port_number(s: &str) -> Result<u16, String> {
    if !is_decimal(s) {
        return Err(format!("{s:?} is not a port number"));
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("port {s} is out of range 1-65535")),
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Range { min, max } => write!(f, "{min}:{max}"),
            Port::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Number(n) => s.serialize_u16(*n),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number, a range \"N:M\" or a port name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(n) if n >= 1 => Ok(Port::Number(n)),
                    _ => Err(E::custom(format!("invalid port {v}: must be 1-65535"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("invalid port {v}: must be 1-65535"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Port::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// IntOrString
// ---------------------------------------------------------------------------------------------

/// A Kubernetes `IntOrString` (for example a NetworkPolicy port: a number or a port name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntOrString {
    /// An integer value.
    Int(i64),
    /// A string value.
    String(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(n) => s.serialize_i64(*n),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// ASNumber
// ---------------------------------------------------------------------------------------------

/// A BGP AS number (uint32), read as a number, a decimal string or dotted `A.B`
/// (A·65536 + B, each part 16-bit). Written as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsNumber(pub u32);

impl AsNumber {
    /// Parses `"N"` or dotted `"A.B"`.
    pub fn parse(s: &str) -> Result<AsNumber, String> {
        let err = || {
            format!("invalid AS number {s:?}: expected a 32-bit number or A.B with 16-bit parts")
        };
        if let Some((a, b)) = s.split_once('.') {
            if !is_decimal(a) || !is_decimal(b) {
                return Err(err());
            }
            let hi = a.parse::<u16>().map_err(|_| err())?;
            let lo = b.parse::<u16>().map_err(|_| err())?;
            return Ok(AsNumber((u32::from(hi) << 16) | u32::from(lo)));
        }
        if !is_decimal(s) {
            return Err(err());
        }
        s.parse::<u32>().map(AsNumber).map_err(|_| err())
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(format!("invalid AS number {v}: must fit in 32 bits")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(format!("invalid AS number {v}: must fit in 32 bits")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
                AsNumber::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// IpCidr
// ---------------------------------------------------------------------------------------------

/// An IP address with an optional prefix length, host bits preserved (`10.0.0.5/24`,
/// `fd00::/64`, `10.1.2.3`).
///
/// This is the syntactic form shared by the two address value types of Calico's API: `net`
/// (an address or a CIDR without host bits; a bare address means /32 or /128) and `cidr`
/// (host bits allowed);
/// which of them a field requires (strict masking, an explicit prefix) is checked by
/// validation. Text is written back in canonical form (`fd00:0::1` becomes `fd00::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    addr: IpAddr,
    prefix_len: u8,
    explicit_prefix: bool,
}

impl IpCidr {
    /// A bare address (/32 or /128, written without a prefix length).
    pub fn from_addr(addr: IpAddr) -> IpCidr {
        IpCidr {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
            explicit_prefix: false,
        }
    }

    /// An address with a prefix length (host bits kept); `None` if the length is too long.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<IpCidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(IpCidr {
            addr,
            prefix_len,
            explicit_prefix: true,
        })
    }

    /// The address as written (host bits included).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for a bare address).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether the text carried an explicit `/len`.
    pub fn has_prefix(&self) -> bool {
        self.explicit_prefix
    }

    /// Whether this is an IPv4 value.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The masked network (`10.0.0.5/24` → `10.0.0.0/24`).
    pub fn network(&self) -> IpNet {
        match IpNet::new(self.addr, self.prefix_len) {
            Ok(n) => n.trunc(),
            // Unreachable: the prefix length was checked on construction.
            Err(_) => IpNet::from(self.addr),
        }
    }

    /// Whether no host bits are set beyond the prefix length.
    pub fn is_strictly_masked(&self) -> bool {
        self.network().addr() == self.addr
    }

    /// Whether this covers a single address (/32 or /128).
    pub fn is_single_address(&self) -> bool {
        self.prefix_len == if self.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` lies inside the masked network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network().contains(&ip)
    }
}

impl FromStr for IpCidr {
    type Err = String;
    fn from_str(s: &str) -> Result<IpCidr, String> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr =
            IpAddr::from_str(addr_text).map_err(|_| format!("invalid IP address or CIDR {s:?}"))?;
        match len_text {
            None => Ok(IpCidr::from_addr(addr)),
            Some(l) => {
                let valid_text = is_decimal(l) && (l == "0" || !l.starts_with('0')) && l.len() <= 3;
                let len = if valid_text {
                    l.parse::<u8>().ok()
                } else {
                    None
                };
                len.and_then(|n| IpCidr::new(addr, n))
                    .ok_or_else(|| format!("invalid CIDR {s:?}: bad prefix length"))
            }
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.explicit_prefix {
            write!(f, "{}/{}", self.addr, self.prefix_len)
        } else {
            write!(f, "{}", self.addr)
        }
    }
}

impl Serialize for IpCidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpCidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Serde helpers shared by the resource modules.
pub(crate) mod serde_util {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, de};

    /// `skip_serializing_if` predicate for `false`.
    pub(crate) fn is_false(b: &bool) -> bool {
        !*b
    }

    /// `skip_serializing_if` predicate for zero.
    pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
        *v == T::default()
    }

    /// Decodes an optional value parsed from a string, reading `""` and `null` as unset.
    pub(crate) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => T::from_str(text)
                .map(Some)
                .map_err(|e| de::Error::custom(format!("invalid value {text:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_forms() {
        assert_eq!(Protocol::parse("TCP"), Ok(Protocol::Tcp));
        assert_eq!(Protocol::parse("6"), Ok(Protocol::Number(6)));
        assert!(Protocol::parse("tcp").is_err());
        assert_eq!("UDPLite".parse::<Protocol>(), Ok(Protocol::UdpLite));
        assert_eq!(
            "300".parse::<Protocol>(),
            Err(ProtocolError::NumberOutOfRange(300))
        );
        assert_eq!(
            "tcp".parse::<Protocol>(),
            Err(ProtocolError::UnknownName("tcp".to_owned()))
        );
        assert!(Protocol::parse("0").is_err());
        assert!(Protocol::parse("256").is_err());
        assert!(Protocol::Number(17).supports_ports());
        assert!(!Protocol::UdpLite.supports_ports());
    }

    #[test]
    fn port_forms() {
        assert_eq!(Port::parse("80"), Ok(Port::Number(80)));
        assert_eq!(Port::parse("80:90"), Ok(Port::Range { min: 80, max: 90 }));
        assert_eq!(Port::parse("80:80"), Ok(Port::Number(80)));
        assert!(Port::parse("90:80").is_err());
        assert!(Port::parse("0").is_err());
        assert!(Port::parse("65536").is_err());
        assert_eq!(Port::parse("http"), Ok(Port::Named("http".into())));
        assert!(Port::parse("http:80").is_err());
        assert!(Port::parse("a--b").is_err());
        assert!(Port::parse("123-456").is_err());
    }

    #[test]
    fn as_number_forms() {
        assert_eq!(AsNumber::parse("1.10"), Ok(AsNumber(65546)));
        assert_eq!(AsNumber::parse("64512"), Ok(AsNumber(64512)));
        assert!(AsNumber::parse("65536.1").is_err());
        assert!(AsNumber::parse("4294967296").is_err());
    }

    #[test]
    fn cidr_forms() {
        let c: IpCidr = "10.0.0.5/24".parse().unwrap();
        assert!(!c.is_strictly_masked());
        assert_eq!(c.network().to_string(), "10.0.0.0/24");
        let b: IpCidr = "fd00::1".parse().unwrap();
        assert!(b.is_single_address() && !b.has_prefix());
        assert!("10.0.0.0/33".parse::<IpCidr>().is_err());
        assert!("10.0.0.0/024".parse::<IpCidr>().is_err());
        assert!("x".parse::<IpCidr>().is_err());
    }
}
