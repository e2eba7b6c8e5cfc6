//! [`Owned`]: a term that frees itself without recursion, and [`summary`]: a bounded copy.
//!
//! `eetf::Term`'s derived `Drop` and `Clone` recurse once per level, so a term a peer sent
//! (a compressed frame of 2 KB can hold a term nested a million deep) must never be
//! dropped or cloned as a bare `Term` on a tokio worker's stack. Every layer that carries
//! such a term (control messages, signals, mailboxes, job state, handler arguments)
//! holds it in an [`Owned`], whose `Drop` is [`dispose`]: then forgetting a term on an
//! error path is safe by construction, not by convention. Where a copy is wanted (the
//! error ring, logs) [`summary`] copies a bounded prefix instead of cloning.

use super::dispose::{depth_within, dispose, PLAIN_DROP_DEPTH};
use eetf::{List, Term};

/// A term that is [`dispose`]d, not dropped recursively, when it goes out of scope.
///
/// Deliberately not `Clone` (a clone recurses) and with a shallow `Debug`. Reading is
/// through `Deref<Target = Term>`; [`Owned::into_term`] hands the bare term to code that
/// consumes it safely (the encoder, or a container that is itself `Owned`).
///
/// Dropping a shallow term costs one depth check of at most a few levels (see
/// [`dispose`]), so the hot path (an atom, a small tuple) pays almost nothing.
pub struct Owned(Term);

impl Owned {
    pub fn new(term: Term) -> Self {
        Owned(term)
    }

    /// `[]`, which owns nothing.
    pub fn nil() -> Self {
        Owned(nil())
    }

    /// The bare term; the caller becomes responsible for dropping it without recursion.
    pub fn into_term(mut self) -> Term {
        std::mem::replace(&mut self.0, nil())
    }

    /// An exact copy, at any depth, without recursion: what `clone` would give. Shallow
    /// terms are cloned (bounded recursion, the fast path); deeper ones are copied with an
    /// explicit stack.
    pub fn copy(&self) -> Owned {
        if depth_within(&self.0, PLAIN_DROP_DEPTH) {
            return Owned(self.0.clone());
        }
        Owned(deep_copy(&self.0))
    }

    /// Takes the term out, leaving `[]` behind.
    pub fn take(&mut self) -> Term {
        std::mem::replace(&mut self.0, nil())
    }
}

fn nil() -> Term {
    // An empty Vec does not allocate.
    Term::List(List {
        elements: Vec::new(),
    })
}

impl Default for Owned {
    fn default() -> Self {
        Owned::nil()
    }
}

impl std::fmt::Debug for Owned {
    /// Shallow on purpose: `Term`'s own `Debug` recurses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owned(..)")
    }
}

impl From<Term> for Owned {
    fn from(term: Term) -> Self {
        Owned::new(term)
    }
}

impl std::ops::Deref for Owned {
    type Target = Term;
    fn deref(&self) -> &Term {
        &self.0
    }
}

impl std::ops::DerefMut for Owned {
    fn deref_mut(&mut self) -> &mut Term {
        &mut self.0
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        dispose(std::mem::replace(&mut self.0, nil()));
    }
}

/// A container being copied: its children still to copy and the copies made so far.
enum Shell<'a> {
    Seq {
        kind: SeqKind<'a>,
        todo: std::slice::Iter<'a, Term>,
        done: Vec<Term>,
    },
    Map {
        todo: std::collections::hash_map::Iter<'a, Term, Term>,
        done: std::collections::HashMap<Term, Term>,
        key: Option<Term>,
    },
}

#[derive(Clone, Copy)]
enum SeqKind<'a> {
    List,
    Tuple,
    /// An improper list; its tail is copied after the elements (`None` once handed out).
    Improper(Option<&'a Term>),
}

impl<'a> Shell<'a> {
    /// The shell of `t` when it has children to copy; `None` for a leaf.
    fn open(t: &'a Term) -> Option<Shell<'a>> {
        let seq = |kind, v: &'a Vec<Term>| Shell::Seq {
            kind,
            todo: v.iter(),
            done: Vec::with_capacity(v.len()),
        };
        match t {
            Term::List(l) if !l.elements.is_empty() => Some(seq(SeqKind::List, &l.elements)),
            Term::Tuple(x) if !x.elements.is_empty() => Some(seq(SeqKind::Tuple, &x.elements)),
            Term::ImproperList(l) => Some(seq(SeqKind::Improper(Some(&l.last)), &l.elements)),
            Term::Map(m) if !m.map.is_empty() => Some(Shell::Map {
                todo: m.map.iter(),
                done: std::collections::HashMap::with_capacity(m.map.len()),
                key: None,
            }),
            _ => None,
        }
    }

