//! What players are shown: the world's events, rendered as text by every frontend alike.

use std::fmt;

use crate::protocol::Name;
use crate::world::atlas::{Direction, ITEMS};

/// One thing a player sees happen. Structured, so bots can read it; `Display` renders the
/// text a person reads (one or more lines).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The room you are in.
    Room(RoomView),
    /// Someone came in (through `from`, or appeared when `None`).
    Arrived { who: Name, from: Option<Direction> },
    /// Someone went out (through `toward`, or left the world when `None`).
    Departed {
        who: Name,
        toward: Option<Direction>,
    },
    /// Someone spoke.
    Said { who: Name, text: String },
    /// You spoke.
    YouSaid { text: String },
    /// Someone picked an object up.
    Took { who: Name, item: usize },
    /// Someone put an object down.
    Dropped { who: Name, item: usize },
    /// You picked an object up.
    YouTook { item: usize },
    /// You put an object down.
    YouDropped { item: usize },
    /// What you carry.
    Inventory { items: Vec<usize> },
    /// Who is playing: people by name, bots by count.
    Who { people: Vec<Name>, bots: usize },
    /// The list of commands.
    Help,
    /// You left the world.
    Goodbye,
    /// A command could not be done, and why.
    Error(String),
}

/// A room as its occupant sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomView {
    pub title: &'static str,
    pub description: &'static str,
    pub exits: Vec<Direction>,
    /// Objects lying here (indices into the atlas).
    pub items: Vec<usize>,
    /// Everyone else here.
    pub people: Vec<Name>,
}

impl Event {
    /// A short word naming the kind of event, for the websocket's JSON frames.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Room(_) => "room",
            Event::Arrived { .. } => "arrived",
            Event::Departed { .. } => "departed",
            Event::Said { .. } | Event::YouSaid { .. } => "said",
            Event::Took { .. } | Event::YouTook { .. } => "took",
            Event::Dropped { .. } | Event::YouDropped { .. } => "dropped",
            Event::Inventory { .. } => "inventory",
            Event::Who { .. } => "who",
            Event::Help => "help",
            Event::Goodbye => "goodbye",
            Event::Error(_) => "error",
        }
    }
}

pub const HELP: &str = "Commands:\n\
    look (l)                 describe the room\n\
    go <direction>           or just north, south, east, west, up, down (n s e w u d)\n\
    take <object>            pick something up (also: get)\n\
    drop <object>            put something down\n\
    inventory (i)            what you carry\n\
    say <text>               speak to the room (also: 'text)\n\
    who                      who is playing\n\
    help                     this list\n\
    quit                     leave the world (you keep your place and your things)";

fn item_name(index: usize) -> &'static str {
    ITEMS.get(index).map_or("something", |plan| plan.name)
}

/// "a, b and c".
fn list<T: AsRef<str>>(parts: &[T]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Room(view) => {
                write!(f, "{}\n{}", view.title, view.description)?;
                let exits: Vec<&str> = view.exits.iter().map(|d| d.name()).collect();
                if exits.is_empty() {
                    write!(f, "\nThere is no way out.")?;
                } else {
                    write!(f, "\nExits: {}.", exits.join(", "))?;
                }
                if !view.items.is_empty() {
                    let items: Vec<&str> = view.items.iter().map(|i| item_name(*i)).collect();
                    write!(f, "\nYou see {} here.", list(&items))?;
                }
                if !view.people.is_empty() {
                    write!(f, "\nAlso here: {}.", list(&view.people))?;
                }
                Ok(())
            }
            Event::Arrived {
                who,
                from: Some(from),
            } => write!(f, "{who} arrives from the {from}."),
            Event::Arrived { who, from: None } => {
                write!(f, "{who} appears in a flicker of packets.")
            }
            Event::Departed {
                who,
                toward: Some(toward),
            } => write!(f, "{who} leaves {toward}."),
            Event::Departed { who, toward: None } => write!(f, "{who} fades away."),
            Event::Said { who, text } => write!(f, "{who} says: {text}"),
            Event::YouSaid { text } => write!(f, "You say: {text}"),
            Event::Took { who, item } => write!(f, "{who} takes {}.", item_name(*item)),
            Event::Dropped { who, item } => write!(f, "{who} drops {}.", item_name(*item)),
            Event::YouTook { item } => write!(f, "You take {}.", item_name(*item)),
            Event::YouDropped { item } => write!(f, "You drop {}.", item_name(*item)),
            Event::Inventory { items } if items.is_empty() => {
                f.write_str("You are carrying nothing.")
            }
            Event::Inventory { items } => {
                let items: Vec<&str> = items.iter().map(|i| item_name(*i)).collect();
                write!(f, "You are carrying {}.", list(&items))
            }
            Event::Who { people, bots } => {
                let count = people.len() + bots;
                write!(f, "Playing now ({count}): ")?;
                let mut parts: Vec<String> = people.iter().map(|p| p.to_string()).collect();
                match bots {
                    0 => {}
                    1 => parts.push("1 bot".to_string()),
                    n => parts.push(format!("{n} bots")),
                }
                write!(f, "{}.", list(&parts))
            }
            Event::Help => f.write_str(HELP),
            Event::Goodbye => {
                f.write_str("You leave the world. Your place and your things are kept for you.")
            }
            Event::Error(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_reads_like_prose() {
        let view = RoomView {
            title: "Hall",
            description: "A hall.",
            exits: vec![Direction::North, Direction::Up],
            items: vec![0, 1],
            people: vec!["alice".into(), "bob".into(), "carol".into()],
        };
        assert_eq!(
            Event::Room(view).to_string(),
            "Hall\nA hall.\nExits: north, up.\nYou see a brass lamp and a stub of chalk here.\n\
             Also here: alice, bob and carol."
        );
    }

    #[test]
    fn who_counts_bots() {
        let who = Event::Who {
            people: vec!["alice".into()],
            bots: 3,
        };
        assert_eq!(who.to_string(), "Playing now (4): alice and 3 bots.");
    }

    #[test]
    fn arrivals_name_the_way_in() {
        let arrived = Event::Arrived {
            who: "bob".into(),
            from: Some(Direction::South),
        };
        assert_eq!(arrived.to_string(), "bob arrives from the south.");
    }
}
