//! Counters, read by `rexi_server_mon`'s `stats` call, `/metrics` (`crate::metrics`) and
//! the log line at shutdown: one set of atomics behind every report.

use eetf::{Atom, BigInteger, FixInteger, Term, Tuple};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub casts_singleton: AtomicU64,
    pub casts_phash2: AtomicU64,
    pub casts_nodename: AtomicU64,
    pub replies: AtomicU64,
    /// Replies and stream rows that could not be queued (caller gone or not reading).
    pub replies_dropped: AtomicU64,
    pub errors: AtomicU64,
    pub kills: AtomicU64,
    pub kills_unknown: AtomicU64,
    pub tombstones_hit: AtomicU64,
    pub dropped_retired: AtomicU64,
    /// Messages to a `rexi_server_*` name this node does not serve: a caller derived the
    /// name from another node's name (or hashed it differently), and its casts are lost.
    pub dropped_unserved: AtomicU64,
    pub overloaded: AtomicU64,
    pub malformed: AtomicU64,
    pub cancelled_nodedown: AtomicU64,
    /// Jobs put in the job table, and jobs that left it (ended, killed or cancelled).
    pub jobs_started: AtomicU64,
    pub jobs_ended: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn int(v: u64) -> Term {
    if v <= i32::MAX as u64 {
        Term::FixInteger(FixInteger::from(v as i32))
    } else {
        Term::BigInteger(BigInteger::from(v))
    }
}

impl Stats {
    /// `[{Key, Value}]`, a proplist any Erlang shell reads.
    pub fn snapshot(&self, release: u8, jobs_running: usize) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("release", release as u64),
            ("casts_singleton", g(&self.casts_singleton)),
            ("casts_phash2", g(&self.casts_phash2)),
            ("casts_nodename", g(&self.casts_nodename)),
            ("replies", g(&self.replies)),
            ("replies_dropped", g(&self.replies_dropped)),
            ("errors", g(&self.errors)),
            ("kills", g(&self.kills)),
            ("kills_unknown", g(&self.kills_unknown)),
            ("tombstones_hit", g(&self.tombstones_hit)),
            ("dropped_retired", g(&self.dropped_retired)),
            ("overloaded", g(&self.overloaded)),
            ("malformed", g(&self.malformed)),
            ("jobs_running", jobs_running as u64),
            ("jobs_cancelled_nodedown", g(&self.cancelled_nodedown)),
        ]
    }

    /// The counters added after the metrics came (the job table's throughput, the
    /// unserved names), reported after the held monitors and links: the keys `stats`
    /// answered before keep their places.
    pub fn later_counts(&self) -> [(&'static str, u64); 3] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("jobs_started", g(&self.jobs_started)),
            ("jobs_ended", g(&self.jobs_ended)),
            ("dropped_unserved", g(&self.dropped_unserved)),
        ]
    }

    pub fn to_term(snapshot: &[(&'static str, u64)]) -> Term {
        let items: Vec<Term> = snapshot
            .iter()
            .map(|(k, v)| Term::Tuple(Tuple::from(vec![Term::Atom(Atom::from(*k)), int(*v)])))
            .collect();
        Term::List(eetf::List::from(items))
    }
}
