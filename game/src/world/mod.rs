//! The world's process network (the paper's Figure 7): one process per room, one per user,
//! the gate that feeds users in, and the journal that keeps it all on disk. Every channel
//! and every spawn is in [`World::start`]; the processes are in the files beside this one.
//!
//! ```text
//!  frontends ──Login──▶ gate ──spawn──▶ user ◀──ToUser── room ◀──▶ neighbour rooms
//!      ▲  │                │  ▲           │  ──ToRoom──▶  │
//!      │  └───Command──────┼──┼──────────▶│               │
//!      └──(ClientId, ToFrontend)──────────┘               ▼
//!                          └──────────────────────────▶ journal ──▶ world.sqlite
//! ```
//!
//! Objects are records owned by whichever room or user holds them; a user's channel end
//! moves from room to room as it walks. No process holds the whole state: the rooms and
//! users do, and the journal keeps a copy of it for the disk.

pub mod atlas;
pub mod build;
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
    FrontendEnd, Item, Login, LoginError, LoginMode, Name, Origin, Place, RoomLink, Session,
    ToGate, ToUser,
};
use atlas::{Atlas, ItemId, Lid, NpcId, RoomId, Start};
use gate::{GateSetup, Record};
use journal::{JournalError, JournalSetup, State};
use room::{Exit, Npc, RoomSetup};

/// Where processes write error lines (the host's log).
pub type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// How long a frontend waits for the gate to answer a login.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A world file's text and the name errors give it.
#[derive(Clone)]
pub struct WorldSource {
    pub text: Arc<str>,
    pub name: String,
}

impl WorldSource {
    /// The built-in world, `game/worlds/occwserv.toml`.
    pub fn built_in() -> WorldSource {
        WorldSource {
            text: atlas::BUILT_IN.into(),
            name: "occwserv.toml (built in)".to_string(),
        }
    }

    /// Reads a world file.
    pub fn read(path: &std::path::Path) -> Result<WorldSource, atlas::WorldFileError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(WorldSource {
                text: text.into(),
                name,
            }),
            Err(e) => Err(atlas::WorldFileError {
                file: name,
                line: 0,
                problem: format!("cannot read it: {e}"),
            }),
        }
    }

    /// The world as the file has it, without the builders' edits.
    pub fn atlas(&self) -> Result<Atlas, atlas::WorldFileError> {
        Atlas::parse(&self.text, &self.name)
    }
}

/// What the world needs to start.
pub struct WorldSettings {
    /// The world file.
    pub world: WorldSource,
    /// Players who may use the builders' commands (`@dig`, ...), by name.
    pub builders: Vec<String>,
    pub state_dir: PathBuf,
    pub log: Logger,
}

/// The world could not start.
#[derive(Debug)]
pub enum WorldError {
    WorldFile(atlas::WorldFileError),
    Journal(JournalError),
    Spawn(std::io::Error),
}

impl fmt::Display for WorldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorldError::WorldFile(e) => write!(f, "the world file is refused: {e}"),
            WorldError::Journal(e) => write!(f, "cannot load the world: {e}"),
            WorldError::Spawn(e) => write!(f, "cannot start the world's processes: {e}"),
        }
    }
}

impl std::error::Error for WorldError {}

/// The running world. Frontends talk to it through `to_gate`; dropping it stops it.
pub struct World {
    pub to_gate: Sender<ToGate>,
    /// The world's title, from its file.
    pub title: String,
    threads: Vec<JoinHandle<()>>,
}

