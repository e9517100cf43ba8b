//! Plug-in host: reading a plug-in's declaration from its file, checking it against the ABI,
//! loading the library, calling its instances, and lending it connections. No channels and
//! no threads here: ogi.farm (`farm/plugin`) drives it.
//!
//! `loader` is the only module of the server allowed `unsafe`: it calls into the libraries.

#[allow(unsafe_code)]
pub mod loader;
pub mod watch;

use std::sync::Arc;

use arc_swap::ArcSwap;
use percent_encoding::percent_decode;
use serde::Serialize;

pub use loader::{
    inspect, CallInfo, Fault, Home, InspectError, Instance, Lent, Library, LoadError, ReturnKind,
    Returned,
};
pub use watch::{Expiry, Watch};

/// One row of the plug-in table shown on `/stats.html`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    /// The path segment after `/ogi/`.
    pub name: String,
    pub version: String,
    /// `idle`, `busy N` (instances running), `owning` (a live persistent instance owns the
    /// path), `refused` (see `note`) or `draining` (detached, requests still in flight).
    pub state: String,
    pub persist: bool,
    /// Requests routed to the plug-in, over all its generations.
    pub requests: u64,
    /// Instances that panicked.
    pub faults: u64,
    /// Requests the server timed out.
    pub timeouts: u64,
    /// Generations still loaded: the current one and any still draining.
    pub generations: u32,
    /// The current generation's number (each load of a file is a new generation).
    pub generation: u64,
    /// The file in the plug-in directory.
    pub file: String,
    /// Why the plug-in was refused, or the last fault.
    pub note: String,
}

/// The plug-in table, published by ogi.farm and read by the stats process.
pub type PluginBoard = Arc<ArcSwap<Vec<PluginRow>>>;

/// A percent-decoded path, invalid UTF-8 replaced.
pub fn decode_path(raw: &str) -> String {
    percent_decode(raw.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

/// A percent-decoded query string, with `+` read as a space (HTML form encoding).
pub fn decode_query(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded path after `/ogi/NAME`: `""` or starting with `/`.
pub fn subpath(decoded_path: &str, name: &str) -> String {
    let prefix_len = "/ogi/".len() + name.len();
    if decoded_path.len() > prefix_len && decoded_path.is_char_boundary(prefix_len) {
        decoded_path[prefix_len..].to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode_query("a+b%20c%2B"), "a b c+");
        assert_eq!(decode_path("/ogi/x/a%20b+c"), "/ogi/x/a b+c");
        assert_eq!(subpath("/ogi/game/ws", "game"), "/ws");
        assert_eq!(subpath("/ogi/game", "game"), "");
        assert_eq!(decode_query("%ff"), "\u{fffd}");
    }
}
