//! One running CGI program: starting it in its own process group, killing the group, reaping
//! it, and turning its stderr into error-log lines.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::protocol::ToLog;

/// Longest stderr line logged whole; the rest of a longer line is cut.
const MAX_LOG_LINE_BYTES: usize = 2048;

/// How long a program that has closed its output may linger before its group is killed.
pub const LINGER: Duration = Duration::from_secs(2);

/// Process groups of the programs running now, so a stopping server can kill them: once the
/// server has exited, nothing else would (locked twice per program, never on a hot path).
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<i32>> {
    RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kills the process group of every program still running (server shutdown).
pub fn kill_all() {
    for pgid in running().iter() {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
}

/// Marks every descriptor above stderr close-on-exec, once per server: the server's own are
/// already, but ones it inherited from whoever started it must not reach programs either.
pub fn close_inherited_on_exec() {
    static DONE: Once = Once::new();
    DONE.call_once(|| {
        let Ok(listing) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in listing.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
                continue;
            };
            if fd <= 2 {
                continue;
            }
            if let Ok(bits) = fcntl(fd, FcntlArg::F_GETFD) {
                let flags = FdFlag::from_bits_retain(bits) | FdFlag::FD_CLOEXEC;
                let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
            }
        }
    });
}

/// Where the program's stdin comes from.
pub enum Input {
    /// No request body: `/dev/null`.
    Empty,
    /// The body is streamed through a pipe as it arrives.
    Pipe,
    /// The body was already de-chunked into this (rewound) file.
    File(File),
}

/// A started program and the ends of its pipes still open.
pub struct Program {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// The program's URL path, which tags its log lines.
    pub tag: String,
    stderr_line: Vec<u8>,
    killed: bool,
    reaped: bool,
}

impl Program {
    /// Starts `program` with exactly `env`, in its own directory and process group, with
    /// non-blocking pipes. No arguments are passed: a query string never reaches argv.
    pub fn start(
        program: &Path,
        env: Vec<(String, OsString)>,
        input: Input,
        tag: String,
    ) -> io::Result<Program> {
        let mut command = Command::new(program);
        command.env_clear().envs(env).process_group(0);
        if let Some(dir) = program.parent() {
            command.current_dir(dir);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        match input {
            Input::Empty => command.stdin(Stdio::null()),
            Input::Pipe => command.stdin(Stdio::piped()),
            Input::File(file) => command.stdin(Stdio::from(file)),
        };
        let mut child = command.spawn()?;
        if let Ok(pid) = i32::try_from(child.id()) {
            running().push(pid);
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut started = Program {
            child,
            stdin,
            stdout,
            stderr,
            tag,
            stderr_line: Vec::new(),
            killed: false,
            reaped: false,
        };
        let fds = [
            started.stdin.as_ref().map(AsRawFd::as_raw_fd),
            started.stdout.as_ref().map(AsRawFd::as_raw_fd),
            started.stderr.as_ref().map(AsRawFd::as_raw_fd),
        ];
        for fd in fds.into_iter().flatten() {
            if let Err(e) = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
                started.kill();
                started.reap_now();
                return Err(io::Error::from(e));
            }
        }
        Ok(started)
    }

    /// Kills the program's whole process group (it is the group leader). The child has
    /// not been reaped yet, so its pid cannot have been reused.
    pub fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Reads what stderr has now and logs each complete line. Returns false at end of file.
    pub fn drain_stderr(&mut self, scratch: &mut [u8], to_log: &Sender<ToLog>) -> bool {
        let Some(stderr) = self.stderr.as_mut() else {
            return false;
        };
        match stderr.read(scratch) {
            Ok(0) => {
                self.stderr = None;
                self.flush_stderr(to_log);
                false
            }
            Ok(n) => {
                self.stderr_line.extend_from_slice(&scratch[..n]);
                while let Some(end) = self.stderr_line.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.stderr_line.drain(..=end).collect();
                    self.log_line(&line[..end], to_log);
                }
                if self.stderr_line.len() > MAX_LOG_LINE_BYTES {
                    let line = std::mem::take(&mut self.stderr_line);
                    self.log_line(&line, to_log);
                }
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                true
            }
            Err(_) => {
                self.stderr = None;
                self.flush_stderr(to_log);
                false
            }
        }
    }

