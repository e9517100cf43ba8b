//! Every message that crosses a channel inside the game: its PROTOCOLs, each named after the
//! inbox that receives it.
//!
//! Objects (`Item`) and users' channel ends (`Occupant`) are not `Clone`: sending one moves
//! it, so the process that holds an object owns it, and the world's state is where its
//! records are (occam's MOBILE data).

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::event::Event;
use crate::world::atlas::{Direction, DoorId, ItemId, ItemPlan, Lid, RoomId};
use crate::world::build::Edit;

/// A player's name as shown to others.
pub type Name = Arc<str>;

/// Numbers a command so its frontend can tell when the world has finished with it.
pub type Ticket = u64;

/// Tags a frontend's outbound messages with the player they are for, so one frontend
/// (IRC, the bots) can serve many players from one inbox.
pub type ClientId = u64;

/// An object of the world. Not `Clone`: there is exactly one of each, and it moves, with
/// whatever it holds.
#[derive(Debug, PartialEq)]
pub struct Item {
    pub id: ItemId,
    pub plan: Arc<ItemPlan>,
    /// A container's lid (open, closed, locked); unused for other objects.
    pub lid: Lid,
    /// What a container holds.
    pub contents: Vec<Item>,
}

impl Item {
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// True if a player's word (`lamp`, `brass`, `brass lamp`) names this object.
    pub fn answers_to(&self, words: &str) -> bool {
        self.plan.answers_to(words)
    }

    /// An open container.
    pub fn is_open(&self) -> bool {
        self.plan.container.is_some() && !self.lid.closed
    }

    /// What `examine` shows: the description, and a container's state and contents.
    pub fn describe(&self) -> String {
        let mut text = self.plan.description.clone();
        if self.plan.container.is_some() {
            if self.lid.closed {
                text.push_str(if self.lid.locked {
                    " It is closed and locked."
                } else {
                    " It is closed."
                });
            } else if self.contents.is_empty() {
                text.push_str(" It is open, and empty.");
            } else {
                let names: Vec<&str> = self.contents.iter().map(Item::name).collect();
                text.push_str(&format!(" It is open. Inside: {}.", names.join(", ")));
            }
        }
        if self.plan.text.is_some() {
            text.push_str(" There is writing on it.");
        }
        text
    }
}

/// Finds the object the words name among `items`, or inside the open containers among them,
/// and takes it out.
pub fn take_from(items: &mut Vec<Item>, words: &str) -> Option<Item> {
    if let Some(at) = items.iter().position(|i| i.answers_to(words)) {
        return Some(items.remove(at));
    }
    items
        .iter_mut()
        .filter(|i| i.is_open())
        .find_map(|container| take_from(&mut container.contents, words))
}

