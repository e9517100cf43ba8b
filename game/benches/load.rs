//! Load benchmark of the game: the real server with the game plug-in, BOTS wandering bots
//! (500 by default) and PLAYERS scripted websocket players (4), each sending COMMANDS
//! commands (500) with THINK_MS (20) between them. It measures each command's round trip,
//! from sending the frame to receiving its `done` frame, and prints the distribution.
//!
//! Build the release server and game first, then run:
//!
//! ```text
//! cargo build --release -p occwserv -p occwserv-game
//! cargo bench -p occwserv-game --bench load
//! ```
//!
//! Everything runs on 127.0.0.1; the server is killed when the run ends.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use plugin_api::tungstenite::{self, Message, WebSocket};

type Error = Box<dyn std::error::Error + Send + Sync>;

const WAIT: Duration = Duration::from_secs(30);
const SCRIPT: &[&str] = &[
    "look",
    "north",
    "say the benchmark passes by",
    "south",
    "inventory",
    "take lamp",
    "drop lamp",
    "who",
];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("../target"), PathBuf::from)
}

fn start_server(dir: &Path, bots: u64) -> Result<(Server, String), Error> {
    let release = target_dir().join("release");
    let binary = release.join("occwserv");
    let game = release.join("libgame.so");
    for needed in [&binary, &game] {
        if !needed.exists() {
            return Err(format!(
                "{} is missing: cargo build --release -p occwserv -p occwserv-game",
                needed.display()
            )
            .into());
        }
    }
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(&game, plugins.join("libgame.so"))?;
    let config = dir.join("occwserv.toml");
    std::fs::write(
        &config,
        format!(
            "access_log = \"\"\nerror_log = {:?}\n[game]\nstate_dir = {:?}\nbots = {bots}\n",
            dir.join("error.log").to_string_lossy(),
            dir.join("state").to_string_lossy()
        ),
    )?;
    let mut child = Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--root"])
        .arg(dir)
        .arg("--plugins")
        .arg(&plugins)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected {line:?}"))?
        .to_string();
    Ok((server, address))
}

struct Player {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

impl Player {
    fn register(address: &str, name: &str) -> Result<Player, Error> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.set_nodelay(true)?;
        let (socket, _) =
            tungstenite::client(format!("ws://{address}/ogi/game/ws?name={name}"), stream)?;
        let mut player = Player { socket, next_id: 1 };
        let first = player.frame()?;
        if first.get("token").is_none() {
            return Err(format!("registration of {name} refused: {first}").into());
        }
        Ok(player)
    }

    fn frame(&mut self) -> Result<serde_json::Value, Error> {
        loop {
            if let Message::Text(text) = self.socket.read()? {
                return Ok(serde_json::from_str(&text)?);
            }
        }
    }

    /// Sends a command; returns the texts it produced and its round trip.
    fn command(&mut self, line: &str) -> Result<(Vec<String>, Duration), Error> {
        let id = self.next_id;
        self.next_id += 1;
        let sent = Instant::now();
        self.socket.send(Message::Text(
            serde_json::json!({ "command": line, "id": id }).to_string(),
        ))?;
        let mut texts = Vec::new();
        loop {
            let frame = self.frame()?;
            if frame["done"].as_u64() == Some(id) {
                return Ok((texts, sent.elapsed()));
            }
            if let Some(text) = frame["text"].as_str() {
                texts.push(text.to_string());
            }
        }
    }
}

fn main() -> Result<(), Error> {
    let bots = setting("BOTS", 500);
    let players = setting("PLAYERS", 4);
    let commands = setting("COMMANDS", 500);
    let think = Duration::from_millis(setting("THINK_MS", 20));
    let dir = std::env::temp_dir().join(format!("occwserv-game-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (server, address) = start_server(&dir, bots)?;

    // Wait (bounded) until every bot is in the world.
    let mut watcher = Player::register(&address, "Watcher")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = format!("{bots} bots");
    loop {
        let (texts, _) = watcher.command("who")?;
        if bots == 0 || texts.iter().any(|t| t.contains(&want)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the bots did not all log in: {texts:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let started = Instant::now();
    let runs: Vec<_> = (0..players)
        .map(|n| {
            let address = address.clone();
            std::thread::spawn(move || -> Result<Histogram<u64>, Error> {
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                let mut player = Player::register(&address, &format!("Bench{n}"))?;
                for step in 0..commands {
                    let line = SCRIPT[(step as usize + n as usize) % SCRIPT.len()];
                    let (_, round_trip) = player.command(line)?;
                    histogram.record(round_trip.as_micros().max(1) as u64)?;
                    std::thread::sleep(think);
                }
                Ok(histogram)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for run in runs {
        let histogram = run.join().map_err(|_| "a player thread panicked")??;
        all.add(&histogram)?;
    }
    let elapsed = started.elapsed();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let ms = |us: u64| us as f64 / 1000.0;
    println!("game load: {bots} bots, {players} websocket players x {commands} commands, think {think:?}");
    println!(
        "  {} commands in {:.1} s; round trip p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        all.len(),
        elapsed.as_secs_f64(),
        ms(all.value_at_quantile(0.50)),
        ms(all.value_at_quantile(0.90)),
        ms(all.value_at_quantile(0.99)),
        ms(all.value_at_quantile(0.999)),
        ms(all.max())
    );
    Ok(())
}
