//! How a job ended, and what that becomes: a rexi reply to the caller, or the exit reason
//! of a spawned process (what `erpc` reads from its `'DOWN'`).

use crate::etf::Owned;
use eetf::{Atom, List, Term, Tuple};

fn atom(n: &str) -> Term {
    Term::Atom(Atom::from(n))
}

fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

fn nil() -> Term {
    Term::List(List::nil())
}

/// How a handler ended.
pub enum Outcome {
    Normal,
    /// `error(Reason)`: `{Reason, Stack}`, as rexi reports it.
    Error(Owned),
    /// An exit (rexi reports the reason bare).
    Exit(Owned),
}

impl Outcome {
    /// The reason rexi reports, or `None` for a normal end.
    pub fn rexi_reason(&self) -> Option<&Term> {
        match self {
            Outcome::Normal => None,
            Outcome::Error(r) | Outcome::Exit(r) => Some(r),
        }
    }
}

/// How a spawned process's end becomes its exit reason.
pub enum ExitShape {
    /// `erpc:execute_call(Res, M, F, A)`: `{Res, return, Value}`, `{Res, error, Reason,
    /// Stack}` or `{Res, exit, Reason}`.
    Call(Owned),
    /// `erpc:execute_cast/3` and a plain spawn: `normal`, or the failure as rexi reports it.
    Plain,
}

impl ExitShape {
    /// The exit reason for `outcome`; `value` is the handler's first reply (`ok` if none).
    pub fn exit_reason(&self, outcome: Outcome, value: Option<Owned>) -> Owned {
        let res = match self {
            ExitShape::Plain => {
                return match outcome {
                    Outcome::Normal => Owned::new(atom("normal")),
                    Outcome::Error(r) | Outcome::Exit(r) => r,
                }
            }
            ExitShape::Call(res) => res.copy().into_term(),
        };
        Owned::new(match outcome {
            Outcome::Normal => tuple(vec![
                res,
                atom("return"),
                value.map(Owned::into_term).unwrap_or_else(|| atom("ok")),
            ]),
            Outcome::Error(r) => match r.into_term() {
                Term::Tuple(mut t) if t.elements.len() == 2 => {
                    let stack = t.elements.pop().unwrap_or_else(nil);
                    let reason = t.elements.pop().unwrap_or_else(nil);
                    tuple(vec![res, atom("error"), reason, stack])
                }
                other => tuple(vec![res, atom("error"), other, nil()]),
            },
            Outcome::Exit(r) => tuple(vec![res, atom("exit"), r.into_term()]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(t: Term) -> Owned {
        Owned::new(t)
    }

    #[test]
    fn erpc_result_shapes() {
        let call = ExitShape::Call(o(atom("res")));
        let value = call.exit_reason(Outcome::Normal, Some(o(atom("v"))));
        assert_eq!(*value, tuple(vec![atom("res"), atom("return"), atom("v")]));
        let none = call.exit_reason(Outcome::Normal, None);
        assert_eq!(*none, tuple(vec![atom("res"), atom("return"), atom("ok")]));
        let err = call.exit_reason(Outcome::Error(o(tuple(vec![atom("boom"), nil()]))), None);
        assert_eq!(
            *err,
            tuple(vec![atom("res"), atom("error"), atom("boom"), nil()])
        );
        let exit = call.exit_reason(Outcome::Exit(o(atom("bye"))), None);
        assert_eq!(*exit, tuple(vec![atom("res"), atom("exit"), atom("bye")]));
        let plain = ExitShape::Plain.exit_reason(Outcome::Normal, Some(o(atom("v"))));
        assert_eq!(*plain, atom("normal"));
    }
}
