//! Room process: one per room of the atlas. It owns the objects lying in it, the characters
//! standing in it (and what they hold), the state of the doors on its exits, and the
//! channel ends of the users standing in it; it knows only its neighbours' channel ends.
//!
//! Instances: one per room. In: ToRoom (from users, the gate and neighbouring rooms).
//! Out: ToUser (to its occupants), ToRoom (an `Enter` to a neighbour, a `DoorChanged` to
//! the room across a shared door), ToJournal. Stops: on `Stop`, or when its inbox
//! disconnects.
//!
//! Sends to users and rooms go on unbounded channels, so a room never blocks on anyone:
//! every process in the world blocks only on its own inbox, and no cycle of waits can form.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::event::{Event, RoomView};
use crate::protocol::{
    capital, definite, find_in, take_from, Item, LidAction, Name, Occupant, Place, RoomLink,
    Ticket, ToJournal, ToRoom, ToUser,
};
use crate::world::atlas::{Atlas, Direction, DoorId, ItemId, Lid, NpcId, RoomId};
use crate::world::build::Edit;

/// One exit, with the neighbour's channel end.
pub struct Exit {
    pub direction: Direction,
    pub link: RoomLink,
    pub door: Option<DoorId>,
}

/// A character standing in this room, and the objects it holds.
pub struct Npc {
    pub id: NpcId,
    pub holding: Vec<Item>,
}

/// Everything a room starts with.
pub struct RoomSetup {
    pub id: RoomId,
    /// The room's key, title and description (a builder may change the description), and
    /// whether it is dark.
    pub key: String,
    pub title: Arc<str>,
    pub description: Arc<str>,
    pub dark: bool,
    pub atlas: Arc<Atlas>,
    pub exits: Vec<Exit>,
    /// The doors on this room's exits, as they are now.
    pub doors: HashMap<DoorId, Lid>,
    pub items: Vec<Item>,
    pub npcs: Vec<Npc>,
    /// This room's own link, handed to users who enter.
    pub link: RoomLink,
    pub to_journal: Sender<ToJournal>,
}

struct Room {
    setup: RoomSetup,
    occupants: Vec<Occupant>,
}

pub fn run(setup: RoomSetup, inbox: Receiver<ToRoom>) {
    let mut room = Room {
        setup,
        occupants: Vec::new(),
    };
    for message in inbox {
        match message {
            ToRoom::Enter {
                user,
                from,
                lit,
                ticket,
            } => room.enter(user, from, lit, ticket),
            ToRoom::Look { name, lit, ticket } => {
                let view = room.view(&name, lit);
                room.answer(&name, Event::Room(view), ticket);
            }
            ToRoom::Go {
                name,
                direction,
                lit,
                ticket,
            } => room.go(&name, direction, lit, ticket),
            ToRoom::Say { name, text, ticket } => {
                room.tell_others(
                    &name,
                    Event::Said {
                        who: name.clone(),
                        text: text.clone(),
                    },
                );
                room.answer(&name, Event::YouSaid { text }, ticket);
            }
            ToRoom::Emote { name, text, ticket } => {
                let line = format!("{name} {text}");
                room.tell_others(&name, happened("emote", line.clone()));
                room.answer(&name, happened("emote", line), ticket);
            }
            ToRoom::Take {
                name,
                words,
                lit,
                ticket,
            } => room.take(&name, &words, lit, ticket),
            ToRoom::Drop { name, item, ticket } => room.drop_item(&name, item, ticket),
            ToRoom::Examine {
                name,
                words,
                read,
                lit,
                ticket,
            } => room.examine(&name, &words, read, lit, ticket),
            ToRoom::Handle {
                name,
                words,
                action,
                keys,
                ticket,
            } => room.handle(&name, &words, action, &keys, ticket),
            ToRoom::Put {
                name,
                item,
                into,
                ticket,
            } => room.put(&name, item, &into, ticket),
            ToRoom::Give {
                name,
                item,
                to,
                ticket,
            } => room.give_to(&name, item, &to, ticket),
            ToRoom::Talk { name, to, ticket } => room.talk(&name, &to, ticket),
            ToRoom::DoorChanged { door, lid } => {
                room.setup.doors.insert(door, lid);
            }
            ToRoom::AddExit {
                direction,
                link,
                edit,
                reply,
                ticket,
            } => room.add_exit(direction, link, edit, &reply, ticket),
            ToRoom::Describe { name, text, ticket } => {
                room.setup.description = text.as_str().into();
                room.journal(ToJournal::Built(Edit::Describe {
                    room: room.setup.key.clone(),
                    text,
                }));
                room.answer(
                    &name,
                    happened("happened", "You describe this room anew.".to_string()),
                    ticket,
                );
            }
            ToRoom::Destroy {
                name,
                words,
                ticket,
            } => room.destroy(&name, &words, ticket),
            ToRoom::Leave { name, ticket } => room.leave(&name, ticket),
            ToRoom::Stop => return,
        }
    }
}