    /// The next child to copy. Map keys are cloned here: the decoder bounds their depth
    /// (`Limits::max_map_key_depth`), so that recursion is bounded.
    fn next_child(&mut self) -> Option<&'a Term> {
        match self {
            Shell::Seq { kind, todo, .. } => todo.next().or_else(|| match kind {
                SeqKind::Improper(last) => last.take(),
                _ => None,
            }),
            Shell::Map { todo, key, .. } => todo.next().map(|(k, v)| {
                *key = Some(k.clone());
                v
            }),
        }
    }

    fn accept(&mut self, v: Term) {
        match self {
            Shell::Seq { done, .. } => done.push(v),
            Shell::Map { done, key, .. } => {
                if let Some(k) = key.take() {
                    done.insert(k, v);
                }
            }
        }
    }

    fn finish(self) -> Term {
        match self {
            Shell::Seq {
                kind: SeqKind::List,
                done,
                ..
            } => Term::List(List::from(done)),
            Shell::Seq {
                kind: SeqKind::Tuple,
                done,
                ..
            } => Term::Tuple(eetf::Tuple::from(done)),
            Shell::Seq { mut done, .. } => {
                let last = done.pop().unwrap_or_else(nil);
                Term::ImproperList(eetf::ImproperList::from((done, last)))
            }
            Shell::Map { done, .. } => Term::Map(eetf::Map { map: done }),
        }
    }
}

/// `t.clone()` with a heap stack instead of recursion. A fun's environment is the one
/// place cloned by plain recursion (funs do not cross rexi in practice; the decoder bounds
/// their nesting like everything else).
fn deep_copy(t: &Term) -> Term {
    let mut stack: Vec<Shell> = Vec::new();
    let mut next = t;
    loop {
        let mut value = match Shell::open(next) {
            Some(shell) => {
                stack.push(shell);
                None
            }
            None => Some(next.clone()),
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return value.unwrap_or_else(nil);
            };
            if let Some(v) = value.take() {
                top.accept(v);
            }
            match top.next_child() {
                Some(child) => {
                    next = child;
                    break;
                }
                None => {
                    let shell = stack.pop().map(Shell::finish);
                    value = shell;
                }
            }
        }
    }
}

/// How much of a term [`summary`] copies.
#[derive(Debug, Clone, Copy)]
pub struct SummaryLimits {
    /// Containers nested deeper than this are replaced by `'...'`.
    pub max_depth: usize,
    /// Terms copied in all; the rest of each container is replaced by one `'...'`.
    pub max_terms: usize,
    /// Bytes kept of each binary (and characters of each byte list).
    pub max_bytes: usize,
}

impl Default for SummaryLimits {
    /// About 16 KiB of copy at most: enough to read a real error reason.
    fn default() -> Self {
        SummaryLimits {
            max_depth: 16,
            max_terms: 256,
            max_bytes: 1024,
        }
    }
}

/// A bounded copy of `t`: a prefix of it, with whatever lies beyond `limits` replaced by
/// the atom `'...'`. Recurses at most `max_depth` levels and copies at most `max_terms`
/// terms, whatever `t` is, so it is the safe alternative to `t.clone()` for keeping a
/// peer's term (the error ring) or showing it.
pub fn summary(t: &Term, limits: SummaryLimits) -> Term {
    let mut budget = limits.max_terms;
    copy(t, limits.max_depth, &mut budget, &limits)
}

/// [`summary`] of the list of `items` (a call's arguments), as if they were one list,
/// with one budget for all of them and without building that list first.
pub fn summary_list<'a>(items: impl IntoIterator<Item = &'a Term>, limits: SummaryLimits) -> Term {
    let mut budget = limits.max_terms.saturating_sub(1);
    let depth = limits.max_depth.saturating_sub(1);
    let mut out = Vec::new();
    for e in items {
        if budget == 0 {
            out.push(cut());
            break;
        }
        out.push(copy(e, depth, &mut budget, &limits));
    }
    Term::List(List::from(out))
}

fn cut() -> Term {
    Term::Atom(eetf::Atom::from("..."))
}

