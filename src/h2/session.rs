//! One HTTP/2 connection: the h2 session process. It owns the client's `Conn` (and so its
//! socket and TLS state) for the connection's life on its replica, reads frames, and turns
//! each complete request into a *stream record*: a `Conn` of its own carrying the request as
//! HTTP/1.1 in `unread`, whose socket is one end of a socket pair. The record travels the
//! replica's network like any connection (front end, site rules, cache, static, CGI,
//! plug-ins, stats) and its answer comes back through the pair, where the session reads it,
//! HPACK-encodes the head and frames the body within the peer's flow-control windows.
//!
//! Frames for many streams go out in one write: everything ready is appended to one output
//! buffer, which is written once per pump.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use rustix::net::{recv, RecvFlags};

use super::frame::{self, ErrorCode, FrameHead};
use super::hpack::push_integer;
use super::message::{self, Dechunk, Framing, Malformed, RequestFields};
use super::Via;
use crate::cache::CachedBody;
use crate::conn::{Conn, ReadOutcome};

/// SETTINGS_MAX_CONCURRENT_STREAMS we announce.
pub const MAX_STREAMS: usize = 128;
/// SETTINGS_MAX_HEADER_LIST_SIZE we announce: the HTTP/1.1 head limit.
pub const MAX_HEADER_LIST: usize = 64 * 1024;
/// The largest frame we accept (the default SETTINGS_MAX_FRAME_SIZE; we do not raise it).
const MAX_FRAME: usize = frame::MIN_MAX_FRAME;
/// Our connection receive window, topped up as request bodies are taken.
const CONN_RECV_WINDOW: i64 = 1 << 20;
/// Frames of one header block past which it is cut off (CONTINUATION flood).
const MAX_BLOCK_FRAMES: u32 = 64;
/// Stream resets a client may make at once (twice the concurrency), refilled at
/// `RESET_REFILL_PER_SEC`; past half of it new streams are refused, when spent GOAWAY.
const RESET_BURST: f64 = 2.0 * MAX_STREAMS as f64;
const RESET_REFILL_PER_SEC: f64 = MAX_STREAMS as f64;
/// SETTINGS and PING frames a client may send per second before GOAWAY ENHANCE_YOUR_CALM.
const MAX_CONTROL_PER_SEC: u32 = 1000;
/// The output buffer past which the session stops taking more (input or responses) until
/// the socket has drained it.
const OUT_HIGH: usize = 256 * 1024;
/// After a GOAWAY that ends the session, how long input is read and dropped, so closing
/// with unread bytes does not reset the connection before the client has read the GOAWAY.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes a response head from a handler may take.
const MAX_RESPONSE_HEAD: usize = 128 * 1024;

/// What a session needs from its replica to start a stream.
pub struct Ctx<'a> {
    pub epoll: &'a Epoll,
    pub replica: usize,
    pub max_body_bytes: u64,
    pub meters: &'a crate::support::meters::Meters,
    pub gauge: &'a crate::support::meters::ReplicaGauge,
    pub draining: bool,
}

/// The answer as it comes back from the handler.
enum Resp {
    /// Bytes of the HTTP/1.1 head so far.
    Head(Vec<u8>),
    /// Head sent; body bytes being framed.
    Body {
        framing: Framing,
        /// For `Framing::Length`: bytes still to come.
        left: u64,
        dechunk: Option<Dechunk>,
        /// Body bytes read but not yet framed, from `at` on.
        pending: Vec<u8>,
        at: usize,
        /// The body has all arrived (the last chunk was read): END_STREAM once `pending` is out.
        source_done: bool,
    },
}

struct Stream {
    id: u32,
    /// The session's end of the stream record's socket pair, once dispatched.
    socket: Option<UnixStream>,
    /// Decoded fields, until the request is dispatched.
    fields: Option<RequestFields>,
    head_request: bool,
    body: Vec<u8>,
    declared_len: Option<u64>,
    /// The body is over `max_body_bytes`: dispatched without it (answered 413), the rest dropped.
    too_large: bool,
    end_received: bool,
    /// Our window for the client's DATA on this stream.
    recv_window: i64,
    /// The client's window for our DATA on this stream.
    send_window: i64,
    /// The socket may have bytes (edge-triggered: set by an event, cleared by EAGAIN).
    readable: bool,
    /// Has bytes to send but no window.
    stalled: bool,
    resp: Resp,
    /// Reset by the client (or by us): its answer is read and dropped until the handler ends.
    reset: bool,
    /// The session's end of the socket pair is in the epoll set.
    watched: bool,
    /// The record's end, given back by the replica when it closed the record.
    theirs: Option<std::os::fd::OwnedFd>,
    /// Dispatched in this pump: its record has not been served yet, so its socket is not
    /// looked at (nor put in the epoll set) until the next pump.
    fresh: bool,
    /// The answer ended exactly where its framing said (a length, or no body): nothing more
    /// can be queued on the pair.
    clean_end: bool,
    /// The answer the handler gave in memory (`Via::answer`), until the session takes it.
    answer: Option<super::Answer>,
    /// Taken from memory: nothing went through the pair either way.
    in_memory: bool,
    /// What is left of a cached body being framed by reference.
    cached: Option<CachedBody>,
}

/// A header block being received (HEADERS, then CONTINUATION until END_HEADERS).
struct Block {
    stream: u32,
    bytes: Vec<u8>,
    end_stream: bool,
    frames: u32,
    trailers: bool,
    self_dependent: bool,
}

