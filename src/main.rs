//! The command line: parse flags and config, bind, start the network, wait for signals.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;

use occwserv::network;
use occwserv::protocol::ToLog;
use occwserv::support::config::{Config, Listen, ListenAt, Overrides, ToConfig};
use occwserv::support::service;

const CONFIG_KEYS: &str = "\
Config file keys (TOML; flags win over the file; SIGHUP re-reads it):
  listen = \"127.0.0.1:8080\"        address to listen on, or a list: [\"0.0.0.0:80\", \"[::]:80\",
                                    { addr = \"127.0.0.1:8081\", proxy_protocol = true }]
                                    (a change needs a restart; with systemd socket activation
                                    the inherited sockets are used)
  user = \"www-data\", group = \"www-data\"  drop to these after binding (started as root)
  [proxy]  trusted = [\"127.0.0.1/32\"]  who may send PROXY protocol headers
  root = \"html\"                    document root
  cgi_bin = \"cgi-bin\"              CGI programs, served under /cgi-bin/
  plugins = \"target/release\"       directory scanned for gateway plug-ins (*.so), under /ogi/
                                    (default: target/release in a checkout, else
                                    /usr/lib/occwserv/plugins)
  error_pages = \"html\"             where errorNNN.html pages live (default: the root)
  access_log = \"logs/access.log\"   Combined Log Format; \"-\" stderr, \"stdout\", \"\" off
  access_log_format = \"combined\"  or \"json\" (one object per line, with the site)
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
  spread_slack = 16                 a new connection goes to the busiest replica holding fewer
                                    than this many more busy connections than the least busy
  spread_idle_ms = 20               parked longer than this, a connection is idle, not busy
                                    (0: every open connection counts; at most 300)
  static_idle = 2, static_max = 64  static farm (CGI local redirects): idle workers, maximum
  shutdown_grace_secs = 10          SIGTERM waits this long for in-flight requests
  batch_scheduling = false          SCHED_BATCH workers: less CPU per request, slower under contention
  [stats]  enabled = true            per-request counts and latencies (false: live gauges only)
           allow = [\"127.0.0.0/8\", \"::1\"]  who may read /stats.html, /stats.json, /metrics
           path_prefix = \"/\"            where those pages are served
  [types]  ext = \"type/subtype\"    add or override MIME types (text gets charset=utf-8)
  [[site]] names, root, default, autoindex, index, try_files, error_pages, cgi, plugins;
           [[site.redirect]] from, to, status; [[site.headers]] path, set;
           [[site.auth]] path, htpasswd, realm; [[site.access]] path, allow, deny (docs/SITES.md)
  [cache]  enabled = true, max_bytes = 67108864, max_file_bytes = 1048576, revalidate_ms = 1000
  [cgi]    max = 32, queue = 256, idle_timeout_secs = 30, total_timeout_secs = 300
  [ogi]    instances = 16, queue = 256, timeout_secs = 30, scan_interval_ms = 500,
           exclude = [\"crash\"] (plug-ins never attached)
  [compression]  enabled = true, encodings = [\"br\", \"zstd\", \"gzip\"], precompressed = true,
           on_the_fly = true, min_bytes = 256, types = [\"text/*\", ...],
           level = { br = 5, zstd = 3, gzip = 6 }   (see docs/COMPRESSION.md)
  [tls]    listen = \"0.0.0.0:443\", cert = \"fullchain.pem\", key = \"privkey.pem\",
           redirect_http = false, hsts_max_age_secs = 0;
           [[tls.certs]] names = [\"a.example\", \"*.b.example\"], cert, key (by SNI)
           [tls.acme] directory = \"https://...\", email, names = [\"a.example\"],
           state_dir = \"/var/lib/occwserv/acme\", ca_file (optional): certificates obtained
           and renewed by ACME http-01 (a change needs a restart)
           (SIGHUP re-reads the certificates; see docs/TLS.md)
  [game]   state_dir, token_key, bots; [game.irc] server, port, nick, channel (see docs/GAME.md)
Signals: SIGHUP reloads the config and reopens the logs; SIGTERM/SIGINT drain and exit 0;
SIGUSR2 starts the binary at the same path on the same sockets, then drains once it is ready.";

/// occwserv: a web server built as a CSP process network.
#[derive(Parser, Debug)]
#[command(version, about, after_help = CONFIG_KEYS)]
struct Args {
    /// TOML config file (keys below).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, repeatable [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Document root [default: ./html].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Directory of CGI programs [default: ./cgi-bin].
    #[arg(long = "cgi-bin", value_name = "DIR")]
    cgi_bin: Option<PathBuf>,
    /// Directory of gateway plug-ins [default: ./target/release in a checkout, else /usr/lib/occwserv/plugins].
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Check the configuration (and root, logs, plug-in directory) and exit: 0 if good, 2 with
    /// the problems listed.
    #[arg(long)]
    check: bool,
    /// Address of the HTTPS listener ([tls] listen).
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the HTTPS listener ([tls] cert).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// PEM private key of that certificate: RSA, ECDSA or Ed25519 ([tls] key).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: (!args.listen.is_empty()).then(|| {
            Listen(
                args.listen
                    .iter()
                    .map(|&addr| ListenAt {
                        addr,
                        proxy_protocol: false,
                    })
                    .collect(),
            )
        }),
        root: args.root,
        cgi_bin: args.cgi_bin,
        plugins: args.plugins,
        tls_listen: args.tls_listen,
        cert: args.cert,
        key: args.key,
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
    if let Err(e) = cfg.validate_tls() {
        eprintln!("occwserv: bad config: {e}");
        return ExitCode::from(2);
    }
    if args.check {
        return check(&cfg, args.config.as_deref());
    }
    match serve(cfg, args.config, overrides) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("occwserv: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--check`: everything that would stop the server at start, without starting it.
fn check(cfg: &Config, file: Option<&Path>) -> ExitCode {
    let mut problems = Vec::new();
    if cfg.sites.is_empty() && !cfg.root.is_dir() {
        problems.push(format!(
            "root {} is not a readable directory",
            cfg.root.display()
        ));
    }
    if !cfg.plugins.is_dir() {
        problems.push(format!(
            "plugins {} is not a readable directory",
            cfg.plugins.display()
        ));
    }
    if cfg.cgi_bin.exists() && !cfg.cgi_bin.is_dir() {
        problems.push(format!(
            "cgi_bin {} is not a directory",
            cfg.cgi_bin.display()
        ));
    }
    for (key, spec) in [
        ("access_log", &cfg.access_log),
        ("error_log", &cfg.error_log),
    ] {
        if let Some(problem) = occwserv::support::log::check_writable(spec) {
            problems.push(format!("{key}: {problem}"));
        }
    }
    for name in cfg.user.iter() {
        if !matches!(nix::unistd::User::from_name(name), Ok(Some(_))) {
            problems.push(format!("user {name}: no such user"));
        }
    }
    for name in cfg.group.iter() {
        if !matches!(nix::unistd::Group::from_name(name), Ok(Some(_))) {
            problems.push(format!("group {name}: no such group"));
        }
    }
    if cfg.tls.enabled() {
        if let Err(e) = occwserv::support::tls::Tls::load(&cfg.tls) {
            problems.push(format!("tls: {e}"));
        }
    }
    if let Some(acme) = &cfg.tls.acme {
        if let Err(e) = occwserv::support::acme::check(acme) {
            problems.push(format!("[tls.acme]: {e}"));
        }
    }
    let source = file.map_or("built-in defaults".to_string(), |f| f.display().to_string());
    if problems.is_empty() {
        println!("occwserv: configuration {source} is good");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("occwserv: {source}: {problem}");
        }
        ExitCode::from(2)
    }
}

fn serve(
    mut cfg: Config,
    config_file: Option<PathBuf>,
    overrides: Overrides,
) -> Result<(), Box<dyn std::error::Error>> {
    if cfg.sites.is_empty() && !cfg.root.is_dir() {
        return Err(format!("root {} is not a readable directory", cfg.root.display()).into());
    }
    // The path of our own binary now, before a new build may replace the file (SIGUSR2).
    let exe = std::env::current_exe()?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    occwserv::support::log::check_paths(&cfg.access_log, &cfg.error_log)?;
    if cfg.tls.enabled() {
        let tls = occwserv::support::tls::Tls::load(&cfg.tls)?;
        // Certificates already kept by [tls.acme] are served from the first handshake.
        if let Some(acme) = &cfg.tls.acme {
            let board = occwserv::support::acme::Board::open(acme, tls.obtained())?;
            cfg.acme_state = Some(std::sync::Arc::new(board));
        }
        cfg.tls_state = Some(std::sync::Arc::new(tls));
    }
    raise_fd_limit();
    let (listeners, inherited) = service::listeners(&cfg)?;
    // The HTTPS port as bound (port 0 asks for any), for redirects to it.
    if let Some(tls) = listeners.iter().find(|l| l.tls) {
        cfg.tls.listen = tls.socket.local_addr().ok();
    }
    let local = listeners
        .iter()
        .filter_map(|l| l.socket.local_addr().ok())
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut control = Vec::new();
    for listening in &listeners {
        control.push(listening.socket.try_clone()?);
    }
    let mut logs: Vec<PathBuf> = [&cfg.access_log, &cfg.error_log]
        .into_iter()
        .filter(|spec| !matches!(spec.as_str(), "" | "-" | "stderr" | "stdout"))
        .map(PathBuf::from)
        .collect();
    // The acme process writes its state as the unprivileged user.
    if let Some(acme) = &cfg.tls.acme {
        logs.extend(occwserv::support::acme::store::owned_paths(&acme.state_dir));
    }
    let dropped = service::drop_privileges(cfg.user.as_deref(), cfg.group.as_deref(), &logs)?;
    let signals = Signals::new([SIGHUP, SIGINT, SIGTERM, SIGUSR2])?;
    let old_stats_key = cfg.stats.old_key;
    occwserv::site::types::publish(&cfg.types);
    let running = network::start(listeners, cfg, config_file, overrides)?;
    if old_stats_key {
        let _ = running.to_log.try_send(ToLog::Error(
            "config: `stats = true|false` is deprecated; use `[stats] enabled`".to_string(),
        ));
    }
    println!("listening on {local}");
    for note in [inherited, dropped].into_iter().flatten() {
        let _ = running.to_log.try_send(ToLog::Error(note));
    }
    let _ = running.to_log.try_send(ToLog::Error(format!(
        "occwserv {} listening on {local}",
        env!("CARGO_PKG_VERSION")
    )));
    service::notify("READY=1");
    if let Some(every) = service::watchdog_interval() {
        let _ = std::thread::Builder::new()
            .name("watchdog".to_string())
            .spawn(move || loop {
                service::notify("WATCHDOG=1");
                std::thread::sleep(every);
            });
    }
    let upgrade = Upgrade {
        exe,
        args,
        sockets: control,
    };
    wait_for_signals(signals, &running, &upgrade);
    Ok(())
}

/// What SIGUSR2 needs to start the new binary on our sockets.
struct Upgrade {
    exe: PathBuf,
    args: Vec<std::ffi::OsString>,
    sockets: Vec<TcpListener>,
}

/// Raises the open-file limit to its hard maximum: one descriptor per connection.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn wait_for_signals(mut signals: Signals, running: &network::Running, upgrade: &Upgrade) {
    for signal in signals.forever() {
        match signal {
            SIGHUP => {
                service::notify("RELOADING=1");
                let _ = running.to_config.send(ToConfig::Reload);
                let _ = running.to_acme.try_send(occwserv::protocol::ToAcme::Retry);
                service::notify("READY=1");
            }
            SIGUSR2 => {
                let log = |line: String| {
                    let _ = running.to_log.try_send(ToLog::Error(line));
                };
                log(format!("upgrade: starting {}", upgrade.exe.display()));
                let sockets: Vec<&TcpListener> = upgrade.sockets.iter().collect();
                match service::upgrade(
                    &upgrade.exe,
                    &upgrade.args,
                    &sockets,
                    Duration::from_secs(30),
                ) {
                    Ok(pid) => {
                        log(format!(
                            "upgrade: process {pid} is serving; this one stops accepting and drains"
                        ));
                        service::notify(&format!("MAINPID={pid}"));
                        drain(running);
                        return;
                    }
                    Err(e) => log(format!("upgrade failed, still serving: {e}")),
                }
            }
            _ => {
                service::notify("STOPPING=1");
                drain(running);
                return;
            }
        }
    }
}

/// Stops accepting, lets in-flight responses finish, then returns (exit 0). The listening
/// sockets are left as they are: a new binary or systemd may be using them.
fn drain(running: &network::Running) {
    running.meters.draining.store(true, Ordering::SeqCst);
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
