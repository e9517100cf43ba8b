//! Configuration: the TOML file, command-line overrides, validation, and SIGHUP reload.
//!
//! Process card — config. Instances: 1. In: reload requests (SIGHUP). Out: the live config
//! (`Live`), ToLog. Stops: its inbox disconnects.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;

use crate::http::encoding::{type_matches, Coding};
use crate::protocol::ToLog;

/// The whole configuration. Every key is documented in `docs/CONFIG.md` and `--help`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Addresses to listen on: one, or a list of addresses and `{ addr, proxy_protocol }` tables.
    pub listen: Listen,
    /// The user and group to run as once the sockets are bound and the logs open (as root).
    pub user: Option<String>,
    pub group: Option<String>,
    /// `[proxy]`: who may send a PROXY protocol header.
    pub proxy: ProxyConfig,
    /// Document root.
    pub root: PathBuf,
    /// Directory of CGI programs, served under `/cgi-bin/`.
    pub cgi_bin: PathBuf,
    /// Directory scanned for gateway plug-ins (`*.so`), served under `/ogi/`.
    pub plugins: PathBuf,
    /// Directory for error pages (`errorNNN.html`); defaults to the document root.
    pub error_pages: Option<PathBuf>,
    /// Access log path (`-` for standard output, empty to disable).
    pub access_log: String,
    /// `combined` (Combined Log Format, the site first when `[[site]]`s are configured) or
    /// `json` (one object per line).
    pub access_log_format: crate::support::log::AccessFormat,
    /// Error log path (`-` for standard error).
    pub error_log: String,
    /// Most simultaneous client connections; excess clients get 503.
    pub max_connections: usize,
    /// Seconds a parked keep-alive connection may stay idle.
    pub keep_alive_timeout_secs: u64,
    /// Seconds allowed for a whole request head to arrive.
    pub header_timeout_secs: u64,
    /// Seconds allowed for a request body to arrive.
    pub body_timeout_secs: u64,
    /// Seconds a response write may stall before the client is dropped.
    pub send_timeout_secs: u64,
    /// Kernel send buffer per connection (SO_SNDBUF); 0 leaves it to the kernel's autotuning.
    /// A bound caps the memory a slow reader can pin in the kernel.
    pub send_buffer_bytes: usize,
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Most requests served on one connection.
    pub max_keep_alive_requests: u32,
    /// Replicas of the per-request network, each pinned to a core; 0 means one per core the
    /// process may run on. Read at start.
    pub cores: usize,
    /// Pin each replica's thread to its own core (nginx's `worker_cpu_affinity auto`). Off by
    /// default: on a machine shared with other busy programs (a load generator, CGI programs)
    /// a pinned replica cannot move off a busy core. Read at start.
    pub pin_cores: bool,
    /// A new connection goes to the busiest replica that holds fewer than this many more
    /// busy connections than the least loaded one (1: every connection goes to the least
    /// loaded). A few busy connections then share one core that never sleeps between their
    /// requests, as nginx's busiest worker does, and many spread evenly.
    pub spread_slack: usize,
    /// A connection waiting for its next request for longer than this (milliseconds) is idle,
    /// and does not count as busy for `spread_slack`: thousands of idle keep-alive
    /// connections do not push a few busy ones apart.
    pub spread_idle_ms: u64,
    /// No longer used: the front end runs inside each replica. Accepted for old files.
    pub front_end_idle: usize,
    pub front_end_max: usize,
    /// Static-file workers kept idle, and their maximum.
    pub static_idle: usize,
    pub static_max: usize,
    /// Seconds the server waits for in-flight requests on SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Run the processes under SCHED_BATCH: about 15% less CPU per request under saturation,
    /// but each hop may wait a scheduler slice when other programs keep the cores busy.
    /// Read at start.
    pub batch_scheduling: bool,
    /// `[stats]`: per-request statistics and who may read the status pages. The old
    /// top-level `stats = true|false` is still read, as `[stats] enabled`.
    #[serde(deserialize_with = "stats_or_flag")]
    pub stats: StatsConfig,
    /// `[[site]]`: virtual hosts. None configured: one site serves `root` for every host.
    #[serde(rename = "site")]
    pub sites: Vec<SiteConfig>,
    /// `[types]`: extension = "type/subtype", adding to or overriding the built-in types.
    pub types: std::collections::BTreeMap<String, String>,
    /// The sites, compiled and checked (names, CIDRs, htpasswd files read); built by `prepare`.
    #[serde(skip)]
    pub site_table: Arc<crate::site::Sites>,

    /// Page cache settings.
    pub cache: CacheConfig,
    /// CGI settings.
    pub cgi: CgiConfig,
    /// Gateway plug-in settings.
    pub ogi: OgiConfig,
    /// Content codings (`docs/COMPRESSION.md`).
    pub compression: CompressionConfig,
    /// The adventure game's settings (passed to the `game` plug-in as TOML).
    pub game: Option<toml::Table>,
    /// `[tls]`: the HTTPS listener and its certificates (`docs/TLS.md`).
    pub tls: TlsConfig,
    /// The certificates loaded from `tls` and the rustls settings built on them; made at start
    /// and kept across reloads (SIGHUP re-reads the certificates into it).
    #[serde(skip)]
    pub tls_state: Option<Arc<crate::support::tls::Tls>>,
    /// `[tls.acme]` at work: pending http-01 challenges, obtained certificates, status per
    /// name; made at start and kept across reloads (`support/acme`).
    #[serde(skip)]
    pub acme_state: Option<Arc<crate::support::acme::Board>>,
}

