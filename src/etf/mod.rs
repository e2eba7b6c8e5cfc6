//! The External Term Format codec used everywhere the project touches terms.
//!
//! Terms are `eetf::Term` (eetf 0.11, the type `erl_dist` 0.8 speaks), but the bytes are
//! read and written by our own code, because `eetf`'s codec cannot face a network peer
//! (see `docs/design/crates.md` §2.2). In short, this module:
//!
//! * **never recurses on the depth of a term**: decoding, encoding and [`dispose`] read
//!   the first levels by plain (bounded) recursion, which is fast, and keep explicit
//!   heap stacks beyond, so a valid `{5000,{4999,...}}` (which killed the whole daemon
//!   through `eetf`'s recursive decoder) or a million-deep list is just data, even on
//!   tokio's default 2 MiB worker stack (the daemon gives its workers 16 MiB, for the
//!   map keys below);
//! * **checks every count and length against the bytes that remain before allocating**,
//!   and bounds what no byte count can bound (nesting, bignum size, inflated size) with
//!   [`Limits`];
//! * **returns an error naming the byte offset** for any malformed input: no panic
//!   (`eetf` hit `unimplemented!()` on tags 68/82), no abort (`Vec::with_capacity` of a
//!   peer-chosen `u32`), no unbounded work (4 GiB zero-fill for an 8-byte bignum header,
//!   1 GiB inflated from a 1 MB zlib bomb);
//! * **decodes every tag the BEAM emits to the term the BEAM means** (old `FLOAT_EXT` as
//!   `f64`, Latin-1 atoms as Latin-1, old pid/port/reference forms, improper-list tails
//!   written as lists, ...), and **encodes as OTP does**, so that `binary_to_term` on
//!   our bytes gives back an `=:=` term.
//!
//! # Caution with `eetf::Term` itself
//!
//! `Term`'s derived `Drop`, `Clone`, `PartialEq`, `Hash`, `Debug` and `Display` all
//! recurse. Code that may hold a deep term must drop it with [`dispose`] (or hold it in
//! an [`Owned`]), and must not clone, compare, hash or format it whole.
//!
//! `eetf::Map` is a `HashMap<Term, Term>`, so inserting a key hashes it recursively. The
//! decoder therefore bounds the nesting *inside map keys* with
//! [`Limits::max_map_key_depth`] (default [`DEFAULT_MAP_KEY_DEPTH`], 4096) and rejects
//! deeper keys with a clear error. That is cheaper and more predictable than hashing on a big-stack thread, and
//! real keys (binaries, atoms, small tuples) are nowhere near it. Values are unaffected:
//! a map *value* may be as deep as [`Limits::max_depth`].
//!
//! Equal maps may hash differently in eetf (its `Hash for Map` follows the `HashMap`'s
//! iteration order), so a `HashMap` alone misses duplicate keys that contain maps; the
//! decoder compares such keys by a canonical encoding instead and refuses duplicates as
//! the BEAM does. Looking such a key up in a decoded `eetf::Map` may still miss: avoid
//! map-valued keys in code that looks keys up.
//!
//! # Normal forms
//!
//! The decoder returns one `Term` shape per Erlang term where eetf has several, so that
//! eetf's `==` agrees with Erlang's `=:=` (and map keys behave): a proper list of
//! integers 0..=255 is a `ByteList` (however encoded), `[]` is an empty `List`, an
//! integer that fits an `i32` is a `FixInteger`, a whole-byte bitstring is a `Binary`,
//! and list tails written as lists are flattened. (One exception: references with
//! trailing zero words, `[X]` and `[X,0,0]`, are equal in Erlang but not in eetf.)

mod budget;
mod decode;
mod dispose;
mod encode;
mod encoded;
pub mod in_place;
pub mod order;
mod owned;
mod stack;
pub mod tags;

use eetf::Term;

pub use budget::{in_flight, Budget};
pub use decode::decode_at;
pub use dispose::dispose;
pub use encoded::Encoded;
pub use owned::{summary, summary_list, Owned, SummaryLimits};

