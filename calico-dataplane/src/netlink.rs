//! The netlink backend: rtnetlink (links, addresses, routes, neighbours, FDB) over one
//! synchronous `NETLINK_ROUTE` socket, and sysctls through `/proc/sys`, in the caller's
//! network namespace or a named one.
//!
//! Requests are pipelined: up to [`BATCH`] messages go out in one `send`, each with its own
//! sequence number and an ACK request, and the ACKs are matched back, so a failing entry
//! fails alone. No async runtime is involved.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::dataplane::{BackendError, Dataplane, FailureKind, Op};
use crate::netns::{Netns, NetnsError};
use crate::state::{
    Address, Device, DeviceKind, FdbEntry, IfName, Link, LinkDetails, Mac, Neighbour, Observed,
    Route, RouteKind, RouteScope as Scope,
};

/// Messages sent per `send` before collecting their ACKs.
pub const BATCH: usize = 512;

const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;
const ENOENT: i32 = Errno::ENOENT as i32;
const ESRCH: i32 = Errno::ESRCH as i32;

/// Errors of the netlink backend.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The socket could not be opened or used.
    #[error("netlink socket: {source}")]
    Socket {
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected a request.
    #[error("{what}: {source}")]
    Kernel {
        /// The request, in `ip` syntax.
        what: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The kernel lacks the device kind.
    #[error("cannot create {name}: the kernel has no {kind} device type")]
    UnsupportedKind {
        /// Interface name.
        name: String,
        /// Kind.
        kind: String,
    },
    /// An interface named in a request does not exist.
    #[error("no interface named {name:?}")]
    NoSuchInterface {
        /// Interface name.
        name: String,
    },
    /// nftables: the transaction failed (nothing changed).
    #[error("nftables: {source}")]
    Nft {
        /// Cause.
        #[source]
        source: Box<crate::nft::ApplyError>,
    },
    /// nftables: the table could not be read back.
    #[error("nftables: {source}")]
    NftRead {
        /// Cause.
        #[source]
        source: Box<crate::nft::ReadError>,
    },
    /// The kernel did not answer in time ([`RECV_TIMEOUT`]).
    #[error("{what}: no answer from the kernel within {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },
    /// Every attempt at a dump was flagged inconsistent by the kernel (the table kept
    /// changing while it was read).
    #[error(
        "{what}: the kernel flagged the dump inconsistent {attempts} times in a row (NLM_F_DUMP_INTR)"
    )]
    DumpInterrupted {
        /// The dump.
        what: String,
        /// Attempts made.
        attempts: usize,
    },
    /// A reply could not be decoded.
    #[error("cannot decode a netlink reply: {detail}")]
    Decode {
        /// What went wrong.
        detail: String,
    },
}

impl BackendError for NetlinkError {
    fn kind(&self) -> FailureKind {
        match self {
            NetlinkError::UnsupportedKind { .. } => FailureKind::UnsupportedDeviceKind,
            _ => FailureKind::Other,
        }
    }
}

impl NetlinkError {
    /// The errno of a kernel rejection.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A synchronous `NETLINK_ROUTE` socket bound in one namespace.
struct RtSocket {
    sock: Socket,
    seq: u32,
    timeout: Duration,
}

/// How long a receive waits for the kernel before the request counts as unanswered.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a dump the kernel marked inconsistent (`NLM_F_DUMP_INTR`: the table changed
/// while it was being read) is started again before giving up.
pub const DUMP_ATTEMPTS: usize = 5;

/// A copy of an I/O error that keeps its OS errno (so [`is_not_found`] and
/// [`NetlinkError::errno`] still see it) and otherwise its kind and text.
fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// A receive error as a socket error; a receive that ran into the socket's timeout is
/// [`NetlinkError::Timeout`].
fn recv_error(source: io::Error, what: &str, after: Duration) -> NetlinkError {
    match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetlinkError::Timeout {
            what: what.to_owned(),
            after,
        },
        _ => NetlinkError::Socket { source },
    }
}

/// Splits one datagram into its netlink messages, using netlink-packet-core's checked
/// buffer for the length field; messages start at 4-byte aligned offsets.
fn split_messages(data: &[u8]) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NetlinkError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = NetlinkBuffer::new_checked(rest)
            .map_err(|e| NetlinkError::Decode {
                detail: e.to_string(),
            })?
            .length() as usize;
        let (frame, after) = rest.split_at(len);
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(frame).map_err(|e| {
            NetlinkError::Decode {
                detail: e.to_string(),
            }
        })?;
        out.push(m);
        rest = after.get(nlmsg_padding(len)..).unwrap_or_default();
    }
    Ok(out)
}

