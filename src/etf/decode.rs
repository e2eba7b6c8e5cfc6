//! The decoder: ETF bytes to `eetf::Term`, with bounded stack use at any depth and
//! without trusting a single count in the input.
//!
//! # Shape
//!
//! Two paths share one [`Reader`] and one decoding step, so every check exists once:
//! [`Decoder::head`] reads the term at the cursor up to its children (a leaf or an empty
//! container whole; for a container with children: tag, count, depth, memory budget,
//! all checked before anything is allocated), and [`Decoder::list_tail`] reads what
//! follows a list's elements. The paths differ only in where the children go:
//!
//! * [`Decoder::rec`], plain recursion, for the first [`RECURSION_LEVELS`] levels. Most
//!   terms (a rexi message is 4 levels deep) never leave it, and it is as fast as
//!   `eetf`'s recursive decoder.
//! * [`Decoder::run`], the iterative engine, takes over any subterm that starts deeper.
//!   It is a loop around two steps:
//!   * [`Decoder::term`] reads one term at the cursor through `head`. A leaf (number, atom, pid,
//!     binary, ...) comes back whole; a container (tuple, list, map, fun) pushes a
//!     [`Frame`] on an explicit stack and comes back empty-handed.
//!   * [`Decoder::settle`] hands a finished term to the frame on top of the stack, and
//!     closes every frame that is now complete, until a frame wants another child (back
//!     to `term`) or the stack is empty (the subterm is done).
//!
//! Beyond the recursion budget, nesting costs one `Frame` (40 bytes) of heap per level
//! instead of about a kilobyte of thread stack per level, which is what made `eetf`
//! overflow a 2 MiB tokio worker at ~1,800 levels. Partly built terms are disposed of
//! iteratively on error ([`Building`], and `Drop for Decoder`).
//!
//! # Counts are promises
//!
//! Every element still to come needs at least one byte of input. `promised` counts the
//! elements that open frames still expect (not yet started), and opening a container
//! with `n` children requires `promised + n <= bytes remaining`. So the sum of all
//! pre-sized `Vec`s is bounded by the input length, even when thousands of nested lists
//! each claim "a million elements" (checking each count on its own against the remaining
//! bytes would let a 1 MB input reserve a million times a megabyte). This is what
//! replaces `eetf`'s `Vec::with_capacity(u32)`, which aborted the process on a 6-byte
//! input.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use eetf::{
    Atom, BigInteger, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList,
    InternalFun, List, Map, Pid, Port, Reference, Term, Tuple,
};
use num_bigint::{BigInt, Sign};
use num_traits::ToPrimitive;

use super::budget::{map_bytes, Budget, TERM};
use super::dispose::{dispose, dispose_vec};
use super::encode::encode_canonical;
use super::stack::Stack;
use super::tags::*;
use super::{DecodeError, Limits};

/// Decodes the term that starts with the version byte at `bytes[0]`.
pub(super) fn decode_prefix(
    bytes: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(Term, usize), DecodeError> {
    match bytes.first() {
        Some(&VERSION) => {}
        Some(&b) => return Err(err(0, format!("version byte is {b}, expected 131"))),
        None => return Err(err(0, "empty input, expected the version byte 131")),
    }
    match bytes.get(1) {
        Some(&COMPRESSED) => decode_compressed(bytes, limits, budget),
        Some(&DIST_HEADER) => Err(err(
            1,
            "distribution header (tag 68) is not supported: never advertise DIST_HDR_ATOM_CACHE",
        )),
        Some(&DIST_FRAG_HEADER) => Err(err(
            1,
            "fragmented distribution message (tag 69) is not supported: never advertise FRAGMENTS",
        )),
        _ => {
            // The root's own slot.
            budget.charge(TERM, 1)?;
            let mut d = Decoder::new(bytes, 1, limits, budget);
            let term = d.rec(0)?;
            Ok((term, d.rd.pos))
        }
    }
}

/// Decodes one term *inside* a term: the bare term (no version byte) at `bytes[pos]`,
/// `depth` containers deep, charged to `budget`; returns it and the offset after it. For
/// readers that walk a known envelope by hand (the rexi server's doit) and decode only
/// the parts they keep, with the same limits as a whole decode.
pub fn decode_at(
    bytes: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(Term, usize), DecodeError> {
    budget.charge(TERM, pos)?;
    let mut d = Decoder::new(bytes, pos, limits, budget);
    let term = d.rec(depth)?;
    Ok((term, d.rd.pos))
}

/// `131, 80, Size:32, ZlibData`. The declared size is checked against the limit before
/// anything is inflated, and inflation stops one byte past it: `eetf` ignored the size
/// and inflated a 1 MB bomb into 1 GiB.
///
/// The inflated bytes are charged to the budget before they are inflated: what limits
/// a compressed term is the memory it needs, not its compression ratio.
fn decode_compressed(
    bytes: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(Term, usize), DecodeError> {
    let size = Reader {
        buf: bytes,
        pos: 2,
        budget,
    }
    .u32("size of a compressed term")? as usize;
    if size > limits.max_decompressed {
        return Err(err(
            2,
            format!(
                "compressed term claims {size} bytes once inflated, the limit is {}",
                limits.max_decompressed
            ),
        ));
    }
    budget.charge(size.saturating_add(TERM), 2)?;
    let zlib = bytes.get(6..).unwrap_or(&[]);
    let (inflated, used) = inflate(zlib, size).map_err(|reason| err(6, reason))?;
    let mut d = Decoder::new(&inflated, 0, limits, budget);
    let term = d.rec(0).map_err(|e| {
        err(
            6,
            format!(
                "inside the compressed term, at byte {} of the inflated data: {}",
                e.offset, e.reason
            ),
        )
    })?;
    let end = d.rd.pos;
    drop(d);
    if end != inflated.len() {
        dispose(term);
        return Err(err(
            6,
            format!(
                "the inflated data holds {} bytes after the term",
                inflated.len() - end
            ),
        ));
    }
    Ok((term, 6 + used))
}

/// Inflates a zlib stream that must produce exactly `size` bytes. Returns the data and
/// the number of compressed bytes the stream occupied.
fn inflate(input: &[u8], size: usize) -> Result<(Vec<u8>, usize), String> {
    use flate2::{Decompress, FlushDecompress, Status};
    // zlib cannot expand more than ~1032:1, so this first guess never over-reserves much
    // for a lying size field; the Vec grows (up to `size + 1`) if the guess is short.
    let guess = input.len().saturating_mul(1032).saturating_add(64);
    let mut out = Vec::with_capacity(size.min(guess).saturating_add(1));
    let mut z = Decompress::new(true);
    loop {
        if out.len() == out.capacity() {
            let want = out.len().max(4096).min(size + 1 - out.len().min(size));
            out.reserve(want.max(1));
        }
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let rest = input.get(in_before as usize..).unwrap_or(&[]);
        let status = z
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| format!("bad zlib data in compressed term: {e}"))?;
        if out.len() > size {
            return Err(format!(
                "compressed term inflates to more than its declared {size} bytes"
            ));
        }
        if status == Status::StreamEnd {
            break;
        }
        if z.total_in() == in_before && z.total_out() == out_before && out.len() < out.capacity() {
            return Err("compressed term is truncated (zlib stream does not end)".to_string());
        }
    }
    if out.len() != size {
        return Err(format!(
            "compressed term inflates to {} bytes but declares {size}",
            out.len()
        ));
    }
    Ok((out, z.total_in() as usize))
}

#[cold]
fn err(offset: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        offset,
        reason: reason.into(),
    }
}

/// A cursor over the input. Every read checks the bytes that remain; nothing here can
/// panic. What a leaf allocates is charged to `budget` first.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: &'a mut Budget,
}

