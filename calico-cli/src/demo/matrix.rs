//! The demo's pods, its probe set and the connectivity matrix (predicted by calico-policy,
//! observed with packets), printed as text or JSON.
//!
//! Probe set, per destination pod: a TCP connect to each TCP `containerPort` the pod declares
//! (at most 3, lowest first; port 80 when it declares none), one UDP datagram to each UDP
//! `containerPort` it declares (at most 2; port 5353 when none) and one ICMP echo request.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use calico_dataplane::probe::Probe;
use calico_model::loader::LoadedSet;
use calico_model::resources::Resource;
use calico_model::resources::k8s::K8sProtocol;
use calico_model::resources::values::Protocol;
use calico_policy::{FlowQuery, Model, PeerQuery, Verdict};
use serde_json::{Value, json};

/// TCP port probed when a pod declares none.
pub(crate) const DEFAULT_TCP: u16 = 80;
/// UDP port probed when a pod declares none.
pub(crate) const DEFAULT_UDP: u16 = 5353;

/// A scheduled, non-host-network pod of the demo.
#[derive(Clone, Debug)]
pub(crate) struct DemoPod {
    /// Kubernetes namespace.
    pub(crate) namespace: String,
    /// Pod name.
    pub(crate) name: String,
    /// `spec.nodeName`.
    pub(crate) node: String,
    /// The IPv4 address in the manifests, if any.
    pub(crate) declared_ip: Option<Ipv4Addr>,
    /// The address the demo's CNI run gave it.
    pub(crate) ip: Option<IpAddr>,
    /// Probes with this pod as destination.
    pub(crate) probes: Vec<Probe>,
}

