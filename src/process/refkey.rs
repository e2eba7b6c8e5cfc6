//! A compact, allocation-free key for a reference, and a fast hasher for such keys.
//!
//! Used wherever a table is looked up by a peer's reference on every message: rexi's job
//! table (by the caller's Ref) and the registry's monitors (O(1) `DEMONITOR`).

use crate::fast_hash::FastMap;
use eetf::{Reference, Term};

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
        RefKey::from_parts(r.node.name.as_bytes(), r.creation, r.id.iter().copied())
    }

    /// The key of the Ref of `node` (its name's UTF-8 bytes: a frame's Ref is keyed without
    /// checking its text again), `creation` and `words` (read in place from a frame).
    pub fn from_parts(node: &[u8], creation: u32, words: impl Iterator<Item = u32>) -> RefKey {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        // What `str`'s Hash writes, so the key does not depend on how the name was held.
        h.write(node);
        h.write_u8(0xff);
        let mut slots = [0u32; 5];
        let mut len = 0u32;
        for (i, w) in words.enumerate() {
            match slots.get_mut(i) {
                Some(slot) => *slot = w,
                None => w.hash(&mut h),
            }
            len += 1;
        }
        RefKey {
            node: h.finish(),
            creation,
            len,
            words: slots,
        }
    }
    pub fn from_term(t: &Term) -> Option<RefKey> {
        match t {
            Term::Reference(r) => Some(RefKey::of(r)),
            _ => None,
        }
    }
}

/// The job table and the monitors by Ref: [`RefKey`]s are already well mixed (ref counters
/// and a SipHash of the node name), so SipHash again would only cost time.
pub type KeyMap<V> = FastMap<RefKey, V>;
