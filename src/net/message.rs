//! Distribution control messages, decoded with the project's guarded codec.
//!
//! erl_dist has a `Message` type, but it decodes with eetf's recursive, unbounded decoder
//! (any peer could crash the daemon with one frame) and its `SEND_TT` decodes with the
//! fields swapped. So frames are decoded here: the control tuple and the payload each go
//! through [`crate::etf`], then the tuple is matched against the operations we serve.
//! The hot outgoing path (`SEND` to a pid) is encoded by hand straight into the
//! connection's write buffer.

use crate::etf::{self, tags, Encoded, Limits, Owned};
use eetf::{Atom, Pid, Reference, Term};
use std::borrow::Cow;

pub use crate::process::{ProcId, Sender};

/// The control messages rexi-node acts on. Trace tokens are accepted and dropped.
/// A `REG_SEND`'s message is left encoded, in the frame: registered names are where the
/// traffic goes (every rexi doit is a `REG_SEND`), and the process behind the name knows
/// what it expects (see [`Encoded`] and `Process::deliver_encoded`).
#[derive(Debug)]
pub enum Control<'a> {
    Link {
        from: Pid,
        to: Pid,
    },
    /// SEND, SEND_TT, SEND_SENDER, SEND_SENDER_TT. `from` is known only for the _SENDER forms.
    Send {
        from: Option<Pid>,
        to: Pid,
        message: Owned,
    },
    /// EXIT, EXIT_TT and the PAYLOAD_ forms: a link to `to` broke.
    Exit {
        from: Pid,
        to: Pid,
        reason: Owned,
    },
    /// EXIT2, EXIT2_TT and the PAYLOAD_ forms: `erlang:exit(To, Reason)` from a remote process.
    Exit2 {
        from: Pid,
        to: Pid,
        reason: Owned,
    },
    Unlink {
        from: Pid,
        to: Pid,
    },
    RegSend {
        from: Sender<'a>,
        /// The registered name; borrowed from the frame when read in place.
        to: Cow<'a, str>,
        message: Encoded<'a>,
    },
    MonitorP {
        from: Pid,
        to: ProcId,
        reference: Reference,
    },
    DemonitorP {
        from: Pid,
        to: ProcId,
        reference: Reference,
    },
    MonitorPExit {
        from: ProcId,
        to: Pid,
        reference: Reference,
        reason: Owned,
    },
    UnlinkId {
        id: Owned,
        from: Pid,
        to: Pid,
    },
    UnlinkIdAck {
        id: Owned,
        from: Pid,
        to: Pid,
    },
    /// SPAWN_REQUEST, SPAWN_REQUEST_TT: `from` asks for a process running
    /// `Module:Function` with `args` (a list the peer says has `arity` elements), with the
    /// spawn `options` (see [`super::spawn::options`]). The group leader and any trace
    /// token are dropped.
    SpawnRequest {
        req_id: Reference,
        from: Pid,
        module: String,
        function: String,
        arity: u64,
        options: Owned,
        args: Owned,
    },
    /// NODE_LINK, GROUP_LEADER: legal, and nothing to do for a C-node.
    Ignored {
        op: i64,
    },
}

/// A `NEW_PID_EXT` with a short UTF-8 node name at `at` in `body`, read in place (see
/// [`Sender`]): the sender and where it ends; `None` for any other encoding.
fn read_sender(body: &[u8], at: usize) -> Option<(Sender<'_>, usize)> {
    let p = etf::in_place::new_pid_at(body, at)?;
    let sender = Sender::InPlace {
        node: p.node,
        id: p.id,
        serial: p.serial,
        creation: p.creation,
    };
    Some((sender, p.end))
}

/// The frame error for a message payload that does not decode (`after`: the control
/// message's size).
pub fn payload_error(after: usize, e: etf::DecodeError) -> FrameError {
    bad(format!(
        "message payload (after {after} control bytes): {e}"
    ))
}

