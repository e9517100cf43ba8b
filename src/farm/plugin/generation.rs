//! One loaded generation of a plug-in as ogi.farm runs it: the `persist` decision, fresh
//! instances within `ogi.instances`, and the queue of a persistent instance.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender, TrySendError};

use super::owner::{GenerationHome, Owner};
use super::PluginOut;
use crate::conn::Conn;
use crate::farm::reply;
use crate::http::Request;
use crate::plugin_host::{
    decode_path, decode_query, subpath, CallInfo, Fault, Home, Instance, Lent, Library, Watch,
};
use crate::protocol::{Handler, ToPluginKeeper, ToRecycler};
use crate::support::config::{Config, Live};

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
    /// The owner thread holds a live instance (not between a `Terminate` and the next request).
    pub holding: AtomicBool,
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
pub(super) enum Mode {
    PerRequest,
    Persistent(Sender<Job>),
}

/// A request on its way to a persistent instance.
pub(super) struct Job {
    pub conn: Conn,
    pub req: Request,
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
    pub(super) fn dispatch(
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
        let queue = match self.spawn_owner(Some(instance), None, cfg, &out.live) {
            Ok(queue) => queue,
            Err(_) => {
                return Some(reply::error(
                    job.conn,
                    Some(&job.req),
                    503,
                    cfg,
                    Handler::Plugin,
                ))
            }
        };
        drop(guard);
        self.enqueue(&queue, job, cfg)
    }

    /// A plug-in declared `start: attached`: its owner thread starts now and makes the instance
    /// at once, after `previous` (the generation it replaces) has let go of its instance, so
    /// two instances never share the plug-in's state. Requests queue meanwhile.
    pub fn start_when_attached(&self, previous: Option<Arc<GenerationState>>, live: &Live) {
        let guard = self
            .deciding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.mode.get().is_none() {
            // A failure is logged; the first request then tries again through `decide`.
            let _ = self.spawn_owner(None, previous, &live.load(), live);
        }
        drop(guard);
    }

    /// Starts the owner thread with `instance` (or one it makes itself) and makes this
    /// generation persistent. Called with `deciding` held.
    fn spawn_owner(
        &self,
        instance: Option<Instance>,
        previous: Option<Arc<GenerationState>>,
        cfg: &Config,
        live: &Live,
    ) -> std::io::Result<Sender<Job>> {
        let (queue, jobs) = bounded::<Job>(cfg.ogi.queue.max(1));
        let holding = instance.is_some();
        let owner = Owner {
            instance,
            previous,
            home: self.home.clone(),
            live: live.clone(),
        };
        let thread_name = format!("ogi-{}#{}", self.library.name(), self.library.generation);
        self.state.owning.store(true, Ordering::Relaxed);
        self.state.holding.store(holding, Ordering::Relaxed);
        if let Err(e) = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || owner.run(jobs))
        {
            self.state.owning.store(false, Ordering::Relaxed);
            self.state.holding.store(false, Ordering::Relaxed);
            self.library
                .log(&format!("cannot start the owner thread: {e}"));
            return Err(e);
        }
        self.state.persist.store(2, Ordering::Relaxed);
        let _ = self.mode.set(Mode::Persistent(queue.clone()));
        Ok(queue)
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
                let watch = Arc::new(Watch::new(job.conn.plugin_fd(), Some(deadline)));
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

pub(super) fn note_fault(library: &Library, counters: &NameCounters, fault: Fault) {
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
pub(super) fn lend(
    instance: &mut Instance,
    job: Job,
    watch: Arc<Watch>,
    home: &Arc<GenerationHome>,
    cfg: &Config,
) -> Result<plugin_api::Next, Fault> {
    let Job { mut conn, req } = job;
    let home: Arc<dyn Home> = if conn.relay.is_some() {
        // HTTPS, or an answer to code: the pump relays the connection to the plug-in's end.
        match crate::net::tls_pump::start(&mut conn, home.clone()) {
            Some(pumped) => pumped,
            None => {
                watch.mark_returned();
                conn.relay = None;
                home.state.in_flight.fetch_sub(1, Ordering::Relaxed);
                let done = reply::error(conn, Some(&req), 503, cfg, Handler::Plugin);
                let _ = home.to_recycler.send(done);
                return Ok(plugin_api::Next::Continue);
            }
        }
    } else {
        home.clone()
    };
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
    let lent = Box::new(Lent {
        conn,
        req,
        watch,
        home,
    });
    instance.handle(lent, &call)
}
