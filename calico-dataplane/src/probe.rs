//! Probing connectivity with real packets between network namespaces: TCP connects, UDP
//! datagrams (received or not) and ICMP echo, plus the listeners that answer them.
//!
//! Sockets are opened inside a namespace through [`Netns::run`], so the listeners are held by
//! the calling process (nothing to kill afterwards); ICMP echo runs `ping` through
//! `ip netns exec`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use crate::netns::{Netns, NetnsError};

/// One kind of probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// A TCP connect to this port (allowed when the handshake completes).
    Tcp(u16),
    /// A UDP datagram to this port (allowed when the listener receives it).
    Udp(u16),
    /// An ICMP echo request (type 8, code 0; allowed when the reply arrives).
    Icmp,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp(p) => write!(f, "tcp/{p}"),
            Probe::Udp(p) => write!(f, "udp/{p}"),
            Probe::Icmp => f.write_str("icmp"),
        }
    }
}

/// Errors of probing.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket could not be opened or bound.
    #[error("cannot open a {what} socket in {netns}: {source}")]
    Socket {
        /// What was being opened (`TCP listener on 8080`, ...).
        what: String,
        /// The namespace.
        netns: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `ping` could not be started.
    #[error("cannot run ping in {netns}: {source}")]
    Ping {
        /// The namespace name.
        netns: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Whether a TCP handshake from `ns` to `addr` completes within `timeout` (a listener's
/// backlog completes it; no accept is needed).
pub fn tcp_connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<bool, ProbeError> {
    Ok(ns.run(move || TcpStream::connect_timeout(&addr, timeout).is_ok())?)
}

/// Sends `payload` twice from `ns` to `addr` over UDP; the receiver decides the outcome.
pub fn udp_send(ns: &Netns, addr: SocketAddr, payload: &[u8]) -> Result<(), ProbeError> {
    let netns = ns.describe();
    ns.run(move || -> Result<(), ProbeError> {
        let s = UdpSocket::bind(("0.0.0.0", 0)).map_err(|source| ProbeError::Socket {
            what: "UDP sender".to_owned(),
            netns,
            source,
        })?;
        for _ in 0..2 {
            // A send refused locally (no route, policy) is a denied probe, not an error.
            let _ = s.send_to(payload, addr);
        }
        Ok(())
    })?
}

/// Whether one ICMP echo from the namespace named `netns` to `dst` is answered within
/// `wait_secs` seconds (`ip netns exec NETNS ping -c 1 -W WAIT DST`).
pub fn ping(netns: &str, dst: IpAddr, wait_secs: u32) -> Result<bool, ProbeError> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-n", "-q", "-c", "1", "-W"])
        .arg(wait_secs.to_string())
        .arg(dst.to_string())
        .output()
        .map_err(|source| ProbeError::Ping {
            netns: netns.to_owned(),
            source,
        })?;
    Ok(out.status.success())
}

/// TCP listeners and UDP receivers bound on all addresses inside one namespace; dropped,
/// they close.
#[derive(Debug)]
pub struct Responders {
    _tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
}

impl Responders {
    /// Binds a TCP listener on each of `tcp` and a non-blocking UDP socket on each of `udp`
    /// inside `ns`.
    pub fn bind(ns: &Netns, tcp: &[u16], udp: &[u16]) -> Result<Responders, ProbeError> {
        let netns = ns.describe();
        let tcp = tcp.to_vec();
        let udp = udp.to_vec();
        ns.run(move || -> Result<Responders, ProbeError> {
            let err = |what: String, source| ProbeError::Socket {
                what,
                netns: netns.clone(),
                source,
            };
            let mut listeners = Vec::new();
            for port in tcp {
                listeners.push(
                    TcpListener::bind(("0.0.0.0", port))
                        .map_err(|e| err(format!("TCP listener on {port}"), e))?,
                );
            }
            let mut sockets = Vec::new();
            for port in udp {
                let s = UdpSocket::bind(("0.0.0.0", port))
                    .map_err(|e| err(format!("UDP socket on {port}"), e))?;
                s.set_nonblocking(true)
                    .map_err(|e| err(format!("UDP socket on {port}"), e))?;
                sockets.push(s);
            }
            Ok(Responders {
                _tcp: listeners,
                udp: sockets,
            })
        })?
    }

    /// The UDP payloads received so far (each at most 256 bytes), drained.
    pub fn received(&self) -> BTreeSet<Vec<u8>> {
        let mut seen = BTreeSet::new();
        let mut buf = [0u8; 256];
        for s in &self.udp {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                seen.insert(buf[..n].to_vec());
            }
        }
        seen
    }
}
