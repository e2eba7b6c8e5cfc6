//! `rexi-node phash2`: `erlang:phash2/1,2` of a term typed in Erlang syntax, or of every
//! term in a batch of `term_to_binary` output.
//!
//! The batch mode exists so that an operator can check this implementation against a live
//! BEAM on their own data: dump `base64:encode(term_to_binary(T))` lines from the node,
//! feed them here, and diff against `erlang:phash2/1,2` on the node.

use super::exit::Exit;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use base64::Engine;
use eetf::Term;
use rexi_node::etf::{self, Limits};
use rexi_node::phash2::{phash2, phash2_range, MAX_RANGE};
use rexi_node::term;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    rexi-node phash2 \"'a@127.0.0.1'\"\n  \
    rexi-node phash2 '{ok, <<\"db\">>, [1,2|x]}' --range 16\n  \
    cut -f1,4 vectors.tsv | rexi-node phash2 --batch")]
pub(crate) struct Args {
    /// The term, in Erlang syntax (quote it for the shell), e.g. '{ok, <<"db">>}'.
    #[arg(
        required_unless_present = "batch",
        conflicts_with = "batch",
        allow_hyphen_values = true
    )]
    pub term: Option<String>,

    /// Print erlang:phash2(TERM, N) instead of phash2(TERM); 1 <= N <= 4294967296 (2^32).
    /// With --batch, the range for lines that do not give their own.
    #[arg(long, value_name = "N", value_parser = parse_range, allow_hyphen_values = true)]
    pub range: Option<u64>,

    /// Read lines of base64(term_to_binary(T)), each optionally followed by a TAB and a
    /// range, from standard input; print phash2(T) per line, followed by a TAB and
    /// phash2(T, R) when a range is given.
    #[arg(long)]
    pub batch: bool,
}

/// Checks a range the way `phash2/2` does, with a message an operator can act on.
fn parse_range(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|r| (1..=MAX_RANGE).contains(r))
        .ok_or_else(|| {
            format!("'{s}' is not a range: phash2/2 takes an integer from 1 to 4294967296 (2^32)")
        })
}

pub(crate) fn main(a: Args) -> ExitCode {
    // Parsing, decoding (etf::), hashing and disposing are all iterative: a term nested a
    // million deep needs no big stack.
    run(a)
}

fn run(a: Args) -> ExitCode {
    if a.batch {
        return batch(a.range);
    }
    let Some(text) = a.term else {
        eprintln!("rexi-node phash2: give a TERM or --batch");
        return Exit::Usage.into();
    };
    let t = match term::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rexi-node phash2: TERM is not an Erlang term: {e}");
            if e.line == 1 && !text.contains('\n') && text.chars().count() <= 200 {
                eprintln!("  {text}");
                eprintln!("  {}^", " ".repeat(e.column.saturating_sub(1)));
            }
            // The commonest slip: a node name typed bare, which Erlang reads as `a@127`
            // followed by a full stop.
            let t = text.trim();
            if t.contains('@')
                && !t.starts_with(['\'', '"', '{', '[', '#', '<'])
                && !t.contains(char::is_whitespace)
            {
                eprintln!("hint: node names with dots or dashes are quoted atoms: '{t}' (or try: rexi-node server-id {t})");
            }
            return Exit::Usage.into();
        }
    };
    let result = match a.range {
        Some(r) => phash2_range(&t, r),
        None => phash2(&t),
    };
    etf::dispose(t);
    match result {
        Ok(h) => {
            println!("{h}");
            Exit::Success.into()
        }
        Err(e) => {
            eprintln!("rexi-node phash2: {e}");
            Exit::Failure.into()
        }
    }
}

/// One line of batch input, hashed: `phash2` and, if a range applies, `phash2/2`.
fn batch_line(line: &str, default_range: Option<u64>) -> Result<String, String> {
    let (b64, range) = match line.split_once('\t') {
        Some((b64, r)) => (b64, Some(parse_range(r)?)),
        None => (line, default_range),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            format!("not standard base64 ({e}); expected base64(term_to_binary(T)) [TAB range]")
        })?;
    let t: Term = etf::decode(&bytes, &Limits::default())
        .map_err(|e| format!("the base64 decodes, but not to an external term: {e}"))?;
    let out = match range {
        Some(r) => phash2(&t).and_then(|h| Ok(format!("{h}\t{}", phash2_range(&t, r)?))),
        None => phash2(&t).map(|h| h.to_string()),
    };
    etf::dispose(t);
    out.map_err(|e| e.to_string())
}

fn batch(default_range: Option<u64>) -> ExitCode {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut bad = 0usize;
    let mut first_bad = 0usize;
    for (i, line) in stdin.lock().lines().enumerate() {
        let n = i + 1;
        let result = match line {
            Ok(line) => batch_line(line.trim_end_matches('\r'), default_range),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err("not UTF-8 text".to_string()),
            Err(e) => {
                let _ = out.flush();
                eprintln!("rexi-node phash2 --batch: cannot read standard input at line {n}: {e}");
                return Exit::Failure.into();
            }
        };
        match result {
            Ok(s) => {
                if let Err(e) = writeln!(out, "{s}") {
                    return write_failed(e);
                }
            }
            Err(msg) => {
                // Keep stdout and stderr in order when both go to a terminal.
                let _ = out.flush();
                eprintln!("rexi-node phash2 --batch: line {n}: {msg}");
                bad += 1;
                if first_bad == 0 {
                    first_bad = n;
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        return write_failed(e);
    }
    if bad > 0 {
        eprintln!(
            "rexi-node phash2 --batch: {bad} line(s) could not be hashed (first: line {first_bad})"
        );
        return Exit::Failure.into();
    }
    Exit::Success.into()
}

fn write_failed(e: io::Error) -> ExitCode {
    if e.kind() != io::ErrorKind::BrokenPipe {
        eprintln!("rexi-node phash2 --batch: cannot write the results: {e}");
    }
    Exit::Failure.into()
}