fn happened(kind: &'static str, text: String) -> Event {
    Event::Text { kind, text }
}

impl Room {
    fn atlas(&self) -> &Atlas {
        &self.setup.atlas
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.occupants.iter().position(|o| &*o.name == name)
    }

    /// Sends to one occupant; a user that has gone (its process ended abnormally) is removed.
    fn send_to(&mut self, name: &str, message: ToUser) {
        if let Some(at) = self.position(name) {
            if self.occupants[at].to_user.send(message).is_err() {
                self.occupants.remove(at);
            }
        }
    }

    fn answer(&mut self, name: &str, event: Event, ticket: Ticket) {
        self.send_to(name, ToUser::Event(event));
        self.send_to(name, ToUser::Done(ticket));
    }

    fn refuse(&mut self, name: &str, why: String, ticket: Ticket) {
        self.answer(name, Event::Error(why), ticket);
    }

    fn tell_others(&mut self, name: &str, event: Event) {
        self.occupants
            .retain(|o| &*o.name == name || o.to_user.send(ToUser::Event(event.clone())).is_ok());
    }

    fn journal(&self, change: ToJournal) {
        let _ = self.setup.to_journal.send(change);
    }

    fn dark(&self, lit: bool) -> bool {
        self.setup.dark && !lit
    }

    fn view(&self, name: &str, lit: bool) -> RoomView {
        let atlas = self.atlas();
        let doors = self
            .setup
            .exits
            .iter()
            .filter_map(|exit| {
                let door = exit.door?;
                let lid = self.setup.doors.get(&door).copied().unwrap_or_default();
                let state = match (lid.closed, lid.locked) {
                    (false, _) => "open",
                    (true, false) => "closed",
                    (true, true) => "closed and locked",
                };
                Some(format!(
                    "{} to the {} is {state}.",
                    capital(&definite(&atlas.doors[door].name)),
                    exit.direction
                ))
            })
            .collect();
        RoomView {
            title: self.setup.title.clone(),
            description: self.setup.description.clone(),
            dark: self.dark(lit),
            exits: self.setup.exits.iter().map(|e| e.direction).collect(),
            doors,
            items: self.setup.items.iter().map(|i| i.plan.clone()).collect(),
            characters: self
                .setup
                .npcs
                .iter()
                .map(|n| atlas.npcs[n.id].name.clone())
                .collect(),
            people: self
                .occupants
                .iter()
                .filter(|o| &*o.name != name)
                .map(|o| o.name.clone())
                .collect(),
        }
    }

    fn enter(&mut self, user: Occupant, from: Option<Direction>, lit: bool, ticket: Ticket) {
        let name = user.name.clone();
        self.tell_others(
            &name,
            Event::Arrived {
                who: name.clone(),
                from,
            },
        );
        self.journal(ToJournal::PlayerAt {
            name: name.clone(),
            room: self.setup.key.clone(),
        });
        // A user entering twice would be a bug elsewhere; keep one channel end per name.
        if let Some(at) = self.position(&name) {
            self.occupants.remove(at);
        }
        self.occupants.push(user);
        self.send_to(&name, ToUser::Moved(self.setup.link.clone()));
        let view = self.view(&name, lit);
        self.answer(&name, Event::Room(view), ticket);
    }

