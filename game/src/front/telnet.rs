//! Telnet frontend: the MUD clients' front door (plain `telnet`, TinTin++, Mudlet). Line
//! mode; RFC 854 option negotiation is answered and every option refused politely (`DO x`
//! gets `WONT x`, `WILL x` gets `DONT x`), except MSSP (MUD Server Status Protocol), which
//! is offered and answered so MUD listings can read the player count, in its telnet form
//! and in its plain-text form (`MSSP-REQUEST`).
//!
//! Instances: 1 listener (when `[game] telnet` is set), plus per connection a process that
//! plays and a reader that decodes the socket's bytes. In: connections, decoded input from
//! the reader, `(ClientId, ToFrontend)` from the player's user process, a stop signal.
//! Out: text to the socket, Login to the gate, Command to the user process (`try_send`).
//! Stops: the listener on its stop signal; a connection when its player leaves the world or
//! the client goes.
//!
//! A player logs in with a name (a new player, who is given a token) or with a token (the
//! same player as in the browser, over the websocket, or an earlier telnet session).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};

use crate::protocol::{Command, FrontendEnd, LoginError, LoginMode, Origin, Session, ToFrontend};
use crate::token::TokenKey;
use crate::world::{GateHandle, Logger};

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const AYT: u8 = 246;
pub const SE: u8 = 240;
/// MUD Server Status Protocol.
pub const MSSP: u8 = 70;
pub const MSSP_VAR: u8 = 1;
pub const MSSP_VAL: u8 = 2;

/// Longest line kept; the rest of a longer one is dropped.
const MAX_LINE_BYTES: usize = 1000;
/// Most telnet players at once.
const MAX_CONNECTIONS: usize = 200;
/// Time to type a name before the connection is closed.
const LOGIN_WAIT: Duration = Duration::from_secs(120);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the listener looks at its stop signal.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// Events that may wait for one connection before the world's `try_send` drops them.
const EVENT_QUEUE: usize = 512;

/// What the reader decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A typed line, without its end.
    Line(String),
    /// Bytes to send back (a refusal or an answer in the negotiation).
    Reply(Vec<u8>),
    /// The client asked for the server's MSSP variables.
    MsspWanted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Option(u8),
    Sub,
    SubIac,
}

/// Decodes a telnet byte stream into lines and negotiation. Pure code.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    line: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Data,
            line: Vec::new(),
        }
    }
}

