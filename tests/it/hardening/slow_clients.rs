//! Slow clients: a thousand connections trickling their request heads (slowloris) and a
//! thousand reading answers one byte at a time, while a normal client keeps being answered.
//! The staged timeouts drop the slow ones: idle.pool answers an unfinished head 408 after
//! `header_timeout_secs`; send.pool drops a reader that takes nothing for `send_timeout_secs`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{
    assert_no_leak, assert_stats_add_up, pattern, put_file, quiet_footprint, raise_open_file_limit,
};
use crate::support::{replica_requests, Server, ServerOpts};

const SLOW: usize = 1000;

/// `count` GETs of /plain.txt, each on a new connection; returns each one's latency.
fn normal_client(server: &Server, count: usize, plain: &[u8]) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let resp = server.get("/plain.txt");
        latencies.push(started.elapsed());
        assert_eq!(
            resp.status, 200,
            "the normal client was refused: {}",
            resp.status_line
        );
        assert_eq!(resp.body, plain);
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[test]
fn slow_clients_are_dropped_while_a_normal_client_is_served() {
    raise_open_file_limit();
    let server = Server::start(ServerOpts {
        // A bounded send buffer keeps what a thousand stalled readers pin in the kernel small.
        extra_config:
            "header_timeout_secs = 10\nsend_timeout_secs = 10\nsend_buffer_bytes = 65536\n"
                .to_string(),
        ..ServerOpts::default()
    });
    let large = pattern(1 << 20);
    put_file(&server.root, "large.bin", &large);
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    normal_client(&server, 50, &plain);
    let before = quiet_footprint(&server);
    let unloaded = normal_client(&server, 300, &plain);
    let jobs_before = replica_requests(&server.stats());

    let mut lorises = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .unwrap();
        s.set_nonblocking(true).unwrap();
        lorises.push(Some(s));
    }
    let mut readers = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.addr().into()).unwrap();
        let mut s: TcpStream = socket.into();
        s.write_all(b"GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        s.set_nonblocking(true).unwrap();
        readers.push(s);
    }
    let slow_connected = Instant::now();
    let stop = AtomicBool::new(false);
    let (timed_out, closed, read_bytes) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let (mut burst, mut loaded) = (Vec::new(), Vec::new());
    let mut dropped_after = None;
    std::thread::scope(|scope| {
        let (stop, timed_out, closed, read_bytes) = (&stop, &timed_out, &closed, &read_bytes);
        scope.spawn(move || {
            // Slowloris: one more header byte per connection every 250 ms. After the server
            // has dropped them all (stop), two more passes read the answers already sent.
            let mut open = SLOW;
            let mut passes_after_stop = 0;
            while open > 0 && passes_after_stop < 2 {
                if stop.load(Ordering::Relaxed) {
                    passes_after_stop += 1;
                }
                for slot in lorises.iter_mut() {
                    let Some(s) = slot else { continue };
                    let mut answer = [0u8; 64];
                    let finished = match s.read(&mut answer) {
                        Ok(0) => {
                            closed.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Ok(_) => {
                            assert!(
                                answer.starts_with(b"HTTP/1.1 408 "),
                                "{:?}",
                                String::from_utf8_lossy(&answer)
                            );
                            timed_out.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => s.write(b"a").is_err(),
                        Err(_) => {
                            closed.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                    };
                    if finished {
                        *slot = None;
                        open -= 1;
                    }
                }
                std::thread::park_timeout(Duration::from_millis(250));
            }
        });
        scope.spawn(move || {
            // Readers taking one byte per connection every 50 ms; they never close.
            let mut byte = [0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                for s in readers.iter_mut() {
                    if let Ok(1) = s.read(&mut byte) {
                        read_bytes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
        // While the thousand readers' first bytes go out, then once every one of them is
        // waiting in send.pool (the replicas have read all their requests).
        burst = normal_client(&server, 100, &plain);
        let deadline = Instant::now() + Duration::from_secs(30);
        while replica_requests(&server.stats()) < jobs_before + SLOW as u64 {
            assert!(
                Instant::now() < deadline,
                "the readers' requests were not all taken"
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
        loaded = normal_client(&server, 300, &plain);
        // The server drops every slow connection while the clients still hold them open:
        // only the connection asking for the statistics is left.
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if server.stats()["connections"]["active"].as_u64() == Some(1) {
                dropped_after = Some(slow_connected.elapsed());
                break;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let dropped_after = dropped_after.expect("the server still holds slow connections after 90 s");
    let (p50, p99) = (percentile(&unloaded, 0.5), percentile(&unloaded, 0.99));
    let (loaded_p50, loaded_p99) = (percentile(&loaded, 0.5), percentile(&loaded, 0.99));
    let (burst_p50, burst_p99) = (percentile(&burst, 0.5), percentile(&burst, 0.99));
    println!(
        "slow clients: normal client p50/p99 unloaded {:?}/{:?}, during the readers' first \
         writes {:?}/{:?}, with all {} slow clients waiting {:?}/{:?}; dropped after \
         {dropped_after:?} ({} answered 408, {} closed; readers took {} bytes)",
        p50,
        p99,
        burst_p50,
        burst_p99,
        2 * SLOW,
        loaded_p50,
        loaded_p99,
        timed_out.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
        read_bytes.load(Ordering::Relaxed)
    );
    assert_eq!(
        timed_out.load(Ordering::Relaxed) + closed.load(Ordering::Relaxed),
        SLOW as u64
    );
    assert!(read_bytes.load(Ordering::Relaxed) < (SLOW * large.len()) as u64);
    assert_no_leak(&server, &before, "after dropping 2,000 slow clients");
    assert_stats_add_up(&server);
}