impl<'a> Reader<'a> {
    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.truncated(n, what)),
        }
    }

    #[cold]
    fn truncated(&self, n: usize, what: &str) -> DecodeError {
        err(
            self.pos,
            format!(
                "truncated: {what} needs {n} bytes, {} remain",
                self.remaining()
            ),
        )
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..N)) {
            Some(s) => {
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                self.pos += N;
                Ok(a)
            }
            None => Err(self.truncated(N, what)),
        }
    }

    #[inline]
    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(1, what)),
        }
    }

    #[inline]
    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_be_bytes)
    }

    #[inline]
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    #[inline]
    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// An atom in any of the four atom encodings, tag included. Used for node names,
    /// modules and functions, which the format requires to be atoms.
    fn atom(&mut self, what: &str) -> Result<Atom, DecodeError> {
        let at = self.pos;
        let tag = self.u8(what)?;
        self.atom_body(tag, at)
            .map_err(|e| err(e.offset, format!("{what}: {}", e.reason)))
    }

    /// The text of an atom whose tag (at `at`) was already read.
    ///
    /// `ATOM_EXT`/`SMALL_ATOM_EXT` are Latin-1: each byte is one code point. `eetf` read
    /// them as UTF-8 and so failed on `'hôte@ñu'` (or decoded `'Ã©'` as `'é'`); OTP 25's
    /// default `term_to_binary` uses these tags for every atom whose characters are all
    /// below 256.
    fn atom_body(&mut self, tag: u8, at: usize) -> Result<Atom, DecodeError> {
        let (len, latin1) = match tag {
            SMALL_ATOM_UTF8_EXT => (self.u8("atom length")? as usize, false),
            ATOM_UTF8_EXT => (self.u16("atom length")? as usize, false),
            SMALL_ATOM_EXT => (self.u8("atom length")? as usize, true),
            ATOM_EXT => (self.u16("atom length")? as usize, true),
            ATOM_CACHE_REF => {
                return Err(err(
                    at,
                    "atom cache reference (tag 82) is not supported: never advertise DIST_HDR_ATOM_CACHE",
                ))
            }
            other => return Err(err(at, format!("expected an atom, found tag {other}"))),
        };
        if latin1 && len > MAX_ATOM_CHARS {
            return Err(err(
                at,
                format!("atom of {len} characters, the BEAM allows 255"),
            ));
        }
        let text = self.take(len, "atom text")?;
        // Latin-1 above 127 takes two bytes in UTF-8.
        let bytes = if latin1 && !text.is_ascii() {
            2 * len
        } else {
            len
        };
        self.budget.charge(bytes, at)?;
        let name = if latin1 {
            if text.is_ascii() {
                // ASCII is valid UTF-8 as it stands.
                String::from_utf8_lossy(text).into_owned()
            } else {
                text.iter().map(|&b| char::from(b)).collect()
            }
        } else {
            let s =
                std::str::from_utf8(text).map_err(|_| err(at, "atom text is not valid UTF-8"))?;
            if len > MAX_ATOM_CHARS && s.chars().count() > MAX_ATOM_CHARS {
                return Err(err(at, "atom longer than 255 characters"));
            }
            s.to_owned()
        };
        Ok(Atom { name })
    }

    /// A pid in either encoding, tag included (inside `NEW_FUN_EXT`).
    fn pid(&mut self) -> Result<Pid, DecodeError> {
        let at = self.pos;
        match self.u8("pid")? {
            tag @ (NEW_PID_EXT | PID_EXT) => self.pid_body(tag),
            other => Err(err(at, format!("expected a pid, found tag {other}"))),
        }
    }

    fn pid_body(&mut self, tag: u8) -> Result<Pid, DecodeError> {
        let node = self.atom("node of a pid")?;
        let id = self.u32("pid id")?;
        let serial = self.u32("pid serial")?;
        let creation = if tag == PID_EXT {
            u32::from(self.u8("pid creation")?)
        } else {
            self.u32("pid creation")?
        };
        Ok(Pid {
            node,
            id,
            serial,
            creation,
        })
    }

    fn port_body(&mut self, tag: u8) -> Result<Port, DecodeError> {
        let node = self.atom("node of a port")?;
        let id = if tag == V4_PORT_EXT {
            self.u64("port id")?
        } else {
            u64::from(self.u32("port id")?)
        };
        let creation = if tag == PORT_EXT {
            u32::from(self.u8("port creation")?)
        } else {
            self.u32("port creation")?
        };
        Ok(Port { node, id, creation })
    }

    fn reference_body(&mut self, tag: u8, at: usize) -> Result<Reference, DecodeError> {
        if tag == REFERENCE_EXT {
            let node = self.atom("node of a reference")?;
            let id = self.u32("reference id")?;
            let creation = u32::from(self.u8("reference creation")?);
            return Ok(Reference {
                node,
                id: vec![id],
                creation,
            });
        }
        let len = self.u16("reference length")? as usize;
        if len > MAX_REF_NUMBERS {
            return Err(err(
                at,
                format!("reference with {len} numbers, the BEAM allows {MAX_REF_NUMBERS}"),
            ));
        }
        self.budget.charge(4 * len, at)?;
        let node = self.atom("node of a reference")?;
        let creation = if tag == NEW_REFERENCE_EXT {
            u32::from(self.u8("reference creation")?)
        } else {
            self.u32("reference creation")?
        };
        let raw = self.take(4 * len, "reference numbers")?;
        let id = raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Reference { node, id, creation })
    }

    /// `SMALL_INTEGER_EXT` or `INTEGER_EXT`, tag included (the old index and old uniq of
    /// a fun).
    fn small_int(&mut self, what: &str) -> Result<i32, DecodeError> {
        let at = self.pos;
        match self.u8(what)? {
            SMALL_INTEGER_EXT => Ok(i32::from(self.u8(what)?)),
            INTEGER_EXT => self.array(what).map(i32::from_be_bytes),
            other => Err(err(
                at,
                format!("{what}: expected an integer, found tag {other}"),
            )),
        }
    }

    /// A term without children (numbers, atoms, binaries, strings, `[]`, pids, ports,
    /// references, exports), whose tag at `at` was already read.
    fn leaf(&mut self, tag: u8, at: usize, limits: &Limits) -> Result<Term, DecodeError> {
        Ok(match tag {
            SMALL_INTEGER_EXT => fix(i32::from(self.u8("small integer")?)),
            INTEGER_EXT => fix(self.array("integer").map(i32::from_be_bytes)?),
            NEW_FLOAT_EXT => {
                let value = f64::from_bits(self.u64("float")?);
                if !value.is_finite() {
                    return Err(err(at, "float is not finite"));
                }
                Term::Float(Float { value })
            }
            FLOAT_EXT => self.old_float(at)?,
            SMALL_ATOM_UTF8_EXT | ATOM_UTF8_EXT | SMALL_ATOM_EXT | ATOM_EXT => {
                Term::Atom(self.atom_body(tag, at)?)
            }
            NIL_EXT => Term::List(List {
                elements: Vec::new(),
            }),
            STRING_EXT => {
                let n = self.u16("string length")? as usize;
                let bytes = self.take(n, "string bytes")?;
                self.budget.charge(n, at)?;
                if n == 0 {
                    Term::List(List {
                        elements: Vec::new(),
                    })
                } else {
                    Term::ByteList(ByteList {
                        bytes: bytes.to_vec(),
                    })
                }
            }
            BINARY_EXT => {
                let n = self.u32("binary length")? as usize;
                let bytes = self.take(n, "binary bytes")?;
                self.budget.charge(n, at)?;
                Term::Binary(eetf::Binary {
                    bytes: bytes.to_vec(),
                })
            }
            BIT_BINARY_EXT => self.bit_binary(at)?,
            SMALL_BIG_EXT | LARGE_BIG_EXT => self.big(tag, at, limits)?,
            NEW_PID_EXT | PID_EXT => Term::Pid(self.pid_body(tag)?),
            NEW_PORT_EXT | V4_PORT_EXT | PORT_EXT => Term::Port(self.port_body(tag)?),
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT | REFERENCE_EXT => {
                self.budget.charge(std::mem::size_of::<Reference>(), at)?;
                Term::Reference(Box::new(self.reference_body(tag, at)?))
            }
            EXPORT_EXT => {
                self.budget.charge(std::mem::size_of::<ExternalFun>(), at)?;
                let module = self.atom("module of an export")?;
                let function = self.atom("function of an export")?;
                let a = self.pos;
                if self.u8("arity of an export")? != SMALL_INTEGER_EXT {
                    return Err(err(a, "arity of an export must be a SMALL_INTEGER_EXT"));
                }
                let arity = self.u8("arity of an export")?;
                Term::ExternalFun(Box::new(ExternalFun {
                    module,
                    function,
                    arity,
                }))
            }
            other => {
                return Err(err(
                    at,
                    format!("internal error: tag {other} is not a leaf"),
                ))
            }
        })
    }

    /// `FLOAT_EXT`: 31 bytes of `"%.20e"` text, NUL padded. Parsed as `f64`; `eetf`
    /// parsed it as `f32` and turned `0.1` into `0.10000000149011612`.
    fn old_float(&mut self, at: usize) -> Result<Term, DecodeError> {
        let raw = self.take(FLOAT_EXT_LEN, "FLOAT_EXT text")?;
        let text = match raw.iter().position(|&b| b == 0) {
            Some(nul) => raw.get(..nul).unwrap_or(raw),
            None => raw,
        };
        let value = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| err(at, "FLOAT_EXT text is not a finite float"))?;
        Ok(Term::Float(Float { value }))
    }

    /// `BIT_BINARY_EXT`: `Len:32, Bits:8, Data`. The BEAM accepts `Bits` 1..=8 with data,
    /// and 0 only with no data; `eetf` shifted by `8 - Bits` unchecked and overflowed on
    /// 0 or 9. A whole last byte (8 bits) is a plain binary to the BEAM, so it decodes as
    /// `Binary`.
    fn bit_binary(&mut self, at: usize) -> Result<Term, DecodeError> {
        let n = self.u32("bitstring length")? as usize;
        let bits = self.u8("bitstring tail bits")?;
        if (bits == 0) != (n == 0) || bits > 8 {
            return Err(err(
                at,
                format!("bitstring of {n} bytes cannot end in {bits} bits"),
            ));
        }
        let data = self.take(n, "bitstring bytes")?;
        self.budget.charge(n, at)?;
        if bits == 8 || n == 0 {
            return Ok(Term::Binary(eetf::Binary {
                bytes: data.to_vec(),
            }));
        }
        let mut bytes = data.to_vec();
        if let Some(last) = bytes.last_mut() {
            // eetf keeps the tail bits right-aligned.
            *last >>= 8 - bits;
        }
        Ok(Term::BitBinary(BitBinary {
            bytes,
            tail_bits_size: bits,
        }))
    }

    /// `SMALL_BIG_EXT` / `LARGE_BIG_EXT`. The size is checked against the limit and the
    /// remaining bytes before anything is read (`eetf` zero-filled the claimed 4 GiB
    /// first). Values that fit in an `i32` become `FixInteger`, as the BEAM means the
    /// same integer whatever encoding carried it.
    fn big(&mut self, tag: u8, at: usize, limits: &Limits) -> Result<Term, DecodeError> {
        let n = if tag == SMALL_BIG_EXT {
            self.u8("bignum size")? as usize
        } else {
            self.u32("bignum size")? as usize
        };
        if n > limits.max_bignum_bytes {
            return Err(err(
                at,
                format!(
                    "bignum of {n} bytes, the limit is {}",
                    limits.max_bignum_bytes
                ),
            ));
        }
        // The BEAM treats any non-zero sign byte as negative.
        let negative = self.u8("bignum sign")? != 0;
        let digits = self.take(n, "bignum digits")?;
        self.budget.charge(n, at)?;
        if n <= 8 {
            let mut v: u64 = 0;
            for &d in digits.iter().rev() {
                v = (v << 8) | u64::from(d);
            }
            let value = if negative {
                if v <= 1 << 31 {
                    return Ok(fix(-(v as i64) as i32));
                }
                -BigInt::from(v)
            } else {
                if v <= i32::MAX as u64 {
                    return Ok(fix(v as i32));
                }
                BigInt::from(v)
            };
            return Ok(Term::BigInteger(BigInteger { value }));
        }
        let sign = if negative { Sign::Minus } else { Sign::Plus };
        let value = BigInt::from_bytes_le(sign, digits);
        Ok(match value.to_i32() {
            Some(v) => fix(v),
            None => Term::BigInteger(BigInteger { value }),
        })
    }
}

