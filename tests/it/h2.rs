//! HTTP/2 with real clients: curl (h2c with prior knowledge, h2 over TLS by ALPN), nghttp,
//! h2load; the same answers as over HTTP/1.1; CGI, plug-ins and the status pages over h2;
//! GOAWAY on SIGTERM with the streams in flight finished.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::h2_client::*;
use crate::support::{Server, ServerOpts};

fn start(extra_config: &str) -> Server {
    Server::start(ServerOpts {
        cgi_bin: Some(crate::support::repo().join("tests/fixtures/cgi-bin")),
        extra_config: extra_config.to_string(),
        ..ServerOpts::default()
    })
}

fn page8k(server: &Server) -> Vec<u8> {
    let page: Vec<u8> = (0..8192u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(server.root.join("page8k.html"), &page).unwrap();
    page
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Header lines of a `curl -D -` dump, lower-cased names, without the status line, `date`
/// and the HTTP/1.1 hop-by-hop fields.
fn end_to_end_headers(dump: &str) -> Vec<String> {
    let mut lines: Vec<String> = dump
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            format!("{}: {}", name.to_ascii_lowercase(), value.trim())
        })
        .filter(|l| {
            !["date:", "connection:", "keep-alive:", "transfer-encoding:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn h2c_prior_knowledge_answers_as_http1_does() {
    let server = start("");
    let page = page8k(&server);
    let dir = tempfile::tempdir().unwrap();
    for path in ["/page8k.html", "/missing", "/sub/", "/plain.txt"] {
        let url = format!("http://{}{path}", server.addr());
        let mut dumps = Vec::new();
        let mut bodies = Vec::new();
        for (n, proto) in ["--http1.1", "--http2-prior-knowledge"].iter().enumerate() {
            let body = dir.path().join(format!("body{n}"));
            let out = run(
                "curl",
                &[
                    "-s",
                    proto,
                    "-D",
                    "-",
                    "-o",
                    body.to_str().unwrap(),
                    "-H",
                    "Accept-Encoding: identity",
                    &url,
                ],
            );
            dumps.push(String::from_utf8(out.stdout).unwrap());
            bodies.push(std::fs::read(&body).unwrap());
        }
        let status = |d: &str| d.split_whitespace().nth(1).unwrap().to_string();
        assert!(dumps[1].starts_with("HTTP/2 "), "{}", dumps[1]);
        assert_eq!(status(&dumps[0]), status(&dumps[1]), "{path}");
        assert_eq!(
            end_to_end_headers(&dumps[0]),
            end_to_end_headers(&dumps[1]),
            "{path}"
        );
        assert_eq!(bodies[0], bodies[1], "{path}");
        if path == "/page8k.html" {
            assert_eq!(bodies[1], page);
        }
    }
    assert_access_logged(&server, "\"GET /page8k.html HTTP/2.0\" 200 8192");
}

/// Waits (bounded) for a line of the access log, which is written in batches.
fn assert_access_logged(server: &Server, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.access_log().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle} not in {}",
            server.access_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn h2load_completes_every_request_on_ten_connections() {
    let server = start("");
    page8k(&server);
    let url = format!("http://{}/page8k.html", server.addr());
    let out = run("h2load", &["-c10", "-m10", "-n", "2000", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
    let stats = server.stats();
    assert!(stats.to_string().contains("\"h2\""), "{stats}");
}

fn certificate(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

#[test]
fn curl_and_nghttp_choose_h2_by_alpn_over_tls() {
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(pki.path());
    let server = start(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n"
    ));
    let page = page8k(&server);
    let port = server.addrs[1].port();
    let url = format!("https://localhost:{port}/page8k.html");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let out = run(
        "curl",
        &[
            "-sv",
            "--http2",
            "--cacert",
            &cert,
            "--resolve",
            &resolve,
            "-w",
            "%{http_version}",
            "-o",
            "/dev/null",
            &url,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ALPN: server accepted h2"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
    let body = run(
        "curl",
        &[
            "-sS",
            "--http2",
            "--cacert",
            &cert,
            "--resolve",
            &resolve,
            &url,
        ],
    );
    assert_eq!(body.stdout, page);
    // nghttp resolves localhost itself; the certificate is not checked by it.
    let out = run(
        "nghttp",
        &["-nv", &format!("https://localhost:{port}/plain.txt")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("negotiated protocol: h2"), "{text}");
    assert!(text.contains(":status: 200"), "{text}");
    // A CGI program sees HTTPS and the protocol of the stream.
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2",
            "--cacert",
            &cert,
            "--resolve",
            &resolve,
            &format!("https://localhost:{port}/cgi-bin/env.sh"),
        ],
    );
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("HTTPS=on"), "{env}");
    assert!(env.contains("SERVER_PROTOCOL=HTTP/2.0"), "{env}");
}

/// A short CGI answer often reaches the session in one read, head, body and last chunk
/// together: every stream must still end cleanly, with its whole body.
#[test]
fn many_short_cgi_answers_on_one_connection_all_end_cleanly() {
    let server = start("");
    let url = format!("http://{}/cgi-bin/env.sh", server.addr());
    let out = run("nghttp", &["-v", "-m", "100", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("RST_STREAM"), "{text}");
    assert_eq!(text.matches(":status: 200").count(), 100, "{text}");
    assert_eq!(text.matches("SERVER_PROTOCOL=HTTP/2.0").count(), 100);
}

#[test]
fn cgi_with_a_request_body_plugins_and_stats_answer_over_h2() {
    let plugins = crate::plugins::plugin_dir(&["hello"]);
    let server = Server::start(ServerOpts {
        cgi_bin: Some(crate::support::repo().join("tests/fixtures/cgi-bin")),
        plugins: Some(plugins.path().to_path_buf()),
        ..ServerOpts::default()
    });
    let base = format!("http://{}", server.addr());
    let body: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            "--data-binary",
            &body,
            &format!("{base}/cgi-bin/echo.py"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            &format!("{base}/ogi/hello?name=h2"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hello"), "{text}");
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            &format!("{base}/stats.json"),
        ],
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        stats["h2"]["sessions_total"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert!(
        stats["h2"]["streams_total"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            &format!("{base}/stats.html"),
        ],
    );
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains("h2.session"),
        "the network picture shows the session"
    );
}

#[test]
fn sigterm_sends_goaway_and_finishes_the_streams_in_flight() {
    let cgi = tempfile::tempdir().unwrap();
    let script = cgi.path().join("slow.sh");
    let go = cgi.path().join("go");
    std::fs::write(&go, "").unwrap();
    // The answer comes once the test has removed the file `go` (after the drain has begun).
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile [ -e {go:?} ]; do sleep 0.05; done\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfinished\\n'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut server = Server::start(ServerOpts {
        cgi_bin: Some(cgi.path().to_path_buf()),
        ..ServerOpts::default()
    });
    let mut h2 = H2::open(server.addr(), &[]);
    h2.get(1, "/cgi-bin/slow.sh");
    // Wait (bounded) until the server counts the stream open: the request is with the CGI.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.stats()["h2"]["streams_open"].as_u64() != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream never opened"
        );
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let goaway = loop {
        let frame = h2.read().expect("GOAWAY");
        if frame.kind == GOAWAY {
            break frame;
        }
    };
    assert_eq!(goaway.code(), NO_ERROR);
    assert_eq!(
        u32::from_be_bytes(goaway.payload[..4].try_into().unwrap()),
        1,
        "last stream: the one in flight"
    );
    std::fs::remove_file(&go).unwrap();
    let (head, body) = h2.response(1);
    assert_eq!(field(&head, ":status"), Some("200"));
    assert_eq!(body, b"finished\n");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn chromium_loads_a_page_of_sixty_assets_over_h2() {
    let dir = crate::support::repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm install` in tests/browser (.ci/run does)"
    );
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(pki.path());
    let server = start(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n"
    ));
    // 20 scripts, 20 style sheets and 20 images.
    let mut head = String::new();
    let mut body = String::new();
    for i in 0..20 {
        std::fs::write(
            server.root.join(format!("s{i}.js")),
            format!("window.scriptsRun = (window.scriptsRun || 0) + 1; // script {i}\n"),
        )
        .unwrap();
        head.push_str(&format!("<script src=\"/s{i}.js\"></script>"));
        std::fs::write(
            server.root.join(format!("c{i}.css")),
            format!(".c{i} {{ margin: {i}px; }}\n"),
        )
        .unwrap();
        head.push_str(&format!("<link rel=\"stylesheet\" href=\"/c{i}.css\">"));
        std::fs::write(
            server.root.join(format!("i{i}.svg")),
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"8\"><rect width=\"{w}\" height=\"8\" fill=\"#{i:02x}8040\"/></svg>\n",
                w = 8 + i
            ),
        )
        .unwrap();
        body.push_str(&format!("<img src=\"/i{i}.svg\" alt=\"{i}\">"));
    }
    std::fs::write(
        server.root.join("page.html"),
        format!(
            "<!doctype html><html><head><title>sixty</title><link rel=\"icon\" href=\"data:,\">{head}</head><body>{body}</body></html>\n"
        ),
    )
    .unwrap();
    let port = server.addrs[1].port();
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("h2.mjs")
        .arg(format!("https://localhost:{port}/page.html"))
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    let entries = seen["entries"].as_array().unwrap();
    let resources = entries.iter().filter(|e| e["type"] == "resource").count();
    assert_eq!(resources, 60, "{seen}");
    for entry in entries {
        assert_eq!(entry["protocol"], "h2", "{entry} in {seen}");
    }
    assert_eq!(seen["scriptsRun"], 20, "{seen}");
    assert_eq!(seen["imagesLoaded"], 20, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let stats = server.stats();
    assert!(
        stats["h2"]["streams_total"].as_u64().unwrap() >= 61,
        "{stats}"
    );
}

#[test]
fn many_interleaved_streams_on_one_connection_each_get_their_own_bytes() {
    let server = start("");
    let page = page8k(&server);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(server.root.join("big.bin"), &big).unwrap();
    let plain = b"plain text fixture\n".to_vec();
    let mut h2 = H2::open(server.addr(), &[(4, 1 << 20)]);
    // A large connection window, so big answers flow beside small ones.
    h2.send(WINDOW_UPDATE, 0, 0, &((1u32 << 30) - 65_535).to_be_bytes());
    let mut next = 1u32;
    for round in 0..20 {
        let mut asked = std::collections::BTreeMap::new();
        for i in 0..10 {
            let (method, path, status, body) = match (round + i) % 5 {
                0 => ("GET", "/page8k.html", "200", page.clone()),
                1 => ("HEAD", "/plain.txt", "200", Vec::new()),
                2 => ("GET", "/missing", "404", Vec::new()),
                3 => ("GET", "/big.bin", "200", big.clone()),
                _ => ("GET", "/plain.txt", "200", plain.clone()),
            };
            let mut fields = get_fields(path);
            fields[0] = (":method", method);
            h2.headers(next, &fields, true);
            asked.insert(next, (path, status, body));
            next += 2;
        }
        let mut heads = std::collections::BTreeMap::new();
        let mut bodies: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
        let mut ended = std::collections::BTreeSet::new();
        while ended.len() < asked.len() {
            let frame = h2.read().expect("the answers");
            match frame.kind {
                HEADERS => {
                    assert_ne!(frame.flags & END_HEADERS, 0, "small heads fit one frame");
                    let fields = h2.decode(&frame.payload);
                    heads.insert(frame.stream, fields);
                    if frame.flags & END_STREAM != 0 {
                        ended.insert(frame.stream);
                    }
                }
                DATA => {
                    bodies
                        .entry(frame.stream)
                        .or_default()
                        .extend_from_slice(&frame.payload);
                    if !frame.payload.is_empty() {
                        let n = (frame.payload.len() as u32).to_be_bytes();
                        h2.send(WINDOW_UPDATE, 0, frame.stream, &n);
                    }
                    if frame.flags & END_STREAM != 0 {
                        ended.insert(frame.stream);
                    }
                }
                RST_STREAM | GOAWAY => panic!("error {} on {}", frame.code(), frame.stream),
                _ => {}
            }
        }
        for (stream, (path, status, body)) in asked {
            let head = &heads[&stream];
            assert_eq!(field(head, ":status"), Some(status), "{path} on {stream}");
            if status == "200" {
                let got = bodies.remove(&stream).unwrap_or_default();
                assert!(
                    got == body,
                    "{path} on stream {stream}: {} bytes",
                    got.len()
                );
            }
        }
    }
}

/// `curl` over `proto` (with `args`): the status, the end-to-end headers and the body.
fn curl_answer(proto: &str, args: &[&str], url: &str) -> (String, Vec<String>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let head = args.contains(&"-I");
    let mut all = vec!["-s", proto, "-D", "-", "-o", body.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(url);
    let out = run("curl", &all);
    let dump = String::from_utf8(out.stdout).unwrap();
    // With -I the head is written to the output too; a 304 writes no file at all.
    let bytes = if head {
        Vec::new()
    } else {
        std::fs::read(&body).unwrap_or_default()
    };
    let status = dump.split_whitespace().nth(1).unwrap_or("").to_string();
    (status, end_to_end_headers(&dump), bytes)
}

/// A page-cache hit over HTTP/2 (h2c and h2 over TLS) is answered from memory, not through
/// the stream's socket pair: its answers must be the very ones HTTP/1.1 gets from the cache.
#[test]
fn cache_hits_over_h2_equal_http1s_200_304_206_coded_and_head() {
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(pki.path());
    let site = tempfile::tempdir().unwrap();
    let page: Vec<u8> = (0..8192u32)
        .map(|i| b"occam process network "[(i % 22) as usize])
        .collect();
    std::fs::write(site.path().join("page8k.html"), &page).unwrap();
    let server = Server::start(ServerOpts {
        root: Some(site.path().to_path_buf()),
        extra_config: format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n\n\
             [[site]]\nnames = [\"localhost\"]\nroot = {:?}\ndefault = true\n\n\
             [[site.headers]]\npath = \"/page*\"\nset = {{ \"X-Site\" = \"cached\" }}\n",
            site.path()
        ),
        ..ServerOpts::default()
    });
    let plain = format!("http://{}/page8k.html", server.addr());
    let port = server.addrs[1].port();
    let secure = format!("https://localhost:{port}/page8k.html");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let tls_args = ["--cacert", cert.as_str(), "--resolve", resolve.as_str()];
    let cached_hits = |server: &Server| {
        server.stats()["requests"]["handlers"]["cache"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };

    // Warm the page into the cache, and its gzip variant (made off the request path).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, headers, _) = curl_answer("--http1.1", &["-H", "Accept-Encoding: gzip"], &plain);
        let before = cached_hits(&server);
        let _ = curl_answer("--http1.1", &["-H", "Accept-Encoding: identity"], &plain);
        let hit = cached_hits(&server) > before;
        if hit && headers.contains(&"content-encoding: gzip".to_string()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never cached with its gzip variant: {headers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, headers, _) = curl_answer("--http1.1", &["-H", "Accept-Encoding: identity"], &plain);
    let etag = headers
        .iter()
        .find_map(|h| h.strip_prefix("etag: "))
        .unwrap()
        .to_string();
    let if_none_match = format!("If-None-Match: {etag}");
    let identity = "Accept-Encoding: identity";
    let cases: [(&str, Vec<&str>); 6] = [
        ("200", vec!["-H", identity]),
        ("304", vec!["-H", identity, "-H", &if_none_match]),
        ("206", vec!["-H", identity, "-H", "Range: bytes=100-5099"]),
        ("200", vec!["-H", "Accept-Encoding: gzip"]),
        ("200", vec!["-I", "-H", identity]),
        ("200", vec!["-I", "-H", "Accept-Encoding: gzip"]),
    ];
    for (url, extra) in [(&plain, &[][..]), (&secure, &tls_args[..])] {
        let mut http1 = Vec::new();
        for (status, args) in &cases {
            let mut args = args.clone();
            args.extend_from_slice(extra);
            let answer = curl_answer("--http1.1", &args, url);
            assert_eq!(answer.0, *status, "{args:?}: {answer:?}");
            assert!(
                answer.1.contains(&"x-site: cached".to_string()),
                "{answer:?}"
            );
            http1.push(answer);
        }
        let before = cached_hits(&server);
        for ((status, args), want) in cases.iter().zip(&http1) {
            let mut args = args.clone();
            args.extend_from_slice(extra);
            let proto = if extra.is_empty() {
                "--http2-prior-knowledge"
            } else {
                "--http2"
            };
            let got = curl_answer(proto, &args, url);
            assert_eq!(&got.0, status, "{url} {args:?}");
            assert_eq!(got.1, want.1, "{url} {args:?}: the headers");
            assert!(got.2 == want.2, "{url} {args:?}: the body");
        }
        assert_eq!(http1[0].2, page);
        assert_eq!(http1[2].2, page[100..5100]);
        assert!(
            cached_hits(&server) >= before + cases.len() as u64,
            "the h2 answers came from the cache"
        );
    }
    assert_access_logged(&server, "\"GET /page8k.html HTTP/2.0\" 206 5000");
}

/// A stream reset by the client while its cached answer (given in memory, nothing on the
/// stream's socket pair) waits for window is over at once: it no longer counts as open, and
/// the connection goes on.
#[test]
fn a_cached_answer_reset_while_it_waits_for_window_frees_its_stream() {
    let server = start("");
    let page = page8k(&server);
    let cached_hits = || {
        server.stats()["requests"]["handlers"]["cache"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = cached_hits();
        assert_eq!(server.get("/page8k.html").body, page);
        if cached_hits() > before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never cached");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SETTINGS_INITIAL_WINDOW_SIZE 100: the answer stops after 100 bytes.
    let mut h2 = H2::open(server.addr(), &[(4, 100)]);
    h2.headers(1, &get_fields("/page8k.html"), true);
    loop {
        let frame = h2.read().expect("the answer's first DATA");
        if frame.kind == DATA && frame.stream == 1 {
            assert_eq!(frame.payload, page[..100]);
            break;
        }
    }
    h2.send(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.stats()["h2"]["streams_open"].as_u64() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.stats()["h2"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h2.headers(3, &get_fields("/plain.txt"), true);
    loop {
        let frame = h2.read().expect("the next stream's answer");
        if frame.kind == HEADERS && frame.stream == 3 {
            let fields = h2.decode(&frame.payload);
            assert_eq!(field(&fields, ":status"), Some("200"));
            break;
        }
    }
}

/// A CGI program's local redirect to a cached file is answered by the static farm, off the
/// replica: over h2 its answer still comes through the stream's pair, equal to HTTP/1.1's.
#[test]
fn a_cgi_local_redirect_to_a_cached_file_answers_over_h2() {
    let server = start("");
    let cached_hits = || {
        server.stats()["requests"]["handlers"]["cache"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = cached_hits();
        assert_eq!(server.get("/plain.txt").status, 200);
        if cached_hits() > before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never cached");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("http://{}/cgi-bin/location.sh?file", server.addr());
    for args in [&["-H", "Accept-Encoding: identity"][..], &["-I"][..]] {
        let want = curl_answer("--http1.1", args, &url);
        let got = curl_answer("--http2-prior-knowledge", args, &url);
        assert_eq!(want.0, "200", "{args:?}: {want:?}");
        assert_eq!(got, want, "{args:?}");
    }
}
