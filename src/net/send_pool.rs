//! send.pool: the rest of responses whose clients read slower than they are written.
//! Instances: 1. In: ToSendPool (via `SendPoolSender`, which wakes the pool). Out: ToRecycler.
//! Stops: inbox disconnected; every held connection is then closed.
//!
//! A static worker writes what the socket takes at once and hands the rest here, so a client
//! that reads one byte at a time holds no worker thread (the paper's §4.1, for the writing
//! side). The pool waits on every such socket in one epoll set and writes more whenever the
//! client has made room. A client that takes nothing for `send_timeout_secs` is dropped.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TryRecvError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use rustix::net::{send, SendFlags};

use crate::conn::Conn;
use crate::net::wake::{self, WakingInbox, WakingSender};
use crate::protocol::{CloseReason, Piece, ToRecycler, ToSendPool, Unsent};
use crate::support::config::Live;
use crate::support::meters::Meters;

/// How far a non-blocking write got.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every piece is written.
    Done,
    /// The socket is full; the pieces left are still queued.
    Blocked,
}

/// Writes as much of `bytes` as the socket takes now, without waiting; returns how much.
/// `more`: the kernel may hold it back to send with what follows (MSG_MORE).
pub fn send_now(conn: &mut Conn, bytes: &[u8], more: bool) -> io::Result<usize> {
    if conn.tls.is_some() {
        return conn.write_tls_now(bytes);
    }
    let flags = SendFlags::DONTWAIT
        | SendFlags::NOSIGNAL
        | if more {
            SendFlags::MORE
        } else {
            SendFlags::empty()
        };
    let mut at = 0;
    while at < bytes.len() {
        match send(&conn.stream, &bytes[at..], flags) {
            Ok(n) => {
                conn.bytes_out += n as u64;
                at += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(at)
}

/// Writes as much of `head` then `body` as the socket takes now, in one `sendmsg` with two
/// slices (the body is never copied behind the head); returns how many bytes went.
pub fn send_two_now(conn: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<usize> {
    if conn.tls.is_some() {
        return conn.write_tls_two_now(head, body);
    }
    let total = head.len() + body.len();
    let mut at = 0;
    while at < total {
        let slices = if at < head.len() {
            [
                std::io::IoSlice::new(&head[at..]),
                std::io::IoSlice::new(body),
            ]
        } else {
            [
                std::io::IoSlice::new(&body[at - head.len()..]),
                std::io::IoSlice::new(&[]),
            ]
        };
        match rustix::net::sendmsg(
            &conn.stream,
            &slices,
            &mut rustix::net::SendAncillaryBuffer::default(),
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        ) {
            Ok(n) => {
                conn.bytes_out += n as u64;
                at += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(at)
}

/// Writes as much of `pieces` as the socket takes now, without waiting; written pieces (and
/// written parts of pieces) are removed. A file that ends early is an error.
pub fn write_now(conn: &mut Conn, pieces: &mut VecDeque<Piece>) -> io::Result<Progress> {
    if conn.tls.is_some() {
        return write_tls_now(conn, pieces);
    }
    loop {
        let more = pieces.len() > 1;
        let Some(piece) = pieces.front_mut() else {
            break;
        };
        let finished = match piece {
            Piece::Bytes { bytes, at } => {
                *at += send_now(conn, &bytes[*at..], more)?;
                if *at < bytes.len() {
                    return Ok(Progress::Blocked);
                }
                true
            }
            Piece::File { file, offset, len } => {
                let chunk = (*len).min(1 << 30) as usize;
                let mut off = *offset as i64;
                match nix::sys::sendfile::sendfile(
                    conn.stream.as_fd(),
                    file.as_fd(),
                    Some(&mut off),
                    chunk,
                ) {
                    Ok(0) if chunk > 0 => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being sent",
                        ));
                    }
                    Ok(n) => {
                        conn.bytes_out += n as u64;
                        *offset += n as u64;
                        *len -= n as u64;
                        *len == 0
                    }
                    Err(nix::errno::Errno::EINTR) => false,
                    Err(nix::errno::Errno::EAGAIN) => return Ok(Progress::Blocked),
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        };
        if finished {
            pieces.pop_front();
        }
    }
    Ok(Progress::Done)
}

/// `write_now` over TLS: sendfile(2) cannot encrypt, so files are read and encrypted in
/// records of `TLS_FILE_CHUNK` bytes, each read only when the session has sent the last.
/// Done only once the session has handed every byte to the socket.
fn write_tls_now(conn: &mut Conn, pieces: &mut VecDeque<Piece>) -> io::Result<Progress> {
    use std::os::unix::fs::FileExt;
    let mut chunk = Vec::new();
    while let Some(piece) = pieces.front_mut() {
        let finished = match piece {
            Piece::Bytes { bytes, at } => {
                *at += conn.write_tls_now(&bytes[*at..])?;
                *at >= bytes.len()
            }
            Piece::File { file, offset, len } => loop {
                if !conn.flush_tls()? {
                    return Ok(Progress::Blocked);
                }
                if *len == 0 {
                    break true;
                }
                chunk.resize((*len).min(TLS_FILE_CHUNK as u64) as usize, 0);
                let got = file.read_at(&mut chunk, *offset)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                let taken = conn.write_tls_now(&chunk[..got])?;
                *offset += taken as u64;
                *len -= taken as u64;
            },
        };
        if !finished {
            return Ok(Progress::Blocked);
        }
        pieces.pop_front();
    }
    if conn.flush_tls()? {
        Ok(Progress::Done)
    } else {
        Ok(Progress::Blocked)
    }
}

/// A file over TLS is read and encrypted this much at a time (one full TLS record).
const TLS_FILE_CHUNK: usize = 16 * 1024;

/// The sending end of send.pool's inbox: sends, then wakes the pool if it is asleep.
pub type SendPoolSender = WakingSender<ToSendPool>;
/// send.pool's end of its inbox.
pub type SendPoolInbox = WakingInbox<ToSendPool>;

/// Creates the pool's inbox.
pub fn channel() -> io::Result<(SendPoolSender, SendPoolInbox)> {
    wake::channel()
}

/// The pool's outputs.
pub struct SendPoolOut {
    pub to_recycler: Sender<ToRecycler>,
    pub live: Live,
    pub meters: Arc<Meters>,
}

const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A response being finished, and when its client last took any of it.
struct Held {
    unsent: Box<Unsent>,
    stalled_since: Instant,
}

pub fn run(inbox: SendPoolInbox, out: SendPoolOut) {
    let Ok(epoll) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
        return;
    };
    if inbox.register(&epoll).is_err() {
        return;
    }
    let mut held: HashMap<RawFd, Held> = HashMap::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        loop {
            match inbox.try_recv() {
                Ok(ToSendPool::Finish(unsent)) => take(&epoll, &mut held, unsent, &out),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    for (_, entry) in held.drain() {
                        let _ = out
                            .to_recycler
                            .send(failed(entry.unsent, CloseReason::Shutdown));
                    }
                    return;
                }
            }
        }
        out.meters.sending.store(held.len(), Ordering::Relaxed);
        let ready = inbox.wait(&epoll, &mut events, next_sweep);
        for event in &events[..ready] {
            let Some(entry) = held.remove(&(event.data() as RawFd)) else {
                continue;
            };
            resume(&epoll, &mut held, entry, &out);
        }
        let now = Instant::now();
        if now >= next_sweep {
            let limit = out.live.load().send_timeout();
            let stalled: Vec<RawFd> = held
                .iter()
                .filter(|(_, h)| now.duration_since(h.stalled_since) >= limit)
                .map(|(fd, _)| *fd)
                .collect();
            for fd in stalled {
                if let Some(entry) = held.remove(&fd) {
                    let _ = epoll.delete(&entry.unsent.conn.stream);
                    let _ = out
                        .to_recycler
                        .send(failed(entry.unsent, CloseReason::WriteFailed));
                }
            }
            next_sweep = now + SWEEP_EVERY;
        }
    }
}

/// Takes a response in: into the epoll set, waiting for room in the socket.
fn take(epoll: &Epoll, held: &mut HashMap<RawFd, Held>, unsent: Box<Unsent>, out: &SendPoolOut) {
    let fd = unsent.conn.fd();
    let event = EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLONESHOT, fd as u64);
    if epoll.add(&unsent.conn.stream, event).is_err() {
        let _ = out
            .to_recycler
            .send(failed(unsent, CloseReason::WriteFailed));
        return;
    }
    held.insert(
        fd,
        Held {
            unsent,
            stalled_since: Instant::now(),
        },
    );
}

/// The client made room: write more, then wait again, or hand the finished connection on.
fn resume(epoll: &Epoll, held: &mut HashMap<RawFd, Held>, mut entry: Held, out: &SendPoolOut) {
    let before = entry.unsent.conn.bytes_out;
    let unsent = &mut entry.unsent;
    match write_now(&mut unsent.conn, &mut unsent.pieces) {
        Ok(Progress::Blocked) => {
            if unsent.conn.bytes_out > before {
                entry.stalled_since = Instant::now();
            }
            let fd = unsent.conn.fd();
            let mut event =
                EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLONESHOT, fd as u64);
            if epoll.modify(&unsent.conn.stream, &mut event).is_err() {
                let _ = out
                    .to_recycler
                    .send(failed(entry.unsent, CloseReason::WriteFailed));
                return;
            }
            held.insert(fd, entry);
        }
        Ok(Progress::Done) if !has_room(&unsent.conn) => {
            // All written, but the client has not made room for the next answer yet: a
            // pipelined request must not find the socket full and hold a worker.
            let fd = unsent.conn.fd();
            let mut event =
                EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLONESHOT, fd as u64);
            if epoll.modify(&unsent.conn.stream, &mut event).is_err() {
                let _ = out
                    .to_recycler
                    .send(failed(entry.unsent, CloseReason::WriteFailed));
                return;
            }
            held.insert(fd, entry);
        }
        Ok(Progress::Done) => {
            let _ = epoll.delete(&entry.unsent.conn.stream);
            let _ = out.to_recycler.send(finished(entry.unsent));
        }
        Err(_) => {
            let _ = epoll.delete(&entry.unsent.conn.stream);
            let _ = out
                .to_recycler
                .send(failed(entry.unsent, CloseReason::WriteFailed));
        }
    }
}

