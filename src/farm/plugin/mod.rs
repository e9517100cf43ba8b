//! ogi.farm worker: calls gateway plug-ins under `/ogi/NAME`.
//! Instances: a farm (1 idle, up to `ogi.instances`), sharing one inbox; plus one owner thread
//! (`ogi-NAME#GEN`) per persistent plug-in generation, started on its first request.
//! In: ToPlugin. Out: ToRecycler (every connection, when the plug-in gives it back),
//! ToPluginKeeper (deadlines), ToLog. Stops: inbox disconnected.
//!
//! The paper's worker slots: a non-persistent plug-in runs a fresh instance on the worker's own
//! thread for each request (busy); a persistent one is asked once, and from then on its owner
//! thread owns the path and gets every request for it through a bounded queue (owning). The
//! plug-in table (`Routes`) is replaced whole by the keeper (`keeper.rs`), so a worker that
//! already picked a generation finishes with it while a newer one takes new requests.

pub mod keeper;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::conn::Conn;
use crate::farm::reply;
use crate::http::Request;
use crate::par::Inbox;
use crate::plugin_host::{
    decode_path, decode_query, subpath, CallInfo, Fault, Home, Instance, Lent, Library, ReturnKind,
    Returned, Watch,
};
use crate::protocol::{
    CloseReason, Exchange, Handler, ToLog, ToPlugin, ToPluginKeeper, ToRecycler,
};
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
fn call(conn: Conn, req: Request, name: &str, out: &PluginOut) -> Option<ToRecycler> {
    let route = out.routes.get(name);
    let cfg = out.live.load();
    match route {
        None => Some(reply::error(conn, Some(&req), 404, &cfg, Handler::Plugin)),
        Some(Route::Refused(_)) => Some(reply::error(conn, Some(&req), 503, &cfg, Handler::Plugin)),
        Some(Route::Ready(generation)) => generation.dispatch(conn, req, &cfg, out),
    }
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

/// Counts kept per plug-in name, across its generations.
#[derive(Default)]
pub struct NameCounters {
    pub requests: AtomicU64,
    pub faults: AtomicU64,
    pub timeouts: AtomicU64,
    pub last_fault: Mutex<String>,
}

/// Live state of one generation.
#[derive(Default)]
pub struct GenerationState {
    /// Non-persistent instances running now.
    pub running: AtomicUsize,
    /// Requests dispatched to this generation and not yet given back.
    pub in_flight: AtomicUsize,
    /// Its persistent owner thread is alive.
    pub owning: AtomicBool,
    /// 0 not yet asked, 1 per request, 2 persistent.
    pub persist: AtomicU8,
    waiting: AtomicUsize,
    slot_freed: Condvar,
    slot_lock: Mutex<()>,
}

impl GenerationState {
    pub fn persist(&self) -> bool {
        self.persist.load(Ordering::Relaxed) == 2
    }
}

/// How a generation takes requests, decided by its first instance's `persist`.
enum Mode {
    PerRequest,
    Persistent(Sender<Job>),
}

/// A request on its way to a persistent instance.
struct Job {
    conn: Conn,
    req: Request,
}

/// One loaded generation of a plug-in, as ogi.farm sees it.
pub struct Generation {
    pub library: Arc<Library>,
    pub counters: Arc<NameCounters>,
    pub state: Arc<GenerationState>,
    home: Arc<GenerationHome>,
    mode: OnceLock<Mode>,
    deciding: Mutex<()>,
}

impl Generation {
    pub fn new(
        library: Arc<Library>,
        counters: Arc<NameCounters>,
        to_recycler: Sender<ToRecycler>,
        live: Live,
    ) -> Generation {
        let state = Arc::new(GenerationState::default());
        let home = Arc::new(GenerationHome {
            library: library.clone(),
            counters: counters.clone(),
            state: state.clone(),
            to_recycler,
            live,
        });
        Generation {
            library,
            counters,
            state,
            home,
            mode: OnceLock::new(),
            deciding: Mutex::new(()),
        }
    }

    /// Sends the request to the owning instance, or runs a fresh instance on this thread.
    fn dispatch(
        &self,
        conn: Conn,
        req: Request,
        cfg: &Config,
        out: &PluginOut,
    ) -> Option<ToRecycler> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        // Counted until the connection is given back, or answered here.
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let job = Job { conn, req };
        let answered = match self.mode.get() {
            Some(Mode::Persistent(queue)) => self.enqueue(queue, job, cfg),
            Some(Mode::PerRequest) => self.run_fresh(job, None, cfg, out),
            None => self.decide(job, cfg, out),
        };
        if answered.is_some() {
            self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        answered
    }

    /// The first request of a generation: makes an instance and asks it `persist`.
    fn decide(&self, job: Job, cfg: &Config, out: &PluginOut) -> Option<ToRecycler> {
        let guard = self
            .deciding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.mode.get() {
            Some(Mode::Persistent(queue)) => return self.enqueue(queue, job, cfg),
            Some(Mode::PerRequest) => {
                drop(guard);
                return self.run_fresh(job, None, cfg, out);
            }
            None => {}
        }
        let instance = match self.library.new_instance() {
            Ok(instance) => instance,
            Err(fault) => return Some(self.faulted(fault, job, cfg)),
        };
        let persist = match instance.persist() {
            Ok(persist) => persist,
            Err(fault) => {
                drop(instance);
                return Some(self.faulted(fault, job, cfg));
            }
        };
        if !persist {
            self.state.persist.store(1, Ordering::Relaxed);
            let _ = self.mode.set(Mode::PerRequest);
            drop(guard);
            return self.run_fresh(job, Some(instance), cfg, out);
        }
        let (queue, jobs) = bounded::<Job>(cfg.ogi.queue.max(1));
        let owner = Owner {
            instance: Some(instance),
            home: self.home.clone(),
            live: out.live.clone(),
        };
        let thread_name = format!("ogi-{}#{}", self.library.name(), self.library.generation);
        self.state.owning.store(true, Ordering::Relaxed);
        if let Err(e) = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || owner.run(jobs))
        {
            self.state.owning.store(false, Ordering::Relaxed);
            self.library
                .log(&format!("cannot start the owner thread: {e}"));
            return Some(reply::error(
                job.conn,
                Some(&job.req),
                503,
                cfg,
                Handler::Plugin,
            ));
        }
        self.state.persist.store(2, Ordering::Relaxed);
        let _ = self.mode.set(Mode::Persistent(queue.clone()));
        drop(guard);
        self.enqueue(&queue, job, cfg)
    }

    /// Queues a request for the owning instance; a full queue is answered 503.
    fn enqueue(&self, queue: &Sender<Job>, job: Job, cfg: &Config) -> Option<ToRecycler> {
        match queue.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                Some(reply::error_with(
                    job.conn,
                    Some(&job.req),
                    503,
                    cfg,
                    Handler::Plugin,
                    &[("Retry-After", "1")],
                ))
            }
        }
    }

    /// Runs one request on a fresh instance (or `made`, already asked `persist`) on this
    /// thread, within `ogi.instances` and `ogi.timeout_secs`.
    fn run_fresh(
        &self,
        job: Job,
        made: Option<Instance>,
        cfg: &Config,
        out: &PluginOut,
    ) -> Option<ToRecycler> {
        if !self.take_slot(cfg) {
            drop(made);
            return Some(reply::error_with(
                job.conn,
                Some(&job.req),
                503,
                cfg,
                Handler::Plugin,
                &[("Retry-After", "1")],
            ));
        }
        let instance = match made {
            Some(instance) => Ok(instance),
            None => self.library.new_instance(),
        };
        let answer = match instance {
            Ok(mut instance) => {
                let deadline = Instant::now() + Duration::from_secs(cfg.ogi.timeout_secs);
                let watch = Arc::new(Watch::new(job.conn.fd(), Some(deadline)));
                // The keeper may be gone at shutdown; the request then simply has no deadline.
                let _ = out.to_keeper.send(ToPluginKeeper::Watch(watch.clone()));
                if let Err(fault) = lend(&mut instance, job, watch, &self.home, cfg) {
                    self.note_fault(fault);
                }
                drop(instance);
                None
            }
            Err(fault) => Some(self.faulted(fault, job, cfg)),
        };
        self.free_slot();
        answer
    }

    /// Claims one of `ogi.instances` slots, waiting (at most `ogi.queue` requests, for at most
    /// `ogi.timeout_secs`) when all are taken. False: answer 503.
    fn take_slot(&self, cfg: &Config) -> bool {
        let limit = cfg.ogi.instances.max(1);
        let state = &self.state;
        if state.running.fetch_add(1, Ordering::AcqRel) < limit {
            return true;
        }
        state.running.fetch_sub(1, Ordering::AcqRel);
        if state.waiting.fetch_add(1, Ordering::AcqRel) >= cfg.ogi.queue {
            state.waiting.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let give_up = Instant::now() + Duration::from_secs(cfg.ogi.timeout_secs);
        let mut lock = state
            .slot_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let claimed = loop {
            if state.running.fetch_add(1, Ordering::AcqRel) < limit {
                break true;
            }
            state.running.fetch_sub(1, Ordering::AcqRel);
            let now = Instant::now();
            if now >= give_up {
                break false;
            }
            // A slot freed between the check and the wait would be missed; re-checking at
            // least every 50 ms bounds that.
            let wait = (give_up - now).min(Duration::from_millis(50));
            lock = match state.slot_freed.wait_timeout(lock, wait) {
                Ok((lock, _)) => lock,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        drop(lock);
        state.waiting.fetch_sub(1, Ordering::AcqRel);
        claimed
    }

    fn free_slot(&self) {
        self.state.running.fetch_sub(1, Ordering::AcqRel);
        if self.state.waiting.load(Ordering::Acquire) > 0 {
            self.state.slot_freed.notify_one();
        }
    }

    fn note_fault(&self, fault: Fault) {
        note_fault(&self.library, &self.counters, fault);
    }

    /// An instance could not be made: answers 500.
    fn faulted(&self, fault: Fault, job: Job, cfg: &Config) -> ToRecycler {
        self.note_fault(fault);
        reply::error(job.conn, Some(&job.req), 500, cfg, Handler::Plugin)
    }
}

fn note_fault(library: &Library, counters: &NameCounters, fault: Fault) {
    counters.faults.fetch_add(1, Ordering::Relaxed);
    let text = format!("generation {} {fault}", library.generation);
    library.log(&format!(
        "faulted: {fault}; the instance is dropped and the path keeps serving"
    ));
    if let Ok(mut last) = counters.last_fault.lock() {
        *last = text;
    }
}

/// Lends one connection to `instance`.
fn lend(
    instance: &mut Instance,
    job: Job,
    watch: Arc<Watch>,
    home: &Arc<GenerationHome>,
    cfg: &Config,
) -> Result<plugin_api::Next, Fault> {
    let Job { conn, req } = job;
    let path = decode_path(&req.path);
    let name = instance.library().name();
    let rest = subpath(&path, &name);
    let query_decoded = req.query.as_deref().map(decode_query);
    let call = CallInfo {
        path: &path,
        subpath: &rest,
        query_decoded: query_decoded.as_deref(),
        keep_alive_allowed: conn.requests.saturating_add(1) < cfg.max_keep_alive_requests,
        send_timeout: cfg.send_timeout(),
        body_timeout: cfg.body_timeout(),
    };
    let home: Arc<dyn Home> = home.clone();
    let lent = Box::new(Lent {
        conn,
        req,
        watch,
        home,
    });
    instance.handle(lent, &call)
}

/// The thread of a persistent generation: owns the path and takes its requests in turn,
/// making a fresh instance after one terminates or faults.
struct Owner {
    instance: Option<Instance>,
    home: Arc<GenerationHome>,
    live: Live,
}

impl Owner {
    fn run(mut self, jobs: Receiver<Job>) {
        // Ends when the generation is replaced or detached and its queue has drained.
        for job in jobs {
            let cfg = self.live.load();
            let mut instance = match self.instance.take() {
                Some(instance) => instance,
                None => match self.home.library.new_instance() {
                    Ok(instance) => instance,
                    Err(fault) => {
                        note_fault(&self.home.library, &self.home.counters, fault);
                        self.home.state.in_flight.fetch_sub(1, Ordering::Relaxed);
                        let done =
                            reply::error(job.conn, Some(&job.req), 500, &cfg, Handler::Plugin);
                        let _ = self.home.to_recycler.send(done);
                        continue;
                    }
                },
            };
            let watch = Arc::new(Watch::new(job.conn.fd(), None));
            match lend(&mut instance, job, watch, &self.home, &cfg) {
                Ok(plugin_api::Next::Continue) => self.instance = Some(instance),
                Ok(plugin_api::Next::Terminate) => drop(instance),
                Err(fault) => {
                    note_fault(&self.home.library, &self.home.counters, fault);
                    // Dropping the faulted instance gives back any connections it still holds.
                    drop(instance);
                }
            }
        }
        drop(self.instance.take());
        self.home.state.owning.store(false, Ordering::Relaxed);
    }
}

/// Takes connections back from one generation's instances and sends them on to the recycler.
struct GenerationHome {
    library: Arc<Library>,
    counters: Arc<NameCounters>,
    state: Arc<GenerationState>,
    to_recycler: Sender<ToRecycler>,
    live: Live,
}

impl Home for GenerationHome {
    fn returned(&self, lent: Lent, returned: Returned) {
        let Lent { mut conn, req, .. } = lent;
        conn.bytes_in += returned.bytes_read;
        conn.bytes_out += returned.bytes_written;
        let started = conn.request_started;
        let done = if let Some(taken) = returned.taken {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            conn.bytes_out += taken.answer_bytes;
            let cfg = self.live.load();
            self.library.log(&format!(
                "conn {}: timed out after {} s; {}",
                conn.id,
                cfg.ogi.timeout_secs,
                if taken.status.is_some() {
                    "answered 504"
                } else {
                    "closed"
                }
            ));
            let status = taken.status.unwrap_or(if returned.status > 0 {
                returned.status
            } else {
                504
            });
            let exchange =
                Exchange::for_request(&req, status, returned.body_bytes, Handler::Plugin, started);
            ToRecycler::Close(conn, CloseReason::HandlerFailed, Some(exchange))
        } else {
            match returned.kind {
                ReturnKind::Responded => {
                    conn.unread = returned.leftover;
                    reply::finished(
                        conn,
                        &req,
                        returned.status,
                        returned.body_bytes,
                        Handler::Plugin,
                        returned.keep_alive,
                    )
                }
                ReturnKind::Upgraded => {
                    let exchange = Exchange::for_request(
                        &req,
                        101,
                        returned.bytes_written,
                        Handler::Plugin,
                        started,
                    );
                    ToRecycler::Close(conn, CloseReason::Released, Some(exchange))
                }
                ReturnKind::Abandoned if !returned.wrote_anything => {
                    self.library.log(&format!(
                        "conn {}: given back unanswered; answered 500",
                        conn.id
                    ));
                    reply::error(conn, Some(&req), 500, &self.live.load(), Handler::Plugin)
                }
                ReturnKind::Abandoned => {
                    self.library.log(&format!(
                        "conn {}: given back part way through its answer; closed",
                        conn.id
                    ));
                    let status = if returned.status > 0 {
                        returned.status
                    } else {
                        500
                    };
                    let exchange = Exchange::for_request(
                        &req,
                        status,
                        returned.body_bytes,
                        Handler::Plugin,
                        started,
                    );
                    ToRecycler::Close(conn, CloseReason::HandlerFailed, Some(exchange))
                }
            }
        };
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        // At shutdown the recycler may be gone; the connection is then simply closed.
        let _ = self.to_recycler.send(done);
    }
}
