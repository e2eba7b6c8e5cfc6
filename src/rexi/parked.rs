//! Jobs that wait, polled together: one set per thread instead of one tokio task per job.
//!
//! A job runs first in place, on the connection's reader, and most jobs (an echo, a hash)
//! end there. One that waits (a `sleep`, a stream waiting for its acks, a handler's own
//! timer) must be polled again later. It used to become a tokio task of its own; tokio lays
//! a task out in a cell aligned to 128 bytes, so each held job cost a 256-byte aligned block
//! (and the allocator's padding around it) before any state of its own. A held job is what
//! a BEAM rexi server pays a process for, and the cost per held job is one of the figures
//! this daemon is judged by (docs/performance.md).
//!
//! Here the waiting jobs of one thread live in one [`FuturesUnordered`], polled by one task
//! (spawned on the thread's runtime the first time a job of that thread waits). A job then
//! costs its node in that set: the job itself and a few pointers, with ordinary alignment.
//! The set's task never ends while its runtime runs; when the runtime drops it, the jobs
//! in it are dropped as tokio would have dropped their tasks.
//!
//! A kill cannot abort a task any more: it marks the job killed and wakes it
//! ([`JobState::kill`](super::worker::JobState::kill)), and the job's next poll drops the
//! handler's future without a word to the caller (`JobTask::poll`). Each poll of a
//! waiting job keeps its waker for that ([`JobState::keep_waker`](super::worker::JobState::keep_waker)).
//!
//! Jobs of a connection thread stay on it, as their tasks did (see [`crate::net::threads`]):
//! the set of a current-thread runtime is polled on that thread. On a thread of the
//! multi-threaded runtime the set's task may run on any of its threads, like any task.
//!
//! The set is generic over the job's type, so it knows nothing of the server: the server
//! declares the thread-local [`Slot`] for its jobs and parks them with [`park`].

use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// One thread's set of waiting jobs of type `J`, in a `thread_local!` of the job's owner.
pub type Slot<J> = RefCell<Option<Arc<Shared<J>>>>;

/// What the threads that park jobs and the set's task share.
pub struct Shared<J> {
    /// Jobs parked since the set's task last ran (moved into the set when it next runs).
    incoming: Mutex<Vec<J>>,
    /// The set's task, woken when a job is parked.
    waker: AtomicWaker,
    /// False once the set's task was dropped (its runtime ended): a new one is needed.
    open: AtomicBool,
}

fn lock<J>(incoming: &Mutex<Vec<J>>) -> std::sync::MutexGuard<'_, Vec<J>> {
    incoming.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a job that waits to this thread's set in `slot` (made, with its task, when there
/// is none or its runtime ended). Must be called from inside a tokio runtime, as
/// `tokio::spawn` must.
pub fn park<J>(slot: &'static LocalKey<Slot<J>>, job: J)
where
    J: Future<Output = ()> + Send + 'static,
{
    let shared = slot.with(|set| {
        let mut set = set.borrow_mut();
        match &*set {
            Some(s) if s.open.load(Ordering::Acquire) => s.clone(),
            _ => {
                let s = Arc::new(Shared {
                    incoming: Mutex::new(Vec::new()),
                    waker: AtomicWaker::new(),
                    open: AtomicBool::new(true),
                });
                tokio::spawn(Waiting {
                    shared: s.clone(),
                    jobs: FuturesUnordered::new(),
                });
                *set = Some(s.clone());
                s
            }
        }
    });
    lock(&shared.incoming).push(job);
    shared.waker.wake();
}

/// The task that polls one thread's waiting jobs.
struct Waiting<J> {
    shared: Arc<Shared<J>>,
    jobs: FuturesUnordered<J>,
}

impl<J: Future<Output = ()>> Future for Waiting<J> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        loop {
            // Registered before looking at `incoming`: a job parked after the look wakes
            // this task again.
            me.shared.waker.register(cx.waker());
            let new = std::mem::take(&mut *lock(&me.shared.incoming));
            for job in new {
                me.jobs.push(job);
            }
            match me.jobs.poll_next_unpin(cx) {
                // A job ended; see whether more did.
                Poll::Ready(Some(())) => continue,
                // Nothing waits (`None`), or nothing is ready: the set's wakers, or the
                // next `park`, wake this task. (The set yields by itself after a long run
                // of ready jobs, having woken this task to go on.)
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<J> Drop for Waiting<J> {
    fn drop(&mut self) {
        self.shared.open.store(false, Ordering::Release);
        // Jobs parked after the runtime began to drop its tasks end with it too (dropped
        // after the lock is let go).
        let left = std::mem::take(&mut *lock(&self.shared.incoming));
        drop(left);
    }
}
