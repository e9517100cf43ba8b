//! The per-core replicas: their number follows `cores`, new connections spread over them (by
//! the least loaded with `spread_slack = 1`, within the slack by default), a connection stays
//! on the replica that took it, SIGHUP and SIGTERM reach every one, and the statistics add up
//! across them.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{read_response, replica_requests, Response, Server, ServerOpts};

fn server_with(extra: &str) -> Server {
    Server::start(ServerOpts {
        extra_config: format!("{extra}\n[cache]\nenabled = false\n"),
        ..ServerOpts::default()
    })
}

/// Two replicas that send every new connection to the least loaded one, so that two
/// connections opened one after the other live on different replicas (idle ones count too,
/// however slowly the test runs).
const TWO_EVEN: &str = "cores = 2\nspread_slack = 1\nspread_idle_ms = 0";

/// Each replica's `field` from `/stats.json`, in order.
fn per_replica(stats: &Value, field: &str) -> Vec<u64> {
    stats["replicas"]
        .as_array()
        .expect("replicas in /stats.json")
        .iter()
        .map(|r| r[field].as_u64().expect("a replica's number"))
        .collect()
}

/// Threads of the server named `replica#N`.
fn replica_threads(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("replica#"))
        .count()
}

/// A keep-alive connection that has had one answer (so its replica has taken it).
fn keep_alive(server: &Server) -> TcpStream {
    let mut s = server.connect();
    assert_eq!(get(&mut s, "/plain.txt").status, 200);
    s
}

fn get(s: &mut TcpStream, path: &str) -> Response {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    read_response(s, false)
}

/// Sends `n` requests on `s` and returns how many more requests each replica read meanwhile
/// (counted from two status pages, each read by some replica too).
fn requests_by_replica(server: &Server, s: &mut TcpStream, n: u64) -> Vec<u64> {
    let before = per_replica(&server.stats(), "requests");
    for _ in 0..n {
        assert_eq!(get(s, "/plain.txt").status, 200);
    }
    let after = per_replica(&server.stats(), "requests");
    before.iter().zip(&after).map(|(b, a)| a - b).collect()
}

/// The replica that read `n` requests, given the deltas of `requests_by_replica`: exactly one
/// replica has them all (one more if it also read the second status page).
fn the_one_replica(deltas: &[u64], n: u64) -> usize {
    let owners: Vec<usize> = (0..deltas.len())
        .filter(|&i| deltas[i] >= n && deltas[i] <= n + 1)
        .collect();
    assert_eq!(owners.len(), 1, "requests spread over replicas: {deltas:?}");
    for (i, &d) in deltas.iter().enumerate() {
        if i != owners[0] {
            assert!(
                d <= 1,
                "another replica read this connection's requests: {deltas:?}"
            );
        }
    }
    owners[0]
}

#[test]
fn the_replica_count_follows_cores() {
    for cores in [1usize, 3] {
        let server = server_with(&format!("cores = {cores}"));
        let stats = server.stats();
        assert_eq!(stats["replicas"].as_array().unwrap().len(), cores);
        assert_eq!(replica_threads(&server), cores);
    }
    // By default, one replica per core the process may use.
    let server = server_with("");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(server.stats()["replicas"].as_array().unwrap().len(), cores);
    assert_eq!(replica_threads(&server), cores);
}

