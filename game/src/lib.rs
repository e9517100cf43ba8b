//! The occwserv adventure game: one persistent multi-user world, played from a web page,
//! a websocket and IRC, loaded into the server as the persistent plug-in `/ogi/game`.
//!
//! `world/` is the world's process network (rooms, users, the gate, the journal);
//! `front/` holds the frontends, which only translate bytes to and from the game's
//! protocol (`protocol.rs`); `plugin.rs` binds it all to the server's plug-in interface.

pub mod bots;
pub mod event;
pub mod front;
pub mod plugin;
pub mod protocol;
pub mod settings;
pub mod token;
pub mod world;