/// Tags of terms without children, read by [`Reader::leaf`].
#[inline]
fn is_leaf(tag: u8) -> bool {
    matches!(
        tag,
        SMALL_INTEGER_EXT
            | INTEGER_EXT
            | NEW_FLOAT_EXT
            | FLOAT_EXT
            | SMALL_ATOM_UTF8_EXT
            | ATOM_UTF8_EXT
            | SMALL_ATOM_EXT
            | ATOM_EXT
            | NIL_EXT
            | STRING_EXT
            | BINARY_EXT
            | BIT_BINARY_EXT
            | SMALL_BIG_EXT
            | LARGE_BIG_EXT
            | NEW_PID_EXT
            | PID_EXT
            | NEW_PORT_EXT
            | V4_PORT_EXT
            | PORT_EXT
            | NEWER_REFERENCE_EXT
            | NEW_REFERENCE_EXT
            | REFERENCE_EXT
            | EXPORT_EXT
    )
}

#[inline]
fn fix(value: i32) -> Term {
    Term::FixInteger(FixInteger { value })
}

/// A proper list whose elements are all integers in `0..=255` is a string to the BEAM,
/// however it was encoded (OTP itself sends one longer than 65,535 as `LIST_EXT`), so
/// it becomes a `ByteList`, as `STRING_EXT` does: `[97,98]` and `"ab"` are then the same
/// `Term` (and so the same map key, as in Erlang), and take one byte per element
/// instead of 56.
fn proper_list(elements: Vec<Term>, budget: &mut Budget, at: usize) -> Result<Term, DecodeError> {
    let is_byte = |t: &Term| matches!(t, Term::FixInteger(i) if (0..=255).contains(&i.value));
    if !elements.is_empty() && elements.iter().all(is_byte) {
        // Integers only: dropping `elements` needs no dispose.
        budget.charge(elements.len(), at)?;
        let bytes = elements
            .iter()
            .map(|t| match t {
                Term::FixInteger(i) => i.value as u8,
                _ => 0,
            })
            .collect();
        return Ok(Term::ByteList(ByteList { bytes }));
    }
    Ok(Term::List(List { elements }))
}

