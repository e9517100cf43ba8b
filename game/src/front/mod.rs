//! The frontends: each only translates bytes to and from the game's protocol. The world
//! does not know who plays from where.

pub mod irc;
pub mod page;
pub mod telnet;
pub mod web;
pub mod web_client;
pub mod websocket;

use std::io;

/// An HTTP response, as the web frontend builds it (the server adds `Date`, `Server`,
/// `Content-Length` and `Connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP exchange in progress: the request's body still to read, the response to write.
/// `plugin.rs` implements it for the server's connection; the process holding it answers it.
pub trait Exchange: Send {
    /// Reads the whole request body, at most `max_bytes`.
    fn read_body(&mut self, max_bytes: usize) -> io::Result<Vec<u8>>;
    /// Writes the response and gives the connection back.
    fn respond(self: Box<Self>, response: WebResponse);
}

#[cfg(test)]
mod tests;
