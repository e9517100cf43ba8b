//! Running it as a service: `--check`, several listeners (IPv4 and IPv6), dropping root,
//! systemd socket activation and `sd_notify`, and the binary upgrade on SIGUSR2.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{binary, copy_tree, read_to_close, repo, Response};

/// A directory with a docroot and a config; everything readable by any user.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        copy_tree(
            &repo().join("tests/fixtures/docroot"),
            &dir.path().join("docroot"),
        );
        let setup = Setup { dir };
        setup.write_config(config);
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self, extra: &str) {
        let text = format!(
            "root = {:?}\nplugins = {:?}\naccess_log = {:?}\nerror_log = {:?}\n{extra}\n",
            self.path("docroot").to_string_lossy(),
            self.dir.path().to_string_lossy(),
            self.path("access.log").to_string_lossy(),
            self.path("error.log").to_string_lossy(),
        );
        std::fs::write(self.path("occwserv.toml"), text).unwrap();
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.path("error.log")).unwrap_or_default()
    }

    /// Waits (bounded) until the error log has `needle`.
    fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.error_log().contains(needle) {
                return true;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        false
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    Response::parse(&read_to_close(&mut s))
}

/// Polls until something answers on `addr` (bounded).
fn wait_serving(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    None
}

#[test]
fn check_passes_a_good_config_and_lists_the_problems_of_a_bad_one() {
    let setup = Setup::new("");
    let out = Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("is good"));

    std::fs::write(
        setup.path("bad.toml"),
        "root = \"/nonexistent/site\"\nplugins = \"/nonexistent/plugins\"\nuser = \"no-such-user-here\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(setup.path("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&out.stderr);
    for problem in [
        "root /nonexistent/site",
        "plugins /nonexistent/plugins",
        "user no-such-user-here",
    ] {
        assert!(errors.contains(problem), "{problem} not in {errors}");
    }
    // A config that does not parse names the key, and --check starts nothing either way.
    std::fs::write(setup.path("worse.toml"), "listen = 80\n").unwrap();
    let out = Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(setup.path("worse.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad config"));
}

#[test]
fn an_ipv4_and_an_ipv6_listener_serve_the_same_site() {
    let port = free_port();
    let setup = Setup::new(&format!(
        "listen = [\"127.0.0.1:{port}\", {{ addr = \"[::1]:{port}\" }}]"
    ));
    let child = Command::new(binary())
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    wait_serving(v4);
    wait_serving(v6);
    let expected = std::fs::read(setup.path("docroot/plain.txt")).unwrap();
    for addr in [v4, v6] {
        let resp = get(addr, "/plain.txt");
        assert_eq!(resp.status, 200, "{addr}");
        assert_eq!(resp.body, expected);
    }
}

#[test]
fn root_drops_to_the_configured_user_and_cgi_runs_as_it() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root to drop privileges");
        return;
    }
    let port = free_port();
    let setup = Setup::new("");
    let cgi = setup.path("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("whoami.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$(id -u)\" \"$(id -g)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    setup.write_config(&format!(
        "listen = \"127.0.0.1:{port}\"\nuser = \"nobody\"\ngroup = \"nogroup\"\ncgi_bin = {:?}",
        cgi.to_string_lossy()
    ));
    let child = Command::new(binary())
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _running = Running(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_serving(addr);
    // The socket is bound (and takes connections) before the server drops root; an answer
    // means it has started serving, which it does only after the drop.
    assert_eq!(get(addr, "/plain.txt").status, 200);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![nobody.uid.as_raw(); 4]);
    assert_eq!(ids("Gid:"), vec![nogroup.gid.as_raw(); 4]);
    assert!(
        !ids("Groups:").contains(&0),
        "still in group root: {status}"
    );
    let resp = get(addr, "/cgi-bin/whoami.sh");
    assert_eq!(resp.status, 200, "{}", setup.error_log());
    assert_eq!(
        resp.text(),
        format!("{} {}\n", nobody.uid.as_raw(), nogroup.gid.as_raw())
    );
    assert!(setup.error_log().contains("running as uid"));
}

