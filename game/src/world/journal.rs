//! Journal process: keeps the world's state on disk as an atomic snapshot plus a log of
//! changes since it.
//!
//! Instances: 1. In: ToJournal (changes from rooms and the gate). Out: the files
//! `world.json` (snapshot) and `changes.log` (one JSON line per change) in the state
//! directory, error lines to the host's log. Stops: on `Stop` or when its inbox
//! disconnects, after a final snapshot.
//!
//! Each change is written to the log at once and flushed to the kernel within
//! `FLUSH_INTERVAL`, so a `kill -9` loses at most that much; the log is synced to disk every
//! second. Every `snapshot_every` changes (and at start and stop) the whole state is written
//! to a temporary file, synced and renamed over the snapshot, and the log is emptied; a crash
//! between the rename and the truncation is harmless because each line carries a sequence
//! number and loading skips lines the snapshot already holds.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};
use serde::{Deserialize, Serialize};

use crate::protocol::{Origin, Place, Score, ToJournal, Whereabouts};
use crate::world::atlas::{Atlas, Lid};
use crate::world::Logger;

pub const SNAPSHOT_FILE: &str = "world.json";
pub const LOG_FILE: &str = "changes.log";

/// Longest time a change waits in the journal's buffer before it reaches the kernel.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The world's persistent state: where every player stands and where every object is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The sequence number of the last change this state includes.
    pub seq: u64,
    /// Players by name.
    pub players: BTreeMap<String, PlayerState>,
    /// Objects by key; an object not listed is where the atlas puts it.
    pub items: BTreeMap<String, Place>,
    /// Doors by key; a door not listed is as the atlas starts it.
    #[serde(default)]
    pub doors: BTreeMap<String, LidState>,
    /// Containers' lids by object key.
    #[serde(default)]
    pub lids: BTreeMap<String, LidState>,
}

/// A door or lid as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LidState {
    pub closed: bool,
    pub locked: bool,
}

impl From<Lid> for LidState {
    fn from(lid: Lid) -> LidState {
        LidState {
            closed: lid.closed,
            locked: lid.locked,
        }
    }
}

impl From<LidState> for Lid {
    fn from(lid: LidState) -> Lid {
        Lid {
            closed: lid.closed,
            locked: lid.locked,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerState {
    pub origin: Origin,
    /// The key of the room the player stands in (empty: the start room).
    pub room: String,
    #[serde(default)]
    pub score: Score,
}

/// One change, as a line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Registered { name: String, origin: Origin },
    PlayerAt { name: String, room: String },
    ItemAt { item: String, place: Place },
    Door { door: String, lid: LidState },
    Lid { item: String, lid: LidState },
    Scored { name: String, score: Score },
}

#[derive(Debug, Serialize, Deserialize)]
struct LogLine {
    seq: u64,
    #[serde(flatten)]
    change: Change,
}

/// The state directory could not be read.
#[derive(Debug)]
pub enum JournalError {
    Io(PathBuf, io::Error),
    /// The snapshot is not valid JSON of the expected shape.
    BadSnapshot(PathBuf, String),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            JournalError::BadSnapshot(path, why) => {
                write!(f, "{}: not a world snapshot: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for JournalError {}

/// What loading found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Log lines applied on top of the snapshot.
    pub replayed: usize,
    /// Log lines that could not be read (a torn last line after a crash is one).
    pub unreadable: usize,
}

impl State {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Registered { name, origin } => {
                self.players.entry(name).or_insert(PlayerState {
                    origin,
                    room: String::new(),
                    score: Score::default(),
                });
            }
            Change::PlayerAt { name, room } => {
                if let Some(player) = self.players.get_mut(&name) {
                    player.room = room;
                }
            }
            Change::ItemAt { item, place } => {
                self.items.insert(item, place);
            }
            Change::Door { door, lid } => {
                self.doors.insert(door, lid);
            }
            Change::Lid { item, lid } => {
                self.lids.insert(item, lid);
            }
            Change::Scored { name, score } => {
                if let Some(player) = self.players.get_mut(&name) {
                    player.score = score;
                }
            }
        }
    }
}

/// Reads the snapshot and replays the log after it. A missing directory or file is an
/// empty world.
pub fn load(dir: &Path) -> Result<(State, LoadReport), JournalError> {
    fs::create_dir_all(dir).map_err(|e| JournalError::Io(dir.to_path_buf(), e))?;
    let snapshot_path = dir.join(SNAPSHOT_FILE);
    let mut state = match fs::read(&snapshot_path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes)
            .map_err(|e| JournalError::BadSnapshot(snapshot_path.clone(), e.to_string()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(JournalError::Io(snapshot_path, e)),
    };
    let mut report = LoadReport::default();
    let log_path = dir.join(LOG_FILE);
    let file = match File::open(&log_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((state, report)),
        Err(e) => return Err(JournalError::Io(log_path, e)),
    };
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| JournalError::Io(log_path.clone(), e))?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<LogLine>(&line) {
            Ok(entry) if entry.seq > state.seq => {
                state.seq = entry.seq;
                state.apply(entry.change);
                report.replayed += 1;
            }
            Ok(_) => {}
            Err(_) => report.unreadable += 1,
        }
    }
    Ok((state, report))
}

/// Writes the whole state atomically: a temporary file, synced, renamed over the snapshot.
pub fn write_snapshot(dir: &Path, state: &State) -> io::Result<()> {
    let temporary = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut out = BufWriter::new(File::create(&temporary)?);
    serde_json::to_writer_pretty(&mut out, state).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(SNAPSHOT_FILE))?;
    File::open(dir)?.sync_all()
}

