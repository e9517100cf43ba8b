//! tls.pump: relays connections lent to plug-ins between the plug-in's end of a socketpair
//! and the client: through the connection's TLS session (HTTPS), so a plug-in (and a `wss://`
//! websocket) reads and writes plaintext on a descriptor as it does over plain HTTP; or
//! straight to the socket (plain HTTP) when the plug-in's answer is to be compressed. Either
//! way, a plug-in that allows compression has what it writes passed through an
//! `AnswerCoder` (`http/answer_coder.rs`) on its way to the client.
//! Instances: 1. In: ToTlsPump (via `TlsPumpSender`, which wakes it). Out: the plug-in's
//! `Home` (the connection goes on to the recycler from there). Stops: inbox disconnected;
//! every relay is then shut down, so plug-ins see their connections end.
//!
//! ogi.farm makes the socketpair before it lends such a connection (`prepare`) and hands
//! the session (if any), a duplicate of the socket and the pump's end here (`start`). The pump waits on
//! every relayed socket and socketpair in one epoll set and moves bytes only when one side
//! can take them, through buffers of at most `BUFFER` bytes a direction (the session's own
//! outgoing buffer is bounded by rustls), so no thread waits on any one connection.
//!
//! Closing: the client's close_notify or EOF shuts the socketpair's write side (the plug-in
//! reads EOF); a plug-in that shuts its side, or is timed out by the keeper, gets a
//! close_notify sent to the client (plain: the socket's write side shut); a broken socket shuts the socketpair both ways (the
//! plug-in's writes fail). When the plug-in gives the connection back, the pump sends what
//! it had written, collects what the plug-in left unread (a pipelined request), puts the
//! session back in the `Conn` and hands it to the plug-in's home; its state is then gone.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendError, TryRecvError};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use rustix::net::{recv, send, RecvFlags, SendFlags};

use crate::conn::{flush_session, Conn, ConnId, Socket};
use crate::http::answer_coder::AnswerCoder;
use crate::net::wake::{self, WakingInbox, WakingSender};
use crate::plugin_host::{Home, Lent, Returned};
use crate::protocol::{ToLog, ToTlsPump};
use crate::support::config::Live;
use crate::support::meters::Meters;

/// The sending end of the pump's inbox: sends, then wakes the pump if it sleeps.
pub type TlsPumpSender = WakingSender<ToTlsPump>;
/// The pump's end of its inbox.
pub type TlsPumpInbox = WakingInbox<ToTlsPump>;

pub fn channel() -> io::Result<(TlsPumpSender, TlsPumpInbox)> {
    wake::channel()
}

/// Most plaintext held a direction for one connection, beyond the session's own buffer.
const BUFFER: usize = 64 * 1024;
/// How often the deadlines of given-back connections are checked.
const TICK: Duration = Duration::from_millis(200);

/// The socketpair of a relayed connection lent to a plug-in, carried in its `Conn`.
pub struct Relay {
    /// The connection is HTTPS (its session goes to the pump).
    https: bool,
    /// Codes the plug-in's answer, until the pump takes it.
    coder: Option<AnswerCoder>,
    /// The plug-in's end: the descriptor in its handoff.
    plugin: UnixStream,
    /// The pump's end, until the pump takes it.
    pump: Option<UnixStream>,
    to_pump: TlsPumpSender,
}

impl Relay {
    pub fn plugin_fd(&self) -> RawFd {
        self.plugin.as_raw_fd()
    }

    pub fn https(&self) -> bool {
        self.https
    }
}