pub struct Session {
    pub conn: Conn,
    /// Its place in the replica's sessions (in every epoll token of it).
    index: usize,
    input: Vec<u8>,
    pub out: Vec<u8>,
    out_at: usize,
    /// Cached bodies framed by reference, each with the place in `out` it goes before: a
    /// flush writes `out` and them in order in one `sendmsg` (or into the TLS session),
    /// their only copy.
    gather: Vec<(usize, CachedBody)>,
    gather_bytes: usize,
    preface_done: bool,
    decoder: loona_hpack::Decoder<'static>,
    /// The header block being decoded, its Huffman strings decoded (kept for its capacity).
    plain_block: Vec<u8>,
    encoder: loona_hpack::Encoder<'static>,
    /// A smaller encoder table the client asked for, to announce in the next header block.
    table_update: Option<usize>,
    streams: Vec<Option<Stream>>,
    free: Vec<usize>,
    pub open: usize,
    last_id: u32,
    send_window: i64,
    peer_initial_window: i64,
    peer_max_frame: usize,
    recv_window: i64,
    block: Option<Block>,
    /// Streams closed lately (a frame for one is STREAM_CLOSED; for a stream never opened
    /// below `last_id`, PROTOCOL_ERROR).
    closed: std::collections::VecDeque<u32>,
    /// GOAWAY sent: no new streams; the session ends when its streams have.
    goaway_sent: bool,
    /// A connection error: close once the GOAWAY is out.
    failed: bool,
    peer_goaway: bool,
    /// When the last request, request body or response byte moved.
    last_progress: Instant,
    reset_tokens: f64,
    reset_refilled: Instant,
    control_frames: u32,
    control_since: Instant,
    tls_names: Option<(&'static str, String)>,
    /// The client socket may have bytes (edge-triggered).
    pub in_ready: bool,
    /// Clean socket pairs, lent by the replica's `Sessions` while this session is pumped.
    pub spare: Vec<super::Pair>,
    /// Closing: the GOAWAY is flushed, input is read and dropped until EOF or this deadline.
    linger_until: Option<Instant>,
    pub peer_closed: bool,
}

/// What `Session::pump` leaves for the replica.
#[derive(Default)]
pub struct Pumped {
    /// Stream records to serve.
    pub spawn: Vec<Conn>,
    /// The session has ended.
    pub finished: bool,
}

impl Session {
    pub fn new(conn: Conn, index: usize, now: Instant) -> Session {
        let tls_names = conn.tls_names();
        let mut session = Session {
            conn,
            index,
            input: Vec::new(),
            out: Vec::with_capacity(16 * 1024),
            out_at: 0,
            gather: Vec::new(),
            gather_bytes: 0,
            preface_done: false,
            decoder: loona_hpack::Decoder::new(),
            plain_block: Vec::new(),
            encoder: loona_hpack::Encoder::new(),
            table_update: None,
            streams: Vec::new(),
            free: Vec::new(),
            open: 0,
            last_id: 0,
            send_window: frame::DEFAULT_WINDOW,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::MIN_MAX_FRAME,
            recv_window: CONN_RECV_WINDOW,
            block: None,
            closed: std::collections::VecDeque::new(),
            goaway_sent: false,
            failed: false,
            peer_goaway: false,
            last_progress: now,
            reset_tokens: RESET_BURST,
            reset_refilled: now,
            control_frames: 0,
            control_since: now,
            tls_names,
            in_ready: true,
            spare: Vec::new(),
            linger_until: None,
            peer_closed: false,
        };
        session.input = std::mem::take(&mut session.conn.unread);
        // Our SETTINGS_HEADER_TABLE_SIZE stays the default: a client may not ask for more.
        session.decoder.set_max_allowed_table_size(4096);
        frame::push_settings(
            &mut session.out,
            &[
                (frame::SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS as u32),
                (frame::SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST as u32),
                (frame::SETTINGS_ENABLE_PUSH, 0),
            ],
        );
        frame::push_window_update(
            &mut session.out,
            0,
            (CONN_RECV_WINDOW - frame::DEFAULT_WINDOW) as u32,
        );
        session
    }

    /// The epoll token of stream slot `slot` (`None`: the client socket).
    pub fn token(index: usize, slot: Option<usize>) -> u64 {
        super::H2_TOKEN | ((slot.map_or(0, |s| s + 1) as u64) << 32) | index as u64
    }

    /// An event for the client socket (`None`) or a stream's socket.
    pub fn ready(&mut self, slot: Option<usize>) {
        match slot {
            None => self.in_ready = true,
            Some(slot) => {
                if let Some(Some(stream)) = self.streams.get_mut(slot) {
                    stream.readable = true;
                }
            }
        }
    }

    /// Reads what the client sent, answers what handlers wrote, writes the frames ready.
    pub fn pump(&mut self, ctx: &Ctx) -> Pumped {
        let mut pumped = Pumped::default();
        if let Some(until) = self.linger_until {
            pumped.finished = self.linger(until);
            return pumped;
        }
        // The records made by the last pump have been served since.
        for stream in self.streams.iter_mut().flatten() {
            stream.fresh = false;
        }
        if ctx.draining && !self.goaway_sent {
            self.go_away(ErrorCode::NoError, b"");
        }
        loop {
            if self.in_ready && !self.failed {
                self.read_input(ctx, &mut pumped.spawn);
            }
            let full = self.read_responses(ctx);
            if self.flush().is_err() {
                pumped.finished = true;
                return pumped;
            }
            // Stopped only for room, and the socket took it all: no event will come to say
            // so (edge-triggered), so go on now. New streams go to the replica first.
            let more_input = self.in_ready && !self.failed;
            if !pumped.spawn.is_empty() || self.pending_out() > 0 || !(full || more_input) {
                break;
            }
        }
        let idle_end = (self.goaway_sent || self.peer_goaway || self.peer_closed) && self.open == 0;
        if self.peer_closed && !self.failed && self.open > 0 && pumped.spawn.is_empty() {
            // The client is gone: its streams' answers have nowhere to go.
            pumped.finished = true;
            return pumped;
        }
        if (self.failed || idle_end) && pumped.spawn.is_empty() && self.pending_out() == 0 {
            if self.peer_closed {
                pumped.finished = true;
            } else {
                self.conn.close_tls();
                let _ = self.conn.stream.shutdown(std::net::Shutdown::Write);
                self.linger_until = Some(Instant::now() + LINGER);
                pumped.finished = self.linger(Instant::now() + LINGER);
            }
        }
        pumped
    }

    /// Reads and drops input until EOF or `until`; true when the session may close.
    fn linger(&mut self, until: Instant) -> bool {
        let mut sink = Vec::new();
        loop {
            sink.clear();
            match self.conn.read_now(&mut sink, 16 * 1024) {
                Ok(ReadOutcome::Data(_)) => {}
                Ok(ReadOutcome::WouldBlock) => return Instant::now() >= until,
                Ok(ReadOutcome::Closed) | Err(_) => return true,
            }
        }
    }

    /// The deadlines: a session that has moved nothing for `idle` (no request, no request
    /// body, no response byte: a client that sends only PINGs, keeps a zero window or reads
    /// nothing is idle) while no handler is working for it is closed; so is a lingering one.
    pub fn expired(&mut self, now: Instant, idle: Duration) -> bool {
        if let Some(until) = self.linger_until {
            return now >= until;
        }
        // A handler still answering (a CGI program thinking, a body on its way) keeps the
        // session, unless the client has stopped reading what is ready for it.
        let working = self
            .streams
            .iter()
            .flatten()
            .any(|s| s.socket.is_some() && !s.stalled && !s.reset);
        if working && self.pending_out() == 0 {
            return false;
        }
        now.saturating_duration_since(self.last_progress) >= idle
    }