/// The padding after a message of `len` bytes (`NLMSG_ALIGN`).
fn nlmsg_padding(len: usize) -> usize {
    len.next_multiple_of(NLMSG_ALIGNTO) - len
}

const NLMSG_ALIGNTO: usize = 4;

/// What one received message means for a dump in progress.
#[derive(Debug, PartialEq)]
enum DumpStep {
    /// Not this dump's (another sequence number): ignore.
    Foreign,
    /// A part of the dump; `interrupted` when the kernel flagged it inconsistent.
    Part { interrupted: bool },
    /// The dump ended.
    Done,
    /// The kernel refused the dump with this errno.
    Refused(i32),
}

fn dump_step(m: &NetlinkMessage<RouteNetlinkMessage>, seq: u32) -> DumpStep {
    if m.header.sequence_number != seq {
        return DumpStep::Foreign;
    }
    let interrupted = m.header.flags & NLM_F_DUMP_INTR != 0;
    match &m.payload {
        NetlinkPayload::Done(_) => DumpStep::Done,
        NetlinkPayload::Error(e) => match e.code {
            Some(c) => DumpStep::Refused(-c.get()),
            None => DumpStep::Done,
        },
        _ => DumpStep::Part { interrupted },
    }
}

impl RtSocket {
    fn open(ns: &Netns) -> Result<RtSocket, NetlinkError> {
        RtSocket::open_with_timeout(ns, RECV_TIMEOUT)
    }