/// Everything the journal starts with.
pub struct JournalSetup {
    pub dir: PathBuf,
    pub state: State,
    /// Changes between snapshots.
    pub snapshot_every: u64,
    pub log: Logger,
    /// Turns the processes' numbers into the keys the files keep.
    pub atlas: Arc<Atlas>,
}

struct Journal {
    setup: JournalSetup,
    writer: Option<BufWriter<File>>,
    since_snapshot: u64,
    unflushed: bool,
    unsynced: bool,
    last_sync: Instant,
    failing: bool,
}

pub fn run(setup: JournalSetup, inbox: Receiver<ToJournal>) {
    let mut journal = Journal {
        setup,
        writer: None,
        since_snapshot: 0,
        unflushed: false,
        unsynced: false,
        last_sync: Instant::now(),
        failing: false,
    };
    journal.snapshot();
    let ticker = tick(FLUSH_INTERVAL);
    loop {
        select! {
            recv(inbox) -> message => match message {
                Ok(ToJournal::Registered { name, origin }) => {
                    journal.record(Change::Registered { name: name.to_string(), origin });
                }
                Ok(ToJournal::PlayerAt { name, room }) => {
                    let room = journal.setup.atlas.rooms[room].key.clone();
                    journal.record(Change::PlayerAt { name: name.to_string(), room });
                }
                Ok(ToJournal::ItemAt { item, place }) => {
                    let atlas = &journal.setup.atlas;
                    let place = match place {
                        Whereabouts::Room(room) => Place::Room(atlas.rooms[room].key.clone()),
                        Whereabouts::Player(name) => Place::Player(name.to_string()),
                        Whereabouts::Inside(holder) => Place::Inside(atlas.items[holder].key.clone()),
                        Whereabouts::Npc(npc) => Place::Npc(atlas.npcs[npc].key.clone()),
                    };
                    let item = atlas.items[item].key.clone();
                    journal.record(Change::ItemAt { item, place });
                }
                Ok(ToJournal::Door { door, lid }) => {
                    let door = journal.setup.atlas.doors[door].key.clone();
                    journal.record(Change::Door { door, lid: lid.into() });
                }
                Ok(ToJournal::Container { item, lid }) => {
                    let item = journal.setup.atlas.items[item].key.clone();
                    journal.record(Change::Lid { item, lid: lid.into() });
                }
                Ok(ToJournal::Scored { name, score }) => {
                    journal.record(Change::Scored { name: name.to_string(), score });
                }
                Ok(ToJournal::Sync { done }) => {
                    journal.flush(true);
                    let _ = done.send(());
                }
                Ok(ToJournal::Stop { done }) => {
                    journal.snapshot();
                    let _ = done.send(());
                    return;
                }
                Err(_) => {
                    journal.snapshot();
                    return;
                }
            },
            recv(ticker) -> _ => {
                let sync = journal.last_sync.elapsed() >= SYNC_INTERVAL;
                journal.flush(sync);
            }
        }
    }
}

