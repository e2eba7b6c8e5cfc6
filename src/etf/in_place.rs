//! The few encodings a hot path reads straight from a frame, without the decoder: a pid
//! as every OTP since 23 writes it. Anything else is `None`, and the caller hands it to
//! the guarded decoder, which reads (and judges) every encoding.

use super::tags;

/// A `SMALL_ATOM_UTF8_EXT` at `at`: its text (checked as UTF-8; at most 255 bytes, so
/// never more characters than the decoder allows) and where it ends.
pub fn small_utf8_atom_at(bytes: &[u8], at: usize) -> Option<(&str, usize)> {
    (*bytes.get(at)? == tags::SMALL_ATOM_UTF8_EXT).then_some(())?;
    let end = at + 2 + *bytes.get(at + 1)? as usize;
    Some((std::str::from_utf8(bytes.get(at + 2..end)?).ok()?, end))
}

/// A `NEW_PID_EXT` read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidAt<'a> {
    pub node: &'a str,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
    /// Where the pid ends.
    pub end: usize,
}

/// A `NEW_PID_EXT` at `at` whose node name is a [`small_utf8_atom_at`].
pub fn new_pid_at(bytes: &[u8], at: usize) -> Option<PidAt<'_>> {
    (*bytes.get(at)? == tags::NEW_PID_EXT).then_some(())?;
    let (node, words) = small_utf8_atom_at(bytes, at + 1)?;
    let w = bytes.get(words..words + 12)?;
    let word = |i: usize| u32::from_be_bytes([w[i], w[i + 1], w[i + 2], w[i + 3]]);
    Some(PidAt {
        node,
        id: word(0),
        serial: word(4),
        creation: word(8),
        end: words + 12,
    })
}
