//! rexi's message shapes (docs/design/protocol.md), in and out.
//!
//! In: `{'$gen_cast', {doit, {CallerPid, Ref}, Nonce, {M, F, A}}}` (and the pre-2010
//! 3-tuple without Nonce), `{'$gen_cast', {kill, Ref}}`, `{'$gen_cast', {kill_all, Refs}}`
//! and `'$gen_call'`s. Out: `{Ref, Reply}`, `{Ref, {WorkerPid, Tag}, Msg}`,
//! `{Ref, WorkerPid, Row}`, `{Ref, {rexi_EXIT, Reason}}` and `{rexi, '$rexi_ping'}`.

use crate::etf;
use crate::process::gen;
use eetf::{Atom, Pid, Reference, Term, Tuple};

/// A request to a rexi server name.
pub enum Request {
    Doit(Doit),
    /// A doit we cannot run but can answer: `{Pid, Ref}` was readable.
    BadDoit {
        caller: Pid,
        reference: Term,
        reason: Term,
    },
    Kill(Term),
    KillAll(Vec<Term>),
    Call(gen::Call),
    /// Not a rexi request; logged and ignored, like rexi's `ignored_cast`.
    Unknown(&'static str, Term),
}

pub struct Doit {
    pub caller: Pid,
    pub reference: Reference,
    pub nonce: Term,
    pub module: String,
    pub function: String,
    pub args: Vec<Term>,
}

fn is_atom(t: &Term, name: &str) -> bool {
    matches!(t, Term::Atom(a) if a.name == name)
}

pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

pub fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

pub fn nil() -> Term {
    Term::List(eetf::List::nil())
}

/// Classifies one message sent to a rexi server name.
pub fn parse(message: Term) -> Request {
    let message = match gen::parse_call(message) {
        Ok(call) => return Request::Call(call),
        Err(m) => m,
    };
    let body = match gen::parse_cast(message) {
        Ok(b) => b,
        Err(m) => return Request::Unknown("not a '$gen_cast' or '$gen_call'", m),
    };
    let mut elems = match body {
        Term::Tuple(t) if !t.elements.is_empty() => t.elements,
        other => return Request::Unknown("cast is not a tagged tuple", other),
    };
    let n = elems.len();
    if is_atom(&elems[0], "doit") && (n == 4 || n == 3) {
        let mfa = elems.pop().unwrap_or_else(nil);
        let nonce = if n == 4 {
            elems.pop().unwrap_or_else(nil)
        } else {
            atom("undefined")
        };
        let from = elems.pop().unwrap_or_else(nil);
        return parse_doit(from, nonce, mfa);
    }
    if is_atom(&elems[0], "kill") && n == 2 {
        return Request::Kill(elems.pop().unwrap_or_else(nil));
    }
    if is_atom(&elems[0], "kill_all") && n == 2 {
        return match elems.pop() {
            Some(Term::List(l)) => Request::KillAll(l.elements),
            Some(other) => Request::Unknown("kill_all of something that is not a list", other),
            None => Request::Unknown("kill_all without refs", nil()),
        };
    }
    Request::Unknown("unknown cast", Term::Tuple(Tuple::from(elems)))
}

fn parse_doit(from: Term, nonce: Term, mfa: Term) -> Request {
    let (caller, reference) = match from {
        Term::Tuple(t) if t.elements.len() == 2 && matches!(t.elements[0], Term::Pid(_)) => {
            let mut it = t.elements.into_iter();
            match (it.next(), it.next()) {
                (Some(Term::Pid(p)), Some(r)) => (p, r),
                _ => unreachable_pair(),
            }
        }
        other => {
            etf::dispose(nonce);
            etf::dispose(mfa);
            return Request::Unknown("doit whose From is not {Pid, Ref}", other);
        }
    };
    let reference = match reference {
        Term::Reference(r) => *r,
        other => {
            return bad_doit(caller, other, "badarg", [nonce, mfa]);
        }
    };
    let parts = match mfa {
        Term::Tuple(t) if t.elements.len() == 3 => t.elements,
        other => {
            return bad_doit(
                caller,
                Term::Reference(Box::new(reference)),
                "function_clause",
                [nonce, other],
            );
        }
    };
    let mut it = parts.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(Term::Atom(m)), Some(Term::Atom(f)), Some(args)) => {
            let args = match args {
                Term::List(l) => l.elements,
                Term::ByteList(b) => b
                    .bytes
                    .into_iter()
                    .map(|x| Term::FixInteger(eetf::FixInteger::from(x as i32)))
                    .collect(),
                other => {
                    return bad_doit(
                        caller,
                        Term::Reference(Box::new(reference)),
                        "badarg",
                        [nonce, other],
                    );
                }
            };
            Request::Doit(Doit {
                caller,
                reference,
                nonce,
                module: m.name,
                function: f.name,
                args,
            })
        }
        (a, b, c) => {
            for t in [a, b, c].into_iter().flatten() {
                etf::dispose(t);
            }
            etf::dispose(nonce);
            Request::BadDoit {
                caller,
                reference: Term::Reference(Box::new(reference)),
                reason: atom("badarg"),
            }
        }
    }
}

/// A doit that cannot run but whose `{Pid, Ref}` was read: the rest is dropped (without
/// recursion) and the caller will get `{Ref, {rexi_EXIT, {Reason, []}}}`.
fn bad_doit(caller: Pid, reference: Term, reason: &str, rest: [Term; 2]) -> Request {
    for t in rest {
        etf::dispose(t);
    }
    Request::BadDoit {
        caller,
        reference,
        reason: atom(reason),
    }
}

fn unreachable_pair() -> (Pid, Term) {
    // parse_doit checked the shape; keep the compiler happy without a panic path.
    (
        Pid {
            node: Atom::from(""),
            id: 0,
            serial: 0,
            creation: 0,
        },
        nil(),
    )
}

/// `{Ref, Msg}`.
pub fn reply(reference: &Reference, msg: Term) -> Term {
    tuple(vec![Term::Reference(Box::new(reference.clone())), msg])
}

/// `{Ref, {rexi_EXIT, Reason}}`.
pub fn rexi_exit(reference: Term, reason: Term) -> Term {
    tuple(vec![reference, tuple(vec![atom("rexi_EXIT"), reason])])
}

/// `[{M, F, ArityOrArgs, []}]`: a one-frame stack in the BEAM's shape.
pub fn stack(module: &str, function: &str, arity_or_args: Term) -> Term {
    Term::List(eetf::List::from(vec![tuple(vec![
        atom(module),
        atom(function),
        arity_or_args,
        nil(),
    ])]))
}
