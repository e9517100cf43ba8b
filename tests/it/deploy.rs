//! Deployment: where the built-in defaults look for plug-ins, `crash` kept off unless asked
//! for, and `deploy/haproxy/run.sh` (three instances behind a real HAProxy, the client's
//! address carried by the PROXY protocol) losing an instance under load. The Debian package
//! is checked by `deploy/debian/check.sh`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::support::{self, Response, Server, ServerOpts};

const WAIT: Duration = Duration::from_secs(30);

/// Polls `ready` every 20 ms until it holds or `WAIT` has passed.
fn eventually(what: &str, ready: impl FnMut() -> bool) {
    eventually_or(what, ready, String::new);
}

/// `eventually`, saying `context()` if it fails.
fn eventually_or(what: &str, mut ready: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}\n{}",
            context()
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// A server started as a user would, from `cwd`, with no `--plugins` flag.
struct Bare {
    child: Child,
    addr: String,
    error_log: PathBuf,
}

impl Bare {
    fn start(cwd: &Path, dir: &Path) -> Bare {
        let config = dir.join("occwserv.toml");
        let error_log = dir.join("error.log");
        std::fs::write(
            &config,
            format!(
                "access_log = \"\"\nerror_log = {:?}\n",
                error_log.to_string_lossy()
            ),
        )
        .unwrap();
        let mut child = Command::new(support::binary())
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--root"])
            .arg(support::repo().join("html"))
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Bare {
            child,
            addr,
            error_log,
        }
    }

    fn get(&self, path: &str) -> Response {
        get(&self.addr, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: &str, path: &str) -> Response {
    Response::parse(&fetch(addr, path).unwrap())
}

/// `GET path` on a fresh connection; the raw answer, or the I/O error met.
fn fetch(addr: &str, path: &str) -> std::io::Result<Vec<u8>> {
    send(TcpStream::connect(addr)?, path)
}

/// The address the load comes from: loopback, but not HAProxy's own 127.0.0.1, so an
/// instance that sees it has learnt it from the PROXY protocol.
const CLIENT: [u8; 4] = [127, 0, 0, 2];

/// `fetch` from `CLIENT`.
fn fetch_as_client(addr: &str, path: &str) -> std::io::Result<Vec<u8>> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((CLIENT, 0)).into())?;
    let to: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    socket.connect(&to.into())?;
    send(socket.into(), path)
}

fn send(mut s: TcpStream, path: &str) -> std::io::Result<Vec<u8>> {
    s.set_read_timeout(Some(WAIT))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut answer)?;
    Ok(answer)
}

