//! HTTP/2 frames (RFC 9113 §4, §6): the frame header, the constants, and writers that append
//! whole frames to an output buffer. Pure code: no sockets, no channels.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 9;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The initial flow-control window of a connection and of every stream (§6.9.2).
pub const DEFAULT_WINDOW: i64 = 65_535;
/// The largest window a WINDOW_UPDATE may make (§6.9.1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The smallest and largest SETTINGS_MAX_FRAME_SIZE (§6.5.2).
pub const MIN_MAX_FRAME: usize = 16_384;
pub const MAX_MAX_FRAME: usize = (1 << 24) - 1;

/// Error codes (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    EnhanceYourCalm = 0xb,
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHead {
    /// Reads a frame header from the first 9 bytes; the reserved bit is ignored (§4.1).
    pub fn parse(b: &[u8]) -> Option<FrameHead> {
        let b = b.get(..HEADER_LEN)?;
        Some(FrameHead {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame header.
pub fn push_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// Rewrites the length and flags of the frame header at `at` (written before its payload).
pub fn patch_head(out: &mut [u8], at: usize, len: usize, flags: u8) {
    let len = len as u32;
    out[at] = (len >> 16) as u8;
    out[at + 1] = (len >> 8) as u8;
    out[at + 2] = len as u8;
    out[at + 4] = flags;
}

pub fn push_settings(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    push_head(out, settings.len() * 6, SETTINGS, 0, 0);
    for (id, value) in settings {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn push_settings_ack(out: &mut Vec<u8>) {
    push_head(out, 0, SETTINGS, FLAG_ACK, 0);
}

pub fn push_ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    push_head(out, 8, PING, FLAG_ACK, 0);
    out.extend_from_slice(payload);
}

pub fn push_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    push_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

pub fn push_rst(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    push_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&(code as u32).to_be_bytes());
}

pub fn push_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    push_head(out, 8 + debug.len(), GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&(code as u32).to_be_bytes());
    out.extend_from_slice(debug);
}

/// Appends a header block as one HEADERS frame and as many CONTINUATION frames as
/// `max_frame` needs (§4.3: the block is contiguous, nothing between its frames).
pub fn push_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1)).peekable();
    let mut kind = HEADERS;
    let mut first = true;
    if block.is_empty() {
        let flags = FLAG_END_HEADERS | if end_stream { FLAG_END_STREAM } else { 0 };
        push_head(out, 0, HEADERS, flags, stream);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let mut flags = 0;
        if first && end_stream {
            flags |= FLAG_END_STREAM;
        }
        if chunks.peek().is_none() {
            flags |= FLAG_END_HEADERS;
        }
        push_head(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
        kind = CONTINUATION;
        first = false;
    }
}

/// The payload of a padded frame without its padding (§6.1, §6.2): `None` when the pad
/// length is not less than the payload.
pub fn unpad(head: &FrameHead, payload: &[u8]) -> Option<(usize, usize)> {
    if !head.has(FLAG_PADDED) {
        return Some((0, payload.len()));
    }
    let pad = usize::from(*payload.first()?);
    if pad >= payload.len() {
        return None;
    }
    Some((1, payload.len() - pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut out = Vec::new();
        push_head(&mut out, 70_000, HEADERS, FLAG_END_HEADERS, 0x8000_0003);
        let head = FrameHead::parse(&out).unwrap();
        assert_eq!(head.len, 70_000);
        assert_eq!(head.kind, HEADERS);
        assert_eq!(head.stream, 3, "the reserved bit is dropped");
    }

    #[test]
    fn header_block_split_into_continuations() {
        let mut out = Vec::new();
        push_header_block(&mut out, 1, &[7u8; 40], true, 16);
        let first = FrameHead::parse(&out).unwrap();
        assert_eq!(
            (first.kind, first.len, first.flags),
            (HEADERS, 16, FLAG_END_STREAM)
        );
        let second = FrameHead::parse(&out[25..]).unwrap();
        assert_eq!((second.kind, second.flags), (CONTINUATION, 0));
        let third = FrameHead::parse(&out[50..]).unwrap();
        assert_eq!(
            (third.kind, third.len, third.flags),
            (CONTINUATION, 8, FLAG_END_HEADERS)
        );
    }

    #[test]
    fn padding() {
        let head = FrameHead {
            len: 5,
            kind: DATA,
            flags: FLAG_PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&head, &[2, b'a', b'b', 0, 0]), Some((1, 3)));
        assert_eq!(unpad(&head, &[5, 0, 0, 0, 0]), None);
    }
}
