//! IRC frontend (the paper's `irc.interface` with its `irc.client`s folded in as records):
//! the game connects to an IRC server as a user (`occgam` by default), players play by
//! private message, and what they are shown comes back by private message.
//!
//! Instances: 1 (when `[game.irc]` is configured), plus a reader per connection.
//! In: lines from the server (via the reader), `(ClientId, ToFrontend)` from the IRC
//! players' user processes, a stop signal. Out: lines to the server, Login to the gate,
//! Command to the players' user processes (`try_send`).
//! Stops: on its stop signal (after sending `QUIT`).
//!
//! It answers `PING` at once, paces everything else with a token bucket (`burst` lines, then
//! one per `send_interval_ms`), keeps at most `PLAYER_QUEUE` lines per player (dropping the
//! oldest and saying how many were skipped), and reconnects with doubling back-off. The
//! world never waits for it: user processes `try_send` to it, and a full inbox loses events.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, Receiver, Sender, TrySendError};

use crate::protocol::{
    ClientId, Command, FrontendEnd, LoginError, LoginMode, Origin, Session, ToFrontend,
};
use crate::settings::IrcSettings;
use crate::world::{GateHandle, Logger};

/// Lines that may wait for one player before the oldest are dropped.
pub const PLAYER_QUEUE: usize = 30;
/// Events from the players' user processes that may wait for this process.
const EVENT_QUEUE: usize = 4096;
/// Longest text of one message, in bytes (IRC lines are at most 512 with the prefix).
const MAX_TEXT_BYTES: usize = 400;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence from the server after which the game pings it, and after which it gives up.
const QUIET_PING: Duration = Duration::from_secs(120);
const QUIET_DROP: Duration = Duration::from_secs(240);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A player who has typed nothing for this long is taken out of the world.
const PLAYER_IDLE: Duration = Duration::from_secs(30 * 60);
const TICK: Duration = Duration::from_millis(20);

/// One IRC protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcMessage {
    pub prefix: Option<String>,
    pub command: String,
    pub params: Vec<String>,
}

impl IrcMessage {
    /// The nickname part of the prefix (`nick!user@host`).
    pub fn nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        Some(prefix.split(['!', '@']).next().unwrap_or(prefix))
    }
}

/// Parses one line (without CR LF); `None` for an empty or malformed line.
pub fn parse_line(line: &str) -> Option<IrcMessage> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if rest.starts_with('@') {
        // IRCv3 message tags: not used here.
        rest = rest.split_once(' ')?.1;
    }
    let prefix = match rest.strip_prefix(':') {
        Some(stripped) => {
            let (prefix, after) = stripped.split_once(' ')?;
            rest = after;
            Some(prefix.to_string())
        }
        None => None,
    };
    let (head, trailing) = match rest.split_once(" :") {
        Some((head, trailing)) => (head, Some(trailing)),
        None => (rest, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next()?.to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_string).collect();
    if let Some(trailing) = trailing {
        params.push(trailing.to_string());
    }
    Some(IrcMessage {
        prefix,
        command,
        params,
    })
}

/// Makes one line of text safe to send: no control characters, at most `MAX_TEXT_BYTES`.
pub fn clean_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_BYTES));
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_TEXT_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// A token bucket: `burst` lines at once, then one per `interval`.
#[derive(Debug)]
pub struct Pacer {
    tokens: f64,
    burst: f64,
    interval: Duration,
    last: Instant,
}

impl Pacer {
    pub fn new(burst: u32, interval: Duration, now: Instant) -> Pacer {
        Pacer {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            interval,
            last: now,
        }
    }

    /// Takes a token if one is there.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let earned =
            now.saturating_duration_since(self.last).as_secs_f64() / self.interval.as_secs_f64();
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The lines waiting for each player, sent round-robin so one busy player cannot starve
/// the others.
#[derive(Debug, Default)]
pub struct Outbox {
    queues: HashMap<String, (VecDeque<String>, usize)>,
    turn: VecDeque<String>,
}

impl Outbox {
    /// Queues a line for `nick`, dropping the oldest when the queue is full.
    pub fn push(&mut self, nick: &str, line: String) {
        let (queue, skipped) = self.queues.entry(nick.to_string()).or_default();
        if queue.is_empty() {
            self.turn.push_back(nick.to_string());
        }
        if queue.len() == PLAYER_QUEUE {
            queue.pop_front();
            *skipped += 1;
        }
        queue.push_back(line);
    }

