//! cache.control: decides what is cached (the paper's §2.2).
//! Instances: 1. In: ToCacheControl (hits counted by the replicas and static.farm, stale
//! entries). Out: the table board (read by every replica), the cache board for stats, ToLog.
//! Stops: inbox disconnected.
//!
//! Every served file scores a point; scores halve every `HALF_LIFE`. The table holds the
//! most recently hit files (an LRU of `TABLE_ENTRIES`); its top half by score is cached, as
//! far as the memory budget allows, and the bottom half competes: a file whose score passes
//! a cached one's takes its place at the next tick.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lru::LruCache;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::compressor::{self, CompressionTally, SharedTally};
use super::{CacheBoard, CacheRow, CacheSnapshot, Entry, Hit, Representation, Table, TableBoard};
use crate::http::encoding::Coding;
use crate::protocol::{ToCacheControl, ToLog};
use crate::support::config::{Config, Live};

/// Files the table tracks; the top half can be cached.
pub const TABLE_ENTRIES: usize = 2048;
/// A file needs this score (about two recent hits) before it is cached.
pub const MIN_SCORE: f64 = 1.5;
const TICK: Duration = Duration::from_millis(250);
const HALF_LIFE: Duration = Duration::from_secs(10);

/// The control process's outputs.
pub struct ControlOut {
    pub table: TableBoard,
    pub to_log: Sender<ToLog>,
    pub board: CacheBoard,
    pub live: Live,
}

struct Candidate {
    file: Arc<Path>,
    len: u64,
    score: f64,
}

/// The decision state, kept apart from the channels so it can be tested alone.
pub struct Control {
    table: LruCache<Arc<str>, Candidate>,
    cached: HashMap<String, Arc<Entry>>,
    admissions: u64,
    evictions: u64,
    stale_drops: u64,
    /// Entries admitted since the last `take_admitted`, for cache.compress.
    admitted: Vec<Arc<Entry>>,
    /// Bytes not sent thanks to coded variants (reported with the hits).
    bytes_saved: u64,
}

impl Default for Control {
    fn default() -> Self {
        Control::new(TABLE_ENTRIES)
    }
}

impl Control {
    pub fn new(entries: usize) -> Control {
        let capacity = NonZeroUsize::new(entries.max(2)).unwrap_or(NonZeroUsize::MIN);
        Control {
            table: LruCache::new(capacity),
            cached: HashMap::new(),
            admissions: 0,
            evictions: 0,
            stale_drops: 0,
            admitted: Vec::new(),
            bytes_saved: 0,
        }
    }

    pub fn hit(&mut self, hit: Hit) {
        self.bytes_saved += hit.saved_bytes;
        match self.table.get_mut(&hit.key) {
            Some(c) => {
                c.score += f64::from(hit.count);
                c.len = hit.len;
                c.file = hit.file;
            }
            None => {
                // The least recently hit file leaves the table when it is full.
                if let Some((gone, _)) = self.table.push(
                    hit.key,
                    Candidate {
                        file: hit.file,
                        len: hit.len,
                        score: f64::from(hit.count),
                    },
                ) {
                    if self.cached.remove(&*gone).is_some() {
                        self.evictions += 1;
                    }
                }
            }
        }
    }

    pub fn stale(&mut self, key: &str) {
        if self.cached.remove(key).is_some() {
            self.stale_drops += 1;
        }
        if let Some(c) = self.table.get_mut(key) {
            c.score = 0.0;
        }
    }

    pub fn decay(&mut self, elapsed: Duration) {
        let factor = 0.5f64.powf(elapsed.as_secs_f64() / HALF_LIFE.as_secs_f64());
        for (_, c) in self.table.iter_mut() {
            c.score *= factor;
        }
    }