/// Whether a (map key) term holds a map anywhere. Keys are at most
/// `max_map_key_depth` deep; the walk keeps its own stack anyway.
fn contains_map(t: &Term) -> bool {
    match t {
        Term::Map(_) => return true,
        Term::Tuple(_) | Term::List(_) | Term::ImproperList(_) | Term::InternalFun(_) => {}
        _ => return false, // the common case (atoms, binaries, numbers), no allocation
    }
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        match t {
            Term::Map(_) => return true,
            Term::Tuple(x) => stack.extend(&x.elements),
            Term::List(x) => stack.extend(&x.elements),
            Term::ImproperList(x) => {
                stack.extend(&x.elements);
                stack.push(&x.last);
            }
            Term::InternalFun(f) => {
                let (InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. }) =
                    &**f;
                stack.extend(free_vars);
            }
            _ => {}
        }
    }
    false
}

/// Inserts one decoded pair, refusing duplicate keys as the BEAM does. The key is
/// shallow (bounded by `max_map_key_depth`), so dropping it normally is safe; the value
/// may be deep and is disposed of on error.
fn insert_pair(
    map: &mut HashMap<Term, Term>,
    canonical: &mut Option<std::collections::HashSet<Vec<u8>>>,
    k: Term,
    v: Term,
    key_at: usize,
    budget: &mut Budget,
) -> Result<(), DecodeError> {
    match map.entry(k) {
        Entry::Vacant(e) if contains_map(e.key()) => {
            let mut bytes = Vec::new();
            if encode_canonical(e.key(), &mut bytes).is_err() {
                dispose(v);
                return Err(err(key_at, "map key cannot be compared"));
            }
            // Charged once made: its size is that of the key, already decoded.
            if let Err(e) = budget.charge(bytes.capacity(), key_at) {
                dispose(v);
                return Err(e);
            }
            if !canonical.get_or_insert_with(Default::default).insert(bytes) {
                dispose(v);
                return Err(err(key_at, "duplicate map key"));
            }
            e.insert(v);
        }
        Entry::Occupied(_) => {
            dispose(v);
            return Err(err(key_at, "duplicate map key"));
        }
        Entry::Vacant(e) => {
            e.insert(v);
        }
    }
    Ok(())
}

