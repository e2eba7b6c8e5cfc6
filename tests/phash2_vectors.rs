//! Every vector the BEAM (OTP 25.2.3) produced for `erlang:phash2/1,2` must match.
//!
//! The fixtures in `tests/fixtures/phash2/` were written by a BEAM; docs/design/phash2.md §13
//! says what each column holds and how the files were generated.

use base64::Engine;
use eetf::Term;
use rexi_node::etf::{self, Limits};
use rexi_node::phash2::{atom_hash, make_hash2, phash2, phash2_range, server_id};

mod support;
use support::on_big_stack;

const VECTORS: &str = include_str!("fixtures/phash2/vectors_dev.tsv");
const NODE_NAMES: &str = include_str!("fixtures/phash2/node_names.tsv");

fn decode_b64(b64: &str) -> Term {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    etf::decode(&bytes, &Limits::default()).expect("ETF")
}

#[test]
fn vectors_dev_all_match() {
    let failures = on_big_stack(|| {
        let mut failures = Vec::new();
        let mut n = 0;
        for (i, line) in VECTORS.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "line {}", i + 1);
            let t = decode_b64(cols[0]);
            let want1: u32 = cols[1].parse().unwrap();
            let want2: u32 = cols[2].parse().unwrap();
            let range: u64 = cols[3].parse().unwrap();
            let got1 = phash2(&t).unwrap();
            let got2 = phash2_range(&t, range).unwrap();
            if got1 != want1 || got2 != want2 {
                failures.push(format!(
                    "line {}: phash2 {got1} want {want1}, phash2(_, {range}) {got2} want {want2}",
                    i + 1
                ));
            }
            n += 1;
        }
        assert_eq!(n, 5000);
        failures
    });
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn node_names_all_match() {
    let mut failures = Vec::new();
    for (i, line) in NODE_NAMES.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "line {}", i + 1);
        let (name, want1, want_raw, want_id) = (cols[0], cols[2], cols[3], cols[4]);
        let t = decode_b64(cols[1]);
        assert_eq!(
            t,
            Term::from(eetf::Atom::from(name)),
            "line {}: ETF is the named atom",
            i + 1
        );
        let got = (
            phash2(&t).unwrap().to_string(),
            make_hash2(&t).unwrap().to_string(),
            phash2_range(&t, 1 << 32).unwrap().to_string(),
            (atom_hash(name) & 0x07FF_FFFF).to_string(),
            server_id(name),
        );
        let want = (
            want1.to_string(),
            want_raw.to_string(),
            want_raw.to_string(),
            want1.to_string(),
            want_id.to_string(),
        );
        if got != want {
            failures.push(format!(
                "line {} ({name}): got {got:?} want {want:?}",
                i + 1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
