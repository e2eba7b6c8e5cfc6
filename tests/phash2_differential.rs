//! Differential tests against the BEAM installed on this machine: fresh random terms every
//! run, hashed by `erlang:phash2/1,2` in `escript` and by us, with zero mismatches allowed.
//!
//! The seed is printed (run with `--nocapture` to see it on success; it is in every failure
//! message). Reproduce a run with `PHASH2_SEED=<seed>`; change the size with
//! `PHASH2_COUNT=<n>` (default 20,000 terms). Needs `escript` (Erlang/OTP) on PATH.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use rexi_node::etf::{self, Limits};
use rexi_node::phash2::{phash2, phash2_range};
use rexi_node::term::{float_text, print_truncated};

mod support;
use support::{on_big_stack, seed};

fn oracle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/phash2_oracle.escript")
}

fn count(default: usize) -> usize {
    std::env::var("PHASH2_COUNT")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs the oracle escript in `mode` and returns its output file.
fn generate(mode: &str, seed: u64, count: usize) -> String {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("phash2_{mode}_{seed}.tsv"));
    let status = Command::new("escript")
        .arg(oracle())
        .args([mode, &seed.to_string(), &count.to_string()])
        .arg(&out)
        .status()
        .expect("cannot run escript: Erlang/OTP must be installed for the differential tests");
    assert!(status.success(), "the oracle escript failed (seed {seed})");
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    text
}

#[test]
fn phash2_matches_the_beam_on_random_terms() {
    let seed = seed("PHASH2_SEED");
    let n = count(20_000);
    println!("phash2 differential: seed {seed} (PHASH2_SEED={seed} to repeat), {n} terms");
    let started = std::time::Instant::now();
    let text = generate("terms", seed, n);
    let generated = started.elapsed();
    let (lines, mismatches) = on_big_stack(move || {
        let mut mismatches = Vec::new();
        let mut lines = 0;
        for (i, line) in text.lines().enumerate() {
            let c: Vec<&str> = line.split('\t').collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(c[0])
                .unwrap();
            let t = etf::decode(&bytes, &Limits::default())
                .unwrap_or_else(|e| panic!("seed {seed} line {}: {e}", i + 1));
            let (want1, want2): (u32, u32) = (c[1].parse().unwrap(), c[2].parse().unwrap());
            let range: u64 = c[3].parse().unwrap();
            let got1 = phash2(&t).unwrap();
            let got2 = phash2_range(&t, range).unwrap();
            if (got1, got2) != (want1, want2) {
                mismatches.push(format!(
                    "line {}: ours {got1}/{got2}, BEAM {want1}/{want2} (range {range}): {}\n    {}",
                    i + 1,
                    print_truncated(&t, 200),
                    c[0].chars().take(200).collect::<String>()
                ));
            }
            etf::dispose(t);
            lines += 1;
        }
        (lines, mismatches)
    });
    println!(
        "phash2 differential: {lines} terms, {} mismatches; BEAM side {:.1?}, total {:.1?}",
        mismatches.len(),
        generated,
        started.elapsed()
    );
    assert_eq!(
        lines, n,
        "seed {seed}: the oracle wrote {lines} lines, wanted {n}"
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of {n} terms hash differently from the BEAM (PHASH2_SEED={seed} to repeat):\n{}",
        mismatches.len(),
        mismatches.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Floats are the one place where our printer must make the same choices as Erlang's
/// (shortest digits, decimal or scientific, ties to even): checked on random doubles.
#[test]
fn floats_print_like_the_beam() {
    let seed = seed("PHASH2_SEED");
    let n = count(20_000).min(20_000);
    println!("float printing differential: seed {seed}, {n} floats");
    let text = generate("floats", seed, n);
    let mut bad = Vec::new();
    for line in text.lines() {
        let (bits, want) = line.split_once('\t').unwrap();
        let v = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        let got = float_text(v);
        if got != want {
            bad.push(format!("{bits}: ours {got}, BEAM {want}"));
        }
    }
    assert!(
        bad.is_empty(),
        "seed {seed}: {} floats print differently (PHASH2_SEED={seed} to repeat):\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
