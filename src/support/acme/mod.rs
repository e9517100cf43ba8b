//! acme: keeps a certificate for each of `[tls.acme] names`, obtained from an ACME CA by the
//! http-01 challenge, renewed when a third of its lifetime remains, kept in `state_dir`, and
//! published to the TLS certificate resolver without a restart. Instances: 1, when
//! `[tls.acme]` is set. Off the request path: the replicas only read the `Board` (a pending
//! challenge's answer, in `answer`), and handshakes only read the published certificates.
//! The ACME client (instant-acme) is async: it runs on a current-thread tokio runtime owned
//! by this one thread, which blocks on it for one order at a time.
//! In: ToAcme (SIGHUP: retry failed names now). Out: the Board, ToLog.
//! Stops: inbox disconnected.

mod client;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use crate::protocol::{ToAcme, ToLog};
use store::Held;

/// The first retry after a failed order; each further failure doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between retries.
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// The longest an order may take, from the first request to the certificate.
const ORDER_LIMIT: Duration = Duration::from_secs(300);

/// `[tls.acme]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's ACME directory URL (Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// The account's contact address; empty: none.
    #[serde(default)]
    pub email: String,
    /// The names to keep certificates for, one certificate each.
    pub names: Vec<String>,
    /// Where the account key, certificates and keys are kept (created 0700).
    pub state_dir: PathBuf,
    /// PEM trust anchors for the ACME directory's HTTPS (default: the system's).
    pub ca_file: Option<PathBuf>,
}

impl AcmeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.directory.starts_with("https://") {
            return Err(format!(
                "[tls.acme] directory {:?} must be an https:// URL",
                self.directory
            ));
        }
        if self.names.is_empty() {
            return Err("[tls.acme] names must not be empty".to_string());
        }
        for name in &self.names {
            if name.starts_with("*.") {
                return Err(format!(
                    "[tls.acme] {name}: wildcard names need the dns-01 challenge; \
                     only http-01 is offered"
                ));
            }
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.parse::<std::net::IpAddr>().is_err()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !valid {
                return Err(format!(
                    "[tls.acme] {name:?} is not a DNS name (lower case letters, digits, '-' and '.')"
                ));
            }
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err("[tls.acme] state_dir must be set".to_string());
        }
        Ok(())
    }

    fn contact(&self) -> Vec<String> {
        match self.email.trim() {
            "" => Vec::new(),
            email if email.starts_with("mailto:") => vec![email.to_string()],
            email => vec![format!("mailto:{email}")],
        }
    }
}

