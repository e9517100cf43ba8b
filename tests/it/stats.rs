//! The status pages over real sockets: `/stats.json` counts a known sequence exactly,
//! `/metrics` parses with Prometheus's own parser, `[stats] enabled = false` stops the counting, and
//! `/stats.html` renders its process picture in a real browser (headless Chromium).

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{read_response, replica_requests, repo, Response, Server, ServerOpts};

/// A server whose every request is answered by the static farm from disk.
fn uncached_server(extra: &str) -> Server {
    Server::start(ServerOpts {
        extra_config: format!("{extra}\n[cache]\nenabled = false\n"),
        ..ServerOpts::default()
    })
}

/// One request on a kept-alive connection; counts the bytes each way.
struct Client {
    stream: TcpStream,
    sent: u64,
    received: u64,
}

impl Client {
    fn new(server: &Server) -> Client {
        Client {
            stream: server.connect(),
            sent: 0,
            received: 0,
        }
    }

    fn get(&mut self, path: &str, extra_headers: &str) -> Response {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}\r\n");
        self.stream.write_all(request.as_bytes()).unwrap();
        self.sent += request.len() as u64;
        let resp = read_response(&mut self.stream, false);
        self.received += (resp.head_len + resp.body.len()) as u64;
        resp
    }

    fn stats(&mut self) -> Value {
        let resp = self.get("/stats.json", "");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        serde_json::from_slice(&resp.body).unwrap()
    }
}

fn count(stats: &Value, path: &str) -> u64 {
    stats
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing from {stats:#}"))
}

#[test]
fn stats_json_counts_a_known_sequence_exactly() {
    let server = uncached_server("");
    let mut client = Client::new(&server);
    let mut body_bytes = 0;
    let mut etag = String::new();
    for _ in 0..3 {
        let resp = client.get("/plain.txt", "");
        assert_eq!(resp.status, 200);
        body_bytes += resp.body.len() as u64;
        etag = resp.header("etag").unwrap().to_string();
    }
    for path in ["/missing-one", "/missing-two.html"] {
        let resp = client.get(path, "");
        assert_eq!(resp.status, 404);
        body_bytes += resp.body.len() as u64;
    }
    assert_eq!(
        client
            .get("/plain.txt", &format!("If-None-Match: {etag}\r\n"))
            .status,
        304
    );
    let (sent, received) = (client.sent, client.received);

    // Asked on the same connection, the page counts every exchange before it, and only those.
    let stats = client.stats();
    assert_eq!(count(&stats, "/requests/total"), 6);
    for (class, n) in [("1xx", 0), ("2xx", 3), ("3xx", 1), ("4xx", 2), ("5xx", 0)] {
        assert_eq!(
            count(&stats, &format!("/requests/status/{class}")),
            n,
            "{class}"
        );
    }
    for (handler, n) in [
        ("front-end", 0),
        ("static", 6),
        ("cache", 0),
        ("cgi", 0),
        ("plugin", 0),
        ("stats", 0),
    ] {
        assert_eq!(
            count(&stats, &format!("/requests/handlers/{handler}/requests")),
            n,
            "{handler}"
        );
    }
    assert_eq!(count(&stats, "/bytes/received"), sent);
    assert_eq!(count(&stats, "/bytes/sent"), received);
    assert_eq!(count(&stats, "/bytes/body_sent"), body_bytes);
    // nginx's stub_status numbers: this one connection, now being written to.
    for (field, n) in [
        ("accepts", 1),
        ("handled", 1),
        ("refused", 0),
        ("active", 1),
        ("writing", 1),
        ("waiting", 0),
    ] {
        assert_eq!(
            count(&stats, &format!("/connections/{field}")),
            n,
            "{field}"
        );
    }
    for stage in ["read", "queue", "handler", "total"] {
        assert_eq!(
            count(&stats, &format!("/latency/{stage}/count")),
            6,
            "{stage}"
        );
        let buckets: u64 = stats["latency"][stage]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap())
            .sum();
        assert_eq!(buckets, 6, "{stage}");
        assert!(
            count(&stats, &format!("/latency/{stage}/p50_us"))
                <= count(&stats, &format!("/latency/{stage}/max_us"))
        );
    }
    // The whole-request latency per handler has the six static answers, and nothing else.
    assert!(count(&stats, "/requests/handlers/static/p50_us") >= 1);
    assert_eq!(count(&stats, "/requests/handlers/cgi/p99_us"), 0);
    assert!(stats["requests"]["per_second_history"].is_array());
    // Requests two to six waited for the client in idle.pool, at most once each.
    assert!(count(&stats, "/latency/keep_alive/count") <= 5);
    // The six requests and this page were read by the replicas.
    assert_eq!(replica_requests(&stats), 7);

    // The next page counts the first one too.
    let stats = client.stats();
    assert_eq!(count(&stats, "/requests/total"), 7);
    assert_eq!(count(&stats, "/requests/status/2xx"), 4);
    assert_eq!(count(&stats, "/requests/handlers/stats/requests"), 1);
    assert_eq!(count(&stats, "/connections/accepts"), 1);
}