/// Finds the object the words name among `items` or inside their open containers.
pub fn find_in<'a>(items: &'a [Item], words: &str) -> Option<&'a Item> {
    items.iter().find(|i| i.answers_to(words)).or_else(|| {
        items
            .iter()
            .filter(|i| i.is_open())
            .find_map(|c| find_in(&c.contents, words))
    })
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
    /// login (`None`); `lit` when it carries a light. The room answers `Moved`, the room's
    /// view and `Done`.
    Enter {
        user: Occupant,
        from: Option<Direction>,
        lit: bool,
        ticket: Ticket,
    },
    /// Describe the room to this occupant.
    Look {
        name: Name,
        lit: bool,
        ticket: Ticket,
    },
    /// Move this occupant through an exit to the neighbouring room.
    Go {
        name: Name,
        direction: Direction,
        lit: bool,
        ticket: Ticket,
    },
    /// Say something to everyone in the room.
    Say {
        name: Name,
        text: String,
        ticket: Ticket,
    },
    /// Show everyone in the room the occupant doing something (`emote waves`).
    Emote {
        name: Name,
        text: String,
        ticket: Ticket,
    },
    /// Hand the object these words name (on the floor or in an open container) to the
    /// occupant.
    Take {
        name: Name,
        words: String,
        lit: bool,
        ticket: Ticket,
    },
    /// The occupant puts down an object it owned.
    Drop {
        name: Name,
        item: Item,
        ticket: Ticket,
    },
    /// Describe (or read) the object, character or door these words name.
    Examine {
        name: Name,
        words: String,
        read: bool,
        lit: bool,
        ticket: Ticket,
    },
    /// Open, close, lock or unlock a door or container here; `keys` are the objects the
    /// occupant carries.
    Handle {
        name: Name,
        words: String,
        action: LidAction,
        keys: Vec<ItemId>,
        ticket: Ticket,
    },
    /// Put an object the occupant owned into the container these words name; if it cannot
    /// go in, it is handed back.
    Put {
        name: Name,
        item: Item,
        into: String,
        ticket: Ticket,
    },
    /// Give an object the occupant owned to the character or player these words name; if
    /// nobody takes it, it is handed back.
    Give {
        name: Name,
        item: Item,
        to: String,
        ticket: Ticket,
    },
    /// Talk to the character these words name.
    Talk {
        name: Name,
        to: String,
        ticket: Ticket,
    },
    /// The neighbour on the other side of a shared door has opened, closed, locked or
    /// unlocked it.
    DoorChanged { door: DoorId, lid: Lid },
    /// A builder adds an exit (`@dig`, `@link`): refused if the direction is taken, else
    /// kept with the builder's `edit`; the answer goes to `reply`.
    AddExit {
        direction: Direction,
        link: RoomLink,
        edit: Edit,
        reply: Sender<ToUser>,
        ticket: Ticket,
    },
    /// A builder describes this room anew.
    Describe {
        name: Name,
        text: String,
        ticket: Ticket,
    },
    /// A builder destroys the object these words name, here.
    Destroy {
        name: Name,
        words: String,
        ticket: Ticket,
    },
    /// The occupant leaves the world; the room answers `Left` and `Done`.
    Leave { name: Name, ticket: Ticket },
    /// The world is stopping: end the process.
    Stop,
}

/// What a player does to a door or a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LidAction {
    Open,
    Close,
    Lock,
    Unlock,
}

impl LidAction {
    pub fn verb(self) -> &'static str {
        match self {
            LidAction::Open => "open",
            LidAction::Close => "close",
            LidAction::Lock => "lock",
            LidAction::Unlock => "unlock",
        }
    }

    /// The lid after the action, or why it cannot be done. `key` is whether the actor
    /// holds the right key, `lockable` whether there is a lock at all.
    pub fn apply(self, lid: Lid, lockable: bool, key: bool, what: &str) -> Result<Lid, String> {
        match self {
            LidAction::Open if lid.locked => Err(format!("{} is locked.", capital(what))),
            LidAction::Open if !lid.closed => Err(format!("{} is already open.", capital(what))),
            LidAction::Open => Ok(Lid {
                closed: false,
                locked: false,
            }),
            LidAction::Close if lid.closed => Err(format!("{} is already closed.", capital(what))),
            LidAction::Close => Ok(Lid {
                closed: true,
                locked: false,
            }),
            LidAction::Lock | LidAction::Unlock if !lockable => {
                Err(format!("{} has no lock.", capital(what)))
            }
            LidAction::Lock | LidAction::Unlock if !key => {
                Err("You have nothing that fits the lock.".to_string())
            }
            LidAction::Lock if lid.locked => Err(format!("{} is already locked.", capital(what))),
            LidAction::Lock if !lid.closed => Err(format!("Close {what} first.")),
            LidAction::Lock => Ok(Lid {
                closed: true,
                locked: true,
            }),
            LidAction::Unlock if !lid.locked => Err(format!("{} is not locked.", capital(what))),
            LidAction::Unlock => Ok(Lid {
                closed: true,
                locked: false,
            }),
        }
    }
}

/// "the door" -> "The door".
pub fn capital(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "a brass-bound door" -> "the brass-bound door".
pub fn definite(name: &str) -> String {
    for article in ["a ", "an ", "the ", "some "] {
        if let Some(rest) = name.strip_prefix(article) {
            return format!("the {rest}");
        }
    }
    name.to_string()
}

/// A player's progress in the quest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub points: u32,
    /// What earned points already (`take:tag`, `give:porter:tag`), so nothing counts twice.
    pub earned: std::collections::BTreeSet<String>,
    pub finished: bool,
}

