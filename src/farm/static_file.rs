//! Static-file worker: answers GET and HEAD from the document root, body by sendfile(2) or,
//! for a cached file, from memory in one write. Both go through `respond`, so a cached answer
//! is byte for byte the uncached one. A worker never waits on a slow reader: it writes what
//! the socket takes at once and hands the rest to send.pool.
//! Instances: a farm (`static_idle` kept idle, up to `static_max`), sharing one inbox.
//! In: ToStatic. Out: ToRecycler, ToSendPool, ToCacheControl (hits, batched). Stops: inbox
//! disconnected or recycler gone.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{SendError, Sender};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::cache::compressor::{open_sibling, sibling_rep};
use crate::cache::{CachedBody, Entry, HitTally, Representation};
use crate::conn::Conn;
use crate::farm::{coded_stream, reply};
use crate::http::body::decode;
use crate::http::encoding::{AcceptEncoding, Choice, Coding};
use crate::http::path::{normalize, SafePath};
use crate::http::range::{self, RangeAnswer};
use crate::http::response::{none_match, not_modified_since, push_header, push_header_u64};
use crate::http::{Body, Method, Request};
use crate::net::send_pool::{self, Progress, SendPoolSender};
use crate::par::Inbox;
use crate::protocol::{
    CloseReason, Exchange, Handler, Piece, ToCacheControl, ToRecycler, ToSendPool, ToStatic, Unsent,
};
use crate::site::{autoindex, Site};
use crate::support::config::{Config, Live};

/// The static farm's outputs.
#[derive(Clone)]
pub struct StaticOut {
    pub to_recycler: Sender<ToRecycler>,
    pub to_send_pool: SendPoolSender,
    pub to_cache_control: Sender<ToCacheControl>,
    pub live: Live,
}

/// A response body: a file to sendfile, or cached bytes.
enum Source<'a> {
    File(File),
    Bytes(&'a [u8]),
}

/// How a job ended for this worker. `Recycle` is moved by value: boxing it would cost an
/// allocation per request (see `protocol.rs`); only the rare `Defer` is boxed.
#[allow(clippy::large_enum_variant)]
pub enum Done {
    /// Answered (or abandoned): on to the recycler.
    Recycle(ToRecycler),
    /// The client reads slowly: the rest of the answer goes to send.pool.
    Defer(Box<Unsent>),
    /// A file to send compressed as it is read (`coded_stream`), which writes at the client's
    /// pace: a worker that must not wait on a client hands it to the static farm.
    Farm(Box<(Conn, Request)>),
}

impl From<ToRecycler> for Done {
    fn from(msg: ToRecycler) -> Done {
        Done::Recycle(msg)
    }
}

const ALLOW: &str = "GET, HEAD, OPTIONS";

pub fn run(mut inbox: Inbox<ToStatic>, out: StaticOut) {
    let mut worker = Worker::new();
    // A farm worker may write a coded stream at the client's pace.
    worker.streams = true;
    // Its records are closed by the recycler, off the replica: an answer left in an h2
    // stream's record would never reach its session.
    worker.answers_in_memory = false;
    while let Some(job) = inbox.recv() {
        let cfg = out.live.load();
        let done = match job {
            ToStatic::File { mut conn, mut req } => {
                skip_buffered_body(&mut conn, &mut req);
                worker.serve(conn, &req, &cfg)
            }
            ToStatic::Cached {
                mut conn,
                mut req,
                entry,
            } => {
                skip_buffered_body(&mut conn, &mut req);
                worker.serve_cached(conn, &req, &cfg, &entry, &out.to_cache_control)
            }
        };
        let handed_on = match done {
            Done::Recycle(msg) => out
                .to_recycler
                .send(msg)
                .map_err(|SendError(orphan)| drop(orphan)),
            Done::Defer(unsent) => out
                .to_send_pool
                .send(ToSendPool::Finish(unsent))
                .map_err(|SendError(orphan)| drop(orphan)),
            // Not made by a worker that streams; closed properly should it ever be.
            Done::Farm(job) => out
                .to_recycler
                .send(ToRecycler::Close(job.0, CloseReason::HandlerFailed, None))
                .map_err(|SendError(orphan)| drop(orphan)),
        };
        if handed_on.is_err() {
            return;
        }
        if inbox.is_empty() || worker.hits.len() >= 256 {
            worker.send_hits(&out.to_cache_control);
        }
    }
}

