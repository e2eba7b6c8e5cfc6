//! How long jobs run, by MFA: a fixed-bucket histogram per registered handler.
//!
//! Cardinality is bounded by construction: one series per MFA in the handler table (at most
//! [`MAX_MFAS`]; the rest share `other`), never one per MFA a caller happens to send. A job
//! costs one `Instant` and one [`JobDurations::observe`]: two relaxed atomic adds on the
//! handler's own slot, found by the index the handler table hands out with the handler (no
//! map lookup by name). The count is the sum of the buckets, so it is never out of step
//! with them.
//!
//! Timing is off until [`JobDurations::enable`] (`--metrics-addr` turns it on): reading the
//! clock twice costs about as much as all the counters of a cast together on a virtual
//! machine, and only `/metrics` shows the histogram. Off, a job pays one relaxed load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in seconds (the last bucket, +Inf, is implicit).
pub const BOUNDS_SECS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0, 30.0,
];

/// Most MFAs with a series of their own.
pub const MAX_MFAS: usize = 100;

const fn bounds_nanos() -> [u64; BOUNDS_SECS.len()] {
    let mut out = [0u64; BOUNDS_SECS.len()];
    let mut i = 0;
    while i < BOUNDS_SECS.len() {
        out[i] = (BOUNDS_SECS[i] * 1e9) as u64;
        i += 1;
    }
    out
}
const BOUNDS_NANOS: [u64; BOUNDS_SECS.len()] = bounds_nanos();

struct Slot {
    /// Non-cumulative counts; `[BOUNDS_SECS.len()]` is the +Inf bucket.
    buckets: [AtomicU64; BOUNDS_SECS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// What one series holds at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `"Module:Function/Arity"` or `"other"`.
    pub mfa: String,
    pub sum_secs: f64,
    pub count: u64,
    /// `(upper bound, count in this bucket alone)`, +Inf last: not cumulative, as
    /// `prometheus-client`'s encoder accumulates them itself.
    pub buckets: Vec<(f64, u64)>,
}

pub struct JobDurations {
    labels: Vec<String>,
    slots: Vec<Slot>,
    enabled: AtomicBool,
}

impl JobDurations {
    /// One series per MFA in `mfas` (in handler-index order) up to [`MAX_MFAS`], plus `other`.
    pub fn new(mfas: &[(String, String, usize)]) -> JobDurations {
        let mut labels: Vec<String> = mfas
            .iter()
            .take(MAX_MFAS)
            .map(|(m, f, a)| format!("{m}:{f}/{a}"))
            .collect();
        labels.push("other".into());
        let slots = labels.iter().map(|_| Slot::default()).collect();
        JobDurations {
            labels,
            slots,
            enabled: AtomicBool::new(false),
        }
    }

    /// Starts timing jobs (from the next one on).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// The start of a job, when timing is on.
    pub fn start(&self) -> Option<Instant> {
        self.enabled.load(Ordering::Relaxed).then(Instant::now)
    }

    /// Records a job of handler `index` that ran for `d`.
    pub fn observe(&self, index: usize, d: Duration) {
        let slot = match self.slots.get(index) {
            Some(s) if index < MAX_MFAS => s,
            _ => match self.slots.last() {
                Some(s) => s,
                None => return,
            },
        };
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let b = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        slot.buckets[b].fetch_add(1, Ordering::Relaxed);
        slot.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Every series, `other` last.
    pub fn series(&self) -> Vec<Series> {
        self.labels
            .iter()
            .zip(&self.slots)
            .map(|(mfa, s)| {
                let mut count = 0u64;
                let mut buckets = Vec::with_capacity(BOUNDS_SECS.len() + 1);
                for (i, c) in s.buckets.iter().enumerate() {
                    let n = c.load(Ordering::Relaxed);
                    count += n;
                    buckets.push((BOUNDS_SECS.get(i).copied().unwrap_or(f64::INFINITY), n));
                }
                Series {
                    mfa: mfa.clone(),
                    sum_secs: s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    count,
                    buckets,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mfas(n: usize) -> Vec<(String, String, usize)> {
        (0..n).map(|i| ("m".into(), format!("f{i}"), 1)).collect()
    }

    #[test]
    fn observations_land_in_the_right_bucket_and_sum() {
        let d = JobDurations::new(&mfas(1));
        d.observe(0, Duration::from_micros(30)); // <= 50 us
        d.observe(0, Duration::from_micros(50)); // on the bound: le="5e-05"
        d.observe(0, Duration::from_millis(2)); // <= 2.5 ms
        d.observe(0, Duration::from_secs(100)); // +Inf
        let s = &d.series()[0];
        assert_eq!(s.mfa, "m:f0/1");
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.000_05, 2));
        assert_eq!(s.buckets[5], (0.002_5, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 4);
        assert!((s.sum_secs - 100.002_08).abs() < 1e-9);
    }

    #[test]
    fn mfas_past_the_cap_share_other() {
        let d = JobDurations::new(&mfas(MAX_MFAS + 5));
        d.observe(MAX_MFAS + 3, Duration::from_millis(1));
        d.observe(7, Duration::from_millis(1));
        let s = d.series();
        assert_eq!(s.len(), MAX_MFAS + 1);
        assert_eq!(s[MAX_MFAS].mfa, "other");
        assert_eq!(s[MAX_MFAS].count, 1);
        assert_eq!(s[7].count, 1);
    }
}
