//! The web router, web clients and websocket process together with a running world, driven
//! as the plug-in binding drives them (the exchanges are in-memory, the websocket is a real
//! socket on 127.0.0.1).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use plugin_api::tungstenite::{self, Message};

use crate::front::web::{Route, Web, WebRequest};
use crate::front::{websocket, Exchange, WebResponse};
use crate::token::TokenKey;
use crate::world::{World, WorldSettings};

const WAIT: Duration = Duration::from_secs(5);

struct FakeExchange {
    body: Vec<u8>,
    answer: Sender<WebResponse>,
}

impl Exchange for FakeExchange {
    fn read_body(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        if self.body.len() > max_bytes {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too large"));
        }
        Ok(std::mem::take(&mut self.body))
    }

    fn respond(self: Box<Self>, response: WebResponse) {
        let _ = self.answer.send(response);
    }
}

struct Game {
    web: Web,
    _world: World,
    _dir: tempfile::TempDir,
}

fn game() -> Game {
    let dir = tempfile::tempdir().unwrap();
    let log: crate::world::Logger = Arc::new(|_: &str| {});
    let settings = WorldSettings {
        world: crate::world::WorldSource::built_in(),
        builders: Vec::new(),
        state_dir: dir.path().to_path_buf(),
        log: log.clone(),
    };
    let world = World::start(settings).unwrap();
    let key = TokenKey::new(b"sixteen bytes or more of key").unwrap();
    let web = Web::new(world.gate(), key, Duration::from_secs(60), log);
    Game {
        web,
        _world: world,
        _dir: dir,
    }
}

fn request(method: &str, subpath: &str, token: Option<&str>) -> WebRequest {
    WebRequest {
        method: method.to_string(),
        base: "/ogi/game".to_string(),
        subpath: subpath.to_string(),
        query: None,
        cookie: token.map(|t| format!("other=1; occgame={t}")),
        wants_websocket: subpath == "/ws",
    }
}

impl Game {
    fn page(&mut self, method: &str, token: Option<&str>, body: &str) -> WebResponse {
        let (answer, answered): (Sender<WebResponse>, Receiver<WebResponse>) = bounded(1);
        let exchange = FakeExchange {
            body: body.as_bytes().to_vec(),
            answer,
        };
        assert!(matches!(
            self.web.route(&request(method, "", token), exchange),
            Route::Answered
        ));
        answered.recv_timeout(WAIT).expect("an answer")
    }
}

fn text(response: &WebResponse) -> String {
    String::from_utf8(response.body.clone()).unwrap()
}

fn token(response: &WebResponse) -> String {
    let cookie = response.header("set-cookie").unwrap();
    cookie
        .strip_prefix("occgame=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_page_player_registers_plays_and_is_known_by_token() {
    let mut game = game();
    assert!(text(&game.page("GET", None, "")).contains("name=\"name\""));
    let registered = game.page("POST", None, "name=Nell");
    assert_eq!(registered.status, 200);
    let nell = token(&registered);
    assert!(text(&registered).contains("The Listening Gate"));
    let took = game.page("POST", Some(&nell), "command=take+lamp");
    assert!(text(&took).contains("<div class=\"ev ev-took new\">You take a brass lamp.</div>"));
    assert!(text(&took).contains("<div class=\"ev ev-room old\">"));
    assert_eq!(game.page("POST", None, "name=NELL").status, 409);
    let refused = game.page("GET", Some(&format!("{nell}x")), "");
    assert_eq!(refused.status, 403);
    assert!(refused.header("set-cookie").unwrap().contains("Max-Age=0"));
    let quit = game.page("POST", Some(&nell), "command=quit");
    assert!(text(&quit).contains("Enter again"));
    // The next page brings the player back where they were.
    let back = game.page("GET", Some(&nell), "");
    assert!(text(&back).contains("Playing as <b>Nell</b>"));
    assert!(text(&game.page("POST", Some(&nell), "command=i"))
        .contains("You are carrying a brass lamp."));
}

#[test]
fn a_websocket_shares_the_page_players_world_and_events() {
    let mut game = game();
    let registered = game.page("POST", None, "name=Olga");
    let olga = token(&registered);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        tungstenite::client(format!("ws://{address}/ogi/game/ws"), stream)
            .unwrap()
            .0
    });
    let (server_side, _) = listener.accept().unwrap();
    let socket = tungstenite::accept(server_side).unwrap();
    let (answer, _answered) = bounded(1);
    let exchange = FakeExchange {
        body: Vec::new(),
        answer,
    };
    let Route::Socket {
        client: web_client, ..
    } = game
        .web
        .route(&request("GET", "/ws", Some(&olga)), exchange)
    else {
        panic!("a websocket route");
    };
    std::thread::spawn(move || websocket::run(socket, web_client, u64::MAX));
    let mut ws = client.join().unwrap();

    ws.send(Message::Text(
        r#"{"command":"say hi from the socket","id":41}"#.to_string(),
    ))
    .unwrap();
    let mut frames = Vec::new();
    loop {
        let Message::Text(frame) = ws.read().unwrap() else {
            continue;
        };
        let done = frame.contains("\"done\":41");
        frames.push(frame);
        if done {
            break;
        }
    }
    assert!(
        frames[0].contains("You say: hi from the socket"),
        "{frames:?}"
    );
    // The page shows what the socket did.
    assert!(text(&game.page("GET", Some(&olga), "")).contains("You say: hi from the socket"));
    // Another player's arrival is pushed.
    let _pia = token(&game.page("POST", None, "name=Pia"));
    loop {
        let Message::Text(frame) = ws.read().unwrap() else {
            continue;
        };
        if frame.contains("Pia appears") {
            break;
        }
    }
}
