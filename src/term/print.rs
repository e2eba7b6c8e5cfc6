//! Printing an `eetf::Term` the way Erlang's `~tp` shows it, on one line.
//!
//! Operators paste what the CLI and the logs print back into `erl` or into `rexi-node
//! phash2`, so everything that has a literal syntax is printed as a literal that
//! the term parser and `erl_parse:parse_term/1` read back as the same term. Pids, ports,
//! refs and closures have no literal syntax; they are shown like Erlang shows them, with
//! the node name where Erlang would show a node index, because in a log the node is what
//! one wants to know.
//!
//! Like the hash, the printer keeps its own stack: a term nested 100,000 deep prints
//! without recursion.

use eetf::{InternalFun, Term};

use super::atom::{atom_text, escape_into};
use crate::etf::order;

/// The whole term as text.
pub fn print(t: &Term) -> String {
    let mut p = Printer {
        out: String::new(),
        chars: 0,
        limit: usize::MAX,
    };
    p.run(t);
    p.out
}

/// The term as text, cut to at most `max_chars` characters for a log line. A cut text
/// ends in `...` (within the limit), and printing stops there: a huge term costs no more
/// than its first `max_chars` characters.
pub fn print_truncated(t: &Term, max_chars: usize) -> String {
    let mut p = Printer {
        out: String::new(),
        chars: 0,
        limit: max_chars.saturating_add(1),
    };
    p.run(t);
    if p.chars <= max_chars {
        return p.out;
    }
    let keep = max_chars.saturating_sub(3);
    let mut s: String = p.out.chars().take(keep).collect();
    s.push_str(&"..."[..max_chars.min(3)]);
    s
}

/// Does `~p` show a list of these code points as a string? Exactly when every one is a
/// printable Latin-1 character (`io_lib:printable_latin1_list/1`, which is also what
/// `~tp` uses under the default `+pc latin1`): space to `~`, `\240` to `\377`, and the
/// escapes `\b \t \n \v \f \r \e`. So `[5000]` and `[7]` stay lists of numbers.
fn printable_latin1(c: u32) -> bool {
    matches!(c, 8..=13 | 27 | 32..=126 | 160..=255)
}

fn printable_ascii(b: u8) -> bool {
    b < 128 && printable_latin1(u32::from(b))
}

