//! cache.compress: makes the coded variants of newly cached files, off the request path.
//! Instances: 1, started and owned by cache.control. In: `Job` (an admitted entry and the
//! config it was admitted under). Out: the variants, stored into the entry itself (each a
//! `OnceLock` the static workers read), and the tally cache.control puts on the stats board.
//! Stops: inbox disconnected (cache.control gone).
//!
//! For each coding the entry wants, in the configured order: a precompressed sibling
//! (`FILE.br`, not older than `FILE`) is read as it is; otherwise, when `on_the_fly` allows,
//! the body is compressed, and kept only if smaller.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::Receiver;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::Serialize;

use super::compress::compress;
use super::{Entry, Representation, Variant};
use crate::http::encoding::{variant_etag, Coding};
use crate::support::config::Config;

/// Files up to this size are compressed at the `THOROUGH` levels when cached: once, off the
/// request path, for every later hit (a megabyte at brotli 11 takes seconds).
pub const THOROUGH_MAX_BYTES: usize = 256 * 1024;

/// The cache's levels for such files, when the configured one is lower.
fn thorough(coding: Coding) -> i32 {
    match coding {
        Coding::Br => 11,
        Coding::Zstd => 19,
        Coding::Gzip => 9,
    }
}

/// The level the cache compresses a body of `len` bytes at.
pub fn cache_level(cfg: &Config, coding: Coding, len: usize) -> i32 {
    let configured = cfg.compression.level_of(coding);
    if len <= THOROUGH_MAX_BYTES {
        configured.max(thorough(coding))
    } else {
        configured
    }
}

/// One entry to make variants for.
pub struct Job {
    pub entry: Arc<Entry>,
    pub cfg: Arc<Config>,
}

/// Upper bounds (microseconds) of the compression-time histogram's buckets; the last is open.
pub const TIME_BUCKETS_MICROS: [u64; 6] = [100, 1_000, 10_000, 100_000, 1_000_000, u64::MAX];