fn copy(t: &Term, depth: usize, budget: &mut usize, l: &SummaryLimits) -> Term {
    if *budget == 0 {
        return cut();
    }
    *budget -= 1;
    let many = |v: &[Term], budget: &mut usize| -> Vec<Term> {
        let mut out = Vec::with_capacity(v.len().min(*budget + 1));
        for e in v {
            if *budget == 0 {
                out.push(cut());
                break;
            }
            out.push(copy(e, depth - 1, budget, l));
        }
        out
    };
    match t {
        Term::List(x) if !x.elements.is_empty() => {
            if depth == 0 {
                return cut();
            }
            Term::List(List::from(many(&x.elements, budget)))
        }
        Term::Tuple(x) if !x.elements.is_empty() => {
            if depth == 0 {
                return cut();
            }
            Term::Tuple(eetf::Tuple::from(many(&x.elements, budget)))
        }
        Term::ImproperList(x) => {
            if depth == 0 {
                return cut();
            }
            let elements = many(&x.elements, budget);
            let last = copy(&x.last, depth - 1, budget, l);
            Term::ImproperList(eetf::ImproperList::from((elements, last)))
        }
        Term::Map(m) if !m.map.is_empty() => {
            if depth == 0 {
                return cut();
            }
            let mut out = std::collections::HashMap::new();
            for (k, v) in m.map.iter() {
                if *budget == 0 {
                    break;
                }
                let k = copy(k, depth - 1, budget, l);
                let v = copy(v, depth - 1, budget, l);
                out.insert(k, v);
            }
            Term::Map(eetf::Map { map: out })
        }
        Term::InternalFun(_) => cut(),
        Term::Binary(b) if b.bytes.len() > l.max_bytes => {
            Term::Binary(eetf::Binary::from(b.bytes[..l.max_bytes].to_vec()))
        }
        Term::BitBinary(b) if b.bytes.len() > l.max_bytes => {
            Term::Binary(eetf::Binary::from(b.bytes[..l.max_bytes].to_vec()))
        }
        Term::ByteList(b) if b.bytes.len() > l.max_bytes => {
            Term::ByteList(eetf::ByteList::from(b.bytes[..l.max_bytes].to_vec()))
        }
        // Leaves: atoms, numbers, pids, refs, short binaries. Atoms and bignums are
        // bounded by the decoder's limits.
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eetf::{Atom, Tuple};

    fn deep(n: usize) -> Term {
        let mut t = Term::Atom(Atom::from("leaf"));
        for _ in 0..n {
            t = Term::Tuple(Tuple::from(vec![t]));
        }
        t
    }

    #[test]
    fn drop_of_a_million_deep_term_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let t = Owned::new(deep(1_000_000));
                drop(t);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn copy_is_exact_at_any_depth() {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| {
                let mut t = Term::ImproperList(eetf::ImproperList::from((
                    vec![Term::Atom(Atom::from("a"))],
                    Term::Atom(Atom::from("tail")),
                )));
                for i in 0..200_000 {
                    t = match i % 3 {
                        0 => Term::Tuple(Tuple::from(vec![t, Term::Atom(Atom::from("x"))])),
                        1 => Term::List(List::from(vec![Term::Atom(Atom::from("y")), t])),
                        _ => {
                            let mut m = std::collections::HashMap::new();
                            m.insert(Term::Atom(Atom::from("k")), t);
                            Term::Map(eetf::Map { map: m })
                        }
                    };
                }
                let a = Owned::new(t);
                let b = a.copy();
                let (mut x, mut y) = (Vec::new(), Vec::new());
                crate::etf::encode(&a, &mut x).unwrap();
                crate::etf::encode(&b, &mut y).unwrap();
                assert!(x == y, "the copy differs");
                let small = Owned::new(Term::Atom(Atom::from("s")));
                assert_eq!(*small.copy(), *small);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn summary_is_bounded_and_exact_for_small_terms() {
        let small = Term::Tuple(Tuple::from(vec![
            Term::Atom(Atom::from("a")),
            Term::List(List::from(vec![Term::Atom(Atom::from("b"))])),
        ]));
        assert_eq!(summary(&small, SummaryLimits::default()), small);
        let big = Owned::new(deep(100_000));
        let s = Owned::new(summary(&big, SummaryLimits::default()));
        let mut depth = 0;
        let mut t: &Term = &s;
        while let Term::Tuple(x) = t {
            depth += 1;
            t = &x.elements[0];
        }
        assert_eq!(depth, 16);
        assert_eq!(*t, Term::Atom(Atom::from("...")));
        let wide = Term::List(List::from(vec![Term::Atom(Atom::from("x")); 10_000]));
        let args = [wide.clone(), deep(100), Term::Atom(Atom::from("y"))];
        assert_eq!(
            summary_list(args.iter(), SummaryLimits::default()),
            summary(
                &Term::List(List::from(args.to_vec())),
                SummaryLimits::default()
            )
        );
        match summary(&wide, SummaryLimits::default()) {
            Term::List(l) => assert_eq!(l.elements.len(), 256),
            _ => panic!(),
        }
    }
}
