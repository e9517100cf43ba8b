//! The page cache (the paper's §2.2): `cache.control` scores files by hits, caches the top
//! half of its table within a memory budget and lets the bottom half compete for a place, and
//! publishes what is cached as a table (`TableBoard`) that every replica reads: the paper's
//! `cache.hash` lookup is a read of that table by the process that holds the request.

pub mod compress;
pub mod compressor;
pub mod control;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::http::encoding::{variant_etag, Coding};

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
    /// The content coding of these bytes (`None`: the file as it is).
    pub encoding: Option<Coding>,
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
            encoding: None,
        }
    }

    /// The same resource coded: its own length and entity tag.
    pub fn coded(&self, coding: Coding, len: u64) -> Representation {
        Representation {
            len,
            etag: variant_etag(&self.etag, coding),
            encoding: Some(coding),
            ..self.clone()
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
    /// Coded variants by `Coding::index`, made off the request path by cache.compress:
    /// unset while pending, `None` when not worth keeping (or not wanted).
    variants: [OnceLock<Option<Variant>>; 3],
    /// The codings asked of cache.compress when the entry was admitted.
    wanted: [bool; 3],
    /// Milliseconds after `born` when the file was last checked on disk.
    checked_ms: AtomicU64,
    /// Found changed on disk: no worker serves it again, in any coding, even before
    /// cache.control publishes a table without it.
    stale: AtomicBool,
    born: Instant,
}

impl Entry {
    pub fn new(key: Arc<str>, file: Arc<Path>, rep: Representation, body: Vec<u8>) -> Entry {
        Entry {
            key,
            file,
            rep,
            body,
            variants: Default::default(),
            wanted: [false; 3],
            checked_ms: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            born: Instant::now(),
        }
    }

    /// Asks for these codings; until each is made (`set_variant`) its memory is reserved at
    /// the size of the body.
    pub fn want(&mut self, codings: &[Coding]) {
        for c in codings {
            self.wanted[c.index()] = true;
        }
    }

    pub fn wanted(&self) -> impl Iterator<Item = Coding> + '_ {
        Coding::ALL.into_iter().filter(|c| self.wanted[c.index()])
    }

    /// Stores a variant (or `None`: none worth keeping); the first answer stands.
    pub fn set_variant(&self, coding: Coding, variant: Option<Variant>) {
        let _ = self.variants[coding.index()].set(variant);
    }

    /// A variant that is ready.
    pub fn variant(&self, coding: Coding) -> Option<&Variant> {
        self.variants[coding.index()].get().and_then(Option::as_ref)
    }

    /// Whether some wanted coding is still being made.
    pub fn pending(&self) -> bool {
        self.wanted()
            .any(|c| self.variants[c.index()].get().is_none())
    }

    /// Memory this entry holds or has reserved: the body, each variant made, and the size
    /// of the body for each variant still pending (a kept variant is never larger).
    pub fn charged_bytes(&self) -> u64 {
        let variants: u64 = self
            .wanted()
            .map(|c| match self.variants[c.index()].get() {
                None => self.body.len() as u64,
                Some(Some(v)) => v.body.len() as u64,
                Some(None) => 0,
            })
            .sum();
        self.body.len() as u64 + variants
    }

    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
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

/// A part of a cached body (the entry's, or one coded variant's), held by reference: an
/// HTTP/2 session frames it straight from the cache (`h2/`), without a copy of its own.
#[derive(Clone)]
pub struct CachedBody {
    entry: Arc<Entry>,
    coding: Option<Coding>,
    start: usize,
    len: usize,
}

impl CachedBody {
    /// `len` bytes from `start` of the entry's body, or of its variant in `coding`; `None`
    /// when that variant is not there or the range runs past the body.
    pub fn new(
        entry: Arc<Entry>,
        coding: Option<Coding>,
        start: usize,
        len: usize,
    ) -> Option<CachedBody> {
        let body = CachedBody {
            entry,
            coding,
            start,
            len,
        };
        let whole = body.whole()?;
        (start.checked_add(len)? <= whole.len()).then_some(body)
    }

    fn whole(&self) -> Option<&[u8]> {
        match self.coding {
            None => Some(&self.entry.body),
            Some(coding) => self.entry.variant(coding).map(|v| &v.body[..]),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.whole()
            .and_then(|whole| whole.get(self.start..self.start + self.len))
            .unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `n` bytes (split off for a DATA frame); `self` keeps the rest.
    pub fn take_front(&mut self, n: usize) -> CachedBody {
        let n = n.min(self.len);
        let front = CachedBody {
            entry: self.entry.clone(),
            coding: self.coding,
            start: self.start,
            len: n,
        };
        self.start += n;
        self.len -= n;
        front
    }
}

/// A coded copy of a cached body.
#[derive(Debug)]
pub struct Variant {
    pub rep: Representation,
    pub body: Vec<u8>,
    /// Made from a precompressed sibling file rather than by compressing.
    pub from_sibling: bool,
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
    /// Bytes coded variants saved against the file over these hits (0 for identity answers).
    pub saved_bytes: u64,
}

/// A worker's hits since its last report, one row per file: a repeated hit costs a lookup
/// and an add, with no allocation and no shared reference count touched.
#[derive(Debug, Default)]
pub struct HitTally {
    rows: HashMap<Arc<str>, Hit>,
}

impl HitTally {
    /// Counts a hit on `key`; `file` is asked for only on the file's first hit in the batch.
    /// `saved_bytes`: what a coded answer saved against the file.
    pub fn count(
        &mut self,
        key: &str,
        len: u64,
        saved_bytes: u64,
        file: impl FnOnce() -> Arc<Path>,
    ) {
        match self.rows.get_mut(key) {
            Some(hit) => {
                hit.count += 1;
                hit.len = len;
                hit.saved_bytes += saved_bytes;
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
                        saved_bytes,
                    },
                );
            }
        }
    }

    /// Counts a hit on a cached entry, sharing its key.
    pub fn count_entry(
        &mut self,
        key: &Arc<str>,
        len: u64,
        saved_bytes: u64,
        file: impl FnOnce() -> Arc<Path>,
    ) {
        match self.rows.get_mut(&**key) {
            Some(hit) => {
                hit.count += 1;
                hit.saved_bytes += saved_bytes;
            }
            None => {
                self.rows.insert(
                    key.clone(),
                    Hit {
                        key: key.clone(),
                        file: file(),
                        len,
                        count: 1,
                        saved_bytes,
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
    /// Coded variants held, their bytes, and bytes not sent thanks to them.
    pub variants_cached: usize,
    pub variant_bytes: u64,
    pub bytes_saved: u64,
    /// What cache.compress has made: per coding (with a time histogram) and per type.
    pub compression: compressor::CompressionTally,
    pub rows: Vec<CacheRow>,
}

/// Published by cache.control, read by the stats process.
pub type CacheBoard = Arc<ArcSwap<CacheSnapshot>>;
