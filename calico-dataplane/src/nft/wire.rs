//! Netlink message and attribute encoding (native-endian headers, big-endian nf_tables values).

use super::consts::{NFPROTO_UNSPEC, NLA_F_NESTED, NLA_TYPE_MASK};

/// Length of a netlink message header.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// Length of the nfgenmsg header that follows it in nfnetlink messages.
pub(crate) const NFGEN_HDRLEN: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A growing buffer of netlink messages.
#[derive(Debug, Default, Clone)]
pub(crate) struct MsgBuf {
    pub(crate) buf: Vec<u8>,
}

impl MsgBuf {
    /// Starts a message with an nfgenmsg header; returns its start offset for [`MsgBuf::end_msg`].
    pub(crate) fn begin_msg(
        &mut self,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Writes the length of the message begun at `start`.
    pub(crate) fn end_msg(&mut self, start: usize) {
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// A whole message without attributes.
    pub(crate) fn empty_msg(&mut self, ty: u16, flags: u16, seq: u32, res_id: u16) {
        let s = self.begin_msg(ty, flags, seq, NFPROTO_UNSPEC, res_id);
        self.end_msg(s);
    }

    /// Appends one attribute with a raw payload (padded to 4 bytes).
    pub(crate) fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// Appends a big-endian u32 attribute.
    pub(crate) fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Appends a NUL-terminated string attribute.
    pub(crate) fn attr_str(&mut self, ty: u16, s: &str) {
        let len = u16::try_from(4 + s.len() + 1).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute; returns its offset for [`MsgBuf::nest_end`].
    pub(crate) fn nest_begin(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    /// Closes a nested attribute; false when it grew past the 64 KiB attribute limit.
    pub(crate) fn nest_end(&mut self, start: usize) -> bool {
        let len = self.buf.len() - start;
        let fits = len <= usize::from(u16::MAX);
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        fits
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len()) - self.buf.len();
        self.buf.extend(std::iter::repeat_n(0u8, n));
    }
}

/// A parsed netlink message header and its payload (after the 16-byte header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NlMsg<'a> {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a received datagram into netlink messages; stops at the first malformed one.
pub(crate) fn messages(mut b: &[u8]) -> Vec<NlMsg<'_>> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(ty), Some(flags), Some(seq)) =
            (ne_u32(b, 0), ne_u16(b, 4), ne_u16(b, 6), ne_u32(b, 8))
        else {
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        out.push(NlMsg {
            ty,
            flags,
            seq,
            payload: &b[NLMSG_HDRLEN..len],
        });
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// Iterates the attributes of a buffer as (type without flags, payload).
pub(crate) fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let (Some(len), Some(ty)) = (ne_u16(b, 0), ne_u16(b, 2)) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty & NLA_TYPE_MASK, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// The first attribute of type `ty`.
pub(crate) fn find(b: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(b).into_iter().find(|(t, _)| *t == ty).map(|(_, p)| p)
}

/// A NUL-terminated string attribute's text.
pub(crate) fn attr_string(p: &[u8]) -> String {
    let end = p.iter().position(|c| *c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// A big-endian u32 attribute.
pub(crate) fn attr_be32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// Reads a native-endian i32 (netlink error code).
pub(crate) fn ne_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// Encodes libnftnl-style userdata TLVs.
pub(crate) fn udata(items: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, v) in items {
        let len = u8::try_from(v.len()).unwrap_or(u8::MAX);
        out.push(*ty);
        out.push(len);
        out.extend_from_slice(&v[..usize::from(len)]);
    }
    out
}

/// Parses libnftnl-style userdata TLVs.
pub(crate) fn parse_udata(mut b: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let (ty, len) = (b[0], usize::from(b[1]));
        let Some(v) = b.get(2..2 + len) else { break };
        out.push((ty, v));
        b = &b[2 + len..];
    }
    out
}

/// A comment as userdata value: the text, truncated to fit, NUL-terminated.
pub(crate) fn comment_value(c: &str) -> Vec<u8> {
    let mut end = c.len().min(127);
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = c.as_bytes()[..end].to_vec();
    v.push(0);
    v
}

/// 64-bit FNV-1a, used for rule digests (stable across runs and processes).
pub(crate) fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
