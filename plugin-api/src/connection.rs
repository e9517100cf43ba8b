//! A client connection lent to a plug-in: read the request and its body, answer it, or take
//! it over as a websocket. Owning a `Connection` is owning the client socket; dropping it
//! gives the socket back to the server.

use std::ffi::c_void;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tungstenite::protocol::Role;
use tungstenite::WebSocket;

use crate::abi::{
    Bytes, Handoff, Outcome, BODY_CHUNKED, BODY_LENGTH, GATE_ANSWERING, GATE_OPEN, GATE_TAKEN,
    GATE_UPGRADED, OUTCOME_ABANDONED, OUTCOME_RESPONDED, OUTCOME_UPGRADED,
};
use crate::body::{self, BodyState, Source};
use crate::entry::bytes;
use crate::request::{has_token, Request};
use crate::socket;
use crate::websocket::WsStream;

/// The lent socket and what the server needs to hear when it comes back.
pub(crate) struct Lease {
    /// Null once given back.
    lent: *mut c_void,
    fd: RawFd,
    gate: *const u32,
    conn_id: u64,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    kind: u32,
    status: u32,
    keep_alive: bool,
    body_bytes: u64,
    leftover: Vec<u8>,
}

// SAFETY: the lease is the only holder of the lent connection; the server accepts it back
// from any thread, and the socket and gate stay valid until it is given back.
#[allow(unsafe_code)]
unsafe impl Send for Lease {}

impl Lease {
    fn gate(&self) -> &AtomicU32 {
        // SAFETY: the server keeps the gate, an aligned u32 used only atomically, alive until
        // the lease is given back, which is after the last use of `self`.
        #[allow(unsafe_code)]
        unsafe {
            AtomicU32::from_ptr(self.gate.cast_mut())
        }
    }

    /// Claims the right to write: moves the gate from open to `to` (answering or upgraded).
    /// Fails when the server has already timed the request out.
    pub(crate) fn claim(&self, to: u32) -> io::Result<()> {
        match self
            .gate()
            .compare_exchange(GATE_OPEN, to, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(GATE_TAKEN) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the server timed this request out",
            )),
            Err(_) => {
                if to == GATE_UPGRADED {
                    self.gate().store(GATE_UPGRADED, Ordering::Release);
                }
                Ok(())
            }
        }
    }

    pub(crate) fn recv(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let n = socket::recv(self.fd, buf, deadline)?;
        self.bytes_read += n as u64;
        Ok(n)
    }

    pub(crate) fn send(&mut self, bytes: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
        let n = socket::send(self.fd, bytes, deadline)?;
        self.bytes_written += n as u64;
        Ok(n)
    }

    pub(crate) fn send_all(
        &mut self,
        mut bytes: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.send(bytes, deadline)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    pub(crate) fn log(&self, line: &str) {
        crate::host::log_line(self.conn_id, line);
    }

    pub(crate) fn mark_upgraded(&mut self) {
        self.kind = OUTCOME_UPGRADED;
        self.status = 101;
        self.keep_alive = false;
    }

    fn give_back(&mut self) {
        if self.lent.is_null() {
            return;
        }
        let outcome = Outcome {
            kind: self.kind,
            status: self.status,
            keep_alive: u32::from(self.keep_alive),
            wrote_anything: u32::from(self.bytes_written > 0),
            body_bytes: self.body_bytes,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            leftover: Bytes::of(&self.leftover),
        };
        let lent = std::mem::replace(&mut self.lent, std::ptr::null_mut());
        crate::host::give_back(lent, &outcome);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// The socket as a body source, reading until the body deadline.
struct SocketSource<'a> {
    lease: &'a mut Lease,
    deadline: Instant,
}

impl Source for SocketSource<'_> {
    fn more(&mut self, into: &mut Vec<u8>) -> io::Result<usize> {
        let start = into.len();
        into.resize(start + 16 * 1024, 0);
        let got = self.lease.recv(&mut into[start..], Some(self.deadline));
        into.truncate(start + *got.as_ref().unwrap_or(&0));
        got
    }
}

/// A client connection lent to the plug-in, with its request. `Send`, not `Clone`.
pub struct Connection {
    lease: Lease,
    request: Request,
    unread: Vec<u8>,
    body: BodyState,
    expect_continue: bool,
    keep_alive_allowed: bool,
    send_timeout: Duration,
    body_timeout: Duration,
    server: String,
}

fn text(b: Bytes) -> String {
    // SAFETY: the handoff's bytes are valid for the `handle` call, during which this runs.
    #[allow(unsafe_code)]
    let slice = unsafe { bytes(b) };
    String::from_utf8_lossy(slice).into_owned()
}

