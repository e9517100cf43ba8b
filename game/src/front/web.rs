//! The web frontend's router (the paper's `ogimain`): runs on the plug-in instance's thread,
//! reads who a request is for from its signed token, and hands the exchange to that
//! player's web client process, starting one when needed. It never waits for the world.
//!
//! Routes under the plug-in's path (`/ogi/game`):
//! - `GET ""` — the page: with a valid token, the player's page; without, the login form.
//! - `POST ""` — `name=` registers a new player (sets the token cookie); `command=` plays.
//! - `GET /ws` (upgrade) — the websocket; see `front::websocket`.
//!
//! A token that does not verify is refused with 403, and the cookie is cleared.

use std::collections::HashMap;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};

use crate::front::page;
use crate::front::web_client::{self, Identity, ToWebClient, WebClientSetup};
use crate::front::{Exchange, WebResponse};
use crate::protocol::ClientId;
use crate::token::TokenKey;
use crate::world::{GateHandle, Logger};

/// The cookie that carries a browser player's token.
pub const COOKIE: &str = "occgame";

/// Requests that may wait for one player's web client.
const CLIENT_QUEUE: usize = 32;

/// What the router needs of a request; `plugin.rs` copies it from the server's request.
#[derive(Debug, Clone, Default)]
pub struct WebRequest {
    pub method: String,
    /// The plug-in's own path, e.g. `/ogi/game`.
    pub base: String,
    /// The path after `base`: `""`, `/`, `/ws`, ...
    pub subpath: String,
    /// The raw query string.
    pub query: Option<String>,
    /// The `Cookie` header.
    pub cookie: Option<String>,
    pub wants_websocket: bool,
}

impl WebRequest {
    /// The player's token: the `token` query parameter, or the cookie.
    pub fn token(&self) -> Option<String> {
        self.query_param("token").or_else(|| {
            let cookie = self.cookie.as_deref()?;
            cookie.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE && !value.is_empty()).then(|| value.to_string())
            })
        })
    }

    pub fn query_param(&self, wanted: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.into_owned())
    }
}

/// Where a request goes.
pub enum Route<E> {
    /// Answered already, or handed to a web client that will answer it.
    Answered,
    /// A websocket for this player's web client: upgrade the exchange and start
    /// `front::websocket::run` with the client and `since` (the `since` query parameter:
    /// the last line the player's page showed).
    Socket {
        client: Sender<ToWebClient>,
        exchange: E,
        since: u64,
    },
}

/// The router's state: one web client per browser player.
pub struct Web {
    gate: GateHandle,
    key: TokenKey,
    idle: Duration,
    log: Logger,
    clients: HashMap<String, Sender<ToWebClient>>,
    /// Web clients that registered a new player announce themselves here.
    announcements: Receiver<(String, Sender<ToWebClient>)>,
    announce: Sender<(String, Sender<ToWebClient>)>,
    next_client: ClientId,
}

fn text_response(status: u16, text: &str) -> WebResponse {
    WebResponse {
        status,
        headers: vec![(
            "Content-Type".to_string(),
            "text/plain; charset=utf-8".to_string(),
        )],
        body: format!("{text}\n").into_bytes(),
    }
}

fn answer<E: Exchange + 'static>(exchange: E, response: WebResponse) {
    Box::new(exchange).respond(response);
}

impl Web {
    pub fn new(gate: GateHandle, key: TokenKey, idle: Duration, log: Logger) -> Web {
        let (announce, announcements) = unbounded();
        Web {
            gate,
            key,
            idle,
            log,
            clients: HashMap::new(),
            announcements,
            announce,
            next_client: 1,
        }
    }

    /// Writes a line to the host's log.
    pub fn log(&self, line: &str) {
        (self.log)(line);
    }

