//! ogi.farm worker: calls gateway plug-ins under `/ogi/NAME`.
//! Instances: a farm (1 idle, up to `ogi.instances`), sharing one inbox; plus one owner thread
//! (`ogi-NAME#GEN`) per persistent plug-in generation, started on its first request, or by
//! the keeper as soon as it is attached when the plug-in declares `start: attached`.
//! In: ToPlugin. Out: ToRecycler (every connection, when the plug-in gives it back),
//! ToTlsPump (HTTPS connections, and those whose answer may be compressed, relayed while
//! lent, then given back through it),
//! ToPluginKeeper (deadlines), ToLog. Stops: inbox disconnected.
//!
//! The paper's worker slots: a non-persistent plug-in runs a fresh instance on the worker's own
//! thread for each request (busy); a persistent one is asked once, and from then on its owner
//! thread owns the path and gets every request for it through a bounded queue (owning). The
//! plug-in table (`Routes`) is replaced whole by the keeper (`keeper.rs`), so a worker that
//! already picked a generation finishes with it while a newer one takes new requests.

mod board;
mod generation;
pub mod keeper;
mod owner;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::Sender;

pub use generation::{Generation, GenerationState, NameCounters};

use crate::conn::Conn;
use crate::farm::reply;
use crate::http::answer_coder::{AnswerCoder, AnswerCoding};
use crate::http::encoding::{AcceptEncoding, Choice};
use crate::http::Request;
use crate::net::tls_pump::{self, TlsPumpSender};
use crate::par::Inbox;
use crate::protocol::{Handler, ToLog, ToPlugin, ToPluginKeeper, ToRecycler};
use crate::support::config::{Config, Live};

/// ogi.farm's outputs.
#[derive(Clone)]
pub struct PluginOut {
    pub to_recycler: Sender<ToRecycler>,
    pub to_keeper: Sender<ToPluginKeeper>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
    /// The attached plug-ins, published by the keeper.
    pub routes: Arc<Routes>,
    /// Relays HTTPS connections lent to plug-ins.
    pub to_tls_pump: TlsPumpSender,
}

pub fn run(inbox: Inbox<ToPlugin>, out: PluginOut) {
    for ToPlugin::Call { conn, req, name } in inbox {
        if let Some(done) = call(conn, req, &name, &out) {
            if out.to_recycler.send(done).is_err() {
                return; // The recycler is gone: we are shutting down.
            }
        }
    }
}

/// Routes one request. `Some` is an answer already written; `None` means the connection was
/// lent to a plug-in, which gives it back to the recycler itself.
fn call(mut conn: Conn, req: Request, name: &str, out: &PluginOut) -> Option<ToRecycler> {
    let route = out.routes.get(name);
    let cfg = out.live.load();
    match route {
        None => Some(reply::error(conn, Some(&req), 404, &cfg, Handler::Plugin)),
        Some(Route::Refused(_)) => Some(reply::error(conn, Some(&req), 503, &cfg, Handler::Plugin)),
        Some(Route::Ready(generation)) => {
            // Over HTTPS, or when the answer may be compressed, the plug-in is lent one end of
            // a socketpair the TLS pump relays (and codes).
            let coder = answer_coding(&conn, &req, &generation, &cfg).map(AnswerCoder::new);
            if conn.tls.is_some() || coder.is_some() {
                if let Err(e) = tls_pump::prepare(&mut conn, &out.to_tls_pump, coder) {
                    let _ = out.to_log.try_send(ToLog::Error(format!(
                        "plugin {name}: conn {}: no socketpair for the relay: {e}",
                        conn.id
                    )));
                    return Some(reply::error(conn, Some(&req), 503, &cfg, Handler::Plugin));
                }
            }
            generation.dispatch(conn, req, &cfg, out)
        }
    }
}

/// How a plug-in's answer to `req` may be coded: the plug-in allows it, `[compression]` is
/// on with `on_the_fly`, and the connection is HTTP/1.x (an HTTP/2 stream is not relayed).
/// The coding is negotiated as for CGI output: the client's best, or identity (then only
/// `Vary` is added to a compressible answer).
fn answer_coding(
    conn: &Conn,
    req: &Request,
    generation: &Generation,
    cfg: &Config,
) -> Option<AnswerCoding> {
    let c = &cfg.compression;
    let allowed = c.enabled && c.on_the_fly && generation.library.declaration.allows_compression();
    if !allowed || conn.via_h2.is_some() {
        return None;
    }
    let accept = AcceptEncoding::parse(req.header_str("accept-encoding"));
    let coding = match accept.choose(c.codings().as_slice(), |_| true) {
        Choice::Coded(coding) => Some(coding),
        Choice::Identity | Choice::NotAcceptable => None,
    };
    Some(AnswerCoding {
        coding,
        level: coding.map_or(0, |coding| c.level_of(coding)),
        min_bytes: c.min_bytes,
        types: c.types.clone(),
        minor_version: req.minor_version,
        head_request: req.is_head(),
    })
}

/// What `/ogi/NAME` leads to.
#[derive(Clone)]
pub enum Route {
    Ready(Arc<Generation>),
    /// The file was refused; answered 503.
    Refused(Arc<Refusal>),
}

/// Why a plug-in file was refused.
pub struct Refusal {
    pub file: std::path::PathBuf,
    pub why: String,
}

/// The attached plug-ins by name. Only the keeper replaces the table.
#[derive(Default)]
pub struct Routes {
    table: ArcSwap<HashMap<String, Route>>,
}

impl Routes {
    pub fn get(&self, name: &str) -> Option<Route> {
        self.table.load().get(name).cloned()
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, Route>> {
        self.table.load_full()
    }

    pub fn publish(&self, table: HashMap<String, Route>) {
        self.table.store(Arc::new(table));
    }
}
