//! `erlang:phash2/1,2`, bit for bit.
//!
//! rexi registers one server per caller node under the name
//! `rexi_server_<erlang:phash2(CallerNode)>`, so a peer that computes a different number
//! than the BEAM simply sends its jobs to a name nobody listens on. There is no "close
//! enough": every rule below reproduces what ERTS's `make_hash2` does, including the parts
//! that look like accidents (a top-level atom is not mixed, a trailing group of list bytes is
//! absorbed without its length, `-0.0` hashes like `0.0`). The reasoning for each rule, and
//! the traps, are in `docs/design/phash2.md`; the section numbers in the comments
//! refer to it.
//!
//! The traversal never recurses. Terms arrive from the network and may be nested as deep as
//! the sender likes (the BEAM hashes a 10,000-deep list without blinking), so all pending work
//! lives in an explicit stack on the heap, exactly like the C code.

use std::collections::hash_map;
use std::fmt;

use eetf::{BigInteger, InternalFun, Term};
use num_bigint::Sign;
use num_traits::ToPrimitive;

/// The golden ratio constant of Jenkins' lookup2, and the multiples of it that ERTS uses to
/// keep the contributions of different term types apart.
const HCONST: u32 = 0x9E37_79B9;
const HCONST_2: u32 = HCONST.wrapping_mul(2);
const HCONST_3: u32 = HCONST.wrapping_mul(3);
const HCONST_4: u32 = HCONST.wrapping_mul(4);
const HCONST_5: u32 = HCONST.wrapping_mul(5);
const HCONST_6: u32 = HCONST.wrapping_mul(6);
const HCONST_7: u32 = HCONST.wrapping_mul(7);
const HCONST_9: u32 = HCONST.wrapping_mul(9);
const HCONST_10: u32 = HCONST.wrapping_mul(10);
const HCONST_11: u32 = HCONST.wrapping_mul(11);
const HCONST_12: u32 = HCONST.wrapping_mul(12);
const HCONST_13: u32 = HCONST.wrapping_mul(13);
const HCONST_14: u32 = HCONST.wrapping_mul(14);
const HCONST_15: u32 = HCONST.wrapping_mul(15);
const HCONST_16: u32 = HCONST.wrapping_mul(16);
const HCONST_19: u32 = HCONST.wrapping_mul(19);

/// The internal tag code of `[]` that ERTS mixes in for an empty list.
const NIL_CODE: u32 = 2;

/// `phash2/1` keeps the low 27 bits of `make_hash2`.
const PHASH2_MASK: u32 = 0x07FF_FFFF;

/// The largest range `phash2/2` accepts: the full 32-bit value.
pub const MAX_RANGE: u64 = 1 << 32;

/// Why a term could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phash2Error {
    /// An old-style closure (`FUN_EXT`, tag 117). No BEAM since R8 accepts one, so there is
    /// no reference value to match, and guessing would silently route to a wrong name.
    OldInternalFun,
    /// `phash2/2` was asked for a range outside `1..=2^32` (the BEAM raises `badarg`).
    BadRange(u64),
}

impl fmt::Display for Phash2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phash2Error::OldInternalFun => write!(
                f,
                "the term contains an old-style fun (FUN_EXT), which no current BEAM accepts \
                 or hashes"
            ),
            Phash2Error::BadRange(r) => write!(
                f,
                "range {r} is out of bounds: phash2/2 needs 1 <= Range <= 4294967296 (2^32)"
            ),
        }
    }
}

impl std::error::Error for Phash2Error {}

/// `erlang:phash2(T)`: the low 27 bits of [`make_hash2`].
pub fn phash2(t: &Term) -> Result<u32, Phash2Error> {
    Ok(make_hash2(t)? & PHASH2_MASK)
}

