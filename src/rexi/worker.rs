//! A job: a task with its own pid, running one handler, and the [`Ctx`] it answers through.
//!
//! The job's messages all come from this one task, in order, over the caller's single
//! connection, so the caller sees `{Ref, Final}` after every row (docs/design/callers.md §6.7).
//! A killed job sends nothing more: every send checks the kill flag under the same lock
//! the kill takes.

use super::protocol::{self, atom, tuple, Nonce};
use super::reply_to::ReplyTo;
use super::stats::{bump, Stats};
use crate::etf::Owned;
use crate::net::connection::SendError;
use crate::net::Node;
use crate::process::{Mailbox, Signal};
use eetf::{Pid, Reference, Term};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How a handler ends other than by returning `Ok(())`.
#[derive(Debug)]
pub enum Failure {
    /// Like `error(Reason)` in the MFA: the caller gets `{rexi_EXIT, {Reason, Stack}}`.
    /// Without a stack, a one-frame `[{M, F, Arity, []}]` is used.
    Error { reason: Owned, stack: Option<Owned> },
    /// Like a process dying from an exit signal: the caller gets `{rexi_EXIT, Reason}` bare.
    Exit(Owned),
    /// Like `exit(normal)`: nothing is sent (for example after a stream CANCEL).
    Normal,
}

impl Failure {
    pub fn error(reason: impl Into<Owned>) -> Failure {
        Failure::Error {
            reason: reason.into(),
            stack: None,
        }
    }

    pub fn exit(reason: impl Into<Owned>) -> Failure {
        Failure::Exit(reason.into())
    }
}

/// What a rexi-only call (`sync_reply`, streams) fails with in a spawned process (erpc,
/// rpc), which has no rexi caller: `{badmatch, undefined}`, what rexi's own functions raise
/// outside a rexi worker.
pub fn outside_rexi() -> Failure {
    Failure::error(tuple(vec![atom("badmatch"), atom("undefined")]))
}

/// What the server and the job share.
///
/// The job's pid is registered only when the job first shows it to the caller
/// (`sync_reply`, a stream row, [`Ctx::pid`]): a plain `reply` job, the common case, never
/// needs a mailbox, and nobody can address a pid they were never sent. The kill flag and
/// the pid live under one lock, so a kill either sees the pid (and ends that process) or
/// makes the registration fail.
pub struct JobState {
    /// The caller's pid and the Ref, as the caller's node sent them.
    pub to: ReplyTo,
    pub nonce: Nonce,
    /// The node whose connection carried the doit, when it is not the caller's (rare):
    /// see [`JobState::owner_bytes`]. A thin pointer: every held job pays for the field.
    #[allow(clippy::box_collection)]
    other_owner: Option<Box<String>>,
    /// Where the job's answer goes.
    pub answer: Answer,
    inner: Mutex<JobInner>,
}

/// Where a job's answer goes.
pub enum Answer {
    /// A rexi job: every reply, row and failure is a message to the caller.
    ToCaller,
    /// A spawned process (`SPAWN_REQUEST`: erpc, rpc, `spawn/4`): its pid exists from the
    /// start, its first reply is kept as its value, and its end is an exit signal whose
    /// reason is shaped by `shape` (see [`super::erpc`]). Boxed: a rexi job, the common
    /// case, then pays one word for it.
    AsExit(Box<super::outcome::ExitShape>),
}

/// What a kill and the job decide under one lock. The pid (and a spawned process's value)
/// are boxed: most jobs have neither, and a held job should cost as little as the BEAM's
/// process does.
#[derive(Default)]
struct JobInner {
    killed: bool,
    worker: Option<Box<Worker>>,
    /// The waker of a job that waits (see [`super::parked`]): a kill wakes the job, and its
    /// next poll drops it.
    waker: Option<std::task::Waker>,
}

/// A job's pid, once it has one.
struct Worker {
    pid: Pid,
    /// A spawned process's value: its first reply (a spawned process has its pid from the
    /// start, so the value always has a place here).
    value: Option<Owned>,
}

impl Worker {
    fn new(pid: Pid) -> Box<Worker> {
        Box::new(Worker { pid, value: None })
    }
}

impl JobState {
    /// `other_owner`: the sending node, only when it is not the caller's (the server
    /// decides that once, for admission, before the job exists).
    pub fn new(to: ReplyTo, nonce: Nonce, other_owner: Option<String>) -> JobState {
        JobState {
            to,
            nonce,
            other_owner: other_owner.map(Box::new),
            answer: Answer::ToCaller,
            inner: Mutex::new(JobInner::default()),
        }
    }