/// Makes the socketpair for a connection about to be lent to a plug-in: an HTTPS one, or
/// one whose answer `coder` codes. The session stays in the `Conn` (any answer written
/// before the lending still goes through it).
pub fn prepare(
    conn: &mut Conn,
    to_pump: &TlsPumpSender,
    coder: Option<AnswerCoder>,
) -> io::Result<()> {
    let (plugin, pump) = UnixStream::pair()?;
    plugin.set_nonblocking(true)?;
    pump.set_nonblocking(true)?;
    // Boxed: a relay is rare, and every `Conn` (idle ones too) carries the slot for it.
    conn.relay = Some(Box::new(Relay {
        https: conn.tls.is_some(),
        coder,
        plugin,
        pump: Some(pump),
        to_pump: to_pump.clone(),
    }));
    Ok(())
}

/// Hands the session of a prepared connection to the pump, just before it is lent; returns
/// the home the plug-in gives it back to (through the pump). On failure the connection is as
/// it was, session and all.
pub fn start(conn: &mut Conn, home: Arc<dyn Home>) -> Option<Arc<dyn Home>> {
    let relay = conn.relay.as_mut()?;
    if relay.pump.is_none() || relay.https != conn.tls.is_some() {
        return None;
    }
    let tcp = conn.stream.try_clone().ok()?;
    let (pump, session) = (relay.pump.take()?, conn.tls.take());
    let to_pump = relay.to_pump.clone();
    let coder = relay.coder.take();
    let pumped = Pumped::new(conn.id, tcp, session, pump, coder);
    match to_pump.send(ToTlsPump::Relay(Box::new(pumped))) {
        Ok(()) => Some(Arc::new(PumpHome {
            inner: home,
            to_pump,
        })),
        Err(SendError(msg)) => {
            if let ToTlsPump::Relay(pumped) = msg {
                conn.tls = pumped.session;
            }
            None
        }
    }
}

/// The home of a relayed connection: the pump first, then the plug-in's own home.
struct PumpHome {
    inner: Arc<dyn Home>,
    to_pump: TlsPumpSender,
}

impl Home for PumpHome {
    fn returned(&self, lent: Lent, returned: Returned) {
        let msg = ToTlsPump::Return {
            lent: Box::new(lent),
            returned,
            home: self.inner.clone(),
        };
        if let Err(SendError(ToTlsPump::Return { lent, returned, .. })) = self.to_pump.send(msg) {
            // The pump is gone (shutting down) with the session: the connection can only be
            // closed. Nothing written now can reach the client unencrypted.
            let _ = lent.conn.stream.shutdown(Shutdown::Both);
            self.inner.returned(*lent, returned);
        }
    }
}

/// One relayed connection.
pub struct Pumped {
    id: ConnId,
    tcp: TcpStream,
    /// The TLS session; `None` on plain HTTP, where bytes go straight to the socket.
    session: Option<Box<rustls::ServerConnection>>,
    /// The pump's end of the socketpair.
    relay: UnixStream,
    /// Codes the plug-in's answer on its way (a plug-in that allows compression).
    coder: Option<AnswerCoder>,
    /// Plaintext from the client, not yet taken by the plug-in's end.
    to_plugin: Vec<u8>,
    /// Plaintext from the plug-in (coded, with a coder), not yet taken by the session (or,
    /// plain, not yet sent).
    from_plugin: Vec<u8>,
    /// The client sent close_notify or closed its side.
    client_done: bool,
    /// The socketpair's write side is shut (the plug-in has read EOF or will).
    relay_shut: bool,
    /// The plug-in's side gave EOF.
    plugin_done: bool,
    /// close_notify is queued for the client.
    closing: bool,
    /// The write side of the socket is shut after close_notify.
    tcp_shut: bool,
    /// The socket failed or the session refused the client's bytes: the client is gone.
    broken: bool,
    /// Given back by the plug-in: finishing, then handed on.
    back: Option<Back>,
    /// What the epoll set holds for the socket and the pump's end now.
    armed: [Option<EpollFlags>; 2],
    /// Bytes moved so far, any way: a round of `step` that moves none ends it.
    moved: u64,
}

