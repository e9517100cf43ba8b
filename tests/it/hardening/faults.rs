//! Injected faults around static files: clients resetting mid-response, files truncated or
//! deleted while being sent, the access log becoming unwritable, file descriptors running
//! out, and a broken config reloaded under load.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{
    assert_no_leak, assert_serves, assert_stats_add_up, exchange, pattern, put_file,
    quiet_footprint, Outcome,
};
use crate::support::{read_response, Server, ServerOpts};

const BIG: usize = 16 << 20;

/// Connects with a small receive buffer, so the server's writes soon wait on the client.
fn slow_connect(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads the head and `at_least` body bytes of a response; returns (head length, Content-Length, bytes read).
fn read_some(s: &mut TcpStream, at_least: usize) -> (usize, usize, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed early: {:?}",
            String::from_utf8_lossy(&got[..got.len().min(200)])
        );
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + at_least {
                let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap();
                return (end + 4, length, got);
            }
        }
    }
}

/// Closes with an RST (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

#[test]
fn clients_resetting_mid_sendfile_leave_nothing_behind() {
    let server = Server::start(ServerOpts::default());
    let big = pattern(BIG);
    put_file(&server.root, "big.bin", &big);
    assert_serves(&server, "/big.bin", &big);
    let before = quiet_footprint(&server);
    std::thread::scope(|scope| {
        for worker in 0..4usize {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10usize {
                    let mut s = slow_connect(server);
                    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        .unwrap();
                    if (worker + i) % 3 != 0 {
                        // Mid-body: the server is inside sendfile, waiting on this client.
                        read_some(&mut s, 64 * 1024 * ((worker + i) % 4));
                    }
                    reset(s);
                }
            });
        }
    });
    assert_serves(&server, "/big.bin", &big);
    assert_serves(
        &server,
        "/plain.txt",
        &std::fs::read(server.root.join("plain.txt")).unwrap(),
    );
    assert_no_leak(&server, &before, "after 40 resets mid-response");
    assert_stats_add_up(&server);
}

#[test]
fn a_file_truncated_while_sent_ends_the_response_short_and_closes() {
    let server = Server::start(ServerOpts::default());
    let big = pattern(BIG);
    put_file(&server.root, "shrinks.bin", &big);
    assert_serves(&server, "/shrinks.bin", &big);
    let before = quiet_footprint(&server);

    let mut s = slow_connect(&server);
    s.write_all(b"GET /shrinks.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (head_len, length, mut got) = read_some(&mut s, 256 * 1024);
    assert_eq!(length, BIG);
    // The server is blocked in sendfile on this client; the file shrinks under it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(server.root.join("shrinks.bin"))
        .unwrap()
        .set_len(1000)
        .unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the response neither finished nor closed: {e}"),
        }
    }
    let body = &got[head_len..];
    // The connection is closed short of the announced length, so the client can tell the
    // response is incomplete and discards it. (Which bytes arrived is not checked: sendfile
    // queues references to the file's pages, not copies, and a page truncated while queued
    // need not keep its old bytes; see docs/RELIABILITY.md.)
    assert!(
        body.len() < BIG,
        "a truncated file was sent whole ({} bytes)",
        body.len()
    );
    assert_serves(&server, "/shrinks.bin", &big[..1000]);
    assert_no_leak(&server, &before, "after a file shrank mid-send");
    assert_stats_add_up(&server);
}

