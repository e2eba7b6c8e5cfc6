//! The encoder: `eetf::Term` to ETF, appended straight to the caller's `Vec<u8>`.
//!
//! Like the decoder it has two paths over one [`head`] function that writes a term's own
//! bytes: plain recursion ([`rec`]) for the first `RECURSION_LEVELS` levels, and beyond
//! them an explicit stack of child iterators ([`run`]), so any depth encodes on any
//! thread. It chooses the encodings OTP itself chooses, so our bytes match
//! `term_to_binary(T, [{minor_version, 2}])` for every term without a map of more than
//! 32 keys (large maps follow the `HashMap`'s order, which OTP does not care about).
//!
//! Maps of up to 32 keys are written with their keys in Erlang term order, as OTP does:
//! OTP 25's `binary_to_term` misplaces such a map when it is a key of a larger map and
//! arrives unsorted (see [`super::order`]).
//!
//! Two `eetf` encoder bugs corrupted data silently, and are avoided here:
//!
//! * a `List` of small integers went out as `STRING_EXT` even when an element was
//!   negative, so `[-1,2]` arrived as `[255,2]`: here only elements in `0..=255` qualify;
//! * a `ByteList` longer than 65,535 bytes had its length cut to 16 bits: here it goes
//!   out as a `LIST_EXT` of `SMALL_INTEGER_EXT`, as OTP does.

use std::collections::hash_map;

use eetf::{Atom, InternalFun, Term};
use num_traits::ToPrimitive;

use super::order::sorted_pairs;
use super::stack::Stack;
use super::tags::*;
use super::EncodeError;

