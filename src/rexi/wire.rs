//! Reading a doit in place, from the bytes of the frame that carried it.
//!
//! Nearly every message a rexi server gets is a doit:
//! `{'$gen_cast', {doit, {CallerPid, Ref}, Nonce, {M, F, Args}}}`. Decoded whole, its
//! envelope costs four tuples, four atoms (a `String` each) and a walk to free them, all
//! thrown away by [`super::protocol::parse`] a moment later. Here the envelope is walked
//! as bytes: the tuple headers and the atoms `'$gen_cast'` and `doit` are compared in
//! place, M and F are read as strings, the caller's pid and the Ref are kept as the bytes
//! they are ([`ReplyTo`]), and only the nonce and the arguments go through the guarded
//! decoder ([`crate::etf::decode_at`]), with the frame's limits and memory budget.
//!
//! Anything else (a kill, a call, a compressed payload, a doit of an unusual shape) is
//! `None`: the caller decodes the message whole and takes the ordinary path, so
//! every answer stays the one [`super::protocol::parse`] gives. This reader only ever
//! says "a well-formed doit" or "not for me"; bytes that do not decode at all are the
//! whole decoder's to report.

use super::protocol::{list_elements, Args, Doit, Nonce};
use super::reply_to::ReplyTo;
use crate::etf::{self, dispose, tags, Budget, Limits, Owned};
use eetf::Term;

/// The nonce rexi sends unless the caller set one, `undefined`, as OTP writes it.
const UNDEFINED: &[u8] = &[
    tags::SMALL_ATOM_UTF8_EXT,
    9,
    b'u',
    b'n',
    b'd',
    b'e',
    b'f',
    b'i',
    b'n',
    b'e',
    b'd',
];

/// A cursor over the payload.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    /// Steps over `expected` if the bytes here are exactly that.
    fn skip(&mut self, expected: &[u8]) -> bool {
        let here = self.bytes.get(self.pos..).unwrap_or(&[]);
        if here.starts_with(expected) {
            self.pos += expected.len();
            true
        } else {
            false
        }
    }

    /// A `SMALL_TUPLE_EXT` header; its arity.
    fn tuple(&mut self) -> Option<u8> {
        (self.byte()? == tags::SMALL_TUPLE_EXT).then_some(())?;
        self.byte()
    }

    /// An atom's text, when it is plain ASCII (every atom rexi sends, and the names of
    /// every handler; others take the whole decoder, which knows Latin-1). ASCII has one
    /// byte per character, so an atom of more bytes than the BEAM's 255 characters is left
    /// to the whole decoder, which refuses it.
    fn atom(&mut self) -> Option<&'a str> {
        let n = match self.byte()? {
            tags::SMALL_ATOM_UTF8_EXT | tags::SMALL_ATOM_EXT => self.byte()? as usize,
            tags::ATOM_UTF8_EXT | tags::ATOM_EXT => {
                let b = self.take(2)?;
                u16::from_be_bytes([b[0], b[1]]) as usize
            }
            _ => return None,
        };
        if n > tags::MAX_ATOM_CHARS {
            return None;
        }
        let text = self.take(n)?;
        if !text.is_ascii() {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    /// The next term, decoded by the guarded decoder, `depth` containers deep.
    fn term(&mut self, depth: usize, limits: &Limits, budget: &mut Budget) -> Option<Term> {
        let (t, end) = etf::decode_at(self.bytes, self.pos, depth, limits, budget).ok()?;
        self.pos = end;
        Some(t)
    }
}

