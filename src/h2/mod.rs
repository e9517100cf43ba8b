//! HTTP/2 (RFC 9113, HPACK RFC 7541): the h2 session process of each HTTP/2 connection,
//! run as a stage of the replica that owns the connection. Instances: one per HTTP/2
//! connection, on its replica. In: the client's frames (the connection's socket in the
//! replica's epoll set), the answers of its streams (each stream record's socket pair, in the
//! same set). Out: stream records (`Conn`s the replica serves like any connection), frames
//! to the client. Stops: on GOAWAY (sent or received) once its streams are over, on a
//! connection error, on idle timeout, or when the replica stops.
//!
//! A connection becomes a session when its first bytes are the connection preface: h2c with
//! prior knowledge on the plain listener, and `h2` chosen by ALPN on the HTTPS one (the
//! client then sends the same preface inside TLS). See docs/HTTP2.md.

pub mod frame;
pub mod hpack;
pub mod message;
pub mod session;

use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use crate::conn::Conn;
pub use session::{Ctx, Pumped, Session};

/// Tokens of h2 sessions' sockets in a replica's epoll set carry this bit; the low 32 bits
/// are the session's index, the next 16 its stream slot plus one (0: the client socket).
pub const H2_TOKEN: u64 = 1 << 62;

/// What a stream record knows of the HTTP/2 connection it came on.
pub struct Via {
    pub stream: u32,
    /// The session's index on its replica and the stream's slot in it: where the record's
    /// socket goes back to when the replica closes the record (`Sessions::give_back`).
    pub session: usize,
    pub slot: usize,
    /// The connection's TLS version and cipher, when it came over HTTPS.
    pub tls_names: Option<(&'static str, String)>,
    /// The answer, when the handler gave it in memory rather than on the socket pair (a
    /// page-cache hit, a bodiless answer): the session frames it from here.
    pub answer: Option<Answer>,
}

/// An answer given in memory to an HTTP/2 stream's record (`Via::answer`): the head as the
/// handler made it for HTTP/1.1 (the session HPACK-encodes it, as it would have read it from
/// the pair), and a cached body held by reference, framed straight from the cache.
pub struct Answer {
    pub head: Vec<u8>,
    pub body: Option<crate::cache::CachedBody>,
}

/// Whether `buf` (a connection's first bytes) is, or may yet become, the HTTP/2 preface:
/// `Some(true)` when it is, `Some(false)` when more bytes are needed to tell, `None` when
/// it is not (an HTTP/1.1 request).
pub fn preface(buf: &[u8]) -> Option<bool> {
    // "PRI * HTTP/2.0\r\n\r\n" alone is enough to tell: no HTTP/1.1 request starts so.
    const TELLS: usize = 16;
    let n = buf.len().min(TELLS);
    if buf[..n] != frame::PREFACE[..n] {
        return None;
    }
    Some(n == TELLS)
}

/// A socket pair between a session and a stream record, clean (nothing queued either way)
/// and kept for the next stream: the session's end and the record's.
pub type Pair = (std::os::unix::net::UnixStream, std::os::fd::OwnedFd);

/// Spare pairs a replica keeps: a cached page's stream then costs no socketpair(2) and no
/// close(2).
pub const SPARE_PAIRS: usize = 64;

/// A replica's h2 sessions.
#[derive(Default)]
pub struct Sessions {
    list: Vec<Option<Session>>,
    free: Vec<usize>,
    /// Sessions open now.
    pub open: usize,
    /// Clean socket pairs for the next streams (lent to the session being pumped).
    spare: Vec<Pair>,
}

impl Sessions {
    /// Takes a connection whose first bytes are the preface (in `conn.unread`). Its socket
    /// is already in `epoll` (`conn.registered`): its token becomes the session's. Returns
    /// the session's index, or the connection when it could not be registered.
    pub fn start(&mut self, conn: Conn, epoll: &Epoll) -> Result<usize, Box<Conn>> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.list.push(None);
                self.list.len() - 1
            }
        };
        let mut event = EpollEvent::new(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLOUT
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLET,
            Session::token(index, None),
        );
        let armed = if conn.registered {
            epoll.modify(&conn.stream, &mut event)
        } else {
            epoll.add(&conn.stream, event)
        };
        if armed.is_err() {
            self.free.push(index);
            return Err(Box::new(conn));
        }
        self.list[index] = Some(Session::new(conn, index, Instant::now()));
        self.open += 1;
        Ok(index)
    }

    /// An epoll event with an h2 token: marks what became ready, returns the session.
    pub fn event(&mut self, token: u64) -> Option<usize> {
        let index = (token & 0xffff_ffff) as usize;
        let slot = ((token >> 32) & 0xffff) as usize;
        let session = self.list.get_mut(index)?.as_mut()?;
        session.ready(slot.checked_sub(1));
        Some(index)
    }

    /// Runs session `index`; when it has ended, its connection is returned to be closed.
    pub fn pump(&mut self, index: usize, ctx: &Ctx) -> (Vec<Conn>, Option<Conn>) {
        let Some(Some(session)) = self.list.get_mut(index) else {
            return (Vec::new(), None);
        };
        std::mem::swap(&mut session.spare, &mut self.spare);
        let pumped = session.pump(ctx);
        std::mem::swap(&mut session.spare, &mut self.spare);
        self.spare.truncate(SPARE_PAIRS);
        if pumped.finished {
            return (pumped.spawn, self.end(index, ctx));
        }
        (pumped.spawn, None)
    }

    fn end(&mut self, index: usize, ctx: &Ctx) -> Option<Conn> {
        let session = self.list.get_mut(index)?.take()?;
        self.free.push(index);
        self.open -= 1;
        let _ = ctx.epoll.delete(&session.conn.stream);
        ctx.gauge
            .h2_streams_open
            .fetch_sub(session.streams_open(), std::sync::atomic::Ordering::Relaxed);
        let mut conn = session.into_conn();
        conn.registered = false;
        Some(conn)
    }

    /// A stream record the replica has closed: its socket goes back to its stream, to be kept
    /// with the session's end once the answer is read (dropped otherwise).
    pub fn give_back(&mut self, record: Conn) {
        let Some(via) = record.via_h2.as_deref() else {
            return;
        };
        let (index, slot) = (via.session, via.slot);
        if record.registered || record.tls.is_some() {
            return;
        }
        if let Some(Some(session)) = self.list.get_mut(index) {
            session.take_back(slot, record);
        }
    }

    /// Sessions past their deadline: ended, their connections returned to be closed.
    pub fn tick(&mut self, now: Instant, idle: std::time::Duration, ctx: &Ctx) -> Vec<Conn> {
        let mut ended = Vec::new();
        for index in 0..self.list.len() {
            let expired = self.list[index]
                .as_mut()
                .is_some_and(|s| s.expired(now, idle));
            if expired {
                if let Some(Some(session)) = self.list.get_mut(index) {
                    session.drain();
                    session.flush_now();
                }
                ended.extend(self.end(index, ctx));
            }
        }
        ended
    }

    /// The indexes of the sessions (to pump each on drain).
    pub fn indexes(&self) -> Vec<usize> {
        (0..self.list.len())
            .filter(|&i| self.list[i].is_some())
            .collect()
    }

    /// Every session's connection, ending them all (the replica is stopping).
    pub fn close_all(&mut self, ctx: &Ctx) -> Vec<Conn> {
        (0..self.list.len())
            .filter_map(|i| self.end(i, ctx))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use nix::sys::epoll::EpollCreateFlags;

    use super::*;
    use crate::support::meters::Meters;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::push_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// Reads frames until one of `kind` on `stream` with END_STREAM (or END_HEADERS).
    fn read_frames(client: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<(frame::FrameHead, Vec<u8>)> {
        let mut chunk = [0u8; 65536];
        let n = client.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let mut frames = Vec::new();
        while let Some(head) = frame::FrameHead::parse(buf) {
            if buf.len() < 9 + head.len {
                break;
            }
            frames.push((head, buf[9..9 + head.len].to_vec()));
            buf.drain(..9 + head.len);
        }
        frames
    }

    #[test]
    fn a_stream_becomes_a_record_and_its_answer_comes_back_framed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (socket, peer) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let conn = Conn::new(7, socket, peer, local);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let meters = Meters::with_replicas(1);
        let gauge = meters.replica(0);
        let ctx = Ctx {
            epoll: &epoll,
            replica: 0,
            max_body_bytes: 1 << 20,
            meters: &meters,
            gauge: &gauge,
            draining: false,
        };
        let mut sessions = Sessions::default();
        let index = sessions.start(conn, &epoll).map_err(|_| ()).unwrap();

        // The client: preface, SETTINGS, and a GET with a cookie in two crumbs.
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"http"),
            (b":authority", b"example.test"),
            (b":path", b"/a?b=1"),
            (b"cookie", b"x=1"),
            (b"cookie", b"y=2"),
        ]);
        let mut hello = frame::PREFACE.to_vec();
        hello.extend(frame(frame::SETTINGS, 0, 0, &[]));
        hello.extend(frame(
            frame::HEADERS,
            frame::FLAG_END_HEADERS | frame::FLAG_END_STREAM,
            1,
            &block,
        ));
        client.write_all(&hello).unwrap();

        // The session reads it and makes one record, the request in HTTP/1.1.
        let mut records = Vec::new();
        for _ in 0..100 {
            sessions.event(Session::token(index, None));
            let (spawn, ended) = sessions.pump(index, &ctx);
            assert!(ended.is_none());
            records.extend(spawn);
            if !records.is_empty() {
                break;
            }
            // Wait (bounded) for the rest of the client's bytes.
            let mut events = [EpollEvent::empty(); 4];
            let _ = epoll.wait(&mut events, nix::sys::epoll::EpollTimeout::from(100u16));
        }
        assert_eq!(records.len(), 1);
        let mut record = records.remove(0);
        assert_eq!(
            String::from_utf8_lossy(&record.unread),
            "GET /a?b=1 HTTP/1.1\r\nhost: example.test\r\ncookie: x=1; y=2\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(record.via_h2.as_ref().map(|v| v.stream), Some(1));
        assert_eq!(
            gauge
                .h2_streams_open
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );

        // A handler answers on the record's socket; the session frames it.
        record
            .write_all_until(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nX-Kept: yes\r\n\r\nhello",
                std::time::Instant::now() + std::time::Duration::from_secs(5),
            )
            .unwrap();
        // The replica closes the record (its answer written at once, as a cached page's is)
        // and pumps the session again.
        sessions.give_back(record);
        let (spawn, ended) = sessions.pump(index, &ctx);
        assert!(spawn.is_empty() && ended.is_none());

        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while !frames
            .iter()
            .any(|(h, _): &(frame::FrameHead, Vec<u8>)| h.kind == frame::DATA)
        {
            frames.extend(read_frames(&mut client, &mut buf));
        }
        let kinds: Vec<u8> = frames.iter().map(|(h, _)| h.kind).collect();
        // SETTINGS, WINDOW_UPDATE (the connection's 1 MiB), SETTINGS ACK, HEADERS, DATA.
        assert_eq!(
            kinds,
            [
                frame::SETTINGS,
                frame::WINDOW_UPDATE,
                frame::SETTINGS,
                frame::HEADERS,
                frame::DATA
            ]
        );
        let fields = loona_hpack::Decoder::new().decode(&frames[3].1).unwrap();
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                (":status".to_string(), "200".to_string()),
                ("content-length".to_string(), "5".to_string()),
                ("x-kept".to_string(), "yes".to_string()),
            ],
            "Connection is hop-by-hop: dropped"
        );
        let (data_head, data) = &frames[4];
        assert_eq!(data, b"hello");
        assert!(data_head.has(frame::FLAG_END_STREAM));
        assert_eq!(
            gauge
                .h2_streams_open
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        for conn in sessions.close_all(&ctx) {
            drop(conn);
        }
    }
}
