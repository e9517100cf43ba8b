//! The request a plug-in is handed: owned copies of what the server parsed.

use std::net::SocketAddr;

/// One HTTP request, as the server parsed it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The decoded path after `/ogi/NAME`: `""`, or starting with `/` (`"/ws"`).
    pub subpath: String,
    /// The raw query string (after `?`), if any.
    pub query: Option<String>,
    /// The query string percent-decoded, `+` read as a space.
    pub query_decoded: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub peer: SocketAddr,
    /// `http` or `https`: how the client reached the server.
    pub scheme: String,
    pub(crate) client_keep_alive: bool,
}

impl Request {
    /// The first value of a header, the name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to switch to the websocket protocol.
    pub fn wants_websocket(&self) -> bool {
        let upgrade = self
            .header("upgrade")
            .is_some_and(|u| has_token(u, "websocket"));
        upgrade
            && self
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("connection") && has_token(v, "upgrade"))
    }

    /// Whether the client allows the connection to persist after this exchange.
    pub fn keep_alive(&self) -> bool {
        self.client_keep_alive
    }

    /// Whether the client came over HTTPS (websockets: `wss://`).
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
pub(crate) fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: "/ogi/x".into(),
            path: "/ogi/x".into(),
            subpath: String::new(),
            query: None,
            query_decoded: None,
            minor_version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            scheme: "http".into(),
            client_keep_alive: true,
        }
    }

    #[test]
    fn websocket_needs_both_headers() {
        assert!(request(&[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade")
        ])
        .wants_websocket());
        assert!(!request(&[("Upgrade", "websocket")]).wants_websocket());
        assert!(!request(&[("Connection", "upgrade")]).wants_websocket());
    }

    #[test]
    fn header_lookup_ignores_case() {
        assert_eq!(request(&[("X-Thing", "1")]).header("x-thing"), Some("1"));
        assert_eq!(request(&[]).header("x-thing"), None);
    }
}