fn optional_text(b: Bytes) -> Option<String> {
    if b.ptr.is_null() {
        None
    } else {
        Some(text(b))
    }
}

impl Connection {
    /// Copies the handoff into an owned connection.
    ///
    /// # Safety
    /// `handoff` must be the server's, valid for the current `handle` call.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn from_handoff(handoff: &Handoff) -> Connection {
        let headers = if handoff.headers.is_null() {
            &[][..]
        } else {
            // SAFETY: the server passes `header_count` header refs valid for the call.
            unsafe { std::slice::from_raw_parts(handoff.headers, handoff.header_count) }
        };
        let peer_ip = if handoff.peer.family == 6 {
            IpAddr::V6(Ipv6Addr::from(handoff.peer.ip))
        } else {
            let ip = handoff.peer.ip;
            IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
        };
        let request = Request {
            method: text(handoff.method),
            target: text(handoff.target),
            path: text(handoff.path),
            subpath: text(handoff.subpath),
            query: optional_text(handoff.query),
            query_decoded: optional_text(handoff.query_decoded),
            minor_version: handoff.minor_version.min(1) as u8,
            headers: headers
                .iter()
                .map(|h| (text(h.name), text(h.value)))
                .collect(),
            peer: SocketAddr::new(peer_ip, handoff.peer.port),
            scheme: match text(handoff.scheme) {
                scheme if scheme.is_empty() => "http".to_string(),
                scheme => scheme,
            },
            client_keep_alive: handoff.client_keep_alive != 0,
        };
        let body = match handoff.body_kind {
            BODY_LENGTH => BodyState::Length(handoff.body_length),
            BODY_CHUNKED => BodyState::Chunked,
            _ => BodyState::Done,
        };
        // SAFETY: as above, the unread bytes are valid for the call.
        let unread = unsafe { bytes(handoff.unread) }.to_vec();
        Connection {
            lease: Lease {
                lent: handoff.lent,
                fd: handoff.fd,
                gate: handoff.gate,
                conn_id: handoff.conn_id,
                bytes_read: 0,
                bytes_written: 0,
                kind: OUTCOME_ABANDONED,
                status: 0,
                keep_alive: false,
                body_bytes: 0,
                leftover: Vec::new(),
            },
            request,
            unread,
            body,
            expect_continue: handoff.expect_continue != 0,
            keep_alive_allowed: handoff.keep_alive_allowed != 0,
            send_timeout: Duration::from_millis(handoff.send_timeout_ms.max(1)),
            body_timeout: Duration::from_millis(handoff.body_timeout_ms.max(1)),
            server: text(handoff.server),
        }
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Writes a line to the server's error log, tagged with the plug-in and the connection.
    pub fn log(&self, line: &str) {
        self.lease.log(line);
    }

    /// Reads the whole request body (Content-Length or chunked), at most `max_bytes`; sends
    /// `100 Continue` first when the client asked for it. A larger body is an
    /// `ErrorKind::FileTooLarge` error and bad chunked framing `InvalidData`; after either the
    /// connection can still be answered (413 or 400) but is not kept alive.
    pub fn read_body(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        if self.body == BodyState::Done {
            return Ok(Vec::new());
        }
        if self.expect_continue && self.lease.bytes_written == 0 && self.unread.is_empty() {
            self.expect_continue = false;
            let too_large = matches!(self.body, BodyState::Length(n) if n > max_bytes as u64);
            if !too_large {
                let deadline = Instant::now() + self.send_timeout;
                self.lease
                    .send_all(b"HTTP/1.1 100 Continue\r\n\r\n", Some(deadline))?;
            }
        }
        let mut source = SocketSource {
            lease: &mut self.lease,
            deadline: Instant::now() + self.body_timeout,
        };
        body::read_all(&mut self.body, &mut self.unread, &mut source, max_bytes)
    }

