//! Virtual hosts and their rules (`[[site]]`): pure code, no threads, no channels.
//!
//! The config process compiles the sites into a `Sites` table published with the live config.
//! The front end picks a site by Host (`Sites::pick`), checks the site's access, auth and
//! redirect rules (`Site::gate`) and attaches the site to the request, so every later stage
//! (cache, static, error pages) reads the same site.

pub mod autoindex;
pub mod cidr;
pub mod host;
pub mod htpasswd;
pub mod rules;
pub mod types;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use crate::http::Request;
use crate::support::config::{Config, ConfigError, SiteConfig};
use rules::{HeaderRule, Pattern, Redirect};

/// One compiled site.
#[derive(Debug)]
pub struct Site {
    /// Position in the table; site 0 keys the cache by bare path.
    pub id: usize,
    /// The first name, or `site-N`: in cache keys, logs and stats. Interned, so a request
    /// carries it without touching a shared reference count.
    pub label: &'static str,
    pub root: PathBuf,
    pub error_pages: PathBuf,
    pub autoindex: bool,
    pub index: Vec<String>,
    pub try_files: Vec<String>,
    pub cgi: bool,
    pub plugins: bool,
    pub redirects: Vec<Redirect>,
    pub headers: Vec<HeaderRule>,
    pub auth: Vec<AuthRule>,
    pub access: Vec<AccessRule>,
}

/// `[[site.auth]]`, compiled: the htpasswd file is read at start and on reload.
#[derive(Debug)]
pub struct AuthRule {
    pub path: Pattern,
    pub realm: String,
    pub users: htpasswd::Users,
}

/// `[[site.access]]`, compiled.
#[derive(Debug)]
pub struct AccessRule {
    pub path: Pattern,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// What the front end does with a request after the site's rules.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// 403: an access rule refuses the client.
    Forbidden,
    /// 401 with `WWW-Authenticate`: no or wrong credentials.
    Unauthorized(String),
    /// A redirect rule: status and `Location`.
    Redirect(u16, String),
    /// A path no rule can be checked against (it climbs out of the root): 400.
    BadPath,
}

impl Site {
    fn plain(id: usize, root: PathBuf, error_pages: Option<PathBuf>) -> Site {
        Site {
            id,
            label: if id == 0 {
                "default"
            } else {
                intern(format!("site-{id}"))
            },
            error_pages: error_pages.unwrap_or_else(|| root.clone()),
            root,
            autoindex: false,
            index: vec!["index.html".to_string()],
            try_files: Vec::new(),
            cgi: true,
            plugins: true,
            redirects: Vec::new(),
            headers: Vec::new(),
            auth: Vec::new(),
            access: Vec::new(),
        }
    }