/// A `REG_SEND` (`{6, FromPid, '', ToName}`, the frame of every cast) read in place, in
/// the one encoding OTP writes it in (the unused atom and the name as
/// `SMALL_ATOM_UTF8_EXT`); `None`: anything else, which the whole decoder reads (and
/// judges) as before. Decoding the control tuple as terms cost a tuple, two atoms and a
/// walk to free them per cast, more than reading the doit inside it; here the sender pid
/// is read in place too ([`Sender`]), or decoded by the guarded decoder in another
/// encoding (either is charged to the frame's budget).
fn reg_send_in_place<'a>(body: &'a [u8], limits: &'a Limits) -> Option<Control<'a>> {
    const HEAD: [u8; 5] = [
        tags::VERSION,
        tags::SMALL_TUPLE_EXT,
        4,
        tags::SMALL_INTEGER_EXT,
        6,
    ];
    body.starts_with(&HEAD).then_some(())?;
    let mut budget = etf::Budget::new(limits);
    let (from, end) = match read_sender(body, HEAD.len()) {
        Some((from, end)) => {
            budget.charge(end - HEAD.len(), HEAD.len()).ok()?;
            (from, end)
        }
        None => match etf::decode_at(body, HEAD.len(), 1, limits, &mut budget).ok()? {
            (Term::Pid(p), end) => (Sender::Decoded(p), end),
            (other, _) => {
                // Not a pid: shallow or not, the whole decoder says what is wrong.
                etf::dispose(other);
                return None;
            }
        },
    };
    let rest = body
        .get(end..)?
        .strip_prefix(&[tags::SMALL_ATOM_UTF8_EXT, 0])?;
    let (&tag, rest) = rest.split_first()?;
    (tag == tags::SMALL_ATOM_UTF8_EXT).then_some(())?;
    let (&n, rest) = rest.split_first()?;
    let to = std::str::from_utf8(rest.get(..n as usize)?).ok()?;
    let used = body.len() - rest.len() + n as usize;
    let payload = body.get(used..)?;
    budget.charge(n as usize, used).ok()?;
    Some(Control::RegSend {
        from,
        to: Cow::Borrowed(to),
        message: Encoded::new(payload, used, limits, budget),
    })
}

/// Why a frame could not be understood. The connection that sent it is closed.
#[derive(Debug)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> FrameError {
    FrameError(what.into())
}

/// Decodes the body of a pass-through frame (the bytes after the `p` byte).
/// Both terms are charged to one memory budget (`Limits::max_term_memory`).
pub fn decode<'a>(body: &'a [u8], limits: &'a Limits) -> Result<Control<'a>, FrameError> {
    match reg_send_in_place(body, limits) {
        Some(c) => Ok(c),
        None => decode_whole(body, limits),
    }
}