    fn open_with_timeout(ns: &Netns, timeout: Duration) -> Result<RtSocket, NetlinkError> {
        let sock = ns.run(|| -> io::Result<Socket> {
            let mut s = Socket::new(NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.connect(&SocketAddr::new(0, 0))?;
            // Large buffers: dumps of 20,000 routes and batches of ACKs.
            s.set_rx_buf_sz(8 * 1024 * 1024)?;
            // A kernel that never answers must not hang the agent.
            socket2::SockRef::from(&s).set_read_timeout(Some(timeout))?;
            Ok(s)
        })?;
        let sock = sock.map_err(|source| NetlinkError::Socket { source })?;
        Ok(RtSocket {
            sock,
            seq: 1,
            timeout,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn encode(&mut self, msg: RouteNetlinkMessage, flags: u16, buf: &mut Vec<u8>) -> u32 {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = buf.len();
        buf.resize(start + m.buffer_len(), 0);
        m.serialize(&mut buf[start..]);
        seq
    }

    fn recv_messages(
        &self,
        what: &str,
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NetlinkError> {
        let (data, _) = self
            .sock
            .recv_from_full()
            .map_err(|source| recv_error(source, what, self.timeout))?;
        split_messages(&data)
    }

    /// Sends requests with ACKs, pipelined; one result per request.
    fn requests(&mut self, reqs: Vec<(RouteNetlinkMessage, u16)>) -> Vec<Result<(), io::Error>> {
        let mut results = Vec::with_capacity(reqs.len());
        let mut iter = reqs.into_iter().peekable();
        while iter.peek().is_some() {
            let mut buf = Vec::new();
            let mut seqs: BTreeMap<u32, usize> = BTreeMap::new();
            let base = results.len();
            for (i, (msg, flags)) in iter.by_ref().take(BATCH).enumerate() {
                let seq = self.encode(msg, flags | NLM_F_ACK, &mut buf);
                seqs.insert(seq, base + i);
                results.push(Err(io::Error::other("no reply from the kernel")));
            }
            if let Err(e) = self.sock.send(&buf, 0) {
                for (_, i) in seqs {
                    if let Some(r) = results.get_mut(i) {
                        *r = Err(copy_io_error(&e));
                    }
                }
                continue;
            }
            while !seqs.is_empty() {
                let msgs = match self.recv_messages("waiting for acknowledgements") {
                    Ok(m) => m,
                    Err(e) => {
                        for (_, i) in std::mem::take(&mut seqs) {
                            if let Some(r) = results.get_mut(i) {
                                *r = Err(match &e {
                                    NetlinkError::Socket { source } => copy_io_error(source),
                                    NetlinkError::Timeout { .. } => {
                                        io::Error::new(io::ErrorKind::TimedOut, e.to_string())
                                    }
                                    other => io::Error::new(
                                        io::ErrorKind::InvalidData,
                                        other.to_string(),
                                    ),
                                });
                            }
                        }
                        break;
                    }
                };
                for m in msgs {
                    let Some(i) = seqs.remove(&m.header.sequence_number) else {
                        continue;
                    };
                    let res = match m.payload {
                        NetlinkPayload::Error(e) => match e.code {
                            None => Ok(()),
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                        },
                        _ => Ok(()),
                    };
                    if let Some(r) = results.get_mut(i) {
                        *r = res;
                    }
                }
            }
        }
        results
    }

    /// Dumps a table. A dump the kernel flags as interrupted (the table changed while it was
    /// read, so the parts may be inconsistent) is read to its end and started again, up to
    /// [`DUMP_ATTEMPTS`] times.
    fn dump(
        &mut self,
        what: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut buf = Vec::new();
            let seq = self.encode(msg.clone(), NLM_F_DUMP, &mut buf);
            self.sock
                .send(&buf, 0)
                .map_err(|source| NetlinkError::Socket { source })?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                for m in self.recv_messages(what)? {
                    match dump_step(&m, seq) {
                        DumpStep::Foreign => {}
                        DumpStep::Part { interrupted: i } => {
                            interrupted |= i;
                            if let NetlinkPayload::InnerMessage(inner) = m.payload {
                                out.push(inner);
                            }
                        }
                        DumpStep::Done => break 'recv,
                        DumpStep::Refused(errno) => {
                            return Err(NetlinkError::Kernel {
                                what: what.to_owned(),
                                source: io::Error::from_raw_os_error(errno),
                            });
                        }
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NetlinkError::DumpInterrupted {
            what: what.to_owned(),
            attempts: DUMP_ATTEMPTS,
        })
    }
}

/// The netlink dataplane of one network namespace.
pub struct NetlinkDataplane {
    ns: Netns,
    sock: RtSocket,
    nft: Option<crate::nft::NftDataplane>,
}

impl std::fmt::Debug for NetlinkDataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkDataplane")
            .field("netns", &self.ns.describe())
            .finish()
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn from_route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    <[u8; 6]>::try_from(bytes).ok().map(Mac)
}

fn kind_name(k: &InfoKind) -> String {
    k.to_string()
}

fn decode_link(m: &LinkMessage) -> Option<Link> {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        details: LinkDetails::default(),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Address(b) => link.mac = mac_of(b),
            LinkAttribute::Mtu(v) => link.mtu = *v,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => link.kind = Some(kind_name(k)),
                        LinkInfo::Data(InfoData::Vxlan(v)) => {
                            for x in v {
                                match x {
                                    InfoVxlan::Id(id) => link.details.vni = Some(*id),
                                    InfoVxlan::Port(p) => link.details.port = Some(*p),
                                    InfoVxlan::Local(l) => {
                                        link.details.local = Some(IpAddr::V4(*l))
                                    }
                                    InfoVxlan::Local6(l) => {
                                        link.details.local = Some(IpAddr::V6(*l));
                                    }
                                    InfoVxlan::Link(p) => link.details.parent_index = Some(*p),
                                    InfoVxlan::Learning(l) => link.details.learning = Some(*l),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some(link)
}

fn decode_route(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
    let h = &m.header;
    let kind = match h.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::BlackHole => RouteKind::Blackhole,
        _ => return None,
    };
    let mut table = u32::from(h.table);
    let mut dst = None;
    let mut via = None;
    let mut dev = None;
    let mut src = None;
    let mut metric = 0;
    let mut mtu = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = from_route_addr(d),
            RouteAttribute::Gateway(g) => via = from_route_addr(g),
            RouteAttribute::Oif(i) => dev = names.get(i).map(IfName::from),
            RouteAttribute::PrefSource(s) => src = from_route_addr(s),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Metrics(ms) => {
                for x in ms {
                    if let RouteMetric::Mtu(v) = x {
                        mtu = Some(*v);
                    }
                }
            }
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dst = match (dst, h.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let dst = ipnet::IpNet::new(dst, h.destination_prefix_length).ok()?;
    let scope = match h.scope {
        RouteScope::Link => Scope::Link,
        RouteScope::Host => Scope::Host,
        _ => Scope::Universe,
    };
    if kind == RouteKind::Blackhole {
        // IPv6 blackholes are reported on `lo`.
        dev = None;
    }
    Some(Route {
        dst,
        kind,
        via,
        dev,
        proto: u8::from(h.protocol).into(),
        scope,
        src,
        metric,
        onlink: h.flags.contains(RouteFlags::Onlink),
        mtu,
    })
}

impl NetlinkDataplane {
    /// The dataplane of `ns`.
    pub fn open(ns: Netns) -> Result<NetlinkDataplane, NetlinkError> {
        let sock = RtSocket::open(&ns)?;
        Ok(NetlinkDataplane {
            ns,
            sock,
            nft: None,
        })
    }

    /// The dataplane of the caller's namespace.
    pub fn current() -> Result<NetlinkDataplane, NetlinkError> {
        NetlinkDataplane::open(Netns::current())
    }

    /// The dataplane of the namespace `ip netns` calls `name`.
    pub fn named(name: &str) -> Result<NetlinkDataplane, NetlinkError> {
        NetlinkDataplane::open(Netns::named(name)?)
    }

    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let msgs = self.sock.dump(
            "dumping links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => decode_link(l),
                _ => None,
            })
            .collect())
    }

    /// The link named `name`.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    fn index_map(&mut self) -> Result<BTreeMap<String, u32>, NetlinkError> {
        Ok(self
            .links()?
            .into_iter()
            .map(|l| (l.name, l.index))
            .collect())
    }

    /// Main-table routes.
    pub fn routes(&mut self) -> Result<Vec<Route>, NetlinkError> {
        let names: BTreeMap<u32, String> =
            self.index_map()?.into_iter().map(|(n, i)| (i, n)).collect();
        let msgs = self.sock.dump(
            "dumping routes",
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => decode_route(r, &names),
                _ => None,
            })
            .collect())
    }

    /// Creates a veth pair: `name` here, `peer` created directly inside `peer_ns`, both with
    /// `mtu`; `mac` sets this side's MAC. Neither side is brought up.
    pub fn create_veth(
        &mut self,
        name: &str,
        mac: Option<Mac>,
        peer: &str,
        peer_ns: &Netns,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(f) = peer_ns.file() {
            use std::os::fd::AsRawFd;
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(f.as_raw_fd()));
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(mac) = mac {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let what = format!("link add {name} type veth peer name {peer}");
        self.one(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
    }

    fn one(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: String,
    ) -> Result<(), NetlinkError> {
        match self.sock.requests(vec![(msg, flags)]).pop() {
            Some(Ok(())) => Ok(()),
            Some(Err(source)) => Err(NetlinkError::Kernel { what, source }),
            None => Err(NetlinkError::Decode {
                detail: "no result".to_owned(),
            }),
        }
    }

    fn addresses(&mut self, names: &BTreeMap<u32, String>) -> Result<Vec<Address>, NetlinkError> {
        let msgs = self.sock.dump(
            "dumping addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        let mut out = Vec::new();
        for m in &msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            let mut local = None;
            let mut addr = None;
            for at in &a.attributes {
                match at {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => addr = Some(*ip),
                    _ => {}
                }
            }
            let (Some(ip), Some(dev)) = (local.or(addr), names.get(&a.header.index)) else {
                continue;
            };
            if let Ok(net) = ipnet::IpNet::new(ip, a.header.prefix_len) {
                out.push(Address {
                    dev: dev.clone(),
                    addr: net,
                });
            }
        }
        Ok(out)
    }

    fn neighbours(
        &mut self,
        names: &BTreeMap<u32, String>,
        links: &[Link],
    ) -> Result<(Vec<Neighbour>, Vec<FdbEntry>), NetlinkError> {
        let mut neigh = Vec::new();
        let mut fdb = Vec::new();
        let msgs = self.sock.dump(
            "dumping neighbours",
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        )?;
        let mut bridge_req = NeighbourMessage::default();
        bridge_req.header.family = AddressFamily::Bridge;
        let bridge_msgs = self.sock.dump(
            "dumping FDB entries",
            RouteNetlinkMessage::GetNeighbour(bridge_req),
        )?;
        for m in msgs.iter().chain(bridge_msgs.iter()) {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.state != NeighbourState::Permanent
                || n.header.flags.contains(NeighbourFlags::Proxy)
            {
                continue;
            }
            let Some(dev) = names.get(&n.header.ifindex) else {
                continue;
            };
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                        ip = Some(IpAddr::V4(*v));
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                        ip = Some(IpAddr::V6(*v));
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        // AF_BRIDGE entries carry their address untyped.
                        ip = match b.len() {
                            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                            _ => None,
                        };
                    }
                    NeighbourAttribute::LinkLayerAddress(b) => mac = mac_of(b),
                    _ => {}
                }
            }
            let (Some(ip), Some(mac)) = (ip, mac) else {
                continue;
            };
            if n.header.family == AddressFamily::Bridge {
                let is_vxlan = links
                    .iter()
                    .any(|l| &l.name == dev && l.kind.as_deref() == Some("vxlan"));
                if is_vxlan {
                    fdb.push(FdbEntry {
                        dev: dev.clone(),
                        mac,
                        dst: ip,
                    });
                }
            } else {
                neigh.push(Neighbour {
                    dev: dev.clone(),
                    ip,
                    mac,
                });
            }
        }
        Ok((neigh, fdb))
    }

    fn encode_route(
        r: &Route,
        index: &BTreeMap<String, u32>,
        delete: bool,
    ) -> Result<RouteMessage, NetlinkError> {
        let mut m = RouteMessage::default();
        let h = &mut m.header;
        h.address_family = family_of(r.dst.addr());
        h.destination_prefix_length = r.dst.prefix_len();
        h.table = RouteHeader::RT_TABLE_MAIN;
        if delete {
            h.scope = RouteScope::NoWhere;
            h.protocol = RouteProtocol::from(u8::from(r.proto));
            h.kind = match r.kind {
                RouteKind::Unicast => RouteType::Unicast,
                RouteKind::Blackhole => RouteType::BlackHole,
            };
        } else {
            h.protocol = RouteProtocol::from(u8::from(r.proto));
            h.scope = match r.scope {
                Scope::Universe => RouteScope::Universe,
                Scope::Link => RouteScope::Link,
                Scope::Host => RouteScope::Host,
            };
            h.kind = match r.kind {
                RouteKind::Unicast => RouteType::Unicast,
                RouteKind::Blackhole => RouteType::BlackHole,
            };
            if r.onlink {
                h.flags |= RouteFlags::Onlink;
            }
        }
        if r.dst.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(route_addr(r.dst.addr())));
        }
        if let Some(v) = r.via {
            m.attributes.push(RouteAttribute::Gateway(route_addr(v)));
        }
        if let (Some(d), RouteKind::Unicast) = (&r.dev, r.kind) {
            let i = index
                .get(d.as_str())
                .ok_or_else(|| NetlinkError::NoSuchInterface {
                    name: d.to_string(),
                })?;
            m.attributes.push(RouteAttribute::Oif(*i));
        }
        if r.metric != 0 {
            m.attributes.push(RouteAttribute::Priority(r.metric));
        }
        if !delete {
            if let Some(s) = r.src {
                m.attributes.push(RouteAttribute::PrefSource(route_addr(s)));
            }
            if let Some(mtu) = r.mtu {
                m.attributes
                    .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
            }
        }
        Ok(m)
    }

    fn encode_neigh(
        dev: &str,
        ip: IpAddr,
        mac: Mac,
        fdb: bool,
        index: &BTreeMap<String, u32>,
    ) -> Result<NeighbourMessage, NetlinkError> {
        let i = index
            .get(dev)
            .ok_or_else(|| NetlinkError::NoSuchInterface {
                name: dev.to_owned(),
            })?;
        let mut m = NeighbourMessage::default();
        m.header.ifindex = *i;
        m.header.state = NeighbourState::Permanent;
        if fdb {
            m.header.family = AddressFamily::Bridge;
            m.header.flags = NeighbourFlags::Own;
        } else {
            m.header.family = family_of(ip);
        }
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        Ok(m)
    }

    fn create_device(
        &mut self,
        d: &Device,
        index: &BTreeMap<String, u32>,
    ) -> Result<(), NetlinkError> {
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::IfName(d.name.clone()));
        m.attributes.push(LinkAttribute::Mtu(d.mtu));
        if let Some(mac) = d.mac {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        let info = match &d.kind {
            DeviceKind::Vxlan {
                vni,
                port,
                local,
                parent,
            } => {
                let mut v = vec![InfoVxlan::Id(*vni), InfoVxlan::Port(*port)];
                match local {
                    Some(IpAddr::V4(a)) => v.push(InfoVxlan::Local(*a)),
                    Some(IpAddr::V6(a)) => v.push(InfoVxlan::Local6(*a)),
                    None => {}
                }
                if let Some(p) = parent {
                    let i = index
                        .get(p)
                        .ok_or_else(|| NetlinkError::NoSuchInterface { name: p.clone() })?;
                    v.push(InfoVxlan::Link(*i));
                }
                v.push(InfoVxlan::Learning(false));
                vec![
                    LinkInfo::Kind(InfoKind::Vxlan),
                    LinkInfo::Data(InfoData::Vxlan(v)),
                ]
            }
            DeviceKind::Ipip => vec![LinkInfo::Kind(InfoKind::IpIp)],
        };
        m.attributes.push(LinkAttribute::LinkInfo(info));
        let what = Op::CreateDevice(d.clone()).to_string();
        match self.one(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        ) {
            Err(e) if e.errno() == Some(EOPNOTSUPP) => Err(NetlinkError::UnsupportedKind {
                name: d.name.clone(),
                kind: d.kind.name().to_owned(),
            }),
            other => other,
        }
    }

    fn set_link(
        &mut self,
        dev: &str,
        index: &BTreeMap<String, u32>,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let i = index
            .get(dev)
            .ok_or_else(|| NetlinkError::NoSuchInterface {
                name: dev.to_owned(),
            })?;
        let mut m = LinkMessage::default();
        m.header.index = *i;
        match mtu {
            Some(v) => m.attributes.push(LinkAttribute::Mtu(v)),
            None => {
                m.header.flags = LinkFlags::Up;
                m.header.change_mask = LinkFlags::Up;
            }
        }
        let what = match mtu {
            Some(v) => format!("link set {dev} mtu {v}"),
            None => format!("link set {dev} up"),
        };
        self.one(RouteNetlinkMessage::SetLink(m), 0, what)
    }

    fn delete_link(
        &mut self,
        dev: &str,
        index: &BTreeMap<String, u32>,
    ) -> Result<(), NetlinkError> {
        let i = index
            .get(dev)
            .ok_or_else(|| NetlinkError::NoSuchInterface {
                name: dev.to_owned(),
            })?;
        let mut m = LinkMessage::default();
        m.header.index = *i;
        self.one(
            RouteNetlinkMessage::DelLink(m),
            0,
            format!("link del {dev}"),
        )
    }

    /// Deletes the link `name`, if it exists; returns whether it did.
    pub fn delete_link_if_present(&mut self, name: &str) -> Result<bool, NetlinkError> {
        let index = self.index_map()?;
        if !index.contains_key(name) {
            return Ok(false);
        }
        self.delete_link(name, &index).map(|()| true)
    }

    fn encode_simple(
        op: &Op,
        index: &BTreeMap<String, u32>,
    ) -> Result<(RouteNetlinkMessage, u16), NetlinkError> {
        let replace = NLM_F_CREATE | NLM_F_REPLACE;
        Ok(match op {
            Op::AddAddress(a) | Op::DelAddress(a) => {
                let i = index
                    .get(&a.dev)
                    .ok_or_else(|| NetlinkError::NoSuchInterface {
                        name: a.dev.clone(),
                    })?;
                let mut m = AddressMessage::default();
                m.header.family = family_of(a.addr.addr());
                m.header.prefix_len = a.addr.prefix_len();
                m.header.index = *i;
                m.attributes.push(AddressAttribute::Local(a.addr.addr()));
                m.attributes.push(AddressAttribute::Address(a.addr.addr()));
                if matches!(op, Op::AddAddress(_)) {
                    (RouteNetlinkMessage::NewAddress(m), replace)
                } else {
                    (RouteNetlinkMessage::DelAddress(m), 0)
                }
            }
            Op::ReplaceRoute(r) => (
                RouteNetlinkMessage::NewRoute(Self::encode_route(r, index, false)?),
                replace,
            ),
            Op::DelRoute(r) => (
                RouteNetlinkMessage::DelRoute(Self::encode_route(r, index, true)?),
                0,
            ),
            Op::ReplaceNeighbour(n) => (
                RouteNetlinkMessage::NewNeighbour(Self::encode_neigh(
                    &n.dev, n.ip, n.mac, false, index,
                )?),
                replace,
            ),
            Op::DelNeighbour(n) => (
                RouteNetlinkMessage::DelNeighbour(Self::encode_neigh(
                    &n.dev, n.ip, n.mac, false, index,
                )?),
                0,
            ),
            Op::ReplaceFdb(f) => (
                RouteNetlinkMessage::NewNeighbour(Self::encode_neigh(
                    &f.dev, f.dst, f.mac, true, index,
                )?),
                replace,
            ),
            Op::DelFdb(f) => (
                RouteNetlinkMessage::DelNeighbour(Self::encode_neigh(
                    &f.dev, f.dst, f.mac, true, index,
                )?),
                0,
            ),
            Op::CreateDevice(_)
            | Op::DeleteDevice(_)
            | Op::SetMtu { .. }
            | Op::SetUp(_)
            | Op::SetSysctl(_) => {
                return Err(NetlinkError::Decode {
                    detail: "not a pipelined operation".to_owned(),
                });
            }
        })
    }

    fn apply_pipelined(
        &mut self,
        ops: &[Op],
        index: &BTreeMap<String, u32>,
    ) -> Vec<Result<(), NetlinkError>> {
        let mut results: Vec<Option<Result<(), NetlinkError>>> = Vec::with_capacity(ops.len());
        let mut reqs = Vec::new();
        let mut slots = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match Self::encode_simple(op, index) {
                Ok(r) => {
                    reqs.push(r);
                    slots.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        for (slot, res) in slots.into_iter().zip(self.sock.requests(reqs)) {
            if let (Some(r), Some(op)) = (results.get_mut(slot), ops.get(slot)) {
                *r = Some(res.map_err(|source| NetlinkError::Kernel {
                    what: op.to_string(),
                    source,
                }));
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(NetlinkError::Decode {
                        detail: "no result".to_owned(),
                    })
                })
            })
            .collect()
    }
}

