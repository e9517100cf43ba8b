//! Gateway plug-ins under `/ogi/`: the example plug-ins over real sockets, refused
//! declarations, contained faults, attach/replace/detach under load, timeouts, and the
//! Autobahn websocket suite against `echo-ws`.
//!
//! The plug-ins are the workspace's debug builds in `target/debug`; a missing one is built
//! first with `cargo build -p`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use object::{Object, ObjectSection};
use plugin_api::abi::{Declaration, SECTION};

use crate::support::{Response, Server, ServerOpts};

/// Plug-in library file stems and their packages.
const PLUGINS: [(&str, &str); 6] = [
    ("hello", "occwserv-plugin-hello"),
    ("counter", "occwserv-plugin-counter"),
    ("once", "occwserv-plugin-once"),
    ("finger", "occwserv-plugin-finger"),
    ("crash", "occwserv-plugin-crash"),
    ("echo_ws", "occwserv-plugin-echo-ws"),
];

/// `target/debug`, where the test binary and the debug plug-ins live.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The built plug-in `lib{stem}.so`, building any that are missing once.
fn built(stem: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let missing: Vec<&str> = PLUGINS
            .iter()
            .filter(|(s, _)| !build_dir().join(format!("lib{s}.so")).exists())
            .map(|(_, p)| *p)
            .collect();
        if missing.is_empty() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.arg("build").current_dir(env!("CARGO_MANIFEST_DIR"));
        for package in &missing {
            cmd.arg("-p").arg(package);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plug-ins {missing:?} failed");
    });
    let path = build_dir().join(format!("lib{stem}.so"));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A fresh plug-in directory holding copies of the given plug-ins.
pub(crate) fn plugin_dir(stems: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for stem in stems {
        install(&built(stem), &dir.path().join(format!("lib{stem}.so")));
    }
    dir
}

/// Puts a file in place atomically (written beside it, then renamed), as a deploy would.
fn install(from: &Path, to: &Path) {
    install_bytes(&std::fs::read(from).unwrap(), to);
}

pub(crate) fn install_bytes(bytes: &[u8], to: &Path) {
    let staging = to.with_extension("staging");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(&staging, to).unwrap();
}

/// A copy of a built plug-in with its declaration changed by `edit`.
pub(crate) fn patched(stem: &str, edit: impl FnOnce(&mut Declaration)) -> Vec<u8> {
    let mut bytes = std::fs::read(built(stem)).unwrap();
    let (offset, size) = {
        let file = object::File::parse(&*bytes).unwrap();
        let section = file
            .section_by_name(SECTION)
            .expect("the plug-in has a declaration section");
        section.file_range().expect("the section has file contents")
    };
    let (offset, size) = (offset as usize, size as usize);
    let mut declaration = Declaration::from_bytes(&bytes[offset..offset + size]).unwrap();
    edit(&mut declaration);
    let fresh = declaration.to_bytes();
    bytes[offset..offset + fresh.len()].copy_from_slice(&fresh);
    bytes
}

/// A change to a declaration.
type Edit = fn(&mut Declaration);

/// Sets a NUL-padded text field of a declaration.
fn set_text(field: &mut [u8], text: &str) {
    field.fill(0);
    field[..text.len()].copy_from_slice(text.as_bytes());
}

fn start(plugins: &Path, extra_config: &str) -> Server {
    Server::start(ServerOpts {
        plugins: Some(plugins.to_path_buf()),
        extra_config: extra_config.to_string(),
        ..ServerOpts::default()
    })
}

/// The number inside `<b id="NAME">N</b>` on a plug-in's page.
fn number(resp: &Response, id: &str) -> u64 {
    let text = resp.text();
    let marker = format!("<b id=\"{id}\">");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {text}"))
        + marker.len();
    let end = start + text[start..].find('<').unwrap();
    text[start..end].parse().unwrap()
}

/// The plug-in table row for `name` from `/stats.json`.
fn row(server: &Server, name: &str) -> serde_json::Value {
    let stats = server.stats();
    let rows = stats["plugins"].as_array().cloned().unwrap_or_default();
    rows.into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {stats}"))
}