/// One worker's reusable state: the opened root directory, a header buffer, unsent hits, and
/// the queue of a body being written. A farm worker and each replica own one.
pub struct Worker {
    /// Opened site roots, most recently used first (a few sites at most).
    roots: Vec<(PathBuf, OwnedFd)>,
    head: Vec<u8>,
    hits: HitTally,
    pieces: VecDeque<Piece>,
    /// May write a coded stream itself (a static farm worker); else it hands it on.
    streams: bool,
    /// The cached entry being answered, and the coding of the variant chosen: an HTTP/2
    /// stream's answer then holds its body by reference (`h2::Answer`).
    cached: Option<(Arc<Entry>, Option<Coding>)>,
    /// May leave an h2 stream's answer in its record (a replica's worker, whose records the
    /// replica closes and gives back to their session).
    answers_in_memory: bool,
}

/// What opening a request path found.
enum Found {
    File(File, Box<std::fs::Metadata>, PathBuf),
    /// A directory without an index file, on a site with `autoindex`.
    Listing(File, PathBuf),
    /// `try_files` ended in `=NNN`.
    Status(u16),
    /// A directory asked for without its trailing slash.
    Redirect,
    Missing,
    Forbidden,
    BadPath,
    /// Out of descriptors or memory: try again later (503), never a false 404.
    Unavailable,
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

impl Worker {
    pub fn new() -> Worker {
        Worker {
            roots: Vec::new(),
            head: Vec::with_capacity(16 * 1024),
            hits: HitTally::default(),
            pieces: VecDeque::new(),
            streams: false,
            cached: None,
            answers_in_memory: true,
        }
    }

    /// Sends the hits counted since the last call to cache.control (never waiting for it).
    pub fn send_hits(&mut self, to_cache_control: &Sender<ToCacheControl>) {
        if !self.hits.is_empty() {
            let _ = to_cache_control.try_send(ToCacheControl::Hits(self.hits.take()));
        }
    }