    /// Recomputes the cached set; `load` reads a file. Returns true when the set changed.
    pub fn rebalance(
        &mut self,
        cfg: &Config,
        mut load: impl FnMut(&str, &Path, u64) -> Option<Entry>,
    ) -> bool {
        if !cfg.cache.enabled {
            let changed = !self.cached.is_empty();
            self.evictions += self.cached.len() as u64;
            self.cached.clear();
            return changed;
        }
        let mut ranked: Vec<(&Arc<str>, &Candidate)> = self
            .table
            .iter()
            .filter(|(_, c)| c.len <= cfg.cache.max_file_bytes && c.score >= MIN_SCORE)
            .collect();
        ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        let slots = self.table.cap().get() / 2;
        let mut chosen: Vec<(Arc<str>, Arc<Path>, u64)> = Vec::new();
        let mut bytes = 0u64;
        for (key, c) in ranked {
            if chosen.len() >= slots {
                break;
            }
            if bytes + c.len <= cfg.cache.max_bytes {
                bytes += c.len;
                chosen.push((key.clone(), c.file.clone(), c.len));
            }
        }
        let keep: std::collections::HashSet<&str> = chosen.iter().map(|(k, _, _)| &**k).collect();
        let before = self.cached.len();
        self.cached.retain(|k, _| keep.contains(k.as_str()));
        let mut changed = self.cached.len() != before;
        self.evictions += (before - self.cached.len()) as u64;
        for (key, file, len) in &chosen {
            if self.cached.contains_key(&**key) {
                continue;
            }
            if let Some(entry) = load(key, file, *len) {
                // A file that grew since it was scored must still fit the budget.
                // Variants still to be made are counted at the size of the body.
                let used = self.used_bytes();
                if used + entry.charged_bytes() <= cfg.cache.max_bytes
                    && entry.body.len() as u64 <= cfg.cache.max_file_bytes
                {
                    let entry = Arc::new(entry);
                    if entry.pending() {
                        self.admitted.push(entry.clone());
                    }
                    self.cached.insert(key.to_string(), entry);
                    self.admissions += 1;
                    changed = true;
                }
            }
        }
        changed
    }

    pub fn table(&self) -> Table {
        Arc::new(self.cached.clone())
    }

    /// Memory the cached entries hold, every variant counted (pending ones reserved).
    pub fn used_bytes(&self) -> u64 {
        self.cached.values().map(|e| e.charged_bytes()).sum()
    }

    /// Entries admitted since the last call whose variants are still to be made.
    pub fn take_admitted(&mut self) -> Vec<Arc<Entry>> {
        std::mem::take(&mut self.admitted)
    }

    pub fn snapshot(&self, cfg: &Config) -> CacheSnapshot {
        let mut rows: Vec<CacheRow> = self
            .table
            .iter()
            .map(|(key, c)| CacheRow {
                path: key.to_string(),
                bytes: c.len,
                score: (c.score * 100.0).round() / 100.0,
                state: if self.cached.contains_key(&**key) {
                    "cached"
                } else {
                    "competing"
                },
            })
            .collect();
        rows.sort_by(|a, b| b.score.total_cmp(&a.score));
        rows.truncate(64);
        CacheSnapshot {
            enabled: cfg.cache.enabled,
            budget_bytes: cfg.cache.max_bytes,
            used_bytes: self.used_bytes(),
            cached_entries: self.cached.len(),
            competing_entries: self.table.len().saturating_sub(self.cached.len()),
            admissions: self.admissions,
            evictions: self.evictions,
            stale_drops: self.stale_drops,
            variants_cached: self
                .cached
                .values()
                .map(|e| {
                    Coding::ALL
                        .iter()
                        .filter(|&&c| e.variant(c).is_some())
                        .count()
                })
                .sum(),
            variant_bytes: self
                .cached
                .values()
                .flat_map(|e| Coding::ALL.map(|c| e.variant(c).map_or(0, |v| v.body.len() as u64)))
                .sum(),
            bytes_saved: self.bytes_saved,
            compression: CompressionTally::default(),
            rows,
        }
    }
}

