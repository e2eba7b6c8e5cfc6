//! rexi's message shapes (docs/design/protocol.md), in and out.
//!
//! In: `{'$gen_cast', {doit, {CallerPid, Ref}, Nonce, {M, F, A}}}` (and the pre-2010
//! 3-tuple without Nonce), `{'$gen_cast', {kill, Ref}}`, `{'$gen_cast', {kill_all, Refs}}`
//! and `'$gen_call'`s. Out: `{Ref, Reply}`, `{Ref, {WorkerPid, Tag}, Msg}`,
//! `{Ref, WorkerPid, Row}`, `{Ref, {rexi_EXIT, Reason}}` and `{rexi, '$rexi_ping'}`.

use super::reply_to::ReplyTo;
use crate::etf::Owned;
use crate::process::gen;
use eetf::{Atom, Pid, Term, Tuple};
use std::borrow::Cow;

/// The arguments of a call, each an [`Owned`] term: whatever a handler does not take,
/// and whatever it takes and then drops (on an early `?` too), is freed without recursion,
/// so a 1,000,000-deep argument cannot overflow a worker's stack.
pub struct Args(Vec<Owned>);

impl Args {
    pub fn new(v: Vec<Term>) -> Args {
        Args(v.into_iter().map(Owned::new).collect())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Term> {
        self.0.iter().map(|t| &**t)
    }
    pub fn get(&self, i: usize) -> Option<&Term> {
        self.0.get(i).map(|t| &**t)
    }
    /// All the arguments, bare: the caller must keep them in something that drops them
    /// without recursion (an `Owned`, or a term sent with `Node::send`).
    pub fn into_terms(self) -> Vec<Term> {
        self.0.into_iter().map(Owned::into_term).collect()
    }
    /// Takes argument `i` out (leaving `[]` behind).
    pub fn take(&mut self, i: usize) -> Owned {
        match self.0.get_mut(i) {
            Some(t) => std::mem::take(t),
            None => Owned::nil(),
        }
    }
}

/// A request to a rexi server name. Every term in it came from the caller and is
/// [`Owned`], so a request dropped on any path frees itself without recursion.
pub enum Request {
    Doit(Doit<'static>),
    /// A doit we cannot run but can answer: `{Pid, Ref}` was readable.
    BadDoit {
        caller: Pid,
        reference: Owned,
        reason: Term,
    },
    Kill(Owned),
    KillAll(Owned),
    Call(gen::Call),
    /// Not a rexi request; logged and ignored, like rexi's `ignored_cast`.
    Unknown(&'static str, Owned),
}

/// A doit; M and F borrow the frame's bytes when read in place ([`super::wire`]): they
/// are only looked up, so a cast allocates nothing for them.
pub struct Doit<'a> {
    /// The caller's pid and the Ref: who the job answers.
    pub to: ReplyTo,
    pub nonce: Nonce,
    pub module: Cow<'a, str>,
    pub function: Cow<'a, str>,
    pub args: Args,
}

/// A doit's nonce. rexi sends `undefined` unless the caller set one (CouchDB: a request's
/// nonce), and a held job keeps it, so `undefined` costs nothing to keep and anything else
/// one box.
pub enum Nonce {
    Undefined,
    Other(Box<Owned>),
}

impl Nonce {
    pub fn new(t: Owned) -> Nonce {
        if is_atom(&t, "undefined") {
            Nonce::Undefined
        } else {
            Nonce::Other(Box::new(t))
        }
    }