    fn compile(id: usize, cfg: &SiteConfig) -> Result<Site, String> {
        if cfg.root.as_os_str().is_empty() {
            return Err("root is missing".to_string());
        }
        if !cfg.root.is_dir() {
            return Err(format!("root {} is not a directory", cfg.root.display()));
        }
        let mut site = Site::plain(id, cfg.root.clone(), cfg.error_pages.clone());
        if let Some(first) = cfg.names.first() {
            site.label = intern(first.to_ascii_lowercase());
        }
        site.autoindex = cfg.autoindex;
        site.cgi = cfg.cgi;
        site.plugins = cfg.plugins;
        for name in &cfg.index {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("index {name:?} must be a plain file name"));
            }
        }
        site.index = cfg.index.clone();
        for (i, candidate) in cfg.try_files.iter().enumerate() {
            let last = i + 1 == cfg.try_files.len();
            let code = candidate.strip_prefix('=');
            let ok = match code {
                Some(code) => last && code.parse::<u16>().is_ok_and(|c| (400..600).contains(&c)),
                None => candidate.starts_with('/') || candidate.starts_with("$uri"),
            };
            if !ok {
                return Err(format!(
                    "try_files {candidate:?}: a path starting with / or $uri, or =NNN last"
                ));
            }
        }
        site.try_files = cfg.try_files.clone();
        for (i, r) in cfg.redirect.iter().enumerate() {
            let from = Pattern::parse(&r.from).map_err(|e| format!("redirect[{i}]: {e}"))?;
            if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
                return Err(format!(
                    "redirect[{i}]: status {} is not 301, 302, 303, 307 or 308",
                    r.status
                ));
            }
            if !rules::valid_header("Location", &r.to) || r.to.is_empty() {
                return Err(format!("redirect[{i}]: bad target {:?}", r.to));
            }
            site.redirects.push(Redirect {
                from,
                to: r.to.clone(),
                status: r.status,
            });
        }
        for (i, h) in cfg.headers.iter().enumerate() {
            let path = Pattern::parse(&h.path).map_err(|e| format!("headers[{i}]: {e}"))?;
            let mut set = Vec::new();
            for (name, value) in &h.set {
                if !rules::valid_header(name, value) {
                    return Err(format!("headers[{i}]: bad header {name:?} = {value:?}"));
                }
                set.push((name.clone(), value.clone()));
            }
            site.headers.push(HeaderRule { path, set });
        }
        for (i, a) in cfg.auth.iter().enumerate() {
            let path = Pattern::parse(&a.path).map_err(|e| format!("auth[{i}]: {e}"))?;
            if a.realm.contains(['"', '\\']) || !rules::valid_header("Realm", &a.realm) {
                return Err(format!(
                    "auth[{i}]: realm {:?} has a quote or control",
                    a.realm
                ));
            }
            let users =
                htpasswd::Users::load(&a.htpasswd).map_err(|e| format!("auth[{i}]: {e}"))?;
            site.auth.push(AuthRule {
                path,
                realm: a.realm.clone(),
                users,
            });
        }
        for (i, a) in cfg.access.iter().enumerate() {
            let path = Pattern::parse(&a.path).map_err(|e| format!("access[{i}]: {e}"))?;
            let allow =
                cidr::parse_list(&a.allow).map_err(|e| format!("access[{i}].allow: {e}"))?;
            let deny = cidr::parse_list(&a.deny).map_err(|e| format!("access[{i}].deny: {e}"))?;
            site.access.push(AccessRule { path, allow, deny });
        }
        Ok(site)
    }

    /// Whether any rule needs the canonical path at the front end.
    fn has_gate_rules(&self) -> bool {
        !(self.access.is_empty() && self.auth.is_empty() && self.redirects.is_empty())
    }

    /// The site's access, auth and redirect rules, in that order, for a request from `peer`.
    pub fn gate(&self, req: &Request, peer: IpAddr) -> Gate {
        if !self.has_gate_rules() || !req.path.starts_with('/') {
            return Gate::Pass;
        }
        let Some(path) = rules::canonical(&req.path) else {
            return Gate::BadPath;
        };
        for rule in &self.access {
            if rule.path.matches(&path).is_some() {
                let denied = cidr::contains(&rule.deny, peer);
                let allowed = rule.allow.is_empty() || cidr::contains(&rule.allow, peer);
                if denied || !allowed {
                    return Gate::Forbidden;
                }
            }
        }
        for rule in &self.auth {
            if rule.path.matches(&path).is_none() {
                continue;
            }
            let credentials = req
                .header("authorization")
                .and_then(htpasswd::basic_credentials);
            let good =
                credentials.is_some_and(|(user, password)| rule.users.verify(&user, &password));
            if !good {
                return Gate::Unauthorized(format!(
                    "Basic realm=\"{}\", charset=\"UTF-8\"",
                    rule.realm
                ));
            }
        }
        for rule in &self.redirects {
            if rule.from.matches(&path).is_none() {
                continue;
            }
            let host = req
                .host
                .as_deref()
                .and_then(|h| host::name(h).ok())
                .unwrap_or("");
            if let Some(location) = rule.location(&path, host, req.query.as_deref()) {
                return Gate::Redirect(rule.status, location);
            }
        }
        Gate::Pass
    }

    /// Applies the `headers` rules to a response head (without its blank line).
    pub fn apply_headers(&self, req: &Request, status: u16, head: &mut Vec<u8>) {
        if self.headers.is_empty() || !rules::gets_headers(status) {
            return;
        }
        if let Some(path) = rules::canonical(&req.path) {
            rules::apply_headers(&self.headers, &path, head);
        }
    }

    /// The cache key of a request path: the bare path for site 0, else `label` + path.
    pub fn cache_key<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if self.id == 0 {
            Cow::Borrowed(path)
        } else {
            Cow::Owned(format!("{}{path}", self.label))
        }
    }

    /// Calls `f` with the cache key of a request path, built in a per-thread buffer, so a
    /// lookup on the hot path allocates nothing.
    pub fn with_cache_key<R>(&self, path: &str, f: impl FnOnce(&str) -> R) -> R {
        if self.id == 0 {
            return f(path);
        }
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|key| match key.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                key.push_str(self.label);
                key.push_str(path);
                f(&key)
            }
            // Only a call from inside `f` could find it taken.
            Err(_) => f(&self.cache_key(path)),
        })
    }
}

