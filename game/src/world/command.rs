//! The command language: one typed line to a `Verb`. Pure code.

use crate::protocol::LidAction;
use crate::world::atlas::Direction;

/// The longest line a player may type; longer ones are cut.
pub const MAX_LINE_CHARS: usize = 400;

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Look,
    Go(Direction),
    Take(String),
    Drop(String),
    Inventory,
    Say(String),
    Emote(String),
    /// `tell NAME text`.
    Tell(String, String),
    /// `examine X` (`read X` when the flag is set).
    Examine(String, bool),
    Lid(LidAction, String),
    /// `put X in Y`.
    Put(String, String),
    /// `give X to Y`.
    Give(String, String),
    /// `talk to X`.
    Talk(String),
    Score,
    /// A builder's command.
    Build(Build),
    Who,
    Help,
    Quit,
    /// An empty line.
    Nothing,
    /// Not a command; the text says why, for the player.
    Refused(String),
}

/// What a builder asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// `@dig DIRECTION KEY TITLE`
    Dig(Direction, String, String),
    /// `@describe here TEXT`
    Describe(String),
    /// `@create KEY NAME`
    Create(String, String),
    /// `@link DIRECTION ROOM-KEY`
    Link(Direction, String),
    /// `@destroy OBJECT`
    Destroy(String),
    /// `@export`
    Export,
}

/// A builder's line (starting with `@`) to a `Verb`.
fn build(verb: &str, rest: &str) -> Verb {
    let mut words = rest.splitn(3, char::is_whitespace);
    let mut next = || words.next().map(str::trim).filter(|w| !w.is_empty());
    let usage = |text: &str| Verb::Refused(format!("Usage: {text}"));
    match verb {
        "@dig" => match (next().and_then(|d| Direction::parse(&d.to_lowercase())), next(), next()) {
            (Some(way), Some(key), Some(title)) => {
                Verb::Build(Build::Dig(way, key.to_lowercase(), title.to_string()))
            }
            _ => usage("@dig DIRECTION KEY TITLE, as in: @dig up roof The Roof"),
        },
        "@describe" | "@desc" => match rest.strip_prefix("here").map(str::trim) {
            Some(text) if !text.is_empty() => Verb::Build(Build::Describe(text.to_string())),
            _ => usage("@describe here TEXT"),
        },
        "@create" => match rest.split_once(char::is_whitespace) {
            Some((key, name)) if !name.trim().is_empty() => {
                Verb::Build(Build::Create(key.to_lowercase(), name.trim().to_string()))
            }
            _ => usage("@create KEY NAME, as in: @create flag a small flag"),
        },
        "@link" => match (next().and_then(|d| Direction::parse(&d.to_lowercase())), next()) {
            (Some(way), Some(to)) => Verb::Build(Build::Link(way, to.to_lowercase())),
            _ => usage("@link DIRECTION ROOM-KEY, as in: @link north gate"),
        },
        "@destroy" => match rest.trim() {
            "" => usage("@destroy OBJECT"),
            words => Verb::Build(Build::Destroy(words.to_lowercase())),
        },
        "@export" => Verb::Build(Build::Export),
        other => Verb::Refused(format!(
            "There is no builder's command '{other}': @dig, @describe, @create, @link, @destroy, @export."
        )),
    }
}

