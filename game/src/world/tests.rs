//! The world's processes together, driven through the gate as a frontend drives them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver};

use crate::event::Event;
use crate::protocol::{
    ClientId, Command, FrontendEnd, LoginError, LoginMode, Origin, Session, ToFrontend,
};
use crate::world::atlas::{Atlas, Direction};
use crate::world::{World, WorldSettings};

const WAIT: Duration = Duration::from_secs(5);

fn world(dir: &Path) -> World {
    let settings = WorldSettings {
        world: crate::world::WorldSource::built_in(),
        builders: Vec::new(),
        state_dir: dir.to_path_buf(),
        log: Arc::new(|_: &str| {}),
    };
    World::start(settings).unwrap()
}

struct Player {
    session: Session,
    from_world: Receiver<(ClientId, ToFrontend)>,
    next_ticket: u64,
}

impl Player {
    fn login(
        world: &World,
        name: &str,
        origin: Origin,
        mode: LoginMode,
    ) -> Result<(Player, Vec<Event>), LoginError> {
        let (to_frontend, from_world) = bounded(1024);
        let session = world.gate().login(
            name,
            origin,
            mode,
            FrontendEnd {
                client: 7,
                to_frontend,
            },
        )?;
        let mut player = Player {
            session,
            from_world,
            next_ticket: 1,
        };
        let view = player.until_done(0);
        Ok((player, view))
    }

    fn join(world: &World, name: &str) -> Player {
        Player::login(world, name, Origin::Web, LoginMode::Resume)
            .unwrap()
            .0
    }

    fn until_done(&mut self, ticket: u64) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self
                .from_world
                .recv_timeout(WAIT)
                .expect("the world answers")
            {
                (7, ToFrontend::Event(event)) => events.push(event),
                (7, ToFrontend::Done(done)) if done == ticket => return events,
                (7, ToFrontend::Done(_)) => {}
                (7, ToFrontend::Ended) => return events,
                (client, _) => panic!("message for client {client}"),
            }
        }
    }

    fn command(&mut self, line: &str) -> Vec<Event> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.session
            .commands
            .send(Command {
                line: line.to_string(),
                ticket,
            })
            .unwrap();
        self.until_done(ticket)
    }

    fn text(&mut self, line: &str) -> String {
        self.command(line)
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads what arrives unasked until `wanted` matches.
    fn sees(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
        loop {
            if let (_, ToFrontend::Event(event)) =
                self.from_world.recv_timeout(WAIT).expect("an event")
            {
                if wanted(&event) {
                    return event;
                }
            }
        }
    }

    fn ended(&mut self) {
        loop {
            if let (_, ToFrontend::Ended) = self.from_world.recv_timeout(WAIT).expect("the end") {
                return;
            }
        }
    }
}

fn item(key: &str) -> crate::event::ItemRef {
    let atlas = Atlas::built_in().unwrap();
    atlas.items[atlas.item_by_key(key).unwrap()].clone()
}

#[test]
fn players_see_each_other_walk_talk_and_take() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let (mut alice, view) =
        Player::login(&world, "alice", Origin::Web, LoginMode::Register).unwrap();
    assert!(
        matches!(&view[..], [Event::Room(room)] if &*room.title == "The Listening Gate"),
        "{view:?}"
    );
    let mut bob = Player::join(&world, "bob");
    alice.sees(|e| matches!(e, Event::Arrived { who, from: None } if &**who == "bob"));

    assert!(alice.text("look").contains("Also here: bob."));
    assert_eq!(bob.text("say hello there"), "You say: hello there");
    alice.sees(|e| {
        *e == Event::Said {
            who: "bob".into(),
            text: "hello there".into(),
        }
    });

    assert_eq!(bob.text("take lamp"), "You take a brass lamp.");
    alice.sees(|e| {
        *e == Event::Took {
            who: "bob".into(),
            item: item("lamp"),
        }
    });
    assert_eq!(alice.text("take lamp"), "There is no lamp here.");
    assert_eq!(bob.text("i"), "You are carrying a brass lamp.");

    assert!(bob.text("north").starts_with("Front-End Hall"));
    alice.sees(|e| {
        *e == Event::Departed {
            who: "bob".into(),
            toward: Some(Direction::North),
        }
    });
    assert!(bob.text("west").starts_with("The Idle Pool"));
    assert_eq!(bob.text("drop lamp"), "You drop a brass lamp.");
    assert_eq!(bob.text("up").lines().next(), Some("The Recycler"));
    assert_eq!(bob.text("west"), "You can't go west from here.");
    assert!(bob.text("dance").contains("help"));
    assert!(bob.text("help").contains("inventory"));
    assert_eq!(alice.text("who"), "Playing now (2): alice and bob.");
    assert_eq!(
        bob.text("quit"),
        "You leave the world. Your place and your things are kept for you."
    );
    bob.ended();
    assert_eq!(alice.text("who"), "Playing now (1): alice.");
}

