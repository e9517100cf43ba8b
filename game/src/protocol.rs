//! Every message that crosses a channel inside the game: its PROTOCOLs, each named after the
//! inbox that receives it.
//!
//! Objects (`Item`) and users' channel ends (`Occupant`) are not `Clone`: sending one moves
//! it, so the process that holds an object owns it, and the world's state is where its
//! records are (occam's MOBILE data).

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::event::Event;
use crate::world::atlas::{Direction, ItemPlan, RoomId, ITEMS};

/// A player's name as shown to others.
pub type Name = Arc<str>;

/// Numbers a command so its frontend can tell when the world has finished with it.
pub type Ticket = u64;

/// Tags a frontend's outbound messages with the player they are for, so one frontend
/// (IRC, the bots) can serve many players from one inbox.
pub type ClientId = u64;

/// An object of the world. Not `Clone`: there is exactly one of each, and it moves.
#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    /// Index into [`ITEMS`].
    pub index: usize,
}

impl Item {
    pub fn plan(&self) -> &'static ItemPlan {
        &ITEMS[self.index]
    }

    pub fn name(&self) -> &'static str {
        self.plan().name
    }

    /// True if a player's word (`lamp`, `brass`, `brass lamp`) names this object.
    pub fn answers_to(&self, words: &str) -> bool {
        let plan = self.plan();
        words == plan.key
            || words
                .split_whitespace()
                .all(|word| plan.words.contains(&word) || word == "a" || word == "the")
                && words
                    .split_whitespace()
                    .any(|word| plan.words.contains(&word))
    }
}

/// A user's channel end, moving from room to room with the user. Not `Clone`.
#[derive(Debug)]
pub struct Occupant {
    pub name: Name,
    pub to_user: Sender<ToUser>,
}

/// A room's channel end, held by its neighbours and its occupants.
#[derive(Debug, Clone)]
pub struct RoomLink {
    pub id: RoomId,
    pub to_room: Sender<ToRoom>,
}

/// To a room process.
pub enum ToRoom {
    /// A user arrives, through the exit `from` of this room, or appearing from nowhere at
    /// login (`None`). The room answers `Moved`, the room's view and `Done`.
    Enter {
        user: Occupant,
        from: Option<Direction>,
        ticket: Ticket,
    },
    /// Describe the room to this occupant.
    Look { name: Name, ticket: Ticket },
    /// Move this occupant through an exit to the neighbouring room.
    Go {
        name: Name,
        direction: Direction,
        ticket: Ticket,
    },
    /// Say something to everyone in the room.
    Say {
        name: Name,
        text: String,
        ticket: Ticket,
    },
    /// Hand the object these words name to the occupant.
    Take {
        name: Name,
        words: String,
        ticket: Ticket,
    },
    /// The occupant puts down an object it owned.
    Drop {
        name: Name,
        item: Item,
        ticket: Ticket,
    },
    /// The occupant leaves the world; the room answers `Left` and `Done`.
    Leave { name: Name, ticket: Ticket },
    /// The world is stopping: end the process.
    Stop,
}

/// To a user process, from the rooms and the gate.
pub enum ToUser {
    /// You are now in this room.
    Moved(RoomLink),
    /// This object is yours now.
    Given(Item),
    /// Show this to the player.
    Event(Event),
    /// The command with this ticket is finished.
    Done(Ticket),
    /// The room has let you go; you are in no room now.
    Left,
    /// Someone logged in as you elsewhere, or the world is stopping: leave.
    Displaced,
}

/// To a user process, from the frontend that plays it: one line the player typed.
pub struct Command {
    pub line: String,
    pub ticket: Ticket,
}

/// To a frontend, from one of its players' user processes (tagged with a `ClientId`).
#[derive(Debug, Clone, PartialEq)]
pub enum ToFrontend {
    /// Show this to the player.
    Event(Event),
    /// The command with this ticket is finished.
    Done(Ticket),
    /// The player has left the world (quit, displaced, or stopping); no more messages follow.
    Ended,
}

/// Where a frontend wants its players' messages: `(client, message)` pairs on one channel.
#[derive(Clone)]
pub struct FrontendEnd {
    pub client: ClientId,
    pub to_frontend: Sender<(ClientId, ToFrontend)>,
}

/// Which frontend created a player; a name belongs to one kind of player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Web,
    Irc,
    Bot,
}

/// How a login treats a name that has no player yet, or has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMode {
    /// A new player: refused if the name exists.
    Register,
    /// An existing player, created if the name is free.
    Resume,
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Registration of a name that already has a player.
    NameTaken,
    /// The name belongs to a player of another frontend.
    OtherOrigin(Origin),
    /// Not a usable name (letters, digits and `-_` only, up to 20).
    BadName,
    /// A later login for the same name came before this one could proceed.
    Superseded,
    /// The world is stopping.
    Stopping,
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::NameTaken => f.write_str("that name is taken"),
            LoginError::OtherOrigin(origin) => {
                write!(f, "that name belongs to a {origin:?} player")
            }
            LoginError::BadName => f.write_str(
                "a name is 1 to 20 letters, digits or -_[]{}|^` and starts with a letter",
            ),
            LoginError::Superseded => f.write_str("a newer login for this name came first"),
            LoginError::Stopping => f.write_str("the world is stopping"),
        }
    }
}

/// A logged-in player, as its frontend holds it. Dropping `commands` makes the player quit.
pub struct Session {
    pub name: Name,
    pub commands: Sender<Command>,
}

/// A frontend asks the gate to bring a player into the world.
pub struct Login {
    pub name: String,
    pub origin: Origin,
    pub mode: LoginMode,
    pub frontend: FrontendEnd,
    pub reply: Sender<Result<Session, LoginError>>,
}

/// To the gate, the process that feeds users into the world (the paper's `start` channel).
pub enum ToGate {
    /// Bring a player into the world.
    Login(Login),
    /// A user process has ended; its record returns to the gate.
    Logout {
        name: Name,
        room: RoomId,
        items: Vec<Item>,
    },
    /// Tell this user who is playing.
    Who {
        to_user: Sender<ToUser>,
        ticket: Ticket,
    },
    /// Displace every user, wait for them, stop the rooms and the journal, and end.
    Stop { done: Sender<()> },
}

/// Where an object is, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// Lying in the room with this key.
    Room(String),
    /// Held by the player with this name.
    Player(String),
}

/// To the journal: one change to the world's state, or a control message.
pub enum ToJournal {
    /// A player was created.
    Registered { name: Name, origin: Origin },
    /// A player is now in this room.
    PlayerAt { name: Name, room: RoomId },
    /// An object now lies in this room.
    ItemInRoom { item: usize, room: RoomId },
    /// An object is now held by this player.
    ItemHeld { item: usize, name: Name },
    /// Write everything out now, then answer.
    Sync { done: Sender<()> },
    /// Write a final snapshot and end.
    Stop { done: Sender<()> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::atlas::ITEMS;

    fn item(key: &str) -> Item {
        Item {
            index: ITEMS.iter().position(|i| i.key == key).unwrap(),
        }
    }

    #[test]
    fn items_answer_to_their_words() {
        let lamp = item("lamp");
        assert!(lamp.answers_to("lamp"));
        assert!(lamp.answers_to("brass lamp"));
        assert!(lamp.answers_to("the lamp"));
        assert!(!lamp.answers_to("the"));
        assert!(!lamp.answers_to("key"));
        assert!(!lamp.answers_to("lamp key"));
    }
}
