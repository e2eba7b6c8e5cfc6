//! phash2 throughput, ours beside the BEAM's, over the same terms in the same run.
//!
//!     cargo bench --bench phash2
//!
//! Two corpora: a mixed one (random terms of every type from the oracle escript, seed
//! `PHASH2_BENCH_SEED`, default 1, `PHASH2_BENCH_TERMS` terms, default 5,000) and the
//! 2,000 node-name atoms of the fixtures (what the rexi layer hashes per peer). Each side
//! decodes the same base64 `term_to_binary` lines once and then times only the hashing:
//! ours with `Instant`, the BEAM's with `timer:tc` around a compiled loop in `escript`,
//! the same number of rounds on both sides, best of seven timings each.
//! Needs `escript` on PATH.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use eetf::Term;
use rexi_node::etf::{self, Limits};
use rexi_node::phash2::{phash2, server_id};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Decodes one base64 ETF term per line (first column).
fn decode_all(lines: &[String]) -> Vec<Term> {
    lines
        .iter()
        .map(|l| {
            let b64 = l.split('\t').next().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            etf::decode(&bytes, &Limits::default()).expect("ETF")
        })
        .collect()
}

/// Rounds of phash2 over all terms, sized so one timing takes about `budget`; returns the
/// best ns per term of seven timings (on a shared machine the minimum is the least
/// disturbed) and the number of rounds per timing.
fn time_ours(terms: &[Term], budget: Duration) -> (f64, u64) {
    let round = |acc: &mut u32| {
        for t in terms {
            *acc ^= phash2(black_box(t)).unwrap_or(0);
        }
    };
    let mut acc = 0u32;
    let start = Instant::now();
    round(&mut acc); // warm-up, and a first estimate of the cost of one round
    let one = start.elapsed().max(Duration::from_micros(1));
    let rounds = (budget.as_nanos() / one.as_nanos()).clamp(3, 100_000) as u64;
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..rounds {
            round(&mut acc);
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds as f64 * terms.len() as f64);
        best = best.min(ns);
    }
    black_box(acc);
    (best, rounds)
}

/// The BEAM's ns per term over the terms in `file`, with `rounds` rounds.
fn time_beam(file: &Path, rounds: u64) -> f64 {
    let out = Command::new("escript")
        .arg(manifest().join("tests/support/phash2_oracle.escript"))
        .arg("bench")
        .arg(file)
        .arg(rounds.to_string())
        .output()
        .expect("run escript (Erlang/OTP must be installed)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split('\t')
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("escript bench output")
}

fn report(name: &str, lines: Vec<String>, file: &Path) {
    std::fs::write(file, lines.join("\n") + "\n").expect("write corpus");
    let n = lines.len();
    // Why a big stack: the codec decodes and disposes iteratively, but these tests drop
    // terms the ordinary way, through eetf's derived `Drop`, which recurses; the inputs nest
    // up to 10,001 levels. The stack is reserved address space, touched only as deep as used.
    let (ours, rounds) = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            let terms = decode_all(&lines);
            let r = time_ours(&terms, Duration::from_millis(500));
            terms.into_iter().for_each(etf::dispose);
            r
        })
        .unwrap()
        .join()
        .unwrap();
    let beam = time_beam(file, rounds);
    println!(
        "{name:<28} {n:>6} terms  ours {ours:>10.1} ns/term  BEAM {beam:>10.1} ns/term  \
         BEAM/ours {:>5.2}x  ({rounds} rounds each)",
        beam / ours
    );
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to select, so arguments are ignored.
    let tmp = manifest().join("target");
    let seed = env_or("PHASH2_BENCH_SEED", 1);
    let count = env_or("PHASH2_BENCH_TERMS", 5_000);
    let mixed = tmp.join(format!("phash2_bench_mixed_{seed}.tsv"));
    let status = Command::new("escript")
        .arg(manifest().join("tests/support/phash2_oracle.escript"))
        .args(["terms", &seed.to_string(), &count.to_string()])
        .arg(&mixed)
        .status()
        .expect("run escript (Erlang/OTP must be installed)");
    assert!(status.success());
    let mixed_lines: Vec<String> = std::fs::read_to_string(&mixed)
        .expect("read corpus")
        .lines()
        .map(String::from)
        .collect();

    let names_tsv =
        std::fs::read_to_string(manifest().join("tests/fixtures/phash2/node_names.tsv"))
            .expect("read node names");
    let name_lines: Vec<String> = names_tsv
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .map(String::from)
        .collect();

    println!("phash2/1, seed {seed}; ns per term, hashing only (terms decoded beforehand)");
    report("mixed corpus", mixed_lines, &mixed);
    report(
        "node-name atoms",
        name_lines,
        &tmp.join("phash2_bench_names.tsv"),
    );

    // The rexi layer's own entry point: no Term at all, just the name.
    let names: Vec<&str> = names_tsv
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    let rounds = 300u32;
    let mut best = f64::INFINITY;
    let mut total = 0usize;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..rounds {
            for n in &names {
                total += black_box(server_id(black_box(n))).len();
            }
        }
        let per = start.elapsed().as_nanos() as f64 / (f64::from(rounds) * names.len() as f64);
        best = best.min(per);
    }
    black_box(total);
    println!(
        "server_id(&str) incl. String  {:>6} names  ours {best:>10.1} ns/name",
        names.len()
    );
}