/// Reads `bytes` (a message payload, version byte first) as a doit if it is one; `None`:
/// not a well-formed doit, decode the whole message and parse it as a term. What it
/// decodes is charged to `budget`; on `None` it is freed (without recursion: everything
/// decoded is held in an [`Owned`], is shallow, or goes through [`dispose`]).
pub fn read<'a>(bytes: &'a [u8], limits: &Limits, budget: &mut Budget) -> Option<Doit<'a>> {
    let c = &mut Cursor { bytes, pos: 0 };
    (c.byte()? == tags::VERSION).then_some(())?;
    // {'$gen_cast', {doit, From, Nonce, MFA}} or the pre-2010 {doit, From, MFA}.
    (c.tuple()? == 2 && c.atom()? == "$gen_cast").then_some(())?;
    let n = c.tuple()?;
    (matches!(n, 3 | 4) && c.atom()? == "doit").then_some(())?;
    // From = {CallerPid, Ref}: depths as the whole decoder counts them (the outer tuple
    // is 0, the doit tuple 1, From 2, its elements 3).
    (c.tuple()? == 2).then_some(())?;
    let to = match ReplyTo::read(c.bytes, c.pos, budget) {
        Some((to, end)) => {
            c.pos = end;
            to
        }
        // Another encoding of a pid or Ref (or not a pid and a Ref at all).
        None => {
            let caller = match c.term(3, limits, budget)? {
                Term::Pid(p) => p,
                other => return dispose_none(other),
            };
            let reference = match c.term(3, limits, budget)? {
                Term::Reference(r) => *r,
                other => return dispose_none(other),
            };
            ReplyTo::new(&caller, &reference)?
        }
    };
    let nonce = match n {
        4 if c.skip(UNDEFINED) => Nonce::Undefined,
        4 => Nonce::new(Owned::new(c.term(2, limits, budget)?)),
        _ => Nonce::Undefined,
    };
    (c.tuple()? == 3).then_some(())?;
    let module = c.atom()?;
    let function = c.atom()?;
    let args = c.term(3, limits, budget)?;
    if c.pos != c.bytes.len() {
        // Trailing bytes: the whole decoder says what is wrong.
        return dispose_none(args);
    }
    let args = match list_elements(args) {
        Ok(v) => v,
        Err(other) => return dispose_none(other),
    };
    Some(Doit {
        to,
        nonce,
        module: module.into(),
        function: function.into(),
        args: Args::new(args),
    })
}