/// The row for `name` once `ready` holds for it; the keeper republishes the table every
/// 100 ms, so this polls, for at most 10 s.
fn row_when(
    server: &Server,
    name: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = row(server, name);
        if ready(&row) || Instant::now() > deadline {
            return row;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// One keep-alive client connection, which keeps bytes read past a response (pipelining).
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn new(server: &Server) -> Client {
        Client {
            stream: server.connect(),
            buffer: Vec::new(),
        }
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            false,
        )
    }

    fn send(&mut self, raw: &str, head: bool) -> Response {
        self.try_send(raw, head)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    fn try_send(&mut self, raw: &str, head: bool) -> std::io::Result<Response> {
        self.stream.write_all(raw.as_bytes())?;
        self.next(head)
    }

    /// The next complete response on the connection.
    fn next(&mut self, head: bool) -> std::io::Result<Response> {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(resp) = Response::parse_one(&self.buffer, head) {
                let framed = head
                    || resp.header("content-length").is_some()
                    || resp.header("transfer-encoding").is_some();
                if framed {
                    let used = if head {
                        resp.head_len
                    } else {
                        resp.consumed(&self.buffer)
                    };
                    self.buffer.drain(..used);
                    return Ok(resp);
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed mid-response",
                ));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn hello_is_a_fresh_instance_for_every_request() {
    let dir = plugin_dir(&["hello"]);
    let server = start(dir.path(), "");
    let mut client = Client::new(&server);
    let mut instances = Vec::new();
    for _ in 0..3 {
        let resp = client.get("/ogi/hello");
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            number(&resp, "served"),
            1,
            "a fresh instance has served one request"
        );
        instances.push(number(&resp, "instance"));
    }
    assert!(
        instances.windows(2).all(|w| w[1] > w[0]),
        "instances {instances:?} are all different"
    );
    let resp = client.get("/ogi/hello?Bob+Smith%21");
    assert!(resp.text().contains("Hello, Bob Smith!"), "{}", resp.text());
    let resp = client.get("/ogi/hello?%3Cscript%3E");
    assert!(resp.text().contains("Hello, &lt;script&gt;!"));
    let resp = client.send("HEAD /ogi/hello HTTP/1.1\r\nHost: localhost\r\n\r\n", true);
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    assert!(
        resp.header("content-length")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let hello = row_when(&server, "hello", |r| r["requests"] == 6);
    assert_eq!(hello["persist"], false);
    assert_eq!(hello["requests"], 6);
    assert_eq!(hello["faults"], 0);
}

#[test]
fn a_post_body_is_read_and_the_connection_carries_the_next_request() {
    let dir = plugin_dir(&["hello"]);
    let server = start(dir.path(), "");
    let mut client = Client::new(&server);
    // A chunked body, then a pipelined GET in the same write.
    let first = client.send(
        "POST /ogi/hello HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nAda\r\n9\r\n Lovelace\r\n0\r\n\r\n\
         GET /ogi/hello?again HTTP/1.1\r\nHost: localhost\r\n\r\n",
        false,
    );
    assert_eq!(first.status, 200);
    assert!(
        first.text().contains("Hello, Ada Lovelace!"),
        "{}",
        first.text()
    );
    let second = client.next(false).unwrap();
    assert!(second.text().contains("Hello, again!"), "{}", second.text());
    // A body over the plug-in's limit is refused, and the connection is closed after.
    let big = "x".repeat(5000);
    let resp = server.request(&format!(
        "POST /ogi/hello HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    ));
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
}

#[test]
fn counter_keeps_counting_on_its_one_instance() {
    let dir = plugin_dir(&["counter"]);
    let server = start(dir.path(), "");
    let mut hits = Vec::new();
    let mut client = Client::new(&server);
    for _ in 0..3 {
        hits.push(number(&client.get("/ogi/counter"), "hits"));
    }
    for _ in 0..2 {
        hits.push(number(&server.get("/ogi/counter"), "hits"));
    }
    assert_eq!(hits, vec![1, 2, 3, 4, 5]);
    // Concurrent clients all reach the same instance: every count appears once.
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let seen = seen.clone();
            let server = &server;
            scope.spawn(move || {
                let mut client = Client::new(server);
                for _ in 0..10 {
                    let n = number(&client.get("/ogi/counter"), "hits");
                    seen.lock().unwrap().push(n);
                }
            });
        }
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (6..=45).collect::<Vec<u64>>());
    let counter = row_when(&server, "counter", |r| r["requests"] == 45);
    assert_eq!(counter["persist"], true);
    assert_eq!(counter["state"], "owning");
    assert!(server
        .error_log()
        .contains("plugin counter#1: counter started at 0"));
}

#[test]
fn once_answers_one_request_per_instance() {
    let dir = plugin_dir(&["once"]);
    let server = start(dir.path(), "");
    let instances: Vec<u64> = (0..3)
        .map(|_| number(&server.get("/ogi/once"), "instance"))
        .collect();
    assert_eq!(instances, vec![1, 2, 3]);
    // Concurrent requests are served one at a time, each by its own instance.
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let seen = seen.clone();
            let server = &server;
            scope.spawn(move || {
                for _ in 0..3 {
                    let resp = server.get("/ogi/once");
                    assert_eq!(resp.status, 200);
                    seen.lock().unwrap().push(number(&resp, "instance"));
                }
            });
        }
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (4..=15).collect::<Vec<u64>>());
    // The path stays persistent, but no instance is alive between requests.
    let once = row_when(&server, "once", |r| r["requests"] == 15);
    assert_eq!(
        (once["persist"].as_bool(), once["state"].as_str()),
        (Some(true), Some("idle"))
    );
}

/// A one-connection finger server on 127.0.0.1 that answers `reply` (or, with `None`, reads
/// the query and stays silent until `release` is set).
pub(crate) fn finger_server(
    reply: Option<&'static str>,
    release: Arc<AtomicBool>,
) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut query = Vec::new();
        let mut byte = [0u8; 1];
        while !query.ends_with(b"\r\n") && s.read(&mut byte).unwrap() == 1 {
            query.push(byte[0]);
        }
        match reply {
            Some(text) => s.write_all(text.as_bytes()).unwrap(),
            None => {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !release.load(Ordering::Acquire) && Instant::now() < deadline {
                    std::thread::park_timeout(Duration::from_millis(20));
                }
            }
        }
        query
    });
    (port, handle)
}

