//! HTTPS: the real binary with a TLS listener, and real clients (curl, openssl s_client,
//! Python's ssl) over real sockets. Certificates are made for each test with `openssl`: a
//! test CA, and server certificates it signs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{repo, Server, ServerOpts};

/// A test CA and the certificates it signed, in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=occwserv test CA",
        ]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `NAME.pem` and `NAME.key`: a certificate with common name `cn` for the DNS names
    /// `dns`, signed by the CA. `kind` is `ec` (P-256), `rsa` or `ed25519`.
    fn issue(&self, name: &str, cn: &str, dns: &[&str], kind: &str) {
        let key = format!("{name}.key");
        match kind {
            "rsa" => self.openssl(&["genpkey", "-algorithm", "RSA", "-out", &key]),
            "ed25519" => self.openssl(&["genpkey", "-algorithm", "ED25519", "-out", &key]),
            _ => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ]),
        }
        let csr = format!("{name}.csr");
        let subject = format!("/CN={cn}");
        self.openssl(&["req", "-new", "-key", &key, "-out", &csr, "-subj", &subject]);
        let sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        let ext = format!("{name}.ext");
        std::fs::write(
            self.path(&ext),
            format!("subjectAltName={},IP:127.0.0.1\n", sans.join(",")),
        )
        .unwrap();
        let pem = format!("{name}.pem");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

/// A server with an HTTPS listener on a free port, `localhost` as its default certificate,
/// and `extra` appended to its config (inside `[tls]` when it starts with a key).
fn start(pki: &Pki, tls_extra: &str, extra: &str) -> (Server, SocketAddr) {
    let server = Server::start(ServerOpts {
        cgi_bin: Some(repo().join("tests/fixtures/cgi-bin")),
        extra_config: format!(
            "{extra}\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n{tls_extra}\n",
            pki.path("localhost.pem").to_string_lossy(),
            pki.path("localhost.key").to_string_lossy(),
        ),
        ..ServerOpts::default()
    });
    assert_eq!(server.addrs.len(), 2, "{:?}", server.addrs);
    let tls = server.addrs[1];
    (server, tls)
}

