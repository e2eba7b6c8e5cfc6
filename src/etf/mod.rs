//! The External Term Format codec used everywhere the project touches terms.
//!
//! TEMPORARY: this skeleton delegates to `eetf` so that other layers can be written
//! against the final API; the guarded, iterative codec replaces it (issue 2).

use eetf::Term;

/// Limits applied while decoding bytes that came from the network.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Deepest nesting of lists, tuples, maps, improper tails and fun environments.
    pub max_depth: usize,
    /// Largest bignum, in bytes of magnitude.
    pub max_bignum_bytes: usize,
    /// Largest size a compressed term may claim once inflated.
    pub max_decompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4 << 20,
            max_bignum_bytes: 1 << 16,
            max_decompressed: 256 << 20,
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
/// term and the number of bytes it used (a distribution frame holds two terms back to back).
pub fn decode_prefix(bytes: &[u8], _limits: &Limits) -> Result<(Term, usize), DecodeError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let t = Term::decode(&mut cursor).map_err(|e| DecodeError {
        offset: 0,
        reason: e.to_string(),
    })?;
    Ok((t, cursor.position() as usize))
}

/// Decodes exactly one term that fills `bytes` (version byte included).
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Term, DecodeError> {
    let (t, used) = decode_prefix(bytes, limits)?;
    if used != bytes.len() {
        return Err(DecodeError {
            offset: used,
            reason: format!("{} trailing bytes after the term", bytes.len() - used),
        });
    }
    Ok(t)
}

/// Appends the version byte 131 and the encoding of `term` to `out`.
pub fn encode(term: &Term, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    term.encode(out).map_err(|e| EncodeError(e.to_string()))
}

/// Drops a term without recursion (a 1,000,000-deep list would overflow the stack if
/// dropped the ordinary way).
pub fn dispose(term: Term) {
    drop(term)
}
