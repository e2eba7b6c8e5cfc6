//! A term still in the external format, with what it takes to decode it safely.

use super::{decode_in, Budget, DecodeError, Limits, Owned};

/// A message still in the external format, borrowed from the frame that carried it.
///
/// Whoever receives it decodes it: whole with [`Encoded::decode`], or in place when it
/// knows the shape to expect (the rexi server reads a doit's envelope as bytes and decodes
/// only the parts it keeps, instead of building a term tree only to take it apart). The
/// frame's memory budget comes along, so a frame's terms are charged to one budget.
pub struct Encoded<'a> {
    bytes: &'a [u8],
    /// Where the term starts in its frame (after the control message), for errors.
    offset: usize,
    limits: &'a Limits,
    budget: Budget,
}

impl std::fmt::Debug for Encoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.bytes.len())
    }
}

impl<'a> Encoded<'a> {
    /// `bytes` (version byte first), found `offset` bytes into its frame, to be decoded
    /// within `limits`, charged to `budget`.
    pub fn new(bytes: &'a [u8], offset: usize, limits: &'a Limits, budget: Budget) -> Self {
        Encoded {
            bytes,
            offset,
            limits,
            budget,
        }
    }

    /// The term's bytes, version byte first.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn limits(&self) -> &'a Limits {
        self.limits
    }

    /// Where the term starts in its frame.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The whole term.
    pub fn decode(mut self) -> Result<Owned, DecodeError> {
        decode_in(self.bytes, self.limits, &mut self.budget).map(Owned::new)
    }
}
