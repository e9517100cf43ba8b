//! User process: one per player in the world (person or bot). It owns what the player
//! carries and the link to the room it stands in, turns typed lines into messages to that
//! room or to the gate, and passes what it is shown to its frontend.
//!
//! Instances: one per logged-in player, started by the gate. In: Command (from its frontend),
//! ToUser (from rooms and the gate). Out: ToRoom, ToGate, and `(ClientId, ToFrontend)` to its
//! frontend with `try_send`, so a slow frontend loses events instead of stalling the world.
//! Stops: after leaving its room (quit, displaced, or its frontend hung up), handing its
//! record back to the gate with `Logout`.
//!
//! One command at a time: until the world answers `Done` for the last one, the next waits in
//! the frontend's bounded queue (a guarded ALT), as a person waits to see where they went.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, Receiver, Sender, TrySendError};

use crate::event::Event;
use crate::protocol::{
    capital, definite, find_in, take_from, Command, FrontendEnd, Item, LidAction, Name, Place,
    RoomLink, Score, Ticket, ToFrontend, ToGate, ToJournal, ToRoom, ToUser,
};
use crate::world::atlas::{Atlas, RoomId};
use crate::world::build::Edit;
use crate::world::command::{parse, Build, Verb};

/// The ticket of the `Enter` that brings a user into the world at login.
pub const LOGIN_TICKET: Ticket = 0;

/// How long the world may take to answer one command before the user stops waiting for it.
/// Rooms always answer; this only guards against a room that has stopped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a user process starts with.
pub struct UserSetup {
    pub name: Name,
    /// The room of its record, where the gate has sent it to enter.
    pub room: RoomId,
    pub items: Vec<Item>,
    pub score: Score,
    /// May use the builders' commands.
    pub builder: bool,
    pub atlas: Arc<Atlas>,
    pub to_journal: Sender<ToJournal>,
    pub commands: Receiver<Command>,
    pub inbox: Receiver<ToUser>,
    /// Its own inbox's sending end, handed to the gate for `Who` answers.
    pub me: Sender<ToUser>,
    pub frontend: FrontendEnd,
    pub to_gate: Sender<ToGate>,
}

struct User {
    name: Name,
    room: Option<RoomLink>,
    last_room: RoomId,
    items: Vec<Item>,
    score: Score,
    builder: bool,
    atlas: Arc<Atlas>,
    to_journal: Sender<ToJournal>,
    me: Sender<ToUser>,
    frontend: FrontendEnd,
    to_gate: Sender<ToGate>,
    /// The command the world is working on, and since when.
    pending: Option<(Ticket, Instant)>,
    /// The quit's ticket, once the user has decided to leave.
    leaving: Option<Ticket>,
    leave_sent: bool,
    finished: bool,
}

pub fn run(setup: UserSetup) {
    let UserSetup {
        name,
        room,
        items,
        score,
        builder,
        atlas,
        to_journal,
        commands,
        inbox,
        me,
        frontend,
        to_gate,
    } = setup;
    let mut user = User {
        name,
        room: None,
        last_room: room,
        items,
        score,
        builder,
        atlas,
        to_journal,
        me,
        frontend,
        to_gate,
        pending: Some((LOGIN_TICKET, Instant::now())),
        leaving: None,
        leave_sent: false,
        finished: false,
    };
    let no_commands = never();
    while !user.finished {
        let accepting = user.pending.is_none() && user.leaving.is_none();
        let commands = if accepting { &commands } else { &no_commands };
        let wait = match user.pending {
            Some((_, since)) => ANSWER_TIMEOUT.saturating_sub(since.elapsed()),
            None => Duration::from_secs(3600),
        };
        select! {
            recv(inbox) -> message => match message {
                Ok(message) => user.on_world(message),
                Err(_) => break,
            },
            recv(commands) -> command => match command {
                Ok(command) => user.command(command),
                Err(_) => user.quit(None),
            },
            default(wait) => {
                if user.pending.is_some_and(|(_, since)| since.elapsed() >= ANSWER_TIMEOUT) {
                    user.pending = None;
                    if user.leaving.is_some() && user.room.is_none() {
                        user.finished = true;
                    }
                }
            }
        }
    }
    user.show_message(ToFrontend::Ended);
    let items = std::mem::take(&mut user.items);
    let _ = user.to_gate.send(ToGate::Logout {
        name: user.name.clone(),
        room: user.last_room,
        items,
        score: std::mem::take(&mut user.score),
    });
}