    fn root_fd(&mut self, root: &Path) -> Result<&OwnedFd, rustix::io::Errno> {
        match self.roots.iter().position(|(path, _)| path == root) {
            Some(0) => {}
            Some(at) => self.roots.swap(0, at),
            None => {
                let fd = rustix::fs::open(
                    root,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                // Roots dropped by a reload fall off the end.
                self.roots.truncate(15);
                self.roots.insert(0, (root.to_path_buf(), fd));
            }
        }
        self.roots
            .first()
            .map(|(_, fd)| fd)
            .ok_or(rustix::io::Errno::NOENT)
    }

    /// Answers a request for the document root from the disk.
    pub fn serve(&mut self, conn: Conn, req: &Request, cfg: &Config) -> Done {
        match req.method {
            Method::Get | Method::Head => {}
            Method::Options => return self.options(conn, req, cfg).into(),
            _ => {
                return reply::error_with(
                    conn,
                    Some(req),
                    405,
                    cfg,
                    Handler::Static,
                    &[("Allow", ALLOW)],
                )
                .into()
            }
        }
        let site = crate::site::of(req, cfg);
        let found = if site.try_files.is_empty() {
            self.open(&req.path, site)
        } else {
            self.try_files(req, site)
        };
        match found {
            Found::File(file, meta, relative) => {
                let name = relative
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rep = Representation::of(&meta, &name);
                // A precompressed sibling, when the client takes its coding (COMPRESSION.md).
                // Only a request that names codings can get one (and the type check is skipped
                // for the others).
                let negotiable = req.header_str("accept-encoding").is_some()
                    && cfg.compression.may_vary(rep.mime, rep.len);
                let mut coded = None;
                if negotiable {
                    let choice = self.negotiate(req, cfg, |worker, coding| {
                        if !cfg.compression.precompressed {
                            return None;
                        }
                        let root = worker.root_fd(&site.root).ok()?;
                        open_sibling(root, &relative, coding, rep.modified)
                    });
                    match choice {
                        Ok(found) => coded = found,
                        Err(()) => return not_acceptable(conn, req, cfg, Handler::Static),
                    }
                }
                let saved_bytes = coded
                    .as_ref()
                    .map_or(0, |((_, m), _)| rep.len.saturating_sub(m.len()));
                if req.method == Method::Get && rep.len > 0 {
                    let hits = &mut self.hits;
                    site.with_cache_key(&req.path, |key| {
                        hits.count(key, rep.len, saved_bytes, || Arc::from(relative))
                    });
                }
                if coded.is_none() && negotiable && self.streams_coded(req, cfg, rep.len) {
                    let accept = AcceptEncoding::parse(req.header_str("accept-encoding"));
                    let codings = cfg.compression.codings();
                    if let Choice::Coded(coding) = accept.choose(codings.as_slice(), |_| true) {
                        let coded_rep = coded_stream::representation(&rep, coding);
                        let fresh = match req.header_str("if-none-match") {
                            Some(inm) => none_match(inm, &coded_rep.etag),
                            None => req
                                .header_str("if-modified-since")
                                .is_some_and(|ims| not_modified_since(ims, rep.modified)),
                        };
                        if fresh {
                            let source = Source::File(file);
                            return self.respond(
                                conn,
                                req,
                                cfg,
                                &coded_rep,
                                source,
                                Handler::Static,
                            );
                        }
                        if !self.streams {
                            return Done::Farm(Box::new((conn, req.clone())));
                        }
                        return coded_stream::send(conn, req, cfg, &coded_rep, file, coding).into();
                    }
                }
                match coded {
                    Some(((sibling, sibling_meta), coding)) => {
                        let rep = sibling_rep(&rep, &sibling_meta, coding);
                        let source = Source::File(sibling);
                        self.respond(conn, req, cfg, &rep, source, Handler::Static)
                    }
                    None => {
                        let source = Source::File(file);
                        self.respond(conn, req, cfg, &rep, source, Handler::Static)
                    }
                }
            }
            Found::Redirect => {
                let mut location = format!("{}/", req.path);
                if let Some(q) = &req.query {
                    location.push('?');
                    location.push_str(q);
                }
                reply::error_with(
                    conn,
                    Some(req),
                    301,
                    cfg,
                    Handler::Static,
                    &[("Location", &location)],
                )
                .into()
            }
            Found::Listing(dir, relative) => self.listing(conn, req, cfg, site, &dir, &relative),
            Found::Status(status) => {
                reply::error(conn, Some(req), status, cfg, Handler::Static).into()
            }
            Found::Missing => reply::error(conn, Some(req), 404, cfg, Handler::Static).into(),
            Found::Forbidden => reply::error(conn, Some(req), 403, cfg, Handler::Static).into(),
            Found::BadPath => reply::error(conn, Some(req), 400, cfg, Handler::Static).into(),
            Found::Unavailable => reply::error_with(
                conn,
                Some(req),
                503,
                cfg,
                Handler::Static,
                &[("Retry-After", "1")],
            )
            .into(),
        }
    }

    fn options(&mut self, mut conn: Conn, req: &Request, cfg: &Config) -> ToRecycler {
        let keep_alive = req.keep_alive && req.body == Body::None;
        self.head.clear();
        reply::head(200, req, keep_alive, &mut self.head);
        push_header(&mut self.head, "Allow", ALLOW.as_bytes());
        push_header_u64(&mut self.head, "Content-Length", 0);
        self.head.extend_from_slice(b"\r\n");
        match conn.write_all_until(&self.head, Instant::now() + cfg.send_timeout()) {
            Ok(()) => reply::finished(conn, req, 200, 0, Handler::Static, keep_alive),
            Err(_) => ToRecycler::Close(conn, CloseReason::WriteFailed, None),
        }
    }

    /// Answers from a cached entry, unless the file changed on disk since it was cached.
    pub fn serve_cached(
        &mut self,
        conn: Conn,
        req: &Request,
        cfg: &Config,
        entry: &Arc<Entry>,
        to_cache_control: &Sender<ToCacheControl>,
    ) -> Done {
        if entry.is_stale() {
            return self.serve(conn, req, cfg);
        }
        let root = &crate::site::of(req, cfg).root;
        if entry.due_for_check(cfg.cache.revalidate_ms) && !self.still_fresh(entry, root) {
            entry.mark_stale();
            let _ = to_cache_control.try_send(ToCacheControl::Stale(entry.key.to_string()));
            return self.serve(conn, req, cfg);
        }
        let negotiable = req.header_str("accept-encoding").is_some()
            && cfg.compression.may_vary(entry.rep.mime, entry.rep.len);
        let variant = if negotiable {
            match self.negotiate(req, cfg, |_, coding| entry.variant(coding)) {
                Ok(variant) => variant.map(|(v, _)| v),
                Err(()) => return not_acceptable(conn, req, cfg, Handler::Cache),
            }
        } else {
            None
        };
        let (rep, body) = match variant {
            Some(v) => (&v.rep, &v.body[..]),
            None => (&entry.rep, &entry.body[..]),
        };
        if conn.via_h2.is_some() && self.answers_in_memory {
            let coding = variant.and_then(|v| v.rep.encoding);
            self.cached = Some((entry.clone(), coding));
        }
        let saved_bytes = entry.rep.len.saturating_sub(rep.len);
        self.hits
            .count_entry(&entry.key, entry.rep.len, saved_bytes, || {
                entry.file.clone()
            });
        let source = Source::Bytes(body);
        let done = self.respond(conn, req, cfg, rep, source, Handler::Cache);
        self.cached = None;
        done
    }

    /// Whether a file is sent compressed on the fly rather than as it is: it will never be
    /// cached (too large, or the cache is off), and no range or precondition asks for the
    /// file's own bytes.
    fn streams_coded(&self, req: &Request, cfg: &Config, len: u64) -> bool {
        let c = &cfg.compression;
        c.on_the_fly
            && len >= c.min_bytes
            && (!cfg.cache.enabled || len > cfg.cache.max_file_bytes)
            && ["range", "if-match", "if-unmodified-since"]
                .iter()
                .all(|h| req.header_str(h).is_none())
    }

    /// Chooses the coding of the answer from `Accept-Encoding` among what `available` finds
    /// (asked best first): `Ok(None)` is identity, `Err` means nothing acceptable (406). A
    /// range request is always answered from the file as it is (COMPRESSION.md).
    fn negotiate<T>(
        &mut self,
        req: &Request,
        cfg: &Config,
        mut available: impl FnMut(&mut Worker, Coding) -> Option<T>,
    ) -> Result<Option<(T, Coding)>, ()> {
        let Some(field) = req.header_str("accept-encoding") else {
            return Ok(None); // No field: identity, with nothing more to look at.
        };
        let accept = AcceptEncoding::parse(Some(field));
        let ranged = req.method == Method::Get && req.header_str("range").is_some();
        let mut found = None;
        let choice = accept.choose(cfg.compression.codings().as_slice(), |coding| {
            if ranged {
                return false;
            }
            found = available(self, coding).map(|f| (coding, f));
            found.is_some()
        });
        match choice {
            Choice::NotAcceptable => Err(()),
            Choice::Identity => Ok(None),
            Choice::Coded(_) => Ok(found.map(|(coding, f)| (f, coding))),
        }
    }

    fn still_fresh(&mut self, entry: &Entry, root: &Path) -> bool {
        let Ok(root) = self.root_fd(root) else {
            return false;
        };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let Ok(fd) = rustix::fs::openat2(
            root,
            &*entry.file,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) else {
            return false;
        };
        File::from(fd)
            .metadata()
            .is_ok_and(|meta| entry.rep.matches(&meta))
    }

    /// `try_files`: the first candidate that is a file (or, for one ending in `/`, a
    /// directory with an index or a listing); the last one is served or answered whatever it is.
    fn try_files(&mut self, req: &Request, site: &Site) -> Found {
        if normalize(&req.path).is_err() {
            return Found::BadPath;
        }
        let last = site.try_files.len().saturating_sub(1);
        for (i, candidate) in site.try_files.iter().enumerate() {
            if let Some(code) = candidate.strip_prefix('=') {
                return Found::Status(code.parse().unwrap_or(404));
            }
            let path = candidate.replace("$uri", &req.path);
            let found = self.open(&path, site);
            let done = matches!(
                found,
                Found::File(..) | Found::Listing(..) | Found::Unavailable | Found::BadPath
            );
            if i == last || done {
                return found;
            }
        }
        Found::Missing
    }

    /// Opens the file a request path names, never leaving the root.
    fn open(&mut self, raw_path: &str, site: &Site) -> Found {
        let path = match normalize(raw_path) {
            Ok(path) => path,
            Err(_) => return Found::BadPath,
        };
        if hidden(&path) {
            return Found::Missing;
        }
        let root = match self.root_fd(&site.root) {
            Ok(root) => root,
            Err(e) if out_of_resources(Some(e)) => return Found::Unavailable,
            Err(_) => return Found::Missing,
        };
        let how = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let relative = path.relative();
        let fd = match rustix::fs::openat2(root, &relative, how, Mode::empty(), resolve) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::ACCESS) => return Found::Forbidden,
            Err(e) if out_of_resources(Some(e)) => return Found::Unavailable,
            Err(_) => return Found::Missing,
        };
        let file = File::from(fd);
        let Ok(meta) = file.metadata() else {
            return Found::Missing;
        };
        if meta.is_file() {
            return Found::File(file, Box::new(meta), relative);
        }
        if !meta.is_dir() {
            return Found::Forbidden;
        }
        if !path.trailing_slash {
            return Found::Redirect;
        }
        for name in &site.index {
            if let Ok(fd) = rustix::fs::openat2(&file, name, how, Mode::empty(), resolve) {
                let index = File::from(fd);
                if let Ok(m) = index.metadata() {
                    if m.is_file() {
                        return Found::File(index, Box::new(m), relative.join(name));
                    }
                }
            }
        }
        if site.autoindex {
            return Found::Listing(file, relative);
        }
        Found::Forbidden
    }

