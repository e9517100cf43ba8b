//! Built-in ACME (`[tls.acme]`) end to end against pebble, Let's Encrypt's test CA (Debian
//! package `pebble`): pebble validates the http-01 challenge for real, over TCP, on the
//! server's plain listener; names resolve to 127.0.0.1 through `pebble-challtestsrv`'s DNS
//! server. The issued certificates are checked as a client sees them, with curl and
//! `openssl s_client` trusting pebble's root (fetched from its management port).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, ServerOpts};

/// A port nobody listens on right now (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Waits (bounded) until something listens on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test CA (`ca.pem`) made with openssl, which signs pebble's own HTTPS certificate and,
/// for the back-off test, a certificate to seed `state_dir` with.
fn test_ca(dir: &Path) {
    run(
        dir,
        "openssl",
        &[
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
            "/CN=acme test CA",
        ],
    );
}

/// `NAME.pem` and `NAME.key` for `dns`, signed by the test CA, valid from `start` to
/// `end` (openssl's `YYYYMMDDHHMMSSZ`).
fn issue(dir: &Path, name: &str, dns: &str, start: &str, end: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    run(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={dns}"),
        ],
    );
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
         certificate = ca.pem\nprivate_key = ca.key\nserial = serial\ndefault_md = sha256\n\
         policy = any\n[any]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:{dns}\n"),
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-in",
            &csr,
            "-out",
            &format!("{name}.pem"),
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// pebble and its DNS server, on ports of their own; stopped on drop.
struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
}

impl Pebble {
    /// Validates http-01 challenges on `http_port`; issues certificates valid for
    /// `validity_secs` (pebble's default, five years, when none).
    fn start(http_port: u16, validity_secs: Option<u64>) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        test_ca(dir.path());
        let ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
        std::fs::write(dir.path().join("pebble.ext"), ext).unwrap();
        run(
            dir.path(),
            "openssl",
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "pebble.key",
                "-out",
                "pebble.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        run(
            dir.path(),
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "pebble.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "pebble.pem",
                "-days",
                "2",
                "-extfile",
                "pebble.ext",
            ],
        );
        let (acme_port, management_port) = (free_port(), free_port());
        let (dns_port, dns_management_port) = (free_port(), free_port());
        let validity = validity_secs.map_or(String::new(), |secs| {
            format!(", \"certificateValidityPeriod\": {secs}")
        });
        let config = format!(
            "{{\"pebble\": {{\"listenAddress\": \"127.0.0.1:{acme_port}\", \
             \"managementListenAddress\": \"127.0.0.1:{management_port}\", \
             \"certificate\": {:?}, \"privateKey\": {:?}, \"httpPort\": {http_port}, \
             \"tlsPort\": {}, \"ocspResponderURL\": \"\", \
             \"externalAccountBindingRequired\": false{validity}}}}}",
            dir.path().join("pebble.pem"),
            dir.path().join("pebble.key"),
            free_port(),
        );
        std::fs::write(dir.path().join("pebble.json"), config).unwrap();
        // Every name resolves to 127.0.0.1 (and has no IPv6 address).
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(dns_management_port);
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // Real validation, at once, of a fresh authorization each time, with no nonce
            // refused for practice.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(acme_port);
        wait_listening(management_port);
        Pebble {
            pebble: Some(pebble),
            dns,
            dir,
            acme_port,
            management_port,
        }
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The CA that signed pebble's own HTTPS certificate: `[tls.acme] ca_file`.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Pebble's issuing root (made afresh at each start), from its management port.
    fn issuing_root(&self) -> PathBuf {
        let out = run(
            self.dir.path(),
            "curl",
            &[
                "-sS",
                "--fail",
                "--max-time",
                "20",
                "--cacert",
                "ca.pem",
                "-o",
                "root.pem",
                &format!("https://127.0.0.1:{}/roots/0", self.management_port),
            ],
        );
        assert!(out.status.success());
        self.dir.path().join("root.pem")
    }

    /// Stops pebble (its DNS server stays until drop).
    fn stop(&mut self) {
        if let Some(mut pebble) = self.pebble.take() {
            let _ = pebble.kill();
            let _ = pebble.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

fn acme_config(directory: &str, ca_file: &Path, names: &[&str], state_dir: &Path) -> String {
    format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nredirect_http = true\n\
         [tls.acme]\ndirectory = {directory:?}\nemail = \"admin@acme.test\"\nnames = {names:?}\n\
         state_dir = {:?}\nca_file = {:?}\n",
        state_dir.to_string_lossy(),
        ca_file.to_string_lossy(),
    )
}

fn start(config: String, listen: Option<SocketAddr>) -> (Server, SocketAddr) {
    let server = Server::start(ServerOpts {
        extra_config: config,
        listen,
        ..ServerOpts::default()
    });
    let tls = server.addrs[1];
    (server, tls)
}

/// A `GET /index.html` over HTTPS to `name` (SNI), trusting only `root`.
fn curl_https(tls: SocketAddr, name: &str, root: &Path) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", tls.port()))
        .arg(format!("https://{name}:{}/index.html", tls.port()))
        .output()
        .unwrap()
}

