//! The IRC frontend against a real `ngircd` on 127.0.0.1: it registers, answers the
//! server's PINGs (or the server would drop it), and reconnects with back-off after the
//! server goes away and comes back.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use game::front::irc::Irc;
use game::settings::IrcSettings;
use game::world::{Logger, World, WorldSettings};

const WAIT: Duration = Duration::from_secs(30);

struct Ngircd(Child);

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ngircd(dir: &Path, port: u16, ping_timeout_secs: u32) -> Ngircd {
    let config = dir.join("ngircd.conf");
    std::fs::write(
        &config,
        format!(
            "[Global]\nName = irc.occwserv.test\nInfo = test\nListen = 127.0.0.1\nPorts = {port}\nMotdPhrase = \"test\"\n\
             [Limits]\nMaxPenaltyTime = 0\nPingTimeout = {ping_timeout_secs}\n[Options]\nPAM = no\nDNS = no\nIdent = no\n"
        ),
    )
    .unwrap();
    let child = Command::new("ngircd")
        .arg("--nodaemon")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ngircd is installed (apt-get install ngircd)");
    let server = Ngircd(child);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ngircd did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Waits for a log line containing `needle`.
fn logged(lines: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let line = lines
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn the_game_registers_stays_through_pings_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (to_test, lines) = unbounded();
    let log: Logger = Arc::new(move |line: &str| {
        let _ = to_test.send(line.to_string());
    });
    let settings = WorldSettings {
        world: game::world::WorldSource::built_in(),
        builders: Vec::new(),
        state_dir: dir.path().join("state"),
        log: log.clone(),
    };
    let world = World::start(settings).unwrap();
    let first = ngircd(dir.path(), port, 2);
    let irc_settings = IrcSettings {
        port,
        send_interval_ms: 10,
        burst: 20,
        channel: Some("#occgam".to_string()),
        ..IrcSettings::default()
    };
    let irc = Irc::start(irc_settings, world.gate(), log).unwrap();
    assert!(logged(&lines, "game irc: connected").contains("as occgam"));
    // With PingTimeout = 2, ngircd pings an idle client after about 6 s and drops one that has
    // not answered 20 s later; 30 s without a lost link means the game answered.
    let quiet_until = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = lines.recv_deadline(quiet_until) {
        assert!(!line.contains("retrying"), "the link dropped: {line}");
    }
    drop(first);
    assert!(logged(&lines, "retrying in").contains("game irc: 127.0.0.1"));
    let _second = ngircd(dir.path(), port, 60);
    assert!(logged(&lines, "game irc: connected").contains("as occgam"));
    drop(irc);
}
