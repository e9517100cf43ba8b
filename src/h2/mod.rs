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
#[derive(Debug, Clone)]
pub struct Via {
    pub stream: u32,
    /// The connection's TLS version and cipher, when it came over HTTPS.
    pub tls_names: Option<(&'static str, String)>,
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

/// A replica's h2 sessions.
#[derive(Default)]
pub struct Sessions {
    list: Vec<Option<Session>>,
    free: Vec<usize>,
    /// Sessions open now.
    pub open: usize,
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
        let pumped = session.pump(ctx);
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
