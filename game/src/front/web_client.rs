//! Web client process: one per browser player (the paper's proposed `web.client`). It holds
//! the player's session, keeps the scrollback of events that the page shows, answers page
//! requests (after the world has finished the command they carry), and pushes events to the
//! player's websocket when one is attached.
//!
//! Instances: one per active browser player, started by the router (`front::web`).
//! In: ToWebClient (page exchanges from the router, lines and attach/detach from the
//! websocket process), `(ClientId, ToFrontend)` from the player's user process.
//! Out: Command to the user process, HTTP responses, JSON text frames to the websocket
//! process (`try_send`: a slow socket loses frames, the scrollback keeps them).
//! Stops: when the player leaves the world, after `idle` with no request and no websocket,
//! or when its inbox disconnects; dropping the session takes the player out of the world.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, Receiver, Sender, TrySendError};
use serde_json::json;

use crate::event::Event;
use crate::front::page::{self, Shown};
use crate::front::web::COOKIE;
use crate::front::{Exchange, WebResponse};
use crate::protocol::{
    ClientId, Command, FrontendEnd, LoginError, LoginMode, Origin, Session, Ticket, ToFrontend,
};
use crate::token::TokenKey;
use crate::world::user::LOGIN_TICKET;
use crate::world::{GateHandle, Logger};

/// Lines of scrollback a page shows.
const SCROLLBACK: usize = 80;
/// The largest form a page may post.
const MAX_FORM_BYTES: usize = 4096;
/// How long a page request waits for its command to finish before it is answered anyway.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Events from the world that may wait for this process.
const EVENT_QUEUE: usize = 1024;
/// Frames that may wait for the websocket process.
pub const SOCKET_QUEUE: usize = 256;
/// How long a refused client stays to answer what is already on its way.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Who the client plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The player a verified token names.
    Resume(String),
    /// A new player: the name given on the websocket's query, or (`None`) in the first
    /// page request's form.
    Register(Option<String>),
}

/// To a web client process.
pub enum ToWebClient {
    /// Answer a page request (GET, HEAD or POST; a POST's form may carry a command).
    Page {
        method: String,
        exchange: Box<dyn Exchange>,
    },
    /// A websocket has connected for this player: push frames to it, starting with the
    /// scrollback after `since` (what the page it came from has not shown).
    Attach {
        to_socket: Sender<String>,
        since: u64,
    },
    /// A line typed on the websocket, with the id its sender gave it.
    Typed { line: String, id: Option<u64> },
    /// The websocket has closed.
    Detached,
    /// Nothing; the router checks the client is alive before handing it a websocket.
    Ping,
}

/// Everything a web client starts with.
pub struct WebClientSetup {
    pub identity: Identity,
    pub base: String,
    pub gate: GateHandle,
    pub key: TokenKey,
    pub idle: Duration,
    pub client: ClientId,
    /// Where a newly registered client tells the router its name.
    pub announce: Sender<(String, Sender<ToWebClient>)>,
    /// This client's own inbox, for the announcement.
    pub me: Sender<ToWebClient>,
    pub log: Logger,
}

struct Waiting {
    ticket: Ticket,
    exchange: Box<dyn Exchange>,
    deadline: Instant,
}

struct Client {
    name: String,
    base: String,
    cookie: String,
    session: Session,
    scrollback: VecDeque<Shown>,
    next_seq: u64,
    seen: u64,
    socket: Option<Sender<String>>,
    /// Tickets of websocket commands, with the ids to answer them with.
    socket_ids: HashMap<Ticket, u64>,
    waiting: Vec<Waiting>,
    next_ticket: Ticket,
    entered: bool,
    /// The world has said goodbye: the player is leaving.
    left: bool,
    ended: bool,
    last_request: Instant,
    /// A newly registered player's token, sent as the websocket's first frame.
    token_frame: Option<String>,
}

fn form_field(body: &[u8], wanted: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(name, _)| name == wanted)
        .map(|(_, value)| value.into_owned())
}

fn login_status(e: &LoginError) -> u16 {
    match e {
        LoginError::BadName => 400,
        LoginError::Stopping => 503,
        LoginError::NameTaken | LoginError::OtherOrigin(_) | LoginError::Superseded => 409,
    }
}

fn plain(status: u16, text: &str) -> WebResponse {
    WebResponse {
        status,
        headers: vec![(
            "Content-Type".to_string(),
            "text/plain; charset=utf-8".to_string(),
        )],
        body: format!("{text}\n").into_bytes(),
    }
}

