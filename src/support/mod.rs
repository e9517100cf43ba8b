//! Processes that own shared state: config, log, stats; and the live gauges.

pub mod config;
pub mod log;
pub mod meters;
pub mod service;
pub mod stats;
pub mod tls;
