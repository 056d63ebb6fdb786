//! What `calico node status` shows: whether the agent runs and, per address family, the
//! BGP sessions BIRD reports, as calicoctl prints them (or as JSON).

use serde::Serialize;

use crate::protocols::{ProtocolRow, parse_peer_name};

/// One BGP session as `calico node status` lists it: the table's cells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerRow {
    /// The peer's address.
    pub peer_address: String,
    /// `node-to-node mesh`, `node specific` or `global`.
    pub peer_type: String,
    /// BIRD's state column.
    pub state: String,
    /// BIRD's since column.
    pub since: String,
    /// BIRD's info column (the BGP state and any further words).
    pub info: String,
}

/// The status of the agent on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Whether the agent process runs.
    pub running: bool,
    /// IPv4 sessions, in BIRD's order.
    pub ipv4: Vec<PeerRow>,
    /// IPv6 sessions, in BIRD's order.
    pub ipv6: Vec<PeerRow>,
}

const HEADERS: [&str; 5] = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];

impl NodeStatus {
    /// The status from `show protocols` rows: the BGP protocols with Calico names, split by
    /// the peer's address family.
    pub fn from_protocols(running: bool, rows: &[ProtocolRow]) -> NodeStatus {
        let mut status = NodeStatus {
            running,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
        };
        for row in rows.iter().filter(|r| r.proto == "BGP") {
            let Some(peer) = parse_peer_name(&row.name) else {
                continue;
            };
            let cells = PeerRow {
                peer_address: peer.address.to_string(),
                peer_type: peer.kind.label().to_owned(),
                state: row.state.clone(),
                since: row.since.clone(),
                info: row.info.clone(),
            };
            if peer.address.is_ipv4() {
                status.ipv4.push(cells);
            } else {
                status.ipv6.push(cells);
            }
        }
        status
    }

    /// The text calicoctl prints.
    pub fn to_table(&self) -> String {
        if !self.running {
            return "Calico process is not running.\n".to_owned();
        }
        let mut out = String::from("Calico process is running.\n\n");
        for (family, rows) in [("IPv4", &self.ipv4), ("IPv6", &self.ipv6)] {
            out.push_str(&format!("{family} BGP status\n"));
            if rows.is_empty() {
                out.push_str(&format!("No {family} peers found.\n\n"));
            } else {
                out.push_str(&table(rows));
                out.push('\n');
            }
        }
        out
    }

    /// The JSON form: `{"running", "ipv4": [...], "ipv6": [...]}`.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and booleans cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn cells(row: &PeerRow) -> [&str; 5] {
    [
        &row.peer_address,
        &row.peer_type,
        &row.state,
        &row.since,
        &row.info,
    ]
}

fn table(rows: &[PeerRow]) -> String {
    let cells: Vec<[&str; 5]> = rows.iter().map(cells).collect();
    crate::table::render(HEADERS, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::parse_show_protocols;

    #[test]
    fn the_table_is_calicoctls_byte_for_byte() {
        let show = "Name       Proto      Table      State  Since         Info\n\
                    device1    Device     ---        up     2026-08-01    \n\
                    Mesh_10_0_0_2 BGP     ---        up     2026-08-01    Established\n\
                    Global_192_168_1_254 BGP ---     start  09:12:44      Active        Socket: Connection refused\n\
                    kernel1    Kernel     master4    up     2026-08-01    \n";
        let status = NodeStatus::from_protocols(true, &parse_show_protocols(show));
        let want = "Calico process is running.

IPv4 BGP status
+---------------+-------------------+-------+------------+-----------------------------------+
| PEER ADDRESS  |     PEER TYPE     | STATE |   SINCE    |               INFO                |
+---------------+-------------------+-------+------------+-----------------------------------+
| 10.0.0.2      | node-to-node mesh | up    | 2026-08-01 | Established                       |
| 192.168.1.254 | global            | start | 09:12:44   | Active Socket: Connection refused |
+---------------+-------------------+-------+------------+-----------------------------------+

IPv6 BGP status
No IPv6 peers found.

";
        assert_eq!(status.to_table(), want);
    }

    #[test]
    fn families_split_and_empty_sections_say_so() {
        let show = "Node_fd00__2_port_1790 BGP --- up 10:00:00.000 Established\n\
                    Mesh_10_0_0_9 BGP --- start 10:00:00.000 Connect\n\
                    static1 Static master4 up 10:00:00.000\n\
                    Other_10_0_0_1 BGP --- up 10:00:00.000 Established\n";
        let status = NodeStatus::from_protocols(true, &parse_show_protocols(show));
        assert_eq!(status.ipv4.len(), 1, "only Calico-named BGP protocols");
        assert_eq!(status.ipv6.len(), 1);
        assert_eq!(status.ipv6[0].peer_address, "fd00::2");
        assert_eq!(status.ipv6[0].peer_type, "node specific");
        let text = status.to_table();
        assert!(text.contains("IPv6 BGP status\n+"), "{text}");
        assert!(text.ends_with("+\n\n"), "{text:?}");
        let none = NodeStatus::from_protocols(true, &[]).to_table();
        assert_eq!(
            none,
            "Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\nNo IPv6 peers found.\n\n"
        );
        assert_eq!(
            NodeStatus::from_protocols(false, &[]).to_table(),
            "Calico process is not running.\n"
        );
    }

    #[test]
    fn headers_centre_with_the_smaller_half_on_the_left() {
        // Every column width from the header's own up to 12 more.
        for extra in 0..12usize {
            let row = PeerRow {
                peer_address: "1".repeat(12 + extra),
                peer_type: "t".to_owned(),
                state: "s".to_owned(),
                since: "x".to_owned(),
                info: "i".to_owned(),
            };
            let t = table(&[row]);
            let header = t.lines().nth(1).expect("header line");
            let cell = header.split('|').nth(1).expect("first cell");
            let spare = extra;
            let left = spare / 2;
            assert_eq!(
                cell,
                format!(
                    " {}PEER ADDRESS{} ",
                    " ".repeat(left),
                    " ".repeat(spare - left)
                )
            );
        }
    }

    #[test]
    fn json_has_the_table_cells() {
        let show = "Mesh_10_0_0_2 BGP --- up 12:00:00.000 Established\n";
        let status = NodeStatus::from_protocols(true, &parse_show_protocols(show));
        let v: serde_json::Value = serde_json::from_str(&status.to_json()).expect("json");
        assert_eq!(v["running"], true);
        assert_eq!(v["ipv4"][0]["peer_address"], "10.0.0.2");
        assert_eq!(v["ipv4"][0]["peer_type"], "node-to-node mesh");
        assert_eq!(v["ipv4"][0]["info"], "Established");
        assert_eq!(v["ipv6"], serde_json::json!([]));
    }
}
