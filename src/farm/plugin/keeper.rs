//! Plug-in keeper (ogi.farm's manager): attaches, replaces and detaches plug-ins at run time,
//! times out requests lent to non-persistent instances, and publishes the plug-in table.
//! Instances: 1. In: the plug-in directory (scanned every `ogi.scan_interval_ms`),
//! ToPluginKeeper (drained on each tick, never waited on). Out: `Routes` (read by ogi.farm),
//! `PluginBoard` (read by stats), ToLog. Stops: its inbox disconnects (every ogi.farm worker
//! has stopped); it then detaches everything, so persistent instances drain and are dropped.
//!
//! A new or changed `*.so` is read once; its declaration section is checked before anything is
//! loaded; the same bytes are written to a private copy, and the copy is loaded as a new
//! generation. The previous generation stays loaded (never `dlclose`d) and finishes what it
//! holds. A removed file detaches its path: new requests get 404, in-flight ones finish.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::board::{self, Retired};
use super::{Generation, NameCounters, Refusal, Route, Routes};
use crate::farm::reply;
use crate::http::response::{push_header, push_header_u64, push_status};
use crate::plugin_host::loader::{ConfigSource, LogSink};
use crate::plugin_host::{inspect, InspectError, Library, PluginBoard, Watch};
use crate::protocol::{ToLog, ToPluginKeeper, ToRecycler};
use crate::support::config::{Config, Live};
use crate::support::meters::Meters;

/// The keeper's outputs.
pub struct KeeperOut {
    pub to_recycler: Sender<ToRecycler>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
    pub board: PluginBoard,
    pub routes: Arc<Routes>,
    /// Read for the `draining` flag, set on SIGTERM.
    pub meters: Arc<Meters>,
}

/// What a file in the plug-in directory turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileKind {
    /// An ordinary library, or not a library at all.
    NotPlugin,
    /// Serving `/ogi/NAME`.
    Attached(String),
    /// Refused; the name, when the declaration could be read.
    Refused(Option<String>),
    /// A plug-in whose name `[ogi] exclude` lists: not loaded, `/ogi/NAME` stays unknown.
    Excluded(String),
}

/// Identifies a version of a file cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

struct FileState {
    stamp: Stamp,
    digest: u64,
    kind: FileKind,
}

/// How long a plug-in file must read as no plug-in, unchanged, before it is detached: a
/// copy written in place in slow pieces passes through such states.
const SETTLE: Duration = Duration::from_secs(1);

pub struct Keeper {
    out: KeeperOut,
    private_dir: PathBuf,
    files: HashMap<PathBuf, FileState>,
    names: HashMap<String, Arc<NameCounters>>,
    retired: Vec<Retired>,
    watches: Vec<Arc<Watch>>,
    next_generation: u64,
    last_scan: Instant,
    directory_problem: Option<String>,
    /// Files that stopped reading as plug-ins, by the digest seen, awaiting a second look.
    unsettled: HashMap<PathBuf, (u64, Instant)>,
    /// Known files missing from a scan, with when they were first missed; detached once
    /// still missing `SETTLE` later.
    missing: HashMap<PathBuf, Instant>,
    /// The server is draining: plug-ins are detached and the directory no longer scanned.
    stopping: bool,
    /// "attached" and "replaces" lines, written once the new table is published, so a
    /// request sent after the line appears finds the route.
    announcements: Vec<String>,
    /// `[ogi] exclude` as of the last scan; a change looks again at the files it concerns.
    exclude: Vec<String>,
}