#[test]
fn systemd_socket_activation_and_notifications() {
    let port = free_port();
    let setup = Setup::new("");
    let notify_path = setup.path("notify.sock");
    let notifications = UnixDatagram::bind(&notify_path).unwrap();
    notifications
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        // It passes on only the variables named here (and LISTEN_*).
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
        .arg("--setenv=WATCHDOG_USEC=200000")
        .arg(binary())
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // systemd-socket-activate holds the socket and starts the server on the first connection.
    wait_serving(addr);
    let first = get(addr, "/plain.txt");
    assert_eq!(first.status, 200);
    let next = || {
        let mut buf = [0u8; 256];
        let n = notifications.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    while !seen.contains(&"READY=1".to_string()) {
        seen.push(next());
    }
    assert!(setup.wait_for_log("using 1 inherited socket(s): 127.0.0.1"));
    // The watchdog is fed (WATCHDOG_USEC asks for it twice a second or more).
    while next() != "WATCHDOG=1" {}
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let mut around_reload = Vec::new();
    while around_reload.len() < 2 {
        let state = next();
        if state != "WATCHDOG=1" {
            around_reload.push(state);
        }
    }
    assert_eq!(around_reload, ["RELOADING=1", "READY=1"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    loop {
        let state = next();
        if state != "WATCHDOG=1" {
            assert_eq!(state, "STOPPING=1");
            break;
        }
    }
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(0));
}

/// Starts a copy of the server binary (so the copy can be replaced) on `port`.
fn start_copy(setup: &Setup, exe: &Path) -> Child {
    Command::new(exe)
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Replaces the file at `exe` with `from` (a new inode, as an install does).
fn replace_binary(exe: &Path, from: &Path) {
    let staged = exe.with_extension("new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staged, exe).unwrap();
}

#[test]
fn sigusr2_upgrades_the_binary_under_load_without_a_failed_request() {
    let port = free_port();
    let setup = Setup::new(&format!("listen = \"127.0.0.1:{port}\""));
    let exe = setup.path("occwserv");
    replace_binary(&exe, &binary());
    let mut old = start_copy(&setup, &exe);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_serving(addr);
    let wrk = Command::new("wrk")
        .args(["-t1", "-c20", "-d4s"])
        .arg(format!("http://127.0.0.1:{port}/plain.txt"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("wrk is installed (.ci/run installs it)");
    // Once wrk is running, a new build is installed and the server told to take it up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !setup.error_log().contains("listening on") {
        assert!(Instant::now() < deadline);
        std::thread::park_timeout(Duration::from_millis(20));
    }
    std::thread::park_timeout(Duration::from_secs(1));
    replace_binary(&exe, &binary());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old.id() as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    assert_eq!(
        wait_exit(&mut old, Duration::from_secs(30)),
        Some(0),
        "{}",
        setup.error_log()
    );
    let report = String::from_utf8(wrk.wait_with_output().unwrap().stdout).unwrap();
    assert!(report.contains("requests in"), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    let log = setup.error_log();
    assert!(log.contains("this one stops accepting and drains"), "{log}");
    // The new process serves on the same socket, and is the only one left.
    assert_eq!(get(addr, "/plain.txt").status, 200);
    let new_pid = log
        .split("upgrade: process ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse::<i32>().ok())
        .expect("the new process's pid in the log");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(new_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{new_pid}")).exists() {
        assert!(Instant::now() < deadline, "the new process did not stop");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

#[test]
fn a_new_binary_that_fails_to_start_leaves_the_old_one_serving() {
    let port = free_port();
    let setup = Setup::new(&format!("listen = \"127.0.0.1:{port}\""));
    let exe = setup.path("occwserv");
    replace_binary(&exe, &binary());
    let old = start_copy(&setup, &exe);
    let _running = Running(old);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_serving(addr);
    let broken = setup.path("broken.sh");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'this build is broken' >&2\nexit 1\n",
    )
    .unwrap();
    replace_binary(&exe, &broken);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(_running.0.id() as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    assert!(setup.wait_for_log("upgrade failed, still serving"));
    assert_eq!(get(addr, "/plain.txt").status, 200);
    assert!(Path::new(&format!("/proc/{}", _running.0.id())).exists());
}

/// Sends `bytes` on a new connection to `addr` and reads until the server closes it.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    read_to_close(&mut s)
}

#[test]
fn proxy_protocol_gives_the_real_client_to_logs_and_cgi_and_refuses_untrusted_headers() {
    let (proxied, plain) = (free_port(), free_port());
    let setup = Setup::new("");
    let cgi = setup.path("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("addr.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let listen = format!(
        "listen = [{{ addr = \"127.0.0.1:{proxied}\", proxy_protocol = true }}, \"127.0.0.1:{plain}\"]\ncgi_bin = {:?}",
        cgi.to_string_lossy()
    );
    setup.write_config(&format!("{listen}\n[proxy]\ntrusted = [\"127.0.0.0/8\"]"));
    let child = Command::new(binary())
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let proxied_addr: SocketAddr = format!("127.0.0.1:{proxied}").parse().unwrap();
    let plain_addr: SocketAddr = format!("127.0.0.1:{plain}").parse().unwrap();
    wait_serving(proxied_addr);
    wait_serving(plain_addr);

    // Version 1, as text, then the request.
    let v1 = exchange(
        proxied_addr,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\nGET /cgi-bin/addr.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let resp = Response::parse(&v1);
    assert_eq!(resp.status, 200, "{}", setup.error_log());
    assert_eq!(resp.text(), "203.0.113.7\n");
    // Version 2, binary (HAProxy's send-proxy-v2): 198.51.100.9:8080 to 127.0.0.1:80.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
    ]);
    v2.extend_from_slice(b"GET /plain.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(Response::parse(&exchange(proxied_addr, &v2)).status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(setup.path("access.log")).unwrap_or_default();
        if log.contains("198.51.100.9 - - ") && log.contains("203.0.113.7 - - ") {
            break;
        }
        assert!(Instant::now() < deadline, "access log: {log}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    // No header, or a broken one: closed without an answer, and logged.
    assert!(exchange(proxied_addr, b"GET /plain.txt HTTP/1.1\r\nHost: x\r\n\r\n").is_empty());
    assert!(exchange(proxied_addr, b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n").is_empty());
    assert!(setup.wait_for_log("PROXY v1"));
    // A header cut short (the peer stops sending half way): closed, nothing answered.
    let mut cut = TcpStream::connect(proxied_addr).unwrap();
    cut.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    cut.write_all(b"PROXY TCP4 203.0.113.7 127.0").unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_to_close(&mut cut).is_empty());
    // The server is unharmed: the next proxied client is answered.
    assert_eq!(Response::parse(&exchange(proxied_addr, &v2)).status, 200);
    // The plain listener takes no header: there the client is the TCP peer.
    let resp = Response::parse(&exchange(
        plain_addr,
        b"GET /cgi-bin/addr.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(resp.text(), "127.0.0.1\n");
    drop(_running);

    // A header from a peer that is not trusted is refused.
    setup.write_config(&format!("{listen}\n[proxy]\ntrusted = [\"10.0.0.0/8\"]"));
    let child = Command::new(binary())
        .arg("--config")
        .arg(setup.path("occwserv.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    wait_serving(proxied_addr);
    let refused = exchange(
        proxied_addr,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\nGET /plain.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(refused.is_empty(), "{}", String::from_utf8_lossy(&refused));
    assert!(setup.wait_for_log("PROXY header from untrusted peer 127.0.0.1"));
}
