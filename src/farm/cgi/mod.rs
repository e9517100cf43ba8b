//! cgi.farm worker: runs one CGI/1.1 program (RFC 3875) per request and streams its answer.
//!
//! Process card — cgi. Instances: a farm of up to `cgi.max` workers sharing one inbox of
//! `cgi.queue` (a full queue is answered 503 by the front end). In: ToCgi. Out: ToRecycler,
//! ToStatic (a program's local redirect to a file), ToLog. Stops: the inbox returns `None`
//! (shutdown or retirement), or the recycler is gone.
//!
//! Each worker owns one running program at a time: it starts it in its own process group,
//! then one poll(2) loop (`stream.rs`) moves the request body to its stdin, its stdout to
//! the client and its stderr to the log, until the output ends or a timeout or a vanished
//! client kills the group. The program is always reaped (`program.rs`).

mod program;
mod stream;

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::conn::Conn;
use crate::farm::reply;
use crate::http::body::{BodyError, BodyReader};
use crate::http::cgi::{environment, locate, EnvInput};
use crate::http::encoding::{AcceptEncoding, Choice, Coding};
use crate::http::{Body, Method, Request};
use crate::par::Inbox;
use crate::protocol::{CloseReason, Exchange, Handler, ToCgi, ToLog, ToRecycler, ToStatic};
use crate::support::config::{CompressionConfig, Config, Live};
use program::{Input, Program};
use stream::{Ending, Limits, Stream};

/// cgi.farm's outputs.
#[derive(Clone)]
pub struct CgiOut {
    pub to_recycler: Sender<ToRecycler>,
    /// A program's local redirect (`Location: /file`) to something that is not a program.
    pub to_static: Sender<ToStatic>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
}

/// Most local redirects followed for one request.
const MAX_LOCAL_REDIRECTS: usize = 5;

/// Buffers a worker reuses from one request to the next.
pub struct Worker {
    read_scratch: Vec<u8>,
    stderr_scratch: Vec<u8>,
    /// Output held back: the response head while it is parsed, then the first body bytes.
    held: Vec<u8>,
    /// The next write to the client.
    out: Vec<u8>,
    to_log: Sender<ToLog>,
}

/// Where the connection goes once this worker is done with it.
enum Next {
    Recycler(ToRecycler),
    Static(ToStatic),
}

pub fn run(inbox: Inbox<ToCgi>, out: CgiOut) {
    program::close_inherited_on_exec();
    let mut worker = Worker {
        read_scratch: vec![0; 64 * 1024],
        stderr_scratch: vec![0; 4096],
        held: Vec::new(),
        out: Vec::new(),
        to_log: out.to_log.clone(),
    };
    for ToCgi::Run { conn, req } in inbox {
        let (next, program) = serve(conn, req, &out, &mut worker);
        // The client is answered before a lingering program is waited for.
        let delivered = match next {
            Next::Recycler(msg) => out.to_recycler.send(msg).is_ok(),
            Next::Static(msg) => out.to_static.send(msg).is_ok(),
        };
        if let Some(program) = program {
            program.finish(&out.to_log);
        }
        if !delivered {
            return;
        }
    }
}

/// Kills every CGI program still running; called once the server stops serving, so no
/// program outlives it.
pub fn stop_all_programs() {
    program::kill_all();
}

/// Answers one request, following local redirects; returns the connection's next stop and
/// the program still to be reaped.
fn serve(
    mut conn: Conn,
    mut req: Request,
    out: &CgiOut,
    worker: &mut Worker,
) -> (Next, Option<Program>) {
    let cfg = out.live.load_full();
    let mut hops = 0;
    loop {
        let (next_conn, next_req, program) = match run_once(conn, req, &cfg, worker) {
            Step::Done(msg, program) => return (Next::Recycler(msg), program),
            Step::Redirect { conn, req, program } => (conn, req, program),
        };
        program.finish(&out.to_log);
        conn = next_conn;
        req = next_req;
        hops += 1;
        if hops > MAX_LOCAL_REDIRECTS {
            log(
                worker,
                format!(
                    "cgi {}: more than {MAX_LOCAL_REDIRECTS} local redirects",
                    req.path
                ),
            );
            return (
                Next::Recycler(reply::error(conn, Some(&req), 500, &cfg, Handler::Cgi)),
                None,
            );
        }
        if !is_cgi_path(&req.path) {
            return (Next::Static(ToStatic::File { conn, req }), None);
        }
    }
}

