//! Feeds arbitrary bytes to the ETF decoder. Beyond "never panic, abort or hang", it
//! checks that anything we decode re-encodes, that our own bytes decode again to a
//! term of the same encoding, and that dropping goes through `dispose`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexi_node::etf::{self, Limits};

fuzz_target!(|data: &[u8]| {
    // Small limits keep each execution fast; the checks are the same at any size.
    let limits = Limits {
        max_decompressed: 1 << 16,
        max_bignum_bytes: 1 << 12,
        ..Limits::default()
    };
    // The input as it is, and the input behind a version byte (most random inputs do
    // not start with 131, and the fuzzer should not have to find that first).
    let mut prefixed = Vec::with_capacity(data.len() + 1);
    prefixed.push(131);
    prefixed.extend_from_slice(data);
    for input in [data, &prefixed[..]] {
        let (term, used) = match etf::decode_prefix(input, &limits) {
            Ok(v) => v,
            Err(e) => {
                assert!(e.offset <= input.len(), "offset {} past the input", e.offset);
                continue;
            }
        };
        assert!(used <= input.len());
        let mut out = Vec::new();
        if etf::encode(&term, &mut out).is_ok() {
            let (again, used2) = match etf::decode(&out, &limits) {
                Ok(t) => (t, out.len()),
                Err(e) => panic!("our own encoding does not decode: {e}"),
            };
            assert_eq!(used2, out.len());
            let mut out2 = Vec::new();
            if let Err(e) = etf::encode(&again, &mut out2) {
                panic!("a term we decoded from our own bytes does not encode: {e}");
            }
            // Large maps follow HashMap order, so only the length must agree.
            assert_eq!(out.len(), out2.len());
            etf::dispose(again);
        }
        etf::dispose(term);
    }
});