impl World {
    /// Loads the saved state and starts every process.
    pub fn start(settings: WorldSettings) -> Result<World, WorldError> {
        let mut atlas = settings.world.atlas().map_err(WorldError::WorldFile)?;
        let (state, conn, report) =
            journal::load(&settings.state_dir).map_err(WorldError::Journal)?;
        // The builders' edits, in the order they were made.
        for edit in &report.edits {
            if let Err(why) = atlas.apply(edit) {
                (settings.log)(&format!(
                    "game: a builder's edit no longer fits the world file and is skipped ({why}): {edit:?}"
                ));
            }
        }
        let atlas = Arc::new(atlas);
        if let Some(players) = report.migrated {
            (settings.log)(&format!(
                "game journal: migrated the old journal in {} ({players} player(s), {} unreadable line(s) skipped) to {}",
                settings.state_dir.display(),
                report.unreadable,
                journal::DATABASE_FILE
            ));
        }

        let placed = place_everything(&atlas, &state, &settings.log);
        // What the world file no longer has leaves the database.
        if let Err(e) = journal::forget_unknown(&conn, &atlas) {
            (settings.log)(&format!(
                "game journal: cannot drop what the world lost: {e}"
            ));
        }
        let mut records = placed.records;
        let mut room_items = placed.room_items;
        let mut npc_items = placed.npc_items;

        let (to_journal, journal_inbox) = unbounded();
        let (to_gate, gate_inbox) = unbounded();
        let room_channels: Vec<_> = atlas.rooms.iter().map(|_| unbounded()).collect();
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
            conn,
            log: settings.log.clone(),
            atlas: atlas.clone(),
            world: settings.world.clone(),
        };
        threads.push(spawn(
            "game-journal".to_string(),
            Box::new(move || journal::run(journal_setup, journal_inbox)),
        )?);
        for (id, (_, inbox)) in room_channels.into_iter().enumerate() {
            let plan = &atlas.rooms[id];
            let exits: Vec<Exit> = plan
                .exits
                .iter()
                .map(|exit| Exit {
                    direction: exit.direction,
                    link: links[exit.to].clone(),
                    door: exit.door,
                })
                .collect();
            let doors = exits
                .iter()
                .filter_map(|e| e.door)
                .map(|door| (door, placed.doors[door]))
                .collect();
            let npcs = atlas
                .npcs
                .iter()
                .enumerate()
                .filter(|(_, npc)| npc.room == id)
                .map(|(npc, _)| Npc {
                    id: npc,
                    holding: std::mem::take(&mut npc_items[npc]),
                })
                .collect();
            let setup = RoomSetup {
                id,
                key: plan.key.clone(),
                title: plan.title.clone(),
                description: plan.description.clone(),
                dark: plan.dark,
                atlas: atlas.clone(),
                exits,
                doors,
                items: std::mem::take(&mut room_items[id]),
                npcs,
                link: links[id].clone(),
                to_journal: to_journal.clone(),
            };
            threads.push(spawn(
                format!("room:{}", plan.key),
                Box::new(move || room::run(setup, inbox)),
            )?);
        }
        let gate_setup = GateSetup {
            builders: settings
                .builders
                .iter()
                .map(|name| name.to_lowercase())
                .collect(),
            next_item: atlas.items.len(),
            atlas: atlas.clone(),
            rooms: links,
            records: std::mem::take(&mut records),
            to_journal,
            me: to_gate.clone(),
        };
        threads.push(spawn(
            "game-gate".to_string(),
            Box::new(move || gate::run(gate_setup, gate_inbox)),
        )?);
        Ok(World {
            to_gate,
            title: atlas.title.clone(),
            threads,
        })
    }

    /// A handle frontends use to log players in.
    pub fn gate(&self) -> GateHandle {
        GateHandle {
            to_gate: self.to_gate.clone(),
        }
    }

    /// Displaces every player, lets the journal commit the last changes, and ends every process.
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

/// Where everything is at start: the saved state laid over the atlas.
struct Placed {
    records: HashMap<String, Record>,
    room_items: Vec<Vec<Item>>,
    npc_items: Vec<Vec<Item>>,
    doors: Vec<Lid>,
}

/// Where an object is, resolved against the atlas.
#[derive(Clone, Copy, PartialEq)]
enum Spot {
    Room(RoomId),
    Player(usize),
    Inside(ItemId),
    Npc(NpcId),
}