/// A float as Erlang prints it: the shortest digits that read back as the same double,
/// in whichever of decimal or scientific notation is shorter (decimal on a tie), always
/// with a `.`.
pub fn float_text(v: f64) -> String {
    // `{:e}` gives the shortest round-trip digits: "1.2345e-7", "1e16". When two digit
    // strings of that length both read back as `v` and `v` lies exactly between them,
    // Rust rounds up but Erlang (Ryu) takes the even one; the exact formatting with the
    // same number of digits rounds half to even, so prefer it when it reads back.
    let shortest = format!("{:e}", v.abs());
    let n = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let exact = format!("{:.*e}", n.saturating_sub(1), v.abs());
    let sci = if exact.parse::<f64>() == Ok(v.abs()) {
        exact
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let (first, rest) = digits.split_at(1.min(digits.len()));
    let rest = if rest.is_empty() { "0" } else { rest };
    let sci_form = format!("{first}.{rest}e{exp}");
    let dec_form = if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    // Erlang never writes an integral value of 2^53 or more in full: past 2^53 not every
    // integer is a double, and the digits would suggest a precision that is not there.
    let integral_beyond_2_53 = exp >= digits.len() as i32 - 1 && v.abs() >= 9007199254740992.0;
    let body = if dec_form.len() <= sci_form.len() && !integral_beyond_2_53 {
        dec_form
    } else {
        sci_form
    };
    if v.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

/// Pending output.
enum Item<'a> {
    Term(&'a Term),
    Lit(&'static str),
}

struct Printer {
    out: String,
    chars: usize,
    /// Stop once this many characters are out.
    limit: usize,
}

impl Printer {
    fn push(&mut self, s: &str) {
        self.chars += s.chars().count();
        self.out.push_str(s);
    }

    fn full(&self) -> bool {
        self.chars >= self.limit
    }

    fn run<'a>(&mut self, t: &'a Term) {
        let mut stack: Vec<Item<'a>> = vec![Item::Term(t)];
        while let Some(item) = stack.pop() {
            if self.full() {
                return;
            }
            match item {
                Item::Lit(s) => self.push(s),
                Item::Term(t) => self.term(t, &mut stack),
            }
        }
    }

    /// Pushes `elems` so that they pop first to last, separated by commas.
    fn elements<'a>(stack: &mut Vec<Item<'a>>, elems: &'a [Term]) {
        for (i, e) in elems.iter().enumerate().rev() {
            stack.push(Item::Term(e));
            if i > 0 {
                stack.push(Item::Lit(","));
            }
        }
    }

    fn term<'a>(&mut self, t: &'a Term, stack: &mut Vec<Item<'a>>) {
        match t {
            Term::Atom(a) => self.push(&atom_text(&a.name)),
            Term::FixInteger(i) => self.push(&i.value.to_string()),
            Term::BigInteger(i) => self.push(&i.value.to_string()),
            Term::Float(f) => self.push(&float_text(f.value)),
            Term::Binary(b) => self.bitstring(&b.bytes, None),
            Term::BitBinary(b) => match b.bytes.split_last() {
                Some((&last, whole)) if (1..8).contains(&b.tail_bits_size) => {
                    let r = b.tail_bits_size;
                    self.bitstring(whole, Some((last & ((1u8 << r) - 1), r)))
                }
                _ => self.bitstring(&b.bytes, None),
            },
            Term::ByteList(l) => {
                if l.bytes.is_empty() {
                    self.push("[]");
                } else if l.bytes.iter().all(|&b| printable_latin1(u32::from(b))) {
                    self.string(l.bytes.iter().map(|&b| u32::from(b)));
                } else {
                    self.numbers("[", l.bytes.iter(), "]");
                }
            }
            Term::List(l) => {
                let codes: Option<Vec<u32>> = l
                    .elements
                    .iter()
                    .map(|e| match e {
                        Term::FixInteger(i) => {
                            u32::try_from(i.value).ok().filter(|&c| printable_latin1(c))
                        }
                        _ => None,
                    })
                    .collect();
                match codes {
                    _ if l.elements.is_empty() => self.push("[]"),
                    Some(codes) => self.string(codes.into_iter()),
                    None => {
                        self.push("[");
                        stack.push(Item::Lit("]"));
                        Self::elements(stack, &l.elements);
                    }
                }
            }
            // `[ | T]` is just `T`; only a hand-built eetf term can look like that.
            Term::ImproperList(l) if l.elements.is_empty() => stack.push(Item::Term(&l.last)),
            Term::ImproperList(l) => {
                self.push("[");
                stack.push(Item::Lit("]"));
                stack.push(Item::Term(&l.last));
                stack.push(Item::Lit("|"));
                Self::elements(stack, &l.elements);
            }
            Term::Tuple(tu) => {
                self.push("{");
                stack.push(Item::Lit("}"));
                Self::elements(stack, &tu.elements);
            }
            Term::Map(m) => {
                self.push("#{");
                stack.push(Item::Lit("}"));
                // A HashMap has no stable order; Erlang shows a small map's keys in term
                // order, and so do we for every map (a large map's internal order cannot
                // be reproduced). Only keys nested beyond `order::MAX_DEPTH`, which our
                // decoder refuses by default, keep the HashMap's order.
                let pairs =
                    order::sorted_pairs(&m.map, 0).unwrap_or_else(|_| m.map.iter().collect());
                for (i, (k, v)) in pairs.into_iter().enumerate().rev() {
                    stack.push(Item::Term(v));
                    stack.push(Item::Lit(" => "));
                    stack.push(Item::Term(k));
                    if i > 0 {
                        stack.push(Item::Lit(","));
                    }
                }
            }
            Term::Pid(p) => self.push(&format!("<{}.{}.{}>", p.node.name, p.id, p.serial)),
            Term::Port(p) => self.push(&format!("#Port<{}.{}>", p.node.name, p.id)),
            Term::Reference(r) => {
                // Erlang shows the ID words most significant (last) first.
                let words: Vec<String> = r.id.iter().rev().map(|w| w.to_string()).collect();
                self.push(&format!("#Ref<{}.{}>", r.node.name, words.join(".")));
            }
            Term::ExternalFun(f) => self.push(&format!(
                "fun {}:{}/{}",
                atom_text(&f.module.name),
                atom_text(&f.function.name),
                f.arity
            )),
            Term::InternalFun(f) => match &**f {
                InternalFun::New {
                    module,
                    old_index,
                    old_uniq,
                    ..
                } => self.push(&format!("#Fun<{}.{}.{}>", module.name, old_index, old_uniq)),
                InternalFun::Old {
                    module,
                    index,
                    uniq,
                    ..
                } => self.push(&format!("#Fun<{}.{}.{}>", module.name, index, uniq)),
            },
        }
    }

    /// A `"…"` literal; stops early once the output is past the limit.
    fn literal(&self, codes: impl Iterator<Item = u32>) -> String {
        let mut s = String::from("\"");
        for c in codes {
            escape_into(&mut s, c, '"');
            if self.chars + s.len() > self.limit {
                break;
            }
        }
        s.push('"');
        s
    }

    fn string(&mut self, codes: impl Iterator<Item = u32>) {
        let s = self.literal(codes);
        self.push(&s);
    }

    fn numbers<'b>(&mut self, open: &str, bytes: impl Iterator<Item = &'b u8>, close: &str) {
        let mut s = String::from(open);
        for (i, b) in bytes.enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&b.to_string());
            if self.chars + s.len() > self.limit {
                break;
            }
        }
        s.push_str(close);
        self.push(&s);
    }

    /// A bitstring as `~tp` shows it: `<<"text">>` when every byte is printable ASCII,
    /// `<<"tëxt"/utf8>>` when the bytes are UTF-8 for printable Latin-1 characters,
    /// `<<"tëxt">>` when every byte is a printable Latin-1 character, else numbers; a
    /// bitstring with trailing bits is always numbers, the bits last as `T:R`.
    fn bitstring(&mut self, whole: &[u8], tail: Option<(u8, u8)>) {
        if let Some((t, r)) = tail {
            let close = if whole.is_empty() {
                format!("{t}:{r}>>")
            } else {
                format!(",{t}:{r}>>")
            };
            self.numbers("<<", whole.iter(), &close);
            return;
        }
        if whole.is_empty() {
            self.push("<<>>");
            return;
        }
        if whole.iter().all(|&b| printable_ascii(b)) {
            let lit = self.literal(whole.iter().map(|&b| u32::from(b)));
            self.push(&format!("<<{lit}>>"));
            return;
        }
        if let Ok(text) = std::str::from_utf8(whole) {
            if text.chars().all(|c| printable_latin1(c as u32)) {
                let lit = self.literal(text.chars().map(|c| c as u32));
                self.push(&format!("<<{lit}/utf8>>"));
                return;
            }
        }
        if whole.iter().all(|&b| printable_latin1(u32::from(b))) {
            let lit = self.literal(whole.iter().map(|&b| u32::from(b)));
            self.push(&format!("<<{lit}>>"));
            return;
        }
        self.numbers("<<", whole.iter(), ">>");
    }
}