    /// Answers the request: adds `Date`, `Server`, `Content-Length` and `Connection` (headers
    /// of those names in `headers` are ignored; `Connection: close` is honoured), sends no body
    /// for `HEAD`, and gives the connection back to the server, which keeps it alive when the
    /// client and the exchange allow.
    pub fn respond(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        if !(200..=999).contains(&status) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a final status is 200 to 999",
            ));
        }
        for (name, value) in headers {
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            let value_ok = !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
            if !name_ok || !value_ok {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid header field {name:?}"),
                ));
            }
        }
        // A small body the client already sent completely need not be read to keep the
        // connection.
        if let BodyState::Length(n) = self.body {
            if self.unread.len() as u64 >= n {
                self.unread.drain(..n as usize);
                self.body = BodyState::Done;
            }
        }
        let closes = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && has_token(v, "close"));
        let keep_alive = self.keep_alive_allowed
            && self.request.client_keep_alive
            && self.body == BodyState::Done
            && !closes;
        let bodiless = status == 204 || status == 304;
        let send_body = !bodiless && !self.request.is_head();
        let mut out = Vec::with_capacity(
            256 + if send_body {
                body.len().min(64 * 1024)
            } else {
                0
            },
        );
        push_status(&mut out, self.request.minor_version, status, &self.server);
        for (name, value) in headers {
            let reserved = [
                "content-length",
                "transfer-encoding",
                "connection",
                "date",
                "server",
            ];
            if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !bodiless {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        match (keep_alive, self.request.minor_version) {
            (true, 0) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            (true, _) => {}
            (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        self.lease.claim(GATE_ANSWERING)?;
        let deadline = Some(Instant::now() + self.send_timeout);
        let body_sent = if send_body { body } else { &[] };
        if body_sent.len() <= 64 * 1024 {
            out.extend_from_slice(body_sent);
            self.lease.send_all(&out, deadline)?;
        } else {
            self.lease.send_all(&out, deadline)?;
            self.lease.send_all(body_sent, deadline)?;
        }
        self.lease.kind = OUTCOME_RESPONDED;
        self.lease.status = u32::from(status);
        self.lease.body_bytes = body_sent.len() as u64;
        self.lease.keep_alive = keep_alive;
        if keep_alive {
            self.lease.leftover = std::mem::take(&mut self.unread);
        }
        Ok(())
    }

    /// Completes a websocket handshake (RFC 6455 section 4.2) and gives the plug-in the socket
    /// as a tungstenite websocket. A request that is not a valid handshake is answered (400, or
    /// 426 for another protocol version) and the error returned. Dropping the websocket gives
    /// the connection back to the server, which closes it.
    pub fn upgrade_websocket(self) -> io::Result<WebSocket<WsStream>> {
        self.upgrade_websocket_with_protocol(None)
    }

    /// Like `upgrade_websocket`, answering with `Sec-WebSocket-Protocol: protocol` when given.
    pub fn upgrade_websocket_with_protocol(
        mut self,
        protocol: Option<&str>,
    ) -> io::Result<WebSocket<WsStream>> {
        let refuse = |conn: Connection, status: u16, headers: &[(&str, &str)], why: &str| {
            let _ = conn.respond(status, headers, format!("{why}\n").as_bytes());
            Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()))
        };
        let req = &self.request;
        if req.method != "GET" || req.minor_version == 0 || !req.wants_websocket() {
            return refuse(self, 400, &[], "a websocket handshake was expected");
        }
        if req.header("sec-websocket-version").map(str::trim) != Some("13") {
            return refuse(
                self,
                426,
                &[("Sec-WebSocket-Version", "13")],
                "websocket version 13 is required",
            );
        }
        let key = req.header("sec-websocket-key").map(str::trim).unwrap_or("");
        let key_ok = key.len() == 24
            && key.ends_with("==")
            && key[..22]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !key_ok {
            return refuse(self, 400, &[], "invalid Sec-WebSocket-Key");
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if protocol.is_some_and(|p| p.bytes().any(|b| !b.is_ascii_graphic() || b == b',')) {
            return refuse(self, 500, &[], "invalid websocket protocol name");
        }
        let mut out = Vec::with_capacity(256);
        push_status(&mut out, 1, 101, &self.server);
        out.extend_from_slice(
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
        );
        out.extend_from_slice(accept.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(p) = protocol {
            out.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        self.lease.claim(GATE_UPGRADED)?;
        self.lease
            .send_all(&out, Some(Instant::now() + self.send_timeout))?;
        self.lease.mark_upgraded();
        let Connection {
            lease,
            unread,
            send_timeout,
            ..
        } = self;
        let stream = WsStream::new(lease, send_timeout);
        Ok(WebSocket::from_partially_read(
            stream,
            unread,
            Role::Server,
            None,
        ))
    }
}

/// Appends the status line, `Date` and `Server`.
fn push_status(out: &mut Vec<u8>, minor_version: u8, status: u16, server: &str) {
    let version = if minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let server = if server.is_empty() {
        "occwserv"
    } else {
        server
    };
    out.extend_from_slice(
        format!(
            "{version} {status} {}\r\nDate: {date}\r\nServer: {server}\r\n",
            reason_phrase(status)
        )
        .as_bytes(),
    );
}

/// The reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