/// curl over HTTP/1.1: these are its tests over TLS (HTTP/2 over TLS is in `h2.rs`).
pub(crate) fn curl(pki: &Pki, args: &[&str]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .arg("--http1.1")
        .arg("--max-time")
        .arg("20")
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn url(tls: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", tls.port())
}

fn resolve(tls: SocketAddr, name: &str) -> String {
    format!("{name}:{}:127.0.0.1", tls.port())
}

/// `openssl s_client` sending `request` (read until the server closes); stdout and stderr.
fn s_client(pki: &Pki, tls: SocketAddr, args: &[&str], request: &str) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(tls.to_string())
        .arg("-CAfile")
        .arg(pki.path("ca.pem"))
        .arg("-ign_eof")
        .args(args)
        .current_dir(pki.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // s_client may have ended already (a refused handshake): its output says what happened,
    // so a request it never read is no error here.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(request.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const CLOSE_REQUEST: &str =
    "GET /plain.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

pub(crate) fn pki_with_localhost() -> Pki {
    let pki = Pki::new();
    pki.issue("localhost", "localhost", &["localhost"], "ec");
    pki
}

#[test]
fn curl_gets_files_over_one_kept_alive_tls_connection_with_alpn() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    let out = curl(
        &pki,
        &[
            "-v",
            &url(tls, "/plain.txt"),
            &url(tls, "/index.html"),
            &url(tls, "/missing"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ALPN: server accepted http/1.1"),
        "{stderr}"
    );
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
    let index = std::fs::read(server.root.join("index.html")).unwrap();
    let mut want = b"plain text fixture\n".to_vec();
    want.extend_from_slice(&index);
    want.extend_from_slice(&std::fs::read(server.root.join("error404.html")).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&want)
    );
    // The plain listener is untouched.
    assert_eq!(server.get("/plain.txt").status, 200);
}

#[test]
fn rsa_and_ed25519_certificates_are_served() {
    for kind in ["rsa", "ed25519"] {
        let pki = Pki::new();
        pki.issue("localhost", "localhost", &["localhost"], kind);
        let (_server, tls) = start(&pki, "", "");
        let text = s_client(&pki, tls, &["-servername", "localhost"], CLOSE_REQUEST);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{kind}: {text}"
        );
        assert!(text.contains("plain text fixture"), "{kind}: {text}");
    }
}

#[test]
fn large_files_pipelining_stats_over_tls_and_a_slow_reader() {
    let pki = pki_with_localhost();
    // A small kernel send buffer: a large file never fits at once, so send.pool finishes it.
    let (server, tls) = start(&pki, "", "send_buffer_bytes = 8192");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(server.root.join("big.bin"), &big).unwrap();
    // A slow reader: the rest waits in send.pool, encrypted as the client makes room.
    let out = curl(&pki, &["--limit-rate", "3M", &url(tls, "/big.bin")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == big, "the file arrives whole");
    // Pipelined requests in one write, through Python's ssl; then the stats page.
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
s.sendall(b"GET /plain.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\nGET /stats.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(s.version(), data.count(b"HTTP/1.1 200 OK"), len(data), b'"server": "occwserv"' in data)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(pki.path("ca.pem"))
        .arg(tls.port().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[0], "TLSv1.3", "{text}");
    assert_eq!(fields[1], "3", "{text}");
    assert!(fields[2].parse::<usize>().unwrap() > big.len(), "{text}");
    assert_eq!(fields[3], "True", "{text}");
}

#[test]
fn sni_chooses_between_two_certificates() {
    let pki = pki_with_localhost();
    pki.issue("other", "other.test", &["other.test"], "ec");
    pki.issue("wild", "wild.test", &["*.wild.test"], "rsa");
    let certs = format!(
        "[[tls.certs]]\nnames = [\"other.test\"]\ncert = {:?}\nkey = {:?}\n\
         [[tls.certs]]\nnames = [\"*.wild.test\"]\ncert = {:?}\nkey = {:?}\n",
        pki.path("other.pem").to_string_lossy(),
        pki.path("other.key").to_string_lossy(),
        pki.path("wild.pem").to_string_lossy(),
        pki.path("wild.key").to_string_lossy(),
    );
    let (_server, tls) = start(&pki, &certs, "");
    for (name, want) in [
        ("other.test", "other.test"),
        ("a.wild.test", "wild.test"),
        ("localhost", "localhost"),
    ] {
        let out = curl(
            &pki,
            &[
                "-v",
                "--resolve",
                &resolve(tls, name),
                &format!("https://{name}:{}/plain.txt", tls.port()),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains(&format!("CN={want}")), "{name}: {stderr}");
        assert_eq!(out.stdout, b"plain text fixture\n");
    }
    // A name no certificate has gets the default one.
    let text = s_client(&pki, tls, &["-servername", "nobody.example"], CLOSE_REQUEST);
    assert!(
        text.contains("CN=localhost") || text.contains("CN = localhost"),
        "{text}"
    );
}

#[test]
fn openssl_resumes_sessions_by_ticket_and_by_session_id() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    for (label, args) in [
        ("tls1.3 ticket", vec!["-tls1_3"]),
        ("tls1.2 ticket", vec!["-tls1_2"]),
        ("tls1.2 session id", vec!["-tls1_2", "-no_ticket"]),
    ] {
        let sess = format!("{}.sess", label.replace(' ', "-"));
        let mut first = args.clone();
        first.extend(["-sess_out", sess.as_str()]);
        let text = s_client(&pki, tls, &first, CLOSE_REQUEST);
        assert!(text.contains("plain text fixture"), "{label}: {text}");
        assert!(text.contains("New, "), "{label}: {text}");
        let mut second = args.clone();
        second.extend(["-sess_in", sess.as_str()]);
        let text = s_client(&pki, tls, &second, CLOSE_REQUEST);
        assert!(text.contains("Reused, "), "{label}: {text}");
        assert!(text.contains("plain text fixture"), "{label}: {text}");
    }
    let stats = server.stats();
    assert!(
        stats["tls"]["handshakes"].as_u64().unwrap() >= 6,
        "{}",
        stats["tls"]
    );
    assert!(
        stats["tls"]["resumed"].as_u64().unwrap() >= 3,
        "{}",
        stats["tls"]
    );
    // TLS 1.1 and older are refused.
    let text = s_client(&pki, tls, &["-tls1_1"], CLOSE_REQUEST);
    assert!(!text.contains("plain text fixture"), "{text}");
    // /metrics tells the same, in Prometheus's text format.
    let stats = server.stats();
    let families = crate::stats::parse_prometheus(&server.get("/metrics").text());
    let metric = |family: &str, name: &str, labels: &[(&str, &str)]| {
        crate::stats::sample(&families, family, name, labels) as u64
    };
    assert_eq!(
        metric(
            "occwserv_tls_handshakes",
            "occwserv_tls_handshakes_total",
            &[]
        ),
        stats["tls"]["handshakes"].as_u64().unwrap()
    );
    assert_eq!(
        metric("occwserv_tls_resumed", "occwserv_tls_resumed_total", &[]),
        stats["tls"]["resumed"].as_u64().unwrap()
    );
    assert!(
        metric(
            "occwserv_tls_version_handshakes",
            "occwserv_tls_version_handshakes_total",
            &[("version", "tls1_2")]
        ) >= 4
    );
    assert!(
        metric(
            "occwserv_tls_failed",
            "occwserv_tls_failed_total",
            &[("reason", "incompatible")]
        ) >= 1,
        "{}",
        stats["tls"]
    );
}

/// Reads until the server closes (or says something and closes); fails after 20 s.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
}

#[test]
fn garbage_and_truncated_client_hellos_get_an_alert_or_a_close() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "header_timeout_secs = 2");
    // Not TLS at all.
    let mut s = TcpStream::connect(tls).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    // A handshake record whose length is absurd.
    let mut s = TcpStream::connect(tls).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0x00])
        .unwrap();
    s.write_all(&[0x41; 2000]).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    // A ClientHello cut short, then the client stops writing.
    let mut s = TcpStream::connect(tls).unwrap();
    s.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ])
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    // A ClientHello cut short, and the client waits: closed at the header deadline.
    let mut s = TcpStream::connect(tls).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]).unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A client that connects and says nothing: closed at the header deadline too.
    let mut s = TcpStream::connect(tls).unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut s);
    assert!(got.is_empty(), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(server.wait_for_log("tls: "), "{}", server.error_log());
    let failed = server.stats()["tls"]["failed"].as_u64().unwrap();
    assert!(failed >= 3, "{failed} handshakes counted as failed");
    // By reason: plain HTTP is not TLS at all; the silent and the cut-short clients ran out
    // of time.
    let failures = &server.stats()["tls"]["failures"];
    assert!(failures["not_tls"].as_u64().unwrap() >= 1, "{failures}");
    assert!(failures["timeout"].as_u64().unwrap() >= 2, "{failures}");
    // And the server is unharmed.
    let out = curl(&pki, &[&url(tls, "/plain.txt")]);
    assert_eq!(out.stdout, b"plain text fixture\n");
}

