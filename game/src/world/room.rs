//! Room process: one per room of the atlas. It owns the objects lying in it and the channel
//! ends of the users standing in it, and knows only its neighbours' channel ends.
//!
//! Instances: one per room. In: ToRoom (from users, the gate and neighbouring rooms).
//! Out: ToUser (to its occupants), ToRoom (an `Enter` to a neighbour), ToJournal.
//! Stops: on `Stop`, or when its inbox disconnects.
//!
//! Sends to users and rooms go on unbounded channels, so a room never blocks on anyone:
//! every process in the world blocks only on its own inbox, and no cycle of waits can form.

use crossbeam_channel::{Receiver, Sender};

use crate::event::{Event, RoomView};
use crate::protocol::{Item, Name, Occupant, RoomLink, Ticket, ToJournal, ToRoom, ToUser};
use crate::world::atlas::{Direction, RoomId, RoomPlan};

/// Everything a room starts with.
pub struct RoomSetup {
    pub id: RoomId,
    pub plan: &'static RoomPlan,
    pub exits: Vec<(Direction, RoomLink)>,
    pub items: Vec<Item>,
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
            ToRoom::Enter { user, from, ticket } => room.enter(user, from, ticket),
            ToRoom::Look { name, ticket } => {
                let view = room.view(&name);
                room.answer(&name, Event::Room(view), ticket);
            }
            ToRoom::Go {
                name,
                direction,
                ticket,
            } => room.go(&name, direction, ticket),
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
            ToRoom::Take {
                name,
                words,
                ticket,
            } => room.take(&name, &words, ticket),
            ToRoom::Drop { name, item, ticket } => room.drop_item(&name, item, ticket),
            ToRoom::Leave { name, ticket } => room.leave(&name, ticket),
            ToRoom::Stop => return,
        }
    }
}

impl Room {
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

    fn tell_others(&mut self, name: &str, event: Event) {
        self.occupants
            .retain(|o| &*o.name == name || o.to_user.send(ToUser::Event(event.clone())).is_ok());
    }

    fn view(&self, name: &str) -> RoomView {
        RoomView {
            title: self.setup.plan.title,
            description: self.setup.plan.description,
            exits: self.setup.exits.iter().map(|(d, _)| *d).collect(),
            items: self.setup.items.iter().map(|i| i.index).collect(),
            people: self
                .occupants
                .iter()
                .filter(|o| &*o.name != name)
                .map(|o| o.name.clone())
                .collect(),
        }
    }

    fn enter(&mut self, user: Occupant, from: Option<Direction>, ticket: Ticket) {
        let name = user.name.clone();
        self.tell_others(
            &name,
            Event::Arrived {
                who: name.clone(),
                from,
            },
        );
        let _ = self.setup.to_journal.send(ToJournal::PlayerAt {
            name: name.clone(),
            room: self.setup.id,
        });
        // A user entering twice would be a bug elsewhere; keep one channel end per name.
        if let Some(at) = self.position(&name) {
            self.occupants.remove(at);
        }
        self.occupants.push(user);
        self.send_to(&name, ToUser::Moved(self.setup.link.clone()));
        let view = self.view(&name);
        self.answer(&name, Event::Room(view), ticket);
    }

    fn go(&mut self, name: &Name, direction: Direction, ticket: Ticket) {
        let Some(link) = self
            .setup
            .exits
            .iter()
            .find(|(d, _)| *d == direction)
            .map(|(_, l)| l.clone())
        else {
            let why = format!("You can't go {direction} from here.");
            return self.answer(name, Event::Error(why), ticket);
        };
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
        if let Err(lost) = link.to_room.send(ToRoom::Enter { user, from, ticket }) {
            // The neighbour has stopped (the world is stopping): keep the user here.
            if let ToRoom::Enter { user, .. } = lost.into_inner() {
                self.occupants.push(user);
                self.answer(
                    name,
                    Event::Error("That way is closed.".to_string()),
                    ticket,
                );
            }
        }
    }

    fn take(&mut self, name: &Name, words: &str, ticket: Ticket) {
        if words == "all" || words == "everything" {
            let items = std::mem::take(&mut self.setup.items);
            if items.is_empty() {
                return self.answer(
                    name,
                    Event::Error("There is nothing here to take.".to_string()),
                    ticket,
                );
            }
            for item in items {
                self.give(name, item);
            }
            return self.send_to(name, ToUser::Done(ticket));
        }
        match self.setup.items.iter().position(|i| i.answers_to(words)) {
            Some(at) => {
                let item = self.setup.items.remove(at);
                self.give(name, item);
                self.send_to(name, ToUser::Done(ticket));
            }
            None => self.answer(
                name,
                Event::Error(format!("There is no {words} here.")),
                ticket,
            ),
        }
    }

    fn give(&mut self, name: &Name, item: Item) {
        let index = item.index;
        let Some(at) = self.position(name) else {
            return self.setup.items.push(item);
        };
        match self.occupants[at].to_user.send(ToUser::Given(item)) {
            Ok(()) => {
                let _ = self.setup.to_journal.send(ToJournal::ItemHeld {
                    item: index,
                    name: name.clone(),
                });
                self.send_to(name, ToUser::Event(Event::YouTook { item: index }));
                self.tell_others(
                    name,
                    Event::Took {
                        who: name.clone(),
                        item: index,
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

    fn drop_item(&mut self, name: &Name, item: Item, ticket: Ticket) {
        let index = item.index;
        self.setup.items.push(item);
        let _ = self.setup.to_journal.send(ToJournal::ItemInRoom {
            item: index,
            room: self.setup.id,
        });
        self.tell_others(
            name,
            Event::Dropped {
                who: name.clone(),
                item: index,
            },
        );
        self.answer(name, Event::YouDropped { item: index }, ticket);
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