fn is_pipelined(op: &Op) -> bool {
    !matches!(
        op,
        Op::CreateDevice(_)
            | Op::DeleteDevice(_)
            | Op::SetMtu { .. }
            | Op::SetUp(_)
            | Op::SetSysctl(_)
    )
}

impl Dataplane for NetlinkDataplane {
    type Error = NetlinkError;

    fn sync_nft(
        &mut self,
        ruleset: &calico_nft::Ruleset,
        dry_run: bool,
    ) -> Result<Vec<String>, NetlinkError> {
        if self.nft.is_none() {
            let nft =
                self.ns
                    .run(crate::nft::NftDataplane::new)?
                    .map_err(|e| NetlinkError::Nft {
                        source: Box::new(e),
                    })?;
            self.nft = Some(nft);
        }
        let Some(nft) = self.nft.as_mut() else {
            return Ok(Vec::new());
        };
        let table = crate::nft::model::table(ruleset);
        let drift = nft
            .applier()
            .drift(&table)
            .map_err(|e| NetlinkError::NftRead {
                source: Box::new(e),
            })?;
        if drift.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines = Vec::new();
        if drift.table_missing {
            lines.push(format!("add table inet {}", calico_nft::TABLE));
        }
        lines.extend(drift.sets.iter().map(|s| format!("write set {s}")));
        lines.extend(drift.chains.iter().map(|c| format!("write chain {c}")));
        if !dry_run {
            // Plan against what the kernel holds, not what was applied last.
            nft.forget();
            nft.apply_ruleset(ruleset).map_err(|e| NetlinkError::Nft {
                source: Box::new(e),
            })?;
        }
        Ok(lines)
    }

