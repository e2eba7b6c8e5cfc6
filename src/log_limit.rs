//! Rate-limited warnings: at most one line per source and kind per interval, with a count.
//!
//! A hostile or broken peer can make the daemon warn thousands of times a second (a flood of
//! connections, a wrong cookie tried in a loop). Logging every event would fill the disk and
//! drown the lines an operator needs, so repeated warnings are aggregated: the first event
//! of a source in an interval is logged at once (carrying the number suppressed before it),
//! later ones in the same interval are only counted, and [`LogLimiter::flush`], called once
//! per interval, reports the counts of sources that are still going. [`global`] is one
//! table for the whole process; `dist::node` flushes it.
//!
//! The table is bounded: past `max_sources`, new sources share one entry, so an attacker
//! with many addresses cannot grow it either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The process-wide table, with a 10 s interval: any module can warn through it (e.g.
/// `if let Some(n) = log_limit::global().admit("malformed doit", peer) { warn!(..) }`),
/// and the node's flush task reports its counts.
pub fn global() -> &'static LogLimiter {
    static GLOBAL: std::sync::OnceLock<LogLimiter> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(|| LogLimiter::new(Duration::from_secs(10), 4096))
}

/// The source name used when the table is full.
pub const OTHER_SOURCES: &str = "(other sources)";

struct Window {
    started: Instant,
    suppressed: u64,
}

/// One aggregation table; share it (e.g. in an `Arc`) between the places that warn.
pub struct LogLimiter {
    interval: Duration,
    max_sources: usize,
    windows: Mutex<HashMap<(&'static str, String), Window>>,
}

/// A count of warnings that were not logged, reported by [`LogLimiter::flush`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub kind: &'static str,
    pub source: String,
    pub count: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration, max_sources: usize) -> LogLimiter {
        LogLimiter {
            interval,
            max_sources: max_sources.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Should this warning be logged now? `Some(n)`: yes, and `n` similar warnings from this
    /// source were suppressed since the last line (say so in the line); `None`: no, it was
    /// counted.
    pub fn admit(&self, kind: &'static str, source: &str) -> Option<u64> {
        self.admit_at(kind, source, Instant::now())
    }

    fn admit_at(&self, kind: &'static str, source: &str, now: Instant) -> Option<u64> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (kind, source.to_string());
        if !w.contains_key(&key) && w.len() >= self.max_sources {
            let interval = self.interval;
            w.retain(|_, v| now.duration_since(v.started) < interval || v.suppressed > 0);
            if w.len() >= self.max_sources {
                key.1 = OTHER_SOURCES.to_string();
            }
        }
        match w.get_mut(&key) {
            None => {
                w.insert(
                    key,
                    Window {
                        started: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
            Some(win) if now.duration_since(win.started) < self.interval => {
                win.suppressed += 1;
                None
            }
            Some(win) => {
                let n = win.suppressed;
                win.started = now;
                win.suppressed = 0;
                Some(n)
            }
        }
    }

    /// The counts of windows that ended with warnings suppressed; call it once per interval
    /// and log one line for each. Quiet sources are forgotten.
    pub fn flush(&self) -> Vec<Suppressed> {
        self.flush_at(Instant::now())
    }

    fn flush_at(&self, now: Instant) -> Vec<Suppressed> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let interval = self.interval;
        w.retain(|(kind, source), win| {
            if now.duration_since(win.started) < interval {
                return true;
            }
            if win.suppressed == 0 {
                return false;
            }
            out.push(Suppressed {
                kind,
                source: source.clone(),
                count: win.suppressed,
            });
            win.started = now;
            win.suppressed = 0;
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_per_interval_with_a_count() {
        let l = LogLimiter::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert_eq!(l.admit_at("refused", "10.0.0.1", t0), Some(0));
        for _ in 0..999 {
            assert_eq!(l.admit_at("refused", "10.0.0.1", t0), None);
        }
        // Another source and another kind are not held back.
        assert_eq!(l.admit_at("refused", "10.0.0.2", t0), Some(0));
        assert_eq!(l.admit_at("timeout", "10.0.0.1", t0), Some(0));
        let t1 = t0 + Duration::from_secs(11);
        let f = l.flush_at(t1);
        assert_eq!(
            f,
            vec![Suppressed {
                kind: "refused",
                source: "10.0.0.1".into(),
                count: 999
            }]
        );
        // Still flooding: counted again, reported by the next flush.
        assert_eq!(l.admit_at("refused", "10.0.0.1", t1), None);
        let t2 = t1 + Duration::from_secs(11);
        assert_eq!(l.flush_at(t2).len(), 1);
        // Quiet sources are forgotten; the next event is logged at once.
        let t3 = t2 + Duration::from_secs(11);
        assert!(l.flush_at(t3).is_empty());
        assert_eq!(l.admit_at("refused", "10.0.0.1", t3), Some(0));
    }

    #[test]
    fn a_full_table_shares_one_entry() {
        let l = LogLimiter::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert_eq!(l.admit_at("k", "a", t0), Some(0));
        assert_eq!(l.admit_at("k", "b", t0), Some(0));
        assert_eq!(l.admit_at("k", "c", t0), Some(0));
        assert_eq!(l.admit_at("k", "d", t0), None);
        let f = l.flush_at(t0 + Duration::from_secs(10));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].source, OTHER_SOURCES);
    }
}
