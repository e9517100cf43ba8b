//! The world's process network (the paper's Figure 7): one process per room, one per user,
//! the gate that feeds users in, and the journal that keeps it all on disk. Every channel
//! and every spawn is in [`World::start`]; the processes are in the files beside this one.
//!
//! ```text
//!  frontends ──Login──▶ gate ──spawn──▶ user ◀──ToUser── room ◀──▶ neighbour rooms
//!      ▲  │                │  ▲           │  ──ToRoom──▶  │
//!      │  └───Command──────┼──┼──────────▶│               │
//!      └──(ClientId, ToFrontend)──────────┘               ▼
//!                          └──────────────────────────▶ journal ──▶ world.json, changes.log
//! ```
//!
//! Objects are records owned by whichever room or user holds them; a user's channel end
//! moves from room to room as it walks. No process holds the whole state: the rooms and
//! users do, and the journal keeps a copy of it for the disk.

pub mod atlas;
pub mod command;
pub mod gate;
pub mod journal;
pub mod room;
pub mod user;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Sender};

use crate::protocol::{
    FrontendEnd, Item, Login, LoginError, LoginMode, Origin, Place, RoomLink, Session, ToGate,
};
use atlas::{room_by_key, start_room, ITEMS, ROOMS};
use gate::{GateSetup, Record};
use journal::{JournalError, JournalSetup};
use room::RoomSetup;

/// Where processes write error lines (the host's log).
pub type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// How long a frontend waits for the gate to answer a login.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the world needs to start.
pub struct WorldSettings {
    pub state_dir: PathBuf,
    /// Changes between snapshots of the state.
    pub snapshot_every: u64,
    pub log: Logger,
}

/// The world could not start.
#[derive(Debug)]
pub enum WorldError {
    Journal(JournalError),
    Spawn(std::io::Error),
}

impl fmt::Display for WorldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorldError::Journal(e) => write!(f, "cannot load the world: {e}"),
            WorldError::Spawn(e) => write!(f, "cannot start the world's processes: {e}"),
        }
    }
}

impl std::error::Error for WorldError {}

/// The running world. Frontends talk to it through `to_gate`; dropping it stops it.
pub struct World {
    pub to_gate: Sender<ToGate>,
    threads: Vec<JoinHandle<()>>,
}

impl World {
    /// Loads the saved state and starts every process.
    pub fn start(settings: WorldSettings) -> Result<World, WorldError> {
        let (state, report) = journal::load(&settings.state_dir).map_err(WorldError::Journal)?;
        if report.unreadable > 0 {
            (settings.log)(&format!(
                "game journal: skipped {} unreadable line(s) of {}",
                report.unreadable,
                settings.state_dir.join(journal::LOG_FILE).display()
            ));
        }

        // Who holds each object, and who stands where.
        let mut records: HashMap<String, Record> = HashMap::new();
        for (name, player) in &state.players {
            let room = room_by_key(&player.room).unwrap_or_else(start_room);
            let record = Record {
                name: name.as_str().into(),
                origin: player.origin,
                room,
                items: Vec::new(),
            };
            records.insert(name.to_lowercase(), record);
        }
        let mut room_items: Vec<Vec<Item>> = ROOMS.iter().map(|_| Vec::new()).collect();
        for (index, plan) in ITEMS.iter().enumerate() {
            let item = Item { index };
            let home = room_by_key(plan.starts_in).unwrap_or_else(start_room);
            match state.items.get(plan.key) {
                Some(Place::Player(name)) => match records.get_mut(&name.to_lowercase()) {
                    Some(record) => record.items.push(item),
                    None => room_items[home].push(item),
                },
                Some(Place::Room(key)) => room_items[room_by_key(key).unwrap_or(home)].push(item),
                None => room_items[home].push(item),
            }
        }

        let (to_journal, journal_inbox) = unbounded();
        let (to_gate, gate_inbox) = unbounded();
        let room_channels: Vec<_> = ROOMS.iter().map(|_| unbounded()).collect();
        let links: Vec<RoomLink> = room_channels
            .iter()
            .enumerate()
            .map(|(id, (to_room, _))| RoomLink {
                id,
                to_room: to_room.clone(),
            })
            .collect();

        let mut threads = Vec::new();
        let spawn = |name: String, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(body)
                .map_err(WorldError::Spawn)
        };
        let journal_setup = JournalSetup {
            dir: settings.state_dir.clone(),
            state,
            snapshot_every: settings.snapshot_every.max(1),
            log: settings.log.clone(),
        };
        threads.push(spawn(
            "game-journal".to_string(),
            Box::new(move || journal::run(journal_setup, journal_inbox)),
        )?);
        for ((id, (_, inbox)), items) in room_channels.into_iter().enumerate().zip(room_items) {
            let plan = &ROOMS[id];
            let exits = plan
                .exits
                .iter()
                .filter_map(|(direction, key)| {
                    room_by_key(key).map(|to| (*direction, links[to].clone()))
                })
                .collect();
            let setup = RoomSetup {
                id,
                plan,
                exits,
                items,
                link: links[id].clone(),
                to_journal: to_journal.clone(),
            };
            threads.push(spawn(
                format!("room:{}", plan.key),
                Box::new(move || room::run(setup, inbox)),
            )?);
        }
        let gate_setup = GateSetup {
            rooms: links,
            records,
            to_journal,
            me: to_gate.clone(),
        };
        threads.push(spawn(
            "game-gate".to_string(),
            Box::new(move || gate::run(gate_setup, gate_inbox)),
        )?);
        Ok(World { to_gate, threads })
    }

    /// A handle frontends use to log players in.
    pub fn gate(&self) -> GateHandle {
        GateHandle {
            to_gate: self.to_gate.clone(),
        }
    }

    /// Displaces every player, writes the final snapshot and ends every process.
    pub fn stop(&mut self) {
        let (done, finished) = bounded(1);
        if self.to_gate.send(ToGate::Stop { done }).is_ok() {
            let _ = finished.recv_timeout(Duration::from_secs(10));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The gate's channel end, as the frontends hold it.
#[derive(Clone)]
pub struct GateHandle {
    pub to_gate: Sender<ToGate>,
}

impl GateHandle {
    /// Logs a player in and waits (bounded) for the gate's answer.
    pub fn login(
        &self,
        name: &str,
        origin: Origin,
        mode: LoginMode,
        frontend: FrontendEnd,
    ) -> Result<Session, LoginError> {
        let (reply, answer) = bounded(1);
        let login = Login {
            name: name.to_string(),
            origin,
            mode,
            frontend,
            reply,
        };
        if self.to_gate.send(ToGate::Login(login)).is_err() {
            return Err(LoginError::Stopping);
        }
        answer
            .recv_timeout(LOGIN_TIMEOUT)
            .unwrap_or(Err(LoginError::Stopping))
    }
}

#[cfg(test)]
mod tests;
