//! The map: every room, exit and object the world starts with. Plain data, no processes.
//!
//! The world is the inside of a web server, as a dungeon: connections come in at the
//! Listening Gate and wander through the farms. Keys (`gate`, `lamp`) are stable: the
//! journal stores them, so renaming a key orphans saved state.

use std::fmt;

/// A compass direction (or up/down) that an exit leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Index of a room in [`ROOMS`].
pub type RoomId = usize;

/// One room of the map.
pub struct RoomPlan {
    pub key: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub exits: &'static [(Direction, &'static str)],
}

/// One object of the map and the room it starts in.
pub struct ItemPlan {
    pub key: &'static str,
    /// With its article: "a brass lamp".
    pub name: &'static str,
    /// Words a player may use for it; the first is the usual one.
    pub words: &'static [&'static str],
    pub starts_in: &'static str,
}

/// Where new players appear.
pub const START_ROOM: &str = "gate";

use Direction::{Down, East, North, South, Up, West};

pub const ROOMS: &[RoomPlan] = &[
    RoomPlan {
        key: "gate",
        title: "The Listening Gate",
        description: "A great arched gate stands open on a socket the size of a cathedral door. Connections \
            drift in from the dark outside, are given a number by a tired acceptor, and are waved north.",
        exits: &[(North, "hall"), (East, "lodge")],
    },
    RoomPlan {
        key: "lodge",
        title: "The Porter's Lodge",
        description: "A cramped lodge where the porter counts every visitor twice and writes the totals on \
            the wall in chalk. A narrow stair climbs to an observatory.",
        exits: &[(West, "gate"), (Up, "observatory")],
    },
    RoomPlan {
        key: "observatory",
        title: "The Stats Observatory",
        description: "Brass telescopes point down at the farms below. Histograms glow on the ceiling, their \
            tails stretching into the ninety-ninth percentile.",
        exits: &[(Down, "lodge")],
    },
    RoomPlan {
        key: "hall",
        title: "Front-End Hall",
        description: "Long desks fill the hall, and at each a worker squints at a request line, parsing it \
            header by header. Idle workers stand along the walls, waiting to be counted.",
        exits: &[(South, "gate"), (North, "crossing"), (West, "pool")],
    },
    RoomPlan {
        key: "pool",
        title: "The Idle Pool",
        description: "A still, dark pool. Keep-alive connections float on it, asleep, each holding nothing \
            but its own file descriptor. A chute high in the wall drips from the recycler.",
        exits: &[(East, "hall"), (Down, "grotto"), (Up, "recycler")],
    },
    RoomPlan {
        key: "grotto",
        title: "The Epoll Grotto",
        description: "Thousands of tiny bells hang from the roof of this grotto, one for every sleeping \
            connection. When one rings, a worker comes running.",
        exits: &[(Up, "pool")],
    },
    RoomPlan {
        key: "crossing",
        title: "Router's Crossing",
        description: "Four roads meet under a signpost. Its arms read /cgi-bin to the west, /ogi to the \
            east, and everything else to the north.",
        exits: &[(South, "hall"), (West, "workshop"), (East, "arch"), (North, "antechamber")],
    },
    RoomPlan {
        key: "workshop",
        title: "The CGI Workshop",
        description: "Forges roar as scripts are forked and executed. Pipes run everywhere: stdin in, \
            stdout out, stderr dribbling into a bucket marked LOG.",
        exits: &[(East, "crossing"), (Down, "cellar")],
    },
    RoomPlan {
        key: "cellar",
        title: "The Zombie Cellar",
        description: "Processes that finished but were never waited for shuffle about in the gloom. A \
            notice on the wall reads: ALL CHILDREN WILL BE REAPED.",
        exits: &[(Up, "workshop")],
    },
    RoomPlan {
        key: "arch",
        title: "The Gateway Arch",
        description: "A stone arch carved with the letters O G I. Beyond it, plug-ins are loaded and \
            unloaded while the server keeps running; the floor hums with dynamic linking.",
        exits: &[(West, "crossing"), (North, "gallery")],
    },
    RoomPlan {
        key: "gallery",
        title: "The Plug-in Gallery",
        description: "Framed shared objects hang on the walls: a hit counter, a finger client, and one \
            labelled CRASH that someone has turned to face the wall. A spiral stair climbs up.",
        exits: &[(South, "arch"), (Up, "tower")],
    },
    RoomPlan {
        key: "tower",
        title: "The Tower of the Game",
        description: "At the top of the tower sits a tiny model of this very dungeon, with tiny players \
            walking through it. One of them, you notice, is looking at a tiny model.",
        exits: &[(Down, "gallery")],
    },
    RoomPlan {
        key: "antechamber",
        title: "The Cache Antechamber",
        description: "Pages queue here to be looked up by their hash. The popular ones are ushered north \
            into the vault; the rest wait their turn for the library to the east.",
        exits: &[(South, "crossing"), (North, "vault"), (East, "library")],
    },
    RoomPlan {
        key: "vault",
        title: "The Hot Vault",
        description: "Warm, bright and crowded: the top half of the pages live here, in memory, ready to be \
            handed out without touching a disk.",
        exits: &[(South, "antechamber")],
    },
    RoomPlan {
        key: "library",
        title: "The Static Library",
        description: "Endless shelves of files. Librarians send them out with sendfile, never once reading \
            them themselves. A door to the north is marked RECYCLER.",
        exits: &[(West, "antechamber"), (North, "recycler")],
    },
    RoomPlan {
        key: "recycler",
        title: "The Recycler",
        description: "Every finished connection ends up here. Some are closed with a sigh; the keep-alive \
            ones slide down a chute to the idle pool. A passage east leads to the archive.",
        exits: &[(South, "library"), (Down, "pool"), (East, "archive")],
    },
    RoomPlan {
        key: "archive",
        title: "The Log Archive",
        description: "Shelves of access logs stretch out of sight, one line per request, in order. A scribe \
            writes without looking up.",
        exits: &[(West, "recycler")],
    },
];