    /// A directory listing (`autoindex`), HTML or `?format=json`.
    fn listing(
        &mut self,
        conn: Conn,
        req: &Request,
        cfg: &Config,
        site: &Site,
        dir: &File,
        relative: &Path,
    ) -> Done {
        let entries = match self.list(dir, relative, site) {
            Ok(entries) => entries,
            Err(_) => return reply::error(conn, Some(req), 403, cfg, Handler::Static).into(),
        };
        let (content_type, body): (&[u8], Vec<u8>) = if autoindex::wants_json(req.query.as_deref())
        {
            (b"application/json", autoindex::json(&entries))
        } else {
            let path = crate::site::rules::canonical(&req.path).unwrap_or_default();
            (
                b"text/html; charset=utf-8",
                autoindex::html(&path, &entries),
            )
        };
        let keep_alive = req.keep_alive && req.body == Body::None;
        self.head.clear();
        reply::head(200, req, keep_alive, &mut self.head);
        push_header(&mut self.head, "Content-Type", content_type);
        push_header_u64(&mut self.head, "Content-Length", body.len() as u64);
        site.apply_headers(req, 200, &mut self.head);
        self.head.extend_from_slice(b"\r\n");
        let body_bytes = if req.is_head() { 0 } else { body.len() as u64 };
        if !req.is_head() {
            self.head.extend_from_slice(&body);
        }
        let exchange =
            Exchange::for_request(req, 200, body_bytes, Handler::Static, conn.request_started);
        self.write(conn, None, exchange, keep_alive)
    }