    fn observe(&mut self, sysctls: &[&str]) -> Result<Observed, NetlinkError> {
        let links = self.links()?;
        let names: BTreeMap<u32, String> =
            links.iter().map(|l| (l.index, l.name.clone())).collect();
        let addresses = self.addresses(&names)?;
        let routes = self.routes()?;
        let (neighbours, fdb) = self.neighbours(&names, &links)?;
        let sysctls = self.ns.read_sysctls(sysctls)?.into_iter().collect();
        Ok(Observed {
            links,
            addresses,
            routes,
            neighbours,
            fdb,
            sysctls,
        })
    }

    fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), NetlinkError>> {
        let mut results = Vec::with_capacity(ops.len());
        let mut index = match self.index_map() {
            Ok(i) => i,
            Err(e) => {
                let text = e.to_string();
                return ops
                    .iter()
                    .map(|_| {
                        Err(NetlinkError::Socket {
                            source: io::Error::other(text.clone()),
                        })
                    })
                    .collect();
            }
        };
        let mut i = 0;
        while let Some(op) = ops.get(i) {
            if is_pipelined(op) {
                let end = ops[i..]
                    .iter()
                    .position(|o| !is_pipelined(o))
                    .map_or(ops.len(), |p| i + p);
                results.extend(self.apply_pipelined(&ops[i..end], &index));
                i = end;
                continue;
            }
            if let Op::SetSysctl(_) = op {
                let end = ops[i..]
                    .iter()
                    .position(|o| !matches!(o, Op::SetSysctl(_)))
                    .map_or(ops.len(), |p| i + p);
                let entries: Vec<(&str, &str)> = ops[i..end]
                    .iter()
                    .filter_map(|o| match o {
                        Op::SetSysctl(s) => Some((s.path.as_str(), s.value.as_str())),
                        _ => None,
                    })
                    .collect();
                match self.ns.write_sysctls(&entries) {
                    Ok(rs) => results.extend(rs.into_iter().map(|r| r.map_err(NetlinkError::from))),
                    Err(e) => {
                        let text = e.to_string();
                        results.extend(entries.iter().map(|_| {
                            Err(NetlinkError::Socket {
                                source: io::Error::other(text.clone()),
                            })
                        }));
                    }
                }
                i = end;
                continue;
            }
            let r = match op {
                Op::CreateDevice(d) => self.create_device(d, &index),
                Op::DeleteDevice(d) => match self.delete_link(d, &index) {
                    // Already gone (e.g. with its parent): nothing to do.
                    Err(NetlinkError::NoSuchInterface { .. }) => Ok(()),
                    other => other,
                },
                Op::SetMtu { dev, mtu } => self.set_link(dev, &index, Some(*mtu)),
                Op::SetUp(dev) => self.set_link(dev, &index, None),
                _ => Ok(()),
            };
            let changed_links = matches!(op, Op::CreateDevice(_) | Op::DeleteDevice(_));
            results.push(r);
            if changed_links {
                if let Ok(m) = self.index_map() {
                    index = m;
                }
            }
            i += 1;
        }
        results
    }
}

