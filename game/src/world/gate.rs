//! Gate process: feeds users into the world and takes them back out (the paper's `start`
//! channel). It keeps the records of players who are not playing (their room and what they
//! carry), starts a user process for each login, and answers `who`.
//!
//! Instances: 1. In: ToGate (from frontends, user processes and the world's owner).
//! Out: ToRoom (`Enter` for each login, `Stop`), ToUser (`Displaced`, `who` answers),
//! ToJournal, login replies. Stops: on `Stop`, after every user has left; it then stops the
//! rooms and the journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::event::Event;
use crate::protocol::{
    Item, Login, LoginError, LoginMode, Name, Occupant, Origin, RoomLink, Score, Session, ToGate,
    ToJournal, ToRoom, ToUser,
};
use crate::world::atlas::{Atlas, Direction, RoomId};
use crate::world::build::{self, key_is_free, valid_key, Edit};
use crate::world::room::{self, Exit, RoomSetup};
use crate::world::user::{self, UserSetup, LOGIN_TICKET};

/// Lines a player may type ahead while the world works on the previous one.
pub const COMMAND_QUEUE: usize = 16;

/// How long `Stop` waits for the users to leave.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Stack for a user process: it only forwards messages, and there may be thousands.
const USER_STACK_BYTES: usize = 128 * 1024;

/// A player who is not playing: where they stand and what they carry.
#[derive(Debug)]
pub struct Record {
    pub name: Name,
    pub origin: Origin,
    pub room: RoomId,
    pub items: Vec<Item>,
    pub score: Score,
}

/// Everything the gate starts with.
pub struct GateSetup {
    pub atlas: Arc<Atlas>,
    /// Who may build, by lower-cased name.
    pub builders: Vec<String>,
    /// The id the next object a builder makes will have.
    pub next_item: usize,
    /// Every room's link, indexed by room id.
    pub rooms: Vec<RoomLink>,
    /// Every player's record, keyed by lower-cased name.
    pub records: HashMap<String, Record>,
    pub to_journal: Sender<ToJournal>,
    /// The gate's own inbox, handed to users for `Logout` and `Who`.
    pub me: Sender<ToGate>,
}

struct Online {
    name: Name,
    origin: Origin,
    to_user: Sender<ToUser>,
}

struct Gate {
    setup: GateSetup,
    /// Every room's key, by id (the atlas's, then those dug since start).
    room_keys: Vec<String>,
    /// Keys taken since start (rooms dug, objects made).
    made: std::collections::HashSet<String>,
    online: HashMap<String, Online>,
    /// Logins waiting for the same player's previous user process to leave.
    waiting: HashMap<String, Login>,
    stopping: bool,
}