    /// The next `(nick, text)` to send.
    pub fn next_line(&mut self) -> Option<(String, String)> {
        while let Some(nick) = self.turn.pop_front() {
            let Some((queue, skipped)) = self.queues.get_mut(&nick) else {
                continue;
            };
            let text = if *skipped > 0 {
                let text = format!(
                    "({} lines skipped: you were sent more than IRC can carry)",
                    *skipped
                );
                *skipped = 0;
                text
            } else {
                match queue.pop_front() {
                    Some(text) => text,
                    None => continue,
                }
            };
            if queue.is_empty() {
                self.queues.remove(&nick);
            } else {
                self.turn.push_back(nick.clone());
            }
            return Some((nick, text));
        }
        None
    }

    pub fn forget(&mut self, nick: &str) {
        self.queues.remove(nick);
        self.turn.retain(|n| n != nick);
    }

    pub fn clear(&mut self) {
        self.queues.clear();
        self.turn.clear();
    }
}

/// The running IRC frontend; dropping it stops it.
pub struct Irc {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Irc {
    pub fn start(settings: IrcSettings, gate: GateHandle, log: Logger) -> io::Result<Irc> {
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("game-irc".to_string())
            .spawn(move || {
                run(settings, gate, stopped, log);
            })?;
        Ok(Irc {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Irc {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Player {
    nick: String,
    session: Session,
    next_ticket: u64,
    last_typed: Instant,
}

/// Why a connection ended.
enum Ending {
    Stop,
    Lost(String),
}

struct Link {
    settings: IrcSettings,
    gate: GateHandle,
    log: Logger,
    to_frontend: Sender<(ClientId, ToFrontend)>,
    players: HashMap<String, Player>,
    by_client: HashMap<ClientId, String>,
    next_client: ClientId,
    outbox: Outbox,
}

pub fn run(settings: IrcSettings, gate: GateHandle, stop: Receiver<()>, log: Logger) {
    let (to_frontend, events) = bounded(EVENT_QUEUE);
    let mut link = Link {
        settings,
        gate,
        log,
        to_frontend,
        players: HashMap::new(),
        by_client: HashMap::new(),
        next_client: 1,
        outbox: Outbox::default(),
    };
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = Instant::now();
        let ending = match link.connect() {
            Ok(stream) => link.session(stream, &events, &stop, &mut backoff),
            Err(e) => Ending::Lost(format!("cannot connect: {e}")),
        };
        // Players leave the world with the link; their places are kept.
        link.players.clear();
        link.by_client.clear();
        link.outbox.clear();
        match ending {
            Ending::Stop => return,
            Ending::Lost(why) => {
                let server = format!("{}:{}", link.settings.server, link.settings.port);
                (link.log)(&format!(
                    "game irc: {server}: {why}; retrying in {}s",
                    backoff.as_secs()
                ));
            }
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_FIRST;
        }
        match stop.recv_timeout(backoff) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn write_line(stream: &mut TcpStream, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    stream.write_all(&bytes)
}

/// Reads lines from the server until it closes; each line, then `None`, goes to the link.
fn read_lines(stream: TcpStream, lines: Sender<Option<String>>) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::with_capacity(1024);
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer).into_owned();
                if lines.send(Some(line)).is_err() {
                    return;
                }
            }
        }
    }
    let _ = lines.send(None);
}

impl Link {
    fn connect(&self) -> io::Result<TcpStream> {
        let address = (self.settings.server.as_str(), self.settings.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "the server name has no address")
            })?;
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn session(
        &mut self,
        mut stream: TcpStream,
        events: &Receiver<(ClientId, ToFrontend)>,
        stop: &Receiver<()>,
        backoff: &mut Duration,
    ) -> Ending {
        let (to_link, lines) = bounded(256);
        let reader = match stream.try_clone() {
            Ok(reader) => reader,
            Err(e) => return Ending::Lost(e.to_string()),
        };
        let spawned = std::thread::Builder::new()
            .name("game-irc-reader".to_string())
            .spawn(move || {
                read_lines(reader, to_link);
            });
        if let Err(e) = spawned {
            return Ending::Lost(e.to_string());
        }
        let ending = self.converse(&mut stream, &lines, events, stop, backoff);
        if let Ending::Stop = ending {
            let _ = write_line(&mut stream, "QUIT :The world rests.");
        }
        // Closing the socket ends the reader thread.
        let _ = stream.shutdown(Shutdown::Both);
        ending
    }