#[test]
fn names_belong_to_one_player_and_one_frontend() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let _alice = Player::join(&world, "alice");
    let taken = Player::login(&world, "Alice", Origin::Web, LoginMode::Register);
    assert_eq!(taken.err(), Some(LoginError::NameTaken));
    let other = Player::login(&world, "alice", Origin::Irc, LoginMode::Resume);
    assert_eq!(other.err(), Some(LoginError::OtherOrigin(Origin::Web)));
    let bad = Player::login(&world, "<b>", Origin::Web, LoginMode::Resume);
    assert_eq!(bad.err(), Some(LoginError::BadName));
}

#[test]
fn a_second_login_displaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let mut first = Player::join(&world, "carol");
    first.text("take lamp");
    let mut second = Player::join(&world, "carol");
    first.ended();
    assert_eq!(second.text("inventory"), "You are carrying a brass lamp.");
}

#[test]
fn the_world_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let world = world(dir.path());
        let mut dave = Player::join(&world, "dave");
        dave.text("take lamp");
        dave.text("n");
        dave.text("take scroll");
        dave.text("drop lamp");
        dave.text("w");
    }
    let world = world(dir.path());
    let (mut dave, view) = Player::login(&world, "dave", Origin::Web, LoginMode::Resume).unwrap();
    assert!(
        matches!(&view[..], [Event::Room(room)] if &*room.title == "The Idle Pool"),
        "{view:?}"
    );
    assert_eq!(
        dave.text("i"),
        "You are carrying a scroll reading GET / HTTP/1.1."
    );
    dave.text("e");
    assert!(dave.text("look").contains("a brass lamp"));
}

#[test]
fn a_player_whose_frontend_hangs_up_leaves_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let mut erin = Player::join(&world, "erin");
    let frank = Player::join(&world, "frank");
    erin.sees(|e| matches!(e, Event::Arrived { who, .. } if &**who == "frank"));
    drop(frank);
    erin.sees(|e| matches!(e, Event::Departed { who, toward: None } if &**who == "frank"));
    // The room lets frank go before his user process hands its record to the gate, so the
    // gate may still count him for a moment.
    let who = (0..100)
        .map(|_| erin.text("who"))
        .find(|who| who == "Playing now (1): erin.");
    assert!(who.is_some());
}

#[test]
fn take_all_and_drop_all() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let mut gina = Player::join(&world, "gina");
    gina.text("n");
    let took = gina.text("take all");
    assert!(
        took.contains("scroll") && took.contains("channel"),
        "{took}"
    );
    assert_eq!(gina.text("take all"), "There is nothing here to take.");
    let dropped = gina.text("drop all");
    assert!(dropped.contains("You drop"), "{dropped}");
    assert_eq!(gina.text("i"), "You are carrying nothing.");
}

#[test]
fn a_frontend_that_never_reads_does_not_stall_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    // A frontend whose inbox holds one message and is never read.
    let (to_frontend, _never_read) = bounded(1);
    let frontend = FrontendEnd {
        client: 9,
        to_frontend,
    };
    let stuck = world
        .gate()
        .login("Stuck", Origin::Irc, LoginMode::Resume, frontend)
        .unwrap();
    let mut talker = Player::join(&world, "talker");
    for n in 0..200 {
        assert_eq!(talker.text(&format!("say {n}")), format!("You say: {n}"));
    }
    assert_eq!(talker.text("who"), "Playing now (2): Stuck and talker.");
    drop(stuck);
}

