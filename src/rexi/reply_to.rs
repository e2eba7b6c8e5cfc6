//! Who a job answers: the caller's pid and the request's Ref, kept as the bytes the
//! caller's node sent them in.
//!
//! Every message a job sends goes to one pid, and every one but a ping starts with one Ref:
//! `{Ref, Reply}`, `{Ref, {rexi_EXIT, Reason}}`, `{Ref, From, Msg}`, `{Ref, Worker, Row}`.
//! Decoded into `eetf` terms, the pair costs three allocations (two node names and the Ref's
//! words) when the doit arrives, and a clone of the Ref for every reply; and a held job keeps
//! all of it. Kept as the peer's own encoding, it is one small allocation, and a reply is
//! written by copying bytes around the encoded message (see [`ReplyTo::send_tagged`]).
//! The Ref's node name is nearly always the pid's (a caller makes its Refs on its own
//! node); then it is kept once, which makes a held job some 30 bytes smaller.
//!
//! Only the encodings every OTP since 23 sends are read in place (`NEW_PID_EXT` and
//! `NEWER_REFERENCE_EXT`, node names as `SMALL_ATOM_UTF8_EXT`); a pid or Ref in any other
//! encoding is decoded by the guarded decoder and written back in these (what our encoder
//! writes), so the bytes here always have this one shape.

use crate::etf::{self, in_place, tags, Budget, Owned};
use crate::net::connection::SendError;
use crate::net::{message, Node};
use crate::process::refkey::RefKey;
use eetf::{Atom, Pid, Reference, Term};

/// The largest Ref the BEAM makes has 5 words (OTP's own limit, which the decoder applies).
const MAX_REF_WORDS: usize = 5;

/// The caller's pid followed by the Ref, each with its tag and without a version byte; the
/// Ref without its node name when that is the pid's (see `shared_node`).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplyTo {
    bytes: Box<[u8]>,
    /// Where the Ref starts: the pid is everything before.
    split: u16,
    /// The Ref's node name (its atom, byte for byte) is the pid's, and is left out of the
    /// Ref's bytes: they are its tag and length, then its creation and words.
    shared_node: bool,
}

impl std::fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyTo")
            .field("pid", &self.pid())
            .field("reference", &self.reference())
            .finish()
    }
}

/// Where the text of the node atom at `at` starts and ends (`SMALL_ATOM_UTF8_EXT`, or
/// `ATOM_UTF8_EXT` as our encoder writes names over 255 bytes), not yet checked as UTF-8.
fn atom_text(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let (start, len) = match *bytes.get(at)? {
        tags::SMALL_ATOM_UTF8_EXT => (at + 2, *bytes.get(at + 1)? as usize),
        tags::ATOM_UTF8_EXT => (
            at + 3,
            u16::from_be_bytes([*bytes.get(at + 1)?, *bytes.get(at + 2)?]) as usize,
        ),
        _ => return None,
    };
    bytes.get(start..start + len)?;
    Some((start, start + len))
}

/// A node name at `at`: the text and where it ends.
fn node_at(bytes: &[u8], at: usize) -> Option<(&str, usize)> {
    let (start, end) = atom_text(bytes, at)?;
    Some((std::str::from_utf8(&bytes[start..end]).ok()?, end))
}

/// The text of the node atom at `at`, as bytes (not checked again: it was when read).
fn atom_bytes(bytes: &[u8], at: usize) -> &[u8] {
    atom_text(bytes, at).map_or(&[], |(start, end)| &bytes[start..end])
}