impl User {
    /// Passes a message to the frontend; a frontend that has gone makes the user leave.
    fn show_message(&mut self, message: ToFrontend) {
        match self
            .frontend
            .to_frontend
            .try_send((self.frontend.client, message))
        {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.quit(None),
        }
    }

    fn show(&mut self, event: Event) {
        self.show_message(ToFrontend::Event(event));
    }

    fn finish_command(&mut self, event: Event, ticket: Ticket) {
        self.show(event);
        self.commit_then_done(ticket);
    }

    /// The world has finished a command: once the journal has committed everything sent
    /// before now (the command's changes), the player is told it is done.
    fn commit_then_done(&mut self, ticket: Ticket) {
        let commit = ToJournal::Commit {
            to_user: self.me.clone(),
            ticket,
        };
        if self.to_journal.send(commit).is_err() {
            // The journal has stopped with the world: there is nothing left to wait for.
            self.done(ticket);
        }
    }

    fn done(&mut self, ticket: Ticket) {
        if self.pending.is_some_and(|(waiting, _)| waiting == ticket) {
            self.pending = None;
        }
        self.show_message(ToFrontend::Done(ticket));
    }

    /// Sends a command on to the room; if the room has stopped (the world is stopping), the
    /// command is answered here.
    fn send_to_room(&mut self, message: ToRoom, ticket: Ticket) {
        let sent = match &self.room {
            Some(room) => room.to_room.send(message).is_ok(),
            None => false,
        };
        if !sent {
            self.room = None;
            self.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
        }
    }

    fn on_world(&mut self, message: ToUser) {
        match message {
            ToUser::Moved(room) => {
                self.last_room = room.id;
                self.room = Some(room);
                if self.leaving.is_some() && !self.leave_sent {
                    self.send_leave();
                }
            }
            ToUser::Given(item) => {
                if item.plan.points > 0 {
                    let flag = format!("take:{}", item.plan.key);
                    self.award(flag, item.plan.points, false);
                }
                self.items.push(item);
            }
            ToUser::Scored {
                flag,
                points,
                finishes,
            } => self.award(flag, points, finishes),
            ToUser::Event(event) => self.show(event),
            ToUser::Done(ticket) => self.commit_then_done(ticket),
            ToUser::Committed(ticket) => self.done(ticket),
            ToUser::Left => {
                self.room = None;
                self.show(Event::Goodbye);
                if let Some(ticket) = self.leaving.filter(|t| *t != LOGIN_TICKET) {
                    self.show_message(ToFrontend::Done(ticket));
                }
                self.finished = true;
            }
            ToUser::Displaced => {
                self.show(Event::Error(
                    "You have been logged in from elsewhere, or the world is stopping.".into(),
                ));
                self.quit(None);
            }
        }
    }

    /// Starts leaving: the room lets the user go and answers `Left`.
    fn quit(&mut self, ticket: Option<Ticket>) {
        if self.leaving.is_some() {
            return;
        }
        self.leaving = Some(ticket.unwrap_or(LOGIN_TICKET));
        if self.room.is_some() {
            self.send_leave();
        } else if self.pending.is_none() {
            // Not in a room and not on the way into one: nothing to leave.
            self.finished = true;
        }
    }

    fn send_leave(&mut self) {
        self.leave_sent = true;
        let ticket = self.leaving.unwrap_or(LOGIN_TICKET);
        let name = self.name.clone();
        let sent = match &self.room {
            Some(room) => room.to_room.send(ToRoom::Leave { name, ticket }).is_ok(),
            None => false,
        };
        if !sent {
            self.room = None;
            self.finished = true;
        }
    }

    /// Carries a light.
    fn lit(&self) -> bool {
        self.items.iter().any(|i| i.plan.light)
    }

