//! The acceptor, a stage of each replica (`net/replica.rs`): takes new connections off the
//! shared listening socket, sets their options and makes them `Conn`s.
//!
//! Back-pressure: past `max_connections` open connections, or when the process runs out of
//! file descriptors, a client gets a fast 503 and is closed; the server never dies of it.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use crate::conn::Conn;
use crate::protocol::ToLog;
use crate::support::config::Config;
use crate::support::meters::Meters;

const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nServer: occwserv\r\nContent-Type: text/plain\r\n\
Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver at capacity.\n";

/// A listening socket and how its connections begin.
pub struct Listening {
    pub socket: TcpListener,
    /// Every connection on it starts with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// It is the HTTPS listener: every connection on it begins a TLS session.
    pub tls: bool,
}

/// What one accept found. Moved by value: boxing the `Conn` would cost an allocation per
/// connection.
#[allow(clippy::large_enum_variant)]
pub enum Accepted {
    /// A new connection, counted as active.
    Conn(Conn),
    /// Nothing waiting now (or a client refused or gone): try again when the listener is ready.
    Again,
    /// The listener was shut down (the server is draining).
    Closed,
}

/// One replica's acceptor: its connection ids and its spare descriptor.
pub struct Acceptor {
    next_id: u64,
    step: u64,
    /// One descriptor held in reserve: when accept fails for want of descriptors, it is
    /// released so the waiting client can be answered 503 instead of left hanging.
    reserve: Option<File>,
}

impl Acceptor {
    /// Ids are `first + k * step`, so replicas never give out the same id.
    pub fn new(first: u64, step: u64) -> Acceptor {
        Acceptor {
            next_id: first + 1,
            step: step.max(1),
            reserve: File::open("/dev/null").ok(),
        }
    }

    /// Takes one connection from the (non-blocking) listener.
    pub fn accept(
        &mut self,
        listening: &Listening,
        cfg: &Config,
        meters: &Meters,
        to_log: &Sender<ToLog>,
    ) -> Accepted {
        let listener = &listening.socket;
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    // Accepted while the server begins to drain: it is still answered (with
                    // `Connection: close`), never dropped unanswered.
                    if meters.active.load(Ordering::Relaxed) >= cfg.max_connections {
                        refuse(stream, meters);
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                        continue;
                    }
                    if cfg.send_buffer_bytes > 0 {
                        let _ = socket2::SockRef::from(&stream)
                            .set_send_buffer_size(cfg.send_buffer_bytes);
                    }
                    // An HTTPS connection begins its TLS session (the handshake is read later,
                    // like a request head).
                    let tls = match (listening.tls, &cfg.tls_state) {
                        (false, _) => None,
                        (true, Some(state)) => {
                            match rustls::ServerConnection::new(state.server.clone()) {
                                Ok(session) => Some(Box::new(session)),
                                Err(_) => continue,
                            }
                        }
                        (true, None) => continue,
                    };
                    let local = stream.local_addr().unwrap_or(peer);
                    let id = self.next_id;
                    self.next_id += self.step;
                    meters.accepted.fetch_add(1, Ordering::Relaxed);
                    meters.active.fetch_add(1, Ordering::Relaxed);
                    let mut conn = Conn::new(id, stream, peer, local);
                    conn.proxy_header_due = listening.proxy_protocol;
                    conn.tls = tls;
                    return Accepted::Conn(conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Accepted::Again,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    let _ = to_log.try_send(ToLog::Error(
                        "accept: out of file descriptors; refusing with 503".to_string(),
                    ));
                    drop(self.reserve.take());
                    if let Ok((stream, _)) = listener.accept() {
                        refuse(stream, meters);
                    }
                    self.reserve = File::open("/dev/null").ok();
                    if self.reserve.is_none() {
                        // Still no descriptor to spare, and the listener stays ready: give
                        // closing connections a moment rather than spin.
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    return Accepted::Again;
                }
                Err(e)
                    if e.kind() == ErrorKind::Interrupted
                        || e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    if meters.draining() || e.raw_os_error() == Some(libc::EINVAL) {
                        return Accepted::Closed;
                    }
                    let _ = to_log.try_send(ToLog::Error(format!("accept: {e}")));
                    return Accepted::Again;
                }
            }
        }
    }
}

/// Answers 503 and closes, without counting the connection as active.
fn refuse(stream: TcpStream, meters: &Meters) {
    meters.refused.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nonblocking(true);
    let _ = rustix::net::send(
        &stream,
        BUSY_RESPONSE,
        rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