/// Frees a term that may be deep (without recursion) and gives up.
fn dispose_none<'a>(t: Term) -> Option<Doit<'a>> {
    dispose(t);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rexi::protocol::{self, Request};
    use eetf::Atom;

    fn limits() -> Limits {
        Limits::default()
    }

    fn encode(t: &Term) -> Vec<u8> {
        let mut v = Vec::new();
        etf::encode(t, &mut v).expect("encode");
        v
    }

    fn read_bytes(b: &[u8]) -> Option<Doit<'_>> {
        read(b, &limits(), &mut Budget::new(&limits()))
    }

    fn doit_term(nonce: Option<Term>, m: &str, args: Term) -> Term {
        let from = protocol::tuple(vec![
            Term::Pid(eetf::Pid::new("caller@127.0.0.1", 7, 1, 3)),
            Term::Reference(Box::new(eetf::Reference {
                node: Atom::from("caller@127.0.0.1"),
                id: vec![1, 2, 3],
                creation: 3,
            })),
        ]);
        let mfa = protocol::tuple(vec![protocol::atom(m), protocol::atom("echo"), args]);
        let mut body = vec![protocol::atom("doit"), from];
        body.extend(nonce);
        body.push(mfa);
        protocol::tuple(vec![protocol::atom("$gen_cast"), protocol::tuple(body)])
    }

    /// What the whole decoder and `protocol::parse` make of the same bytes.
    fn parsed(b: &[u8]) -> Request {
        protocol::parse(Owned::new(etf::decode(b, &limits()).expect("decodes")))
    }

    fn same_doit(a: &Doit, b: &Doit) {
        assert_eq!(a.to, b.to);
        assert_eq!(a.nonce.term(), b.nonce.term());
        assert_eq!((&a.module, &a.function), (&b.module, &b.function));
        assert_eq!(
            a.args.iter().collect::<Vec<_>>(),
            b.args.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_doit_reads_as_the_whole_decoder_parses_it() {
        let args = [
            Term::List(eetf::List::nil()),
            Term::List(eetf::List::from(vec![Term::Binary(eetf::Binary::from(
                vec![1u8; 16],
            ))])),
            // A list of small integers travels as STRING_EXT.
            Term::ByteList(eetf::ByteList::from(vec![1u8, 2, 3])),
        ];
        for a in args {
            for nonce in [
                None,
                Some(protocol::atom("undefined")),
                Some(protocol::tuple(vec![])),
            ] {
                let b = encode(&doit_term(nonce, "rexi_node", a.clone()));
                let (Some(fast), Request::Doit(whole)) = (read_bytes(&b), parsed(&b)) else {
                    panic!("both read a doit");
                };
                same_doit(&fast, &whole);
            }
        }
    }

    #[test]
    fn anything_unusual_is_left_to_the_whole_decoder() {
        let list = Term::List(eetf::List::nil());
        let improper = Term::ImproperList(eetf::ImproperList::from((
            vec![protocol::atom("a")],
            protocol::atom("b"),
        )));
        let mut trailing = encode(&doit_term(None, "m", list.clone()));
        trailing.push(106);
        let cases = [
            encode(&doit_term(None, "m", improper)),
            // A non-ASCII module name: Latin-1 or UTF-8, the whole decoder knows.
            encode(&doit_term(None, "mödule", list.clone())),
            trailing,
            encode(&protocol::tuple(vec![
                protocol::atom("$gen_cast"),
                protocol::tuple(vec![protocol::atom("kill"), list.clone()]),
            ])),
            encode(&protocol::atom("doit")),
            vec![131],
            vec![],
        ];
        for b in cases {
            assert!(read_bytes(&b).is_none(), "{b:?}");
        }
    }

    #[test]
    fn an_atom_the_whole_decoder_refuses_is_not_read_in_place() {
        // A 300-character ASCII module as ATOM_UTF8_EXT: the BEAM allows 255 characters,
        // so the whole decoder refuses the frame, and the in-place reader must not take it
        // as a doit. (Our encoder refuses such an atom, so it is spliced in by hand.)
        let short = encode(&doit_term(None, "m", Term::List(eetf::List::nil())));
        let at = short
            .windows(3)
            .position(|w| w == [tags::SMALL_ATOM_UTF8_EXT, 1, b'm'])
            .expect("the module atom");
        let mut b = short[..at].to_vec();
        b.extend_from_slice(&[tags::ATOM_UTF8_EXT, 1, 44]);
        b.extend_from_slice(&[b'm'; 300]);
        b.extend_from_slice(&short[at + 3..]);
        assert!(etf::decode(&b, &limits()).is_err());
        assert!(read_bytes(&b).is_none());
    }

    #[test]
    fn every_cut_of_a_doit_is_other_and_never_panics() {
        let b = encode(&doit_term(
            Some(protocol::atom("n")),
            "rexi_node",
            Term::List(eetf::List::from(vec![protocol::atom("x")])),
        ));
        for end in 0..b.len() {
            assert!(read_bytes(&b[..end]).is_none(), "cut at {end}");
        }
        assert!(read_bytes(&b).is_some());
    }

    #[test]
    fn the_frame_budget_bounds_what_the_arguments_may_allocate() {
        let big = Term::List(eetf::List::from(vec![Term::List(eetf::List::from(
            (0..1000)
                .map(|i| Term::FixInteger(eetf::FixInteger::from(i)))
                .collect::<Vec<_>>(),
        ))]));
        let b = encode(&doit_term(None, "rexi_node", big));
        let tight = Limits {
            max_term_memory: 4096,
            ..Limits::default()
        };
        assert!(read(&b, &tight, &mut Budget::new(&tight)).is_none());
        assert!(
            etf::decode(&b, &tight).is_err(),
            "and the whole decoder refuses it too"
        );
    }
}