/// To a user process, from the rooms and the gate.
pub enum ToUser {
    /// You are now in this room.
    Moved(RoomLink),
    /// This object is yours now.
    Given(Item),
    /// Show this to the player.
    Event(Event),
    /// You earned points for `flag` (once); `finishes` when this ends the quest.
    Scored {
        flag: String,
        points: u32,
        finishes: bool,
    },
    /// The command with this ticket is finished.
    Done(Ticket),
    /// Everything the command with this ticket changed is in the database.
    Committed(Ticket),
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
        score: Score,
    },
    /// A private message from one player to another, on whatever frontend they play.
    Tell {
        from: Name,
        to: String,
        text: String,
        reply: Sender<ToUser>,
        ticket: Ticket,
    },
    /// Show this to every player (a quest's ending).
    Announce { text: String },
    /// A builder digs a new room `key` beyond exit `direction` of room `from`.
    Dig {
        from: RoomId,
        direction: Direction,
        key: String,
        title: String,
        reply: Sender<ToUser>,
        ticket: Ticket,
    },
    /// A builder links exit `direction` of room `from` to the room with key `to`.
    Link {
        from: RoomId,
        direction: Direction,
        to: String,
        reply: Sender<ToUser>,
        ticket: Ticket,
    },
    /// A builder makes object `key` called `name`, in room `room`, into their hands.
    Create {
        builder: Name,
        room: RoomId,
        key: String,
        name: String,
        reply: Sender<ToUser>,
        ticket: Ticket,
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
    /// Inside the container with this key.
    Inside(String),
    /// Held by the character with this key.
    Npc(String),
}

/// To the journal: one change to the world's state, or a control message.
pub enum ToJournal {
    /// A player was created.
    Registered { name: Name, origin: Origin },
    /// A player is now in the room with this key.
    PlayerAt { name: Name, room: String },
    /// The object with this key is now here.
    ItemAt { item: String, place: Place },
    /// A door is now open, closed or locked.
    Door { door: DoorId, lid: Lid },
    /// The container with this key is now open, closed or locked.
    Container { item: String, lid: Lid },
    /// A player's score is now this.
    Scored { name: Name, score: Score },
    /// A builder changed the world; kept in order, applied again at every start.
    Built(Edit),
    /// Write the world file with every edit to the state directory and tell the user
    /// where, then `Done(ticket)`.
    Export {
        to_user: Sender<ToUser>,
        ticket: Ticket,
    },
    /// Answer `Committed(ticket)` once everything sent before this is in the database.
    Commit {
        to_user: Sender<ToUser>,
        ticket: Ticket,
    },
    /// Write everything out now, then answer.
    Sync { done: Sender<()> },
    /// Commit what is waiting, fold the write-ahead log into the database, and end.
    Stop { done: Sender<()> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::atlas::Atlas;

    #[test]
    fn items_answer_to_their_words() {
        let atlas = Atlas::built_in().unwrap();
        let id = atlas.item_by_key("lamp").unwrap();
        let lamp = Item {
            id,
            plan: atlas.items[id].clone(),
            lid: Lid::default(),
            contents: Vec::new(),
        };
        assert!(lamp.answers_to("lamp"));
        assert!(lamp.answers_to("brass lamp"));
        assert!(lamp.answers_to("the lamp"));
        assert!(!lamp.answers_to("the"));
        assert!(!lamp.answers_to("key"));
        assert!(!lamp.answers_to("lamp key"));
    }

    #[test]
    fn lids_open_close_lock_and_unlock() {
        let locked = Lid {
            closed: true,
            locked: true,
        };
        assert_eq!(
            LidAction::Open.apply(locked, true, true, "the door"),
            Err("The door is locked.".to_string())
        );
        let unlocked = LidAction::Unlock
            .apply(locked, true, true, "the door")
            .unwrap();
        assert_eq!(
            LidAction::Unlock.apply(locked, true, false, "the door"),
            Err("You have nothing that fits the lock.".to_string())
        );
        let open = LidAction::Open
            .apply(unlocked, true, false, "the door")
            .unwrap();
        assert!(!open.closed);
        assert!(LidAction::Lock.apply(open, true, true, "the door").is_err());
        assert!(LidAction::Lock
            .apply(locked, false, true, "the box")
            .is_err());
    }
}
