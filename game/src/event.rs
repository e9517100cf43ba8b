//! What players are shown: the world's events, rendered as text by every frontend alike.

use std::fmt;

use crate::protocol::Name;
use std::sync::Arc;

use crate::world::atlas::{Direction, ItemPlan};

/// An object as events name it.
pub type ItemRef = Arc<ItemPlan>;

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
    Took { who: Name, item: ItemRef },
    /// Someone put an object down.
    Dropped { who: Name, item: ItemRef },
    /// You picked an object up.
    YouTook { item: ItemRef },
    /// You put an object down.
    YouDropped { item: ItemRef },
    /// What you carry.
    Inventory { items: Vec<ItemRef> },
    /// Anything else worth a line: `kind` is `examine`, `emote`, `tell`, `score`,
    /// `happened` (doors, gifts, characters' answers) or `announce` (to everyone).
    Text { kind: &'static str, text: String },
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
    pub title: Arc<str>,
    pub description: Arc<str>,
    /// Dark, and the viewer has no light: only the way out shows.
    pub dark: bool,
    pub exits: Vec<Direction>,
    /// Doors on the exits: "The brass-bound door north is locked."
    pub doors: Vec<String>,
    /// Objects lying here.
    pub items: Vec<ItemRef>,
    /// Characters here, by name ("the porter").
    pub characters: Vec<String>,
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
            Event::Text { kind, .. } => kind,
            Event::Goodbye => "goodbye",
            Event::Error(_) => "error",
        }
    }
}

pub const HELP: &str = "Commands:\n\
    look (l)                 describe the room\n\
    go <direction>           or just north, south, east, west, up, down (n s e w u d)\n\
    take <object>            pick something up (also: get; take all)\n\
    drop <object>            put something down\n\
    examine <thing> (x)      look closely at an object, a door or a character\n\
    read <object>            read what is written on it\n\
    open/close <thing>       a door or a container\n\
    lock/unlock <thing>      with the right key\n\
    put <object> in <box>    put something into a container\n\
    give <object> to <who>   to a character or another player\n\
    talk to <who>            talk to a character\n\
    inventory (i)            what you carry\n\
    score                    your points in the quest\n\
    say <text>               speak to the room (also: 'text)\n\
    emote <text>             act (also: :text): emote waves\n\
    tell <player> <text>     a private message, on any frontend\n\
    who                      who is playing\n\
    help                     this list\n\
    quit                     leave the world (you keep your place and your things)\n\
    @dig @describe @create @link @destroy @export   for builders (see docs/GAME.md)";

fn item_name(item: &ItemRef) -> &str {
    &item.name
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
            Event::Room(view) if view.dark => {
                write!(
                    f,
                    "{}\nIt is pitch dark. You might bump into something without a light.",
                    view.title
                )?;
                let exits: Vec<&str> = view.exits.iter().map(|d| d.name()).collect();
                write!(f, "\nExits: {}.", exits.join(", "))
            }
            Event::Room(view) => {
                write!(f, "{}\n{}", view.title, view.description)?;
                let exits: Vec<&str> = view.exits.iter().map(|d| d.name()).collect();
                if exits.is_empty() {
                    write!(f, "\nThere is no way out.")?;
                } else {
                    write!(f, "\nExits: {}.", exits.join(", "))?;
                }
                for door in &view.doors {
                    write!(f, "\n{door}")?;
                }
                if !view.items.is_empty() {
                    let items: Vec<&str> = view.items.iter().map(item_name).collect();
                    write!(f, "\nYou see {} here.", list(&items))?;
                }
                if !view.characters.is_empty() {
                    let who = crate::protocol::capital(&list(&view.characters));
                    let verb = if view.characters.len() == 1 {
                        "is"
                    } else {
                        "are"
                    };
                    write!(f, "\n{who} {verb} here.")?;
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
            Event::Took { who, item } => write!(f, "{who} takes {}.", item_name(item)),
            Event::Dropped { who, item } => write!(f, "{who} drops {}.", item_name(item)),
            Event::YouTook { item } => write!(f, "You take {}.", item_name(item)),
            Event::YouDropped { item } => write!(f, "You drop {}.", item_name(item)),
            Event::Inventory { items } if items.is_empty() => {
                f.write_str("You are carrying nothing.")
            }
            Event::Inventory { items } => {
                let items: Vec<&str> = items.iter().map(item_name).collect();
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
            Event::Text { text, .. } => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_reads_like_prose() {
        let atlas = crate::world::atlas::Atlas::built_in().unwrap();
        let item = |key: &str| atlas.items[atlas.item_by_key(key).unwrap()].clone();
        let view = RoomView {
            title: "Hall".into(),
            description: "A hall.".into(),
            dark: false,
            exits: vec![Direction::North, Direction::Up],
            doors: vec![],
            items: vec![item("lamp"), item("chalk")],
            characters: vec!["the porter".to_string()],
            people: vec!["alice".into(), "bob".into(), "carol".into()],
        };
        assert_eq!(
            Event::Room(view).to_string(),
            "Hall\nA hall.\nExits: north, up.\nYou see a brass lamp and a stub of chalk here.\n\
             The porter is here.\nAlso here: alice, bob and carol."
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
