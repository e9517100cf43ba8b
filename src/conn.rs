//! `Conn`, the connection record that travels from process to process.
//!
//! Exactly one process owns a `Conn` at a time; handing it on is a channel send. It is not
//! `Clone` and never sits behind a lock, so the compiler rejects any use after a send.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustix::net::{recv, send, RecvFlags, SendFlags};

/// The acceptor's counter; appears in every log line about the connection.
pub type ConnId = u64;

/// Most bytes taken from a socket by one read.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static READ_SCRATCH: std::cell::RefCell<Box<[u8; READ_CHUNK]>> =
        std::cell::RefCell::new(Box::new([0; READ_CHUNK]));
}

/// Everything learned about one client connection.
pub struct Conn {
    pub id: ConnId,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub accepted: Instant,
    /// Requests answered so far on this connection.
    pub requests: u32,
    /// Bytes read past the last parsed request head (pipelining, partial heads, body prefix).
    pub unread: Vec<u8>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When the head now being read must be complete; set while a partial head is parked.
    pub head_deadline: Option<Instant>,
    /// Set by idle.pool once the socket is in its epoll set, so re-parking re-arms it.
    pub registered: bool,
    /// When the connection last became readable (start of the current request).
    pub request_started: Instant,
    /// Time spent parked in idle.pool waiting for this request, for the stats.
    pub keep_alive_wait: Option<Duration>,
    /// The replica that accepted it; it lives its whole life there.
    pub replica: usize,
    /// Its place in the replica's epoll set while it is on the replica.
    pub slot: Option<u32>,
    /// The last read emptied the socket (it returned less than asked, or nothing), so with
    /// an edge-triggered epoll set the next byte to arrive raises a new event.
    pub read_dry: bool,
    /// It came through a listener with `proxy_protocol`: its first bytes are a PROXY header,
    /// read before the first request.
    pub proxy_header_due: bool,
    /// It came through the HTTPS listener: every byte in and out goes through this session.
    pub tls: Option<Box<rustls::ServerConnection>>,
    /// It is an HTTP/2 stream's record: its socket leads to the session (`h2/`), not a client.
    pub via_h2: Option<Box<crate::h2::Via>>,
    /// While an HTTPS connection is lent to a plug-in: the socketpair the TLS pump relays
    /// through (the session is with the pump meanwhile; `net/tls_pump.rs`).
    pub relay: Option<Box<crate::net::tls_pump::Relay>>,
    /// Why the TLS session refused the client's handshake (a `meters::TLS_FAILURES` key).
    pub tls_refused: Option<&'static str>,
}

/// What a non-blocking read found.
pub enum ReadOutcome {
    /// This many bytes were appended.
    Data(usize),
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed its side.
    Closed,
}