/// Whether an error means "the entry was not there" (deleting what is already gone).
pub fn is_not_found(e: &NetlinkError) -> bool {
    matches!(e.errno(), Some(ENOENT | ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DoneMessage, ErrorMessage};
    use std::num::NonZeroI32;

    fn message(seq: u32, flags: u16, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.flags = flags;
        let mut m = NetlinkMessage::new(header, payload);
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn link(seq: u32, flags: u16, name: &str) -> Vec<u8> {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.to_owned()));
        message(
            seq,
            flags,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)),
        )
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        message(seq, 0, NetlinkPayload::Error(e))
    }

    #[test]
    fn a_datagram_splits_into_its_messages_at_aligned_offsets() {
        // Names of 1 to 5 bytes give attribute lengths that need padding.
        let names = ["a", "ab", "abc", "abcd", "abcde"];
        let mut data = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let m = link(i as u32 + 1, 0, n);
            assert_eq!(m.len() % 4, 0, "rtnetlink messages are padded to 4 bytes");
            data.extend(m);
        }
        data.extend(message(9, 0, NetlinkPayload::Done(DoneMessage::default())));
        let msgs = split_messages(&data).expect("splits");
        assert_eq!(msgs.len(), names.len() + 1);
        for (m, n) in msgs.iter().zip(names) {
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = &m.payload else {
                panic!("not a link: {m:?}");
            };
            assert_eq!(decode_link(l).map(|l| l.name), Some(n.to_owned()));
        }
        assert!(matches!(msgs[names.len()].payload, NetlinkPayload::Done(_)));
    }

    #[test]
    fn truncated_or_short_frames_are_decode_errors_not_panics() {
        let m = link(1, 0, "eth0");
        for cut in 1..m.len() {
            assert!(
                matches!(split_messages(&m[..cut]), Err(NetlinkError::Decode { .. })),
                "a frame cut at {cut} of {} bytes must be an error",
                m.len()
            );
        }
        let mut bad = m.clone();
        bad[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(
            split_messages(&bad),
            Err(NetlinkError::Decode { .. })
        ));
        assert!(split_messages(&[]).expect("empty").is_empty());
    }

    #[test]
    fn dump_steps_follow_sequence_numbers_flags_and_errors() {
        let parse = |b: Vec<u8>| split_messages(&b).expect("decodes").remove(0);
        assert_eq!(dump_step(&parse(link(7, 0, "x")), 8), DumpStep::Foreign);
        assert_eq!(
            dump_step(&parse(link(7, 0, "x")), 7),
            DumpStep::Part { interrupted: false }
        );
        assert_eq!(
            dump_step(&parse(link(7, NLM_F_DUMP_INTR, "x")), 7),
            DumpStep::Part { interrupted: true }
        );
        let done = message(7, 0, NetlinkPayload::Done(DoneMessage::default()));
        assert_eq!(dump_step(&parse(done), 7), DumpStep::Done);
        for errno in [ENOENT, ESRCH, EOPNOTSUPP] {
            assert_eq!(
                dump_step(&parse(error(7, errno)), 7),
                DumpStep::Refused(errno)
            );
        }
    }

    #[test]
    fn copied_errors_keep_their_errno_so_not_found_is_recognised() {
        for errno in [ENOENT, ESRCH] {
            let source = copy_io_error(&io::Error::from_raw_os_error(errno));
            assert_eq!(source.raw_os_error(), Some(errno));
            let e = NetlinkError::Kernel {
                what: "ip route del 10.0.0.0/24".to_owned(),
                source,
            };
            assert!(is_not_found(&e), "{e}");
        }
        let other = copy_io_error(&io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(other.kind(), io::ErrorKind::BrokenPipe);
        assert!(other.to_string().contains("gone"));
        assert_eq!(EOPNOTSUPP, 95);
    }

    #[test]
    fn a_receive_with_nothing_to_read_times_out() {
        let sock = RtSocket::open_with_timeout(&Netns::current(), Duration::from_millis(50))
            .expect("a NETLINK_ROUTE socket needs no privilege");
        match sock.recv_messages("waiting for nothing") {
            Err(NetlinkError::Timeout { what, after }) => {
                assert_eq!(what, "waiting for nothing");
                assert_eq!(after, Duration::from_millis(50));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn a_dump_of_links_lists_the_loopback_device() {
        let mut sock = RtSocket::open(&Netns::current()).expect("socket");
        let msgs = sock
            .dump(
                "dumping links",
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
            )
            .expect("dump");
        let names: Vec<String> = msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => decode_link(l).map(|l| l.name),
                _ => None,
            })
            .collect();
        assert!(names.iter().any(|n| n == "lo"), "{names:?}");
    }
}
