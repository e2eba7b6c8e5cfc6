//! Every input that ever made the fuzz target (fuzz/fuzz_targets/etf_decode.rs) fail,
//! replayed through the same checks. Add a file to tests/fuzz_regressions/ for each
//! new finding.

use rexi_node::etf::{self, Limits};

/// The fuzz target's oracle: decoding never panics; what decodes re-encodes; our own
/// bytes decode again and re-encode to the very same bytes.
fn check(data: &[u8]) {
    let limits = Limits {
        max_decompressed: 1 << 16,
        max_bignum_bytes: 1 << 12,
        ..Limits::default()
    };
    let mut prefixed = vec![131];
    prefixed.extend_from_slice(data);
    for input in [data, &prefixed[..]] {
        let Ok((term, used)) = etf::decode_prefix(input, &limits) else {
            continue;
        };
        assert!(used <= input.len());
        let mut out = Vec::new();
        if etf::encode(&term, &mut out).is_ok() {
            let again = etf::decode(&out, &limits)
                .unwrap_or_else(|e| panic!("our own encoding does not decode: {e}"));
            let mut out2 = Vec::new();
            etf::encode(&again, &mut out2).unwrap();
            assert_eq!(out, out2, "re-encoding our own bytes changed them");
            etf::dispose(again);
        }
        etf::dispose(term);
    }
}

#[test]
fn fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        // Run many times: the first finding depended on HashMap iteration order.
        for _ in 0..50 {
            check(&data);
        }
        n += 1;
    }
    assert!(n > 0);
}

/// The first finding, minimised by hand: two keys that are the same map, built in
/// different orders. eetf's `Hash for Map` follows each `HashMap`'s own iteration
/// order, so the `HashMap` of the outer map could miss the duplicate.
#[test]
fn equal_map_keys_are_duplicates_whatever_their_order() {
    // #{#{a => 1, b => 2} => x, #{b => 2, a => 1} => y}
    let bytes = [
        131, 116, 0, 0, 0, 2, //
        116, 0, 0, 0, 2, 119, 1, b'a', 97, 1, 119, 1, b'b', 97, 2, 119, 1, b'x', //
        116, 0, 0, 0, 2, 119, 1, b'b', 97, 2, 119, 1, b'a', 97, 1, 119, 1, b'y',
    ];
    for _ in 0..200 {
        let e = etf::decode(&bytes, &Limits::default()).unwrap_err();
        assert!(e.reason.contains("duplicate map key"), "{e}");
    }
}