#[test]
fn a_thousand_clients_stalled_mid_handshake_hold_nobody_up() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(tls).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00])
                .unwrap();
            s
        })
        .collect();
    // Every one of them is open in the server, mid-handshake.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stats()["connections"]["active"].as_u64().unwrap() < 1000 {
        assert!(
            Instant::now() < deadline,
            "{}",
            server.stats()["connections"]
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let started = Instant::now();
    for _ in 0..5 {
        let out = curl(&pki, &[&url(tls, "/plain.txt")]);
        assert_eq!(out.stdout, b"plain text fixture\n");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} for five requests",
        started.elapsed()
    );
    // And they were still held while those were served.
    assert!(server.stats()["connections"]["active"].as_u64().unwrap() >= 1000);
    drop(stalled);
}

#[test]
fn redirect_http_and_hsts() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "redirect_http = true\nhsts_max_age_secs = 600", "");
    let resp = server.request(&format!(
        "GET /a/b?c=d HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        server.addr().port()
    ));
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some(format!("https://localhost:{}/a/b?c=d", tls.port()).as_str())
    );
    assert_eq!(resp.header("strict-transport-security"), None);
    // ACME http-01 challenges stay on plain HTTP.
    let resp = server.get("/.well-known/acme-challenge/token");
    assert_eq!(resp.status, 404);
    let out = curl(
        &pki,
        &["-i", &url(tls, "/plain.txt"), &url(tls, "/missing")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("Strict-Transport-Security: max-age=600\r\n")
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn cgi_over_tls_sees_https_on() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    let out = curl(&pki, &[&url(tls, "/cgi-bin/env.sh")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTPS=on"), "{text}");
    assert!(text.contains("SSL_PROTOCOL=TLSv1.3"), "{text}");
    assert!(text.contains("SSL_CIPHER=TLS_"), "{text}");
    assert!(text.contains("REQUEST_SCHEME=https"), "{text}");
    let plain = server.get("/cgi-bin/env.sh").text();
    assert!(!plain.contains("HTTPS="), "{plain}");
}

#[test]
fn sighup_reloads_certificates_and_refuses_a_bad_one() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    let before = s_client(&pki, tls, &["-servername", "localhost"], CLOSE_REQUEST);
    assert!(before.contains("CN=localhost") || before.contains("CN = localhost"));
    // A new certificate in the same files.
    pki.issue("renewed", "renewed.localhost", &["localhost"], "ec");
    replace(&pki.path("renewed.pem"), &pki.path("localhost.pem"));
    replace(&pki.path("renewed.key"), &pki.path("localhost.key"));
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_for_log("certificate(s) reloaded"),
        "{}",
        server.error_log()
    );
    let after = s_client(&pki, tls, &["-servername", "localhost"], CLOSE_REQUEST);
    assert!(after.contains("renewed.localhost"), "{after}");
    assert!(after.contains("plain text fixture"), "{after}");
    // A broken key file is refused, named, and the last good certificate kept.
    std::fs::write(pki.path("localhost.key"), "not a key\n").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_for_log("certificate reload refused"),
        "{}",
        server.error_log()
    );
    assert!(
        server.error_log().contains("localhost.key"),
        "{}",
        server.error_log()
    );
    let kept = s_client(&pki, tls, &["-servername", "localhost"], CLOSE_REQUEST);
    assert!(kept.contains("renewed.localhost"), "{kept}");
    assert!(kept.contains("plain text fixture"), "{kept}");
}

