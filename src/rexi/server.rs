//! The one job table behind every rexi server name.
//!
//! Every name (`rexi_server`, `rexi_server_<phash2(P)>`, `rexi_server_<P>`) leads here, so
//! a kill finds its job whichever name carried the doit (release 2 sends each kill twice).
//! Requests are handled on the connection's reader task: parse, look up, spawn the job;
//! nothing here waits.

use super::durations::JobDurations;
use super::handler::{HandlerFuture, Handlers};
use super::names::{NameKind, NameOwner, Names};
use super::outcome::Outcome;
use super::protocol::{self, atom, nil, tuple, Doit, Request};
use super::release::Release;
use super::stats::{bump, Stats};
use super::worker::{Answer, Ctx, Failure, JobEnv, JobState, StreamLimits};
use crate::etf::{summary, summary_list, Owned, SummaryLimits};
use crate::fast_hash::FastMap;
use crate::log_limit;
use crate::net::Node;
use crate::process::refkey::{KeyMap, RefKey};
use crate::process::{gen, Signal};
use eetf::Term;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Settings of the rexi layer.
#[derive(Debug, Clone)]
pub struct RexiConfig {
    pub release: Release,
    /// Jobs running at once; beyond it a doit is answered at once with
    /// `{rexi_EXIT, {overloaded, []}}`.
    pub max_jobs: usize,
    /// Jobs running at once for the callers of one node (the connection that carried the
    /// doit), answered like `max_jobs` beyond it, so one peer cannot take every slot.
    /// 0: a quarter of `max_jobs`.
    pub max_jobs_per_peer: usize,
    /// How long a job waits for a sync answer, a stream ack or the stream2 START (rexi: 300 s).
    pub worker_timeout: Duration,
    /// Unacked rows allowed by `stream` (10) and `stream2` (CouchDB 2.x: 10; 3.x: 5).
    pub stream_limits: StreamLimits,
    /// How long a kill for an unknown ref is remembered, so a doit that arrives after its
    /// kill (they may take different paths) never runs.
    pub tombstone_ttl: Duration,
    pub max_tombstones: usize,
}

impl RexiConfig {
    /// The per-peer job quota in force: `max_jobs_per_peer`, or a quarter of `max_jobs`.
    pub fn jobs_per_peer(&self) -> usize {
        match self.max_jobs_per_peer {
            0 => (self.max_jobs / 4).max(1),
            n => n,
        }
    }
}

/// The most entries `{set_error_limit, N}` may keep: rexi keeps every entry a caller asks
/// for, but each one here is a copy of a peer's terms, so the ring is bounded (larger
/// requests are lowered to this, and still answered `ok`).
pub const MAX_ERROR_LIMIT: usize = 1000;

/// How much of a failed job's reason, stack, arguments and nonce an error-ring entry
/// keeps: a [`summary`] (at most 256 terms, 16 levels, 1 KiB per binary, each), never a
/// clone.
fn entry_limits() -> SummaryLimits {
    SummaryLimits::default()
}

impl Default for RexiConfig {
    fn default() -> Self {
        RexiConfig {
            release: Release::default(),
            max_jobs: 500_000,
            max_jobs_per_peer: 0,
            worker_timeout: Duration::from_secs(300),
            stream_limits: StreamLimits::default(),
            tombstone_ttl: Duration::from_secs(30),
            max_tombstones: 100_000,
        }
    }
}

struct JobEntry {
    state: Arc<JobState>,
}

/// The running jobs, and how many each owning node has (for the per-peer quota; keyed by
/// the node name's bytes, which a job has at hand without a UTF-8 check).
#[derive(Default)]
struct Jobs {
    map: KeyMap<JobEntry>,
    per_owner: FastMap<Box<[u8]>, usize>,
}

impl Jobs {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn of(&self, owner: &[u8]) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    fn insert(&mut self, key: RefKey, e: JobEntry) -> Option<JobEntry> {
        match self.per_owner.get_mut(e.state.owner_bytes()) {
            Some(c) => *c += 1,
            None => {
                self.per_owner.insert(e.state.owner_bytes().into(), 1);
            }
        }
        let old = self.map.insert(key, e);
        if let Some(o) = &old {
            self.uncount(o.state.owner_bytes());
        }
        old
    }