/// Walks `player` along `ways`, one direction per command.
fn walk(player: &mut Player, ways: &[&str]) -> String {
    let mut last = String::new();
    for way in ways {
        last = player.text(way);
    }
    last
}

#[test]
fn the_quest_from_start_to_ending_survives_a_restart_half_way() {
    let dir = tempfile::tempdir().unwrap();
    {
        let world = world(dir.path());
        // Without a light the cellar shows nothing; with one, the tag.
        let mut bob = Player::join(&world, "bob");
        assert!(walk(&mut bob, &["n", "n", "w", "d"]).contains("It is pitch dark."));
        assert_eq!(
            bob.text("take tag"),
            "It is too dark to find anything. You need a light."
        );
        bob.text("quit");
        let mut alice = Player::join(&world, "alice");
        assert_eq!(alice.text("score"), "Your score is 0 of 50 points.");
        assert!(alice.text("examine lamp").contains("lights up dark places"));
        alice.text("take lamp");
        let cellar = walk(&mut alice, &["n", "n", "w", "d"]);
        assert!(cellar.contains("You see a PID tag here."), "{cellar}");
        assert_eq!(
            alice.text("take tag"),
            "You take a PID tag.\nYou earn 5 points. Your score is 5 of 50."
        );
        walk(&mut alice, &["u", "e", "s", "s", "e"]);
        assert!(alice.text("talk to porter").contains("Bring me its tag"));
        assert_eq!(
            alice.text("give lamp to porter"),
            "The porter does not want the brass lamp."
        );
        let gift = alice.text("give tag to porter");
        assert!(gift.contains("You take a golden keep-alive key."), "{gift}");
        assert!(gift.contains("Your score is 15 of 50."), "{gift}");
        let antechamber = walk(&mut alice, &["w", "n", "n", "n"]);
        assert!(
            antechamber.contains("The brass-bound door to the north is closed and locked."),
            "{antechamber}"
        );
        assert_eq!(alice.text("n"), "The brass-bound door is closed.");
        assert_eq!(alice.text("open door"), "The brass-bound door is locked.");
        assert_eq!(
            alice.text("unlock door with key"),
            "You unlock the brass-bound door."
        );
        assert_eq!(alice.text("open door"), "You open the brass-bound door.");
        assert!(alice.text("n").starts_with("The Hot Vault"));
        assert_eq!(alice.text("take chest"), "The iron chest will not budge.");
        assert_eq!(
            alice.text("open chest"),
            "You open the iron chest. Inside: a warm cached page."
        );
        alice.text("quit");
    }
    // The world stops and starts again: the door stays open, the chest open and full,
    // alice's score and things kept.
    let world = world(dir.path());
    let (mut alice, view) = Player::login(&world, "alice", Origin::Web, LoginMode::Resume).unwrap();
    assert!(
        matches!(&view[..], [Event::Room(room)] if &*room.title == "The Hot Vault"),
        "{view:?}"
    );
    assert!(alice
        .text("look")
        .contains("The brass-bound door to the south is open."));
    assert_eq!(alice.text("score"), "Your score is 15 of 50 points.");
    assert!(alice
        .text("x chest")
        .contains("It is open. Inside: a warm cached page."));
    let mut bob = Player::join(&world, "bob");
    assert_eq!(
        alice.text("take page"),
        "You take a warm cached page.\nYou earn 10 points. Your score is 25 of 50."
    );
    assert!(alice
        .text("read page")
        .contains("the answer the scribe lost"));
    walk(&mut alice, &["s", "e", "n", "e"]);
    let ending = alice.text("give page to scribe");
    assert!(ending.contains("Your score is 50 of 50."), "{ending}");
    let announced = "*** alice has returned the lost page to the scribe and finished The Lost Request, with 50 of 50 points! ***";
    // The ending is announced to everyone in the world, the finisher too (before or after
    // the command's end, as the gate's message and the commit cross).
    if !ending.contains(announced) {
        alice.sees(|e| e.to_string() == announced);
    }
    bob.sees(|e| e.to_string() == announced);
    assert_eq!(
        alice.text("score"),
        "You finished The Lost Request with 50 of 50 points."
    );
    assert_eq!(alice.text("give page to scribe"), "You have no page.");
}

