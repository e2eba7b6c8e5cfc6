//! What a visible node owes `global`: one `in_sync` per `init_connect`.
//!
//! When a visible node comes up, `global_name_server` on each BEAM node casts
//! `{init_connect, {Vsn, Tag}, ItsNode, {locker, _, Known, LockerPid}}` to
//! `{global_name_server, Us}` and waits for the sync with us to end, without a timeout:
//! until it does, `global:sync()` hangs on that node. Answering
//! `{in_sync, Us, true}` to `{global_name_server, ItsNode}` ends it at once, and we stay
//! out of global's `known` set: the BEAM nodes neither dial us for global's sake nor ask
//! us to drop connections to keep partitions apart, and never expect us to take part in
//! name registrations or locks.
//!
//! So this node never registers `global_name_server` (a monitor on it gets `noproc` at
//! once, which keeps `global:trans` and `multi_call` from waiting) and sends global nothing
//! but that answer. A hidden node gets no `init_connect`; if one comes anyway it is ignored.
//!
//! The answer goes out from this concern's own pid, a process that drops anything sent to
//! it.

use crate::process::{Process, Signal};
use eetf::{Atom, Term, Tuple};

/// The name global's server has on every node, and that we never register.
pub const SERVER: &str = "global_name_server";

/// The sender of our `in_sync` answers.
pub struct GlobalSync;

impl Process for GlobalSync {
    fn deliver(&self, _signal: Signal) {}
}

fn atom(n: &str) -> Term {
    Term::Atom(Atom::from(n))
}

/// If `message` is global's `init_connect` cast from `peer`, the `in_sync` message to send
/// to `{global_name_server, peer}`. Any protocol version is accepted (global itself accepts
/// newer ones: the version is a tuple whose first element is a number); an `init_connect`
/// naming another node than the connection's is not answered.
pub fn answer(message: &Term, peer: &str, local: &Atom) -> Option<Term> {
    let cast = match message {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_cast") =>
        {
            &t.elements[1]
        }
        _ => return None,
    };
    let Term::Tuple(ic) = cast else { return None };
    let [Term::Atom(tag), Term::Tuple(vsn), Term::Atom(node), _] = ic.elements.as_slice() else {
        return None;
    };
    if tag.name != "init_connect" || vsn.elements.len() < 2 || node.name != peer {
        return None;
    }
    Some(Term::Tuple(Tuple::from(vec![
        atom("$gen_cast"),
        Term::Tuple(Tuple::from(vec![
            atom("in_sync"),
            Term::Atom(local.clone()),
            atom("true"),
        ])),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{FixInteger, List};

    fn t(v: Vec<Term>) -> Term {
        Term::Tuple(Tuple::from(v))
    }

    fn init_connect(vsn: Term, node: &str) -> Term {
        t(vec![
            atom("$gen_cast"),
            t(vec![
                atom("init_connect"),
                vsn,
                atom(node),
                t(vec![
                    atom("locker"),
                    atom("no_longer_a_pid"),
                    Term::List(List::nil()),
                    atom("x"),
                ]),
            ]),
        ])
    }

    fn int(i: i32) -> Term {
        Term::FixInteger(FixInteger::from(i))
    }

    #[test]
    fn answers_init_connect_of_any_version_from_its_sender() {
        let me = Atom::from("rn@h");
        let want = t(vec![
            atom("$gen_cast"),
            t(vec![atom("in_sync"), atom("rn@h"), atom("true")]),
        ]);
        for vsn in [
            t(vec![int(8), int(-576460752)]),
            t(vec![int(9), int(1), atom("future")]),
        ] {
            assert_eq!(
                answer(&init_connect(vsn, "a@h"), "a@h", &me),
                Some(want.clone())
            );
        }
        let v8 = || t(vec![int(8), int(1)]);
        assert_eq!(answer(&init_connect(v8(), "b@h"), "a@h", &me), None);
        assert_eq!(answer(&init_connect(int(8), "a@h"), "a@h", &me), None);
        let other = t(vec![
            atom("$gen_cast"),
            t(vec![atom("exchange"), atom("a@h"), atom("x"), atom("y")]),
        ]);
        assert_eq!(answer(&other, "a@h", &me), None);
    }
}