/// `[tls]`: HTTPS.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the HTTPS listener; none: no HTTPS. A change needs a restart.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain and private key of the default certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Plain-HTTP requests get a 308 to the same URL on HTTPS (except ACME http-01 challenges).
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age=N` on HTTPS answers; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// `[[tls.certs]]`: more certificates, chosen by the name the client asks for (SNI).
    pub certs: Vec<TlsCert>,
    /// `[tls.acme]`: certificates obtained and renewed from an ACME CA (`support/acme`).
    pub acme: Option<crate::support::acme::AcmeConfig>,
}

/// `[[tls.certs]]`: a certificate for some names (`a.example`, `*.b.example`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsCert {
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsConfig {
    /// Whether HTTPS is configured at all.
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(acme) = &self.acme {
            if self.listen.is_none() {
                return Err(ConfigError("[tls.acme] needs [tls] listen".to_string()));
            }
            acme.validate().map_err(ConfigError)?;
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(ConfigError(
                "[tls] cert and key go together (or --cert and --key)".to_string(),
            ));
        }
        if self.listen.is_some() && self.cert.is_none() && self.acme.is_none() {
            return Err(ConfigError(
                "[tls] listen needs cert and key (or --cert and --key) or [tls.acme]".to_string(),
            ));
        }
        for entry in &self.certs {
            if entry.names.is_empty() {
                return Err(ConfigError(format!(
                    "[[tls.certs]] {}: names must not be empty",
                    entry.cert.display()
                )));
            }
        }
        Ok(())
    }
}

/// Where to listen: `listen = "ADDR:PORT"`, or a list whose entries are addresses or tables
/// `{ addr = "ADDR:PORT", proxy_protocol = true }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(pub Vec<ListenAt>);

/// One listening address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenAt {
    pub addr: SocketAddr,
    /// Every connection on it starts with a PROXY protocol header (v1 or v2) from a trusted peer.
    #[serde(default)]
    pub proxy_protocol: bool,
}