/// Every site, and how host names find them.
#[derive(Debug)]
pub struct Sites {
    /// Distinguishes this table from every other one compiled (see `SiteRef`).
    generation: u64,
    pub list: Vec<Arc<Site>>,
    /// Lower-case exact names.
    exact: HashMap<String, usize>,
    /// `*.example.test` as `.example.test`, longest first.
    wildcards: Vec<(String, usize)>,
    default: usize,
}

impl Default for Sites {
    fn default() -> Self {
        Sites::implicit(PathBuf::from("html"), None)
    }
}

/// Why a Host value chose no site.
pub use host::HostError;

impl Sites {
    /// One site serving `root` for every host (no `[[site]]` configured).
    pub fn implicit(root: PathBuf, error_pages: Option<PathBuf>) -> Sites {
        Sites {
            generation: next_generation(),
            list: vec![Arc::new(Site::plain(0, root, error_pages))],
            exact: HashMap::new(),
            wildcards: Vec::new(),
            default: 0,
        }
    }

    /// Compiles `[[site]]`; the error names the site and the key.
    pub fn compile(cfg: &Config) -> Result<Sites, ConfigError> {
        if cfg.sites.is_empty() {
            return Ok(Sites::implicit(cfg.root.clone(), cfg.error_pages.clone()));
        }
        let mut sites = Sites {
            generation: next_generation(),
            list: Vec::new(),
            exact: HashMap::new(),
            wildcards: Vec::new(),
            default: 0,
        };
        let mut default = None;
        for (id, site_cfg) in cfg.sites.iter().enumerate() {
            let named = |e: String| {
                let name = site_cfg.names.first().map_or("", String::as_str);
                ConfigError(format!("site[{id}] {name:?}: {e}"))
            };
            let site = Site::compile(id, site_cfg).map_err(named)?;
            for name in &site_cfg.names {
                let lower = name.to_ascii_lowercase();
                let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
                let (key, wildcard) = match lower.strip_prefix("*.") {
                    Some(rest) => (format!(".{rest}"), true),
                    None => (lower.clone(), false),
                };
                let bare = key.trim_start_matches('.');
                if bare.is_empty() || host::name(bare) != Ok(bare) || bare.contains('*') {
                    return Err(named(format!("name {name:?} is not a host name or *.name")));
                }
                let taken = if wildcard {
                    sites
                        .wildcards
                        .iter()
                        .find(|(w, _)| *w == key)
                        .map(|(_, i)| *i)
                } else {
                    sites.exact.get(&key).copied()
                };
                if let Some(other) = taken {
                    return Err(named(format!("name {name:?} is already site[{other}]'s")));
                }
                if wildcard {
                    sites.wildcards.push((key, id));
                } else {
                    sites.exact.insert(key, id);
                }
            }
            if site_cfg.default {
                if let Some(other) = default {
                    return Err(named(format!("default = true, and site[{other}] is too")));
                }
                default = Some(id);
            }
            sites.list.push(Arc::new(site));
        }
        sites
            .wildcards
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        sites.default = default.unwrap_or(0);
        Ok(sites)
    }

