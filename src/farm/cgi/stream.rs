//! The exchange with one running program: request body to its stdin, its stdout parsed and
//! streamed to the client, stderr to the log, all in one poll(2) loop on this worker thread.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{recv, MsgFlags};

use super::program::{millis, Program};
use super::Worker;
use crate::cache::compress::Encoder;
use crate::conn::Conn;
use crate::http::body::{BodyError, BodyReader};
use crate::http::cgi::{nph_status, parse_response, Head, Response};
use crate::http::encoding::{variant_etag, Coding};
use crate::http::response::{push_date, push_header, push_header_u64, push_u64, SERVER};
use crate::http::{reason_phrase, Request};
use crate::protocol::CloseReason;
use crate::support::config::CompressionConfig;

/// How long a parsed head is held back to learn whether the whole body follows at once, so
/// short answers go out in one write with a Content-Length instead of chunked.
const HOLD: Duration = Duration::from_millis(10);

/// Held body bytes past which the head goes out at once.
const HOLD_MAX_BYTES: usize = 64 * 1024;

/// How long to wait, once the output has ended, for the program's exit status before the
/// answer is declared complete: a program killed by a signal mid-answer must not have its
/// truncated output framed as a whole body. A crashed program exits microseconds after its
/// output closes; one still running after this is taken to be ending normally.
const CRASH_CHECK: Duration = Duration::from_millis(100);

/// How an exchange ended.
pub enum Ending {
    /// The whole response went out; the connection may carry on when `keep_alive`.
    Answered {
        status: u16,
        body_bytes: u64,
        keep_alive: bool,
    },
    /// The program asked for another local URL (`Location: /path`).
    Redirect {
        location: String,
        body_consumed: bool,
    },
    /// Nothing was sent; answer with this error status.
    Failed { status: u16, why: String },
    /// A response was started and cut short; the connection must close.
    Cut {
        status: u16,
        body_bytes: u64,
        reason: CloseReason,
        why: String,
    },
}

/// The state of the response.
enum Phase {
    /// Collecting the CGI head from stdout.
    Head,
    /// Head parsed; body bytes held back until `until`, end of output or `HOLD_MAX_BYTES`.
    Hold { head: Head, until: Instant },
    /// Head sent; body bytes go out framed so.
    Body(Framing),
    /// The response is complete (or has no body); further output is read and dropped.
    Discard,
    /// A local redirect: output is dropped, then the other URL is served.
    Redirect(String),
    /// nph-: output goes to the client unparsed.
    Raw,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many body bytes are still due (the program's Content-Length).
    Length(u64),
    /// Chunked transfer coding (HTTP/1.1, length unknown).
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0, length unknown).
    UntilClose,
}

/// The running exchange: the connection, the program and what has been sent.
pub struct Stream<'a> {
    pub conn: &'a mut Conn,
    req: &'a Request,
    program: &'a mut Program,
    worker: &'a mut Worker,
    body: Option<BodyReader>,
    /// Body bytes read from the client and not yet written to stdin.
    pending: Vec<u8>,
    pending_at: usize,
    /// stdin closed early by the program; the rest of the body is not read.
    body_abandoned: bool,
    /// Watch the idle client socket for end of file (off once it holds a pipelined request).
    watch_client: bool,
    phase: Phase,
    keep_alive: bool,
    status: u16,
    body_bytes: u64,
    idle_timeout: Duration,
    idle_deadline: Instant,
    total_deadline: Instant,
    body_deadline: Instant,
    send_timeout: Duration,
    /// `[compression]` when on-the-fly coding is on, and the coding this client takes best.
    compression: Option<(CompressionConfig, Option<Coding>)>,
    /// The body's compressor, once the head said it is coded.
    coder: Option<Coder>,
}

/// Streamed compression of the program's output: every piece read is compressed and flushed
/// at once, so a slow program's output is not held back, and no more than one piece waits.
struct Coder {
    encoder: Encoder,
    /// Output bytes still to take when the program gave a Content-Length.
    input_left: Option<u64>,
}

/// Timeouts of one exchange.
pub struct Limits {
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    /// `[compression]` when on-the-fly coding is on, and the coding this client takes best.
    pub compression: Option<(CompressionConfig, Option<Coding>)>,
}

