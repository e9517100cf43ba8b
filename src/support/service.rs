//! Running as a service: binding the listeners (or taking them from systemd or from the
//! process being upgraded), telling a service manager how we are (`sd_notify`), dropping root,
//! and starting a new binary on the same sockets (SIGUSR2). Called from `main.rs` only.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::net::acceptor::Listening;
use crate::support::config::{Config, ListenAt};

/// Binds every `listen` entry, or takes the sockets systemd (or an upgrading parent) passed
/// (`LISTEN_FDS`), in which case `listen` only says which of them speak the PROXY protocol.
/// Returns the listeners and, when they were inherited, a note for the log.
pub fn listeners(cfg: &Config) -> Result<(Vec<Listening>, Option<String>), String> {
    let mut inherited = listenfd::ListenFd::from_env();
    if inherited.len() > 0 {
        let mut out = Vec::new();
        for i in 0..inherited.len() {
            match inherited.take_tcp_listener(i) {
                Ok(Some(socket)) => {
                    let addr = socket.local_addr().map_err(|e| e.to_string())?;
                    let proxy_protocol = cfg
                        .listen
                        .0
                        .iter()
                        .any(|l| l.addr == addr && l.proxy_protocol);
                    out.push(Listening {
                        socket,
                        proxy_protocol,
                        tls: cfg.tls.listen == Some(addr),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(format!("inherited socket {i}: {e}")),
            }
        }
        if out.is_empty() {
            return Err("LISTEN_FDS names no TCP listening socket".to_string());
        }
        let addrs: Vec<String> = out
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        let note = format!(
            "using {} inherited socket(s): {}",
            out.len(),
            addrs.join(", ")
        );
        return Ok((out, Some(note)));
    }
    let mut out = Vec::new();
    for at in &cfg.listen.0 {
        let socket = bind(at).map_err(|e| format!("cannot listen on {}: {e}", at.addr))?;
        out.push(Listening {
            socket,
            proxy_protocol: at.proxy_protocol,
            tls: false,
        });
    }
    if let Some(addr) = cfg.tls.listen {
        let at = ListenAt {
            addr,
            proxy_protocol: false,
        };
        let socket = bind(&at).map_err(|e| format!("cannot listen on {addr} (tls): {e}"))?;
        out.push(Listening {
            socket,
            proxy_protocol: false,
            tls: true,
        });
    }
    Ok((out, None))
}

fn bind(at: &ListenAt) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(at.addr),
        socket2::Type::STREAM,
        None,
    )?;
    if at.addr.is_ipv6() {
        // So that "[::]:80" and "0.0.0.0:80" can both be bound.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&at.addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Tells the service manager (`NOTIFY_SOCKET`, as systemd's `sd_notify`) how the server is:
/// `READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`, `MAINPID=N`. Quiet when there is none.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let _ = send_notification(&path.to_string_lossy(), state);
}

fn send_notification(path: &str, state: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

/// How often to send `WATCHDOG=1`, when the service manager asks for it (`WATCHDOG_USEC`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Switches to `user` and `group` (and the user's supplementary groups) for good. Started as
/// someone other than root, it changes nothing and says so.
pub fn drop_privileges(
    user: Option<&str>,
    group: Option<&str>,
    own: &[PathBuf],
) -> Result<Option<String>, String> {
    use nix::unistd::{Gid, Group, Uid, User};
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    if !Uid::effective().is_root() {
        return Ok(Some(
            "user/group ignored: not started as root, running as the starting user".to_string(),
        ));
    }
    let account = match user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("user {name}: {e}"))?
                .ok_or_else(|| format!("user {name}: no such user"))?,
        ),
        None => None,
    };
    let gid: Gid = match group {
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("group {name}: {e}"))?
                .ok_or_else(|| format!("group {name}: no such group"))?
                .gid
        }
        None => account.as_ref().map_or(Gid::current(), |a| a.gid),
    };
    // Files opened before the switch and reopened after it (logs on SIGHUP) must stay ours.
    for path in own {
        if path.exists() {
            std::os::unix::fs::chown(
                path,
                account.as_ref().map(|a| a.uid.as_raw()),
                Some(gid.as_raw()),
            )
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
    }
    match &account {
        Some(a) => {
            let name = std::ffi::CString::new(a.name.as_bytes())
                .map_err(|_| format!("user {}: bad name", a.name))?;
            nix::unistd::initgroups(&name, gid).map_err(|e| format!("initgroups: {e}"))?;
        }
        None => nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?,
    }
    nix::unistd::setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    if let Some(a) = &account {
        nix::unistd::setuid(a.uid).map_err(|e| format!("setuid: {e}"))?;
    }
    // Dropped for good: getting root back must now fail.
    if account.is_some() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("still able to become root after dropping privileges".to_string());
    }
    Ok(Some(format!(
        "running as uid {} gid {}",
        Uid::effective(),
        Gid::effective()
    )))
}

/// Starts `exe` with `args` on the same listening sockets (passed as systemd passes them:
/// `LISTEN_FDS`, fds 3 and up) and waits until it reports `READY=1`. A new binary that exits
/// or stays silent for `wait` is stopped, and the old one keeps serving.
pub fn upgrade(
    exe: &Path,
    args: &[std::ffi::OsString],
    sockets: &[&TcpListener],
    wait: Duration,
) -> Result<u32, String> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let dir = std::env::temp_dir().join(format!("occwserv-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let socket_path = dir.join("notify");
    let ready = UnixDatagram::bind(&socket_path).map_err(|e| format!("notify socket: {e}"))?;
    // The child gets the sockets at fds 3, 4, ... : moved out of the way first (100 + i), so
    // that no move overwrites a socket still to be moved.
    let mut script = String::from("exec");
    for (i, socket) in sockets.iter().enumerate() {
        script.push_str(&format!(" {}<&{}", 100 + i, socket.as_raw_fd()));
    }
    for i in 0..sockets.len() {
        script.push_str(&format!(" {}<&{} {}<&-", 3 + i, 100 + i, 100 + i));
    }
    script.push_str(&format!(
        "; export LISTEN_FDS={} LISTEN_PID=$$; exec \"$0\" \"$@\"",
        sockets.len()
    ));
    for socket in sockets {
        fcntl(socket.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(|e| format!("fcntl: {e}"))?;
    }
    let spawned = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .arg(exe)
        .args(args)
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .spawn();
    for socket in sockets {
        let _ = fcntl(socket.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
    let mut child = spawned.map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let outcome = wait_ready(&ready, &mut child, wait);
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(()) => Ok(child.id()),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

fn wait_ready(ready: &UnixDatagram, child: &mut Child, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let _ = ready.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the new binary exited ({status}) before it was ready"
            ));
        }
        if let Ok(n) = ready.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Ok(());
            }
        }
    }
    Err(format!("the new binary was not ready after {wait:?}"))
}
