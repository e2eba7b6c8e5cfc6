//! The one job table behind every rexi server name.
//!
//! Every name (`rexi_server`, `rexi_server_<phash2(P)>`, `rexi_server_<P>`) leads here, so
//! a kill finds its job whichever name carried the doit (release 2 sends each kill twice).
//! Requests are handled on the connection's reader task: parse, look up, spawn the job;
//! nothing here waits.

use super::durations::JobDurations;
use super::handler::{Args, HandlerFuture, Handlers};
use super::names::{NameKind, Names};
use super::protocol::{self, atom, nil, tuple, Doit, Request};
use super::release::Release;
use super::stats::{bump, Stats};
use super::worker::{Ctx, Failure, JobState};
use crate::dist::Node;
use crate::etf;
use crate::process::{gen, Process, Signal};
use eetf::{Reference, Term};
use futures::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Settings of the rexi layer.
#[derive(Debug, Clone)]
pub struct RexiConfig {
    pub release: Release,
    /// Jobs running at once; beyond it a doit is answered at once with
    /// `{rexi_EXIT, {overloaded, []}}`.
    pub max_jobs: usize,
    /// How long a job waits for a sync answer, a stream ack or the stream2 START (rexi: 300 s).
    pub worker_timeout: Duration,
    /// Unacked rows allowed by `stream2` (CouchDB 2.x: 10; 3.x: 5).
    pub stream_limit: usize,
    /// How long a kill for an unknown ref is remembered, so a doit that arrives after its
    /// kill (they may take different paths) never runs.
    pub tombstone_ttl: Duration,
    pub max_tombstones: usize,
}

impl Default for RexiConfig {
    fn default() -> Self {
        RexiConfig {
            release: Release::default(),
            max_jobs: 500_000,
            worker_timeout: Duration::from_secs(300),
            stream_limit: 10,
            tombstone_ttl: Duration::from_secs(30),
            max_tombstones: 100_000,
        }
    }
}

/// The key of a job: the caller's Ref, packed into a few words so that a cast costs no
/// allocation for it and hashes fast (every doit, kill and job end looks it up).
///
/// The ref's node name is kept as a 64-bit hash. Two refs share a key only if their
/// words and creation are equal *and* their nodes' names hash alike, which for the
/// handful of nodes a cluster has is a 2^-64 event; refs carry at most 5 words in OTP
/// (more are folded into the node hash, so they still count).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RefKey {
    node: u64,
    creation: u32,
    len: u32,
    words: [u32; 5],
}

impl RefKey {
    pub fn of(r: &Reference) -> RefKey {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        r.node.name.hash(&mut h);
        let mut words = [0u32; 5];
        for (i, w) in r.id.iter().enumerate() {
            match words.get_mut(i) {
                Some(slot) => *slot = *w,
                None => w.hash(&mut h),
            }
        }
        RefKey {
            node: h.finish(),
            creation: r.creation,
            len: r.id.len() as u32,
            words,
        }
    }
    fn from_term(t: &Term) -> Option<RefKey> {
        match t {
            Term::Reference(r) => Some(RefKey::of(r)),
            _ => None,
        }
    }
}

/// A multiply-rotate hasher for [`RefKey`]s: the key's words are already well mixed
/// (ref counters and a SipHash of the node name), so SipHash again would only cost time.
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type KeyMap<V> = HashMap<RefKey, V, std::hash::BuildHasherDefault<WordHasher>>;

struct JobEntry {
    state: Arc<JobState>,
    abort: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
struct Tombstones {
    set: KeyMap<Instant>,
    order: VecDeque<(RefKey, Instant)>,
}

impl Tombstones {
    fn add(&mut self, key: RefKey, ttl: Duration, max: usize) {
        let now = Instant::now();
        while let Some((k, t)) = self.order.front() {
            if now.duration_since(*t) < ttl && self.order.len() < max {
                break;
            }
            if self.set.get(k) == Some(t) {
                self.set.remove(k);
            }
            self.order.pop_front();
        }
        self.set.insert(key, now);
        self.order.push_back((key, now));
    }

