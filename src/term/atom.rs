//! How an atom is written in Erlang source: which names stand bare, how a quoted name is
//! escaped, and how long an atom may be. The parser and the printer both follow these
//! rules, so they live here once and neither of the two imports the other.

/// The longest atom the BEAM accepts, in characters (the codec enforces the same bound).
pub use crate::etf::tags::MAX_ATOM_CHARS;

/// Erlang's reserved words: they cannot be bare atoms.
pub(crate) const RESERVED: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "else", "end", "fun", "if", "let", "maybe", "not", "of", "or",
    "orelse", "receive", "rem", "try", "when", "xor",
];

/// Can `c` start a bare atom? Lower-case ASCII and Latin-1 letters.
pub(crate) fn is_atom_start(c: char) -> bool {
    c.is_ascii_lowercase() || (('\u{DF}'..='\u{FF}').contains(&c) && c != '\u{F7}')
}

/// Can `c` continue a bare atom (or variable)?
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || c == '@'
        || (('\u{C0}'..='\u{FF}').contains(&c) && c != '\u{D7}' && c != '\u{F7}')
}

/// An atom as Erlang writes it: bare when it can be, otherwise in single quotes.
pub fn atom_text(name: &str) -> String {
    let mut chars = name.chars();
    let bare = chars.next().is_some_and(is_atom_start)
        && chars.all(is_name_char)
        && !RESERVED.contains(&name);
    if bare {
        return name.to_string();
    }
    let mut s = String::with_capacity(name.len() + 2);
    s.push('\'');
    for c in name.chars() {
        escape_into(&mut s, c as u32, '\'');
    }
    s.push('\'');
    s
}

/// Appends code point `c` inside a literal delimited by `quote` (an atom's `'` or a
/// string's `"`), escaped where Erlang escapes it.
pub(crate) fn escape_into(s: &mut String, c: u32, quote: char) {
    match char::from_u32(c) {
        Some(ch) if ch == quote || ch == '\\' => {
            s.push('\\');
            s.push(ch);
        }
        Some('\n') => s.push_str("\\n"),
        Some('\r') => s.push_str("\\r"),
        Some('\t') => s.push_str("\\t"),
        Some('\u{0B}') => s.push_str("\\v"),
        Some('\u{08}') => s.push_str("\\b"),
        Some('\u{0C}') => s.push_str("\\f"),
        Some('\u{1B}') => s.push_str("\\e"),
        Some('\u{7F}') => s.push_str("\\d"),
        Some(ch) if !ch.is_control() => s.push(ch),
        _ => s.push_str(&format!("\\x{{{c:X}}}")),
    }
}