fn replace(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[test]
fn check_loads_the_certificates() {
    let pki = pki_with_localhost();
    let dir = tempfile::tempdir().unwrap();
    let run = |key: &Path| {
        Command::new(crate::support::binary())
            .arg("--check")
            .arg("--root")
            .arg(repo().join("tests/fixtures/docroot"))
            .arg("--plugins")
            .arg(dir.path())
            .arg("--tls-listen")
            .arg("127.0.0.1:0")
            .arg("--cert")
            .arg(pki.path("localhost.pem"))
            .arg("--key")
            .arg(key)
            .output()
            .unwrap()
    };
    let good = run(&pki.path("localhost.key"));
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = run(&pki.path("ca.pem"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ca.pem"));
}

#[test]
fn a_large_post_body_reaches_cgi_over_tls() {
    let pki = pki_with_localhost();
    let (_server, tls) = start(&pki, "", "");
    let body: Vec<u8> = (0..600_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let file = pki.path("body.bin");
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.to_string_lossy());
    let out = curl(
        &pki,
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
            &url(tls, "/cgi-bin/echo.py"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == body, "{} bytes came back", out.stdout.len());
}

#[test]
fn a_file_too_large_for_the_cache_streams_compressed_over_tls() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    let text: String = (0..200_000u32)
        .map(|i| format!("line {i} of a text too large for the cache\n"))
        .collect();
    std::fs::write(server.root.join("big.txt"), &text).unwrap();
    let out = curl(
        &pki,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Accept-Encoding: gzip",
            &url(tls, "/big.txt"),
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    let out = curl(&pki, &["--compressed", &url(tls, "/big.txt")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == text.as_bytes(), "{} bytes", out.stdout.len());
}

/// A server like `start`'s, with the plug-ins `stems` (see plugins.rs) attached.
pub(crate) fn start_with_plugins(pki: &Pki, plugins: &Path, extra: &str) -> (Server, SocketAddr) {
    let server = Server::start(ServerOpts {
        plugins: Some(plugins.to_path_buf()),
        extra_config: format!(
            "{extra}\n[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
            pki.path("localhost.pem").to_string_lossy(),
            pki.path("localhost.key").to_string_lossy(),
        ),
        ..ServerOpts::default()
    });
    let tls = server.addrs[1];
    (server, tls)
}

/// Runs a Python program (`python3 -c`) with `args`; its stdout, or a failure with stderr.
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `websockets` client over `wss://`, trusting only the test CA: text, a large binary
/// message and a ping to `/ogi/echo-ws`.
const WSS_ECHO: &str = r#"
import ssl, sys
from websockets.sync.client import connect
ctx = ssl.create_default_context(cafile=sys.argv[1])
with connect(sys.argv[2], ssl=ctx, open_timeout=20, close_timeout=20, max_size=None) as ws:
    ws.send("hello over wss")
    assert ws.recv(timeout=20) == "hello over wss"
    big = bytes(range(256)) * 1024
    ws.send(big)
    assert ws.recv(timeout=20) == big
    ws.ping(b"p").wait(timeout=20)
print("echo ok")
"#;

#[test]
fn plugins_over_tls_see_https_and_keep_the_connection() {
    let pki = pki_with_localhost();
    let plugins = crate::plugins::plugin_dir(&["hello", "echo_ws"]);
    let (server, tls) = start_with_plugins(&pki, plugins.path(), "");
    // One connection: a plug-in's answer, then a file, then a plug-in again.
    let out = curl(
        &pki,
        &[
            "-v",
            &url(tls, "/ogi/hello?Tess"),
            &url(tls, "/plain.txt"),
            &url(tls, "/ogi/hello?again"),
        ],
    );
    let body = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(body.contains("Hello, Tess!"), "{body}\n{log}");
    assert!(body.contains("<b id=\"scheme\">https</b>"), "{body}\n{log}");
    assert!(body.contains("plain text fixture"), "{body}");
    assert!(body.contains("Hello, again!"), "{body}");
    assert_eq!(
        log.matches("Re-using existing connection").count(),
        2,
        "{log}"
    );
    // A POST body, read by the plug-in through the relay.
    let out = curl(&pki, &["--data-binary", "Posted", &url(tls, "/ogi/hello")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, Posted!"));
    // Plain HTTP still says http.
    assert!(server
        .get("/ogi/hello")
        .text()
        .contains("<b id=\"scheme\">http</b>"));
    // wss:// to the echo plug-in, with a real websocket client.
    let got = python(
        WSS_ECHO,
        &[
            pki.path("ca.pem").to_str().unwrap(),
            &format!("wss://localhost:{}/ogi/echo-ws", tls.port()),
        ],
    );
    assert_eq!(got.trim(), "echo ok");
    assert!(
        !server.error_log().contains("panicked"),
        "{}",
        server.error_log()
    );
}

#[test]
fn a_vanishing_wss_client_or_plugin_frees_the_relay() {
    let pki = pki_with_localhost();
    let plugins = crate::plugins::plugin_dir(&["echo_ws", "crash"]);
    let (server, tls) = start_with_plugins(&pki, plugins.path(), "[ogi]\nexclude = []\n");
    // A plug-in that panics mid-request: answered 500 through the session, relay freed.
    let out = curl(
        &pki,
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(tls, "/ogi/crash?panic"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "500");
    // Clients that open a websocket, send half a frame, and vanish without a close.
    let vanish = r#"
import socket, ssl, sys, base64, os, struct
ctx = ssl.create_default_context(cafile=sys.argv[1])
port = int(sys.argv[2])
for i in range(20):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ogi/echo-ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(b"\x81\x85")  # a masked text frame's first two bytes, then nothing
    if i % 2:
        s.close()  # a FIN, no close_notify
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset
print("gone")
"#;
    let got = python(
        vanish,
        &[
            pki.path("ca.pem").to_str().unwrap(),
            &tls.port().to_string(),
        ],
    );
    assert_eq!(got.trim(), "gone");
    // Every relayed connection ends: nothing is left open but the one asking.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats();
        let active = stats["connections"]["active"].as_u64().unwrap();
        let relays = stats["tls"]["relays"].as_u64().unwrap();
        if active <= 1 && relays == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{active} connections, {relays} relays still open"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
    // The server still serves wss.
    let got = python(
        WSS_ECHO,
        &[
            pki.path("ca.pem").to_str().unwrap(),
            &format!("wss://localhost:{}/ogi/echo-ws", tls.port()),
        ],
    );
    assert_eq!(got.trim(), "echo ok");
}

#[test]
fn the_game_is_played_over_wss() {
    let pki = pki_with_localhost();
    let built = crate::support::binary().with_file_name("libgame.so");
    assert!(
        built.exists(),
        "build it with `cargo build -p occwserv-game`"
    );
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&built, plugins.path().join("libgame.so")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (server, tls) = start_with_plugins(
        &pki,
        plugins.path(),
        &format!("[game]\nstate_dir = {:?}\n", state.path().to_string_lossy()),
    );
    // The game starts when attached (its world, its state in SQLite): wait, bounded, until
    // its instance is alive, so the client's 30 s are the websocket's own.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = server.stats();
        let owning = stats["plugins"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["name"] == "game" && r["state"] == "owning")
        });
        if owning {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the game never started: {stats}\n{}",
            server.error_log()
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let play = r#"
import json, ssl, sys
from websockets.sync.client import connect
ctx = ssl.create_default_context(cafile=sys.argv[1])
def frames(ws):
    while True:
        yield json.loads(ws.recv(timeout=30))
with connect(sys.argv[2] + "?name=Tess", ssl=ctx, open_timeout=30) as ws:
    seen = frames(ws)
    first = next(seen)
    assert first.get("token"), first
    for frame in seen:
        if (frame.get("text") or "").startswith("The Listening Gate"):
            break
    ws.send(json.dumps({"command": "say hello over wss", "id": 1}))
    said = []
    for frame in seen:
        if frame.get("done") == 1:
            break
        said.append(frame.get("text") or "")
    print("\n".join(said))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(play)
        .arg(pki.path("ca.pem"))
        .arg(format!("wss://localhost:{}/ogi/game/ws", tls.port()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stats(),
        server.error_log()
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.contains("hello over wss"),
        "{got}\n{}",
        server.error_log()
    );
}

/// A TLS client in front of kosoku, which speaks only `ws://`: each connection it accepts
/// is carried over TLS (trusting the test CA) to the server, both ways, and each side's end
/// passed on. It prints its port.
const TLS_RELAY: &str = r#"
import asyncio, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
port = int(sys.argv[2])
async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    try:
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except Exception:
        pass
async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    except Exception:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
    client_writer.close()
    server_writer.close()
async def main():
    relay = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(relay.sockets[0].getsockname()[1], flush=True)
    await relay.serve_forever()
asyncio.run(main())
"#;

/// The Autobahn cases (compression aside) run by kosoku against `wss://.../ogi/echo-ws`.
/// kosoku is built without TLS, so it reaches the server through `TLS_RELAY`.
#[test]
fn echo_ws_passes_the_autobahn_cases_over_wss() {
    if !crate::plugins::kosoku_installed() {
        return;
    }
    let pki = pki_with_localhost();
    let plugins = crate::plugins::plugin_dir(&["echo_ws"]);
    let (server, tls) = start_with_plugins(&pki, plugins.path(), "");
    let mut relay = Command::new("python3")
        .arg("-c")
        .arg(TLS_RELAY)
        .arg(pki.path("ca.pem"))
        .arg(tls.port().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(relay.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let port: u16 = port.trim().parse().unwrap();
    let verdict = crate::plugins::run_kosoku(&format!("ws://127.0.0.1:{port}/ogi/echo-ws"));
    let _ = relay.kill();
    let _ = relay.wait();
    let cases = verdict.unwrap_or_else(|e| panic!("{e}\n{}", server.error_log()));
    assert!(cases > 250, "{cases} cases ran");
    let stats = server.stats();
    assert!(
        stats["tls"]["handshakes"].as_u64().unwrap() > 250,
        "{}",
        stats["tls"]
    );
}

/// Headless Chromium (`tests/browser/https.mjs`) with `HOME` set to `home`, whose NSS
/// database trusts the test CA; what the browser saw on `url`.
fn chromium(home: &Path, url: &str, args: &[&str]) -> serde_json::Value {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm install` in tests/browser (.ci/run does)"
    );
    let out = Command::new("node")
        .arg("https.mjs")
        .arg(url)
        .args(args)
        .current_dir(&dir)
        .env("HOME", home)
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn chromium_trusts_the_test_ca_and_loads_https_pages_and_stats() {
    let pki = pki_with_localhost();
    let (server, tls) = start(&pki, "", "");
    // A home whose NSS database trusts the test CA, as `certutil` puts it there for a user.
    let home = tempfile::tempdir().unwrap();
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-n",
            "occwserv test CA",
            "-t",
            "C,,",
            "-i",
            pki.path("ca.pem").to_str().unwrap(),
        ],
    ] {
        let out = Command::new("certutil").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A page with a stylesheet and a script that fetches a file, all over HTTPS.
    std::fs::write(
        server.root.join("secure.html"),
        "<!DOCTYPE html>\n<html><head><title>secure page</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body><p id=\"tls\">waiting</p>\
         <script>fetch('/plain.txt').then(r => r.text()).then(t => \
         { document.getElementById('tls').textContent = 'fetched: ' + t; document.title = 'secure page, fetched'; });\
         </script></body></html>\n",
    )
    .unwrap();
    let page = chromium(home.path(), &url(tls, "/secure.html"), &["--fetched"]);
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(page["title"], "secure page, fetched", "{page}");
    assert_eq!(page["tls"], "fetched: plain text fixture", "{page}");
    assert_eq!(page["issuer"], "occwserv test CA", "{page}");
    assert_eq!(page["subject"], "localhost", "{page}");
    assert_eq!(page["protocol"], "TLS 1.3", "{page}");
    assert_eq!(page["errors"], serde_json::json!([]), "{page}");
    // The status page, over HTTPS: its script refreshes it from /stats.json, and it shows
    // the TLS figures.
    let page = chromium(home.path(), &url(tls, "/stats.html"), &["--stats"]);
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(page["errors"], serde_json::json!([]), "{page}");
    let figures = page["tls"].as_str().unwrap_or_default();
    for wanted in [
        "handshakes /s",
        "resumed",
        "failed handshakes by reason",
        "TLS 1.3",
        "TLS_AES_",
    ] {
        assert!(figures.contains(wanted), "{wanted} not in {figures}");
    }
    // Without the CA in its database, the same browser refuses the certificate.
    let stranger = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg("https.mjs")
        .arg(url(tls, "/secure.html"))
        .current_dir(repo().join("tests/browser"))
        .env("HOME", stranger.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ERR_CERT_AUTHORITY_INVALID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = server.stats();
    assert!(
        stats["tls"]["versions"]["tls1_3"].as_u64().unwrap() >= 2,
        "{}",
        stats["tls"]
    );
}

/// Python's `ssl` module as an HTTPS client: verification against the test CA, ALPN, two
/// requests on one connection, TLS 1.2 resumption by session, and the refusals.
const PYTHON_SSL: &str = r#"
import socket, ssl, sys
ca, port = sys.argv[1], int(sys.argv[2])

def get(s, path, close=False):
    extra = "Connection: close\r\n" if close else ""
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (path, extra)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += s.recv(65536)
    return head.split(b"\r\n")[0].decode(), body.decode()

ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="localhost") as s:
    print("version", s.version())
    print("alpn", s.selected_alpn_protocol())
    print("first", *get(s, "/plain.txt"))
    print("second", *get(s, "/plain.txt"))

ctx12 = ssl.create_default_context(cafile=ca)
ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
with ctx12.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="localhost") as s:
    get(s, "/plain.txt")
    session = s.session
with ctx12.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="localhost",
                       session=session) as s:
    print("tls1.2 resumed", s.session_reused, s.version())

old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
old.load_verify_locations(ca)
old.set_ciphers("DEFAULT:@SECLEVEL=0")
old.minimum_version = ssl.TLSVersion.TLSv1
old.maximum_version = ssl.TLSVersion.TLSv1_1
try:
    with old.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="localhost"):
        print("tls1.1 accepted")
except ssl.SSLError as e:
    print("tls1.1 refused", e.reason)

try:
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20), server_hostname="other.example"):
        print("other name accepted")
except ssl.SSLCertVerificationError:
    print("other name refused")
"#;

#[test]
fn python_ssl_client() {
    let pki = pki_with_localhost();
    let (_server, tls) = start(&pki, "", "");
    let got = python(
        PYTHON_SSL,
        &[
            pki.path("ca.pem").to_str().unwrap(),
            &tls.port().to_string(),
        ],
    );
    for wanted in [
        "version TLSv1.3\n",
        "alpn http/1.1\n",
        "first HTTP/1.1 200 OK plain text fixture\n",
        "second HTTP/1.1 200 OK plain text fixture\n",
        "tls1.2 resumed True TLSv1.2\n",
        "tls1.1 refused",
        "other name refused\n",
    ] {
        assert!(got.contains(wanted), "{wanted:?} not in:\n{got}");
    }
}

#[test]
fn certificates_reload_under_load_with_no_failed_request() {
    let pki = pki_with_localhost();
    pki.issue("second", "second.localhost", &["localhost"], "ec");
    for name in ["localhost", "second"] {
        for ext in ["pem", "key"] {
            std::fs::copy(
                pki.path(&format!("{name}.{ext}")),
                pki.path(&format!("keep-{name}.{ext}")),
            )
            .unwrap();
        }
    }
    let (server, tls) = start(&pki, "", "");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let served = std::sync::atomic::AtomicUsize::new(0);
    let reloads = 6;
    let (requests, failures) = std::thread::scope(|scope| {
        let loaders: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let (mut requests, mut failures) = (0, Vec::new());
                    // Bounded: at most 400 connections of five requests each.
                    for _ in 0..400 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let target = url(tls, "/plain.txt");
                        let out = curl(&pki, &[&target, &target, &target, &target, &target]);
                        requests += 5;
                        served.fetch_add(5, std::sync::atomic::Ordering::Relaxed);
                        if !out.status.success() || out.stdout != b"plain text fixture\n".repeat(5)
                        {
                            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                        }
                    }
                    (requests, failures)
                })
            })
            .collect();
        for round in 1..=reloads {
            // Each reload comes while connections are being made and served.
            let wanted = served.load(std::sync::atomic::Ordering::Relaxed) + 15;
            let deadline = Instant::now() + Duration::from_secs(60);
            while served.load(std::sync::atomic::Ordering::Relaxed) < wanted {
                assert!(Instant::now() < deadline, "the load stopped");
                std::thread::park_timeout(Duration::from_millis(10));
            }
            let name = if round % 2 == 1 {
                "second"
            } else {
                "localhost"
            };
            replace(
                &pki.path(&format!("keep-{name}.pem")),
                &pki.path("localhost.pem"),
            );
            replace(
                &pki.path(&format!("keep-{name}.key")),
                &pki.path("localhost.key"),
            );
            // `replace` renames: copy the kept files back for the next round.
            for ext in ["pem", "key"] {
                std::fs::copy(
                    pki.path(&format!("localhost.{ext}")),
                    pki.path(&format!("keep-{name}.{ext}")),
                )
                .unwrap();
            }
            server.signal(nix::sys::signal::Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(20);
            while server
                .error_log()
                .matches("certificate(s) reloaded")
                .count()
                < round
            {
                assert!(Instant::now() < deadline, "{}", server.error_log());
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        loaders.into_iter().map(|l| l.join().unwrap()).fold(
            (0, Vec::new()),
            |(n, mut f), (m, g)| {
                f.extend(g);
                (n + m, f)
            },
        )
    });
    assert!(
        failures.is_empty(),
        "{} of {requests} failed: {failures:?}",
        failures.len()
    );
    assert!(requests >= 15 * reloads, "{requests} requests");
    // The last reload (an even round) put the first certificate back.
    let now = s_client(&pki, tls, &["-servername", "localhost"], CLOSE_REQUEST);
    assert!(!now.contains("second.localhost"), "{now}");
    assert!(now.contains("plain text fixture"), "{now}");
}

#[test]
fn a_plugin_timed_out_over_tls_is_answered_504_through_the_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let pki = pki_with_localhost();
    let plugins = crate::plugins::plugin_dir(&["finger", "hello"]);
    let (server, tls) = start_with_plugins(
        &pki,
        plugins.path(),
        "[ogi]\ntimeout_secs = 1\nscan_interval_ms = 50\n",
    );
    // A finger server that never answers: the plug-in waits past `timeout_secs`.
    let release = Arc::new(AtomicBool::new(false));
    let (port, peer) = crate::plugins::finger_server(None, release.clone());
    let out = curl(
        &pki,
        &[
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &url(tls, &format!("/ogi/finger?127.0.0.1:{port}")),
        ],
    );
    release.store(true, Ordering::Release);
    peer.join().unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 504"),
        "{head}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(head.contains("connection: close"), "{head}");
    assert!(server.wait_for_log("timed out after 1 s; answered 504"));
    // The relay is gone once the plug-in gives the connection back, and HTTPS still serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stats()["tls"]["relays"].as_u64().unwrap() > 0 {
        assert!(Instant::now() < deadline, "{}", server.stats()["tls"]);
        std::thread::park_timeout(Duration::from_millis(50));
    }
    let out = curl(&pki, &[&url(tls, "/ogi/hello")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("<b id=\"scheme\">https</b>"));
}
