//! The game's settings: the `[game]` table of the server's config, given to the plug-in as
//! TOML text. Every key is optional.
//!
//! ```toml
//! [game]
//! world = "game/worlds/occwserv.toml"  # the world file (else the built-in occwserv world)
//! state_dir = "state/game"     # world.sqlite (the state) and the generated token key
//! token_key = "..."            # HMAC key for browser tokens (else generated once, kept in state_dir)
//! bots = 12                    # wandering bots
//! bot_think_ms = 3000          # mean time between one bot's actions
//! snapshot_every = 5000        # accepted and ignored: the state is in SQLite now
//! web_idle_secs = 900          # a web player with no request or websocket for this long leaves
//! telnet = "127.0.0.1:4000"    # absent: no telnet frontend
//! builders = ["wendy"]         # players who may use @dig, @describe, @create, @link, ...
//!
//! [game.irc]                   # absent: no IRC frontend
//! server = "127.0.0.1"
//! port = 6667
//! nick = "occgam"
//! channel = "#occgam"          # optional: joined and announced in
//! send_interval_ms = 500       # pacing of lines to the server, after a burst
//! burst = 5
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The `[game]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The world file; `None`: the built-in world (`game/worlds/occwserv.toml`).
    pub world: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub token_key: Option<String>,
    pub bots: usize,
    pub bot_think_ms: u64,
    /// Ignored: kept so configs written for the old journal still load.
    pub snapshot_every: u64,
    pub web_idle_secs: u64,
    /// Where the telnet frontend listens; `None`: no telnet.
    pub telnet: Option<String>,
    /// Players who may use the builders' commands, by name.
    pub builders: Vec<String>,
    pub irc: Option<IrcSettings>,
}

/// The `[game.irc]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IrcSettings {
    pub server: String,
    pub port: u16,
    pub nick: String,
    pub channel: Option<String>,
    pub send_interval_ms: u64,
    pub burst: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            world: None,
            state_dir: PathBuf::from("state/game"),
            token_key: None,
            bots: 12,
            bot_think_ms: 3000,
            snapshot_every: 5000,
            web_idle_secs: 900,
            telnet: None,
            builders: Vec::new(),
            irc: None,
        }
    }
}

impl Default for IrcSettings {
    fn default() -> Self {
        IrcSettings {
            server: "127.0.0.1".to_string(),
            port: 6667,
            nick: "occgam".to_string(),
            channel: None,
            send_interval_ms: 500,
            burst: 5,
        }
    }
}

/// The `[game]` table does not make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[game]: {}", self.0)
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Reads the table's TOML text; `None` (no `[game]` table) gives the defaults.
    pub fn parse(text: Option<&str>) -> Result<Settings, SettingsError> {
        let settings: Settings = match text {
            Some(text) => {
                toml::from_str(text).map_err(|e| SettingsError(e.message().to_string()))?
            }
            None => Settings::default(),
        };
        if settings.bot_think_ms == 0 {
            return Err(SettingsError(
                "bot_think_ms must be greater than 0".to_string(),
            ));
        }
        if settings
            .token_key
            .as_ref()
            .is_some_and(|key| key.len() < 16)
        {
            return Err(SettingsError(
                "token_key must be at least 16 characters".to_string(),
            ));
        }
        if let Some(irc) = &settings.irc {
            if irc.nick.is_empty() || irc.nick.contains(char::is_whitespace) {
                return Err(SettingsError("irc.nick must be one word".to_string()));
            }
            if irc
                .channel
                .as_ref()
                .is_some_and(|c| !c.starts_with(['#', '&']) || c.contains(char::is_whitespace))
            {
                return Err(SettingsError(
                    "irc.channel must look like #name".to_string(),
                ));
            }
            if irc.burst == 0 {
                return Err(SettingsError(
                    "irc.burst must be greater than 0".to_string(),
                ));
            }
        }
        Ok(settings)
    }

    pub fn bot_think(&self) -> Duration {
        Duration::from_millis(self.bot_think_ms)
    }

    pub fn web_idle(&self) -> Duration {
        Duration::from_secs(self.web_idle_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_table_means_defaults_and_no_irc() {
        assert_eq!(Settings::parse(None).unwrap(), Settings::default());
        assert_eq!(Settings::parse(Some("")).unwrap(), Settings::default());
    }

    #[test]
    fn a_full_table() {
        let text = "state_dir = \"/tmp/g\"\nbots = 500\n[irc]\nserver = \"127.0.0.1\"\nport = 6668\nchannel = \"#mud\"\n";
        let settings = Settings::parse(Some(text)).unwrap();
        assert_eq!(settings.bots, 500);
        let irc = settings.irc.unwrap();
        assert_eq!(
            (irc.port, irc.nick.as_str(), irc.channel.as_deref()),
            (6668, "occgam", Some("#mud"))
        );
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(Settings::parse(Some("bots = \"many\"")).is_err());
        assert!(Settings::parse(Some("colour = 3")).is_err());
        assert!(Settings::parse(Some("token_key = \"short\"")).is_err());
        assert!(Settings::parse(Some("[irc]\nnick = \"two words\"")).is_err());
        assert!(Settings::parse(Some("[irc]\nchannel = \"nohash\"")).is_err());
    }
}