#[test]
fn finger_relays_the_reply_or_says_what_went_wrong() {
    let dir = plugin_dir(&["finger"]);
    let server = start(dir.path(), "");
    let (port, peer) = finger_server(
        Some("Login: alice\r\nName: Alice Example\r\n"),
        Arc::default(),
    );
    let resp = server.get(&format!("/ogi/finger?127.0.0.1:{port}"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "Login: alice\r\nName: Alice Example\r\n");
    assert_eq!(
        peer.join().unwrap(),
        b"\r\n",
        "the finger query for all users was sent"
    );

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let resp = server.get(&format!("/ogi/finger?127.0.0.1:{closed}"));
    assert_eq!(resp.status, 502);
    assert_eq!(
        resp.text(),
        format!("finger: 127.0.0.1:{closed} refused the connection\n")
    );

    let resp = server.get("/ogi/finger");
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("give the host as the query"));

    // A host whose accept queue is full: the connection is never accepted, so the plug-in's
    // 5 s connect timeout runs out.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&full_addr, Duration::from_millis(300)) {
            queued.push(s);
        }
    }
    let resp = server.get(&format!("/ogi/finger?{full_addr}"));
    assert_eq!(resp.status, 504);
    assert_eq!(
        resp.text(),
        format!("finger: {full_addr} did not accept the connection within 5 s\n")
    );
    drop((queued, full));

    // A host that accepts but never answers: the plug-in gives up after 5 s.
    let release = Arc::new(AtomicBool::new(false));
    let (port, peer) = finger_server(None, release.clone());
    let resp = server.get(&format!("/ogi/finger?[::ffff:127.0.0.1]:{port}"));
    release.store(true, Ordering::Release);
    assert_eq!(resp.status, 504);
    assert_eq!(
        resp.text(),
        format!("finger: [::ffff:127.0.0.1]:{port} did not answer within 5 s\n")
    );
    peer.join().unwrap();
}

#[test]
fn a_request_past_the_timeout_is_answered_504_and_the_instance_marked() {
    let dir = plugin_dir(&["finger", "hello"]);
    let server = start(
        dir.path(),
        "[ogi]\ntimeout_secs = 1\nscan_interval_ms = 50\n",
    );
    let release = Arc::new(AtomicBool::new(false));
    let (port, peer) = finger_server(None, release.clone());
    let resp = server.get(&format!("/ogi/finger?127.0.0.1:{port}"));
    release.store(true, Ordering::Release);
    peer.join().unwrap();
    assert_eq!(resp.status, 504);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        server.wait_for_log("timed out after 1 s; answered 504"),
        "{}",
        server.error_log()
    );
    assert_eq!(
        row_when(&server, "finger", |r| r["timeouts"] == 1)["timeouts"],
        1
    );
    assert_eq!(server.get("/ogi/hello").status, 200);
}