    /// The site for a request's Host (none, or one naming no site: the default site).
    pub fn pick(&self, host: Option<&str>) -> Result<&Arc<Site>, HostError> {
        let default = &self.list[self.default];
        let Some(host) = host else {
            return Ok(default);
        };
        let name = host::name(host)?;
        if self.list.len() == 1 || name.is_empty() || name.len() > host::MAX_NAME_BYTES {
            return Ok(default);
        }
        let exact = if self.exact.len() <= 16 {
            // A few names: comparing beats hashing a lower-cased copy.
            self.exact
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(_, id)| *id)
        } else {
            let mut lower = [0u8; host::MAX_NAME_BYTES];
            let lower = &mut lower[..name.len()];
            lower.copy_from_slice(name.as_bytes());
            lower.make_ascii_lowercase();
            std::str::from_utf8(lower)
                .ok()
                .and_then(|lower| self.exact.get(lower).copied())
        };
        if let Some(id) = exact {
            return Ok(&self.list[id]);
        }
        let name = name.as_bytes();
        for (suffix, id) in &self.wildcards {
            let suffix = suffix.as_bytes();
            if name.len() > suffix.len()
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            {
                return Ok(&self.list[*id]);
            }
        }
        Ok(default)
    }

    /// The site a cache key belongs to (see `Site::cache_key`).
    pub fn for_cache_key(&self, key: &str) -> Option<&Arc<Site>> {
        if key.starts_with('/') {
            return self.list.first();
        }
        let label = &key[..key.find('/').unwrap_or(key.len())];
        self.list.iter().skip(1).find(|s| s.label == label)
    }

    /// The root a cache key's file is under.
    pub fn root_for_key(&self, key: &str) -> Option<&Path> {
        self.for_cache_key(key).map(|s| s.root.as_path())
    }
}

/// Which site a request is for, as the front end chose it: its place in the table it was
/// chosen from, and its name. Copied with the request, so no stage touches a shared reference
/// count for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteRef {
    generation: u64,
    index: u32,
    /// The site's label (first name), for the access log and the stats.
    pub label: &'static str,
}

impl Sites {
    /// The reference a request carries to one of these sites.
    pub fn reference(&self, site: &Site) -> SiteRef {
        SiteRef {
            generation: self.generation,
            index: site.id as u32,
            label: site.label,
        }
    }

    /// The site a reference names, if it was made from this table.
    pub fn get(&self, site: SiteRef) -> Option<&Site> {
        if site.generation != self.generation {
            return None;
        }
        self.list.get(site.index as usize).map(|s| &**s)
    }
}

/// The site a request was given by the front end. Should the config have been reloaded since,
/// the Host picks again from the new table; failing that, the default site.
pub fn of<'a>(req: &Request, cfg: &'a Config) -> &'a Site {
    let table = &cfg.site_table;
    if let Some(site) = req.site.and_then(|site| table.get(site)) {
        return site;
    }
    match table.pick(req.host.as_deref()) {
        Ok(site) => site,
        Err(_) => &table.list[table.default],
    }
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One leaked copy per distinct string, for the few names and types a config holds; a reload
/// that names them again reuses them.
pub fn intern(text: String) -> &'static str {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let Ok(mut seen) = seen.lock() else {
        return "-";
    };
    if let Some(known) = seen.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    seen.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests;
