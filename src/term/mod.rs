//! Erlang term text syntax <-> `eetf::Term`, for the CLI and for logs.
//!
//! Operators think in Erlang syntax: they copy `{ok, <<"db">>}` out of a remote shell and
//! expect `rexi-node phash2` to hash exactly that term, and they read our logs next to the
//! BEAM's. [`parse`] reads what `erl_parse:parse_term/1` reads; [`print()`] writes what
//! `io:format("~tp")` writes, on one line, and its output parses back to the same term
//! (a list shows as a string only when all its elements are printable Latin-1 characters,
//! as under the BEAM's default `+pc latin1`: `[5000]` stays `[5000]`).
//! Both are iterative, since a term's depth is up to whoever typed or sent it.

mod atom;
mod parse;
mod print;

pub use atom::{atom_text, MAX_ATOM_CHARS};
pub use parse::{parse, ParseError};
pub use print::{float_text, print, print_truncated};
