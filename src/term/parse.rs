//! Parsing Erlang term syntax, as an operator types it, into an `eetf::Term`.
//!
//! The accepted language is what `erl_parse:parse_term/1` accepts for literals, plus a
//! final optional `.`: atoms (bare or quoted, with escapes), integers of any size with
//! `Base#Digits` and `_` separators, floats, `$c` characters, strings, bit syntax with
//! literal segments, lists, tuples, maps and `fun M:F/A`. Pids, refs and closures have no
//! literal syntax in Erlang, so they are not accepted here either.
//!
//! The parser keeps its own stack of open containers instead of recursing: the text comes
//! from a command line or a file, and `[[[[…]]]]` a hundred thousand deep must produce an
//! error or a term, never a stack overflow.

use std::collections::HashMap;
use std::fmt;

use eetf::{Atom, BigInteger, BitBinary, ByteList, ExternalFun, FixInteger, Float, ImproperList};
use eetf::{List, Map, Term, Tuple};
use num_bigint::{BigInt, Sign};
use num_traits::{ToPrimitive, Zero};

use super::atom::{atom_text, is_atom_start, is_name_char, MAX_ATOM_CHARS, RESERVED};

/// The largest bitstring the parser builds, in bits (16 MiB). A typo such as
/// `<<0:99999999999>>` should be an error, not an allocation of gigabytes.
const MAX_BITS: u64 = 1 << 27;

