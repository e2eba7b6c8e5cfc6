//! The gen_server call protocol, as far as a C-node needs it.
//!
//! `gen_server:call(Dest, Req)` sends `{'$gen_call', {From, Tag}, Req}`; the reply is
//! `From ! {Tag, Reply}`. On OTP 24+ `Tag` is `[alias | Mref]`: we echo the whole tag back
//! unchanged, which the caller accepts without us supporting aliases.

use eetf::{Atom, Pid, Term, Tuple};

/// A decoded `'$gen_call'`.
pub struct Call {
    pub from: Pid,
    pub tag: Term,
    pub request: Term,
}

/// Splits `{'$gen_call', {From, Tag}, Request}`; gives the message back when it is not one.
pub fn parse_call(message: Term) -> Result<Call, Term> {
    match message {
        Term::Tuple(t) if is_call(&t) => {
            let mut it = t.elements.into_iter();
            let _ = it.next();
            let from = it.next();
            let request = it.next().unwrap_or(Term::List(eetf::List::nil()));
            match from {
                Some(Term::Tuple(ft)) => {
                    let mut fi = ft.elements.into_iter();
                    match (fi.next(), fi.next()) {
                        (Some(Term::Pid(from)), Some(tag)) => Ok(Call { from, tag, request }),
                        _ => Err(Term::Atom(Atom::from("bad_gen_call"))),
                    }
                }
                _ => Err(Term::Atom(Atom::from("bad_gen_call"))),
            }
        }
        other => Err(other),
    }
}

fn is_call(t: &Tuple) -> bool {
    t.elements.len() == 3
        && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_call")
        && matches!(&t.elements[1], Term::Tuple(f) if f.elements.len() == 2 && matches!(f.elements[0], Term::Pid(_)))
}

/// Splits `{'$gen_cast', Request}`; gives the message back when it is not one.
pub fn parse_cast(message: Term) -> Result<Term, Term> {
    match message {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_cast") =>
        {
            let mut it = t.elements.into_iter();
            let _ = it.next();
            Ok(it.next().unwrap_or(Term::List(eetf::List::nil())))
        }
        other => Err(other),
    }
}

/// The reply message `{Tag, Reply}`.
pub fn reply_message(tag: Term, reply: Term) -> Term {
    Term::Tuple(Tuple::from(vec![tag, reply]))
}

pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}