#[test]
fn tell_emote_and_give_between_players() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let mut carol = Player::join(&world, "carol");
    let mut dave = Player::join(&world, "dave");
    carol.sees(|e| matches!(e, Event::Arrived { .. }));
    assert_eq!(carol.text("tell dave meet me"), "You tell dave: meet me");
    dave.sees(|e| e.to_string() == "carol tells you: meet me");
    assert_eq!(
        carol.text("tell nobody hi"),
        "No one called nobody is playing."
    );
    assert_eq!(carol.text("emote waves"), "carol waves");
    dave.sees(|e| e.to_string() == "carol waves");
    carol.text("take lamp");
    assert_eq!(
        carol.text("give lamp to dave"),
        "You give a brass lamp to dave."
    );
    dave.sees(|e| e.to_string() == "carol gives you a brass lamp.");
    assert_eq!(dave.text("i"), "You are carrying a brass lamp.");
    assert_eq!(carol.text("give lamp to dave"), "You have no lamp.");
}

#[test]
fn bots_open_doors_and_give_things() {
    let text = "[world]\ntitle = \"Tiny\"\nstart = \"a\"\n\
        [rooms.a]\ntitle = \"A\"\ndescription = \"Room A.\"\nexits = { north = { to = \"b\", door = \"gate\" } }\n\
        [rooms.b]\ntitle = \"B\"\ndescription = \"Room B.\"\nexits = { south = { to = \"a\", door = \"gate\" } }\n\
        [doors.gate]\nname = \"a wooden door\"\nwords = [\"door\", \"wooden\"]\nclosed = true\n\
        [items.pebble]\nname = \"a pebble\"\nwords = [\"pebble\"]\nin = \"a\"\n\
        [items.shell]\nname = \"a shell\"\nwords = [\"shell\"]\nin = \"a\"\n";
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(WorldSettings {
        world: crate::world::WorldSource {
            text: text.into(),
            name: "tiny.toml".to_string(),
        },
        builders: Vec::new(),
        state_dir: dir.path().to_path_buf(),
        log: Arc::new(|_: &str| {}),
    })
    .unwrap();
    let mut watcher = Player::join(&world, "watcher");
    let (stop, stopped) = bounded(1);
    let gate = world.gate();
    let settings = crate::bots::BotSettings {
        count: 4,
        think: Duration::from_millis(2),
    };
    let bots = std::thread::spawn(move || {
        crate::bots::run(gate, settings, stopped, Arc::new(|_: &str| {}))
    });
    let said = |e: &Event, wanted: &str| matches!(e, Event::Text { kind: "happened", text } if text.contains(wanted));
    watcher.sees(|e| said(e, "opens the wooden door."));
    watcher.sees(|e| said(e, " gives "));
    drop(stop);
    bots.join().unwrap();
}

