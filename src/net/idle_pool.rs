//! idle.pool: parked keep-alive connections wait in an epoll set, not in a thread.
//! Instances: 1. In: ToIdlePool (via `IdleSender`, which wakes the pool). Out: ToFrontEnd
//! (readable), ToRecycler (timed out). Stops: inbox disconnected; every parked connection
//! is then closed.
//!
//! A connection with a partial head carries its header deadline, so a client trickling
//! bytes is timed out (408) here without ever holding a worker thread (the paper's §4.1).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendError, Sender, TryRecvError};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::conn::Conn;
use crate::net::wake::{self, WakingInbox, WakingSender};
use crate::protocol::{CloseReason, Handler, ToFrontEnd, ToIdlePool, ToRecycler};
use crate::support::config::Live;
use crate::support::meters::Meters;

/// The sending end of idle.pool's inbox: sends, then wakes the pool if it is asleep.
pub type IdleSender = WakingSender<ToIdlePool>;
/// idle.pool's end of its inbox.
pub type IdleInbox = WakingInbox<ToIdlePool>;

/// Creates the pool's inbox.
pub fn channel() -> std::io::Result<(IdleSender, IdleInbox)> {
    wake::channel()
}

/// The pool's outputs.
pub struct IdleOut {
    pub to_front_end: Sender<ToFrontEnd>,
    pub to_recycler: Sender<ToRecycler>,
    pub live: Live,
    pub meters: Arc<Meters>,
}

const SWEEP_EVERY: Duration = Duration::from_millis(250);

struct Parked {
    conn: Conn,
    since: Instant,
    deadline: Instant,
    /// The head was partial when parked: a timeout is answered 408.
    partial: bool,
}

pub fn run(inbox: IdleInbox, out: IdleOut) {
    let epoll = match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(epoll) => epoll,
        Err(_) => return,
    };
    if inbox.register(&epoll).is_err() {
        return;
    }
    let mut parked: HashMap<RawFd, Parked> = HashMap::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        // Take every waiting connection into the set before sleeping.
        loop {
            match inbox.try_recv() {
                Ok(ToIdlePool::Park(conn)) => park(&epoll, &mut parked, conn, &out),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    close_all(&mut parked, &out, CloseReason::Shutdown);
                    return;
                }
            }
        }
        if out.meters.draining() && !parked.is_empty() {
            close_all(&mut parked, &out, CloseReason::Shutdown);
        }
        let ready = inbox.wait(&epoll, &mut events, next_sweep);
        for event in &events[..ready] {
            let Some(mut entry) = parked.remove(&(event.data() as RawFd)) else {
                continue;
            };
            out.meters.parked.fetch_sub(1, Ordering::Relaxed);
            if !entry.partial {
                entry.conn.keep_alive_wait = Some(entry.since.elapsed());
            }
            if let Err(SendError(ToFrontEnd::Read(conn))) =
                out.to_front_end.send(ToFrontEnd::Read(entry.conn))
            {
                let _ = out
                    .to_recycler
                    .send(ToRecycler::Close(conn, CloseReason::Shutdown, None));
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            sweep(&mut parked, now, &out);
            next_sweep = now + SWEEP_EVERY;
        }
    }
}

fn park(epoll: &Epoll, parked: &mut HashMap<RawFd, Parked>, mut conn: Conn, out: &IdleOut) {
    if out.meters.draining() && conn.unread.is_empty() {
        let _ = out
            .to_recycler
            .send(ToRecycler::Close(conn, CloseReason::Shutdown, None));
        return;
    }
    let cfg = out.live.load();
    let partial = !conn.unread.is_empty();
    let since = Instant::now();
    let deadline = match conn.head_deadline {
        Some(deadline) if partial => deadline,
        _ => since + cfg.keep_alive_timeout(),
    };
    let fd = conn.fd();
    let event = EpollEvent::new(
        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT,
        fd as u64,
    );
    let armed = if conn.registered {
        let mut event = event;
        epoll.modify(&conn.stream, &mut event)
    } else {
        epoll.add(&conn.stream, event)
    };
    if armed.is_err() {
        let _ = out
            .to_recycler
            .send(ToRecycler::Close(conn, CloseReason::PeerClosed, None));
        return;
    }
    conn.registered = true;
    out.meters.parked.fetch_add(1, Ordering::Relaxed);
    parked.insert(
        fd,
        Parked {
            conn,
            since,
            deadline,
            partial,
        },
    );
}

fn sweep(parked: &mut HashMap<RawFd, Parked>, now: Instant, out: &IdleOut) {
    let expired: Vec<RawFd> = parked
        .iter()
        .filter(|(_, p)| p.deadline <= now)
        .map(|(fd, _)| *fd)
        .collect();
    if expired.is_empty() {
        return;
    }
    let cfg = out.live.load();
    for fd in expired {
        let Some(entry) = parked.remove(&fd) else {
            continue;
        };
        out.meters.parked.fetch_sub(1, Ordering::Relaxed);
        let msg = if entry.partial {
            // The client began a request and did not finish it in time.
            match crate::farm::reply::error(entry.conn, None, 408, &cfg, Handler::FrontEnd) {
                ToRecycler::Close(conn, _, exchange) => {
                    ToRecycler::Close(conn, CloseReason::ReadTimeout, exchange)
                }
                other => other,
            }
        } else {
            ToRecycler::Close(entry.conn, CloseReason::IdleTimeout, None)
        };
        if out.to_recycler.send(msg).is_err() {
            return;
        }
    }
}

fn close_all(parked: &mut HashMap<RawFd, Parked>, out: &IdleOut, reason: CloseReason) {
    for (_, entry) in parked.drain() {
        out.meters.parked.fetch_sub(1, Ordering::Relaxed);
        let _ = out
            .to_recycler
            .send(ToRecycler::Close(entry.conn, reason, None));
    }
}