/// `erlang:phash2(T, Range)`: [`make_hash2`] modulo `range`, for `1 <= range <= 2^32`.
///
/// The range is checked before the term is hashed, as the BIF does, so a bad range is
/// reported even for a term that could not be hashed.
pub fn phash2_range(t: &Term, range: u64) -> Result<u32, Phash2Error> {
    if range == 0 || range > MAX_RANGE {
        return Err(Phash2Error::BadRange(range));
    }
    // The remainder is below `range <= 2^32`, so it always fits a u32.
    Ok((u64::from(make_hash2(t)?) % range) as u32)
}

/// The name rexi gives the server that handles jobs from `node`:
/// `rexi_server_<erlang:phash2(Node)>`.
///
/// A node name is an atom, and a top-level atom is hashed raw (§4), so this is just the
/// masked atom hash: no traversal, no allocation besides the returned string.
pub fn server_id(node: &str) -> String {
    format!("rexi_server_{}", atom_hash(node) & PHASH2_MASK)
}

/// The hash ERTS keeps with every atom (`atom_hash` in atom.c, a hashpjw variant), over the
/// atom's name (§3).
///
/// ERTS hashes the UTF-8 text but folds a two-byte sequence for U+0080..U+00FF back into its
/// single Latin-1 byte, so that values stayed the same when atoms stopped being Latin-1.
/// Because `name` is valid UTF-8, a `C2`/`C3` lead byte is always followed by a continuation
/// byte, and the fold is exactly "feed the code point when it is below 256".
pub fn atom_hash(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut h: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let mut v = u32::from(bytes[i]);
        i += 1;
        if v & 0xFE == 0xC2 && i < bytes.len() && bytes[i] & 0xC0 == 0x80 {
            // Truncating to 8 bits is what the C code's `byte` type does; without it the
            // fold would leak the lead byte into the hash.
            v = ((v << 6) | u32::from(bytes[i] & 0x3F)) & 0xFF;
            i += 1;
        }
        h = (h << 4).wrapping_add(v);
        // hashpjw folds the top nibble `g` back in (`h ^= g >> 24; h ^= g`). Done without
        // a branch: after a few characters `g != 0` is a coin toss, and mispredictions
        // cost more than the arithmetic. Masking clears `g` exactly as `h ^= g` does.
        h = (h ^ ((h >> 24) & 0xF0)) & 0x0FFF_FFFF;
    }
    h
}

/// Jenkins' lookup2 `mix`: nine rounds that spread every input bit over all three words.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 13);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 8);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 13);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 12);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 16);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 5);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 3);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 10);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 15);
}

/// lookup2's `hash()` over a byte block, seeded with `init` (§5.3).
fn block_hash(data: &[u8], init: u32) -> u32 {
    let mut a = HCONST;
    let mut b = HCONST;
    let mut c = init;
    let mut chunks = data.chunks_exact(12);
    for k in &mut chunks {
        a = a.wrapping_add(u32::from_le_bytes([k[0], k[1], k[2], k[3]]));
        b = b.wrapping_add(u32::from_le_bytes([k[4], k[5], k[6], k[7]]));
        c = c.wrapping_add(u32::from_le_bytes([k[8], k[9], k[10], k[11]]));
        mix(&mut a, &mut b, &mut c);
    }
    // The total length, truncated to 32 bits like the C code's `Uint32` (binaries over
    // 4 GiB hash with their length mod 2^32).
    c = c.wrapping_add(data.len() as u32);
    for (j, &byte) in chunks.remainder().iter().enumerate() {
        let byte = u32::from(byte);
        match j {
            0..=3 => a = a.wrapping_add(byte << (8 * j)),
            4..=7 => b = b.wrapping_add(byte << (8 * (j - 4))),
            // The low byte of `c` already holds the length.
            _ => c = c.wrapping_add(byte << (8 * (j - 7))),
        }
    }
    mix(&mut a, &mut b, &mut c);
    c
}