    /// SIGTERM: announce the last stream that will be answered; in-flight streams finish.
    pub fn drain(&mut self) {
        if !self.goaway_sent {
            self.go_away(ErrorCode::NoError, b"");
        }
    }

    /// Ends the session at once (the replica is stopping): the stream records still out
    /// are dropped with their sockets.
    pub fn into_conn(self) -> Conn {
        self.conn
    }

    pub fn streams_open(&self) -> usize {
        self.open
    }

    /// Writes what is ready, ignoring errors (the session is ending anyway).
    pub fn flush_now(&mut self) {
        let _ = self.flush();
    }

    fn pending_out(&self) -> usize {
        self.out.len() - self.out_at + self.gather_bytes + usize::from(self.conn.tls_pending())
    }

    /// The socket took `written` bytes of the segments: what is left is copied into `out`
    /// (a client reading slower than we write; the common case never comes here).
    fn keep_unwritten(&mut self, written: usize) {
        let mut rest = Vec::with_capacity(self.pending_out().saturating_sub(written));
        let mut skip = written;
        for part in segments(&self.out, self.out_at, &self.gather) {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            rest.extend_from_slice(&part[skip..]);
            skip = 0;
        }
        self.out = rest;
        self.out_at = 0;
        self.gather.clear();
        self.gather_bytes = 0;
    }

    /// Writes the segments (`out` with cached bodies between) in one `sendmsg`, or into the
    /// TLS session; what the socket does not take stays in `out`.
    fn flush_gathered(&mut self) -> io::Result<()> {
        /// Slices past which the segments are copied into `out` instead (below IOV_MAX).
        const MAX_SLICES: usize = 512;
        let total = self.pending_out() - usize::from(self.conn.tls_pending());
        let written = if self.gather.len() * 2 + 1 > MAX_SLICES {
            0
        } else if self.conn.tls.is_some() {
            let parts = segments(&self.out, self.out_at, &self.gather);
            self.conn.write_tls_parts_now(&parts)?
        } else {
            let parts = segments(&self.out, self.out_at, &self.gather);
            let slices: Vec<io::IoSlice> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
            loop {
                match rustix::net::sendmsg(
                    &self.conn.stream,
                    &slices,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
                ) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::AGAIN) => break 0,
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        };
        if self.conn.tls.is_none() {
            self.conn.bytes_out += written as u64;
        }
        if written == total {
            self.out.clear();
            self.out_at = 0;
            self.gather.clear();
            self.gather_bytes = 0;
        } else {
            self.keep_unwritten(written);
        }
        Ok(())
    }

    /// Writes the output buffer, as far as the socket takes it now.
    fn flush(&mut self) -> io::Result<()> {
        if !self.gather.is_empty() {
            self.flush_gathered()?;
        }
        while self.out_at < self.out.len() {
            let n =
                crate::net::send_pool::send_now(&mut self.conn, &self.out[self.out_at..], false)?;
            if n == 0 {
                break;
            }
            self.out_at += n;
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        self.conn.flush_tls()?;
        Ok(())
    }

    fn read_input(&mut self, ctx: &Ctx, spawn: &mut Vec<Conn>) {
        loop {
            if self.pending_out() > OUT_HIGH || self.failed {
                return;
            }
            if !self.input.is_empty() {
                self.process(ctx, spawn);
                if self.failed {
                    return;
                }
            }
            let mut input = std::mem::take(&mut self.input);
            let read = self.conn.read_now(&mut input, 16 * 1024);
            self.input = input;
            match read {
                Ok(ReadOutcome::Data(_)) if self.conn.read_dry => {
                    // A short read emptied the socket: the client's next bytes raise a new
                    // event (edge-triggered), so no read is spent to find it empty.
                    self.in_ready = false;
                    self.process(ctx, spawn);
                    return;
                }
                Ok(ReadOutcome::Data(_)) => {}
                Ok(ReadOutcome::WouldBlock) => {
                    self.in_ready = false;
                    if !self.input.is_empty() {
                        self.process(ctx, spawn);
                    }
                    return;
                }
                Ok(ReadOutcome::Closed) | Err(_) => {
                    self.in_ready = false;
                    self.peer_closed = true;
                    if !self.input.is_empty() {
                        self.process(ctx, spawn);
                    }
                    return;
                }
            }
        }
    }

    /// Handles every whole frame in `self.input`.
    fn process(&mut self, ctx: &Ctx, spawn: &mut Vec<Conn>) {
        let input = std::mem::take(&mut self.input);
        let mut at = 0;
        if !self.preface_done {
            let n = input.len().min(frame::PREFACE.len());
            if input[..n] != frame::PREFACE[..n] {
                self.fail(ErrorCode::ProtocolError, b"bad connection preface");
                return;
            }
            if n < frame::PREFACE.len() {
                self.input = input;
                return;
            }
            self.preface_done = true;
            at = frame::PREFACE.len();
        }
        while let Some(head) = FrameHead::parse(&input[at..]) {
            if head.len > MAX_FRAME {
                self.fail(
                    ErrorCode::FrameSizeError,
                    b"frame larger than SETTINGS_MAX_FRAME_SIZE",
                );
                return;
            }
            let end = at + frame::HEADER_LEN + head.len;
            if input.len() < end {
                break;
            }
            self.frame(head, &input[at + frame::HEADER_LEN..end], ctx, spawn);
            at = end;
            if self.failed {
                return;
            }
        }
        self.top_up_connection_window();
        if at < input.len() {
            let mut input = input;
            input.drain(..at);
            self.input = input;
        }
    }

    fn frame(&mut self, head: FrameHead, payload: &[u8], ctx: &Ctx, spawn: &mut Vec<Conn>) {
        if let Some(block) = &self.block {
            if head.kind != frame::CONTINUATION || head.stream != block.stream {
                return self.fail(ErrorCode::ProtocolError, b"expected CONTINUATION");
            }
        }
        match head.kind {
            frame::DATA => self.on_data(head, payload, ctx, spawn),
            frame::HEADERS => self.on_headers(head, payload, ctx, spawn),
            frame::PRIORITY => self.on_priority(head, payload),
            frame::RST_STREAM => self.on_rst(head, payload),
            frame::SETTINGS => self.on_settings(head, payload),
            frame::PUSH_PROMISE => {
                self.fail(ErrorCode::ProtocolError, b"PUSH_PROMISE from a client")
            }
            frame::PING => self.on_ping(head, payload),
            frame::GOAWAY => {
                if head.stream != 0 {
                    return self.fail(ErrorCode::ProtocolError, b"GOAWAY on a stream");
                }
                if head.len < 8 {
                    return self.fail(ErrorCode::FrameSizeError, b"short GOAWAY");
                }
                self.peer_goaway = true;
            }
            frame::WINDOW_UPDATE => self.on_window_update(head, payload),
            frame::CONTINUATION => self.on_continuation(head, payload, ctx, spawn),
            // Unknown frame types are ignored (§4.1, §5.5).
            _ => {}
        }
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.id == id))
    }

