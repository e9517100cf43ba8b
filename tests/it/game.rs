//! The adventure game at `/ogi/game`, played through the real server by real peers: a
//! websocket client (tungstenite), a browser (headless Chromium driven by playwright-core,
//! `tests/game/browser.mjs`) and an IRC player (Python's `irc` library,
//! `tests/game/irc_player.py`) on a real `ngircd`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::support::{self, Response, Server, ServerOpts};

const WAIT: Duration = Duration::from_secs(30);

/// A plug-in directory holding only the built game.
fn game_plugins(dir: &Path) -> PathBuf {
    let built = support::binary().with_file_name("libgame.so");
    assert!(
        built.exists(),
        "{} is missing: build it with `cargo build -p occwserv-game`",
        built.display()
    );
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&built, plugins.join("libgame.so")).unwrap();
    plugins
}

/// Starts the server with the game, its state in `state_dir`.
fn start_game(plugins: &Path, state_dir: &Path, game_config: &str) -> Server {
    let extra_config = format!(
        "[game]\nstate_dir = {:?}\n{game_config}",
        state_dir.to_string_lossy()
    );
    let server = Server::start(ServerOpts {
        plugins: Some(plugins.to_path_buf()),
        extra_config,
        ..ServerOpts::default()
    });
    // The plug-in started when attached; its page answers.
    let first = get(&server, "/ogi/game", None);
    assert_eq!(
        first.status,
        200,
        "{}\n{}",
        first.text(),
        server.error_log()
    );
    server
}

fn get(server: &Server, path: &str, cookie: Option<&str>) -> Response {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: occgame={c}\r\n"));
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"
    ))
}

