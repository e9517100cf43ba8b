//! A small HTTP/2 client that writes frames by hand (for the conformance and h2 tests): it
//! sends exactly what a case says, and reads the server's frames with a bounded wait.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 1;
pub const ACK: u8 = 1;
pub const END_HEADERS: u8 = 4;
pub const PADDED: u8 = 8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const NO_ERROR: u32 = 0;
pub const PROTOCOL_ERROR: u32 = 1;
pub const FLOW_CONTROL_ERROR: u32 = 3;
pub const STREAM_CLOSED: u32 = 5;
pub const FRAME_SIZE_ERROR: u32 = 6;
pub const COMPRESSION_ERROR: u32 = 9;

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }
}

/// What the server did about a case.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// GOAWAY with this code (a connection error).
    GoAway(u32),
    /// RST_STREAM with this code on the stream (a stream error).
    Reset(u32, u32),
    /// Closed without a GOAWAY.
    Closed,
}

pub struct H2 {
    pub socket: TcpStream,
    buf: Vec<u8>,
    pub encoder: loona_hpack::Encoder<'static>,
    decoder: loona_hpack::Decoder<'static>,
    /// The server's first SETTINGS frame.
    pub first_settings: Option<Frame>,
}

impl H2 {
    /// Connects, sends the preface and `settings`, and reads up to the server's SETTINGS
    /// (acknowledged).
    pub fn open(addr: SocketAddr, settings: &[(u16, u32)]) -> H2 {
        let socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut h2 = H2 {
            socket,
            buf: Vec::new(),
            encoder: loona_hpack::Encoder::new(),
            decoder: loona_hpack::Decoder::new(),
            first_settings: None,
        };
        h2.write(PREFACE);
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        h2.send(SETTINGS, 0, 0, &payload);
        let first = h2.read().expect("server SETTINGS");
        assert_eq!(
            first.kind, SETTINGS,
            "the server's preface is a SETTINGS frame"
        );
        h2.send(SETTINGS, ACK, 0, &[]);
        h2.first_settings = Some(first);
        h2
    }

    pub fn write(&mut self, bytes: &[u8]) {
        // The server may have closed already; what it sent is still read.
        let _ = self.socket.write_all(bytes);
    }

    pub fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let bytes = H2::frame_bytes(kind, flags, stream, payload);
        self.write(&bytes);
    }

    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.encoder
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// HEADERS with END_HEADERS.
    pub fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = self.block(fields);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send(HEADERS, flags, stream, &block);
    }

    pub fn get(&mut self, stream: u32, path: &str) {
        self.headers(stream, &get_fields(path), true);
    }

    /// The next frame, or `None` when the server closed (or said nothing for 10 s).
    pub fn read(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let frame = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes(self.buf[5..9].try_into().unwrap())
                            & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 65536];
            match self.socket.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until the server signals an error (GOAWAY, or RST_STREAM on `stream`) or closes.
    pub fn outcome(&mut self, stream: u32) -> Outcome {
        while let Some(frame) = self.read() {
            match frame.kind {
                GOAWAY => return Outcome::GoAway(frame.code()),
                RST_STREAM if frame.stream == stream => {
                    return Outcome::Reset(frame.stream, frame.code())
                }
                _ => {}
            }
        }
        Outcome::Closed
    }

    pub fn decode(&mut self, block: &[u8]) -> Vec<(String, String)> {
        self.decoder
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    /// Reads stream `stream`'s response (head and body), answering PINGs and giving window
    /// back as DATA arrives. Panics on a reset or GOAWAY with an error.
    pub fn response(&mut self, stream: u32) -> (Vec<(String, String)>, Vec<u8>) {
        let mut head = Vec::new();
        let mut body = Vec::new();
        let mut block = Vec::new();
        loop {
            let frame = self
                .read()
                .unwrap_or_else(|| panic!("closed before stream {stream} ended"));
            match frame.kind {
                HEADERS | CONTINUATION if frame.stream == stream => {
                    block.extend_from_slice(&frame.payload);
                    if frame.flags & END_HEADERS != 0 {
                        let fields = self.decode(&std::mem::take(&mut block));
                        if head.is_empty() {
                            head = fields;
                        }
                    }
                    if frame.kind == HEADERS && frame.flags & END_STREAM != 0 {
                        return (head, body);
                    }
                }
                DATA => {
                    if !frame.payload.is_empty() {
                        let n = frame.payload.len() as u32;
                        self.send(WINDOW_UPDATE, 0, 0, &n.to_be_bytes());
                        self.send(WINDOW_UPDATE, 0, frame.stream, &n.to_be_bytes());
                    }
                    if frame.stream == stream {
                        body.extend_from_slice(&frame.payload);
                        if frame.flags & END_STREAM != 0 {
                            return (head, body);
                        }
                    }
                }
                RST_STREAM if frame.stream == stream => {
                    panic!("stream {stream} reset with {}", frame.code())
                }
                GOAWAY if frame.code() != NO_ERROR => panic!("GOAWAY {}", frame.code()),
                _ => {}
            }
        }
    }
}

pub fn get_fields(path: &str) -> Vec<(&'static str, &str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", path),
    ]
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
