//! Feeds arbitrary bytes to the rexi server's in-place doit reader (`rexi::wire::read`),
//! as the payload of a REG_SEND to a rexi server name. Beyond "never panic, abort or
//! hang": whatever it reads as a doit, the whole decoder and `rexi::protocol::parse` must
//! read as the same doit (the caller's pid and Ref byte for byte, the nonce, the MFA and
//! the arguments), so the fast path can never answer differently from the ordinary one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rexi_node::etf::{self, Budget, Limits, Owned};
use rexi_node::rexi::protocol::{self, Request};
use rexi_node::rexi::wire;

/// `131, {'$gen_cast', {doit, ` as rexi sends it: most random inputs would stop at the
/// first byte, so half the runs start from here.
const ENVELOPE: &[u8] = &[
    131, 104, 2, 119, 9, b'$', b'g', b'e', b'n', b'_', b'c', b'a', b's', b't', 104, 4, 119, 4,
    b'd', b'o', b'i', b't',
];

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_decompressed: 1 << 16,
        max_bignum_bytes: 1 << 12,
        max_term_memory: 1 << 22,
        ..Limits::default()
    };
    let mut prefixed = ENVELOPE.to_vec();
    prefixed.extend_from_slice(data);
    for input in [data, &prefixed[..]] {
        let Some(fast) = wire::read(input, &limits, &mut Budget::new(&limits)) else {
            continue;
        };
        let whole = etf::decode(input, &limits).expect("a doit read in place decodes whole");
        let Request::Doit(slow) = protocol::parse(Owned::new(whole)) else {
            panic!("read in place as a doit, parsed whole as something else");
        };
        // The pid and Ref kept as read equal the decoded ones written back.
        assert_eq!(fast.to, slow.to);
        assert_eq!(fast.module, slow.module);
        assert_eq!(fast.function, slow.function);
        // Bounded by the limits above; compared by their encodings (no recursion).
        let enc = |t: &eetf::Term| {
            let mut v = Vec::new();
            etf::encode(t, &mut v).map(|_| v).ok()
        };
        assert_eq!(enc(fast.nonce.term()), enc(slow.nonce.term()));
        assert_eq!(fast.args.len(), slow.args.len());
        for (a, b) in fast.args.iter().zip(slow.args.iter()) {
            assert_eq!(enc(a), enc(b));
        }
    }
});
