//! The gen_server call protocol, as far as a C-node needs it.
//!
//! `gen_server:call(Dest, Req)` sends `{'$gen_call', {From, Tag}, Req}`; the reply is
//! `From ! {Tag, Reply}`. On OTP 24+ `Tag` is `[alias | Mref]`: we echo the whole tag back
//! unchanged, which the caller accepts without us supporting aliases.

use crate::etf::Owned;
use eetf::{Atom, Pid, Term, Tuple};

/// A decoded `'$gen_call'`. Tag and request come from the caller and may be of any depth.
pub struct Call {
    pub from: Pid,
    pub tag: Owned,
    pub request: Owned,
}

fn take(t: &mut Term) -> Term {
    std::mem::replace(t, Term::List(eetf::List::nil()))
}

/// Splits `{'$gen_call', {From, Tag}, Request}`; gives the message back when it is not one.
pub fn parse_call(mut message: Owned) -> Result<Call, Owned> {
    let Term::Tuple(t) = &mut *message else {
        return Err(message);
    };
    if !is_call(t) {
        return Err(message);
    }
    let request = Owned::new(take(&mut t.elements[2]));
    let Term::Tuple(ft) = &mut t.elements[1] else {
        return Err(message);
    };
    let tag = Owned::new(take(&mut ft.elements[1]));
    let Term::Pid(from) = take(&mut ft.elements[0]) else {
        return Err(message);
    };
    // What is left of `message` is a shallow skeleton, dropped here.
    Ok(Call { from, tag, request })
}

fn is_call(t: &Tuple) -> bool {
    t.elements.len() == 3
        && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_call")
        && matches!(&t.elements[1], Term::Tuple(f) if f.elements.len() == 2 && matches!(f.elements[0], Term::Pid(_)))
}

/// Splits `{'$gen_cast', Request}`; gives the message back when it is not one.
pub fn parse_cast(mut message: Owned) -> Result<Owned, Owned> {
    match &mut *message {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_cast") =>
        {
            Ok(Owned::new(take(&mut t.elements[1])))
        }
        _ => Err(message),
    }
}

/// The reply message `{Tag, Reply}`.
pub fn reply_message(tag: Owned, reply: Term) -> Term {
    Term::Tuple(Tuple::from(vec![tag.into_term(), reply]))
}

pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}