    /// Counts points for `flag` once, and announces the quest's end to everyone.
    fn award(&mut self, flag: String, points: u32, finishes: bool) {
        let total = self.atlas.quest.as_ref().map_or(0, |q| q.total);
        let mut changed = false;
        if points > 0 && self.score.earned.insert(flag) {
            self.score.points += points;
            changed = true;
            let text = format!(
                "You earn {points} points. Your score is {} of {total}.",
                self.score.points
            );
            self.show(Event::Text {
                kind: "score",
                text,
            });
        }
        if finishes && !self.score.finished {
            self.score.finished = true;
            changed = true;
            if let Some(quest) = &self.atlas.quest {
                let text = quest
                    .ending
                    .replace("{name}", &self.name)
                    .replace("{score}", &self.score.points.to_string())
                    .replace("{total}", &total.to_string());
                let _ = self.to_gate.send(ToGate::Announce { text });
            }
        }
        if changed {
            let _ = self.to_journal.send(ToJournal::Scored {
                name: self.name.clone(),
                score: self.score.clone(),
            });
        }
    }

    fn command(&mut self, command: Command) {
        let Command { line, ticket } = command;
        self.pending = Some((ticket, Instant::now()));
        let name = self.name.clone();
        let lit = self.lit();
        match parse(&line) {
            Verb::Look => self.send_to_room(ToRoom::Look { name, lit, ticket }, ticket),
            Verb::Go(direction) => self.send_to_room(
                ToRoom::Go {
                    name,
                    direction,
                    lit,
                    ticket,
                },
                ticket,
            ),
            Verb::Say(text) => self.send_to_room(ToRoom::Say { name, text, ticket }, ticket),
            Verb::Emote(text) => self.send_to_room(ToRoom::Emote { name, text, ticket }, ticket),
            Verb::Take(words) => match words.split_once(" from ") {
                Some((what, from)) => self.take_from_held(what.trim(), from.trim(), ticket),
                None => self.send_to_room(
                    ToRoom::Take {
                        name,
                        words,
                        lit,
                        ticket,
                    },
                    ticket,
                ),
            },
            Verb::Drop(words) => self.drop_items(&words, ticket),
            Verb::Examine(words, read) => match find_in(&self.items, &words) {
                Some(item) => {
                    let text = if read {
                        match &item.plan.text {
                            Some(text) => {
                                format!("{} reads:\n{text}", capital(&definite(item.name())))
                            }
                            None => {
                                format!("There is nothing written on {}.", definite(item.name()))
                            }
                        }
                    } else {
                        item.describe()
                    };
                    self.finish_command(
                        Event::Text {
                            kind: "examine",
                            text,
                        },
                        ticket,
                    );
                }
                None => self.send_to_room(
                    ToRoom::Examine {
                        name,
                        words,
                        read,
                        lit,
                        ticket,
                    },
                    ticket,
                ),
            },
            Verb::Lid(action, words) => {
                let keys: Vec<usize> = self.items.iter().map(|i| i.id).collect();
                match self.items.iter().position(|i| i.answers_to(&words)) {
                    Some(at) => self.handle_held(at, action, &keys, ticket),
                    None => self.send_to_room(
                        ToRoom::Handle {
                            name,
                            words,
                            action,
                            keys,
                            ticket,
                        },
                        ticket,
                    ),
                }
            }
            Verb::Put(what, into) => self.put(&what, &into, ticket),
            Verb::Give(what, to) => match self.items.iter().position(|i| i.answers_to(&what)) {
                Some(at) => {
                    let item = self.items.remove(at);
                    self.send_item_to_room(
                        ToRoom::Give {
                            name,
                            item,
                            to,
                            ticket,
                        },
                        ticket,
                    );
                }
                None => self.finish_command(Event::Error(format!("You have no {what}.")), ticket),
            },
            Verb::Talk(to) => self.send_to_room(ToRoom::Talk { name, to, ticket }, ticket),
            Verb::Tell(to, text) => {
                let reply = self.me.clone();
                let tell = ToGate::Tell {
                    from: name,
                    to,
                    text,
                    reply,
                    ticket,
                };
                if self.to_gate.send(tell).is_err() {
                    self.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
                }
            }
            Verb::Score => {
                let total = self.atlas.quest.as_ref().map_or(0, |q| q.total);
                let title = self.atlas.quest.as_ref().map_or("", |q| q.title.as_str());
                let text = if self.score.finished {
                    format!(
                        "You finished {title} with {} of {total} points.",
                        self.score.points
                    )
                } else {
                    format!("Your score is {} of {total} points.", self.score.points)
                };
                self.finish_command(
                    Event::Text {
                        kind: "score",
                        text,
                    },
                    ticket,
                );
            }
            Verb::Build(_) if !self.builder => self.finish_command(
                Event::Error(
                    "Only builders can do that ([game] builders in the server's config)."
                        .to_string(),
                ),
                ticket,
            ),
            Verb::Build(build) => self.build(build, ticket),
            Verb::Inventory => {
                let items = self.items.iter().map(|i| i.plan.clone()).collect();
                self.finish_command(Event::Inventory { items }, ticket);
            }
            Verb::Who => {
                let to_user = self.me.clone();
                if self.to_gate.send(ToGate::Who { to_user, ticket }).is_err() {
                    self.pending = None;
                }
            }
            Verb::Help => self.finish_command(Event::Help, ticket),
            Verb::Quit => {
                self.pending = None;
                self.quit(Some(ticket));
            }
            Verb::Nothing => {
                self.pending = None;
                self.show_message(ToFrontend::Done(ticket));
            }
            Verb::Refused(why) => self.finish_command(Event::Error(why), ticket),
        }
    }

