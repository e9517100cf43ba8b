//! acme: keeps a certificate for each of `[tls.acme] names`, obtained from an ACME CA by the
//! http-01 challenge, renewed when a third of its lifetime remains, kept in `state_dir`, and
//! published to the TLS certificate resolver without a restart. Instances: 1, when
//! `[tls.acme]` is set. Off the request path: the replicas only read the `Board` (a pending
//! challenge's answer, in `answer`), and handshakes only read the published certificates.
//! The ACME client (instant-acme) is async: it runs on a current-thread tokio runtime owned
//! by this one thread, which blocks on it for one order at a time.
//! In: ToAcme (SIGHUP: retry failed names now). Out: the Board, ToLog.
//! Stops: inbox disconnected.

mod board;
mod client;
mod settings;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::protocol::{ToAcme, ToLog};
use board::date;
pub use board::{answer, Board, NameStatus, Obtained};
pub use settings::{check, AcmeConfig};

/// The first retry after a failed order; each further failure doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between retries.
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// The longest an order may take, from the first request to the certificate.
const ORDER_LIMIT: Duration = Duration::from_secs(300);

/// The wait after `failures` orders failed in a row: 10 s, doubling, at most an hour.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY * 2u32.pow(doublings)).min(LONGEST_RETRY)
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
    use std::path::PathBuf;

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
        // The board is published after the round's log lines: wait for it (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while board.status()[0].state != "retrying" {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                board.status()[0].state
            );
            std::thread::park_timeout(Duration::from_millis(10));
        }
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
