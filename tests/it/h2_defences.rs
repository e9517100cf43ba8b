//! HTTP/2 defences, each driven by Python's `h2` library sending frames by hand
//! (`tests/h2/defences.py CASE PORT`): the script prints one JSON line of what it saw.

use std::process::Command;

use crate::support::{Server, ServerOpts};

fn start() -> Server {
    let server = Server::start(ServerOpts {
        // The zero-window case waits for this timeout.
        extra_config: "keep_alive_timeout_secs = 2\n".to_string(),
        ..ServerOpts::default()
    });
    std::fs::write(server.root.join("big.bin"), vec![7u8; 200_000]).unwrap();
    server
}

/// Runs one case of `tests/h2/defences.py` and returns what the client saw.
fn attack(server: &Server, case: &str) -> serde_json::Value {
    let script = crate::support::repo().join("tests/h2/defences.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(case)
        .arg(server.addr().port().to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{case}: {e}: {line}"))
}

const PROTOCOL_ERROR: u64 = 1;
const STREAM_CLOSED: u64 = 5;
const ENHANCE_YOUR_CALM: u64 = 11;

/// After an attack the server still answers, over HTTP/1.1 and HTTP/2 alike.
fn still_serving(server: &Server) {
    assert_eq!(server.get("/plain.txt").status, 200);
    let mut h2 = crate::h2_client::H2::open(server.addr(), &[]);
    h2.get(1, "/plain.txt");
    let (head, body) = h2.response(1);
    assert_eq!(crate::h2_client::field(&head, ":status"), Some("200"));
    assert_eq!(body, b"plain text fixture\n");
}

#[test]
fn rapid_reset_is_throttled_then_sent_goaway_enhance_your_calm() {
    let server = start();
    let seen = attack(&server, "rapid_reset");
    assert!(
        seen["refused"].as_u64().unwrap() > 0,
        "new streams refused first: {seen}"
    );
    assert_eq!(seen["goaway"], ENHANCE_YOUR_CALM, "{seen}");
    assert!(seen["sent"].as_u64().unwrap() < 5000, "{seen}");
    still_serving(&server);
}

#[test]
fn a_continuation_flood_is_cut_off() {
    let server = start();
    let seen = attack(&server, "continuation_flood");
    assert_eq!(seen["goaway"], ENHANCE_YOUR_CALM, "{seen}");
    assert_eq!(seen["closed"], true, "{seen}");
    still_serving(&server);
}

#[test]
fn an_hpack_bomb_is_answered_431_and_the_connection_goes_on() {
    let server = start();
    let seen = attack(&server, "hpack_bomb");
    assert_eq!(seen["statuses"]["1"], "431", "{seen}");
    assert_eq!(seen["statuses"]["3"], "200", "{seen}");
    assert_eq!(seen["goaway"], serde_json::Value::Null, "{seen}");
    still_serving(&server);
}

#[test]
fn settings_and_ping_floods_get_goaway_enhance_your_calm() {
    let server = start();
    for case in ["settings_flood", "ping_flood"] {
        let seen = attack(&server, case);
        assert_eq!(seen["goaway"], ENHANCE_YOUR_CALM, "{case}: {seen}");
        assert_eq!(seen["closed"], true, "{case}: {seen}");
    }
    still_serving(&server);
}

#[test]
fn a_zero_window_stall_is_still_closed_by_the_idle_timeout() {
    let server = start();
    let seen = attack(&server, "zero_window_stall");
    assert_eq!(seen["status"], "200", "{seen}");
    assert_eq!(seen["data_bytes"], 0, "{seen}");
    assert_eq!(seen["goaway"], 0, "GOAWAY NO_ERROR: {seen}");
    assert_eq!(seen["closed"], true, "{seen}");
    // PINGs do not keep a stalled connection alive.
    assert!(seen["pings"].as_u64().unwrap() >= 1, "{seen}");
    let stats = server.stats();
    assert_eq!(stats["h2"]["streams_open"], 0, "{stats}");
    still_serving(&server);
}

#[test]
fn stream_identifier_abuse_is_a_connection_error() {
    let server = start();
    let seen = attack(&server, "even_stream_id");
    assert_eq!(seen["goaway"], PROTOCOL_ERROR, "{seen}");
    let seen = attack(&server, "decreasing_stream_id");
    assert_eq!(seen["goaway"], PROTOCOL_ERROR, "{seen}");
    assert_eq!(seen["last_stream"], 5, "{seen}");
    let seen = attack(&server, "reused_stream_id");
    assert_eq!(seen["goaway"], STREAM_CLOSED, "{seen}");
    still_serving(&server);
}
