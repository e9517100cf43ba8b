//! Static serving over real sockets: exact bytes, conditionals, ranges, traversal, framing,
//! limits, keep-alive, pipelining, slow clients, parked connections, shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{read_response, read_to_close, Response, Server, ServerOpts};

fn file(server: &Server, name: &str) -> Vec<u8> {
    std::fs::read(server.root.join(name)).unwrap()
}

#[test]
fn get_serves_exact_bytes_and_headers() {
    let server = Server::start(ServerOpts::default());
    let resp = server.get("/plain.txt");
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, file(&server, "plain.txt"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.header("content-length"), Some("19"));
    assert_eq!(resp.header("accept-ranges"), Some("bytes"));
    assert_eq!(resp.header("server"), Some("occwserv"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(resp
        .header("etag")
        .is_some_and(|t| t.starts_with('"') && t.ends_with('"')));
    let modified = httpdate::parse_http_date(resp.header("last-modified").unwrap()).unwrap();
    let on_disk = std::fs::metadata(server.root.join("plain.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        httpdate::fmt_http_date(modified),
        httpdate::fmt_http_date(on_disk)
    );
    assert!(httpdate::parse_http_date(resp.header("date").unwrap()).is_ok());
    assert_eq!(
        server.get("/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );
}

#[test]
fn index_spaces_and_non_ascii_names() {
    let server = Server::start(ServerOpts::default());
    let root = server.get("/");
    assert_eq!(root.status, 200);
    assert_eq!(root.body, file(&server, "index.html"));
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(server.get("/sub/").body, file(&server, "sub/index.html"));
    assert_eq!(server.get("/with%20space.txt").body, b"spaced out\n");
    assert_eq!(
        server.get("/%C3%BCn%C3%AFc%C3%B8d%C3%A9.txt").body,
        b"non-ascii name\n"
    );
    assert_eq!(
        server.get("/link-inside.html").body,
        file(&server, "index.html")
    );
}

#[test]
fn head_has_headers_and_no_body() {
    let server = Server::start(ServerOpts::default());
    let get = server.get("/plain.txt");
    let raw = server.raw(b"HEAD /plain.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let head = Response::parse_one(&raw, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(raw.len(), head.head_len, "HEAD must not carry a body");
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("etag"), get.header("etag"));
}

#[test]
fn conditional_get_gives_304() {
    let server = Server::start(ServerOpts::default());
    let first = server.get("/plain.txt");
    let tag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();
    let raw = server.raw(format!("GET /plain.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n").as_bytes());
    let resp = Response::parse(&raw);
    assert_eq!(resp.status_line, "HTTP/1.1 304 Not Modified");
    assert_eq!(resp.header("etag"), Some(tag.as_str()));
    assert_eq!(raw.len(), resp.head_len, "304 has no body");
    let resp = server.request(&format!("GET /plain.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {modified}\r\nConnection: close\r\n\r\n"));
    assert_eq!(resp.status, 304);
    let resp = server.request("GET /plain.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.status, 200);
    let resp = server.request(
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nIf-Match: \"other\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 412);
}

#[test]
fn ranges_give_206_and_416() {
    let server = Server::start(ServerOpts::default());
    let body = file(&server, "plain.txt");
    let resp = server.request(
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=6-9\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(resp.body, &body[6..=9]);
    assert_eq!(resp.header("content-range"), Some("bytes 6-9/19"));
    assert_eq!(resp.header("content-length"), Some("4"));
    let suffix = server.request(
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-3\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(suffix.body, &body[16..]);
    let resp = server.request(
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=100-\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status_line, "HTTP/1.1 416 Range Not Satisfiable");
    assert_eq!(resp.header("content-range"), Some("bytes */19"));
    let stale = server.request("GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: \"stale\"\r\nConnection: close\r\n\r\n");
    assert_eq!(
        stale.status, 200,
        "If-Range that does not match sends the whole body"
    );
}

#[test]
fn directory_without_slash_redirects() {
    let server = Server::start(ServerOpts::default());
    let resp = server.get("/sub?x=1");
    assert_eq!(resp.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(resp.header("location"), Some("/sub/?x=1"));
    assert_eq!(server.get("/noindex/").status, 403);
}

#[test]
fn missing_file_uses_the_error_page() {
    let server = Server::start(ServerOpts::default());
    let resp = server.get("/nothing-here");
    assert_eq!(resp.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(resp.body, file(&server, "error404.html"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        server.get("/.hidden").status,
        404,
        "dot-files are not served"
    );
}

#[test]
fn traversal_never_reaches_the_secret_beside_the_root() {
    let server = Server::start(ServerOpts::default());
    let secret = server.root.parent().unwrap().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").unwrap();
    let attempts = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/secret.txt%00.html",
        "/link-outside.txt",
        "//../secret.txt",
        "/./../secret.txt",
    ];
    for path in attempts {
        let raw = server
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("TOP SECRET"), "{path} leaked the secret");
        let status = Response::parse(&raw).status;
        assert!(
            matches!(status, 400 | 403 | 404),
            "{path} answered {status}"
        );
    }
    // Absolute-form and a raw dot-dot request line too.
    let raw =
        server.raw(b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!String::from_utf8_lossy(&raw).contains("TOP SECRET"));
}

#[test]
fn smuggling_attempt_is_refused_and_closed() {
    let server = Server::start(ServerOpts::default());
    let attack = b"POST /plain.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    let raw = server.raw(attack);
    let resp = Response::parse_one(&raw, false).unwrap();
    assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request");
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(
        raw.len(),
        resp.consumed(&raw),
        "the smuggled request must not be answered"
    );
    let bad_length = server.request("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n");
    assert_eq!(bad_length.status, 400);
    let doubled = server
        .request("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(doubled.status, 400);
}

#[test]
fn limits_and_protocol_errors() {
    let server = Server::start(ServerOpts::default());
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_eq!(
        server.request(&long).status_line,
        "HTTP/1.1 414 URI Too Long"
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    assert_eq!(
        server.request(&big).status_line,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        server
            .request(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"))
            .status,
        431
    );
    assert_eq!(
        server.request("GET / HTTP/1.1\r\n\r\n").status_line,
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        server.request("BREW / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        501
    );
    assert_eq!(
        server.request("GET / HTTP/2.0\r\nHost: x\r\n\r\n").status,
        505
    );
    assert_eq!(
        server
            .request("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
            .status,
        400
    );
    let post = server.request(
        "POST /plain.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status_line, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    let huge =
        server.request("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n");
    assert_eq!(huge.status, 413);
    assert_eq!(server.request("garbage\r\n\r\n").status, 400);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(ServerOpts::default());
    let mut s = server.connect();
    s.write_all(
        b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let raw = read_to_close(&mut s);
    let mut rest = &raw[..];
    let mut seen = Vec::new();
    for head_request in [false, true, false, false] {
        let resp = Response::parse_one(rest, head_request).unwrap();
        let used = if head_request {
            resp.head_len
        } else {
            resp.consumed(rest)
        };
        seen.push((resp.status, resp.body.clone()));
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last response");
    assert_eq!(seen[0], (200, file(&server, "plain.txt")));
    assert_eq!(seen[1].0, 200);
    assert_eq!(seen[2].0, 404);
    assert_eq!(seen[3], (200, file(&server, "style.css")));
}

#[test]
fn keep_alive_rules_for_each_version() {
    let server = Server::start(ServerOpts::default());
    // HTTP/1.1 persists by default.
    let mut s = server.connect();
    for _ in 0..3 {
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut s, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), None);
    }
    // HTTP/1.0 closes unless asked.
    let raw = server.raw(b"GET /plain.txt HTTP/1.0\r\n\r\n");
    assert_eq!(Response::parse(&raw).header("connection"), Some("close"));
    let mut s = server.connect();
    s.write_all(b"GET /plain.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(resp.status_line, "HTTP/1.0 200 OK");
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    s.write_all(b"GET /plain.txt HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let mut tail = Vec::new();
    assert_eq!(
        s.read_to_end(&mut tail).unwrap(),
        0,
        "HTTP/1.0 without keep-alive closes"
    );
}

#[test]
fn slow_header_client_times_out_while_others_are_served() {
    let server = Server::start(ServerOpts {
        extra_config: "header_timeout_secs = 2".into(),
        ..ServerOpts::default()
    });
    let mut slow = server.connect();
    slow.write_all(b"GET /plain.txt HTTP/1.1\r\nHo").unwrap();
    let began = Instant::now();
    // While the slow client dawdles, others are answered at once.
    for _ in 0..20 {
        assert_eq!(server.get("/plain.txt").status, 200);
    }
    let _ = slow.write_all(b"st");
    let raw = read_to_close(&mut slow);
    let resp = Response::parse(&raw);
    assert_eq!(resp.status_line, "HTTP/1.1 408 Request Timeout");
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "timed out too early"
    );
}

#[test]
fn parked_idle_connections_hold_no_thread() {
    let server = Server::start(ServerOpts::default());
    let mut idle = Vec::new();
    for _ in 0..2000 {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        idle.push(s);
    }
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(read_response(s, false).status, 200);
    }
    assert_eq!(server.get("/index.html").status, 200);
    // The last responses may still be on their way from the recycler to idle.pool.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut parked = 0;
    while parked < 2000 && Instant::now() < deadline {
        parked = server.stats()["connections"]["waiting"].as_u64().unwrap();
    }
    assert_eq!(parked, 2000, "every idle connection is parked in idle.pool");
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .count();
    assert!(
        threads < 64,
        "{threads} threads for 2000 parked connections"
    );
    // Every parked connection still works.
    for s in idle.iter_mut().step_by(97) {
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(s, false).status, 200);
    }
}

#[test]
fn connection_limit_answers_503() {
    let server = Server::start(ServerOpts {
        extra_config: "max_connections = 3".into(),
        ..ServerOpts::default()
    });
    let held: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    // Make sure all three are accepted (a request on each).
    for s in &held {
        let mut s = s.try_clone().unwrap();
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
    }
    let raw = server.raw(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        Response::parse(&raw).status_line,
        "HTTP/1.1 503 Service Unavailable"
    );
    drop(held);
}

#[test]
fn access_log_is_combined_log_format() {
    let server = Server::start(ServerOpts::default());
    server.request("GET /plain.txt?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: tester \"1\"\r\nConnection: close\r\n\r\n");
    server.get("/missing");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.access_log().lines().count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = server.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let re_date = |l: &str| {
        l.split('[')
            .nth(1)
            .and_then(|r| r.split(']').next())
            .map(str::len)
    };
    // Each replica writes its own batch of lines: find each request's line wherever it is.
    let line_of = |path: &str| -> &str {
        lines
            .iter()
            .copied()
            .find(|l| l.contains(&format!("\"GET {path} HTTP/1.1\"")))
            .unwrap_or_else(|| panic!("no line for {path}: {log}"))
    };
    let (plain, missing) = (line_of("/plain.txt?q=1"), line_of("/missing"));
    assert!(plain.starts_with("127.0.0.1 - - ["));
    assert_eq!(re_date(plain), Some("21/Nov/2026:09:44:55 +0000".len()));
    assert!(
        plain
            .ends_with("\"GET /plain.txt?q=1 HTTP/1.1\" 200 19 \"http://r/\" \"tester \\\"1\\\"\""),
        "{}",
        plain
    );
    let page_len = std::fs::metadata(server.root.join("error404.html"))
        .unwrap()
        .len();
    assert!(
        missing.ends_with(&format!(
            "\"GET /missing HTTP/1.1\" 404 {page_len} \"-\" \"-\""
        )),
        "{}",
        missing
    );
}

#[test]
fn sigterm_drains_in_flight_responses() {
    let mut server = Server::start(ServerOpts::default());
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(server.root.join("big.bin"), &big).unwrap();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Read the first bytes so the response is surely in flight, then stop the server.
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).unwrap();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let mut raw = first[..n].to_vec();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed: {e}"),
        }
    }
    let resp = Response::parse(&raw);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), big.len(), "response truncated by shutdown");
    assert!(resp.body == big);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn sighup_reload_refuses_a_bad_config_and_keeps_serving() {
    let server = Server::start(ServerOpts::default());
    let good = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(&server.config_path, format!("{good}\nno_such_key = 1\n")).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_for_log("config reload refused"),
        "{}",
        server.error_log()
    );
    assert!(server.error_log().contains("no_such_key"));
    assert_eq!(server.get("/plain.txt").status, 200);
    std::fs::write(
        &server.config_path,
        format!("{good}\nmax_connections = 1000\n"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_for_log("config reloaded"),
        "{}",
        server.error_log()
    );
    assert_eq!(server.get("/plain.txt").status, 200);
}

#[test]
fn bad_command_lines_and_configs_exit_with_clear_messages() {
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::binary())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nbogus_key = 3\n").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));
    std::fs::write(&cfg, "max_connections = 0\n").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_connections"));
    let out = run(&["--listen", "127.0.0.1:0", "--root", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let root = crate::support::repo().join("html");
    let out = run(&["--listen", &addr, "--root", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for key in [
        "--config",
        "--listen",
        "--root",
        "--cgi-bin",
        "--plugins",
        "keep_alive_timeout_secs",
        "[cgi]",
    ] {
        assert!(text.contains(key), "--help lacks {key}");
    }
}
