//! The integration tests: the real server binary over real sockets.

mod support;

mod acme;
mod cache;
mod cgi;
mod cgi_apps;
mod compression;
mod deploy;
mod game;
mod h2;
mod h2_client;
mod h2_conformance;
mod h2_defences;
mod hardening;
mod operations;
mod plugin_compression;
mod plugins;
mod replicas;
mod sites;
mod static_files;
mod stats;
mod tls;
