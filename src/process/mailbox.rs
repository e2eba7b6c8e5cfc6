//! A task's mailbox: a bounded queue of signals with a pid of this node.
//!
//! Every rexi job has one, and most jobs (an echo, a sleep) never receive anything, so an
//! empty mailbox must cost almost nothing: the queue is a `VecDeque` that allocates on the
//! first signal, and the wake-up is a `Notify`. (A tokio `mpsc` channel allocates a block
//! of 32 slots, several KB, when it is created.)

use super::{Process, Signal};
use eetf::Pid;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub use tokio::sync::mpsc::error::TryRecvError;

/// How many signals may wait in one mailbox. Jobs receive a handful (acks, sync answers);
/// a peer that floods a pid beyond this loses the excess, with a log line, instead of
/// growing the daemon's memory without bound.
pub const MAILBOX_CAPACITY: usize = 1024;

struct Queue {
    signals: Mutex<VecDeque<Signal>>,
    wake: Notify,
    /// The sending end was dropped (the process was removed from the registry).
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Signal>> {
        self.signals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiving end of a mailbox, with the two calls of a tokio `mpsc::Receiver` that
/// the crate uses.
pub struct Receiver {
    queue: Arc<Queue>,
}

impl Receiver {
    /// The next signal; `None` once the sending end is gone and the queue is empty.
    /// Cancel-safe: a signal is taken only when this returns it.
    pub async fn recv(&mut self) -> Option<Signal> {
        loop {
            if let Some(s) = self.queue.lock().pop_front() {
                return Some(s);
            }
            if self.queue.closed.load(Ordering::Acquire) {
                return self.queue.lock().pop_front();
            }
            // A notify_one before we wait leaves a permit, so no wake-up is lost.
            self.queue.wake.notified().await;
        }
    }

    pub fn try_recv(&mut self) -> Result<Signal, TryRecvError> {
        match self.queue.lock().pop_front() {
            Some(s) => Ok(s),
            None if self.queue.closed.load(Ordering::Acquire) => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

/// The receiving end, owned by the task. When it is dropped the registry must be told
/// (the owner calls `Node::exit_process`), so monitors and links fire.
pub struct Mailbox {
    pub pid: Pid,
    pub rx: Receiver,
}

/// The sending end, stored in the registry.
pub struct MailboxSender {
    pub pid: Pid,
    queue: Arc<Queue>,
}

impl Process for MailboxSender {
    fn deliver(&self, signal: Signal) {
        let mut q = self.queue.lock();
        if q.len() >= MAILBOX_CAPACITY {
            drop(q);
            tracing::warn!(pid = ?(self.pid.id, self.pid.serial), "mailbox full ({MAILBOX_CAPACITY} signals): signal dropped");
            return;
        }
        q.push_back(signal);
        drop(q);
        self.queue.wake.notify_one();
    }
}

impl Drop for MailboxSender {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.wake.notify_one();
    }
}

pub fn channel(pid: Pid) -> (MailboxSender, Mailbox) {
    let queue = Arc::new(Queue {
        signals: Mutex::new(VecDeque::new()),
        wake: Notify::new(),
        closed: AtomicBool::new(false),
    });
    (
        MailboxSender {
            pid: pid.clone(),
            queue: queue.clone(),
        },
        Mailbox {
            pid,
            rx: Receiver { queue },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{Atom, Term};

    fn pid() -> Pid {
        Pid::new("a@b", 1, 0, 1)
    }
    fn msg(n: &str) -> Signal {
        Signal::Message {
            from: None,
            message: Term::Atom(Atom::from(n)).into(),
        }
    }

    #[tokio::test]
    async fn order_wakeup_and_close() {
        let (tx, mut mb) = channel(pid());
        assert!(matches!(mb.rx.try_recv(), Err(TryRecvError::Empty)));
        let waiter = tokio::spawn(async move {
            let first = mb.rx.recv().await;
            let second = mb.rx.recv().await;
            let end = mb.rx.recv().await;
            (first, second, end)
        });
        tokio::task::yield_now().await;
        tx.deliver(msg("one"));
        tx.deliver(msg("two"));
        drop(tx);
        let (a, b, c) = waiter.await.unwrap();
        assert!(
            matches!(a, Some(Signal::Message { message, .. }) if matches!(&*message, Term::Atom(x) if x.name == "one"))
        );
        assert!(
            matches!(b, Some(Signal::Message { message, .. }) if matches!(&*message, Term::Atom(x) if x.name == "two"))
        );
        assert!(c.is_none());
    }

    #[tokio::test]
    async fn full_mailbox_drops() {
        let (tx, mut mb) = channel(pid());
        for _ in 0..MAILBOX_CAPACITY + 5 {
            tx.deliver(msg("x"));
        }
        let mut n = 0;
        while mb.rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, MAILBOX_CAPACITY);
        drop(tx);
        assert!(matches!(mb.rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
}