    fn go(&mut self, name: &Name, direction: Direction, lit: bool, ticket: Ticket) {
        let Some(exit) = self.setup.exits.iter().find(|e| e.direction == direction) else {
            return self.refuse(name, format!("You can't go {direction} from here."), ticket);
        };
        let link = exit.link.clone();
        if let Some(door) = exit.door {
            if self.setup.doors.get(&door).is_some_and(|lid| lid.closed) {
                let door_name = capital(&definite(&self.atlas().doors[door].name));
                return self.refuse(name, format!("{door_name} is closed."), ticket);
            }
        }
        let Some(at) = self.position(name) else {
            return;
        };
        let user = self.occupants.remove(at);
        self.tell_others(
            name,
            Event::Departed {
                who: name.clone(),
                toward: Some(direction),
            },
        );
        let from = Some(direction.opposite());
        let enter = ToRoom::Enter {
            user,
            from,
            lit,
            ticket,
        };
        if let Err(lost) = link.to_room.send(enter) {
            // The neighbour has stopped (the world is stopping): keep the user here.
            if let ToRoom::Enter { user, .. } = lost.into_inner() {
                self.occupants.push(user);
                self.refuse(name, "That way is closed.".to_string(), ticket);
            }
        }
    }

    fn take(&mut self, name: &Name, words: &str, lit: bool, ticket: Ticket) {
        if self.dark(lit) {
            return self.refuse(
                name,
                "It is too dark to find anything. You need a light.".to_string(),
                ticket,
            );
        }
        if words == "all" || words == "everything" {
            let (fixed, loose): (Vec<Item>, Vec<Item>) = std::mem::take(&mut self.setup.items)
                .into_iter()
                .partition(|i| i.plan.fixed);
            self.setup.items = fixed;
            if loose.is_empty() {
                return self.refuse(name, "There is nothing here to take.".to_string(), ticket);
            }
            for item in loose {
                self.hand_over(name, item);
            }
            return self.send_to(name, ToUser::Done(ticket));
        }
        if find_in(&self.setup.items, words).is_some_and(|i| i.plan.fixed) {
            let what = find_in(&self.setup.items, words)
                .map(|i| capital(&definite(i.name())))
                .unwrap_or_default();
            return self.refuse(name, format!("{what} will not budge."), ticket);
        }
        match take_from(&mut self.setup.items, words) {
            Some(item) => {
                self.hand_over(name, item);
                self.send_to(name, ToUser::Done(ticket));
            }
            None => self.refuse(name, format!("There is no {words} here."), ticket),
        }
    }

    /// Moves an object from this room to an occupant.
    fn hand_over(&mut self, name: &Name, item: Item) {
        let plan = item.plan.clone();
        let Some(at) = self.position(name) else {
            return self.setup.items.push(item);
        };
        // The line first, so points earned by the taking read after it.
        let _ = self.occupants[at]
            .to_user
            .send(ToUser::Event(Event::YouTook { item: plan.clone() }));
        match self.occupants[at].to_user.send(ToUser::Given(item)) {
            Ok(()) => {
                self.journal(ToJournal::ItemAt {
                    item: plan.key.clone(),
                    place: Place::Player(name.to_string()),
                });
                self.tell_others(
                    name,
                    Event::Took {
                        who: name.clone(),
                        item: plan,
                    },
                );
            }
            Err(lost) => {
                self.occupants.remove(at);
                if let ToUser::Given(item) = lost.into_inner() {
                    self.setup.items.push(item);
                }
            }
        }
    }