/// What cache.compress has done, per coding and per media type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompressionTally {
    pub codings: Vec<CodingTally>,
    pub types: Vec<TypeTally>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CodingTally {
    pub coding: &'static str,
    /// Variants made by compressing, and read from precompressed siblings.
    pub compressed: u64,
    pub from_siblings: u64,
    /// Bodies that did not shrink (no variant kept).
    pub not_smaller: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Compression times: counts per bucket of `TIME_BUCKETS_MICROS`.
    pub time_histogram: [u64; 6],
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeTally {
    pub mime: String,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl CompressionTally {
    fn coding(&mut self, coding: Coding) -> &mut CodingTally {
        let at = match self.codings.iter().position(|c| c.coding == coding.token()) {
            Some(at) => at,
            None => {
                self.codings.push(CodingTally {
                    coding: coding.token(),
                    ..CodingTally::default()
                });
                self.codings.len() - 1
            }
        };
        &mut self.codings[at]
    }

    fn count_type(&mut self, mime: &str, in_bytes: u64, out_bytes: u64) {
        let at = match self.types.iter().position(|t| t.mime == mime) {
            Some(at) => at,
            None => {
                self.types.push(TypeTally {
                    mime: mime.to_string(),
                    ..TypeTally::default()
                });
                self.types.len() - 1
            }
        };
        self.types[at].in_bytes += in_bytes;
        self.types[at].out_bytes += out_bytes;
    }
}

pub type SharedTally = Arc<Mutex<CompressionTally>>;

pub fn run(inbox: Receiver<Job>, tally: SharedTally) {
    for Job { entry, cfg } in inbox {
        // An entry no longer held by the cache (only this job has it) is not worth the work.
        let evicted = Arc::strong_count(&entry) == 1;
        let wanted: Vec<Coding> = cfg
            .compression
            .codings()
            .as_slice()
            .iter()
            .copied()
            .filter(|c| entry.wanted().any(|w| w == *c))
            .collect();
        if !evicted {
            // Siblings first: reading is cheap, compressing is not. They are published
            // least preferred first, so a client that sees one finds the others too.
            let siblings: Vec<(Coding, Variant)> = wanted
                .iter()
                .filter(|_| cfg.compression.precompressed)
                .filter_map(|&c| sibling(&entry, c, &cfg).map(|v| (c, v)))
                .collect();
            for (coding, variant) in siblings.into_iter().rev() {
                if let Ok(mut t) = tally.lock() {
                    t.coding(coding).from_siblings += 1;
                }
                entry.set_variant(coding, Some(variant));
            }
            // Cheapest first (gzip, zstd, br): a client that prefers a coding still being
            // made gets the next one it takes meanwhile.
            let mut by_cost = wanted.clone();
            by_cost.sort_by_key(|c| match c {
                Coding::Gzip => 0,
                Coding::Zstd => 1,
                Coding::Br => 2,
            });
            for &coding in &by_cost {
                if entry.variant(coding).is_none() {
                    entry.set_variant(coding, compressed(&entry, coding, &cfg, &tally));
                }
            }
        }
        // Whatever is left (evicted, or no longer configured) releases its reservation.
        for coding in entry.wanted().collect::<Vec<_>>() {
            entry.set_variant(coding, None);
        }
    }
}

/// Compresses the entry's body, when `on_the_fly` allows; kept only if smaller.
fn compressed(entry: &Entry, coding: Coding, cfg: &Config, tally: &SharedTally) -> Option<Variant> {
    let settings = &cfg.compression;
    if !settings.on_the_fly || (entry.body.len() as u64) < settings.min_bytes {
        return None;
    }
    let started = Instant::now();
    let level = cache_level(cfg, coding, entry.body.len());
    let body = compress(coding, level, &entry.body).ok()?;
    let micros = started.elapsed().as_micros() as u64;
    let smaller = body.len() < entry.body.len();
    if let Ok(mut t) = tally.lock() {
        let c = t.coding(coding);
        let bucket = TIME_BUCKETS_MICROS
            .iter()
            .position(|&limit| micros < limit)
            .unwrap_or(TIME_BUCKETS_MICROS.len() - 1);
        c.time_histogram[bucket] += 1;
        if smaller {
            c.compressed += 1;
            c.in_bytes += entry.body.len() as u64;
            c.out_bytes += body.len() as u64;
            t.count_type(entry.rep.mime, entry.body.len() as u64, body.len() as u64);
        } else {
            c.not_smaller += 1;
        }
    }
    smaller.then(|| Variant {
        rep: entry.rep.coded(coding, body.len() as u64),
        body,
        from_sibling: false,
    })
}

/// Reads `FILE.br` (or `.zst`, `.gz`) beside the cached file, when it is a regular file
/// not older than it and no larger.
fn sibling(entry: &Entry, coding: Coding, cfg: &Config) -> Option<Variant> {
    let root = rustix::fs::open(
        cfg.root_for_cache_key(&entry.key)?,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let (file, meta) = open_sibling(&root, &entry.file, coding, entry.rep.modified)?;
    // Never larger than the body, so the reservation made at admission holds.
    if meta.len() > cfg.cache.max_file_bytes || meta.len() > entry.body.len() as u64 {
        return None;
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    file.take(cfg.cache.max_file_bytes + 1)
        .read_to_end(&mut body)
        .ok()?;
    if body.len() as u64 != meta.len() {
        return None;
    }
    Some(Variant {
        rep: sibling_rep(&entry.rep, &meta, coding),
        body,
        from_sibling: true,
    })
}

/// Opens the precompressed sibling of `relative` below `root`: a regular file not older than
/// the original (`modified`), never leaving the root.
pub fn open_sibling(
    root: &impl rustix::fd::AsFd,
    relative: &Path,
    coding: Coding,
    modified: std::time::SystemTime,
) -> Option<(File, std::fs::Metadata)> {
    let mut name = relative.as_os_str().to_os_string();
    name.push(coding.file_suffix());
    let fd = rustix::fs::openat2(
        root,
        Path::new(&name),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let file = File::from(fd);
    let meta = file.metadata().ok()?;
    // Whole seconds: tools that copy the original's time onto the sibling (brotli, zstd)
    // may keep only the seconds.
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let fresh = meta.modified().is_ok_and(|m| secs(m) >= secs(modified));
    (meta.is_file() && fresh).then_some((file, meta))
}

/// The representation a sibling file carries: the original's type, the sibling's own length,
/// date and (coded) entity tag.
pub fn sibling_rep(
    original: &Representation,
    meta: &std::fs::Metadata,
    coding: Coding,
) -> Representation {
    let own = Representation::of(meta, "");
    Representation {
        etag: variant_etag(&own.etag, coding),
        mime: original.mime,
        encoding: Some(coding),
        ..own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_each_wanted_variant_and_prefers_a_fresh_sibling() {
        let root = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..3000)
            .flat_map(|i| format!("let x{i} = {i};\n").into_bytes())
            .collect();
        std::fs::write(root.path().join("a.js"), &body).unwrap();
        let meta = std::fs::metadata(root.path().join("a.js")).unwrap();
        // A sibling that is not even gzip: it must be taken as it is, not made.
        std::fs::write(root.path().join("a.js.gz"), b"precompressed by the build").unwrap();
        let cfg = Config {
            root: root.path().to_path_buf(),
            ..Config::default()
        };
        let mut entry = Entry::new(
            Arc::from("/a.js"),
            Arc::from(Path::new("a.js")),
            Representation::of(&meta, "a.js"),
            body.clone(),
        );
        entry.want(&Coding::ALL);
        let entry = Arc::new(entry);
        let (to_compress, inbox) = crossbeam_channel::bounded(1);
        let tally = SharedTally::default();
        to_compress
            .send(Job {
                entry: entry.clone(),
                cfg: Arc::new(cfg),
            })
            .unwrap();
        drop(to_compress);
        run(inbox, tally.clone());
        assert!(!entry.pending());
        let gz = entry.variant(Coding::Gzip).unwrap();
        assert!(gz.from_sibling);
        assert_eq!(gz.body, b"precompressed by the build");
        assert_eq!(gz.rep.encoding, Some(Coding::Gzip));
        for coding in [Coding::Br, Coding::Zstd] {
            let v = entry.variant(coding).unwrap();
            assert!(!v.from_sibling && v.body.len() < body.len() / 4);
            assert_eq!(v.rep.etag, variant_etag(&entry.rep.etag, coding));
            assert_eq!(v.rep.len, v.body.len() as u64);
        }
        assert_eq!(entry.charged_bytes(), {
            let sizes: usize = Coding::ALL
                .iter()
                .map(|&c| entry.variant(c).unwrap().body.len())
                .sum();
            (body.len() + sizes) as u64
        });
        let t = tally.lock().unwrap();
        assert_eq!(t.codings.iter().map(|c| c.compressed).sum::<u64>(), 2);
        assert_eq!(t.codings.iter().map(|c| c.from_siblings).sum::<u64>(), 1);
    }
}