#[test]
fn faults_are_contained_under_concurrent_load() {
    let dir = plugin_dir(&["crash", "hello", "counter"]);
    // `crash` is attached only when `[ogi] exclude` no longer lists it.
    let server = start(dir.path(), "[ogi]\nexclude = []\n");
    let faults = ["panic", "index", "overflow", "divide"];
    let crashes = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..4usize {
            let (server, crashes, failures) = (&server, &crashes, &failures);
            scope.spawn(move || {
                let mut client = Client::new(server);
                for i in 0..24usize {
                    let (path, want) = match (worker + i) % 4 {
                        0 => (format!("/ogi/crash?{}", faults[(worker + i / 4) % 4]), 500),
                        1 => ("/ogi/hello?load".to_string(), 200),
                        2 => ("/ogi/counter".to_string(), 200),
                        _ => ("/index.html".to_string(), 200),
                    };
                    // A 500 closes the connection; the next request needs a fresh one.
                    let resp = if want == 500 {
                        server.get(&path)
                    } else {
                        client.get(&path)
                    };
                    if want == 500 {
                        crashes.fetch_add(1, Ordering::Relaxed);
                    }
                    let right_body = match path.as_str() {
                        "/ogi/hello?load" => resp.text().contains("Hello, load!"),
                        "/ogi/counter" => resp.text().contains("id=\"hits\""),
                        _ => true,
                    };
                    if resp.status != want || !right_body {
                        failures.lock().unwrap().push(format!(
                            "{path}: {} {}",
                            resp.status,
                            resp.text()
                        ));
                    }
                }
            });
        }
    });
    assert_eq!(failures.into_inner().unwrap(), Vec::<String>::new());
    let crashes = crashes.load(Ordering::Relaxed);
    assert_eq!(crashes, 24);
    // The log process writes what it is sent a moment later: wait (bounded) for each line.
    for needle in [
        "the crash plug-in was asked to panic",
        "index out of bounds: the len is 3 but the index is 7",
        "attempt to add with overflow",
        "attempt to divide by zero",
        "faulted: panicked in handle()",
    ] {
        assert!(
            server.wait_for_log(needle),
            "the log names {needle:?}:\n{}",
            server.error_log()
        );
    }
    let crash = row_when(&server, "crash", |r| r["faults"] == crashes);
    assert_eq!(crash["faults"], crashes);
    assert_eq!(crash["requests"], crashes);
    assert_eq!(row(&server, "counter")["faults"], 0);
    // The counter instance survived every fault around it: 24 earlier hits, then this one.
    assert_eq!(number(&server.get("/ogi/counter"), "hits"), 25);
    assert_eq!(server.get("/ogi/crash").status, 200);
}

#[test]
fn refused_declarations_are_named_in_the_log_and_never_loaded() {
    let dir = plugin_dir(&["hello"]);
    let bad: [(&str, Edit, &str); 4] = [
        (
            "badmajor",
            |d| d.abi_major += 98,
            "abi_major: plug-in has 99, server needs 1",
        ),
        (
            "badlayout",
            |d| d.layout_fingerprint ^= 0xff,
            "layout_fingerprint: plug-in has",
        ),
        (
            "abortpanic",
            |d| d.panic_unwind = 0,
            "panic_unwind: plug-in was built with panic = \"abort\"",
        ),
        (
            "otherrustc",
            |d| set_text(&mut d.rustc, "rustc 0.0.1 (000000000 2015-05-15)"),
            "rustc: plug-in built by",
        ),
    ];
    for (name, edit, _) in &bad {
        let bytes = patched("hello", |d| {
            edit(d);
            set_text(&mut d.name, name);
        });
        install_bytes(&bytes, &dir.path().join(format!("lib{name}.so")));
    }
    // Not plug-ins: an executable and a text file with the right suffix.
    std::fs::copy("/bin/true", dir.path().join("libtrue.so")).unwrap();
    std::fs::write(dir.path().join("libnotes.so"), "not a library\n").unwrap();
    let server = start(dir.path(), "");
    // The log thread writes in batches: wait (bounded) until every refusal is in the file.
    for (name, _, _) in &bad {
        server.wait_for_log(&format!("plugin {name} ("));
    }
    let log = server.error_log();
    for (name, _, why) in &bad {
        let resp = server.get(&format!("/ogi/{name}"));
        assert_eq!(resp.status, 503, "/ogi/{name}");
        let line = log
            .lines()
            .find(|l| l.contains(&format!("plugin {name} (")))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains(why), "{line}");
        assert!(
            line.contains("it was not loaded")
                && line.contains(&format!("/ogi/{name} answers 503")),
            "{line}"
        );
        assert_eq!(row(&server, name)["state"], "refused");
    }
    // Never mapped into the server, so none of their code ever ran.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.pid())).unwrap();
    assert!(maps.contains("libhello.so"), "the good plug-in is mapped");
    for (name, _, _) in &bad {
        assert!(
            !maps.contains(&format!("lib{name}.so")),
            "lib{name}.so is mapped:\n{maps}"
        );
    }
    assert!(
        !log.contains("libtrue") && !log.contains("libnotes"),
        "non-plug-ins are passed over quietly:\n{log}"
    );
    assert_eq!(server.get("/ogi/true").status, 404);
    assert_eq!(server.get("/ogi/hello").status, 200);
}

