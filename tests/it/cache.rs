//! The page cache over real sockets: admission, byte-identical answers, staleness, budget.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{read_response, read_to_close, Response, Server, ServerOpts};

/// Requests `path` until the server reports it cached (bounded), then returns.
fn warm(server: &Server, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        server.get(path);
        let stats = server.stats();
        let rows = stats["cache"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rows
            .iter()
            .any(|r| r["path"] == path && r["state"] == "cached")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} was never cached: {}", server.stats()["cache"]);
}

/// Raw bytes of one response, with the Date header blanked (it may tick between requests).
fn raw_without_date(server: &Server, request: &str) -> Vec<u8> {
    let raw = server.raw(request.as_bytes());
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut out = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with("Date: ") {
            out.extend_from_slice(b"Date: -\r\n");
        } else {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out
}

fn cached_hits(server: &Server) -> u64 {
    server.stats()["requests"]["handlers"]["cache"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn cached_answers_are_byte_identical_to_uncached_ones() {
    let cold = Server::start(ServerOpts {
        extra_config: "[cache]\nenabled = false".into(),
        ..ServerOpts::default()
    });
    let hot = Server::start(ServerOpts::default());
    std::fs::copy(cold.root.join("plain.txt"), hot.root.join("plain.txt")).unwrap();
    // Same mtime on both copies, so the validators agree.
    let mtime = std::fs::metadata(cold.root.join("plain.txt"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(hot.root.join("plain.txt"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    warm(&hot, "/plain.txt");
    let etag = cold.get("/plain.txt").header("etag").unwrap().to_string();
    let requests = [
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "HEAD /plain.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        format!("GET /plain.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\nConnection: close\r\n\r\n".to_string(),
        "GET /plain.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=500-\r\nConnection: close\r\n\r\n".to_string(),
        "GET /plain.txt HTTP/1.0\r\n\r\n".to_string(),
    ];
    let before = cached_hits(&hot);
    for request in &requests {
        assert_eq!(
            String::from_utf8_lossy(&raw_without_date(&hot, request)),
            String::from_utf8_lossy(&raw_without_date(&cold, request)),
            "differs for {request:?}"
        );
    }
    assert!(
        cached_hits(&hot) >= before + requests.len() as u64,
        "answers did not come from the cache"
    );
    // Keep-alive survives a cached answer.
    let mut s = hot.connect();
    for _ in 0..3 {
        s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, false).body, b"plain text fixture\n");
    }
}

#[test]
fn large_cached_bodies_are_byte_identical_whole_in_ranges_and_pipelined() {
    let cold = Server::start(ServerOpts {
        extra_config: "[cache]\nenabled = false".into(),
        ..ServerOpts::default()
    });
    let hot = Server::start(ServerOpts::default());
    let body: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for server in [&cold, &hot] {
        std::fs::write(server.root.join("large.bin"), &body).unwrap();
    }
    let mtime = std::fs::metadata(cold.root.join("large.bin"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(hot.root.join("large.bin"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    warm(&hot, "/large.bin");
    let requests = [
        "GET /large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HEAD /large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /large.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5000-5099\r\nConnection: close\r\n\r\n",
        "GET /large.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-300\r\nConnection: close\r\n\r\n",
        "GET /large.bin HTTP/1.0\r\n\r\n",
    ];
    let before = cached_hits(&hot);
    for request in requests {
        assert_eq!(
            raw_without_date(&hot, request),
            raw_without_date(&cold, request),
            "differs for {request:?}"
        );
    }
    assert!(cached_hits(&hot) >= before + requests.len() as u64);
    // Pipelined on one connection: each body whole, in order, the connection kept.
    let mut s = hot.connect();
    let mut pipeline = b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2);
    pipeline.extend_from_slice(b"GET /large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(&pipeline).unwrap();
    let raw = read_to_close(&mut s);
    let mut rest = &raw[..];
    for i in 0..3 {
        let r = Response::parse_one(rest, false).unwrap_or_else(|| panic!("answer {i} missing"));
        assert_eq!(r.status, 200);
        assert!(r.body == body, "pipelined body {i} differs");
        rest = &rest[r.consumed(rest)..];
    }
    assert!(
        rest.is_empty(),
        "{} bytes after the third answer",
        rest.len()
    );
}

#[test]
fn a_changed_file_is_not_served_stale_past_the_interval() {
    let server = Server::start(ServerOpts {
        extra_config: "[cache]\nrevalidate_ms = 200".into(),
        ..ServerOpts::default()
    });
    warm(&server, "/plain.txt");
    std::fs::write(
        server.root.join("plain.txt"),
        "changed content, longer than before\n",
    )
    .unwrap();
    let changed = Instant::now();
    let mut fresh_after = None;
    while changed.elapsed() < Duration::from_secs(5) {
        if server.get("/plain.txt").body == b"changed content, longer than before\n" {
            fresh_after = Some(changed.elapsed());
            break;
        }
    }
    let took = fresh_after.expect("the change was never served");
    // The bound is the configured interval; allow generous scheduling slack on a busy machine.
    assert!(
        took < Duration::from_millis(200 + 800),
        "stale for {took:?}"
    );
    std::fs::remove_file(server.root.join("plain.txt")).unwrap();
    let gone = Instant::now();
    while server.get("/plain.txt").status != 404 {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "a deleted file kept being served"
        );
    }
}

#[test]
fn hot_files_compete_and_the_budget_holds() {
    let server = Server::start(ServerOpts {
        extra_config: "[cache]\nmax_bytes = 20000\nmax_file_bytes = 6000".into(),
        ..ServerOpts::default()
    });
    for i in 0..40 {
        std::fs::write(
            server.root.join(format!("f{i}.txt")),
            vec![b'a' + (i % 26) as u8; 3000 + i * 10],
        )
        .unwrap();
    }
    std::fs::write(server.root.join("big.txt"), vec![b'z'; 7000]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut round = 0;
    while Instant::now() < deadline {
        for i in 0..40 {
            let resp = server.get(&format!("/f{i}.txt"));
            assert_eq!(
                resp.body,
                vec![b'a' + (i % 26) as u8; 3000 + i * 10],
                "f{i} corrupted"
            );
        }
        for _ in 0..5 {
            assert_eq!(server.get("/big.txt").body.len(), 7000);
        }
        let cache = server.stats()["cache"].clone();
        assert!(cache["used_bytes"].as_u64().unwrap() <= 20000, "{cache}");
        round += 1;
        if round > 3 && cache["cached_entries"].as_u64().unwrap() > 0 {
            break;
        }
    }
    let cache = server.stats()["cache"].clone();
    let rows = cache["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["state"] == "cached"), "{cache}");
    assert!(rows.iter().any(|r| r["state"] == "competing"), "{cache}");
    assert!(
        !rows
            .iter()
            .any(|r| r["path"] == "/big.txt" && r["state"] == "cached"),
        "file over max_file_bytes cached"
    );
    assert!(cache["used_bytes"].as_u64().unwrap() <= 20000);
}

#[test]
fn uncached_misses_still_answer_exactly() {
    let server = Server::start(ServerOpts::default());
    warm(&server, "/plain.txt");
    let resp = Response::parse(
        &server.raw(b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(resp.body, b"body{color:red}\n");
    assert_eq!(server.get("/nope").status, 404);
}
