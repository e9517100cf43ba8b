//! Named processes and farms: the PAR and the paper's self-sizing worker pools.
//!
//! A farm keeps `idle` workers waiting on one shared inbox and grows on demand up to `max`
//! (Welch's idle count: a worker reports −1 when it takes a job and +1 when it is done; when
//! the idle count falls below the target, the farm's manager forks another worker). Workers
//! idle for a while above the target retire, so the farm shrinks back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::support::config::{Config, Live};

/// Live sizes of one farm, read by the stats process.
#[derive(Debug, Default)]
pub struct Gauge {
    pub name: &'static str,
    pub idle: AtomicUsize,
    pub busy: AtomicUsize,
    pub total: AtomicUsize,
    pub max: AtomicUsize,
    pub target_idle: AtomicUsize,
    /// Jobs taken since start.
    pub jobs: AtomicU64,
    /// Workers forked since start.
    pub forks: AtomicU64,
    /// Busy workers now waiting on a slow socket (not using a CPU).
    pub blocked: AtomicUsize,
    /// The farm's work is CPU-bound: it grows only while some workers are blocked, so it
    /// never runs more workers than there are cores.
    pub cpu_bound: bool,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Gauge>>> = const { std::cell::RefCell::new(None) };
    static JOB_STARTED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Marks now as the moment the calling process took its current job (farm workers do this
/// in `Inbox::recv`; a single process such as stats calls it itself).
pub fn start_job() {
    JOB_STARTED.with(|c| c.set(Some(Instant::now())));
}

/// When the calling process took its current job, for the queue-wait and handler latencies.
pub fn job_started() -> Option<Instant> {
    JOB_STARTED.with(|c| c.get())
}

/// Runs `wait` (a blocking poll on a socket) counted as blocked in the calling worker's farm.
pub fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    let gauge = CURRENT.with(|c| c.borrow().clone());
    if let Some(g) = &gauge {
        g.blocked.fetch_add(1, Ordering::Relaxed);
    }
    let result = wait();
    if let Some(g) = &gauge {
        g.blocked.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

/// Cores available to the process.
/// Read once: `available_parallelism` reads cgroup files on every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// The CPUs this process may run on, in order (empty if the system will not say).
pub fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Pins the calling thread to one CPU. Best effort: if the system refuses, it runs anywhere.
pub fn pin_to_cpu(cpu: usize) {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

impl Gauge {
    pub fn new(name: &'static str, cpu_bound: bool) -> Gauge {
        Gauge {
            name,
            cpu_bound,
            ..Gauge::default()
        }
    }

    /// Whether another worker would help: too few idle, room below the maximum, and for a
    /// CPU-bound farm, fewer workers running than cores.
    fn wants_more(&self, target_idle: usize) -> bool {
        let idle = self.idle.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        if idle >= target_idle.max(1) || total >= self.max.load(Ordering::Relaxed) {
            return false;
        }
        if !self.cpu_bound || total < target_idle.max(1) {
            return true;
        }
        let running = self
            .busy
            .load(Ordering::Relaxed)
            .saturating_sub(self.blocked.load(Ordering::Relaxed));
        running < cores()
    }
}

/// How long a surplus idle worker waits before it retires.
const RETIRE_AFTER: Duration = Duration::from_secs(30);

/// One farm worker's view of the shared inbox; counts idle/busy for the farm.
pub struct Inbox<T> {
    rx: Receiver<T>,
    gauge: Arc<Gauge>,
    grow: Sender<()>,
    busy: bool,
    retired: bool,
}

impl<T> Inbox<T> {
    /// The next job, or `None` when the farm is shutting down (or this worker retires).
    pub fn recv(&mut self) -> Option<T> {
        if self.busy {
            self.busy = false;
            self.gauge.busy.fetch_sub(1, Ordering::Relaxed);
            self.gauge.idle.fetch_add(1, Ordering::Relaxed);
        }
        let job = loop {
            match self.rx.recv_timeout(RETIRE_AFTER) {
                Ok(job) => break job,
                Err(RecvTimeoutError::Disconnected) => return self.retire(),
                Err(RecvTimeoutError::Timeout) => {
                    let idle = self.gauge.idle.load(Ordering::Relaxed);
                    if idle > self.gauge.target_idle.load(Ordering::Relaxed).max(1) {
                        return self.retire();
                    }
                }
            }
        };
        start_job();
        self.busy = true;
        self.gauge.busy.fetch_add(1, Ordering::Relaxed);
        self.gauge.jobs.fetch_add(1, Ordering::Relaxed);
        self.gauge.idle.fetch_sub(1, Ordering::Relaxed);
        if self
            .gauge
            .wants_more(self.gauge.target_idle.load(Ordering::Relaxed))
        {
            let _ = self.grow.try_send(());
        }
        Some(job)
    }

    fn retire(&mut self) -> Option<T> {
        if !self.retired {
            self.retired = true;
            self.gauge.idle.fetch_sub(1, Ordering::Relaxed);
            self.gauge.total.fetch_sub(1, Ordering::Relaxed);
        }
        None
    }
}

impl<T> Inbox<T> {
    /// No job is waiting: a good moment to flush batched reports.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<T> Iterator for Inbox<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        // A worker that panicked or returned early still leaves the counts right.
        if self.busy {
            self.gauge.busy.fetch_sub(1, Ordering::Relaxed);
            self.gauge.total.fetch_sub(1, Ordering::Relaxed);
        } else if !self.retired {
            self.gauge.idle.fetch_sub(1, Ordering::Relaxed);
            self.gauge.total.fetch_sub(1, Ordering::Relaxed);
        }
        let _ = self.grow.try_send(());
    }
}

/// Reads a farm's (idle target, maximum) from the config, so a reload resizes it.
pub type Sizes = fn(&Config) -> (usize, usize);

/// The top-level PAR: spawns named processes and farms and remembers their gauges.
#[derive(Default)]
pub struct Net {
    handles: Vec<JoinHandle<()>>,
    gauges: Vec<Arc<Gauge>>,
}

impl Net {
    /// Starts one process on a thread named `name`.
    pub fn process(
        &mut self,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                batch_scheduling();
                body()
            })?;
        self.handles.push(handle);
        Ok(())
    }

    /// Starts a farm of workers named `name#k` sharing `inbox`, with its manager `name.farm`.
    /// `cpu_bound` farms are kept to the cores (see `Gauge::cpu_bound`).
    pub fn farm<T: Send + 'static>(
        &mut self,
        name: &'static str,
        cpu_bound: bool,
        inbox: Receiver<T>,
        live: Live,
        sizes: Sizes,
        work: impl Fn(Inbox<T>) + Send + Sync + 'static,
    ) -> std::io::Result<Arc<Gauge>> {
        let gauge = Arc::new(Gauge::new(name, cpu_bound));
        let (grow_tx, grow_rx) = bounded::<()>(64);
        let manager = FarmManager {
            name,
            inbox,
            gauge: gauge.clone(),
            grow_tx,
            grow_rx,
            live,
            sizes,
            work: Arc::new(work),
        };
        self.process(&format!("{name}.farm"), move || manager.run())?;
        self.gauges.push(gauge.clone());
        Ok(gauge)
    }