/// Load on two plug-in paths from several keep-alive clients until `stop`; returns
/// (requests, failures). Before `detached` is set a request must get 200; after it, 200 or
/// 404. Anything else, or a broken connection, is a failure.
fn load(
    server: &Server,
    paths: &[&str],
    stop: &AtomicBool,
    detached: &AtomicBool,
) -> (u64, Vec<String>) {
    let requests = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let give_up = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|scope| {
        for worker in 0..4usize {
            let (requests, failures) = (&requests, &failures);
            scope.spawn(move || {
                let mut client = Client::new(server);
                let mut i = worker;
                while !stop.load(Ordering::Acquire) && Instant::now() < give_up && i < 200_000 {
                    let path = paths[i % paths.len()];
                    i += 1;
                    let allow_404 = detached.load(Ordering::Acquire);
                    let resp =
                        client.try_send(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"), false);
                    requests.fetch_add(1, Ordering::Relaxed);
                    match resp {
                        Ok(resp) if resp.status == 200 || (allow_404 && resp.status == 404) => {
                            if resp.header("connection") == Some("close") {
                                client = Client::new(server);
                            }
                        }
                        Ok(resp) => {
                            failures.lock().unwrap().push(format!(
                                "{path}: {} {}",
                                resp.status,
                                resp.text()
                            ));
                            client = Client::new(server);
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("{path}: {e}"));
                            client = Client::new(server);
                        }
                    }
                }
            });
        }
    });
    (requests.into_inner(), failures.into_inner().unwrap())
}

#[test]
fn attach_replace_and_detach_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "[ogi]\nscan_interval_ms = 20\n");
    assert_eq!(server.get("/ogi/hello").status, 404);
    // Attach: the files appear, and the paths answer without a restart.
    install(&built("hello"), &dir.path().join("libhello.so"));
    install(&built("counter"), &dir.path().join("libcounter.so"));
    assert!(server.wait_for_log("plugin hello 0.1.0: attached"));
    assert!(server.wait_for_log("plugin counter 0.1.0: attached"));
    assert_eq!(server.get("/ogi/hello").status, 200);

    let stop = AtomicBool::new(false);
    let detached = AtomicBool::new(false);
    let (requests, failures) = std::thread::scope(|scope| {
        let running =
            scope.spawn(|| load(&server, &["/ogi/hello", "/ogi/counter"], &stop, &detached));
        // Replace both, several times: each new file is a new generation; the old drains.
        for round in 1..=4u32 {
            let version = format!("0.1.{round}");
            for stem in ["hello", "counter"] {
                let bytes = patched(stem, |d| set_text(&mut d.version, &version));
                install_bytes(&bytes, &dir.path().join(format!("lib{stem}.so")));
                assert!(
                    server.wait_for_log(&format!("plugin {stem} {version}: generation")),
                    "{}",
                    server.error_log()
                );
            }
        }
        // Replace the way `cargo build` and `cp` do: remove, then write the new file in place.
        let bytes = patched("hello", |d| set_text(&mut d.version, "0.1.5"));
        let target = dir.path().join("libhello.so");
        std::fs::remove_file(&target).unwrap();
        let mut file = std::fs::File::create(&target).unwrap();
        for piece in bytes.chunks(bytes.len() / 4 + 1) {
            file.write_all(piece).unwrap();
            file.sync_data().unwrap();
        }
        drop(file);
        assert!(
            server.wait_for_log("plugin hello 0.1.5: generation"),
            "{}",
            server.error_log()
        );
        // Detach: requests in flight finish; new ones get 404.
        detached.store(true, Ordering::Release);
        std::fs::remove_file(dir.path().join("libhello.so")).unwrap();
        assert!(server.wait_for_log("plugin hello: detached"));
        stop.store(true, Ordering::Release);
        running.join().unwrap()
    });
    assert_eq!(failures, Vec::<String>::new(), "after {requests} requests");
    println!("{requests} requests across attach, 9 replacements and a detach");
    assert!(requests > 100, "the load ran ({requests} requests)");
    assert_eq!(server.get("/ogi/hello").status, 404);
    let counter = row_when(&server, "counter", |r| r["version"] == "0.1.4");
    assert_eq!(counter["version"], "0.1.4");
    assert_eq!(counter["generation"].as_u64().unwrap(), 10);
    assert_eq!(counter["faults"], 0);
    // The newest counter generation started from zero and counts on.
    let first = number(&server.get("/ogi/counter"), "hits");
    assert_eq!(number(&server.get("/ogi/counter"), "hits"), first + 1);
    // (The log thread writes in batches: the line may come a moment after the swap.)
    assert!(
        server.wait_for_log("replaces generation"),
        "{}",
        server.error_log()
    );
}