impl Listen {
    pub fn one(addr: SocketAddr) -> Listen {
        Listen(vec![ListenAt {
            addr,
            proxy_protocol: false,
        }])
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.0.iter().map(|l| l.addr.to_string()).collect();
        f.write_str(&addrs.join(", "))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Addr(SocketAddr),
            Table(ListenAt),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Entry),
            Many(Vec<Entry>),
        }
        let entries = match OneOrMany::deserialize(d)? {
            OneOrMany::One(entry) => vec![entry],
            OneOrMany::Many(entries) => entries,
        };
        Ok(Listen(
            entries
                .into_iter()
                .map(|entry| match entry {
                    Entry::Addr(addr) => ListenAt {
                        addr,
                        proxy_protocol: false,
                    },
                    Entry::Table(at) => at,
                })
                .collect(),
        ))
    }
}

/// `[proxy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Networks (CIDR) whose PROXY protocol headers are believed; a header from anyone else
    /// is refused.
    pub trusted: Vec<String>,
    /// `trusted`, parsed by `Config::prepare`.
    #[serde(skip)]
    pub trusted_nets: Vec<ipnet::IpNet>,
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Memory budget for cached bodies.
    pub max_bytes: u64,
    /// Largest file that may be cached.
    pub max_file_bytes: u64,
    /// Longest time a changed file may still be served from the cache, in milliseconds.
    pub revalidate_ms: u64,
}

/// `[cgi]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgiConfig {
    /// Most CGI programs running at once.
    pub max: usize,
    /// Requests that may wait for a free CGI worker before 503.
    pub queue: usize,
    /// Seconds a program may stay silent before it is killed (504).
    pub idle_timeout_secs: u64,
    /// Seconds a program may run in all.
    pub total_timeout_secs: u64,
}

/// `[ogi]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OgiConfig {
    /// Most instances of one non-persistent plug-in at once.
    pub instances: usize,
    /// Requests that may wait for a plug-in before 503.
    pub queue: usize,
    /// Seconds a non-persistent instance may hold a request.
    pub timeout_secs: u64,
    /// Seconds between scans of the plug-in directory.
    pub scan_interval_ms: u64,
    /// Plug-in names never attached, even when their file is in the directory: by default
    /// `crash`, the fault-injection demonstration. A name leaves this list to be attached.
    pub exclude: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen::one(SocketAddr::from(([127, 0, 0, 1], 8080))),
            user: None,
            group: None,
            proxy: ProxyConfig::default(),
            root: PathBuf::from("html"),
            cgi_bin: PathBuf::from("cgi-bin"),
            plugins: default_plugins_dir(),
            error_pages: None,
            access_log: "logs/access.log".to_string(),
            access_log_format: crate::support::log::AccessFormat::Combined,
            error_log: "-".to_string(),
            max_connections: 16_000,
            keep_alive_timeout_secs: 65,
            header_timeout_secs: 10,
            body_timeout_secs: 60,
            send_timeout_secs: 60,
            send_buffer_bytes: 0,
            max_body_bytes: 64 * 1024 * 1024,
            max_keep_alive_requests: 100_000,
            cores: 0,
            pin_cores: false,
            spread_slack: 16,
            spread_idle_ms: 20,
            front_end_idle: 2,
            front_end_max: 16,
            static_idle: 2,
            static_max: 64,
            shutdown_grace_secs: 10,
            batch_scheduling: false,
            stats: StatsConfig::default(),
            sites: Vec::new(),
            types: std::collections::BTreeMap::new(),
            site_table: Arc::new(crate::site::Sites::implicit(PathBuf::from("html"), None)),
            cache: CacheConfig::default(),
            cgi: CgiConfig::default(),
            ogi: OgiConfig::default(),
            compression: CompressionConfig::default(),
            game: None,
            tls: TlsConfig::default(),
            tls_state: None,
            acme_state: None,
        }
    }
}

/// `[compression]`: content codings (`docs/COMPRESSION.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// The server's preference among the codings a client accepts: `br`, `zstd`, `gzip`.
    pub encodings: Vec<String>,
    /// Serve `FILE.br`, `FILE.zst`, `FILE.gz` beside `FILE` when accepted and not older.
    pub precompressed: bool,
    /// Compress cacheable files (in the cache) and streamed answers (CGI, large files).
    pub on_the_fly: bool,
    /// Smallest body compressed on the fly.
    pub min_bytes: u64,
    /// Media types compressed (`text/*` matches every text type).
    pub types: Vec<String>,
    /// Compression levels per coding.
    pub level: CompressionLevels,
}

