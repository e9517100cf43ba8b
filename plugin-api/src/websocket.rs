//! The socket of an upgraded connection, for tungstenite.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::connection::Lease;

/// The client socket after a websocket upgrade: `Read + Write + Send`. Dropping it (with the
/// `WebSocket` around it) gives the connection back to the server, which closes it.
pub struct WsStream {
    lease: Lease,
    read_timeout: Option<Duration>,
    send_timeout: Duration,
}

impl WsStream {
    pub(crate) fn new(lease: Lease, send_timeout: Duration) -> WsStream {
        WsStream {
            lease,
            read_timeout: None,
            send_timeout,
        }
    }

    /// How long a read waits for data before it fails with `ErrorKind::WouldBlock` (which
    /// tungstenite passes on without losing its place). `None` waits for ever; a zero duration
    /// only takes what has already arrived.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// How long a write may wait for the client before it fails with `ErrorKind::TimedOut`.
    pub fn set_send_timeout(&mut self, timeout: Duration) {
        self.send_timeout = timeout;
    }

    /// Writes a line to the server's error log, tagged with the plug-in and the connection.
    pub fn log(&self, line: &str) {
        self.lease.log(line);
    }

    /// Bytes read from and written to the client since the handshake began.
    pub fn bytes_transferred(&self) -> (u64, u64) {
        (self.lease.bytes_read, self.lease.bytes_written)
    }
}

impl Read for WsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.read_timeout.map(|t| Instant::now() + t);
        match self.lease.recv(buf, deadline) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, e))
            }
            other => other,
        }
    }
}

impl Write for WsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lease
            .send(buf, Some(Instant::now() + self.send_timeout))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
