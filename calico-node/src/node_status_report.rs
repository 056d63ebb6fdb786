//! CalicoNodeStatus: for each such object whose `spec.node` is this node, every
//! `spec.updatePeriodSeconds` (0 stops the updates), the agent fills `status` from BIRD's
//! control socket: `agent` (BIRD's state, version, router ID, boot and reconfiguration
//! times), `bgp` (peer counts and peers) and `routes` (BIRD's table), as selected by
//! `spec.classes` (`Agent`, `BGP`, `Routes`; all when empty), plus `lastUpdated`.
//!
//! One BIRD 2 serves both families, so `birdV4` and `birdV6` describe the same daemon;
//! peers and routes are split by address family. Without a control socket (BIRD not
//! running, or policy-only mode) the agent reports `state: NotReady`; that is not an error.
//! Times are BIRD's as it prints them (`2026-12-07 15:33:46`, `15:33:47`), as Calico shows
//! them. A route BIRD selected (`*`) is a `FIB` route, an alternative it holds is `RIB`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use calico_datastore::{KeyValue, Store, StoreError};
use serde_json::{Map, Value, json};

use crate::bird_control::BirdControl;
use crate::protocols::{PeerKind, ProtocolRow, parse_peer_name, parse_show_protocols};

/// Where CalicoNodeStatus objects are stored.
pub const PREFIX: &str = "/calico/resources/v3/projectcalico.org/caliconodestatuses/";

/// What `show status` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BirdStatus {
    /// `BIRD 2.0.12` → `2.0.12`.
    pub version: String,
    /// Router ID.
    pub router_id: String,
    /// `Last reboot on …`.
    pub last_boot: String,
    /// `Last reconfiguration on …`.
    pub last_reconfiguration: String,
}

/// Parses `show status` (reply codes stripped).
pub fn parse_show_status(text: &str) -> BirdStatus {
    let mut s = BirdStatus::default();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Router ID is ") {
            s.router_id = v.to_owned();
        } else if let Some(v) = line.strip_prefix("Last reboot on ") {
            s.last_boot = trim_millis(v);
        } else if let Some(v) = line.strip_prefix("Last reconfiguration on ") {
            s.last_reconfiguration = trim_millis(v);
        } else if let Some(v) = line.strip_prefix("BIRD ")
            && !v.contains("ready")
        {
            s.version = v.to_owned();
        }
    }
    s
}

fn trim_millis(t: &str) -> String {
    match t.rsplit_once('.') {
        Some((head, ms)) if ms.chars().all(|c| c.is_ascii_digit()) => head.to_owned(),
        _ => t.to_owned(),
    }
}

/// One route of `show route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdRoute {
    /// Destination prefix.
    pub destination: String,
    /// `via` address.
    pub gateway: Option<String>,
    /// `on` interface.
    pub interface: Option<String>,
    /// The protocol it came from.
    pub protocol: String,
    /// Whether BIRD selected it (`*`).
    pub best: bool,
}

/// Parses `show route` (reply codes stripped): a line per route (the destination is
/// repeated or, for further routes to the same destination, left out), then its `via` line.
pub fn parse_show_route(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut dest = String::new();
    for line in text.lines() {
        if line.starts_with("Table ") || line.trim().is_empty() || line.contains(" ready.") {
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("via ") {
            if let Some(last) = out.last_mut() {
                let mut words = rest.split_whitespace();
                last.gateway = words.next().map(str::to_owned);
                if words.next() == Some("on") {
                    last.interface = words.next().map(str::to_owned);
                }
            }
            continue;
        }
        if trimmed.starts_with("Type:") || trimmed.starts_with("BGP.") {
            continue;
        }
        let Some(open) = trimmed.find('[') else {
            continue;
        };
        let head = trimmed[..open].trim();
        let mut words = head.split_whitespace();
        if !line.starts_with(char::is_whitespace)
            && let Some(d) = words.next()
        {
            dest = d.to_owned();
        }
        let inside = &trimmed[open + 1..];
        let protocol = inside
            .split(|c: char| c.is_whitespace() || c == ']')
            .next()
            .unwrap_or_default()
            .to_owned();
        let best = trimmed[open..].contains("] *");
        let interface = head
            .split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .map(str::to_owned);
        out.push(BirdRoute {
            destination: dest.clone(),
            gateway: None,
            interface,
            protocol,
            best,
        });
    }
    out
}

/// What the agent read from BIRD for one report.
#[derive(Clone, Debug, Default)]
pub struct BirdSnapshot {
    /// `show status` (`None`: no control socket).
    pub status: Option<BirdStatus>,
    /// `show protocols`.
    pub protocols: Vec<ProtocolRow>,
    /// `show route`.
    pub routes: Vec<BirdRoute>,
}

impl BirdSnapshot {
    /// Reads BIRD at `socket` (empty when it does not answer).
    pub fn read(socket: &Path) -> BirdSnapshot {
        let Ok(mut c) = BirdControl::connect(socket, Duration::from_secs(2)) else {
            return BirdSnapshot::default();
        };
        let mut text = |cmd: &str| c.command(cmd).map(|r| r.text()).unwrap_or_default();
        let status = parse_show_status(&text("show status"));
        let protocols = parse_show_protocols(&text("show protocols"));
        let routes = parse_show_route(&text("show route"));
        BirdSnapshot {
            status: Some(status),
            protocols,
            routes,
        }
    }
}

fn peer_type(kind: PeerKind) -> &'static str {
    kind.status_type()
}

