//! cgi.farm against real CGI programs in sh, Python and Perl (`tests/fixtures/cgi-bin`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{read_response, read_to_close, repo, Response, Server, ServerOpts};

pub fn fixtures_cgi_bin() -> PathBuf {
    repo().join("tests/fixtures/cgi-bin")
}

pub fn cgi_server(extra_config: &str) -> Server {
    Server::start(ServerOpts {
        cgi_bin: Some(fixtures_cgi_bin()),
        extra_config: extra_config.to_string(),
        ..ServerOpts::default()
    })
}

/// The bytes `pattern.py` writes: byte(i) = (i * 7 + i / 251) % 256.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

/// Polls `condition` until it holds or `limit` passes; true when it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids whose parent is `parent`, from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces; fields follow the last ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// `Some((state, ppid))` while /proc knows the process.
fn process_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn get(server: &Server, target: &str) -> Response {
    server.get(target)
}

fn env_of(resp: &Response) -> BTreeMap<String, String> {
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
        .lines()
        .filter_map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn cgi_environment_is_exactly_rfc3875() {
    let server = cgi_server("");
    let mut s = server.connect();
    let client_port = s.local_addr().unwrap().port();
    s.write_all(
        b"GET /cgi-bin/env.sh/extra/path%20x?a=1&b=%2F HTTP/1.1\r\nHost: example.test:8080\r\n\
          X-Custom: one\r\nX-Custom: two\r\nProxy: http://evil.example/\r\nX_Sneaky: underscore\r\n\
          Cookie: c=1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let resp = Response::parse(&read_to_close(&mut s));
    let env = env_of(&resp);
    let cgi_bin = fixtures_cgi_bin();
    let root = server.root.to_string_lossy().into_owned();
    let expected: BTreeMap<&str, String> = [
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        (
            "SERVER_SOFTWARE",
            format!("occwserv/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("SERVER_NAME", "example.test".to_string()),
        ("SERVER_ADDR", "127.0.0.1".to_string()),
        ("SERVER_PORT", server.addr().port().to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
        ("REQUEST_METHOD", "GET".to_string()),
        (
            "REQUEST_URI",
            "/cgi-bin/env.sh/extra/path%20x?a=1&b=%2F".to_string(),
        ),
        ("REQUEST_SCHEME", "http".to_string()),
        ("QUERY_STRING", "a=1&b=%2F".to_string()),
        ("SCRIPT_NAME", "/cgi-bin/env.sh".to_string()),
        (
            "SCRIPT_FILENAME",
            cgi_bin.join("env.sh").to_string_lossy().into_owned(),
        ),
        ("PATH_INFO", "/extra/path x".to_string()),
        (
            "PATH_TRANSLATED",
            format!("{}/extra/path x", root.trim_end_matches('/')),
        ),
        ("DOCUMENT_ROOT", root.clone()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("REMOTE_PORT", client_port.to_string()),
        ("REDIRECT_STATUS", "200".to_string()),
        ("PATH", std::env::var("PATH").unwrap()),
        ("HTTP_HOST", "example.test:8080".to_string()),
        ("HTTP_X_CUSTOM", "one, two".to_string()),
        ("HTTP_COOKIE", "c=1".to_string()),
        ("HTTP_CONNECTION", "close".to_string()),
        // Set by the shell itself, not by the server.
        (
            "PWD",
            cgi_bin
                .canonicalize()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<&str, String> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(
        got, expected,
        "nothing missing, nothing extra (no HTTP_PROXY, no server environment)"
    );
}

#[test]
fn cgi_post_meta_variables_and_http10() {
    let server = cgi_server("");
    let resp = server.request(
        "POST /cgi-bin/env.sh HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 7\r\n\r\nx=1&y=2",
    );
    let env = env_of(&resp);
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["CONTENT_LENGTH"], "7");
    assert_eq!(env["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.0");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    assert_eq!(env["QUERY_STRING"], "");
    assert!(!env.contains_key("PATH_INFO") && !env.contains_key("PATH_TRANSLATED"));
    assert!(!env.contains_key("HTTP_CONTENT_LENGTH") && !env.contains_key("HTTP_CONTENT_TYPE"));
    // HTTP/1.0 without a length: the body runs to the close.
    assert!(resp.header("transfer-encoding").is_none());
}

#[test]
fn cgi_one_mib_binary_post_is_echoed_byte_exact() {
    let server = cgi_server("");
    let body: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut s = server.connect();
    let head = format!(
        "POST /cgi-bin/echo.py HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-received-length"), Some("1048576"));
    assert!(
        resp.body == body,
        "echoed body differs ({} bytes back)",
        resp.body.len()
    );
    // The connection carries on.
    s.write_all(b"GET /cgi-bin/length.sh HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).body, b"exact\n");
}

#[test]
fn cgi_chunked_post_reaches_stdin_dechunked() {
    let server = cgi_server("");
    let body: Vec<u8> = (0..300_001u32).map(|i| (i % 253) as u8).collect();
    let mut raw =
        b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(7_777) {
        raw.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let mut s = server.connect();
    s.write_all(&raw).unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-received-length"),
        Some("300001"),
        "CONTENT_LENGTH is the de-chunked length"
    );
    assert!(resp.body == body);
}

#[test]
fn cgi_expect_continue_gets_100_before_the_body() {
    let server = cgi_server("");
    let mut s = server.connect();
    s.write_all(b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn cgi_status_header_sets_the_status_line() {
    let server = cgi_server("");
    let resp = get(&server, "/cgi-bin/status.pl?418");
    assert_eq!(resp.status_line, "HTTP/1.1 418 Chosen By Query");
    assert_eq!(resp.header("x-script"), Some("perl"));
    assert_eq!(resp.text(), "status was 418\n");
    assert!(
        resp.header("status").is_none(),
        "Status is not passed through as a header"
    );

    // 204 has no body, and the connection stays usable.
    let mut s = server.connect();
    s.write_all(b"GET /cgi-bin/status.pl?204 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(resp.status, 204);
    assert!(resp.header("content-length").is_none() && resp.header("transfer-encoding").is_none());
    s.write_all(b"GET /cgi-bin/length.sh HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).body, b"exact\n");
}

#[test]
fn cgi_location_absolute_redirects_the_client() {
    let server = cgi_server("");
    let resp = get(&server, "/cgi-bin/location.sh?absolute");
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some("http://example.org/elsewhere?x=1")
    );
}

#[test]
fn cgi_location_local_path_is_served_internally() {
    let server = cgi_server("");
    let resp = get(&server, "/cgi-bin/location.sh?file");
    assert_eq!(resp.status, 200);
    assert!(resp.header("location").is_none());
    assert_eq!(
        resp.body,
        std::fs::read(server.root.join("plain.txt")).unwrap()
    );

    let env = env_of(&get(&server, "/cgi-bin/location.sh?cgi"));
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/env.sh");
    assert_eq!(env["PATH_INFO"], "/after/redirect");
    assert_eq!(env["QUERY_STRING"], "from=redirect");

    // A program that redirects to itself forever is stopped.
    assert_eq!(get(&server, "/cgi-bin/location.sh?loop").status, 500);
    assert!(server.wait_for_log("local redirects"));
}

#[test]
fn cgi_five_mib_streamed_output_over_keep_alive() {
    let server = cgi_server("");
    let mut s = server.connect();
    let size = 5 * 1024 * 1024;
    s.write_all(format!("GET /cgi-bin/pattern.py?{size} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("transfer-encoding"),
        Some("chunked"),
        "no length given, so chunked"
    );
    assert!(resp.header("connection").is_none());
    assert_eq!(resp.body.len(), size);
    assert!(resp.body == pattern(size), "streamed body differs");
    // The same connection serves the next request: a program's own Content-Length is kept.
    s.write_all(b"GET /cgi-bin/length.sh HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(
        (resp.header("content-length"), resp.body.as_slice()),
        (Some("6"), &b"exact\n"[..])
    );
    // A short answer goes out whole (with a Content-Length when the program ends within the
    // hold time, else chunked: which one depends on the machine's load, the bytes do not).
    s.write_all(b"GET /cgi-bin/pattern.py?1000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false);
    assert!(resp.body == pattern(1000));
}

#[test]
fn cgi_output_is_streamed_as_it_is_produced() {
    let server = cgi_server("");
    let flag = server.dir.path().join("gate-open");
    let mut s = server.connect();
    let request = format!(
        "GET /cgi-bin/gated.sh?{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        flag.display()
    );
    s.write_all(request.as_bytes()).unwrap();
    // "first" must arrive while the program is still waiting for the gate file.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(6).any(|w| w == b"first\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the first line: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(!seen.windows(6).any(|w| w == b"second"));
    std::fs::write(&flag, b"").unwrap();
    seen.extend_from_slice(&read_to_close(&mut s));
    let resp = Response::parse(&seen);
    assert_eq!(resp.text(), "first\nsecond\n");
}

/// A request whose first bytes came pipelined behind a slow one gets its whole
/// `header_timeout_secs` from when the server turns to it, not from when the slow one began.
#[test]
fn a_pipelined_head_begun_behind_a_slow_answer_gets_its_own_header_timeout() {
    let cgi = tempfile::tempdir().unwrap();
    let script = cgi.path().join("slow.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsleep 2\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Server::start(ServerOpts {
        cgi_bin: Some(cgi.path().to_path_buf()),
        extra_config: "header_timeout_secs = 1".into(),
        ..ServerOpts::default()
    });
    let mut s = server.connect();
    // The slow request whole, and the next one's first bytes, in one write.
    s.write_all(b"GET /cgi-bin/slow.sh HTTP/1.1\r\nHost: t\r\n\r\nGET /plain.txt HTTP/1.1\r\nHo")
        .unwrap();
    let first = read_response(&mut s, false);
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "slow\n");
    // Two seconds after the pair arrived, the rest of the second head comes at once.
    s.write_all(b"st: t\r\n\r\n").unwrap();
    let second = read_response(&mut s, false);
    assert_eq!(second.status_line, "HTTP/1.1 200 OK", "{}", second.text());
    assert_eq!(
        second.text(),
        std::fs::read_to_string(server.root.join("plain.txt")).unwrap()
    );
}

#[test]
fn cgi_head_request_gets_no_body_and_keeps_alive() {
    let server = cgi_server("");
    let mut s = server.connect();
    s.write_all(b"HEAD /cgi-bin/hello.sh HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    s.write_all(b"GET /cgi-bin/hello.sh HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false);
    assert_eq!(
        resp.text(),
        "Hello from sh\n",
        "no body bytes were left over from HEAD"
    );
}

#[test]
fn cgi_nph_output_is_passed_through_raw() {
    let server = cgi_server("");
    let raw = server.raw(b"GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(raw, b"HTTP/1.1 207 Straight Through\r\nContent-Type: text/plain\r\nX-Nph: yes\r\n\r\nraw output\n");
}

#[test]
fn cgi_script_runs_in_its_directory_and_subdirectories_work() {
    let server = cgi_server("");
    let resp = get(&server, "/cgi-bin/cwd.sh");
    assert_eq!(
        resp.text().trim_end(),
        fixtures_cgi_bin().canonicalize().unwrap().to_string_lossy()
    );
    let resp = get(&server, "/cgi-bin/sub/deep.sh/x/y");
    assert_eq!(resp.text(), "/cgi-bin/sub/deep.sh|/x/y\n");
}

#[test]
fn cgi_missing_forbidden_and_hostile_paths() {
    let server = cgi_server("");
    assert_eq!(get(&server, "/cgi-bin/no-such.sh").status, 404);
    let resp = get(&server, "/cgi-bin/not-executable.sh");
    assert_eq!(resp.status, 403);
    assert!(
        !resp.text().contains("SECRET SOURCE"),
        "the source is never served"
    );
    assert_eq!(get(&server, "/cgi-bin/sub").status, 403);
    assert_eq!(get(&server, "/cgi-bin/").status, 403);
    assert_eq!(get(&server, "/cgi-bin/%2e%2e/%2e%2e/bin/sh").status, 400);
    assert_eq!(get(&server, "/cgi-bin/..%2f..%2fbin%2fsh").status, 400);
    let climbing = get(&server, "/cgi-bin/../../../../bin/sh");
    assert!(
        climbing.status == 404 || climbing.status == 400,
        "got {}",
        climbing.status
    );
}

#[test]
fn cgi_bad_head_and_failed_program_are_502_and_logged() {
    let server = cgi_server("");
    let resp = get(&server, "/cgi-bin/bad-head.sh");
    assert_eq!(resp.status, 502);
    assert!(!resp.text().contains("no header here"));
    assert!(server.wait_for_log("cgi /cgi-bin/bad-head.sh: bad response head"));

    let resp = get(&server, "/cgi-bin/fail.sh");
    assert_eq!(resp.status, 502);
    assert!(
        server.wait_for_log("cgi /cgi-bin/fail.sh: fail.sh: something went wrong"),
        "stderr is logged"
    );
    assert!(server.wait_for_log("cgi /cgi-bin/fail.sh: exited with exit status: 3"));
}

#[test]
fn cgi_stderr_lines_go_to_the_error_log_tagged() {
    let server = cgi_server("");
    assert_eq!(get(&server, "/cgi-bin/stderr.pl").text(), "fine\n");
    assert!(server.wait_for_log("cgi /cgi-bin/stderr.pl: first complaint from perl"));
    assert!(server.wait_for_log("cgi /cgi-bin/stderr.pl: second complaint from perl"));
}

/// Reads the two pids `hang.sh` writes once its file appears.
fn hang_pids(pid_file: &Path) -> (u32, u32) {
    assert!(
        eventually(Duration::from_secs(20), || pid_file.exists()),
        "hang.sh did not start"
    );
    let text = std::fs::read_to_string(pid_file).unwrap();
    let mut pids = text.split_whitespace().map(|p| p.parse::<u32>().unwrap());
    (pids.next().unwrap(), pids.next().unwrap())
}

/// The program is gone (reaped by us); its own child is at least no longer running.
fn assert_killed(script_pid: u32, child_pid: u32) {
    assert!(
        eventually(Duration::from_secs(20), || process_state(script_pid)
            .is_none()),
        "script still exists"
    );
    let child_stopped = || process_state(child_pid).is_none_or(|(state, _)| state == 'Z');
    assert!(
        eventually(Duration::from_secs(20), child_stopped),
        "the script's child still runs"
    );
}

#[test]
fn cgi_silent_program_is_killed_with_504() {
    let server = cgi_server("[cgi]\nidle_timeout_secs = 1\n");
    let pid_file = server.dir.path().join("hang.pids");
    let mut s = server.connect();
    s.write_all(
        format!(
            "GET /cgi-bin/hang.sh?{} HTTP/1.1\r\nHost: t\r\n\r\n",
            pid_file.display()
        )
        .as_bytes(),
    )
    .unwrap();
    let resp = Response::parse(&read_to_close(&mut s));
    assert_eq!(resp.status, 504);
    let (script, child) = hang_pids(&pid_file);
    assert_killed(script, child);
    assert!(server.wait_for_log("cgi /cgi-bin/hang.sh: silent past cgi.idle_timeout_secs"));

    // Silent after its head: the stream ends and the connection closes, without a last chunk.
    let raw = server.raw(b"GET /cgi-bin/hang-after-head.sh HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("partial body\n") && !text.ends_with("0\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn cgi_endless_program_is_stopped_at_the_total_timeout() {
    let server = cgi_server("[cgi]\nidle_timeout_secs = 5\ntotal_timeout_secs = 2\n");
    let raw = server.raw(b"GET /cgi-bin/trickle.sh HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("tick\n"),
        "{text}"
    );
    assert!(server.wait_for_log("cgi /cgi-bin/trickle.sh: ran past cgi.total_timeout_secs"));
    assert!(eventually(Duration::from_secs(20), || children_of(
        server.pid()
    )
    .is_empty()));
}

#[test]
fn cgi_client_disconnect_kills_the_program() {
    // The idle timeout (30 s) is far beyond the wait below: only the disconnect can stop it.
    let server = cgi_server("");
    let pid_file = server.dir.path().join("hang.pids");
    let mut s = server.connect();
    s.write_all(
        format!(
            "GET /cgi-bin/hang.sh?{} HTTP/1.1\r\nHost: t\r\n\r\n",
            pid_file.display()
        )
        .as_bytes(),
    )
    .unwrap();
    let (script, child) = hang_pids(&pid_file);
    assert_eq!(
        process_state(script).map(|(_, ppid)| ppid),
        Some(server.pid()),
        "the server runs the script"
    );
    drop(s);
    assert_killed(script, child);
    assert!(server.wait_for_log("cgi /cgi-bin/hang.sh: client went away"));
}

#[test]
fn cgi_queue_bound_answers_503_and_never_runs_more_than_max() {
    let server = cgi_server("[cgi]\nmax = 1\nqueue = 1\nidle_timeout_secs = 2\n");
    let pid_file = server.dir.path().join("hang.pids");
    let mut busy = server.connect();
    busy.write_all(
        format!(
            "GET /cgi-bin/hang.sh?{} HTTP/1.1\r\nHost: t\r\n\r\n",
            pid_file.display()
        )
        .as_bytes(),
    )
    .unwrap();
    hang_pids(&pid_file);
    // One more request waits in the queue (seen in the stats); the one after it is refused.
    let mut second = server.connect();
    second
        .write_all(b"GET /cgi-bin/hello.sh HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let queued = || server.stats()["queues"]["cgi"].as_u64() == Some(1);
    assert!(
        eventually(Duration::from_secs(20), queued),
        "the second request is queued"
    );
    let farm = server.stats()["farms"]["cgi"].clone();
    assert_eq!(
        (
            farm["busy"].as_u64(),
            farm["total"].as_u64(),
            farm["max"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let third = server.get("/cgi-bin/hello.sh");
    assert_eq!(third.status, 503, "the queue is full");
    // When the first program is killed, the queued request runs.
    let second = Response::parse(&read_to_close(&mut second));
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "Hello from sh\n")
    );
    assert_eq!(Response::parse(&read_to_close(&mut busy)).status, 504);
}

#[test]
fn cgi_leaves_no_zombies() {
    let server = cgi_server("[cgi]\nidle_timeout_secs = 1\n");
    for target in [
        "/cgi-bin/hello.sh",
        "/cgi-bin/fail.sh",
        "/cgi-bin/bad-head.sh",
        "/cgi-bin/stderr.pl",
        "/cgi-bin/nph-raw.sh",
    ] {
        get(&server, target);
    }
    let raw = server.raw(b"GET /cgi-bin/hang-after-head.sh HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(!raw.is_empty());
    // Clients that vanish in the middle of a large answer.
    for _ in 0..3 {
        let mut s = server.connect();
        s.write_all(b"GET /cgi-bin/pattern.py?20000000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(s.read(&mut buf).unwrap() > 0);
    }
    assert!(
        eventually(Duration::from_secs(20), || children_of(server.pid())
            .is_empty()),
        "the server still has children: {:?}",
        children_of(server.pid())
            .iter()
            .map(|p| (p, process_state(*p)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn cgi_two_hundred_parallel_requests_mixed_with_static_files() {
    let server = cgi_server("");
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    let index = std::fs::read(server.root.join("index.html")).unwrap();
    let addr = server.addr();
    let start = std::sync::Arc::new(std::sync::Barrier::new(200));
    let workers: Vec<_> = (0..200usize)
        .map(|i| {
            let start = start.clone();
            let (plain, index) = (plain.clone(), index.clone());
            std::thread::spawn(move || {
                let (target, expected) = match i % 4 {
                    0 | 2 => {
                        let size = 1000 + i * 997;
                        (format!("/cgi-bin/pattern.py?{size}"), pattern(size))
                    }
                    1 => ("/plain.txt".to_string(), plain),
                    _ => ("/index.html".to_string(), index),
                };
                start.wait();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s.write_all(
                    format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
                let resp = Response::parse(&read_to_close(&mut s));
                (target, resp.status, resp.body == expected)
            })
        })
        .collect();
    for worker in workers {
        let (target, status, exact) = worker.join().unwrap();
        assert_eq!(status, 200, "{target}");
        assert!(exact, "{target}: body differs");
    }
}

#[test]
fn cgi_program_inherits_no_descriptors_and_no_blocked_signals() {
    let server = cgi_server("");
    // Keep other connections open, so their sockets exist while the program starts.
    let _others: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    let resp = get(&server, "/cgi-bin/inherit.sh");
    let text = resp.text();
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    assert_eq!(
        line("fds "),
        "0 1 2",
        "only stdin, stdout and stderr: {text}"
    );
    assert_eq!(line("SigBlk "), "0000000000000000", "no signal blocked");
    let ignored = u64::from_str_radix(&line("SigIgn "), 16).unwrap();
    assert_eq!(
        ignored & (1 << (13 - 1)),
        0,
        "SIGPIPE has its default action again"
    );
}

#[test]
fn cgi_programs_do_not_outlive_the_server() {
    let mut server = cgi_server("shutdown_grace_secs = 1\n");
    let pid_file = server.dir.path().join("hang.pids");
    let mut s = server.connect();
    let request = format!(
        "GET /cgi-bin/hang.sh?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        pid_file.display()
    );
    s.write_all(request.as_bytes()).unwrap();
    let (script, child) = hang_pids(&pid_file);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    // Orphans are reaped by init, which may take its time: a zombie is no longer running.
    let stopped = |pid: u32| process_state(pid).is_none_or(|(state, _)| state == 'Z');
    assert!(eventually(Duration::from_secs(20), || stopped(script)
        && stopped(child)));
}