pub fn run(setup: WebClientSetup, inbox: Receiver<ToWebClient>) {
    let WebClientSetup {
        identity,
        base,
        gate,
        key,
        idle,
        client,
        announce,
        me,
        log,
    } = setup;
    let (to_frontend, from_world) = bounded(EVENT_QUEUE);
    let frontend = FrontendEnd {
        client,
        to_frontend,
    };
    // The page request that carried a registration waits for the player's first view.
    let mut first_page: Option<Box<dyn Exchange>> = None;
    let registered_by_socket = matches!(identity, Identity::Register(Some(_)));
    let (name, mode) = match identity {
        Identity::Resume(name) => (name, LoginMode::Resume),
        Identity::Register(Some(name)) => (name, LoginMode::Register),
        Identity::Register(None) => match inbox.recv_timeout(REFUSAL_LINGER) {
            Ok(ToWebClient::Page { mut exchange, .. }) => {
                match exchange.read_body(MAX_FORM_BYTES) {
                    Ok(body) => match form_field(&body, "name") {
                        Some(name) if !name.trim().is_empty() => {
                            first_page = Some(exchange);
                            (name.trim().to_string(), LoginMode::Register)
                        }
                        _ => {
                            return exchange
                                .respond(page::login(&base, Some((400, "Choose a name first."))))
                        }
                    },
                    Err(e) => {
                        return exchange
                            .respond(plain(413, &format!("The form cannot be read: {e}")))
                    }
                }
            }
            _ => return,
        },
    };
    let session = match gate.login(&name, Origin::Web, mode, frontend) {
        Ok(session) => session,
        Err(e) => {
            let why = format!("{name}: {e}.");
            if let Some(exchange) = first_page {
                exchange.respond(page::login(&base, Some((login_status(&e), &why))));
            }
            return refuse(&inbox, &base, &why, login_status(&e));
        }
    };
    let token = key.sign(&session.name);
    if mode == LoginMode::Register {
        let _ = announce.send((session.name.to_string(), me));
        log(&format!("game: new web player {}", session.name));
    } else {
        drop(me);
    }
    let mut client = Client {
        name: session.name.to_string(),
        cookie: format!("{COOKIE}={token}; Path={base}; Max-Age=31536000; HttpOnly; SameSite=Lax"),
        base,
        session,
        scrollback: VecDeque::with_capacity(SCROLLBACK),
        next_seq: 1,
        seen: 0,
        socket: None,
        socket_ids: HashMap::new(),
        waiting: Vec::new(),
        next_ticket: LOGIN_TICKET + 1,
        entered: false,
        ended: false,
        last_request: Instant::now(),
        token_frame: registered_by_socket
            .then(|| json!({ "token": token, "name": name }).to_string()),
        left: false,
    };
    if let Some(exchange) = first_page {
        client.waiting.push(Waiting {
            ticket: LOGIN_TICKET,
            exchange,
            deadline: Instant::now() + ANSWER_WAIT,
        });
    }
    let ticker = tick(Duration::from_millis(250));
    loop {
        select! {
            recv(inbox) -> message => match message {
                Ok(message) => client.on_router(message),
                Err(_) => break,
            },
            recv(from_world) -> message => match message {
                Ok((_, message)) => client.on_user(message),
                Err(_) => client.ended = true,
            },
            recv(ticker) -> _ => {
                client.answer_late();
                if client.socket.is_none() && client.last_request.elapsed() >= idle {
                    break;
                }
            }
        }
        if client.ended {
            client.finish();
            break;
        }
    }
    // Pages that came in while the client was ending still get an answer.
    while let Ok(message) = inbox.try_recv() {
        if let ToWebClient::Page { exchange, .. } = message {
            client.answer(exchange);
        }
    }
}

/// Answers what comes in after a refused login, then ends.
fn refuse(inbox: &Receiver<ToWebClient>, base: &str, why: &str, status: u16) {
    while let Ok(message) = inbox.recv_timeout(REFUSAL_LINGER) {
        match message {
            ToWebClient::Page { exchange, .. } => {
                exchange.respond(page::login(base, Some((status, why))))
            }
            ToWebClient::Attach { to_socket, .. } => {
                let _ = to_socket.try_send(json!({ "error": why }).to_string());
                let _ = to_socket.try_send(json!({ "ended": true }).to_string());
            }
            ToWebClient::Typed { .. } | ToWebClient::Detached | ToWebClient::Ping => {}
        }
    }
}

impl Client {
    fn remember(&mut self, kind: &'static str, text: String) {
        if self.scrollback.len() == SCROLLBACK {
            self.scrollback.pop_front();
        }
        self.scrollback.push_back(Shown {
            seq: self.next_seq,
            kind,
            text,
        });
        self.next_seq += 1;
    }

