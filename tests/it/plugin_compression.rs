//! Plug-in answers compressed on the fly: `hello` declares `compress: allowed`, so its
//! HTML answer is coded in the coding the client takes best (curl `--compressed` decodes
//! it), `identity` and `q=0` are honoured, a plug-in without the flag (`counter`) and a
//! websocket (`echo-ws`) are untouched, keep-alive carries on after a coded answer, and the
//! same holds over HTTPS.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::support::{read_response, read_to_close, Response, Server, ServerOpts};

/// A name long enough that hello's page is over `min_bytes` (256 by default).
const NAME: &str = "Compressible";

fn start() -> (Server, tempfile::TempDir) {
    let plugins = crate::plugins::plugin_dir(&["hello", "counter", "echo_ws"]);
    let server = Server::start(ServerOpts {
        plugins: Some(plugins.path().to_path_buf()),
        ..ServerOpts::default()
    });
    (server, plugins)
}

fn hello_path() -> String {
    format!("/ogi/hello?{}", NAME.repeat(30))
}

/// hello's page without the instance number, which grows with every request.
fn normalized(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let open = "<b id=\"instance\">";
    let start = text.find(open).expect("an instance number") + open.len();
    let end = start + text[start..].find("</b>").expect("its end");
    format!("{}N{}", &text[..start], &text[end..])
}

/// One request on a fresh connection; the whole answer.
fn ask(server: &Server, path: &str, accept: Option<&str>) -> Response {
    let accept = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n");
    let mut s = server.connect();
    s.write_all(raw.as_bytes()).unwrap();
    Response::parse(&read_to_close(&mut s))
}

