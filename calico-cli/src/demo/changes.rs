//! Convergence: probing until the kernel's behaviour equals the prediction, and BGP sessions
//! until BIRD's protocols equal calico-route's plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use calico_model::resources::Resource;
use calico_node::BirdControl;
use calico_node::protocols::{parse_peer_name, parse_show_protocols};
use calico_route::{Cluster, Family};
use serde_json::{Value, json};

use super::matrix::Matrix;
use crate::exit::CliError;

/// One measured phase or change.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// What happened.
    pub(crate) description: String,
    /// Probes compared at the end.
    pub(crate) probes: usize,
    /// How many agreed.
    pub(crate) agree: usize,
    /// Whether it converged within the limit.
    pub(crate) converged: bool,
    /// Seconds from the datastore write to convergence (or to giving up).
    pub(crate) seconds: f64,
}

impl Outcome {
    pub(crate) fn phase_json(&self) -> Value {
        json!({"name": self.description, "probes": self.probes, "agree": self.agree,
               "seconds": (self.seconds * 1000.0).round() / 1000.0})
    }

    pub(crate) fn change_json(&self) -> Value {
        json!({"description": self.description, "converged": self.converged,
               "seconds": (self.seconds * 1000.0).round() / 1000.0})
    }
}

/// Probes `m` in rounds until every probe agrees with the prediction or `limit` passes.
/// The time is that of the start of the first round that agreed, from `since` (a round
/// sends every probe at once, so its start bounds when the kernel was already right).
///
/// With `applied` (seconds from `since` until every agent had applied the write), that is
/// the time reported once the probes confirm it.
pub(crate) fn probe_until_agree(
    description: &str,
    m: &mut Matrix,
    pod_ns: &[String],
    since: Instant,
    limit: Duration,
    applied: Option<f64>,
    extra: &mut dyn FnMut() -> bool,
) -> Result<Outcome, CliError> {
    loop {
        let round = Instant::now();
        super::observe(m, pod_ns)?;
        let (agree, disagree) = m.agreement();
        let done = disagree == 0 && extra();
        if done || since.elapsed() > limit {
            return Ok(Outcome {
                description: description.to_owned(),
                probes: agree + disagree,
                agree,
                converged: done,
                seconds: if done {
                    let probed = round.duration_since(since).as_secs_f64();
                    applied.map_or(probed, |a| a.min(probed).max(0.0))
                } else {
                    since.elapsed().as_secs_f64()
                },
            });
        }
    }
}

/// The BGP protocol names calico-route plans for each of `nodes`.
pub(crate) fn planned_sessions(
    resources: &[Resource],
    affinities: &[calico_route::input::Affinity],
    nodes: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut cluster = Cluster::from_resources(resources.iter());
    cluster.affinities = affinities.to_vec();
    cluster.sort();
    nodes
        .iter()
        .map(|n| {
            let names = calico_route::bird::render(&cluster, n, Family::V4)
                .map(|c| c.peerings.into_iter().map(|p| p.name).collect())
                .unwrap_or_default();
            (n.clone(), names)
        })
        .collect()
}

/// BIRD's BGP protocols at `socket`: name → whether Established.
pub(crate) fn bird_sessions(socket: &Path) -> Option<BTreeMap<String, bool>> {
    let reply = BirdControl::connect(socket, Duration::from_secs(2))
        .and_then(|mut c| c.command("show protocols"))
        .ok()?;
    Some(
        parse_show_protocols(&reply.text())
            .into_iter()
            .filter(|r| parse_peer_name(&r.name).is_some())
            .map(|r| (r.name, r.info.starts_with("Established")))
            .collect(),
    )
}

/// Whether every node's BIRD runs exactly the planned sessions, with those to other demo
/// nodes (`internal`: their addresses) Established.
pub(crate) fn sessions_match(
    planned: &BTreeMap<String, BTreeSet<String>>,
    sockets: &BTreeMap<String, std::path::PathBuf>,
    internal: &BTreeSet<String>,
) -> bool {
    planned.iter().all(|(node, want)| {
        let Some(socket) = sockets.get(node) else {
            return false;
        };
        let Some(have) = bird_sessions(socket) else {
            return false;
        };
        let names: BTreeSet<String> = have.keys().cloned().collect();
        names == *want
            && have.iter().all(|(name, up)| {
                *up || parse_peer_name(name)
                    .is_none_or(|p| !internal.contains(&p.address.to_string()))
            })
    })
}

/// The datastore revision the agent in `netns` last applied to the kernel, from its
/// Prometheus endpoint (`calico_node_applied_revision`, port 9091 inside the namespace).
pub(crate) fn applied_revision(netns: &str) -> Option<i64> {
    use std::io::{Read, Write};
    let ns = calico_dataplane::netns::Netns::named(netns).ok()?;
    let text = ns
        .run(|| -> Option<String> {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9091));
            let mut s =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })
        .ok()??;
    calico_node::Metrics::applied_revision_in(&text).and_then(|r| i64::try_from(r).ok())
}

/// Seconds from `since` until every agent in `netns` applied revision `rev` (`None`: not
/// within `limit`).
pub(crate) fn wait_applied(
    netns: &[String],
    rev: i64,
    since: Instant,
    limit: Duration,
) -> Option<f64> {
    loop {
        if netns
            .iter()
            .all(|n| applied_revision(n).is_some_and(|r| r >= rev))
        {
            return Some(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether each node's installed BIRD configuration is the one calico-route renders now.
pub(crate) fn bird_configs_match(
    resources: &[Resource],
    affinities: &[calico_route::input::Affinity],
    state_dirs: &BTreeMap<String, std::path::PathBuf>,
) -> bool {
    let mut cluster = Cluster::from_resources(resources.iter());
    cluster.affinities = affinities.to_vec();
    cluster.sort();
    state_dirs.iter().all(|(node, dir)| {
        let want = calico_route::bird::render(&cluster, node, Family::V4).map(|c| c.text);
        let have = std::fs::read_to_string(dir.join("bird.cfg"));
        matches!((want, have), (Ok(w), Ok(h)) if w == h)
    })
}