/// [`decode`] with the control tuple decoded as terms.
fn decode_whole<'a>(body: &'a [u8], limits: &'a Limits) -> Result<Control<'a>, FrameError> {
    let mut budget = etf::Budget::new(limits);
    let (ctrl, used) = etf::decode_prefix_in(body, limits, &mut budget)
        .map_err(|e| bad(format!("control message: {e}")))?;
    let rest = &body[used..];
    let mut payload = |rest: &[u8]| -> Result<Owned, FrameError> {
        etf::decode_in(rest, limits, &mut budget)
            .map(Owned::new)
            .map_err(|e| bad(format!("message payload (after {used} control bytes): {e}")))
    };
    let no_payload = |rest: &[u8]| -> Result<(), FrameError> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(bad(format!(
                "{} unexpected bytes after the control message",
                rest.len()
            )))
        }
    };
    // The control tuple stays owned until the end: whatever is not taken out of it (on
    // any return, error or not) is disposed of with it, however deep.
    let mut ctrl = Owned::new(ctrl);
    let elems: &mut Vec<Term> = match &mut *ctrl {
        Term::Tuple(t) if !t.elements.is_empty() => &mut t.elements,
        _ => return Err(bad("control message is not a non-empty tuple")),
    };
    let op = match &elems[0] {
        Term::FixInteger(i) => i.value as i64,
        _ => {
            return Err(bad(
                "control message does not start with an integer operation",
            ))
        }
    };
    let n = elems.len();
    let arity = |want: usize| -> Result<(), FrameError> {
        if n == want {
            Ok(())
        } else {
            Err(bad(format!(
                "control operation {op} has {n} elements, expected {want}"
            )))
        }
    };
    let elems = elems.as_mut_slice();
    let ctl = match op {
        1 => {
            arity(3)?;
            no_payload(rest)?;
            Control::Link {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
            }
        }
        2 => {
            arity(3)?;
            Control::Send {
                from: None,
                to: pid(elems, 2)?,
                message: payload(rest)?,
            }
        }
        3 => {
            arity(4)?;
            no_payload(rest)?;
            Control::Exit {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: take_owned(elems, 3),
            }
        }
        4 => {
            arity(3)?;
            no_payload(rest)?;
            Control::Unlink {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
            }
        }
        5 | 7 => Control::Ignored { op },
        6 | 16 => {
            arity(if op == 6 { 4 } else { 5 })?;
            Control::RegSend {
                from: Sender::Decoded(pid(elems, 1)?),
                to: Cow::Owned(atom(elems, 3)?),
                message: Encoded::new(
                    rest,
                    used,
                    limits,
                    std::mem::replace(&mut budget, etf::Budget::new(limits)),
                ),
            }
        }
        8 => {
            arity(4)?;
            no_payload(rest)?;
            Control::Exit2 {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: take_owned(elems, 3),
            }
        }
        // SEND_TT {12, Unused, ToPid, TraceToken}: erl_dist swaps these two.
        12 => {
            arity(4)?;
            Control::Send {
                from: None,
                to: pid(elems, 2)?,
                message: payload(rest)?,
            }
        }
        13 => {
            arity(5)?;
            no_payload(rest)?;
            Control::Exit {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: take_owned(elems, 4),
            }
        }

        18 => {
            arity(5)?;
            no_payload(rest)?;
            Control::Exit2 {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: take_owned(elems, 4),
            }
        }
        19 => {
            arity(4)?;
            no_payload(rest)?;
            Control::MonitorP {
                from: pid(elems, 1)?,
                to: proc_id(elems, 2)?,
                reference: reference(elems, 3)?,
            }
        }
        20 => {
            arity(4)?;
            no_payload(rest)?;
            Control::DemonitorP {
                from: pid(elems, 1)?,
                to: proc_id(elems, 2)?,
                reference: reference(elems, 3)?,
            }
        }
        21 => {
            arity(5)?;
            no_payload(rest)?;
            Control::MonitorPExit {
                from: proc_id(elems, 1)?,
                to: pid(elems, 2)?,
                reference: reference(elems, 3)?,
                reason: take_owned(elems, 4),
            }
        }
        22 => {
            arity(3)?;
            Control::Send {
                from: Some(pid(elems, 1)?),
                to: pid(elems, 2)?,
                message: payload(rest)?,
            }
        }
        23 => {
            arity(4)?;
            Control::Send {
                from: Some(pid(elems, 1)?),
                to: pid(elems, 2)?,
                message: payload(rest)?,
            }
        }
        24 => {
            arity(3)?;
            Control::Exit {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: payload(rest)?,
            }
        }
        25 => {
            arity(4)?;
            Control::Exit {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: payload(rest)?,
            }
        }
        26 => {
            arity(3)?;
            Control::Exit2 {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: payload(rest)?,
            }
        }
        27 => {
            arity(4)?;
            Control::Exit2 {
                from: pid(elems, 1)?,
                to: pid(elems, 2)?,
                reason: payload(rest)?,
            }
        }
        28 => {
            arity(4)?;
            Control::MonitorPExit {
                from: proc_id(elems, 1)?,
                to: pid(elems, 2)?,
                reference: reference(elems, 3)?,
                reason: payload(rest)?,
            }
        }
        // SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts} and
        // SPAWN_REQUEST_TT (the same and a trace token), followed by the argument list.
        29 | 30 => {
            arity(if op == 29 { 6 } else { 7 })?;
            let (module, function, n) = mfa(elems, 4)?;
            Control::SpawnRequest {
                req_id: reference(elems, 1)?,
                from: pid(elems, 2)?,
                module,
                function,
                arity: n,
                options: take_owned(elems, 5),
                args: payload(rest)?,
            }
        }
        35 => {
            arity(4)?;
            no_payload(rest)?;
            Control::UnlinkId {
                id: take_owned(elems, 1),
                from: pid(elems, 2)?,
                to: pid(elems, 3)?,
            }
        }
        36 => {
            arity(4)?;
            no_payload(rest)?;
            Control::UnlinkIdAck {
                id: take_owned(elems, 1),
                from: pid(elems, 2)?,
                to: pid(elems, 3)?,
            }
        }
        other => {
            return Err(bad(format!(
                "control operation {other} is not supported (it was not negotiated)"
            )))
        }
    };
    Ok(ctl)
}