/// Why a text is not a term: where (1-based line and column, counted in characters) and
/// what the parser expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    /// What would have been valid at that point, e.g. `',' or ']'`.
    pub expected: String,
    /// What was there instead, e.g. `'}'` or `end of input`.
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 1 {
            write!(f, "line {}, ", self.line)?;
        }
        write!(
            f,
            "column {}: expected {}, found {}",
            self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses one Erlang term, optionally followed by a `.`.
///
/// Strings become an `eetf::ByteList` when every character is below 256 and a `List` of
/// integers otherwise (Erlang has only lists; this is the shape `binary_to_term` gives).
/// `""` is `[]`.
pub fn parse(s: &str) -> Result<Term, ParseError> {
    Parser::new(s).parse_top()
}

/// One token, with the character index where it starts.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Atom(String),
    Var(String),
    Reserved(String),
    Int(BigInt),
    Float(f64),
    Char(u32),
    Str(Vec<u32>),
    Punct(&'static str),
    End,
}

impl Tok {
    /// How the token is named in an error message.
    fn describe(&self) -> String {
        match self {
            Tok::Atom(a) => format!("atom {}", atom_text(a)),
            Tok::Var(v) => format!("variable {v} (variables are not terms; quote it as '{v}')"),
            Tok::Reserved(w) => format!("reserved word {w} (quote it as '{w}')"),
            Tok::Int(i) => format!("integer {i}"),
            Tok::Float(f) => format!("float {f:?}"),
            Tok::Char(_) => "a $ character".to_string(),
            Tok::Str(_) => "a string".to_string(),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::End => "end of input".to_string(),
        }
    }
}

/// A container whose elements are still being read.
enum Frame {
    List(Vec<Term>),
    /// After `|`: the next value is the tail, then `]`.
    ListTail(Vec<Term>),
    Tuple(Vec<Term>),
    MapKey(HashMap<Term, Term>),
    MapValue(HashMap<Term, Term>, Term),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    peeked: Option<(Tok, usize)>,
}

impl Parser {
    fn new(s: &str) -> Parser {
        Parser {
            chars: s.chars().collect(),
            pos: 0,
            peeked: None,
        }
    }

    fn error_at(
        &self,
        at: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> ParseError {
        let before = &self.chars[..at.min(self.chars.len())];
        let line = 1 + before.iter().filter(|&&c| c == '\n').count();
        let column = 1 + before.iter().rev().take_while(|&&c| c != '\n').count();
        ParseError {
            line,
            column,
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn found_char(&self, i: usize) -> String {
        match self.char_at(i) {
            Some(c) => format!("{:?}", c),
            None => "end of input".to_string(),
        }
    }

    // ------------------------------------------------------------------ lexer

    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, ParseError> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex()?,
        };
        Ok(&self.peeked.insert(t).0)
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.char_at(self.pos) {
            if c.is_whitespace() {
                self.pos += 1;
            } else if c == '%' {
                while self.char_at(self.pos).is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn lex(&mut self) -> Result<(Tok, usize), ParseError> {
        self.skip_blanks();
        let start = self.pos;
        let Some(c) = self.char_at(start) else {
            return Ok((Tok::End, start));
        };
        let two = |p: &Parser, s: &str| {
            let mut it = s.chars();
            p.char_at(start) == it.next() && p.char_at(start + 1) == it.next()
        };
        let tok = if is_atom_start(c) {
            let name = self.take_name();
            if self.pos - start > MAX_ATOM_CHARS {
                return Err(self.error_at(
                    start,
                    format!("an atom of at most {MAX_ATOM_CHARS} characters"),
                    format!("{} characters", self.pos - start),
                ));
            }
            if RESERVED.contains(&name.as_str()) {
                Tok::Reserved(name)
            } else {
                Tok::Atom(name)
            }
        } else if is_var_start(c) {
            Tok::Var(self.take_name())
        } else if c.is_ascii_digit() {
            self.number()?
        } else if c == '\'' {
            self.pos += 1;
            let cps = self.quoted('\'')?;
            let name: String = cps.iter().filter_map(|&c| char::from_u32(c)).collect();
            if cps.len() > MAX_ATOM_CHARS {
                return Err(self.error_at(
                    start,
                    format!("an atom of at most {MAX_ATOM_CHARS} characters"),
                    format!("{} characters", cps.len()),
                ));
            }
            Tok::Atom(name)
        } else if c == '"' {
            self.pos += 1;
            Tok::Str(self.quoted('"')?)
        } else if c == '$' {
            self.pos += 1;
            match self.char_at(self.pos) {
                None => return Err(self.error_at(self.pos, "a character after $", "end of input")),
                Some('\\') => {
                    self.pos += 1;
                    Tok::Char(self.escape()?)
                }
                Some(ch) => {
                    self.pos += 1;
                    Tok::Char(ch as u32)
                }
            }
        } else if two(self, "<<") || two(self, ">>") || two(self, "=>") || two(self, "#{") {
            self.pos += 2;
            Tok::Punct(match c {
                '<' => "<<",
                '>' => ">>",
                '=' => "=>",
                _ => "#{",
            })
        } else if let Some(p) = [
            "[", "]", "{", "}", "(", ")", ",", "|", ":", "/", "-", "+", ".", "<", ">", "=", "#",
        ]
        .iter()
        .find(|p| p.starts_with(c))
        {
            self.pos += 1;
            Tok::Punct(p)
        } else {
            return Err(self.error_at(start, "a term", format!("{c:?}")));
        };
        Ok((tok, start))
    }

    fn take_name(&mut self) -> String {
        let start = self.pos;
        while self.char_at(self.pos).is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Digits in `radix`, with single `_` allowed between digits (OTP 23+).
    fn digits(&mut self, radix: u32) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.char_at(self.pos) {
                Some(c) if c.is_digit(radix) => {
                    out.push(c);
                    self.pos += 1;
                }
                Some('_')
                    if !out.is_empty()
                        && self
                            .char_at(self.pos + 1)
                            .is_some_and(|c| c.is_digit(radix)) =>
                {
                    self.pos += 1;
                }
                _ => break,
            }
        }
        if out.is_empty() {
            return Err(self.error_at(
                self.pos,
                format!("a base-{radix} digit"),
                self.found_char(self.pos),
            ));
        }
        Ok(out)
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let int = self.digits(10)?;
        if self.char_at(self.pos) == Some('#') {
            // Base#Digits, base 2..36.
            let radix = int.parse::<u32>().ok().filter(|r| (2..=36).contains(r));
            let Some(radix) = radix else {
                return Err(self.error_at(
                    start,
                    "a base from 2 to 36 before #",
                    format!("base {int}"),
                ));
            };
            self.pos += 1;
            let ds = self.digits(radix)?;
            let v = BigInt::parse_bytes(ds.as_bytes(), radix)
                .ok_or_else(|| self.error_at(start, "an integer", ds.clone()))?;
            return Ok(Tok::Int(v));
        }
        // A float needs a digit right after the dot; `1.` is the integer 1 and a full stop.
        if self.char_at(self.pos) == Some('.')
            && self
                .char_at(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit())
        {
            self.pos += 1;
            let frac = self.digits(10)?;
            let mut text = format!("{int}.{frac}");
            if matches!(self.char_at(self.pos), Some('e' | 'E')) {
                self.pos += 1;
                let mut sign = "";
                if let Some(s @ ('+' | '-')) = self.char_at(self.pos) {
                    sign = if s == '-' { "-" } else { "" };
                    self.pos += 1;
                }
                if self.char_at(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                    let exp = self.digits(10)?;
                    text = format!("{text}e{sign}{exp}");
                } else {
                    return Err(self.error_at(
                        self.pos,
                        "the digits of the exponent",
                        self.found_char(self.pos),
                    ));
                }
            }
            let v: f64 = text
                .parse()
                .map_err(|_| self.error_at(start, "a float", text.clone()))?;
            if !v.is_finite() {
                return Err(self.error_at(
                    start,
                    "a float within the range of a 64-bit double",
                    text,
                ));
            }
            return Ok(Tok::Float(v));
        }
        let v = BigInt::parse_bytes(int.as_bytes(), 10)
            .ok_or_else(|| self.error_at(start, "an integer", int.clone()))?;
        Ok(Tok::Int(v))
    }

    /// The body of a quoted atom or string, after the opening quote, as code points.
    fn quoted(&mut self, quote: char) -> Result<Vec<u32>, ParseError> {
        let open = self.pos - 1;
        let mut out = Vec::new();
        loop {
            match self.char_at(self.pos) {
                None => {
                    let what = if quote == '"' {
                        "string"
                    } else {
                        "quoted atom"
                    };
                    let opened = self.error_at(open, "", "");
                    return Err(self.error_at(
                        self.pos,
                        format!(
                            "a closing {quote} for the {what} opened at column {}",
                            opened.column
                        ),
                        "end of input",
                    ));
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(c) => {
                    self.pos += 1;
                    out.push(c as u32);
                }
            }
        }
    }

    /// An escape sequence, after the backslash (Erlang's set: `\n`, `\x{…}`, `\101`, `\^A`…).
    fn escape(&mut self) -> Result<u32, ParseError> {
        let at = self.pos;
        let Some(c) = self.char_at(at) else {
            return Err(self.error_at(at, "an escape sequence", "end of input"));
        };
        self.pos += 1;
        let v = match c {
            'b' => 8,
            'd' => 127,
            'e' => 27,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            's' => 32,
            't' => 9,
            'v' => 11,
            '0'..='7' => {
                let mut v = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.char_at(self.pos).and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                v
            }
            'x' if self.char_at(self.pos) == Some('{') => {
                self.pos += 1;
                let ds = self.digits(16)?;
                if self.char_at(self.pos) != Some('}') {
                    return Err(self.error_at(
                        self.pos,
                        "'}' to close \\x{",
                        self.found_char(self.pos),
                    ));
                }
                self.pos += 1;
                u32::from_str_radix(&ds, 16)
                    .ok()
                    .filter(|&v| char::from_u32(v).is_some())
                    .ok_or_else(|| {
                        self.error_at(
                            at - 1,
                            "a Unicode code point in \\x{…}",
                            format!("\\x{{{ds}}}"),
                        )
                    })?
            }
            'x' => {
                let hex: String = (0..2)
                    .filter_map(|i| self.char_at(self.pos + i))
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                if hex.len() != 2 {
                    return Err(self.error_at(
                        self.pos,
                        "two hex digits or {…} after \\x",
                        self.found_char(self.pos + hex.len()),
                    ));
                }
                self.pos += 2;
                u32::from_str_radix(&hex, 16).unwrap_or(0)
            }
            '^' => match self.char_at(self.pos) {
                Some(ch) if ch.is_ascii_alphabetic() || "@[\\]^_".contains(ch) => {
                    self.pos += 1;
                    (ch as u32) & 31
                }
                _ => {
                    return Err(self.error_at(
                        self.pos,
                        "a control character name after \\^",
                        self.found_char(self.pos),
                    ))
                }
            },
            // Any other escaped character stands for itself (`\'`, `\"`, `\\`, …).
            other => other as u32,
        };
        Ok(v)
    }

    // ------------------------------------------------------------------ parser

    fn parse_top(&mut self) -> Result<Term, ParseError> {
        let t = self.parse_term()?;
        let (tok, at) = self.next()?;
        let tok = match tok {
            Tok::Punct(".") => {
                let (tok, at2) = self.next()?;
                if tok != Tok::End {
                    return Err(self.error_at(at2, "end of input after '.'", tok.describe()));
                }
                return Ok(t);
            }
            other => other,
        };
        if tok != Tok::End {
            return Err(self.error_at(at, "end of input (one term only)", tok.describe()));
        }
        Ok(t)
    }

    fn expect(&mut self, p: &'static str, what: &str) -> Result<(), ParseError> {
        let (tok, at) = self.next()?;
        if tok == Tok::Punct(p) {
            Ok(())
        } else {
            Err(self.error_at(at, what, tok.describe()))
        }
    }

    fn parse_term(&mut self) -> Result<Term, ParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            let (tok, at) = self.next()?;
            let mut value = match tok {
                Tok::Punct("[") => {
                    if *self.peek()? == Tok::Punct("]") {
                        self.next()?;
                        Term::from(List::nil())
                    } else {
                        stack.push(Frame::List(Vec::new()));
                        continue 'value;
                    }
                }
                Tok::Punct("{") => {
                    if *self.peek()? == Tok::Punct("}") {
                        self.next()?;
                        Term::from(Tuple::nil())
                    } else {
                        stack.push(Frame::Tuple(Vec::new()));
                        continue 'value;
                    }
                }
                Tok::Punct("#{") => {
                    if *self.peek()? == Tok::Punct("}") {
                        self.next()?;
                        Term::from(Map {
                            map: HashMap::new(),
                        })
                    } else {
                        stack.push(Frame::MapKey(HashMap::new()));
                        continue 'value;
                    }
                }
                Tok::Punct("<<") => self.binary()?,
                Tok::Reserved(w) if w == "fun" => self.export_fun()?,
                other => self.leaf(other, at)?,
            };
            // Close every container that this value completes.
            loop {
                let Some(frame) = stack.pop() else {
                    return Ok(value);
                };
                let (tok, at) = self.next()?;
                match (frame, tok) {
                    (Frame::List(mut elems), Tok::Punct(sep))
                        if sep == "," || sep == "|" || sep == "]" =>
                    {
                        elems.push(value);
                        match sep {
                            "," => stack.push(Frame::List(elems)),
                            "|" => stack.push(Frame::ListTail(elems)),
                            _ => {
                                value = Term::from(List::from(elems));
                                continue;
                            }
                        }
                        continue 'value;
                    }
                    (Frame::List(_), tok) => {
                        return Err(self.error_at(at, "',', '|' or ']'", tok.describe()))
                    }
                    (Frame::ListTail(elems), Tok::Punct("]")) => {
                        value = cons(elems, value);
                    }
                    (Frame::ListTail(_), tok) => {
                        return Err(self.error_at(
                            at,
                            "']' after the tail of a list",
                            tok.describe(),
                        ))
                    }
                    (Frame::Tuple(mut elems), Tok::Punct(sep)) if sep == "," || sep == "}" => {
                        elems.push(value);
                        if sep == "," {
                            stack.push(Frame::Tuple(elems));
                            continue 'value;
                        }
                        value = Term::from(Tuple::from(elems));
                    }
                    (Frame::Tuple(_), tok) => {
                        return Err(self.error_at(at, "',' or '}'", tok.describe()))
                    }
                    (Frame::MapKey(map), Tok::Punct("=>")) => {
                        stack.push(Frame::MapValue(map, value));
                        continue 'value;
                    }
                    (Frame::MapKey(_), tok) => {
                        return Err(self.error_at(at, "'=>' after a map key", tok.describe()))
                    }
                    (Frame::MapValue(mut map, key), Tok::Punct(sep))
                        if sep == "," || sep == "}" =>
                    {
                        // A repeated key keeps the last value, as in Erlang.
                        map.insert(key, value);
                        if sep == "," {
                            stack.push(Frame::MapKey(map));
                            continue 'value;
                        }
                        value = Term::from(Map { map });
                    }
                    (Frame::MapValue(..), tok) => {
                        return Err(self.error_at(at, "',' or '}' in a map", tok.describe()))
                    }
                }
            }
        }
    }

    /// A literal that is not a container: atom, number, character or string.
    fn leaf(&mut self, tok: Tok, at: usize) -> Result<Term, ParseError> {
        Ok(match tok {
            Tok::Atom(a) => Term::from(Atom::from(a)),
            Tok::Int(i) => int_term(i),
            Tok::Float(f) => Term::from(Float { value: f }),
            Tok::Char(c) => Term::from(FixInteger::from(c as i32)),
            Tok::Str(mut s) => {
                // Adjacent string literals are one string, as in Erlang source.
                while let Tok::Str(_) = self.peek()? {
                    if let (Tok::Str(more), _) = self.next()? {
                        s.extend(more);
                    }
                }
                string_term(&s)
            }
            Tok::Punct(sign @ ("-" | "+")) => {
                let (tok, at2) = self.next()?;
                let neg = sign == "-";
                match tok {
                    Tok::Int(i) => int_term(if neg { -i } else { i }),
                    Tok::Char(c) => int_term(if neg {
                        -BigInt::from(c)
                    } else {
                        BigInt::from(c)
                    }),
                    Tok::Float(f) => Term::from(Float {
                        value: if neg { -f } else { f },
                    }),
                    other => {
                        return Err(self.error_at(
                            at2,
                            format!("a number after '{sign}'"),
                            other.describe(),
                        ))
                    }
                }
            }
            other => return Err(self.error_at(at, "a term", other.describe())),
        })
    }

    /// `fun Module:Function/Arity`, after `fun`.
    fn export_fun(&mut self) -> Result<Term, ParseError> {
        let atom = |p: &mut Parser, what: &str| -> Result<String, ParseError> {
            match p.next()? {
                (Tok::Atom(a), _) => Ok(a),
                (tok, at) => Err(p.error_at(at, what, tok.describe())),
            }
        };
        let module = atom(
            self,
            "a module name after fun (only fun M:F/A is a literal)",
        )?;
        self.expect(":", "':' after the module of fun M:F/A")?;
        let function = atom(self, "a function name in fun M:F/A")?;
        self.expect("/", "'/' before the arity of fun M:F/A")?;
        let (tok, at) = self.next()?;
        let arity = match &tok {
            Tok::Int(i) => i.to_u8(),
            _ => None,
        };
        let Some(arity) = arity else {
            return Err(self.error_at(at, "an arity from 0 to 255", tok.describe()));
        };
        Ok(Term::from(ExternalFun {
            module: Atom::from(module),
            function: Atom::from(function),
            arity,
        }))
    }

    /// A bit-syntax literal, after `<<`: segments of integers, floats, characters and
    /// strings with optional `:Size` and `/Type-Specifiers`.
    fn binary(&mut self) -> Result<Term, ParseError> {
        let mut w = BitWriter::default();
        if *self.peek()? == Tok::Punct(">>") {
            self.next()?;
            return Ok(w.finish());
        }
        loop {
            let (tok, at) = self.next()?;
            let value = match tok {
                Tok::Int(i) => SegValue::Int(i),
                Tok::Char(c) => SegValue::Int(BigInt::from(c)),
                Tok::Float(f) => SegValue::Float(f),
                Tok::Str(mut s) => {
                    while let Tok::Str(_) = self.peek()? {
                        if let (Tok::Str(more), _) = self.next()? {
                            s.extend(more);
                        }
                    }
                    SegValue::Str(s)
                }
                Tok::Punct(sign @ ("-" | "+")) => {
                    let (tok, at2) = self.next()?;
                    let neg = sign == "-";
                    match tok {
                        Tok::Int(i) => SegValue::Int(if neg { -i } else { i }),
                        Tok::Char(c) => SegValue::Int(if neg {
                            -BigInt::from(c)
                        } else {
                            BigInt::from(c)
                        }),
                        Tok::Float(f) => SegValue::Float(if neg { -f } else { f }),
                        other => {
                            return Err(self.error_at(
                                at2,
                                format!("a number after '{sign}'"),
                                other.describe(),
                            ))
                        }
                    }
                }
                other => {
                    return Err(self.error_at(
                        at,
                        "a segment value (integer, float, $char or string)",
                        other.describe(),
                    ))
                }
            };
            let mut size = None;
            if *self.peek()? == Tok::Punct(":") {
                self.next()?;
                let (tok, at) = self.next()?;
                match tok {
                    Tok::Int(i) if i.sign() != Sign::Minus => {
                        size = Some((i.to_u64().unwrap_or(u64::MAX), at))
                    }
                    other => {
                        return Err(self.error_at(
                            at,
                            "a segment size (a non-negative integer)",
                            other.describe(),
                        ))
                    }
                }
            }
            let mut spec = Spec::default();
            if *self.peek()? == Tok::Punct("/") {
                self.next()?;
                loop {
                    let (tok, at) = self.next()?;
                    let name =
                        match tok {
                            Tok::Atom(a) => a,
                            other => return Err(self.error_at(
                                at,
                                "a type specifier (integer, float, utf8, little, signed, unit:N…)",
                                other.describe(),
                            )),
                        };
                    match name.as_str() {
                        "integer" => spec.kind = Kind::Integer,
                        "float" => spec.kind = Kind::Float,
                        "utf8" => spec.kind = Kind::Utf8,
                        "utf16" => spec.kind = Kind::Utf16,
                        "utf32" => spec.kind = Kind::Utf32,
                        "big" => spec.little = false,
                        // The BEAMs this talks to are little-endian (x86_64, aarch64).
                        "little" | "native" => spec.little = true,
                        "signed" | "unsigned" => {}
                        "unit" => {
                            self.expect(":", "':' after unit")?;
                            let (tok, at) = self.next()?;
                            spec.unit = match &tok {
                                Tok::Int(i) => i.to_u64().filter(|u| (1..=256).contains(u)),
                                _ => None,
                            };
                            if spec.unit.is_none() {
                                return Err(self.error_at(at, "a unit from 1 to 256", tok.describe()));
                            }
                        }
                        "binary" | "bytes" | "bits" | "bitstring" => {
                            return Err(self.error_at(at, "a type for a literal segment (integer, float, utf8, utf16, utf32)", format!("{name} (nested binaries are not supported)")))
                        }
                        _ => return Err(self.error_at(at, "a type specifier (integer, float, utf8, utf16, utf32, big, little, signed, unsigned, unit:N)", format!("atom {name}"))),
                    }
                    if *self.peek()? == Tok::Punct("-") {
                        self.next()?;
                    } else {
                        break;
                    }
                }
            }
            self.segment(&mut w, value, size, &spec, at)?;
            let (tok, at) = self.next()?;
            match tok {
                Tok::Punct(",") => continue,
                Tok::Punct(">>") => return Ok(w.finish()),
                other => return Err(self.error_at(at, "',' or '>>'", other.describe())),
            }
        }
    }

    fn segment(
        &self,
        w: &mut BitWriter,
        value: SegValue,
        size: Option<(u64, usize)>,
        spec: &Spec,
        at: usize,
    ) -> Result<(), ParseError> {
        let values = match value {
            SegValue::Str(s) => s
                .into_iter()
                .map(|c| SegValue::Int(BigInt::from(c)))
                .collect(),
            v => vec![v],
        };
        for v in values {
            match spec.kind {
                Kind::Utf8 | Kind::Utf16 | Kind::Utf32 => {
                    if let Some((_, sat)) = size {
                        return Err(self.error_at(sat, "no size for a utf segment", "a size"));
                    }
                    let cp = match &v {
                        SegValue::Int(i) => i.to_u32().and_then(char::from_u32),
                        _ => None,
                    };
                    let Some(ch) = cp else {
                        return Err(self.error_at(
                            at,
                            "a Unicode code point for a utf segment",
                            "a value outside U+0000..U+10FFFF or a surrogate",
                        ));
                    };
                    let mut buf = [0u16; 2];
                    let bytes: Vec<u8> = match spec.kind {
                        Kind::Utf8 => ch.to_string().into_bytes(),
                        Kind::Utf16 => ch
                            .encode_utf16(&mut buf)
                            .iter()
                            .flat_map(|u| {
                                if spec.little {
                                    u.to_le_bytes()
                                } else {
                                    u.to_be_bytes()
                                }
                            })
                            .collect(),
                        _ => if spec.little {
                            (ch as u32).to_le_bytes()
                        } else {
                            (ch as u32).to_be_bytes()
                        }
                        .to_vec(),
                    };
                    for b in bytes {
                        w.push_bits(&[b], 8);
                    }
                }
                Kind::Float => {
                    let bits = size.map_or(64, |(s, _)| s.saturating_mul(spec.unit.unwrap_or(1)));
                    let f = match &v {
                        SegValue::Float(f) => *f,
                        SegValue::Int(i) => i.to_f64().unwrap_or(f64::INFINITY),
                        SegValue::Str(_) => 0.0,
                    };
                    let mut bytes = match bits {
                        64 => f.to_be_bytes().to_vec(),
                        32 if (f as f32).is_finite() => (f as f32).to_be_bytes().to_vec(),
                        32 => {
                            return Err(self.error_at(
                                at,
                                "a float that fits 32 bits",
                                format!("{f:?}"),
                            ))
                        }
                        _ => {
                            return Err(self.error_at(
                                size.map_or(at, |s| s.1),
                                "a float size of 32 or 64",
                                format!("{bits}"),
                            ))
                        }
                    };
                    if spec.little {
                        bytes.reverse();
                    }
                    w.push_bits(&bytes, bits);
                }
                Kind::Integer => {
                    let SegValue::Int(i) = v else {
                        return Err(self.error_at(
                            at,
                            "an integer (add /float for a float segment)",
                            "a float",
                        ));
                    };
                    let bits = size.map_or(8, |(s, _)| s.saturating_mul(spec.unit.unwrap_or(1)));
                    if bits > MAX_BITS || w.bits + bits > MAX_BITS {
                        return Err(self.error_at(
                            size.map_or(at, |s| s.1),
                            "a binary of at most 16 MiB",
                            format!("{bits} bits"),
                        ));
                    }
                    if spec.little && !bits.is_multiple_of(8) {
                        return Err(self.error_at(
                            at,
                            "a whole number of bytes for a little-endian segment",
                            format!("{bits} bits"),
                        ));
                    }
                    // Erlang keeps the low `bits` bits of the value, two's complement.
                    let modulus = BigInt::from(1) << bits;
                    let mut v = i % &modulus;
                    if v.sign() == Sign::Minus {
                        v += &modulus;
                    }
                    let nbytes = bits.div_ceil(8) as usize;
                    let (_, mag) = v.to_bytes_be();
                    let mut be = vec![0u8; nbytes.saturating_sub(mag.len())];
                    if !v.is_zero() {
                        be.extend_from_slice(&mag);
                    }
                    be.resize(nbytes, 0);
                    if spec.little {
                        be.reverse();
                    }
                    w.push_bits(&be, bits);
                }
            }
        }
        Ok(())
    }
}

enum SegValue {
    Int(BigInt),
    Float(f64),
    Str(Vec<u32>),
}

#[derive(Default, PartialEq)]
enum Kind {
    #[default]
    Integer,
    Float,
    Utf8,
    Utf16,
    Utf32,
}

#[derive(Default)]
struct Spec {
    kind: Kind,
    little: bool,
    unit: Option<u64>,
}

/// Appends bits MSB first; finishes as a `Binary`, or a `BitBinary` whose last byte holds
/// the trailing bits right-aligned (the convention eetf's decoder uses,
/// docs/design/phash2.md §5.3).
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: u64,
}

impl BitWriter {
    /// Appends the low `n` bits of the big-endian number in `be`.
    fn push_bits(&mut self, be: &[u8], n: u64) {
        let total = be.len() as u64 * 8;
        for i in (0..n).rev() {
            // Bit `i` counted from the least significant end of `be`.
            let bit = if i < total {
                (be[be.len() - 1 - (i / 8) as usize] >> (i % 8)) & 1
            } else {
                0
            };
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if bit == 1 {
                if let Some(last) = self.bytes.last_mut() {
                    *last |= 0x80 >> (self.bits % 8);
                }
            }
            self.bits += 1;
        }
    }

    fn finish(mut self) -> Term {
        let r = (self.bits % 8) as u8;
        if r == 0 {
            return Term::from(eetf::Binary::from(self.bytes));
        }
        if let Some(last) = self.bytes.last_mut() {
            *last >>= 8 - r;
        }
        Term::from(BitBinary::from((self.bytes, r)))
    }
}

fn int_term(i: BigInt) -> Term {
    match i.to_i32() {
        Some(v) => Term::from(FixInteger::from(v)),
        None => Term::from(BigInteger { value: i }),
    }
}

/// A string literal: a byte list when every character fits a byte, as `binary_to_term`
/// would give it back.
fn string_term(s: &[u32]) -> Term {
    if s.is_empty() {
        Term::from(List::nil())
    } else if s.iter().all(|&c| c < 256) {
        Term::from(ByteList::from(
            s.iter().map(|&c| c as u8).collect::<Vec<u8>>(),
        ))
    } else {
        Term::from(List::from(
            s.iter()
                .map(|&c| Term::from(FixInteger::from(c as i32)))
                .collect::<Vec<_>>(),
        ))
    }
}

/// `[elems | tail]`, normalised so that a list tail makes one list (`[1|[2]]` is `[1,2]`).
fn cons(mut elems: Vec<Term>, tail: Term) -> Term {
    match tail {
        Term::List(l) => {
            elems.extend(l.elements);
            Term::from(List::from(elems))
        }
        Term::ByteList(b) => {
            elems.extend(b.bytes.into_iter().map(|x| Term::from(FixInteger::from(x))));
            Term::from(List::from(elems))
        }
        Term::ImproperList(l) => {
            elems.extend(l.elements);
            Term::from(ImproperList {
                elements: elems,
                last: l.last,
            })
        }
        other => Term::from(ImproperList::from((elems, other))),
    }
}

fn is_var_start(c: char) -> bool {
    c.is_ascii_uppercase() || c == '_' || (('\u{C0}'..='\u{DE}').contains(&c) && c != '\u{D7}')
}
