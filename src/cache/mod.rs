//! The page cache (the paper's §2.2): `cache.control` scores files by hits, caches the top
//! half of its table within a memory budget and lets the bottom half compete for a place, and
//! publishes what is cached as a table (`TableBoard`) that every replica reads: the paper's
//! `cache.hash` lookup is a read of that table by the process that holds the request.

pub mod control;

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
            mime: mime_guess::from_path(name)
                .first_raw()
                .unwrap_or("application/octet-stream"),
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

/// Where cache.control publishes the table, read-mostly by every replica.
pub type TableBoard = Arc<ArcSwap<HashMap<String, Arc<Entry>>>>;

/// Files served since the last report, with how often, reported to cache.control.
#[derive(Debug, Clone)]
pub struct Hit {
    pub key: Arc<str>,
    pub file: Arc<Path>,
    pub len: u64,
    pub count: u32,
}

/// A worker's hits since its last report, one row per file: a repeated hit costs a lookup
/// and an add, with no allocation and no shared reference count touched.
#[derive(Debug, Default)]
pub struct HitTally {
    rows: HashMap<Arc<str>, Hit>,
}

impl HitTally {
    /// Counts a hit on `key`; `file` is asked for only on the file's first hit in the batch.
    pub fn count(&mut self, key: &str, len: u64, file: impl FnOnce() -> Arc<Path>) {
        match self.rows.get_mut(key) {
            Some(hit) => {
                hit.count += 1;
                hit.len = len;
            }
            None => {
                let key: Arc<str> = Arc::from(key);
                self.rows.insert(
                    key.clone(),
                    Hit {
                        key,
                        file: file(),
                        len,
                        count: 1,
                    },
                );
            }
        }
    }

    /// Counts a hit on a cached entry, sharing its key.
    pub fn count_entry(&mut self, key: &Arc<str>, len: u64, file: impl FnOnce() -> Arc<Path>) {
        match self.rows.get_mut(&**key) {
            Some(hit) => hit.count += 1,
            None => {
                self.rows.insert(
                    key.clone(),
                    Hit {
                        key: key.clone(),
                        file: file(),
                        len,
                        count: 1,
                    },
                );
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Files counted so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The batch, leaving the tally empty.
    pub fn take(&mut self) -> Vec<Hit> {
        self.rows.drain().map(|(_, hit)| hit).collect()
    }
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