/// `[compression] level = { br = 5, zstd = 3, gzip = 6 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionLevels {
    pub br: u32,
    pub zstd: i32,
    pub gzip: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            encodings: ["br", "zstd", "gzip"].map(String::from).to_vec(),
            precompressed: true,
            on_the_fly: true,
            min_bytes: 256,
            types: [
                "text/*",
                "application/javascript",
                "application/json",
                "application/xml",
                "image/svg+xml",
                "application/wasm",
            ]
            .map(String::from)
            .to_vec(),
            level: CompressionLevels::default(),
        }
    }
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels {
            br: 5,
            zstd: 3,
            gzip: 6,
        }
    }
}

/// The configured codings in order, without allocating (there are at most three).
#[derive(Debug, Clone, Copy)]
pub struct Codings {
    codings: [Coding; 3],
    len: usize,
}

impl Default for Codings {
    fn default() -> Self {
        Codings {
            codings: Coding::ALL,
            len: 0,
        }
    }
}

impl Codings {
    pub fn as_slice(&self) -> &[Coding] {
        &self.codings[..self.len]
    }
}

impl CompressionConfig {
    /// The configured codings, in order of preference, each once (validated at load).
    pub fn codings(&self) -> Codings {
        let mut list = Codings::default();
        for coding in self.encodings.iter().filter_map(|e| Coding::from_token(e)) {
            if !list.as_slice().contains(&coding) && list.len < list.codings.len() {
                list.codings[list.len] = coding;
                list.len += 1;
            }
        }
        list
    }

    /// The level for a coding.
    pub fn level_of(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Br => self.level.br as i32,
            Coding::Zstd => self.level.zstd,
            Coding::Gzip => self.level.gzip as i32,
        }
    }

    /// Whether a response of this type may be coded at all.
    pub fn compressible_type(&self, mime: &str) -> bool {
        self.enabled && type_matches(&self.types, mime)
    }

    /// Whether the coding of a file's answer can depend on `Accept-Encoding` (so it says
    /// `Vary`): a compressible type, and either large enough to compress or with siblings
    /// looked for.
    pub fn may_vary(&self, mime: &str, len: u64) -> bool {
        self.compressible_type(mime)
            && ((self.on_the_fly && len >= self.min_bytes) || self.precompressed)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for e in &self.encodings {
            if Coding::from_token(e).is_none() || e.eq_ignore_ascii_case("x-gzip") {
                return Err(ConfigError(format!(
                    "compression.encodings: unknown coding {e:?} (br, zstd, gzip)"
                )));
            }
        }
        let l = &self.level;
        if !(l.br <= 11 && (1..=22).contains(&l.zstd) && (1..=9).contains(&l.gzip)) {
            return Err(ConfigError(
                "compression.level: br 0..=11, zstd 1..=22, gzip 1..=9".to_string(),
            ));
        }
        Ok(())
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: 64 * 1024 * 1024,
            max_file_bytes: 1024 * 1024,
            revalidate_ms: 1000,
        }
    }
}

impl Default for CgiConfig {
    fn default() -> Self {
        CgiConfig {
            max: 32,
            queue: 256,
            idle_timeout_secs: 30,
            total_timeout_secs: 300,
        }
    }
}

impl Default for OgiConfig {
    fn default() -> Self {
        OgiConfig {
            instances: 16,
            queue: 256,
            timeout_secs: 30,
            scan_interval_ms: 500,
            exclude: vec!["crash".to_string()],
        }
    }
}

/// Where the plug-ins are when no `plugins` key or flag says: the build directory when the
/// server runs from a checkout (the current directory holds `Cargo.toml` and
/// `target/release`), as the README's run command does; else where the package installs them.
fn default_plugins_dir() -> PathBuf {
    let build = Path::new("target/release");
    if Path::new("Cargo.toml").is_file() && build.is_dir() {
        build.to_path_buf()
    } else {
        PathBuf::from(INSTALLED_PLUGINS_DIR)
    }
}