    /// Hands an object back to the occupant who tried to put or give it, with the reason.
    fn hand_back(&mut self, name: &Name, item: Item, why: String, ticket: Ticket) {
        match self.position(name) {
            Some(at) => {
                if let Err(lost) = self.occupants[at].to_user.send(ToUser::Given(item)) {
                    self.occupants.remove(at);
                    if let ToUser::Given(item) = lost.into_inner() {
                        self.drop_quietly(item);
                    }
                }
            }
            None => self.drop_quietly(item),
        }
        self.refuse(name, why, ticket);
    }

    fn drop_quietly(&mut self, item: Item) {
        self.journal(ToJournal::ItemAt {
            item: item.plan.key.clone(),
            place: Place::Room(self.setup.key.clone()),
        });
        self.setup.items.push(item);
    }

    fn drop_item(&mut self, name: &Name, item: Item, ticket: Ticket) {
        let plan = item.plan.clone();
        self.drop_quietly(item);
        self.tell_others(
            name,
            Event::Dropped {
                who: name.clone(),
                item: plan.clone(),
            },
        );
        self.answer(name, Event::YouDropped { item: plan }, ticket);
    }

    fn examine(&mut self, name: &Name, words: &str, read: bool, lit: bool, ticket: Ticket) {
        if self.dark(lit) {
            return self.refuse(name, "It is too dark to see.".to_string(), ticket);
        }
        let atlas = self.setup.atlas.clone();
        if let Some(item) = find_in(&self.setup.items, words) {
            let text = if read {
                match &item.plan.text {
                    Some(text) => format!("{} reads:\n{text}", capital(&definite(item.name()))),
                    None => format!("There is nothing written on {}.", definite(item.name())),
                }
            } else {
                item.describe()
            };
            return self.answer(name, happened("examine", text), ticket);
        }
        if let Some(npc) = self
            .setup
            .npcs
            .iter()
            .find(|n| atlas.npcs[n.id].answers_to(words))
        {
            let text = atlas.npcs[npc.id].description.clone();
            return self.answer(name, happened("examine", text), ticket);
        }
        if let Some(door) = self.door_named(words) {
            let lid = self.setup.doors.get(&door).copied().unwrap_or_default();
            let state = match (lid.closed, lid.locked) {
                (false, _) => "It is open.",
                (true, false) => "It is closed.",
                (true, true) => "It is closed and locked.",
            };
            let text = format!("{} {state}", atlas.doors[door].description);
            return self.answer(name, happened("examine", text), ticket);
        }
        self.refuse(name, format!("You see no {words} here."), ticket);
    }

    fn door_named(&self, words: &str) -> Option<DoorId> {
        let atlas = self.atlas();
        self.setup
            .exits
            .iter()
            .filter_map(|e| e.door)
            .find(|d| atlas.doors[*d].answers_to(words))
    }

    fn handle(
        &mut self,
        name: &Name,
        words: &str,
        action: LidAction,
        keys: &[ItemId],
        ticket: Ticket,
    ) {
        let atlas = self.setup.atlas.clone();
        if let Some(door) = self.door_named(words) {
            let plan = &atlas.doors[door];
            let lid = self.setup.doors.get(&door).copied().unwrap_or_default();
            let key = plan.key_item.is_some_and(|k| keys.contains(&k));
            let what = definite(&plan.name);
            return match action.apply(lid, plan.key_item.is_some(), key, &what) {
                Ok(lid) => {
                    self.setup.doors.insert(door, lid);
                    self.journal(ToJournal::Door { door, lid });
                    // The room on the other side sees the same door.
                    for exit in self.setup.exits.iter().filter(|e| e.door == Some(door)) {
                        let _ = exit.link.to_room.send(ToRoom::DoorChanged { door, lid });
                    }
                    let verb = action.verb();
                    self.tell_others(
                        name,
                        happened("happened", format!("{name} {verb}s {what}.")),
                    );
                    self.answer(
                        name,
                        happened("happened", format!("You {verb} {what}.")),
                        ticket,
                    )
                }
                Err(why) => self.refuse(name, why, ticket),
            };
        }
        let Some(at) = self.setup.items.iter().position(|i| i.answers_to(words)) else {
            return self.refuse(name, format!("You see no {words} here."), ticket);
        };
        let item = &self.setup.items[at];
        let Some(container) = item.plan.container else {
            let what = definite(item.name());
            return self.refuse(
                name,
                format!("You cannot {} {what}.", action.verb()),
                ticket,
            );
        };
        let key = container.key_item.is_some_and(|k| keys.contains(&k));
        let what = definite(item.name());
        match action.apply(item.lid, container.key_item.is_some(), key, &what) {
            Ok(lid) => {
                let key = item.plan.key.clone();
                let mut text = format!("You {} {what}.", action.verb());
                if action == LidAction::Open && !item.contents.is_empty() {
                    let inside: Vec<&str> = item.contents.iter().map(Item::name).collect();
                    text.push_str(&format!(" Inside: {}.", inside.join(", ")));
                }
                self.setup.items[at].lid = lid;
                self.journal(ToJournal::Container { item: key, lid });
                let verb = action.verb();
                self.tell_others(
                    name,
                    happened("happened", format!("{name} {verb}s {what}.")),
                );
                self.answer(name, happened("happened", text), ticket);
            }
            Err(why) => self.refuse(name, why, ticket),
        }
    }

