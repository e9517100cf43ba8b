//! Injected faults around CGI programs and plug-ins: a program that crashes or is killed in
//! the middle of its output, a client that resets during a streamed answer, and plug-ins
//! faulting under load.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{assert_no_leak, assert_serves, assert_stats_add_up, quiet_footprint};
use crate::support::{dechunk, read_response, Server, ServerOpts};

/// A cgi-bin directory with the given programs (name, shell script body).
fn cgi_bin(programs: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in programs {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Prints a head and about 200 KB (past what the server holds back to frame it with a
/// Content-Length), so the answer is streamed chunked.
const STREAM_HEAD: &str = "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    i=0; while [ $i -lt 20000 ]; do echo \"line $i of the stream\"; i=$((i+1)); done\n";

/// The pid a program wrote to `pidfile` (bounded wait).
fn wait_for_pid(pidfile: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the program did not start");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Whether a process is gone (reaped; a zombie still counts as present).
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Children of the server left as zombies.
fn zombies_of(server_pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the fields after the last ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_string()) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&server_pid.to_string().as_str()) {
            found.push(stat);
        }
    }
    found
}

/// Reads a streamed response to the end of the connection: (head, raw body).
fn read_streamed(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stream neither ended nor closed: {e}"),
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        raw[end..].to_vec(),
    )
}

/// The server must not make a cut-off answer look complete: the chunked body must lack its
/// last chunk (or the connection must close short of a Content-Length).
fn assert_visibly_cut(head: &str, body: &[u8]) {
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        assert!(
            dechunk(body).is_none(),
            "a crashed program's answer ends with a last chunk, as if complete"
        );
    } else {
        let length = head.to_ascii_lowercase().lines().find_map(|l| {
            l.strip_prefix("content-length: ")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        assert!(
            length.is_some_and(|n| n > body.len()),
            "a crashed program's answer looks complete: {head}"
        );
    }
}

#[test]
fn a_cgi_program_crashing_mid_stream_gives_a_visibly_cut_answer() {
    let bin = cgi_bin(&[
        ("crash.sh", &format!("{STREAM_HEAD}kill -KILL $$\n")),
        (
            "ok.sh",
            "printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n",
        ),
    ]);
    let server = Server::start(ServerOpts {
        cgi_bin: Some(bin.path().to_path_buf()),
        ..ServerOpts::default()
    });
    assert_eq!(server.get("/cgi-bin/ok.sh").text(), "ok\n");
    let before = quiet_footprint(&server);
    for _ in 0..5 {
        let mut s = server.connect();
        s.write_all(b"GET /cgi-bin/crash.sh HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let (head, body) = read_streamed(&mut s);
        assert_visibly_cut(&head, &body);
    }
    assert_eq!(server.get("/cgi-bin/ok.sh").text(), "ok\n");
    assert_no_leak(&server, &before, "after crashing programs");
    assert_eq!(zombies_of(server.pid()), Vec::<String>::new());
    assert_stats_add_up(&server);
}

#[test]
fn a_cgi_program_killed_mid_stream_gives_a_visibly_cut_answer() {
    let state = tempfile::tempdir().unwrap();
    let pidfile = state.path().join("pid");
    let script = format!(
        "{STREAM_HEAD}echo $$ > {}\nexec sleep 600\n",
        pidfile.display()
    );
    let bin = cgi_bin(&[("victim.sh", &script)]);
    let server = Server::start(ServerOpts {
        cgi_bin: Some(bin.path().to_path_buf()),
        ..ServerOpts::default()
    });
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    let before = quiet_footprint(&server);
    let mut s = server.connect();
    s.write_all(b"GET /cgi-bin/victim.sh HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let pid = wait_for_pid(&pidfile);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (head, body) = read_streamed(&mut s);
    assert_visibly_cut(&head, &body);
    assert_serves(&server, "/plain.txt", &plain);
    assert_no_leak(&server, &before, "after a program was killed");
    assert_eq!(zombies_of(server.pid()), Vec::<String>::new());
    assert_stats_add_up(&server);
}

#[test]
fn a_client_resetting_during_a_streamed_cgi_answer_stops_the_program() {
    let state = tempfile::tempdir().unwrap();
    let pidfile: PathBuf = state.path().join("pid");
    let script =
        format!("printf 'Content-Type: text/plain\\r\\n\\r\\n'\necho $$ > {}\nexec yes 'an endless stream'\n", pidfile.display());
    let bin = cgi_bin(&[("endless.sh", &script)]);
    let server = Server::start(ServerOpts {
        cgi_bin: Some(bin.path().to_path_buf()),
        ..ServerOpts::default()
    });
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    let before = quiet_footprint(&server);
    for round in 0..3 {
        let _ = std::fs::remove_file(&pidfile);
        let mut s = server.connect();
        s.write_all(b"GET /cgi-bin/endless.sh HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let pid = wait_for_pid(&pidfile);
        let mut got = 0;
        let mut buf = [0u8; 65536];
        while got < 256 * 1024 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended early");
            got += n;
        }
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gone(pid) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the program outlived its client (pid {pid})"
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }
    assert_serves(&server, "/plain.txt", &plain);
    assert_no_leak(&server, &before, "after clients reset streamed answers");
    assert_eq!(zombies_of(server.pid()), Vec::<String>::new());
    assert_stats_add_up(&server);
}

#[test]
fn plug_in_faults_under_load_leak_nothing() {
    let dir = crate::plugins::plugin_dir(&["crash", "hello"]);
    let server = Server::start(ServerOpts {
        plugins: Some(dir.path().to_path_buf()),
        extra_config: "[ogi]\nexclude = []\n".to_string(),
        ..ServerOpts::default()
    });
    let plain = std::fs::read(server.root.join("plain.txt")).unwrap();
    // Wait until both plug-ins are attached (the directory is scanned in the background).
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.get("/ogi/hello").status != 200 || server.get("/ogi/crash").status != 200 {
        assert!(Instant::now() < deadline, "the plug-ins were not attached");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let before = quiet_footprint(&server);
    let faults = ["panic", "index", "overflow", "divide"];
    std::thread::scope(|scope| {
        for worker in 0..4usize {
            let (server, plain) = (&server, &plain);
            scope.spawn(move || {
                let mut s = server.connect();
                for i in 0..40usize {
                    match (worker + i) % 3 {
                        0 => {
                            let resp =
                                server.get(&format!("/ogi/crash?{}", faults[(worker + i) % 4]));
                            assert_eq!(resp.status, 500, "a faulting plug-in is answered 500");
                        }
                        1 => {
                            s.write_all(b"GET /ogi/hello?load HTTP/1.1\r\nHost: localhost\r\n\r\n")
                                .unwrap();
                            let resp = read_response(&mut s, false);
                            assert_eq!(resp.status, 200);
                            assert!(resp.text().contains("Hello, load!"), "{}", resp.text());
                        }
                        _ => {
                            s.write_all(b"GET /plain.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
                                .unwrap();
                            let resp = read_response(&mut s, false);
                            assert_eq!((resp.status, &resp.body), (200, plain));
                        }
                    }
                }
            });
        }
    });
    assert_eq!(server.get("/ogi/hello?after").status, 200);
    assert_no_leak(&server, &before, "after plug-in faults under load");
    assert_stats_add_up(&server);
}