/// Lays the saved state over the atlas. Whatever the state names that the world file no
/// longer has (a removed room, object or door) is reported and dropped: players in a
/// removed room start again at the start, and objects go back where the atlas puts them.
fn place_everything(atlas: &Arc<Atlas>, state: &State, log: &Logger) -> Placed {
    let mut dropped = Vec::new();
    let players: Vec<(&String, &journal::PlayerState)> = state.players.iter().collect();
    let mut rooms_of = Vec::new();
    for (name, player) in &players {
        let room = match atlas.room_by_key(&player.room) {
            Some(room) => room,
            None => {
                if !player.room.is_empty() {
                    dropped.push(format!(
                        "room '{}' (player {name} starts again at the start)",
                        player.room
                    ));
                }
                atlas.start
            }
        };
        rooms_of.push(room);
    }
    for key in state.items.keys() {
        if atlas.item_by_key(key).is_none() {
            dropped.push(format!("object '{key}'"));
        }
    }
    for key in state.doors.keys() {
        if atlas.door_by_key(key).is_none() {
            dropped.push(format!("door '{key}'"));
        }
    }
    let home = |plan: &atlas::ItemPlan| match plan.starts {
        Start::Room(room) => Spot::Room(room),
        Start::Inside(holder) => Spot::Inside(holder),
        Start::Npc(npc) => Spot::Npc(npc),
    };
    let mut spots: Vec<Spot> = atlas
        .items
        .iter()
        .map(|plan| {
            let saved = match state.items.get(&plan.key) {
                None => return home(plan),
                Some(saved) => saved,
            };
            let spot = match saved {
                Place::Room(key) => atlas.room_by_key(key).map(Spot::Room),
                Place::Player(name) => players
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(Spot::Player),
                Place::Inside(key) => atlas
                    .item_by_key(key)
                    .filter(|c| atlas.items[*c].container.is_some())
                    .map(Spot::Inside),
                Place::Npc(key) => atlas.npc_by_key(key).map(Spot::Npc),
            };
            spot.unwrap_or_else(|| {
                dropped.push(format!("the place of object '{}' ({saved:?})", plan.key));
                home(plan)
            })
        })
        .collect();
    // A saved state from another world file could nest containers in a loop: break it.
    for id in 0..spots.len() {
        let mut at = id;
        for _ in 0..=spots.len() {
            match spots[at] {
                Spot::Inside(holder) if holder == id => {
                    spots[id] = Spot::Room(atlas.start);
                    break;
                }
                Spot::Inside(holder) => at = holder,
                _ => break,
            }
        }
    }
    if !dropped.is_empty() {
        log(&format!(
            "game: the saved state names what the world file no longer has; dropped: {}",
            dropped.join(", ")
        ));
    }
    fn build(id: ItemId, atlas: &Atlas, spots: &[Spot], lids: &BTreeLids) -> Item {
        let plan = atlas.items[id].clone();
        let lid = lids
            .get(&plan.key)
            .map(|l| Lid::from(*l))
            .or(plan.container.map(|c| c.starts))
            .unwrap_or_default();
        let contents = (0..spots.len())
            .filter(|child| spots[*child] == Spot::Inside(id) && !atlas.destroyed.contains(child))
            .map(|child| build(child, atlas, spots, lids))
            .collect();
        Item {
            id,
            plan,
            lid,
            contents,
        }
    }
    let mut room_items: Vec<Vec<Item>> = atlas.rooms.iter().map(|_| Vec::new()).collect();
    let mut npc_items: Vec<Vec<Item>> = atlas.npcs.iter().map(|_| Vec::new()).collect();
    let mut player_items: Vec<Vec<Item>> = players.iter().map(|_| Vec::new()).collect();
    for (id, spot) in spots.iter().enumerate() {
        if atlas.destroyed.contains(&id) {
            continue;
        }
        let item = || build(id, atlas, &spots, &state.lids);
        match *spot {
            Spot::Room(room) => room_items[room].push(item()),
            Spot::Npc(npc) => npc_items[npc].push(item()),
            Spot::Player(player) => player_items[player].push(item()),
            Spot::Inside(_) => {}
        }
    }
    let records = players
        .iter()
        .zip(rooms_of)
        .zip(player_items)
        .map(|(((name, player), room), items)| {
            let record = Record {
                name: name.as_str().into(),
                origin: player.origin,
                room,
                items,
                score: player.score.clone(),
            };
            (name.to_lowercase(), record)
        })
        .collect();
    let doors = atlas
        .doors
        .iter()
        .map(|door| {
            state
                .doors
                .get(&door.key)
                .map_or(door.starts, |l| Lid::from(*l))
        })
        .collect();
    Placed {
        records,
        room_items,
        npc_items,
        doors,
    }
}

type BTreeLids = std::collections::BTreeMap<String, journal::LidState>;

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

    /// Who is playing: people by name, and the number of bots; `None` if the gate does not
    /// answer in time.
    pub fn who(&self) -> Option<(Vec<Name>, usize)> {
        let (to_user, answer) = unbounded();
        self.to_gate.send(ToGate::Who { to_user, ticket: 0 }).ok()?;
        match answer.recv_timeout(LOGIN_TIMEOUT).ok()? {
            ToUser::Event(crate::event::Event::Who { people, bots }) => Some((people, bots)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
