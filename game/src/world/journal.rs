//! Journal process: keeps the world's state in an SQLite database, `state_dir/world.sqlite`
//! (WAL mode, `synchronous = NORMAL`), which an admin can read with `sqlite3` and back up
//! with `.backup` while the game runs.
//!
//! Instances: 1. In: ToJournal (changes from rooms, users and the gate; `Commit` barriers
//! from users). Out: the database; `Committed` to users; error lines to the host's log.
//! Stops: on `Stop` or when its inbox disconnects.
//!
//! Changes that arrive together share one transaction: the journal takes everything waiting
//! in its inbox, writes it, commits, and only then answers the `Commit` barriers among it. A
//! user sends its barrier after the world has finished its command, so every change of the
//! command is committed before the player sees `done`; with WAL and `synchronous = NORMAL` a
//! commit is a write to the log without an fsync, and survives the process being killed.
//!
//! A state directory from before the database (`world.json` and `changes.log`) is read once,
//! written to the database, and the old files are renamed `*.migrated`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use rusqlite::{params, Connection, Transaction};
use serde::{Deserialize, Serialize};

use crate::protocol::{Origin, Place, Score, ToJournal, ToUser};
use crate::world::atlas::{Atlas, Lid};
use crate::world::build::Edit;
use crate::world::{Logger, WorldSource};

pub const DATABASE_FILE: &str = "world.sqlite";
/// The files of the journal before the database, migrated once.
pub const OLD_SNAPSHOT_FILE: &str = "world.json";
pub const OLD_LOG_FILE: &str = "changes.log";

/// Most changes written in one transaction.
const BATCH: usize = 4096;

/// The world's persistent state: where every player stands and where every object is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The sequence number of the last change this state includes (old journal only).
    #[serde(default)]
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

/// One change, as the old journal's log lines held them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Registered { name: String, origin: Origin },
    PlayerAt { name: String, room: String },
    ItemAt { item: String, place: Place },
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
    /// The old snapshot is not valid JSON of the expected shape.
    BadSnapshot(PathBuf, String),
    Database(PathBuf, rusqlite::Error),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            JournalError::BadSnapshot(path, why) => {
                write!(f, "{}: not a world snapshot: {why}", path.display())
            }
            JournalError::Database(path, e) => write!(f, "{}: {e}", path.display()),
        }
    }
}

impl std::error::Error for JournalError {}

/// What loading found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The builders' edits, in order.
    pub edits: Vec<Edit>,
    /// Players migrated from an old journal (`None`: there was none).
    pub migrated: Option<usize>,
    /// Old log lines that could not be read (a torn last line after a crash is one).
    pub unreadable: usize,
}