    /// A spawned process `pid` for `to` (the spawning process and its request id).
    pub fn spawned(to: ReplyTo, pid: Pid, shape: super::outcome::ExitShape) -> JobState {
        JobState {
            to,
            // `[]`, what a spawned process's error-ring entry has always shown.
            nonce: Nonce::Other(Box::default()),
            other_owner: None,
            answer: Answer::AsExit(Box::new(shape)),
            inner: Mutex::new(JobInner {
                worker: Some(Worker::new(pid)),
                ..JobInner::default()
            }),
        }
    }

    fn is_spawned(&self) -> bool {
        matches!(self.answer, Answer::AsExit(_))
    }

    /// Keeps `value` as a spawned process's value unless it has one (or was killed).
    fn keep_value(&self, value: Owned) -> Sent {
        let mut g = self.lock();
        if g.killed {
            return Sent::Killed;
        }
        if let Some(w) = g.worker.as_mut() {
            w.value.get_or_insert(value);
        }
        Sent::Queued
    }

    /// A spawned process's value, taken out.
    pub fn take_value(&self) -> Option<Owned> {
        self.lock().worker.as_mut().and_then(|w| w.value.take())
    }

    /// The name of the node whose connection carried the doit: the job counts against its
    /// quota and ends when that connection goes down. As bytes: the job table counts by
    /// them, and needs no UTF-8 check again.
    pub fn owner_bytes(&self) -> &[u8] {
        self.other_owner
            .as_deref()
            .map_or(self.to.node_bytes(), |o| o.as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the job killed and wakes it if it waits (its next poll drops it without a
    /// word to the caller); its pid, if it has one, for the caller to end.
    pub fn kill(&self) -> Option<Pid> {
        let (pid, waker) = {
            let mut g = self.lock();
            g.killed = true;
            (g.worker.as_ref().map(|w| w.pid.clone()), g.waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        pid
    }

    /// Before a waiting job is polled: keeps `waker` for a kill to wake, and says whether
    /// the job may go on (`false`: it was killed).
    pub(crate) fn keep_waker(&self, waker: &std::task::Waker) -> bool {
        let mut g = self.lock();
        if g.killed {
            return false;
        }
        match &g.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => g.waker = Some(waker.clone()),
        }
        true
    }

    pub fn is_killed(&self) -> bool {
        self.lock().killed
    }

    /// The job's pid, if it was ever shown.
    pub fn worker(&self) -> Option<Pid> {
        self.lock().worker.as_ref().map(|w| w.pid.clone())
    }

    /// Sends `{Ref, Rest...}` to the caller unless the job was killed.
    pub fn send_tagged(&self, node: &Node, rest: &mut [Owned]) -> Sent {
        self.sending(|| self.to.send_tagged(node, rest))
    }

    /// Sends `message` to the caller unless the job was killed.
    pub fn send_plain(&self, node: &Node, message: Owned) -> Sent {
        self.sending(|| self.to.send_plain(node, message))
    }

    /// Runs `send` under the kill lock, unless the job was killed.
    fn sending(&self, send: impl FnOnce() -> Result<(), SendError>) -> Sent {
        let g = self.lock();
        if g.killed {
            return Sent::Killed;
        }
        let sent = send();
        drop(g);
        if let Err(e) = sent {
            tracing::debug!(peer = %self.to.node(), error = %e, "reply not sent");
            return Sent::Dropped;
        }
        Sent::Queued
    }
}

/// What became of a message to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued on the caller's connection.
    Queued,
    /// Not sent: the job was killed.
    Killed,
    /// Not sent: no connection, or it is closing (e.g. the caller stopped reading).
    Dropped,
}

/// How many stream rows a job may have sent and not yet seen acked before it waits.
/// rexi's `stream/1` has always allowed 10; `stream2/1` reads CouchDB's
/// `[rexi] stream_limit`, 10 in 2.x and 5 since 3.0. A coordinator that does not ack
/// (or acks late) sees exactly this many rows, so the values are kept as CouchDB's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// `rexi:stream/1` (v1).
    pub stream: usize,
    /// `rexi:stream2/1`.
    pub stream2: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            stream: 10,
            stream2: 5,
        }
    }
}

enum StreamInit {
    NotYet,
    Started,
}

/// What every job of one server shares: one allocation for all of them, so a [`Ctx`] (which
/// lives as long as its job, in the handler's future) is a few words.
pub(crate) struct JobEnv {
    pub(crate) node: Node,
    pub(crate) stats: Arc<Stats>,
    pub(crate) timeout: Duration,
    pub(crate) limits: StreamLimits,
}

/// What a handler gets: `reply`, `sync_reply`, `stream`, `stream2`, `stream_last`, `ping`,
/// as rexi offers Erlang workers.
///
/// It is part of every held job, so it is kept small: the shared settings behind one
/// pointer, the mailbox (with the job's pid) boxed and made only when a handler first
/// shows its pid.
pub struct Ctx {
    env: Arc<JobEnv>,
    job: Arc<JobState>,
    mailbox: Option<Box<Mailbox>>,
    /// Rows sent and not yet acked (32 bits: the cap is a handful, and a held job's future
    /// carries this `Ctx`).
    unacked: u32,
    init: StreamInit,
}