fn post(server: &Server, cookie: Option<&str>, form: &str) -> Response {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: occgame={c}\r\n"));
    server.request(&format!(
        "POST /ogi/game HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    ))
}

/// The token a response's `Set-Cookie` carries.
fn token_of(response: &Response) -> String {
    let cookie = response
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie: {response:?}"));
    let value = cookie.strip_prefix("occgame=").unwrap();
    value.split(';').next().unwrap().to_string()
}

/// The text of the page's events marked new since the last request.
fn new_events(response: &Response) -> String {
    let page = response.text();
    page.split("<div class=\"ev ")
        .filter(|part| {
            part.split('"')
                .next()
                .is_some_and(|class| class.ends_with(" new"))
        })
        .map(|part| {
            part.split_once('>')
                .unwrap()
                .1
                .split("</div>")
                .next()
                .unwrap()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A websocket player with a real client.
struct WsPlayer {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

impl WsPlayer {
    fn connect(server: &Server, query: &str, cookie: Option<&str>) -> WsPlayer {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut request = format!("ws://{}/ogi/game/ws{query}", server.addr())
            .into_client_request()
            .unwrap();
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("Cookie", format!("occgame={cookie}").parse().unwrap());
        }
        let (socket, response) = tungstenite::client(request, stream).unwrap();
        assert_eq!(response.status().as_u16(), 101);
        WsPlayer { socket, next_id: 1 }
    }

    /// Registers a new player; returns it with its token, once its first view has come.
    fn register(server: &Server, name: &str) -> (WsPlayer, String) {
        let mut player = WsPlayer::connect(server, &format!("?name={name}"), None);
        let first = player.frame();
        let token = first["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {first}"))
            .to_string();
        player.sees(|t| t.starts_with("The Listening Gate"));
        (player, token)
    }

    fn frame(&mut self) -> serde_json::Value {
        loop {
            match self.socket.read().expect("a frame within the read timeout") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(_) => panic!("the game closed the websocket"),
                _ => {}
            }
        }
    }

    /// Sends a command and returns the text of the events up to its `done`.
    fn command(&mut self, line: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let frame = serde_json::json!({ "command": line, "id": id }).to_string();
        self.socket.send(Message::Text(frame)).unwrap();
        let mut texts = Vec::new();
        loop {
            let frame = self.frame();
            if frame["done"].as_u64() == Some(id) {
                return texts.join("\n");
            }
            if let Some(text) = frame["text"].as_str() {
                texts.push(text.to_string());
            }
        }
    }

    /// Reads frames until an event's text satisfies `wanted`.
    fn sees(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let frame = self.frame();
            if let Some(text) = frame["text"].as_str().filter(|t| wanted(t)) {
                return text.to_string();
            }
        }
        panic!("not seen within {WAIT:?}");
    }
}

#[test]
fn game_websocket_players_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let server = start_game(&plugins, &dir.path().join("state"), "bots = 0\n");
    let (mut wendy, _) = WsPlayer::register(&server, "Wendy");
    assert!(wendy.command("look").starts_with("The Listening Gate\n"));
    let (mut xavier, _) = WsPlayer::register(&server, "Xavier");
    wendy.sees(|t| t == "Xavier appears in a flicker of packets.");
    assert_eq!(xavier.command("say hello, Wendy"), "You say: hello, Wendy");
    wendy.sees(|t| t == "Xavier says: hello, Wendy");
    assert_eq!(xavier.command("take lamp"), "You take a brass lamp.");
    wendy.sees(|t| t == "Xavier takes a brass lamp.");
    assert!(xavier.command("north").starts_with("Front-End Hall"));
    wendy.sees(|t| t == "Xavier leaves north.");
    assert_eq!(
        xavier.command("dance"),
        "I don't know how to 'dance'. Type help for the commands."
    );
    assert!(wendy.command("who").contains("Wendy and Xavier"));
    assert!(xavier.command("quit").contains("You leave the world"));
    assert_eq!(xavier.frame(), serde_json::json!({ "ended": true }));
    // A name that is taken is refused on the socket too.
    let mut again = WsPlayer::connect(&server, "?name=wendy", None);
    assert!(again.frame()["error"].as_str().unwrap().contains("taken"));
}

#[test]
fn game_web_page_plays_by_posting_commands() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let server = start_game(&plugins, &dir.path().join("state"), "bots = 0\n");
    let login = get(&server, "/ogi/game", None);
    assert!(login.text().contains("name=\"name\""));
    assert_eq!(
        login.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let registered = post(&server, None, "name=Petra");
    assert_eq!(registered.status, 200, "{}", registered.text());
    let token = token_of(&registered);
    assert!(
        new_events(&registered).starts_with("The Listening Gate"),
        "{}",
        registered.text()
    );
    assert!(registered.text().contains("http-equiv=\"refresh\""));

    let looked = post(&server, Some(&token), "command=take+lamp");
    assert_eq!(
        new_events(&looked),
        "&gt; take lamp\nYou take a brass lamp."
    );
    let moved = post(&server, Some(&token), "command=north");
    assert!(new_events(&moved).contains("Front-End Hall"));
    // A refresh shows only what happened since.
    assert_eq!(new_events(&get(&server, "/ogi/game", Some(&token))), "");

    assert_eq!(post(&server, None, "name=petra").status, 409);
    assert_eq!(post(&server, None, "name=%3Cb%3E").status, 400);
    assert_eq!(
        get(&server, "/ogi/game/elsewhere", Some(&token)).status,
        404
    );
    let raw = server.raw(
        format!("HEAD /ogi/game HTTP/1.1\r\nHost: localhost\r\nCookie: occgame={token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let head = Response::parse_one(&raw, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(raw.len(), head.head_len, "a HEAD answer has no body");
}

#[test]
fn game_restart_keeps_places_inventories_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let state = dir.path().join("state");
    let token;
    {
        let server = start_game(&plugins, &state, "bots = 1\n");
        let registered = post(&server, None, "name=Rosa");
        token = token_of(&registered);
        post(&server, Some(&token), "command=take+lamp");
        post(&server, Some(&token), "command=north");
        post(&server, Some(&token), "command=take+scroll");
        post(&server, Some(&token), "command=drop+lamp");
        post(&server, Some(&token), "command=west");
        // Every answer came after its command was committed, so an admin's sqlite3 sees it
        // while the game runs; the server is then killed with SIGKILL (the harness's drop).
        let output = Command::new("sqlite3")
            .arg(state.join("world.sqlite"))
            .arg("SELECT room FROM players WHERE name = 'Rosa'; SELECT place FROM items WHERE key = 'lamp';")
            .output()
            .expect("sqlite3 is installed (apt-get install sqlite3)");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "pool\nhall\n");
    }
    let server = start_game(&plugins, &state, "bots = 1\n");
    let page = get(&server, "/ogi/game", Some(&token));
    assert_eq!(page.status, 200);
    assert!(
        new_events(&page).starts_with("The Idle Pool"),
        "{}",
        page.text()
    );
    let inventory = post(&server, Some(&token), "command=inventory");
    assert_eq!(
        new_events(&inventory),
        "&gt; inventory\nYou are carrying a scroll reading GET / HTTP/1.1."
    );
    post(&server, Some(&token), "command=east");
    assert!(new_events(&post(&server, Some(&token), "command=look")).contains("a brass lamp"));

    // The same token opens the websocket; a tampered one is refused on both routes.
    // `since` past the scrollback: only new frames, no replay of what the page showed.
    let mut rosa = WsPlayer::connect(&server, "?since=1000000", Some(&token));
    assert!(rosa.command("look").starts_with("Front-End Hall"));
    let mut tampered = token.clone().into_bytes();
    let inside_mac = tampered.len() - 10;
    tampered[inside_mac] = if tampered[inside_mac] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = get(&server, "/ogi/game", Some(&tampered));
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("Your token was refused"));
    // Another name ("mallory") under Rosa's signature.
    let forged = format!("v1.bWFsbG9yeQ.{}", token.rsplit_once('.').unwrap().1);
    assert_eq!(get(&server, "/ogi/game", Some(&forged)).status, 403);
    let socket = server.request(&format!(
        "GET /ogi/game/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: occgame={tampered}\r\n\r\n"
    ));
    assert_eq!(socket.status, 403);
}