    /// A frame for a stream we do not hold: idle (never opened: a connection error) or closed.
    fn not_open(&mut self, id: u32, what: &[u8]) {
        if id > self.last_id || id.is_multiple_of(2) || !self.closed.contains(&id) {
            self.fail(ErrorCode::ProtocolError, what);
        } else {
            self.fail(ErrorCode::StreamClosed, what);
        }
    }

    fn on_data(&mut self, head: FrameHead, payload: &[u8], ctx: &Ctx, spawn: &mut Vec<Conn>) {
        if head.stream == 0 {
            return self.fail(ErrorCode::ProtocolError, b"DATA on stream 0");
        }
        self.recv_window -= head.len as i64;
        if self.recv_window < 0 {
            return self.fail(ErrorCode::FlowControlError, b"connection window exceeded");
        }
        let Some(slot) = self.slot_of(head.stream) else {
            return self.not_open(head.stream, b"DATA on a stream not open");
        };
        let Some((start, end)) = frame::unpad(&head, payload) else {
            return self.fail(ErrorCode::ProtocolError, b"bad padding");
        };
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        if stream.end_received || stream.reset {
            return self.reset_stream(slot, ErrorCode::StreamClosed);
        }
        stream.recv_window -= head.len as i64;
        if stream.recv_window < 0 {
            return self.reset_stream(slot, ErrorCode::FlowControlError);
        }
        self.last_progress = Instant::now();
        let data = &payload[start..end];
        if stream.socket.is_none() && !stream.too_large {
            stream.body.extend_from_slice(data);
            if stream.body.len() as u64 > ctx.max_body_bytes {
                stream.too_large = true;
                stream.body = Vec::new();
                self.dispatch(slot, ctx, spawn);
            }
        }
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        if head.has(frame::FLAG_END_STREAM) {
            stream.end_received = true;
            if !stream.too_large
                && stream
                    .declared_len
                    .is_some_and(|n| n != stream.body.len() as u64)
            {
                return self.reset_stream(slot, ErrorCode::ProtocolError);
            }
            if stream.socket.is_none() {
                self.dispatch(slot, ctx, spawn);
            }
        } else if stream.recv_window < frame::DEFAULT_WINDOW / 2 {
            frame::push_window_update(
                &mut self.out,
                stream.id,
                (frame::DEFAULT_WINDOW - stream.recv_window) as u32,
            );
            stream.recv_window = frame::DEFAULT_WINDOW;
        }
    }

    fn top_up_connection_window(&mut self) {
        if self.recv_window < CONN_RECV_WINDOW / 2 {
            frame::push_window_update(
                &mut self.out,
                0,
                (CONN_RECV_WINDOW - self.recv_window) as u32,
            );
            self.recv_window = CONN_RECV_WINDOW;
        }
    }

    fn on_headers(&mut self, head: FrameHead, payload: &[u8], ctx: &Ctx, spawn: &mut Vec<Conn>) {
        if head.stream == 0 {
            return self.fail(ErrorCode::ProtocolError, b"HEADERS on stream 0");
        }
        let Some((mut start, end)) = frame::unpad(&head, payload) else {
            return self.fail(ErrorCode::ProtocolError, b"bad padding");
        };
        let mut self_dependent = false;
        if head.has(frame::FLAG_PRIORITY) {
            if end < start + 5 {
                return self.fail(ErrorCode::FrameSizeError, b"short HEADERS priority");
            }
            let dep = u32::from_be_bytes([
                payload[start],
                payload[start + 1],
                payload[start + 2],
                payload[start + 3],
            ]) & 0x7fff_ffff;
            self_dependent = dep == head.stream;
            start += 5;
        }
        let mut trailers = false;
        if let Some(slot) = self.slot_of(head.stream) {
            let half_closed = self.streams[slot]
                .as_ref()
                .is_none_or(|s| s.end_received || s.reset);
            if half_closed {
                return self.fail(ErrorCode::StreamClosed, b"HEADERS on a half-closed stream");
            }
            if !head.has(frame::FLAG_END_STREAM) {
                return self.fail(ErrorCode::ProtocolError, b"trailers without END_STREAM");
            }
            trailers = true;
        } else if head.stream.is_multiple_of(2) {
            return self.fail(
                ErrorCode::ProtocolError,
                b"even stream identifier from a client",
            );
        } else if head.stream <= self.last_id {
            return self.not_open(head.stream, b"stream identifier reused or decreasing");
        }
        self.block = Some(Block {
            stream: head.stream,
            bytes: payload[start..end].to_vec(),
            end_stream: head.has(frame::FLAG_END_STREAM),
            frames: 1,
            trailers,
            self_dependent,
        });
        if head.has(frame::FLAG_END_HEADERS) {
            self.end_block(ctx, spawn);
        }
    }

    fn on_continuation(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        ctx: &Ctx,
        spawn: &mut Vec<Conn>,
    ) {
        let Some(block) = self.block.as_mut() else {
            return self.fail(ErrorCode::ProtocolError, b"CONTINUATION without HEADERS");
        };
        block.frames += 1;
        block.bytes.extend_from_slice(payload);
        if block.bytes.len() > MAX_HEADER_LIST || block.frames > MAX_BLOCK_FRAMES {
            return self.fail(ErrorCode::EnhanceYourCalm, b"header block too long");
        }
        if head.has(frame::FLAG_END_HEADERS) {
            self.end_block(ctx, spawn);
        }
    }