    pub fn term(&self) -> &Term {
        static UNDEFINED: std::sync::OnceLock<Term> = std::sync::OnceLock::new();
        match self {
            Nonce::Undefined => UNDEFINED.get_or_init(|| atom("undefined")),
            Nonce::Other(t) => t,
        }
    }
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

fn take(t: &mut Term) -> Term {
    std::mem::replace(t, nil())
}

/// Classifies one message sent to a rexi server name.
pub fn parse(message: Owned) -> Request {
    let message = match gen::parse_call(message) {
        Ok(call) => return Request::Call(call),
        Err(m) => m,
    };
    let mut body = match gen::parse_cast(message) {
        Ok(b) => b,
        Err(m) => return Request::Unknown("not a '$gen_cast' or '$gen_call'", m),
    };
    let elems = match &mut *body {
        Term::Tuple(t) if !t.elements.is_empty() => &mut t.elements,
        _ => return Request::Unknown("cast is not a tagged tuple", body),
    };
    let n = elems.len();
    if is_atom(&elems[0], "doit") && (n == 4 || n == 3) {
        let mfa = take(&mut elems[n - 1]);
        let nonce = if n == 4 {
            take(&mut elems[2])
        } else {
            atom("undefined")
        };
        let from = take(&mut elems[1]);
        return parse_doit(Owned::new(from), Owned::new(nonce), Owned::new(mfa));
    }
    if is_atom(&elems[0], "kill") && n == 2 {
        return Request::Kill(Owned::new(take(&mut elems[1])));
    }
    if is_atom(&elems[0], "kill_all") && n == 2 {
        return match &elems[1] {
            Term::List(_) => Request::KillAll(Owned::new(take(&mut elems[1]))),
            _ => Request::Unknown("kill_all of something that is not a list", body),
        };
    }
    Request::Unknown("unknown cast", body)
}

fn parse_doit(mut from: Owned, nonce: Owned, mut mfa: Owned) -> Request {
    let (caller, reference) = match &mut *from {
        Term::Tuple(t) if t.elements.len() == 2 => match take(&mut t.elements[0]) {
            Term::Pid(p) => (p, take(&mut t.elements[1])),
            other => {
                t.elements[0] = other;
                return Request::Unknown("doit whose From is not {Pid, Ref}", from);
            }
        },
        _ => return Request::Unknown("doit whose From is not {Pid, Ref}", from),
    };
    let reference = match reference {
        Term::Reference(r) => *r,
        other => return bad_doit(caller, Owned::new(other), "badarg"),
    };
    let bad = |reason| {
        bad_doit(
            caller.clone(),
            Owned::new(Term::Reference(Box::new(reference.clone()))),
            reason,
        )
    };
    let parts = match &mut *mfa {
        Term::Tuple(t) if t.elements.len() == 3 => &mut t.elements,
        _ => return bad("function_clause"),
    };
    let (Term::Atom(m), Term::Atom(f)) = (&parts[0], &parts[1]) else {
        return bad("badarg");
    };
    let (module, function) = (m.name.clone(), f.name.clone());
    let args = match list_elements(take(&mut parts[2])) {
        Ok(args) => args,
        Err(other) => {
            drop(Owned::new(other));
            return bad("badarg");
        }
    };
    let Some(to) = ReplyTo::new(&caller, &reference) else {
        return bad("badarg");
    };
    Request::Doit(Doit {
        to,
        nonce: Nonce::new(nonce),
        module: Cow::Owned(module),
        function: Cow::Owned(function),
        args: Args::new(args),
    })
}

/// A doit that cannot run but whose `{Pid, Ref}` was read: the rest is dropped (without
/// recursion) and the caller will get `{Ref, {rexi_EXIT, {Reason, []}}}`.
fn bad_doit(caller: Pid, reference: Owned, reason: &str) -> Request {
    Request::BadDoit {
        caller,
        reference,
        reason: atom(reason),
    }
}

/// `{Ref, {rexi_EXIT, Reason}}`.
pub fn rexi_exit(reference: Term, reason: Term) -> Term {
    tuple(vec![reference, exit_body(reason)])
}

/// `{rexi_EXIT, Reason}`: what follows the Ref in a failed job's answer.
pub fn exit_body(reason: Term) -> Term {
    tuple(vec![atom("rexi_EXIT"), reason])
}

/// `[{M, F, ArityOrArgs, []}]`: a one-frame stack in the BEAM's shape.
/// The elements of a proper list (a `STRING_EXT` list of small integers included), or the
/// term back when it is not one.
pub fn list_elements(t: Term) -> Result<Vec<Term>, Term> {
    match t {
        Term::List(l) => Ok(l.elements),
        Term::ByteList(b) => Ok(b
            .bytes
            .into_iter()
            .map(|x| Term::FixInteger(eetf::FixInteger::from(x as i32)))
            .collect()),
        other => Err(other),
    }
}

pub fn stack(module: &str, function: &str, arity_or_args: Term) -> Term {
    Term::List(eetf::List::from(vec![tuple(vec![
        atom(module),
        atom(function),
        arity_or_args,
        nil(),
    ])]))
}