/// Limits applied while decoding bytes that came from the network. The daemon's
/// configuration may override any of them; the defaults suit a node that takes frames
/// of up to a few hundred MiB.
///
/// Counts and lengths need no limit of their own: each is checked against the bytes
/// that remain. What the input makes us allocate (up to 56 bytes of `Term` per input
/// byte, more after inflating) is bounded by the memory budgets, see [`Budget`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest nesting of lists, tuples, maps, improper tails and fun environments.
    /// Our code handles any depth; this protects the heap and whoever walks the term.
    pub max_depth: usize,
    /// Largest bignum, in bytes of magnitude (64 KiB = a 524,288-bit integer).
    pub max_bignum_bytes: usize,
    /// Largest size a compressed term (tag 80) may claim once inflated.
    pub max_decompressed: usize,
    /// Deepest nesting inside a map *key*: inserting a key into `eetf::Map`'s `HashMap`
    /// hashes it recursively, so deep keys must be refused before they are hashed. The
    /// default ([`DEFAULT_MAP_KEY_DEPTH`]) sets how big a decoding thread's stack must be.
    pub max_map_key_depth: usize,
    /// Most memory the terms of one frame (control message and payload together, plus
    /// inflated compressed data) may take, in bytes, estimated from the real sizes of
    /// `eetf`'s types and charged before anything is allocated (see [`Budget`]). A
    /// binary counts its bytes, a tuple or list 56 bytes per element.
    ///
    /// The default, 256 MiB, takes what users send: a frame of `--max-frame` (128 MiB)
    /// holding one binary, a 100 MB binary inside a compressed term (inflated data plus
    /// the binary), a 1,000,000-deep tuple of pairs (112 MB), 4 million list elements;
    /// and it holds a 32 KB zlib bomb of 33.5 million `[]` (1.9 GB) to an eighth.
    pub max_term_memory: usize,
    /// Most memory all the frames being decoded at the same moment (every connection of
    /// the process) may take together, in bytes; the default, 512 MiB, is two frames at
    /// [`Limits::max_term_memory`]. Frames that would go over it are refused like a
    /// frame over its own budget, so peers cannot add their budgets up.
    pub max_term_memory_total: usize,
}

/// The default bound on nesting inside map keys. Keys are hashed (eetf's `Hash`) and, for
/// small maps being encoded, compared (Erlang term order) by recursion, so this bound is
/// what a thread's stack must hold: about 1.5 MiB in a release build (the daemon's
/// worker threads have 16 MiB). It is high enough for every map the BEAM vectors and
/// our random differential tests produce (their keys nest up to ~2,000 levels).
pub const DEFAULT_MAP_KEY_DEPTH: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4 << 20,
            max_bignum_bytes: 1 << 16,
            max_decompressed: 256 << 20,
            max_map_key_depth: DEFAULT_MAP_KEY_DEPTH,
            max_term_memory: 256 << 20,
            max_term_memory_total: 512 << 20,
        }
    }
}

/// What went wrong, and at which byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad term at byte {}: {}", self.offset, self.reason)
    }
}
impl std::error::Error for DecodeError {}

/// A term that cannot be encoded (for example an atom longer than 255 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot encode term: {}", self.0)
    }
}
impl std::error::Error for EncodeError {}

/// Decodes one term that starts with the version byte 131 at `bytes[0]`, returning the
/// term and the number of bytes it used (a distribution frame holds two terms back to
/// back). A compressed term (`131, 80, ...`) is inflated within
/// [`Limits::max_decompressed`] and the bytes used are those of the compressed form.
///
/// The term gets a [`Budget`] of its own; to charge several terms (the two of a frame) to
/// one budget, use [`decode_prefix_in`].
pub fn decode_prefix(bytes: &[u8], limits: &Limits) -> Result<(Term, usize), DecodeError> {
    decode::decode_prefix(bytes, limits, &mut Budget::new(limits))
}

/// [`decode_prefix`], charging what the term allocates to `budget`.
pub fn decode_prefix_in(
    bytes: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(Term, usize), DecodeError> {
    decode::decode_prefix(bytes, limits, budget)
}

/// Decodes exactly one term that fills `bytes` (version byte included).
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Term, DecodeError> {
    decode_in(bytes, limits, &mut Budget::new(limits))
}

/// [`decode`], charging what the term allocates to `budget`.
pub fn decode_in(bytes: &[u8], limits: &Limits, budget: &mut Budget) -> Result<Term, DecodeError> {
    let (t, used) = decode_prefix_in(bytes, limits, budget)?;
    if used != bytes.len() {
        dispose(t);
        return Err(DecodeError {
            offset: used,
            reason: format!("{} trailing bytes after the term", bytes.len() - used),
        });
    }
    Ok(t)
}

/// Appends the version byte 131 and the encoding of `term` to `out`. On error `out` is
/// left as it was.
pub fn encode(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(tags::VERSION);
    encode::encode_body(term, out).inspect_err(|_| {
        out.pop();
    })
}

/// Appends the encoding of `term` without the version byte (for callers that splice
/// terms into a larger structure). On error `out` is left as it was.
pub fn encode_body(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode::encode_body(term, out)
}
