//! occwserv: a web server built as a CSP process network of thread farms joined by channels.
//! The network is wired in `network::start`; `docs/ARCHITECTURE.md` draws it.
#![deny(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

pub mod conn;
pub mod network;
pub mod par;
pub mod protocol;

pub mod net;

pub mod h2;

pub mod farm;

pub mod cache;

pub mod back;

pub mod support;

pub mod http;
pub mod plugin_host;
pub mod site;
