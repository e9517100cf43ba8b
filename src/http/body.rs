//! Request bodies: Content-Length or chunked (RFC 9112 section 7.1), read from a `Conn`.

use std::io;
use std::time::Instant;

use super::{Body, HttpError};
use crate::conn::Conn;

/// Reads a request body in pieces, decoding chunked framing and enforcing a size limit.
/// Bytes already in `conn.unread` are consumed first.
pub struct BodyReader {
    state: State,
    max_body_bytes: u64,
    total: u64,
}

enum State {
    /// `remaining` bytes of a length-delimited body (or of the current chunk).
    Fixed { remaining: u64, chunked: bool },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Expecting the CRLF after chunk data.
    ChunkEnd,
    /// Reading trailer lines until the empty one.
    Trailers,
    Done,
}

/// A failure while reading a body.
#[derive(Debug)]
pub enum BodyError {
    /// Bad framing or too large: answer with this error.
    Http(HttpError),
    /// The socket failed or the peer went away.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::TimedOut {
            BodyError::Http(HttpError::Timeout)
        } else {
            BodyError::Io(e)
        }
    }
}

const MAX_CHUNK_LINE: usize = 4096;

impl BodyReader {
    pub fn new(body: Body, max_body_bytes: u64) -> BodyReader {
        let state = match body {
            Body::None => State::Done,
            Body::Length(n) => State::Fixed { remaining: n, chunked: false },
            Body::Chunked => State::ChunkSize,
        };
        BodyReader { state, max_body_bytes, total: 0 }
    }

    /// Whether the whole body has been delivered (a length-delimited body is done as soon as
    /// its last byte is, without another `read`).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::Fixed { remaining: 0, chunked: false })
    }

    /// Bytes of body delivered so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Appends the next piece of body to `out`; returns the bytes added, 0 at the end.
    pub fn read(&mut self, conn: &mut Conn, out: &mut Vec<u8>, deadline: Instant) -> Result<usize, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Fixed { remaining, chunked } => {
                    if remaining == 0 {
                        self.state = if chunked { State::ChunkEnd } else { State::Done };
                        continue;
                    }
                    if conn.unread.is_empty() {
                        fill(conn, deadline)?;
                    }
                    let take = (remaining.min(conn.unread.len() as u64)) as usize;
                    out.extend_from_slice(&conn.unread[..take]);
                    conn.unread.drain(..take);
                    self.total += take as u64;
                    self.state = State::Fixed { remaining: remaining - take as u64, chunked };
                    return Ok(take);
                }
                State::ChunkSize => {
                    let line = take_line(conn, deadline)?;
                    let size_part = line.split(|b| *b == b';').next().unwrap_or(&[]);
                    let size_text = std::str::from_utf8(size_part).map_err(|_| bad("invalid chunk size"))?;
                    let size_text = size_text.trim_end_matches([' ', '\t']);
                    if size_text.is_empty() || size_text.len() > 15 || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("invalid chunk size"));
                    }
                    let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("invalid chunk size"))?;
                    if size == 0 {
                        self.state = State::Trailers;
                        continue;
                    }
                    if self.total.saturating_add(size) > self.max_body_bytes {
                        return Err(BodyError::Http(HttpError::PayloadTooLarge));
                    }
                    self.state = State::Fixed { remaining: size, chunked: true };
                }
                State::ChunkEnd => {
                    let line = take_line(conn, deadline)?;
                    if !line.is_empty() {
                        return Err(bad("chunk data longer than its size"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let line = take_line(conn, deadline)?;
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// Reads the whole body into a vector.
    pub fn read_to_end(&mut self, conn: &mut Conn, deadline: Instant) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        while self.read(conn, &mut out, deadline)? > 0 {}
        Ok(out)
    }

    /// Reads and throws the body away, so the connection can carry the next request.
    pub fn discard(&mut self, conn: &mut Conn, deadline: Instant) -> Result<(), BodyError> {
        let mut sink = Vec::new();
        loop {
            sink.clear();
            if self.read(conn, &mut sink, deadline)? == 0 {
                return Ok(());
            }
        }
    }
}

fn bad(why: &'static str) -> BodyError {
    BodyError::Http(HttpError::BadRequest(why))
}

fn fill(conn: &mut Conn, deadline: Instant) -> Result<(), BodyError> {
    let mut buf = std::mem::take(&mut conn.unread);
    let got = conn.read_until(&mut buf, 64 * 1024, deadline);
    conn.unread = buf;
    match got? {
        0 => Err(BodyError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed during body"))),
        _ => Ok(()),
    }
}

/// Takes one CRLF- (or LF-) terminated line from the connection, without the terminator.
fn take_line(conn: &mut Conn, deadline: Instant) -> Result<Vec<u8>, BodyError> {
    loop {
        if let Some(end) = conn.unread.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = conn.unread.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if conn.unread.len() > MAX_CHUNK_LINE {
            return Err(bad("chunk line too long"));
        }
        fill(conn, deadline)?;
    }
}
