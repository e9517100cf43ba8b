//! The command line: parse flags and config, bind, start the network, wait for signals.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use occwserv::network;
use occwserv::protocol::ToLog;
use occwserv::support::config::{Config, Overrides, ToConfig};

const CONFIG_KEYS: &str = "\
Config file keys (TOML; flags win over the file; SIGHUP re-reads it):
  listen = \"127.0.0.1:8080\"        address to listen on (a change needs a restart)
  root = \"html\"                    document root
  cgi_bin = \"cgi-bin\"              CGI programs, served under /cgi-bin/
  plugins = \"target/release\"       directory scanned for gateway plug-ins (*.so), under /ogi/
  error_pages = \"html\"             where errorNNN.html pages live (default: the root)
  access_log = \"logs/access.log\"   Combined Log Format; \"-\" stderr, \"stdout\", \"\" off
  error_log = \"-\"                  error log path; \"-\" is stderr
  max_connections = 16000           open connections before new ones get 503
  keep_alive_timeout_secs = 65      idle time allowed between requests
  header_timeout_secs = 10          time allowed for a whole request head (408 after)
  body_timeout_secs = 60            time allowed for a request body
  send_timeout_secs = 60            time a response write may stall
  send_buffer_bytes = 0             kernel send buffer per connection (0: autotuned)
  max_body_bytes = 67108864         largest request body (413 above)
  max_keep_alive_requests = 100000  requests per connection
  cores = 0                         replicas of the request network, one thread each
                                    (0: one per core the process may use; read at start)
  pin_cores = false                 pin each replica's thread to its own core (read at start)
  static_idle = 2, static_max = 64  static farm (CGI local redirects): idle workers, maximum
  shutdown_grace_secs = 10          SIGTERM waits this long for in-flight requests
  batch_scheduling = false          SCHED_BATCH workers: less CPU per request, slower under contention
  stats = true                      collect per-request counts and latencies for /stats.html,
                                    /stats.json and /metrics (false: live gauges only)
  [cache]  enabled = true, max_bytes = 67108864, max_file_bytes = 1048576, revalidate_ms = 1000
  [cgi]    max = 32, queue = 256, idle_timeout_secs = 30, total_timeout_secs = 300
  [ogi]    instances = 16, queue = 256, timeout_secs = 30, scan_interval_ms = 500
  [game]   state_dir, token_key, bots; [game.irc] server, port, nick, channel (see docs/GAME.md)
Signals: SIGHUP reloads the config and reopens the logs; SIGTERM/SIGINT drain and exit 0.";

/// occwserv: a web server built as a CSP process network.
#[derive(Parser, Debug)]
#[command(version, about, after_help = CONFIG_KEYS)]
struct Args {
    /// TOML config file (keys below).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Document root [default: ./html].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Directory of CGI programs [default: ./cgi-bin].
    #[arg(long = "cgi-bin", value_name = "DIR")]
    cgi_bin: Option<PathBuf>,
    /// Directory of gateway plug-ins [default: ./target/release].
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: args.listen,
        root: args.root,
        cgi_bin: args.cgi_bin,
        plugins: args.plugins,
    };
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(cfg) => cfg,
            Err(e) => {
                eprintln!("occwserv: bad config: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    overrides.apply(&mut cfg);
    match serve(cfg, args.config, overrides) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("occwserv: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(
    cfg: Config,
    config_file: Option<PathBuf>,
    overrides: Overrides,
) -> Result<(), Box<dyn std::error::Error>> {
    if !cfg.root.is_dir() {
        return Err(format!("root {} is not a readable directory", cfg.root.display()).into());
    }
    occwserv::support::log::check_paths(&cfg.access_log, &cfg.error_log)?;
    raise_fd_limit();
    let listener = bind(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let local = listener.local_addr()?;
    let control = listener.try_clone()?;
    let signals = Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    let running = network::start(listener, cfg, config_file, overrides)?;
    println!("listening on {local}");
    let _ = running.to_log.try_send(ToLog::Error(format!(
        "occwserv {} listening on {local}",
        env!("CARGO_PKG_VERSION")
    )));
    wait_for_signals(signals, &running, &control);
    Ok(())
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Raises the open-file limit to its hard maximum: one descriptor per connection.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn wait_for_signals(mut signals: Signals, running: &network::Running, listener: &TcpListener) {
    for signal in signals.forever() {
        match signal {
            SIGHUP => {
                let _ = running.to_config.send(ToConfig::Reload);
            }
            _ => {
                drain(running, listener);
                return;
            }
        }
    }
}

/// Stops accepting, lets in-flight responses finish, then returns (exit 0).
fn drain(running: &network::Running, listener: &TcpListener) {
    running.meters.draining.store(true, Ordering::SeqCst);
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(listener),
        nix::sys::socket::Shutdown::Both,
    );
    let grace = Duration::from_secs(running.live.load().shutdown_grace_secs);
    let deadline = Instant::now() + grace;
    while running.meters.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = running.meters.active.load(Ordering::SeqCst);
    occwserv::farm::cgi::stop_all_programs();
    let _ = running.to_log.try_send(ToLog::Error(format!(
        "shutdown: stopped ({left} connections cut at the grace limit)"
    )));
    // Give the log process a moment to write the last lines.
    let flush_deadline = Instant::now() + Duration::from_millis(500);
    while !running.to_log.is_empty() && Instant::now() < flush_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
