//! Builders' edits to the world, as data: applied to an atlas at start (they are kept in the
//! database, in order), and a whole atlas written back out as a world file (`@export`).
//! Pure code, no processes.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::world::atlas::{Atlas, Direction, ExitPlan, ItemPlan, RoomPlan, Start};

/// A room's description until a builder writes one.
pub const NEW_ROOM: &str = "A bare room, freshly dug. A builder has yet to describe it.";

/// One change a builder made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// A new room `key` beyond the exit `direction` of room `from`, with the way back.
    Dig {
        from: String,
        direction: String,
        key: String,
        title: String,
    },
    /// Room `room` has a new description.
    Describe { room: String, text: String },
    /// A new object `key`, made in room `room` (and handed to its maker).
    Create {
        key: String,
        name: String,
        room: String,
    },
    /// A new one-way exit from room `from` to room `to`.
    Link {
        from: String,
        direction: String,
        to: String,
    },
    /// Object `item` is gone from the world.
    Destroy { item: String },
}

/// True when `key` names nothing in the atlas yet.
pub fn key_is_free(atlas: &Atlas, key: &str) -> bool {
    atlas.room_by_key(key).is_none()
        && atlas.item_by_key(key).is_none()
        && atlas.door_by_key(key).is_none()
        && atlas.npc_by_key(key).is_none()
}

/// A key a builder may give: lower-case letters, digits and `-`, 1 to 40 characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The object a builder makes: its words are its key and the last word of its name.
pub fn made_item(key: &str, name: &str, room: usize) -> ItemPlan {
    let mut words = vec![key.to_string()];
    if let Some(last) = name.split_whitespace().last() {
        let last = last.to_lowercase();
        if last != key {
            words.push(last);
        }
    }
    ItemPlan {
        key: key.to_string(),
        name: name.to_string(),
        words,
        description: format!("You see nothing special about {name}."),
        text: None,
        light: false,
        fixed: false,
        points: 0,
        container: None,
        starts: Start::Room(room),
    }
}

/// A room a builder digs, with its way back.
pub fn dug_room(key: &str, title: &str, back: Direction, from: usize) -> RoomPlan {
    RoomPlan {
        key: key.to_string(),
        title: title.into(),
        description: NEW_ROOM.into(),
        dark: false,
        exits: vec![ExitPlan {
            direction: back,
            to: from,
            door: None,
        }],
    }
}

impl Atlas {
    /// Applies one edit; the error says why it no longer fits (the world file changed).
    pub fn apply(&mut self, edit: &Edit) -> Result<(), String> {
        let room = |atlas: &Atlas, key: &str| {
            atlas
                .room_by_key(key)
                .ok_or_else(|| format!("there is no room '{key}'"))
        };
        let direction = |word: &str| {
            Direction::parse(word).ok_or_else(|| format!("'{word}' is not a direction"))
        };
        match edit {
            Edit::Dig {
                from,
                direction: way,
                key,
                title,
            } => {
                let from = room(self, from)?;
                let way = direction(way)?;
                if !key_is_free(self, key) {
                    return Err(format!("the key '{key}' is taken"));
                }
                if self.rooms[from].exits.iter().any(|e| e.direction == way) {
                    return Err(format!(
                        "room '{}' already has an exit {way}",
                        self.rooms[from].key
                    ));
                }
                let id = self.rooms.len();
                self.rooms.push(dug_room(key, title, way.opposite(), from));
                self.rooms[from].exits.push(ExitPlan {
                    direction: way,
                    to: id,
                    door: None,
                });
                self.rooms[from].exits.sort_by_key(|e| e.direction);
            }
            Edit::Describe { room: key, text } => {
                let id = room(self, key)?;
                self.rooms[id].description = text.as_str().into();
            }
            Edit::Create {
                key,
                name,
                room: key_of_room,
            } => {
                let id = room(self, key_of_room)?;
                if !key_is_free(self, key) {
                    return Err(format!("the key '{key}' is taken"));
                }
                self.items.push(Arc::new(made_item(key, name, id)));
            }
            Edit::Link {
                from,
                direction: way,
                to,
            } => {
                let from = room(self, from)?;
                let to = room(self, to)?;
                let way = direction(way)?;
                if self.rooms[from].exits.iter().any(|e| e.direction == way) {
                    return Err(format!(
                        "room '{}' already has an exit {way}",
                        self.rooms[from].key
                    ));
                }
                self.rooms[from].exits.push(ExitPlan {
                    direction: way,
                    to,
                    door: None,
                });
                self.rooms[from].exits.sort_by_key(|e| e.direction);
            }
            Edit::Destroy { item } => {
                let id = self
                    .item_by_key(item)
                    .ok_or_else(|| format!("there is no object '{item}'"))?;
                self.destroyed.insert(id);
            }
        }
        Ok(())
    }