impl Journal {
    /// Reports a failure once, until writing works again.
    fn failed(&mut self, what: &str, e: &io::Error) {
        if !self.failing {
            (self.setup.log)(&format!(
                "game journal: {what} in {}: {e}",
                self.setup.dir.display()
            ));
        }
        self.failing = true;
    }

    fn record(&mut self, change: Change) {
        self.setup.state.seq += 1;
        let line = LogLine {
            seq: self.setup.state.seq,
            change: change.clone(),
        };
        self.setup.state.apply(change);
        self.since_snapshot += 1;
        if self.since_snapshot >= self.setup.snapshot_every {
            return self.snapshot();
        }
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let written = serde_json::to_writer(&mut *writer, &line)
            .map_err(io::Error::other)
            .and_then(|()| writer.write_all(b"\n"));
        match written {
            Ok(()) => self.unflushed = true,
            Err(e) => self.failed("cannot append to the change log", &e),
        }
    }

    fn flush(&mut self, sync: bool) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        if self.unflushed {
            match writer.flush() {
                Ok(()) => {
                    self.unflushed = false;
                    self.unsynced = true;
                }
                Err(e) => return self.failed("cannot write the change log", &e),
            }
        }
        if sync && self.unsynced {
            self.last_sync = Instant::now();
            match writer.get_ref().sync_data() {
                Ok(()) => self.unsynced = false,
                Err(e) => self.failed("cannot sync the change log", &e),
            }
        }
    }

    /// Writes the snapshot, then empties the log (opening it the first time).
    fn snapshot(&mut self) {
        if let Err(e) = write_snapshot(&self.setup.dir, &self.setup.state) {
            // Keep appending to the log: the old snapshot plus the log still hold everything.
            self.failed("cannot write the snapshot", &e);
            self.since_snapshot = 0;
            if self.writer.is_none() {
                self.writer = self.open_log();
            }
            return;
        }
        self.since_snapshot = 0;
        if let Some(writer) = self.writer.as_mut() {
            // Lines still buffered are in the snapshot now.
            let _ = writer.flush();
        }
        let writer = self.writer.take().or_else(|| self.open_log());
        if let Some(writer) = writer {
            match writer.get_ref().set_len(0) {
                Ok(()) => self.failing = false,
                Err(e) => self.failed("cannot empty the change log", &e),
            }
            self.writer = Some(writer);
        }
        self.unflushed = false;
        self.unsynced = false;
    }

    fn open_log(&mut self) -> Option<BufWriter<File>> {
        let path = self.setup.dir.join(LOG_FILE);
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => Some(BufWriter::with_capacity(64 * 1024, file)),
            Err(e) => {
                self.failed("cannot open the change log", &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atlas() -> Atlas {
        Atlas::built_in().unwrap()
    }
    use crossbeam_channel::bounded;
    use std::sync::Arc;

    fn quiet() -> Logger {
        Arc::new(|_: &str| {})
    }

    fn start(
        dir: &Path,
        snapshot_every: u64,
    ) -> (
        crossbeam_channel::Sender<ToJournal>,
        std::thread::JoinHandle<()>,
    ) {
        let (state, _) = load(dir).unwrap();
        let (to_journal, inbox) = bounded(16);
        let setup = JournalSetup {
            dir: dir.to_path_buf(),
            state,
            snapshot_every,
            log: quiet(),
            atlas: Arc::new(atlas()),
        };
        (to_journal, std::thread::spawn(move || run(setup, inbox)))
    }

    fn sync(to_journal: &crossbeam_channel::Sender<ToJournal>) {
        let (done, finished) = bounded(1);
        to_journal.send(ToJournal::Sync { done }).unwrap();
        finished.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn changes_survive_a_crash_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (to_journal, journal) = start(dir.path(), 1000);
        to_journal
            .send(ToJournal::Registered {
                name: "alice".into(),
                origin: Origin::Web,
            })
            .unwrap();
        to_journal
            .send(ToJournal::PlayerAt {
                name: "alice".into(),
                room: 3,
            })
            .unwrap();
        to_journal
            .send(ToJournal::ItemAt {
                item: 0,
                place: Whereabouts::Player("alice".into()),
            })
            .unwrap();
        sync(&to_journal);
        // A crash: the process is gone without a final snapshot. Copy the files as they are.
        let copy = tempfile::tempdir().unwrap();
        for file in [SNAPSHOT_FILE, LOG_FILE] {
            fs::copy(dir.path().join(file), copy.path().join(file)).unwrap();
        }
        let (state, report) = load(copy.path()).unwrap();
        assert_eq!(
            report,
            LoadReport {
                replayed: 3,
                unreadable: 0
            }
        );
        assert_eq!(state.players["alice"].room, atlas().rooms[3].key);
        assert_eq!(
            state.items[atlas().items[0].key.as_str()],
            Place::Player("alice".to_string())
        );
        drop(to_journal);
        journal.join().unwrap();
        // A clean stop leaves everything in the snapshot and an empty log.
        assert_eq!(fs::read(dir.path().join(LOG_FILE)).unwrap().len(), 0);
        assert_eq!(load(dir.path()).unwrap().0, state);
    }

    #[test]
    fn snapshots_compact_the_log_and_old_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (to_journal, journal) = start(dir.path(), 2);
        to_journal
            .send(ToJournal::Registered {
                name: "bob".into(),
                origin: Origin::Irc,
            })
            .unwrap();
        to_journal
            .send(ToJournal::PlayerAt {
                name: "bob".into(),
                room: 1,
            })
            .unwrap();
        to_journal
            .send(ToJournal::ItemAt {
                item: 2,
                place: Whereabouts::Room(5),
            })
            .unwrap();
        sync(&to_journal);
        let log = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        // A stale line from before the snapshot, as if the truncation had not happened.
        let stale = r#"{"seq":1,"change":"player_at","name":"bob","room":"gate"}"#;
        fs::write(dir.path().join(LOG_FILE), format!("{stale}\n{log}")).unwrap();
        let (state, report) = load(dir.path()).unwrap();
        assert_eq!(report.replayed, 1);
        assert_eq!(state.players["bob"].room, atlas().rooms[1].key);
        assert_eq!(
            state.items[atlas().items[2].key.as_str()],
            Place::Room(atlas().rooms[5].key.clone())
        );
        drop(to_journal);
        journal.join().unwrap();
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"seq":1,"change":"registered","name":"carol","origin":"web"}"#;
        fs::write(
            dir.path().join(LOG_FILE),
            format!("{good}\n{{\"seq\":2,\"chan"),
        )
        .unwrap();
        let (state, report) = load(dir.path()).unwrap();
        assert_eq!(
            report,
            LoadReport {
                replayed: 1,
                unreadable: 1
            }
        );
        assert!(state.players.contains_key("carol"));
    }

    #[test]
    fn a_bad_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SNAPSHOT_FILE), "{not json").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(JournalError::BadSnapshot(..))
        ));
    }
}