/// Terms being built by the recursive path, disposed of (not dropped recursively) if
/// decoding fails half way: an element may be a deep subterm from the iterative path.
struct Building(Vec<Term>);

impl Drop for Building {
    fn drop(&mut self) {
        dispose_vec(std::mem::take(&mut self.0));
    }
}

struct BuildingMap(HashMap<Term, Term>);

impl Drop for BuildingMap {
    fn drop(&mut self) {
        let map = std::mem::take(&mut self.0);
        if !map.is_empty() {
            dispose(Term::Map(Map { map }));
        }
    }
}

/// What [`Decoder::head`] found: a whole term, or a container whose children (their
/// count already checked and their memory charged) the caller reads next.
enum Head {
    Done(Term),
    Tuple(usize),
    /// Elements, then a tail ([`Decoder::list_tail`]).
    List(usize),
    /// Pairs.
    Map(usize),
    Fun(Box<FunFrame>),
}

/// What [`Decoder::list_tail`] found after a list's elements.
enum Tail {
    /// The list is complete (the tail was `[]` or a string).
    Done(Term),
    /// The tail is a `LIST_EXT` of this many more elements, which continue the list.
    More(usize),
    /// The tail is some other term, read next.
    Other,
}

/// The depth cap while a map key that starts at `depth` is read: hashing the key into the
/// `HashMap` recurses, so it may nest at most [`Limits::max_map_key_depth`] levels.
#[inline]
fn key_cap(cap: usize, depth: usize, limits: &Limits) -> usize {
    cap.min(depth.saturating_add(limits.max_map_key_depth))
}

/// The error for a tag that cannot start a term here.
#[cold]
fn not_a_term(tag: u8, at: usize) -> DecodeError {
    match tag {
        COMPRESSED => err(
            at,
            "compressed term (tag 80) may only follow the version byte",
        ),
        ATOM_CACHE_REF => err(
            at,
            "atom cache reference (tag 82) is not supported: never advertise DIST_HDR_ATOM_CACHE",
        ),
        DIST_HEADER => err(
            at,
            "distribution header (tag 68) inside a term is not supported",
        ),
        DIST_FRAG_HEADER => err(
            at,
            "distribution fragment header (tag 69) inside a term is not supported",
        ),
        FUN_EXT => err(
            at,
            "old FUN_EXT (tag 117) is not supported (OTP 23 and later reject it too)",
        ),
        LOCAL_EXT => err(
            at,
            "LOCAL_EXT (tag 121) is node-local and never valid from another node",
        ),
        VERSION => err(at, "version byte 131 inside a term"),
        other => err(at, format!("unknown tag {other}")),
    }
}

/// How many levels the decoder reads by plain recursion (fast, like eetf) before it
/// switches to its explicit stack for the rest of a subterm. A level costs a few
/// hundred bytes of stack in release builds, a few KiB in debug builds.
const RECURSION_LEVELS: usize = 24;

/// An open container on the explicit stack. Kept small (boxing the rare big variants)
/// because a deep term holds one per level.
enum Frame {
    Tuple {
        elems: Vec<Term>,
        left: usize,
    },
    /// `LIST_EXT` elements; when `left` reaches 0 the tail comes next. A tail that is
    /// itself `NIL_EXT`, `LIST_EXT` or `STRING_EXT` is read into the same frame, which is
    /// how the BEAM reads it (`[1|[2]]` in any encoding is `[1,2]`), and keeps a chain of
    /// improper-looking tails linear instead of quadratic.
    List {
        elems: Vec<Term>,
        left: usize,
    },
    /// Waiting for the non-list tail of an improper list.
    Tail {
        elems: Vec<Term>,
    },
    Map(Box<MapFrame>),
    Fun(Box<FunFrame>),
}

struct MapFrame {
    map: HashMap<Term, Term>,
    /// Canonical encodings of the keys that contain a map. eetf hashes a `Map` in its
    /// `HashMap`'s iteration order, which differs between two equal maps, so the
    /// `HashMap` alone can miss a duplicate key such as `#{#{a=>1,b=>2} => x,
    /// #{b=>2,a=>1} => y}` (which the BEAM rejects). Found by fuzzing.
    canonical: Option<std::collections::HashSet<Vec<u8>>>,
    left: usize,
    key: Option<Term>,
    key_at: usize,
    /// The depth cap in force outside the key being read.
    saved_cap: usize,
}

struct FunFrame {
    module: Atom,
    arity: u8,
    uniq: [u8; 16],
    index: u32,
    old_index: i32,
    old_uniq: i32,
    pid: Pid,
    free_vars: Vec<Term>,
    left: usize,
    /// Where the fun must end according to its size field.
    end: usize,
    at: usize,
}

struct Decoder<'a> {
    rd: Reader<'a>,
    limits: &'a Limits,
    /// Open containers; the first 8 levels live inline (no allocation).
    stack: Stack<Frame, 8>,
    /// Children that open frames still expect and that have not started yet; each needs
    /// at least one byte of input.
    promised: usize,
    /// Containers enclosing the explicit stack's root (when the recursive path hands a
    /// deep subterm over); depths below are `base_depth + stack.len()`.
    base_depth: usize,
    /// Opening a container is refused once the depth reaches this: `limits.max_depth`,
    /// lowered while a map key is read (see [`Limits::max_map_key_depth`]).
    depth_cap: usize,
}