    fn flush_stderr(&mut self, to_log: &Sender<ToLog>) {
        if !self.stderr_line.is_empty() {
            let line = std::mem::take(&mut self.stderr_line);
            self.log_line(&line, to_log);
        }
    }

    fn log_line(&self, line: &[u8], to_log: &Sender<ToLog>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = &line[..line.len().min(MAX_LOG_LINE_BYTES)];
        let text = String::from_utf8_lossy(line);
        let _ = to_log.try_send(ToLog::Error(format!("cgi {}: {}", self.tag, text)));
    }

    /// After the response: logs the rest of stderr, waits a little for the program to exit,
    /// kills its group if it lingers, and reaps it. Never leaves a zombie.
    pub fn finish(mut self, to_log: &Sender<ToLog>) {
        self.stdin = None;
        self.stdout = None;
        if self.killed {
            if let Ok(status) = self.child.wait() {
                self.log_exit(status, to_log);
            }
            self.mark_reaped();
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut scratch = [0u8; 4096];
        while self.stderr.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let readable = match self.stderr.as_ref() {
                Some(stderr) => {
                    let mut fds = [PollFd::new(
                        std::os::fd::AsFd::as_fd(stderr),
                        PollFlags::POLLIN,
                    )];
                    matches!(poll(&mut fds, millis(left)), Ok(n) if n > 0)
                }
                None => false,
            };
            if readable {
                self.drain_stderr(&mut scratch, to_log);
            }
        }
        self.stderr = None;
        let status = self.wait_until(deadline);
        match status {
            Some(status) => self.log_exit(status, to_log),
            None => {
                let _ = to_log.try_send(ToLog::Error(format!(
                    "cgi {}: still running after its output ended; killed",
                    self.tag
                )));
                self.kill();
                self.reap_now();
            }
        }
    }

    /// The signal that ended the program, if it exits within `wait` and a signal ended it
    /// (a crash or an outside kill; never one of the server's own kills). A program still
    /// running after `wait` is left to `finish`.
    pub fn crash_signal(&mut self, wait: Duration) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        if self.killed {
            return None;
        }
        self.wait_until(Instant::now() + wait)
            .and_then(|status| status.signal())
    }

    /// Waits for the program to exit until `deadline`, without blocking past it.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        // A program whose pipes just closed is usually microseconds from being a zombie, so
        // the pauses start short and grow; the exit has no descriptor to wait on.
        let mut pause = Duration::from_micros(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.mark_reaped();
                    return Some(status);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Reaps the program after a kill (or when it has certainly exited).
    pub fn reap_now(&mut self) {
        let _ = self.child.wait();
        self.mark_reaped();
    }

    fn mark_reaped(&mut self) {
        self.reaped = true;
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        running().retain(|p| *p != pid);
    }

    fn log_exit(&self, status: ExitStatus, to_log: &Sender<ToLog>) {
        // Death by our own SIGKILL is logged with its reason (timeout, client gone) elsewhere.
        if status.success() || (self.killed && status.code().is_none()) {
            return;
        }
        let _ = to_log.try_send(ToLog::Error(format!(
            "cgi {}: exited with {status}",
            self.tag
        )));
    }
}

/// A poll timeout of at least one millisecond (so a wait never spins) and at most a minute.
pub fn millis(duration: Duration) -> PollTimeout {
    let ms = duration.as_micros().div_ceil(1000).clamp(1, 60_000);
    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
}

impl Drop for Program {
    /// A program abandoned on any path (even a panic) is killed and reaped, never left a zombie.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.reap_now();
        }
    }
}
