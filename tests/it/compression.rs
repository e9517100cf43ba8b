//! Content codings over real sockets: negotiation, cached variants, precompressed siblings,
//! streamed CGI output. Bodies are decoded by real peers (curl, Python's gzip, brotli and
//! zstandard modules) and compared byte for byte with the file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{dechunk, Response, Server, ServerOpts};

const CODINGS: [&str; 3] = ["br", "zstd", "gzip"];

/// About 120 KiB of JavaScript-like text.
fn script() -> Vec<u8> {
    (0..2500)
        .map(|i| format!("function f{i}(a, b) {{ return a * {i} + b; }} // line {i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Asserts two bodies are equal without printing them whole.
fn same(got: &[u8], want: &[u8], what: impl std::fmt::Display) {
    if got != want {
        let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
        panic!(
            "{what}: {} bytes where {} were expected, first difference at {at}",
            got.len(),
            want.len()
        );
    }
}

fn request(server: &Server, method: &str, path: &str, headers: &str) -> Response {
    let raw = server.raw(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    Response::parse_one(&raw, method == "HEAD")
        .unwrap_or_else(|| panic!("bad response: {:?}", String::from_utf8_lossy(&raw)))
}

fn get_coded(server: &Server, path: &str, accept: &str) -> Response {
    request(
        server,
        "GET",
        path,
        &format!("Accept-Encoding: {accept}\r\n"),
    )
}

/// Decodes a body with Python's own modules.
fn python_decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let script = match coding {
        "gzip" => "import sys,gzip; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        "br" => "import sys,brotli; sys.stdout.buffer.write(brotli.decompress(sys.stdin.buffer.read()))",
        "zstd" => "import sys,zstandard; sys.stdout.buffer.write(zstandard.ZstdDecompressor().decompressobj().decompress(sys.stdin.buffer.read()))",
        // What a gzip stream cut anywhere decodes to so far.
        "gzip-prefix" => "import sys,zlib; sys.stdout.buffer.write(zlib.decompressobj(31).decompress(sys.stdin.buffer.read()))",
        other => panic!("no decoder for {other}"),
    };
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python could not decode {coding}");
    out.stdout
}

/// `curl --compressed` with one coding asked for: the status line and headers, and the body
/// as curl decoded it.
fn curl(server: &Server, path: &str, accept: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-sS", "--compressed", "-H"])
        .arg(format!("Accept-Encoding: {accept}"))
        .arg("-D")
        .arg(&headers)
        .arg(format!("http://{}{path}", server.addr()))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl failed: {:?}", out);
    (std::fs::read_to_string(headers).unwrap(), out.stdout)
}

/// Requests `path` with `Accept-Encoding: coding` until the answer is coded (the cache has
/// admitted the file and cache.compress has made the variant); bounded.
fn warm(server: &Server, path: &str, coding: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = get_coded(server, path, coding);
        if resp.header("content-encoding") == Some(coding) {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never came {coding}-coded: {:?}",
            resp.headers
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(extra_config: &str) -> Server {
    let server = Server::start(ServerOpts {
        extra_config: extra_config.to_string(),
        ..ServerOpts::default()
    });
    std::fs::write(server.root.join("app.js"), script()).unwrap();
    server
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn each_coding_decodes_to_the_file_with_its_own_tag() {
    let server = start("");
    let file = script();
    let identity = get_coded(&server, "/app.js", "identity");
    assert_eq!(identity.status, 200);
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.header("vary"), Some("Accept-Encoding"));
    same(&identity.body, &file, "body");
    let mut tags = vec![identity.header("etag").unwrap().to_string()];
    for coding in CODINGS {
        let resp = warm(&server, "/app.js", coding);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            resp.header("content-length"),
            Some(resp.body.len().to_string().as_str())
        );
        assert!(
            resp.body.len() < file.len() / 4,
            "{coding}: {}",
            resp.body.len()
        );
        same(&python_decode(coding, &resp.body), &file, coding);
        let (head, decoded) = curl(&server, "/app.js", coding);
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-encoding: {coding}\r\n")),
            "{head}"
        );
        same(&decoded, &file, format!("curl --compressed, {coding}"));
        tags.push(resp.header("etag").unwrap().to_string());
    }
    let mut distinct = tags.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "one strong tag per variant: {tags:?}");
    assert!(tags.iter().all(|t| t.starts_with('"')), "strong tags");
    // curl's own Accept-Encoding (deflate, gzip, br, zstd) gets the server's first choice.
    let out = Command::new("curl")
        .args(["-sS", "--compressed", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{}/app.js", server.addr()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("content-encoding: br\r\n"), "{head}");
}

#[test]
fn q_values_identity_and_star_are_honoured() {
    let server = start("");
    let file = script();
    for coding in CODINGS {
        warm(&server, "/app.js", coding);
    }
    let cases: [(&str, Option<&str>); 12] = [
        ("gzip, br", Some("br")),
        ("gzip;q=0.5, br;q=0.4", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("br;q=0, zstd;q=0, gzip;q=0", None),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("gzip, identity;q=0.5", Some("gzip")),
        ("*", Some("br")),
        ("*, br;q=0", Some("zstd")),
        ("*;q=0, identity", None),
        ("x-gzip", Some("gzip")),
        ("compress, deflate", None),
    ];
    for (accept, expected) in cases {
        let resp = get_coded(&server, "/app.js", accept);
        assert_eq!(resp.status, 200, "{accept}");
        assert_eq!(resp.header("content-encoding"), expected, "{accept}");
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"), "{accept}");
        let body = match expected {
            Some(coding) => python_decode(coding, &resp.body),
            None => resp.body.clone(),
        };
        same(&body, &file, accept);
    }
    // No Accept-Encoding at all: the file as it is.
    let plain = request(&server, "GET", "/app.js", "");
    assert_eq!(plain.header("content-encoding"), None);
    same(&plain.body, &file, "body");
    // Identity refused and nothing else acceptable: 406, still saying Vary.
    for accept in ["identity;q=0", "*;q=0", "deflate, identity;q=0"] {
        let resp = get_coded(&server, "/app.js", accept);
        assert_eq!(resp.status, 406, "{accept}");
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"), "{accept}");
    }
    // Identity refused but a coding taken: that coding.
    let resp = get_coded(&server, "/app.js", "zstd, identity;q=0");
    assert_eq!(resp.header("content-encoding"), Some("zstd"));
}

#[test]
fn conditional_head_and_range_requests_on_variants() {
    let server = start("");
    let file = script();
    let br = warm(&server, "/app.js", "br");
    let gzip = warm(&server, "/app.js", "gzip");
    let br_tag = br.header("etag").unwrap().to_string();
    let gzip_tag = gzip.header("etag").unwrap().to_string();
    // 304 for the variant whose tag the client holds, with that tag.
    let resp = request(
        &server,
        "GET",
        "/app.js",
        &format!("Accept-Encoding: br\r\nIf-None-Match: {br_tag}\r\n"),
    );
    assert_eq!(resp.status, 304);
    assert_eq!(resp.header("etag"), Some(br_tag.as_str()));
    assert_eq!(resp.header("content-encoding"), Some("br"));
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert!(resp.body.is_empty());
    // The br tag does not validate the gzip variant: a whole gzip answer.
    let resp = request(
        &server,
        "GET",
        "/app.js",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {br_tag}\r\n"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("etag"), Some(gzip_tag.as_str()));
    same(&python_decode("gzip", &resp.body), &file, "body");
    // Nor the identity answer.
    let resp = request(
        &server,
        "GET",
        "/app.js",
        &format!("If-None-Match: {br_tag}\r\n"),
    );
    assert_eq!(resp.status, 200);
    same(&resp.body, &file, "body");
    // HEAD reports the variant's length.
    let head = request(&server, "HEAD", "/app.js", "Accept-Encoding: br\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(
        head.header("content-length"),
        Some(br.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(br_tag.as_str()));
    // A range is served from the file as it is, whatever the client accepts.
    let resp = request(
        &server,
        "GET",
        "/app.js",
        "Accept-Encoding: gzip, br\r\nRange: bytes=100-199\r\n",
    );
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        resp.header("content-range"),
        Some(format!("bytes 100-199/{}", file.len()).as_str())
    );
    assert_eq!(resp.header("content-length"), Some("100"));
    same(&resp.body, &file[100..200], "body");
}

#[test]
fn precompressed_siblings_are_sent_and_older_ones_ignored() {
    for cache in ["true", "false"] {
        let server = start(&format!("[cache]\nenabled = {cache}"));
        let root = server.root.clone();
        let file = script();
        std::fs::write(root.join("site.css"), &file).unwrap();
        // Siblings made by the real tools, at levels the server would not choose itself.
        let gz = Command::new("gzip")
            .args(["-1", "-n", "-k", "-c"])
            .arg(root.join("site.css"))
            .output()
            .unwrap();
        assert!(gz.status.success());
        std::fs::write(root.join("site.css.gz"), &gz.stdout).unwrap();
        let br = Command::new("brotli")
            .args(["-q", "1", "-k", "-f", "-o"])
            .arg(root.join("site.css.br"))
            .arg(root.join("site.css"))
            .status()
            .unwrap();
        assert!(br.success());
        let br_bytes = std::fs::read(root.join("site.css.br")).unwrap();
        let expect = |resp: &Response, coding: &str, bytes: &[u8]| {
            assert_eq!(resp.status, 200, "cache {cache}");
            assert_eq!(resp.header("content-encoding"), Some(coding));
            assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
            assert_eq!(resp.header("content-type"), Some("text/css; charset=utf-8"));
            assert!(
                resp.body == bytes,
                "cache {cache}: not the {coding} sibling as it is ({} bytes, {:?})",
                resp.body.len(),
                resp.headers
            );
            same(&python_decode(coding, &resp.body), &file, "body");
        };
        if cache == "true" {
            // Served as it is before the cache takes the file, and from the cache after.
            expect(&get_coded(&server, "/site.css", "gzip"), "gzip", &gz.stdout);
            expect(&warm(&server, "/site.css", "br"), "br", &br_bytes);
        }
        expect(
            &get_coded(&server, "/site.css", "br, gzip"),
            "br",
            &br_bytes,
        );
        expect(&get_coded(&server, "/site.css", "gzip"), "gzip", &gz.stdout);
        // A tag of its own, and 304 on it.
        let tag = get_coded(&server, "/site.css", "gzip")
            .header("etag")
            .unwrap()
            .to_string();
        let resp = request(
            &server,
            "GET",
            "/site.css",
            &format!("Accept-Encoding: gzip\r\nIf-None-Match: {tag}\r\n"),
        );
        assert_eq!(resp.status, 304);
        if cache == "false" {
            // Without the cache, a coding with no sibling is compressed as it streams.
            let resp = get_coded(&server, "/site.css", "zstd");
            assert_eq!(resp.header("content-encoding"), Some("zstd"));
            assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
            same(&python_decode("zstd", &resp.body), &file, "zstd stream");
            // A sibling older than the file is stale: ignored, the file compressed instead.
            let now = SystemTime::now();
            set_mtime(&root.join("site.css"), now);
            set_mtime(&root.join("site.css.gz"), now - Duration::from_secs(3600));
            let resp = get_coded(&server, "/site.css", "gzip");
            assert_eq!(resp.header("content-encoding"), Some("gzip"));
            assert!(resp.body != gz.stdout, "the stale sibling was sent");
            same(&python_decode("gzip", &resp.body), &file, "gzip stream");
            let resp = get_coded(&server, "/site.css", "identity");
            assert_eq!(resp.header("content-encoding"), None);
            same(&resp.body, &file, "identity");
        }
    }
}

#[test]
fn an_older_sibling_is_not_cached_either() {
    let server = start("[compression]\non_the_fly = false");
    let root = server.root.clone();
    let file = script();
    std::fs::write(root.join("old.css"), &file).unwrap();
    std::fs::write(root.join("old.css.gz"), b"stale sibling, not gzip at all").unwrap();
    let now = SystemTime::now();
    set_mtime(&root.join("old.css"), now);
    set_mtime(&root.join("old.css.gz"), now - Duration::from_secs(3600));
    // Warm the file into the cache; it must still never come gzip-coded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = get_coded(&server, "/old.css", "gzip");
        assert_eq!(resp.header("content-encoding"), None);
        same(&resp.body, &file, "body");
        let cached = server.stats()["cache"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .any(|r| r["path"] == "/old.css" && r["state"] == "cached");
        if cached {
            break;
        }
        assert!(Instant::now() < deadline, "never cached");
        std::thread::sleep(Duration::from_millis(20));
    }
    let resp = get_coded(&server, "/old.css", "gzip");
    assert_eq!(resp.header("content-encoding"), None);
    same(&resp.body, &file, "body");
}

#[test]
fn files_too_large_for_the_cache_are_compressed_as_they_stream() {
    let server = start("[cache]\nmax_file_bytes = 10000");
    let file = script();
    for coding in CODINGS {
        let resp = get_coded(&server, "/app.js", coding);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some(coding));
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.header("content-length"), None);
        let tag = resp.header("etag").unwrap().to_string();
        assert!(
            tag.starts_with("W/\"") && tag.ends_with(&format!("-{coding}\"")),
            "{tag}"
        );
        same(&python_decode(coding, &resp.body), &file, coding);
        let (_, decoded) = curl(&server, "/app.js", coding);
        same(&decoded, &file, format!("curl, {coding}"));
        // The weak tag validates: 304.
        let resp = request(
            &server,
            "GET",
            "/app.js",
            &format!("Accept-Encoding: {coding}\r\nIf-None-Match: {tag}\r\n"),
        );
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("etag"), Some(tag.as_str()));
        assert_eq!(resp.header("content-encoding"), Some(coding));
        // As a browser revalidates: both validators; the tag decides.
        let modified = resp.header("last-modified").unwrap().to_string();
        let resp = request(
            &server,
            "GET",
            "/app.js",
            &format!(
                "Accept-Encoding: {coding}\r\nIf-None-Match: {tag}\r\nIf-Modified-Since: {modified}\r\n"
            ),
        );
        assert_eq!(resp.status, 304);
        let resp = request(
            &server,
            "GET",
            "/app.js",
            &format!("Accept-Encoding: {coding}\r\nIf-Modified-Since: {modified}\r\n"),
        );
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("content-encoding"), Some(coding));
    }
    // HEAD: the same head, no length, no body.
    let raw = server.raw(
        b"HEAD /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    let resp = Response::parse_one(&raw, true).unwrap();
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(raw.len(), resp.head_len, "no body after a HEAD");
    // A range is the file's own bytes.
    let resp = request(
        &server,
        "GET",
        "/app.js",
        "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n",
    );
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-encoding"), None);
    same(&resp.body, &file[..10], "range");
    // HTTP/1.0: the coded body ends with the connection.
    let raw = server.raw(b"GET /app.js HTTP/1.0\r\nAccept-Encoding: br\r\n\r\n");
    let resp = Response::parse(&raw);
    assert_eq!(resp.header("content-encoding"), Some("br"));
    assert_eq!(resp.header("transfer-encoding"), None);
    same(&python_decode("br", &resp.body), &file, "HTTP/1.0 br");
    // Keep-alive survives a streamed answer.
    let mut s = server.connect();
    for _ in 0..2 {
        s.write_all(b"GET /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .unwrap();
        let resp = crate::support::read_response(&mut s, false);
        same(&python_decode("gzip", &resp.body), &file, "keep-alive");
    }
}

#[test]
fn a_slow_reader_of_a_compressed_stream_holds_up_no_one() {
    // One replica, so the other client is served by the same one.
    let server = start("cores = 1\nsend_buffer_bytes = 65536");
    // 16 MiB of text that compresses only to about three quarters: far more than the socket
    // buffers hold, so the stream must wait for its reader.
    let mut state = 7u64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let big: Vec<u8> = (0..16 * 1024 * 1024)
        .map(|i| {
            if i % 77 == 76 {
                return b'\n';
            }
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            alphabet[(state >> 58) as usize]
        })
        .collect();
    std::fs::write(server.root.join("big.txt"), &big).unwrap();
    let mut slow = server.connect();
    slow.write_all(b"GET /big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    let n = slow.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("Content-Encoding: gzip"));
    // The slow client reads nothing more; others are answered meanwhile.
    for _ in 0..3 {
        let resp = server.get("/plain.txt");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"plain text fixture\n");
    }
    // And the slow client still gets the whole file in the end.
    let mut raw = first[..n].to_vec();
    let resp = loop {
        if let Some(resp) = Response::parse_one(&raw, false) {
            if raw.ends_with(b"0\r\n\r\n") {
                break resp;
            }
        }
        let mut buf = [0u8; 65536];
        let got = slow.read(&mut buf).unwrap();
        assert!(got > 0, "closed mid-stream");
        raw.extend_from_slice(&buf[..got]);
    };
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    same(
        &python_decode("gzip", &resp.body),
        &big,
        "slow reader's file",
    );
}

#[test]
fn types_and_min_bytes_decide_what_is_coded() {
    let server = start("[compression]\nmin_bytes = 1000\nprecompressed = false");
    let root = server.root.clone();
    let small = vec![b'a'; 999];
    std::fs::write(root.join("small.txt"), &small).unwrap();
    let png: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
    std::fs::write(root.join("picture.png"), &png).unwrap();
    // With precompressed = false a sibling is never sent: identity, then the cache's own.
    std::fs::write(root.join("app.js.gz"), b"not to be sent").unwrap();
    let resp = get_coded(&server, "/app.js", "gzip");
    assert!(resp.body != b"not to be sent");
    same(
        &python_decode("gzip", &warm(&server, "/app.js", "gzip").body),
        &script(),
        "own gzip",
    );
    for _ in 0..20 {
        let resp = get_coded(&server, "/small.txt", "gzip");
        assert_eq!(resp.header("content-encoding"), None);
        assert_eq!(resp.header("vary"), None, "never coded, so no Vary");
        same(&resp.body, &small, "body");
        let resp = get_coded(&server, "/picture.png", "gzip");
        assert_eq!(resp.header("content-encoding"), None);
        assert_eq!(resp.header("vary"), None);
        same(&resp.body, &png, "body");
    }
    // Only the listed types.
    let server = start("[compression]\ntypes = [\"text/css\"]");
    std::fs::write(server.root.join("a.css"), script()).unwrap();
    warm(&server, "/a.css", "gzip");
    for _ in 0..20 {
        let resp = get_coded(&server, "/app.js", "gzip");
        assert_eq!(resp.header("content-encoding"), None);
        assert_eq!(resp.header("vary"), None);
    }
    // Off altogether.
    let server = start("[compression]\nenabled = false");
    for _ in 0..20 {
        let resp = get_coded(&server, "/app.js", "gzip");
        assert_eq!(resp.header("content-encoding"), None);
        assert_eq!(resp.header("vary"), None);
        same(&resp.body, &script(), "body");
    }
}

#[test]
fn a_changed_file_is_never_served_stale_in_any_coding() {
    let server = start("[cache]\nrevalidate_ms = 100");
    for coding in CODINGS {
        warm(&server, "/app.js", coding);
    }
    let new: Vec<u8> = script().iter().rev().copied().collect();
    std::fs::write(server.root.join("app.js"), &new).unwrap();
    // Within revalidate_ms the old file may still be served; once any coding answers with
    // the new file, no coding answers with the old one again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let decoded = |coding: &str| {
        let resp = get_coded(&server, "/app.js", coding);
        match resp.header("content-encoding") {
            Some(c) => python_decode(c, &resp.body),
            None => resp.body,
        }
    };
    while decoded("br") != new {
        assert!(Instant::now() < deadline, "the change was never served");
    }
    for _ in 0..5 {
        for coding in ["identity", "br", "zstd", "gzip"] {
            same(
                &decoded(coding),
                &new,
                format!("{coding} served the old file"),
            );
        }
    }
    // And the new file's variants are made in turn.
    for coding in CODINGS {
        same(
            &python_decode(coding, &warm(&server, "/app.js", coding).body),
            &new,
            "body",
        );
    }
}

#[test]
fn stats_count_variants_and_saved_bytes() {
    let server = start("");
    for coding in CODINGS {
        warm(&server, "/app.js", coding);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats();
        let table = &stats["cache"];
        let done = table["variants_cached"].as_u64() == Some(3)
            && table["bytes_saved"].as_u64().unwrap_or(0) > 0
            && table["variant_bytes"].as_u64().unwrap_or(0) > 0
            && table["compression"]["codings"]
                .as_array()
                .is_some_and(|c| c.len() == 3);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "stats never showed: {table}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let page = server.get("/stats.html");
    assert!(
        page.text().contains("Compression"),
        "stats.html has the section"
    );
}

/// A CGI directory with the programs these tests run.
fn cgi_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("cgi-bin");
    std::fs::create_dir(&bin).unwrap();
    let programs = [
        (
            "big.py",
            "#!/usr/bin/env python3\nimport sys\nsys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n')\nfor i in range(20):\n    sys.stdout.write(''.join('piece %d line %d\\n' % (i, j) for j in range(300)))\n    sys.stdout.flush()\n",
        ),
        (
            "small.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nshort\\n'\n",
        ),
        (
            "sized.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/html\\r\\nContent-Length: 600\\r\\n\\r\\n'\nhead -c 600 /dev/zero | tr '\\0' 'x'\n",
        ),
        (
            "tagged.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nVary: Cookie\\r\\nETag: \"v1\"\\r\\n\\r\\n'\nhead -c 2000 /dev/zero | tr '\\0' 'y'\n",
        ),
        (
            "binary.sh",
            "#!/bin/sh\nprintf 'Content-Type: image/png\\r\\n\\r\\n'\nhead -c 5000 /dev/zero\n",
        ),
        (
            "gated.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfirst\\n'\nn=0\nwhile [ ! -e \"$QUERY_STRING\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done\nprintf 'second\\n'\n",
        ),
    ];
    for (name, text) in programs {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, bin)
}

fn big_output() -> Vec<u8> {
    (0..20)
        .flat_map(|i| (0..300).map(move |j| format!("piece {i} line {j}\n")))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn cgi_output_is_compressed_as_it_streams() {
    let (_dir, bin) = cgi_dir();
    let server = Server::start(ServerOpts {
        cgi_bin: Some(bin),
        ..ServerOpts::default()
    });
    for coding in CODINGS {
        let resp = get_coded(&server, "/cgi-bin/big.py", coding);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some(coding));
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
        same(&python_decode(coding, &resp.body), &big_output(), coding);
        let (_, decoded) = curl(&server, "/cgi-bin/big.py", coding);
        same(&decoded, &big_output(), format!("curl, {coding}"));
    }
    // Identity for a client that takes no coding; Vary all the same.
    let resp = request(&server, "GET", "/cgi-bin/big.py", "");
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    same(&resp.body, &big_output(), "body");
    // A whole answer shorter than min_bytes goes as it is, with its length.
    let resp = get_coded(&server, "/cgi-bin/small.sh", "gzip");
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("content-length"), Some("6"));
    same(&resp.body, b"short\n", "body");
    // A program's own Content-Length gives way to the coded length: the coded length when
    // the whole output came in one read, else chunked; never the program's 600.
    let resp = get_coded(&server, "/cgi-bin/sized.sh", "gzip");
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    match resp.header("content-length") {
        Some(length) => assert_eq!(length, resp.body.len().to_string()),
        None => assert_eq!(resp.header("transfer-encoding"), Some("chunked")),
    }
    assert_eq!(python_decode("gzip", &resp.body), vec![b'x'; 600]);
    // HEAD says what GET would send.
    let head = request(
        &server,
        "HEAD",
        "/cgi-bin/big.py",
        "Accept-Encoding: gzip\r\n",
    );
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_eq!(head.header("content-length"), None);
    // The program's own Vary is extended, its tag made the coded variant's.
    let resp = get_coded(&server, "/cgi-bin/tagged.sh", "br");
    assert_eq!(resp.header("content-encoding"), Some("br"));
    assert_eq!(resp.header("vary"), Some("Cookie, Accept-Encoding"));
    assert_eq!(resp.header("etag"), Some("\"v1-br\""));
    same(&python_decode("br", &resp.body), &[b'y'; 2000], "tagged");
    let resp = get_coded(&server, "/cgi-bin/tagged.sh", "identity");
    assert_eq!(resp.header("etag"), Some("\"v1\""));
    // Types not listed are not coded.
    let resp = get_coded(&server, "/cgi-bin/binary.sh", "gzip");
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), None);
    assert_eq!(resp.body, vec![0u8; 5000]);
    // HTTP/1.0: no chunks; the coded body ends with the connection.
    let raw = server.raw(b"GET /cgi-bin/big.py HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    let resp = Response::parse(&raw);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(resp.header("transfer-encoding"), None);
    same(&python_decode("gzip", &resp.body), &big_output(), "body");
}

#[test]
fn a_slow_programs_coded_output_is_not_held_back() {
    let (dir, bin) = cgi_dir();
    let server = Server::start(ServerOpts {
        cgi_bin: Some(bin),
        ..ServerOpts::default()
    });
    let gate = dir.path().join("gate");
    let mut s = server.connect();
    write!(
        s,
        "GET /cgi-bin/gated.sh?{} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        gate.display()
    )
    .unwrap();
    // "first" must arrive, decodable, while the program still waits for the gate.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first line");
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let body = partial_dechunk(&raw[end + 4..]);
        if python_decode("gzip-prefix", &body) == b"first\n" {
            break;
        }
    }
    std::fs::write(&gate, b"").unwrap();
    s.read_to_end(&mut raw).unwrap();
    let resp = Response::parse(&raw);
    same(
        &python_decode("gzip", &resp.body),
        b"first\nsecond\n",
        "body",
    );
}