impl Keeper {
    /// Prepares the private directory and scans once, so the plug-ins present at start
    /// answer from the first request.
    pub fn new(out: KeeperOut) -> Keeper {
        let private_dir =
            std::env::temp_dir().join(format!("occwserv-{}-plugins", std::process::id()));
        let _ = std::fs::remove_dir_all(&private_dir);
        if let Err(e) = std::fs::create_dir_all(&private_dir) {
            log(
                &out.to_log,
                format!(
                    "plugin keeper: cannot create {}: {e}",
                    private_dir.display()
                ),
            );
        }
        let mut keeper = Keeper {
            out,
            private_dir,
            files: HashMap::new(),
            names: HashMap::new(),
            retired: Vec::new(),
            watches: Vec::new(),
            next_generation: 1,
            last_scan: Instant::now(),
            directory_problem: None,
            unsettled: HashMap::new(),
            missing: HashMap::new(),
            stopping: false,
            announcements: Vec::new(),
            exclude: Vec::new(),
        };
        keeper.scan();
        keeper.publish_board();
        keeper
    }

    pub fn run(mut self, inbox: Receiver<ToPluginKeeper>) {
        loop {
            let cfg = self.out.live.load_full();
            let scan_every = Duration::from_millis(cfg.ogi.scan_interval_ms.max(1));
            // A timer, not a wait on the inbox: senders must never wake this process.
            std::thread::sleep(scan_every.min(Duration::from_millis(100)));
            loop {
                match inbox.try_recv() {
                    Ok(ToPluginKeeper::Watch(watch)) => self.watches.push(watch),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return self.stop(),
                }
            }
            self.expire(&cfg);
            if self.out.meters.draining() && !self.stopping {
                self.stop_serving();
            }
            if !self.stopping && self.last_scan.elapsed() >= scan_every {
                self.scan();
            }
            self.publish_board();
        }
    }

    /// On shutdown: new requests for plug-ins get 503, and persistent instances finish their
    /// queues and are dropped, so they give back the connections they hold (websockets).
    fn stop_serving(&mut self) {
        self.stopping = true;
        let table = self.out.routes.snapshot();
        let mut stopped = HashMap::new();
        for (name, route) in table.iter() {
            if let Route::Ready(generation) = route {
                self.retired.push(Retired {
                    library: generation.library.clone(),
                    state: generation.state.clone(),
                });
            }
            let file = match route {
                Route::Ready(generation) => generation.library.file.clone(),
                Route::Refused(refusal) => refusal.file.clone(),
            };
            let why = "the server is shutting down".to_string();
            stopped.insert(
                name.clone(),
                Route::Refused(Arc::new(Refusal { file, why })),
            );
        }
        self.out.routes.publish(stopped);
        log(
            &self.out.to_log,
            "plugin keeper: shutting down; plug-ins detached, persistent instances drain"
                .to_string(),
        );
    }

    /// Detaches every plug-in, so persistent instances finish their queues and are dropped.
    fn stop(mut self) {
        self.out.routes.publish(HashMap::new());
        let _ = std::fs::remove_dir_all(&self.private_dir);
        self.watches.clear();
    }

    /// Times out lent requests past `ogi.timeout_secs`: answers 504 when nothing was
    /// written yet, else closes; the socket is shut down either way.
    fn expire(&mut self, cfg: &Config) {
        let now = Instant::now();
        self.watches.retain(|w| !w.is_returned());
        if !self
            .watches
            .iter()
            .any(|w| w.deadline().is_some_and(|d| d <= now))
        {
            return;
        }
        let answer = timeout_answer(cfg);
        self.watches.retain(|w| {
            matches!(
                w.expire(now, 504, &answer),
                crate::plugin_host::Expiry::NotYet
            )
        });
    }

