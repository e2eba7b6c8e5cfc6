//! Round trip against the real BEAM: an escript of ours writes random terms of every
//! kind (deep ones, odd tags, every `minor_version`, compressed); we decode each one,
//! re-encode it, and the BEAM checks `binary_to_term(Ours) =:= binary_to_term(Theirs)`.
//!
//! A fresh seed is drawn on each run and printed; set `ETF_SEED=<n>` to replay one
//! (and `ETF_TERMS=<n>` to change how many random terms are drawn, default 1000;
//! `ETF_KEEP=1` keeps the exchanged files for inspection).
//! Needs `escript` (Erlang/OTP) on PATH; no distribution, no epmd.

use std::path::{Path, PathBuf};
use std::process::Command;

use rexi_node::etf::{decode_prefix, dispose, encode, Limits};

mod support;
use support::seed;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("ETF_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn escript() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/etf_terms.escript")
}

/// Splits `<<Kind:8, Flags:8, Len:32, Etf:Len/binary>>` records.
fn records(mut data: &[u8]) -> Vec<(u8, u8, &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let kind = data[0];
        let flags = data[1];
        let len = u32::from_be_bytes(data[2..6].try_into().unwrap()) as usize;
        out.push((kind, flags, &data[6..6 + len]));
        data = &data[6 + len..];
    }
    out
}

#[test]
fn beam_round_trip_of_random_terms() {
    let seed = seed("ETF_SEED");
    let count: usize = std::env::var("ETF_TERMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    eprintln!("etf_beam_roundtrip: seed = {seed} (set ETF_SEED={seed} to reproduce)");

    let dir = std::env::temp_dir().join(format!("etf-roundtrip-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let theirs = dir.0.join("theirs.bin");
    let ours = dir.0.join("ours.bin");

    let gen = Command::new("escript")
        .arg(escript())
        .args(["gen", &seed.to_string(), &count.to_string()])
        .arg(&theirs)
        .output()
        .expect("run escript (is Erlang/OTP on PATH?)");
    assert!(
        gen.status.success(),
        "generator failed (seed {seed}):\n{}\n{}",
        String::from_utf8_lossy(&gen.stdout),
        String::from_utf8_lossy(&gen.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&gen.stdout));

    let data = std::fs::read(&theirs).unwrap();
    let recs = records(&data);
    let limits = Limits::default();
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut failures = Vec::new();
    let mut byte_diffs = Vec::new();
    let mut kinds = [0usize; 5];
    for (i, &(kind, flags, etf)) in recs.iter().enumerate() {
        kinds[kind as usize] += 1;
        let mut ours_bytes = Vec::new();
        let status = match decode_prefix(etf, &limits) {
            Ok((term, used)) if used == etf.len() => {
                let r = encode(&term, &mut ours_bytes);
                dispose(term);
                match r {
                    Ok(()) => 0u8,
                    Err(e) => {
                        failures.push(format!("record {i} (kind {kind}): encode: {e}"));
                        1
                    }
                }
            }
            Ok((term, used)) => {
                dispose(term);
                failures.push(format!(
                    "record {i} (kind {kind}): used {used} of {} bytes",
                    etf.len()
                ));
                1
            }
            Err(e) => {
                failures.push(format!(
                    "record {i} (kind {kind}): decode: {e}; first bytes {:?}",
                    &etf[..etf.len().min(40)]
                ));
                1
            }
        };
        // Same encodings as OTP: for maps-free terms our bytes equal minor_version 2's.
        if status == 0 && flags & 1 == 1 && ours_bytes != etf {
            byte_diffs.push(i);
        }
        out.push(status);
        out.extend_from_slice(&(ours_bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&ours_bytes);
    }
    std::fs::write(&ours, &out).unwrap();
    eprintln!(
        "decoded and re-encoded {} records (minor 0: {}, minor 1: {}, minor 2: {}, compressed: {}, hand-made: {})",
        recs.len(),
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4]
    );

    let check = Command::new("escript")
        .arg(escript())
        .arg("check")
        .arg(&theirs)
        .arg(&ours)
        .output()
        .expect("run escript");
    let report = String::from_utf8_lossy(&check.stdout);
    let summary = report
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or("no summary")
        .to_string();
    for line in report.lines().filter(|l| l.contains("OTP 25 itself")) {
        eprintln!("BEAM: {line}");
    }
    eprintln!("BEAM: {summary}");
    assert!(
        check.status.success() && summary == format!("checked {} mismatches 0", recs.len()),
        "seed {seed}: the BEAM found mismatches:\n{report}\n{}\nRust-side failures: {failures:#?}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    assert!(
        byte_diffs.is_empty(),
        "seed {seed}: our bytes differ from term_to_binary(T, [{{minor_version, 2}}]) for records {byte_diffs:?}"
    );
}