/// `[compression]` when programs' output may be coded on the fly, with the coding this
/// client takes best (`None`: identity; a client refusing everything gets identity too).
fn stream_coding(req: &Request, cfg: &Config) -> Option<(CompressionConfig, Option<Coding>)> {
    let c = &cfg.compression;
    if !(c.enabled && c.on_the_fly) {
        return None;
    }
    let accept = AcceptEncoding::parse(req.header_str("accept-encoding"));
    let coding = match accept.choose(c.codings().as_slice(), |_| true) {
        Choice::Coded(coding) => Some(coding),
        Choice::Identity | Choice::NotAcceptable => None,
    };
    Some((c.clone(), coding))
}

fn is_cgi_path(path: &str) -> bool {
    path == crate::http::cgi::URL_PREFIX
        || path
            .strip_prefix(crate::http::cgi::URL_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The result of running one program.
enum Step {
    /// Answered (or refused); the program, if one ran, is still to be reaped.
    Done(ToRecycler, Option<Program>),
    /// The program asked for another local URL; `req` is the request for it.
    Redirect {
        conn: Conn,
        req: Request,
        program: Program,
    },
}

fn run_once(mut conn: Conn, req: Request, cfg: &Arc<Config>, worker: &mut Worker) -> Step {
    let script = match locate(&cfg.cgi_bin, &req.path) {
        Ok(script) => script,
        Err(e) => {
            return Step::Done(
                reply::error(conn, Some(&req), e.status(), cfg, Handler::Cgi),
                None,
            )
        }
    };
    let tag = String::from_utf8_lossy(&script.script_name).into_owned();
    if let Body::Length(n) = req.body {
        if n > cfg.max_body_bytes {
            return Step::Done(reply::error(conn, Some(&req), 413, cfg, Handler::Cgi), None);
        }
    }
    let body_deadline = Instant::now() + cfg.body_timeout();
    if req.expect_continue && req.body != Body::None && conn.unread.is_empty() {
        let continued = conn.write_all_until(
            b"HTTP/1.1 100 Continue\r\n\r\n",
            Instant::now() + cfg.send_timeout(),
        );
        if continued.is_err() {
            return Step::Done(
                ToRecycler::Close(conn, CloseReason::WriteFailed, None),
                None,
            );
        }
    }
    let (input, body, content_length) = match req.body {
        Body::None => (Input::Empty, None, None),
        Body::Length(n) => (
            Input::Pipe,
            Some(BodyReader::new(req.body, cfg.max_body_bytes)),
            Some(n),
        ),
        Body::Chunked => match spool_chunked(&mut conn, &req, cfg, body_deadline) {
            Ok((file, length)) => (Input::File(file), None, Some(length)),
            Err(Spool::Client(e)) => return Step::Done(body_failed(conn, &req, e, cfg), None),
            Err(Spool::Disk(e)) => {
                log(
                    worker,
                    format!("cgi {tag}: cannot store the request body: {e}"),
                );
                return Step::Done(reply::error(conn, Some(&req), 500, cfg, Handler::Cgi), None);
            }
        },
    };
    let document_root = absolute(&crate::site::of(&req, cfg).root);
    let script_filename = absolute(&script.program);
    let server_path = std::env::var_os("PATH");
    let tls = conn.tls_names();
    let env = environment(&EnvInput {
        req: &req,
        script: &script,
        script_filename: &script_filename,
        document_root: &document_root,
        peer: conn.peer,
        local: conn.local,
        content_length,
        path: server_path.as_deref(),
        tls: tls
            .as_ref()
            .map(|(protocol, cipher)| (*protocol, cipher.as_str())),
    });
    let mut program = match Program::start(&script_filename, env, input, tag.clone()) {
        Ok(program) => program,
        Err(e) => {
            log(worker, format!("cgi {tag}: cannot start: {e}"));
            let status = if e.kind() == io::ErrorKind::PermissionDenied {
                403
            } else {
                500
            };
            return Step::Done(
                reply::error(conn, Some(&req), status, cfg, Handler::Cgi),
                None,
            );
        }
    };
    let limits = Limits {
        idle_timeout: Duration::from_secs(cfg.cgi.idle_timeout_secs),
        total_timeout: Duration::from_secs(cfg.cgi.total_timeout_secs),
        body_timeout: cfg.body_timeout(),
        send_timeout: cfg.send_timeout(),
        compression: stream_coding(&req, cfg),
    };
    let ending = Stream::new(
        &mut conn,
        &req,
        &mut program,
        worker,
        body,
        script.nph,
        &limits,
    )
    .run();
    let msg = match ending {
        Ending::Answered {
            status,
            body_bytes,
            keep_alive,
        } => reply::finished(conn, &req, status, body_bytes, Handler::Cgi, keep_alive),
        Ending::Redirect {
            location,
            body_consumed,
        } => {
            let next = redirected(&req, &location, body_consumed);
            return Step::Redirect {
                conn,
                req: next,
                program,
            };
        }
        Ending::Failed { status, why } => {
            log(worker, format!("cgi {tag}: {why}; answered {status}"));
            reply::error(conn, Some(&req), status, cfg, Handler::Cgi)
        }
        Ending::Cut {
            status,
            body_bytes,
            reason,
            why,
        } => {
            log(worker, format!("cgi {tag}: {why}; response cut short"));
            let exchange =
                Exchange::for_request(&req, status, body_bytes, Handler::Cgi, conn.request_started);
            ToRecycler::Close(conn, reason, Some(exchange))
        }
    };
    Step::Done(msg, Some(program))
}

/// The request a local redirect stands for: GET (or HEAD) of `location`, without a body.
fn redirected(req: &Request, location: &str, body_consumed: bool) -> Request {
    let mut next = req.clone();
    next.method = if req.is_head() {
        Method::Head
    } else {
        Method::Get
    };
    next.target = location.to_string();
    let without_fragment = location.split('#').next().unwrap_or(location);
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (without_fragment, None),
    };
    next.path = path.to_string();
    next.query = query;
    next.body = Body::None;
    next.expect_continue = false;
    next.headers.retain(|h| {
        !h.name.eq_ignore_ascii_case("content-length")
            && !h.name.eq_ignore_ascii_case("content-type")
    });
    // An unread body would be taken for the next request, so the connection must close.
    next.keep_alive = req.keep_alive && body_consumed;
    next
}

/// Why a chunked body could not be stored.
enum Spool {
    Client(BodyError),
    Disk(io::Error),
}

/// De-chunks the request body into an unnamed temporary file, so the program gets an exact
/// CONTENT_LENGTH and reads the body from a rewound file.
fn spool_chunked(
    conn: &mut Conn,
    req: &Request,
    cfg: &Config,
    deadline: Instant,
) -> Result<(File, u64), Spool> {
    let mut file = anonymous_file().map_err(Spool::Disk)?;
    let mut reader = BodyReader::new(req.body, cfg.max_body_bytes);
    let mut piece = Vec::with_capacity(64 * 1024);
    loop {
        piece.clear();
        if reader
            .read(conn, &mut piece, deadline)
            .map_err(Spool::Client)?
            == 0
        {
            break;
        }
        file.write_all(&piece).map_err(Spool::Disk)?;
    }
    file.rewind().map_err(Spool::Disk)?;
    Ok((file, reader.total()))
}

/// A file with no name in the temporary directory (O_TMPFILE), or one unlinked at once.
fn anonymous_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir);
    if let Ok(file) = unnamed {
        return Ok(file);
    }
    let path = dir.join(format!(
        "occwserv-cgi-body-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The recycler's message when the request body could not be read.
fn body_failed(conn: Conn, req: &Request, e: BodyError, cfg: &Config) -> ToRecycler {
    match e {
        BodyError::Http(e) => reply::error(conn, Some(req), e.status(), cfg, Handler::Cgi),
        BodyError::Io(_) => ToRecycler::Close(conn, CloseReason::PeerClosed, None),
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn log(worker: &Worker, line: String) {
    let _ = worker.to_log.try_send(ToLog::Error(line));
}
