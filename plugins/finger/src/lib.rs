//! `finger`: the traditional finger gateway (RFC 1288). The query is `host[:port]` (port 79
//! by default, `[v6]:port` for IPv6); the plug-in connects with a 5 s timeout, sends the
//! finger query for all users, and relays the reply as text, or says clearly what went wrong.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

/// How long the remote host has to accept, and then to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a reply relayed.
const MAX_REPLY_BYTES: u64 = 64 * 1024;
const FINGER_PORT: u16 = 79;

struct Finger;

impl Plugin for Finger {
    fn new(_host: &Host) -> Self {
        Finger
    }

    fn persist(&self) -> bool {
        false
    }

    fn handle(&mut self, conn: Connection) -> Next {
        let query = conn.request().query_decoded.clone().unwrap_or_default();
        let (status, text) = match finger(query.trim()) {
            Ok(reply) => (200, reply),
            Err(Failure { status, text }) => {
                conn.log(&text);
                (status, format!("{text}\n"))
            }
        };
        let _ = conn.respond(
            status,
            &[("Content-Type", "text/plain; charset=utf-8")],
            text.as_bytes(),
        );
        Next::Continue
    }
}

/// A failed finger, with the status to answer.
struct Failure {
    status: u16,
    text: String,
}

fn fail(status: u16, text: String) -> Failure {
    Failure { status, text }
}

/// Splits `host[:port]` (with `[v6]` brackets) into host and port.
fn parse_target(query: &str) -> Result<(String, u16), Failure> {
    let usage = || {
        fail(
            400,
            "finger: give the host as the query, e.g. /ogi/finger?example.org or ?host:79".into(),
        )
    };
    if query.is_empty() || query.contains(char::is_whitespace) {
        return Err(usage());
    }
    let (host, port) = if let Some(rest) = query.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(usage)?;
        (host, after.strip_prefix(':'))
    } else if query.matches(':').count() == 1 {
        let (host, port) = query.split_once(':').ok_or_else(usage)?;
        (host, Some(port))
    } else {
        (query, None)
    };
    let port = match port {
        None => FINGER_PORT,
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(usage)?,
    };
    if host.is_empty() {
        return Err(usage());
    }
    Ok((host.to_string(), port))
}

fn finger(query: &str) -> Result<String, Failure> {
    let (host, port) = parse_target(query)?;
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addresses: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| fail(502, format!("finger: cannot resolve {host}: {e}")))?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(fail(
                504,
                format!("finger: {shown} did not accept the connection within 5 s"),
            ));
        }
        (None, Some(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(fail(502, format!("finger: {shown} refused the connection")));
        }
        (None, Some(e)) => {
            return Err(fail(502, format!("finger: cannot connect to {shown}: {e}")))
        }
        (None, None) => return Err(fail(502, format!("finger: {host} has no address"))),
    };
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            fail(504, format!("finger: {shown} did not answer within 5 s"))
        } else {
            fail(502, format!("finger: talking to {shown}: {e}"))
        }
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.write_all(b"\r\n").map_err(io)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY_BYTES)
        .read_to_end(&mut reply)
        .map_err(io)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

declare_plugin!(Finger, name: "finger", version: "0.1.0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("example.org").ok(),
            Some(("example.org".into(), 79))
        );
        assert_eq!(
            parse_target("127.0.0.1:7979").ok(),
            Some(("127.0.0.1".into(), 7979))
        );
        assert_eq!(parse_target("[::1]:80").ok(), Some(("::1".into(), 80)));
        assert_eq!(parse_target("::1").ok(), Some(("::1".into(), 79)));
        assert!(parse_target("").is_err());
        assert!(parse_target("host:0").is_err());
        assert!(parse_target("host:x").is_err());
        assert!(parse_target("a b").is_err());
    }
}