    fn take(&mut self, key: &RefKey, ttl: Duration) -> bool {
        match self.set.remove(key) {
            Some(t) => Instant::now().duration_since(t) < ttl,
            None => false,
        }
    }
}

/// The error ring of `get_errors` / `get_last_error` (rexi's `#error{}` records).
struct ErrorRing {
    limit: usize,
    entries: VecDeque<Term>,
}

pub struct RexiServer {
    node: Node,
    handlers: Handlers,
    cfg: RexiConfig,
    release: Mutex<Release>,
    jobs: Mutex<KeyMap<JobEntry>>,
    tombstones: Mutex<Tombstones>,
    errors: Mutex<ErrorRing>,
    pub stats: Stats,
    /// Job durations by MFA, one series per handler.
    pub durations: JobDurations,
    pub(crate) names: Names,
    me: Weak<RexiServer>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One registered name; all of them share the server.
pub(crate) struct NameProc {
    pub server: Weak<RexiServer>,
    pub kind: NameKind,
}

impl Process for NameProc {
    fn deliver(&self, signal: Signal) {
        match self.server.upgrade() {
            Some(s) => s.handle(self.kind, signal),
            None => drop_signal(signal),
        }
    }
}

fn drop_signal(signal: Signal) {
    match signal {
        Signal::Message { message, .. } => etf::dispose(message),
        Signal::Exit { reason, .. } => etf::dispose(reason),
        Signal::Down { reason, .. } => etf::dispose(reason),
    }
}

impl RexiServer {
    pub fn new(node: Node, handlers: Handlers, cfg: RexiConfig) -> Arc<RexiServer> {
        Arc::new_cyclic(|me| RexiServer {
            node,
            durations: JobDurations::new(&handlers.mfas()),
            handlers,
            release: Mutex::new(cfg.release),
            cfg,
            jobs: Mutex::new(KeyMap::default()),
            tombstones: Mutex::new(Tombstones::default()),
            errors: Mutex::new(ErrorRing {
                limit: 0,
                entries: VecDeque::new(),
            }),
            stats: Stats::default(),
            names: Names::default(),
            me: me.clone(),
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn weak(&self) -> Weak<RexiServer> {
        self.me.clone()
    }

    pub fn release(&self) -> Release {
        *lock(&self.release)
    }

    /// Switches the release without touching connections: at 3 the singleton is retired
    /// (monitors on it fire with `shutdown`); below 3 it is back.
    pub fn set_release(&self, r: Release) {
        let mut cur = lock(&self.release);
        let old = *cur;
        *cur = r;
        drop(cur);
        if old.has_singleton() != r.has_singleton() {
            self.names.set_singleton(self, r.has_singleton());
        }
        tracing::info!(from = old.get(), to = r.get(), "rexi release changed");
    }

    pub fn jobs_running(&self) -> usize {
        lock(&self.jobs).len()
    }

    /// Every figure, rexi's and the distribution layer's: what `stats` answers, what
    /// `/metrics` exports and what the shutdown log line shows.
    pub fn stats_snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut v = self
            .stats
            .snapshot(self.release().get(), self.jobs_running());
        v.extend(self.node.net_stats().snapshot());
        v
    }

    /// Registers names and hooks on the node (see [`super::install`]).
    pub(crate) fn attach(self: Arc<Self>) {
        self.names.attach(&self);
    }

    pub(crate) fn handle(&self, kind: NameKind, signal: Signal) {
        let (from, message) = match signal {
            Signal::Message { from, message } => (from, message),
            other => return drop_signal(other),
        };
        match protocol::parse(message) {
            Request::Doit(d) => {
                bump(match kind {
                    NameKind::Singleton => &self.stats.casts_singleton,
                    NameKind::Phash2 => &self.stats.casts_phash2,
                    NameKind::NodeName => &self.stats.casts_nodename,
                });
                self.doit(d);
            }
            Request::BadDoit {
                caller,
                reference,
                reason,
            } => {
                bump(&self.stats.malformed);
                tracing::warn!(caller = %caller.node.name, "malformed doit answered with rexi_EXIT {reason:?}");
                let msg = protocol::rexi_exit(reference, tuple(vec![reason, nil()]));
                let _ = self.node.send(&caller, msg);
            }
            Request::Kill(r) => {
                self.kill(&r);
                etf::dispose(r);
            }
            Request::KillAll(refs) => {
                for r in refs {
                    self.kill(&r);
                    etf::dispose(r);
                }
            }
            Request::Call(call) => self.call(call),
            Request::Unknown(why, t) => {
                bump(&self.stats.malformed);
                let sender = from.as_ref().map(|p| p.node.name.as_str()).unwrap_or("?");
                tracing::warn!(sender, "ignored message to a rexi server: {why}");
                etf::dispose(t);
            }
        }
    }

    fn doit(&self, d: Doit) {
        let key = RefKey::of(&d.reference);
        if lock(&self.tombstones).take(&key, self.cfg.tombstone_ttl) {
            bump(&self.stats.tombstones_hit);
            tracing::debug!(caller = %d.caller.node.name, "doit arrived after its kill: not run");
            etf::dispose(d.nonce);
            drop(Args::new(d.args));
            return;
        }
        let hkey = (d.module, d.function, d.args.len());
        let Some((handler, index)) = self.handlers.lookup_indexed(&hkey) else {
            bump(&self.stats.errors);
            let (m, f, _) = hkey;
            let args = Term::List(eetf::List::from(d.args));
            let reason = tuple(vec![atom("undef"), protocol::stack(&m, &f, args)]);
            self.record_error(&reason, &m, &f, 0, &d.nonce);
            let msg = protocol::rexi_exit(Term::Reference(Box::new(d.reference)), reason);
            let _ = self.node.send(&d.caller, msg);
            etf::dispose(d.nonce);
            return;
        };
        if lock(&self.jobs).len() >= self.cfg.max_jobs {
            bump(&self.stats.overloaded);
            tracing::debug!(caller = %d.caller.node.name, cap = self.cfg.max_jobs, "overloaded: doit refused");
            let msg = protocol::rexi_exit(
                Term::Reference(Box::new(d.reference)),
                tuple(vec![atom("overloaded"), nil()]),
            );
            let _ = self.node.send(&d.caller, msg);
            etf::dispose(d.nonce);
            drop(Args::new(d.args));
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        let state = Arc::new(JobState::new(d.caller, d.reference, d.nonce));
        bump(&self.stats.jobs_started);
        if let Some(old) = lock(&self.jobs).insert(
            key,
            JobEntry {
                state: state.clone(),
                abort: None,
            },
        ) {
            bump(&self.stats.jobs_ended);
            tracing::warn!(caller = %old.state.caller.node.name, "a doit reused the Ref of a running job; the older job can no longer be killed");
        }
        let ctx = Ctx::new(
            self.node.clone(),
            me.clone(),
            state.clone(),
            self.cfg.worker_timeout,
            self.cfg.stream_limit,
        );
        let (m, f, arity) = hkey;
        // The handler's future is made here, so the job's own future does not also keep
        // room for the Ctx and the arguments (they live in the handler's future only).
        let work = handler(ctx, Args::new(d.args));
        let started = (self.durations.start(), index);
        let mut job = Box::pin(run_job(
            me,
            work,
            state.clone(),
            key,
            (m, f, arity),
            started,
        ));
        // Run the job here, on the reader task, until it first waits: a job that answers
        // at once (an echo, a phash2) then costs no task spawn and no thread hop; a job
        // that waits is spawned and picks up from there (tokio's timers and Notify take
        // the task's waker when polled again).
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if job.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        let task = tokio::spawn(job);
        let mut jobs = lock(&self.jobs);
        if let Some(e) = jobs.get_mut(&key) {
            if Arc::ptr_eq(&e.state, &state) {
                e.abort = Some(task.abort_handle());
            }
        }
        drop(jobs);
        if state.is_killed() {
            task.abort();
        }
    }

    fn kill(&self, r: &Term) {
        let Some(key) = RefKey::from_term(r) else {
            bump(&self.stats.kills_unknown);
            return;
        };
        let entry = lock(&self.jobs).remove(&key);
        match entry {
            Some(e) => {
                bump(&self.stats.jobs_ended);
                let worker = e.state.kill();
                if let Some(a) = e.abort {
                    a.abort();
                }
                if let Some(w) = worker {
                    self.node.exit_process(&w, &atom("killed"));
                }
                bump(&self.stats.kills);
            }
            None => {
                bump(&self.stats.kills_unknown);
                lock(&self.tombstones).add(key, self.cfg.tombstone_ttl, self.cfg.max_tombstones);
            }
        }
    }

    /// Kills every job whose caller lives on `peer` (its node went down).
    pub(crate) fn cancel_jobs_of(&self, peer: &str) {
        let gone: Vec<JobEntry> = {
            let mut jobs = lock(&self.jobs);
            let keys: Vec<RefKey> = jobs
                .iter()
                .filter(|(_, e)| e.state.caller.node.name == peer)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().filter_map(|k| jobs.remove(&k)).collect()
        };
        for e in gone {
            let worker = e.state.kill();
            if let Some(a) = e.abort {
                a.abort();
            }
            if let Some(w) = worker {
                self.node.exit_process(&w, &atom("noconnection"));
            }
            bump(&self.stats.cancelled_nodedown);
            bump(&self.stats.jobs_ended);
        }
    }

    fn job_ended(
        &self,
        state: &Arc<JobState>,
        key: &RefKey,
        reason: Option<Term>,
        mfa: &(String, String, usize),
    ) {
        {
            let mut jobs = lock(&self.jobs);
            if matches!(jobs.get(key), Some(e) if Arc::ptr_eq(&e.state, state)) {
                jobs.remove(key);
                bump(&self.stats.jobs_ended);
            }
        }
        let exit_reason = match reason {
            None => atom("normal"),
            Some(reason) => {
                if !state.is_killed() {
                    bump(&self.stats.errors);
                    self.record_error(&reason, &mfa.0, &mfa.1, mfa.2, &state.nonce);
                    let msg = protocol::rexi_exit(
                        Term::Reference(Box::new(state.reference.clone())),
                        reason,
                    );
                    state.send(&self.node, msg);
                    atom("shutdown")
                } else {
                    etf::dispose(reason);
                    atom("killed")
                }
            }
        };
        if let Some(w) = state.worker() {
            self.node.exit_process(&w, &exit_reason);
        }
    }

    fn record_error(&self, reason: &Term, m: &str, f: &str, arity: usize, nonce: &Term) {
        let mut ring = lock(&self.errors);
        if ring.limit == 0 {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ts = tuple(vec![
            int((now.as_secs() / 1_000_000) as i64),
            int((now.as_secs() % 1_000_000) as i64),
            int(now.subsec_micros() as i64),
        ]);
        let (r, stack) = match reason {
            Term::Tuple(t) if t.elements.len() == 2 => {
                (t.elements[0].clone(), t.elements[1].clone())
            }
            other => (other.clone(), nil()),
        };
        let rec = tuple(vec![
            atom("error"),
            ts,
            tuple(vec![atom("error"), r]),
            tuple(vec![atom(m), atom(f), int(arity as i64)]),
            nonce.clone(),
            stack,
        ]);
        ring.entries.push_front(rec);
        while ring.entries.len() > ring.limit {
            ring.entries.pop_back();
        }
    }

    fn call(&self, call: gen::Call) {
        let reply = match &call.request {
            Term::Atom(a) if a.name == "get_errors" => {
                let ring = lock(&self.errors);
                tuple(vec![
                    atom("ok"),
                    Term::List(eetf::List::from(
                        ring.entries.iter().cloned().collect::<Vec<_>>(),
                    )),
                ])
            }
            Term::Atom(a) if a.name == "get_last_error" => match lock(&self.errors).entries.front()
            {
                Some(e) => tuple(vec![atom("ok"), e.clone()]),
                None => tuple(vec![atom("error"), atom("empty")]),
            },
            Term::Tuple(t)
                if t.elements.len() == 2
                    && matches!(&t.elements[0], Term::Atom(a) if a.name == "set_error_limit") =>
            {
                match &t.elements[1] {
                    Term::FixInteger(n) if n.value >= 0 => {
                        let mut ring = lock(&self.errors);
                        ring.limit = n.value as usize;
                        // Shrinking keeps the oldest entries, as rexi does.
                        while ring.entries.len() > ring.limit {
                            ring.entries.pop_front();
                        }
                        atom("ok")
                    }
                    _ => atom("ignored"),
                }
            }
            _ => atom("ignored"),
        };
        let _ = self
            .node
            .send(&call.from, gen::reply_message(call.tag, reply));
        etf::dispose(call.request);
    }
}

fn int(v: i64) -> Term {
    Term::FixInteger(eetf::FixInteger::from(v as i32))
}

async fn run_job(
    server: Arc<RexiServer>,
    work: HandlerFuture,
    state: Arc<JobState>,
    key: RefKey,
    mfa: (String, String, usize),
    (started, index): (Option<Instant>, usize),
) {
    let outcome = AssertUnwindSafe(work).catch_unwind().await;
    if let Some(t) = started {
        server.durations.observe(index, t.elapsed());
    }
    let stack = || protocol::stack(&mfa.0, &mfa.1, int(mfa.2 as i64));
    let reason = match outcome {
        Ok(Ok(())) | Ok(Err(Failure::Normal)) => None,
        Ok(Err(Failure::Error { reason, stack: s })) => {
            Some(tuple(vec![reason, s.unwrap_or_else(stack)]))
        }
        Ok(Err(Failure::Exit(r))) => Some(r),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            tracing::warn!(module = %mfa.0, function = %mfa.1, arity = mfa.2, "handler panicked: {msg}");
            Some(tuple(vec![
                tuple(vec![
                    atom("rust_panic"),
                    Term::Binary(eetf::Binary::from(msg.into_bytes())),
                ]),
                stack(),
            ]))
        }
    };
    server.job_ended(&state, &key, reason, &mfa);
}