impl<'a> Stream<'a> {
    pub fn new(
        conn: &'a mut Conn,
        req: &'a Request,
        program: &'a mut Program,
        worker: &'a mut Worker,
        body: Option<BodyReader>,
        nph: bool,
        limits: &Limits,
    ) -> Stream<'a> {
        let now = Instant::now();
        let keep_alive = req.keep_alive;
        // Nothing from an earlier exchange may be taken for this program's output.
        worker.held.clear();
        Stream {
            conn,
            req,
            program,
            worker,
            body,
            pending: Vec::new(),
            pending_at: 0,
            body_abandoned: false,
            watch_client: true,
            phase: if nph { Phase::Raw } else { Phase::Head },
            keep_alive,
            status: 200,
            body_bytes: 0,
            idle_timeout: limits.idle_timeout,
            idle_deadline: now + limits.idle_timeout,
            total_deadline: now + limits.total_timeout,
            body_deadline: now + limits.body_timeout,
            send_timeout: limits.send_timeout,
            compression: limits.compression.clone(),
            coder: None,
        }
    }

    /// Runs the exchange to its end. The program is killed on every abnormal end.
    pub fn run(mut self) -> Ending {
        let ending = self.pump();
        // A program whose output has ended is left to exit by itself (`Program::finish`
        // waits a little, then kills); one still writing or running is stopped now.
        let output_ended = self.program.stdout.is_none();
        if !output_ended && !matches!(ending, Ending::Answered { .. } | Ending::Redirect { .. }) {
            self.program.kill();
        }
        ending
    }

    fn body_done(&self) -> bool {
        self.body.as_ref().is_none_or(BodyReader::is_done)
    }

    fn pump(&mut self) -> Ending {
        loop {
            if self.program.stdout.is_none() {
                return self.end_of_output();
            }
            let now = Instant::now();
            if let Phase::Hold { until, .. } = self.phase {
                if now >= until {
                    if let Err(ending) = self.release_hold(false) {
                        return ending;
                    }
                    continue;
                }
            }
            if now >= self.total_deadline {
                return self.timed_out("ran past cgi.total_timeout_secs");
            }
            if now >= self.idle_deadline {
                return self.timed_out("silent past cgi.idle_timeout_secs");
            }
            let want_body = self.body.is_some()
                && !self.body_done()
                && !self.body_abandoned
                && self.pending.is_empty();
            if want_body && (!self.conn.unread.is_empty() || self.conn.tls_plaintext_waiting()) {
                if let Err(ending) = self.read_body() {
                    return ending;
                }
                continue;
            }
            if want_body && now >= self.body_deadline {
                return self.failed(408, "request body timed out");
            }
            let mut wake = self.idle_deadline.min(self.total_deadline);
            if let Phase::Hold { until, .. } = self.phase {
                wake = wake.min(until);
            }
            if want_body {
                wake = wake.min(self.body_deadline);
            }
            let ready = match self.wait(want_body, wake - now) {
                Ok(ready) => ready,
                Err(e) => return self.failed(500, &format!("poll failed: {e}")),
            };
            if ready.stdin {
                self.write_stdin();
            }
            if ready.client_data && want_body {
                if let Err(ending) = self.read_body() {
                    return ending;
                }
            }
            if ready.stdout {
                if let Err(ending) = self.read_stdout() {
                    return ending;
                }
            }
            if ready.stderr {
                let scratch = &mut self.worker.stderr_scratch;
                self.program.drain_stderr(scratch, &self.worker.to_log);
            }
            if ready.client_data && !want_body && self.peer_closed() {
                return self.client_gone();
            }
            if ready.client_gone && !(ready.client_data && want_body) {
                return self.client_gone();
            }
        }
    }

    /// One poll over the program's pipes and the client socket.
    fn wait(&self, want_body: bool, timeout: Duration) -> io::Result<Ready> {
        let mut fds: Vec<PollFd> = Vec::with_capacity(4);
        let mut slots = [usize::MAX; 4];
        if let Some(stdout) = &self.program.stdout {
            slots[0] = fds.len();
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
        }
        if let Some(stderr) = &self.program.stderr {
            slots[1] = fds.len();
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        if let (Some(stdin), false) = (&self.program.stdin, self.pending.is_empty()) {
            slots[2] = fds.len();
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
        }
        // The client is readable when its body arrives, or when it hangs up (end of file);
        // once it has sent a pipelined request instead, only errors are watched.
        let client_events = if want_body || self.watch_client {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        slots[3] = fds.len();
        fds.push(PollFd::new(self.conn.stream.as_fd(), client_events));
        match poll(&mut fds, millis(timeout)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => return Err(io::Error::from(e)),
        }
        let events = |slot: usize| {
            fds.get(slot)
                .and_then(|fd| fd.revents())
                .unwrap_or(PollFlags::empty())
        };
        let input = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let client = events(slots[3]);
        Ok(Ready {
            stdout: events(slots[0]).intersects(input),
            stderr: events(slots[1]).intersects(input),
            stdin: events(slots[2])
                .intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP),
            client_data: client.contains(PollFlags::POLLIN),
            client_gone: client.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
        })
    }

    /// The client socket is readable while no body is due: end of file means the client
    /// has gone; data is its next request, which stays queued in the socket.
    fn peer_closed(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        match recv(self.conn.stream.as_raw_fd(), &mut probe, flags) {
            Ok(0) => true,
            Ok(_) => {
                self.watch_client = false;
                false
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => false,
            Err(_) => true,
        }
    }

    /// Reads the next piece of the request body into `pending`.
    fn read_body(&mut self) -> Result<(), Ending> {
        let Some(reader) = self.body.as_mut() else {
            return Ok(());
        };
        self.pending.clear();
        self.pending_at = 0;
        match reader.read(self.conn, &mut self.pending, self.body_deadline) {
            Ok(_) => {
                if reader.is_done() && self.pending.is_empty() {
                    self.program.stdin = None;
                }
                Ok(())
            }
            Err(BodyError::Http(e)) => Err(self.failed(e.status(), e.reason())),
            Err(BodyError::Io(_)) => Err(self.client_gone()),
        }
    }

    /// Writes what it can of `pending` to stdin; closes stdin once the body is through.
    fn write_stdin(&mut self) {
        let Some(stdin) = self.program.stdin.as_mut() else {
            return;
        };
        match stdin.write(&self.pending[self.pending_at..]) {
            Ok(n) => self.pending_at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                // The program closed its stdin: it wants no more of the body.
                self.program.stdin = None;
                self.body_abandoned = !self.body_done();
                self.pending.clear();
                self.pending_at = 0;
                return;
            }
        }
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
            if self.body_done() {
                self.program.stdin = None;
            }
        }
    }

    /// Reads one piece of the program's output and moves the response along.
    fn read_stdout(&mut self) -> Result<(), Ending> {
        let Some(stdout) = self.program.stdout.as_mut() else {
            return Ok(());
        };
        let scratch = &mut self.worker.read_scratch;
        let n = match stdout.read(scratch) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(())
            }
            Err(_) => 0,
        };
        if n == 0 {
            self.program.stdout = None;
            return Ok(());
        }
        let handled = self.use_output(n);
        // Silence is counted from when the output was taken, so time spent waiting for a
        // slow client to accept it is not held against the program.
        self.idle_deadline = Instant::now() + self.idle_timeout;
        handled
    }

    /// Moves `n` fresh output bytes (in `read_scratch`) along according to the phase.
    fn use_output(&mut self, n: usize) -> Result<(), Ending> {
        match &mut self.phase {
            Phase::Head => {
                self.worker
                    .held
                    .extend_from_slice(&self.worker.read_scratch[..n]);
                self.parse_head()
            }
            Phase::Hold { .. } => {
                self.worker
                    .held
                    .extend_from_slice(&self.worker.read_scratch[..n]);
                if self.hold_is_full() {
                    self.release_hold(false)?;
                }
                Ok(())
            }
            Phase::Body(framing) => {
                let framing = *framing;
                self.send_body(framing, n)
            }
            Phase::Discard | Phase::Redirect(_) => Ok(()),
            Phase::Raw => {
                if self.body_bytes == 0 {
                    self.status = nph_status(&self.worker.read_scratch[..n]).unwrap_or(200);
                }
                let deadline = Instant::now() + self.send_timeout;
                let data = &self.worker.read_scratch[..n];
                self.conn
                    .write_all_until(data, deadline)
                    .map_err(|e| self.write_failed(&e))?;
                self.body_bytes += n as u64;
                Ok(())
            }
        }
    }

    /// Tries to parse the head collected so far.
    fn parse_head(&mut self) -> Result<(), Ending> {
        match parse_response(&self.worker.held) {
            Ok(None) => Ok(()),
            Err(e) => Err(self.failed(502, &format!("bad response head: {}", e.reason()))),
            Ok(Some((Response::LocalRedirect(location), _))) => {
                self.worker.held.clear();
                self.phase = Phase::Redirect(location);
                Ok(())
            }
            Ok(Some((Response::Document(head), head_len))) => {
                self.worker.held.drain(..head_len);
                self.status = head.status;
                let no_body = self.req.is_head() || matches!(head.status, 204 | 304);
                if no_body {
                    self.worker.held.clear();
                    let mut head = head;
                    let coded = self.req.is_head() && self.code_head(&mut head, None).is_some();
                    let length = head.content_length.filter(|_| head.status != 204 && !coded);
                    self.send_head(&head, length.map_or(HeadFraming::None, HeadFraming::Length))?;
                    self.phase = Phase::Discard;
                    return Ok(());
                }
                self.phase = Phase::Hold {
                    head,
                    until: Instant::now() + HOLD,
                };
                if self.hold_is_full() {
                    self.release_hold(false)?;
                }
                Ok(())
            }
        }
    }

    /// Whether the held bytes should go out now: the whole body the program announced is
    /// there, or enough has piled up.
    fn hold_is_full(&self) -> bool {
        let held = self.worker.held.len();
        match &self.phase {
            Phase::Hold { head, .. } => {
                held >= HOLD_MAX_BYTES || head.content_length.is_some_and(|n| held as u64 >= n)
            }
            _ => false,
        }
    }

    /// Sends the held head and body. `complete`: the output has ended, so the held bytes
    /// are the whole body and their length is known.
    fn release_hold(&mut self, complete: bool) -> Result<(), Ending> {
        let Phase::Hold { mut head, .. } = std::mem::replace(&mut self.phase, Phase::Discard)
        else {
            return Ok(());
        };
        let known = complete.then_some(self.worker.held.len() as u64);
        if let Some(coding) = self.code_head(&mut head, known) {
            return self.release_coded(head, coding, complete);
        }
        let framing = match head.content_length {
            Some(length) => Framing::Length(length),
            None if complete => Framing::Length(self.worker.held.len() as u64),
            None if self.req.minor_version >= 1 => Framing::Chunked,
            None => Framing::UntilClose,
        };
        if framing == Framing::UntilClose {
            self.keep_alive = false;
        }
        let head_framing = match framing {
            Framing::Length(n) => HeadFraming::Length(n),
            Framing::Chunked => HeadFraming::Chunked,
            Framing::UntilClose => HeadFraming::None,
        };
        let held = std::mem::take(&mut self.worker.held);
        let mut out = std::mem::take(&mut self.worker.out);
        out.clear();
        self.push_head(&mut out, &head, head_framing);
        let (framing, sent) = frame_body(&mut out, framing, &held);
        let deadline = Instant::now() + self.send_timeout;
        let written = self.conn.write_all_until(&out, deadline);
        self.worker.out = out;
        self.worker.held = held;
        self.worker.held.clear();
        written.map_err(|e| self.write_failed(&e))?;
        self.body_bytes += sent;
        self.phase = match framing {
            Framing::Length(0) => Phase::Discard,
            other => Phase::Body(other),
        };
        Ok(())
    }

    /// Decides whether the body goes out coded: on-the-fly coding on, a coding the client
    /// takes, a successful status, a compressible type not already coded, and not known to
    /// be shorter than `min_bytes`. Adds `Vary` (whenever the type could be coded) and
    /// `Content-Encoding`; the program's Content-Length no longer applies to what is sent.
    fn code_head(&mut self, head: &mut Head, known_len: Option<u64>) -> Option<Coding> {
        let (cfg, coding) = self.compression.as_ref()?;
        let field = |name: &str| {
            head.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let mime = field("content-type")?;
        if !cfg.compressible_type(&mime) || field("content-encoding").is_some() {
            return None;
        }
        match head
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
        {
            None => head
                .headers
                .push(("Vary".to_string(), b"Accept-Encoding".to_vec())),
            Some((_, value)) => {
                let text = String::from_utf8_lossy(value).to_ascii_lowercase();
                if text.trim() != "*" && !text.contains("accept-encoding") {
                    value.extend_from_slice(b", Accept-Encoding");
                }
            }
        }
        let coding = (*coding)?;
        let len = known_len.or(head.content_length);
        let ok_status = (200..300).contains(&head.status) && !matches!(head.status, 204 | 206);
        if !ok_status || len.is_some_and(|n| n < cfg.min_bytes) {
            return None;
        }
        head.headers.push((
            "Content-Encoding".to_string(),
            coding.token().as_bytes().to_vec(),
        ));
        // The program's tag names its own bytes; the coded ones get a tag of their own.
        if let Some((_, tag)) = head
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        {
            let text = String::from_utf8_lossy(tag).into_owned();
            let (weak, bare) = match text.trim().strip_prefix("W/") {
                Some(bare) => ("W/", bare.to_string()),
                None => ("", text.trim().to_string()),
            };
            *tag = format!("{weak}{}", variant_etag(&bare, coding)).into_bytes();
        }
        Some(coding)
    }

    /// Sends the held head and body, the body coded: whole with its length when the output
    /// has ended, else chunked (HTTP/1.1) or until close (HTTP/1.0).
    fn release_coded(&mut self, head: Head, coding: Coding, complete: bool) -> Result<(), Ending> {
        let level = self
            .compression
            .as_ref()
            .map_or(1, |(cfg, _)| cfg.level_of(coding));
        let encoder = match Encoder::new(coding, level) {
            Ok(encoder) => encoder,
            Err(e) => return Err(self.failed(500, &format!("cannot start {coding}: {e}"))),
        };
        let mut coder = Coder {
            encoder,
            input_left: head.content_length,
        };
        let held = std::mem::take(&mut self.worker.held);
        let take = coder
            .input_left
            .map_or(held.len(), |n| held.len().min(n as usize));
        let mut packed = Vec::new();
        let pushed = coder.encoder.push(&held[..take], !complete, &mut packed);
        coder.input_left = coder.input_left.map(|n| n - take as u64);
        self.worker.held = held;
        self.worker.held.clear();
        if let Err(e) = pushed {
            return Err(self.failed(500, &format!("{coding} failed: {e}")));
        }
        let finished = complete || coder.input_left == Some(0);
        let mut coder = Some(coder);
        if finished {
            if let Some(Err(e)) = coder.take().map(|c| c.encoder.finish(&mut packed)) {
                return Err(self.failed(500, &format!("{coding} failed: {e}")));
            }
        }
        let framing = if finished {
            Framing::Length(packed.len() as u64)
        } else if self.req.minor_version >= 1 {
            Framing::Chunked
        } else {
            self.keep_alive = false;
            Framing::UntilClose
        };
        let head_framing = match framing {
            Framing::Length(n) => HeadFraming::Length(n),
            Framing::Chunked => HeadFraming::Chunked,
            Framing::UntilClose => HeadFraming::None,
        };
        let mut head = head;
        head.content_length = None;
        let mut out = std::mem::take(&mut self.worker.out);
        out.clear();
        self.push_head(&mut out, &head, head_framing);
        let (framing, sent) = frame_body(&mut out, framing, &packed);
        let written = self
            .conn
            .write_all_until(&out, Instant::now() + self.send_timeout);
        self.worker.out = out;
        written.map_err(|e| self.write_failed(&e))?;
        self.body_bytes += sent;
        self.phase = match framing {
            Framing::Length(_) => Phase::Discard,
            other => {
                self.coder = coder;
                Phase::Body(other)
            }
        };
        Ok(())
    }

    /// Compresses `n` fresh output bytes (in `read_scratch`), or with `n == 0` ends the
    /// stream, and sends what is ready framed so. Returns whether the coded body is complete.
    fn send_coded(&mut self, framing: Framing, n: usize) -> Result<bool, Ending> {
        let Some(coder) = self.coder.as_mut() else {
            return Ok(true);
        };
        let take = coder.input_left.map_or(n, |left| n.min(left as usize));
        coder.input_left = coder.input_left.map(|left| left - take as u64);
        let last = n == 0 || coder.input_left == Some(0);
        let mut packed = std::mem::take(&mut self.worker.held);
        packed.clear();
        let mut result = coder
            .encoder
            .push(&self.worker.read_scratch[..take], !last, &mut packed);
        if last {
            if let Some(coder) = self.coder.take() {
                result = result.and_then(|()| coder.encoder.finish(&mut packed));
            }
        }
        if let Err(e) = result {
            self.worker.held = packed;
            return Err(self.failed(500, &format!("compression failed: {e}")));
        }
        let mut out = std::mem::take(&mut self.worker.out);
        out.clear();
        let (_, sent) = frame_body(&mut out, framing, &packed);
        if last && framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        let deadline = Instant::now() + self.send_timeout;
        let written = self.conn.write_all_until(&out, deadline);
        self.worker.out = out;
        self.worker.held = packed;
        self.worker.held.clear();
        written.map_err(|e| self.write_failed(&e))?;
        self.body_bytes += sent;
        Ok(last)
    }

    /// Sends `n` fresh output bytes (in `read_scratch`) as body.
    fn send_body(&mut self, framing: Framing, n: usize) -> Result<(), Ending> {
        if self.coder.is_some() {
            if self.send_coded(framing, n)? {
                self.phase = Phase::Discard;
            }
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.worker.out);
        out.clear();
        let (framing, sent) = frame_body(&mut out, framing, &self.worker.read_scratch[..n]);
        let deadline = Instant::now() + self.send_timeout;
        let written = self.conn.write_all_until(&out, deadline);
        self.worker.out = out;
        written.map_err(|e| self.write_failed(&e))?;
        self.body_bytes += sent;
        if framing == Framing::Length(0) {
            self.phase = Phase::Discard;
        }
        Ok(())
    }

    fn send_head(&mut self, head: &Head, framing: HeadFraming) -> Result<(), Ending> {
        let mut out = std::mem::take(&mut self.worker.out);
        out.clear();
        self.push_head(&mut out, head, framing);
        let written = self
            .conn
            .write_all_until(&out, Instant::now() + self.send_timeout);
        self.worker.out = out;
        written.map_err(|e| self.write_failed(&e))
    }

    /// Appends the client's response head: status line, Date, Server, Connection, the
    /// program's fields, and the framing.
    fn push_head(&mut self, out: &mut Vec<u8>, head: &Head, framing: HeadFraming) {
        // A body still arriving when the head goes out may never be read to its end, so
        // the connection is announced as closing, and then closed.
        self.keep_alive = self.keep_alive && self.body_done();
        out.extend_from_slice(if self.req.minor_version == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        push_u64(out, u64::from(head.status));
        out.push(b' ');
        out.extend_from_slice(
            head.reason
                .as_deref()
                .unwrap_or(reason_phrase(head.status))
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\nDate: ");
        push_date(out);
        out.extend_from_slice(b"\r\nServer: ");
        out.extend_from_slice(SERVER.as_bytes());
        out.extend_from_slice(b"\r\n");
        match (self.req.minor_version, self.keep_alive) {
            (0, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            (_, false) => out.extend_from_slice(b"Connection: close\r\n"),
            _ => {}
        }
        crate::http::response::push_hsts(out, self.req.hsts_max_age_secs);
        for (name, value) in &head.headers {
            push_header(out, name, value);
        }
        match framing {
            HeadFraming::Length(n) => push_header_u64(out, "Content-Length", n),
            HeadFraming::Chunked => push_header(out, "Transfer-Encoding", b"chunked"),
            HeadFraming::None => {}
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The program's stdout has ended.
    fn end_of_output(&mut self) -> Ending {
        match self.phase {
            Phase::Head if self.worker.held.is_empty() => {
                return self.failed(502, "exited without any output");
            }
            Phase::Head => return self.failed(502, "output ended inside the response head"),
            Phase::Raw if self.body_bytes == 0 => {
                return self.failed(502, "exited without any output");
            }
            Phase::Hold { .. } => {
                if let Some(signal) = self.program.crash_signal(CRASH_CHECK) {
                    return self.failed(
                        502,
                        &format!("killed by signal {signal} before its answer ended"),
                    );
                }
                if let Err(ending) = self.release_hold(true) {
                    return ending;
                }
                return self.end_of_output();
            }
            _ => {}
        }
        if let Phase::Body(framing) = self.phase {
            if self.coder.is_some() && self.program.crash_signal(CRASH_CHECK).is_none() {
                // The coded stream's last bytes (and last chunk) go out now.
                return match self.send_coded(framing, 0) {
                    Ok(_) => {
                        self.phase = Phase::Discard;
                        if framing == Framing::UntilClose {
                            self.keep_alive = false;
                        }
                        self.answered()
                    }
                    Err(ending) => ending,
                };
            }
        }
        match std::mem::replace(&mut self.phase, Phase::Discard) {
            Phase::Head | Phase::Hold { .. } => self.failed(502, "exited without any output"),
            Phase::Body(Framing::Chunked) => {
                if let Some(signal) = self.program.crash_signal(CRASH_CHECK) {
                    // No last chunk: the client sees the answer is cut off.
                    return Ending::Cut {
                        status: self.status,
                        body_bytes: self.body_bytes,
                        reason: CloseReason::HandlerFailed,
                        why: format!("killed by signal {signal} in the middle of its answer"),
                    };
                }
                let written = self
                    .conn
                    .write_all_until(b"0\r\n\r\n", Instant::now() + self.send_timeout);
                match written {
                    Ok(()) => self.answered(),
                    Err(e) => self.write_failed(&e),
                }
            }
            Phase::Body(Framing::Length(_)) => Ending::Cut {
                status: self.status,
                body_bytes: self.body_bytes,
                reason: CloseReason::HandlerFailed,
                why: "output ended before its Content-Length".to_string(),
            },
            Phase::Body(Framing::UntilClose) | Phase::Raw => {
                self.keep_alive = false;
                self.answered()
            }
            Phase::Discard => self.answered(),
            Phase::Redirect(location) => Ending::Redirect {
                location,
                body_consumed: self.body_done(),
            },
        }
    }

    fn answered(&self) -> Ending {
        let keep_alive = self.keep_alive && self.body_done();
        Ending::Answered {
            status: self.status,
            body_bytes: self.body_bytes,
            keep_alive,
        }
    }

    fn timed_out(&mut self, why: &str) -> Ending {
        match self.phase {
            Phase::Head | Phase::Hold { .. } | Phase::Redirect(_) => self.failed(504, why),
            // The response is already complete: only the program is stopped.
            Phase::Discard => {
                self.program.kill();
                self.answered()
            }
            Phase::Body(_) | Phase::Raw => Ending::Cut {
                status: self.status,
                body_bytes: self.body_bytes,
                reason: CloseReason::HandlerFailed,
                why: why.to_string(),
            },
        }
    }

    fn failed(&self, status: u16, why: &str) -> Ending {
        if self.headers_sent() {
            return Ending::Cut {
                status: self.status,
                body_bytes: self.body_bytes,
                reason: CloseReason::HandlerFailed,
                why: why.to_string(),
            };
        }
        Ending::Failed {
            status,
            why: why.to_string(),
        }
    }

    fn headers_sent(&self) -> bool {
        match self.phase {
            Phase::Head | Phase::Hold { .. } | Phase::Redirect(_) => false,
            Phase::Raw => self.body_bytes > 0,
            Phase::Body(_) | Phase::Discard => true,
        }
    }

    fn client_gone(&mut self) -> Ending {
        if matches!(self.phase, Phase::Discard) {
            // The whole answer went out before the client left: an ordinary close.
            self.keep_alive = false;
            return self.answered();
        }
        Ending::Cut {
            status: self.status,
            body_bytes: self.body_bytes,
            reason: CloseReason::PeerClosed,
            why: "client went away".to_string(),
        }
    }

    fn write_failed(&self, e: &io::Error) -> Ending {
        Ending::Cut {
            status: self.status,
            body_bytes: self.body_bytes,
            reason: CloseReason::WriteFailed,
            why: format!("writing to the client failed: {e}"),
        }
    }
}

/// What the head says about the body's length.
#[derive(Clone, Copy)]
enum HeadFraming {
    Length(u64),
    Chunked,
    None,
}

/// Which descriptors are ready after a poll.
#[derive(Default)]
struct Ready {
    stdout: bool,
    stderr: bool,
    stdin: bool,
    client_data: bool,
    client_gone: bool,
}

/// Appends `data` framed as `framing` to `out`; returns the framing left and the body bytes
/// taken (a Content-Length cuts off anything the program prints past it).
fn frame_body(out: &mut Vec<u8>, framing: Framing, data: &[u8]) -> (Framing, u64) {
    if data.is_empty() {
        return (framing, 0);
    }
    match framing {
        Framing::Length(remaining) => {
            let take = (data.len() as u64).min(remaining) as usize;
            out.extend_from_slice(&data[..take]);
            (Framing::Length(remaining - take as u64), take as u64)
        }
        Framing::Chunked => {
            let _ = write!(out, "{:x}\r\n", data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            (Framing::Chunked, data.len() as u64)
        }
        Framing::UntilClose => {
            out.extend_from_slice(data);
            (Framing::UntilClose, data.len() as u64)
        }
    }
}
