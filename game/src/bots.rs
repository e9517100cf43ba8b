//! Bots process: the world's own inhabitants, who wander, pick things up, put them down and
//! talk. To the world a bot is a player like any other (a user process logged in through the
//! gate); this process is the frontend that plays them all.
//!
//! Instances: 1 (when `bots` > 0). In: `(ClientId, ToFrontend)` from the bots' user
//! processes, a stop signal. Out: Command to each bot's user process (`try_send`), Login to
//! the gate. Stops: on its stop signal or when the gate is gone; dropping the sessions makes
//! every bot leave the world.

use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, Receiver};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::event::{Event, ItemRef};
use crate::protocol::{
    ClientId, Command, FrontendEnd, LoginMode, Name, Origin, Session, ToFrontend,
};
use crate::world::atlas::Direction;
use crate::world::{GateHandle, Logger};

/// Messages from the bots' user processes that may wait for the bots process; more are
/// dropped (a bot only misses a view).
const INBOX_BOUND: usize = 16 * 1024;
const TICK: Duration = Duration::from_millis(50);
/// A bot that has had no answer for this long stops waiting for one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

const ADJECTIVES: &[&str] = &[
    "Mossy", "Brisk", "Quiet", "Rusty", "Lucky", "Dusty", "Nimble", "Sleepy", "Gentle", "Clever",
    "Wary", "Jolly", "Tiny", "Grumpy", "Swift", "Humble", "Merry", "Shy", "Bold", "Patient",
    "Curious", "Silent", "Eager", "Odd",
];
const NOUNS: &[&str] = &[
    "Wren", "Badger", "Otter", "Newt", "Heron", "Vole", "Moth", "Stoat", "Finch", "Hare", "Toad",
    "Lark", "Mole", "Shrew", "Owl", "Weasel", "Beetle", "Gecko", "Lemur", "Marten", "Robin",
    "Snail", "Pike", "Ferret",
];
const SAYINGS: &[&str] = &[
    "Has anyone seen my keep-alive key?",
    "I was parsed once. It tickled.",
    "They say the vault only keeps the top half.",
    "Never block on a send you cannot finish.",
    "I heard a bell ring in the grotto.",
    "Who left this pipe lying about?",
    "Every channel has two ends, you know.",
    "The recycler gave me back. Again.",
    "I'd rather be cached than fetched.",
    "Is it ninety-ninth percentile weather today?",
];

/// The name of bot number `n`: `Mossy-Wren`, `Brisk-Wren`, ..., then with a number.
pub fn bot_name(n: usize) -> String {
    let adjective = ADJECTIVES[n % ADJECTIVES.len()];
    let noun = NOUNS[(n / ADJECTIVES.len()) % NOUNS.len()];
    match n / (ADJECTIVES.len() * NOUNS.len()) {
        0 => format!("{adjective}-{noun}"),
        round => format!("{adjective}-{noun}{round}"),
    }
}

/// How many bots, and how often each acts.
#[derive(Debug, Clone)]
pub struct BotSettings {
    pub count: usize,
    /// The mean time between one bot's actions.
    pub think: Duration,
}

struct Bot {
    session: Option<Session>,
    exits: Vec<Direction>,
    items_here: Vec<ItemRef>,
    carrying: Vec<ItemRef>,
    /// A door here is closed (and not locked): worth opening.
    closed_door: bool,
    /// Others in the room, who may be given things.
    people_here: Vec<Name>,
    waiting_since: Option<Instant>,
    next_at: Instant,
    next_ticket: u64,
}