/// Whether the socket would take more now (poll(2) with no wait).
fn has_room(conn: &Conn) -> bool {
    let mut fds = [PollFd::new(conn.stream.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLOUT))
}

/// The recycler's message for a response written whole.
fn finished(unsent: Box<Unsent>) -> ToRecycler {
    let Unsent {
        conn,
        mut exchange,
        keep_alive,
        ..
    } = *unsent;
    exchange.finished = Instant::now();
    if keep_alive {
        ToRecycler::KeepAlive(conn, exchange)
    } else {
        ToRecycler::Close(conn, CloseReason::Done, Some(exchange))
    }
}

/// The recycler's message for a response cut short: the exchange counts the body bytes sent.
fn failed(unsent: Box<Unsent>, reason: CloseReason) -> ToRecycler {
    let Unsent {
        conn,
        mut exchange,
        head_len,
        bytes_out_before,
        ..
    } = *unsent;
    exchange.finished = Instant::now();
    exchange.body_bytes = (conn.bytes_out - bytes_out_before).saturating_sub(head_len);
    ToRecycler::Close(conn, reason, Some(exchange))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Exchange;
    use crate::support::config::Config;
    use arc_swap::ArcSwap;
    use crossbeam_channel::Receiver;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// A connected pair: the server's `Conn` (non-blocking) and the client's stream.
    fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        stream.set_nonblocking(true).unwrap();
        socket2::SockRef::from(&stream)
            .set_send_buffer_size(4096)
            .unwrap();
        let local = stream.local_addr().unwrap();
        (Conn::new(1, stream, peer, local), client)
    }

    fn start(
        send_timeout_secs: u64,
    ) -> (
        SendPoolSender,
        Receiver<ToRecycler>,
        std::thread::JoinHandle<()>,
    ) {
        let (to_pool, inbox) = channel().unwrap();
        let (to_recycler, recycler_inbox) = crossbeam_channel::unbounded();
        let cfg = Config {
            send_timeout_secs,
            ..Config::default()
        };
        let live = Arc::new(ArcSwap::from_pointee(cfg));
        let meters = Arc::new(Meters::default());
        let pool = std::thread::spawn(move || {
            run(
                inbox,
                SendPoolOut {
                    to_recycler,
                    live,
                    meters,
                },
            )
        });
        (to_pool, recycler_inbox, pool)
    }

    fn unsent(conn: Conn, body: &[u8]) -> Box<Unsent> {
        let exchange = Exchange::without_request(200, body.len() as u64, Instant::now());
        let bytes_out_before = conn.bytes_out;
        let pieces = VecDeque::from([Piece::Bytes {
            bytes: body.to_vec(),
            at: 0,
        }]);
        Box::new(Unsent {
            conn,
            pieces,
            exchange,
            keep_alive: true,
            head_len: 0,
            bytes_out_before,
        })
    }

    #[test]
    fn finishes_what_a_slow_reader_could_not_take_at_once() {
        let (to_pool, recycler, pool) = start(60);
        let (mut conn, mut client) = pair();
        let body: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut pieces = VecDeque::from([Piece::Bytes {
            bytes: body.clone(),
            at: 0,
        }]);
        assert_eq!(
            write_now(&mut conn, &mut pieces).unwrap(),
            Progress::Blocked
        );
        let taken = conn.bytes_out as usize;
        let mut rest = unsent(conn, &body[taken..]);
        rest.pieces = pieces;
        to_pool.send(ToSendPool::Finish(rest)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < body.len() {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == body);
        match recycler.recv_timeout(Duration::from_secs(20)).unwrap() {
            ToRecycler::KeepAlive(conn, exchange) => {
                assert_eq!(conn.bytes_out as usize, body.len());
                assert_eq!(exchange.body_bytes as usize, body.len() - taken);
            }
            _ => panic!("a finished answer is kept alive"),
        }
        drop(to_pool);
        pool.join().unwrap();
    }

    #[test]
    fn drops_a_client_that_takes_nothing_for_the_send_timeout() {
        let (to_pool, recycler, pool) = start(1);
        let (conn, client) = pair();
        to_pool
            .send(ToSendPool::Finish(unsent(conn, &vec![7u8; 8 << 20])))
            .unwrap();
        match recycler.recv_timeout(Duration::from_secs(20)).unwrap() {
            ToRecycler::Close(_, CloseReason::WriteFailed, Some(exchange)) => {
                assert!(exchange.body_bytes < 8 << 20, "{}", exchange.body_bytes);
            }
            _ => panic!("a stalled client is closed as a failed write"),
        }
        drop(client);
        drop(to_pool);
        pool.join().unwrap();
    }

    #[test]
    fn a_file_that_shrinks_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"short").unwrap();
        let (mut conn, _client) = pair();
        let file = std::fs::File::open(&path).unwrap();
        let mut pieces = VecDeque::from([Piece::File {
            file,
            offset: 0,
            len: 1000,
        }]);
        let err = write_now(&mut conn, &mut pieces).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