    /// The visible entries of a directory. A symbolic link is listed only when it resolves
    /// below the root; what it points to gives its kind and size.
    fn list(
        &mut self,
        dir: &File,
        relative: &Path,
        site: &Site,
    ) -> Result<Vec<autoindex::Listed>, rustix::io::Errno> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name.first() != Some(&b'.') {
                names.push(name.to_vec());
            }
        }
        let root = self.root_fd(&site.root)?;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let path = relative.join(std::ffi::OsStr::from_bytes(&name));
            let Ok(fd) = rustix::fs::openat2(
                root,
                &path,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            ) else {
                continue;
            };
            let Ok(meta) = File::from(fd).metadata() else {
                continue;
            };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.extend(autoindex::Listed::new(
                &name,
                meta.is_dir(),
                meta.len(),
                modified,
            ));
        }
        autoindex::sort(&mut entries);
        Ok(entries)
    }

    /// Writes the answer for a representation: 412, 304, 206, 416 or 200, HEAD without body.
    fn respond(
        &mut self,
        conn: Conn,
        req: &Request,
        cfg: &Config,
        rep: &Representation,
        source: Source,
        handler: Handler,
    ) -> Done {
        // The coding of the answer could have been another (COMPRESSION.md).
        let vary = rep.encoding.is_some() || cfg.compression.may_vary(rep.mime, rep.len);
        let len = rep.len;
        let keep_alive = req.keep_alive && req.body == Body::None;
        if let Some(if_match) = req.header_str("if-match") {
            if !if_match.trim().eq("*") && !strong_match(if_match, &rep.etag) {
                return reply::error(conn, Some(req), 412, cfg, handler).into();
            }
        } else if let Some(since) = req.header_str("if-unmodified-since") {
            if httpdate::parse_http_date(since.trim()).is_ok()
                && !not_modified_since(since, rep.modified)
            {
                return reply::error(conn, Some(req), 412, cfg, handler).into();
            }
        }
        let not_modified = match req.header_str("if-none-match") {
            Some(inm) => none_match(inm, &rep.etag),
            None => req
                .header_str("if-modified-since")
                .is_some_and(|ims| not_modified_since(ims, rep.modified)),
        };
        self.head.clear();
        if not_modified {
            reply::head(304, req, keep_alive, &mut self.head);
            push_header(&mut self.head, "ETag", rep.etag.as_bytes());
            push_coding(&mut self.head, rep, vary);
            push_header(
                &mut self.head,
                "Last-Modified",
                rep.last_modified.as_bytes(),
            );
            crate::site::of(req, cfg).apply_headers(req, 304, &mut self.head);
            self.head.extend_from_slice(b"\r\n");
            let exchange = Exchange::for_request(req, 304, 0, handler, conn.request_started);
            return self.write(conn, None, exchange, keep_alive);
        }
        let range = match req.header_str("range") {
            Some(value)
                if req.method == Method::Get && if_range_holds(req, &rep.etag, rep.modified) =>
            {
                range::parse(value, len)
            }
            _ => RangeAnswer::Whole,
        };
        let (status, start, count) = match range {
            RangeAnswer::Whole => (200, 0, len),
            RangeAnswer::Partial { start, end } => (206, start, end - start + 1),
            RangeAnswer::Unsatisfiable => {
                let content_range = format!("bytes */{len}");
                return reply::error_with(
                    conn,
                    Some(req),
                    416,
                    cfg,
                    handler,
                    &[("Content-Range", &content_range)],
                )
                .into();
            }
        };
        reply::head(status, req, keep_alive, &mut self.head);
        push_header(&mut self.head, "Content-Type", rep.mime.as_bytes());
        push_header_u64(&mut self.head, "Content-Length", count);
        push_header(
            &mut self.head,
            "Last-Modified",
            rep.last_modified.as_bytes(),
        );
        push_header(&mut self.head, "ETag", rep.etag.as_bytes());
        push_coding(&mut self.head, rep, vary);
        push_header(&mut self.head, "Accept-Ranges", b"bytes");
        if status == 206 {
            let content_range = format!("bytes {}-{}/{}", start, start + count - 1, len);
            push_header(&mut self.head, "Content-Range", content_range.as_bytes());
        }
        crate::site::of(req, cfg).apply_headers(req, status, &mut self.head);
        self.head.extend_from_slice(b"\r\n");
        let body = !req.is_head() && count > 0;
        let body_bytes = if body { count } else { 0 };
        let exchange =
            Exchange::for_request(req, status, body_bytes, handler, conn.request_started);
        match source {
            Source::Bytes(bytes) if body => {
                if let Some((entry, coding)) = self.cached.take() {
                    let cached = CachedBody::new(entry, coding, start as usize, count as usize);
                    if let Some(cached) = cached {
                        match self.answer_in_memory(conn, Some(cached), exchange, keep_alive) {
                            Ok(done) => return done,
                            Err((back, exchange)) => {
                                let slice = &bytes[start as usize..(start + count) as usize];
                                return self.write_cached(back, slice, exchange, keep_alive);
                            }
                        }
                    }
                }
                // Head and body leave in one sendmsg, the body straight from the cache.
                let slice = &bytes[start as usize..(start + count) as usize];
                self.write_cached(conn, slice, exchange, keep_alive)
            }
            Source::Bytes(_) => self.write(conn, None, exchange, keep_alive),
            Source::File(file) if body => {
                self.write(conn, Some((file, start, count)), exchange, keep_alive)
            }
            Source::File(_) => self.write(conn, None, exchange, keep_alive),
        }
    }

    /// Writes `self.head`, then `count` bytes of the file from `start`, as far as the socket
    /// takes them without waiting; a slow reader's rest goes to send.pool.
    fn write(
        &mut self,
        conn: Conn,
        file: Option<(File, u64, u64)>,
        exchange: Exchange,
        keep_alive: bool,
    ) -> Done {
        let (mut conn, exchange) = match file {
            None => match self.answer_in_memory(conn, None, exchange, keep_alive) {
                Ok(done) => return done,
                Err(back) => back,
            },
            Some(_) => (conn, exchange),
        };
        let bytes_out_before = conn.bytes_out;
        let head_len = self.head.len() as u64;
        let head_written = send_pool::send_now(&mut conn, &self.head, file.is_some());
        let written = match head_written {
            Ok(n) if n < self.head.len() => {
                // Only here is the head copied: the client is not reading.
                self.pieces.push_back(Piece::Bytes {
                    bytes: self.head[n..].to_vec(),
                    at: 0,
                });
                if let Some((file, offset, len)) = file {
                    self.pieces.push_back(Piece::File { file, offset, len });
                }
                Ok(Progress::Blocked)
            }
            Ok(_) => match file {
                Some((file, offset, len)) => {
                    self.pieces.push_back(Piece::File { file, offset, len });
                    send_pool::write_now(&mut conn, &mut self.pieces)
                }
                None => Ok(Progress::Done),
            },
            Err(e) => Err(e),
        };
        self.conclude(
            conn,
            written,
            exchange,
            keep_alive,
            head_len,
            bytes_out_before,
        )
    }

    /// An HTTP/2 stream's record whose answer is all in memory (`self.head`, and a cached
    /// body by reference): it goes to the session in `Via::answer`, not through the socket
    /// pair, so it costs no write, no read and no copy in the kernel. Any other connection,
    /// or a record that has written something already, is handed back.
    #[allow(clippy::result_large_err)]
    fn answer_in_memory(
        &mut self,
        mut conn: Conn,
        body: Option<CachedBody>,
        exchange: Exchange,
        keep_alive: bool,
    ) -> Result<Done, (Conn, Exchange)> {
        // Only a record its replica will give back whole (`Sessions::give_back`).
        let fresh =
            conn.bytes_out == 0 && self.answers_in_memory && !conn.registered && conn.tls.is_none();
        let Some(via) = conn
            .via_h2
            .as_deref_mut()
            .filter(|v| fresh && v.answer.is_none())
        else {
            return Err((conn, exchange));
        };
        let body_len = body.as_ref().map_or(0, CachedBody::len);
        via.answer = Some(crate::h2::Answer {
            head: self.head.clone(),
            body,
        });
        conn.bytes_out += (self.head.len() + body_len) as u64;
        let head_len = self.head.len() as u64;
        Ok(self.conclude(conn, Ok(Progress::Done), exchange, keep_alive, head_len, 0))
    }

    /// Writes `self.head` and a cached body as far as the socket takes them without waiting;
    /// only a slow reader's rest is copied, for send.pool.
    fn write_cached(
        &mut self,
        mut conn: Conn,
        body: &[u8],
        exchange: Exchange,
        keep_alive: bool,
    ) -> Done {
        let bytes_out_before = conn.bytes_out;
        let head_len = self.head.len();
        let written = match send_pool::send_two_now(&mut conn, &self.head, body) {
            Ok(n) if n == head_len + body.len() => Ok(Progress::Done),
            Ok(n) => {
                let mut rest = Vec::with_capacity(head_len + body.len() - n);
                if n < head_len {
                    rest.extend_from_slice(&self.head[n..]);
                    rest.extend_from_slice(body);
                } else {
                    rest.extend_from_slice(&body[n - head_len..]);
                }
                self.pieces.push_back(Piece::Bytes { bytes: rest, at: 0 });
                Ok(Progress::Blocked)
            }
            Err(e) => Err(e),
        };
        self.conclude(
            conn,
            written,
            exchange,
            keep_alive,
            head_len as u64,
            bytes_out_before,
        )
    }

    /// What follows a write: the recycler's message, or the rest for send.pool.
    fn conclude(
        &mut self,
        conn: Conn,
        written: std::io::Result<Progress>,
        exchange: Exchange,
        keep_alive: bool,
        head_len: u64,
        bytes_out_before: u64,
    ) -> Done {
        // Over TLS, what the socket has not taken yet may still sit in the session.
        let written = match written {
            Ok(Progress::Done) if conn.tls_pending() => Ok(Progress::Blocked),
            other => other,
        };
        match written {
            Ok(Progress::Done) => Done::Recycle(if keep_alive {
                let mut exchange = exchange;
                exchange.finished = Instant::now();
                ToRecycler::KeepAlive(conn, exchange)
            } else {
                let mut exchange = exchange;
                exchange.finished = Instant::now();
                ToRecycler::Close(conn, CloseReason::Done, Some(exchange))
            }),
            Ok(Progress::Blocked) => Done::Defer(Box::new(Unsent {
                conn,
                pieces: std::mem::take(&mut self.pieces),
                exchange,
                keep_alive,
                head_len,
                bytes_out_before,
            })),
            Err(_) => {
                self.pieces.clear();
                let mut exchange = exchange;
                exchange.body_bytes = (conn.bytes_out - bytes_out_before).saturating_sub(head_len);
                Done::Recycle(ToRecycler::Close(
                    conn,
                    CloseReason::WriteFailed,
                    Some(exchange),
                ))
            }
        }
    }
}