pub fn run(gate: GateHandle, settings: BotSettings, stop: Receiver<()>, log: Logger) {
    let (to_frontend, inbox) = bounded(INBOX_BOUND);
    let mut rng = StdRng::from_entropy();
    let mut bots: Vec<Bot> = Vec::with_capacity(settings.count);
    let now = Instant::now();
    for n in 0..settings.count {
        if stop.try_recv().is_ok() {
            return;
        }
        let frontend = FrontendEnd {
            client: n as ClientId,
            to_frontend: to_frontend.clone(),
        };
        let session = match gate.login(&bot_name(n), Origin::Bot, LoginMode::Resume, frontend) {
            Ok(session) => Some(session),
            Err(e) => {
                log(&format!("game: bot {} cannot log in: {e}", bot_name(n)));
                None
            }
        };
        let first = now + settings.think.mul_f64(rng.gen_range(0.0..1.0));
        let bot = Bot {
            session,
            exits: Vec::new(),
            items_here: Vec::new(),
            carrying: Vec::new(),
            closed_door: false,
            people_here: Vec::new(),
            waiting_since: Some(now),
            next_at: first,
            next_ticket: 1,
        };
        bots.push(bot);
    }
    drop(to_frontend);
    let ticker = tick(TICK);
    loop {
        select! {
            recv(inbox) -> message => match message {
                Ok((client, message)) => {
                    if let Some(bot) = bots.get_mut(client as usize) {
                        bot.hear(message);
                    }
                }
                Err(_) => return,
            },
            recv(ticker) -> _ => {
                let now = Instant::now();
                for bot in bots.iter_mut().filter(|bot| bot.next_at <= now) {
                    bot.act(&mut rng, now, settings.think);
                }
            }
            recv(stop) -> _ => return,
        }
    }
}

impl Bot {
    fn hear(&mut self, message: ToFrontend) {
        match message {
            ToFrontend::Event(Event::Room(view)) => {
                self.exits = view.exits;
                self.items_here = view.items.into_iter().filter(|i| !i.fixed).collect();
                self.closed_door = view.doors.iter().any(|d| d.ends_with(" is closed."));
                self.people_here = view.people;
            }
            ToFrontend::Event(Event::YouTook { item }) => {
                self.items_here.retain(|i| i.key != item.key);
                self.carrying.push(item);
            }
            ToFrontend::Event(Event::YouDropped { item }) => {
                self.carrying.retain(|i| i.key != item.key);
                self.items_here.push(item);
            }
            ToFrontend::Event(Event::Took { item, .. }) => {
                self.items_here.retain(|i| i.key != item.key)
            }
            ToFrontend::Event(Event::Dropped { item, .. }) => self.items_here.push(item),
            ToFrontend::Event(Event::Arrived { who, .. }) => self.people_here.push(who),
            ToFrontend::Event(Event::Departed { who, .. }) => {
                self.people_here.retain(|p| *p != who)
            }
            ToFrontend::Event(_) => {}
            ToFrontend::Done(_) => self.waiting_since = None,
            ToFrontend::Ended => self.session = None,
        }
    }

    fn act(&mut self, rng: &mut StdRng, now: Instant, think: Duration) {
        self.next_at = now + think.mul_f64(rng.gen_range(0.5..1.5));
        if self
            .waiting_since
            .is_some_and(|since| now.duration_since(since) < ANSWER_TIMEOUT)
        {
            return;
        }
        let Some(session) = &self.session else { return };
        let roll: f64 = rng.gen();
        let word = |item: &ItemRef| item.word().to_string();
        let line = if self.exits.is_empty() {
            "look".to_string()
        } else if roll < 0.08 {
            format!("say {}", SAYINGS.choose(rng).copied().unwrap_or("Hello."))
        } else if roll < 0.25 && self.carrying.len() < 3 && !self.items_here.is_empty() {
            format!(
                "take {}",
                self.items_here.choose(rng).map_or("all".to_string(), word)
            )
        } else if roll < 0.3 && self.closed_door {
            self.closed_door = false;
            "open door".to_string()
        } else if roll < 0.35 && !self.carrying.is_empty() && !self.people_here.is_empty() {
            let at = rng.gen_range(0..self.carrying.len());
            let item = self.carrying.remove(at);
            let to = self.people_here.choose(rng).map_or("nobody", |p| &**p);
            format!("give {} to {to}", word(&item))
        } else if roll < 0.25 + 0.1 * self.carrying.len() as f64 {
            format!(
                "drop {}",
                self.carrying.choose(rng).map_or("all".to_string(), word)
            )
        } else {
            self.exits
                .choose(rng)
                .map_or("look", |d| d.name())
                .to_string()
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if session.commands.try_send(Command { line, ticket }).is_ok() {
            self.waiting_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::gate::valid_name;

    #[test]
    fn bot_names_are_valid_and_distinct() {
        let names: Vec<String> = (0..1200).map(bot_name).collect();
        assert!(names.iter().all(|n| valid_name(n)), "{names:?}");
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }
}