/// The `status` of a CalicoNodeStatus from `snap`, for `classes` (empty: all).
pub fn status_value(snap: &BirdSnapshot, classes: &[String], now: SystemTime) -> Value {
    let want = |c: &str| classes.is_empty() || classes.iter().any(|x| x == c);
    let mut status = Map::new();
    if want("Agent") {
        let agent = match &snap.status {
            Some(s) => json!({"state": "Ready", "version": s.version, "routerID": s.router_id,
                              "lastBootTime": s.last_boot,
                              "lastReconfigurationTime": s.last_reconfiguration}),
            None => json!({"state": "NotReady"}),
        };
        status.insert(
            "agent".into(),
            json!({"birdV4": agent.clone(), "birdV6": agent}),
        );
    }
    if want("BGP") {
        let mut peers: BTreeMap<bool, Vec<Value>> = BTreeMap::new();
        let mut counts = [[0u32; 2]; 2];
        for row in &snap.protocols {
            let Some(p) = parse_peer_name(&row.name) else {
                continue;
            };
            let v6 = p.address.is_ipv6();
            let state = row.info.split_whitespace().next().unwrap_or("").to_owned();
            let up = state == "Established";
            counts[usize::from(v6)][usize::from(!up)] += 1;
            peers.entry(v6).or_default().push(json!({
                "peerIP": p.address.to_string(), "type": peer_type(p.kind),
                "state": state, "since": row.since}));
        }
        status.insert(
            "bgp".into(),
            json!({
                "numberEstablishedV4": counts[0][0], "numberNotEstablishedV4": counts[0][1],
                "numberEstablishedV6": counts[1][0], "numberNotEstablishedV6": counts[1][1],
                "peersV4": peers.remove(&false).unwrap_or_default(),
                "peersV6": peers.remove(&true).unwrap_or_default(),
            }),
        );
    }
    if want("Routes") {
        let mut routes: BTreeMap<bool, Vec<Value>> = BTreeMap::new();
        for r in &snap.routes {
            let v6 = r.destination.contains(':');
            let source = match parse_peer_name(&r.protocol) {
                Some(p) => {
                    json!({"sourceType": peer_type(p.kind), "peerIP": p.address.to_string()})
                }
                None => {
                    let kind = snap.protocols.iter().find(|p| p.name == r.protocol).map_or(
                        "Unknown",
                        |p| match p.proto.as_str() {
                            "Kernel" => "Kernel",
                            "Static" => "Static",
                            "Direct" => "Direct",
                            _ => "Unknown",
                        },
                    );
                    json!({"sourceType": kind})
                }
            };
            let mut v = json!({"type": if r.best { "FIB" } else { "RIB" },
                               "destination": r.destination, "learnedFrom": source});
            if let Some(g) = &r.gateway {
                v["gateway"] = json!(g);
            }
            if let Some(i) = &r.interface {
                v["interface"] = json!(i);
            }
            routes.entry(v6).or_default().push(v);
        }
        status.insert(
            "routes".into(),
            json!({"routesV4": routes.remove(&false).unwrap_or_default(),
                   "routesV6": routes.remove(&true).unwrap_or_default()}),
        );
    }
    status.insert(
        "lastUpdated".into(),
        json!(
            calico_model::gotime::format_rfc3339(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0)
            )
            .unwrap_or_default()
        ),
    );
    Value::Object(status)
}

/// Updates this node's CalicoNodeStatus objects on their schedules.
#[derive(Debug)]
pub struct NodeStatusReporter {
    node: String,
    next: BTreeMap<Vec<u8>, Instant>,
}