pub fn run(inbox: Receiver<ToCacheControl>, out: ControlOut) {
    let mut control = Control::default();
    // cache.compress, owned here: it ends when `to_compress` is dropped with this process.
    let (to_compress, compress_inbox) = crossbeam_channel::bounded(TABLE_ENTRIES);
    let tally = SharedTally::default();
    let compress_tally = tally.clone();
    let spawned = std::thread::Builder::new()
        .name("cache.compress".to_string())
        .spawn(move || compressor::run(compress_inbox, compress_tally));
    if let Err(e) = spawned {
        let _ = out.to_log.try_send(ToLog::Error(format!(
            "cache: cannot start cache.compress ({e}); files are cached uncompressed"
        )));
    }
    let mut last_tick = Instant::now();
    loop {
        match inbox.recv_timeout(TICK.saturating_sub(last_tick.elapsed())) {
            Ok(ToCacheControl::Hits(hits)) => {
                for hit in hits {
                    control.hit(hit);
                }
            }
            Ok(ToCacheControl::Stale(key)) => {
                control.stale(&key);
                out.table.store(control.table());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_tick.elapsed() < TICK {
            continue;
        }
        control.decay(last_tick.elapsed());
        last_tick = Instant::now();
        let cfg = out.live.load();
        let changed = control.rebalance(&cfg, |key, file, len| {
            load(&cfg, key, file, len, &out.to_log)
        });
        for entry in control.take_admitted() {
            let job = compressor::Job {
                entry,
                cfg: Arc::clone(&cfg),
            };
            if let Err(e) = to_compress.try_send(job) {
                // Too much queued: this entry stays uncompressed, its reservation released.
                let entry = e.into_inner().entry;
                for coding in entry.wanted().collect::<Vec<_>>() {
                    entry.set_variant(coding, None);
                }
            }
        }
        if changed {
            out.table.store(control.table());
        }
        let mut snapshot = control.snapshot(&cfg);
        if let Ok(t) = tally.lock() {
            snapshot.compression = t.clone();
        }
        out.board.store(Arc::new(snapshot));
    }
}

/// Reads a file below the root into a new entry (never following a path out of the root).
fn load(
    cfg: &Config,
    key: &str,
    file: &Path,
    expected_len: u64,
    to_log: &Sender<ToLog>,
) -> Option<Entry> {
    let root = rustix::fs::open(
        cfg.root_for_cache_key(key)?,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = rustix::fs::openat2(
        &root,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .ok()?;
    let mut f = File::from(fd);
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > cfg.cache.max_file_bytes {
        return None;
    }
    let mut body = Vec::with_capacity(meta.len().min(expected_len.max(meta.len())) as usize);
    if let Err(e) = f
        .by_ref()
        .take(cfg.cache.max_file_bytes + 1)
        .read_to_end(&mut body)
    {
        let _ = to_log.try_send(ToLog::Error(format!(
            "cache: cannot read {}: {e}",
            file.display()
        )));
        return None;
    }
    let after = f.metadata().ok()?;
    // A file that changed while it was read is not cached now; it competes again later.
    if body.len() as u64 != after.len() || !Representation::of(&meta, "").matches(&after) {
        return None;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rep = Representation::of(&meta, &name);
    let c = &cfg.compression;
    let codable = c.compressible_type(rep.mime)
        && (c.precompressed || (c.on_the_fly && rep.len >= c.min_bytes));
    let mut entry = Entry::new(Arc::from(key), Arc::from(file), rep, body);
    if codable {
        entry.want(c.codings().as_slice());
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(key: &str, file: &Path, len: u64) -> Option<Entry> {
        let meta = std::fs::metadata("Cargo.toml").ok()?;
        Some(Entry::new(
            Arc::from(key),
            Arc::from(file),
            Representation::of(&meta, "x.html"),
            vec![0; len as usize],
        ))
    }

    fn hits(control: &mut Control, key: &str, len: u64, n: usize) {
        for _ in 0..n {
            control.hit(Hit {
                key: Arc::from(key),
                file: Arc::from(Path::new(key.trim_start_matches('/'))),
                len,
                count: 1,
                saved_bytes: 0,
            });
        }
    }

    #[test]
    fn one_hit_is_not_enough_two_are() {
        let cfg = Config::default();
        let mut control = Control::new(8);
        hits(&mut control, "/a", 10, 1);
        assert!(!control.rebalance(&cfg, fake));
        hits(&mut control, "/a", 10, 1);
        assert!(control.rebalance(&cfg, fake));
        assert!(control.table().contains_key("/a"));
    }

    #[test]
    fn top_half_is_cached_bottom_half_competes() {
        let cfg = Config::default();
        let mut control = Control::new(4);
        hits(&mut control, "/a", 10, 10);
        hits(&mut control, "/b", 10, 8);
        hits(&mut control, "/c", 10, 3);
        hits(&mut control, "/d", 10, 2);
        control.rebalance(&cfg, fake);
        let table = control.table();
        assert!(table.contains_key("/a") && table.contains_key("/b"));
        assert!(!table.contains_key("/c") && !table.contains_key("/d"));
        // /d competes its way in past /b.
        hits(&mut control, "/d", 10, 20);
        control.rebalance(&cfg, fake);
        let table = control.table();
        assert!(table.contains_key("/d") && table.contains_key("/a") && !table.contains_key("/b"));
        assert_eq!(control.snapshot(&cfg).evictions, 1);
    }

    #[test]
    fn budget_and_file_size_are_never_exceeded() {
        let mut cfg = Config::default();
        cfg.cache.max_bytes = 100;
        cfg.cache.max_file_bytes = 60;
        let mut control = Control::new(64);
        for i in 0..30 {
            hits(&mut control, &format!("/f{i}"), 10 + i, 5);
        }
        hits(&mut control, "/huge", 61, 50);
        control.rebalance(&cfg, fake);
        assert!(control.used_bytes() <= 100);
        assert!(!control.table().contains_key("/huge"));
    }

    #[test]
    fn variants_count_in_the_budget_reserved_until_made() {
        let mut cfg = Config::default();
        cfg.cache.max_bytes = 120;
        let mut control = Control::new(8);
        let coded = |key: &str, file: &Path, len: u64| {
            let mut entry = fake(key, file, len)?;
            entry.want(&Coding::ALL);
            Some(entry)
        };
        hits(&mut control, "/a", 20, 10);
        hits(&mut control, "/b", 20, 5);
        control.rebalance(&cfg, coded);
        // /a holds its body and three reservations of its size: /b does not fit beside it.
        assert!(control.table().contains_key("/a") && !control.table().contains_key("/b"));
        assert_eq!(control.used_bytes(), 80);
        let admitted = control.take_admitted();
        assert_eq!(admitted.len(), 1);
        let a = &admitted[0];
        let variant = |len: usize| super::super::Variant {
            rep: a.rep.coded(Coding::Br, len as u64),
            body: vec![1; len],
            from_sibling: false,
        };
        a.set_variant(Coding::Br, Some(variant(5)));
        a.set_variant(Coding::Zstd, Some(variant(5)));
        a.set_variant(Coding::Gzip, None);
        assert!(!a.pending());
        assert_eq!(control.used_bytes(), 30);
        control.rebalance(&cfg, coded);
        assert!(control.table().contains_key("/b"));
        assert_eq!(control.used_bytes(), 110);
        assert_eq!(control.snapshot(&cfg).variants_cached, 2);
    }

    #[test]
    fn scores_decay() {
        let cfg = Config::default();
        let mut control = Control::new(8);
        hits(&mut control, "/a", 10, 2);
        control.decay(HALF_LIFE * 3);
        assert!(
            !control.rebalance(&cfg, fake),
            "decayed below the admission score"
        );
    }
}