/// `Content-Encoding` of a coded answer, and `Vary` when the coding depends on the request.
fn push_coding(head: &mut Vec<u8>, rep: &Representation, vary: bool) {
    if let Some(coding) = rep.encoding {
        push_header(head, "Content-Encoding", coding.token().as_bytes());
    }
    if vary {
        push_header(head, "Vary", b"Accept-Encoding");
    }
}

/// 406: the client refused identity and takes no coding that is available.
fn not_acceptable(conn: Conn, req: &Request, cfg: &Config, handler: Handler) -> Done {
    reply::error_with(
        conn,
        Some(req),
        406,
        cfg,
        handler,
        &[("Vary", "Accept-Encoding")],
    )
    .into()
}

/// A static answer never uses a request body. One already wholly buffered (a small POST, or
/// a GET with a body, usually in the same segment as its head) is dropped without waiting, so
/// the connection can carry the next request; one still arriving stays, and the answer closes.
pub fn skip_buffered_body(conn: &mut Conn, req: &mut Request) {
    if req.body == Body::None || conn.unread.is_empty() {
        return;
    }
    if let Ok(Some(decoded)) = decode(req.body, u64::MAX, &conn.unread) {
        conn.unread.drain(..decoded.consumed);
        req.body = Body::None;
    }
}

/// Whether an error is the process running short (descriptors, memory), not the file.
fn out_of_resources(e: Option<rustix::io::Errno>) -> bool {
    matches!(
        e,
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM)
    )
}

/// Dot-files are not served (`.htaccess`, `.git`), except under `/.well-known/`.
fn hidden(path: &SafePath) -> bool {
    path.has_dot_segment() && path.segments.first().is_none_or(|s| s != b".well-known")
}

fn strong_match(header: &str, tag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == tag)
}

/// `If-Range`: the range applies only if the validator still matches.
fn if_range_holds(req: &Request, tag: &str, modified: SystemTime) -> bool {
    match req.header_str("if-range").map(str::trim) {
        None => true,
        Some(v) if v.starts_with('"') => v == tag,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|t| {
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            };
            secs(t) == secs(modified)
        }),
    }
}