    fn converse(
        &mut self,
        stream: &mut TcpStream,
        lines: &Receiver<Option<String>>,
        events: &Receiver<(ClientId, ToFrontend)>,
        stop: &Receiver<()>,
        backoff: &mut Duration,
    ) -> Ending {
        let mut nick = self.settings.nick.clone();
        let register = write_line(stream, &format!("NICK {nick}")).and_then(|()| {
            write_line(
                stream,
                &format!("USER {nick} 0 * :The occwserv adventure game"),
            )
        });
        if let Err(e) = register {
            return Ending::Lost(e.to_string());
        }
        let mut registered = false;
        let connected = Instant::now();
        let mut last_heard = Instant::now();
        let mut pinged = false;
        let interval = Duration::from_millis(self.settings.send_interval_ms);
        let mut pacer = Pacer::new(self.settings.burst, interval, Instant::now());
        let ticker = tick(TICK);
        loop {
            select! {
                recv(lines) -> line => {
                    let Ok(Some(line)) = line else { return Ending::Lost("the server closed the connection".to_string()) };
                    last_heard = Instant::now();
                    pinged = false;
                    let Some(message) = parse_line(&line) else { continue };
                    match message.command.as_str() {
                        "PING" => {
                            let token = message.params.last().cloned().unwrap_or_default();
                            if let Err(e) = write_line(stream, &format!("PONG :{token}")) {
                                return Ending::Lost(e.to_string());
                            }
                        }
                        "001" => {
                            registered = true;
                            *backoff = BACKOFF_FIRST;
                            if let Some(nick_given) = message.params.first() {
                                nick = nick_given.clone();
                            }
                            (self.log)(&format!("game irc: connected to {} as {nick}", self.settings.server));
                            if let Some(channel) = self.settings.channel.clone() {
                                if let Err(e) = write_line(stream, &format!("JOIN {channel}")) {
                                    return Ending::Lost(e.to_string());
                                }
                                let hello = format!("The occwserv adventure is open: /msg {nick} help");
                                self.outbox.push(&channel, hello);
                            }
                        }
                        "433" | "432" | "436" if !registered => {
                            nick = if nick.len() < 16 { format!("{nick}_") } else { format!("occgam{}", connected.elapsed().subsec_nanos() % 1000) };
                            if let Err(e) = write_line(stream, &format!("NICK {nick}")) {
                                return Ending::Lost(e.to_string());
                            }
                        }
                        "PRIVMSG" => {
                            let to_me = message.params.first().is_some_and(|target| target.eq_ignore_ascii_case(&nick));
                            if let (true, Some(from), Some(text)) = (to_me, message.nick(), message.params.get(1)) {
                                let from = from.to_string();
                                self.typed(&from, text);
                            }
                        }
                        "QUIT" | "NICK" => {
                            if let Some(from) = message.nick() {
                                self.leave(&from.to_lowercase());
                            }
                        }
                        "ERROR" => {
                            let why = message.params.last().cloned().unwrap_or_default();
                            return Ending::Lost(format!("the server says: {why}"));
                        }
                        _ => {}
                    }
                },
                recv(events) -> event => {
                    if let Ok((client, message)) = event {
                        self.shown(client, message);
                    }
                },
                recv(ticker) -> _ => {
                    let now = Instant::now();
                    if !registered && now.duration_since(connected) > REGISTER_TIMEOUT {
                        return Ending::Lost("the server did not accept the registration".to_string());
                    }
                    if now.duration_since(last_heard) > QUIET_DROP {
                        return Ending::Lost("the server has gone quiet".to_string());
                    }
                    if now.duration_since(last_heard) > QUIET_PING && !pinged {
                        pinged = true;
                        if let Err(e) = write_line(stream, &format!("PING :{nick}")) {
                            return Ending::Lost(e.to_string());
                        }
                    }
                    self.players.retain(|_, p| now.duration_since(p.last_typed) < PLAYER_IDLE);
                    while registered && pacer.take(now) {
                        let Some((target, text)) = self.outbox.next_line() else { break };
                        let target = self.players.get(&target).map_or(target, |p| p.nick.clone());
                        if let Err(e) = write_line(stream, &format!("PRIVMSG {target} :{text}")) {
                            return Ending::Lost(e.to_string());
                        }
                    }
                },
                recv(stop) -> _ => return Ending::Stop,
            }
        }
    }