#[test]
fn builders_dig_describe_create_link_destroy_and_export_and_it_is_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        World::start(WorldSettings {
            world: crate::world::WorldSource::built_in(),
            builders: vec!["Bea".to_string()],
            state_dir: dir.path().to_path_buf(),
            log: Arc::new(|_: &str| {}),
        })
        .unwrap()
    };
    {
        let world = start();
        let mut carl = Player::join(&world, "carl");
        assert!(carl
            .text("@dig up roof The Roof")
            .starts_with("Only builders"));
        let mut bea = Player::join(&world, "bea");
        carl.sees(|e| matches!(e, Event::Arrived { .. }));
        assert_eq!(bea.text("take lamp"), "You take a brass lamp.");
        assert_eq!(bea.text("@destroy lamp"), "The brass lamp is gone.");
        assert_eq!(bea.text("@dig up roof The Roof"), "You dig up: The Roof.");
        assert_eq!(
            bea.text("@dig up attic The Attic"),
            "This room already has an exit up."
        );
        assert_eq!(bea.text("@dig east roof Again"), "The key 'roof' is taken.");
        assert!(bea
            .text("up")
            .starts_with("The Roof\nA bare room, freshly dug."));
        assert_eq!(
            bea.text("@describe here Wind, and the whole server below."),
            "You describe this room anew."
        );
        assert_eq!(
            bea.text("@create flag a small flag"),
            "You make a small flag."
        );
        assert_eq!(bea.text("drop flag"), "You drop a small flag.");
        assert_eq!(bea.text("@link west gate"), "You open a way west.");
        let export = bea.text("@export");
        assert!(export.contains("export.toml"), "{export}");
        let exported = std::fs::read_to_string(dir.path().join("export.toml")).unwrap();
        let atlas = Atlas::parse(&exported, "export.toml").unwrap();
        assert!(atlas.room_by_key("roof").is_some());
        assert!(atlas.item_by_key("lamp").is_none());
        bea.text("quit");
    }
    // Everything the builder did is there after a restart.
    let world = start();
    let (mut bea, view) = Player::login(&world, "bea", Origin::Web, LoginMode::Resume).unwrap();
    let view: Vec<String> = view.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        view,
        ["The Roof\nWind, and the whole server below.\nExits: west, down.\nYou see a small flag here."]
    );
    assert!(bea.text("west").starts_with("The Listening Gate"));
    assert!(!bea.text("look").contains("lamp"));
}

#[test]
fn a_world_file_that_adds_and_removes_things_keeps_the_rest_of_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let start = |text: &str| {
        let seen = lines.clone();
        World::start(WorldSettings {
            world: crate::world::WorldSource {
                text: text.into(),
                name: "changed.toml".to_string(),
            },
            builders: Vec::new(),
            state_dir: dir.path().to_path_buf(),
            log: Arc::new(move |line: &str| seen.lock().unwrap().push(line.to_string())),
        })
        .unwrap()
    };
    let built_in = crate::world::atlas::BUILT_IN;
    {
        let world = start(built_in);
        let mut alice = Player::join(&world, "alice");
        alice.text("take lamp");
        alice.text("n");
        alice.text("take scroll");
        let mut bob = Player::join(&world, "bob");
        walk(&mut bob, &["n", "w", "d"]);
        assert!(bob.text("look").starts_with("The Epoll Grotto"));
    }
    // The new file has no lamp and no grotto, and a new room and object.
    let lamp = built_in.find("[items.lamp]").unwrap();
    let after_lamp = lamp + built_in[lamp..].find("\n\n").unwrap();
    let changed = format!("{}{}", &built_in[..lamp], &built_in[after_lamp..])
        .replace(
            "exits = { east = \"hall\", down = \"grotto\", up = \"recycler\" }",
            "exits = { east = \"hall\", up = \"recycler\" }",
        )
        .replace("[rooms.grotto]", "[rooms.attic]")
        .replace("in = \"grotto\"", "in = \"attic\"")
        + "\n[items.hat]\nname = \"a hat\"\nwords = [\"hat\"]\nin = \"gate\"\n";
    let world = start(&changed);
    let logged = lines.lock().unwrap().join("\n");
    assert!(logged.contains("object 'lamp'"), "{logged}");
    assert!(logged.contains("room 'grotto'"), "{logged}");
    let (mut alice, _) = Player::login(&world, "alice", Origin::Web, LoginMode::Resume).unwrap();
    assert_eq!(
        alice.text("i"),
        "You are carrying a scroll reading GET / HTTP/1.1."
    );
    let (mut bob, view) = Player::login(&world, "bob", Origin::Web, LoginMode::Resume).unwrap();
    assert!(
        matches!(&view[..], [Event::Room(room)] if &*room.title == "The Listening Gate"),
        "{view:?}"
    );
    assert!(bob.text("look").contains("a hat"));
}
