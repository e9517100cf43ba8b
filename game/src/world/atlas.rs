//! The map: every room, exit, door, object, character and the quest the world starts with,
//! read from a world file (TOML; `game/worlds/occwserv.toml` is the built-in one). Plain
//! data, no processes. Loading checks every reference and names the line of each problem.
//!
//! Keys (`gate`, `lamp`) are stable: the saved state stores them, so renaming a key in the
//! file orphans saved state (reported and dropped at the next start).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

/// The world file built into the game, used when `[game] world` is not set.
pub const BUILT_IN: &str = include_str!("../../worlds/occwserv.toml");

/// A compass direction (or up/down) that an exit leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    North,
    South,
    East,
    West,
    Up,
    Down,
}

impl Direction {
    pub const ALL: [Direction; 6] = [
        Direction::North,
        Direction::South,
        Direction::East,
        Direction::West,
        Direction::Up,
        Direction::Down,
    ];

    /// Reads `north`, `n`, `up`, `u`, ...
    pub fn parse(word: &str) -> Option<Direction> {
        match word {
            "n" | "north" => Some(Direction::North),
            "s" | "south" => Some(Direction::South),
            "e" | "east" => Some(Direction::East),
            "w" | "west" => Some(Direction::West),
            "u" | "up" => Some(Direction::Up),
            "d" | "down" => Some(Direction::Down),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::North => "north",
            Direction::South => "south",
            Direction::East => "east",
            Direction::West => "west",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The direction an arrival came from, seen from the room it arrives in.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::North => Direction::South,
            Direction::South => Direction::North,
            Direction::East => Direction::West,
            Direction::West => Direction::East,
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Index of a room in [`Atlas::rooms`].
pub type RoomId = usize;
/// Index of an object in [`Atlas::items`].
pub type ItemId = usize;
/// Index of a door in [`Atlas::doors`].
pub type DoorId = usize;
/// Index of a character in [`Atlas::npcs`].
pub type NpcId = usize;

/// A whole world, loaded and checked.
#[derive(Debug)]
pub struct Atlas {
    pub title: String,
    pub start: RoomId,
    pub rooms: Vec<RoomPlan>,
    pub items: Vec<Arc<ItemPlan>>,
    pub doors: Vec<DoorPlan>,
    pub npcs: Vec<NpcPlan>,
    pub quest: Option<QuestPlan>,
    /// Objects a builder destroyed: not in the world, though their keys stay taken.
    pub destroyed: std::collections::HashSet<ItemId>,
}

/// One room.
#[derive(Debug)]
pub struct RoomPlan {
    pub key: String,
    pub title: Arc<str>,
    pub description: Arc<str>,
    /// Without a light, a player here sees nothing but the way out.
    pub dark: bool,
    pub exits: Vec<ExitPlan>,
}

/// One way out of a room.
#[derive(Debug, Clone, Copy)]
pub struct ExitPlan {
    pub direction: Direction,
    pub to: RoomId,
    pub door: Option<DoorId>,
}

/// Something that opens and shuts: a door on an exit, or the lid of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lid {
    pub closed: bool,
    pub locked: bool,
}

/// A door, on one exit or on both sides of a passage.
#[derive(Debug)]
pub struct DoorPlan {
    pub key: String,
    /// With its article: "a brass-bound door".
    pub name: String,
    pub words: Vec<String>,
    pub description: String,
    /// The object that locks and unlocks it; `None`: it has no lock.
    pub key_item: Option<ItemId>,
    pub starts: Lid,
}

/// One object.
#[derive(Debug, PartialEq)]
pub struct ItemPlan {
    pub key: String,
    /// With its article: "a brass lamp".
    pub name: String,
    /// Words a player may use for it; the first is the usual one.
    pub words: Vec<String>,
    pub description: String,
    /// What `read` shows.
    pub text: Option<String>,
    /// Carried, it lights dark rooms.
    pub light: bool,
    /// Too heavy or fixed in place to take.
    pub fixed: bool,
    /// Points for the first time a player takes it.
    pub points: u32,
    /// A container: how it starts, and what unlocks it.
    pub container: Option<ContainerPlan>,
    pub starts: Start,
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub struct ContainerPlan {
    pub starts: Lid,
    pub key_item: Option<ItemId>,
}

/// Where an object is when the world is new.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Start {
    Room(RoomId),
    Inside(ItemId),
    Npc(NpcId),
}

/// A character who stays in one room and reacts to what players do.
#[derive(Debug)]
pub struct NpcPlan {
    pub key: String,
    /// With its article: "the porter".
    pub name: String,
    pub words: Vec<String>,
    pub room: RoomId,
    pub description: String,
    /// The answer to `talk to`.
    pub talk: String,
    pub reactions: Vec<Reaction>,
}

/// What a character does when given an object.
#[derive(Debug)]
pub struct Reaction {
    pub wants: ItemId,
    pub says: String,
    /// An object the character holds and hands over in return.
    pub gives: Option<ItemId>,
    pub points: u32,
    /// This gift finishes the quest.
    pub finishes: bool,
}

/// The world's goal.
#[derive(Debug)]
pub struct QuestPlan {
    pub title: String,
    /// Shown to every player when someone finishes: `{name}`, `{score}` and `{total}` are
    /// replaced.
    pub ending: String,
    /// The most points a player can earn.
    pub total: u32,
}

impl ItemPlan {
    /// True if a player's words (`lamp`, `brass`, `brass lamp`) name this object.
    pub fn answers_to(&self, words: &str) -> bool {
        answers_to(&self.key, &self.words, words)
    }

    /// The word a player would use for it.
    pub fn word(&self) -> &str {
        self.words.first().map_or(&self.key, String::as_str)
    }
}

impl DoorPlan {
    pub fn answers_to(&self, words: &str) -> bool {
        answers_to(&self.key, &self.words, words)
    }
}

impl NpcPlan {
    pub fn answers_to(&self, words: &str) -> bool {
        answers_to(&self.key, &self.words, words)
    }
}

fn answers_to(key: &str, own: &[String], words: &str) -> bool {
    let known = |word: &str| own.iter().any(|w| w == word);
    words == key
        || words
            .split_whitespace()
            .all(|word| known(word) || word == "a" || word == "the")
            && words.split_whitespace().any(known)
}

impl Atlas {
    /// Looks a room up by its key.
    pub fn room_by_key(&self, key: &str) -> Option<RoomId> {
        self.rooms.iter().position(|room| room.key == key)
    }

    pub fn item_by_key(&self, key: &str) -> Option<ItemId> {
        self.items.iter().position(|item| item.key == key)
    }

    pub fn door_by_key(&self, key: &str) -> Option<DoorId> {
        self.doors.iter().position(|door| door.key == key)
    }

    pub fn npc_by_key(&self, key: &str) -> Option<NpcId> {
        self.npcs.iter().position(|npc| npc.key == key)
    }

    /// The built-in world.
    pub fn built_in() -> Result<Atlas, WorldFileError> {
        Atlas::parse(BUILT_IN, "occwserv.toml (built in)")
    }

    /// Reads a world file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Atlas, WorldFileError> {
        let raw: RawWorld = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| line_of(text, span.start));
            WorldFileError {
                file: file.to_string(),
                line,
                problem: e.message().to_string(),
            }
        })?;
        Checker { text, file }.check(raw)
    }
}

