//! Hardening: slow clients, injected faults, graceful shutdown and the differential check,
//! over real sockets against the real server binary.
//!
//! After every fault the server must still answer correctly, hold no more sockets, files,
//! pipes or threads than before (farm workers come and go, so threads are counted outside the
//! farms), and report statistics that add up. `docs/RELIABILITY.md` records what these tests
//! found and the figures they print.

mod cgi_faults;
mod faults;
mod protocol;
mod shutdown;
mod slow_clients;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Response, Server};

/// Raises this process's soft open-file limit to the hard one (the tests open thousands of
/// sockets; the hard limit here is 20,000).
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

/// `len` bytes that differ from one offset to the next, so a misplaced byte is noticed.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect()
}

/// What the server process holds, read from `/proc/PID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub sockets: usize,
    /// Regular files and devices: logs, `/dev/null` held in reserve, files being sent.
    pub files: usize,
    /// Pipes, epoll and event descriptors.
    pub plumbing: usize,
    /// Handles on the document root (one per static worker that has served).
    pub root_handles: usize,
    /// Threads that are not farm workers (farms grow and shrink on their own).
    pub fixed_threads: isize,
}

/// Reads the footprint; `farm_workers` comes from `/stats.json`.
pub fn footprint(server: &Server) -> Footprint {
    let farm_workers = farm_workers(&server.stats());
    let pid = server.pid();
    let root = std::fs::canonicalize(&server.root).unwrap();
    let mut print = Footprint {
        sockets: 0,
        files: 0,
        plumbing: 0,
        root_handles: 0,
        fixed_threads: 0,
    };
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let text = target.to_string_lossy();
        if text.starts_with("socket:") {
            print.sockets += 1;
        } else if text.starts_with("pipe:") || text.starts_with("anon_inode:") {
            print.plumbing += 1;
        } else if target == root {
            print.root_handles += 1;
        } else {
            print.files += 1;
        }
    }
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    print.fixed_threads = threads as isize - farm_workers as isize;
    print
}

/// Workers of every farm, from a `/stats.json` snapshot.
pub fn farm_workers(stats: &serde_json::Value) -> u64 {
    stats["farms"].as_object().map_or(0, |farms| {
        farms.values().filter_map(|f| f["total"].as_u64()).sum()
    })
}

/// The footprint with no client connected: sampled until two readings agree.
pub fn quiet_footprint(server: &Server) -> Footprint {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = footprint(server);
    loop {
        std::thread::park_timeout(Duration::from_millis(50));
        let now = footprint(server);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Waits (bounded) until the server holds no more than it did in `before`: connections
/// close asynchronously, and a farm worker may be forking or retiring during a reading.
pub fn assert_no_leak(server: &Server, before: &Footprint, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = footprint(server);
        let settled = now.sockets <= before.sockets
            && now.files <= before.files
            && now.plumbing <= before.plumbing
            && now.fixed_threads == before.fixed_threads;
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server holds more than before\nbefore {before:?}\nafter  {now:?}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Checks that `/stats.json` adds up: every request is counted once by status class and
/// once by handler, and bytes sent include the bodies. Returns the snapshot.
pub fn assert_stats_add_up(server: &Server) -> serde_json::Value {
    let stats = server.stats();
    let requests = &stats["requests"];
    let total = requests["total"].as_u64().unwrap();
    let by_class: u64 = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| requests["status"][c].as_u64().unwrap())
        .sum();
    let by_handler: u64 = requests["handlers"]
        .as_object()
        .unwrap()
        .values()
        .map(|h| h["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        by_class, total,
        "status classes do not add up to the total: {requests}"
    );
    assert_eq!(
        by_handler, total,
        "handlers do not add up to the total: {requests}"
    );
    let bytes = &stats["bytes"];
    assert!(
        bytes["sent"].as_u64().unwrap() >= bytes["body_sent"].as_u64().unwrap(),
        "{bytes}"
    );
    stats
}

/// A plain GET on a fresh connection, checked against the file's bytes.
pub fn assert_serves(server: &Server, path: &str, expected: &[u8]) {
    let resp = server.get(path);
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.status_line);
    assert!(
        resp.body == expected,
        "GET {path}: {} bytes, not the file's {}",
        resp.body.len(),
        expected.len()
    );
}

/// Writes `bytes` as a file of the document root.
pub fn put_file(root: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(root.join(name), bytes).unwrap();
}

/// How one request on its own connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status and body.
    Complete(u16, Vec<u8>),
    /// Refused before any byte of a response: connect failed, or the connection was closed
    /// or reset without an answer.
    Refused,
    /// Some bytes of a response, then the connection ended.
    Partial(usize),
    /// Nothing more arrived for 20 s, after this many bytes.
    Hung(usize),
}

/// Sends `raw` on a fresh connection and reads one response (framed by Content-Length).
pub fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Outcome::Refused;
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if s.write_all(raw).is_err() {
        return Outcome::Refused;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(resp) = Response::parse_one(&got, false) {
            let framed = resp.header("content-length").is_some();
            if framed {
                return Outcome::Complete(resp.status, resp.body);
            }
        }
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::Hung(got.len())
            }
            Ok(0) | Err(_) if got.is_empty() => return Outcome::Refused,
            Ok(0) | Err(_) => return Outcome::Partial(got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}