/// The plug-in directory of the installed layout (the Debian package, `docs/DEPLOY.md`).
pub const INSTALLED_PLUGINS_DIR: &str = "/usr/lib/occwserv/plugins";

impl Config {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }
    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_secs(self.keep_alive_timeout_secs)
    }
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }
    /// The root a cache key's file is under: `root` when no `[[site]]` is configured (so a
    /// config built by hand needs no `prepare`), else the root of the site the key names.
    pub fn root_for_cache_key(&self, key: &str) -> Option<&Path> {
        if self.sites.is_empty() {
            return Some(&self.root);
        }
        self.site_table.root_for_key(key)
    }
    pub fn error_pages_dir(&self) -> &Path {
        self.error_pages.as_deref().unwrap_or(&self.root)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Config::parse(&text)
            .map_err(|ConfigError(why)| ConfigError(format!("{}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError(e.message().to_string()))?;
        cfg.validate()?;
        cfg.prepare()?;
        Ok(cfg)
    }

    /// Compiles the sites, the stats allow-list and the trusted proxies (after the command line
    /// is applied).
    pub fn prepare(&mut self) -> Result<(), ConfigError> {
        self.stats.compile()?;
        self.proxy.trusted_nets = crate::site::cidr::parse_list(&self.proxy.trusted)
            .map_err(|e| ConfigError(format!("[proxy] trusted: {e}")))?;
        crate::site::types::check(&self.types).map_err(ConfigError)?;
        self.site_table = Arc::new(crate::site::Sites::compile(self)?);
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("keep_alive_timeout_secs", self.keep_alive_timeout_secs),
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("send_timeout_secs", self.send_timeout_secs),
            (
                "max_keep_alive_requests",
                self.max_keep_alive_requests as u64,
            ),
            ("front_end_max", self.front_end_max as u64),
            ("static_max", self.static_max as u64),
            ("cgi.max", self.cgi.max as u64),
            ("cgi.idle_timeout_secs", self.cgi.idle_timeout_secs),
            ("cgi.total_timeout_secs", self.cgi.total_timeout_secs),
            ("ogi.instances", self.ogi.instances as u64),
            ("ogi.timeout_secs", self.ogi.timeout_secs),
            ("ogi.scan_interval_ms", self.ogi.scan_interval_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be greater than 0")));
            }
        }
        if self.front_end_idle > self.front_end_max {
            return Err(ConfigError(
                "front_end_idle must not exceed front_end_max".to_string(),
            ));
        }
        if self.static_idle > self.static_max {
            return Err(ConfigError(
                "static_idle must not exceed static_max".to_string(),
            ));
        }
        use crate::support::meters::{PARK_SLOTS, PARK_SLOT_MS};
        let longest = PARK_SLOTS as u64 * PARK_SLOT_MS;
        if self.spread_idle_ms > longest {
            return Err(ConfigError(format!(
                "spread_idle_ms must be at most {longest} (0 counts idle connections too)"
            )));
        }
        self.compression.validate()
    }

    /// Checks `[tls]` once the command line is applied (its flags may supply cert and key).
    pub fn validate_tls(&self) -> Result<(), ConfigError> {
        self.tls.validate()
    }
}

/// `[stats]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Collect per-request counts and latency histograms (off: live gauges only).
    pub enabled: bool,
    /// Client addresses (CIDR or single addresses) that may read the status pages; others 403.
    pub allow: Vec<String>,
    /// Where `stats.html`, `stats.json` and `metrics` are served (starts and ends with `/`).
    pub path_prefix: String,
    /// `allow`, parsed by `compile`.
    #[serde(skip)]
    pub allow_nets: Vec<ipnet::IpNet>,
    /// Read from the old top-level `stats = true|false` (deprecated; logged).
    #[serde(skip)]
    pub old_key: bool,
}

