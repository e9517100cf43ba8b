//! An inbox for a process that sleeps in `epoll_wait` rather than on its channel: the sender
//! sends, then writes an eventfd in the receiver's epoll set, but only while the receiver is
//! asleep, so a busy receiver costs its senders no syscall. Used by idle.pool and send.pool.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendError, Sender, TryRecvError};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// Token of the eventfd in the epoll set (no socket has this fd number).
const WAKE_TOKEN: u64 = u64::MAX;

/// The wake-up line: an eventfd in the receiver's epoll set, written only while it sleeps.
struct Waker {
    eventfd: EventFd,
    sleeping: AtomicBool,
}

/// The sending end: sends, then wakes the receiver if it is asleep.
pub struct WakingSender<T> {
    tx: Sender<T>,
    waker: Arc<Waker>,
}

impl<T> Clone for WakingSender<T> {
    fn clone(&self) -> Self {
        WakingSender {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<T> WakingSender<T> {
    /// A failed send hands the message (and the `Conn` in it) back, to be closed properly.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.tx.send(msg)?;
        if self.waker.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.waker.eventfd.write(1);
        }
        Ok(())
    }
}

/// The receiving end, owned by the process that sleeps in epoll.
pub struct WakingInbox<T> {
    rx: Receiver<T>,
    waker: Arc<Waker>,
}

/// Creates an inbox (unbounded: the pools only ever hold `Conn`s, which the acceptor bounds).
pub fn channel<T>() -> io::Result<(WakingSender<T>, WakingInbox<T>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let eventfd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
    let waker = Arc::new(Waker {
        eventfd,
        sleeping: AtomicBool::new(false),
    });
    Ok((
        WakingSender {
            tx,
            waker: waker.clone(),
        },
        WakingInbox { rx, waker },
    ))
}

impl<T> WakingInbox<T> {
    /// Reads the inbox's queue length, for the stats page.
    pub fn length_probe(&self) -> impl Fn() -> usize + Send + 'static
    where
        T: Send + 'static,
    {
        let rx = self.rx.clone();
        move || rx.len()
    }

    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// Puts the wake-up line into `epoll`; call once, before the first `wait`.
    pub fn register(&self, epoll: &Epoll) -> io::Result<()> {
        epoll.add(
            &self.waker.eventfd,
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        Ok(())
    }

    /// Sleeps until a socket is ready, a message arrives or `until` (at most a second away);
    /// returns how many socket events were written to the front of `events`. Never sleeps
    /// while a message is waiting.
    pub fn wait(&self, epoll: &Epoll, events: &mut [EpollEvent], until: Instant) -> usize {
        self.waker.sleeping.store(true, Ordering::SeqCst);
        let ready = if self.rx.is_empty() {
            let left = until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            let millis = left.as_millis().max(1) as u16;
            epoll.wait(events, EpollTimeout::from(millis)).unwrap_or(0)
        } else {
            0
        };
        self.waker.sleeping.store(false, Ordering::SeqCst);
        // Drop the wake-up event itself, keeping socket events in order at the front.
        let mut kept = 0;
        for i in 0..ready {
            if events[i].data() == WAKE_TOKEN {
                let _ = self.waker.eventfd.read();
            } else {
                events[kept] = events[i];
                kept += 1;
            }
        }
        kept
    }
}