/// A world file that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldFileError {
    pub file: String,
    /// 1-based; 0 when the problem has no single place.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for WorldFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{} line {}: {}", self.file, self.line, self.problem)
        } else {
            write!(f, "{}: {}", self.file, self.problem)
        }
    }
}

impl std::error::Error for WorldFileError {}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

// The file as written; `Spanned` keeps where each reference is, for the error messages.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorld {
    world: RawHeader,
    #[serde(default)]
    rooms: BTreeMap<String, Spanned<RawRoom>>,
    #[serde(default)]
    items: BTreeMap<String, Spanned<RawItem>>,
    #[serde(default)]
    doors: BTreeMap<String, Spanned<RawDoor>>,
    #[serde(default)]
    npcs: BTreeMap<String, Spanned<RawNpc>>,
    quest: Option<RawQuest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    title: String,
    start: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    title: String,
    description: String,
    #[serde(default)]
    dark: bool,
    #[serde(default)]
    exits: BTreeMap<Spanned<String>, Spanned<RawExit>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExit {
    To(String),
    Door { to: String, door: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    name: String,
    words: Vec<String>,
    #[serde(rename = "in")]
    starts_in: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    light: bool,
    #[serde(default)]
    fixed: bool,
    #[serde(default)]
    points: u32,
    #[serde(default)]
    container: bool,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    locked: bool,
    #[serde(default)]
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    name: String,
    words: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    closed: bool,
    #[serde(default)]
    locked: bool,
    #[serde(default)]
    key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNpc {
    name: String,
    words: Vec<String>,
    #[serde(rename = "in")]
    room: Spanned<String>,
    description: String,
    talk: String,
    #[serde(default)]
    reacts: Vec<Spanned<RawReaction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReaction {
    wants: String,
    says: String,
    #[serde(default)]
    gives: Option<String>,
    #[serde(default)]
    points: u32,
    #[serde(default)]
    finishes: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuest {
    title: String,
    ending: String,
}

/// A key of the file and where its table is.
type KeyAt<'a> = (&'a String, std::ops::Range<usize>);

struct Checker<'a> {
    text: &'a str,
    file: &'a str,
}

impl Checker<'_> {
    fn error<T>(&self, at: std::ops::Range<usize>, problem: String) -> Result<T, WorldFileError> {
        Err(WorldFileError {
            file: self.file.to_string(),
            line: line_of(self.text, at.start),
            problem,
        })
    }

    fn check(&self, raw: RawWorld) -> Result<Atlas, WorldFileError> {
        // Every key names one thing, whatever its kind, so `in = "KEY"` is never ambiguous.
        let mut kinds: HashMap<&str, &str> = HashMap::new();
        let tables: [(&str, Vec<KeyAt>); 4] = [
            (
                "room",
                raw.rooms.iter().map(|(k, v)| (k, v.span())).collect(),
            ),
            (
                "object",
                raw.items.iter().map(|(k, v)| (k, v.span())).collect(),
            ),
            (
                "door",
                raw.doors.iter().map(|(k, v)| (k, v.span())).collect(),
            ),
            (
                "character",
                raw.npcs.iter().map(|(k, v)| (k, v.span())).collect(),
            ),
        ];
        for (kind, keys) in &tables {
            for (key, span) in keys {
                if let Some(other) = kinds.insert(key.as_str(), kind) {
                    return self.error(
                        span.clone(),
                        format!("the key '{key}' names both a {other} and a {kind}"),
                    );
                }
            }
        }
        if raw.rooms.is_empty() {
            return self.error(0..0, "the world has no rooms ([rooms.KEY] tables)".into());
        }
        let room_keys: Vec<&String> = raw.rooms.keys().collect();
        let item_keys: Vec<&String> = raw.items.keys().collect();
        let door_keys: Vec<&String> = raw.doors.keys().collect();
        let npc_keys: Vec<&String> = raw.npcs.keys().collect();
        let find = |keys: &[&String], key: &str| keys.iter().position(|k| k.as_str() == key);

        let start = match find(&room_keys, raw.world.start.get_ref()) {
            Some(start) => start,
            None => {
                return self.error(
                    raw.world.start.span(),
                    format!(
                        "the start room '{}' is not a room",
                        raw.world.start.get_ref()
                    ),
                )
            }
        };

        let item_key =
            |span: std::ops::Range<usize>, key: &str, what: &str| match find(&item_keys, key) {
                Some(id) => Ok(id),
                None => self.error(span, format!("{what} '{key}' is not an object")),
            };

        let mut doors = Vec::new();
        for (key, door) in &raw.doors {
            let span = door.span();
            let door = door.get_ref();
            let key_item = match &door.key {
                Some(k) => Some(item_key(
                    k.span(),
                    k.get_ref(),
                    &format!("the key of door '{key}',"),
                )?),
                None => None,
            };
            if door.locked && key_item.is_none() {
                return self.error(
                    span,
                    format!("door '{key}' is locked but has no key = \"OBJECT\" to unlock it"),
                );
            }
            if door.words.is_empty() {
                return self.error(span, format!("door '{key}' has no words"));
            }
            doors.push(DoorPlan {
                key: key.clone(),
                name: door.name.clone(),
                words: lower(&door.words),
                description: door
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("It is {}.", door.name)),
                key_item,
                starts: Lid {
                    closed: door.closed || door.locked,
                    locked: door.locked,
                },
            });
        }
        let mut door_sides = vec![0usize; doors.len()];

        let mut rooms = Vec::new();
        for (key, room) in &raw.rooms {
            let room = room.get_ref();
            let mut exits = Vec::new();
            for (direction, exit) in &room.exits {
                let Some(way) = Direction::parse(direction.get_ref()) else {
                    return self.error(
                        direction.span(),
                        format!(
                            "room '{key}': '{}' is not a direction (north, south, east, west, up, down)",
                            direction.get_ref()
                        ),
                    );
                };
                let (to, door) = match exit.get_ref() {
                    RawExit::To(to) => (to, None),
                    RawExit::Door { to, door } => (to, Some(door)),
                };
                let Some(to_id) = find(&room_keys, to) else {
                    return self.error(
                        exit.span(),
                        format!(
                            "room '{key}': the exit {way} leads to '{to}', which is not a room"
                        ),
                    );
                };
                let door = match door {
                    Some(door) => match find(&door_keys, door) {
                        Some(id) => {
                            door_sides[id] += 1;
                            Some(id)
                        }
                        None => {
                            return self.error(
                                exit.span(),
                                format!("room '{key}': the exit {way} has door '{door}', which is not a door"),
                            )
                        }
                    },
                    None => None,
                };
                exits.push(ExitPlan {
                    direction: way,
                    to: to_id,
                    door,
                });
            }
            // Shown in compass order, whatever the file's order.
            exits.sort_by_key(|exit| exit.direction);
            rooms.push(RoomPlan {
                key: key.clone(),
                title: room.title.as_str().into(),
                description: room.description.as_str().into(),
                dark: room.dark,
                exits,
            });
        }
        for ((key, door), sides) in raw.doors.iter().zip(&door_sides) {
            if *sides == 0 {
                return self.error(
                    door.span(),
                    format!("door '{key}' is on no exit (give an exit door = \"{key}\")"),
                );
            }
        }

        let mut npcs = Vec::new();
        for (key, npc) in &raw.npcs {
            let npc_ref = npc.get_ref();
            let Some(room) = find(&room_keys, npc_ref.room.get_ref()) else {
                return self.error(
                    npc_ref.room.span(),
                    format!(
                        "character '{key}' is in '{}', which is not a room",
                        npc_ref.room.get_ref()
                    ),
                );
            };
            let mut reactions = Vec::new();
            for reaction in &npc_ref.reacts {
                let span = reaction.span();
                let r = reaction.get_ref();
                let wants = item_key(span.clone(), &r.wants, &format!("character '{key}' wants"))?;
                let gives = match &r.gives {
                    Some(g) => Some(item_key(
                        span.clone(),
                        g,
                        &format!("character '{key}' gives"),
                    )?),
                    None => None,
                };
                reactions.push(Reaction {
                    wants,
                    says: r.says.clone(),
                    gives,
                    points: r.points,
                    finishes: r.finishes,
                });
            }
            npcs.push(NpcPlan {
                key: key.clone(),
                name: npc_ref.name.clone(),
                words: lower(&npc_ref.words),
                room,
                description: npc_ref.description.clone(),
                talk: npc_ref.talk.clone(),
                reactions,
            });
        }

        let mut items = Vec::new();
        for (key, item) in &raw.items {
            let span = item.span();
            let item = item.get_ref();
            let place = item.starts_in.get_ref();
            let starts = if let Some(room) = find(&room_keys, place) {
                Start::Room(room)
            } else if let Some(npc) = find(&npc_keys, place) {
                Start::Npc(npc)
            } else if let Some(holder) = find(&item_keys, place) {
                if !raw.items[place].get_ref().container {
                    return self.error(
                        item.starts_in.span(),
                        format!("object '{key}' is in '{place}', which is not a container"),
                    );
                }
                if place == key {
                    return self.error(
                        item.starts_in.span(),
                        format!("object '{key}' is inside itself"),
                    );
                }
                Start::Inside(holder)
            } else {
                return self.error(
                    item.starts_in.span(),
                    format!("object '{key}' is in '{place}', which is not a room, character or container"),
                );
            };
            if item.words.is_empty() {
                return self.error(span, format!("object '{key}' has no words"));
            }
            let key_item = match &item.key {
                Some(k) => Some(item_key(
                    k.span(),
                    k.get_ref(),
                    &format!("the key of object '{key}',"),
                )?),
                None => None,
            };
            let container = if item.container {
                if item.locked && key_item.is_none() {
                    return self.error(
                        span,
                        format!(
                            "object '{key}' is locked but has no key = \"OBJECT\" to unlock it"
                        ),
                    );
                }
                Some(ContainerPlan {
                    starts: Lid {
                        closed: item.closed || item.locked,
                        locked: item.locked,
                    },
                    key_item,
                })
            } else if item.closed || item.locked || key_item.is_some() {
                return self.error(
                    span,
                    format!("object '{key}' has a lock or lid but is not a container (container = true)"),
                );
            } else {
                None
            };
            items.push(Arc::new(ItemPlan {
                key: key.clone(),
                name: item.name.clone(),
                words: lower(&item.words),
                description: item
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("You see nothing special about {}.", item.name)),
                text: item.text.clone(),
                light: item.light,
                fixed: item.fixed,
                points: item.points,
                container,
                starts,
            }));
        }
        // Containers nested in a loop would hold each other forever.
        for (id, _) in items.iter().enumerate() {
            let mut at = id;
            for _ in 0..=items.len() {
                match items[at].starts {
                    Start::Inside(holder) => at = holder,
                    _ => break,
                }
                if at == id {
                    let span = raw.items[item_keys[id]].span();
                    return self.error(
                        span,
                        format!("object '{}' ends up inside itself", item_keys[id]),
                    );
                }
            }
        }
        // A key must lock something; a key that locks nothing is a mistake in the file.
        for (id, item) in items.iter().enumerate() {
            let is_key = item.words.iter().any(|w| w == "key");
            let locks_something = doors.iter().any(|d| d.key_item == Some(id))
                || items
                    .iter()
                    .any(|i| i.container.is_some_and(|c| c.key_item == Some(id)));
            if is_key && !locks_something {
                let span = raw.items[item_keys[id]].span();
                return self.error(
                    span,
                    format!("object '{}' is a key that locks nothing (no door or container has key = \"{}\")", item.key, item.key),
                );
            }
        }

        let quest = raw.quest.map(|q| {
            let total = items.iter().map(|i| i.points).sum::<u32>()
                + npcs
                    .iter()
                    .flat_map(|n| &n.reactions)
                    .map(|r| r.points)
                    .sum::<u32>();
            QuestPlan {
                title: q.title,
                ending: q.ending,
                total,
            }
        });
        Ok(Atlas {
            title: raw.world.title,
            start,
            rooms,
            items,
            doors,
            npcs,
            quest,
            destroyed: Default::default(),
        })
    }
}

