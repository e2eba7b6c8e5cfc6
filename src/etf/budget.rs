//! Memory budgets for decoding: what a peer may make us allocate.
//!
//! Counting elements against the input bytes (see "Counts are promises" in the decoder)
//! bounds a term by its *input*, but one input byte can become a 56-byte `Term` slot, and
//! a compressed term can inflate 1,000 times: 32 KB of zlib holding 33.5 million `[]`
//! decoded to 1.88 GB. So every allocation the decoder makes is charged, before it is
//! made, against two budgets:
//!
//! * **per frame** ([`Limits::max_term_memory`]): all the terms of one distribution frame
//!   (its control tuple and its payload share one [`Budget`]), plus the inflated bytes of
//!   compressed terms;
//! * **in flight** ([`Limits::max_term_memory_total`]): what all the frames being decoded
//!   at this moment hold together, across every connection of the process. Per-frame
//!   budgets alone would let N connections take N times as much.
//!
//! A decode that would go over either budget stops with a [`DecodeError`] naming the
//! limit, the partial term is freed, and the caller closes that one connection.
//!
//! # What is charged
//!
//! Estimates from the real sizes of `eetf`'s types (not a ratio to the input): one
//! `Term` (56 bytes) per element of a tuple, list or fun environment when its `Vec` is
//! reserved; `HashMap` buckets for a map; the bytes of binaries, bitstrings, strings,
//! atom texts, bignum digits and reference numbers; the boxes of references, funs and
//! improper-list tails; the inflated buffer of a compressed term. Not charged: the
//! decoder's own stack for nesting beyond its recursion levels (40 bytes a level, less
//! than the 56 the level's container is charged, so at most the budget again), and
//! `HashMap`/`Vec` allocator slack.
//!
//! # Cost
//!
//! Charging is an add and a compare on a counter local to the frame. The shared counter
//! is touched in [`CHUNK`]-sized reservations, so a small frame does one atomic add and
//! one atomic subtract in all.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{DecodeError, Limits};

/// Bytes of one `eetf::Term` (a slot in a tuple, list or fun environment).
pub(crate) const TERM: usize = std::mem::size_of::<eetf::Term>();

/// Granularity of reservations from the shared in-flight counter.
pub(super) const CHUNK: usize = 64 << 10;

/// Bytes reserved by every decode in progress in this process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Bytes currently reserved by decodes in progress (all connections), for tests and
/// diagnostics.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// The memory one frame may still use while it is decoded. Create one per frame, pass
/// it to every decode of that frame ([`super::decode_prefix_in`], [`super::decode_in`]);
/// dropping it returns its reservation to the in-flight budget.
pub struct Budget {
    /// Bytes charged so far.
    used: usize,
    /// Bytes taken from the shared counter; `used <= reserved` after every charge.
    reserved: usize,
    frame_cap: usize,
    total_cap: usize,
    pool: &'static AtomicUsize,
}

impl Budget {
    /// A budget for one frame, drawing on the process-wide in-flight counter.
    pub fn new(limits: &Limits) -> Self {
        Self::with_pool(limits, &IN_FLIGHT)
    }

    /// The same, drawing on `pool` (tests use their own counter, as the process-wide one
    /// is shared with tests running in parallel).
    pub(crate) fn with_pool(limits: &Limits, pool: &'static AtomicUsize) -> Self {
        Budget {
            used: 0,
            reserved: 0,
            frame_cap: limits.max_term_memory,
            total_cap: limits.max_term_memory_total,
            pool,
        }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Charges `bytes` that are about to be allocated for the term that starts at input
    /// offset `at`.
    #[inline]
    pub(crate) fn charge(&mut self, bytes: usize, at: usize) -> Result<(), DecodeError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.reserved {
            return self.grow(at);
        }
        Ok(())
    }

    /// `count` elements of `each` bytes.
    #[inline]
    pub(crate) fn charge_n(
        &mut self,
        count: usize,
        each: usize,
        at: usize,
    ) -> Result<(), DecodeError> {
        self.charge(count.saturating_mul(each), at)
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, at: usize) -> Result<(), DecodeError> {
        if self.used > self.frame_cap {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "decoding this frame needs more than its term memory budget of {} bytes \
                     (--max-term-memory)",
                    self.frame_cap
                ),
            });
        }
        // Reserve what is missing, at least a chunk, never past the frame's own cap.
        let want = (self.used - self.reserved)
            .max(CHUNK)
            .min(self.frame_cap - self.reserved);
        let cap = self.total_cap;
        let taken = self
            .pool
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                cur.checked_add(want).filter(|&n| n <= cap)
            });
        if let Err(cur) = taken {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "frames being decoded at once already hold {cur} bytes; this one needs \
                     {} more and the in-flight term memory budget is {cap} bytes \
                     (--max-term-memory-total)",
                    self.used - self.reserved
                ),
            });
        }
        self.reserved += want;
        Ok(())
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        if self.reserved > 0 {
            self.pool.fetch_sub(self.reserved, Ordering::AcqRel);
        }
    }
}