struct Back {
    lent: Box<Lent>,
    returned: Returned,
    home: Arc<dyn Home>,
    /// What the plug-in wrote must have gone by then, or the connection is closed.
    deadline: Instant,
}

impl Pumped {
    fn new(
        id: ConnId,
        tcp: TcpStream,
        session: Option<Box<rustls::ServerConnection>>,
        relay: UnixStream,
        coder: Option<AnswerCoder>,
    ) -> Pumped {
        Pumped {
            id,
            tcp,
            session,
            relay,
            coder,
            to_plugin: Vec::new(),
            from_plugin: Vec::new(),
            client_done: false,
            relay_shut: false,
            plugin_done: false,
            closing: false,
            tcp_shut: false,
            broken: false,
            back: None,
            armed: [None, None],
            moved: 0,
        }
    }

    /// Moves what can be moved now, both ways. True when the connection is finished with.
    fn step(&mut self, scratch: &mut [u8]) -> bool {
        loop {
            let before = self.progress();
            self.read_client(scratch);
            self.write_plugin();
            self.read_plugin(scratch);
            self.write_client();
            let after = self.progress();
            if self.broken || before == after {
                break;
            }
        }
        match &self.back {
            Some(back) => {
                self.broken
                    || (self.plugin_done && self.from_plugin.is_empty() && !self.client_pending())
                    || Instant::now() >= back.deadline
            }
            None => false,
        }
    }

    /// Bytes are waiting to go to the client: in the session, or (plain) not yet sent.
    fn client_pending(&self) -> bool {
        match &self.session {
            Some(session) => session.wants_write(),
            None => !self.from_plugin.is_empty(),
        }
    }

    /// Everything that changes when bytes move or a side ends: no change over a round means
    /// nothing more can move until the epoll set says so.
    fn progress(&self) -> (u64, bool, bool, bool, bool, bool) {
        (
            self.moved,
            self.client_pending(),
            self.client_done,
            self.plugin_done,
            self.relay_shut,
            self.closing,
        )
    }