pub const ITEMS: &[ItemPlan] = &[
    ItemPlan {
        key: "lamp",
        name: "a brass lamp",
        words: &["lamp", "brass"],
        starts_in: "gate",
    },
    ItemPlan {
        key: "chalk",
        name: "a stub of chalk",
        words: &["chalk", "stub"],
        starts_in: "lodge",
    },
    ItemPlan {
        key: "lens",
        name: "a cracked lens",
        words: &["lens"],
        starts_in: "observatory",
    },
    ItemPlan {
        key: "scroll",
        name: "a scroll reading GET / HTTP/1.1",
        words: &["scroll"],
        starts_in: "hall",
    },
    ItemPlan {
        key: "key",
        name: "a golden keep-alive key",
        words: &["key", "golden"],
        starts_in: "pool",
    },
    ItemPlan {
        key: "bell",
        name: "a tiny bell",
        words: &["bell"],
        starts_in: "grotto",
    },
    ItemPlan {
        key: "signpost",
        name: "a spare signpost arm",
        words: &["arm", "signpost"],
        starts_in: "crossing",
    },
    ItemPlan {
        key: "pipe",
        name: "a length of pipe",
        words: &["pipe"],
        starts_in: "workshop",
    },
    ItemPlan {
        key: "tag",
        name: "a PID tag",
        words: &["tag", "pid"],
        starts_in: "cellar",
    },
    ItemPlan {
        key: "counter",
        name: "a hit counter",
        words: &["counter"],
        starts_in: "gallery",
    },
    ItemPlan {
        key: "model",
        name: "a tiny model player",
        words: &["model", "player"],
        starts_in: "tower",
    },
    ItemPlan {
        key: "ticket",
        name: "a hash ticket",
        words: &["ticket", "hash"],
        starts_in: "antechamber",
    },
    ItemPlan {
        key: "page",
        name: "a warm cached page",
        words: &["page"],
        starts_in: "vault",
    },
    ItemPlan {
        key: "book",
        name: "a dusty book",
        words: &["book"],
        starts_in: "library",
    },
    ItemPlan {
        key: "cookie",
        name: "a signed cookie",
        words: &["cookie"],
        starts_in: "recycler",
    },
    ItemPlan {
        key: "quill",
        name: "a scribe's quill",
        words: &["quill"],
        starts_in: "archive",
    },
    ItemPlan {
        key: "coil",
        name: "a websocket coil",
        words: &["coil", "websocket"],
        starts_in: "arch",
    },
    ItemPlan {
        key: "channel",
        name: "a mobile channel end",
        words: &["channel", "end"],
        starts_in: "hall",
    },
];

/// Looks a room up by its key.
pub fn room_by_key(key: &str) -> Option<RoomId> {
    ROOMS.iter().position(|room| room.key == key)
}

/// The room new players appear in.
pub fn start_room() -> RoomId {
    room_by_key(START_ROOM).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_and_item_names_a_room() {
        for room in ROOMS {
            for (_, to) in room.exits {
                assert!(
                    room_by_key(to).is_some(),
                    "{} exits to unknown {to}",
                    room.key
                );
            }
        }
        for item in ITEMS {
            assert!(
                room_by_key(item.starts_in).is_some(),
                "{} starts in unknown room",
                item.key
            );
        }
        assert!(ROOMS.len() >= 12);
    }

    #[test]
    fn every_room_is_reachable_from_the_start() {
        let mut seen = vec![false; ROOMS.len()];
        let mut todo = vec![start_room()];
        while let Some(room) = todo.pop() {
            if std::mem::replace(&mut seen[room], true) {
                continue;
            }
            todo.extend(
                ROOMS[room]
                    .exits
                    .iter()
                    .filter_map(|(_, to)| room_by_key(to)),
            );
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn keys_are_unique() {
        let mut keys: Vec<_> = ROOMS.iter().map(|r| r.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ROOMS.len());
        let mut items: Vec<_> = ITEMS.iter().map(|i| i.key).collect();
        items.sort_unstable();
        items.dedup();
        assert_eq!(items.len(), ITEMS.len());
    }
}