/// Opens (creating) the database in `dir`, migrates an old journal found there, and reads
/// the state.
pub fn load(dir: &Path) -> Result<(State, Connection, LoadReport), JournalError> {
    fs::create_dir_all(dir).map_err(|e| JournalError::Io(dir.to_path_buf(), e))?;
    let path = dir.join(DATABASE_FILE);
    let db = |e| JournalError::Database(path.clone(), e);
    let mut conn = Connection::open(&path).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    conn.execute_batch(SCHEMA).map_err(db)?;
    let mut report = LoadReport::default();
    if dir.join(OLD_SNAPSHOT_FILE).exists() || dir.join(OLD_LOG_FILE).exists() {
        let (old, unreadable) = load_old(dir)?;
        report.unreadable = unreadable;
        report.migrated = Some(old.players.len());
        let tx = conn.transaction().map_err(db)?;
        write_state(&tx, &old).map_err(db)?;
        tx.commit().map_err(db)?;
        for file in [OLD_SNAPSHOT_FILE, OLD_LOG_FILE] {
            let from = dir.join(file);
            if from.exists() {
                let to = dir.join(format!("{file}.migrated"));
                fs::rename(&from, &to).map_err(|e| JournalError::Io(from.clone(), e))?;
            }
        }
    }
    let state = read_state(&conn).map_err(db)?;
    report.edits = read_edits(&conn).map_err(db)?;
    Ok((state, conn, report))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS players (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    origin TEXT NOT NULL,
    room TEXT NOT NULL,
    points INTEGER NOT NULL DEFAULT 0,
    earned TEXT NOT NULL DEFAULT '[]',
    finished INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('room', 'player', 'inside', 'npc')),
    place TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS doors (
    key TEXT PRIMARY KEY,
    closed INTEGER NOT NULL,
    locked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lids (
    key TEXT PRIMARY KEY,
    closed INTEGER NOT NULL,
    locked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    edit TEXT NOT NULL
);
";

/// The builders' edits, in the order they were made; unreadable ones are skipped.
fn read_edits(conn: &Connection) -> rusqlite::Result<Vec<Edit>> {
    let mut edits = conn.prepare("SELECT edit FROM builds ORDER BY seq")?;
    let rows = edits.query_map([], |row| row.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(edit) = serde_json::from_str(&row?) {
            out.push(edit);
        }
    }
    Ok(out)
}

fn built(tx: &Transaction, edit: &Edit) -> rusqlite::Result<()> {
    let text = serde_json::to_string(edit)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute("INSERT INTO builds (edit) VALUES (?1)", params![text])?;
    if let Edit::Destroy { item } = edit {
        tx.execute("DELETE FROM items WHERE key = ?1", params![item])?;
        tx.execute("DELETE FROM lids WHERE key = ?1", params![item])?;
    }
    Ok(())
}

fn read_state(conn: &Connection) -> rusqlite::Result<State> {
    let mut state = State::default();
    let mut players =
        conn.prepare("SELECT name, origin, room, points, earned, finished FROM players")?;
    let rows = players.query_map([], |row| {
        let origin: String = row.get(1)?;
        let earned: String = row.get(4)?;
        Ok((
            row.get::<_, String>(0)?,
            PlayerState {
                origin: match origin.as_str() {
                    "irc" => Origin::Irc,
                    "bot" => Origin::Bot,
                    _ => Origin::Web,
                },
                room: row.get(2)?,
                score: Score {
                    points: row.get(3)?,
                    earned: serde_json::from_str(&earned).unwrap_or_default(),
                    finished: row.get(5)?,
                },
            },
        ))
    })?;
    for row in rows {
        let (name, player) = row?;
        state.players.insert(name, player);
    }
    let mut items = conn.prepare("SELECT key, kind, place FROM items")?;
    let rows = items.query_map([], |row| {
        let kind: String = row.get(1)?;
        let place: String = row.get(2)?;
        let place = match kind.as_str() {
            "player" => Place::Player(place),
            "inside" => Place::Inside(place),
            "npc" => Place::Npc(place),
            _ => Place::Room(place),
        };
        Ok((row.get::<_, String>(0)?, place))
    })?;
    for row in rows {
        let (key, place) = row?;
        state.items.insert(key, place);
    }
    for (table, into) in [("doors", &mut state.doors), ("lids", &mut state.lids)] {
        let mut lids = conn.prepare(&format!("SELECT key, closed, locked FROM {table}"))?;
        let rows = lids.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                LidState {
                    closed: row.get(1)?,
                    locked: row.get(2)?,
                },
            ))
        })?;
        for row in rows {
            let (key, lid) = row?;
            into.insert(key, lid);
        }
    }
    Ok(state)
}

fn write_state(tx: &Transaction, state: &State) -> rusqlite::Result<()> {
    for (name, player) in &state.players {
        register(tx, name, player.origin)?;
        if !player.room.is_empty() {
            player_at(tx, name, &player.room)?;
        }
        scored(tx, name, &player.score)?;
    }
    for (item, place) in &state.items {
        item_at(tx, item, place)?;
    }
    for (door, lid) in &state.doors {
        set_lid(tx, "doors", door, *lid)?;
    }
    for (item, lid) in &state.lids {
        set_lid(tx, "lids", item, *lid)?;
    }
    Ok(())
}