    pub fn gauges(&self) -> Vec<Arc<Gauge>> {
        self.gauges.clone()
    }
}

struct FarmManager<T> {
    name: &'static str,
    inbox: Receiver<T>,
    gauge: Arc<Gauge>,
    grow_tx: Sender<()>,
    grow_rx: Receiver<()>,
    live: Live,
    sizes: Sizes,
    work: Arc<dyn Fn(Inbox<T>) + Send + Sync>,
}

impl<T: Send + 'static> FarmManager<T> {
    /// Forks workers whenever the idle count is below target; re-reads sizes every second.
    fn run(self) {
        let mut next_id = 0usize;
        loop {
            let (target_idle, max) = (self.sizes)(&self.live.load());
            self.gauge.target_idle.store(target_idle, Ordering::Relaxed);
            self.gauge.max.store(max, Ordering::Relaxed);
            while self.gauge.wants_more(target_idle) {
                if !self.fork(next_id) {
                    break;
                }
                next_id += 1;
            }
            match self.grow_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn fork(&self, id: usize) -> bool {
        let inbox = Inbox {
            rx: self.inbox.clone(),
            gauge: self.gauge.clone(),
            grow: self.grow_tx.clone(),
            busy: false,
            retired: false,
        };
        self.gauge.total.fetch_add(1, Ordering::Relaxed);
        self.gauge.idle.fetch_add(1, Ordering::Relaxed);
        self.gauge.forks.fetch_add(1, Ordering::Relaxed);
        let work = self.work.clone();
        let gauge = self.gauge.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}#{id}", self.name))
            .spawn(move || {
                batch_scheduling();
                CURRENT.with(|c| *c.borrow_mut() = Some(gauge));
                work(inbox)
            });
        if spawned.is_err() {
            self.gauge.total.fetch_sub(1, Ordering::Relaxed);
            self.gauge.idle.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Whether processes started from now on run under SCHED_BATCH (config `batch_scheduling`).
static BATCH_SCHEDULING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses the scheduling policy of the processes started after this call.
pub fn set_batch_scheduling(on: bool) {
    BATCH_SCHEDULING.store(on, Ordering::Relaxed);
}

/// Puts the calling thread under SCHED_BATCH (same priority, no wake-up preemption). A process
/// that sends a message then keeps running until it blocks, so the receiver wakes to a batch
/// of messages instead of one, which halves the context switches of the pipeline under load.
/// Best effort: if the system refuses, the thread keeps the default policy.
pub fn batch_scheduling() {
    if !BATCH_SCHEDULING.load(Ordering::Relaxed) {
        return;
    }
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    if let Ok(neutral) = thread_priority::ThreadPriorityValue::try_from(49u8) {
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(neutral),
            policy,
        );
    }
}