    /// A private message from `nick`: a line for that player, logging them in first.
    fn typed(&mut self, nick: &str, text: &str) {
        let key = nick.to_lowercase();
        if !self.players.contains_key(&key) {
            let client = self.next_client;
            self.next_client += 1;
            let frontend = FrontendEnd {
                client,
                to_frontend: self.to_frontend.clone(),
            };
            match self
                .gate
                .login(nick, Origin::Irc, LoginMode::Resume, frontend)
            {
                Ok(session) => {
                    let player = Player {
                        nick: nick.to_string(),
                        session,
                        next_ticket: 1,
                        last_typed: Instant::now(),
                    };
                    self.players.insert(key.clone(), player);
                    self.by_client.insert(client, key.clone());
                }
                Err(e) => {
                    let why = match e {
                        LoginError::OtherOrigin(_) | LoginError::BadName => {
                            format!(
                                "You cannot play as {nick}: {e}. Change your nick and try again."
                            )
                        }
                        e => format!("You cannot play now: {e}."),
                    };
                    return self.outbox.push(&key, why);
                }
            }
        }
        let Some(player) = self.players.get_mut(&key) else {
            return;
        };
        player.last_typed = Instant::now();
        let ticket = player.next_ticket;
        player.next_ticket += 1;
        let line = text.to_string();
        match player.session.commands.try_send(Command { line, ticket }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.outbox.push(
                    &key,
                    "You are typing faster than the world can follow; that line was lost.".into(),
                );
            }
            Err(TrySendError::Disconnected(_)) => self.leave(&key),
        }
    }

    /// Something for a player to see.
    fn shown(&mut self, client: ClientId, message: ToFrontend) {
        let Some(key) = self.by_client.get(&client).cloned() else {
            return;
        };
        match message {
            ToFrontend::Event(event) => {
                for line in event.to_string().lines() {
                    let line = clean_text(line);
                    if !line.is_empty() {
                        self.outbox.push(&key, line);
                    }
                }
            }
            ToFrontend::Done(_) => {}
            ToFrontend::Ended => {
                self.by_client.remove(&client);
                self.players.remove(&key);
            }
        }
    }

    /// Takes a player out of the world (they quit IRC or changed nick).
    fn leave(&mut self, key: &str) {
        if self.players.remove(key).is_some() {
            self.by_client.retain(|_, nick| nick != key);
            self.outbox.forget(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        let m = parse_line(":alice!a@host PRIVMSG occgam :say hello there\r\n").unwrap();
        assert_eq!(m.nick(), Some("alice"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(
            m.params,
            vec!["occgam".to_string(), "say hello there".to_string()]
        );
        let ping = parse_line("PING :irc.example").unwrap();
        assert_eq!(
            (ping.prefix, ping.command.as_str(), ping.params),
            (None, "PING", vec!["irc.example".to_string()])
        );
        let welcome = parse_line(":irc 001 occgam :Welcome").unwrap();
        assert_eq!(welcome.params[0], "occgam");
        let tagged = parse_line("@time=x :n!u@h PRIVMSG occgam :look").unwrap();
        assert_eq!(tagged.params[1], "look");
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn text_is_cleaned_and_cut() {
        assert_eq!(clean_text("a\u{1}b\rc"), "abc");
        assert_eq!(clean_text(&"é".repeat(300)).len(), 400);
    }

    #[test]
    fn the_pacer_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut pacer = Pacer::new(3, Duration::from_millis(500), start);
        assert!((0..3).all(|_| pacer.take(start)));
        assert!(!pacer.take(start));
        assert!(!pacer.take(start + Duration::from_millis(400)));
        assert!(pacer.take(start + Duration::from_millis(520)));
        assert!(!pacer.take(start + Duration::from_millis(530)));
    }

    #[test]
    fn the_outbox_takes_turns_and_drops_the_oldest() {
        let mut outbox = Outbox::default();
        for n in 0..(PLAYER_QUEUE + 5) {
            outbox.push("busy", format!("line {n}"));
        }
        outbox.push("quiet", "hello".to_string());
        let (first, text) = outbox.next_line().unwrap();
        assert_eq!(first, "busy");
        assert!(text.contains("5 lines skipped"), "{text}");
        assert_eq!(
            outbox.next_line().unwrap(),
            ("quiet".to_string(), "hello".to_string())
        );
        assert_eq!(
            outbox.next_line().unwrap(),
            ("busy".to_string(), "line 5".to_string())
        );
        let rest: Vec<_> = std::iter::from_fn(|| outbox.next_line()).collect();
        assert_eq!(rest.len(), PLAYER_QUEUE - 1);
    }
}