impl DemoPod {
    /// `namespace/name`.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// TCP ports probed on this pod.
    pub(crate) fn tcp_ports(&self) -> Vec<u16> {
        self.probes
            .iter()
            .filter_map(|p| match p {
                Probe::Tcp(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// UDP ports probed on this pod.
    pub(crate) fn udp_ports(&self) -> Vec<u16> {
        self.probes
            .iter()
            .filter_map(|p| match p {
                Probe::Udp(n) => Some(*n),
                _ => None,
            })
            .collect()
    }
}

/// The demo pods of a set, in input order.
pub(crate) fn demo_pods(set: &LoadedSet) -> Vec<DemoPod> {
    let mut pods = Vec::new();
    for r in set.resources() {
        let Resource::Pod(p) = r else { continue };
        if p.spec.node_name.is_empty() || p.spec.host_network {
            continue;
        }
        let mut tcp = BTreeSet::new();
        let mut udp = BTreeSet::new();
        for c in &p.spec.containers {
            for port in &c.ports {
                let Ok(n) = u16::try_from(port.container_port) else {
                    continue;
                };
                if n == 0 {
                    continue;
                }
                match port.protocol {
                    None | Some(K8sProtocol::Tcp) => tcp.insert(n),
                    Some(K8sProtocol::Udp) => udp.insert(n),
                    Some(_) => false,
                };
            }
        }
        let mut tcp: Vec<u16> = tcp.into_iter().take(3).collect();
        if tcp.is_empty() {
            tcp.push(DEFAULT_TCP);
        }
        let mut udp: Vec<u16> = udp.into_iter().take(2).collect();
        if udp.is_empty() {
            udp.push(DEFAULT_UDP);
        }
        let mut probes: Vec<Probe> = tcp.into_iter().map(Probe::Tcp).collect();
        probes.extend(udp.into_iter().map(Probe::Udp));
        probes.push(Probe::Icmp);
        let declared_ip = std::iter::once(p.status.pod_ip.as_str())
            .chain(p.status.pod_ips.iter().map(|i| i.ip.as_str()))
            .find_map(|s| s.parse::<Ipv4Addr>().ok());
        pods.push(DemoPod {
            namespace: p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            name: p.metadata.name.clone(),
            node: p.spec.node_name.clone(),
            declared_ip,
            ip: None,
            probes,
        });
    }
    pods
}

/// One probe of one ordered pair.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    /// Index of the source pod.
    pub(crate) from: usize,
    /// Index of the destination pod.
    pub(crate) to: usize,
    /// The probe.
    pub(crate) probe: Probe,
    /// What `Model::check` says.
    pub(crate) predicted: bool,
    /// What the packets did (live runs only).
    pub(crate) observed: Option<bool>,
}

/// The connectivity matrix.
#[derive(Clone, Debug)]
pub(crate) struct Matrix {
    /// The pods.
    pub(crate) pods: Vec<DemoPod>,
    /// Every probe of every ordered pair of distinct pods.
    pub(crate) cells: Vec<Cell>,
}

/// Why a prediction failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot predict {from} -> {to} {probe}: {source}")]
pub(crate) struct PredictError {
    from: String,
    to: String,
    probe: Probe,
    #[source]
    source: calico_policy::CheckError,
}

/// The flow `Model::check` is asked about for a probe.
fn query(from: &DemoPod, to: &DemoPod, probe: Probe) -> FlowQuery {
    let (protocol, port, icmp_type, icmp_code) = match probe {
        Probe::Tcp(p) => (Protocol::Tcp, Some(p), None, None),
        Probe::Udp(p) => (Protocol::Udp, Some(p), None, None),
        Probe::Icmp => (Protocol::Icmp, None, Some(8), Some(0)),
    };
    FlowQuery {
        from: PeerQuery::Name(from.label()),
        to: PeerQuery::Name(to.label()),
        protocol,
        port,
        icmp_type,
        icmp_code,
    }
}

impl Matrix {
    /// Predicts every probe of every ordered pair with `model`.
    pub(crate) fn predict(model: &Model, pods: Vec<DemoPod>) -> Result<Matrix, PredictError> {
        let mut cells = Vec::new();
        for (i, from) in pods.iter().enumerate() {
            for (j, to) in pods.iter().enumerate() {
                if i == j {
                    continue;
                }
                for &probe in &to.probes {
                    let verdict = model
                        .check(&query(from, to, probe))
                        .map_err(|source| PredictError {
                            from: from.label(),
                            to: to.label(),
                            probe,
                            source,
                        })?
                        .verdict;
                    cells.push(Cell {
                        from: i,
                        to: j,
                        probe,
                        predicted: verdict == Verdict::Allow,
                        observed: None,
                    });
                }
            }
        }
        Ok(Matrix { pods, cells })
    }

    /// (agreements, disagreements) among observed cells.
    pub(crate) fn agreement(&self) -> (usize, usize) {
        let mut agree = 0;
        let mut disagree = 0;
        for c in &self.cells {
            match c.observed {
                Some(o) if o == c.predicted => agree += 1,
                Some(_) => disagree += 1,
                None => {}
            }
        }
        (agree, disagree)
    }

    fn letters(&self, from: usize, to: usize, observed: bool) -> String {
        self.cells
            .iter()
            .filter(|c| c.from == from && c.to == to)
            .map(|c| {
                let v = if observed {
                    c.observed
                } else {
                    Some(c.predicted)
                };
                match v {
                    Some(true) => 'A',
                    Some(false) => '-',
                    None => '?',
                }
            })
            .collect()
    }

    /// The text rendering: the pods and their probes, then the matrix (predicted, and when
    /// live observed beside it), then the disagreements.
    pub(crate) fn text(&self, live: bool) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let w = self.pods.iter().map(|p| p.label().len()).max().unwrap_or(0);
        s += "Pods (probes to each, in order):\n";
        for (i, p) in self.pods.iter().enumerate() {
            let ip =
                p.ip.map(|a| a.to_string())
                    .or_else(|| p.declared_ip.map(|a| a.to_string()))
                    .unwrap_or_else(|| "-".to_owned());
            let probes: Vec<String> = p.probes.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                s,
                "  [{}] {:w$}  {:8} {:15} {}",
                i + 1,
                p.label(),
                p.node,
                ip,
                probes.join(" ")
            );
        }
        s += "\n";
        if live {
            s += "Connectivity (row = from, column = to; one letter per probe, A allowed, - denied;\n";
            s += "each cell PREDICTED|OBSERVED: calico-policy's Model::check | real packets):\n";
        } else {
            s += "Predicted connectivity (row = from, column = to; one letter per probe,\n";
            s += "A allowed, - denied; calico-policy's Model::check):\n";
        }
        let cw = self
            .pods
            .iter()
            .map(|p| {
                if live {
                    p.probes.len() * 2 + 1
                } else {
                    p.probes.len()
                }
            })
            .max()
            .unwrap_or(1)
            .max(4);
        let _ = write!(s, "  {:6}", "");
        for j in 0..self.pods.len() {
            let _ = write!(s, " {:cw$}", format!("[{}]", j + 1));
        }
        s += "\n";
        for i in 0..self.pods.len() {
            let _ = write!(s, "  {:6}", format!("[{}]", i + 1));
            for j in 0..self.pods.len() {
                let cell = if i == j {
                    ".".to_owned()
                } else if live {
                    format!("{}|{}", self.letters(i, j, false), self.letters(i, j, true))
                } else {
                    self.letters(i, j, false)
                };
                let _ = write!(s, " {cell:cw$}");
            }
            s += "\n";
        }
        if live {
            let (agree, disagree) = self.agreement();
            s += "\n";
            for c in &self.cells {
                if let Some(o) = c.observed
                    && o != c.predicted
                {
                    let _ = writeln!(
                        s,
                        "DISAGREE {} -> {} {}: predicted {}, observed {}",
                        self.pods[c.from].label(),
                        self.pods[c.to].label(),
                        c.probe,
                        verdict_word(c.predicted),
                        verdict_word(o)
                    );
                }
            }
            let total = agree + disagree;
            if disagree == 0 {
                let _ = writeln!(
                    s,
                    "{agree} of {total} probes agree: the kernel enforced exactly what calico-policy predicted"
                );
            } else {
                let _ = writeln!(s, "{agree} of {total} probes agree; {disagree} disagree");
            }
        } else {
            let allowed = self.cells.iter().filter(|c| c.predicted).count();
            let _ = writeln!(
                s,
                "\n{} probes predicted: {allowed} allowed, {} denied",
                self.cells.len(),
                self.cells.len() - allowed
            );
        }
        s
    }

    /// The JSON rendering.
    pub(crate) fn json(&self, skipped: Option<&str>) -> Value {
        let (agree, disagree) = self.agreement();
        json!({
            "live": skipped.is_none(),
            "skipped": skipped,
            "pods": self.pods.iter().map(|p| json!({
                "pod": p.label(),
                "node": p.node,
                "ip": p.ip.map(|a| a.to_string()).or_else(|| p.declared_ip.map(|a| a.to_string())),
                "probes": p.probes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "probes": self.cells.iter().map(|c| json!({
                "from": self.pods[c.from].label(),
                "to": self.pods[c.to].label(),
                "probe": c.probe.to_string(),
                "predicted": verdict_word(c.predicted),
                "observed": c.observed.map(verdict_word),
            })).collect::<Vec<_>>(),
            "agree": agree,
            "disagree": disagree,
        })
    }
}

fn verdict_word(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}