/// What `--check` can tell without asking the CA: `ca_file` holds certificates, and
/// `state_dir` is a directory or can be made one.
pub fn check(cfg: &AcmeConfig) -> Result<(), String> {
    if let Some(ca_file) = &cfg.ca_file {
        client::trust_anchors(ca_file).map(|_| ())?;
    }
    let dir = &cfg.state_dir;
    if dir.exists() {
        if !dir.is_dir() {
            return Err(format!("state_dir {} is not a directory", dir.display()));
        }
    } else {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            return Err(format!(
                "state_dir {}: its parent directory does not exist",
                dir.display()
            ));
        }
    }
    Ok(())
}

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
    loaded: Mutex<Option<Vec<Entry>>>,
    cfg: AcmeConfig,
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

    fn publish_challenge(&self, token: &str, key_authorization: &str) {
        let mut next = self.challenges.load().as_ref().clone();
        next.insert(token.to_string(), key_authorization.to_string());
        self.challenges.store(Arc::new(next));
    }

    fn withdraw_challenge(&self, token: &str) {
        let mut next = self.challenges.load().as_ref().clone();
        next.remove(token);
        self.challenges.store(Arc::new(next));
    }

    /// Publishes the certificates held and the status of every name.
    fn publish(&self, entries: &[Entry]) {
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
struct Entry {
    name: String,
    /// The certificate being served.
    held: Option<Held>,
    /// When to order next: the renewal point, or the next retry.
    due: SystemTime,
    failures: u32,
    last_error: Option<(SystemTime, String)>,
    /// A line for the log when the process starts.
    note: String,
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

/// The wait after `failures` orders failed in a row: 10 s, doubling, at most an hour.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY * 2u32.pow(doublings)).min(LONGEST_RETRY)
}

fn date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The acme process: waits until some name is due, orders its certificate, and publishes
/// it; a failure is logged and retried with back-off while the old certificate keeps serving.
pub fn run(inbox: Receiver<ToAcme>, board: Arc<Board>, to_log: Sender<ToLog>) {
    let log = |line: String| {
        let _ = to_log.try_send(ToLog::Error(line));
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return log(format!(
                "acme: cannot start its runtime: {e}; no certificates will be ordered"
            ))
        }
    };
    let taken = board.loaded.lock().ok().and_then(|mut l| l.take());
    let Some(mut entries) = taken else {
        return;
    };
    for entry in &entries {
        log(entry.note.clone());
    }
    let cfg = board.cfg.clone();
    loop {
        let now = SystemTime::now();
        let next = entries.iter().map(|e| e.due).min().unwrap_or(now);
        let wait = next.duration_since(now).unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            match inbox.recv_timeout(wait) {
                Ok(ToAcme::Retry) => {
                    for entry in entries.iter_mut().filter(|e| e.failures > 0) {
                        entry.due = SystemTime::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let now = SystemTime::now();
        let Some(index) = entries.iter().position(|e| e.due <= now) else {
            continue;
        };
        let entry = &mut entries[index];
        let outcome = runtime.block_on(async {
            // A fresh account handle, and so a fresh HTTP client, for each order: a
            // connection kept from the last one, hours ago, would long be dead.
            let attempt = async {
                let (account, new) = client::account(&cfg).await?;
                if new {
                    log(format!(
                        "acme: registered a new account at {} (kept in {})",
                        cfg.directory,
                        cfg.state_dir.display()
                    ));
                }
                client::obtain(&account, &entry.name, &board).await
            };
            match tokio::time::timeout(ORDER_LIMIT, attempt).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} s", ORDER_LIMIT.as_secs())),
            }
        });
        let outcome = outcome.and_then(|issued| {
            store::save(
                &cfg.state_dir,
                &entry.name,
                &issued.chain_pem,
                &issued.key_pem,
            )
        });
        match outcome {
            Ok(held) => {
                entry.due = held.renew_at();
                log(format!(
                    "acme: {}: certificate obtained (serial {}, expires {}); renewal due {}",
                    entry.name,
                    held.serial,
                    date(held.not_after),
                    date(entry.due)
                ));
                entry.held = Some(held);
                entry.failures = 0;
            }
            Err(e) => {
                if e.contains("accountDoesNotExist") {
                    // The CA forgot the account (a test CA restarted): make a new one.
                    let _ =
                        std::fs::remove_file(store::account_path(&cfg.state_dir, &cfg.directory));
                }
                entry.failures += 1;
                let wait = backoff(entry.failures);
                entry.due = SystemTime::now() + wait;
                entry.last_error = Some((SystemTime::now(), e.clone()));
                let serving = match &entry.held {
                    Some(held) => format!("still serving serial {}", held.serial),
                    None => "no certificate yet".to_string(),
                };
                log(format!(
                    "acme: {}: order failed (attempt {}): {e}; retrying in {} s; {serving}",
                    entry.name,
                    entry.failures,
                    wait.as_secs()
                ));
            }
        }
        board.publish(&entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour() {
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff(u32::MAX), LONGEST_RETRY);
    }

    fn cfg(names: &[&str]) -> AcmeConfig {
        AcmeConfig {
            directory: "https://127.0.0.1:14000/dir".to_string(),
            email: "admin@example.org".to_string(),
            names: names.iter().map(|n| n.to_string()).collect(),
            state_dir: PathBuf::from("/var/lib/occwserv/acme"),
            ca_file: None,
        }
    }

    #[test]
    fn names_must_be_plain_dns_names() {
        assert!(cfg(&["a.example", "www.a-b.example"]).validate().is_ok());
        for bad in [
            "*.a.example",
            "A.example",
            "a..example",
            "-a.example",
            "127.0.0.1",
            "",
        ] {
            assert!(cfg(&[bad]).validate().is_err(), "{bad}");
        }
        assert!(cfg(&[]).validate().is_err());
        let mut plain = cfg(&["a.example"]);
        plain.directory = "http://127.0.0.1:14000/dir".to_string();
        assert!(plain.validate().is_err());
    }

    #[test]
    fn contact_gets_mailto() {
        assert_eq!(cfg(&["a.example"]).contact(), ["mailto:admin@example.org"]);
        let mut none = cfg(&["a.example"]);
        none.email = String::new();
        assert!(none.contact().is_empty());
    }

    /// The process driven by its channels: a CA nobody answers makes each order fail and
    /// back off; `Retry` orders again at once; a dropped inbox stops it.
    #[test]
    fn failed_orders_are_logged_retried_on_request_and_the_process_stops_on_disconnect() {
        let tmp = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = cfg(&["a.example"]);
        c.directory = format!("https://127.0.0.1:{port}/dir");
        c.state_dir = tmp.path().join("acme");
        let board = Arc::new(Board::open(&c, Arc::new(Obtained::default())).unwrap());
        let (to_acme, inbox) = crossbeam_channel::bounded(1);
        let (to_log, log) = crossbeam_channel::bounded(64);
        let process = {
            let board = board.clone();
            std::thread::spawn(move || run(inbox, board, to_log))
        };
        let next_line = |needle: &str| loop {
            let Ok(ToLog::Error(line)) = log.recv_timeout(Duration::from_secs(20)) else {
                panic!("no log line with {needle:?}");
            };
            if line.contains(needle) {
                return line;
            }
        };
        next_line("a.example: no certificate in state_dir yet");
        let first = next_line("order failed (attempt 1)");
        assert!(
            first.contains("retrying in 10 s; no certificate yet"),
            "{first}"
        );
        assert_eq!(board.status()[0].state, "retrying");
        assert_eq!(board.status()[0].failures, 1);
        // Retry now, not in 10 s (the wait is bounded by recv_timeout above).
        to_acme.send(ToAcme::Retry).unwrap();
        let second = next_line("order failed (attempt 2)");
        assert!(second.contains("retrying in 20 s"), "{second}");
        drop(to_acme);
        process.join().unwrap();
    }

    #[test]
    fn challenges_are_answered_while_published() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = cfg(&["a.example"]);
        c.state_dir = tmp.path().join("acme");
        let board = Board::open(&c, Arc::new(Obtained::default())).unwrap();
        assert_eq!(board.challenge("tok"), None);
        board.publish_challenge("tok", "tok.thumb");
        assert_eq!(board.challenge("tok").as_deref(), Some("tok.thumb"));
        board.withdraw_challenge("tok");
        assert_eq!(board.challenge("tok"), None);
        let status = board.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].state, "obtaining");
    }
}