    fn put(&mut self, name: &Name, item: Item, into: &str, ticket: Ticket) {
        let Some(at) = self.setup.items.iter().position(|i| i.answers_to(into)) else {
            return self.hand_back(name, item, format!("You see no {into} here."), ticket);
        };
        let container = &self.setup.items[at];
        let what = definite(container.name());
        if container.plan.container.is_none() {
            return self.hand_back(
                name,
                item,
                format!("You can't put things in {what}."),
                ticket,
            );
        }
        if container.lid.closed {
            return self.hand_back(name, item, format!("{} is closed.", capital(&what)), ticket);
        }
        let text = format!("You put {} in {what}.", definite(item.name()));
        let others = format!("{name} puts {} in {what}.", item.name());
        self.journal(ToJournal::ItemAt {
            item: item.plan.key.clone(),
            place: Place::Inside(container.plan.key.clone()),
        });
        self.setup.items[at].contents.push(item);
        self.tell_others(name, happened("happened", others));
        self.answer(name, happened("happened", text), ticket);
    }

    fn give_to(&mut self, name: &Name, item: Item, to: &str, ticket: Ticket) {
        let atlas = self.setup.atlas.clone();
        if let Some(at) = self
            .setup
            .npcs
            .iter()
            .position(|n| atlas.npcs[n.id].answers_to(to))
        {
            let npc_id = self.setup.npcs[at].id;
            let plan = &atlas.npcs[npc_id];
            let Some(reaction) = plan.reactions.iter().find(|r| r.wants == item.id) else {
                let why = format!(
                    "{} does not want {}.",
                    capital(&plan.name),
                    definite(item.name())
                );
                return self.hand_back(name, item, why, ticket);
            };
            let gift = reaction.gives.and_then(|wanted| {
                let holding = &mut self.setup.npcs[at].holding;
                let at = holding.iter().position(|i| i.id == wanted)?;
                Some(holding.remove(at))
            });
            self.journal(ToJournal::ItemAt {
                item: item.plan.key.clone(),
                place: Place::Npc(plan.key.clone()),
            });
            let others = format!("{name} gives {} to {}.", item.name(), plan.name);
            self.setup.npcs[at].holding.push(item);
            self.tell_others(name, happened("happened", others));
            self.send_to(
                name,
                ToUser::Event(happened("happened", reaction.says.clone())),
            );
            if let Some(gift) = gift {
                self.hand_over(name, gift);
            }
            if reaction.points > 0 || reaction.finishes {
                let flag = format!("give:{}:{}", plan.key, atlas.items[reaction.wants].key);
                self.send_to(
                    name,
                    ToUser::Scored {
                        flag,
                        points: reaction.points,
                        finishes: reaction.finishes,
                    },
                );
            }
            return self.send_to(name, ToUser::Done(ticket));
        }
        let Some(at) = self
            .occupants
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(to) && *o.name != **name)
        else {
            return self.hand_back(name, item, format!("There is no {to} here."), ticket);
        };
        let receiver = self.occupants[at].name.clone();
        let plan = item.plan.clone();
        if let Err(lost) = self.occupants[at].to_user.send(ToUser::Given(item)) {
            self.occupants.remove(at);
            if let ToUser::Given(item) = lost.into_inner() {
                return self.hand_back(name, item, format!("{to} has gone."), ticket);
            }
            return;
        }
        self.journal(ToJournal::ItemAt {
            item: plan.key.clone(),
            place: Place::Player(receiver.to_string()),
        });
        self.send_to(
            &receiver,
            ToUser::Event(happened(
                "happened",
                format!("{name} gives you {}.", plan.name),
            )),
        );
        let others = format!("{name} gives {} to {receiver}.", plan.name);
        self.occupants
            .iter()
            .filter(|o| o.name != *name && o.name != receiver)
            .for_each(|o| {
                let _ = o
                    .to_user
                    .send(ToUser::Event(happened("happened", others.clone())));
            });
        let text = format!("You give {} to {receiver}.", plan.name);
        self.answer(name, happened("happened", text), ticket);
    }

    fn talk(&mut self, name: &Name, to: &str, ticket: Ticket) {
        let atlas = self.setup.atlas.clone();
        match self
            .setup
            .npcs
            .iter()
            .find(|n| atlas.npcs[n.id].answers_to(to))
        {
            Some(npc) => {
                let text = atlas.npcs[npc.id].talk.clone();
                self.answer(name, happened("happened", text), ticket);
            }
            None if self.position(to).is_some()
                || self
                    .occupants
                    .iter()
                    .any(|o| o.name.eq_ignore_ascii_case(to)) =>
            {
                self.refuse(
                    name,
                    format!("To talk to {to}, say something, or tell {to} something."),
                    ticket,
                )
            }
            None => self.refuse(name, format!("There is no {to} here to talk to."), ticket),
        }
    }

    /// `@dig` and `@link`: a new exit, unless the direction is taken.
    fn add_exit(
        &mut self,
        direction: Direction,
        link: RoomLink,
        edit: Edit,
        reply: &Sender<ToUser>,
        ticket: Ticket,
    ) {
        let event = if self.setup.exits.iter().any(|e| e.direction == direction) {
            Event::Error(format!("This room already has an exit {direction}."))
        } else {
            let text = match &edit {
                Edit::Dig { title, .. } => format!("You dig {direction}: {title}."),
                _ => format!("You open a way {direction}."),
            };
            self.setup.exits.push(Exit {
                direction,
                link,
                door: None,
            });
            self.setup.exits.sort_by_key(|e| e.direction);
            self.journal(ToJournal::Built(edit));
            happened("happened", text)
        };
        let _ = reply.send(ToUser::Event(event));
        let _ = reply.send(ToUser::Done(ticket));
    }

    /// `@destroy` of an object lying here (or in an open container here).
    fn destroy(&mut self, name: &Name, words: &str, ticket: Ticket) {
        match take_from(&mut self.setup.items, words) {
            Some(item) => {
                let text = format!("{} is gone.", capital(&definite(item.name())));
                self.journal(ToJournal::Built(Edit::Destroy {
                    item: item.plan.key.clone(),
                }));
                self.tell_others(
                    name,
                    happened("happened", format!("{name} makes {} vanish.", item.name())),
                );
                self.answer(name, happened("happened", text), ticket);
            }
            None => self.refuse(name, format!("You see no {words} here."), ticket),
        }
    }

    fn leave(&mut self, name: &Name, ticket: Ticket) {
        let Some(at) = self.position(name) else {
            return;
        };
        let user = self.occupants.remove(at);
        self.tell_others(
            name,
            Event::Departed {
                who: name.clone(),
                toward: None,
            },
        );
        let _ = user.to_user.send(ToUser::Left);
        let _ = user.to_user.send(ToUser::Done(ticket));
    }
}