    /// A builder's command: to the room, the gate or the journal, which answer it.
    fn build(&mut self, build: Build, ticket: Ticket) {
        let name = self.name.clone();
        let reply = self.me.clone();
        let from = self.last_room;
        let to_gate = |user: &mut User, message: ToGate| {
            if user.to_gate.send(message).is_err() {
                user.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
            }
        };
        match build {
            Build::Dig(direction, key, title) => to_gate(
                self,
                ToGate::Dig {
                    from,
                    direction,
                    key,
                    title,
                    reply,
                    ticket,
                },
            ),
            Build::Link(direction, to) => to_gate(
                self,
                ToGate::Link {
                    from,
                    direction,
                    to,
                    reply,
                    ticket,
                },
            ),
            Build::Create(key, item_name) => to_gate(
                self,
                ToGate::Create {
                    builder: name,
                    room: from,
                    key,
                    name: item_name,
                    reply,
                    ticket,
                },
            ),
            Build::Describe(text) => {
                self.send_to_room(ToRoom::Describe { name, text, ticket }, ticket)
            }
            Build::Destroy(words) => match self.items.iter().position(|i| i.answers_to(&words)) {
                Some(at) => {
                    let item = self.items.remove(at);
                    let _ = self.to_journal.send(ToJournal::Built(Edit::Destroy {
                        item: item.plan.key.clone(),
                    }));
                    let text = format!("{} is gone.", capital(&definite(item.name())));
                    self.finish_command(
                        Event::Text {
                            kind: "happened",
                            text,
                        },
                        ticket,
                    );
                }
                None => self.send_to_room(
                    ToRoom::Destroy {
                        name,
                        words,
                        ticket,
                    },
                    ticket,
                ),
            },
            Build::Export => {
                let export = ToJournal::Export {
                    to_user: reply,
                    ticket,
                };
                if self.to_journal.send(export).is_err() {
                    self.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
                }
            }
        }
    }

    /// Sends a message that carries one of this user's objects; if the room has stopped,
    /// the object comes back.
    fn send_item_to_room(&mut self, message: ToRoom, ticket: Ticket) {
        let undelivered = match &self.room {
            Some(room) => room.to_room.send(message).err().map(|e| e.into_inner()),
            None => Some(message),
        };
        if let Some(ToRoom::Give { item, .. } | ToRoom::Put { item, .. }) = undelivered {
            self.items.push(item);
            self.room = None;
            self.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
        }
    }

    /// Opens, closes, locks or unlocks a container this user carries.
    fn handle_held(&mut self, at: usize, action: LidAction, keys: &[usize], ticket: Ticket) {
        let item = &self.items[at];
        let what = definite(item.name());
        let Some(container) = item.plan.container else {
            let why = format!("You cannot {} {what}.", action.verb());
            return self.finish_command(Event::Error(why), ticket);
        };
        let key = container.key_item.is_some_and(|k| keys.contains(&k));
        match action.apply(item.lid, container.key_item.is_some(), key, &what) {
            Ok(lid) => {
                let item = item.plan.key.clone();
                self.items[at].lid = lid;
                let _ = self.to_journal.send(ToJournal::Container { item, lid });
                let text = format!("You {} {what}.", action.verb());
                self.finish_command(
                    Event::Text {
                        kind: "happened",
                        text,
                    },
                    ticket,
                );
            }
            Err(why) => self.finish_command(Event::Error(why), ticket),
        }
    }

