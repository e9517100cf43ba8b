//! Websocket process: one per open websocket (`/ogi/game/ws`). It reads typed lines from the
//! socket and passes them to the player's web client, and writes the JSON frames the web
//! client pushes back. Bytes only: what a frame means is the web client's business.
//!
//! Instances: one per websocket. In: text frames from the socket, JSON frames (String) from
//! the web client. Out: ToWebClient (`Attach`, `Typed`, `Detached`), frames to the socket.
//! Stops: when the socket closes or fails, or the web client says the player has ended.
//!
//! The socket cannot be read and written from two threads, so the process waits on the
//! socket with a short read timeout and writes what has been pushed in between; after a
//! typed line it waits on the web client instead, until that line's `done` frame, so a
//! command's answer goes out as soon as it exists.
//!
//! Frames from the client: a line (`look`), or `{"command": "look", "id": 7}`.
//! Frames to the client: `{"kind": "said", "text": "..."}` per event, `{"done": 7}` when a
//! command is finished, `{"token": "...", "name": "..."}` after registering with `?name=`,
//! `{"error": "..."}`, and `{"ended": true}` when the player has left the world.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use plugin_api::tungstenite::{Error, Message, WebSocket};

use crate::front::web_client::{ToWebClient, SOCKET_QUEUE};
use crate::world::command::MAX_LINE_CHARS;

/// How long one read of the socket waits before the process looks for pushed frames: the
/// longest an unasked-for event (someone else's `say`) waits to go out.
pub const POLL: Duration = Duration::from_millis(20);
/// How long the process waits for a typed line's answer before it reads the socket again.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Longest frame a client may send.
const MAX_FRAME_BYTES: usize = 4096;

/// A socket whose reads can be given a timeout, after which a read fails with
/// `WouldBlock` or `TimedOut` and can be retried.
pub trait TimedRead: Read + Write {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimedRead for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }
}

/// Reads a client frame: a JSON command with an id, or a bare line.
pub fn parse_frame(text: &str) -> (String, Option<u64>) {
    if text.trim_start().starts_with('{') {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            let line = value
                .get("command")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string();
            return (line, value.get("id").and_then(|id| id.as_u64()));
        }
    }
    (text.to_string(), None)
}

fn is_done(frame: &str) -> bool {
    frame.starts_with("{\"done\"")
}

fn is_end(frame: &str) -> bool {
    frame.starts_with("{\"ended\"")
}

/// Runs one websocket for the web client `client`; `since` is the last scrollback line the
/// socket's page showed (0: send the whole scrollback first).
pub fn run<S: TimedRead>(mut socket: WebSocket<S>, client: Sender<ToWebClient>, since: u64) {
    let (to_socket, pushes) = bounded(SOCKET_QUEUE);
    if client
        .send_timeout(
            ToWebClient::Attach { to_socket, since },
            Duration::from_secs(1),
        )
        .is_err()
    {
        let _ = socket.close(None);
        let _ = socket.flush();
        return;
    }
    if socket.get_mut().set_read_timeout(Some(POLL)).is_err() {
        let _ = client.try_send(ToWebClient::Detached);
        return;
    }
    let mut ending = false;
    let mut closing_since: Option<Instant> = None;
    loop {
        let mut waiting_for_answer = false;
        match socket.read() {
            Ok(Message::Text(text)) if !ending => {
                let (line, id) = if text.len() > MAX_FRAME_BYTES {
                    (String::new(), None)
                } else {
                    parse_frame(&text)
                };
                let line: String = line.chars().take(MAX_LINE_CHARS).collect();
                match client.try_send(ToWebClient::Typed { line, id }) {
                    Ok(()) => waiting_for_answer = true,
                    Err(TrySendError::Full(_)) => {
                        let busy = r#"{"error":"Too many commands at once; that one was lost."}"#;
                        let _ = socket.write(Message::Text(busy.to_string()));
                    }
                    Err(TrySendError::Disconnected(_)) => ending = true,
                }
            }
            Ok(_) => {}
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if waiting_for_answer {
            ending |= forward_until_done(&mut socket, &pushes);
        } else {
            ending |= forward(&mut socket, &pushes);
        }
        if ending && closing_since.is_none() {
            closing_since = Some(Instant::now());
            let _ = socket.close(None);
        }
        if closing_since.is_some_and(|since| since.elapsed() >= CLOSE_WAIT) {
            break;
        }
        match socket.flush() {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let _ = client.try_send(ToWebClient::Detached);
}

/// Writes every frame already pushed; true when the player has ended.
fn forward<S: Read + Write>(socket: &mut WebSocket<S>, pushes: &Receiver<String>) -> bool {
    loop {
        match pushes.try_recv() {
            Ok(frame) => {
                let ended = is_end(&frame);
                let _ = socket.write(Message::Text(frame));
                if ended {
                    return true;
                }
            }
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

/// Writes pushed frames as they come until a `done` (or the end), waiting at most
/// `ANSWER_WAIT`; true when the player has ended.
fn forward_until_done<S: Read + Write>(
    socket: &mut WebSocket<S>,
    pushes: &Receiver<String>,
) -> bool {
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        match pushes.recv_deadline(deadline) {
            Ok(frame) => {
                let (done, ended) = (is_done(&frame), is_end(&frame));
                let _ = socket.write(Message::Text(frame));
                if ended {
                    return true;
                }
                if done {
                    return forward(socket, pushes);
                }
            }
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_lines_or_json_commands() {
        assert_eq!(parse_frame("look"), ("look".to_string(), None));
        assert_eq!(
            parse_frame(r#"{"command":"say hi","id":7}"#),
            ("say hi".to_string(), Some(7))
        );
        assert_eq!(parse_frame(r#"{"id":7}"#), (String::new(), Some(7)));
        assert_eq!(parse_frame("{not json"), ("{not json".to_string(), None));
    }
}
