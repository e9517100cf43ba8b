//! Reading and writing the lent socket: non-blocking calls plus `poll` with a deadline, as the
//! server does, so the socket's own flags never matter and are never changed.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// Waits until `fd` is ready for `events` or `deadline` passes (`None`: no deadline).
/// True when ready.
#[allow(unsafe_code)]
fn wait(fd: RawFd, events: i16, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout_ms: i32 = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.as_millis().clamp(1, 60_000) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack; `fd` is the lent socket, open until given back.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match ready {
            0 => continue,
            n if n > 0 => return Ok(true),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Reads at least one byte into `buf`; `Ok(0)` when the peer closed. A passed deadline is
/// `ErrorKind::TimedOut`.
#[allow(unsafe_code)]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; `fd` is the lent socket.
        let got = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if got >= 0 {
            return Ok(got as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                if !wait(fd, libc::POLLIN, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
                }
            }
            _ => return Err(err),
        }
    }
}

/// Writes some of `bytes` (at least one), waiting for the socket until `deadline`.
#[allow(unsafe_code)]
pub(crate) fn send(fd: RawFd, bytes: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
    if bytes.is_empty() {
        return Ok(0);
    }
    loop {
        // SAFETY: `bytes` is valid for reading; MSG_NOSIGNAL turns a closed peer into EPIPE.
        let sent = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                if !wait(fd, libc::POLLOUT, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                }
            }
            _ => return Err(err),
        }
    }
}