impl Drop for Decoder<'_> {
    /// On error the partly built term lives in the frames; take it apart without
    /// recursion (it may be a million levels deep).
    fn drop(&mut self) {
        while let Some(frame) = self.stack.pop() {
            match frame {
                Frame::Tuple { elems, .. } | Frame::List { elems, .. } | Frame::Tail { elems } => {
                    dispose_vec(elems)
                }
                Frame::Map(m) => {
                    let m = *m;
                    dispose(Term::Map(Map { map: m.map }));
                    if let Some(k) = m.key {
                        dispose(k);
                    }
                }
                Frame::Fun(f) => dispose_vec(f.free_vars),
            }
        }
    }
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], pos: usize, limits: &'a Limits, budget: &'a mut Budget) -> Self {
        Decoder {
            rd: Reader { buf, pos, budget },
            limits,
            stack: Stack::new(),
            promised: 0,
            base_depth: 0,
            depth_cap: limits.max_depth,
        }
    }

    /// The one decoding step both paths share: reads the term at the cursor, `depth`
    /// containers deep, up to its children. Leaves and empty containers come back whole;
    /// for a container with children, every check happens here, in this order, before
    /// anything is allocated: the tag, the count against the bytes that remain (see
    /// "Counts are promises"), the depth cap (lowered inside map keys), the memory budget.
    /// The caller then only allocates and reads the children, by recursion or on its
    /// explicit stack.
    #[inline(always)]
    fn head(&mut self, depth: usize) -> Result<Head, DecodeError> {
        let at = self.rd.pos;
        let tag = self.rd.u8("tag")?;
        let (head, children, bytes) = match tag {
            tag if is_leaf(tag) => return self.rd.leaf(tag, at, self.limits).map(Head::Done),
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                let n = if tag == SMALL_TUPLE_EXT {
                    self.rd.u8("tuple arity")? as usize
                } else {
                    self.rd.u32("tuple arity")? as usize
                };
                if n == 0 {
                    return Ok(Head::Done(Term::Tuple(Tuple {
                        elements: Vec::new(),
                    })));
                }
                (Head::Tuple(n), n, n.saturating_mul(TERM))
            }
            LIST_EXT => {
                let n = self.rd.u32("list length")? as usize;
                // The elements plus the tail.
                (Head::List(n), n.saturating_add(1), n.saturating_mul(TERM))
            }
            MAP_EXT => {
                let n = self.rd.u32("map size")? as usize;
                if n == 0 {
                    return Ok(Head::Done(Term::Map(Map {
                        map: HashMap::new(),
                    })));
                }
                (Head::Map(n), n.saturating_mul(2), map_bytes(n))
            }
            NEW_FUN_EXT => {
                let f = self.fun_header(at)?;
                if f.left == 0 {
                    return self.finish_fun(f).map(Head::Done);
                }
                let n = f.left;
                (Head::Fun(Box::new(f)), n, n.saturating_mul(TERM))
            }
            other => return Err(not_a_term(other, at)),
        };
        if depth >= self.depth_cap {
            return Err(self.too_deep(at, depth));
        }
        self.promise(children, at)?;
        self.rd.budget.charge(bytes, at)?;
        Ok(head)
    }

    /// What follows the elements of a `LIST_EXT`: its tail. A tail written as a list
    /// (`NIL_EXT`, `LIST_EXT`, `STRING_EXT`) continues the same list (see `Frame::List`);
    /// any other tail is a term of its own that the caller reads next.
    #[inline(always)]
    fn list_tail(&mut self, elems: &mut Vec<Term>) -> Result<Tail, DecodeError> {
        let at = self.rd.pos;
        match self.rd.buf.get(at).copied() {
            Some(NIL_EXT) => {
                self.rd.pos += 1;
                self.promised = self.promised.saturating_sub(1);
                proper_list(std::mem::take(elems), self.rd.budget, at).map(Tail::Done)
            }
            Some(LIST_EXT) => {
                self.rd.pos += 1;
                let n = self.rd.u32("list length")? as usize;
                // The tail that was promised is this list's elements and its own tail.
                self.promised = self.promised.saturating_sub(1);
                self.promise(n.saturating_add(1), at)?;
                self.rd.budget.charge_n(n, TERM, at)?;
                elems.reserve(n);
                Ok(Tail::More(n))
            }
            Some(STRING_EXT) => {
                self.rd.pos += 1;
                let n = self.rd.u16("string length")? as usize;
                let bytes = self.rd.take(n, "string bytes")?;
                self.promised = self.promised.saturating_sub(1);
                self.rd.budget.charge_n(n, TERM, at)?;
                elems.reserve(n);
                elems.extend(bytes.iter().map(|&b| fix(i32::from(b))));
                proper_list(std::mem::take(elems), self.rd.budget, at).map(Tail::Done)
            }
            Some(_) => Ok(Tail::Other),
            None => Err(self.rd.truncated(1, "list tail")),
        }
    }

    /// `[elems | last]` for a tail that is not a list (`last` alone when there are no
    /// elements, as `LIST_EXT` with no elements is just its tail).
    fn improper(&mut self, elems: Vec<Term>, last: Term) -> Result<Term, DecodeError> {
        if elems.is_empty() {
            return Ok(last);
        }
        if let Err(e) = self.rd.budget.charge(TERM, self.rd.pos) {
            dispose(last);
            dispose_vec(elems);
            return Err(e);
        }
        Ok(Term::ImproperList(ImproperList {
            elements: elems,
            last: Box::new(last),
        }))
    }

    /// Reads one term by plain recursion, `depth` being the number of containers around
    /// it. Past [`RECURSION_LEVELS`] the rest of the subterm goes to the iterative
    /// engine ([`Decoder::run`]), so the thread stack used stays bounded whatever the
    /// input. Both paths check through [`Decoder::head`] and [`Decoder::list_tail`].
    fn rec(&mut self, depth: usize) -> Result<Term, DecodeError> {
        if depth >= RECURSION_LEVELS {
            self.base_depth = depth;
            let r = self.run();
            self.base_depth = 0;
            return r;
        }
        match self.head(depth)? {
            Head::Done(t) => Ok(t),
            Head::Tuple(n) => {
                let mut elems = Building(Vec::with_capacity(n));
                for _ in 0..n {
                    self.promised = self.promised.saturating_sub(1);
                    let t = self.child(depth + 1)?;
                    elems.0.push(t);
                }
                Ok(Term::Tuple(Tuple {
                    elements: std::mem::take(&mut elems.0),
                }))
            }
            Head::List(n) => {
                let mut elems = Building(Vec::with_capacity(n));
                let mut left = n;
                loop {
                    for _ in 0..left {
                        self.promised = self.promised.saturating_sub(1);
                        let t = self.child(depth + 1)?;
                        elems.0.push(t);
                    }
                    match self.list_tail(&mut elems.0)? {
                        Tail::Done(t) => return Ok(t),
                        Tail::More(m) => left = m,
                        Tail::Other => {
                            self.promised = self.promised.saturating_sub(1);
                            let last = self.child(depth + 1)?;
                            return self.improper(std::mem::take(&mut elems.0), last);
                        }
                    }
                }
            }
            Head::Map(n) => {
                let mut map = BuildingMap(HashMap::with_capacity(n));
                let mut canonical = None;
                for _ in 0..n {
                    let key_at = self.rd.pos;
                    let saved = self.depth_cap;
                    self.depth_cap = key_cap(saved, depth + 1, self.limits);
                    self.promised = self.promised.saturating_sub(1);
                    let k = self.child(depth + 1);
                    self.depth_cap = saved;
                    let k = k?;
                    self.promised = self.promised.saturating_sub(1);
                    let v = self.child(depth + 1)?;
                    insert_pair(&mut map.0, &mut canonical, k, v, key_at, self.rd.budget)?;
                }
                Ok(Term::Map(Map {
                    map: std::mem::take(&mut map.0),
                }))
            }
            Head::Fun(mut f) => {
                let mut free = Building(Vec::with_capacity(f.left));
                for _ in 0..f.left {
                    self.promised = self.promised.saturating_sub(1);
                    let t = self.child(depth + 1)?;
                    free.0.push(t);
                }
                f.free_vars = std::mem::take(&mut free.0);
                self.finish_fun(*f)
            }
        }
    }

    /// A child term: leaves are read right here, saving a call to [`Decoder::rec`]
    /// (whose frame is large) for the most common elements.
    #[inline(always)]
    fn child(&mut self, depth: usize) -> Result<Term, DecodeError> {
        let at = self.rd.pos;
        match self.rd.buf.get(at) {
            Some(&tag) if is_leaf(tag) => {
                self.rd.pos += 1;
                self.rd.leaf(tag, at, self.limits)
            }
            _ => self.rec(depth),
        }
    }

    fn run(&mut self) -> Result<Term, DecodeError> {
        loop {
            // Fast path: leaves go straight into the open tuple or list, without the
            // round trip through `term` and `settle`.
            if let Some(Frame::Tuple { elems, left } | Frame::List { elems, left }) =
                self.stack.last_mut()
            {
                while *left > 0 {
                    let at = self.rd.pos;
                    let tag = match self.rd.buf.get(at) {
                        Some(&tag) if is_leaf(tag) => tag,
                        _ => break,
                    };
                    self.rd.pos += 1;
                    self.promised = self.promised.saturating_sub(1);
                    elems.push(self.rd.leaf(tag, at, self.limits)?);
                    *left -= 1;
                }
                if *left == 0 {
                    if let Some(root) = self.settle(None)? {
                        return Ok(root);
                    }
                    continue;
                }
            }
            if !self.stack.is_empty() {
                // One of the promised children starts now.
                self.promised = self.promised.saturating_sub(1);
            }
            let value = self.term()?;
            if let Some(root) = self.settle(value)? {
                return Ok(root);
            }
        }
    }

    /// Checks that `n` more children fit in the input, counting those already promised.
    #[inline]
    fn promise(&mut self, n: usize, at: usize) -> Result<(), DecodeError> {
        let total = self.promised.saturating_add(n);
        if total > self.rd.remaining() {
            return Err(err(
                at,
                format!(
                    "count of {n} elements cannot fit in the {} bytes that remain",
                    self.rd.remaining().saturating_sub(self.promised)
                ),
            ));
        }
        self.promised = total;
        Ok(())
    }

    #[cold]
    fn too_deep(&self, at: usize, depth: usize) -> DecodeError {
        if depth >= self.limits.max_depth {
            err(
                at,
                format!(
                    "term nested deeper than the limit of {} levels",
                    self.limits.max_depth
                ),
            )
        } else {
            err(
                at,
                format!(
                    "map key nested deeper than the limit of {} levels",
                    self.limits.max_map_key_depth
                ),
            )
        }
    }

    /// The iterative path's step: reads one term through [`Decoder::head`]. Returns it if
    /// it is complete, or `None` after pushing a frame for a container whose children
    /// follow.
    fn term(&mut self) -> Result<Option<Term>, DecodeError> {
        let depth = self.base_depth + self.stack.len();
        let frame = match self.head(depth)? {
            Head::Done(t) => return Ok(Some(t)),
            Head::Tuple(n) => Frame::Tuple {
                elems: Vec::with_capacity(n),
                left: n,
            },
            Head::List(n) => Frame::List {
                elems: Vec::with_capacity(n),
                left: n,
            },
            Head::Map(n) => Frame::Map(Box::new(MapFrame {
                map: HashMap::with_capacity(n),
                canonical: None,
                left: n,
                key: None,
                key_at: 0,
                saved_cap: self.depth_cap,
            })),
            Head::Fun(mut f) => {
                f.free_vars.reserve_exact(f.left);
                Frame::Fun(f)
            }
        };
        self.stack.push(frame);
        Ok(None)
    }

    /// Everything of a `NEW_FUN_EXT` before its free variables.
    fn fun_header(&mut self, at: usize) -> Result<FunFrame, DecodeError> {
        self.rd
            .budget
            .charge(std::mem::size_of::<InternalFun>(), at)?;
        let size = self.rd.u32("fun size")? as usize;
        let end = at.saturating_add(1).saturating_add(size);
        if end > self.rd.buf.len() {
            return Err(err(
                at,
                format!(
                    "fun claims {size} bytes, {} remain",
                    self.rd.buf.len().saturating_sub(at + 1)
                ),
            ));
        }
        let arity = self.rd.u8("fun arity")?;
        let uniq = self.rd.array::<16>("fun uniq")?;
        let index = self.rd.u32("fun index")?;
        let num_free = self.rd.u32("fun free variable count")? as usize;
        let module = self.rd.atom("module of a fun")?;
        let old_index = self.rd.small_int("fun old index")?;
        let old_uniq = self.rd.small_int("fun old uniq")?;
        let pid = self.rd.pid()?;
        if num_free > end.saturating_sub(self.rd.pos) {
            return Err(err(
                at,
                format!("fun with {num_free} free variables does not fit in its size of {size}"),
            ));
        }
        let frame = FunFrame {
            module,
            arity,
            uniq,
            index,
            old_index,
            old_uniq,
            pid,
            free_vars: Vec::new(),
            left: num_free,
            end,
            at,
        };
        Ok(frame)
    }

    fn finish_fun(&self, f: FunFrame) -> Result<Term, DecodeError> {
        if self.rd.pos != f.end {
            let used = self.rd.pos.saturating_sub(f.at + 1);
            let declared = f.end - f.at - 1;
            dispose_vec(f.free_vars);
            return Err(err(
                f.at,
                format!("fun declares a size of {declared} bytes but occupies {used}"),
            ));
        }
        Ok(Term::InternalFun(Box::new(InternalFun::New {
            module: f.module,
            arity: f.arity,
            pid: f.pid,
            free_vars: f.free_vars,
            index: f.index,
            uniq: f.uniq,
            old_index: f.old_index,
            old_uniq: f.old_uniq,
        })))
    }

    /// Hands `incoming` (a finished term, or nothing right after a frame was pushed) to
    /// the frame on top, and closes frames while they are complete. Returns the root once
    /// the stack is empty, or `None` when the top frame wants another child.
    fn settle(&mut self, mut incoming: Option<Term>) -> Result<Option<Term>, DecodeError> {
        loop {
            let depth = self.base_depth + self.stack.len();
            let Some(frame) = self.stack.last_mut() else {
                return Ok(incoming);
            };
            let done = match frame {
                Frame::Tuple { elems, left } => {
                    if let Some(v) = incoming.take() {
                        elems.push(v);
                        *left -= 1;
                    }
                    if *left > 0 {
                        return Ok(None);
                    }
                    Term::Tuple(Tuple {
                        elements: std::mem::take(elems),
                    })
                }
                Frame::List { elems, left } => {
                    if let Some(v) = incoming.take() {
                        elems.push(v);
                        *left -= 1;
                    }
                    if *left > 0 {
                        return Ok(None);
                    }
                    let mut elems = std::mem::take(elems);
                    let tail = match self.list_tail(&mut elems) {
                        Ok(tail) => tail,
                        Err(e) => {
                            dispose_vec(elems);
                            return Err(e);
                        }
                    };
                    // The list frame is still on top.
                    let Some(top) = self.stack.last_mut() else {
                        return Err(err(self.rd.pos, "internal error: list frame lost"));
                    };
                    match tail {
                        Tail::Done(t) => t,
                        Tail::More(n) => {
                            *top = Frame::List { elems, left: n };
                            continue;
                        }
                        Tail::Other => {
                            *top = Frame::Tail { elems };
                            return Ok(None);
                        }
                    }
                }
                Frame::Tail { elems } => {
                    let Some(last) = incoming.take() else {
                        return Ok(None);
                    };
                    let elems = std::mem::take(elems);
                    self.stack.pop();
                    incoming = Some(self.improper(elems, last)?);
                    continue;
                }
                Frame::Map(m) => {
                    if let Some(v) = incoming.take() {
                        match m.key.take() {
                            None => {
                                // A key is complete; its value comes next, at full depth.
                                m.key = Some(v);
                                self.depth_cap = m.saved_cap;
                                return Ok(None);
                            }
                            Some(k) => {
                                insert_pair(
                                    &mut m.map,
                                    &mut m.canonical,
                                    k,
                                    v,
                                    m.key_at,
                                    self.rd.budget,
                                )?;
                                m.left -= 1;
                            }
                        }
                    }
                    if m.left > 0 {
                        // A key comes next, one level below the map.
                        m.key_at = self.rd.pos;
                        m.saved_cap = self.depth_cap;
                        self.depth_cap = key_cap(self.depth_cap, depth, self.limits);
                        return Ok(None);
                    }
                    Term::Map(Map {
                        map: std::mem::take(&mut m.map),
                    })
                }
                Frame::Fun(f) => {
                    if let Some(v) = incoming.take() {
                        f.free_vars.push(v);
                        f.left -= 1;
                    }
                    if f.left > 0 {
                        return Ok(None);
                    }
                    incoming = match self.stack.pop() {
                        Some(Frame::Fun(f)) => Some(self.finish_fun(*f)?),
                        _ => return Err(err(self.rd.pos, "internal error: fun frame lost")),
                    };
                    continue;
                }
            };
            self.stack.pop();
            incoming = Some(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deep term costs one frame per level; keep it small.
    #[test]
    fn frame_is_small() {
        assert!(
            std::mem::size_of::<Frame>() <= 40,
            "{}",
            std::mem::size_of::<Frame>()
        );
    }
}