    /// Compares the plug-in directory with what is attached, and brings the routes up to date.
    fn scan(&mut self) {
        self.last_scan = Instant::now();
        let cfg = self.out.live.load_full();
        if cfg.ogi.exclude != self.exclude {
            self.exclusion_changed(&cfg.ogi.exclude);
        }
        let dir = cfg.plugins.clone();
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => {
                self.directory_problem = None;
                listing
            }
            Err(e) => {
                let problem = format!(
                    "plugin keeper: cannot read the plug-in directory {}: {e}",
                    dir.display()
                );
                if self.directory_problem.as_ref() != Some(&problem) {
                    log(&self.out.to_log, problem.clone());
                    self.directory_problem = Some(problem);
                }
                if e.kind() != std::io::ErrorKind::NotFound {
                    return;
                }
                // With the directory gone, every file in it is gone too.
                return self.forget_missing(&HashSet::new());
            }
        };
        let mut table = (*self.out.routes.snapshot()).clone();
        let mut changed = false;
        let mut present = HashSet::new();
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("so") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            present.insert(path.clone());
            let stamp = Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
                inode: meta.ino(),
                device: meta.dev(),
            };
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            changed |= self.examine(&path, stamp, &mut table);
        }
        self.forget_missing_in(&present, &mut table, &mut changed);
        if changed {
            self.out.routes.publish(table);
        }
        for line in std::mem::take(&mut self.announcements) {
            log(&self.out.to_log, line);
        }
    }

    /// After `[ogi] exclude` changed: files whose plug-in is newly excluded or no longer
    /// excluded are forgotten, so this scan classifies them again (detaching or attaching).
    fn exclusion_changed(&mut self, exclude: &[String]) {
        let excluded = |name: &String| exclude.contains(name);
        let stale: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, f)| match &f.kind {
                FileKind::Attached(name) => excluded(name),
                FileKind::Excluded(name) => !excluded(name),
                _ => false,
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in stale {
            if let Some(file) = self.files.get_mut(&path) {
                // A stamp no file has and a digest no content has: examined afresh.
                file.stamp.len = u64::MAX;
                file.digest = 0;
            }
        }
        self.exclude = exclude.to_vec();
    }

    /// Detaches what every file not in `present` provided.
    fn forget_missing(&mut self, present: &HashSet<PathBuf>) {
        let mut table = (*self.out.routes.snapshot()).clone();
        let mut changed = false;
        self.forget_missing_in(present, &mut table, &mut changed);
        if changed {
            self.out.routes.publish(table);
        }
    }

    fn forget_missing_in(
        &mut self,
        present: &HashSet<PathBuf>,
        table: &mut HashMap<String, Route>,
        changed: &mut bool,
    ) {
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        // A file must stay missing for `SETTLE`: `cargo build` replaces its output by
        // removing it and linking the new one, and scans may fall in between.
        let missing_before = std::mem::take(&mut self.missing);
        for path in gone {
            let since = missing_before
                .get(&path)
                .copied()
                .unwrap_or_else(Instant::now);
            if since.elapsed() < SETTLE {
                self.missing.insert(path, since);
                continue;
            }
            if let Some(FileState { kind, .. }) = self.files.remove(&path) {
                *changed |= self.detach(&kind, &path, "removed", table);
            }
        }
    }

    /// Looks at a new or changed file; true when the routes changed.
    fn examine(&mut self, path: &Path, stamp: Stamp, table: &mut HashMap<String, Route>) -> bool {
        // A file that cannot be read now (being replaced, say) is looked at again next scan.
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let digest = hasher.finish();
        if let Some(known) = self.files.get_mut(path) {
            if known.digest == digest {
                known.stamp = stamp;
                return false;
            }
        }
        let previous = self
            .files
            .get(path)
            .map(|f| f.kind.clone())
            .unwrap_or(FileKind::NotPlugin);
        // A plug-in that suddenly reads as no plug-in may be half-written in place: it is
        // detached only if it still reads the same, unchanged, `SETTLE` later.
        if matches!(previous, FileKind::Attached(_)) && inspect(&bytes).is_err() {
            let settled = match self.unsettled.get(path) {
                Some((seen, since)) if *seen == digest => since.elapsed() >= SETTLE,
                _ => {
                    self.unsettled
                        .insert(path.to_path_buf(), (digest, Instant::now()));
                    false
                }
            };
            if !settled {
                return false;
            }
        }
        self.unsettled.remove(path);
        let (kind, mut changed) = self.classify(path, &bytes, table);
        if let FileKind::Attached(old) | FileKind::Refused(Some(old)) = &previous {
            let still =
                matches!(&kind, FileKind::Attached(n) | FileKind::Refused(Some(n)) if n == old);
            if !still {
                changed |= self.detach(&previous, path, "changed", table);
            }
        }
        self.files.insert(
            path.to_path_buf(),
            FileState {
                stamp,
                digest,
                kind,
            },
        );
        changed
    }

    /// Decides what a file's bytes are, loading them when they are an acceptable plug-in.
    fn classify(
        &mut self,
        path: &Path,
        bytes: &[u8],
        table: &mut HashMap<String, Route>,
    ) -> (FileKind, bool) {
        let shown = path.display();
        let declaration = match inspect(bytes) {
            Ok(declaration) => declaration,
            Err(InspectError::NoDeclaration) | Err(InspectError::NotElf(_)) => {
                return (FileKind::NotPlugin, false)
            }
            Err(e) => {
                log(
                    &self.out.to_log,
                    format!("plugin file {shown} refused: {e}; it was not loaded"),
                );
                return (FileKind::Refused(None), false);
            }
        };
        let name = declaration.name();
        if self.exclude.contains(&name) {
            log(
                &self.out.to_log,
                format!("plugin {name} ({shown}) not attached: [ogi] exclude lists it"),
            );
            return (FileKind::Excluded(name), false);
        }
        let current = match table.get(&name) {
            Some(Route::Ready(generation)) => Some(generation.clone()),
            _ => None,
        };
        if let Some(generation) = &current {
            if generation.library.file != path {
                log(
                    &self.out.to_log,
                    format!(
                        "plugin {name} in {shown} refused: /ogi/{name} is already served by {}",
                        generation.library.file.display()
                    ),
                );
                return (FileKind::Refused(None), false);
            }
        }
        let refuse = |keeper: &mut Keeper, table: &mut HashMap<String, Route>, why: String| {
            let keeping = current
                .as_ref()
                .map(|g| format!("; generation {} keeps serving", g.library.generation));
            let answer = if keeping.is_some() {
                String::new()
            } else {
                format!("; /ogi/{name} answers 503")
            };
            log(
                &keeper.out.to_log,
                format!(
                    "plugin {name} ({shown}) refused: {why}{}{answer}",
                    keeping.unwrap_or_default()
                ),
            );
            if current.is_none() {
                table.insert(
                    name.clone(),
                    Route::Refused(Arc::new(Refusal {
                        file: path.to_path_buf(),
                        why,
                    })),
                );
                return (FileKind::Refused(Some(name.clone())), true);
            }
            (FileKind::Refused(Some(name.clone())), false)
        };
        if let Err(mismatch) = declaration.check() {
            return refuse(self, table, format!("{mismatch}; it was not loaded"));
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy = self.private_dir.join(format!("{generation}-{file_name}"));
        let loaded = Library::load(
            bytes,
            declaration,
            path,
            &copy,
            generation,
            log_sink(&self.out.to_log),
            config_source(&name, &self.out.live),
        );
        let library = match loaded {
            Ok(library) => Arc::new(library),
            Err(e) => return refuse(self, table, e.to_string()),
        };
        let counters = self.names.entry(name.clone()).or_default().clone();
        let fresh = Generation::new(
            library.clone(),
            counters,
            self.out.to_recycler.clone(),
            self.out.live.clone(),
        );
        let version = declaration.version();
        let fresh = Arc::new(fresh);
        if declaration.starts_when_attached() {
            let previous = current.as_ref().map(|g| g.state.clone());
            fresh.start_when_attached(previous, &self.out.live);
        }
        match table.insert(name.clone(), Route::Ready(fresh)) {
            Some(Route::Ready(old)) => {
                self.announcements.push(format!(
                        "plugin {name} {version}: generation {generation} from {shown} replaces generation {}, which drains",
                    old.library.generation
                ));
                self.retired.push(Retired {
                    library: old.library.clone(),
                    state: old.state.clone(),
                });
            }
            _ => self.announcements.push(format!(
                "plugin {name} {version}: attached from {shown} as generation {generation}"
            )),
        }
        (FileKind::Attached(name), true)
    }

    /// Removes the route a file provided, if it still provides it; true when it did.
    fn detach(
        &mut self,
        kind: &FileKind,
        path: &Path,
        why: &str,
        table: &mut HashMap<String, Route>,
    ) -> bool {
        let name = match kind {
            FileKind::Attached(name) | FileKind::Refused(Some(name)) => name,
            _ => return false,
        };
        match table.get(name) {
            Some(Route::Ready(generation)) if generation.library.file == path => {
                log(
                    &self.out.to_log,
                    format!(
                        "plugin {name}: detached ({} {why}); requests in flight finish on generation {}",
                        path.display(),
                        generation.library.generation
                    ),
                );
                self.retired.push(Retired {
                    library: generation.library.clone(),
                    state: generation.state.clone(),
                });
                table.remove(name);
                true
            }
            Some(Route::Refused(refusal)) if refusal.file == path => {
                table.remove(name);
                true
            }
            _ => false,
        }
    }

    /// Publishes the plug-in table for `/stats.html`, forgetting drained generations.
    fn publish_board(&mut self) {
        self.retired.retain(|r| {
            r.state.in_flight.load(Ordering::Relaxed) > 0 || r.state.owning.load(Ordering::Relaxed)
        });
        let rows = board::rows(&self.out.routes.snapshot(), &self.names, &self.retired);
        self.out.board.store(Arc::new(rows));
    }
}

