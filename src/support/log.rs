//! The log process: the only writer of the access and error logs.
//! Instances: 1. In: ToLog. Out: the two files (or stdout/stderr). Stops: inbox disconnected.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use crate::conn::Conn;
use crate::protocol::{Exchange, ToLog};
use crate::support::config::Live;

/// Where a log goes.
enum Sink {
    Stdout,
    Stderr,
    File(File),
    Off,
}

impl Sink {
    fn open(spec: &str) -> io::Result<Sink> {
        match spec {
            "" => Ok(Sink::Off),
            "-" | "stderr" => Ok(Sink::Stderr),
            "stdout" => Ok(Sink::Stdout),
            path => {
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir)?;
                }
                Ok(Sink::File(
                    OpenOptions::new().create(true).append(true).open(path)?,
                ))
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().write_all(bytes),
            Sink::Stderr => io::stderr().lock().write_all(bytes),
            Sink::File(f) => f.write_all(bytes),
            Sink::Off => Ok(()),
        }
    }
}

/// Opens both logs, so a bad path is a startup error rather than a silent loss.
pub fn check_paths(access: &str, error: &str) -> io::Result<()> {
    Sink::open(access)
        .map_err(|e| io::Error::new(e.kind(), format!("access log {access}: {e}")))?;
    Sink::open(error).map_err(|e| io::Error::new(e.kind(), format!("error log {error}: {e}")))?;
    Ok(())
}

/// Why a log could not be written, without creating or changing anything (`--check`).
pub fn check_writable(spec: &str) -> Option<String> {
    if matches!(spec, "" | "-" | "stderr" | "stdout") {
        return None;
    }
    let path = Path::new(spec);
    if path.exists() {
        return OpenOptions::new()
            .append(true)
            .open(path)
            .err()
            .map(|e| format!("{spec}: {e}"));
    }
    let mut dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    // The nearest existing directory must let us create the rest.
    while let Some(d) = dir {
        if d.exists() {
            let probe = nix::unistd::access(d, nix::unistd::AccessFlags::W_OK);
            return probe
                .err()
                .map(|e| format!("{spec}: {} is not writable: {e}", d.display()));
        }
        dir = d.parent().filter(|d| !d.as_os_str().is_empty());
    }
    None
}

pub fn run(inbox: Receiver<ToLog>, live: Live) {
    let cfg = live.load();
    let (mut access_spec, mut error_spec) = (cfg.access_log.clone(), cfg.error_log.clone());
    let mut access = Sink::open(&access_spec).unwrap_or(Sink::Stderr);
    let mut error = Sink::open(&error_spec).unwrap_or(Sink::Stderr);
    let mut failed = false;
    for msg in inbox {
        let result = match msg {
            ToLog::Access(lines) => access.write(lines.as_bytes()),
            ToLog::Error(line) => {
                let mut text = String::with_capacity(line.len() + 40);
                text.push('[');
                push_clf_time(&mut text, SystemTime::now());
                text.push_str("] ");
                text.push_str(&line);
                text.push('\n');
                error.write(text.as_bytes())
            }
            ToLog::Reopen => {
                let cfg = live.load();
                access_spec.clone_from(&cfg.access_log);
                error_spec.clone_from(&cfg.error_log);
                access = Sink::open(&access_spec).unwrap_or(Sink::Stderr);
                error = Sink::open(&error_spec).unwrap_or(Sink::Stderr);
                failed = false;
                Ok(())
            }
        };
        // An unwritable log must not stop the server; say so once on stderr.
        if let Err(e) = result {
            if !failed {
                failed = true;
                let _ = writeln!(io::stderr(), "occwserv: log write failed: {e}");
            }
        }
    }
}

/// Whether an access log is being written (set from the live config): request lines,
/// Referer and User-Agent are copied into an `Exchange` only then.
static ACCESS_LOG_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

pub fn set_access_log_on(on: bool) {
    ACCESS_LOG_ON.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn access_log_on() -> bool {
    ACCESS_LOG_ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Appends one Combined Log Format line for an exchange.
pub fn access_line(out: &mut String, conn: &Conn, exchange: &Exchange) {
    let _ = write!(out, "{} - - [", conn.peer.ip());
    push_clf_time(out, SystemTime::now());
    out.push_str("] \"");
    push_escaped(out, &exchange.request_line);
    let _ = write!(out, "\" {} ", exchange.status);
    if exchange.body_bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", exchange.body_bytes);
    }
    out.push_str(" \"");
    push_escaped(out, exchange.referer.as_deref().unwrap_or("-"));
    out.push_str("\" \"");
    push_escaped(out, exchange.user_agent.as_deref().unwrap_or("-"));
    out.push_str("\"\n");
}

/// Quotes and control characters are escaped, so a client cannot forge log lines.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends `10/Oct/2000:13:55:36 +0000` (UTC).
pub fn push_clf_time(out: &mut String, t: SystemTime) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time() {
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(971_211_336));
        assert_eq!(s, "10/Oct/2000:20:55:36 +0000");
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(1_709_164_800));
        assert_eq!(s, "29/Feb/2024:00:00:00 +0000");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_escaped(&mut s, "a\"b\nc");
        assert_eq!(s, "a\\\"b\\x0ac");
    }
}