enum Event {
    Ack,
    Message(Owned),
    Timeout,
}

impl Ctx {
    pub(crate) fn new(env: Arc<JobEnv>, job: Arc<JobState>) -> Ctx {
        Ctx {
            env,
            job,
            mailbox: None,
            unacked: 0,
            init: StreamInit::NotYet,
        }
    }

    /// Registers this job's pid and mailbox on first use.
    fn ensure_mailbox(&mut self) -> Result<(), Failure> {
        if self.mailbox.is_some() {
            return Ok(());
        }
        if self.job.is_spawned() {
            return Err(outside_rexi());
        }
        let mut g = self.job.lock();
        if g.killed {
            return Err(Failure::exit(atom("killed")));
        }
        let mb = self.env.node.spawn_mailbox();
        g.worker = Some(Worker::new(mb.pid.clone()));
        drop(g);
        self.mailbox = Some(Box::new(mb));
        Ok(())
    }

    fn worker_term(&mut self) -> Result<Term, Failure> {
        self.ensure_mailbox()?;
        match &self.mailbox {
            Some(mb) => Ok(Term::Pid(mb.pid.clone())),
            None => Err(Failure::exit(atom("killed"))),
        }
    }

    pub fn node(&self) -> &Node {
        &self.env.node
    }

    /// This job's pid (the `WorkerPid` callers ack and answer to); registers it on first use.
    /// A spawned process has its pid from the start.
    pub fn pid(&mut self) -> Result<Pid, Failure> {
        if self.job.is_spawned() {
            return self
                .job
                .worker()
                .ok_or_else(|| Failure::exit(atom("killed")));
        }
        self.ensure_mailbox()?;
        self.mailbox
            .as_ref()
            .map(|mb| mb.pid.clone())
            .ok_or_else(|| Failure::exit(atom("killed")))
    }

    /// The caller's pid (decoded from the bytes the job keeps).
    pub fn caller(&self) -> Pid {
        self.job.to.pid()
    }

    pub fn nonce(&self) -> &Term {
        self.job.nonce.term()
    }

    /// How long the job waits for an answer (`--worker-timeout`); handlers also use it as
    /// the longest wait they accept from a caller.
    pub fn timeout(&self) -> Duration {
        self.env.timeout
    }

    fn count(&self, sent: Sent) {
        match sent {
            Sent::Queued => bump(&self.env.stats.replies),
            Sent::Dropped => bump(&self.env.stats.replies_dropped),
            Sent::Killed => {}
        }
    }

    /// `rexi:reply/1`: `{Ref, Msg}` to the caller. In a spawned process (erpc, rpc) the
    /// first reply is the call's value.
    pub fn reply(&self, msg: impl Into<Owned>) {
        if self.job.is_spawned() {
            let sent = self.job.keep_value(msg.into());
            self.count(sent);
            return;
        }
        let sent = self.job.send_tagged(&self.env.node, &mut [msg.into()]);
        self.count(sent);
    }

    /// `rexi:ping/0`: `{rexi, '$rexi_ping'}`, which restarts a 2.3+ caller's per-message timeout.
    pub fn ping(&self) {
        if self.job.is_spawned() {
            return;
        }
        self.job.send_plain(
            &self.env.node,
            Owned::new(tuple(vec![atom("rexi"), atom("$rexi_ping")])),
        );
    }

    /// `rexi:sync_reply/1`: sends `{Ref, {WorkerPid, Tag}, Msg}` and waits for
    /// `{Tag, Answer}`; after the timeout (300 s by default) the answer is `timeout`.
    ///
    /// Only a rexi caller can answer: in a spawned process (erpc, rpc) this fails like
    /// rexi's own functions outside a rexi worker (see [`outside_rexi`]).
    pub async fn sync_reply(&mut self, msg: impl Into<Owned>) -> Result<Owned, Failure> {
        let msg = msg.into();
        let tag = self.env.node.make_ref();
        let from = tuple(vec![
            self.worker_term()?,
            Term::Reference(Box::new(tag.clone())),
        ]);
        self.job
            .send_tagged(&self.env.node, &mut [Owned::new(from), msg]);
        let until = Instant::now() + self.env.timeout;
        loop {
            match self.next(until).await? {
                Event::Timeout => return Ok(Owned::new(atom("timeout"))),
                Event::Ack => {}
                Event::Message(m) => {
                    if let Some(answer) = answer_for(m, &tag) {
                        return Ok(answer);
                    }
                }
            }
        }
    }