fn take(elems: &mut [Term], i: usize) -> Term {
    std::mem::replace(&mut elems[i], Term::List(eetf::List::nil()))
}

fn take_owned(elems: &mut [Term], i: usize) -> Owned {
    Owned::new(take(elems, i))
}

fn pid(elems: &mut [Term], i: usize) -> Result<Pid, FrameError> {
    match take(elems, i) {
        Term::Pid(p) => Ok(p),
        other => {
            drop(Owned::new(other));
            Err(bad(format!(
                "element {} of the control message is not a pid",
                i + 1
            )))
        }
    }
}

fn atom(elems: &mut [Term], i: usize) -> Result<String, FrameError> {
    match take(elems, i) {
        Term::Atom(a) => Ok(a.name),
        other => {
            drop(Owned::new(other));
            Err(bad(format!(
                "element {} of the control message is not an atom",
                i + 1
            )))
        }
    }
}

fn reference(elems: &mut [Term], i: usize) -> Result<Reference, FrameError> {
    match take(elems, i) {
        Term::Reference(r) => Ok(*r),
        other => {
            drop(Owned::new(other));
            Err(bad(format!(
                "element {} of the control message is not a reference",
                i + 1
            )))
        }
    }
}

/// `{Module, Function, Arity}` with atoms and a non-negative integer.
fn mfa(elems: &mut [Term], i: usize) -> Result<(String, String, u64), FrameError> {
    let t = Owned::new(take(elems, i));
    if let Term::Tuple(t) = &*t {
        if let [Term::Atom(m), Term::Atom(f), Term::FixInteger(a)] = t.elements.as_slice() {
            if a.value >= 0 {
                return Ok((m.name.clone(), f.name.clone(), a.value as u64));
            }
        }
    }
    Err(bad(format!(
        "element {} of the control message is not {{Module, Function, Arity}}",
        i + 1
    )))
}

fn proc_id(elems: &mut [Term], i: usize) -> Result<ProcId, FrameError> {
    match take(elems, i) {
        Term::Pid(p) => Ok(ProcId::Pid(p)),
        Term::Atom(a) => Ok(ProcId::Name(a.name)),
        other => {
            drop(Owned::new(other));
            Err(bad(format!(
                "element {} of the control message is neither a pid nor a name",
                i + 1
            )))
        }
    }
}

/// Appends one pass-through frame `[len:u32]['p'][control][payload]` to `out`.
/// On an encode error `out` is left as it was.
pub fn write_frame(
    out: &mut Vec<u8>,
    control: &Term,
    payload: Option<&Term>,
) -> Result<(), etf::EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, b'p']);
    let r = etf::encode(control, out).and_then(|_| match payload {
        Some(p) => etf::encode(p, out),
        None => Ok(()),
    });
    if let Err(e) = r {
        out.truncate(start);
        return Err(e);
    }
    patch_len(out, start)
}