#[test]
fn statistics_off_counts_no_requests_but_keeps_the_gauges() {
    let server = uncached_server("[stats]\nenabled = false");
    let mut client = Client::new(&server);
    for _ in 0..4 {
        assert_eq!(client.get("/plain.txt", "").status, 200);
    }
    let stats = client.stats();
    assert_eq!(stats["stats_enabled"], false);
    assert_eq!(count(&stats, "/requests/total"), 0);
    assert_eq!(count(&stats, "/requests/handlers/static/requests"), 0);
    assert_eq!(count(&stats, "/latency/total/count"), 0);
    assert_eq!(count(&stats, "/connections/handled"), 1);
    assert_eq!(count(&stats, "/connections/active"), 1);
    assert_eq!(replica_requests(&stats), 5);
    let page = server.get("/stats.html");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<code>[stats] enabled = false</code>"));
}

/// Parses Prometheus text with `prometheus_client`'s parser; returns, per family, its type
/// and samples as `[name, labels, value]`.
pub(crate) fn parse_prometheus(text: &str) -> Value {
    const PARSE: &str = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        families = {f.name: {'type': f.type, 'samples': [[s.name, s.labels, s.value] for s in f.samples]}\n\
                    for f in text_string_to_metric_families(sys.stdin.read())}\n\
        print(json.dumps(families))\n";
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused /metrics (pip install prometheus-client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample named `name` whose labels include every pair in `labels`.
pub(crate) fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][k] == *v))
        .and_then(|s| s[2].as_f64())
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {family}"))
}