impl Decoder {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &byte in bytes {
            self.state = match (self.state, byte) {
                (State::Data, IAC) => State::Iac,
                (State::Data, b'\n') => {
                    let line = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    out.push(Input::Line(line));
                    State::Data
                }
                // CR LF, CR NUL and a lone CR all end up as one line ending on the LF side.
                (State::Data, b'\r' | 0) => State::Data,
                (State::Data, byte) => {
                    self.keep(byte);
                    State::Data
                }
                (State::Iac, IAC) => {
                    self.keep(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Option(byte),
                (State::Iac, SB) => State::Sub,
                (State::Iac, AYT) => {
                    out.push(Input::Reply(b"\r\n[occwserv game: yes, here]\r\n".to_vec()));
                    State::Data
                }
                // Other commands (NOP, GA, interrupt, erase) change nothing in line mode.
                (State::Iac, _) => State::Data,
                (State::Option(DO), MSSP) => {
                    out.push(Input::MsspWanted);
                    State::Data
                }
                (State::Option(DO), option) => {
                    out.push(Input::Reply(vec![IAC, WONT, option]));
                    State::Data
                }
                (State::Option(WILL), option) => {
                    out.push(Input::Reply(vec![IAC, DONT, option]));
                    State::Data
                }
                // WONT and DONT confirm what is already so: answering would start a loop.
                (State::Option(_), _) => State::Data,
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
    }

    fn keep(&mut self, byte: u8) {
        if self.line.len() < MAX_LINE_BYTES {
            self.line.push(byte);
        }
    }
}

/// Text for the socket: CR LF line ends, and a literal 255 doubled.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    for &byte in text.as_bytes() {
        match byte {
            b'\n' => out.extend_from_slice(b"\r\n"),
            IAC => out.extend_from_slice(&[IAC, IAC]),
            byte => out.push(byte),
        }
    }
    out
}

/// What MSSP reports.
pub struct Status {
    pub name: String,
    pub players: usize,
    pub uptime_since: u64,
    pub port: u16,
}

impl Status {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NAME", self.name.clone()),
            ("PLAYERS", self.players.to_string()),
            ("UPTIME", self.uptime_since.to_string()),
            ("PORT", self.port.to_string()),
            ("CODEBASE", "occwserv".to_string()),
            ("FAMILY", "Custom".to_string()),
            ("ANSI", "0".to_string()),
            ("UTF-8", "1".to_string()),
        ]
    }

    /// The telnet form: `IAC SB MSSP (VAR name VAL value)... IAC SE`.
    pub fn telnet(&self) -> Vec<u8> {
        let mut out = vec![IAC, SB, MSSP];
        for (name, value) in self.pairs() {
            out.push(MSSP_VAR);
            out.extend(name.bytes().filter(|b| *b > MSSP_VAL && *b != IAC));
            out.push(MSSP_VAL);
            out.extend(value.bytes().filter(|b| *b > MSSP_VAL && *b != IAC));
        }
        out.extend_from_slice(&[IAC, SE]);
        out
    }

    /// The plain-text form, the answer to a `MSSP-REQUEST` line.
    pub fn plain(&self) -> String {
        let mut out = String::from("\r\nMSSP-REPLY-START\r\n");
        for (name, value) in self.pairs() {
            out.push_str(&format!("{name}\t{value}\r\n"));
        }
        out.push_str("MSSP-REPLY-END\r\n");
        out
    }
}

/// The running listener; dropping it stops listening (players already in stay until they
/// leave or the world stops).
pub struct Telnet {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub port: u16,
}

/// What every connection needs.
#[derive(Clone)]
struct Shared {
    gate: GateHandle,
    key: Arc<TokenKey>,
    log: Logger,
    title: String,
    since: u64,
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Telnet {
    pub fn start(
        address: &str,
        gate: GateHandle,
        key: TokenKey,
        title: String,
        log: Logger,
    ) -> io::Result<Telnet> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shared = Shared {
            gate,
            key: Arc::new(key),
            log,
            title,
            since,
            port,
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("game-telnet".to_string())
            .spawn(move || listen(listener, shared, stopped))?;
        Ok(Telnet {
            stop: Some(stop),
            thread: Some(thread),
            port,
        })
    }
}

impl Drop for Telnet {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listen(listener: TcpListener, shared: Shared, stop: Receiver<()>) {
    loop {
        match stop.recv_timeout(ACCEPT_POLL) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        // Takes every connection waiting, then looks at the stop signal again.
        for _ in 0..MAX_CONNECTIONS {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    (shared.log)(&format!("game telnet: accept failed: {e}"));
                    break;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = stream.set_nodelay(true);
            if shared.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                shared.connections.fetch_sub(1, Ordering::AcqRel);
                let mut stream = stream;
                let _ = stream.write_all(b"Too many players on telnet just now; try later.\r\n");
                continue;
            }
            let connection = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("game-telnet-player".to_string())
                .stack_size(256 * 1024)
                .spawn(move || {
                    serve(stream, &connection);
                    connection.connections.fetch_sub(1, Ordering::AcqRel);
                });
            if let Err(e) = spawned {
                shared.connections.fetch_sub(1, Ordering::AcqRel);
                (shared.log)(&format!("game telnet: cannot start a connection: {e}"));
            }
        }
    }
}

/// Reads the socket and passes what it decodes on, until the client goes.
fn read(mut stream: TcpStream, to_player: Sender<Input>) {
    let mut decoder = Decoder::default();
    let mut buffer = [0u8; 4096];
    let mut decoded = Vec::new();
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        decoder.feed(&buffer[..read], &mut decoded);
        for input in decoded.drain(..) {
            if to_player.send(input).is_err() {
                return;
            }
        }
    }
}

