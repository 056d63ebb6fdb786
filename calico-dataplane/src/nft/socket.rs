//! The nf_tables netlink socket: sending batches, collecting per-message errors, dumps.

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::batch::Batch;
use super::consts::*;
use super::error::{ApplyError, ReadError, Rejection};
use super::wire::{self, MsgBuf, NFGEN_HDRLEN, NLMSG_HDRLEN};

const RECV_BUF: usize = 1 << 20;
const SEND_BUF_MAX: usize = 64 << 20;

/// A netlink socket speaking nf_tables (in the network namespace of the calling thread).
#[derive(Debug)]
pub(crate) struct NftSocket {
    sock: Socket,
    seq: u32,
    sndbuf: usize,
}

fn sock_err(context: &'static str) -> impl FnOnce(std::io::Error) -> ApplyError {
    move |source| ApplyError::Socket { context, source }
}

fn read_err(context: &'static str) -> impl FnOnce(std::io::Error) -> ReadError {
    move |source| ReadError::Socket { context, source }
}

impl NftSocket {
    pub(crate) fn open() -> Result<NftSocket, std::io::Error> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Errors echo only the failing message's header, not its (possibly large) payload.
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        let _ = sock.set_rx_buf_sz(i32::try_from(RECV_BUF * 4).unwrap_or(i32::MAX));
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        let sndbuf = socket2::SockRef::from(&sock)
            .send_buffer_size()
            .unwrap_or(0);
        Ok(NftSocket { sock, seq, sndbuf })
    }

    /// Reserves `n` sequence numbers and returns the first.
    pub(crate) fn reserve_seq(&mut self, n: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n);
        first
    }

    fn ensure_sndbuf(&mut self, bytes: usize) -> Result<(), ApplyError> {
        if bytes + 64 <= self.sndbuf {
            return Ok(());
        }
        let want = (bytes + 4096).min(SEND_BUF_MAX);
        let r = socket2::SockRef::from(&self.sock);
        // SO_SNDBUFFORCE (CAP_NET_ADMIN, which programming nftables needs anyway) goes past
        // net.core.wmem_max, as nft itself does for large batches; SO_SNDBUF otherwise.
        let forced =
            nix::sys::socket::setsockopt(&self.sock, nix::sys::socket::sockopt::SndBufForce, &want);
        if forced.is_err() {
            r.set_send_buffer_size(want)
                .map_err(sock_err("set send buffer"))?;
        }
        self.sndbuf = r.send_buffer_size().map_err(sock_err("get send buffer"))?;
        if bytes + 64 > self.sndbuf {
            return Err(ApplyError::TooLarge {
                bytes,
                limit: self.sndbuf,
            });
        }
        Ok(())
    }

    fn recv(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        let n = self.sock.recv(buf, 0)?;
        if n > buf.len() {
            return Err(std::io::Error::other("netlink reply truncated"));
        }
        Ok(())
    }

    /// Sends a finished batch and a fence request after it, then reads every reply up to
    /// the fence's acknowledgement; any error reply for the batch fails the transaction.
    pub(crate) fn send_batch(&mut self, batch: Batch) -> Result<(), ApplyError> {
        let (bytes, batch) = batch.finish();
        self.ensure_sndbuf(bytes.len())?;
        let fence = self.reserve_seq(1);
        let mut fence_msg = MsgBuf::default();
        let s = fence_msg.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            fence,
            NFPROTO_UNSPEC,
            0,
        );
        fence_msg.end_msg(s);
        self.sock.send(&bytes, 0).map_err(sock_err("send batch"))?;
        self.sock
            .send(&fence_msg.buf, 0)
            .map_err(sock_err("send fence"))?;
        let mut rejected = Vec::new();
        let mut buf = Vec::with_capacity(RECV_BUF);
        'outer: loop {
            self.recv(&mut buf)
                .map_err(sock_err("receive acknowledgements"))?;
            for m in wire::messages(&buf) {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let errno = wire::ne_i32(m.payload).unwrap_or(0);
                if m.seq == fence {
                    break 'outer;
                }
                // Replies left over from an earlier, interrupted exchange are not ours.
                let ours =
                    m.seq.wrapping_sub(batch.first_seq) < fence.wrapping_sub(batch.first_seq);
                if errno != 0 && ours {
                    let message = ext_ack_message(m.flags, m.payload);
                    let (op, object) = match batch.label(m.seq) {
                        Some(l) => (l.op, l.object.clone()),
                        None => ("batch", batch.table.clone()),
                    };
                    rejected.push(Rejection {
                        op,
                        object,
                        errno: -errno,
                        message,
                    });
                }
            }
        }
        match rejected.first().cloned() {
            None => Ok(()),
            Some(first) => Err(ApplyError::Rejected {
                table: batch.table.clone(),
                first: Box::new(first),
                more: rejected.len() - 1,
                all: rejected,
            }),
        }
    }

    /// Dumps objects of one kind (`msg` = an `NFT_MSG_GET*`), with request attributes added
    /// by `attrs`; returns each reply's attribute payload (after the nfgenmsg header).
    pub(crate) fn dump(
        &mut self,
        msg: u16,
        what: &'static str,
        table: &str,
        attrs: impl FnOnce(&mut MsgBuf),
    ) -> Result<Vec<Vec<u8>>, ReadError> {
        let seq = self.reserve_seq(1);
        let mut b = MsgBuf::default();
        let s = b.begin_msg(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            NFPROTO_INET,
            0,
        );
        attrs(&mut b);
        b.end_msg(s);
        self.sock
            .send(&b.buf, 0)
            .map_err(read_err("send dump request"))?;
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(RECV_BUF);
        loop {
            self.recv(&mut buf).map_err(read_err("receive dump"))?;
            for m in wire::messages(&buf) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = -wire::ne_i32(m.payload).unwrap_or(0);
                        if errno == 0 {
                            return Ok(out);
                        }
                        if errno == libc_enoent() {
                            return Ok(Vec::new());
                        }
                        return Err(ReadError::Dump {
                            what,
                            table: table.to_string(),
                            errno,
                        });
                    }
                    _ => {
                        if let Some(p) = m.payload.get(NFGEN_HDRLEN..) {
                            out.push(p.to_vec());
                        }
                    }
                }
            }
        }
    }
}

fn libc_enoent() -> i32 {
    2
}

/// The `NLMSGERR_ATTR_MSG` of an extended acknowledgement.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // error code, then the request's header (capped: header only).
    let tlvs = payload.get(4 + NLMSG_HDRLEN..)?;
    wire::find(tlvs, NLMSGERR_ATTR_MSG).map(wire::attr_string)
}
