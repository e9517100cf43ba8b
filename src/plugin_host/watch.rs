//! The watch on a lent connection: the write gate it shares with the plug-in, and the
//! per-request deadline the keeper enforces by answering 504 (or closing) and shutting the
//! socket down. The socket itself stays open until the plug-in gives the connection back, so
//! its descriptor can never be reused under the plug-in's feet.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use nix::sys::socket::{send, shutdown, MsgFlags, Shutdown};
use plugin_api::abi::{GATE_ANSWERING, GATE_OPEN, GATE_TAKEN, GATE_UPGRADED};

/// Shared by the lent connection (given back from any thread) and the keeper.
pub struct Watch {
    gate: AtomicU32,
    fd: RawFd,
    deadline: Option<Instant>,
    /// Mirrors `State::returned`, so the keeper can drop finished watches without locking.
    returned: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    returned: bool,
    taken: Option<Taken>,
}

/// What the keeper did to a request it timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The keeper wrote this many bytes of its own answer (0 when it only closed).
    pub answer_bytes: u64,
    /// The status it answered, when it could answer.
    pub status: Option<u16>,
}

/// The result of `Watch::expire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The deadline has not passed, or there is none.
    NotYet,
    /// The connection was already given back.
    Returned,
    /// A websocket: no request timeout applies.
    Upgraded,
    /// Nothing had been written: the keeper answered and shut the socket down.
    Answered,
    /// The plug-in was part way through its answer: the socket was shut down.
    Closed,
    /// Already timed out earlier.
    AlreadyTaken,
}

impl Watch {
    pub fn new(fd: RawFd, deadline: Option<Instant>) -> Watch {
        Watch {
            gate: AtomicU32::new(GATE_OPEN),
            fd,
            deadline,
            returned: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// The gate's address, for the handoff.
    pub fn gate_ptr(&self) -> *const u32 {
        self.gate.as_ptr().cast_const()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_returned(&self) -> bool {
        self.returned.load(Ordering::Acquire)
    }

    /// If the deadline has passed at `now`, takes the request over: answers with `answer`
    /// (a complete 504 response) when nothing was written yet, then shuts the socket down.
    pub fn expire(&self, now: Instant, status: u16, answer: &[u8]) -> Expiry {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return Expiry::NotYet,
        }
        let Ok(mut state) = self.state.lock() else {
            return Expiry::Returned;
        };
        if state.returned {
            return Expiry::Returned;
        }
        if state.taken.is_some() {
            return Expiry::AlreadyTaken;
        }
        let expiry = match self.gate.compare_exchange(
            GATE_OPEN,
            GATE_TAKEN,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // One non-blocking attempt: a small answer fits the socket buffer of a client
                // that has sent a request and is waiting.
                let sent = send(
                    self.fd,
                    answer,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                )
                .unwrap_or(0);
                state.taken = Some(Taken {
                    answer_bytes: sent as u64,
                    status: (sent == answer.len()).then_some(status),
                });
                Expiry::Answered
            }
            Err(GATE_UPGRADED) => return Expiry::Upgraded,
            Err(GATE_ANSWERING) => {
                self.gate.store(GATE_TAKEN, Ordering::Release);
                state.taken = Some(Taken {
                    answer_bytes: 0,
                    status: None,
                });
                Expiry::Closed
            }
            Err(_) => return Expiry::AlreadyTaken,
        };
        let _ = shutdown(self.fd, Shutdown::Both);
        expiry
    }

    /// Marks the connection given back; from now on the keeper leaves the socket alone.
    /// Returns what the keeper did, if it timed the request out.
    pub fn mark_returned(&self) -> Option<Taken> {
        self.returned.store(true, Ordering::Release);
        match self.state.lock() {
            Ok(mut state) => {
                state.returned = true;
                state.taken
            }
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                state.returned = true;
                state.taken
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn an_untouched_request_is_answered_then_shut() {
        let (mut client, server) = pair();
        let watch = Watch::new(server.as_raw_fd(), Some(Instant::now()));
        assert_eq!(
            watch.expire(Instant::now() - Duration::from_secs(1), 504, b"X"),
            Expiry::NotYet
        );
        assert_eq!(
            watch.expire(Instant::now(), 504, b"HTTP/1.1 504 Gateway Timeout\r\n\r\n"),
            Expiry::Answered
        );
        let mut got = String::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 504"));
        assert_eq!(
            watch.expire(Instant::now(), 504, b"X"),
            Expiry::AlreadyTaken
        );
        assert_eq!(watch.mark_returned().unwrap().status, Some(504));
    }

    #[test]
    fn answering_or_upgraded_or_returned_is_not_answered_again() {
        let (_client, server) = pair();
        let watch = Watch::new(server.as_raw_fd(), Some(Instant::now()));
        watch.gate.store(GATE_UPGRADED, Ordering::Release);
        assert_eq!(watch.expire(Instant::now(), 504, b"X"), Expiry::Upgraded);
        watch.gate.store(GATE_ANSWERING, Ordering::Release);
        assert_eq!(watch.expire(Instant::now(), 504, b"X"), Expiry::Closed);
        let returned = Watch::new(server.as_raw_fd(), Some(Instant::now()));
        assert!(returned.mark_returned().is_none());
        assert_eq!(returned.expire(Instant::now(), 504, b"X"), Expiry::Returned);
    }
}