fn patch_len(out: &mut [u8], start: usize) -> Result<(), etf::EncodeError> {
    let len = out.len() - start - 4;
    let len = u32::try_from(len)
        .map_err(|_| etf::EncodeError(format!("frame of {len} bytes exceeds 4 GiB")))?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends a `SEND` frame (`{2, '', ToPid}` + message) without building a control term.
pub fn write_send(out: &mut Vec<u8>, to: &Pid, message: &Term) -> Result<(), etf::EncodeError> {
    write_send_with(out, |o| encode_pid_body(o, to), |o| etf::encode(message, o))
}

/// Appends a `SEND` frame whose pid (`to`: tag included, no version byte) and payload
/// (version byte included) are written by the caller: a rexi reply is spliced from the
/// bytes the caller's node sent. On error `out` is left as it was.
pub fn write_send_with(
    out: &mut Vec<u8>,
    to: impl FnOnce(&mut Vec<u8>),
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
) -> Result<(), etf::EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, b'p', 131, 104, 3, 97, 2, 119, 0]);
    to(out);
    if let Err(e) = payload(out) {
        out.truncate(start);
        return Err(e);
    }
    patch_len(out, start)
}

/// NEW_PID_EXT without the version byte.
fn encode_pid_body(out: &mut Vec<u8>, p: &Pid) {
    out.push(88);
    let name = p.node.name.as_bytes();
    if name.len() < 256 {
        out.push(119);
        out.push(name.len() as u8);
    } else {
        out.push(118);
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(name);
    out.extend_from_slice(&p.id.to_be_bytes());
    out.extend_from_slice(&p.serial.to_be_bytes());
    out.extend_from_slice(&p.creation.to_be_bytes());
}

/// Builders for the control tuples we send.
pub mod ctl {
    use super::*;
    use eetf::{FixInteger, Tuple};

    fn op(n: i32) -> Term {
        Term::FixInteger(FixInteger::from(n))
    }

    pub fn monitor_p_exit(from: &ProcId, to: &Pid, reference: &Reference, reason: Term) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(21),
            from.to_term(),
            Term::Pid(to.clone()),
            Term::Reference(Box::new(reference.clone())),
            reason,
        ]))
    }
    pub fn monitor_p(from: &Pid, to: &ProcId, reference: &Reference) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(19),
            Term::Pid(from.clone()),
            to.to_term(),
            Term::Reference(Box::new(reference.clone())),
        ]))
    }
    pub fn demonitor_p(from: &Pid, to: &ProcId, reference: &Reference) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(20),
            Term::Pid(from.clone()),
            to.to_term(),
            Term::Reference(Box::new(reference.clone())),
        ]))
    }
    pub fn exit(from: &Pid, to: &Pid, reason: Term) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(3),
            Term::Pid(from.clone()),
            Term::Pid(to.clone()),
            reason,
        ]))
    }
    pub fn link(from: &Pid, to: &Pid) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(1),
            Term::Pid(from.clone()),
            Term::Pid(to.clone()),
        ]))
    }
    pub fn unlink_id_ack(id: Term, from: &Pid, to: &Pid) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(36),
            id,
            Term::Pid(from.clone()),
            Term::Pid(to.clone()),
        ]))
    }
    /// SPAWN_REPLY `{31, ReqId, To, Flags, Result}`: `result` is the new pid or an error atom.
    pub fn spawn_reply(req_id: &Reference, to: &Pid, flags: i32, result: Term) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(31),
            Term::Reference(Box::new(req_id.clone())),
            Term::Pid(to.clone()),
            op(flags),
            result,
        ]))
    }
    pub fn reg_send(from: &Pid, to_name: &str) -> Term {
        Term::Tuple(Tuple::from(vec![
            op(6),
            Term::Pid(from.clone()),
            Term::Atom(Atom::from("")),
            Term::Atom(Atom::from(to_name)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str) -> Pid {
        Pid {
            node: Atom::from(node),
            id: 42,
            serial: 1,
            creation: 7,
        }
    }

    /// The frame body (after `p`) of a REG_SEND whose control tuple is `ctl`.
    fn body(ctl: &Term, payload: &Term) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, ctl, Some(payload)).expect("written");
        out.split_off(5)
    }

    fn reg_send(c: Control<'_>) -> (Pid, String, Vec<u8>, usize) {
        match c {
            Control::RegSend { from, to, message } => (
                from.pid(),
                to.into_owned(),
                message.bytes().to_vec(),
                message.offset(),
            ),
            _ => panic!("not a REG_SEND"),
        }
    }

    #[test]
    fn a_reg_send_read_in_place_is_the_one_decoded_whole() {
        let limits = Limits::default();
        let payload = Term::Atom(Atom::from("hello"));
        let b = body(
            &ctl::reg_send(&pid("a@127.0.0.1"), "rexi_server_123"),
            &payload,
        );
        match reg_send_in_place(&b, &limits) {
            Some(Control::RegSend { from, .. }) => {
                assert!(
                    matches!(from, Sender::InPlace { .. }),
                    "sender read in place"
                );
                assert_eq!(from.node(), "a@127.0.0.1");
            }
            other => panic!("not read in place: {other:?}"),
        }
        let fast = reg_send(decode(&b, &limits).expect("decodes"));
        let whole = reg_send(decode_whole(&b, &limits).expect("decodes"));
        assert_eq!(fast, whole);
        assert_eq!(fast.1, "rexi_server_123");
    }

    #[test]
    fn a_sender_pid_in_another_encoding_is_decoded() {
        let limits = Limits::default();
        let payload = Term::Atom(Atom::from("hello"));
        let mut b = body(&ctl::reg_send(&pid("a@127.0.0.1"), "n"), &payload);
        // The pid's node name as SMALL_ATOM_EXT (Latin-1): after 131, {, 4, 6 and the pid tag.
        assert_eq!(b[6], tags::SMALL_ATOM_UTF8_EXT);
        b[6] = tags::SMALL_ATOM_EXT;
        match reg_send_in_place(&b, &limits) {
            Some(Control::RegSend { from, to, .. }) => {
                assert!(matches!(from, Sender::Decoded(_)), "{from:?}");
                assert_eq!(from.pid(), pid("a@127.0.0.1"));
                assert_eq!(to, "n");
            }
            other => panic!("not a REG_SEND read in place: {other:?}"),
        }
    }

    #[test]
    fn other_shapes_take_the_whole_decoder_and_get_its_answer() {
        let limits = Limits::default();
        let payload = Term::Atom(Atom::from("hello"));
        let int = |v| Term::FixInteger(eetf::FixInteger::from(v));
        let atom = |n: &str| Term::Atom(Atom::from(n));
        let tuple = |v| Term::Tuple(eetf::Tuple::from(v));
        let from = Term::Pid(pid("a@127.0.0.1"));
        let cases = [
            // The unused element is not ''.
            tuple(vec![int(6), from.clone(), atom("x"), atom("name")]),
            // The name is not an atom.
            tuple(vec![int(6), from.clone(), atom(""), int(1)]),
            // The sender is not a pid.
            tuple(vec![int(6), atom("p"), atom(""), atom("name")]),
            // REG_SEND_TT.
            tuple(vec![
                int(16),
                from.clone(),
                atom(""),
                atom("name"),
                atom("tt"),
            ]),
        ];
        for c in &cases {
            let b = body(c, &payload);
            assert!(reg_send_in_place(&b, &limits).is_none(), "{c:?}");
        }
        // A Latin-1 name (SMALL_ATOM_EXT), as an older encoder may write it.
        let mut b = body(
            &tuple(vec![int(6), from.clone(), atom(""), atom("name")]),
            &payload,
        );
        // The name (6 bytes) comes before the payload (8 bytes: 131, then the atom).
        let at = b.len() - 8 - 6;
        assert_eq!(b[at], tags::SMALL_ATOM_UTF8_EXT);
        b[at] = tags::SMALL_ATOM_EXT;
        assert!(reg_send_in_place(&b, &limits).is_none());
        let whole = reg_send(decode(&b, &limits).expect("decodes"));
        assert_eq!(whole.1, "name");
        // Cut short anywhere: the in-place reader gives up or leaves the payload to fail.
        let good = body(&ctl::reg_send(&pid("a@127.0.0.1"), "n"), &payload);
        for cut in 0..good.len() {
            let b = &good[..cut];
            match decode(b, &limits) {
                Ok(Control::RegSend { message, .. }) => assert!(message.decode().is_err()),
                Ok(_) => panic!("cut at {cut}: not a REG_SEND"),
                Err(_) => {}
            }
        }
    }
}