#[test]
fn a_file_deleted_while_sent_is_still_sent_whole() {
    let server = Server::start(ServerOpts::default());
    let big = pattern(BIG);
    put_file(&server.root, "goes.bin", &big);
    let before = quiet_footprint(&server);

    let mut s = slow_connect(&server);
    s.write_all(b"GET /goes.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head_len, length, mut got) = read_some(&mut s, 256 * 1024);
    assert_eq!(length, BIG);
    std::fs::remove_file(server.root.join("goes.bin")).unwrap();
    s.read_to_end(&mut got).unwrap();
    assert!(
        got[head_len..] == big[..],
        "the body of a deleted file differs ({} bytes)",
        got.len() - head_len
    );
    assert_eq!(server.get("/goes.bin").status, 404);
    assert_no_leak(&server, &before, "after a file was deleted mid-send");
    assert_stats_add_up(&server);
}

/// Rewrites the server's config with `access_log` set to `path`, and reloads it.
fn reload_with_access_log(server: &Server, path: &str) {
    let error_log = server.dir.path().join("error.log");
    let text = format!(
        "access_log = {path:?}\nerror_log = {:?}\n",
        error_log.to_string_lossy()
    );
    std::fs::write(&server.config_path, text).unwrap();
    server.signal(Signal::SIGHUP);
}

/// Counts lines in `path` until there are at least `n` (bounded wait).
fn wait_for_lines(path: &std::path::Path, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

#[test]
fn an_unwritable_access_log_never_stops_the_serving() {
    let server = Server::start(ServerOpts::default());
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    assert_serves(&server, "/plain.txt", &plain);
    let before = quiet_footprint(&server);
    let logs = server.dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let access = logs.join("access.log");
    let access_text = access.to_string_lossy().into_owned();
    reload_with_access_log(&server, &access_text);
    assert!(server.wait_for_log("config reloaded"));
    assert_serves(&server, "/plain.txt", &plain);
    assert!(
        wait_for_lines(&access, 1) >= 1,
        "the new access log is written"
    );

    // A full disk: every write fails with ENOSPC.
    reload_with_access_log(&server, "/dev/full");
    assert!(server.wait_for_log(&format!(
        "config reloaded from {}",
        server.config_path.display()
    )));
    for _ in 0..50 {
        assert_serves(&server, "/plain.txt", &plain);
    }
    // The log's directory is replaced by a file: the log cannot even be opened.
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, b"not a directory").unwrap();
    reload_with_access_log(&server, &access_text);
    for _ in 0..50 {
        assert_serves(&server, "/plain.txt", &plain);
    }
    // Repaired: the log is written again.
    std::fs::remove_file(&logs).unwrap();
    std::fs::create_dir(&logs).unwrap();
    reload_with_access_log(&server, &access_text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !access.exists() && Instant::now() < deadline {
        assert_serves(&server, "/plain.txt", &plain);
    }
    assert_serves(&server, "/plain.txt", &plain);
    assert!(
        wait_for_lines(&access, 1) >= 1,
        "the repaired access log is written again"
    );
    assert_no_leak(&server, &before, "after the access log failed");
    assert_stats_add_up(&server);
}

#[test]
fn running_out_of_file_descriptors_gives_503_then_recovers() {
    super::raise_open_file_limit();
    let limit = 64;
    let server = Server::start(ServerOpts {
        max_open_files: Some(limit),
        ..ServerOpts::default()
    });
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    assert_serves(&server, "/plain.txt", &plain);
    let before = quiet_footprint(&server);
    let refused_before = server.stats()["connections"]["refused"].as_u64().unwrap();

    // Far more idle connections than descriptors: each one is either taken (the server holds
    // its socket) or answered 503 at once.
    let mut held = Vec::new();
    let mut busy = 0u64;
    for _ in 0..(2 * limit) {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_nonblocking(true).unwrap();
        let port = s.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => {
                    assert!(
                        buf.starts_with(b"HTTP/1.1 503 "),
                        "{:?}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    busy += 1;
                    break;
                }
                Ok(_) => panic!("closed without an answer"),
                Err(_) if server_holds(&server, port) => {
                    held.push(s);
                    break;
                }
                Err(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "connection {} neither taken nor refused",
                        held.len() as u64 + busy
                    );
                    std::thread::park_timeout(Duration::from_millis(5));
                }
            }
        }
    }
    assert!(
        busy > 0,
        "no connection was refused with 503 at {limit} descriptors"
    );
    assert!(!held.is_empty());
    // The connections that were accepted are still served (or told the server is busy, if
    // opening the file needs a descriptor there is none of).
    for s in held.iter_mut().take(4) {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let resp = read_response(s, false);
        assert!(
            resp.status == 200 || resp.status == 503,
            "{}",
            resp.status_line
        );
        if resp.status == 200 {
            assert_eq!(resp.body, plain);
        }
    }
    drop(held);
    // Recovered once the server has closed its ends: every answer until then is 503 or 200.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = server.get("/plain.txt");
        if resp.status == 200 {
            assert_eq!(resp.body, plain);
            break;
        }
        assert_eq!(resp.status, 503, "{}", resp.status_line);
        assert!(
            Instant::now() < deadline,
            "still 503 after the connections closed"
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let stats = assert_stats_add_up(&server);
    let refused = stats["connections"]["refused"].as_u64().unwrap() - refused_before;
    assert!(refused >= busy, "{refused} refusals counted, {busy} seen");
    assert_no_leak(&server, &before, "after running out of descriptors");
}

#[test]
fn a_broken_config_reloaded_under_load_changes_nothing() {
    let server = Server::start(ServerOpts::default());
    let medium = pattern(64 * 1024);
    put_file(&server.root, "medium.bin", &medium);
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    assert_serves(&server, "/medium.bin", &medium);
    let before = quiet_footprint(&server);
    let good = std::fs::read_to_string(&server.config_path).unwrap();
    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let broken = [
        "this is not toml [",
        "header_timeout_secs = 0\n",
        "no_such_key = 1\n",
        "max_connections = \"many\"\n",
        "[cgi]\nmax = 0\n",
    ];
    std::thread::scope(|scope| {
        for worker in 0..3usize {
            let (server, stop, served, medium, plain) = (&server, &stop, &served, &medium, &plain);
            scope.spawn(move || {
                let mut s = server.connect();
                for i in 0..2000usize {
                    if stop.load(Ordering::Relaxed) && i > 50 {
                        break;
                    }
                    let (path, want) = if (worker + i) % 2 == 0 {
                        ("/medium.bin", medium)
                    } else {
                        ("/plain.txt", plain)
                    };
                    s.write_all(
                        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
                    )
                    .unwrap();
                    let resp = read_response(&mut s, false);
                    assert_eq!(resp.status, 200, "{path} during reloads");
                    assert!(resp.body == *want, "{path}: wrong body during reloads");
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for (n, text) in broken.iter().enumerate() {
            std::fs::write(&server.config_path, format!("{good}{text}")).unwrap();
            server.signal(Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(20);
            while server.error_log().matches("config reload refused").count() <= n
                && Instant::now() < deadline
            {
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        server.error_log().matches("config reload refused").count(),
        broken.len(),
        "{}",
        server.error_log()
    );
    assert!(served.load(Ordering::Relaxed) > 150);
    // The old config still holds: a request that a zero header timeout would refuse is served.
    std::fs::write(&server.config_path, &good).unwrap();
    assert_serves(&server, "/plain.txt", &plain);
    assert!(
        matches!(exchange(server.addr(), b"GET /medium.bin HTTP/1.0\r\n\r\n"), Outcome::Complete(200, ref b) if *b == medium)
    );
    assert_no_leak(&server, &before, "after broken reloads under load");
    assert_stats_add_up(&server);
}

/// Whether the server process holds the accepted end of the client connection from `port`
/// (`/proc/net/tcp` gives the socket's inode, `/proc/PID/fd` the process's sockets).
fn server_holds(server: &Server, port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{:04X}", server.addr().port());
    let remote = format!(":{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let matches = fields.get(1).is_some_and(|l| l.ends_with(&local))
            && fields.get(2).is_some_and(|r| r.ends_with(&remote));
        matches.then(|| fields.get(9).copied().unwrap_or("0").to_string())
    });
    let Some(inode) = inode.filter(|i| i != "0") else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == wanted))
}