    /// A whole header block: decoded (always, to keep the HPACK table in step), then a new
    /// stream, or trailers.
    fn end_block(&mut self, ctx: &Ctx, spawn: &mut Vec<Conn>) {
        let Some(block) = self.block.take() else {
            return;
        };
        let mut fields = RequestFields::new(MAX_HEADER_LIST);
        // Huffman strings decoded here first (`hpack.rs` says why); a block that cannot be
        // rewritten goes as it came, and the decoder finds its fault.
        let mut plain = std::mem::take(&mut self.plain_block);
        let bytes = match super::hpack::plain_block(&block.bytes, &mut plain) {
            Some(()) => &plain[..],
            None => &block.bytes[..],
        };
        let decoded = self.decoder.decode_with_cb(bytes, |n, v| fields.push(n, v));
        self.plain_block = plain;
        if decoded.is_err() {
            return self.fail(ErrorCode::CompressionError, b"HPACK decoding failed");
        }
        if block.trailers {
            let Some(slot) = self.slot_of(block.stream) else {
                return;
            };
            if let Some(Some(stream)) = self.streams.get_mut(slot) {
                stream.end_received = true;
                if stream.socket.is_none() {
                    self.dispatch(slot, ctx, spawn);
                }
            }
            return;
        }
        let id = block.stream;
        self.last_id = id;
        self.last_progress = Instant::now();
        if self.goaway_sent {
            // Past the GOAWAY's last stream: ignored (§6.8).
            return;
        }
        if block.self_dependent {
            return self.refuse(id, ErrorCode::ProtocolError);
        }
        self.refill_resets();
        if self.open >= MAX_STREAMS || self.reset_tokens < RESET_BURST / 2.0 {
            return self.refuse(id, ErrorCode::RefusedStream);
        }
        match fields.fault {
            Some(Malformed::TooLarge) => return self.answer_status(id, 431),
            Some(Malformed::Protocol) => {
                return self.refuse(id, ErrorCode::ProtocolError);
            }
            None => {}
        }
        let declared_len = match fields.content_length() {
            Ok(n) => n,
            Err(_) => {
                return self.refuse(id, ErrorCode::ProtocolError);
            }
        };
        if block.end_stream && declared_len.is_some_and(|n| n > 0) {
            return self.refuse(id, ErrorCode::ProtocolError);
        }
        let stream = Stream {
            id,
            socket: None,
            head_request: fields.is_head(),
            fields: Some(fields),
            body: Vec::new(),
            declared_len,
            too_large: declared_len.is_some_and(|n| n > ctx.max_body_bytes),
            end_received: block.end_stream,
            recv_window: frame::DEFAULT_WINDOW,
            send_window: self.peer_initial_window,
            readable: false,
            stalled: false,
            resp: Resp::Head(Vec::new()),
            reset: false,
            watched: false,
            theirs: None,
            clean_end: false,
            fresh: false,
            answer: None,
            in_memory: false,
            cached: None,
        };
        let dispatch_now = stream.end_received || stream.too_large;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.streams[slot] = Some(stream);
                slot
            }
            None => {
                self.streams.push(Some(stream));
                self.streams.len() - 1
            }
        };
        self.open += 1;
        ctx.gauge
            .h2_streams_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if dispatch_now {
            self.dispatch(slot, ctx, spawn);
        }
    }

    /// Makes the stream's record: the request as HTTP/1.1 in `unread`, a socket pair between
    /// it and the session.
    fn dispatch(&mut self, slot: usize, ctx: &Ctx, spawn: &mut Vec<Conn>) {
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        let Some(fields) = stream.fields.take() else {
            return;
        };
        let body_len = if stream.too_large {
            Some(stream.declared_len.unwrap_or(ctx.max_body_bytes + 1))
        } else if !stream.body.is_empty() || stream.declared_len.is_some() {
            Some(stream.body.len() as u64)
        } else {
            None
        };
        let mut request = Vec::with_capacity(256 + stream.body.len());
        match fields.to_http1(body_len, &mut request) {
            Ok(()) => {}
            Err(Malformed::TooLarge) => {
                let id = stream.id;
                self.remove(slot, ctx);
                return self.answer_status(id, 431);
            }
            Err(Malformed::Protocol) => return self.reset_stream(slot, ErrorCode::ProtocolError),
        }
        if !stream.too_large {
            request.extend_from_slice(&stream.body);
        }
        stream.body = Vec::new();
        // The session's end joins the epoll set only if the answer is not there at once
        // (`watch`): a cached page is written before the session looks.
        let pair = match self.spare.pop() {
            Some(pair) => Ok(pair),
            None => rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map(|(ours, theirs)| (UnixStream::from(ours), theirs)),
        };
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        let Ok((ours, theirs)) = pair else {
            // Out of descriptors: the client may retry this stream.
            return self.reset_stream(slot, ErrorCode::RefusedStream);
        };
        stream.socket = Some(ours);
        stream.readable = true;
        stream.fresh = true;
        let socket = TcpStream::from(theirs);
        let mut record = Conn::new(self.conn.id, socket, self.conn.peer, self.conn.local);
        record.unread = request;
        record.replica = ctx.replica;
        record.via_h2 = Some(Box::new(Via {
            stream: stream.id,
            session: self.index,
            slot,
            tls_names: self.tls_names.clone(),
            answer: None,
        }));
        // The record is closed (and counted closed) like any connection.
        ctx.meters
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.gauge
            .open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.gauge
            .h2_streams_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        spawn.push(record);
    }

    /// Ends a stream that never got a slot with RST_STREAM.
    fn refuse(&mut self, id: u32, code: ErrorCode) {
        frame::push_rst(&mut self.out, id, code);
        self.closed_stream(id);
    }

    /// Answers a stream with a bodiless status from the session itself.
    fn answer_status(&mut self, id: u32, status: u16) {
        self.closed_stream(id);
        let mut block = Vec::new();
        self.table_update_prefix(&mut block);
        let text = status.to_string();
        let _ = self.encoder.encode_into(
            [
                (&b":status"[..], text.as_bytes()),
                (&b"content-length"[..], &b"0"[..]),
            ],
            &mut block,
        );
        frame::push_header_block(&mut self.out, id, &block, true, self.peer_max_frame);
    }

    fn table_update_prefix(&mut self, block: &mut Vec<u8>) {
        if let Some(size) = self.table_update.take() {
            push_integer(block, size, 5, 0x20);
        }
    }

    fn on_priority(&mut self, head: FrameHead, payload: &[u8]) {
        if head.stream == 0 {
            return self.fail(ErrorCode::ProtocolError, b"PRIORITY on stream 0");
        }
        if head.len != 5 {
            frame::push_rst(&mut self.out, head.stream, ErrorCode::FrameSizeError);
            return;
        }
        let dep =
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
        if dep == head.stream {
            frame::push_rst(&mut self.out, head.stream, ErrorCode::ProtocolError);
        }
        // Otherwise ignored: RFC 9113 deprecates the priority scheme.
    }

    fn on_rst(&mut self, head: FrameHead, payload: &[u8]) {
        if head.len != 4 {
            return self.fail(ErrorCode::FrameSizeError, b"RST_STREAM length");
        }
        if head.stream == 0 {
            return self.fail(ErrorCode::ProtocolError, b"RST_STREAM on stream 0");
        }
        if head.stream > self.last_id || head.stream.is_multiple_of(2) {
            return self.fail(ErrorCode::ProtocolError, b"RST_STREAM on an idle stream");
        }
        let _ = payload;
        self.refill_resets();
        self.reset_tokens -= 1.0;
        if self.reset_tokens <= 0.0 {
            return self.fail(ErrorCode::EnhanceYourCalm, b"too many stream resets");
        }
        if let Some(slot) = self.slot_of(head.stream) {
            self.cancel(slot);
        }
    }

    fn refill_resets(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.reset_refilled).as_secs_f64();
        self.reset_tokens = (self.reset_tokens + secs * RESET_REFILL_PER_SEC).min(RESET_BURST);
        self.reset_refilled = now;
    }

    /// The stream is over for the client: its answer, if a handler is making one, is read
    /// and dropped until the handler ends (so it still counts against the concurrency limit).
    fn cancel(&mut self, slot: usize) {
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        stream.reset = true;
        stream.readable = true;
        stream.fields = None;
        stream.body = Vec::new();
    }

    fn reset_stream(&mut self, slot: usize, code: ErrorCode) {
        if let Some(Some(stream)) = self.streams.get(slot) {
            frame::push_rst(&mut self.out, stream.id, code);
        }
        self.cancel(slot);
    }

    fn count_control(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.control_since) >= Duration::from_secs(1) {
            self.control_since = now;
            self.control_frames = 0;
        }
        self.control_frames += 1;
        if self.control_frames > MAX_CONTROL_PER_SEC {
            self.fail(
                ErrorCode::EnhanceYourCalm,
                b"too many SETTINGS or PING frames",
            );
        }
    }

    fn on_settings(&mut self, head: FrameHead, payload: &[u8]) {
        if head.stream != 0 {
            return self.fail(ErrorCode::ProtocolError, b"SETTINGS on a stream");
        }
        if head.has(frame::FLAG_ACK) {
            if head.len != 0 {
                self.fail(ErrorCode::FrameSizeError, b"SETTINGS ACK with a payload");
            }
            return;
        }
        if !head.len.is_multiple_of(6) {
            return self.fail(ErrorCode::FrameSizeError, b"SETTINGS length");
        }
        self.count_control();
        if self.failed {
            return;
        }
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                frame::SETTINGS_HEADER_TABLE_SIZE => {
                    let size = (value as usize).min(4096);
                    self.encoder.set_max_table_size(size);
                    self.table_update = Some(size);
                }
                frame::SETTINGS_ENABLE_PUSH if value > 1 => {
                    return self.fail(ErrorCode::ProtocolError, b"ENABLE_PUSH not 0 or 1");
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if i64::from(value) > frame::MAX_WINDOW {
                        return self.fail(
                            ErrorCode::FlowControlError,
                            b"INITIAL_WINDOW_SIZE too large",
                        );
                    }
                    let delta = i64::from(value) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(value);
                    for stream in self.streams.iter_mut().flatten() {
                        stream.send_window += delta;
                        if stream.send_window > frame::MAX_WINDOW {
                            return self.fail(ErrorCode::FlowControlError, b"window overflow");
                        }
                        stream.readable = true;
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    let size = value as usize;
                    if !(frame::MIN_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&size) {
                        return self.fail(ErrorCode::ProtocolError, b"MAX_FRAME_SIZE out of range");
                    }
                    // Larger frames gain little: DATA frames stay at 16 KiB.
                    self.peer_max_frame = size.min(frame::MIN_MAX_FRAME);
                }
                _ => {}
            }
        }
        frame::push_settings_ack(&mut self.out);
    }

    fn on_ping(&mut self, head: FrameHead, payload: &[u8]) {
        if head.len != 8 {
            return self.fail(ErrorCode::FrameSizeError, b"PING length");
        }
        if head.stream != 0 {
            return self.fail(ErrorCode::ProtocolError, b"PING on a stream");
        }
        if head.has(frame::FLAG_ACK) {
            return;
        }
        self.count_control();
        if !self.failed {
            frame::push_ping_ack(&mut self.out, payload);
        }
    }

    fn on_window_update(&mut self, head: FrameHead, payload: &[u8]) {
        if head.len != 4 {
            return self.fail(ErrorCode::FrameSizeError, b"WINDOW_UPDATE length");
        }
        let increment = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        if head.stream == 0 {
            if increment == 0 {
                return self.fail(ErrorCode::ProtocolError, b"WINDOW_UPDATE of 0");
            }
            self.send_window += increment;
            if self.send_window > frame::MAX_WINDOW {
                return self.fail(ErrorCode::FlowControlError, b"connection window overflow");
            }
            for stream in self.streams.iter_mut().flatten() {
                if stream.stalled {
                    stream.readable = true;
                }
            }
            return;
        }
        let Some(slot) = self.slot_of(head.stream) else {
            if head.stream > self.last_id {
                self.fail(ErrorCode::ProtocolError, b"WINDOW_UPDATE on an idle stream");
            }
            return;
        };
        if increment == 0 {
            return self.reset_stream(slot, ErrorCode::ProtocolError);
        }
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        stream.send_window += increment;
        if stream.send_window > frame::MAX_WINDOW {
            return self.reset_stream(slot, ErrorCode::FlowControlError);
        }
        if stream.stalled {
            stream.readable = true;
        }
    }

    /// A connection error: GOAWAY with the last stream taken, then close (§5.4.1).
    fn fail(&mut self, code: ErrorCode, why: &[u8]) {
        if !self.failed {
            self.go_away(code, why);
            self.failed = true;
        }
    }

    fn go_away(&mut self, code: ErrorCode, why: &[u8]) {
        frame::push_goaway(&mut self.out, self.last_id, code, why);
        self.goaway_sent = true;
    }

    /// Remembers a closed stream's identifier.
    fn closed_stream(&mut self, id: u32) {
        if self.closed.len() >= 2 * MAX_STREAMS {
            self.closed.pop_front();
        }
        self.closed.push_back(id);
    }

    /// The record of the stream in `slot` was closed by the replica: its socket is kept
    /// with the stream (the same connection and stream id, so never another's).
    pub fn take_back(&mut self, slot: usize, mut record: Conn) {
        let Some(via) = record.via_h2.as_deref_mut() else {
            return;
        };
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        if stream.id != via.stream || record.id != self.conn.id || stream.theirs.is_some() {
            return;
        }
        stream.answer = via.answer.take();
        stream.theirs = Some(std::os::fd::OwnedFd::from(record.stream));
    }

    fn remove(&mut self, slot: usize, ctx: &Ctx) {
        if let Some(place) = self.streams.get_mut(slot) {
            if let Some(stream) = place.take() {
                self.closed_stream(stream.id);
                keep_pair(stream, &mut self.spare);
                self.free.push(slot);
                self.open -= 1;
                ctx.gauge
                    .h2_streams_open
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Reads what handlers wrote on the streams' sockets and frames it; true when it stopped
    /// because the output buffer is full.
    fn read_responses(&mut self, ctx: &Ctx) -> bool {
        for slot in 0..self.streams.len() {
            loop {
                if self.pending_out() > OUT_HIGH {
                    return true;
                }
                let Some(Some(stream)) = self.streams.get(slot) else {
                    break;
                };
                if !stream.readable || stream.socket.is_none() || stream.fresh {
                    break;
                }
                match self.read_response(slot) {
                    Step::More => continue,
                    Step::Wait => {
                        self.watch(slot, ctx);
                        break;
                    }
                    Step::End => {
                        self.remove(slot, ctx);
                        break;
                    }
                }
            }
        }
        false
    }

    /// Puts a stream's socket in the epoll set, to hear when its handler writes more. Added
    /// with bytes already waiting, it raises an event at once, so none is missed.
    fn watch(&mut self, slot: usize, ctx: &Ctx) {
        let index = self.index;
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return;
        };
        if stream.watched {
            return;
        }
        let Some(socket) = stream.socket.as_ref() else {
            return;
        };
        let event = EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET,
            Session::token(index, Some(slot)),
        );
        if ctx.epoll.add(socket, event).is_ok() {
            stream.watched = true;
        } else {
            self.reset_stream(slot, ErrorCode::InternalError);
        }
    }

    fn read_response(&mut self, slot: usize) -> Step {
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return Step::End;
        };
        let Some(socket) = stream.socket.as_ref() else {
            return Step::Wait;
        };
        if stream.reset {
            let mut scratch = [0u8; 4096];
            return match recv(socket, &mut scratch, RecvFlags::DONTWAIT) {
                Ok(0) => Step::End,
                Ok(_) => Step::More,
                // The record is closed (its end given back, or its answer given in memory):
                // the handler has finished, and what it wrote has been read.
                Err(rustix::io::Errno::AGAIN) if stream.theirs.is_some() => Step::End,
                Err(rustix::io::Errno::AGAIN) => {
                    stream.readable = false;
                    Step::Wait
                }
                Err(rustix::io::Errno::INTR) => Step::More,
                Err(_) => Step::End,
            };
        }
        match &mut stream.resp {
            Resp::Head(buf) if stream.answer.is_some() && buf.is_empty() => {
                // Answered in memory: nothing to read from the pair.
                if let Some(answer) = stream.answer.take() {
                    *buf = answer.head;
                    stream.cached = answer.body;
                    stream.in_memory = true;
                }
                self.parse_head(slot)
            }
            Resp::Head(buf) => {
                let at = buf.len();
                buf.resize(at + 16 * 1024, 0);
                let got = recv(socket, &mut buf[at..], RecvFlags::DONTWAIT);
                let got = match got {
                    Ok(n) => n,
                    Err(rustix::io::Errno::AGAIN) => {
                        buf.truncate(at);
                        stream.readable = false;
                        return Step::Wait;
                    }
                    Err(rustix::io::Errno::INTR) => {
                        buf.truncate(at);
                        return Step::More;
                    }
                    Err(_) => 0,
                };
                buf.truncate(at + got);
                if got == 0 {
                    // The handler ended without an answer.
                    let id = stream.id;
                    frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                    return Step::End;
                }
                self.parse_head(slot)
            }
            Resp::Body { .. } => self.frame_body(slot),
        }
    }

    /// Tries to parse the handler's response head; sends HEADERS when whole.
    fn parse_head(&mut self, slot: usize) -> Step {
        let mut block = Vec::new();
        self.table_update_prefix(&mut block);
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return Step::End;
        };
        let Resp::Head(buf) = &mut stream.resp else {
            return Step::More;
        };
        let parsed =
            message::encode_response(buf, stream.head_request, &mut self.encoder, &mut block);
        match parsed {
            Ok(Some(head)) if head.status < 200 => {
                // An interim answer (100 Continue): dropped, the final one follows.
                buf.drain(..head.head_len);
                Step::More
            }
            Ok(Some(head)) => {
                let rest = buf.split_off(head.head_len);
                let end_stream =
                    head.framing == Framing::None || (head.framing == Framing::Length(0));
                frame::push_header_block(
                    &mut self.out,
                    stream.id,
                    &block,
                    end_stream,
                    self.peer_max_frame,
                );
                self.last_progress = Instant::now();
                if end_stream {
                    stream.clean_end = rest.is_empty();
                    return Step::End;
                }
                let mut pending = Vec::new();
                let mut dechunk = None;
                // The bytes read with the head may hold the whole chunked body, its last
                // chunk included: then the source is done before anything more is read.
                let mut source_done = false;
                if head.framing == Framing::Chunked {
                    let mut d = Dechunk::default();
                    match d.feed(&rest, &mut pending) {
                        Ok(done) => source_done = done,
                        Err(message::NotHttp) => {
                            frame::push_rst(&mut self.out, stream.id, ErrorCode::InternalError);
                            return Step::End;
                        }
                    }
                    dechunk = Some(d);
                } else {
                    pending = rest;
                }
                stream.resp = Resp::Body {
                    framing: head.framing,
                    left: match head.framing {
                        Framing::Length(n) => n,
                        _ => u64::MAX,
                    },
                    dechunk,
                    pending,
                    at: 0,
                    source_done,
                };
                Step::More
            }
            Ok(None) if buf.len() > MAX_RESPONSE_HEAD => {
                frame::push_rst(&mut self.out, stream.id, ErrorCode::InternalError);
                Step::End
            }
            Ok(None) => Step::More,
            Err(message::NotHttp) => {
                frame::push_rst(&mut self.out, stream.id, ErrorCode::InternalError);
                Step::End
            }
        }
    }

    /// Frames body bytes within the windows: what is pending first, then straight from the
    /// socket into the output buffer behind a frame header (no copy in between).
    fn frame_body(&mut self, slot: usize) -> Step {
        let conn_window = self.send_window;
        let max_frame = self.peer_max_frame;
        let Some(Some(stream)) = self.streams.get_mut(slot) else {
            return Step::End;
        };
        let Resp::Body {
            framing,
            left,
            dechunk,
            pending,
            at,
            source_done,
        } = &mut stream.resp
        else {
            return Step::End;
        };
        let id = stream.id;
        if *source_done && *at >= pending.len() {
            frame::push_head(&mut self.out, 0, frame::DATA, frame::FLAG_END_STREAM, id);
            return Step::End;
        }
        let budget = conn_window.min(stream.send_window).min(max_frame as i64);
        let has_pending = *at < pending.len();
        if budget <= 0 {
            stream.stalled = true;
            return Step::Wait;
        }
        stream.stalled = false;
        if has_pending {
            let mut n = (pending.len() - *at).min(budget as usize);
            let mut end = false;
            if let Framing::Length(_) = framing {
                n = n.min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                end = *left == 0;
                stream.clean_end = end && *at + n == pending.len();
            }
            if *source_done && *at + n == pending.len() {
                end = true;
            }
            frame::push_head(
                &mut self.out,
                n,
                frame::DATA,
                if end { frame::FLAG_END_STREAM } else { 0 },
                id,
            );
            self.out.extend_from_slice(&pending[*at..*at + n]);
            *at += n;
            if *at == pending.len() {
                pending.clear();
                *at = 0;
            }
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
            self.last_progress = Instant::now();
            return if end { Step::End } else { Step::More };
        }
        if let Some(cached) = stream.cached.as_mut() {
            // A cached body, framed by reference: `flush` writes it from the cache.
            let mut n = cached.len().min(budget as usize);
            let mut end = cached.len() == n;
            if let Framing::Length(_) = framing {
                n = n.min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                end = *left == 0;
            }
            stream.clean_end = end;
            frame::push_head(
                &mut self.out,
                n,
                frame::DATA,
                if end { frame::FLAG_END_STREAM } else { 0 },
                id,
            );
            self.gather.push((self.out.len(), cached.take_front(n)));
            self.gather_bytes += n;
            if cached.is_empty() {
                stream.cached = None;
            }
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
            self.last_progress = Instant::now();
            return if end { Step::End } else { Step::More };
        }
        if stream.in_memory {
            // An answer from memory shorter than its length said (never made so).
            frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
            return Step::End;
        }
        let Some(socket) = stream.socket.as_ref() else {
            return Step::End;
        };
        if let Some(d) = dechunk {
            let mut scratch = [0u8; 16 * 1024];
            return match recv(socket, &mut scratch, RecvFlags::DONTWAIT) {
                Ok(0) => {
                    frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                    Step::End
                }
                Ok(n) => match d.feed(&scratch[..n], pending) {
                    Ok(true) => {
                        *source_done = true;
                        Step::More
                    }
                    Ok(false) => Step::More,
                    Err(message::NotHttp) => {
                        frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                        Step::End
                    }
                },
                Err(rustix::io::Errno::AGAIN) => {
                    stream.readable = false;
                    Step::Wait
                }
                Err(rustix::io::Errno::INTR) => Step::More,
                Err(_) => {
                    frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                    Step::End
                }
            };
        }
        let want = (budget as u64).min(*left) as usize;
        let start = self.out.len();
        self.out.resize(start + frame::HEADER_LEN + want, 0);
        let got = recv(
            socket,
            &mut self.out[start + frame::HEADER_LEN..],
            RecvFlags::DONTWAIT,
        );
        match got {
            Ok(0) => {
                self.out.truncate(start);
                if matches!(framing, Framing::Length(_)) {
                    // The handler ended before the length it announced.
                    frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                } else {
                    frame::push_head(&mut self.out, 0, frame::DATA, frame::FLAG_END_STREAM, id);
                }
                Step::End
            }
            Ok(n) => {
                self.out.truncate(start + frame::HEADER_LEN + n);
                let mut end = false;
                if let Framing::Length(_) = framing {
                    *left -= n as u64;
                    end = *left == 0;
                    stream.clean_end = end;
                }
                frame::patch_head(
                    &mut self.out,
                    start,
                    n,
                    if end { frame::FLAG_END_STREAM } else { 0 },
                );
                self.out[start + 3] = frame::DATA;
                self.out[start + 5..start + 9].copy_from_slice(&id.to_be_bytes());
                stream.send_window -= n as i64;
                self.send_window -= n as i64;
                self.last_progress = Instant::now();
                if end {
                    Step::End
                } else {
                    Step::More
                }
            }
            Err(rustix::io::Errno::AGAIN) => {
                self.out.truncate(start);
                stream.readable = false;
                Step::Wait
            }
            Err(rustix::io::Errno::INTR) => {
                self.out.truncate(start);
                Step::More
            }
            Err(_) => {
                self.out.truncate(start);
                frame::push_rst(&mut self.out, id, ErrorCode::InternalError);
                Step::End
            }
        }
    }
}