fn lower(words: &[String]) -> Vec<String> {
    words.iter().map(|w| w.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built_in() -> Atlas {
        Atlas::built_in().unwrap()
    }

    #[test]
    fn the_built_in_world_loads_and_every_room_is_reachable() {
        let atlas = built_in();
        assert!(atlas.rooms.len() >= 12);
        let mut seen = vec![false; atlas.rooms.len()];
        let mut todo = vec![atlas.start];
        while let Some(room) = todo.pop() {
            if std::mem::replace(&mut seen[room], true) {
                continue;
            }
            todo.extend(atlas.rooms[room].exits.iter().map(|e| e.to));
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(atlas.rooms[atlas.start].key, "gate");
        assert!(atlas.quest.as_ref().is_some_and(|q| q.total > 0));
    }

    fn problem(text: &str) -> WorldFileError {
        Atlas::parse(text, "bad.toml").unwrap_err()
    }

    const HEAD: &str = "[world]\ntitle = \"T\"\nstart = \"a\"\n";

    #[test]
    fn an_unknown_exit_target_is_named_with_its_line() {
        let text = format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\nexits = {{ north = \"nowhere\" }}\n"
        );
        let e = problem(&text);
        assert_eq!(e.line, 7, "{e}");
        assert!(e.problem.contains("'nowhere', which is not a room"), "{e}");
        assert!(e.to_string().starts_with("bad.toml line 7: "), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_refused_by_the_parser_with_its_line() {
        let text = format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\n[rooms.a]\ntitle = \"B\"\n"
        );
        let e = problem(&text);
        assert_eq!(e.line, 7, "{e}");
        assert!(e.problem.contains("duplicate"), "{e}");
    }

    #[test]
    fn a_missing_start_room_and_a_missing_room_for_an_object() {
        let e = problem("[world]\ntitle = \"T\"\nstart = \"hall\"\n[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.problem.contains("start room 'hall'"), "{e}");
        let text = format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\n[items.lamp]\nname = \"a lamp\"\nwords = [\"lamp\"]\nin = \"attic\"\n"
        );
        let e = problem(&text);
        assert_eq!(e.line, 10, "{e}");
        assert!(e.problem.contains("'attic'"), "{e}");
    }

    #[test]
    fn a_key_that_locks_nothing_and_a_lock_without_a_key() {
        let text = format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\n[items.key]\nname = \"a key\"\nwords = [\"key\"]\nin = \"a\"\n"
        );
        let e = problem(&text);
        assert_eq!(e.line, 7, "{e}");
        assert!(e.problem.contains("locks nothing"), "{e}");
        let text = format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\nexits = {{ up = {{ to = \"a\", door = \"hatch\" }} }}\n\
             [doors.hatch]\nname = \"a hatch\"\nwords = [\"hatch\"]\nlocked = true\n"
        );
        let e = problem(&text);
        assert!(e.problem.contains("locked but has no key"), "{e}");
        assert_eq!(e.line, 8, "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_directions_are_refused() {
        let e = problem(&format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\ncolour = \"red\"\n"
        ));
        assert!(e.problem.contains("colour"), "{e}");
        let e = problem(&format!(
            "{HEAD}[rooms.a]\ntitle = \"A\"\ndescription = \"a\"\nexits = {{ sideways = \"a\" }}\n"
        ));
        assert!(e.problem.contains("'sideways' is not a direction"), "{e}");
        assert_eq!(e.line, 7);
    }

    #[test]
    fn the_example_world_loads() {
        let text = include_str!("../../worlds/example.toml");
        let atlas = Atlas::parse(text, "example.toml").unwrap();
        assert!(atlas.quest.is_some());
    }
}
