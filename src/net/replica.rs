//! replica: one copy of the per-request network per core (its thread pinned to that core with
//! `pin_cores`). Instances: `cores` (default: one per available core). In: its share of new connections
//! from the shared listener (EPOLLEXCLUSIVE, so an idle replica is woken first), its own
//! parked connections (epoll, edge-triggered), ToReplica (its connections coming home from
//! cgi, plugin, stats and send.pool, and `Flush`). Out: ToCgi, ToPlugin, ToStats, ToSendPool,
//! ToCacheControl, ToLog. Stops: on drain (after closing what it holds) or when its inbox
//! disconnects.
//!
//! Inside, the stages of the paper's network run as processes scheduled on one core (as
//! KRoC's CCSP runs communicating processes on one core): acceptor → idle.pool → front-end
//! → cache lookup → static → recycler → idle.pool, each a call that hands the `Conn` on by
//! value, so a hand-off costs no wake-up and no cross-core cache miss. A connection lives its
//! whole life on its replica; work that may block (CGI, plug-ins, status pages, slow readers)
//! leaves it over a channel and comes home through the recycler. Bookkeeping that needs no
//! answer (stats records, log lines, cache hits) is batched and sent at most a few times a
//! second, so it wakes nobody per request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendError, Sender, TryRecvError, TrySendError};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::back::recycler::Books;
use crate::cache::TableBoard;
use crate::conn::Conn;
use crate::farm::front_end::{self, Head, Route};
use crate::farm::reply;
use crate::farm::static_file::{self, Done, Worker};
use crate::http::{Body, Method, Request};
use crate::net::acceptor::{Accepted, Acceptor, Listening};
use crate::net::send_pool::SendPoolSender;
use crate::net::wake::{WakingInbox, WakingSender};
use crate::protocol::{
    CloseReason, Handler, ToCacheControl, ToCgi, ToLog, ToPlugin, ToRecycler, ToReplica,
    ToSendPool, ToStatic, ToStats,
};
use crate::support::config::{Config, Live};
use crate::support::meters::{park_slot, Meters, ReplicaGauge};

/// The sending end of a replica's inbox: sends, then wakes the replica if it is asleep.
pub type ReplicaSender = WakingSender<ToReplica>;
/// A replica's end of its inbox.
pub type ReplicaInbox = WakingInbox<ToReplica>;

/// Creates a replica's inbox.
pub fn channel() -> std::io::Result<(ReplicaSender, ReplicaInbox)> {
    crate::net::wake::channel()
}

/// A replica's inputs besides its inbox, and its outputs.
pub struct ReplicaOut {
    /// Its number: `Conn::replica` of every connection it accepts.
    pub index: usize,
    /// How many replicas there are (connection ids are unique across them).
    pub replicas: usize,
    /// The core its thread is pinned to, if any.
    pub cpu: Option<usize>,
    pub listeners: Arc<Vec<Listening>>,
    /// Every replica's inbox (this one's too), by index: new connections go to the least
    /// loaded.
    pub to_replicas: Vec<ReplicaSender>,
    pub to_cgi: Sender<ToCgi>,
    /// Compressed streams of files too large for the cache (they wait on their client).
    pub to_static: Sender<ToStatic>,
    pub to_plugin: Sender<ToPlugin>,
    pub to_stats: Sender<ToStats>,
    pub to_send_pool: SendPoolSender,
    pub to_cache_control: Sender<ToCacheControl>,
    pub to_log: Sender<ToLog>,
    /// What is cached now, published by cache.control.
    pub cache: TableBoard,
    pub live: Live,
    pub meters: Arc<Meters>,
}

/// Tokens of the listening sockets in the epoll set: this bit and the listener's index (slot
/// tokens never have it: their generation is kept below 2^31).
const LISTENER_TOKEN: u64 = 1 << 63;
/// Generations of a slot wrap below this, so a slot's token never looks like a listener's
/// or an h2 session's (`h2::H2_TOKEN`).
const GENERATIONS: u32 = 1 << 30;
/// How often parked connections are checked for their deadlines, and batches sent.
const TICK: Duration = Duration::from_millis(100);
/// On drain, how long an idle connection is kept for a request already on its way (answered
/// with `Connection: close`) before it is closed.
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// Most connections taken from the listener per wake-up, so parked ones are not starved.
const ACCEPT_BURST: usize = 64;