    /// `rexi:stream/1` (v1): at most [`StreamLimits::stream`] rows unacked (rexi: 10);
    /// waits for `{rexi_ack, N}` (300 s, then the job fails with `timeout`).
    pub async fn stream(&mut self, msg: impl Into<Owned>) -> Result<(), Failure> {
        self.stream_row(msg.into(), self.env.limits.stream).await
    }

    /// `rexi:stream2/1`: runs the `rexi_STREAM_INIT` handshake on first use, then streams
    /// with at most [`StreamLimits::stream2`] rows unacked (CouchDB 3.x: 5).
    pub async fn stream2(&mut self, msg: impl Into<Owned>) -> Result<(), Failure> {
        let msg = msg.into();
        self.ensure_started().await?;
        self.stream_row(msg, self.env.limits.stream2).await
    }

    /// `rexi:stream_last/1`: the handshake if it did not run yet, then `{Ref, Msg}`.
    pub async fn stream_last(&mut self, msg: impl Into<Owned>) -> Result<(), Failure> {
        let msg = msg.into();
        self.ensure_started().await?;
        self.reply(msg);
        Ok(())
    }

    async fn ensure_started(&mut self) -> Result<(), Failure> {
        if let StreamInit::Started = self.init {
            return Ok(());
        }
        let answer = self.sync_reply(atom("rexi_STREAM_INIT")).await?;
        match &*answer {
            Term::Atom(a) if a.name == "rexi_STREAM_START" => {
                self.init = StreamInit::Started;
                Ok(())
            }
            Term::Atom(a) if a.name == "rexi_STREAM_CANCEL" => Err(Failure::Normal),
            Term::Atom(a) if a.name == "timeout" => Err(Failure::error(atom("timeout"))),
            _ => Err(Failure::error(tuple(vec![
                atom("invalid_stream_message"),
                answer.into_term(),
            ]))),
        }
    }

    async fn stream_row(&mut self, msg: Owned, limit: usize) -> Result<(), Failure> {
        if self.unacked as usize >= limit {
            let until = Instant::now() + self.env.timeout;
            while self.unacked as usize >= limit {
                match self.next(until).await? {
                    Event::Timeout => return Err(Failure::error(atom("timeout"))),
                    Event::Ack | Event::Message(_) => {}
                }
            }
        } else {
            // Drain acks already queued without waiting.
            while let Some(sig) = self.mailbox.as_mut().and_then(|m| m.rx.try_recv().ok()) {
                self.absorb(sig)?;
            }
        }
        let worker = self.worker_term()?;
        let sent = self
            .job
            .send_tagged(&self.env.node, &mut [Owned::new(worker), msg]);
        self.count(sent);
        self.unacked = self.unacked.saturating_add(1);
        Ok(())
    }

    async fn next(&mut self, until: Instant) -> Result<Event, Failure> {
        self.ensure_mailbox()?;
        let Some(mb) = self.mailbox.as_mut() else {
            return Err(Failure::exit(atom("killed")));
        };
        match tokio::time::timeout_at(until, mb.rx.recv()).await {
            Err(_) => Ok(Event::Timeout),
            Ok(None) => Err(Failure::exit(atom("killed"))),
            Ok(Some(sig)) => self.absorb(sig),
        }
    }

    fn absorb(&mut self, sig: Signal) -> Result<Event, Failure> {
        match sig {
            Signal::Message { message, .. } => {
                if let Some(n) = ack_count(&message) {
                    let Some(left) = u32::try_from(n)
                        .ok()
                        .and_then(|n| self.unacked.checked_sub(n))
                    else {
                        return Err(Failure::error(atom("mismatched_rexi_ack")));
                    };
                    self.unacked = left;
                    return Ok(Event::Ack);
                }
                Ok(Event::Message(message))
            }
            Signal::Exit { reason, .. } => {
                if matches!(&*reason, Term::Atom(a) if a.name == "normal") {
                    Ok(Event::Message(Owned::nil()))
                } else {
                    Err(Failure::Exit(reason))
                }
            }
            Signal::Down { .. } => Ok(Event::Message(Owned::nil())),
        }
    }
}

fn ack_count(m: &Term) -> Option<usize> {
    match m {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Atom(a) if a.name == "rexi_ack") =>
        {
            match &t.elements[1] {
                Term::FixInteger(i) if i.value >= 0 => Some(i.value as usize),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The answer in `{Tag, Answer}` when `m` is that, for our `tag`; anything else is dropped.
fn answer_for(mut m: Owned, tag: &Reference) -> Option<Owned> {
    match &mut *m {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Reference(r) if r.id == tag.id && r.node.name == tag.node.name) =>
        {
            Some(Owned::new(std::mem::replace(
                &mut t.elements[1],
                protocol::nil(),
            )))
        }
        _ => None,
    }
}