#[test]
fn metrics_parse_as_prometheus_text_and_agree_with_stats_json() {
    let server = uncached_server("");
    let mut client = Client::new(&server);
    for path in ["/plain.txt", "/plain.txt", "/style.css", "/nothing-here"] {
        client.get(path, "");
    }
    let metrics = client.get("/metrics", "");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let families = parse_prometheus(&metrics.text());

    assert_eq!(families["occwserv_requests"]["type"], "counter");
    assert_eq!(
        sample(
            &families,
            "occwserv_requests",
            "occwserv_requests_total",
            &[("class", "2xx")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &families,
            "occwserv_requests",
            "occwserv_requests_total",
            &[("class", "4xx")]
        ),
        1.0
    );
    let static_requests = &[("handler", "static")];
    assert_eq!(
        sample(
            &families,
            "occwserv_handler_requests",
            "occwserv_handler_requests_total",
            static_requests
        ),
        4.0
    );
    assert_eq!(
        sample(
            &families,
            "occwserv_connections_handled",
            "occwserv_connections_handled_total",
            &[]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "occwserv_connections",
            "occwserv_connections",
            &[("state", "writing")]
        ),
        1.0
    );
    assert_eq!(families["occwserv_farm_workers"]["type"], "gauge");
    assert_eq!(families["occwserv_queue_messages"]["type"], "gauge");

    // Each stage is a histogram: cumulative buckets ending in +Inf, which equals the count.
    let histogram = &families["occwserv_stage_latency_seconds"];
    assert_eq!(histogram["type"], "histogram");
    for stage in ["read", "queue", "handler", "total", "keep_alive"] {
        let buckets: Vec<(f64, f64)> = histogram["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0] == "occwserv_stage_latency_seconds_bucket" && s[1]["stage"] == stage)
            .map(|s| {
                (
                    s[1]["le"].as_str().unwrap().parse::<f64>().unwrap(),
                    s[2].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(buckets.len(), 20, "{stage}");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{stage}: {buckets:?}"
        );
        assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
        let count = sample(
            &families,
            "occwserv_stage_latency_seconds",
            "occwserv_stage_latency_seconds_count",
            &[("stage", stage)],
        );
        assert_eq!(buckets.last().unwrap().1, count, "{stage}");
        if stage != "keep_alive" {
            assert_eq!(count, 4.0, "{stage}");
        }
    }

    // /stats.json, asked next, carries the same numbers (plus the /metrics exchange).
    let stats = client.stats();
    assert_eq!(count(&stats, "/requests/status/2xx"), 4);
    assert_eq!(count(&stats, "/requests/handlers/stats/requests"), 1);
}

/// Runs `tests/browser/stats.mjs` against `url`; returns what the browser saw.
fn open_in_chromium(url: &str, screenshot: &Path) -> Value {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm install` in tests/browser (.ci/run does)"
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("stats.mjs")
        .arg(url)
        .arg(screenshot)
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn stats_page_draws_the_process_network_in_chromium() {
    let plugins = crate::plugins::plugin_dir(&["hello"]);
    let server = Server::start(ServerOpts {
        extra_config: "static_max = 24\n".into(),
        plugins: Some(plugins.path().to_path_buf()),
        ..ServerOpts::default()
    });
    // Some traffic to draw: a few hundred requests (bounded in count and time) to files and
    // to a plug-in, and one keep-alive connection left parked in idle.pool.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = Client::new(&server);
    for i in 0..300 {
        if Instant::now() > deadline {
            break;
        }
        let path = match i % 10 {
            9 => "/missing",
            8 => "/ogi/hello",
            _ => "/plain.txt",
        };
        client.get(path, "");
    }

    let artifacts = repo().join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("stats.png");
    let _ = std::fs::remove_file(&screenshot);
    let seen = open_in_chromium(&format!("http://{}/stats.html", server.addr()), &screenshot);

    assert_eq!(
        seen["errors"],
        Value::Array(vec![]),
        "the page logged errors"
    );
    assert!(seen["updates"].as_u64().unwrap() >= 2);
    assert_eq!(seen["live"], "live");
    let titles: Vec<&str> = seen["titles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for box_name in [
        "clients",
        "acceptor",
        "idle.pool",
        "front-end",
        "static",
        "recycler",
        "cache.control",
        "cgi",
        "plugin",
        "stats",
        "send.pool",
        "log",
    ] {
        assert!(
            titles.contains(&box_name),
            "no {box_name} box in {titles:?}"
        );
    }
    let numbers = &seen["numbers"];
    assert_eq!(numbers["farms.static.max"], "24");
    assert_eq!(seen["slots"]["static"], 24);
    assert_eq!(numbers["connections.refused"], "0");
    assert!(
        numbers["connections.waiting"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1,
        "{numbers}"
    );
    for queue in [
        "cache.control",
        "static",
        "cgi",
        "plugin",
        "stats",
        "recycler",
        "send.pool",
        "log",
    ] {
        assert!(
            numbers[format!("queues.{queue}")].is_string(),
            "no queue on the arrow into {queue}"
        );
    }
    assert_eq!(
        seen["plugins"],
        serde_json::json!(["hello"]),
        "the plug-in table"
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {}",
        screenshot.display()
    );
}

#[test]
fn stats_pages_answer_head_and_refuse_other_methods() {
    let server = uncached_server("");
    for path in ["/stats.html", "/stats.json", "/metrics"] {
        let get = server.get(path);
        assert_eq!(get.status, 200, "{path}");
        assert_eq!(get.header("cache-control"), Some("no-store"));
        let raw = server.raw(
            format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let head = Response::parse_one(&raw, true).unwrap();
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(raw.len(), head.head_len, "HEAD {path} has no body");
        assert_eq!(head.header("content-type"), get.header("content-type"));
        let post = server.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(post.status, 405, "{path}");
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
    }
}

/// Polls `/stats.json` (bounded) until `path` holds `want`; returns the last value seen.
fn wait_for_count(server: &Server, path: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = count(&server.stats(), path);
        if seen == want || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_reader_shows_as_sending_until_it_takes_its_answer() {
    let server = uncached_server("");
    let big = vec![b'x'; 8 << 20];
    std::fs::write(server.root.join("big.bin"), &big).unwrap();
    let mut reader = server.connect();
    reader
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    // The client reads nothing yet: the rest of the answer waits in send.pool.
    assert_eq!(wait_for_count(&server, "/connections/sending", 1), 1);
    let got = crate::support::read_to_close(&mut reader);
    assert!(got.ends_with(&big[..1024]) && got.len() > big.len());
    assert_eq!(wait_for_count(&server, "/connections/sending", 0), 0);
}

#[test]
fn sighup_switches_the_counting_off_and_on() {
    let server = uncached_server("[stats]\nenabled = true");
    let mut client = Client::new(&server);
    for _ in 0..3 {
        client.get("/plain.txt", "");
    }
    assert_eq!(count(&client.stats(), "/requests/total"), 3);

    let config = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(
        &server.config_path,
        config.replace("[stats]\nenabled = true", "[stats]\nenabled = false"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_for_log("config reloaded"),
        "{}",
        server.error_log()
    );
    // The first page's own record may reach the recycler before or after the reload, so
    // take the count once counting is off, and check that nothing is added after it.
    let at_reload = count(&client.stats(), "/requests/total");
    assert!((3..=4).contains(&at_reload), "{at_reload}");
    for _ in 0..5 {
        client.get("/plain.txt", "");
    }
    let stats = client.stats();
    assert_eq!(stats["stats_enabled"], false);
    assert_eq!(
        count(&stats, "/requests/total"),
        at_reload,
        "nothing is counted after the reload"
    );

    std::fs::write(&server.config_path, &config).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.stats()["stats_enabled"] != true && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    client.get("/plain.txt", "");
    let stats = client.stats();
    assert_eq!(stats["stats_enabled"], true);
    assert_eq!(count(&stats, "/requests/handlers/static/requests"), 4);
}

#[test]
fn a_client_that_does_not_read_its_pages_holds_up_nobody() {
    let server = uncached_server("");
    // Hundreds of pipelined pages, megabytes more than the socket buffers hold, and the
    // client reads none of them yet.
    const PAGES: usize = 400;
    let mut request = "GET /stats.html HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(PAGES - 1);
    request.push_str("GET /stats.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut reader = server.connect();
    reader.write_all(request.as_bytes()).unwrap();
    // The stats process still answers everyone else, and shows the page it could not finish
    // waiting in send.pool.
    assert_eq!(wait_for_count(&server, "/connections/sending", 1), 1);
    assert_eq!(server.get("/stats.json").status, 200);
    // Every page arrives once the client reads.
    let got = crate::support::read_to_close(&mut reader);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK\r\n").count(),
        PAGES,
        "{} bytes, ending {:?}\n{}",
        got.len(),
        &text[text.len().saturating_sub(300)..],
        server.error_log()
    );
    assert!(text.ends_with("</html>\n"));
    assert_eq!(wait_for_count(&server, "/connections/sending", 0), 0);
}