/// The trailing elements of a list still to be hashed, possibly spread over several eetf
/// pieces (an `ImproperList` whose tail is another list continues the same list, §5.5).
#[derive(Clone, Copy)]
enum Segment<'a> {
    Terms(&'a [Term]),
    Bytes(&'a [u8]),
}

/// One unit of pending work on the explicit stack.
enum Work<'a> {
    /// A whole term, to be visited pre-order.
    Term(&'a Term),
    /// The rest of a tuple or of a closure's environment, visited left to right.
    Seq(&'a [Term]),
    /// The rest of a list: the elements left in the current piece, then `tail`
    /// (`None` is `[]`).
    List(Segment<'a>, Option<&'a Term>),
    /// The pairs of a map not yet started.
    MapPairs(hash_map::Iter<'a, Term, Term>),
    /// The end of one key/value pair: fold its hash into the map's XOR.
    MapPair,
    /// The end of a map: restore the enclosing state and mix the XOR of the pairs in.
    MapTail { saved_hash: u32, saved_xor: u32 },
}

/// The running state of one `make_hash2` traversal.
struct Hasher<'a> {
    hash: u32,
    xor_pairs: u32,
    stack: Vec<Work<'a>>,
}

impl<'a> Hasher<'a> {
    #[inline(always)]
    fn absorb2(&mut self, x: u32, y: u32, k: u32) {
        let mut a = k.wrapping_add(x);
        let mut b = k.wrapping_add(y);
        mix(&mut a, &mut b, &mut self.hash);
    }

    #[inline(always)]
    fn absorb1(&mut self, x: u32, k: u32) {
        self.absorb2(x, 0, k)
    }

    /// An atom is taken raw when the running hash is 0 (§4): a node name at the top level,
    /// a map key, anything after a prefix that hashed to 0.
    fn atom(&mut self, name: &str) {
        let hv = atom_hash(name);
        if self.hash == 0 {
            self.hash = hv;
        } else {
            self.absorb1(hv, HCONST_3);
        }
    }

    /// `[]`. From 0 the C shortcut gives the same value as the general rule, so only one
    /// rule is needed.
    fn nil(&mut self) {
        self.absorb1(NIL_CODE, HCONST_2);
    }

    /// Integers are hashed by value, whatever their ETF encoding (§5.1).
    fn int_i64(&mut self, x: i64) {
        if (-(1 << 27)..(1 << 27)).contains(&x) {
            if x < 0 {
                self.absorb1(x.unsigned_abs() as u32, HCONST);
            }
            self.absorb1(x as u32, HCONST);
        } else {
            let m = x.unsigned_abs();
            let k = if x < 0 { HCONST_10 } else { HCONST_11 };
            self.absorb2(m as u32, (m >> 32) as u32, k);
        }
    }

    fn int_big(&mut self, v: &BigInteger) {
        if let Some(x) = v.value.to_i64() {
            return self.int_i64(x);
        }
        let k = if v.value.sign() == Sign::Minus {
            HCONST_10
        } else {
            HCONST_11
        };
        for limb in v.value.iter_u64_digits() {
            self.absorb2(limb as u32, (limb >> 32) as u32, k);
        }
    }

    fn float(&mut self, v: f64) {
        // `-0.0 == 0.0`, so this maps both zeros to +0.0 as ERTS does.
        let v = if v == 0.0 { 0.0 } else { v };
        let bits = v.to_bits();
        self.absorb2((bits >> 32) as u32, bits as u32, HCONST_12);
    }

    /// A bitstring of whole bytes `whole` and `r` trailing bits worth `t` (§5.3).
    fn bits(&mut self, whole: &[u8], r: u32, t: u32) {
        let con = HCONST_13.wrapping_add(self.hash);
        if whole.is_empty() && r == 0 {
            self.hash = con;
            return;
        }
        self.hash = block_hash(whole, con);
        if r > 0 {
            self.absorb2(r, t, HCONST_15);
        }
    }

    /// Absorbs `t` if it is a leaf (a term with no subterms to schedule) and says whether
    /// it was. Lists and tuples hash their leaf elements through this directly, without a
    /// round trip through the stack: most elements are leaves.
    #[inline]
    fn leaf(&mut self, t: &Term) -> bool {
        match t {
            Term::Atom(a) => self.atom(&a.name),
            Term::FixInteger(i) => self.int_i64(i64::from(i.value)),
            Term::BigInteger(b) => self.int_big(b),
            Term::Float(f) => self.float(f.value),
            Term::Binary(b) => self.bits(&b.bytes, 0, 0),
            Term::BitBinary(b) => {
                // eetf keeps the trailing bits right-aligned in the last byte and uses 8
                // (and, for an empty bitstring, 0) for "the last byte is whole".
                let r = u32::from(b.tail_bits_size);
                match b.bytes.split_last() {
                    Some((&last, whole)) if (1..8).contains(&r) => {
                        self.bits(whole, r, u32::from(last) & ((1 << r) - 1))
                    }
                    _ => self.bits(&b.bytes, 0, 0),
                }
            }
            Term::List(l) if l.elements.is_empty() => self.nil(),
            Term::ByteList(l) if l.bytes.is_empty() => self.nil(),
            Term::Pid(p) => self.absorb1(p.id, HCONST_5),
            Term::Port(p) => self.absorb2(p.id as u32, (p.id >> 32) as u32, HCONST_6),
            Term::Reference(r) => {
                // A reference always has at least one ID word in ETF; an empty one from a
                // hand-built term hashes like a zero word rather than failing.
                self.absorb1(r.id.first().copied().unwrap_or(0), HCONST_7)
            }
            Term::ExternalFun(f) => {
                self.absorb2(u32::from(f.arity), atom_hash(&f.module.name), HCONST);
                self.absorb1(atom_hash(&f.function.name), HCONST_14);
            }
            _ => return false,
        }
        true
    }

    /// Visits one term: leaves are absorbed at once, containers absorb their header and push
    /// their children.
    fn visit(&mut self, t: &'a Term) -> Result<(), Phash2Error> {
        if self.leaf(t) {
            return Ok(());
        }
        match t {
            Term::Tuple(tu) => {
                self.absorb1(tu.elements.len() as u32, HCONST_9);
                self.seq(&tu.elements);
            }
            Term::List(l) => self.list(Segment::Terms(&l.elements), None),
            Term::ByteList(l) => self.list(Segment::Bytes(&l.bytes), None),
            Term::ImproperList(l) => self.list(Segment::Terms(&l.elements), Some(&l.last)),
            Term::Map(m) => {
                self.absorb1(m.map.len() as u32, HCONST_16);
                if !m.map.is_empty() {
                    self.stack.push(Work::MapTail {
                        saved_hash: self.hash,
                        saved_xor: self.xor_pairs,
                    });
                    self.hash = 0;
                    self.xor_pairs = 0;
                    self.map_pairs(m.map.iter());
                }
            }
            Term::InternalFun(f) => match &**f {
                InternalFun::New {
                    module,
                    free_vars,
                    index,
                    old_uniq,
                    ..
                } => {
                    self.absorb2(free_vars.len() as u32, atom_hash(&module.name), HCONST);
                    self.absorb2(*index, *old_uniq as u32, HCONST);
                    self.seq(free_vars);
                }
                InternalFun::Old { .. } => return Err(Phash2Error::OldInternalFun),
            },
            // Every other kind is a leaf, absorbed above.
            _ => {}
        }
        Ok(())
    }

    /// Schedules the elements of a tuple or closure environment, first element first.
    fn seq(&mut self, elems: &'a [Term]) {
        if !elems.is_empty() {
            self.stack.push(Work::Seq(elems));
        }
    }

    /// Starts the next map pair from a zero hash: key, then value, then the XOR fold.
    fn map_pairs(&mut self, mut it: hash_map::Iter<'a, Term, Term>) {
        if let Some((k, v)) = it.next() {
            self.stack.push(Work::MapPairs(it));
            self.stack.push(Work::MapPair);
            self.stack.push(Work::Term(v));
            self.stack.push(Work::Term(k));
        }
    }

    /// Hashes list elements from `seg` onwards (§5.5).
    ///
    /// Runs of bytes (integers 0..=255) are packed four to a word; a partial group is
    /// absorbed without its length. The run survives across eetf pieces of one list (an
    /// improper tail that is itself a list) but ends at any non-byte element, which is
    /// visited before the rest of the list, with a fresh run afterwards.
    fn list(&mut self, mut seg: Segment<'a>, mut tail: Option<&'a Term>) {
        let mut count = 0u32;
        let mut packed = 0u32;
        loop {
            let (byte, rest, elem) = match seg {
                Segment::Bytes([b, rest @ ..]) => (Some(*b), Segment::Bytes(rest), None),
                Segment::Terms([e, rest @ ..]) => (as_byte(e), Segment::Terms(rest), Some(e)),
                Segment::Bytes([]) | Segment::Terms([]) => {
                    // This piece is exhausted: continue into a list-shaped tail, or finish.
                    match tail {
                        None => {}
                        Some(Term::List(l)) => {
                            seg = Segment::Terms(&l.elements);
                            tail = None;
                            continue;
                        }
                        Some(Term::ByteList(l)) => {
                            seg = Segment::Bytes(&l.bytes);
                            tail = None;
                            continue;
                        }
                        Some(Term::ImproperList(l)) => {
                            seg = Segment::Terms(&l.elements);
                            tail = Some(&l.last);
                            continue;
                        }
                        Some(_) => {}
                    }
                    if count > 0 {
                        self.absorb1(packed, HCONST_4);
                    }
                    match tail {
                        Some(t) if self.leaf(t) => {}
                        // Not a list, so visiting it cannot come back here.
                        Some(t) => self.stack.push(Work::Term(t)),
                        None => self.nil(),
                    }
                    return;
                }
            };
            match (byte, elem) {
                (Some(b), _) => {
                    packed = (packed << 8).wrapping_add(u32::from(b));
                    if count == 3 {
                        self.absorb1(packed, HCONST_4);
                        count = 0;
                        packed = 0;
                    } else {
                        count += 1;
                    }
                    seg = rest;
                }
                (None, Some(e)) => {
                    if count > 0 {
                        self.absorb1(packed, HCONST_4);
                    }
                    // A non-byte element ends the run; the rest of the list starts a new
                    // one, exactly as when the BEAM pops the rest of the list later.
                    if self.leaf(e) {
                        count = 0;
                        packed = 0;
                        seg = rest;
                        continue;
                    }
                    self.stack.push(Work::List(rest, tail));
                    self.stack.push(Work::Term(e));
                    return;
                }
                // A byte segment always yields a byte.
                (None, None) => return,
            }
        }
    }

    fn run(&mut self, t: &'a Term) -> Result<u32, Phash2Error> {
        let mut item = Work::Term(t);
        loop {
            match item {
                Work::Term(t) => self.visit(t)?,
                Work::Seq(mut elems) => {
                    // Leaves in a row are absorbed here; the first container is visited
                    // after the rest of the sequence is put back on the stack.
                    while let [first, rest @ ..] = elems {
                        elems = rest;
                        if !self.leaf(first) {
                            if !rest.is_empty() {
                                self.stack.push(Work::Seq(rest));
                            }
                            self.visit(first)?;
                            break;
                        }
                    }
                }
                Work::List(seg, tail) => self.list(seg, tail),
                Work::MapPairs(it) => self.map_pairs(it),
                Work::MapPair => {
                    self.xor_pairs ^= self.hash;
                    self.hash = 0;
                }
                Work::MapTail {
                    saved_hash,
                    saved_xor,
                } => {
                    self.hash = saved_hash;
                    self.absorb1(self.xor_pairs, HCONST_19);
                    self.xor_pairs = saved_xor;
                }
            }
            item = match self.stack.pop() {
                Some(w) => w,
                None => return Ok(self.hash),
            };
        }
    }
}

/// The value of `e` if it is an integer 0..=255, in any encoding: such elements are packed
/// into words rather than hashed one by one.
fn as_byte(e: &Term) -> Option<u8> {
    match e {
        Term::FixInteger(i) => u8::try_from(i.value).ok(),
        Term::BigInteger(b) => b.value.to_u8(),
        _ => None,
    }
}

/// The full 32-bit hash ERTS computes for `t` (`make_hash2`); `phash2/1` and `phash2/2`
/// are derived from it.
///
/// The only error is an old-style fun ([`InternalFun::Old`]) anywhere in the term.
pub fn make_hash2(t: &Term) -> Result<u32, Phash2Error> {
    // Leaves need no stack, and `Vec::new` does not allocate until the first push.
    Hasher {
        hash: 0,
        xor_pairs: 0,
        stack: Vec::new(),
    }
    .run(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{
        Atom, BitBinary, ExternalFun, FixInteger, Float, ImproperList, List, Map, Pid, Tuple,
    };
    use num_bigint::BigInt;

    fn atom(s: &str) -> Term {
        Term::from(Atom::from(s))
    }
    fn int(v: i64) -> Term {
        match i32::try_from(v) {
            Ok(v) => Term::from(FixInteger::from(v)),
            Err(_) => Term::from(BigInteger::from(v)),
        }
    }
    fn big(v: BigInt) -> Term {
        Term::from(BigInteger { value: v })
    }
    fn float(v: f64) -> Term {
        Term::from(Float { value: v })
    }
    fn list(v: Vec<Term>) -> Term {
        Term::from(List::from(v))
    }
    fn tuple(v: Vec<Term>) -> Term {
        Term::from(Tuple::from(v))
    }
    fn map(v: Vec<(Term, Term)>) -> Term {
        Term::from(Map {
            map: v.into_iter().collect(),
        })
    }
    fn bytes(v: &[u8]) -> Term {
        Term::from(eetf::Binary::from(v))
    }
    fn improper(v: Vec<Term>, last: Term) -> Term {
        Term::from(ImproperList::from((v, last)))
    }
    fn ints(v: &[i64]) -> Term {
        list(v.iter().map(|&x| int(x)).collect())
    }
    fn raw(t: &Term) -> u32 {
        make_hash2(t).unwrap()
    }

    /// docs/design/phash2.md §7: (term, make_hash2, phash2), all checked against OTP 25.
    #[test]
    fn spec_quick_table() {
        let cases: Vec<(&str, Term, u32, u32)> = vec![
            ("a", atom("a"), 97, 97),
            ("''", atom(""), 0, 0),
            ("'é'", atom("é"), 233, 233),
            ("'ÿ'", atom("ÿ"), 255, 255),
            ("'Ā'", atom("\u{100}"), 3264, 3264),
            (
                "couchdb@db1",
                atom("couchdb@db1.example.com"),
                162050013,
                27832285,
            ),
            ("0", int(0), 3175731469, 88723725),
            ("1", int(1), 539485162, 2614250),
            ("-1", int(-1), 1117813597, 44071773),
            ("2^27-1", int((1 << 27) - 1), 4273352567, 112602999),
            ("2^27", int(1 << 27), 2562491755, 12354923),
            ("-2^27", int(-(1 << 27)), 874979335, 69672967),
            ("-2^27-1", int(-(1 << 27) - 1), 1418916782, 76739502),
            ("1 bsl 59", int(1 << 59), 2442888721, 26969617),
            (
                "1 bsl 64",
                big(BigInt::from(1u128 << 64)),
                2519041713,
                103122609,
            ),
            (
                "-(1 bsl 64)",
                big(-BigInt::from(1u128 << 64)),
                2563594619,
                13457787,
            ),
            ("0.0", float(0.0), 423528920, 20875736),
            ("-0.0", float(-0.0), 423528920, 20875736),
            ("1.0", float(1.0), 3029937084, 77147068),
            ("[]", list(vec![]), 3468870702, 113427502),
            ("{}", tuple(vec![]), 221703996, 87486268),
            ("<<>>", bytes(&[]), 147926629, 13708901),
            ("#{}", map(vec![]), 844985373, 39679005),
            (
                "\"abc\"",
                Term::from(eetf::ByteList::from("abc")),
                519996486,
                117343302,
            ),
            ("[0,97,98,99]", ints(&[0, 97, 98, 99]), 519996486, 117343302),
            ("[a]", list(vec![atom("a")]), 1634476877, 23864141),
            (
                "['',a]",
                list(vec![atom(""), atom("a")]),
                1634476877,
                23864141,
            ),
            (
                "[a|b]",
                improper(vec![atom("a")], atom("b")),
                2356411656,
                74710280,
            ),
            (
                "{a,b}",
                tuple(vec![atom("a"), atom("b")]),
                1980325998,
                101277806,
            ),
            ("<<1,2,3>>", bytes(&[1, 2, 3]), 4167228639, 6479071),
            (
                "<<1:3>>",
                Term::from(BitBinary::from((vec![1], 3))),
                3965351140,
                73037028,
            ),
            (
                "<<\"abcdefghijklm\">>",
                bytes(b"abcdefghijklm"),
                3501102500,
                11441572,
            ),
            (
                "#{a => 1}",
                map(vec![(atom("a"), int(1))]),
                1401795262,
                59617982,
            ),
            (
                "#{'' => foo}",
                map(vec![(atom(""), atom("foo"))]),
                432916834,
                30263650,
            ),
            (
                "#{foo => ''}",
                map(vec![(atom("foo"), atom(""))]),
                2910889944,
                92317656,
            ),
            (
                "fun lists:map/2",
                Term::from(ExternalFun::from(("lists", "map", 2))),
                840287883,
                34981515,
            ),
        ];
        for (name, t, want_raw, want) in cases {
            assert_eq!(raw(&t), want_raw, "make_hash2({name})");
            assert_eq!(phash2(&t).unwrap(), want, "phash2({name})");
            assert_eq!(
                phash2_range(&t, MAX_RANGE).unwrap(),
                want_raw,
                "phash2({name}, 2^32)"
            );
            assert_eq!(
                phash2_range(&t, 1 << 27).unwrap(),
                want,
                "phash2({name}, 2^27)"
            );
        }
    }

    /// docs/design/phash2.md §10: collisions that are part of the function.
    #[test]
    fn spec_known_collisions() {
        assert_eq!(raw(&ints(&[1, 2, 3])), raw(&ints(&[0, 1, 2, 3])));
        let five = raw(&ints(&[5]));
        for t in [ints(&[0, 5]), ints(&[0, 0, 5]), ints(&[0, 0, 0, 5])] {
            assert_eq!(raw(&t), five);
        }
        // A fifth leading zero starts a new group: no longer a collision.
        assert_ne!(raw(&ints(&[0, 0, 0, 0, 5])), five);
        assert_eq!(
            raw(&list(vec![atom(""), atom("x")])),
            raw(&list(vec![atom("x")]))
        );
        assert_eq!(raw(&float(0.0)), raw(&float(-0.0)));

        let pid = |node: &str, id, serial, creation| {
            Term::from(Pid {
                node: Atom::from(node),
                id,
                serial,
                creation,
            })
        };
        assert_eq!(raw(&pid("a@b", 7, 0, 1)), raw(&pid("c@d", 7, 9, 5)));
        assert_ne!(
            raw(&pid("a@b", 0x7FFF, 3, 1)),
            raw(&pid("a@b", 0x8000, 3, 1))
        );

        let r = |node: &str, id: Vec<u32>| {
            Term::from(eetf::Reference {
                node: Atom::from(node),
                id,
                creation: 3,
            })
        };
        assert_eq!(raw(&r("x@y", vec![1, 2, 3])), raw(&r("z@w", vec![1, 9, 9])));

        let fun = |arity, old_index, uniq| {
            Term::from(InternalFun::New {
                module: Atom::from("m"),
                arity,
                pid: eetf::Pid::from(("c@h", 1, 0)),
                free_vars: vec![atom("a")],
                index: 4,
                uniq,
                old_index,
                old_uniq: -5,
            })
        };
        assert_eq!(raw(&fun(1, 4, [0; 16])), raw(&fun(3, 99, [7; 16])));
    }

    #[test]
    fn atom_hash_folds_latin1_and_truncates() {
        assert_eq!(atom_hash(""), 0);
        assert_eq!(atom_hash("é"), 233);
        assert_eq!(atom_hash("\u{100}"), 3264);
        // A Latin-1 atom hashes like its code points, a wider one like its UTF-8 bytes.
        assert_eq!(atom_hash("ñu"), (0xF1 << 4) + u32::from(b'u'));
        assert!(atom_hash(&"\u{1F680}".repeat(255)) < 1 << 28);
        assert_eq!(server_id("a@127.0.0.1"), "rexi_server_41428801");
        assert_eq!(server_id("nonode@nohost"), "rexi_server_70306884");
    }

    #[test]
    fn lists_continue_across_eetf_pieces() {
        // [1,2 | "abc"] is one five-byte list to the BEAM, however ETF splits it.
        let split = improper(
            vec![int(1), int(2)],
            Term::from(eetf::ByteList::from("abc")),
        );
        assert_eq!(raw(&split), raw(&ints(&[1, 2, 97, 98, 99])));
        let nested = improper(
            vec![int(1)],
            improper(vec![int(2)], list(vec![int(3), atom("x")])),
        );
        assert_eq!(
            raw(&nested),
            raw(&list(vec![int(1), int(2), int(3), atom("x")]))
        );
        // An improper list ending in [] is proper.
        assert_eq!(
            raw(&improper(vec![atom("a")], list(vec![]))),
            raw(&list(vec![atom("a")]))
        );
        // A small big-integer encoding is still a byte.
        assert_eq!(
            raw(&list(vec![big(BigInt::from(5)), int(6)])),
            raw(&ints(&[5, 6]))
        );
    }

    #[test]
    fn deep_terms_do_not_recurse() {
        // eetf's Drop recurses, so build and drop the term on a big stack; the hash itself
        // runs on a 2 MiB stack, the size of a tokio worker's.
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| {
                let mut t = atom("a");
                for _ in 0..100_000 {
                    t = list(vec![tuple(vec![t])]);
                }
                let t = std::sync::Arc::new(t);
                let shared = t.clone();
                let hashed = std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(move || make_hash2(&shared))
                    .unwrap()
                    .join()
                    .expect("hashing a 200,000-deep term must not overflow the stack");
                assert!(hashed.is_ok());
                drop(t);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn range_bounds_and_old_funs() {
        let t = atom("a");
        assert_eq!(phash2_range(&t, 0), Err(Phash2Error::BadRange(0)));
        assert_eq!(
            phash2_range(&t, MAX_RANGE + 1),
            Err(Phash2Error::BadRange(MAX_RANGE + 1))
        );
        assert_eq!(phash2_range(&t, 1), Ok(0));
        let old = Term::from(InternalFun::Old {
            module: Atom::from("m"),
            pid: eetf::Pid::from(("c@h", 1, 0)),
            free_vars: vec![],
            index: 0,
            uniq: 0,
        });
        assert_eq!(
            make_hash2(&tuple(vec![int(1), old])),
            Err(Phash2Error::OldInternalFun)
        );
    }
}
