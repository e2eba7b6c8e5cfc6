//! TEMPORARY STUB (tools branch only): the CLI's access to Erlang term text syntax.
//!
//! The real parser, `rexi_node::term::parse(&str) -> Result<eetf::Term, ParseError>`, is
//! being written in the phash2/term branch (issue 3). When it is merged, delete the `stub`
//! module below and keep only `pub use rexi_node::term::{parse, ParseError};`. Until then
//! this small parser covers what the tools' tests type: atoms (bare and quoted), integers,
//! floats, strings (as character lists, like Erlang), binaries `<<"...">>` and `<<1,2>>`,
//! tuples and lists.

pub use stub::parse;

mod stub {
    use eetf::{Atom, BigInteger, Binary, FixInteger, Float, List, Term, Tuple};

    #[derive(Debug)]
    pub struct ParseError(String);

    impl std::fmt::Display for ParseError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub fn parse(s: &str) -> Result<Term, ParseError> {
        let mut p = P {
            s: s.as_bytes(),
            i: 0,
            depth: 0,
        };
        let t = p.term()?;
        p.ws();
        if p.s.get(p.i) == Some(&b'.') {
            p.i += 1;
            p.ws();
        }
        if p.i != p.s.len() {
            return Err(p.err("unexpected text after the term"));
        }
        Ok(t)
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
        depth: usize,
    }

    impl P<'_> {
        fn err(&self, what: &str) -> ParseError {
            ParseError(format!("{what} at character {}", self.i + 1))
        }
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn term(&mut self) -> Result<Term, ParseError> {
            self.depth += 1;
            if self.depth > 1000 {
                return Err(self.err("term nested too deeply"));
            }
            let t = self.term_inner();
            self.depth -= 1;
            t
        }
        fn seq(&mut self, close: u8) -> Result<Vec<Term>, ParseError> {
            let mut v = Vec::new();
            if self.eat(close) {
                return Ok(v);
            }
            loop {
                v.push(self.term()?);
                if self.eat(close) {
                    return Ok(v);
                }
                if !self.eat(b',') {
                    return Err(self.err("expected ',' or a closing bracket"));
                }
            }
        }
        fn quoted(&mut self, q: u8) -> Result<String, ParseError> {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                match self.s.get(self.i) {
                    None => return Err(self.err("unterminated quote")),
                    Some(&c) if c == q => {
                        self.i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let e = self.s.get(self.i + 1).copied();
                        out.push(match e {
                            Some(b'n') => b'\n',
                            Some(b't') => b'\t',
                            Some(c) => c,
                            None => return Err(self.err("unterminated escape")),
                        });
                        self.i += 2;
                    }
                    Some(&c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
            String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"))
        }
        fn term_inner(&mut self) -> Result<Term, ParseError> {
            match self.peek() {
                None => Err(self.err("expected a term")),
                Some(b'{') => {
                    self.i += 1;
                    Ok(Term::Tuple(Tuple::from(self.seq(b'}')?)))
                }
                Some(b'[') => {
                    self.i += 1;
                    Ok(Term::List(List::from(self.seq(b']')?)))
                }
                Some(b'<') if self.s.get(self.i + 1) == Some(&b'<') => {
                    self.i += 2;
                    let mut bytes = Vec::new();
                    if self.eat(b'>') {
                        if self.eat(b'>') {
                            return Ok(Term::Binary(Binary::from(bytes)));
                        }
                        return Err(self.err("expected '>>'"));
                    }
                    loop {
                        if self.peek() == Some(b'"') {
                            bytes.extend(self.quoted(b'"')?.into_bytes());
                        } else {
                            match self.term()? {
                                Term::FixInteger(n) if (0..256).contains(&n.value) => {
                                    bytes.push(n.value as u8)
                                }
                                _ => return Err(self.err("a binary holds bytes 0..255 or strings")),
                            }
                        }
                        if self.eat(b'>') {
                            if self.eat(b'>') {
                                return Ok(Term::Binary(Binary::from(bytes)));
                            }
                            return Err(self.err("expected '>>'"));
                        }
                        if !self.eat(b',') {
                            return Err(self.err("expected ',' or '>>'"));
                        }
                    }
                }
                Some(b'"') => {
                    let s = self.quoted(b'"')?;
                    let chars: Vec<Term> = s
                        .chars()
                        .map(|c| Term::FixInteger(FixInteger::from(c as i32)))
                        .collect();
                    Ok(Term::List(List::from(chars)))
                }
                Some(b'\'') => Ok(Term::Atom(Atom::from(self.quoted(b'\'')?))),
                Some(c) if c.is_ascii_digit() || c == b'-' => {
                    let start = self.i;
                    self.i += 1;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E'))
                    {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i])
                        .map_err(|_| self.err("bad number"))?;
                    if text.contains(['.', 'e', 'E']) {
                        let v: f64 = text.parse().map_err(|_| self.err("bad float"))?;
                        return Ok(Term::Float(
                            Float::try_from(v).map_err(|_| self.err("bad float"))?,
                        ));
                    }
                    let v: i64 = text.parse().map_err(|_| self.err("bad integer"))?;
                    Ok(match i32::try_from(v) {
                        Ok(small) => Term::FixInteger(FixInteger::from(small)),
                        Err(_) => Term::BigInteger(BigInteger::from(v)),
                    })
                }
                Some(c) if c.is_ascii_lowercase() => {
                    let start = self.i;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@'))
                    {
                        self.i += 1;
                    }
                    let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    Ok(Term::Atom(Atom::from(name)))
                }
                Some(_) => Err(self.err("expected a term")),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_what_the_tools_take() {
            assert!(
                matches!(parse("{a, 1, 'B c', [x]}"), Ok(Term::Tuple(t)) if t.elements.len() == 4)
            );
            assert!(matches!(parse("<<\"hi\">>"), Ok(Term::Binary(b)) if b.bytes == b"hi"));
            assert!(matches!(parse("-7"), Ok(Term::FixInteger(i)) if i.value == -7));
            assert!(matches!(parse("\"ab\""), Ok(Term::List(l)) if l.elements.len() == 2));
            assert!(parse("{a,").is_err());
            assert!(parse("a b").is_err());
            assert!(matches!(parse("ok."), Ok(Term::Atom(a)) if a.name == "ok"));
        }
    }
}