impl Default for StatsConfig {
    fn default() -> Self {
        let allow = vec!["127.0.0.0/8".to_string(), "::1".to_string()];
        StatsConfig {
            allow_nets: crate::site::cidr::parse_list(&allow).unwrap_or_default(),
            enabled: true,
            old_key: false,
            allow,
            path_prefix: "/".to_string(),
        }
    }
}

impl StatsConfig {
    fn compile(&mut self) -> Result<(), ConfigError> {
        self.allow_nets = crate::site::cidr::parse_list(&self.allow)
            .map_err(|e| ConfigError(format!("stats.allow: {e}")))?;
        let prefix = &self.path_prefix;
        if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.contains(['?', '#', ' ']) {
            return Err(ConfigError(format!(
                "stats.path_prefix {prefix:?} must start and end with /"
            )));
        }
        Ok(())
    }
}

/// Reads `[stats]`, or the old top-level `stats = true|false`.
fn stats_or_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StatsConfig, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Flag(bool),
        Table(toml::Table),
    }
    match Either::deserialize(d)? {
        Either::Flag(enabled) => Ok(StatsConfig {
            enabled,
            old_key: true,
            ..StatsConfig::default()
        }),
        Either::Table(table) => StatsConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| serde::de::Error::custom(format!("stats: {}", e.message()))),
    }
}

/// `[[site]]`: one virtual host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// Host names: exact, or a leading `*.` wildcard.
    pub names: Vec<String>,
    pub root: PathBuf,
    /// The site for a Host that matches no site (else the first site).
    pub default: bool,
    /// A directory listing when a directory has no index file.
    pub autoindex: bool,
    /// Index files tried in a directory, in order.
    pub index: Vec<String>,
    /// Candidates tried in order (`$uri`, `$uri/`, a path, or `=404` last), as nginx.
    pub try_files: Vec<String>,
    /// Where `errorNNN.html` pages live; default: the site's root.
    pub error_pages: Option<PathBuf>,
    /// `/cgi-bin/` runs programs for this site (else it is an ordinary path).
    pub cgi: bool,
    /// `/ogi/NAME` calls plug-ins for this site (else it is an ordinary path).
    pub plugins: bool,
    pub redirect: Vec<RedirectConfig>,
    pub headers: Vec<HeadersConfig>,
    pub auth: Vec<AuthConfig>,
    pub access: Vec<AccessConfig>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            names: Vec::new(),
            root: PathBuf::new(),
            default: false,
            autoindex: false,
            index: vec!["index.html".to_string()],
            try_files: Vec::new(),
            error_pages: None,
            cgi: true,
            plugins: true,
            redirect: Vec::new(),
            headers: Vec::new(),
            auth: Vec::new(),
            access: Vec::new(),
        }
    }
}

/// `[[site.redirect]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    pub from: String,
    pub to: String,
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    301
}

/// `[[site.headers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    pub path: String,
    pub set: std::collections::BTreeMap<String, String>,
}

/// `[[site.auth]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub path: String,
    pub htpasswd: PathBuf,
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_realm() -> String {
    "Restricted".to_string()
}

/// `[[site.access]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    pub path: String,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A configuration that cannot be used; the text names the key or file.
#[derive(Debug, Clone)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The configuration every process reads; replaced whole on reload.
pub type Live = Arc<ArcSwap<Config>>;

/// Settings given on the command line; they win over the file on every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<Listen>,
    pub root: Option<PathBuf>,
    pub cgi_bin: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub tls_listen: Option<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Overrides {
    pub fn apply(&self, cfg: &mut Config) {
        if let Some(v) = &self.listen {
            cfg.listen = v.clone();
        }
        if let Some(v) = &self.root {
            cfg.root = v.clone();
            if cfg.sites.is_empty() {
                cfg.site_table = Arc::new(crate::site::Sites::implicit(
                    v.clone(),
                    cfg.error_pages.clone(),
                ));
            }
        }
        if let Some(v) = &self.cgi_bin {
            cfg.cgi_bin = v.clone();
        }
        if let Some(v) = &self.plugins {
            cfg.plugins = v.clone();
        }
        if let Some(v) = self.tls_listen {
            cfg.tls.listen = Some(v);
        }
        if let Some(v) = &self.cert {
            cfg.tls.cert = Some(v.clone());
        }
        if let Some(v) = &self.key {
            cfg.tls.key = Some(v.clone());
        }
    }
}