#[test]
fn a_connection_never_changes_replica_and_new_ones_spread() {
    let server = server_with(TWO_EVEN);
    let mut a = keep_alive(&server);
    let mut b = keep_alive(&server);
    // Two connections open at once go to different replicas, each taking all of its own.
    let first_a = the_one_replica(&requests_by_replica(&server, &mut a, 30), 30);
    let first_b = the_one_replica(&requests_by_replica(&server, &mut b, 30), 30);
    assert_ne!(first_a, first_b, "both connections went to one replica");
    // Later requests, after others ran on the other replica, stay where they were.
    for _ in 0..3 {
        assert_eq!(
            the_one_replica(&requests_by_replica(&server, &mut a, 20), 20),
            first_a
        );
        assert_eq!(
            the_one_replica(&requests_by_replica(&server, &mut b, 20), 20),
            first_b
        );
    }
    // A connection that went off its core (a status page is rendered by the stats process)
    // comes home to the same replica.
    a.write_all(b"GET /stats.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut a, false).status, 200);
    assert_eq!(
        the_one_replica(&requests_by_replica(&server, &mut a, 20), 20),
        first_a
    );
}

#[test]
fn a_few_connections_gather_on_one_replica() {
    // Ten connections opened one after the other, with the default slack of 16: whichever
    // replica the kernel wakes for each, they all live on the first one's replica.
    let server = server_with("cores = 2");
    let mut conns: Vec<TcpStream> = (0..10).map(|_| keep_alive(&server)).collect();
    for s in conns.iter_mut() {
        assert_eq!(get(s, "/plain.txt").status, 200);
    }
    // (The status page's own connection gathers there too.)
    let mut open = per_replica(&server.stats(), "open");
    open.sort_unstable();
    assert_eq!(open, [0, 11], "not gathered");
}

#[test]
fn idle_connections_do_not_keep_busy_ones_apart() {
    // 40 connections that made one request each, then idle: they spread over the two
    // replicas within the slack, and once idle for spread_idle_ms count for nothing. Ten busy
    // connections opened then all gather on one replica.
    let server = server_with("cores = 2\nspread_slack = 16\nspread_idle_ms = 300");
    let idle: Vec<TcpStream> = (0..40).map(|_| keep_alive(&server)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let before = loop {
        // (The status page's own connection is busy while it is read.)
        let stats = server.stats();
        if per_replica(&stats, "busy").iter().sum::<u64>() <= 1 {
            break per_replica(&stats, "open");
        }
        assert!(std::time::Instant::now() < deadline, "never idle: {stats}");
    };
    assert_eq!(before.iter().sum::<u64>(), 41, "{before:?}");
    let mut busy: Vec<TcpStream> = (0..10).map(|_| keep_alive(&server)).collect();
    for s in busy.iter_mut() {
        assert_eq!(get(s, "/plain.txt").status, 200);
    }
    // (Each count has one status page connection in it, maybe on different replicas.)
    let after = per_replica(&server.stats(), "open");
    let gained: Vec<i64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| *a as i64 - *b as i64)
        .collect();
    assert_eq!(gained.iter().sum::<i64>(), 10, "{before:?} -> {after:?}");
    assert!(
        gained.iter().any(|&n| n >= 10),
        "busy connections split: {before:?} -> {after:?}"
    );
    drop(idle);
}

#[test]
fn connections_spread_within_the_slack() {
    // The default slack is 16: a new connection goes to the busiest replica that holds fewer
    // than 16 more than the other. However the kernel hands out the 40 connections, neither
    // replica ends up with more than 16 above the other, so neither has fewer than 12. (Idle
    // connections count too here, however slowly the test opens them.)
    let server = server_with("cores = 2\nspread_idle_ms = 0");
    let conns: Vec<TcpStream> = (0..40).map(|_| keep_alive(&server)).collect();
    // (The status page's own connection is open too while it is read.)
    let open = per_replica(&server.stats(), "open");
    assert!((40..=41).contains(&open.iter().sum::<u64>()), "{open:?}");
    assert!(open.iter().all(|&n| n >= 12), "not spread: {open:?}");
    let accepted = per_replica(&server.stats(), "accepted");
    assert_eq!(
        accepted.iter().sum::<u64>(),
        42,
        "40 and two status pages: {accepted:?}"
    );
    drop(conns);
    // With a slack of 100 and the same 40 connections, nothing forces a move: the
    // connections stay wherever they were accepted, and all are still answered.
    let server = server_with("cores = 2\nspread_slack = 100\nspread_idle_ms = 0");
    let mut conns: Vec<TcpStream> = (0..40).map(|_| keep_alive(&server)).collect();
    for s in conns.iter_mut() {
        assert_eq!(get(s, "/plain.txt").status, 200);
    }
    let open = per_replica(&server.stats(), "open");
    assert!((40..=41).contains(&open.iter().sum::<u64>()), "{open:?}");
}

#[test]
fn statistics_add_up_across_replicas() {
    let server = server_with(TWO_EVEN);
    let mut conns: Vec<TcpStream> = (0..6).map(|_| keep_alive(&server)).collect();
    for round in 0..10 {
        for s in conns.iter_mut() {
            let path = if round % 3 == 0 {
                "/missing"
            } else {
                "/plain.txt"
            };
            get(s, path);
        }
    }
    drop(conns);
    let stats = server.stats();
    let accepted = per_replica(&stats, "accepted");
    assert!(
        accepted.iter().all(|&n| n >= 3),
        "six connections were not spread: {accepted:?}"
    );
    // Every connection and request was taken by exactly one replica; the page now being
    // rendered was read but is not yet counted as answered.
    assert_eq!(
        accepted.iter().sum::<u64>(),
        stats["connections"]["handled"].as_u64().unwrap()
    );
    assert_eq!(
        replica_requests(&stats),
        stats["requests"]["total"].as_u64().unwrap() + 1
    );
    assert_eq!(stats["requests"]["total"].as_u64().unwrap(), 66);
}

#[test]
fn sighup_reaches_every_replica() {
    let server = server_with(TWO_EVEN);
    let errors_one = server.dir.path().join("errors-one");
    let errors_two = server.dir.path().join("errors-two");
    std::fs::create_dir_all(&errors_one).unwrap();
    std::fs::create_dir_all(&errors_two).unwrap();
    std::fs::write(errors_one.join("error404.html"), "first edition\n").unwrap();
    std::fs::write(errors_two.join("error404.html"), "second edition\n").unwrap();
    let config = std::fs::read_to_string(&server.config_path).unwrap();
    let with_pages = |dir: &std::path::Path| {
        config.replacen(
            "\n",
            &format!("\nerror_pages = {:?}\n", dir.to_string_lossy()),
            1,
        )
    };
    std::fs::write(&server.config_path, with_pages(&errors_one)).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_for_log("config reloaded"));

    let mut a = keep_alive(&server);
    let mut b = keep_alive(&server);
    let on_a = the_one_replica(&requests_by_replica(&server, &mut a, 5), 5);
    let on_b = the_one_replica(&requests_by_replica(&server, &mut b, 5), 5);
    assert_ne!(on_a, on_b);
    for s in [&mut a, &mut b] {
        assert_eq!(get(s, "/missing").body, b"first edition\n");
    }
    let reloads = server.error_log().matches("config reloaded").count();
    std::fs::write(&server.config_path, with_pages(&errors_two)).unwrap();
    server.signal(Signal::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.error_log().matches("config reloaded").count() == reloads {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    // Both replicas answer their old connections from the new config.
    for s in [&mut a, &mut b] {
        assert_eq!(get(s, "/missing").body, b"second edition\n");
    }
}

#[test]
fn sigterm_reaches_every_replica() {
    let mut server = server_with(TWO_EVEN);
    let mut a = keep_alive(&server);
    let mut b = keep_alive(&server);
    let on_a = the_one_replica(&requests_by_replica(&server, &mut a, 3), 3);
    let on_b = the_one_replica(&requests_by_replica(&server, &mut b, 3), 3);
    assert_ne!(on_a, on_b);
    server.signal(Signal::SIGTERM);
    // Each replica closes the idle connection it holds, and the server exits 0.
    for s in [&mut a, &mut b] {
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let got = std::io::Read::read_to_end(s, &mut rest);
        assert!(got.is_ok(), "{got:?}");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
}