/// The serial number (as `openssl x509 -serial` prints it) and names of the certificate the
/// server presents for `name`, verified against `root`.
fn presented(tls: SocketAddr, name: &str, root: &Path) -> (String, String) {
    let hello = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &tls.to_string(),
            "-servername",
            name,
        ])
        .args(["-verify_return_error", "-verify_hostname", name, "-CAfile"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&hello.stdout).to_string();
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "{name}: {text}{}",
        String::from_utf8_lossy(&hello.stderr)
    );
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = String::from_utf8(x509.wait_with_output().unwrap().stdout).unwrap();
    let serial = out
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .to_string();
    (serial, out)
}

/// Waits (bounded) for `needle` in the error log; fails with the log.
fn expect_log(server: &Server, needle: &str) {
    assert!(
        server.wait_for_log(needle),
        "{needle}: {}",
        server.error_log()
    );
}

/// Waits (bounded by `limit`) until the error log has `count` lines containing `needle`.
fn wait_for_lines(server: &Server, needle: &str, count: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.error_log().matches(needle).count() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `/stats.json` over HTTPS (the plain listener redirects), `acme` row for `name`.
fn acme_row(tls: SocketAddr, name: &str, root: &Path) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", tls.port()))
        .arg(format!("https://{name}:{}/stats.json", tls.port()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stats["acme"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == name)
        .cloned()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn obtains_by_http_01_serves_by_sni_and_restarts_from_state_dir() {
    let plain_port = free_port();
    let mut pebble = Pebble::start(plain_port, None);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("acme");
    let names = ["a.acme.test", "b.acme.test"];
    let config = acme_config(&pebble.directory(), &pebble.ca_file(), &names, &state_dir);
    let listen = Some(SocketAddr::from(([127, 0, 0, 1], plain_port)));
    let (server, tls) = start(config.clone(), listen);
    for name in names {
        assert!(
            server.wait_for_log(&format!("acme: {name}: certificate obtained")),
            "{}",
            server.error_log()
        );
    }
    let root = pebble.issuing_root();

    // Each name gets its own certificate, chosen by SNI, trusted through pebble's root.
    let out = curl_https(tls, "a.acme.test", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = std::fs::read(server.root.join("index.html")).unwrap();
    assert_eq!(out.stdout, index);
    let (serial_a, text_a) = presented(tls, "a.acme.test", &root);
    let (serial_b, text_b) = presented(tls, "b.acme.test", &root);
    assert!(text_a.contains("DNS:a.acme.test"), "{text_a}");
    assert!(text_b.contains("DNS:b.acme.test"), "{text_b}");
    assert_ne!(serial_a, serial_b);

    // The status page shows each name's certificate and its next order, a third of its
    // lifetime before expiry.
    let row = acme_row(tls, "a.acme.test", &root);
    assert_eq!(row["state"], "valid", "{row}");
    assert_eq!(row["serial"], serial_a.as_str());
    assert_eq!(row["failures"], 0);
    let expires = row["expires_unix"].as_u64().unwrap();
    let next = row["next_order_unix"].as_u64().unwrap();
    assert!(next > now_unix() + 365 * 86_400 && next < expires, "{row}");

    // Pebble fetched each challenge from the plain listener, which answered it from memory
    // (there is no such file under the root) despite redirect_http.
    assert!(!server.root.join(".well-known").exists());
    let deadline = Instant::now() + Duration::from_secs(20);
    let answered = loop {
        let log = server.access_log();
        let answered = log
            .lines()
            .filter(|l| l.contains("\"GET /.well-known/acme-challenge/") && l.contains("\" 200 "))
            .count();
        if answered >= 2 || Instant::now() > deadline {
            break answered;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answered >= 2, "{}", server.access_log());

    // The plain listener still redirects everything else, challenges included once they
    // are answered: an unknown token is served from the root (404), never redirected.
    let redirected = server.get("/plain.txt");
    assert_eq!(redirected.status, 308);
    let unknown = server.get("/.well-known/acme-challenge/no-such-token");
    assert_eq!(unknown.status, 404);

    // The account key, the certificates and their keys are private to the server.
    assert_eq!(mode(&state_dir), 0o700);
    assert_eq!(mode(&state_dir.join("certs/a.acme.test")), 0o700);
    assert_eq!(mode(&state_dir.join("certs/a.acme.test/key.pem")), 0o600);
    assert_eq!(mode(&state_dir.join("certs/a.acme.test/cert.pem")), 0o600);
    let accounts: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("account-"))
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(mode(&accounts[0].path()), 0o600);
    assert_eq!(
        server
            .error_log()
            .matches("acme: registered a new account")
            .count(),
        1
    );
    drop(server);

    // With the CA gone, a restart serves the kept certificates at once: no order is made
    // (none could succeed), and the next one is years away.
    pebble.stop();
    let (server, tls) = start(config, None);
    expect_log(
        &server,
        &format!("acme: a.acme.test: serving the certificate kept in state_dir (serial {serial_a}"),
    );
    let out = curl_https(tls, "b.acme.test", &root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(presented(tls, "a.acme.test", &root).0, serial_a);
    assert_eq!(presented(tls, "b.acme.test", &root).0, serial_b);
    let row = acme_row(tls, "b.acme.test", &root);
    assert_eq!(row["state"], "valid", "{row}");
    assert_eq!(row["failures"], 0);
    assert!(row["next_order_unix"].as_u64().unwrap() > now_unix() + 365 * 86_400);
    let log = server.error_log();
    assert!(!log.contains("order failed"), "{log}");
    assert!(!log.contains("certificate obtained"), "{log}");
}

#[test]
fn short_lived_certificates_are_renewed_without_a_restart() {
    let plain_port = free_port();
    // Pebble issues certificates valid for 12 s: each is renewed after about 8 s.
    let pebble = Pebble::start(plain_port, Some(12));
    let state = tempfile::tempdir().unwrap();
    let config = acme_config(
        &pebble.directory(),
        &pebble.ca_file(),
        &["r.acme.test"],
        &state.path().join("acme"),
    );
    let listen = Some(SocketAddr::from(([127, 0, 0, 1], plain_port)));
    let (server, tls) = start(config, listen);
    expect_log(&server, "acme: r.acme.test: certificate obtained");
    let root = pebble.issuing_root();
    let (first, _) = presented(tls, "r.acme.test", &root);
    // A client keeps one TLS connection open across the renewal (Python's ssl): one request
    // now, one when told to on stdin.
    let script = format!(
        "import socket, ssl, sys\n\
         ctx = ssl.create_default_context(cafile={root:?})\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='r.acme.test')\n\
         f = s.makefile('rb')\n\
         def get(close):\n\
         \x20   s.sendall(b'GET /plain.txt HTTP/1.1\\r\\nHost: r.acme.test\\r\\n' + (b'Connection: close\\r\\n' if close else b'') + b'\\r\\n')\n\
         \x20   status = f.readline().decode().strip()\n\
         \x20   length = 0\n\
         \x20   while True:\n\
         \x20       line = f.readline().decode().strip()\n\
         \x20       if not line: break\n\
         \x20       if line.lower().startswith('content-length:'): length = int(line.split(':')[1])\n\
         \x20   f.read(length)\n\
         \x20   print(status, s.getpeercert()['serialNumber'], flush=True)\n\
         get(False)\n\
         sys.stdin.readline()\n\
         get(True)\n",
        root = root.to_string_lossy(),
        port = tls.port(),
    );
    let mut kept = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kept_out = std::io::BufReader::new(kept.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    kept_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("HTTP/1.1 200 OK {first}"));

    // New handshakes keep succeeding while the certificate is replaced under them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut served = 0;
    let renewed = loop {
        assert!(Instant::now() < deadline, "{}", server.error_log());
        let out = curl_https(tls, "r.acme.test", &root);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            server.error_log()
        );
        served += 1;
        let (serial, _) = presented(tls, "r.acme.test", &root);
        if serial != first {
            break serial;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(served > 1);
    // The connection made before the renewal carries on, with the old certificate.
    use std::io::Write;
    kept.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut second = String::new();
    kept_out.read_line(&mut second).unwrap();
    let out = kept.wait_with_output().unwrap();
    assert_eq!(
        second.trim(),
        format!("HTTP/1.1 200 OK {first}"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        server.wait_for_log(&format!("(serial {renewed}")),
        "{}",
        server.error_log()
    );
    // Still the same server process, and the account was made once and reused.
    let log = server.error_log();
    assert_eq!(log.matches("acme: registered a new account").count(), 1);
    assert!(!log.contains("order failed"), "{log}");
}

#[test]
fn a_refusing_or_vanished_ca_is_retried_with_backoff_while_the_old_certificate_serves() {
    // Pebble validates on a port where nobody listens: every challenge fails.
    let mut pebble = Pebble::start(free_port(), None);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("acme");
    // state_dir holds a certificate still valid but long past its renewal point (issued
    // by our own CA, years ago, expiring in two days).
    let seed = tempfile::tempdir().unwrap();
    test_ca(seed.path());
    let end = String::from_utf8(
        run(
            seed.path(),
            "date",
            &["-u", "-d", "+2 days", "+%Y%m%d%H%M%SZ"],
        )
        .stdout,
    )
    .unwrap();
    issue(
        seed.path(),
        "old",
        "old.acme.test",
        "20200101000000Z",
        end.trim(),
    );
    let kept = state_dir.join("certs/old.acme.test");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::copy(seed.path().join("old.pem"), kept.join("cert.pem")).unwrap();
    std::fs::copy(seed.path().join("old.key"), kept.join("key.pem")).unwrap();
    let seed_ca = seed.path().join("ca.pem");
    let config = acme_config(
        &pebble.directory(),
        &pebble.ca_file(),
        &["old.acme.test"],
        &state_dir,
    );
    let (server, tls) = start(config, None);
    expect_log(
        &server,
        "acme: old.acme.test: serving the certificate kept in state_dir",
    );
    let (old_serial, _) = presented(tls, "old.acme.test", &seed_ca);

    // The renewal is due at once; pebble refuses it, and the retries back off.
    assert!(
        wait_for_lines(&server, "retrying in 10 s", 1, Duration::from_secs(30)),
        "{}",
        server.error_log()
    );
    let log = server.error_log();
    assert!(
        log.contains("acme: old.acme.test: order failed (attempt 1): validation failed:"),
        "{log}"
    );
    assert!(log.contains("connect: connection refused"), "{log}");
    assert!(
        log.contains(&format!("still serving serial {old_serial}")),
        "{log}"
    );
    let row = acme_row(tls, "old.acme.test", &seed_ca);
    assert_eq!(row["state"], "retrying", "{row}");
    assert_eq!(row["serial"], old_serial.as_str());
    assert!(row["last_error"]
        .as_str()
        .unwrap()
        .contains("validation failed"));
    assert!(
        wait_for_lines(&server, "(attempt 2)", 1, Duration::from_secs(40)),
        "{}",
        server.error_log()
    );
    assert!(server.error_log().contains("retrying in 20 s"));

    // The old certificate keeps serving.
    let out = curl_https(tls, "old.acme.test", &seed_ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(presented(tls, "old.acme.test", &seed_ca).0, old_serial);

    // Pebble disappears; SIGHUP asks for a retry now instead of in 20 s. It fails to
    // connect, is logged, backs off further, and the server carries on.
    pebble.stop();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_for_lines(&server, "(attempt 3)", 1, Duration::from_secs(40)),
        "{}",
        server.error_log()
    );
    let log = server.error_log();
    let third = log.lines().find(|l| l.contains("(attempt 3)")).unwrap();
    assert!(third.contains("Connection refused"), "{third}");
    assert!(third.contains("retrying in 40 s"), "{third}");
    assert_eq!(presented(tls, "old.acme.test", &seed_ca).0, old_serial);
    assert_eq!(server.get("/plain.txt").status, 308);
    let row = acme_row(tls, "old.acme.test", &seed_ca);
    assert_eq!(row["failures"], 3, "{row}");
}

#[test]
fn before_the_first_certificate_handshakes_are_refused_and_plain_http_serves() {
    // No CA answers at this address: no certificate can be obtained.
    let state = tempfile::tempdir().unwrap();
    let ca = tempfile::tempdir().unwrap();
    test_ca(ca.path());
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let config = acme_config(
        &directory,
        &ca.path().join("ca.pem"),
        &["new.acme.test"],
        &state.path().join("acme"),
    )
    .replace("redirect_http = true", "redirect_http = false");
    let (server, tls) = start(config, None);
    expect_log(
        &server,
        "acme: new.acme.test: no certificate in state_dir yet",
    );
    assert!(wait_for_lines(
        &server,
        "(attempt 1)",
        1,
        Duration::from_secs(20)
    ));

    // The handshake is refused with an alert, and the refusal is logged.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &tls.to_string(),
            "-servername",
            "new.acme.test",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("alert"), "{text}");
    assert!(
        server.wait_for_log("no server certificate chain resolved"),
        "{}",
        server.error_log()
    );
    // Plain HTTP is served meanwhile, and the stats say why there is no certificate.
    let resp = server.get("/plain.txt");
    assert_eq!(resp.status, 200);
    let stats = server.stats();
    let row = &stats["acme"][0];
    assert_eq!(row["name"], "new.acme.test");
    assert_eq!(row["state"], "retrying", "{row}");
    assert!(row["serial"].is_null());
    assert!(row["last_error"]
        .as_str()
        .unwrap()
        .contains("Connection refused"));
}

#[test]
fn check_validates_the_acme_section() {
    let dir = tempfile::tempdir().unwrap();
    let check = |section: &str| {
        let path = dir.path().join("check.toml");
        std::fs::write(
            &path,
            format!("root = {:?}\nplugins = {:?}\n[tls]\nlisten = \"127.0.0.1:0\"\n[tls.acme]\n{section}",
                    dir.path(), dir.path()),
        )
        .unwrap();
        let out = Command::new(crate::support::binary())
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let state = dir.path().join("state");
    let good = format!(
        "directory = \"https://acme-staging-v02.api.letsencrypt.org/directory\"\n\
         email = \"admin@example.org\"\nnames = [\"example.org\", \"www.example.org\"]\n\
         state_dir = {state:?}\n"
    );
    let (code, text) = check(&good);
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = check(&good.replace("\"www.example.org\"", "\"*.example.org\""));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("wildcard"), "{text}");

    let (code, text) = check(&good.replace("https://", "http://"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("https:// URL"), "{text}");

    let (code, text) = check(&format!("{good}ca_file = \"/nonexistent/ca.pem\"\n"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");

    let (code, text) = check(&format!("{good}renew_days = 30\n"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("renew_days"), "{text}");
}
