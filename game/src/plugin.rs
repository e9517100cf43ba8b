//! The binding to the server's plug-in interface: `/ogi/game` is one persistent instance
//! (the paper's `ogimain`) that starts the world, the bots and the IRC frontend, and routes
//! each HTTP request to the web frontend. Websockets move to their own threads at once, so
//! `handle` never holds a long-lived connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use plugin_api::{declare_plugin, Connection, Host, Next, Plugin, WsStream};

use crate::bots::{self, BotSettings};
use crate::front::irc::Irc;
use crate::front::telnet::Telnet;
use crate::front::web::{Route, Web, WebRequest};
use crate::front::websocket::{self, TimedRead};
use crate::front::{Exchange, WebResponse};
use crate::settings::Settings;
use crate::token::TokenKey;
use crate::world::{Logger, World, WorldSettings, WorldSource};

/// The game, as the server holds it.
pub struct Game {
    running: Running,
}

struct Running {
    web: Web,
    irc: Option<Irc>,
    telnet: Option<Telnet>,
    stop_bots: Option<Sender<()>>,
    bots: Option<std::thread::JoinHandle<()>>,
    world: World,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Frontends first, so every player leaves before the world stops.
        self.irc.take();
        self.telnet.take();
        self.stop_bots.take();
        if let Some(bots) = self.bots.take() {
            let _ = bots.join();
        }
        self.world.stop();
    }
}

fn start(host: &Host) -> Result<Running, String> {
    let host_for_log = host.clone();
    let log: Logger = Arc::new(move |line: &str| host_for_log.log(line));
    let settings = Settings::parse(host.config_toml().as_deref()).map_err(|e| e.to_string())?;
    let key = TokenKey::configured_or_kept(settings.token_key.as_deref(), &settings.state_dir)
        .map_err(|e| format!("[game] token key: {e}"))?;
    let source = match &settings.world {
        Some(file) => {
            WorldSource::read(file).map_err(|e| format!("the world file is refused: {e}"))?
        }
        None => WorldSource::built_in(),
    };
    let world = World::start(WorldSettings {
        world: source,
        builders: settings.builders.clone(),
        state_dir: settings.state_dir.clone(),
        log: log.clone(),
    })
    .map_err(|e| e.to_string())?;
    let world_title = world.title.clone();
    let (stop_bots, bots) = if settings.bots > 0 {
        let (stop, stopped) = bounded(1);
        let gate = world.gate();
        let bot_settings = BotSettings {
            count: settings.bots,
            think: settings.bot_think(),
        };
        let bot_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("game-bots".to_string())
            .spawn(move || bots::run(gate, bot_settings, stopped, bot_log))
            .map_err(|e| format!("cannot start the bots: {e}"))?;
        (Some(stop), Some(thread))
    } else {
        (None, None)
    };
    let irc = match settings.irc.clone() {
        Some(irc) => Some(
            Irc::start(irc, world.gate(), log.clone())
                .map_err(|e| format!("cannot start IRC: {e}"))?,
        ),
        None => None,
    };
    let telnet = match &settings.telnet {
        Some(address) => match Telnet::start(
            address,
            world.gate(),
            key.clone(),
            world_title.clone(),
            log.clone(),
        ) {
            Ok(telnet) => {
                log(&format!(
                    "game telnet: listening on {address} (port {})",
                    telnet.port
                ));
                Some(telnet)
            }
            // The rest of the game plays on without it.
            Err(e) => {
                log(&format!("game telnet: cannot listen on {address}: {e}"));
                None
            }
        },
        None => None,
    };
    let web = Web::new(world.gate(), key, settings.web_idle(), log.clone());
    log(&format!(
        "game: world '{world_title}' ({}) loaded with its state from {}, {} bot(s), IRC {}",
        settings
            .world
            .as_ref()
            .map_or("built in".to_string(), |w| w.display().to_string()),
        settings.state_dir.display(),
        settings.bots,
        settings
            .irc
            .as_ref()
            .map_or("off".to_string(), |irc| format!(
                "{}:{}",
                irc.server, irc.port
            ))
    ));
    Ok(Running {
        web,
        irc,
        telnet,
        stop_bots,
        bots,
        world,
    })
}

/// The server's connection as a web exchange.
struct ConnectionExchange(Connection);

impl Exchange for ConnectionExchange {
    fn read_body(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        self.0.read_body(max_bytes)
    }

    fn respond(self: Box<Self>, response: WebResponse) {
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // An error means the client has gone; there is no one left to answer.
        let _ = self.0.respond(response.status, &headers, &response.body);
    }
}

impl TimedRead for WsStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        WsStream::set_read_timeout(self, timeout);
        Ok(())
    }
}

impl Plugin for Game {
    fn new(host: &Host) -> Self {
        match start(host) {
            Ok(running) => Game { running },
            // The plug-in interface has no other word for "this instance cannot exist": the
            // panic stops at the boundary, where the server logs it (with this message),
            // counts a fault on /stats.html, answers 500, and makes a fresh instance (reading
            // the world file again) for the next request.
            Err(why) => panic!("game: cannot start: {why}"),
        }
    }

    fn persist(&self) -> bool {
        true
    }

    fn handle(&mut self, conn: Connection) -> Next {
        let running = &mut self.running;
        let request = conn.request();
        let base = request
            .path
            .strip_suffix(request.subpath.as_str())
            .unwrap_or(&request.path)
            .to_string();
        let web_request = WebRequest {
            method: request.method.clone(),
            base,
            subpath: request.subpath.clone(),
            query: request.query.clone(),
            cookie: request.header("cookie").map(str::to_string),
            wants_websocket: request.wants_websocket(),
        };
        if let Route::Socket {
            client,
            exchange,
            since,
        } = running.web.route(&web_request, ConnectionExchange(conn))
        {
            match exchange.0.upgrade_websocket() {
                Ok(socket) => {
                    let spawned = std::thread::Builder::new()
                        .name("game-websocket".to_string())
                        .spawn(move || websocket::run(socket, client, since));
                    if let Err(e) = spawned {
                        running
                            .web
                            .log(&format!("game: cannot start a websocket: {e}"));
                    }
                }
                Err(e) => running
                    .web
                    .log(&format!("game: websocket handshake refused: {e}")),
            }
        }
        Next::Continue
    }
}

declare_plugin!(Game, name: "game", version: env!("CARGO_PKG_VERSION"), start: attached);
