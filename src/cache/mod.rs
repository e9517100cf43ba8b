//! The page cache (the paper's §2.2): `cache.hash` routes a request to its cached entry or to
//! static.farm; `cache.control` scores files by hits, caches the top half of its table within a
//! memory budget and lets the bottom half compete for a place.

pub mod control;
pub mod hash;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

/// What a response says about a file: the same for a cached and an uncached answer.
#[derive(Debug, Clone)]
pub struct Representation {
    pub len: u64,
    pub modified: SystemTime,
    pub etag: String,
    pub last_modified: String,
    pub mime: &'static str,
    /// Identity of the file on disk, to notice replacement.
    pub inode: u64,
}

impl Representation {
    pub fn of(meta: &std::fs::Metadata, name: &str) -> Representation {
        use std::os::unix::fs::MetadataExt;
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Representation {
            len: meta.len(),
            modified,
            etag: crate::http::response::etag(meta.len(), modified),
            last_modified: httpdate::fmt_http_date(modified),
            mime: crate::site::types::content_type(name),
            inode: meta.ino(),
        }
    }

    /// Whether the file on disk is still what this describes.
    pub fn matches(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        meta.len() == self.len
            && meta.ino() == self.inode
            && meta.modified().ok() == Some(self.modified)
    }
}

/// One cached file.
#[derive(Debug)]
pub struct Entry {
    /// The request path it answers (as sent, still percent-encoded).
    pub key: Arc<str>,
    /// The file, relative to the document root.
    pub file: Arc<Path>,
    pub rep: Representation,
    pub body: Vec<u8>,
    /// Milliseconds after `born` when the file was last checked on disk.
    checked_ms: AtomicU64,
    born: Instant,
}

impl Entry {
    pub fn new(key: Arc<str>, file: Arc<Path>, rep: Representation, body: Vec<u8>) -> Entry {
        Entry {
            key,
            file,
            rep,
            body,
            checked_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// True when the entry was last checked against the disk more than `interval_ms` ago.
    /// The caller that gets `true` re-checks; others keep serving meanwhile.
    pub fn due_for_check(&self, interval_ms: u64) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        let checked = self.checked_ms.load(Ordering::Relaxed);
        now.saturating_sub(checked) >= interval_ms
            && self
                .checked_ms
                .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// What is cached now: request path → entry. Published whole by cache.control.
pub type Table = Arc<HashMap<String, Arc<Entry>>>;

/// A served file, reported by static.farm to cache.control.
#[derive(Debug, Clone)]
/// Shared, so that reporting a cached hit copies nothing.
pub struct Hit {
    pub key: Arc<str>,
    pub file: Arc<Path>,
    pub len: u64,
}

/// One row of the cache table on `/stats.html`.
#[derive(Debug, Clone, Serialize)]
pub struct CacheRow {
    pub path: String,
    pub bytes: u64,
    pub score: f64,
    pub state: &'static str,
}

/// The cache as the stats page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheSnapshot {
    pub enabled: bool,
    pub budget_bytes: u64,
    pub used_bytes: u64,
    pub cached_entries: usize,
    pub competing_entries: usize,
    pub admissions: u64,
    pub evictions: u64,
    pub stale_drops: u64,
    pub rows: Vec<CacheRow>,
}

/// Published by cache.control, read by the stats process.
pub type CacheBoard = Arc<ArcSwap<CacheSnapshot>>;