fn origin_word(origin: Origin) -> &'static str {
    match origin {
        Origin::Web => "web",
        Origin::Irc => "irc",
        Origin::Bot => "bot",
    }
}

fn register(tx: &Transaction, name: &str, origin: Origin) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO players (name, origin, room) VALUES (?1, ?2, '')",
        params![name, origin_word(origin)],
    )
    .map(drop)
}

fn player_at(tx: &Transaction, name: &str, room: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE players SET room = ?2 WHERE name = ?1",
        params![name, room],
    )
    .map(drop)
}

fn scored(tx: &Transaction, name: &str, score: &Score) -> rusqlite::Result<()> {
    let earned = serde_json::to_string(&score.earned).unwrap_or_else(|_| "[]".to_string());
    tx.execute(
        "UPDATE players SET points = ?2, earned = ?3, finished = ?4 WHERE name = ?1",
        params![name, score.points, earned, score.finished],
    )
    .map(drop)
}

fn item_at(tx: &Transaction, item: &str, place: &Place) -> rusqlite::Result<()> {
    let (kind, at) = match place {
        Place::Room(key) => ("room", key),
        Place::Player(name) => ("player", name),
        Place::Inside(key) => ("inside", key),
        Place::Npc(key) => ("npc", key),
    };
    tx.execute(
        "INSERT INTO items (key, kind, place) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, place = excluded.place",
        params![item, kind, at],
    )
    .map(drop)
}

fn set_lid(tx: &Transaction, table: &str, key: &str, lid: LidState) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (key, closed, locked) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET closed = excluded.closed, locked = excluded.locked"
        ),
        params![key, lid.closed, lid.locked],
    )
    .map(drop)
}

