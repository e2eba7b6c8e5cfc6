//! Connection threads: each connection, from its handshake to its end, runs on one thread.
//!
//! # Why
//!
//! On tokio's work-stealing runtime a connection hops between worker threads: the thread
//! that polled epoll runs the reader, the reply it queues wakes the connection again, an
//! idle worker is woken to look for work, finds none and parks. Measured with a BEAM caller
//! at a fixed 1,000 casts/s (scripts/bench, two worker threads): 2.2 context switches and
//! 92 us of server CPU per cast; the same daemon with one worker thread: 1.0 and 60 us.
//! A BEAM caller sends its casts one by one over a single connection, so the wake-ups,
//! not the work, are the cost at the loads clusters run at.
//!
//! So a node started with `NodeConfig::connection_threads = N > 0` runs N single-threaded
//! tokio runtimes, one OS thread each, and places every connection (and the jobs its
//! doits spawn, since `tokio::spawn` inside a connection lands on its thread) on the
//! thread with the fewest connections. Many busy peers still use every core; one peer's
//! casts never wake a second thread. Work for another connection crosses threads only
//! where it must: a reply to a node served by another thread wakes that thread.
//!
//! A socket belongs to the runtime that registered it, so an accepted socket is handed
//! over as a `std` socket and registered again on its connection thread; a dial runs
//! there from the start.
//!
//! The threads stop when the node is dropped (their runtimes drop the tasks still on them).

use std::future::Future;

/// Stack of each connection thread: map keys may nest `etf::DEFAULT_MAP_KEY_DEPTH` levels,
/// and eetf hashes them by recursion (about 1.5 MiB in a release build, 12 MiB in a debug
/// build). The stack is reserved address space; only what is used is ever touched.
pub const STACK_SIZE: usize = 16 << 20;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The connection threads of a node (empty: connections run on the caller's runtime).
pub struct ConnectionThreads {
    threads: Vec<Thread>,
}

struct Thread {
    handle: tokio::runtime::Handle,
    /// Connections (and dial loops) placed here and still running.
    load: Arc<AtomicUsize>,
    /// Dropped with the node: the thread's runtime then stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Held by a task placed on a thread; leaving, it frees its place.
struct Placed(Arc<AtomicUsize>);

impl Drop for Placed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionThreads {
    /// No threads of its own: connections are spawned on the runtime of whoever starts them.
    pub fn none() -> ConnectionThreads {
        ConnectionThreads {
            threads: Vec::new(),
        }
    }

    /// Starts `n` threads named `<prefix>-<i>` with `stack` bytes of stack each.
    pub fn start(n: usize, prefix: &str, stack: usize) -> std::io::Result<ConnectionThreads> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("{prefix}-{i}"))
                .stack_size(stack)
                .spawn(move || {
                    // Runs the tasks spawned on `handle` until the node lets go of `stop`.
                    let _ = rt.block_on(stopped);
                })?;
            threads.push(Thread {
                handle,
                load: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(ConnectionThreads { threads })
    }

    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Runs `task` (a connection, or something that makes connections) on the thread with
    /// the fewest such tasks; without threads, on the current runtime. `make` builds the
    /// task there, so it may register sockets with that thread's runtime.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(t) = self
            .threads
            .iter()
            .min_by_key(|t| t.load.load(Ordering::Relaxed))
        else {
            tokio::spawn(make());
            return;
        };
        t.load.fetch_add(1, Ordering::Relaxed);
        let placed = Placed(t.load.clone());
        t.handle.spawn(async move {
            let _placed = placed;
            make().await
        });
    }

    /// Tasks placed on each thread now (for tests and status).
    pub fn loads(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.load.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_go_to_the_least_loaded_thread_and_run_there() {
        let threads = ConnectionThreads::start(2, "test-conn", 1 << 20).expect("threads");
        let (tx, rx) = std::sync::mpsc::channel();
        let (release, wait) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let tx = tx.clone();
            let mut wait = wait.clone();
            threads.spawn(move || async move {
                let name = std::thread::current().name().map(str::to_string);
                tx.send(name).expect("send");
                let _ = wait.wait_for(|v| *v).await;
            });
        }
        let mut names: Vec<String> = (0..4)
            .map(|_| rx.recv().expect("ran").expect("named"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["test-conn-0", "test-conn-0", "test-conn-1", "test-conn-1"]
        );
        assert_eq!(threads.loads(), [2, 2]);
        release.send(true).expect("release");
        for _ in 0..200 {
            if threads.loads() == [0, 0] {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(threads.loads(), [0, 0], "a finished task frees its place");
    }
}