/// curl `--compressed` with `Accept-Encoding: accept`: the response head and decoded body.
fn curl(server: &Server, path: &str, accept: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--compressed", "-H"])
        .arg(format!("Accept-Encoding: {accept}"))
        .arg("-D")
        .arg(&headers)
        .arg(format!("http://{}{path}", server.addr()))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    (
        std::fs::read_to_string(headers)
            .unwrap()
            .to_ascii_lowercase(),
        out.stdout,
    )
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn curl_decodes_hello_in_br_zstd_and_gzip() {
    let (server, _plugins) = start();
    let identity = ask(&server, &hello_path(), None);
    assert_eq!(identity.status, 200);
    assert!(identity.body.len() > 256, "{}", identity.body.len());
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.header("vary"), Some("Accept-Encoding"));
    let expected = normalized(&identity.body);
    for coding in ["br", "zstd", "gzip"] {
        let (head, body) = curl(&server, &hello_path(), coding);
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.contains("content-type: text/html; charset=utf-8\r\n"));
        assert_eq!(normalized(&body), expected, "{coding}");
    }
    // curl's own list (deflate, gzip, br, zstd) gets the server's first choice.
    let out = Command::new("curl")
        .args(["-sS", "--compressed", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{}{}", server.addr(), hello_path()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("content-encoding: br\r\n"), "{head}");
    let stats = server.stats();
    assert!(
        stats["plugins_coded"].as_u64() >= Some(4),
        "{}",
        stats["plugins_coded"]
    );
}

#[test]
fn identity_and_q_zero_are_honoured_and_small_or_head_answers_are_not_coded() {
    let (server, _plugins) = start();
    let path = hello_path();
    for accept in [
        "identity",
        "gzip;q=0, br;q=0, zstd;q=0",
        "gzip;q=0.5, identity",
    ] {
        let resp = ask(&server, &path, Some(accept));
        assert_eq!(resp.status, 200, "{accept}");
        assert_eq!(resp.header("content-encoding"), None, "{accept}");
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"), "{accept}");
        assert_eq!(
            resp.header("content-length"),
            Some(resp.body.len().to_string().as_str())
        );
        assert!(resp.text().contains(&NAME.repeat(30)));
    }
    // br refused, gzip taken.
    let resp = ask(&server, &path, Some("br;q=0, gzip"));
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert!(String::from_utf8(gunzip(&resp.body))
        .unwrap()
        .contains(&NAME.repeat(30)));
    // A page under min_bytes (256) goes as it is, saying it could have varied.
    let resp = ask(&server, "/ogi/hello", Some("gzip"));
    assert!(resp.body.len() < 256, "{}", resp.body.len());
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert!(resp.text().contains("Hello, world!"));
    // HEAD: the head only, not coded.
    let mut s = server.connect();
    s.write_all(
        format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let resp = read_response(&mut s, true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert!(resp.header("content-length").is_some());
}

#[test]
fn a_plugin_that_does_not_allow_it_is_never_coded() {
    let (server, _plugins) = start();
    for accept in [Some("gzip"), Some("br"), None] {
        let resp = ask(&server, "/ogi/counter", accept);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), None);
        assert_eq!(resp.header("vary"), None);
        assert!(resp.text().contains("This page has been hit"));
    }
}

#[test]
fn keep_alive_carries_on_after_coded_answers() {
    let (server, _plugins) = start();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bodies = Vec::new();
    for name in ["first", "second"] {
        let req = format!(
            "GET /ogi/hello?{name}{} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n",
            NAME.repeat(30)
        );
        s.write_all(req.as_bytes()).unwrap();
        let resp = read_response(&mut s, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        let text = String::from_utf8(gunzip(&resp.body)).unwrap();
        assert!(text.contains(&format!("Hello, {name}")), "{text}");
        bodies.push(text);
    }
    // Two pipelined: a coded plug-in answer, then a file.
    let req = format!(
        "GET /ogi/hello?third{} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: br\r\n\r\n\
         GET /plain.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
        NAME.repeat(30)
    );
    s.write_all(req.as_bytes()).unwrap();
    // Both answers may arrive in one read: parse them from one buffer.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let (first, resp) = loop {
        if let Some(first) = Response::parse_one(&raw, false) {
            let complete = first.header("transfer-encoding").is_some()
                && crate::support::dechunk(&raw[first.head_len..]).is_some();
            if complete {
                let rest = &raw[first.consumed(&raw)..];
                if let Some(second) = Response::parse_one(rest, false) {
                    if second.body.len()
                        == second
                            .header("content-length")
                            .map_or(0, |l| l.parse::<usize>().unwrap())
                    {
                        break (first, second);
                    }
                }
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    };
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains("plain text fixture"),
        "{}",
        resp.text()
    );
    // HTTP/1.0: the coded body runs to the close.
    let mut s = server.connect();
    s.write_all(
        format!(
            "GET {} HTTP/1.0\r\nConnection: keep-alive\r\nAccept-Encoding: gzip\r\n\r\n",
            hello_path()
        )
        .as_bytes(),
    )
    .unwrap();
    let resp = Response::parse(&read_to_close(&mut s));
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.header("transfer-encoding"), None);
    assert!(String::from_utf8(gunzip(&resp.body))
        .unwrap()
        .contains(&NAME.repeat(30)));
}

#[test]
fn a_posted_body_and_100_continue_pass_through_the_relay() {
    let (server, _plugins) = start();
    let name = NAME.repeat(30);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--compressed", "-D", "-"])
        .args(["-H", "Expect: 100-continue", "--data-binary"])
        .arg(&name)
        .arg(format!("http://{}/ogi/hello", server.addr()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP/1.1 100 Continue"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-encoding: br"),
        "{text}"
    );
    assert!(text.contains(&format!("Hello, {name}!")), "{text}");
}

#[test]
fn a_websocket_plugin_is_unaffected() {
    let (server, _plugins) = start();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"GET /ogi/echo-ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, br\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(!head.contains("content-encoding"), "{head}");
    // A masked text frame "hi"; the echo comes back unmasked.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x82];
    frame.extend_from_slice(&mask);
    frame.extend(b"hi".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut got = raw[end..].to_vec();
    while got.len() < 4 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&got[..4], b"\x81\x02hi");
    // Not relayed: the plug-in has the socket itself.
    assert_eq!(server.stats()["tls"]["relays"], 0);
}

#[test]
fn hello_is_coded_over_https_on_a_kept_connection() {
    let pki = crate::tls::pki_with_localhost();
    let plugins = crate::plugins::plugin_dir(&["hello"]);
    let (server, tls) = crate::tls::start_with_plugins(&pki, plugins.path(), "");
    let path = hello_path();
    let identity = ask(&server, &path, Some("identity"));
    let expected = normalized(&identity.body);
    let out = crate::tls::curl(
        &pki,
        &[
            "-v",
            "--compressed",
            &crate::tls::url(tls, &path),
            &crate::tls::url(tls, &path),
        ],
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("< content-encoding: br").count(), 2, "{log}");
    assert_eq!(
        log.matches("re-using existing connection").count(),
        1,
        "{log}"
    );
    let https = expected.replace(">http</b>", ">https</b>");
    let half = body.len() / 2;
    assert_eq!(normalized(&body.as_bytes()[..half]), https);
    assert_eq!(normalized(&body.as_bytes()[half..]), https);
}

#[test]
fn a_websocket_through_the_coding_relay_passes_untouched() {
    // echo-ws with the flag set: its connections go through the relay and the coder.
    let plugins = tempfile::tempdir().unwrap();
    let bytes = crate::plugins::patched("echo_ws", |d| {
        d.flags |= plugin_api::abi::FLAG_COMPRESSIBLE;
    });
    crate::plugins::install_bytes(&bytes, &plugins.path().join("libecho_ws.so"));
    let server = Server::start(ServerOpts {
        plugins: Some(plugins.path().to_path_buf()),
        ..ServerOpts::default()
    });
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ogi/echo-ws", server.addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Accept-Encoding", "gzip, br".parse().unwrap());
    let stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut ws, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().get("content-encoding").is_none());
    ws.send(tungstenite::Message::text("hello through the relay"))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::text("hello through the relay")
    );
    // It is relayed (the gauge counts relays open now).
    assert_eq!(server.stats()["tls"]["relays"], 1);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(tungstenite::Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::binary(big));
    ws.close(None).unwrap();
    assert!(
        !server.error_log().contains("panicked"),
        "{}",
        server.error_log()
    );
}