/// What a session has to write, in order: pieces of `out` (from `at`) between the cached
/// bodies framed by reference.
fn segments<'a>(out: &'a [u8], at: usize, gather: &'a [(usize, CachedBody)]) -> Vec<&'a [u8]> {
    let mut parts = Vec::with_capacity(2 * gather.len() + 1);
    let mut at = at;
    for (place, body) in gather {
        if *place > at {
            parts.push(&out[at..*place]);
            at = *place;
        }
        parts.push(body.bytes());
    }
    if at < out.len() {
        parts.push(&out[at..]);
    }
    parts
}

/// Keeps a finished stream's socket pair for the next stream when nothing can be left on it:
/// the record is closed, the answer ended where its framing said, the session's end is not
/// in the epoll set, and a look at it finds nothing queued.
fn keep_pair(stream: Stream, spare: &mut Vec<super::Pair>) {
    if !stream.clean_end || stream.watched || stream.reset || spare.len() >= super::SPARE_PAIRS {
        return;
    }
    let (Some(ours), Some(theirs)) = (stream.socket, stream.theirs) else {
        return;
    };
    if stream.in_memory {
        // Nothing was written on the pair either way: no need to look.
        spare.push((ours, theirs));
        return;
    }
    let mut probe = [0u8; 1];
    if recv(&ours, &mut probe, RecvFlags::PEEK | RecvFlags::DONTWAIT)
        == Err(rustix::io::Errno::AGAIN)
    {
        spare.push((ours, theirs));
    }
}

enum Step {
    /// Try this stream again.
    More,
    /// Nothing more now (no bytes, or no window).
    Wait,
    /// The stream is over: free its slot.
    End,
}