/// The data of the complete chunks at the start of a chunked body.
fn partial_dechunk(mut raw: &[u8]) -> Vec<u8> {
    if let Some((body, _)) = dechunk(raw) {
        return body;
    }
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|t| usize::from_str_radix(t.trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 || raw.len() < line_end + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
    out
}

#[test]
fn chromium_runs_a_page_whose_script_and_style_arrive_brotli_coded() {
    let dir = crate::support::repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm install` in tests/browser (.ci/run does)"
    );
    let server = start("");
    let mut js = script();
    js.extend_from_slice(b"window.appResult = f2499(1, 2);\n");
    std::fs::write(server.root.join("app.js"), &js).unwrap();
    let css: String = (0..2000)
        .map(|i| format!(".rule-{i} {{ margin: {i}px; padding: 0 {i}px; }}\n"))
        .chain(std::iter::once(
            "body { background-color: rgb(1, 2, 3); }\n".to_string(),
        ))
        .collect();
    std::fs::write(server.root.join("site.css"), css).unwrap();
    std::fs::write(
        server.root.join("page.html"),
        "<!doctype html><html><head><title>coded</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/site.css\">\
         <script src=\"/app.js\"></script></head><body><p>page</p></body></html>\n",
    )
    .unwrap();
    warm(&server, "/app.js", "br");
    warm(&server, "/site.css", "br");
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("compressed.mjs")
        .arg(format!("http://{}/page.html", server.addr()))
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
    assert_eq!(seen["encodings"]["/app.js"], "br", "{seen}");
    assert_eq!(seen["encodings"]["/site.css"], "br", "{seen}");
    assert_eq!(seen["appResult"], 2499 + 2, "{seen}");
    assert_eq!(seen["background"], "rgb(1, 2, 3)", "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
}

#[test]
fn the_compression_table_is_read_as_documented() {
    // The issue's table, as it is written.
    let server = start(
        "[compression]\nenabled = true\nencodings = [\"br\", \"zstd\", \"gzip\"]\nprecompressed = true\non_the_fly = true\nmin_bytes = 256\ntypes = [\"text/*\", \"application/javascript\", \"application/json\", \"application/xml\", \"image/svg+xml\", \"application/wasm\"]\nlevel = { br = 5, zstd = 3, gzip = 6 }\n",
    );
    same(
        &python_decode("gzip", &warm(&server, "/app.js", "gzip").body),
        &script(),
        "gzip",
    );
    // Only the listed codings are offered, in the listed order.
    let server = start("[compression]\nencodings = [\"gzip\", \"zstd\"]");
    warm(&server, "/app.js", "zstd");
    let resp = get_coded(&server, "/app.js", "br, zstd, gzip");
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let resp = get_coded(&server, "/app.js", "br");
    assert_eq!(resp.header("content-encoding"), None);
    // A value that makes no sense stops the server at start, naming the key.
    let dir = tempfile::tempdir().unwrap();
    for (bad, key) in [
        ("encodings = [\"deflate\"]", "compression.encodings"),
        (
            "level = { br = 12, zstd = 3, gzip = 6 }",
            "compression.level",
        ),
        ("colour = 1", "colour"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("[compression]\n{bad}\n")).unwrap();
        let out = Command::new(crate::support::binary())
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(key), "{bad}: {text}");
    }
}
