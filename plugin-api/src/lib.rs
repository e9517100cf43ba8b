//! The only crate an occwserv gateway plug-in depends on.
//!
//! A plug-in is a `cdylib` whose code is ordinary Rust: implement [`Plugin`], then declare it
//! with [`declare_plugin!`]. The server loads the library at run time, checks its declaration
//! (ABI version, layout fingerprint, panic strategy, compiler) before calling anything, and
//! serves it at `/ogi/NAME`.
//!
//! ```
//! use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn new(_host: &Host) -> Self {
//!         Hello
//!     }
//!     fn persist(&self) -> bool {
//!         false
//!     }
//!     fn handle(&mut self, conn: Connection) -> Next {
//!         let _ = conn.respond(200, &[("Content-Type", "text/plain")], b"hello\n");
//!         Next::Continue
//!     }
//! }
//!
//! declare_plugin!(Hello, name: "hello", version: "0.1.0");
//! ```
//!
//! The model is the occwserv paper's OGI: an instance runs as its own process (thread), is
//! handed connections one at a time, and says whether it persists. A persistent instance gets
//! every later request for its path (shared state: a hit counter, a game); otherwise each
//! request gets a fresh instance. A panic is caught at the boundary, the connection is answered
//! 500, and the instance is marked faulted; the server keeps serving.

#![deny(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

pub mod abi;
mod body;
mod connection;
#[doc(hidden)]
pub mod entry;
mod host;
mod request;
mod socket;
mod websocket;

pub use tungstenite;

pub use connection::Connection;
pub use host::Host;
pub use request::Request;
pub use websocket::WsStream;

/// A gateway plug-in. One value of this type is one instance.
pub trait Plugin: Send + 'static {
    /// Makes a fresh instance. Called on the instance's own thread.
    fn new(host: &Host) -> Self
    where
        Self: Sized;

    /// Asked once, of the first instance of each loaded generation, when its first request has
    /// arrived and before it is handled (not asked of a plug-in declared `start: attached`,
    /// which is persistent). `true`: this instance owns the path, and every later
    /// request goes to it (on its thread, one at a time). `false`: each request gets a fresh
    /// instance, several may run at once, and each is dropped after its request.
    fn persist(&self) -> bool;

    /// Handles one connection. The connection may be answered here, or sent to another thread
    /// and answered (or upgraded to a websocket) there; dropping it hands it back to the server.
    fn handle(&mut self, conn: Connection) -> Next;
}

/// What an instance does after `handle` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Stay ready for the next connection (persistent instances).
    Continue,
    /// This instance ends now; a persistent path gets a fresh instance for its next request.
    Terminate,
}

/// Declares the plug-in type of this library: exports its declaration (also placed in the
/// `.occwserv_plugin` ELF section) and its C entry points, each of which catches panics.
///
/// `name` is the path segment after `/ogi/` (1 to 63 characters of `a-z 0-9 - _ .`).
/// With `start: attached`, the plug-in is persistent and its instance is made as soon as the
/// server attaches it (a game world with bots and listeners of its own), not on its first
/// request; `persist` is then not asked.
/// With `compress: allowed` (after `start: attached` when both are given; ABI minor 3), the
/// server may compress the plug-in's answers on the fly (`[compression]`, docs/COMPRESSION.md).
#[macro_export]
macro_rules! declare_plugin {
    ($plugin:ty, name: $name:expr, version: $version:expr $(,)?) => {
        $crate::declare_plugin!(@with $plugin, $crate::abi::Declaration::new($name, $version, cfg!(panic = "unwind")));
    };
    ($plugin:ty, name: $name:expr, version: $version:expr, start: attached $(,)?) => {
        $crate::declare_plugin!(@with $plugin,
            $crate::abi::Declaration::new($name, $version, cfg!(panic = "unwind")).started_when_attached());
    };
    ($plugin:ty, name: $name:expr, version: $version:expr, compress: allowed $(,)?) => {
        $crate::declare_plugin!(@with $plugin,
            $crate::abi::Declaration::new($name, $version, cfg!(panic = "unwind")).compressible());
    };
    ($plugin:ty, name: $name:expr, version: $version:expr, start: attached, compress: allowed $(,)?) => {
        $crate::declare_plugin!(@with $plugin,
            $crate::abi::Declaration::new($name, $version, cfg!(panic = "unwind"))
                .started_when_attached()
                .compressible());
    };
    (@with $plugin:ty, $declaration:expr) => {
        #[unsafe(no_mangle)]
        #[used]
        #[unsafe(link_section = ".occwserv_plugin")]
        pub static OCCWSERV_PLUGIN_DECLARATION: $crate::abi::Declaration = $declaration;

        #[unsafe(no_mangle)]
        pub static OCCWSERV_PLUGIN_ENTRIES: $crate::abi::Entries =
            $crate::entry::entries::<$plugin>();
    };
}