/// Deletes what the world file no longer has: objects, lids and doors whose keys it does not
/// know; players in rooms it does not know start again at the start.
pub fn forget_unknown(conn: &Connection, atlas: &Atlas) -> rusqlite::Result<()> {
    let known = |keys: Vec<&str>| {
        keys.iter()
            .map(|k| format!("'{}'", k.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let items = known(atlas.items.iter().map(|i| i.key.as_str()).collect());
    let doors = known(atlas.doors.iter().map(|d| d.key.as_str()).collect());
    let rooms = known(atlas.rooms.iter().map(|r| r.key.as_str()).collect());
    conn.execute_batch(&format!(
        "BEGIN;
         DELETE FROM items WHERE key NOT IN ({items});
         DELETE FROM lids WHERE key NOT IN ({items});
         DELETE FROM doors WHERE key NOT IN ({doors});
         UPDATE players SET room = '' WHERE room NOT IN ({rooms});
         COMMIT;"
    ))
}

/// Reads the old journal: the JSON snapshot and the change log after it.
fn load_old(dir: &Path) -> Result<(State, usize), JournalError> {
    let snapshot_path = dir.join(OLD_SNAPSHOT_FILE);
    let mut state = match fs::read(&snapshot_path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes)
            .map_err(|e| JournalError::BadSnapshot(snapshot_path.clone(), e.to_string()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(JournalError::Io(snapshot_path, e)),
    };
    let mut unreadable = 0;
    let log_path = dir.join(OLD_LOG_FILE);
    let file = match File::open(&log_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((state, 0)),
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
                match entry.change {
                    Change::Registered { name, origin } => {
                        state.players.entry(name).or_insert(PlayerState {
                            origin,
                            room: String::new(),
                            score: Score::default(),
                        });
                    }
                    Change::PlayerAt { name, room } => {
                        if let Some(player) = state.players.get_mut(&name) {
                            player.room = room;
                        }
                    }
                    Change::ItemAt { item, place } => {
                        state.items.insert(item, place);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    Ok((state, unreadable))
}

/// Everything the journal starts with.
pub struct JournalSetup {
    pub dir: PathBuf,
    pub conn: Connection,
    pub log: Logger,
    /// Turns door numbers into the keys the database keeps.
    pub atlas: Arc<Atlas>,
    /// The world file, for `@export`.
    pub world: WorldSource,
}

/// Where `@export` writes, in the state directory.
pub const EXPORT_FILE: &str = "export.toml";

pub fn run(setup: JournalSetup, inbox: Receiver<ToJournal>) {
    let mut journal = Journal {
        setup,
        failing: false,
    };
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        batch.extend(inbox.try_iter().take(BATCH));
        if !journal.write(batch) {
            return;
        }
    }
}

struct Journal {
    setup: JournalSetup,
    failing: bool,
}

impl Journal {
    /// The world file with every committed edit, written to `EXPORT_FILE` (a temporary
    /// file renamed over it, so a reader never sees half of it).
    fn export(&self) -> Result<PathBuf, String> {
        let mut atlas = self.setup.world.atlas().map_err(|e| e.to_string())?;
        for edit in read_edits(&self.setup.conn).map_err(|e| e.to_string())? {
            // An edit that no longer fits was reported at start; it is left out here too.
            let _ = atlas.apply(&edit);
        }
        let path = self.setup.dir.join(EXPORT_FILE);
        let temporary = self.setup.dir.join(format!("{EXPORT_FILE}.tmp"));
        fs::write(&temporary, atlas.to_toml()).map_err(|e| e.to_string())?;
        fs::rename(&temporary, &path).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// Writes a batch in one transaction, then answers its barriers. False: stop.
    fn write(&mut self, batch: Vec<ToJournal>) -> bool {
        let mut answers = Vec::new();
        let mut exports = Vec::new();
        let mut synced = Vec::new();
        let mut stop = None;
        let atlas = self.setup.atlas.clone();
        let written = (|| -> rusqlite::Result<()> {
            let tx = self.setup.conn.transaction()?;
            for message in batch {
                match message {
                    ToJournal::Registered { name, origin } => register(&tx, &name, origin)?,
                    ToJournal::PlayerAt { name, room } => player_at(&tx, &name, &room)?,
                    ToJournal::ItemAt { item, place } => item_at(&tx, &item, &place)?,
                    ToJournal::Door { door, lid } => {
                        set_lid(&tx, "doors", &atlas.doors[door].key, lid.into())?
                    }
                    ToJournal::Container { item, lid } => set_lid(&tx, "lids", &item, lid.into())?,
                    ToJournal::Scored { name, score } => scored(&tx, &name, &score)?,
                    ToJournal::Built(edit) => built(&tx, &edit)?,
                    ToJournal::Export { to_user, ticket } => exports.push((to_user, ticket)),
                    ToJournal::Commit { to_user, ticket } => answers.push((to_user, ticket)),
                    ToJournal::Sync { done } => synced.push(done),
                    ToJournal::Stop { done } => stop = Some(done),
                }
            }
            tx.commit()
        })();
        match written {
            Ok(()) => self.failing = false,
            Err(e) => {
                // Reported once until writing works again; players still get their answers,
                // and the log says what was not kept.
                if !self.failing {
                    (self.setup.log)(&format!(
                        "game journal: cannot write to {}: {e}",
                        self.setup.dir.join(DATABASE_FILE).display()
                    ));
                }
                self.failing = true;
            }
        }
        for (to_user, ticket) in exports {
            let text = match self.export() {
                Ok(path) => format!(
                    "The world, with every builder's edit, is written to {}.",
                    path.display()
                ),
                Err(why) => format!("Cannot export the world: {why}"),
            };
            let _ = to_user.send(ToUser::Event(crate::event::Event::Text {
                kind: "happened",
                text,
            }));
            let _ = to_user.send(ToUser::Done(ticket));
        }
        for (to_user, ticket) in answers {
            let _ = to_user.send(ToUser::Committed(ticket));
        }
        for done in synced {
            let _ = done.send(());
        }
        if let Some(done) = stop {
            // Folds the write-ahead log into the database file, so a copy of the file alone
            // is the whole state.
            let _ = self
                .setup
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            let _ = done.send(());
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded, Sender};

    fn atlas() -> Atlas {
        Atlas::built_in().unwrap()
    }

    fn quiet() -> Logger {
        Arc::new(|_: &str| {})
    }

    fn start(dir: &Path) -> (Sender<ToJournal>, std::thread::JoinHandle<()>) {
        let (_, conn, _) = load(dir).unwrap();
        let setup = JournalSetup {
            dir: dir.to_path_buf(),
            conn,
            log: quiet(),
            atlas: Arc::new(atlas()),
            world: WorldSource::built_in(),
        };
        let (to_journal, inbox) = unbounded();
        let thread = std::thread::spawn(move || run(setup, inbox));
        (to_journal, thread)
    }

    fn commit(to_journal: &Sender<ToJournal>) {
        let (to_user, answers) = bounded(1);
        to_journal
            .send(ToJournal::Commit { to_user, ticket: 9 })
            .unwrap();
        assert!(matches!(
            answers.recv_timeout(std::time::Duration::from_secs(5)),
            Ok(ToUser::Committed(9))
        ));
    }

    #[test]
    fn committed_changes_are_in_the_database_before_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (to_journal, journal) = start(dir.path());
        let atlas = atlas();
        to_journal
            .send(ToJournal::Registered {
                name: "alice".into(),
                origin: Origin::Web,
            })
            .unwrap();
        to_journal
            .send(ToJournal::PlayerAt {
                name: "alice".into(),
                room: atlas.rooms[3].key.clone(),
            })
            .unwrap();
        to_journal
            .send(ToJournal::ItemAt {
                item: atlas.items[0].key.clone(),
                place: Place::Player("alice".into()),
            })
            .unwrap();
        to_journal
            .send(ToJournal::Door {
                door: 0,
                lid: Lid {
                    closed: false,
                    locked: false,
                },
            })
            .unwrap();
        commit(&to_journal);
        // Another connection (as sqlite3 would be) sees it all while the journal runs.
        let (state, _, _) = load(dir.path()).unwrap();
        assert_eq!(state.players["alice"].room, atlas.rooms[3].key);
        assert_eq!(
            state.items[atlas.items[0].key.as_str()],
            Place::Player("alice".to_string())
        );
        assert!(!state.doors[atlas.doors[0].key.as_str()].closed);
        drop(to_journal);
        journal.join().unwrap();
    }

    #[test]
    fn an_old_journal_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = r#"{"seq":1,"players":{"bob":{"origin":"irc","room":"hall"}},"items":{}}"#;
        fs::write(dir.path().join(OLD_SNAPSHOT_FILE), snapshot).unwrap();
        let log = "{\"seq\":1,\"change\":\"player_at\",\"name\":\"bob\",\"room\":\"gate\"}\n\
                   {\"seq\":2,\"change\":\"item_at\",\"item\":\"lamp\",\"place\":{\"player\":\"bob\"}}\n\
                   {\"seq\":3,\"chan";
        fs::write(dir.path().join(OLD_LOG_FILE), log).unwrap();
        let (state, _, report) = load(dir.path()).unwrap();
        assert_eq!(
            report,
            LoadReport {
                edits: Vec::new(),
                migrated: Some(1),
                unreadable: 1
            }
        );
        // The stale line (seq 1) was skipped; the later one applied.
        assert_eq!(state.players["bob"].room, "hall");
        assert_eq!(state.players["bob"].origin, Origin::Irc);
        assert_eq!(state.items["lamp"], Place::Player("bob".to_string()));
        assert!(dir.path().join("world.json.migrated").exists());
        assert!(!dir.path().join(OLD_SNAPSHOT_FILE).exists());
        let (again, _, report) = load(dir.path()).unwrap();
        assert_eq!(report.migrated, None);
        assert_eq!(again, state);
    }

    #[test]
    fn a_bad_old_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(OLD_SNAPSHOT_FILE), "{not json").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(JournalError::BadSnapshot(..))
        ));
    }
}