fn log(to_log: &Sender<ToLog>, line: String) {
    let _ = to_log.try_send(ToLog::Error(line));
}

fn log_sink(to_log: &Sender<ToLog>) -> LogSink {
    let to_log = to_log.clone();
    Arc::new(move |line: String| {
        let _ = to_log.try_send(ToLog::Error(line));
    })
}

/// A plug-in's configuration: for `game`, the server's `[game]` table.
fn config_source(name: &str, live: &Live) -> ConfigSource {
    let name = name.to_string();
    let live = live.clone();
    Arc::new(move || {
        let cfg = live.load();
        match name.as_str() {
            "game" => cfg
                .game
                .as_ref()
                .and_then(|table| toml::to_string(table).ok()),
            _ => None,
        }
    })
}

/// The complete 504 response the keeper writes for a timed-out request.
fn timeout_answer(cfg: &Config) -> Vec<u8> {
    let body = reply::error_page(cfg, 504);
    let mut out = Vec::with_capacity(256 + body.len());
    push_status(&mut out, 1, 504, false);
    push_header(&mut out, "Content-Type", b"text/html; charset=utf-8");
    push_header_u64(&mut out, "Content-Length", body.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use arc_swap::ArcSwap;
    use crossbeam_channel::{bounded, unbounded};

    #[test]
    fn the_keeper_answers_a_lent_request_past_its_deadline_and_stops_on_disconnect() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            plugins: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (to_recycler, _recycler) = unbounded();
        let (to_log, log_inbox) = bounded(64);
        let board: PluginBoard = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let out = KeeperOut {
            to_recycler,
            to_log,
            live: Arc::new(ArcSwap::from_pointee(cfg)),
            board: board.clone(),
            routes: Arc::new(Routes::default()),
            meters: Arc::new(Meters::default()),
        };
        let keeper = Keeper::new(out);
        let (to_keeper, inbox) = unbounded();
        let running = std::thread::spawn(move || keeper.run(inbox));

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (lent, _) = listener.accept().unwrap();
        let watch = Arc::new(Watch::new(lent.as_raw_fd(), Some(Instant::now())));
        to_keeper
            .send(ToPluginKeeper::Watch(watch.clone()))
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.contains("Connection: close\r\n"));
        assert_eq!(watch.mark_returned().and_then(|t| t.status), Some(504));

        drop(to_keeper);
        running.join().unwrap();
        assert!(board.load().is_empty());
        assert!(
            log_inbox.try_iter().next().is_none(),
            "an empty directory logs nothing"
        );
    }
}