/// Where the node atom at `at` ends (its text is not checked again: it was when read).
fn atom_end(bytes: &[u8], at: usize) -> Option<usize> {
    atom_text(bytes, at).map(|(_, end)| end)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The length of a `NEW_PID_EXT` at `at`, if one (with a short UTF-8 node name) is there.
fn pid_len(bytes: &[u8], at: usize) -> Option<usize> {
    in_place::new_pid_at(bytes, at).map(|p| p.end - at)
}

/// The length of a `NEWER_REFERENCE_EXT` at `at`, if one (with a short UTF-8 node name and
/// at most [`MAX_REF_WORDS`] words) is there. `checked`: a node atom already read (the
/// pid's), whose text needs no UTF-8 check again when the Ref's is the same.
fn ref_len(bytes: &[u8], at: usize, checked: &[u8]) -> Option<usize> {
    (*bytes.get(at)? == tags::NEWER_REFERENCE_EXT).then_some(())?;
    let words = u16::from_be_bytes([*bytes.get(at + 1)?, *bytes.get(at + 2)?]) as usize;
    (words <= MAX_REF_WORDS).then_some(())?;
    let node_end = match bytes.get(at + 3..at + 3 + checked.len()) {
        Some(same) if same == checked => at + 3 + checked.len(),
        _ => in_place::small_utf8_atom_at(bytes, at + 3)?.1,
    };
    let end = node_end + 4 + 4 * words;
    bytes.get(..end)?;
    Some(end - at)
}

/// Where the node atom of the `NEWER_REFERENCE_EXT` in `r` ends.
const REF_NODE_AT: usize = 3;

impl ReplyTo {
    /// Keeps an encoded pid and Ref (both in the shapes [`pid_len`] and [`ref_len`] read),
    /// the Ref's node left out when it is the pid's.
    fn pack(pid: &[u8], reference: &[u8]) -> Option<ReplyTo> {
        let split = u16::try_from(pid.len()).ok()?;
        let pid_node = pid.get(1..atom_end(pid, 1)?)?;
        let ref_node_end = atom_end(reference, REF_NODE_AT)?;
        let shared_node = reference.get(REF_NODE_AT..ref_node_end)? == pid_node;
        // The exact size: a box shrunk from a larger Vec would leave the difference as a
        // hole beside it.
        let node_len = if shared_node {
            ref_node_end - REF_NODE_AT
        } else {
            0
        };
        let mut bytes = Vec::with_capacity(pid.len() + reference.len() - node_len);
        bytes.extend_from_slice(pid);
        if shared_node {
            bytes.extend_from_slice(reference.get(..REF_NODE_AT)?);
            bytes.extend_from_slice(reference.get(ref_node_end..)?);
        } else {
            bytes.extend_from_slice(reference);
        }
        Some(ReplyTo {
            bytes: bytes.into_boxed_slice(),
            split,
            shared_node,
        })
    }

    /// From decoded terms (a doit that took the ordinary path, an erpc spawn). `None` only
    /// for what the decoder never yields (a node name over 255 characters, a Ref of more
    /// than 5 words).
    pub fn new(pid: &Pid, reference: &Reference) -> Option<ReplyTo> {
        let mut p = Vec::new();
        etf::encode_body(&Term::Pid(pid.clone()), &mut p).ok()?;
        let mut r = Vec::new();
        etf::encode_body(&Term::Reference(Box::new(reference.clone())), &mut r).ok()?;
        ReplyTo::pack(&p, &r)
    }

    /// Reads a pid then a Ref at `at` in `bytes`, as they stand: `None` when either is in
    /// another encoding (the caller then decodes them) or the budget is spent. The bytes
    /// are charged to `budget`. The end of the Ref comes with it.
    pub fn read(bytes: &[u8], at: usize, budget: &mut Budget) -> Option<(ReplyTo, usize)> {
        let pid = pid_len(bytes, at)?;
        // The pid's node atom (tag, length, text): checked by pid_len.
        let pid_node = bytes.get(at + 1..at + pid - 12)?;
        let reference = ref_len(bytes, at + pid, pid_node)?;
        let end = at + pid + reference;
        budget.charge(end - at, at).ok()?;
        let to = ReplyTo::pack(bytes.get(at..at + pid)?, bytes.get(at + pid..end)?)?;
        Some((to, end))
    }

    fn pid_bytes(&self) -> &[u8] {
        &self.bytes[..self.split as usize]
    }

    /// The Ref as kept (without its node name if [`Self::shared_node`]).
    fn kept_ref(&self) -> &[u8] {
        &self.bytes[self.split as usize..]
    }

    /// The pid's node atom, its tag included.
    fn pid_node_atom(&self) -> &[u8] {
        let b = self.pid_bytes();
        atom_end(b, 1).and_then(|e| b.get(1..e)).unwrap_or(&[])
    }

    /// Writes the whole Ref, its node name put back if it was left out.
    fn write_ref(&self, out: &mut Vec<u8>) {
        let r = self.kept_ref();
        if self.shared_node && r.len() >= REF_NODE_AT {
            out.extend_from_slice(&r[..REF_NODE_AT]);
            out.extend_from_slice(self.pid_node_atom());
            out.extend_from_slice(&r[REF_NODE_AT..]);
        } else {
            out.extend_from_slice(r);
        }
    }

    /// The caller's node.
    pub fn node(&self) -> &str {
        node_at(self.pid_bytes(), 1).map_or("", |(n, _)| n)
    }

    /// The caller's node name as bytes: for comparing and hashing, which need no UTF-8
    /// check (the name was checked when the pid was read; [`Self::node`] checks again).
    pub fn node_bytes(&self) -> &[u8] {
        atom_bytes(self.pid_bytes(), 1)
    }

    /// The caller's pid, decoded.
    pub fn pid(&self) -> Pid {
        let b = self.pid_bytes();
        let (node, end) = node_at(b, 1).unwrap_or(("", 1));
        Pid {
            node: Atom::from(node),
            id: u32_at(b, end).unwrap_or(0),
            serial: u32_at(b, end + 4).unwrap_or(0),
            creation: u32_at(b, end + 8).unwrap_or(0),
        }
    }

    /// The Ref's node name (as bytes), creation and words.
    fn ref_parts(&self) -> (&[u8], u32, impl Iterator<Item = u32> + '_) {
        let b = self.kept_ref();
        let (node, end) = if self.shared_node {
            (self.node_bytes(), REF_NODE_AT)
        } else {
            atom_text(b, REF_NODE_AT).map_or((&[][..], b.len()), |(s, e)| (&b[s..e], e))
        };
        let creation = u32_at(b, end).unwrap_or(0);
        let words = b
            .get(end + 4..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        (node, creation, words)
    }

    /// The Ref, decoded.
    pub fn reference(&self) -> Reference {
        let (node, creation, words) = self.ref_parts();
        Reference {
            node: Atom::from(std::str::from_utf8(node).unwrap_or("")),
            id: words.collect(),
            creation,
        }
    }

    /// The Ref's key in the job table: the same as [`RefKey::of`] the decoded Ref.
    pub fn key(&self) -> RefKey {
        let (node, creation, words) = self.ref_parts();
        RefKey::from_parts(node, creation, words)
    }

    /// Sends `{Ref, Rest...}` to the caller. A remote caller's frame is written from the
    /// kept bytes and the encoded `rest`; a caller on this node (a pid of ours) gets the
    /// tuple as a term, and `rest` is left as `[]`s.
    pub fn send_tagged(&self, node: &Node, rest: &mut [Owned]) -> Result<(), SendError> {
        if self.is_local(node) {
            let mut v = Vec::with_capacity(rest.len() + 1);
            v.push(Term::Reference(Box::new(self.reference())));
            v.extend(rest.iter_mut().map(|t| std::mem::take(t).into_term()));
            return node.send(&self.pid(), Owned::new(Term::Tuple(eetf::Tuple::from(v))));
        }
        self.send_remote(node, |out| self.write_tagged(out, rest))
    }

    /// Sends `message` as it is to the caller (a ping carries no Ref).
    pub fn send_plain(&self, node: &Node, message: Owned) -> Result<(), SendError> {
        if self.is_local(node) {
            return node.send(&self.pid(), message);
        }
        self.send_remote(node, |out| etf::encode(&message, out))
    }

    /// A caller on this node: a pid of ours (of this or an earlier incarnation, which
    /// [`Node::send`] tells apart).
    fn is_local(&self, node: &Node) -> bool {
        self.node_bytes() == node.name().as_bytes()
    }

    /// `{Ref, Rest...}` with its version byte (`rest` has at most a few elements).
    fn write_tagged(&self, out: &mut Vec<u8>, rest: &[Owned]) -> Result<(), etf::EncodeError> {
        let arity = u8::try_from(rest.len() + 1)
            .map_err(|_| etf::EncodeError(format!("a reply of {} elements", rest.len() + 1)))?;
        out.extend_from_slice(&[tags::VERSION, tags::SMALL_TUPLE_EXT, arity]);
        self.write_ref(out);
        rest.iter().try_for_each(|t| etf::encode_body(t, out))
    }

    fn send_remote(
        &self,
        node: &Node,
        payload: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Result<(), SendError> {
        node.send_frame(self.node(), |out| {
            message::write_send_with(out, |o| o.extend_from_slice(self.pid_bytes()), &payload)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etf::Limits;

    impl ReplyTo {
        /// The pid and the whole Ref, as a peer sends them.
        fn encoded(&self) -> Vec<u8> {
            let mut out = self.pid_bytes().to_vec();
            self.write_ref(&mut out);
            out
        }

        fn whole_ref(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write_ref(&mut out);
            out
        }
    }

    fn pid(node: &str) -> Pid {
        Pid {
            node: Atom::from(node),
            id: 77,
            serial: 3,
            creation: 0x1234_5678,
        }
    }

    fn reference(node: &str, words: Vec<u32>) -> Reference {
        Reference {
            node: Atom::from(node),
            id: words,
            creation: 9,
        }
    }

    #[test]
    fn read_in_place_equals_the_decoded_terms() {
        let (p, r) = (
            pid("caller@127.0.0.1"),
            reference("caller@127.0.0.1", vec![1, 2, 3]),
        );
        let made = ReplyTo::new(&p, &r).expect("encodes");
        let mut bytes = vec![1, 2];
        bytes.extend_from_slice(&made.encoded());
        bytes.push(0xff);
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let (read, end) = ReplyTo::read(&bytes, 2, &mut budget).expect("reads");
        assert_eq!(end, bytes.len() - 1);
        assert_eq!(read, made);
        assert_eq!(read.pid(), p);
        assert_eq!(read.reference(), r);
        assert_eq!(read.node(), "caller@127.0.0.1");
        assert_eq!(read.key(), RefKey::of(&r));
        // The node name is kept once: the Ref's copy is left out.
        assert!(read.shared_node);
        assert_eq!(
            read.bytes.len(),
            made.encoded().len() - "caller@127.0.0.1".len() - 2
        );
    }

    #[test]
    fn a_ref_of_another_node_keeps_its_name() {
        let (p, r) = (
            pid("caller@127.0.0.1"),
            reference("maker@127.0.0.1", vec![7, 8, 9]),
        );
        let made = ReplyTo::new(&p, &r).expect("encodes");
        assert!(!made.shared_node);
        let bytes = made.encoded();
        let limits = Limits::default();
        let (read, end) = ReplyTo::read(&bytes, 0, &mut Budget::new(&limits)).expect("reads");
        assert_eq!(end, bytes.len());
        assert_eq!(read, made);
        assert_eq!(read.pid(), p);
        assert_eq!(read.reference(), r);
        assert_eq!(read.key(), RefKey::of(&r));
        assert_eq!(read.encoded(), bytes);
    }

    #[test]
    fn other_encodings_and_short_input_are_not_read() {
        let made = ReplyTo::new(&pid("a@b"), &reference("a@b", vec![5])).expect("encodes");
        let limits = Limits::default();
        let whole = made.encoded();
        for cut in 0..whole.len() {
            let mut budget = Budget::new(&limits);
            assert!(ReplyTo::read(&whole[..cut], 0, &mut budget).is_none());
        }
        // PID_EXT (103) instead of NEW_PID_EXT.
        let mut old = whole.clone();
        old[0] = 103;
        assert!(ReplyTo::read(&old, 0, &mut Budget::new(&limits)).is_none());
        // A Latin-1 node name.
        let mut latin = whole.clone();
        latin[1] = tags::SMALL_ATOM_EXT;
        assert!(ReplyTo::read(&latin, 0, &mut Budget::new(&limits)).is_none());
        // A node name as ATOM_UTF8_EXT: ours to write, but read in place only in the
        // short form (a long one may be more than the 255 characters the decoder allows).
        // (Our encoder refuses such an atom, so the bytes are made by hand.)
        let long_atom = |out: &mut Vec<u8>| {
            out.extend_from_slice(&[tags::ATOM_UTF8_EXT, 1, 44]);
            out.extend_from_slice(&[b'n'; 300]);
        };
        let mut long_pid = vec![tags::NEW_PID_EXT];
        long_atom(&mut long_pid);
        long_pid.extend_from_slice(&[0; 12]);
        long_pid.extend_from_slice(&made.whole_ref());
        assert!(ReplyTo::read(&long_pid, 0, &mut Budget::new(&limits)).is_none());
        let mut long_ref = made.pid_bytes().to_vec();
        long_ref.extend_from_slice(&[tags::NEWER_REFERENCE_EXT, 0, 1]);
        long_atom(&mut long_ref);
        long_ref.extend_from_slice(&[0; 8]);
        assert!(ReplyTo::read(&long_ref, 0, &mut Budget::new(&limits)).is_none());
        // Six words.
        let six = ReplyTo::new(&pid("a@b"), &reference("a@b", vec![1; 5])).expect("encodes");
        let mut b = six.encoded();
        let at = six.split as usize;
        b[at + 2] = 6;
        b.extend_from_slice(&[0, 0, 0, 1]);
        assert!(ReplyTo::read(&b, 0, &mut Budget::new(&limits)).is_none());
    }

    #[test]
    fn a_reply_frame_decodes_to_the_tuple() {
        let (p, r) = (pid("c@h"), reference("c@h", vec![4, 5, 6]));
        let to = ReplyTo::new(&p, &r).expect("encodes");
        let rest = [Owned::new(Term::Atom(Atom::from("hello")))];
        let mut out = Vec::new();
        message::write_send_with(
            &mut out,
            |o| o.extend_from_slice(to.pid_bytes()),
            |o| to.write_tagged(o, &rest),
        )
        .expect("written");
        let mut want = Vec::new();
        message::write_send(
            &mut want,
            &p,
            &Term::Tuple(eetf::Tuple::from(vec![
                Term::Reference(Box::new(r)),
                Term::Atom(Atom::from("hello")),
            ])),
        )
        .expect("written");
        assert_eq!(out, want);
    }
}
