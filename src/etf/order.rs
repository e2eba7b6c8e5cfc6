//! Erlang's exact term order, for writing the keys of small maps the way OTP does.
//!
//! Why the encoder needs it: OTP writes a map of up to 32 keys (a "flatmap") with its
//! keys in term order, and `binary_to_term` relies on that more than it admits. When
//! such a map is (inside) a key of a *large* map, OTP 25 hashes it before sorting it,
//! so a small map written in `HashMap` order becomes a key that `maps:get/2` cannot
//! find, although the two maps print and compare equal (found by our BEAM round-trip
//! test). Writing small maps sorted, as OTP does, avoids that and makes our bytes equal
//! to `term_to_binary`'s.
//!
//! The order is the *exact* one used for map keys: all integers before all floats
//! (`1 < 1.0`), then atoms, references, funs, exports, ports, pids, tuples, maps,
//! `[]`, non-empty lists and bitstrings. Within pids, ports and references the fields
//! are compared in the order OTP 25 uses, which was checked against `maps:keys/1`:
//! pids by serial, number, node, creation; ports by node, creation, number; references
//! by node, creation, then their numbers read as one big number (word 0 lowest).
//!
//! Comparison recurses on the depth of the two keys, which is bounded by
//! [`MAX_DEPTH`]: keys that come from our decoder are bounded by
//! `Limits::max_map_key_depth` anyway, and deeper keys built in Rust are an encode
//! error rather than a stack overflow.

use std::cmp::Ordering;

use eetf::{FixInteger, InternalFun, Term};
use num_bigint::BigInt;

use super::EncodeError;

/// How deep a comparison may descend (matches the default `max_map_key_depth`).
pub const MAX_DEPTH: usize = super::DEFAULT_MAP_KEY_DEPTH;

/// Compares two terms in Erlang's exact term order.
pub fn compare(a: &Term, b: &Term) -> Result<Ordering, EncodeError> {
    cmp(a, b, 0)
}

fn too_deep() -> EncodeError {
    EncodeError(format!(
        "map key nested deeper than {MAX_DEPTH} levels cannot be ordered"
    ))
}

/// `ImproperList { elements: [], last }` is just `last`.
fn norm(mut t: &Term) -> &Term {
    while let Term::ImproperList(l) = t {
        if !l.elements.is_empty() {
            break;
        }
        t = &l.last;
    }
    t
}

fn rank(t: &Term) -> u8 {
    match t {
        Term::FixInteger(_) | Term::BigInteger(_) => 0,
        Term::Float(_) => 1,
        Term::Atom(_) => 2,
        Term::Reference(_) => 3,
        Term::InternalFun(_) => 4,
        Term::ExternalFun(_) => 5,
        Term::Port(_) => 6,
        Term::Pid(_) => 7,
        Term::Tuple(_) => 8,
        Term::Map(_) => 9,
        Term::List(l) if l.elements.is_empty() => 10,
        Term::ByteList(l) if l.bytes.is_empty() => 10,
        Term::List(_) | Term::ByteList(_) | Term::ImproperList(_) => 11,
        Term::Binary(_) | Term::BitBinary(_) => 12,
    }
}

