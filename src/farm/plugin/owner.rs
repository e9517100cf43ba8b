//! The owner thread of a persistent generation, and the home that takes lent connections
//! back from a generation's instances.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::generation::{lend, note_fault, GenerationState, Job, NameCounters};
use crate::farm::reply;
use crate::plugin_host::{Home, Instance, Lent, Library, ReturnKind, Returned, Watch};
use crate::protocol::{CloseReason, Exchange, Handler, ToRecycler};
use crate::support::config::Live;

/// The thread of a persistent generation: owns the path and takes its requests in turn,
/// making a fresh instance after one terminates or faults.
pub(super) struct Owner {
    pub instance: Option<Instance>,
    /// The generation this one replaces, when it starts before its first request.
    pub previous: Option<Arc<GenerationState>>,
    pub home: Arc<GenerationHome>,
    pub live: Live,
}

impl Owner {
    pub(super) fn run(mut self, jobs: Receiver<Job>) {
        if self.instance.is_none() {
            self.start_now();
        }
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
            let watch = Arc::new(Watch::new(job.conn.plugin_fd(), None));
            self.home.state.holding.store(true, Ordering::Relaxed);
            match lend(&mut instance, job, watch, &self.home, &cfg) {
                Ok(plugin_api::Next::Continue) => self.instance = Some(instance),
                Ok(plugin_api::Next::Terminate) => drop(instance),
                Err(fault) => {
                    note_fault(&self.home.library, &self.home.counters, fault);
                    // Dropping the faulted instance gives back any connections it still holds.
                    drop(instance);
                }
            }
            self.home
                .state
                .holding
                .store(self.instance.is_some(), Ordering::Relaxed);
        }
        drop(self.instance.take());
        self.home.state.holding.store(false, Ordering::Relaxed);
        self.home.state.owning.store(false, Ordering::Relaxed);
    }
}

impl Owner {
    /// Makes the instance before any request (`start: attached`), once the generation this
    /// one replaces has dropped its instance (waited for at most `PREVIOUS_GRACE`).
    fn start_now(&mut self) {
        if let Some(previous) = self.previous.take() {
            let give_up = Instant::now() + PREVIOUS_GRACE;
            while previous.owning.load(Ordering::Relaxed) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(10));
            }
            if previous.owning.load(Ordering::Relaxed) {
                self.home
                    .library
                    .log("the generation it replaces still holds its instance; starting anyway");
            }
        }
        match self.home.library.new_instance() {
            Ok(instance) => {
                self.instance = Some(instance);
                self.home.state.holding.store(true, Ordering::Relaxed);
                self.home.library.log("started when attached");
            }
            // The next request tries again.
            Err(fault) => note_fault(&self.home.library, &self.home.counters, fault),
        }
    }
}

/// How long a generation that starts when attached waits for the one it replaces.
const PREVIOUS_GRACE: Duration = Duration::from_secs(15);

/// Takes connections back from one generation's instances and sends them on to the recycler.
pub(super) struct GenerationHome {
    pub library: Arc<Library>,
    pub counters: Arc<NameCounters>,
    pub state: Arc<GenerationState>,
    pub to_recycler: Sender<ToRecycler>,
    pub live: Live,
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