/// Bytes of a `HashMap<Term, Term>` with room for `n` entries (hashbrown: a power of two
/// of buckets at most 7/8 full, one control byte per bucket).
pub(crate) fn map_bytes(n: usize) -> usize {
    let buckets = n
        .saturating_mul(8)
        .div_ceil(7)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX);
    buckets.saturating_mul(2 * TERM + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(frame: usize, total: usize) -> Limits {
        Limits {
            max_term_memory: frame,
            max_term_memory_total: total,
            ..Limits::default()
        }
    }

    fn pool() -> &'static AtomicUsize {
        Box::leak(Box::new(AtomicUsize::new(0)))
    }

    #[test]
    fn charges_up_to_the_frame_cap_and_returns_the_reservation() {
        let p = pool();
        let mut b = Budget::with_pool(&limits(1000, 1 << 20), p);
        b.charge(600, 0).unwrap();
        b.charge(400, 1).unwrap();
        assert_eq!(
            p.load(Ordering::Relaxed),
            1000,
            "reserved up to the frame cap"
        );
        let e = b.charge(1, 7).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(
            e.reason
                .contains("budget of 1000 bytes (--max-term-memory)"),
            "{e:?}"
        );
        drop(b);
        assert_eq!(p.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn frames_decoded_at_once_share_the_total() {
        let p = pool();
        let l = limits(1 << 20, 3 * CHUNK);
        let mut a = Budget::with_pool(&l, p);
        let mut b = Budget::with_pool(&l, p);
        a.charge(2 * CHUNK, 0).unwrap();
        b.charge(CHUNK, 0).unwrap();
        let e = b.charge(1, 3).unwrap_err();
        assert!(e.reason.contains("(--max-term-memory-total)"), "{e:?}");
        // A refused charge takes nothing from the shared counter.
        assert_eq!(p.load(Ordering::Relaxed), 3 * CHUNK);
        drop(a);
        let mut c = Budget::with_pool(&l, p);
        c.charge(2 * CHUNK, 0).unwrap();
        drop((b, c));
        assert_eq!(p.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn small_charges_touch_the_shared_counter_once() {
        let p = pool();
        let mut b = Budget::with_pool(&limits(1 << 30, 1 << 30), p);
        for i in 0..1000 {
            b.charge(TERM, i).unwrap();
        }
        assert_eq!(p.load(Ordering::Relaxed), CHUNK);
        assert_eq!(b.used(), 1000 * TERM);
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    /// `131, 80, Size, zlib(list of n [])`: the memory bomb of issue 12 at n = 33.5M.
    fn nil_bomb(n: usize) -> Vec<u8> {
        let mut inner = vec![108];
        inner.extend_from_slice(&(n as u32).to_be_bytes());
        inner.resize(5 + n + 1, 106);
        let mut f = vec![131, 80];
        f.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        f.extend_from_slice(&zlib(&inner));
        f
    }

    /// 32 KB that asked for 1.88 GB: refused when the list is opened, before its `Vec`
    /// is reserved, with the default limits.
    #[test]
    fn the_compressed_nil_bomb_is_refused_before_it_allocates() {
        let bomb = nil_bomb(33_554_432);
        assert!(bomb.len() < 40_000, "{}", bomb.len());
        let e = crate::etf::decode(&bomb, &Limits::default()).unwrap_err();
        assert!(
            e.reason
                .contains("term memory budget of 268435456 bytes (--max-term-memory)"),
            "{e}"
        );
        assert!(e.reason.contains("at byte 0 of the inflated data"), "{e}");
    }

    /// The inflated bytes are charged too, so a bomb of a small term that inflates within
    /// --max-decompressed is still bounded by the memory budget.
    #[test]
    fn inflated_bytes_count_against_the_budget() {
        let l = Limits {
            max_term_memory: 1 << 20,
            ..Limits::default()
        };
        let mut bin = vec![109];
        bin.extend_from_slice(&(2_000_000u32).to_be_bytes());
        bin.resize(5 + 2_000_000, 0);
        let mut f = vec![131, 80];
        f.extend_from_slice(&(bin.len() as u32).to_be_bytes());
        f.extend_from_slice(&zlib(&bin));
        let e = crate::etf::decode(&f, &l).unwrap_err();
        assert_eq!(e.offset, 2, "{e}");
        assert!(e.reason.contains("(--max-term-memory)"), "{e}");
    }

    /// No compression needed: 5 million small integers are 10 MB of input and 280 MB of
    /// `Term`s.
    #[test]
    fn uncompressed_amplification_is_bounded_too() {
        let n = 5_000_000u32;
        let mut f = vec![131, 108];
        f.extend_from_slice(&n.to_be_bytes());
        for _ in 0..n {
            f.extend_from_slice(&[97, 1]);
        }
        f.push(106);
        let e = crate::etf::decode(&f, &Limits::default()).unwrap_err();
        assert_eq!(e.offset, 1, "{e}");
        assert!(e.reason.contains("(--max-term-memory)"), "{e}");
        // Half of it is welcome.
        let mut half = vec![131, 108];
        half.extend_from_slice(&(n / 2).to_be_bytes());
        for _ in 0..n / 2 {
            half.extend_from_slice(&[98, 0, 0, 1, 0]);
        }
        half.push(106);
        crate::etf::dispose(crate::etf::decode(&half, &Limits::default()).unwrap());
    }

    /// What users send must still decode with the defaults: a 100 MB binary, alone and
    /// compressed, and a 1,000,000-deep tuple of pairs `{I, {I, ...}}` (112 MB of slots).
    #[test]
    fn big_legitimate_terms_fit_the_default_budget() {
        let l = Limits::default();
        let mut bin = vec![131, 109];
        bin.extend_from_slice(&(100_000_000u32).to_be_bytes());
        bin.resize(6 + 100_000_000, 7);
        let t = crate::etf::decode(&bin, &l).unwrap();
        assert!(matches!(&t, eetf::Term::Binary(b) if b.bytes.len() == 100_000_000));
        drop(t);
        let mut z = vec![131, 80];
        z.extend_from_slice(&((bin.len() - 1) as u32).to_be_bytes());
        z.extend_from_slice(&zlib(&bin[1..]));
        drop(bin);
        drop(crate::etf::decode(&z, &l).unwrap());
        let mut deep = vec![131];
        for i in 0..1_000_000u32 {
            deep.extend_from_slice(&[104, 2, 98]);
            deep.extend_from_slice(&i.to_be_bytes());
        }
        deep.push(106);
        crate::etf::dispose(crate::etf::decode(&deep, &l).unwrap());
    }

    /// The control message and the payload of a frame share one budget.
    #[test]
    fn the_terms_of_a_frame_share_one_budget() {
        let l = Limits {
            max_term_memory: 100 * TERM,
            ..Limits::default()
        };
        let mut list = vec![131, 108, 0, 0, 0, 60];
        list.resize(6 + 60, 106);
        list.push(106);
        let mut b = Budget::new(&l);
        let (t, _) = crate::etf::decode_prefix_in(&list, &l, &mut b).unwrap();
        drop(t);
        // Alone, the same term fits again; after the first, it does not.
        drop(crate::etf::decode(&list, &l).unwrap());
        let e = crate::etf::decode_in(&list, &l, &mut b).unwrap_err();
        assert!(e.reason.contains("(--max-term-memory)"), "{e}");
    }

    /// A frame that needs more than the in-flight total is refused, whatever its own
    /// budget allows.
    #[test]
    fn the_in_flight_total_bounds_a_single_frame_too() {
        let l = Limits {
            max_term_memory_total: 4 * CHUNK,
            ..Limits::default()
        };
        let mut f = vec![131, 108];
        f.extend_from_slice(&(10_000u32).to_be_bytes());
        f.resize(6 + 10_000 + 1, 106);
        let e = crate::etf::decode(&f, &l).unwrap_err();
        assert!(e.reason.contains("(--max-term-memory-total)"), "{e}");
    }

    #[test]
    fn huge_counts_saturate_instead_of_wrapping() {
        let mut b = Budget::with_pool(&limits(1 << 30, 1 << 30), pool());
        assert!(b.charge_n(usize::MAX / 2, TERM, 0).is_err());
        assert!(map_bytes(usize::MAX) == usize::MAX);
        assert_eq!(map_bytes(7), 8 * (2 * TERM + 1));
    }
}
