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
//! (`JobState::kill`), and the job's next poll drops the handler's future without a word to
//! the caller (`JobTask::poll`). Each poll of a waiting job keeps its waker for that
//! (`JobState::keep_waker`).
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
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// One thread's set of waiting jobs of type `J`, in a `thread_local!` of the job's owner.
pub type Slot<J> = RefCell<Option<Arc<Shared<J>>>>;

/// What the threads that park jobs and the set's task share.
pub struct Shared<J> {
    /// The waiting jobs. A job is parked straight into the set (its final allocation, no
    /// copy on the way) unless the set is being polled right then.
    jobs: Mutex<FuturesUnordered<J>>,
    /// Jobs parked while the set was being polled (by a job polled in it, or from another
    /// thread): moved into the set when its task next runs.
    incoming: Mutex<Vec<J>>,
    /// The set's task, woken when a job is parked.
    waker: AtomicWaker,
    /// False once the set's task was dropped (its runtime ended): a new one is needed.
    open: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
                    jobs: Mutex::new(FuturesUnordered::new()),
                    incoming: Mutex::new(Vec::new()),
                    waker: AtomicWaker::new(),
                    open: AtomicBool::new(true),
                });
                tokio::spawn(Waiting { shared: s.clone() });
                *set = Some(s.clone());
                s
            }
        }
    });
    match shared.jobs.try_lock() {
        Ok(jobs) => jobs.push(job),
        Err(TryLockError::Poisoned(p)) => p.into_inner().push(job),
        // The set is being polled (this very thread, in a job's poll, or another one).
        Err(TryLockError::WouldBlock) => lock(&shared.incoming).push(job),
    }
    shared.waker.wake();
}

/// The task that polls one thread's waiting jobs.
struct Waiting<J> {
    shared: Arc<Shared<J>>,
}

impl<J: Future<Output = ()>> Future for Waiting<J> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &self.shared;
        loop {
            // Registered before looking at `incoming`: a job parked after the look wakes
            // this task again.
            shared.waker.register(cx.waker());
            let new = std::mem::take(&mut *lock(&shared.incoming));
            let mut jobs = lock(&shared.jobs);
            for job in new {
                jobs.push(job);
            }
            match jobs.poll_next_unpin(cx) {
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
        // The jobs end with the runtime that polled them, as its tasks do (dropped after
        // the locks are let go: a job's drop may park nothing, but need not know that).
        let jobs = std::mem::take(&mut *lock(&self.shared.jobs));
        let left = std::mem::take(&mut *lock(&self.shared.incoming));
        drop(jobs);
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

    thread_local! {
        static SLOT: Slot<Job> = const { RefCell::new(None) };
    }

    /// Counts its drops: a job's future was dropped (ended or not).
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn parked_jobs_run_to_their_end_and_a_job_may_park_another() {
        let done = Arc::new(AtomicUsize::new(0));
        runtime().block_on(async {
            let mut senders = Vec::new();
            for _ in 0..100 {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                senders.push(tx);
                let done = done.clone();
                park(
                    &SLOT,
                    Box::pin(async move {
                        let _ = rx.await;
                        done.fetch_add(1, Ordering::SeqCst);
                    }) as Job,
                );
            }
            // One that parks another while the set polls it (the reentrant path).
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let inner_done = done.clone();
            park(
                &SLOT,
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    park(
                        &SLOT,
                        Box::pin(async move {
                            let _ = rx.await;
                            inner_done.fetch_add(1, Ordering::SeqCst);
                        }) as Job,
                    );
                }) as Job,
            );
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            assert_eq!(
                done.load(Ordering::SeqCst),
                0,
                "nothing ends before its wake-up"
            );
            for tx in senders {
                let _ = tx.send(());
            }
            let _ = tx.send(());
            let all_ended = async {
                while done.load(Ordering::SeqCst) < 101 {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(10), all_ended)
                .await
                .expect("every parked job ended after its wake-up");
        });
        assert_eq!(done.load(Ordering::SeqCst), 101);
    }

    #[test]
    fn jobs_still_waiting_end_with_their_runtime_and_a_new_runtime_gets_a_new_set() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for round in 1..=2 {
            let rt = runtime();
            rt.block_on(async {
                for _ in 0..10 {
                    let guard = Dropped(dropped.clone());
                    park(
                        &SLOT,
                        Box::pin(async move {
                            let _guard = guard;
                            std::future::pending::<()>().await;
                        }) as Job,
                    );
                }
                tokio::task::yield_now().await;
                assert_eq!(dropped.load(Ordering::SeqCst), (round - 1) * 10);
            });
            drop(rt);
            assert_eq!(dropped.load(Ordering::SeqCst), round * 10);
        }
    }
}