/// A connection waiting for its next request (or the rest of its head).
struct Parked {
    conn: Conn,
    since: Instant,
    deadline: Instant,
    /// The head was partial when parked: a timeout is answered 408.
    partial: bool,
}

/// One place in the epoll set. A connection keeps its slot while it is on this replica; the
/// generation changes when the slot is reused, so a late event for an old owner is ignored.
#[derive(Default)]
struct Slot {
    generation: u32,
    parked: Option<Parked>,
    in_use: bool,
}

pub fn run(inbox: ReplicaInbox, out: ReplicaOut) {
    if let Some(cpu) = out.cpu {
        crate::par::pin_to_cpu(cpu);
    }
    let Ok(epoll) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
        return;
    };
    if inbox.register(&epoll).is_err() {
        return;
    }
    let listening: Vec<bool> = out
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            epoll
                .add(
                    &l.socket,
                    EpollEvent::new(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE,
                        LISTENER_TOKEN | i as u64,
                    ),
                )
                .is_ok()
        })
        .collect();
    let mut replica = Replica {
        gauge: out.meters.replica(out.index),
        acceptor: Acceptor::new(out.index as u64, out.replicas as u64),
        worker: Worker::new(),
        books: Books::new(out.to_stats.clone(), out.to_log.clone()),
        buf: Vec::with_capacity(16 * 1024),
        slots: Vec::new(),
        free: Vec::new(),
        parked: 0,
        listening,
        draining: false,
        h2: crate::h2::Sessions::default(),
        epoll,
        out,
    };
    let mut events = vec![EpollEvent::empty(); 256];
    let mut next_tick = Instant::now() + TICK;
    loop {
        loop {
            match inbox.try_recv() {
                Ok(msg) => replica.take(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return replica.stop(),
            }
        }
        if replica.out.meters.draining() {
            replica.drain();
            if replica.parked == 0 && replica.h2.open == 0 {
                return replica.stop();
            }
        }
        let until = replica
            .books
            .due()
            .map_or(next_tick, |due| due.min(next_tick));
        let ready = inbox.wait(&replica.epoll, &mut events, until);
        for event in &events[..ready] {
            if event.data() & LISTENER_TOKEN != 0 {
                replica.accept((event.data() & !LISTENER_TOKEN) as usize);
            } else if event.data() & crate::h2::H2_TOKEN != 0 {
                if let Some(session) = replica.h2.event(event.data()) {
                    replica.run_session(session);
                }
            } else {
                replica.readable(event.data());
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            replica.tick(now);
            next_tick = now + TICK;
        }
        replica.books.send_due(now);
    }
}

/// The replica's state: its stages' state side by side.
struct Replica {
    gauge: Arc<ReplicaGauge>,
    acceptor: Acceptor,
    worker: Worker,
    books: Books,
    /// The front end's head buffer.
    buf: Vec<u8>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    parked: usize,
    /// Which listeners are still in the epoll set.
    listening: Vec<bool>,
    /// The server is draining and this replica has stopped accepting.
    draining: bool,
    /// The h2 sessions of its HTTP/2 connections (`h2/`).
    h2: crate::h2::Sessions,
    epoll: Epoll,
    out: ReplicaOut,
}

impl Replica {
    fn take(&mut self, msg: ToReplica) {
        match msg {
            ToReplica::Adopt(conn) => {
                let cfg = self.out.live.load();
                self.adopt(conn, &cfg);
            }
            ToReplica::Resume(mut conn) => {
                // Events that came while it was away were not seen: look at the socket now.
                conn.read_dry = false;
                self.serve(conn);
            }
            ToReplica::Flush(ticket) => {
                self.books.send_records();
                let _ = self.out.to_stats.try_send(ToStats::Flushed(ticket));
            }
        }
    }

    /// acceptor: takes what listener `which` holds, up to a burst.
    fn accept(&mut self, which: usize) {
        if !self.listening.get(which).copied().unwrap_or(false) {
            return;
        }
        let listeners = self.out.listeners.clone();
        let Some(listening) = listeners.get(which) else {
            return;
        };
        for _ in 0..ACCEPT_BURST {
            let cfg = self.out.live.load();
            match self
                .acceptor
                .accept(listening, &cfg, &self.out.meters, &self.out.to_log)
            {
                Accepted::Conn(conn) => {
                    // The connection goes to the busiest replica still within
                    // `spread_slack` of the least busy: a few connections share a core
                    // that stays awake, many spread over all, idle ones do not count.
                    let home = self.out.meters.home_for(
                        self.out.index,
                        cfg.spread_slack,
                        cfg.spread_idle_ms,
                    );
                    let moved = match self.out.to_replicas.get(home) {
                        Some(to_home) if home != self.out.index => {
                            if let Some(replica) = self.out.meters.replicas.get(home) {
                                replica.open.fetch_add(1, Ordering::Relaxed);
                            }
                            match to_home.send(ToReplica::Adopt(conn)) {
                                Ok(()) => None,
                                Err(SendError(ToReplica::Adopt(conn)))
                                | Err(SendError(ToReplica::Resume(conn))) => {
                                    if let Some(replica) = self.out.meters.replicas.get(home) {
                                        replica.open.fetch_sub(1, Ordering::Relaxed);
                                    }
                                    Some(conn)
                                }
                                Err(SendError(ToReplica::Flush(_))) => None,
                            }
                        }
                        _ => Some(conn),
                    };
                    if let Some(conn) = moved {
                        self.gauge.open.fetch_add(1, Ordering::Relaxed);
                        self.adopt(conn, &cfg);
                    }
                }
                Accepted::Again => return,
                Accepted::Closed => {
                    let _ = self.epoll.delete(&listening.socket);
                    self.listening[which] = false;
                    return;
                }
            }
        }
    }

    /// Takes a new connection as its own for the rest of its life (its `open` is counted).
    fn adopt(&mut self, mut conn: Conn, cfg: &Config) {
        conn.replica = self.out.index;
        self.gauge.accepted.fetch_add(1, Ordering::Relaxed);
        if conn.tls.is_some() {
            // The handshake, from the first byte on, must be done within the head's time.
            conn.head_deadline = Some(conn.accepted + cfg.header_timeout());
        }
        // Most clients send their request a moment after connecting: wait for it in the
        // epoll set rather than try a read that would find nothing.
        self.park(conn, cfg);
    }

    /// idle.pool: a parked connection became readable (or its peer hung up).
    fn readable(&mut self, token: u64) {
        let index = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        let Some(entry) = slot.parked.take() else {
            return;
        };
        self.parked -= 1;
        self.gauge.parked.store(self.parked, Ordering::Relaxed);
        self.gauge.unparked_from(park_slot(entry.since));
        let mut conn = entry.conn;
        if !entry.partial && conn.requests > 0 {
            conn.keep_alive_wait = Some(entry.since.elapsed());
        }
        conn.read_dry = false;
        self.serve(conn);
    }

    /// front-end → handler → recycler, for as long as the connection has a request to read.
    fn serve(&mut self, mut conn: Conn) {
        loop {
            let cfg = self.out.live.load();
            let next = match front_end::read_head(conn, &mut self.buf, &cfg) {
                Head::Park(conn) => return self.park(conn, &cfg),
                Head::Done(msg) => self.recycle(msg, &cfg),
                Head::Refused(conn, why) => {
                    if conn.tls_handshaking() {
                        self.out
                            .meters
                            .tls_failed(conn.tls_refused.unwrap_or("other"));
                    }
                    let _ = self.out.to_log.try_send(ToLog::Error(why));
                    self.close(conn);
                    None
                }
                Head::H2(mut conn) => {
                    if conn.tls.is_some() {
                        self.count_handshake(&conn);
                    }
                    self.detach(&mut conn);
                    match self.h2.start(conn, &self.epoll) {
                        Ok(session) => {
                            self.gauge
                                .h2_sessions
                                .store(self.h2.open, Ordering::Relaxed);
                            self.gauge.h2_sessions_total.fetch_add(1, Ordering::Relaxed);
                            self.run_session(session);
                        }
                        Err(conn) => self.close(*conn),
                    }
                    None
                }
                Head::Request(conn, req) => {
                    if conn.requests == 0 && conn.tls.is_some() {
                        self.count_handshake(&conn);
                    }
                    self.answer(conn, *req, &cfg)
                }
            };
            match next {
                Some(more) => conn = more,
                None => return,
            }
        }
    }

    /// h2 session `index` runs: the stream records it makes are served here (front end and
    /// on, like any connection), then it frames their answers, until it has nothing new.
    fn run_session(&mut self, index: usize) {
        loop {
            let cfg = self.out.live.load();
            let ctx = crate::h2::Ctx {
                epoll: &self.epoll,
                replica: self.out.index,
                max_body_bytes: cfg.max_body_bytes,
                meters: &self.out.meters,
                gauge: &self.gauge,
                draining: self.draining,
            };
            let (streams, ended) = self.h2.pump(index, &ctx);
            if let Some(conn) = ended {
                self.gauge
                    .h2_sessions
                    .store(self.h2.open, Ordering::Relaxed);
                self.close(conn);
            }
            if streams.is_empty() {
                return;
            }
            for stream in streams {
                self.serve(stream);
            }
        }
    }

    /// An HTTPS connection's first request: its handshake is complete.
    fn count_handshake(&self, conn: &Conn) {
        if let Some(tls) = conn.tls.as_deref() {
            self.out.meters.tls_completed(tls);
        }
    }

    /// Routes a parsed request: static and cached files are answered here; the rest leaves
    /// on a channel. Returns the connection when it may carry another request now.
    fn answer(&mut self, conn: Conn, mut req: Request, cfg: &Config) -> Option<Conn> {
        self.gauge.requests.fetch_add(1, Ordering::Relaxed);
        req.http2 = conn.via_h2.is_some();
        if self.draining || conn.requests + 1 >= cfg.max_keep_alive_requests {
            // The answer says `Connection: close`, so the client goes elsewhere for the next.
            req.keep_alive = false;
        }
        if let Some(key_authorization) = crate::support::acme::answer(&req.path, cfg) {
            let msg = reply::text(conn, &req, &key_authorization, cfg);
            return self.recycle(msg, cfg);
        }
        if conn.is_https() {
            req.hsts_max_age_secs = cfg.tls.hsts_max_age_secs;
        } else if cfg.tls.redirect_http
            && cfg.tls.enabled()
            && !req.path.starts_with(reply::ACME_CHALLENGE)
        {
            let msg = reply::to_https(conn, &req, cfg);
            return self.recycle(msg, cfg);
        }
        if let Body::Length(n) = req.body {
            if n > cfg.max_body_bytes {
                let msg = reply::error(conn, Some(&req), 413, cfg, Handler::FrontEnd);
                return self.recycle(msg, cfg);
            }
        }
        crate::par::start_job();
        let (conn, mut req, route) = match crate::farm::gate::admit(conn, req, cfg) {
            Ok(admitted) => admitted,
            Err(answered) => return self.recycle(answered, cfg),
        };
        let done = match route {
            Route::Static => {
                let mut conn = conn;
                static_file::skip_buffered_body(&mut conn, &mut req);
                let table = self.out.cache.load();
                let cacheable = matches!(req.method, Method::Get | Method::Head);
                let entry =
                    crate::site::of(&req, cfg).with_cache_key(&req.path, |key| table.get(key));
                match entry {
                    Some(entry) if cacheable => {
                        self.worker
                            .serve_cached(conn, &req, cfg, entry, &self.out.to_cache_control)
                    }
                    _ => self.worker.serve(conn, &req, cfg),
                }
            }
            route => return self.send_away(conn, req, route, cfg),
        };
        match done {
            Done::Recycle(msg) => self.recycle(msg, cfg),
            Done::Defer(mut unsent) => {
                self.detach(&mut unsent.conn);
                if let Err(SendError(ToSendPool::Finish(unsent))) =
                    self.out.to_send_pool.send(ToSendPool::Finish(unsent))
                {
                    self.close(unsent.conn);
                }
                None
            }
            // A compressed stream paced by its client runs off the core, in the static farm.
            Done::Farm(job) => {
                let (mut conn, req) = *job;
                self.detach(&mut conn);
                let refused = match self.out.to_static.try_send(ToStatic::File { conn, req }) {
                    Ok(()) => return None,
                    Err(e) => e.into_inner(),
                };
                let (ToStatic::File { conn, req } | ToStatic::Cached { conn, req, .. }) = refused;
                let msg = reply::error_with(
                    conn,
                    Some(&req),
                    503,
                    cfg,
                    Handler::Static,
                    &[("Retry-After", "1")],
                );
                self.recycle(msg, cfg)
            }
        }
    }

    /// Hands a request to the process that answers it off this core.
    fn send_away(
        &mut self,
        mut conn: Conn,
        req: Request,
        route: Route,
        cfg: &Config,
    ) -> Option<Conn> {
        self.detach(&mut conn);
        let refused = match route {
            Route::Static => return Some(conn),
            Route::Stats(format) => {
                match self.out.to_stats.send(ToStats::Page { conn, req, format }) {
                    Ok(()) => None,
                    Err(SendError(orphan)) => {
                        if let ToStats::Page { conn, .. } = orphan {
                            self.close(conn);
                        }
                        return None;
                    }
                }
            }
            Route::Cgi => match self.out.to_cgi.try_send(ToCgi::Run { conn, req }) {
                Ok(()) => None,
                Err(TrySendError::Full(ToCgi::Run { conn, req }))
                | Err(TrySendError::Disconnected(ToCgi::Run { conn, req })) => Some((conn, req)),
            },
            Route::Plugin(name) => {
                match self
                    .out
                    .to_plugin
                    .try_send(ToPlugin::Call { conn, req, name })
                {
                    Ok(()) => None,
                    Err(TrySendError::Full(ToPlugin::Call { conn, req, .. }))
                    | Err(TrySendError::Disconnected(ToPlugin::Call { conn, req, .. })) => {
                        Some((conn, req))
                    }
                }
            }
        };
        match refused {
            None => None,
            Some((conn, req)) => {
                let msg = reply::error_with(
                    conn,
                    Some(&req),
                    503,
                    cfg,
                    Handler::FrontEnd,
                    &[("Retry-After", "1")],
                );
                self.recycle(msg, cfg)
            }
        }
    }

    /// recycler: books the exchange, then keeps the connection for its next request or
    /// closes it. Returns the connection when a request may be waiting on it now.
    fn recycle(&mut self, msg: ToRecycler, cfg: &Config) -> Option<Conn> {
        match msg {
            ToRecycler::KeepAlive(conn, exchange) => {
                let conn = self.books.record(conn, exchange, cfg);
                if conn.requests >= cfg.max_keep_alive_requests {
                    self.close(conn);
                    return None;
                }
                // Draining or not, a connection whose answer promised more is kept for its
                // next request (answered with `Connection: close` while draining): closing it
                // now could cut a request already on its way.
                if conn.unread.is_empty() && conn.read_dry {
                    // Edge-triggered: the last read emptied the socket, so the next byte
                    // to arrive raises a new event.
                    self.park(conn, cfg);
                    return None;
                }
                Some(conn)
            }
            ToRecycler::Close(conn, _reason, exchange) => {
                let conn = match exchange {
                    Some(exchange) => self.books.record(conn, exchange, cfg),
                    None => conn,
                };
                self.close(conn);
                None
            }
            ToRecycler::Flush(ticket) => {
                self.take(ToReplica::Flush(ticket));
                None
            }
        }
    }

    /// idle.pool: waits for the connection's next request in the epoll set.
    fn park(&mut self, mut conn: Conn, cfg: &Config) {
        let slot = match conn.slot {
            Some(slot) => slot,
            None => match self.register(&conn) {
                Some(slot) => {
                    conn.slot = Some(slot);
                    conn.registered = true;
                    slot
                }
                None => return self.close(conn),
            },
        };
        let partial = !conn.unread.is_empty() || conn.tls_handshaking();
        let since = Instant::now();
        let mut deadline = match conn.head_deadline {
            Some(deadline) if partial => deadline,
            _ => since + cfg.keep_alive_timeout(),
        };
        if self.draining && !partial {
            deadline = deadline.min(since + DRAIN_IDLE);
        }
        if let Some(place) = self.slots.get_mut(slot as usize) {
            place.parked = Some(Parked {
                conn,
                since,
                deadline,
                partial,
            });
            self.parked += 1;
            self.gauge.parked.store(self.parked, Ordering::Relaxed);
            self.gauge.parked_in(park_slot(since));
        }
    }

    /// Gives a connection a slot and puts its socket in the epoll set (once for its life
    /// on this replica: edge-triggered, never re-armed).
    fn register(&mut self, conn: &Conn) -> Option<u32> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = (slot.generation + 1) % GENERATIONS;
        slot.in_use = true;
        let token = (u64::from(slot.generation) << 32) | u64::from(index);
        let event = EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET,
            token,
        );
        let armed = if conn.registered {
            let mut event = event;
            self.epoll.modify(&conn.stream, &mut event)
        } else {
            self.epoll.add(&conn.stream, event)
        };
        if armed.is_err() {
            self.release(index);
            return None;
        }
        Some(index)
    }

    fn release(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.in_use = false;
            slot.parked = None;
            slot.generation = (slot.generation + 1) % GENERATIONS;
            self.free.push(index);
        }
    }

    /// The connection leaves this replica for a while (CGI, plug-in, stats, send.pool): its
    /// slot is freed (events meanwhile are ignored), and it is given a new one when it comes
    /// home.
    fn detach(&mut self, conn: &mut Conn) {
        if let Some(slot) = conn.slot.take() {
            self.release(slot);
        }
    }

    fn close(&mut self, mut conn: Conn) {
        if let Some(slot) = conn.slot {
            self.release(slot);
        }
        conn.close_tls();
        self.out.meters.closed(conn.replica);
        if conn.via_h2.is_some() {
            // An HTTP/2 stream's record: its socket pair may serve the session's next stream.
            return self.h2.give_back(conn);
        }
        drop(conn);
    }

    /// Deadlines of parked connections, and the batches due.
    fn tick(&mut self, now: Instant) {
        let cfg = self.out.live.load();
        for index in 0..self.slots.len() {
            let expired = self.slots[index]
                .parked
                .as_ref()
                .is_some_and(|p| p.deadline <= now);
            if !expired {
                continue;
            }
            let Some(entry) = self.slots[index].parked.take() else {
                continue;
            };
            self.parked -= 1;
            self.gauge.unparked_from(park_slot(entry.since));
            if entry.partial && entry.conn.tls_handshaking() {
                self.out.meters.tls_failed("timeout");
                // No HTTP answer can reach a client that has not finished its handshake.
                let _ = self.out.to_log.try_send(ToLog::Error(format!(
                    "tls: {}: handshake not finished within header_timeout_secs",
                    entry.conn.peer
                )));
                self.close(entry.conn);
            } else if entry.partial {
                // The client began a request and did not finish it in time.
                let msg = match reply::error(entry.conn, None, 408, &cfg, Handler::FrontEnd) {
                    ToRecycler::Close(conn, _, exchange) => {
                        ToRecycler::Close(conn, CloseReason::ReadTimeout, exchange)
                    }
                    other => other,
                };
                if let Some(conn) = self.recycle(msg, &cfg) {
                    self.close(conn);
                }
            } else {
                self.close(entry.conn);
            }
        }
        self.gauge.parked.store(self.parked, Ordering::Relaxed);
        if self.h2.open > 0 {
            let ctx = crate::h2::Ctx {
                epoll: &self.epoll,
                replica: self.out.index,
                max_body_bytes: cfg.max_body_bytes,
                meters: &self.out.meters,
                gauge: &self.gauge,
                draining: self.draining,
            };
            for conn in self.h2.tick(now, cfg.keep_alive_timeout(), &ctx) {
                self.close(conn);
            }
            self.gauge
                .h2_sessions
                .store(self.h2.open, Ordering::Relaxed);
        }
        self.worker.send_hits(&self.out.to_cache_control);
        self.books.send_access();
    }

    /// The server is draining: stop accepting (the listening sockets stay open for a new binary
    /// or the service manager), and give each parked connection a moment for a request already
    /// sent, which is answered with `Connection: close`.
    fn drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        for (listening, on) in self.out.listeners.iter().zip(self.listening.iter_mut()) {
            if *on {
                let _ = self.epoll.delete(&listening.socket);
                *on = false;
            }
        }
        let soon = Instant::now() + DRAIN_IDLE;
        for slot in &mut self.slots {
            if let Some(parked) = slot.parked.as_mut().filter(|p| !p.partial) {
                parked.deadline = parked.deadline.min(soon);
            }
        }
        // Each h2 session sends GOAWAY; its streams in flight finish.
        for session in self.h2.indexes() {
            self.run_session(session);
        }
    }

    /// On shutdown: stop accepting, close every parked connection, send the batches.
    fn stop(mut self) {
        for (listening, on) in self.out.listeners.iter().zip(&self.listening) {
            if *on {
                let _ = self.epoll.delete(&listening.socket);
            }
        }
        for index in 0..self.slots.len() {
            if let Some(entry) = self.slots[index].parked.take() {
                self.parked -= 1;
                self.gauge.unparked_from(park_slot(entry.since));
                self.close(entry.conn);
            }
        }
        self.gauge.parked.store(0, Ordering::Relaxed);
        let ctx = crate::h2::Ctx {
            epoll: &self.epoll,
            replica: self.out.index,
            max_body_bytes: 0,
            meters: &self.out.meters,
            gauge: &self.gauge,
            draining: true,
        };
        for conn in self.h2.close_all(&ctx) {
            self.close(conn);
        }
        self.worker.send_hits(&self.out.to_cache_control);
        self.books.send_records();
        self.books.send_access();
    }
}