/// True for a name a player may have: a letter, then up to 19 letters, digits or
/// `-_[]{}|^` and backquote (IRC nicknames fit).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_is_letter
        && name.len() <= 20
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_[]{}|^`\\".contains(c))
}

pub fn run(setup: GateSetup, inbox: Receiver<ToGate>) {
    let room_keys = setup.atlas.rooms.iter().map(|r| r.key.clone()).collect();
    let mut gate = Gate {
        setup,
        room_keys,
        made: Default::default(),
        online: HashMap::new(),
        waiting: HashMap::new(),
        stopping: false,
    };
    while let Ok(message) = inbox.recv() {
        match message {
            ToGate::Login(login) => gate.login(login),
            ToGate::Logout {
                name,
                room,
                items,
                score,
            } => gate.logout(name, room, items, score),
            ToGate::Tell {
                from,
                to,
                text,
                reply,
                ticket,
            } => gate.tell(&from, &to, &text, &reply, ticket),
            ToGate::Announce { text } => gate.announce(&text),
            ToGate::Dig {
                from,
                direction,
                key,
                title,
                reply,
                ticket,
            } => gate.dig(from, direction, key, title, &reply, ticket),
            ToGate::Link {
                from,
                direction,
                to,
                reply,
                ticket,
            } => gate.link(from, direction, &to, &reply, ticket),
            ToGate::Create {
                builder,
                room,
                key,
                name,
                reply,
                ticket,
            } => gate.create(&builder, room, key, name, &reply, ticket),
            ToGate::Who { to_user, ticket } => gate.who(&to_user, ticket),
            ToGate::Stop { done } => {
                gate.stop(&inbox);
                let _ = done.send(());
                return;
            }
        }
    }
}

impl Gate {
    fn login(&mut self, login: Login) {
        if self.stopping {
            let _ = login.reply.send(Err(LoginError::Stopping));
            return;
        }
        if !valid_name(&login.name) {
            let _ = login.reply.send(Err(LoginError::BadName));
            return;
        }
        let key = login.name.to_lowercase();
        if let Some(online) = self.online.get(&key) {
            if online.origin != login.origin {
                let _ = login
                    .reply
                    .send(Err(LoginError::OtherOrigin(online.origin)));
            } else if login.mode == LoginMode::Register {
                let _ = login.reply.send(Err(LoginError::NameTaken));
            } else {
                // The same player again (a reconnect): the old user process leaves first.
                let _ = online.to_user.send(ToUser::Displaced);
                if let Some(older) = self.waiting.insert(key, login) {
                    let _ = older.reply.send(Err(LoginError::Superseded));
                }
            }
            return;
        }
        let record = match self.setup.records.remove(&key) {
            Some(record) if record.origin != login.origin => {
                let _ = login
                    .reply
                    .send(Err(LoginError::OtherOrigin(record.origin)));
                self.setup.records.insert(key, record);
                return;
            }
            Some(record) if login.mode == LoginMode::Register => {
                let _ = login.reply.send(Err(LoginError::NameTaken));
                self.setup.records.insert(key, record);
                return;
            }
            Some(record) => record,
            None => {
                let name: Name = login.name.as_str().into();
                let origin = login.origin;
                let _ = self.setup.to_journal.send(ToJournal::Registered {
                    name: name.clone(),
                    origin,
                });
                Record {
                    name,
                    origin,
                    room: self.setup.atlas.start,
                    items: Vec::new(),
                    score: Score::default(),
                }
            }
        };
        self.start(key, record, login);
    }

    /// Starts the user process and sends it into its room.
    fn start(&mut self, key: String, record: Record, login: Login) {
        let Record {
            name,
            origin,
            room,
            items,
            score,
        } = record;
        let room = if room < self.setup.rooms.len() {
            room
        } else {
            self.setup.atlas.start
        };
        let lit = items.iter().any(|i| i.plan.light);
        let (to_user, inbox) = unbounded();
        let (commands_tx, commands) = bounded(COMMAND_QUEUE);
        let setup = UserSetup {
            name: name.clone(),
            room,
            items,
            score,
            builder: self.setup.builders.contains(&name.to_lowercase()),
            atlas: self.setup.atlas.clone(),
            to_journal: self.setup.to_journal.clone(),
            commands,
            inbox,
            me: to_user.clone(),
            frontend: login.frontend,
            to_gate: self.setup.me.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("user:{name}"))
            .stack_size(USER_STACK_BYTES)
            .spawn(move || user::run(setup));
        if spawned.is_err() {
            // Out of threads: the record stays with the gate. Its items went with the failed
            // setup, so rebuild nothing here; the journal still holds them for the next start.
            let _ = login.reply.send(Err(LoginError::Stopping));
            return;
        }
        let occupant = Occupant {
            name: name.clone(),
            to_user: to_user.clone(),
        };
        let _ = self.setup.rooms[room].to_room.send(ToRoom::Enter {
            user: occupant,
            from: None,
            lit,
            ticket: LOGIN_TICKET,
        });
        self.online.insert(
            key,
            Online {
                name: name.clone(),
                origin,
                to_user,
            },
        );
        // A frontend that no longer waits drops the session, and the user process leaves.
        let _ = login.reply.send(Ok(Session {
            name,
            commands: commands_tx,
        }));
    }

    fn logout(&mut self, name: Name, room: RoomId, items: Vec<Item>, score: Score) {
        let key = name.to_lowercase();
        let origin = match self.online.remove(&key) {
            Some(online) => online.origin,
            None => return,
        };
        self.setup.records.insert(
            key.clone(),
            Record {
                name,
                origin,
                room,
                items,
                score,
            },
        );
        if let Some(login) = self.waiting.remove(&key) {
            self.login(login);
        }
    }

    /// A private message: to the player on whatever frontend, and an answer to the sender.
    fn tell(&self, from: &Name, to: &str, text: &str, reply: &Sender<ToUser>, ticket: u64) {
        let answer = match self.online.get(&to.to_lowercase()) {
            Some(online) if online.origin != Origin::Bot => {
                let told = Event::Text {
                    kind: "tell",
                    text: format!("{from} tells you: {text}"),
                };
                match online.to_user.send(ToUser::Event(told)) {
                    Ok(()) => Event::Text {
                        kind: "tell",
                        text: format!("You tell {}: {text}", online.name),
                    },
                    Err(_) => Event::Error(format!("{to} has just left.")),
                }
            }
            _ => Event::Error(format!("No one called {to} is playing.")),
        };
        let _ = reply.send(ToUser::Event(answer));
        let _ = reply.send(ToUser::Done(ticket));
    }

    /// Answers a builder's command with one line.
    fn answer(reply: &Sender<ToUser>, event: Event, ticket: u64) {
        let _ = reply.send(ToUser::Event(event));
        let _ = reply.send(ToUser::Done(ticket));
    }

    /// Why a builder may not use `key` for something new, if they may not.
    fn key_refused(&self, key: &str) -> Option<String> {
        if !valid_key(key) {
            Some("A key is 1 to 40 lower-case letters, digits or '-'.".to_string())
        } else if !key_is_free(&self.setup.atlas, key) || self.made.contains(key) {
            Some(format!("The key '{key}' is taken."))
        } else {
            None
        }
    }

    /// `@dig`: starts the new room's process, then asks the builder's room for the exit.
    fn dig(
        &mut self,
        from: RoomId,
        direction: Direction,
        key: String,
        title: String,
        reply: &Sender<ToUser>,
        ticket: u64,
    ) {
        if let Some(why) = self.key_refused(&key) {
            return Gate::answer(reply, Event::Error(why), ticket);
        }
        let (Some(from_link), Some(from_key)) = (
            self.setup.rooms.get(from).cloned(),
            self.room_keys.get(from).cloned(),
        ) else {
            return Gate::answer(reply, Event::Error("You are nowhere.".into()), ticket);
        };
        let id = self.setup.rooms.len();
        let (to_room, inbox) = unbounded();
        let link = RoomLink { id, to_room };
        let plan = build::dug_room(&key, &title, direction.opposite(), from);
        let setup = RoomSetup {
            id,
            key: key.clone(),
            title: plan.title.clone(),
            description: plan.description.clone(),
            dark: false,
            atlas: self.setup.atlas.clone(),
            exits: vec![Exit {
                direction: direction.opposite(),
                link: from_link.clone(),
                door: None,
            }],
            doors: HashMap::new(),
            items: Vec::new(),
            npcs: Vec::new(),
            link: link.clone(),
            to_journal: self.setup.to_journal.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("room:{key}"))
            .spawn(move || room::run(setup, inbox));
        if let Err(e) = spawned {
            let why = format!("The new room cannot start: {e}");
            return Gate::answer(reply, Event::Error(why), ticket);
        }
        self.setup.rooms.push(link.clone());
        self.room_keys.push(key.clone());
        self.made.insert(key.clone());
        let edit = Edit::Dig {
            from: from_key,
            direction: direction.name().to_string(),
            key,
            title,
        };
        let add = ToRoom::AddExit {
            direction,
            link,
            edit,
            reply: reply.clone(),
            ticket,
        };
        if from_link.to_room.send(add).is_err() {
            Gate::answer(reply, Event::Error("The world is stopping.".into()), ticket);
        }
    }

    /// `@link`: asks the builder's room for an exit to an existing room.
    fn link(
        &mut self,
        from: RoomId,
        direction: Direction,
        to: &str,
        reply: &Sender<ToUser>,
        ticket: u64,
    ) {
        let Some(to_id) = self.room_keys.iter().position(|k| k == to) else {
            return Gate::answer(
                reply,
                Event::Error(format!("There is no room '{to}'.")),
                ticket,
            );
        };
        let (Some(from_link), Some(from_key)) = (
            self.setup.rooms.get(from).cloned(),
            self.room_keys.get(from).cloned(),
        ) else {
            return Gate::answer(reply, Event::Error("You are nowhere.".into()), ticket);
        };
        let add = ToRoom::AddExit {
            direction,
            link: self.setup.rooms[to_id].clone(),
            edit: Edit::Link {
                from: from_key,
                direction: direction.name().to_string(),
                to: to.to_string(),
            },
            reply: reply.clone(),
            ticket,
        };
        if from_link.to_room.send(add).is_err() {
            Gate::answer(reply, Event::Error("The world is stopping.".into()), ticket);
        }
    }

    /// `@create`: makes a new object and hands it to the builder.
    fn create(
        &mut self,
        builder: &Name,
        room: RoomId,
        key: String,
        name: String,
        reply: &Sender<ToUser>,
        ticket: u64,
    ) {
        if let Some(why) = self.key_refused(&key) {
            return Gate::answer(reply, Event::Error(why), ticket);
        }
        let Some(room_key) = self.room_keys.get(room).cloned() else {
            return Gate::answer(reply, Event::Error("You are nowhere.".into()), ticket);
        };
        let id = self.setup.next_item;
        self.setup.next_item += 1;
        self.made.insert(key.clone());
        let plan = Arc::new(build::made_item(&key, &name, room));
        let _ = self.setup.to_journal.send(ToJournal::Built(Edit::Create {
            key: key.clone(),
            name: name.clone(),
            room: room_key,
        }));
        let _ = self.setup.to_journal.send(ToJournal::ItemAt {
            item: key,
            place: crate::protocol::Place::Player(builder.to_string()),
        });
        let _ = reply.send(ToUser::Event(Event::Text {
            kind: "happened",
            text: format!("You make {name}."),
        }));
        let _ = reply.send(ToUser::Given(Item {
            id,
            plan,
            lid: Default::default(),
            contents: Vec::new(),
        }));
        let _ = reply.send(ToUser::Done(ticket));
    }

    /// Shows a line to every player in the world.
    fn announce(&self, text: &str) {
        for online in self.online.values() {
            let _ = online.to_user.send(ToUser::Event(Event::Text {
                kind: "announce",
                text: text.to_string(),
            }));
        }
    }

    fn who(&self, to_user: &Sender<ToUser>, ticket: u64) {
        let mut people: Vec<Name> = self
            .online
            .values()
            .filter(|o| o.origin != Origin::Bot)
            .map(|o| o.name.clone())
            .collect();
        people.sort_unstable_by_key(|name| name.to_lowercase());
        let bots = self
            .online
            .values()
            .filter(|o| o.origin == Origin::Bot)
            .count();
        let _ = to_user.send(ToUser::Event(Event::Who { people, bots }));
        let _ = to_user.send(ToUser::Done(ticket));
    }

    /// Displaces every user, waits (bounded) for them to hand their records back, then stops
    /// the rooms and the journal, which commits what is left and folds its log in.
    fn stop(&mut self, inbox: &Receiver<ToGate>) {
        self.stopping = true;
        for online in self.online.values() {
            let _ = online.to_user.send(ToUser::Displaced);
        }
        for (_, login) in self.waiting.drain() {
            let _ = login.reply.send(Err(LoginError::Stopping));
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.online.is_empty() {
            match inbox.recv_deadline(deadline) {
                Ok(ToGate::Logout {
                    name,
                    room,
                    items,
                    score,
                }) => self.logout(name, room, items, score),
                Ok(ToGate::Tell { reply, ticket, .. }) => {
                    let _ = reply.send(ToUser::Done(ticket));
                }
                Ok(ToGate::Announce { .. }) => {}
                Ok(
                    ToGate::Dig { reply, ticket, .. }
                    | ToGate::Link { reply, ticket, .. }
                    | ToGate::Create { reply, ticket, .. },
                ) => {
                    let _ = reply.send(ToUser::Done(ticket));
                }
                Ok(ToGate::Login(login)) => {
                    let _ = login.reply.send(Err(LoginError::Stopping));
                }
                Ok(ToGate::Who { to_user, ticket }) => self.who(&to_user, ticket),
                Ok(ToGate::Stop { done }) => {
                    let _ = done.send(());
                }
                Err(_) => break,
            }
        }
        for room in &self.setup.rooms {
            let _ = room.to_room.send(ToRoom::Stop);
        }
        let (done, finished) = bounded(1);
        if self.setup.to_journal.send(ToJournal::Stop { done }).is_ok() {
            let _ = finished.recv_timeout(STOP_GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("Bob_the-2nd"));
        assert!(valid_name("nick[away]"));
        assert!(!valid_name(""));
        assert!(!valid_name("2fast"));
        assert!(!valid_name("has space"));
        assert!(!valid_name("<script>"));
        assert!(!valid_name(&"a".repeat(21)));
    }
}