    /// Routes one request. Page requests are handed (with their exchange) to a web client;
    /// a websocket request comes back with the client to attach it to.
    pub fn route<E: Exchange + 'static>(&mut self, request: &WebRequest, exchange: E) -> Route<E> {
        while let Ok((name, client)) = self.announcements.try_recv() {
            self.clients.insert(name.to_lowercase(), client);
        }
        let base = request.base.as_str();
        let socket = request.subpath == "/ws";
        let since = request
            .query_param("since")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !matches!(request.subpath.as_str(), "" | "/" | "/ws") {
            answer(exchange, text_response(404, "No such page in the game."));
            return Route::Answered;
        }
        if socket != request.wants_websocket {
            let why = if socket {
                "This is the game's websocket."
            } else {
                "Only /ws speaks websocket."
            };
            answer(exchange, text_response(400, why));
            return Route::Answered;
        }
        if !socket && !matches!(request.method.as_str(), "GET" | "HEAD" | "POST") {
            let mut response = text_response(405, "The game's page takes GET and POST.");
            response
                .headers
                .push(("Allow".to_string(), "GET, HEAD, POST".to_string()));
            answer(exchange, response);
            return Route::Answered;
        }
        let name = match request.token().map(|token| self.key.verify(&token)) {
            Some(Ok(name)) => Some(name),
            Some(Err(e)) => {
                let mut response = page::refused(base, &e.to_string());
                let clear = format!("{COOKIE}=; Path={base}; Max-Age=0; HttpOnly; SameSite=Lax");
                response.headers.push(("Set-Cookie".to_string(), clear));
                answer(exchange, response);
                return Route::Answered;
            }
            None => None,
        };
        match (name, socket) {
            (Some(name), false) => {
                let message = ToWebClient::Page {
                    method: request.method.clone(),
                    exchange: Box::new(exchange),
                };
                self.hand_to_client(&name, base, message);
                Route::Answered
            }
            (Some(name), true) => Route::Socket {
                client: self.client(&name, base),
                exchange,
                since,
            },
            (None, false) if request.method == "POST" => {
                // A registration: the new client reads the name from the body.
                let first = ToWebClient::Page {
                    method: request.method.clone(),
                    exchange: Box::new(exchange),
                };
                self.spawn(Identity::Register(None), base, Some(first));
                Route::Answered
            }
            (None, false) => {
                answer(exchange, page::login(base, None));
                Route::Answered
            }
            (None, true) => match request.query_param("name") {
                Some(name) => Route::Socket {
                    client: self.spawn(Identity::Register(Some(name)), base, None),
                    exchange,
                    since,
                },
                None => {
                    let why =
                        "Log in first (the token cookie or ?token=), or register with ?name=.";
                    answer(exchange, text_response(403, why));
                    Route::Answered
                }
            },
        }
    }

    /// The live web client for a player, started if there is none.
    fn client(&mut self, name: &str, base: &str) -> Sender<ToWebClient> {
        match self.clients.get(&name.to_lowercase()) {
            Some(client)
                if !matches!(
                    client.try_send(ToWebClient::Ping),
                    Err(TrySendError::Disconnected(_))
                ) =>
            {
                client.clone()
            }
            _ => self.spawn(Identity::Resume(name.to_string()), base, None),
        }
    }

    /// Hands a page request to the player's web client, starting one if it has ended (idle,
    /// quit) or never started.
    fn hand_to_client(&mut self, name: &str, base: &str, message: ToWebClient) {
        let message = match self.clients.get(&name.to_lowercase()) {
            Some(client) => match client.try_send(message) {
                Ok(()) => return,
                Err(TrySendError::Full(ToWebClient::Page { exchange, .. })) => {
                    exchange.respond(text_response(
                        503,
                        "Too many requests at once for this player.",
                    ));
                    return;
                }
                Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Disconnected(message)) => message,
            },
            None => message,
        };
        self.spawn(Identity::Resume(name.to_string()), base, Some(message));
    }

    /// Starts a web client process with its first message.
    fn spawn(
        &mut self,
        identity: Identity,
        base: &str,
        first: Option<ToWebClient>,
    ) -> Sender<ToWebClient> {
        let (to_client, inbox) = bounded(CLIENT_QUEUE);
        if let Some(first) = first {
            let _ = to_client.try_send(first);
        }
        let client = self.next_client;
        self.next_client += 1;
        if let Identity::Resume(name) = &identity {
            self.clients.insert(name.to_lowercase(), to_client.clone());
        }
        let setup = WebClientSetup {
            identity,
            base: base.to_string(),
            gate: self.gate.clone(),
            key: self.key.clone(),
            idle: self.idle,
            client,
            announce: self.announce.clone(),
            me: to_client.clone(),
            log: self.log.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("web-client#{client}"))
            .spawn(move || web_client::run(setup, inbox));
        if let Err(e) = spawned {
            (self.log)(&format!("game: cannot start a web client: {e}"));
        }
        to_client
    }
}