enum Work<'a> {
    Seq(std::slice::Iter<'a, Term>),
    Pairs(hash_map::Iter<'a, Term, Term>),
    Sorted(std::vec::IntoIter<(&'a Term, &'a Term)>),
    One(&'a Term),
    /// The `NIL_EXT` that ends a proper list.
    Nil,
    /// Write the size of the `NEW_FUN_EXT` whose size field sits at this offset.
    FunSize(usize),
}

/// Appends the encoding of `term` (no version byte). On error `out` is left as it was.
pub(super) fn encode_body(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_into(term, out, false)
}

/// A canonical encoding: like [`encode_body`], but every map (not only small ones) is
/// written in key order and `-0.0` as `0.0`, so that two terms the BEAM considers the
/// same map key always give the same bytes. Used by the decoder to find duplicate keys
/// that contain maps (see `decode::MapFrame::canonical`).
pub(super) fn encode_canonical(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_into(term, out, true)
}

fn encode_into(term: &Term, out: &mut Vec<u8>, canonical: bool) -> Result<(), EncodeError> {
    let start = out.len();
    let r = rec(term, out, canonical, 0);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn run(root: &Term, out: &mut Vec<u8>, canonical: bool) -> Result<(), EncodeError> {
    // Ordinary terms never leave the inline part: encoding allocates nothing.
    let mut stack: Stack<Work<'_>, 8> = Stack::new();
    let mut next = Some(root);
    loop {
        let term = match next.take() {
            Some(t) => t,
            None => match stack.last_mut() {
                None => return Ok(()),
                Some(Work::Seq(it)) => match it.next() {
                    Some(t) => t,
                    None => {
                        stack.pop();
                        continue;
                    }
                },
                Some(Work::Pairs(it)) => match it.next() {
                    Some((k, v)) => {
                        stack.push(Work::One(v));
                        k
                    }
                    None => {
                        stack.pop();
                        continue;
                    }
                },
                Some(Work::Sorted(it)) => match it.next() {
                    Some((k, v)) => {
                        stack.push(Work::One(v));
                        k
                    }
                    None => {
                        stack.pop();
                        continue;
                    }
                },
                Some(Work::One(_)) => match stack.pop() {
                    Some(Work::One(t)) => t,
                    _ => continue,
                },
                Some(Work::Nil) => {
                    stack.pop();
                    out.push(NIL_EXT);
                    continue;
                }
                Some(&mut Work::FunSize(at)) => {
                    stack.pop();
                    patch_fun_size(out, at)?;
                    continue;
                }
            },
        };
        match head(term, out, canonical)? {
            Kids::None => {}
            Kids::List(elems) => {
                stack.push(Work::Nil);
                stack.push(Work::Seq(elems.iter()));
            }
            Kids::Improper(elems, last) => {
                stack.push(Work::One(last));
                stack.push(Work::Seq(elems.iter()));
            }
            Kids::Same(t) => next = Some(t),
            Kids::Tuple(elems) => {
                if !elems.is_empty() {
                    stack.push(Work::Seq(elems.iter()));
                }
            }
            Kids::Pairs(pairs) => stack.push(Work::Pairs(pairs)),
            Kids::Sorted(pairs) => stack.push(Work::Sorted(pairs.into_iter())),
            Kids::Fun(free_vars, at) => {
                stack.push(Work::FunSize(at));
                if !free_vars.is_empty() {
                    stack.push(Work::Seq(free_vars.iter()));
                }
            }
        }
    }
}

/// What follows a term's own bytes: its children, and how its encoding ends.
enum Kids<'a> {
    None,
    /// `LIST_EXT` elements, then `NIL_EXT`.
    List(&'a [Term]),
    /// `LIST_EXT` elements, then the improper tail.
    Improper(&'a [Term], &'a Term),
    /// Nothing was written: encode this term in its place (`[] ++ Last`).
    Same(&'a Term),
    Tuple(&'a [Term]),
    /// A large map, in `HashMap` order.
    Pairs(hash_map::Iter<'a, Term, Term>),
    /// A small map, in key order.
    Sorted(Vec<(&'a Term, &'a Term)>),
    /// Free variables, then the size field at this offset is filled in.
    Fun(&'a [Term], usize),
}

/// Writes `term` whole if it is a leaf, or the head of a container, and says what
/// follows. Shared by the recursive and the iterative encoders.
fn head<'a>(term: &'a Term, out: &mut Vec<u8>, canonical: bool) -> Result<Kids<'a>, EncodeError> {
    match term {
        Term::FixInteger(i) => int(i.value, out),
        Term::BigInteger(b) => big(&b.value, out)?,
        Term::Float(f) => {
            if !f.value.is_finite() {
                return Err(EncodeError(format!("float {} is not finite", f.value)));
            }
            out.push(NEW_FLOAT_EXT);
            let v = if canonical && f.value == 0.0 {
                0.0
            } else {
                f.value
            };
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        Term::Atom(a) => atom(a, out)?,
        Term::Pid(p) => {
            out.push(NEW_PID_EXT);
            atom(&p.node, out)?;
            out.extend_from_slice(&p.id.to_be_bytes());
            out.extend_from_slice(&p.serial.to_be_bytes());
            out.extend_from_slice(&p.creation.to_be_bytes());
        }
        // OTP 25 switches to V4_PORT_EXT above 28 bits, not 32.
        Term::Port(p) => match u32::try_from(p.id) {
            Ok(id) if p.id <= MAX_V3_PORT_NUMBER => {
                out.push(NEW_PORT_EXT);
                atom(&p.node, out)?;
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&p.creation.to_be_bytes());
            }
            _ => {
                out.push(V4_PORT_EXT);
                atom(&p.node, out)?;
                out.extend_from_slice(&p.id.to_be_bytes());
                out.extend_from_slice(&p.creation.to_be_bytes());
            }
        },
        Term::Reference(r) => {
            if r.id.len() > MAX_REF_NUMBERS {
                return Err(EncodeError(format!(
                    "reference with {} numbers, the BEAM allows {MAX_REF_NUMBERS}",
                    r.id.len()
                )));
            }
            out.push(NEWER_REFERENCE_EXT);
            out.extend_from_slice(&(r.id.len() as u16).to_be_bytes());
            atom(&r.node, out)?;
            out.extend_from_slice(&r.creation.to_be_bytes());
            for n in &r.id {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Term::ExternalFun(f) => {
            out.push(EXPORT_EXT);
            atom(&f.module, out)?;
            atom(&f.function, out)?;
            out.push(SMALL_INTEGER_EXT);
            out.push(f.arity);
        }
        Term::InternalFun(f) => match &**f {
            InternalFun::New {
                module,
                arity,
                pid,
                free_vars,
                index,
                uniq,
                old_index,
                old_uniq,
            } => {
                out.push(NEW_FUN_EXT);
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.push(*arity);
                out.extend_from_slice(uniq);
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&len32(free_vars.len(), "fun environment")?.to_be_bytes());
                atom(module, out)?;
                int(*old_index, out);
                int(*old_uniq, out);
                out.push(NEW_PID_EXT);
                atom(&pid.node, out)?;
                out.extend_from_slice(&pid.id.to_be_bytes());
                out.extend_from_slice(&pid.serial.to_be_bytes());
                out.extend_from_slice(&pid.creation.to_be_bytes());
                return Ok(Kids::Fun(free_vars, at));
            }
            InternalFun::Old { .. } => {
                return Err(EncodeError(
                    "old-style fun (FUN_EXT) cannot be encoded: OTP 23 and later reject it"
                        .to_string(),
                ))
            }
        },
        Term::Binary(b) => {
            out.push(BINARY_EXT);
            out.extend_from_slice(&len32(b.bytes.len(), "binary")?.to_be_bytes());
            out.extend_from_slice(&b.bytes);
        }
        Term::BitBinary(b) => bit_binary(&b.bytes, b.tail_bits_size, out)?,
        Term::ByteList(l) => bytes_as_list(&l.bytes, out)?,
        Term::List(l) => {
            let elems = &l.elements;
            if elems.is_empty() {
                out.push(NIL_EXT);
            } else if elems.len() <= u16::MAX as usize && elems.iter().all(is_byte) {
                // What OTP does with a list of bytes; negative or larger integers
                // must not qualify (eetf's `[-1,2]` bug).
                out.push(STRING_EXT);
                out.extend_from_slice(&(elems.len() as u16).to_be_bytes());
                out.extend(elems.iter().map(|t| match t {
                    Term::FixInteger(i) => i.value as u8,
                    _ => 0,
                }));
            } else {
                out.push(LIST_EXT);
                out.extend_from_slice(&len32(elems.len(), "list")?.to_be_bytes());
                return Ok(Kids::List(elems));
            }
        }
        Term::ImproperList(l) => {
            if l.elements.is_empty() {
                // `[] ++ Last` is just `Last`.
                return Ok(Kids::Same(&l.last));
            } else {
                out.push(LIST_EXT);
                out.extend_from_slice(&len32(l.elements.len(), "list")?.to_be_bytes());
                return Ok(Kids::Improper(&l.elements, &l.last));
            }
        }
        Term::Tuple(t) => {
            let n = t.elements.len();
            if n <= u8::MAX as usize {
                out.push(SMALL_TUPLE_EXT);
                out.push(n as u8);
            } else {
                out.push(LARGE_TUPLE_EXT);
                out.extend_from_slice(&len32(n, "tuple")?.to_be_bytes());
            }
            return Ok(Kids::Tuple(&t.elements));
        }
        Term::Map(m) => {
            out.push(MAP_EXT);
            out.extend_from_slice(&len32(m.map.len(), "map")?.to_be_bytes());
            if m.map.len() > MAX_FLATMAP_KEYS && !canonical {
                // OTP writes large maps in hash order and rebuilds them on reading.
                return Ok(Kids::Pairs(m.map.iter()));
            } else if !m.map.is_empty() {
                // Small maps in key order, as OTP writes them (see `order`).
                return Ok(Kids::Sorted(sorted_pairs(&m.map, 0)?));
            }
        }
    }
    Ok(Kids::None)
}

/// How many levels [`rec`] encodes by plain recursion before it hands the rest of a
/// subterm to the iterative [`run`].
const RECURSION_LEVELS: usize = 24;

/// Encodes by bounded recursion: fast for ordinary terms, and no deeper than
/// `RECURSION_LEVELS` frames whatever the term.
fn rec(term: &Term, out: &mut Vec<u8>, canonical: bool, depth: usize) -> Result<(), EncodeError> {
    if depth >= RECURSION_LEVELS {
        return run(term, out, canonical);
    }
    match head(term, out, canonical)? {
        Kids::None => {}
        Kids::List(elems) => {
            for t in elems {
                rec(t, out, canonical, depth + 1)?;
            }
            out.push(NIL_EXT);
        }
        Kids::Improper(elems, last) => {
            for t in elems {
                rec(t, out, canonical, depth + 1)?;
            }
            rec(last, out, canonical, depth + 1)?;
        }
        Kids::Same(t) => rec(t, out, canonical, depth + 1)?,
        Kids::Tuple(elems) => {
            for t in elems {
                rec(t, out, canonical, depth + 1)?;
            }
        }
        Kids::Pairs(pairs) => {
            for (k, v) in pairs {
                rec(k, out, canonical, depth + 1)?;
                rec(v, out, canonical, depth + 1)?;
            }
        }
        Kids::Sorted(pairs) => {
            for (k, v) in pairs {
                rec(k, out, canonical, depth + 1)?;
                rec(v, out, canonical, depth + 1)?;
            }
        }
        Kids::Fun(free_vars, at) => {
            for t in free_vars {
                rec(t, out, canonical, depth + 1)?;
            }
            patch_fun_size(out, at)?;
        }
    }
    Ok(())
}

fn patch_fun_size(out: &mut [u8], at: usize) -> Result<(), EncodeError> {
    let size = len32(out.len() - at, "fun")?;
    if let Some(field) = out.get_mut(at..at + 4) {
        field.copy_from_slice(&size.to_be_bytes());
    }
    Ok(())
}

#[inline]
fn is_byte(t: &Term) -> bool {
    matches!(t, Term::FixInteger(i) if (0..=255).contains(&i.value))
}

fn len32(n: usize, what: &str) -> Result<u32, EncodeError> {
    u32::try_from(n)
        .map_err(|_| EncodeError(format!("{what} of {n} elements or bytes exceeds 2^32-1")))
}

/// `SMALL_INTEGER_EXT` for 0..=255, else `INTEGER_EXT`, as OTP does.
#[inline]
fn int(v: i32, out: &mut Vec<u8>) {
    if (0..=255).contains(&v) {
        out.push(SMALL_INTEGER_EXT);
        out.push(v as u8);
    } else {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A `BigInteger` that fits an `i32` is written as one (what the BEAM would send);
/// otherwise `SMALL_BIG_EXT` up to 255 bytes of magnitude, `LARGE_BIG_EXT` beyond.
/// The magnitude is written from its 64-bit digits without an intermediate `Vec`.
fn big(v: &num_bigint::BigInt, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Some(small) = v.to_i32() {
        int(small, out);
        return Ok(());
    }
    let n = usize::try_from(v.bits().div_ceil(8))
        .map_err(|_| EncodeError("bignum too large".to_string()))?;
    if n <= u8::MAX as usize {
        out.push(SMALL_BIG_EXT);
        out.push(n as u8);
    } else {
        out.push(LARGE_BIG_EXT);
        out.extend_from_slice(&len32(n, "bignum")?.to_be_bytes());
    }
    out.push(u8::from(v.sign() == num_bigint::Sign::Minus));
    let mut left = n;
    for digit in v.iter_u64_digits() {
        let bytes = digit.to_le_bytes();
        let k = left.min(8);
        out.extend_from_slice(bytes.get(..k).unwrap_or(&bytes));
        left -= k;
    }
    Ok(())
}

/// Atoms go out as UTF-8 (`SMALL_ATOM_UTF8_EXT` when the text fits 255 bytes), which
/// every OTP since 20 reads; more than 255 characters is an error, as in the BEAM.
#[inline]
fn atom(a: &Atom, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let s = a.name.as_bytes();
    if s.len() <= u8::MAX as usize {
        out.push(SMALL_ATOM_UTF8_EXT);
        out.push(s.len() as u8);
    } else {
        if a.name.chars().count() > MAX_ATOM_CHARS {
            return Err(EncodeError(format!(
                "atom of {} characters, the BEAM allows 255",
                a.name.chars().count()
            )));
        }
        out.push(ATOM_UTF8_EXT);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(s);
    Ok(())
}

/// `STRING_EXT` holds at most 65,535 bytes; a longer byte list is a `LIST_EXT` of small
/// integers (eetf truncated the length to 16 bits instead).
fn bytes_as_list(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if bytes.is_empty() {
        out.push(NIL_EXT);
    } else if bytes.len() <= u16::MAX as usize {
        out.push(STRING_EXT);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    } else {
        out.push(LIST_EXT);
        out.extend_from_slice(&len32(bytes.len(), "byte list")?.to_be_bytes());
        out.reserve(bytes.len() * 2 + 1);
        for &b in bytes {
            out.push(SMALL_INTEGER_EXT);
            out.push(b);
        }
        out.push(NIL_EXT);
    }
    Ok(())
}

/// eetf keeps the last byte of a bitstring right-aligned; the wire wants it
/// left-aligned. `tail_bits_size` 8 (or an empty bitstring) is a plain binary.
fn bit_binary(bytes: &[u8], bits: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let last = match bytes.last() {
        None if bits == 0 || bits == 8 => {
            out.push(BINARY_EXT);
            out.extend_from_slice(&0u32.to_be_bytes());
            return Ok(());
        }
        Some(_) if bits == 8 => {
            out.push(BINARY_EXT);
            out.extend_from_slice(&len32(bytes.len(), "binary")?.to_be_bytes());
            out.extend_from_slice(bytes);
            return Ok(());
        }
        Some(&last) if (1..8).contains(&bits) && u32::from(last) < (1u32 << bits) => last,
        _ => {
            return Err(EncodeError(format!(
                "bitstring of {} bytes with tail_bits_size {bits} (and last byte {:?}) has no Erlang meaning",
                bytes.len(),
                bytes.last()
            )))
        }
    };
    out.push(BIT_BINARY_EXT);
    out.extend_from_slice(&len32(bytes.len(), "bitstring")?.to_be_bytes());
    out.push(bits);
    let (init, _) = bytes.split_at(bytes.len() - 1);
    out.extend_from_slice(init);
    out.push(last << (8 - bits));
    Ok(())
}