    fn push(&mut self, frame: String) {
        if let Some(socket) = &self.socket {
            if let Err(TrySendError::Disconnected(_)) = socket.try_send(frame) {
                self.socket = None;
                self.last_request = Instant::now();
            }
        }
    }

    /// Sends a typed line to the world; `None` when it could not be sent.
    fn command(&mut self, line: String) -> Option<Ticket> {
        if self.ended {
            return None;
        }
        self.remember("typed", format!("> {line}"));
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        match self.session.commands.try_send(Command { line, ticket }) {
            Ok(()) => Some(ticket),
            Err(TrySendError::Full(_)) => {
                let why = "You are typing faster than the world can follow; that line was lost.";
                self.remember("error", why.to_string());
                self.push(json!({ "kind": "error", "text": why }).to_string());
                None
            }
            Err(TrySendError::Disconnected(_)) => {
                self.ended = true;
                None
            }
        }
    }

    fn on_router(&mut self, message: ToWebClient) {
        match message {
            ToWebClient::Page { method, exchange } => self.page(&method, exchange),
            ToWebClient::Attach { to_socket, since } => {
                if let Some(frame) = self.token_frame.take() {
                    let _ = to_socket.try_send(frame);
                }
                for line in self.scrollback.iter().filter(|line| line.seq > since) {
                    let frame = json!({ "kind": line.kind, "text": line.text });
                    let _ = to_socket.try_send(frame.to_string());
                }
                self.socket = Some(to_socket);
            }
            ToWebClient::Typed { line, id } => {
                if let Some(ticket) = self.command(line) {
                    self.socket_ids.insert(ticket, id.unwrap_or(ticket));
                } else if let Some(id) = id {
                    self.push(json!({ "done": id }).to_string());
                }
            }
            ToWebClient::Detached => {
                self.socket = None;
                self.last_request = Instant::now();
            }
            ToWebClient::Ping => {}
        }
    }

    fn page(&mut self, method: &str, mut exchange: Box<dyn Exchange>) {
        self.last_request = Instant::now();
        let mut line = None;
        if method == "POST" {
            match exchange.read_body(MAX_FORM_BYTES) {
                Ok(body) => line = form_field(&body, "command"),
                Err(e) => {
                    return exchange.respond(plain(413, &format!("The form cannot be read: {e}")))
                }
            }
        }
        let ticket = match line.filter(|line| !line.trim().is_empty()) {
            Some(line) => self.command(line),
            None if !self.entered => Some(LOGIN_TICKET),
            None => None,
        };
        match ticket {
            Some(ticket) => {
                self.waiting.push(Waiting {
                    ticket,
                    exchange,
                    deadline: Instant::now() + ANSWER_WAIT,
                });
            }
            None => self.answer(exchange),
        }
    }

    fn answer(&mut self, exchange: Box<dyn Exchange>) {
        let lines: Vec<Shown> = self.scrollback.iter().cloned().collect();
        let latest = self.next_seq - 1;
        let ended = self.ended || self.left;
        let mut response = page::play(&self.base, &self.name, &lines, self.seen, latest, ended);
        response
            .headers
            .push(("Set-Cookie".to_string(), self.cookie.clone()));
        self.seen = latest;
        exchange.respond(response);
    }

    /// Answers page requests whose command has taken too long.
    fn answer_late(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<Waiting>, Vec<Waiting>) =
            self.waiting.drain(..).partition(|w| w.deadline <= now);
        self.waiting = waiting;
        for waiting in late {
            self.answer(waiting.exchange);
        }
    }

    fn on_user(&mut self, message: ToFrontend) {
        match message {
            ToFrontend::Event(event) => {
                self.left |= event == Event::Goodbye;
                let text = event.to_string();
                self.push(json!({ "kind": event.kind(), "text": text }).to_string());
                self.remember(event.kind(), text);
            }
            ToFrontend::Done(ticket) => {
                if ticket == LOGIN_TICKET {
                    self.entered = true;
                }
                let (done, waiting): (Vec<Waiting>, Vec<Waiting>) =
                    self.waiting.drain(..).partition(|w| w.ticket == ticket);
                self.waiting = waiting;
                for waiting in done {
                    self.answer(waiting.exchange);
                }
                if let Some(id) = self.socket_ids.remove(&ticket) {
                    self.push(json!({ "done": id }).to_string());
                }
            }
            ToFrontend::Ended => self.ended = true,
        }
    }

    /// The player has left the world: answer every waiting page and tell the websocket.
    fn finish(&mut self) {
        for waiting in std::mem::take(&mut self.waiting) {
            self.answer(waiting.exchange);
        }
        for id in std::mem::take(&mut self.socket_ids).into_values() {
            self.push(json!({ "done": id }).to_string());
        }
        self.push(json!({ "ended": true }).to_string());
    }
}