    /// The whole world as a world file, edits included.
    pub fn to_toml(&self) -> String {
        let q = |text: &str| toml::Value::String(text.to_string()).to_string();
        let list = |words: &[String]| {
            let quoted: Vec<String> = words.iter().map(|w| q(w)).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out =
            String::from("# Exported by @export: the world file with the builders' edits.\n\n");
        let _ = writeln!(
            out,
            "[world]\ntitle = {}\nstart = {}\n",
            q(&self.title),
            q(&self.rooms[self.start].key)
        );
        if let Some(quest) = &self.quest {
            let _ = writeln!(
                out,
                "[quest]\ntitle = {}\nending = {}\n",
                q(&quest.title),
                q(&quest.ending)
            );
        }
        for room in &self.rooms {
            let _ = writeln!(out, "[rooms.{}]", q(&room.key));
            let _ = writeln!(
                out,
                "title = {}\ndescription = {}",
                q(&room.title),
                q(&room.description)
            );
            if room.dark {
                out.push_str("dark = true\n");
            }
            let exits: Vec<String> = room
                .exits
                .iter()
                .map(|exit| {
                    let to = q(&self.rooms[exit.to].key);
                    match exit.door {
                        Some(door) => format!(
                            "{} = {{ to = {to}, door = {} }}",
                            exit.direction,
                            q(&self.doors[door].key)
                        ),
                        None => format!("{} = {to}", exit.direction),
                    }
                })
                .collect();
            let _ = writeln!(out, "exits = {{ {} }}\n", exits.join(", "));
        }
        let key_of = |id: usize| q(&self.items[id].key);
        for door in &self.doors {
            let _ = writeln!(
                out,
                "[doors.{}]\nname = {}\nwords = {}\ndescription = {}",
                q(&door.key),
                q(&door.name),
                list(&door.words),
                q(&door.description)
            );
            let _ = writeln!(
                out,
                "closed = {}\nlocked = {}",
                door.starts.closed, door.starts.locked
            );
            if let Some(key) = door.key_item {
                let _ = writeln!(out, "key = {}", key_of(key));
            }
            out.push('\n');
        }
        for (id, item) in self.items.iter().enumerate() {
            if self.destroyed.contains(&id) {
                continue;
            }
            let place = match item.starts {
                Start::Room(room) => &self.rooms[room].key,
                Start::Inside(holder) => &self.items[holder].key,
                Start::Npc(npc) => &self.npcs[npc].key,
            };
            let _ = writeln!(
                out,
                "[items.{}]\nname = {}\nwords = {}\nin = {}\ndescription = {}",
                q(&item.key),
                q(&item.name),
                list(&item.words),
                q(place),
                q(&item.description)
            );
            if let Some(text) = &item.text {
                let _ = writeln!(out, "text = {}", q(text));
            }
            for (flag, on) in [("light", item.light), ("fixed", item.fixed)] {
                if on {
                    let _ = writeln!(out, "{flag} = true");
                }
            }
            if item.points > 0 {
                let _ = writeln!(out, "points = {}", item.points);
            }
            if let Some(container) = item.container {
                let _ = writeln!(
                    out,
                    "container = true\nclosed = {}\nlocked = {}",
                    container.starts.closed, container.starts.locked
                );
                if let Some(key) = container.key_item {
                    let _ = writeln!(out, "key = {}", key_of(key));
                }
            }
            out.push('\n');
        }
        for npc in &self.npcs {
            let _ = writeln!(
                out,
                "[npcs.{}]\nname = {}\nwords = {}\nin = {}\ndescription = {}\ntalk = {}\n",
                q(&npc.key),
                q(&npc.name),
                list(&npc.words),
                q(&self.rooms[npc.room].key),
                q(&npc.description),
                q(&npc.talk)
            );
            for reaction in &npc.reactions {
                let _ = writeln!(
                    out,
                    "[[npcs.{}.reacts]]\nwants = {}\nsays = {}\npoints = {}\nfinishes = {}",
                    q(&npc.key),
                    key_of(reaction.wants),
                    q(&reaction.says),
                    reaction.points,
                    reaction.finishes
                );
                if let Some(gives) = reaction.gives {
                    let _ = writeln!(out, "gives = {}", key_of(gives));
                }
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_and_the_export_reads_back_as_the_same_world() {
        let mut atlas = Atlas::built_in().unwrap();
        let edits = [
            Edit::Dig {
                from: "tower".into(),
                direction: "up".into(),
                key: "roof".into(),
                title: "The Roof".into(),
            },
            Edit::Describe {
                room: "roof".into(),
                text: "Wind, and the whole server below.".into(),
            },
            Edit::Create {
                key: "flag".into(),
                name: "a small flag".into(),
                room: "roof".into(),
            },
            Edit::Link {
                from: "roof".into(),
                direction: "north".into(),
                to: "gate".into(),
            },
            Edit::Destroy {
                item: "bell".into(),
            },
        ];
        for edit in &edits {
            atlas.apply(edit).unwrap();
        }
        assert!(atlas
            .apply(&Edit::Dig {
                from: "tower".into(),
                direction: "down".into(),
                key: "cellar2".into(),
                title: "x".into()
            })
            .unwrap_err()
            .contains("already has an exit down"));
        assert!(atlas.apply(&edits[0]).unwrap_err().contains("taken"));
        let text = atlas.to_toml();
        let again = Atlas::parse(&text, "export.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let roof = again.room_by_key("roof").unwrap();
        assert_eq!(
            &*again.rooms[roof].description,
            "Wind, and the whole server below."
        );
        assert_eq!(again.rooms[roof].exits.len(), 2);
        assert!(again.item_by_key("flag").is_some());
        assert!(again.item_by_key("bell").is_none());
        assert_eq!(again.rooms.len(), atlas.rooms.len());
        assert_eq!(again.quest.map(|q| q.total), atlas.quest.map(|q| q.total));
    }
}
