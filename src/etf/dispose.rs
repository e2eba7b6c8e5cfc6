//! Dropping a term without recursion.
//!
//! `eetf::Term` derives `Drop` (through its `Vec`s, `Box`es and `HashMap`), so dropping
//! a term recurses once per level: a 40,000-deep term overflows a 2 MiB tokio worker.
//! [`dispose`] instead detaches every container's children before the container
//! itself is dropped, so each actual `drop` sees a shallow term. The first levels are
//! taken apart by bounded recursion (no allocation for ordinary terms); deeper pending
//! children wait on a heap stack of iterators, one (or two, for a map pair) per level.

use std::collections::{hash_map, HashMap};

use eetf::{InternalFun, List, Term};

enum Pending {
    Terms(std::vec::IntoIter<Term>),
    Pairs(hash_map::IntoIter<Term, Term>),
    One(Term),
}

/// How many levels [`dispose`] takes apart by plain (bounded) recursion before it
/// hands the rest to its heap stack. Most terms are shallow, and this way disposing of
/// them allocates nothing; a level costs well under 200 bytes of stack.
const RECURSION_BUDGET: u32 = 24;

/// Terms no deeper than this are dropped the ordinary way: the derived `Drop` is the
/// fastest, and at this depth its recursion needs only a few KiB of stack.
pub(crate) const PLAIN_DROP_DEPTH: u32 = 48;

/// Drops `term` iteratively; safe for any depth.
pub fn dispose(term: Term) {
    if depth_within(&term, PLAIN_DROP_DEPTH) {
        drop(term);
        return;
    }
    let mut stack = Vec::new(); // allocates only if the term is deeper than the budget
    shallow(term, &mut stack, RECURSION_BUDGET);
    drain(&mut stack);
}

/// Whether `t` nests no deeper than `budget` containers. Reads only, and recurses at
/// most `budget` levels.
pub(crate) fn depth_within(t: &Term, budget: u32) -> bool {
    let kids = |v: &[Term]| {
        v.iter()
            .all(|c| !has_children(c) || (budget > 1 && depth_within(c, budget - 1)))
    };
    match t {
        Term::List(l) => kids(&l.elements),
        Term::Tuple(x) => kids(&x.elements),
        Term::ImproperList(l) => {
            kids(&l.elements)
                && (!has_children(&l.last) || (budget > 1 && depth_within(&l.last, budget - 1)))
        }
        Term::Map(m) => m.map.iter().all(|(k, v)| {
            (!has_children(k) || (budget > 1 && depth_within(k, budget - 1)))
                && (!has_children(v) || (budget > 1 && depth_within(v, budget - 1)))
        }),
        Term::InternalFun(f) => match &**f {
            InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => {
                kids(free_vars)
            }
        },
        _ => true,
    }
}

/// Takes `term` apart recursively for at most `budget` levels; deeper children go on
/// `stack`.
fn shallow(mut term: Term, stack: &mut Vec<Pending>, budget: u32) {
    if budget == 0 {
        if has_children(&term) {
            stack.push(Pending::One(term));
        }
        return;
    }
    match &mut term {
        Term::List(l) => each(std::mem::take(&mut l.elements), stack, budget),
        Term::Tuple(t) => each(std::mem::take(&mut t.elements), stack, budget),
        Term::ImproperList(l) => {
            each(std::mem::take(&mut l.elements), stack, budget);
            let last = std::mem::replace(
                &mut *l.last,
                Term::List(List {
                    elements: Vec::new(),
                }),
            );
            shallow(last, stack, budget - 1);
        }
        Term::Map(m) if !m.map.is_empty() => {
            for (k, v) in std::mem::take(&mut m.map) {
                shallow(k, stack, budget - 1);
                shallow(v, stack, budget - 1);
            }
        }
        Term::InternalFun(f) => match &mut **f {
            InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => {
                each(std::mem::take(free_vars), stack, budget)
            }
        },
        _ => {}
    }
}

#[inline]
fn each(v: Vec<Term>, stack: &mut Vec<Pending>, budget: u32) {
    for t in v {
        if has_children(&t) {
            shallow(t, stack, budget - 1);
        }
    }
}

/// Drops a vector of terms iteratively.
pub(crate) fn dispose_vec(terms: Vec<Term>) {
    if terms.is_empty() {
        return;
    }
    let mut stack = vec![Pending::Terms(terms.into_iter())];
    drain(&mut stack);
}

fn drain(stack: &mut Vec<Pending>) {
    loop {
        let (first, second) = match stack.last_mut() {
            None => return,
            Some(Pending::Terms(it)) => match it.next() {
                Some(t) => (t, None),
                None => {
                    stack.pop();
                    continue;
                }
            },
            Some(Pending::Pairs(it)) => match it.next() {
                Some((k, v)) => (k, Some(v)),
                None => {
                    stack.pop();
                    continue;
                }
            },
            Some(Pending::One(_)) => match stack.pop() {
                Some(Pending::One(t)) => (t, None),
                _ => continue,
            },
        };
        detach(first, stack);
        if let Some(v) = second {
            detach(v, stack);
        }
    }
}

/// Moves the children of `term` (if any) onto `stack`, then drops the now shallow term.
#[inline]
fn detach(mut term: Term, stack: &mut Vec<Pending>) {
    match &mut term {
        Term::List(l) => push_vec(std::mem::take(&mut l.elements), stack),
        Term::Tuple(t) => push_vec(std::mem::take(&mut t.elements), stack),
        Term::ImproperList(l) => {
            push_vec(std::mem::take(&mut l.elements), stack);
            let last = std::mem::replace(
                &mut *l.last,
                Term::List(List {
                    elements: Vec::new(),
                }),
            );
            if has_children(&last) {
                stack.push(Pending::One(last));
            }
        }
        Term::Map(m) if !m.map.is_empty() => {
            let map: HashMap<Term, Term> = std::mem::take(&mut m.map);
            stack.push(Pending::Pairs(map.into_iter()));
        }
        Term::InternalFun(f) => match &mut **f {
            InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => {
                push_vec(std::mem::take(free_vars), stack)
            }
        },
        _ => {}
    }
    // `term` drops here, with no term children left.
}

#[inline]
fn push_vec(v: Vec<Term>, stack: &mut Vec<Pending>) {
    if !v.is_empty() {
        stack.push(Pending::Terms(v.into_iter()));
    }
}

#[inline]
fn has_children(t: &Term) -> bool {
    match t {
        Term::List(l) => !l.elements.is_empty(),
        Term::Tuple(t) => !t.elements.is_empty(),
        Term::ImproperList(_) => true,
        Term::Map(m) => !m.map.is_empty(),
        Term::InternalFun(_) => true,
        _ => false,
    }
}