impl Conn {
    pub fn new(id: ConnId, stream: TcpStream, peer: SocketAddr, local: SocketAddr) -> Conn {
        let now = Instant::now();
        Conn {
            id,
            stream,
            peer,
            local,
            accepted: now,
            requests: 0,
            unread: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            head_deadline: None,
            registered: false,
            request_started: now,
            keep_alive_wait: None,
            replica: 0,
            slot: None,
            read_dry: false,
            proxy_header_due: false,
            tls: None,
            via_h2: None,
            relay: None,
            tls_refused: None,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// The descriptor a plug-in is lent: the socket, or over HTTPS its end of the relay.
    pub fn plugin_fd(&self) -> RawFd {
        self.relay
            .as_ref()
            .map_or_else(|| self.fd(), |relay| relay.plugin_fd())
    }

    /// Reads what is available without blocking and appends it to `buf` (at most `max` bytes).
    pub fn read_now(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<ReadOutcome> {
        let want = max.clamp(1, READ_CHUNK);
        if self.tls.is_some() {
            return self.read_tls_now(buf, want);
        }
        // Receive into a per-thread buffer zeroed once, and copy only what arrived: growing
        // `buf` by the whole chunk would zero 16 KiB on every read.
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let got = loop {
                match recv(&self.stream, &mut scratch[..want], RecvFlags::DONTWAIT) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::AGAIN) => {
                        self.read_dry = true;
                        return Ok(ReadOutcome::WouldBlock);
                    }
                    Err(e) => return Err(io::Error::from(e)),
                }
            };
            if got == 0 {
                return Ok(ReadOutcome::Closed);
            }
            self.read_dry = got < want;
            buf.extend_from_slice(&scratch[..got]);
            self.bytes_in += got as u64;
            Ok(ReadOutcome::Data(got))
        })
    }

    /// `read_now` over TLS: plaintext the session already holds, else ciphertext from the
    /// socket into the session (answering handshake messages as they come). A message the
    /// session refuses (a bad ClientHello, say) is answered with an alert and is an
    /// `InvalidData` error.
    fn read_tls_now(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<ReadOutcome> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(ReadOutcome::WouldBlock);
        };
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            loop {
                match io::Read::read(&mut tls.reader(), &mut scratch[..want]) {
                    Ok(0) => return Ok(ReadOutcome::Closed),
                    Ok(got) => {
                        buf.extend_from_slice(&scratch[..got]);
                        self.bytes_in += got as u64;
                        // The session may hold more: the next read looks before parking.
                        self.read_dry = false;
                        return Ok(ReadOutcome::Data(got));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Ok(ReadOutcome::Closed)
                    }
                    Err(e) => return Err(e),
                }
                // Handshake answers go out before waiting for the client's next message.
                flush_session(tls, &self.stream)?;
                match tls.read_tls(&mut Socket(&self.stream)) {
                    Ok(0) => return Ok(ReadOutcome::Closed),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.read_dry = true;
                        return Ok(ReadOutcome::WouldBlock);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                if let Err(e) = tls.process_new_packets() {
                    // The session has queued an alert saying why.
                    let _ = flush_session(tls, &self.stream);
                    self.tls_refused = Some(crate::support::tls::failure_reason(&e));
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                flush_session(tls, &self.stream)?;
            }
        })
    }

    /// The TLS version (`TLSv1.3`) and cipher suite (IANA name) of an HTTPS connection.
    pub fn tls_names(&self) -> Option<(&'static str, String)> {
        if let Some(via) = &self.via_h2 {
            return via.tls_names.clone();
        }
        let tls = self.tls.as_ref()?;
        let protocol = match tls.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "TLS",
        };
        let suite = tls.negotiated_cipher_suite()?.suite();
        // rustls names TLS 1.3 suites `TLS13_...`; their IANA names begin `TLS_`.
        let cipher = suite.as_str().map_or_else(
            || format!("{suite:?}"),
            |name| name.replacen("TLS13_", "TLS_", 1),
        );
        Some((protocol, cipher))
    }

    /// Whether the request came over HTTPS: directly (its session may be with the TLS pump
    /// just now), or on an HTTP/2 stream over TLS.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
            || self.relay.as_ref().is_some_and(|relay| relay.https())
            || self
                .via_h2
                .as_ref()
                .is_some_and(|via| via.tls_names.is_some())
    }

    /// Whether the TLS handshake is still under way (the connection has no request yet).
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Whether the TLS session holds bytes the socket has not taken yet.
    pub fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Whether the TLS session holds decrypted bytes not read yet (the socket will not say so).
    pub fn tls_plaintext_waiting(&mut self) -> bool {
        self.tls.as_mut().is_some_and(|tls| {
            tls.process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
        })
    }

    /// Sends what the TLS session holds for the socket, as far as it takes it now; true when
    /// everything went. Without TLS there is nothing to send.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        match self.tls.as_deref_mut() {
            Some(tls) => flush_session(tls, &self.stream),
            None => Ok(true),
        }
    }

    /// Takes as much of `bytes` into the TLS session as it holds, encrypting them, and sends
    /// what the socket takes now; returns how many plaintext bytes were taken. What the socket
    /// did not take stays in the session (`tls_pending`).
    pub fn write_tls_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(0);
        };
        let mut at = 0;
        while flush_session(tls, &self.stream)? && at < bytes.len() {
            let n = io::Write::write(&mut tls.writer(), &bytes[at..])?;
            if n == 0 {
                break;
            }
            at += n;
            self.bytes_out += n as u64;
        }
        Ok(at)
    }

    /// `write_tls_now` of `head` then `body` as one stream of plaintext: a small answer
    /// becomes one TLS record (and one write), not a record for the head and one for the body.
    pub fn write_tls_two_now(&mut self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(0);
        };
        let total = head.len() + body.len();
        let mut at = 0;
        while flush_session(tls, &self.stream)? && at < total {
            let slices = if at < head.len() {
                [io::IoSlice::new(&head[at..]), io::IoSlice::new(body)]
            } else {
                [
                    io::IoSlice::new(&body[at - head.len()..]),
                    io::IoSlice::new(&[]),
                ]
            };
            let n = io::Write::write_vectored(&mut tls.writer(), &slices)?;
            if n == 0 {
                break;
            }
            at += n;
            self.bytes_out += n as u64;
        }
        Ok(at)
    }

    /// Writes `parts` in order into the TLS session as one stream of plaintext (so many small
    /// parts, such as HTTP/2 frame headers between bodies, fill records of up to 16 KiB rather
    /// than one record each), handing its records to the socket only when its buffer is full
    /// (the caller's `flush_tls` sends the rest). Returns how many bytes it took.
    pub fn write_tls_parts_now(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(0);
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut taken = 0;
        let mut flushed = false;
        let mut result = Ok(());
        while taken < total {
            let mut skip = taken;
            let slices: Vec<io::IoSlice> = parts
                .iter()
                .filter_map(|part| {
                    if skip >= part.len() {
                        skip -= part.len();
                        None
                    } else {
                        let slice = io::IoSlice::new(&part[skip..]);
                        skip = 0;
                        Some(slice)
                    }
                })
                .collect();
            match io::Write::write_vectored(&mut tls.writer(), &slices) {
                Ok(0) => {}
                Ok(n) => {
                    taken += n;
                    flushed = false;
                    continue;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            // The session's buffer is full: send its records, then go on if the socket took
            // them.
            match flush_session(tls, &self.stream) {
                Ok(true) if !flushed => flushed = true,
                Ok(_) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.bytes_out += taken as u64;
        result.map(|()| taken)
    }

    /// Ends a TLS session politely (close_notify), as far as the socket takes it now. A
    /// handshake never finished (stalled, or refused with an alert) is just closed.
    pub fn close_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut().filter(|tls| !tls.is_handshaking()) {
            tls.send_close_notify();
            let _ = flush_session(tls, &self.stream);
        }
    }

    /// Waits until the socket is readable or `deadline` passes; true when readable.
    pub fn wait_readable(&self, deadline: Instant) -> io::Result<bool> {
        wait_for(&self.stream, PollFlags::POLLIN, deadline)
    }

    /// Reads at least one byte into `buf`, waiting until `deadline`.
    /// `Ok(0)` means the peer closed; a timeout is `ErrorKind::TimedOut`.
    pub fn read_until(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
    ) -> io::Result<usize> {
        loop {
            match self.read_now(buf, max)? {
                ReadOutcome::Data(n) => return Ok(n),
                ReadOutcome::Closed => return Ok(0),
                ReadOutcome::WouldBlock => {
                    if !self.wait_readable(deadline)? {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
                    }
                }
            }
        }
    }

    /// Writes all of `bytes`, waiting for the socket at most until `deadline`.
    pub fn write_all_until(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        self.write_flags_until(bytes, SendFlags::empty(), deadline)
    }

    /// Like `write_all_until`, but tells the kernel more data follows (MSG_MORE), so a
    /// header and the body sent next leave in one segment.
    pub fn write_more_until(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        self.write_flags_until(bytes, SendFlags::MORE, deadline)
    }

    fn write_flags_until(
        &mut self,
        mut bytes: &[u8],
        flags: SendFlags,
        deadline: Instant,
    ) -> io::Result<()> {
        if self.tls.is_some() {
            loop {
                let n = self.write_tls_now(bytes)?;
                bytes = &bytes[n..];
                if bytes.is_empty() && !self.tls_pending() {
                    return Ok(());
                }
                if !wait_for(&self.stream, PollFlags::POLLOUT, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                }
            }
        }
        while !bytes.is_empty() {
            match send(
                &self.stream,
                bytes,
                flags | SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.bytes_out += n as u64;
                    bytes = &bytes[n..];
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    if !wait_for(&self.stream, PollFlags::POLLOUT, deadline)? {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                    }
                }
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` with sendfile(2), waiting at most until `deadline`.
    pub fn sendfile_until(
        &mut self,
        file: &std::fs::File,
        mut offset: u64,
        mut len: u64,
        deadline: Instant,
    ) -> io::Result<()> {
        if self.tls.is_some() {
            // sendfile(2) cannot encrypt: read and encrypt a record's worth at a time.
            let mut chunk = vec![0u8; 16 * 1024];
            while len > 0 {
                let want = len.min(chunk.len() as u64) as usize;
                let got = std::os::unix::fs::FileExt::read_at(file, &mut chunk[..want], offset)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                self.write_all_until(&chunk[..got], deadline)?;
                offset += got as u64;
                len -= got as u64;
            }
            return Ok(());
        }
        while len > 0 {
            let chunk = len.min(1 << 30) as usize;
            let mut off = offset as i64;
            match nix::sys::sendfile::sendfile(
                self.stream.as_fd(),
                file.as_fd(),
                Some(&mut off),
                chunk,
            ) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                Ok(n) => {
                    self.bytes_out += n as u64;
                    offset += n as u64;
                    len -= n as u64;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    if !wait_for(&self.stream, PollFlags::POLLOUT, deadline)? {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                    }
                }
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Ok(())
    }

    /// Flushes any corked data; harmless when none is pending.
    pub fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The socket as rustls sees it: reads and writes that never wait.
pub(crate) struct Socket<'a>(pub &'a TcpStream);

impl io::Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.0, buf, RecvFlags::DONTWAIT).map_err(io::Error::from)
    }
}

impl io::Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends what `tls` holds for the socket, as far as it takes it now; true when all went.
pub(crate) fn flush_session(
    tls: &mut rustls::ServerConnection,
    stream: &TcpStream,
) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut Socket(stream)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Polls one socket for `events` until `deadline`; true when ready.
pub fn wait_for(stream: &TcpStream, events: PollFlags, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let millis = left.min(Duration::from_secs(60)).as_millis().max(1) as u16;
        let mut fds = [PollFd::new(stream.as_fd(), events)];
        match crate::par::blocking(|| poll(&mut fds, PollTimeout::from(millis))) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}
#[cfg(test)]
mod size {
    /// Every connection, idle ones too, is a `Conn` in its replica's slots: rare parts (the
    /// TLS session, an h2 stream's link, a plug-in relay) are boxed so that 10,000 idle
    /// connections stay well under half a KiB each.
    #[test]
    fn a_connection_record_stays_small() {
        let size = std::mem::size_of::<super::Conn>();
        assert!(size <= 256, "Conn is {size} bytes");
    }
}
