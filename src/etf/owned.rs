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
    /// terms are cloned (bounded recursion, the fast path); deeper ones go through the
    /// iterative encoder and decoder, which cost about the same per term as a clone.
    pub fn copy(&self) -> Owned {
        if depth_within(&self.0, PLAIN_DROP_DEPTH) {
            return Owned(self.0.clone());
        }
        let mut bytes = Vec::new();
        let unlimited = super::Limits {
            max_depth: usize::MAX,
            max_bignum_bytes: usize::MAX,
            ..super::Limits::default()
        };
        match super::encode(&self.0, &mut bytes).map(|_| super::decode(&bytes, &unlimited)) {
            Ok(Ok(t)) => Owned(t),
            // Every decoded term encodes and decodes again; a term built in Rust that
            // cannot be encoded (an atom too long) is copied as far as it can be.
            _ => Owned(summary(&self.0, SummaryLimits::default())),
        }
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
        match summary(&wide, SummaryLimits::default()) {
            Term::List(l) => assert_eq!(l.elements.len(), 256),
            _ => panic!(),
        }
    }
}
