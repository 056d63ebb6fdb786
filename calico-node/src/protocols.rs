//! BIRD's `show protocols` and Calico's BGP protocol names.
//!
//! Calico names each BGP session's protocol after its kind and peer: `Mesh_<ip>` for the
//! node-to-node mesh, `Node_<ip>` for a peer configured for this node, `Global_<ip>` for a
//! peer configured for all nodes, the address written with `.` and `:` as `_`
//! (`Mesh_10_0_0_2`, `Node_2001_db8__1`), and a `_port_<n>` suffix when a
//! `Node_`/`Global_` peer uses a port other than 179.

use std::net::IpAddr;

/// One row of `show protocols`, split the way calicoctl splits it: the first five
/// whitespace-separated columns, and the rest (the info) joined with single spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolRow {
    /// Protocol name.
    pub name: String,
    /// Protocol type (`BGP`, `Device`, `Kernel`, …).
    pub proto: String,
    /// Table (`---` for BGP in BIRD 2).
    pub table: String,
    /// State (`up`, `start`, `down`, …).
    pub state: String,
    /// When the state last changed, as BIRD prints it.
    pub since: String,
    /// The rest: for BGP the session state and any further words.
    pub info: String,
}

/// Parses the text of `show protocols` (with or without the reply codes stripped): every
/// line with at least five columns after the header. Lines that are not rows are skipped.
pub fn parse_show_protocols(text: &str) -> Vec<ProtocolRow> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 5 || cols[0] == "Name" {
                return None;
            }
            Some(ProtocolRow {
                name: cols[0].to_owned(),
                proto: cols[1].to_owned(),
                table: cols[2].to_owned(),
                state: cols[3].to_owned(),
                since: cols[4].to_owned(),
                info: cols[5..].join(" "),
            })
        })
        .collect()
}

/// The kind of a Calico BGP session, from its protocol name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PeerKind {
    /// `Mesh_`: the node-to-node mesh.
    Mesh,
    /// `Node_`: a BGPPeer for this node.
    Node,
    /// `Global_`: a BGPPeer for every node.
    Global,
}

impl PeerKind {
    /// calicoctl's words for it: `node-to-node mesh`, `node specific`, `global`.
    pub fn label(self) -> &'static str {
        match self {
            PeerKind::Mesh => "node-to-node mesh",
            PeerKind::Node => "node specific",
            PeerKind::Global => "global",
        }
    }

    /// CalicoNodeStatus's words for it: `NodeMesh`, `NodePeer`, `GlobalPeer`.
    pub fn status_type(self) -> &'static str {
        match self {
            PeerKind::Mesh => "NodeMesh",
            PeerKind::Node => "NodePeer",
            PeerKind::Global => "GlobalPeer",
        }
    }
}

/// What a Calico BGP protocol name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerName {
    /// The session's kind.
    pub kind: PeerKind,
    /// The peer's address.
    pub address: IpAddr,
    /// The port, when the name has a `_port_<n>` suffix.
    pub port: Option<u16>,
}

/// Reads a Calico BGP protocol name; `None` for any other protocol.
pub fn parse_peer_name(name: &str) -> Option<PeerName> {
    let (kind, rest) = if let Some(r) = name.strip_prefix("Mesh_") {
        (PeerKind::Mesh, r)
    } else if let Some(r) = name.strip_prefix("Node_") {
        (PeerKind::Node, r)
    } else if let Some(r) = name.strip_prefix("Global_") {
        (PeerKind::Global, r)
    } else {
        return None;
    };
    let (addr, port) = match rest.rsplit_once("_port_") {
        Some((a, p)) if kind != PeerKind::Mesh => (a, Some(p.parse::<u16>().ok()?)),
        _ => (rest, None),
    };
    address_from_name(addr).map(|address| PeerName {
        kind,
        address,
        port,
    })
}

/// An address written with `_` for `.` (IPv4) or `:` (IPv6).
fn address_from_name(text: &str) -> Option<IpAddr> {
    let v4 = text.replace('_', ".");
    if let Ok(a) = v4.parse::<std::net::Ipv4Addr>() {
        return Some(IpAddr::V4(a));
    }
    text.replace('_', ":")
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The protocol name part for an address: `.` and `:` become `_`.
pub fn name_of_address(address: IpAddr) -> String {
    address.to_string().replace(['.', ':'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_like_calicoctl() {
        let text = "Name       Proto      Table      State  Since         Info\n\
                    device1    Device     ---        up     12:25:01.493  \n\
                    Mesh_127_0_0_2 BGP        ---        start  12:25:01.493  Active        \n\
                    Global_127_0_0_3_port_1790 BGP        ---        down   12:25:01.494  Error: Invalid next hop\n\
                    short line\n";
        let rows = parse_show_protocols(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].info, "");
        assert_eq!(rows[1].name, "Mesh_127_0_0_2");
        assert_eq!(rows[1].state, "start");
        assert_eq!(rows[1].info, "Active");
        assert_eq!(rows[2].info, "Error: Invalid next hop");
        assert_eq!(rows[2].since, "12:25:01.494");
    }

    #[test]
    fn calico_names_give_kind_address_and_port() {
        let cases = [
            ("Mesh_10_0_0_2", Some((PeerKind::Mesh, "10.0.0.2", None))),
            (
                "Node_192_168_1_254",
                Some((PeerKind::Node, "192.168.1.254", None)),
            ),
            (
                "Global_10_1_2_3_port_1790",
                Some((PeerKind::Global, "10.1.2.3", Some(1790))),
            ),
            (
                "Mesh_2001_db8__102",
                Some((PeerKind::Mesh, "2001:db8::102", None)),
            ),
            (
                "Node_fd00__1_port_179",
                Some((PeerKind::Node, "fd00::1", Some(179))),
            ),
            ("Mesh_10_0_0_2_port_1790", None),
            ("Global_10_1_2_3_port_x", None),
            ("Global_10_1_2_3_port_70000", None),
            ("device1", None),
            ("Mesh_", None),
            ("Mesh_not_an_ip", None),
        ];
        for (name, want) in cases {
            let got = parse_peer_name(name).map(|p| (p.kind, p.address.to_string(), p.port));
            let want = want.map(|(k, a, p)| (k, a.to_owned(), p));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn names_round_trip_through_addresses() {
        for a in ["10.0.0.2", "2001:db8::102", "::1", "fd00:1:2:3:4:5:6:7"] {
            let ip: IpAddr = a.parse().expect("ip");
            let name = format!("Node_{}", name_of_address(ip));
            assert_eq!(
                parse_peer_name(&name).map(|p| p.address),
                Some(ip),
                "{name}"
            );
        }
    }
}
