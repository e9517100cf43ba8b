//! Acceptor: takes new connections off the listening socket and hands them to the front end.
//! Instances: 1. In: the listener. Out: ToFrontEnd, ToLog. Stops: the listener is shut down
//! (SIGTERM) or the front end is gone.
//!
//! Back-pressure: past `max_connections` open connections, or when the process runs out of
//! file descriptors, a client gets a fast 503 and is closed; the server never dies of it.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::conn::Conn;
use crate::protocol::{ToFrontEnd, ToLog};
use crate::support::config::Live;
use crate::support::meters::Meters;

/// The acceptor's outputs.
pub struct AcceptorOut {
    pub to_front_end: Sender<ToFrontEnd>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
    pub meters: Arc<Meters>,
}

const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nServer: occwserv\r\nContent-Type: text/plain\r\n\
Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver at capacity.\n";

pub fn run(listener: TcpListener, out: AcceptorOut) {
    // One descriptor held in reserve: when accept fails for want of descriptors, it is
    // released so the waiting client can be answered 503 instead of left hanging.
    let mut reserve = File::open("/dev/null").ok();
    let mut next_id: u64 = 0;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if out.meters.draining() {
                    return;
                }
                let cfg = out.live.load();
                if out.meters.active.load(Ordering::Relaxed) >= cfg.max_connections {
                    refuse(stream, &out);
                    continue;
                }
                if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                    continue;
                }
                if cfg.send_buffer_bytes > 0 {
                    let _ =
                        socket2::SockRef::from(&stream).set_send_buffer_size(cfg.send_buffer_bytes);
                }
                let local = stream.local_addr().unwrap_or(peer);
                next_id += 1;
                out.meters.accepted.fetch_add(1, Ordering::Relaxed);
                out.meters.active.fetch_add(1, Ordering::Relaxed);
                let conn = Conn::new(next_id, stream, peer, local);
                if out.to_front_end.send(ToFrontEnd::Read(conn)).is_err() {
                    out.meters.active.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                let _ = out.to_log.try_send(ToLog::Error(
                    "accept: out of file descriptors; refusing with 503".to_string(),
                ));
                drop(reserve.take());
                if let Ok((stream, _)) = listener.accept() {
                    refuse(stream, &out);
                }
                reserve = reserve.or_else(|| File::open("/dev/null").ok());
                if reserve.is_none() {
                    // Still no descriptor to spare: give closing connections a moment.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e)
                if e.kind() == ErrorKind::Interrupted
                    || e.kind() == ErrorKind::ConnectionAborted => {}
            Err(e) => {
                if out.meters.draining() {
                    return;
                }
                let _ = out.to_log.try_send(ToLog::Error(format!("accept: {e}")));
                if e.raw_os_error() == Some(libc::EINVAL) {
                    return;
                }
            }
        }
    }
}

/// Answers 503 and closes, without counting the connection as active.
fn refuse(stream: TcpStream, out: &AcceptorOut) {
    out.meters.refused.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nonblocking(true);
    let _ = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&stream),
        BUSY_RESPONSE,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
