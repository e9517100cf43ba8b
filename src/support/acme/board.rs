//! The acme process's shared state: the answers to pending http-01 challenges (read by the
//! replicas), the certificates obtained (read by handshakes, through `Obtained`), and each
//! name's status (read by stats). Written only by the acme process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

use super::store::{self, Held};
use super::AcmeConfig;

/// The answer to an http-01 challenge for `path` (`/.well-known/acme-challenge/TOKEN`), when
/// the acme process has one pending for that token. Called by the replicas for every
/// request; costs a prefix comparison unless the path is a challenge's.
pub fn answer(path: &str, cfg: &crate::support::config::Config) -> Option<String> {
    let token = path.strip_prefix(crate::farm::reply::ACME_CHALLENGE)?;
    cfg.acme_state.as_ref()?.challenge(token)
}

/// The certificates obtained, in `names` order; read by every handshake, written only by
/// the acme process.
#[derive(Default)]
pub struct Obtained {
    set: ArcSwap<Vec<(String, Arc<CertifiedKey>)>>,
}

impl Obtained {
    /// The certificate for `name` (lower case, without a trailing dot).
    pub fn for_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        set.iter().find(|(n, _)| n == name).map(|(_, k)| k.clone())
    }

    /// The first name's certificate: the default when `[tls]` names no certificate file.
    pub fn first(&self) -> Option<Arc<CertifiedKey>> {
        self.set.load().first().map(|(_, k)| k.clone())
    }

    pub fn publish(&self, set: Vec<(String, Arc<CertifiedKey>)>) {
        self.set.store(Arc::new(set));
    }
}

/// One name's state, as `/stats.json` shows it (`acme`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NameStatus {
    pub name: String,
    /// `valid` (serving, renewal scheduled), `obtaining` (no certificate yet), `retrying`
    /// (the last order failed; back-off).
    pub state: &'static str,
    /// Of the certificate served, if any.
    pub serial: Option<String>,
    pub expires: Option<String>,
    pub expires_unix: Option<u64>,
    /// When the next order is due: renewal, or the next retry.
    pub next_order: Option<String>,
    pub next_order_unix: Option<u64>,
    /// Orders failed in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// What the acme process shares: the answers to pending http-01 challenges, the certificates
/// (through `Obtained`), and the status per name.
pub struct Board {
    challenges: ArcSwap<HashMap<String, String>>,
    obtained: Arc<Obtained>,
    status: ArcSwap<Vec<NameStatus>>,
    /// What `open` found in `state_dir`, taken once by the process.
    pub(super) loaded: Mutex<Option<Vec<Entry>>>,
    pub(super) cfg: AcmeConfig,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("acme::Board")
    }
}

impl Board {
    /// Prepares `state_dir` and serves at once every certificate kept there that is still
    /// valid for its name, before any connection is accepted.
    pub fn open(cfg: &AcmeConfig, obtained: Arc<Obtained>) -> Result<Board, String> {
        store::prepare(&cfg.state_dir).map_err(|e| format!("[tls.acme] state_dir: {e}"))?;
        let now = SystemTime::now();
        let entries: Vec<Entry> = cfg
            .names
            .iter()
            .map(|name| {
                let mut entry = Entry {
                    name: name.clone(),
                    held: None,
                    due: now,
                    failures: 0,
                    last_error: None,
                    note: String::new(),
                };
                match store::load(&cfg.state_dir, name) {
                    Ok(Some(held)) if held.not_after > now => {
                        entry.due = held.renew_at();
                        entry.note = format!(
                            "acme: {name}: serving the certificate kept in state_dir (serial {}, \
                             expires {}); renewal due {}",
                            held.serial,
                            date(held.not_after),
                            date(entry.due)
                        );
                        entry.held = Some(held);
                    }
                    Ok(Some(held)) => {
                        entry.note = format!(
                            "acme: {name}: the certificate kept in state_dir expired {}; ordering a new one",
                            date(held.not_after)
                        );
                    }
                    Ok(None) => {
                        entry.note = format!(
                            "acme: {name}: no certificate in state_dir yet; ordering one from {} \
                             (until then, handshakes for it use the default certificate, or are refused without one)",
                            cfg.directory
                        );
                    }
                    Err(e) => {
                        entry.note = format!(
                            "acme: {name}: the certificate kept in state_dir is unusable ({e}); ordering a new one"
                        );
                    }
                }
                entry
            })
            .collect();
        let board = Board {
            challenges: ArcSwap::from_pointee(HashMap::new()),
            obtained,
            status: ArcSwap::from_pointee(Vec::new()),
            loaded: Mutex::new(None),
            cfg: cfg.clone(),
        };
        board.publish(&entries);
        if let Ok(mut loaded) = board.loaded.lock() {
            *loaded = Some(entries);
        }
        Ok(board)
    }

    /// The key authorization for a pending http-01 challenge's token.
    pub fn challenge(&self, token: &str) -> Option<String> {
        self.challenges.load().get(token).cloned()
    }

    /// Each name's state, for the status pages.
    pub fn status(&self) -> Vec<NameStatus> {
        self.status.load().as_ref().clone()
    }

    pub(super) fn publish_challenge(&self, token: &str, key_authorization: &str) {
        let mut next = self.challenges.load().as_ref().clone();
        next.insert(token.to_string(), key_authorization.to_string());
        self.challenges.store(Arc::new(next));
    }

    pub(super) fn withdraw_challenge(&self, token: &str) {
        let mut next = self.challenges.load().as_ref().clone();
        next.remove(token);
        self.challenges.store(Arc::new(next));
    }

    /// Publishes the certificates held and the status of every name.
    pub(super) fn publish(&self, entries: &[Entry]) {
        self.obtained.publish(
            entries
                .iter()
                .filter_map(|e| e.held.as_ref().map(|h| (e.name.clone(), h.key.clone())))
                .collect(),
        );
        self.status
            .store(Arc::new(entries.iter().map(Entry::status).collect()));
    }
}

/// One name, as the process tracks it.
pub(super) struct Entry {
    pub(super) name: String,
    /// The certificate being served.
    pub(super) held: Option<Held>,
    /// When to order next: the renewal point, or the next retry.
    pub(super) due: SystemTime,
    pub(super) failures: u32,
    pub(super) last_error: Option<(SystemTime, String)>,
    /// A line for the log when the process starts.
    pub(super) note: String,
}

impl Entry {
    fn status(&self) -> NameStatus {
        let held = self.held.as_ref();
        NameStatus {
            name: self.name.clone(),
            state: match (held, self.failures) {
                (_, 1..) => "retrying",
                (Some(_), 0) => "valid",
                (None, 0) => "obtaining",
            },
            serial: held.map(|h| h.serial.clone()),
            expires: held.map(|h| date(h.not_after)),
            expires_unix: held.map(|h| unix(h.not_after)),
            next_order: Some(date(self.due)),
            next_order_unix: Some(unix(self.due)),
            failures: self.failures,
            last_error: self.last_error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: self.last_error.as_ref().map(|(at, _)| date(*at)),
        }
    }
}

pub(super) fn date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