/// A real IRC server on a free loopback port, with flood penalties off; killed on drop.
struct Ngircd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    fn start() -> Ngircd {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("ngircd.conf");
        std::fs::write(
            &config,
            format!(
                "[Global]\nName = irc.occwserv.test\nInfo = occwserv game test\nListen = 127.0.0.1\nPorts = {port}\n\
                 MotdPhrase = \"test\"\n[Limits]\nMaxPenaltyTime = 0\n[Options]\nPAM = no\nDNS = no\nIdent = no\n"
            ),
        )
        .unwrap();
        let child = Command::new("ngircd")
            .arg("--nodaemon")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd is installed (apt-get install ngircd)");
        let ircd = Ngircd {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ngircd did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        ircd
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for a child to exit; whether it succeeded, and its stdout lines.
fn finish(mut peer: Peer, lines: &mpsc::Receiver<String>) -> (bool, Vec<String>) {
    let deadline = Instant::now() + WAIT * 2;
    let success = loop {
        if let Some(status) = peer.0.try_wait().unwrap() {
            break status.success();
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader thread ends with the child's stdout; take what it has read.
    let mut out = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        out.push(line);
    }
    (success, out)
}

/// Reads a child's stdout lines into a channel.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (to_test, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if to_test.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

#[test]
fn game_browser_websocket_irc_and_telnet_players_share_one_world() {
    let tests_game = support::repo().join("tests/game");
    assert!(
        tests_game.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/game to install playwright-core"
    );
    let ircd = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let irc = format!("bots = 2\ntelnet = \"127.0.0.1:0\"\n[game.irc]\nserver = \"127.0.0.1\"\nport = {}\nsend_interval_ms = 10\nburst = 50\n", ircd.port);
    let server = start_game(&plugins, &dir.path().join("state"), &irc);
    assert!(
        server.wait_for_log("game irc: connected"),
        "{}",
        server.error_log()
    );

    let (mut wendy, _) = WsPlayer::register(&server, "Wendy");
    assert!(wendy.command("look").starts_with("The Listening Gate"));

    // The browser player registers, looks, and then waits for the IRC player's words.
    let said = "Hello from IRC";
    let url = format!("http://{}/ogi/game", server.addr());
    let screenshot = dir.path().join("browser.png");
    let mut browser = Command::new("node")
        .current_dir(&tests_game)
        .args(["browser.mjs", &url, "Brenda", &format!("Ivan says: {said}")])
        .arg(&screenshot)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let browser_lines = stdout_lines(&mut browser);
    let browser = Peer(browser);
    let ready = browser_lines
        .recv_timeout(WAIT * 2)
        .expect("the browser player gets ready");
    assert!(ready.starts_with("READY v1."), "{ready}");
    wendy.sees(|t| t == "Brenda appears in a flicker of packets.");

    // The telnet player (a real telnet client) comes in and waits for the IRC player too.
    let telnet_port = telnet_port(&server);
    let mut telnet_player = Command::new("python3")
        .current_dir(&tests_game)
        .args([
            "telnet_player.py",
            "127.0.0.1",
            &telnet_port.to_string(),
            "Tess",
            &format!("Ivan says: {said}"),
            "Hello from telnet",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    let telnet_lines = stdout_lines(&mut telnet_player);
    let telnet_player = Peer(telnet_player);
    assert_eq!(
        telnet_lines.recv_timeout(WAIT).as_deref(),
        Ok("READY"),
        "{}",
        server.error_log()
    );
    wendy.sees(|t| t == "Tess appears in a flicker of packets.");

    // The IRC player sees both others in the room, then speaks.
    let mut irc_player = Command::new("python3")
        .current_dir(&tests_game)
        .args([
            "irc_player.py",
            "127.0.0.1",
            &ircd.port.to_string(),
            "Ivan",
            "occgam",
            said,
            "Brenda",
            "Wendy",
            "Tess",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    let irc_lines = stdout_lines(&mut irc_player);
    let (irc_ok, irc_out) = finish(Peer(irc_player), &irc_lines);
    assert!(
        irc_ok && irc_out.contains(&"DONE".to_string()),
        "{irc_out:?}\n{}",
        server.error_log()
    );

    // The browser saw it arrive live, and so did the websocket player.
    let (browser_ok, browser_out) = finish(browser, &browser_lines);
    assert!(browser_ok, "{browser_out:?}");
    assert!(
        browser_out
            .iter()
            .any(|l| l == &format!("SAW Ivan says: {said}")),
        "{browser_out:?}"
    );
    wendy.sees(|t| t == format!("Ivan says: {said}"));
    let (telnet_ok, telnet_out) = finish(telnet_player, &telnet_lines);
    assert!(
        telnet_ok && telnet_out.contains(&"DONE".to_string()),
        "{telnet_out:?}"
    );
    wendy.sees(|t| t == "Tess says: Hello from telnet");
    assert!(screenshot.exists());
    let _ = std::io::stdout().flush();
}

/// The port the game's telnet frontend listens on, from its log line.
fn telnet_port(server: &Server) -> u16 {
    assert!(
        server.wait_for_log("game telnet: listening on"),
        "{}",
        server.error_log()
    );
    let log = server.error_log();
    let line = log
        .lines()
        .find(|l| l.contains("game telnet: listening on"))
        .unwrap();
    line.rsplit_once("(port ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap()
        .parse()
        .unwrap()
}

/// A plain IRC client speaking the protocol by hand on a real IRC server.
struct IrcClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl IrcClient {
    /// Connects and registers; returns once the server has welcomed the nick.
    fn connect(port: u16, nick: &str) -> IrcClient {
        let writer = TcpStream::connect(("127.0.0.1", port)).unwrap();
        writer.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        let mut client = IrcClient { reader, writer };
        client.send(&format!("NICK {nick}"));
        client.send(&format!("USER {nick} 0 * :{nick}"));
        client.line_where(|line| line.split(' ').nth(1) == Some("001"));
        client
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// Reads lines (answering PING) until one satisfies `wanted`.
    fn line_where(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("a line within WAIT");
            assert!(read > 0, "the IRC server closed the connection");
            let line = line.trim_end().to_string();
            eprintln!("irc: {line}");
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}"));
            } else if wanted(&line) {
                return line;
            }
        }
        panic!("not heard within {WAIT:?}");
    }

    /// Sends `text` to `to` and returns the first private message from `to` satisfying
    /// `wanted`.
    fn ask(&mut self, to: &str, text: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.send(&format!("PRIVMSG {to} :{text}"));
        let prefix = format!(":{to}!");
        let line = self.line_where(|line| {
            line.starts_with(&prefix)
                && line
                    .split_once(" PRIVMSG ")
                    .and_then(|(_, rest)| rest.split_once(" :"))
                    .is_some_and(|(_, said)| wanted(said))
        });
        line.split_once(" PRIVMSG ")
            .and_then(|(_, rest)| rest.split_once(" :"))
            .map(|(_, said)| said.to_string())
            .unwrap()
    }
}

#[test]
fn game_starts_when_attached_and_answers_irc_with_no_http_request_and_tells_cross_frontends() {
    let ircd = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let state = dir.path().join("state");
    let config = format!(
        "[game]\nstate_dir = {:?}\nbots = 0\n[game.irc]\nserver = \"127.0.0.1\"\nport = {}\nsend_interval_ms = 10\nburst = 50\n",
        state.to_string_lossy(),
        ircd.port
    );
    for round in 0..2 {
        // No HTTP request at all: the game is up because the server attached it.
        let server = Server::start(ServerOpts {
            plugins: Some(plugins.clone()),
            extra_config: config.clone(),
            ..ServerOpts::default()
        });
        assert!(
            server.wait_for_log("game irc: connected"),
            "{}",
            server.error_log()
        );
        assert!(server.error_log().contains("started when attached"));
        let mut ivy = IrcClient::connect(ircd.port, "Ivy");
        let room = if round == 0 {
            "The Listening Gate"
        } else {
            "Front-End Hall"
        };
        let seen = ivy.ask("occgam", "look", |said| said.starts_with(room));
        assert_eq!(seen, room);
        if round == 1 {
            // A private word from a websocket player reaches the IRC player, and back.
            let (mut wanda, _) = WsPlayer::register(&server, "Wanda");
            assert_eq!(wanda.command("tell ivy psst"), "You tell Ivy: psst");
            ivy.line_where(|line| line.ends_with("PRIVMSG Ivy :Wanda tells you: psst"));
            let answer = ivy.ask("occgam", "tell wanda hello", |said| {
                said.starts_with("You tell")
            });
            assert_eq!(answer, "You tell Wanda: hello");
            wanda.sees(|t| t == "Ivy tells you: hello");
        }
        if round == 0 {
            let moved = ivy.ask("occgam", "north", |said| said.starts_with("Front-End"));
            assert_eq!(moved, "Front-End Hall");
            // Answered after it was committed: the move survives the SIGKILL below.
        }
        ivy.send("QUIT :bye");
        // Dropping the server kills it with SIGKILL.
    }
}

#[test]
fn game_a_bad_world_file_stops_only_the_game() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let world = dir.path().join("bad.toml");
    std::fs::write(
        &world,
        "[world]\ntitle = \"Broken\"\nstart = \"a\"\n\n[rooms.a]\ntitle = \"A\"\ndescription = \"A room.\"\n\
         exits = { north = \"nowhere\" }\n",
    )
    .unwrap();
    let server = Server::start(ServerOpts {
        plugins: Some(plugins),
        extra_config: format!(
            "[game]\nworld = {:?}\nstate_dir = {:?}\n",
            world.to_string_lossy(),
            dir.path().join("state").to_string_lossy()
        ),
        ..ServerOpts::default()
    });
    let why = format!(
        "{} line 8: room 'a': the exit north leads to 'nowhere', which is not a room",
        world.display()
    );
    assert!(server.wait_for_log(&why), "{}", server.error_log());
    // The game answers 500; everything else is served; the stats page shows the fault.
    assert_eq!(get(&server, "/ogi/game", None).status, 500);
    assert_eq!(get(&server, "/plain.txt", None).status, 200);
    // The plug-in table on the stats page is republished a few times a second.
    let deadline = Instant::now() + WAIT;
    let faulted = || {
        get(&server, "/stats.html", None)
            .text()
            .contains("panicked in new()")
    };
    while !faulted() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(faulted(), "{}", server.error_log());

    // Mended, the file is read again by the next request, and the game starts.
    std::fs::write(
        &world,
        std::fs::read_to_string(support::repo().join("game/worlds/example.toml")).unwrap(),
    )
    .unwrap();
    let mut wanda = WsPlayer::connect(&server, "?name=Wanda", None);
    let first = wanda.frame();
    assert!(first["token"].is_string(), "{first}");
    wanda.sees(|t| t.starts_with("A garden"));
    let look = wanda.command("look");
    assert!(
        look.contains("The blue front door to the north is closed and locked."),
        "{look}"
    );
}

#[test]
fn game_websocket_playthrough_to_the_ending_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let state = dir.path().join("state");
    let play = |player: &mut WsPlayer, script: &[(&str, &str)]| {
        let mut last = String::new();
        for (line, expected) in script {
            last = player.command(line);
            assert!(last.contains(expected), "{line}: {last}");
        }
        last
    };
    let token;
    {
        let server = start_game(&plugins, &state, "bots = 0\n");
        let (mut quinn, quinn_token) = WsPlayer::register(&server, "Quinn");
        token = quinn_token;
        play(
            &mut quinn,
            &[
                ("take lamp", "You take a brass lamp."),
                ("north", "Front-End Hall"),
                ("north", "Router's Crossing"),
                ("west", "The CGI Workshop"),
                ("down", "The Zombie Cellar"),
                ("take tag", "You earn 5 points. Your score is 5 of 50."),
                ("up", "The CGI Workshop"),
                ("east", "Router's Crossing"),
                ("south", "Front-End Hall"),
                ("south", "The Listening Gate"),
                ("east", "The Porter's Lodge"),
                ("talk to porter", "Bring me its tag"),
                ("give tag to porter", "You take a golden keep-alive key."),
                ("west", "The Listening Gate"),
                ("north", "Front-End Hall"),
                ("north", "Router's Crossing"),
                ("north", "closed and locked"),
                ("north", "The brass-bound door is closed."),
                ("unlock door", "You unlock the brass-bound door."),
                ("open door", "You open the brass-bound door."),
                ("north", "The Hot Vault"),
                ("open chest", "Inside: a warm cached page."),
                (
                    "put lamp in chest",
                    "You put the brass lamp in the iron chest.",
                ),
            ],
        );
        // The server is killed (SIGKILL) with Quinn half way.
    }
    let server = start_game(&plugins, &state, "bots = 0\n");
    let mut quinn = WsPlayer::connect(&server, "?since=1000000", Some(&token));
    let (mut watcher, _) = WsPlayer::register(&server, "Watcher");
    let last = play(
        &mut quinn,
        &[
            ("look", "The brass-bound door to the south is open."),
            ("score", "Your score is 15 of 50 points."),
            ("x chest", "Inside: a brass lamp, a warm cached page."),
            ("take page", "Your score is 25 of 50."),
            ("south", "The Cache Antechamber"),
            ("east", "The Static Library"),
            ("north", "The Recycler"),
            ("east", "The Log Archive"),
            ("give page to scribe", "Your score is 50 of 50."),
        ],
    );
    let ending = "*** Quinn has returned the lost page to the scribe and finished The Lost Request, with 50 of 50 points! ***";
    // The announcement reaches the finisher before or after the command's end.
    if !last.contains(ending) {
        quinn.sees(|t| t == ending);
    }
    watcher.sees(|t| t == ending);
    assert_eq!(
        quinn.command("score"),
        "You finished The Lost Request with 50 of 50 points."
    );
}

/// A telnet connection spoken byte by byte.
struct RawTelnet {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl RawTelnet {
    fn connect(port: u16) -> RawTelnet {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        RawTelnet {
            stream,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until `needle` has come; returns everything up to and including it.
    fn until(&mut self, needle: &[u8]) -> Vec<u8> {
        use std::io::Read;
        loop {
            if let Some(at) = self.seen.windows(needle.len()).position(|w| w == needle) {
                let rest = self.seen.split_off(at + needle.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let mut buffer = [0u8; 4096];
            let read = match self.stream.read(&mut buffer) {
                // A pause of the whole test (SIGSTOP, SIGCONT) interrupts the read.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.unwrap_or_else(|e| {
                    panic!(
                        "waiting for {:?}: {e}; seen {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&self.seen)
                    )
                }),
            };
            assert!(
                read > 0,
                "closed before {:?}; seen {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&self.seen)
            );
            self.seen.extend_from_slice(&buffer[..read]);
        }
    }

    fn text_until(&mut self, needle: &str) -> String {
        String::from_utf8_lossy(&self.until(needle.as_bytes())).into_owned()
    }
}

const IAC: u8 = 255;

#[test]
fn game_telnet_refuses_options_answers_mssp_and_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    // No HTTP request at all: the telnet frontend is up because the game started when attached.
    let server = Server::start(ServerOpts {
        plugins: Some(plugins),
        extra_config: format!(
            "[game]\nstate_dir = {:?}\nbots = 0\ntelnet = \"127.0.0.1:0\"\n",
            dir.path().join("state").to_string_lossy()
        ),
        ..ServerOpts::default()
    });
    let port = telnet_port(&server);
    let mut tina = RawTelnet::connect(port);
    let greeting = tina.until(b"By what name shall you be known?");
    assert_eq!(&greeting[..3], &[IAC, 251, 70], "IAC WILL MSSP first");
    // Options asked for are refused; MSSP is answered.
    tina.send(&[IAC, 253, 31, IAC, 251, 24, IAC, 253, 70]);
    let answers = tina.until(&[IAC, 240]);
    assert!(
        answers.windows(3).any(|w| w == [IAC, 252, 31]),
        "{answers:?}"
    );
    assert!(
        answers.windows(3).any(|w| w == [IAC, 254, 24]),
        "{answers:?}"
    );
    let players: Vec<u8> = [&[1u8][..], b"PLAYERS", &[2u8], b"0"].concat();
    assert!(
        answers.windows(players.len()).any(|w| w == players),
        "{answers:?}"
    );
    // Garbage: every byte value, an unfinished subnegotiation closed later, a long line.
    let mut junk: Vec<u8> = (0..=254u8).filter(|b| *b != b'\n').collect();
    junk.extend_from_slice(&[IAC, 250, 24, 0, 1, 2, IAC, 240]);
    junk.extend(std::iter::repeat_n(b'x', 5000));
    junk.extend_from_slice(b"\r\n");
    tina.send(&junk);
    tina.text_until("Cannot log in: a name is");
    tina.text_until("By what name shall you be known?");
    tina.send(b"Tina\r\n");
    let welcome = tina.text_until("The Listening Gate");
    let token = welcome
        .lines()
        .find(|l| l.starts_with("v1."))
        .unwrap_or_else(|| panic!("no token in {welcome}"))
        .trim()
        .to_string();
    tina.text_until("Exits: north, east.");
    tina.send(b"look\r\n");
    assert!(tina
        .text_until("Exits: north, east.")
        .contains("The Listening Gate"));

    // A MUD listing's crawler asks in plain text and counts Tina.
    let mut crawler = RawTelnet::connect(port);
    crawler.until(b"By what name");
    crawler.send(b"MSSP-REQUEST\r\n");
    let reply = crawler.text_until("MSSP-REPLY-END");
    assert!(reply.contains("PLAYERS\t1\r\n"), "{reply}");

    // Tina's client vanishes; she comes back with her token, as she was.
    tina.send(b"n\r\n");
    tina.text_until("Front-End Hall");
    drop(tina);
    let mut again = RawTelnet::connect(port);
    again.until(b"By what name");
    again.send(format!("{token}\r\n").as_bytes());
    again.text_until("Front-End Hall");
    // The page answers too, and the server is still serving.
    assert_eq!(get(&server, "/plain.txt", None).status, 200);
}

#[test]
fn game_builders_named_in_the_config_dig_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = game_plugins(dir.path());
    let server = start_game(
        &plugins,
        &dir.path().join("state"),
        "bots = 0\nbuilders = [\"Bob\"]\n",
    );
    let (mut bob, _) = WsPlayer::register(&server, "Bob");
    let (mut eve, _) = WsPlayer::register(&server, "Eve");
    bob.sees(|t| t == "Eve appears in a flicker of packets.");
    assert!(eve
        .command("@dig west shed The Shed")
        .starts_with("Only builders"));
    assert_eq!(
        bob.command("@dig west shed The Shed"),
        "You dig west: The Shed."
    );
    assert!(bob.command("west").starts_with("The Shed"));
    assert_eq!(
        bob.command("@describe here Rakes and a wheelbarrow."),
        "You describe this room anew."
    );
    let shed = eve.command("west");
    assert!(
        shed.contains("The Shed\nRakes and a wheelbarrow."),
        "{shed}"
    );
}