impl NodeStatusReporter {
    /// For `node`.
    pub fn new(node: &str) -> NodeStatusReporter {
        NodeStatusReporter {
            node: node.to_owned(),
            next: BTreeMap::new(),
        }
    }

    /// Writes the status of every object of `objects` (CalicoNodeStatus keys and values)
    /// that is this node's and due at `now`; returns how many were written. A write that
    /// loses a race with another writer is retried at the next tick.
    pub fn tick<'a>(
        &mut self,
        store: &dyn Store,
        objects: impl IntoIterator<Item = &'a KeyValue>,
        socket: &Path,
        now: Instant,
    ) -> Result<usize, StoreError> {
        let mut written = 0;
        let mut snapshot: Option<BirdSnapshot> = None;
        let mut seen = Vec::new();
        for kv in objects {
            let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
            if spec.get("node").and_then(Value::as_str) != Some(self.node.as_str()) {
                continue;
            }
            seen.push(kv.key.clone());
            let period = spec
                .get("updatePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(10);
            if period == 0 {
                continue;
            }
            if self.next.get(&kv.key).is_some_and(|at| now < *at) {
                continue;
            }
            let classes: Vec<String> = spec
                .get("classes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let snap = snapshot.get_or_insert_with(|| BirdSnapshot::read(socket));
            obj.insert(
                "status".into(),
                status_value(snap, &classes, SystemTime::now()),
            );
            let value = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
            match store.update(&kv.key, &value, kv.mod_revision) {
                Ok(_) => {
                    written += 1;
                    self.next
                        .insert(kv.key.clone(), now + Duration::from_secs(period));
                }
                // Changed meanwhile (by its owner, or our own last write not yet seen).
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.next.retain(|k, _| seen.contains(k));
        Ok(written)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_and_routes_parse() {
        let s = parse_show_status(
            "BIRD 2.0.12\nRouter ID is 10.9.0.1\nHostname is vm\nCurrent server time is 2026-12-07 15:33:47.279\nLast reboot on 2026-12-07 15:33:46.257\nLast reconfiguration on 2026-12-07 15:33:46.300\nDaemon is up and running\n",
        );
        assert_eq!(s.version, "2.0.12");
        assert_eq!(s.router_id, "10.9.0.1");
        assert_eq!(s.last_boot, "2026-12-07 15:33:46");
        assert_eq!(s.last_reconfiguration, "2026-12-07 15:33:46");
        let r = parse_show_route(
            "Table master4:\n10.244.1.0/26        unicast [Mesh_10_9_0_2 15:33:46.257] * (100/0) [i]\n\tvia 10.9.0.2 on eth0\n                     unicast [s1 15:33:46.257] (200)\n\tvia 10.9.0.3 on eth0\n10.244.2.0/26        blackhole [s1 15:33:46.257] * (200)\n",
        );
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].destination, "10.244.1.0/26");
        assert_eq!(r[0].gateway.as_deref(), Some("10.9.0.2"));
        assert_eq!(r[0].interface.as_deref(), Some("eth0"));
        assert!(r[0].best);
        assert_eq!(r[1].destination, "10.244.1.0/26");
        assert_eq!(r[1].protocol, "s1");
        assert!(!r[1].best);
        assert_eq!(r[2].gateway, None);
        let snap = BirdSnapshot {
            status: Some(s),
            protocols: parse_show_protocols(
                "Name       Proto      Table      State  Since         Info\nMesh_10_9_0_2 BGP     ---        up     15:33:47.100  Established\ns1 Static master4 up 15:33:46.257\n",
            ),
            routes: r,
        };
        let v = status_value(&snap, &[], SystemTime::UNIX_EPOCH);
        assert_eq!(v["agent"]["birdV4"]["state"], "Ready");
        assert_eq!(v["bgp"]["numberEstablishedV4"], 1);
        assert_eq!(v["bgp"]["peersV4"][0]["type"], "NodeMesh");
        assert_eq!(v["routes"]["routesV4"][0]["type"], "FIB");
        assert_eq!(
            v["routes"]["routesV4"][0]["learnedFrom"]["sourceType"],
            "NodeMesh"
        );
        assert_eq!(
            v["routes"]["routesV4"][1]["learnedFrom"]["sourceType"],
            "Static"
        );
        assert_eq!(v["lastUpdated"], "1970-01-01T00:00:00Z");
        let only = status_value(
            &BirdSnapshot::default(),
            &["Agent".to_owned()],
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(only["agent"]["birdV4"]["state"], "NotReady");
        assert!(only.get("bgp").is_none());
    }
}
