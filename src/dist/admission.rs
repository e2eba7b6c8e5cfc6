//! Who may start a handshake, and how fast: the defences that need no cookie to reach.
//!
//! Anyone who can open a TCP connection to the distribution port reaches the handshake
//! before proving anything. Three limits keep such a client from locking real peers out:
//!
//! * a budget of sockets in the handshake (`--max-handshakes`), separate from the slots of
//!   authenticated peers (`--max-connections`), so idle sockets can never take those;
//! * a cap per source address (`--max-handshakes-per-address`), so one client cannot take
//!   the whole handshake budget either;
//! * a growing delay per source address after wrong-cookie attempts: its next handshake
//!   starts only after the delay, so cookies cannot be guessed at thousands a second.
//!   Other addresses are not delayed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The first delay after a wrong cookie; it doubles with each further one.
const PENALTY_BASE: Duration = Duration::from_millis(100);
/// The longest delay between two handshakes from an address that keeps guessing.
const PENALTY_MAX: Duration = Duration::from_secs(2);
/// An address that stopped guessing this long ago starts afresh.
const PENALTY_FORGET: Duration = Duration::from_secs(600);
/// Most addresses remembered for their wrong cookies (the oldest is forgotten first).
const PENALTY_TABLE: usize = 4096;

/// Why an incoming socket was closed before its handshake started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-handshakes` sockets are already in the handshake.
    Budget,
    /// This address already has `--max-handshakes-per-address` sockets in the handshake.
    PerAddress,
}

struct Penalty {
    /// Wrong cookies in a row.
    failures: u32,
    /// When the next handshake from this address may start.
    next_turn: Instant,
    last_failure: Instant,
}

#[derive(Default)]
struct State {
    total: usize,
    per_addr: HashMap<IpAddr, usize>,
    penalties: HashMap<IpAddr, Penalty>,
}

/// The handshake budget of one node.
pub struct Admission {
    max_total: usize,
    max_per_addr: usize,
    state: Mutex<State>,
}

/// A socket's place in the handshake budget; dropping it frees the place.
pub struct Ticket {
    admission: Arc<Admission>,
    addr: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_addr: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total: max_total.max(1),
            max_per_addr: max_per_addr.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a new socket from `addr`, or says why there is none.
    pub fn enter(self: &Arc<Self>, addr: IpAddr) -> Result<Ticket, Refused> {
        let mut s = self.lock();
        if s.total >= self.max_total {
            return Err(Refused::Budget);
        }
        let n = s.per_addr.entry(addr).or_insert(0);
        if *n >= self.max_per_addr {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        s.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            addr,
        })
    }

    /// Sockets in the handshake now.
    pub fn in_progress(&self) -> usize {
        self.lock().total
    }

    /// How long a handshake from `addr` must wait before it starts (zero for an address
    /// with no wrong cookie), reserving its turn: attempts from a guessing address are
    /// spaced by the current delay, however many sockets it opens.
    pub fn turn(&self, addr: IpAddr) -> Duration {
        let mut s = self.lock();
        let now = Instant::now();
        let Some(p) = s.penalties.get_mut(&addr) else {
            return Duration::ZERO;
        };
        if now.duration_since(p.last_failure) > PENALTY_FORGET {
            s.penalties.remove(&addr);
            return Duration::ZERO;
        }
        let start = p.next_turn.max(now);
        p.next_turn = start + delay(p.failures);
        start - now
    }

    /// The handshake from `addr` failed on the cookie: its next ones wait longer.
    pub fn wrong_cookie(&self, addr: IpAddr) -> Duration {
        let mut s = self.lock();
        let now = Instant::now();
        if !s.penalties.contains_key(&addr) && s.penalties.len() >= PENALTY_TABLE {
            let oldest = s
                .penalties
                .iter()
                .min_by_key(|(_, p)| p.last_failure)
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                s.penalties.remove(&a);
            }
        }
        let p = s.penalties.entry(addr).or_insert(Penalty {
            failures: 0,
            next_turn: now,
            last_failure: now,
        });
        p.failures = p.failures.saturating_add(1);
        p.last_failure = now;
        let d = delay(p.failures);
        p.next_turn = p.next_turn.max(now + d);
        d
    }

    /// A handshake from `addr` succeeded: it holds the cookie, forget its mistakes.
    pub fn authenticated(&self, addr: IpAddr) {
        self.lock().penalties.remove(&addr);
    }
}

fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16);
    (PENALTY_BASE * (1u32 << shift)).min(PENALTY_MAX)
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.admission.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_addr.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                s.per_addr.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn budget_and_per_address_cap() {
        let a = Admission::new(3, 2);
        let t1 = a.enter(ip("10.0.0.1")).expect("1");
        let _t2 = a.enter(ip("10.0.0.1")).expect("2");
        assert_eq!(a.enter(ip("10.0.0.1")).err(), Some(Refused::PerAddress));
        let _t3 = a.enter(ip("10.0.0.2")).expect("3");
        assert_eq!(a.enter(ip("10.0.0.3")).err(), Some(Refused::Budget));
        drop(t1);
        assert_eq!(a.in_progress(), 2);
        let _t4 = a.enter(ip("10.0.0.1")).expect("freed");
    }

    #[test]
    fn wrong_cookies_space_out_that_address_only() {
        let a = Admission::new(10, 10);
        let bad = ip("10.0.0.9");
        assert_eq!(a.turn(bad), Duration::ZERO);
        for _ in 0..10 {
            a.wrong_cookie(bad);
        }
        // Ten sockets opened at once are served one per PENALTY_MAX.
        let waits: Vec<Duration> = (0..10).map(|_| a.turn(bad)).collect();
        assert!(
            waits[0] >= PENALTY_MAX - Duration::from_millis(1),
            "{waits:?}"
        );
        assert!(
            waits[9] >= PENALTY_MAX * 10 - Duration::from_millis(1),
            "{waits:?}"
        );
        assert_eq!(a.turn(ip("10.0.0.10")), Duration::ZERO);
        a.authenticated(bad);
        assert_eq!(a.turn(bad), Duration::ZERO);
    }
}