/// Reads one line. Verbs and object words are case-insensitive; spoken text keeps its case.
pub fn parse(line: &str) -> Verb {
    let line: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LINE_CHARS)
        .collect();
    let line = line.trim();
    if let Some(text) = line.strip_prefix('\'').or_else(|| line.strip_prefix('"')) {
        return say(text);
    }
    if let Some(text) = line.strip_prefix(':') {
        return emote(text);
    }
    let (verb, rest) = match line.split_once(char::is_whitespace) {
        Some((verb, rest)) => (verb.to_lowercase(), rest.trim()),
        None => (line.to_lowercase(), ""),
    };
    let object = rest.to_lowercase();
    if verb.starts_with('@') {
        return build(&verb, rest);
    }
    match verb.as_str() {
        "" => Verb::Nothing,
        "look" | "l" if rest.is_empty() => Verb::Look,
        "look" | "l" if object.starts_with("at ") => match object[3..].trim() {
            "" => Verb::Refused("Look at what?".to_string()),
            words => Verb::Examine(words.to_string(), false),
        },
        "examine" | "x" | "inspect" | "read" => match object.as_str() {
            "" => Verb::Refused(format!("{} what?", capital_word(&verb))),
            words => Verb::Examine(words.to_string(), verb == "read"),
        },
        "open" | "close" | "shut" | "lock" | "unlock" => {
            let action = match verb.as_str() {
                "open" => LidAction::Open,
                "close" | "shut" => LidAction::Close,
                "lock" => LidAction::Lock,
                _ => LidAction::Unlock,
            };
            // "unlock door with key": the key is whichever fitting one the player carries.
            let words = object.split(" with ").next().unwrap_or("").trim();
            match words {
                "" => Verb::Refused(format!("{} what?", capital_word(&verb))),
                words => Verb::Lid(action, words.to_string()),
            }
        }
        "put" | "insert" if object.contains(" in ") || object.contains(" into ") => {
            let (what, into) = object
                .split_once(" into ")
                .or_else(|| object.split_once(" in "))
                .unwrap_or((&object, ""));
            match (what.trim(), into.trim()) {
                ("", _) | (_, "") => Verb::Refused("Put what in what?".to_string()),
                (what, into) => Verb::Put(what.to_string(), into.to_string()),
            }
        }
        "give" | "offer" => match object.split_once(" to ") {
            Some((what, to)) if !what.trim().is_empty() && !to.trim().is_empty() => {
                Verb::Give(what.trim().to_string(), to.trim().to_string())
            }
            _ => Verb::Refused("Give what to whom? Try: give lamp to porter".to_string()),
        },
        "talk" | "speak" | "ask" => {
            let to = object
                .strip_prefix("to ")
                .or_else(|| object.strip_prefix("with "))
                .unwrap_or(&object)
                .trim();
            match to {
                "" => Verb::Refused("Talk to whom?".to_string()),
                to => Verb::Talk(to.to_string()),
            }
        }
        "emote" | "me" | "pose" => emote(rest),
        "tell" | "whisper" | "msg" => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => {
                Verb::Tell(to.to_string(), text.trim().to_string())
            }
            _ => Verb::Refused("Tell whom what? Try: tell alice hello".to_string()),
        },
        "score" | "points" => Verb::Score,
        "look" | "l" => {
            Verb::Refused("Just type look: you look around the whole room.".to_string())
        }
        "go" | "walk" | "move" if rest.is_empty() => {
            Verb::Refused("Go where? Try north, south, east, west, up or down.".to_string())
        }
        "go" | "walk" | "move" => match Direction::parse(&object) {
            Some(direction) => Verb::Go(direction),
            None => Verb::Refused(format!(
                "'{rest}' is not a direction. Try north, south, east, west, up or down."
            )),
        },
        "take" | "get" | "pick" => match object.strip_prefix("up ").unwrap_or(&object).trim() {
            "" => Verb::Refused("Take what?".to_string()),
            words => Verb::Take(words.to_string()),
        },
        "drop" | "put" => match object.as_str() {
            "" => Verb::Refused("Drop what?".to_string()),
            words => Verb::Drop(words.to_string()),
        },
        "inventory" | "inv" | "i" => Verb::Inventory,
        "say" => say(rest),
        "who" => Verb::Who,
        "help" | "?" => Verb::Help,
        "quit" | "exit" | "logout" => Verb::Quit,
        word => match Direction::parse(word) {
            Some(direction) if rest.is_empty() => Verb::Go(direction),
            _ => Verb::Refused(format!(
                "I don't know how to '{word}'. Type help for the commands."
            )),
        },
    }
}

fn emote(text: &str) -> Verb {
    match text.trim() {
        "" => Verb::Refused("Emote what? Try: emote waves".to_string()),
        text => Verb::Emote(text.to_string()),
    }
}

fn capital_word(word: &str) -> String {
    crate::protocol::capital(word)
}