    /// Reads what the client sent (decrypted over HTTPS) into `to_plugin`, up to `BUFFER`.
    fn read_client(&mut self, scratch: &mut [u8]) {
        let Some(session) = self.session.as_mut() else {
            return self.read_plain_client(scratch);
        };
        while !self.broken && self.to_plugin.len() < BUFFER {
            let room = (BUFFER - self.to_plugin.len()).min(scratch.len());
            match session.reader().read(&mut scratch[..room]) {
                Ok(0) => {
                    self.client_done = true;
                    return;
                }
                Ok(n) => {
                    self.to_plugin.extend_from_slice(&scratch[..n]);
                    self.moved += n as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.client_done = true;
                    return;
                }
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
            // Once given back, what is still in the socket belongs to the next request.
            if self.client_done || self.back.is_some() {
                return;
            }
            match session.read_tls(&mut Socket(&self.tcp)) {
                Ok(0) => {
                    self.client_done = true;
                    return;
                }
                Ok(n) => {
                    self.moved += n as u64;
                    if session.process_new_packets().is_err() {
                        // The session has queued an alert saying why.
                        let _ = flush_session(session, &self.tcp);
                        self.broken = true;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// Plain HTTP: reads what the client sent into `to_plugin`, up to `BUFFER`; once the
    /// connection is given back, what is still in the socket belongs to the next request.
    fn read_plain_client(&mut self, scratch: &mut [u8]) {
        while !self.broken && !self.client_done && self.back.is_none() {
            let room = BUFFER
                .saturating_sub(self.to_plugin.len())
                .min(scratch.len());
            if room == 0 {
                return;
            }
            match recv(&self.tcp, &mut scratch[..room], RecvFlags::DONTWAIT) {
                Ok(0) => self.client_done = true,
                Ok(n) => {
                    self.to_plugin.extend_from_slice(&scratch[..n]);
                    self.moved += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => self.broken = true,
            }
        }
    }

    /// Writes `to_plugin` into the socketpair; passes the client's EOF on once it is empty.
    fn write_plugin(&mut self) {
        while !self.to_plugin.is_empty() && !self.broken {
            match send(
                &self.relay,
                &self.to_plugin,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.to_plugin.drain(..n);
                    self.moved += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                // The plug-in's side no longer reads: what it did not take is dropped.
                Err(_) => self.to_plugin.clear(),
            }
        }
        if self.broken && !self.relay_shut {
            // The client is gone: the plug-in reads EOF and its writes fail.
            let _ = self.relay.shutdown(Shutdown::Both);
            self.relay_shut = true;
        } else if self.client_done
            && self.to_plugin.is_empty()
            && !self.relay_shut
            && self.back.is_none()
        {
            let _ = self.relay.shutdown(Shutdown::Write);
            self.relay_shut = true;
        }
    }

    /// Reads what the plug-in wrote and gives it to the session, as far as the session's
    /// buffer takes it.
    fn read_plugin(&mut self, scratch: &mut [u8]) {
        while !self.broken {
            if !self.from_plugin.is_empty() {
                // Plain, the bytes wait here until the socket takes them (`write_client`).
                let Some(session) = self.session.as_mut() else {
                    return;
                };
                match session.writer().write(&self.from_plugin) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        self.from_plugin.drain(..n);
                        self.moved += n as u64;
                    }
                }
                continue;
            }
            if self.plugin_done {
                return;
            }
            let want = scratch.len().min(BUFFER);
            match recv(&self.relay, &mut scratch[..want], RecvFlags::DONTWAIT) {
                Ok(0) => return self.plugin_ended(),
                Ok(n) => {
                    match self.coder.as_mut() {
                        Some(coder) => coder.feed(&scratch[..n], &mut self.from_plugin),
                        None => self.from_plugin.extend_from_slice(&scratch[..n]),
                    }
                    self.moved += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => return self.plugin_ended(),
            }
        }
    }

    /// The plug-in's side gave EOF: a coded answer delimited by it is finished.
    fn plugin_ended(&mut self) {
        self.plugin_done = true;
        if let Some(coder) = self.coder.as_mut() {
            coder.finish(&mut self.from_plugin);
        }
    }

    /// Sends what the session holds (plain: what the plug-in wrote); after the plug-in's side
    /// ended while still lent, ends the session with close_notify (plain: shuts the socket's
    /// write side).
    fn write_client(&mut self) {
        if self.broken {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return self.write_plain_client();
        };
        if self.plugin_done && self.from_plugin.is_empty() && self.back.is_none() && !self.closing {
            session.send_close_notify();
            self.closing = true;
        }
        match flush_session(session, &self.tcp) {
            Ok(true) if self.closing && !self.tcp_shut => {
                let _ = self.tcp.shutdown(Shutdown::Write);
                self.tcp_shut = true;
            }
            Ok(_) => {}
            Err(_) => self.broken = true,
        }
    }

    fn write_plain_client(&mut self) {
        while !self.from_plugin.is_empty() {
            match send(
                &self.tcp,
                &self.from_plugin,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => {
                    self.from_plugin.drain(..n);
                    self.moved += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
        if self.plugin_done && self.back.is_none() && !self.closing {
            self.closing = true;
            let _ = self.tcp.shutdown(Shutdown::Write);
            self.tcp_shut = true;
        }
    }

    /// What the epoll set should wait for: the socket, then the pump's end.
    fn interest(&self) -> [EpollFlags; 2] {
        let mut tcp = EpollFlags::empty();
        let mut relay = EpollFlags::empty();
        if self.broken {
            return [tcp, relay];
        }
        if !self.client_done && self.back.is_none() && self.to_plugin.len() < BUFFER {
            tcp |= EpollFlags::EPOLLIN;
        }
        if self.client_pending() {
            tcp |= EpollFlags::EPOLLOUT;
        }
        if !self.plugin_done && self.from_plugin.is_empty() {
            relay |= EpollFlags::EPOLLIN;
        }
        if !self.to_plugin.is_empty() {
            relay |= EpollFlags::EPOLLOUT;
        }
        [tcp, relay]
    }

    /// Hands the connection on: the session back in its `Conn`, with what the plug-in left
    /// unread after what it read past its request.
    fn finish(mut self, back: Back, scratch: &mut [u8]) -> bool {
        let Back {
            mut lent,
            mut returned,
            home,
            ..
        } = back;
        let finished_cleanly = !self.broken
            && self.plugin_done
            && self.from_plugin.is_empty()
            && !self.client_pending();
        if finished_cleanly && !self.client_done && !self.closing {
            // Sent into the socketpair but not read by the plug-in, then held here, then
            // still inside the session: in the order the client sent them.
            if let Some(relay) = lent.conn.relay.as_ref() {
                loop {
                    match recv(&relay.plugin, scratch, RecvFlags::DONTWAIT) {
                        Ok(0) => break,
                        Ok(n) => returned.leftover.extend_from_slice(&scratch[..n]),
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => break,
                    }
                }
            }
            returned.leftover.append(&mut self.to_plugin);
            if let Some(session) = self.session.as_mut() {
                while let Ok(n) = session.reader().read(scratch) {
                    if n == 0 {
                        break;
                    }
                    returned.leftover.extend_from_slice(&scratch[..n]);
                }
            }
        } else {
            returned.keep_alive = false;
            if !finished_cleanly {
                let _ = self.tcp.shutdown(Shutdown::Both);
            }
        }
        let coded = self.coder.as_ref().is_some_and(|c| c.coded());
        if self.coder.as_ref().is_some_and(|c| !c.keeps_alive()) {
            // The coded body ended with the connection (HTTP/1.0), or was cut short.
            returned.keep_alive = false;
        }
        lent.conn.relay = None;
        lent.conn.tls = self.session;
        home.returned(*lent, returned);
        coded
    }
}

/// The pump's outputs.
pub struct TlsPumpOut {
    pub live: Live,
    pub meters: Arc<Meters>,
    pub to_log: crossbeam_channel::Sender<ToLog>,
}

pub fn run(inbox: TlsPumpInbox, out: TlsPumpOut) {
    let Ok(epoll) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
        return;
    };
    if inbox.register(&epoll).is_err() {
        return;
    }
    let mut pump = Pump {
        epoll,
        relays: HashMap::new(),
        next_key: 0,
        scratch: vec![0u8; 16 * 1024],
        out,
    };
    let mut events = vec![EpollEvent::empty(); 256];
    let mut next_tick = Instant::now() + TICK;
    loop {
        loop {
            match inbox.try_recv() {
                Ok(msg) => pump.take(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return pump.stop(),
            }
        }
        let ready = inbox.wait(&pump.epoll, &mut events, next_tick);
        for event in &events[..ready] {
            pump.ready(event.data() >> 1);
        }
        let now = Instant::now();
        if now >= next_tick {
            let due: Vec<u64> = pump
                .relays
                .iter()
                .filter(|(_, p)| p.back.as_ref().is_some_and(|b| b.deadline <= now))
                .map(|(key, _)| *key)
                .collect();
            for key in due {
                pump.ready(key);
            }
            next_tick = now + TICK;
        }
    }
}

struct Pump {
    epoll: Epoll,
    relays: HashMap<u64, Pumped>,
    next_key: u64,
    scratch: Vec<u8>,
    out: TlsPumpOut,
}

impl Pump {
    fn take(&mut self, msg: ToTlsPump) {
        match msg {
            ToTlsPump::Relay(pumped) => {
                let key = self.next_key;
                self.next_key = self.next_key.wrapping_add(1) & (u64::MAX >> 1);
                self.relays.insert(key, *pumped);
                self.out.meters.tls_relays.fetch_add(1, Ordering::Relaxed);
                self.ready(key);
            }
            ToTlsPump::Return {
                lent,
                returned,
                home,
            } => {
                let id = lent.conn.id;
                let key = self
                    .relays
                    .iter()
                    .find(|(_, p)| p.id == id && p.back.is_none())
                    .map(|(key, _)| *key);
                let Some(key) = key else {
                    // Never relayed: nothing of it is here.
                    return home.returned(*lent, returned);
                };
                if let Some(relay) = lent.conn.relay.as_ref() {
                    // Everything the plug-in wrote is now in the socketpair: reading to EOF
                    // gets all of it.
                    let _ = relay.plugin.shutdown(Shutdown::Write);
                }
                let cfg = self.out.live.load();
                if let Some(p) = self.relays.get_mut(&key) {
                    p.back = Some(Back {
                        lent,
                        returned,
                        home,
                        deadline: Instant::now() + cfg.send_timeout(),
                    });
                }
                self.ready(key);
            }
        }
    }

    /// Moves bytes on relay `key`; finishes it when it is done.
    fn ready(&mut self, key: u64) {
        let Some(p) = self.relays.get_mut(&key) else {
            return;
        };
        let done = p.step(&mut self.scratch);
        if !done {
            let [tcp, relay] = p.interest();
            arm(&self.epoll, &p.tcp, key << 1, tcp, &mut p.armed[0]);
            arm(
                &self.epoll,
                &p.relay,
                (key << 1) | 1,
                relay,
                &mut p.armed[1],
            );
            return;
        }
        let Some(mut p) = self.relays.remove(&key) else {
            return;
        };
        self.out.meters.tls_relays.fetch_sub(1, Ordering::Relaxed);
        if p.armed[0].take().is_some() {
            let _ = self.epoll.delete(&p.tcp);
        }
        if p.armed[1].take().is_some() {
            let _ = self.epoll.delete(&p.relay);
        }
        if let Some(back) = p.back.take() {
            if Instant::now() >= back.deadline && !p.broken && p.client_pending() {
                let _ = self.out.to_log.try_send(ToLog::Error(format!(
                    "tls.pump: conn {}: the client took too long to read a plug-in's answer; closed",
                    p.id
                )));
            }
            if p.finish(back, &mut self.scratch) {
                self.out
                    .meters
                    .plugin_answers_coded
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Shutting down: every relay is cut, so plug-ins see their connections end; connections
    /// already given back are handed on (to be closed).
    fn stop(mut self) {
        for (_, mut p) in self.relays.drain() {
            self.out.meters.tls_relays.fetch_sub(1, Ordering::Relaxed);
            let _ = p.relay.shutdown(Shutdown::Both);
            let _ = p.tcp.shutdown(Shutdown::Both);
            p.broken = true;
            if let Some(back) = p.back.take() {
                let _ = p.finish(back, &mut self.scratch);
            }
        }
    }
}

/// Puts `fd` in the epoll set for `want` (level-triggered), changes it, or takes it out when
/// nothing is wanted (HUP and ERR are reported whatever is asked, so a side with nothing to
/// do must not stay in the set).
fn arm(
    epoll: &Epoll,
    fd: &impl AsFd,
    token: u64,
    want: EpollFlags,
    armed: &mut Option<EpollFlags>,
) {
    if *armed == Some(want) || (want.is_empty() && armed.is_none()) {
        return;
    }
    let result = match (*armed, want.is_empty()) {
        (Some(_), true) => epoll.delete(fd),
        (Some(_), false) => epoll.modify(fd, &mut EpollEvent::new(want, token)),
        (None, _) => epoll.add(fd, EpollEvent::new(want, token)),
    };
    *armed = match result {
        Ok(()) if !want.is_empty() => Some(want),
        _ => None,
    };
}
