//! Plug-in host: loading gateway plug-ins and checking their ABI. No channels here.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

/// One row of the plug-in table shown on `/stats.html`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    pub name: String,
    pub version: String,
    pub state: String,
    pub persist: bool,
    pub requests: u64,
    pub faults: u64,
    pub generations: u32,
    pub file: String,
}

/// The plug-in table, published by ogi.farm and read by the stats process.
pub type PluginBoard = Arc<ArcSwap<Vec<PluginRow>>>;