fn say(text: &str) -> Verb {
    match text.trim() {
        "" => Verb::Refused("Say what?".to_string()),
        text => Verb::Say(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_bare_and_with_go() {
        assert_eq!(parse("n"), Verb::Go(Direction::North));
        assert_eq!(parse("  North "), Verb::Go(Direction::North));
        assert_eq!(parse("go up"), Verb::Go(Direction::Up));
        assert_eq!(parse("GO d"), Verb::Go(Direction::Down));
        assert!(matches!(parse("go sideways"), Verb::Refused(why) if why.contains("sideways")));
        assert!(matches!(parse("go"), Verb::Refused(_)));
    }

    #[test]
    fn objects_and_speech() {
        assert_eq!(
            parse("take Brass Lamp"),
            Verb::Take("brass lamp".to_string())
        );
        assert_eq!(parse("pick up lamp"), Verb::Take("lamp".to_string()));
        assert_eq!(parse("get lamp"), Verb::Take("lamp".to_string()));
        assert_eq!(parse("drop lamp"), Verb::Drop("lamp".to_string()));
        assert_eq!(
            parse("say Hello There"),
            Verb::Say("Hello There".to_string())
        );
        assert_eq!(parse("'hi"), Verb::Say("hi".to_string()));
        assert!(matches!(parse("take"), Verb::Refused(_)));
        assert!(matches!(parse("say   "), Verb::Refused(_)));
    }

    #[test]
    fn the_new_verbs() {
        assert_eq!(parse("x lamp"), Verb::Examine("lamp".to_string(), false));
        assert_eq!(
            parse("look at the Lamp"),
            Verb::Examine("the lamp".to_string(), false)
        );
        assert_eq!(
            parse("read scroll"),
            Verb::Examine("scroll".to_string(), true)
        );
        assert_eq!(
            parse("unlock door with key"),
            Verb::Lid(LidAction::Unlock, "door".to_string())
        );
        assert_eq!(
            parse("open chest"),
            Verb::Lid(LidAction::Open, "chest".to_string())
        );
        assert_eq!(
            parse("put page in chest"),
            Verb::Put("page".to_string(), "chest".to_string())
        );
        assert_eq!(
            parse("give tag to porter"),
            Verb::Give("tag".to_string(), "porter".to_string())
        );
        assert_eq!(
            parse("talk to the scribe"),
            Verb::Talk("the scribe".to_string())
        );
        assert_eq!(
            parse("tell Bob Hello There"),
            Verb::Tell("Bob".to_string(), "Hello There".to_string())
        );
        assert_eq!(parse(":waves"), Verb::Emote("waves".to_string()));
        assert_eq!(parse("score"), Verb::Score);
        assert!(matches!(parse("put lamp"), Verb::Drop(_)));
        assert!(matches!(parse("give lamp"), Verb::Refused(_)));
        assert!(matches!(parse("tell bob"), Verb::Refused(_)));
    }

    #[test]
    fn builders_commands() {
        assert_eq!(
            parse("@dig up Roof The Windy Roof"),
            Verb::Build(Build::Dig(
                Direction::Up,
                "roof".into(),
                "The Windy Roof".into()
            ))
        );
        assert_eq!(
            parse("@describe here Wind, and Sky."),
            Verb::Build(Build::Describe("Wind, and Sky.".into()))
        );
        assert_eq!(
            parse("@create flag a Small Flag"),
            Verb::Build(Build::Create("flag".into(), "a Small Flag".into()))
        );
        assert_eq!(
            parse("@link n gate"),
            Verb::Build(Build::Link(Direction::North, "gate".into()))
        );
        assert_eq!(
            parse("@destroy Flag"),
            Verb::Build(Build::Destroy("flag".into()))
        );
        assert_eq!(parse("@export"), Verb::Build(Build::Export));
        assert!(
            matches!(parse("@dig sideways x y"), Verb::Refused(why) if why.starts_with("Usage"))
        );
        assert!(matches!(parse("@fly"), Verb::Refused(_)));
    }

    #[test]
    fn the_rest() {
        assert_eq!(parse("i"), Verb::Inventory);
        assert_eq!(parse("WHO"), Verb::Who);
        assert_eq!(parse("help"), Verb::Help);
        assert_eq!(parse("quit"), Verb::Quit);
        assert_eq!(parse(""), Verb::Nothing);
        assert_eq!(parse("look"), Verb::Look);
        assert!(matches!(parse("dance wildly"), Verb::Refused(why) if why.contains("dance")));
        assert!(matches!(parse("north now"), Verb::Refused(_)));
    }

    #[test]
    fn control_characters_and_long_lines_are_tamed() {
        assert_eq!(parse("say a\u{7}b\r"), Verb::Say("ab".to_string()));
        let long = format!("say {}", "x".repeat(5000));
        assert!(matches!(parse(&long), Verb::Say(text) if text.len() < MAX_LINE_CHARS));
    }
}
