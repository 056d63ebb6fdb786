//! Connection sets over TCP, UDP and SCTP destination ports.

use std::fmt;

/// An inclusive port interval.
pub type PortRange = (u16, u16);

/// A set of destination ports 1–65535, as sorted, disjoint, non-touching intervals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortSet {
    ranges: Vec<PortRange>,
}

impl PortSet {
    /// No port.
    pub fn empty() -> PortSet {
        PortSet::default()
    }

    /// Every port 1–65535.
    pub fn full() -> PortSet {
        PortSet {
            ranges: vec![(1, 65535)],
        }
    }

    /// The union of the given intervals (any order, overlaps allowed; port 0 is ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = PortRange>) -> PortSet {
        let mut v: Vec<PortRange> = ranges
            .into_iter()
            .filter_map(|(a, b)| {
                let a = a.max(1);
                (a <= b).then_some((a, b))
            })
            .collect();
        v.sort_unstable();
        let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        PortSet { ranges: out }
    }

    /// The intervals, ascending.
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    /// Whether no port is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether every port 1–65535 is in the set.
    pub fn is_full(&self) -> bool {
        self.ranges == [(1, 65535)]
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= port && port <= b)
    }

    /// The union.
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet::from_ranges(self.ranges.iter().chain(&other.ranges).copied())
    }

    /// The complement within 1–65535.
    pub fn complement(&self) -> PortSet {
        let mut out = Vec::new();
        let mut next: u32 = 1;
        for &(a, b) in &self.ranges {
            if u32::from(a) > next {
                out.push((next as u16, a - 1));
            }
            next = u32::from(b) + 1;
        }
        if next <= 65535 {
            out.push((next as u16, 65535));
        }
        PortSet { ranges: out }
    }

    /// The intersection.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a1, b1) = self.ranges[i];
            let (a2, b2) = other.ranges[j];
            let a = a1.max(a2);
            let b = b1.min(b2);
            if a <= b {
                out.push((a, b));
            }
            if b1 < b2 {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortSet { ranges: out }
    }

    /// The ports of `self` not in `other`.
    pub fn minus(&self, other: &PortSet) -> PortSet {
        self.intersect(&other.complement())
    }
}

/// `p` or `a-b` items joined by `,`.
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// The three protocols with ports, in the order their names sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortProtocol {
    /// SCTP (132).
    Sctp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl PortProtocol {
    /// All three, in name order.
    pub const ALL: [PortProtocol; 3] = [PortProtocol::Sctp, PortProtocol::Tcp, PortProtocol::Udp];

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            PortProtocol::Sctp => 132,
            PortProtocol::Tcp => 6,
            PortProtocol::Udp => 17,
        }
    }

    /// The protocol with this number, if it has ports.
    pub fn from_number(n: u8) -> Option<PortProtocol> {
        match n {
            132 => Some(PortProtocol::Sctp),
            6 => Some(PortProtocol::Tcp),
            17 => Some(PortProtocol::Udp),
            _ => None,
        }
    }

    /// `SCTP`, `TCP` or `UDP`.
    pub fn name(self) -> &'static str {
        match self {
            PortProtocol::Sctp => "SCTP",
            PortProtocol::Tcp => "TCP",
            PortProtocol::Udp => "UDP",
        }
    }

    fn index(self) -> usize {
        match self {
            PortProtocol::Sctp => 0,
            PortProtocol::Tcp => 1,
            PortProtocol::Udp => 2,
        }
    }
}

/// A set of connections: destination ports per protocol (TCP, UDP, SCTP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConnSet {
    ports: [PortSet; 3],
}

impl ConnSet {
    /// No connection.
    pub fn empty() -> ConnSet {
        ConnSet::default()
    }

    /// Every port of every protocol.
    pub fn all() -> ConnSet {
        ConnSet {
            ports: [PortSet::full(), PortSet::full(), PortSet::full()],
        }
    }

    /// `ports` on `protocol` only.
    pub fn of(protocol: PortProtocol, ports: PortSet) -> ConnSet {
        let mut c = ConnSet::empty();
        c.ports[protocol.index()] = ports;
        c
    }

    /// The ports allowed on `protocol`.
    pub fn ports(&self, protocol: PortProtocol) -> &PortSet {
        &self.ports[protocol.index()]
    }

    /// Replaces the ports of `protocol`.
    pub fn set_ports(&mut self, protocol: PortProtocol, ports: PortSet) {
        self.ports[protocol.index()] = ports;
    }

    /// Whether the set holds no connection.
    pub fn is_empty(&self) -> bool {
        self.ports.iter().all(PortSet::is_empty)
    }

    /// Whether every port of every protocol is in the set.
    pub fn is_all(&self) -> bool {
        self.ports.iter().all(PortSet::is_full)
    }

    /// Whether (protocol, port) is in the set.
    pub fn contains(&self, protocol: PortProtocol, port: u16) -> bool {
        self.ports[protocol.index()].contains(port)
    }

    fn zip(&self, other: &ConnSet, f: impl Fn(&PortSet, &PortSet) -> PortSet) -> ConnSet {
        ConnSet {
            ports: [
                f(&self.ports[0], &other.ports[0]),
                f(&self.ports[1], &other.ports[1]),
                f(&self.ports[2], &other.ports[2]),
            ],
        }
    }

    /// The union.
    pub fn union(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::union)
    }

    /// The intersection.
    pub fn intersect(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::intersect)
    }

    /// The connections of `self` not in `other`.
    pub fn minus(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::minus)
    }
}

/// `All Connections`, or protocol groups such as `TCP 5432-5433,UDP 9000-9010`; the empty set
/// prints as `No Connections` (never in a connlist line).
impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for p in PortProtocol::ALL {
            let ports = self.ports(p);
            if ports.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{} {ports}", p.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_print() {
        let s = PortSet::from_ranges([(5433, 5433), (5432, 5432), (9000, 9010), (9005, 9020)]);
        assert_eq!(s.to_string(), "5432-5433,9000-9020");
        assert_eq!(PortSet::full().to_string(), "1-65535");
        let c = ConnSet::of(PortProtocol::Tcp, PortSet::from_ranges([(8080, 8080)])).union(
            &ConnSet::of(PortProtocol::Sctp, PortSet::from_ranges([(9003, 9003)])),
        );
        assert_eq!(c.to_string(), "SCTP 9003,TCP 8080");
        assert_eq!(ConnSet::all().to_string(), "All Connections");
        let mut almost = ConnSet::all();
        almost.set_ports(
            PortProtocol::Udp,
            PortSet::full().minus(&PortSet::from_ranges([(5353, 5353)])),
        );
        assert_eq!(
            almost.to_string(),
            "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535"
        );
    }

    #[test]
    fn set_algebra() {
        let a = PortSet::from_ranges([(1, 10), (20, 30)]);
        let b = PortSet::from_ranges([(5, 25)]);
        assert_eq!(a.intersect(&b).ranges(), &[(5, 10), (20, 25)]);
        assert_eq!(a.minus(&b).ranges(), &[(1, 4), (26, 30)]);
        assert_eq!(a.union(&b).ranges(), &[(1, 30)]);
        assert_eq!(PortSet::empty().complement(), PortSet::full());
        assert!(PortSet::full().complement().is_empty());
        assert_eq!(
            PortSet::from_ranges([(65535, 65535)]).complement().ranges(),
            &[(1, 65534)]
        );
    }
}