fn cmp(a: &Term, b: &Term, depth: usize) -> Result<Ordering, EncodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let (a, b) = (norm(a), norm(b));
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return Ok(ra.cmp(&rb));
    }
    Ok(match (a, b) {
        (Term::FixInteger(x), Term::FixInteger(y)) => x.value.cmp(&y.value),
        (Term::FixInteger(_) | Term::BigInteger(_), _) => int_value(a).cmp(&int_value(b)),
        (Term::Float(x), Term::Float(y)) => {
            x.value.partial_cmp(&y.value).unwrap_or(Ordering::Equal)
        }
        (Term::Atom(x), Term::Atom(y)) => x.name.as_bytes().cmp(y.name.as_bytes()),
        (Term::Reference(x), Term::Reference(y)) => x
            .node
            .name
            .as_bytes()
            .cmp(y.node.name.as_bytes())
            .then(x.creation.cmp(&y.creation))
            .then_with(|| ref_numbers(&x.id, &y.id)),
        (Term::InternalFun(x), Term::InternalFun(y)) => match (&**x, &**y) {
            (
                InternalFun::New {
                    module: m1,
                    index: i1,
                    old_uniq: u1,
                    free_vars: f1,
                    ..
                },
                InternalFun::New {
                    module: m2,
                    index: i2,
                    old_uniq: u2,
                    free_vars: f2,
                    ..
                },
            ) => {
                let o = m1
                    .name
                    .as_bytes()
                    .cmp(m2.name.as_bytes())
                    .then(i1.cmp(i2))
                    .then(u1.cmp(u2))
                    .then(f1.len().cmp(&f2.len()));
                if o != Ordering::Equal {
                    return Ok(o);
                }
                return seq(f1, f2, depth);
            }
            _ => {
                return Err(EncodeError(
                    "old-style fun (FUN_EXT) cannot be encoded".to_string(),
                ))
            }
        },
        (Term::ExternalFun(x), Term::ExternalFun(y)) => x
            .module
            .name
            .as_bytes()
            .cmp(y.module.name.as_bytes())
            .then_with(|| x.function.name.as_bytes().cmp(y.function.name.as_bytes()))
            .then(x.arity.cmp(&y.arity)),
        (Term::Port(x), Term::Port(y)) => x
            .node
            .name
            .as_bytes()
            .cmp(y.node.name.as_bytes())
            .then(x.creation.cmp(&y.creation))
            .then(x.id.cmp(&y.id)),
        (Term::Pid(x), Term::Pid(y)) => x
            .serial
            .cmp(&y.serial)
            .then(x.id.cmp(&y.id))
            .then_with(|| x.node.name.as_bytes().cmp(y.node.name.as_bytes()))
            .then(x.creation.cmp(&y.creation)),
        (Term::Tuple(x), Term::Tuple(y)) => {
            let o = x.elements.len().cmp(&y.elements.len());
            if o != Ordering::Equal {
                return Ok(o);
            }
            return seq(&x.elements, &y.elements, depth);
        }
        (Term::Map(x), Term::Map(y)) => {
            let o = x.map.len().cmp(&y.map.len());
            if o != Ordering::Equal {
                return Ok(o);
            }
            let kx = sorted_pairs(&x.map, depth + 1)?;
            let ky = sorted_pairs(&y.map, depth + 1)?;
            for ((k1, _), (k2, _)) in kx.iter().zip(&ky) {
                let o = cmp(k1, k2, depth + 1)?;
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            for ((_, v1), (_, v2)) in kx.iter().zip(&ky) {
                let o = cmp(v1, v2, depth + 1)?;
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            Ordering::Equal
        }
        (Term::Binary(_) | Term::BitBinary(_), _) => bits(a).cmp_bits(&bits(b)),
        _ => return lists(a, b, depth),
    })
}

fn int_value(t: &Term) -> BigInt {
    match t {
        Term::FixInteger(i) => BigInt::from(i.value),
        Term::BigInteger(b) => b.value.clone(),
        _ => BigInt::from(0),
    }
}

/// Reference numbers: a longer one with non-zero extra (high) words is bigger, then
/// words are compared from the highest index down.
fn ref_numbers(a: &[u32], b: &[u32]) -> Ordering {
    let n = a.len().max(b.len());
    for i in (0..n).rev() {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

fn seq(a: &[Term], b: &[Term], depth: usize) -> Result<Ordering, EncodeError> {
    for (x, y) in a.iter().zip(b) {
        let o = cmp(x, y, depth + 1)?;
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(a.len().cmp(&b.len()))
}

/// The pairs of a map in key order (what OTP writes for a map of up to 32 keys).
pub fn sorted_pairs(
    map: &std::collections::HashMap<Term, Term>,
    depth: usize,
) -> Result<Vec<(&Term, &Term)>, EncodeError> {
    let mut pairs: Vec<(&Term, &Term)> = map.iter().collect();
    let mut failure = None;
    pairs.sort_unstable_by(|(k1, _), (k2, _)| match cmp(k1, k2, depth) {
        Ok(o) => o,
        Err(e) => {
            failure.get_or_insert(e);
            Ordering::Equal
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(pairs),
    }
}

/// A bitstring as left-aligned bytes and a length in bits.
struct Bits<'a> {
    bytes: &'a [u8],
    len: usize,
    /// Shift that left-aligns the last byte (eetf keeps it right-aligned).
    last_shift: u32,
}

fn bits(t: &Term) -> Bits<'_> {
    match t {
        Term::BitBinary(b) if !b.bytes.is_empty() && (1..8).contains(&b.tail_bits_size) => Bits {
            bytes: &b.bytes,
            len: (b.bytes.len() - 1) * 8 + usize::from(b.tail_bits_size),
            last_shift: u32::from(8 - b.tail_bits_size),
        },
        Term::BitBinary(b) => Bits {
            bytes: &b.bytes,
            len: b.bytes.len() * 8,
            last_shift: 0,
        },
        Term::Binary(b) => Bits {
            bytes: &b.bytes,
            len: b.bytes.len() * 8,
            last_shift: 0,
        },
        _ => Bits {
            bytes: &[],
            len: 0,
            last_shift: 0,
        },
    }
}

impl Bits<'_> {
    fn byte(&self, i: usize) -> u8 {
        let b = self.bytes.get(i).copied().unwrap_or(0);
        if i + 1 == self.bytes.len() {
            b << self.last_shift
        } else {
            b
        }
    }

    fn cmp_bits(&self, other: &Bits<'_>) -> Ordering {
        let common = self.len.min(other.len);
        let full = common / 8;
        for i in 0..full {
            let o = self.byte(i).cmp(&other.byte(i));
            if o != Ordering::Equal {
                return o;
            }
        }
        let rest = common % 8;
        if rest > 0 {
            let mask = !(0xFFu8 >> rest);
            let o = (self.byte(full) & mask).cmp(&(other.byte(full) & mask));
            if o != Ordering::Equal {
                return o;
            }
        }
        self.len.cmp(&other.len)
    }
}

/// Walks a list as cons cells, across `List`, `ByteList` and `ImproperList` segments.
struct Cursor<'a> {
    terms: &'a [Term],
    bytes: &'a [u8],
    tail: Option<&'a Term>,
}

enum Step<'a> {
    Elem(Elem<'a>),
    /// The list ended; `None` is `[]`, otherwise an improper tail.
    End(Option<&'a Term>),
}

enum Elem<'a> {
    Term(&'a Term),
    Byte(u8),
}

impl<'a> Cursor<'a> {
    fn new(t: &'a Term) -> Self {
        let mut c = Cursor {
            terms: &[],
            bytes: &[],
            tail: Some(t),
        };
        c.enter();
        c
    }

    /// Moves into `tail` while it is a list.
    fn enter(&mut self) {
        while let Some(t) = self.tail {
            match t {
                Term::List(l) => {
                    self.terms = &l.elements;
                    self.tail = None;
                }
                Term::ByteList(l) => {
                    self.bytes = &l.bytes;
                    self.tail = None;
                }
                Term::ImproperList(l) => {
                    self.terms = &l.elements;
                    self.tail = Some(&l.last);
                    if !self.terms.is_empty() {
                        return;
                    }
                    continue;
                }
                _ => return,
            }
            return;
        }
    }

    fn next(&mut self) -> Step<'a> {
        loop {
            if let Some((first, rest)) = self.terms.split_first() {
                self.terms = rest;
                return Step::Elem(Elem::Term(first));
            }
            if let Some((&first, rest)) = self.bytes.split_first() {
                self.bytes = rest;
                return Step::Elem(Elem::Byte(first));
            }
            match self.tail {
                Some(Term::List(_) | Term::ByteList(_) | Term::ImproperList(_)) => self.enter(),
                other => return Step::End(other),
            }
        }
    }
}

fn elem_cmp(a: &Elem<'_>, b: &Elem<'_>, depth: usize) -> Result<Ordering, EncodeError> {
    let byte = |v: u8| {
        Term::FixInteger(FixInteger {
            value: i32::from(v),
        })
    };
    match (a, b) {
        (Elem::Byte(x), Elem::Byte(y)) => Ok(x.cmp(y)),
        (Elem::Term(x), Elem::Term(y)) => cmp(x, y, depth + 1),
        (Elem::Byte(x), Elem::Term(y)) => cmp(&byte(*x), y, depth + 1),
        (Elem::Term(x), Elem::Byte(y)) => cmp(x, &byte(*y), depth + 1),
    }
}

/// Lists compare cell by cell; at the end, `[]` or the improper tails compare.
fn lists(a: &Term, b: &Term, depth: usize) -> Result<Ordering, EncodeError> {
    let (mut ca, mut cb) = (Cursor::new(a), Cursor::new(b));
    let nil_rank = 10;
    let list_rank = 11;
    loop {
        match (ca.next(), cb.next()) {
            (Step::Elem(x), Step::Elem(y)) => {
                let o = elem_cmp(&x, &y, depth)?;
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            (Step::End(None), Step::End(None)) => return Ok(Ordering::Equal),
            (Step::End(None), Step::End(Some(t))) => return Ok(nil_rank.cmp(&rank(t))),
            (Step::End(Some(t)), Step::End(None)) => return Ok(rank(t).cmp(&nil_rank)),
            (Step::End(Some(x)), Step::End(Some(y))) => return cmp(x, y, depth + 1),
            (Step::Elem(_), Step::End(t)) => {
                return Ok(list_rank.cmp(&t.map_or(nil_rank, rank)));
            }
            (Step::End(t), Step::Elem(_)) => {
                return Ok(t.map_or(nil_rank, rank).cmp(&list_rank));
            }
        }
    }
}