/// A request to the config process.
pub enum ToConfig {
    /// Re-read the file (SIGHUP).
    Reload,
}

/// The config process: on `Reload`, re-reads the file; a bad file is refused and the old
/// configuration kept. Listen address changes need a restart and are reported as such.
pub fn run(
    inbox: Receiver<ToConfig>,
    file: Option<PathBuf>,
    overrides: Overrides,
    live: Live,
    to_log: Sender<ToLog>,
) {
    for ToConfig::Reload in inbox {
        let Some(path) = &file else {
            let _ = to_log.try_send(ToLog::Reopen);
            let _ = to_log.try_send(ToLog::Error(
                "SIGHUP: no config file; logs reopened".to_string(),
            ));
            reload_certificates(&live, &to_log);
            continue;
        };
        match Config::load(path) {
            Ok(mut cfg) => {
                overrides.apply(&mut cfg);
                if cfg.stats.old_key {
                    let _ = to_log.try_send(ToLog::Error(
                        "config: `stats = true|false` is deprecated; use `[stats] enabled`"
                            .to_string(),
                    ));
                }
                let old = live.load();
                if cfg.listen != old.listen {
                    let _ = to_log.try_send(ToLog::Error(format!(
                        "config reload: listen {} kept; a new address needs a restart",
                        old.listen
                    )));
                    cfg.listen = old.listen.clone();
                }
                // Port 0 was bound to some port at start: the same listener.
                let same_any_port = matches!(
                    (cfg.tls.listen, old.tls.listen),
                    (Some(new), Some(old)) if new.port() == 0 && new.ip() == old.ip()
                );
                if cfg.tls.listen != old.tls.listen && !same_any_port {
                    let _ = to_log.try_send(ToLog::Error(format!(
                        "config reload: [tls] listen {:?} kept; a new address needs a restart",
                        old.tls.listen
                    )));
                    cfg.tls.listen = old.tls.listen;
                }
                cfg.tls_state = old.tls_state.clone();
                if cfg.tls.acme != old.tls.acme {
                    let _ = to_log.try_send(ToLog::Error(
                        "config reload: [tls.acme] kept; a change needs a restart".to_string(),
                    ));
                    cfg.tls.acme = old.tls.acme.clone();
                }
                cfg.acme_state = old.acme_state.clone();
                crate::support::log::set_access_log_on(!cfg.access_log.is_empty());
                crate::site::types::publish(&cfg.types);
                live.store(Arc::new(cfg));
                let _ = to_log.try_send(ToLog::Reopen);
                let _ = to_log.try_send(ToLog::Error(format!(
                    "config reloaded from {}",
                    path.display()
                )));
            }
            Err(e) => {
                let _ = to_log.try_send(ToLog::Error(format!(
                    "config reload refused, keeping the old one: {e}"
                )));
            }
        }
        reload_certificates(&live, &to_log);
    }
}

/// SIGHUP: re-reads the certificates named by the live `[tls]`; new handshakes use them. A
/// file that cannot be used is named in the log and the old certificates are kept.
fn reload_certificates(live: &Live, to_log: &Sender<ToLog>) {
    let cfg = live.load();
    let Some(state) = &cfg.tls_state else {
        return;
    };
    let line = match state.reload(&cfg.tls) {
        Ok(count) => format!("tls: {count} certificate(s) reloaded"),
        Err(e) => format!("tls: certificate reload refused, keeping the old ones: {e}"),
    };
    let _ = to_log.try_send(ToLog::Error(line));
}