struct Connection<'a> {
    stream: TcpStream,
    shared: &'a Shared,
}

impl Connection<'_> {
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    fn say(&mut self, text: &str) -> bool {
        self.write(&encode(text))
    }

    fn status(&self) -> Status {
        let players = self
            .shared
            .gate
            .who()
            .map_or(0, |(people, _bots)| people.len());
        Status {
            name: self.shared.title.clone(),
            players,
            uptime_since: self.shared.since,
            port: self.shared.port,
        }
    }

    /// Asks for a name or a token until one logs in; `None`: the client went.
    fn login(&mut self, inputs: &Receiver<Input>, events: &FrontendEnd) -> Option<Session> {
        for _attempt in 0..10 {
            if !self.say("By what name shall you be known? (Or paste your token to come back.)\n> ")
            {
                return None;
            }
            let line = loop {
                match inputs.recv_timeout(LOGIN_WAIT).ok()? {
                    Input::Line(line) => break line.trim().to_string(),
                    Input::Reply(bytes) => {
                        self.write(&bytes);
                    }
                    Input::MsspWanted => {
                        let status = self.status().telnet();
                        self.write(&status);
                    }
                }
            };
            if line.is_empty() {
                continue;
            }
            if line == "MSSP-REQUEST" {
                let status = self.status().plain();
                self.write(status.as_bytes());
                return None;
            }
            let (name, mode) = if line.starts_with("v1.") {
                match self.shared.key.verify(&line) {
                    Ok(name) => (name, LoginMode::Resume),
                    Err(_) => {
                        self.say("That token was refused.\n");
                        continue;
                    }
                }
            } else {
                (line, LoginMode::Register)
            };
            match self
                .shared
                .gate
                .login(&name, Origin::Web, mode, events.clone())
            {
                Ok(session) => {
                    if mode == LoginMode::Register {
                        let token = self.shared.key.sign(&session.name);
                        self.say(&format!(
                            "Welcome, {}. Your token, to come back as yourself here or in a browser:\n{token}\n",
                            session.name
                        ));
                    }
                    return Some(session);
                }
                Err(LoginError::NameTaken) => {
                    self.say("That name is taken. If it is yours, paste its token.\n");
                }
                Err(e) => {
                    self.say(&format!("Cannot log in: {e}.\n"));
                }
            }
        }
        None
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let (to_player, inputs) = bounded(64);
    let reader = std::thread::Builder::new()
        .name("game-telnet-reader".to_string())
        .stack_size(64 * 1024)
        .spawn(move || read(reading, to_player));
    if reader.is_err() {
        return;
    }
    let mut connection = Connection { stream, shared };
    let banner = format!(
        "Welcome to {}, a text adventure inside the occwserv web server.\n",
        shared.title
    );
    // The offer of MSSP goes out raw; the rest is text.
    if !connection.write(&[IAC, WILL, MSSP]) || !connection.say(&banner) {
        return;
    }
    let (to_frontend, events) = bounded(EVENT_QUEUE);
    let end = FrontendEnd {
        client: 0,
        to_frontend,
    };
    let Some(session) = connection.login(&inputs, &end) else {
        let _ = connection.stream.shutdown(Shutdown::Both);
        return;
    };
    drop(end);
    play(&mut connection, session, &inputs, &events);
    let _ = connection.stream.shutdown(Shutdown::Both);
}

