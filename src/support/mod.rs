//! Processes that own shared state: config, log, stats, acme; and the live gauges.

pub mod acme;
pub mod config;
pub mod log;
pub mod meters;
pub mod service;
pub mod stats;
pub mod tls;