#[test]
fn plugins_default_to_the_build_directory_only_in_a_checkout() {
    let checkout = tempfile::tempdir().unwrap();
    std::fs::write(checkout.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    let built = crate::plugins::plugin_dir(&["hello"]);
    let release = checkout.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(
        built.path().join("libhello.so"),
        release.join("libhello.so"),
    )
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = Bare::start(checkout.path(), logs.path());
    eventually("hello attached from target/release", || {
        server.get("/ogi/hello").status == 200
    });
    eventually("the log names target/release", || {
        server.error_log().contains("target/release/libhello.so")
    });
    drop(server);

    // The same tree without Cargo.toml is no checkout: the installed layout is the default.
    std::fs::remove_file(checkout.path().join("Cargo.toml")).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = Bare::start(checkout.path(), logs.path());
    eventually("the log names the installed plug-in directory", || {
        server.error_log().contains("/usr/lib/occwserv/plugins")
    });
    assert!(!server.error_log().contains("target/release"));
    if !Path::new("/usr/lib/occwserv/plugins/libhello.so").exists() {
        assert_eq!(server.get("/ogi/hello").status, 404);
    }
}

#[test]
fn crash_is_attached_only_when_exclude_leaves_it_out() {
    let dir = crate::plugins::plugin_dir(&["crash", "hello"]);
    let mut server = Server::start(ServerOpts {
        plugins: Some(dir.path().to_path_buf()),
        ..ServerOpts::default()
    });
    eventually("hello attached", || server.get("/ogi/hello").status == 200);
    assert_eq!(server.get("/ogi/crash").status, 404);
    assert!(
        server.wait_for_log("plugin crash (") && server.error_log().contains("[ogi] exclude"),
        "{}",
        server.error_log()
    );

    // Asked for by name on reload: it attaches without a restart, and leaves again.
    let config = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(
        &server.config_path,
        format!("{config}[ogi]\nexclude = []\n"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("crash attached", || server.get("/ogi/crash").status == 200);
    std::fs::write(
        &server.config_path,
        format!("{config}[ogi]\nexclude = [\"crash\", \"hello\"]\n"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("crash and hello detached", || {
        server.get("/ogi/crash").status == 404 && server.get("/ogi/hello").status == 404
    });
    assert_eq!(server.wait_exit(Duration::ZERO), None, "the server runs on");
}

/// `deploy/haproxy/run.sh` with its three instances and HAProxy; stopped on drop.
struct Cluster {
    run: Child,
    state: tempfile::TempDir,
    front: String,
    node_ports: [u16; 3],
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start(plugins: &Path, cgi_bin: &Path) -> Cluster {
        let state = tempfile::tempdir().unwrap();
        let front_port = free_port();
        let node_ports = [free_port(), free_port(), free_port()];
        let env: Vec<(String, String)> = vec![
            ("OCCWSERV".into(), support::binary().display().to_string()),
            ("PLUGINS".into(), plugins.display().to_string()),
            (
                "ROOT".into(),
                support::repo().join("html").display().to_string(),
            ),
            ("CGI_BIN".into(), cgi_bin.display().to_string()),
            ("STATE".into(), state.path().display().to_string()),
            ("FRONT_PORT".into(), front_port.to_string()),
            (
                "NODE_PORTS".into(),
                node_ports.map(|p| p.to_string()).join(" "),
            ),
        ];
        let mut run = Command::new(support::repo().join("deploy/haproxy/run.sh"))
            .envs(env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(run.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("HAProxy on "), "run.sh said {line:?}");
        let cluster = Cluster {
            run,
            state,
            front: format!("127.0.0.1:{front_port}"),
            node_ports,
            env,
        };
        eventually("HAProxy answers", || {
            fetch(&cluster.front, "/")
                .is_ok_and(|a| Response::parse_one(&a, false).is_some_and(|r| r.status == 200))
        });
        cluster
    }

    fn pid_of(&self, node: usize) -> i32 {
        let file = self.state.path().join(format!("node{node}/pid"));
        std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `run.sh node N`: starts instance N again.
    fn restart(&self, node: usize) {
        let status = Command::new(support::repo().join("deploy/haproxy/run.sh"))
            .args(["node", &node.to_string()])
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "run.sh node {node} failed");
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.path().join(name)).unwrap_or_default()
    }

    /// HAProxy's warnings and alerts: instances going down and up.
    fn health(&self) -> String {
        self.log("haproxy.log")
            .lines()
            .filter(|l| l.contains("[WARNING]") || l.contains("[ALERT]"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.run.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if !matches!(self.run.try_wait(), Ok(None)) {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let _ = self.run.kill();
        let _ = self.run.wait();
    }
}

/// A game player on a websocket through HAProxy.
struct Player {
    socket: WebSocket<TcpStream>,
}

impl Player {
    fn join(front: &str, name: &str) -> Player {
        let stream = TcpStream::connect(front).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let request = format!("ws://{front}/ogi/game/ws?name={name}")
            .into_client_request()
            .unwrap();
        let (socket, response) = tungstenite::client(request, stream).unwrap();
        assert_eq!(response.status().as_u16(), 101);
        let mut player = Player { socket };
        player.sees(|t| t.starts_with("The Listening Gate"));
        player
    }

    fn say(&mut self, line: &str) {
        let frame = serde_json::json!({ "command": line }).to_string();
        self.socket.send(Message::Text(frame)).unwrap();
    }

    fn sees(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let text = match self.socket.read().expect("a frame within the read timeout") {
                Message::Text(text) => text,
                Message::Close(_) => panic!("the game closed the websocket"),
                _ => continue,
            };
            let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(text) = frame["text"].as_str().filter(|t| wanted(t)) {
                return text.to_string();
            }
        }
        panic!("not seen within {WAIT:?}");
    }
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The directory holding `libhello.so` and the game.
fn cluster_plugins() -> tempfile::TempDir {
    let dir = crate::plugins::plugin_dir(&["hello"]);
    let game = support::binary().with_file_name("libgame.so");
    assert!(
        game.exists(),
        "{} is missing: build it with `cargo build -p occwserv-game`",
        game.display()
    );
    std::fs::copy(&game, dir.path().join("libgame.so")).unwrap();
    dir
}

#[test]
fn haproxy_in_front_of_three_instances_loses_one_under_load_and_no_request_fails() {
    let plugins = cluster_plugins();
    let cgi_bin = tempfile::tempdir().unwrap();
    let script = cgi_bin.path().join("where.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nport %s client %s\\n' \"$SERVER_PORT\" \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = Cluster::start(plugins.path(), cgi_bin.path());
    let front = cluster.front.clone();

    // Round-robin: CGI answers come from all three instances.
    let mut ports_seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let answer = Response::parse(&fetch_as_client(&front, "/cgi-bin/where.sh").unwrap());
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = answer.text();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words[3], "127.0.0.2", "REMOTE_ADDR is the client's: {text}");
        ports_seen.insert(words[1].to_string());
    }
    let all: std::collections::BTreeSet<String> =
        cluster.node_ports.iter().map(|p| p.to_string()).collect();
    assert_eq!(ports_seen, all, "round-robin over the three instances");

    // Every instance logs the client's address, not HAProxy's.
    for node in 1..=3 {
        eventually(&format!("node{node} logs the client"), || {
            cluster
                .log(&format!("node{node}/access.log"))
                .lines()
                .any(|l| l.starts_with("127.0.0.2 ") && l.contains("GET /cgi-bin/where.sh"))
        });
    }

    // Each instance's own status page.
    for node in 1..=3 {
        let page = get(&front, &format!("/node{node}/stats.html"));
        assert_eq!(page.status, 200, "/node{node}/stats.html");
        assert!(page
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/html"));
    }

    // Two players in the game, on node1.
    let mut ada = Player::join(&front, "Ada");
    let mut bo = Player::join(&front, "Bo");

    // Load: documents and CGI from 4 clients while node2 is killed and started again.
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let index = std::fs::read(support::repo().join("html/index.html")).unwrap();
    std::thread::scope(|scope| {
        for worker in 0..4usize {
            let (front, done, stop, failures, index) = (&front, &done, &stop, &failures, &index);
            scope.spawn(move || {
                for i in 0..20_000usize {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let path = if (worker + i) % 2 == 0 {
                        "/"
                    } else {
                        "/cgi-bin/where.sh"
                    };
                    let answer =
                        fetch_as_client(front, path).map(|raw| Response::parse_one(&raw, false));
                    let ok = match &answer {
                        Ok(Some(answer)) => {
                            answer.status == 200
                                && (path != "/" || answer.body == *index)
                                && (path == "/" || answer.text().ends_with(" client 127.0.0.2\n"))
                        }
                        _ => false,
                    };
                    if !ok {
                        let seen = match answer {
                            Ok(Some(answer)) => answer.status_line,
                            Ok(None) => "a cut answer".to_string(),
                            Err(e) => e.to_string(),
                        };
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{path} #{i}: {seen}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let after = |n: u64| {
            let target = done.load(Ordering::Relaxed) + n;
            eventually("load goes on", || done.load(Ordering::Relaxed) >= target);
        };
        // The load stops when this thread leaves the scope, by panic too.
        let _stop = StopOnDrop(&stop);
        after(100);
        let node2 = nix::unistd::Pid::from_raw(cluster.pid_of(2));
        nix::sys::signal::kill(node2, nix::sys::signal::Signal::SIGKILL).unwrap();
        eventually_or(
            "the health checks take node2 out",
            || {
                cluster
                    .log("haproxy.log")
                    .contains("instances/node2 is DOWN")
            },
            || cluster.health(),
        );
        after(100);
        cluster.restart(2);
        eventually_or(
            "the health checks put node2 back",
            || cluster.log("haproxy.log").contains("instances/node2 is UP"),
            || cluster.health(),
        );
        let port2 = format!("port {} ", cluster.node_ports[1]);
        eventually_or(
            "node2 answers in the rotation",
            || {
                fetch(&front, "/cgi-bin/where.sh").is_ok_and(|a| {
                    Response::parse_one(&a, false).is_some_and(|r| r.text().starts_with(&port2))
                })
            },
            || cluster.health(),
        );
        after(200);
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\nHAProxy:\n{}",
        failures.len(),
        done.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)],
        cluster.health()
    );

    // The game never left node1: its players are still there and hear each other.
    ada.say("say still here");
    bo.sees(|t| t.contains("still here"));
}
