//! Pids and references minted by this node (its name and creation are in each of them).

use eetf::{Atom, Pid, Reference};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mints pids and refs for one node incarnation.
///
/// Pids use the same ranges as a BEAM node (number < 2^15, serial < 2^13), so every OTP
/// release accepts them; refs have three words with the first below 2^18, like BEAM refs.
pub struct Ids {
    node: Atom,
    creation: u32,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
}

impl Ids {
    pub fn new(node: &str, creation: u32) -> Ids {
        Ids {
            node: Atom::from(node),
            creation,
            next_pid: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
        }
    }

    pub fn node(&self) -> &Atom {
        &self.node
    }

    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// A pid that may be in use already once 2^28 pids were minted; the registry checks.
    pub fn next_pid(&self) -> Pid {
        let n = self.next_pid.fetch_add(1, Ordering::Relaxed) & 0x0FFF_FFFF;
        Pid {
            node: self.node.clone(),
            id: (n & 0x7FFF) as u32,
            serial: (n >> 15) as u32,
            creation: self.creation,
        }
    }

    pub fn next_ref(&self) -> Reference {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        Reference {
            node: self.node.clone(),
            id: vec![
                (n & 0x3FFFF) as u32,
                (n >> 18) as u32,
                (n >> 50) as u32 ^ 0x5EED,
            ],
            creation: self.creation,
        }
    }

    /// Whether `pid` was minted by this node incarnation.
    pub fn is_local(&self, pid: &Pid) -> bool {
        pid.node.name == self.node.name && pid.creation == self.creation
    }
}

/// The registry key of a local pid.
pub fn key(pid: &Pid) -> u64 {
    ((pid.serial as u64) << 32) | pid.id as u64
}
