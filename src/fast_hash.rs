//! A fast hasher for the tables a cast looks up: who is connected, which names are
//! registered, which handler serves an MFA, how many jobs each node has, the job table.
//!
//! The standard library's SipHash is built to resist hash flooding, which costs about
//! 20 ns for a node name; a cast took seven such lookups, about a tenth of the CPU a
//! cast costs under load. The keys of these tables are put there by this node (names,
//! handlers), by connected peers (node names: one per connection, bounded by the
//! connection limits) or are already well mixed ([`crate::process::RefKey`]), so an
//! attacker cannot fill them with colliding keys; a colliding *lookup* costs no more than
//! the table's few entries. Tables keyed by what a peer may insert freely keep SipHash.
//!
//! The mixing step is a multiply and a rotate per 8 bytes (the one rustc uses for its own
//! tables).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// See the module docs: for tables whose keys peers cannot choose freely.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
        // The length, so that zero padding cannot make "a" and "a\0" alike.
        self.add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(t)
    }

    #[test]
    fn node_names_that_differ_in_one_byte_hash_apart() {
        let names: Vec<String> = (0..1000).map(|i| format!("node{i}@127.0.0.1")).collect();
        let mut hashes: Vec<u64> = names.iter().map(hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
        // hashbrown picks buckets by the low bits and tags by the top 7: both vary.
        let low: std::collections::HashSet<u64> = names.iter().map(|n| hash(n) & 1023).collect();
        let top: std::collections::HashSet<u64> = names.iter().map(|n| hash(n) >> 57).collect();
        assert!(low.len() > 500, "{} distinct low 10 bits", low.len());
        assert_eq!(top.len(), 128);
    }

    #[test]
    fn a_prefix_and_its_extension_hash_apart() {
        assert_ne!(hash(&"a"), hash(&"a\0"));
        assert_ne!(hash(&"abcdefg"), hash(&"abcdefg\u{7}"));
        assert_ne!(hash(&("ab", "c")), hash(&("a", "bc")));
    }
}