    fn remove(&mut self, key: &RefKey) -> Option<JobEntry> {
        let e = self.map.remove(key)?;
        self.uncount(e.state.owner_bytes());
        Some(e)
    }

    /// A count that falls to zero stays (a peer's next job then allocates nothing); the
    /// entry goes when its node goes down ([`Jobs::forget_owner`]).
    fn uncount(&mut self, owner: &[u8]) {
        if let Some(c) = self.per_owner.get_mut(owner) {
            *c = c.saturating_sub(1);
        }
    }

    fn forget_owner(&mut self, owner: &[u8]) {
        if self.of(owner) == 0 {
            self.per_owner.remove(owner);
        }
    }
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
    jobs: Mutex<Jobs>,
    tombstones: Mutex<Tombstones>,
    errors: Mutex<ErrorRing>,
    /// The ring's limit, read by every doit without taking the ring's lock: while it is 0
    /// (the default, as in rexi) no job keeps a copy of its arguments.
    error_limit: AtomicUsize,
    pub stats: Arc<Stats>,
    /// What every job's [`Ctx`] points at.
    env: Arc<JobEnv>,
    /// Every handler's `{M, F, Arity}`, by handler index: a job keeps the index, not the
    /// names.
    mfas: Vec<(String, String, usize)>,
    /// Job durations by MFA, one series per handler.
    pub durations: JobDurations,
    pub(crate) names: Names,
    me: Weak<RexiServer>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NameOwner for RexiServer {
    fn node(&self) -> &Node {
        RexiServer::node(self)
    }
    fn names(&self) -> &Names {
        &self.names
    }
    fn release(&self) -> Release {
        RexiServer::release(self)
    }
    fn stats(&self) -> &Stats {
        &self.stats
    }
    fn owner(&self) -> Weak<dyn NameOwner> {
        self.me.clone()
    }
    fn handle(&self, kind: NameKind, signal: Signal) {
        RexiServer::handle(self, kind, signal)
    }
    fn handle_doit(&self, kind: NameKind, doit: Doit<'_>, sender: Option<&str>) {
        RexiServer::handle_doit(self, kind, doit, sender)
    }
    fn cancel_jobs_of(&self, peer: &str) {
        RexiServer::cancel_jobs_of(self, peer)
    }
}

impl RexiServer {
    pub fn new(node: Node, handlers: Handlers, cfg: RexiConfig) -> Arc<RexiServer> {
        let stats = Arc::new(Stats::default());
        let env = Arc::new(JobEnv {
            node: node.clone(),
            stats: stats.clone(),
            timeout: cfg.worker_timeout,
            limits: cfg.stream_limits,
        });
        let mfas = handlers.mfas();
        Arc::new_cyclic(|me| RexiServer {
            node,
            durations: JobDurations::new(&mfas),
            mfas,
            env,
            handlers,
            release: Mutex::new(cfg.release),
            cfg,
            jobs: Mutex::new(Jobs::default()),
            tombstones: Mutex::new(Tombstones::default()),
            errors: Mutex::new(ErrorRing {
                limit: 0,
                entries: VecDeque::new(),
            }),
            error_limit: AtomicUsize::new(0),
            stats,
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
        let (monitors, links) = self.node.registry().held();
        v.push(("monitors_held", monitors as u64));
        v.push(("links_held", links as u64));
        v.extend(self.stats.later_counts());
        v.extend(self.node.net_stats().snapshot());
        v
    }

    /// Registers names and hooks on the node (see [`super::install`]).
    pub(crate) fn attach(self: Arc<Self>) {
        self.names.attach(&*self);
    }

    pub(crate) fn handle(&self, kind: NameKind, signal: Signal) {
        let (from, message) = match signal {
            Signal::Message { from, message } => (from, message),
            _ => return,
        };
        match protocol::parse(message) {
            Request::Doit(d) => {
                self.handle_doit(kind, d, from.as_ref().map(|p| p.node.name.as_str()))
            }
            Request::BadDoit {
                caller,
                reference,
                reason,
            } => {
                bump(&self.stats.malformed);
                if let Some(suppressed) =
                    log_limit::global().admit("malformed doit", &caller.node.name)
                {
                    tracing::warn!(peer = %caller.node.name, suppressed, "malformed doit answered with rexi_EXIT {reason:?}");
                }
                let msg = protocol::rexi_exit(reference.into_term(), tuple(vec![reason, nil()]));
                let _ = self.node.send(&caller, msg);
            }
            Request::Kill(r) => self.kill(&r),
            Request::KillAll(refs) => {
                if let Term::List(l) = &*refs {
                    for r in &l.elements {
                        self.kill(r);
                    }
                }
            }
            Request::Call(call) => self.call(call),
            Request::Unknown(why, t) => {
                bump(&self.stats.malformed);
                let peer = from.as_ref().map(|p| p.node.name.as_str()).unwrap_or("?");
                if let Some(suppressed) =
                    log_limit::global().admit("ignored rexi server message", peer)
                {
                    tracing::warn!(peer, suppressed, "ignored message to a rexi server: {why}");
                }
                drop(t);
            }
        }
    }

    /// A doit that came to the name `kind` over the connection of `sender`.
    pub(crate) fn handle_doit(&self, kind: NameKind, d: Doit<'_>, sender: Option<&str>) {
        bump(match kind {
            NameKind::Singleton => &self.stats.casts_singleton,
            NameKind::Phash2 => &self.stats.casts_phash2,
            NameKind::NodeName => &self.stats.casts_nodename,
        });
        // The job belongs to the node whose connection carried it: the node of a REG_SEND's
        // sender, which the distribution layer checked is the connection's peer. A caller
        // pid of some other node is served, but counted against and tied to the sender
        // (see `cancel_jobs_of`). Local sends have no sender: the caller's node then.
        self.doit(d, sender);
    }

    /// Runs a doit that `sender` (the node of the connection, if any) carried.
    fn doit(&self, d: Doit<'_>, sender: Option<&str>) {
        let key = d.to.key();
        if lock(&self.tombstones).take(&key, self.cfg.tombstone_ttl) {
            bump(&self.stats.tombstones_hit);
            tracing::debug!(peer = %d.to.node(), "doit arrived after its kill: not run");
            return;
        }
        let Some((handler, index)) = self.handlers.find(&d.module, &d.function, d.args.len())
        else {
            bump(&self.stats.errors);
            let (m, f) = (d.module, d.function);
            // undef's stack shows the arguments, as the BEAM does; the ring keeps a summary.
            let kept = self.kept_args(&d.args);
            let args = Term::List(eetf::List::from(d.args.into_terms()));
            let reason = Owned::new(tuple(vec![atom("undef"), protocol::stack(&m, &f, args)]));
            self.record_error(&reason, &m, &f, kept, d.nonce.term());
            let _ = d.to.send_tagged(
                &self.node,
                &mut [Owned::new(protocol::exit_body(reason.into_term()))],
            );
            return;
        };
        // Most callers are processes of the sending node: then nothing is allocated.
        let other_owner = sender.filter(|s| s.as_bytes() != d.to.node_bytes());
        // The sender's name, when it is the caller's node, is the same name, already checked.
        let owner = sender.unwrap_or_else(|| d.to.node());
        if let Err((which, cap)) = self.admit(owner) {
            bump(&self.stats.overloaded);
            tracing::debug!(peer = %owner, caller_node = %d.to.node(), cap, "overloaded ({which}): doit refused");
            let overloaded = tuple(vec![atom("overloaded"), nil()]);
            let _ = d.to.send_tagged(
                &self.node,
                &mut [Owned::new(protocol::exit_body(overloaded))],
            );
            return;
        }
        let state = Arc::new(JobState::new(d.to, d.nonce, other_owner.map(str::to_owned)));
        self.enter(key, &state);
        self.launch(state, key, (handler, index), d.args);
    }

    /// Whether a job of `owner` may start now: `Err((flag, cap))` at `max_jobs` or at the
    /// owner's share.
    pub(crate) fn admit(&self, owner: &str) -> Result<(), (&'static str, usize)> {
        let jobs = lock(&self.jobs);
        if jobs.len() >= self.cfg.max_jobs {
            Err(("max_jobs", self.cfg.max_jobs))
        } else if jobs.of(owner.as_bytes()) >= self.cfg.jobs_per_peer() {
            Err(("max_jobs_per_peer", self.cfg.jobs_per_peer()))
        } else {
            Ok(())
        }
    }

    /// Puts an admitted job in the table (before it runs: a kill must find it).
    pub(crate) fn enter(&self, key: RefKey, state: &Arc<JobState>) {
        bump(&self.stats.jobs_started);
        if let Some(old) = lock(&self.jobs).insert(
            key,
            JobEntry {
                state: state.clone(),
            },
        ) {
            bump(&self.stats.jobs_ended);
            let peer = old.state.to.node();
            if let Some(suppressed) =
                log_limit::global().admit("job reused a running job's Ref", peer)
            {
                tracing::warn!(peer = %peer, suppressed, "a job reused the Ref of a running job; the older job can no longer be killed");
            }
        }
    }

    /// Takes a job that was entered but will never run out of the table (a spawn the
    /// distribution layer refused after all).
    pub(crate) fn forget(&self, key: &RefKey, state: &Arc<JobState>) {
        let mut jobs = lock(&self.jobs);
        if matches!(jobs.map.get(key), Some(e) if Arc::ptr_eq(&e.state, state)) {
            jobs.remove(key);
            bump(&self.stats.jobs_ended);
        }
    }

    /// Runs an entered job: here, on the caller's task, until it first waits; then with
    /// the other waiting jobs of this thread ([`super::parked`]).
    pub(crate) fn launch(
        &self,
        state: Arc<JobState>,
        key: RefKey,
        (handler, index): (super::handler::HandlerFn, usize),
        args: super::handler::Args,
    ) {
        let Some(me) = self.me.upgrade() else { return };
        let kept = self.kept_args(&args).map(Box::new);
        let work = handler(Ctx::new(self.env.clone(), state.clone()), args);
        let mut job = JobTask {
            server: me,
            work,
            state: state.clone(),
            index,
            started: self.durations.start(),
            kept,
        };
        // Run the job here, on the reader task, until it first waits: a job that answers
        // at once (an echo, a phash2) then costs no task and no thread hop. A job that
        // waits moves into this thread's set of waiting jobs and picks up from there
        // (tokio's timers and Notify take the new waker when polled again); it can move,
        // as its handler's future is pinned in its own box. A kill that came meanwhile is
        // seen at that next poll.
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if let Poll::Ready(ended) = job.poll_work(&mut cx) {
            job.end(ended, &key);
            return;
        }
        super::parked::park(&WAITING, job);
    }

    /// The `{M, F, Arity}` of handler `index` (every index the handler table gave out has
    /// one; anything else reads as `'':''/0` rather than panic).
    fn mfa(&self, index: usize) -> &(String, String, usize) {
        static NONE: (String, String, usize) = (String::new(), String::new(), 0);
        self.mfas.get(index).unwrap_or(&NONE)
    }

    /// The handler for `{M, F, Arity}` and its index.
    pub(crate) fn handler(
        &self,
        mfa: &(String, String, usize),
    ) -> Option<(super::handler::HandlerFn, usize)> {
        self.handlers.lookup_indexed(mfa)
    }

    fn kill(&self, r: &Term) {
        let Some(key) = RefKey::from_term(r) else {
            bump(&self.stats.kills_unknown);
            return;
        };
        if !self.end_job(&key, None, &atom("killed")) {
            bump(&self.stats.kills_unknown);
            lock(&self.tombstones).add(key, self.cfg.tombstone_ttl, self.cfg.max_tombstones);
        } else {
            bump(&self.stats.kills);
        }
    }

    /// Ends the job `key` (if `only` is given, only when it is that job): nothing more is
    /// sent for it and its process, if it has one, exits with `reason`. Whether it ran.
    pub(crate) fn end_job(
        &self,
        key: &RefKey,
        only: Option<&Arc<JobState>>,
        reason: &Term,
    ) -> bool {
        let entry = {
            let mut jobs = lock(&self.jobs);
            match (jobs.map.get(key), only) {
                (Some(e), Some(s)) if !Arc::ptr_eq(&e.state, s) => None,
                _ => jobs.remove(key),
            }
        };
        match entry {
            Some(e) => {
                bump(&self.stats.jobs_ended);
                let worker = e.state.kill();
                if let Some(w) = worker {
                    self.node.exit_process(&w, reason);
                }
                true
            }
            None => false,
        }
    }

    /// Kills every job that `peer`'s connection created or whose caller lives on `peer`
    /// (its node went down: nobody could receive the replies, or kill the job).
    pub(crate) fn cancel_jobs_of(&self, peer: &str) {
        let gone: Vec<JobEntry> = {
            let mut jobs = lock(&self.jobs);
            let keys: Vec<RefKey> = jobs
                .map
                .iter()
                .filter(|(_, e)| {
                    e.state.owner_bytes() == peer.as_bytes()
                        || e.state.to.node_bytes() == peer.as_bytes()
                })
                .map(|(k, _)| *k)
                .collect();
            let gone = keys.into_iter().filter_map(|k| jobs.remove(&k)).collect();
            jobs.forget_owner(peer.as_bytes());
            gone
        };
        for e in gone {
            let worker = e.state.kill();
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
        outcome: Outcome,
        index: usize,
        kept: Option<Box<Owned>>,
    ) {
        {
            let mut jobs = lock(&self.jobs);
            if matches!(jobs.map.get(key), Some(e) if Arc::ptr_eq(&e.state, state)) {
                jobs.remove(key);
                bump(&self.stats.jobs_ended);
            }
        }
        if state.is_killed() {
            // Whoever killed it ended its process too.
            return;
        }
        if let Some(reason) = outcome.rexi_reason() {
            bump(&self.stats.errors);
            let (m, f, _) = self.mfa(index);
            self.record_error(reason, m, f, kept.map(|k| *k), state.nonce.term());
        }
        let exit_reason: Owned = match &state.answer {
            Answer::AsExit(shape) => shape.exit_reason(outcome, state.take_value()),
            Answer::ToCaller => match outcome {
                Outcome::Normal => Owned::new(atom("normal")),
                Outcome::Error(reason) | Outcome::Exit(reason) => {
                    let body = protocol::exit_body(reason.into_term());
                    state.send_tagged(&self.node, &mut [Owned::new(body)]);
                    Owned::new(atom("shutdown"))
                }
            },
        };
        if let Some(w) = state.worker() {
            self.node.exit_process(&w, &exit_reason);
        }
    }

    /// What a job keeps of its arguments for the error ring, taken before the handler owns
    /// them: nothing while the ring is off, else a [`summary_list`] (never larger than the
    /// arguments themselves, and at most [`entry_limits`]).
    fn kept_args(&self, args: &protocol::Args) -> Option<Owned> {
        if self.error_limit.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(Owned::new(summary_list(args.iter(), entry_limits())))
    }

    /// Adds an entry to the error ring, like rexi's `#error{timestamp, reason, mfa = {M, F,
    /// Args}, nonce, stack}`: summaries of the caller's terms (see [`entry_limits`]), never
    /// clones, so an entry is small however deep the reason. `args` is what the job kept
    /// ([`Self::kept_args`]); a job that started while the ring was off kept nothing, and
    /// its entry shows `'...'` in place of the argument list.
    fn record_error(&self, reason: &Term, m: &str, f: &str, args: Option<Owned>, nonce: &Term) {
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
        let l = entry_limits();
        let (r, stack) = match reason {
            Term::Tuple(t) if t.elements.len() == 2 => {
                (summary(&t.elements[0], l), summary(&t.elements[1], l))
            }
            other => (summary(other, l), nil()),
        };
        let rec = tuple(vec![
            atom("error"),
            ts,
            tuple(vec![atom("error"), r]),
            tuple(vec![
                atom(m),
                atom(f),
                args.map(Owned::into_term).unwrap_or_else(|| atom("...")),
            ]),
            summary(nonce, l),
            stack,
        ]);
        ring.entries.push_front(rec);
        while ring.entries.len() > ring.limit {
            ring.entries.pop_back();
        }
    }

    fn call(&self, call: gen::Call) {
        let reply = match &*call.request {
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
                        let want = n.value as usize;
                        if want > MAX_ERROR_LIMIT {
                            tracing::warn!(
                                asked = want,
                                cap = MAX_ERROR_LIMIT,
                                "set_error_limit lowered to the cap"
                            );
                        }
                        ring.limit = want.min(MAX_ERROR_LIMIT);
                        self.error_limit.store(ring.limit, Ordering::Relaxed);
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
    }
}

fn int(v: i64) -> Term {
    Term::FixInteger(eetf::FixInteger::from(v as i32))
}

thread_local! {
    /// This thread's jobs that wait ([`super::parked`]).
    static WAITING: super::parked::Slot<JobTask> = const { std::cell::RefCell::new(None) };
}

/// A running job: the handler's future (pinned in its own box, so the job can be polled
/// once in place and then moved into the set of waiting jobs) and what its end needs. Every
/// held job is one of these, so it keeps the handler's index, not its names, and not its
/// key in the job table either (a job that ends in place has it at hand; a waiting job
/// works it out from its Ref when it ends).
struct JobTask {
    server: Arc<RexiServer>,
    work: HandlerFuture,
    state: Arc<JobState>,
    index: usize,
    started: Option<Instant>,
    kept: Option<Box<Owned>>,
}

/// Only the set of waiting jobs polls a job as a future: the first poll, in place, is
/// [`JobTask::poll_work`]. So every poll here is of a job that waited: a kill may have come,
/// and a kill must be able to wake it.
impl Future for JobTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let job = self.get_mut();
        if !job.state.keep_waker(cx.waker()) {
            // Killed: whoever killed it took it out of the table and ended its process;
            // dropping the handler's future is all that is left, and the caller hears
            // nothing more.
            return Poll::Ready(());
        }
        let ended = std::task::ready!(job.poll_work(cx));
        let key = job.state.to.key();
        job.end(ended, &key);
        Poll::Ready(())
    }
}

/// How a handler's future ended: its result, or the panic it raised.
type Ended = std::thread::Result<Result<(), Failure>>;

impl JobTask {
    /// Polls the handler's future once, catching a panic.
    fn poll_work(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Ended> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.work.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }

    fn end(&mut self, ended: Ended, key: &RefKey) {
        let server = &self.server;
        if let Some(t) = self.started {
            server.durations.observe(self.index, t.elapsed());
        }
        let (m, f, arity) = server.mfa(self.index);
        let stack = || protocol::stack(m, f, int(*arity as i64));
        let outcome = match ended {
            Ok(Ok(())) | Ok(Err(Failure::Normal)) => Outcome::Normal,
            Ok(Err(Failure::Error { reason, stack: s })) => {
                Outcome::Error(Owned::new(tuple(vec![
                    reason.into_term(),
                    s.map(Owned::into_term).unwrap_or_else(stack),
                ])))
            }
            Ok(Err(Failure::Exit(r))) => Outcome::Exit(r),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::warn!(module = %m, function = %f, arity, "handler panicked: {msg}");
                Outcome::Error(Owned::new(tuple(vec![
                    tuple(vec![
                        atom("rust_panic"),
                        Term::Binary(eetf::Binary::from(msg.into_bytes())),
                    ]),
                    stack(),
                ])))
            }
        };
        server.job_ended(&self.state, key, outcome, self.index, self.kept.take());
    }
}
