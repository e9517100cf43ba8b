//! Graceful shutdown: SIGTERM under load loses no accepted request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{exchange, pattern, put_file, Outcome};
use crate::support::{Response, Server, ServerOpts};

/// Reads responses from a keep-alive connection: the next one, or how the connection ended.
fn next_on(s: &mut TcpStream, pending: &mut Vec<u8>) -> Outcome {
    let mut buf = [0u8; 65536];
    loop {
        if let Some(resp) = Response::parse_one(pending, false) {
            if resp.header("content-length").is_some() {
                let used = resp.consumed(pending);
                pending.drain(..used);
                return Outcome::Complete(resp.status, resp.body);
            }
        }
        match s.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::Hung(pending.len())
            }
            Ok(0) | Err(_) if pending.is_empty() => return Outcome::Refused,
            Ok(0) | Err(_) => return Outcome::Partial(pending.len()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn sigterm_under_load_loses_no_accepted_request() {
    let mut server = Server::start(ServerOpts::default());
    let files = [
        ("small.bin", pattern(2000)),
        ("large.bin", pattern(1 << 20)),
    ];
    for (name, bytes) in &files {
        put_file(&server.root, name, bytes);
    }
    let completed = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let addr = server.addr();
    std::thread::scope(|scope| {
        for worker in 0..6usize {
            let (files, completed, refused, stopped, failures) =
                (&files, &completed, &refused, &stopped, &failures);
            scope.spawn(move || {
                // Half the clients open a connection per request, half keep one alive.
                let mut kept: Option<(TcpStream, Vec<u8>)> = None;
                for i in 0..5000usize {
                    let (name, bytes) = &files[(worker + i) % 2];
                    let raw = format!("GET /{name} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                    let outcome = if worker % 2 == 0 {
                        exchange(addr, raw.as_bytes())
                    } else {
                        if kept.is_none() {
                            kept = TcpStream::connect(addr).ok().map(|s| {
                                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                                (s, Vec::new())
                            });
                        }
                        match kept.as_mut() {
                            None => Outcome::Refused,
                            Some((s, pending)) => {
                                if s.write_all(raw.as_bytes()).is_err() {
                                    Outcome::Refused
                                } else {
                                    next_on(s, pending)
                                }
                            }
                        }
                    };
                    match outcome {
                        Outcome::Complete(200, body) if body == *bytes => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Complete(503, _) | Outcome::Refused => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            kept = None;
                            if stopped.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                        other => {
                            let what = match other {
                                Outcome::Complete(status, body) => {
                                    format!("{status} with {} bytes", body.len())
                                }
                                other => format!("{other:?}"),
                            };
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("GET /{name}: {what}"));
                            return;
                        }
                    }
                }
            });
        }
        // Let the load run until a few hundred requests are through, then stop the server.
        let deadline = Instant::now() + Duration::from_secs(60);
        while completed.load(Ordering::Relaxed) < 300 && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        server.signal(Signal::SIGTERM);
        stopped.store(true, Ordering::Relaxed);
        let code = server.wait_exit(Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "the server did not exit cleanly after SIGTERM"
        );
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "requests lost or cut at shutdown: {failures:?}"
    );
    let (done, refused) = (
        completed.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    println!("shutdown under load: {done} complete responses, {refused} clean refusals, none cut");
    assert!(
        done >= 300,
        "only {done} requests completed before the shutdown"
    );
}