    /// `put X in Y`: into a container carried, or one in the room.
    fn put(&mut self, what: &str, into: &str, ticket: Ticket) {
        let Some(at) = self.items.iter().position(|i| i.answers_to(what)) else {
            return self.finish_command(Event::Error(format!("You have no {what}.")), ticket);
        };
        let held = self
            .items
            .iter()
            .position(|i| i.answers_to(into) && !i.answers_to(what));
        let item = self.items.remove(at);
        let Some(container_at) = held.map(|c| if c > at { c - 1 } else { c }) else {
            let name = self.name.clone();
            let into = into.to_string();
            return self.send_item_to_room(
                ToRoom::Put {
                    name,
                    item,
                    into,
                    ticket,
                },
                ticket,
            );
        };
        let container = &self.items[container_at];
        let where_ = definite(container.name());
        let why = if container.plan.container.is_none() {
            Some(format!("You can't put things in {where_}."))
        } else if container.lid.closed {
            Some(format!("{} is closed.", capital(&where_)))
        } else {
            None
        };
        if let Some(why) = why {
            self.items.insert(at.min(self.items.len()), item);
            return self.finish_command(Event::Error(why), ticket);
        }
        let _ = self.to_journal.send(ToJournal::ItemAt {
            item: item.plan.key.clone(),
            place: Place::Inside(container.plan.key.clone()),
        });
        let text = format!("You put {} in {where_}.", definite(item.name()));
        self.items[container_at].contents.push(item);
        self.finish_command(
            Event::Text {
                kind: "happened",
                text,
            },
            ticket,
        );
    }

    /// `take X from Y` where Y is a container this user carries; otherwise the room's.
    fn take_from_held(&mut self, what: &str, from: &str, ticket: Ticket) {
        let Some(at) = self.items.iter().position(|i| i.answers_to(from)) else {
            let name = self.name.clone();
            let lit = self.lit();
            let words = what.to_string();
            return self.send_to_room(
                ToRoom::Take {
                    name,
                    words,
                    lit,
                    ticket,
                },
                ticket,
            );
        };
        let container = &mut self.items[at];
        if !container.is_open() {
            let why = format!("{} is not open.", capital(&definite(container.name())));
            return self.finish_command(Event::Error(why), ticket);
        }
        match take_from(&mut container.contents, what) {
            Some(item) => {
                let _ = self.to_journal.send(ToJournal::ItemAt {
                    item: item.plan.key.clone(),
                    place: Place::Player(self.name.to_string()),
                });
                let plan = item.plan.clone();
                self.items.push(item);
                self.finish_command(Event::YouTook { item: plan }, ticket);
            }
            None => {
                let why = format!("There is no {what} in {}.", definite(self.items[at].name()));
                self.finish_command(Event::Error(why), ticket);
            }
        }
    }

    fn drop_items(&mut self, words: &str, ticket: Ticket) {
        let chosen: Vec<Item> = if words == "all" || words == "everything" {
            std::mem::take(&mut self.items)
        } else {
            match self.items.iter().position(|i| i.answers_to(words)) {
                Some(at) => vec![self.items.remove(at)],
                None => Vec::new(),
            }
        };
        if chosen.is_empty() {
            let why = if words == "all" {
                "You carry nothing.".to_string()
            } else {
                format!("You have no {words}.")
            };
            return self.finish_command(Event::Error(why), ticket);
        }
        let last = chosen.len() - 1;
        let name = self.name.clone();
        for (n, item) in chosen.into_iter().enumerate() {
            // Only the last drop finishes the command; the others carry the login ticket,
            // which no command waits for.
            let ticket = if n == last { ticket } else { LOGIN_TICKET };
            let message = ToRoom::Drop {
                name: name.clone(),
                item,
                ticket,
            };
            let undelivered = match &self.room {
                Some(room) => room.to_room.send(message).err().map(|e| e.into_inner()),
                None => Some(message),
            };
            if let Some(ToRoom::Drop { item, .. }) = undelivered {
                self.items.push(item);
                if n == last {
                    self.finish_command(Event::Error("The world is stopping.".to_string()), ticket);
                }
            }
        }
    }
}
