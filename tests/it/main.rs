//! The integration tests: the real server binary over real sockets.

mod support;

mod static_files;
mod cgi;
mod cgi_apps;
mod game;
mod plugins;
mod cache;
mod stats;
mod hardening;