fn play(
    connection: &mut Connection,
    session: Session,
    inputs: &Receiver<Input>,
    events: &Receiver<(u64, ToFrontend)>,
) {
    let mut next_ticket = 1;
    loop {
        select! {
            recv(inputs) -> input => match input {
                Ok(Input::Line(line)) => {
                    let command = Command { line, ticket: next_ticket };
                    next_ticket += 1;
                    match session.commands.try_send(command) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            if !connection.say("(Slow down: the world is still busy with your earlier commands.)\n") {
                                return;
                            }
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                Ok(Input::Reply(bytes)) => {
                    if !connection.write(&bytes) {
                        return;
                    }
                }
                Ok(Input::MsspWanted) => {
                    let status = connection.status().telnet();
                    if !connection.write(&status) {
                        return;
                    }
                }
                // The client has gone: dropping the session takes the player out.
                Err(_) => return,
            },
            recv(events) -> event => match event {
                Ok((_, ToFrontend::Event(event))) => {
                    if !connection.say(&format!("{event}\n")) {
                        return;
                    }
                }
                Ok((_, ToFrontend::Done(_))) => {
                    // A prompt only when nothing more is waiting to be shown.
                    if events.is_empty() && !connection.say("> ") {
                        return;
                    }
                }
                Ok((_, ToFrontend::Ended)) | Err(_) => {
                    // Whatever the world still sent is shown before the line closes.
                    loop {
                        match events.try_recv() {
                            Ok((_, ToFrontend::Event(event))) => {
                                connection.say(&format!("{event}\n"));
                            }
                            Ok(_) => {}
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<Input> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(bytes, &mut out);
        out
    }

    #[test]
    fn lines_end_with_lf_or_crlf_and_doubled_iac_is_data() {
        assert_eq!(
            decode(b"look\r\nsay hi\n"),
            vec![
                Input::Line("look".to_string()),
                Input::Line("say hi".to_string())
            ]
        );
        assert_eq!(
            decode(&[b'a', IAC, IAC, b'b', b'\n']),
            vec![Input::Line("a\u{fffd}b".to_string())]
        );
    }

    #[test]
    fn options_are_refused_politely_and_mssp_is_answered() {
        let out = decode(&[IAC, DO, 1, IAC, WILL, 31, IAC, WONT, 3, IAC, DO, MSSP]);
        assert_eq!(
            out,
            vec![
                Input::Reply(vec![IAC, WONT, 1]),
                Input::Reply(vec![IAC, DONT, 31]),
                Input::MsspWanted
            ]
        );
    }

    #[test]
    fn subnegotiation_is_skipped_and_split_reads_join() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(&[b'l', b'o', IAC, SB, 24, 0, b'x', IAC], &mut out);
        decoder.feed(&[SE, b'o', b'k', b'\r'], &mut out);
        decoder.feed(b"\n", &mut out);
        assert_eq!(out, vec![Input::Line("look".to_string())]);
    }

    #[test]
    fn garbage_and_long_lines_are_bounded() {
        let mut junk: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        junk.push(b'\n');
        let out = decode(&junk);
        for input in &out {
            if let Input::Line(line) = input {
                assert!(line.len() <= MAX_LINE_BYTES * 3);
            }
        }
        assert!(!out.is_empty());
    }

    #[test]
    fn mssp_in_both_forms() {
        let status = Status {
            name: "World".to_string(),
            players: 3,
            uptime_since: 1000,
            port: 4000,
        };
        let telnet = status.telnet();
        assert_eq!(&telnet[..3], &[IAC, SB, MSSP]);
        assert_eq!(&telnet[telnet.len() - 2..], &[IAC, SE]);
        let players: Vec<u8> = [&[MSSP_VAR][..], b"PLAYERS", &[MSSP_VAL], b"3"].concat();
        assert!(telnet.windows(players.len()).any(|w| w == players));
        let plain = status.plain();
        assert!(plain.contains("MSSP-REPLY-START\r\nNAME\tWorld\r\nPLAYERS\t3\r\n"));
        assert!(plain.ends_with("MSSP-REPLY-END\r\n"));
    }

    #[test]
    fn text_is_encoded_with_crlf() {
        assert_eq!(encode("a\nb"), b"a\r\nb".to_vec());
    }
}