#[test]
fn echo_ws_echoes_over_a_real_websocket() {
    use tungstenite::Message;
    let dir = plugin_dir(&["echo_ws"]);
    let server = start(dir.path(), "");
    let stream = server.connect();
    let url = format!("ws://{}/ogi/echo-ws", server.addr());
    let (mut socket, response) = tungstenite::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status(), 101);
    socket.send(Message::Text("hello, echo".into())).unwrap();
    assert_eq!(socket.read().unwrap(), Message::Text("hello, echo".into()));
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    socket.send(Message::Binary(big.clone())).unwrap();
    assert_eq!(socket.read().unwrap(), Message::Binary(big));
    socket.send(Message::Ping(b"p".to_vec())).unwrap();
    assert_eq!(socket.read().unwrap(), Message::Pong(b"p".to_vec()));
    socket.close(None).unwrap();
    loop {
        match socket.read() {
            Ok(Message::Close(_)) | Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
    // A plain GET gets the page; a handshake for another version gets 426.
    let page = server.get("/ogi/echo-ws");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("new WebSocket"));
    let resp = Client::new(&server).send(
        "GET /ogi/echo-ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        false,
    );
    assert_eq!(resp.status, 426);
    assert_eq!(resp.header("sec-websocket-version"), Some("13"));
}

/// The Autobahn cases (compression aside) run by `kosoku` (`pip install kosoku`).
#[test]
fn echo_ws_passes_the_autobahn_cases() {
    if !kosoku_installed() {
        return;
    }
    let dir = plugin_dir(&["echo_ws"]);
    let server = start(dir.path(), "");
    let cases = run_kosoku(&format!("ws://{}/ogi/echo-ws", server.addr()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cases > 250, "{cases} cases ran");
}

/// Whether `kosoku` (`pip install kosoku`) can run; says the test is skipped when not.
pub(crate) fn kosoku_installed() -> bool {
    let found = Command::new("kosoku")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let installed = found.is_ok_and(|s| s.success());
    if !installed {
        println!("skipped: kosoku is not installed (pip install kosoku)");
    }
    installed
}

/// Runs kosoku's Autobahn cases (compression aside) against `url`; how many ran, all with an
/// acceptable verdict, or what went wrong.
pub(crate) fn run_kosoku(url: &str) -> Result<usize, String> {
    let reports = tempfile::tempdir().unwrap();
    let mut child = Command::new("kosoku")
        .arg(url)
        .args(["-x", "12.*", "-x", "13.*", "-o"])
        .arg(reports.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("kosoku did not finish within 300 s".to_string());
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    println!("{output}");
    if !status.success() {
        return Err(format!("kosoku failed:\n{output}"));
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.path().join("index.json")).unwrap()).unwrap();
    let mut cases = 0;
    for agent in index.as_object().unwrap().values() {
        for (case, result) in agent.as_object().unwrap() {
            cases += 1;
            let behavior = result["behavior"].as_str().unwrap_or("");
            if !["OK", "NON-STRICT", "INFORMATIONAL"].contains(&behavior) {
                return Err(format!("case {case}: {result}"));
            }
        }
    }
    Ok(cases)
}
