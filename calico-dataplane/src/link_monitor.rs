//! Link notifications: the kernel tells a subscriber when a link appears, changes or goes
//! away (the rtnetlink `RTMGRP_LINK` group), so an agent can program a workload's routes the
//! moment its interface appears instead of at its next refresh.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::netlink::NetlinkError;

/// The rtnetlink multicast group of link events.
const RTMGRP_LINK: u32 = 1;

/// A subscription to link events in the calling thread's network namespace.
#[derive(Debug)]
pub struct LinkMonitor {
    sock: Socket,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes (in the namespace of the calling thread).
    pub fn open() -> Result<LinkMonitor, NetlinkError> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|source| NetlinkError::Socket { source })?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|source| NetlinkError::Socket { source })?;
        sock.set_rx_buf_sz(1024 * 1024)
            .map_err(|source| NetlinkError::Socket { source })?;
        Ok(LinkMonitor {
            sock,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits at most `timeout` for link events; returns whether any arrived (all that are
    /// queued are consumed). A queue overflow (events lost) also counts as "something
    /// happened": the caller lists the links again either way.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, NetlinkError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let set = |s: &Socket, t: Option<Duration>| {
            socket2::SockRef::from(s)
                .set_read_timeout(t)
                .map_err(|source| NetlinkError::Socket { source })
        };
        set(&self.sock, Some(timeout))?;
        let mut seen = false;
        loop {
            match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(_) => {
                    seen = true;
                    // Drain what else is queued without waiting.
                    set(&self.sock, Some(Duration::from_micros(1)))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(seen);
                }
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                    seen = true
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(NetlinkError::Socket { source }),
            }
        }
    }
}
