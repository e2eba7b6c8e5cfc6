//! One test per `eetf` 0.11 defect listed in `docs/design/crates.md` §2.2 and
//! `docs/design/phash2.md` §8, showing that our codec does not share it, plus the
//! limits, error offsets and depth guarantees of `rexi_node::etf`.

use std::time::{Duration, Instant};

use eetf::{Atom, BitBinary, ByteList, FixInteger, List, Map, Term, Tuple};
use rexi_node::etf::{
    decode, decode_prefix, dispose, encode, encode_body, DecodeError, Limits, Owned,
};

mod support;

/// Runs `f` on a thread with tokio's default worker stack (2 MiB).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    support::on_stack(2, f)
}

fn lim() -> Limits {
    Limits::default()
}

fn int(v: i32) -> Term {
    Term::FixInteger(FixInteger { value: v })
}

fn atom(s: &str) -> Term {
    Term::Atom(Atom {
        name: s.to_string(),
    })
}

fn enc(t: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    encode(t, &mut out).unwrap();
    out
}

fn err(bytes: &[u8]) -> DecodeError {
    match decode(bytes, &lim()) {
        Ok(t) => {
            dispose(t);
            panic!("{bytes:?} decoded")
        }
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- recursion

/// `lists:foldl(fun(I,A) -> {I,A} end, nil, lists:seq(1,5000))` killed the daemon
/// through eetf's recursive decoder.
#[test]
fn nested_tuples_5000_deep_on_a_2mib_stack() {
    let mut bytes = vec![131];
    for i in (1..=5000i32).rev() {
        bytes.extend_from_slice(&[104, 2]);
        if i <= 255 {
            bytes.extend_from_slice(&[97, i as u8]);
        } else {
            bytes.push(98);
            bytes.extend_from_slice(&i.to_be_bytes());
        }
    }
    bytes.extend_from_slice(&[119, 3, b'n', b'i', b'l']);
    let again = on_small_stack(move || {
        let t = decode(&bytes, &lim()).unwrap();
        let out = enc(&t);
        dispose(t);
        out == bytes
    });
    assert!(again);
}

/// A 1,000,000-deep list `[[[...[]...]]]`: decoded, re-encoded byte for byte and
/// disposed, all on a 2 MiB stack with the default limits.
#[test]
fn million_deep_list_decode_encode_dispose_on_a_2mib_stack() {
    const DEPTH: usize = 1_000_000;
    let mut bytes = Vec::with_capacity(DEPTH * 6 + 2);
    bytes.push(131);
    for _ in 0..DEPTH {
        bytes.extend_from_slice(&[108, 0, 0, 0, 1]);
    }
    bytes.push(106);
    bytes.extend(std::iter::repeat_n(106, DEPTH));
    on_small_stack(move || {
        let t = decode(&bytes, &lim()).expect("1,000,000 levels are within the default limit");
        let mut out = Vec::new();
        encode(&t, &mut out).unwrap();
        assert!(out == bytes, "re-encoding differs");
        // Owned disposes on drop.
        drop(Owned::new(t));
    });
}

/// Terms built in Rust, not decoded, must also drop and encode at any depth.
#[test]
fn million_deep_tuple_built_in_rust_encodes_and_disposes() {
    on_small_stack(|| {
        let mut t = atom("leaf");
        for _ in 0..1_000_000 {
            t = Term::Tuple(Tuple { elements: vec![t] });
        }
        let mut out = Vec::new();
        encode(&t, &mut out).unwrap();
        assert_eq!(out.len(), 1 + 2 * 1_000_000 + 6);
        dispose(t);
    });
}

/// A deep term that fails half way (truncated) must be torn down without recursion too.
#[test]
fn deep_truncated_input_fails_cleanly_on_a_2mib_stack() {
    let mut bytes = vec![131];
    for _ in 0..500_000 {
        bytes.extend_from_slice(&[108, 0, 0, 0, 2, 97, 1]);
    }
    bytes.push(106);
    let e = on_small_stack(move || decode(&bytes, &lim()).unwrap_err());
    assert!(
        e.reason.contains("truncated") || e.reason.contains("cannot fit"),
        "{e}"
    );
}

/// `[1|[2|[3|...]]]` written with list tails (legal, never emitted by OTP) decodes in
/// linear time into one flat list, as the BEAM reads it.
#[test]
fn chained_list_tails_are_flattened_in_linear_time() {
    let n = 300_000;
    let mut bytes = vec![131];
    for _ in 0..n {
        bytes.extend_from_slice(&[108, 0, 0, 0, 1, 97, 7]);
    }
    bytes.push(106);
    // Linear: milliseconds. Quadratic (re-walking the list per tail): minutes. The bound
    // sits far from both, so a loaded machine does not decide the result.
    let t0 = Instant::now();
    let t = decode(&bytes, &lim()).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    match &t {
        Term::ByteList(l) => assert_eq!(l.bytes.len(), n),
        other => panic!("not a byte list: {:?}", std::mem::discriminant(other)),
    }
    dispose(t);
}

#[test]
fn max_depth_is_enforced_with_an_offset() {
    let mut bytes = vec![131];
    for _ in 0..20 {
        bytes.extend_from_slice(&[104, 1]);
    }
    bytes.push(106);
    let limits = Limits {
        max_depth: 10,
        ..lim()
    };
    let e = decode(&bytes, &limits).unwrap_err();
    assert_eq!(e.offset, 1 + 2 * 10);
    assert!(e.reason.contains("deeper than the limit of 10"), "{e}");
}

/// eetf's `Map` is a `HashMap`, whose `insert` hashes the key recursively: keys are
/// bounded by `max_map_key_depth`; a bound of 256 hashes fine on 2 MiB.
#[test]
fn map_key_depth_is_bounded_and_the_bound_hashes_on_a_2mib_stack() {
    // 256 levels on 2 MiB even in a debug build; the default bound (4096) is checked on
    // the daemon's worker stack in `default_map_key_depth_fits_a_worker_stack` below.
    let key = |depth: usize| {
        let mut b = vec![131, 116, 0, 0, 0, 1];
        for _ in 0..depth {
            b.extend_from_slice(&[104, 1]);
        }
        b.extend_from_slice(&[97, 1, 97, 2]);
        b
    };
    let small = Limits {
        max_map_key_depth: 256,
        ..Limits::default()
    };
    let ok = key(256);
    let l = small.clone();
    on_small_stack(move || dispose(decode(&ok, &l).unwrap()));
    // Two keys 256 deep that differ only at the bottom: sorting them for the encoder
    // compares all the way down, still on 2 MiB.
    let mut two = vec![131, 116, 0, 0, 0, 2];
    for leaf in [1u8, 2] {
        for _ in 0..256 {
            two.extend_from_slice(&[104, 1]);
        }
        two.extend_from_slice(&[97, leaf, 106]);
    }
    let l = small.clone();
    on_small_stack(move || {
        let t = decode(&two, &l).unwrap();
        let mut out = Vec::new();
        encode(&t, &mut out).unwrap();
        assert_eq!(out, two);
        dispose(t);
    });
    let e = decode(&key(257), &small).unwrap_err();
    assert!(e.reason.contains("map key nested deeper"), "{e}");
    assert_eq!(e.offset, 6 + 2 * 256);
    // A map *value* may be as deep as max_depth.
    let mut v = vec![131, 116, 0, 0, 0, 1, 97, 1];
    for _ in 0..100_000 {
        v.extend_from_slice(&[104, 1]);
    }
    v.push(106);
    on_small_stack(move || dispose(decode(&v, &Limits::default()).unwrap()));
}

#[test]
fn default_map_key_depth_fits_a_worker_stack() {
    use rexi_node::etf::DEFAULT_MAP_KEY_DEPTH;
    // Two keys at the default bound that differ only at the bottom: decoding hashes and
    // compares them all the way down, encoding sorts them; on the 16 MiB stack the
    // daemon's worker threads have, in any build.
    let mut two = vec![131, 116, 0, 0, 0, 2];
    for leaf in [1u8, 2] {
        for _ in 0..DEFAULT_MAP_KEY_DEPTH {
            two.extend_from_slice(&[104, 1]);
        }
        two.extend_from_slice(&[97, leaf, 106]);
    }
    let deeper = {
        let mut b = vec![131, 116, 0, 0, 0, 1];
        for _ in 0..=DEFAULT_MAP_KEY_DEPTH {
            b.extend_from_slice(&[104, 1]);
        }
        b.extend_from_slice(&[97, 1, 97, 2]);
        b
    };
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            let t = decode(&two, &Limits::default()).unwrap();
            let mut out = Vec::new();
            encode(&t, &mut out).unwrap();
            assert_eq!(out, two);
            dispose(t);
            let e = decode(&deeper, &Limits::default()).unwrap_err();
            assert!(e.reason.contains("map key nested deeper"), "{e}");
        })
        .unwrap()
        .join()
        .unwrap();
}

// ---------------------------------------------------------------- counts and sizes

/// `83 6C FF FF FF FF`: eetf called `Vec::with_capacity(2^32-1)` and aborted.
#[test]
fn huge_counts_in_6_bytes_are_refused_before_allocating() {
    for tag in [108u8, 105, 116] {
        let e = err(&[131, tag, 255, 255, 255, 255]);
        assert_eq!(e.offset, 1, "tag {tag}: {e}");
        assert!(e.reason.contains("cannot fit"), "tag {tag}: {e}");
    }
    for tag in [109u8, 77, 107] {
        let e = err(&[131, tag, 255, 255, 255, 255, 1]);
        assert!(e.reason.contains("truncated"), "tag {tag}: {e}");
    }
    // NEW_FUN_EXT claiming 4 GiB.
    let e = err(&[131, 112, 255, 255, 255, 255]);
    assert!(e.reason.contains("fun claims"), "{e}");
}

/// Nested lists each claiming "a million elements" must not reserve a million each:
/// every pending element is a promise of one more input byte.
#[test]
fn nested_claims_share_one_byte_budget() {
    let mut bytes = vec![131];
    for _ in 0..1000 {
        bytes.extend_from_slice(&[108, 0, 0, 3, 0]); // 768 elements each
    }
    bytes.resize(bytes.len() + 4000, 106);
    let e = err(&bytes);
    assert!(e.reason.contains("cannot fit"), "{e}");
}

/// `83 6F FF FF FF FF 00 01`: eetf zero-filled 4 GiB first.
#[test]
fn bignum_4gib_header_is_refused_at_once() {
    // Refused by the size check on the header (its reason and offset say so), before any
    // allocation: no clock needed to tell.
    let e = err(&[131, 111, 255, 255, 255, 255, 0, 1]);
    assert_eq!(e.offset, 1);
    assert!(e.reason.contains("bignum of 4294967295 bytes"), "{e}");
    // Within the limit but longer than the input: truncated, not allocated.
    let e = err(&[131, 111, 0, 0, 1, 0, 0, 1]);
    assert!(e.reason.contains("truncated"), "{e}");
}

#[test]
fn bignums_decode_by_value() {
    // 2^64 as LARGE_BIG and small values as bignums become FixInteger.
    let t = decode(&[131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], &lim()).unwrap();
    assert_eq!(
        t,
        Term::BigInteger(eetf::BigInteger {
            value: num_bigint::BigInt::from(1u128 << 64)
        })
    );
    assert_eq!(decode(&[131, 110, 1, 1, 5], &lim()).unwrap(), int(-5));
    assert_eq!(decode(&[131, 110, 0, 0], &lim()).unwrap(), int(0));
    assert_eq!(
        decode(&[131, 111, 0, 0, 0, 4, 1, 0, 0, 0, 128], &lim()).unwrap(),
        int(i32::MIN)
    );
}

/// A zlib bomb: ~6.8 MB of deflate that inflates to ~1 GiB of zeros.
/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn zlib_bomb() -> (Vec<u8>, usize) {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn huff(&mut self, code: u64, n: u32) {
            // Huffman codes go most significant bit first.
            for i in (0..n).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
    }
    let repeats = 4_161_790usize;
    let len = 1 + 258 * repeats;
    let mut b = Bits {
        out: vec![0x78, 0x9c],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // BFINAL
    b.put(1, 2); // fixed Huffman
    b.huff(0x30, 8); // literal 0
    for _ in 0..repeats {
        b.huff(0b1100_0101, 8); // length 258
        b.huff(0, 5); // distance 1
    }
    b.huff(0, 7); // end of block
    if b.n > 0 {
        b.put(0, 8 - b.n);
    }
    let adler = ((len % 65521) as u32) << 16 | 1;
    b.out.extend_from_slice(&adler.to_be_bytes());
    (b.out, len)
}

#[test]
fn compressed_bomb_is_capped_by_the_declared_size_and_the_limit() {
    let (zlib, inflated) = zlib_bomb();
    assert!(inflated > 1 << 29);
    // Claiming the real 1 GiB: over the 256 MiB default, refused before inflating.
    let mut bytes = vec![131, 80];
    bytes.extend_from_slice(&(inflated as u32).to_be_bytes());
    bytes.extend_from_slice(&zlib);
    let e = err(&bytes);
    assert_eq!(
        e.offset, 2,
        "refused at the size field, before inflating: {e}"
    );
    assert!(e.reason.contains("limit is 268435456"), "{e}");
    // Lying: claims 1 MiB. Inflation stops one byte past the claim: the process's peak
    // memory does not grow by anything near the GiB the data inflates to (a clock would
    // measure the machine's load as much as the work).
    bytes[2..6].copy_from_slice(&(1u32 << 20).to_be_bytes());
    let peak0 = peak_rss_kib();
    let e = err(&bytes);
    let grew = peak_rss_kib().saturating_sub(peak0);
    assert!(grew < 512 << 10, "peak RSS grew by {grew} KiB");
    assert!(
        e.reason.contains("more than its declared 1048576 bytes"),
        "{e}"
    );
}

#[test]
fn compressed_terms_decode_and_report_bytes_used() {
    // term_to_binary(lists:duplicate(100, a), [compressed]) from OTP 25.
    use std::io::Write;
    let mut body = vec![108, 0, 0, 0, 100];
    for _ in 0..100 {
        body.extend_from_slice(&[119, 1, b'a']);
    }
    body.push(106);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&body).unwrap();
    let zlib = z.finish().unwrap();
    let mut bytes = vec![131, 80];
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&zlib);
    let used_expected = bytes.len();
    bytes.extend_from_slice(&[131, 97, 7]); // a second term follows
    let (t, used) = decode_prefix(&bytes, &lim()).unwrap();
    assert_eq!(used, used_expected);
    match t {
        Term::List(l) => assert_eq!(l.elements.len(), 100),
        _ => panic!("not a list"),
    }
    // Wrong declared size.
    let mut wrong = bytes[..used_expected].to_vec();
    wrong[5] += 1;
    assert!(err(&wrong).reason.contains("declares"));
}

// ---------------------------------------------------------------- refused tags

#[test]
fn distribution_header_and_atom_cache_refs_are_errors_not_panics() {
    let e = err(&[131, 68, 0]);
    assert_eq!((e.offset, e.reason.contains("tag 68")), (1, true), "{e}");
    let e = err(&[131, 82, 0]);
    assert_eq!((e.offset, e.reason.contains("tag 82")), (1, true), "{e}");
    // An atom cache reference where an atom must be (pid node).
    let e = err(&[131, 88, 82, 0]);
    assert_eq!((e.offset, e.reason.contains("tag 82")), (2, true), "{e}");
    let e = err(&[131, 69, 0]);
    assert!(e.reason.contains("tag 69"), "{e}");
    let e = err(&[131, 121, 0, 0]);
    assert!(e.reason.contains("LOCAL_EXT"), "{e}");
    let e = err(&[131, 117, 0, 0, 0, 0]);
    assert!(e.reason.contains("FUN_EXT"), "{e}");
    let e = err(&[131, 104, 1, 80, 0, 0, 0, 1]);
    assert_eq!(e.offset, 3);
    let e = err(&[131, 200]);
    assert_eq!(e.to_string(), "bad term at byte 1: unknown tag 200");
    let e = err(&[130, 106]);
    assert_eq!(
        e.to_string(),
        "bad term at byte 0: version byte is 130, expected 131"
    );
}

// ---------------------------------------------------------------- encoder corruption

/// eetf wrote `[-1,2]` as STRING_EXT and Erlang read `[255,2]`.
#[test]
fn negative_small_ints_are_never_a_string() {
    let t = Term::List(List {
        elements: vec![int(-1), int(2)],
    });
    assert_eq!(
        enc(&t),
        [131, 108, 0, 0, 0, 2, 98, 255, 255, 255, 255, 97, 2, 106]
    );
    let t = Term::List(List {
        elements: vec![int(256), int(2)],
    });
    assert_eq!(enc(&t)[1], 108);
    // Bytes only: a string, as OTP writes it.
    let t = Term::List(List {
        elements: vec![int(0), int(255)],
    });
    assert_eq!(enc(&t), [131, 107, 0, 2, 0, 255]);
}

/// eetf cut the length of a ByteList longer than 65,535 to 16 bits.
#[test]
fn byte_lists_over_65535_become_list_ext() {
    let bytes: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let t = Term::ByteList(ByteList {
        bytes: bytes.clone(),
    });
    let out = enc(&t);
    assert_eq!(&out[..6], &[131, 108, 0, 1, 0x11, 0x70]);
    assert_eq!(out.len(), 1 + 5 + 2 * 70_000 + 1);
    assert_eq!(decode(&out, &lim()).unwrap(), t);
    let t = Term::ByteList(ByteList {
        bytes: vec![7; 65_535],
    });
    assert_eq!(&enc(&t)[..4], &[131, 107, 255, 255]);
}

#[test]
fn atoms_over_255_characters_are_an_encode_error() {
    let mut out = vec![1, 2, 3];
    let e = encode(&atom(&"é".repeat(256)), &mut out).unwrap_err();
    assert!(e.0.contains("256 characters"), "{e}");
    assert_eq!(out, [1, 2, 3], "output left as it was");
    // 255 two-byte characters are fine (ATOM_UTF8_EXT with a 16-bit length).
    let out = enc(&atom(&"é".repeat(255)));
    assert_eq!(&out[..4], &[131, 118, 1, 254]);
}

#[test]
fn bit_binaries_round_trip_and_bad_ones_are_errors() {
    let t = Term::BitBinary(BitBinary {
        bytes: vec![255, 3],
        tail_bits_size: 2,
    });
    let out = enc(&t);
    assert_eq!(out, [131, 77, 0, 0, 0, 2, 2, 255, 0b1100_0000]);
    assert_eq!(decode(&out, &lim()).unwrap(), t);
    // Bits 0 or 9 (eetf overflowed on these).
    assert!(err(&[131, 77, 0, 0, 0, 1, 0, 1]).reason.contains("0 bits"));
    assert!(err(&[131, 77, 0, 0, 0, 1, 9, 1]).reason.contains("9 bits"));
    // 8 bits is a whole binary.
    assert_eq!(
        decode(&[131, 77, 0, 0, 0, 1, 8, 7], &lim()).unwrap(),
        Term::Binary(eetf::Binary { bytes: vec![7] })
    );
    let bad = Term::BitBinary(BitBinary {
        bytes: vec![4],
        tail_bits_size: 2,
    });
    assert!(encode(&bad, &mut Vec::new()).is_err());
}

// ---------------------------------------------------------------- exactness

/// FLOAT_EXT: eetf parsed it as f32 (0.1 -> 0.10000000149011612).
#[test]
fn old_float_ext_is_parsed_as_f64() {
    for (text, value) in [
        ("1.00000000000000005551e-01", 0.1),
        ("1.10000000000000008882e+00", 1.1),
        ("-1.50000000000000000000e+300", -1.5e300),
        ("4.94065645841246544177e-324", 5e-324),
    ] {
        let mut bytes = vec![131, 99];
        bytes.extend_from_slice(text.as_bytes());
        bytes.resize(2 + 31, 0);
        match decode(&bytes, &lim()).unwrap() {
            Term::Float(f) => assert_eq!(f.value, value, "{text}"),
            _ => panic!("not a float"),
        }
    }
    let mut bad = vec![131, 99];
    bad.extend_from_slice(b"1.5xyz");
    bad.resize(33, 0);
    assert!(err(&bad).reason.contains("FLOAT_EXT"));
}

/// ATOM_EXT / SMALL_ATOM_EXT are Latin-1; eetf read them as UTF-8.
#[test]
fn latin1_atoms_decode_as_latin1() {
    // term_to_binary('hôte@ñu', [{minor_version, 1}])
    let bytes = [131, 100, 0, 7, 104, 244, 116, 101, 64, 241, 117];
    assert_eq!(decode(&bytes, &lim()).unwrap(), atom("hôte@ñu"));
    let bytes = [131, 115, 7, 104, 244, 116, 101, 64, 241, 117];
    assert_eq!(decode(&bytes, &lim()).unwrap(), atom("hôte@ñu"));
    // 'Ã©' in Latin-1 is two characters, not 'é'.
    assert_eq!(
        decode(&[131, 115, 2, 0xC3, 0xA9], &lim()).unwrap(),
        atom("Ã©")
    );
    // We write UTF-8 atoms.
    assert_eq!(
        enc(&atom("hôte@ñu")),
        [131, 119, 9, 104, 195, 180, 116, 101, 64, 195, 177, 117]
    );
    // Invalid UTF-8 in a UTF-8 atom.
    assert!(err(&[131, 119, 1, 0xFF]).reason.contains("UTF-8"));
}

#[test]
fn old_pid_port_and_reference_forms_decode() {
    let node = [119, 3, b'x', b'@', b'y'];
    let mut pid = vec![131, 103];
    pid.extend_from_slice(&node);
    pid.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 3]);
    match decode(&pid, &lim()).unwrap() {
        Term::Pid(p) => assert_eq!((p.id, p.serial, p.creation), (1, 2, 3)),
        _ => panic!(),
    }
    let mut port = vec![131, 102];
    port.extend_from_slice(&node);
    port.extend_from_slice(&[0, 0, 0, 9, 3]);
    match decode(&port, &lim()).unwrap() {
        Term::Port(p) => {
            assert_eq!((p.id, p.creation), (9, 3));
            // Written back as NEW_PORT_EXT.
            assert_eq!(enc(&Term::Port(p))[1], 89);
        }
        _ => panic!(),
    }
    let mut big_port = vec![131, 120];
    big_port.extend_from_slice(&node);
    big_port.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
    match decode(&big_port, &lim()).unwrap() {
        Term::Port(p) => assert_eq!(enc(&Term::Port(p))[1], 120),
        _ => panic!(),
    }
    let mut old_ref = vec![131, 101];
    old_ref.extend_from_slice(&node);
    old_ref.extend_from_slice(&[0, 0, 0, 9, 2]);
    match decode(&old_ref, &lim()).unwrap() {
        Term::Reference(r) => assert_eq!((r.id.clone(), r.creation), (vec![9], 2)),
        _ => panic!(),
    }
    let mut new_ref = vec![131, 114, 0, 2];
    new_ref.extend_from_slice(&node);
    new_ref.extend_from_slice(&[1, 0, 0, 0, 7, 0, 0, 0, 8]);
    match decode(&new_ref, &lim()).unwrap() {
        Term::Reference(r) => {
            assert_eq!((r.id.clone(), r.creation), (vec![7, 8], 1));
            assert_eq!(enc(&Term::Reference(r))[1], 90);
        }
        _ => panic!(),
    }
    // Six reference numbers: the BEAM refuses them, so do we.
    let mut six = vec![131, 90, 0, 6];
    six.extend_from_slice(&node);
    six.extend_from_slice(&[0; 28]);
    assert!(err(&six).reason.contains("6 numbers"));
}

#[test]
fn duplicate_map_keys_are_refused_like_the_beam_does() {
    let e = err(&[131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2]);
    assert_eq!(e.offset, 10);
    assert!(e.reason.contains("duplicate map key"));
    // "ab" and [97,98] are the same key to Erlang, and to us.
    let e = err(&[
        131, 116, 0, 0, 0, 2, 107, 0, 2, 97, 98, 106, 108, 0, 0, 0, 2, 97, 97, 97, 98, 106, 106,
    ]);
    assert!(e.reason.contains("duplicate map key"), "{e}");
}

#[test]
fn improper_and_odd_list_encodings_decode_as_the_beam_reads_them() {
    // [1|x]
    let t = decode(&[131, 108, 0, 0, 0, 1, 97, 1, 119, 1, b'x'], &lim()).unwrap();
    assert_eq!(enc(&t), [131, 108, 0, 0, 0, 1, 97, 1, 119, 1, b'x']);
    assert!(matches!(t, Term::ImproperList(_)));
    // LIST_EXT of zero elements is its tail.
    assert_eq!(
        decode(&[131, 108, 0, 0, 0, 0, 119, 1, b'x'], &lim()).unwrap(),
        atom("x")
    );
    // [1 | "ab"] is the string [1,97,98].
    assert_eq!(
        decode(&[131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 97, 98], &lim()).unwrap(),
        Term::ByteList(ByteList {
            bytes: vec![1, 97, 98]
        })
    );
}

#[test]
fn funs_round_trip() {
    // fun erlang:abs/1 and a closure, from OTP 25 term_to_binary.
    let export = [
        131, 113, 119, 6, 101, 114, 108, 97, 110, 103, 119, 3, 97, 98, 115, 97, 1,
    ];
    assert_eq!(enc(&decode(&export, &lim()).unwrap()), export);
    let mut fun = vec![131, 112, 0, 0, 0, 0, 1];
    fun.extend_from_slice(&[7; 16]);
    fun.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 1, 119, 1, b'm', 97, 3, 98, 0, 1, 0, 0]);
    fun.extend_from_slice(&[
        88, 119, 3, b'x', b'@', b'y', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    fun.extend_from_slice(&[97, 42]);
    let size = (fun.len() - 2) as u32;
    fun[2..6].copy_from_slice(&size.to_be_bytes());
    let t = decode(&fun, &lim()).unwrap();
    assert_eq!(enc(&t), fun);
    // A size field that disagrees with the content.
    fun[5] -= 1;
    assert!(err(&fun).reason.contains("declares a size"));
}

// ---------------------------------------------------------------- framing, errors, no panics

/// A rexi-like distribution payload: the REG_SEND control tuple and the message.
fn rexi_frame() -> Vec<u8> {
    let pid = |out: &mut Vec<u8>| {
        out.extend_from_slice(&[88, 119, 8]);
        out.extend_from_slice(b"a@host_1");
        out.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1]);
    };
    let mut f = vec![131, 104, 4, 97, 6];
    pid(&mut f);
    f.extend_from_slice(&[119, 0, 119, 11]);
    f.extend_from_slice(b"rexi_server");
    f.extend_from_slice(&[131, 104, 2, 119, 9]);
    f.extend_from_slice(b"$gen_cast");
    f.extend_from_slice(&[104, 4, 119, 4]);
    f.extend_from_slice(b"doit");
    f.extend_from_slice(&[104, 2]);
    pid(&mut f);
    f.extend_from_slice(&[90, 0, 3, 119, 8]);
    f.extend_from_slice(b"a@host_1");
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    f.extend_from_slice(&[119, 9]);
    f.extend_from_slice(b"undefined");
    f.extend_from_slice(&[104, 3, 119, 9]);
    f.extend_from_slice(b"rexi_node");
    f.extend_from_slice(&[119, 4]);
    f.extend_from_slice(b"echo");
    f.extend_from_slice(&[108, 0, 0, 0, 1, 109, 0, 0, 0, 40]);
    f.extend_from_slice(&[0xAB; 40]);
    f.extend_from_slice(&[106]);
    f
}

#[test]
fn two_terms_back_to_back() {
    let f = rexi_frame();
    let (ctrl, used) = decode_prefix(&f, &lim()).unwrap();
    assert_eq!(used, 43);
    let (msg, used2) = decode_prefix(&f[used..], &lim()).unwrap();
    assert_eq!(used + used2, f.len());
    let mut out = Vec::new();
    encode(&ctrl, &mut out).unwrap();
    encode(&msg, &mut out).unwrap();
    assert_eq!(out, f);
    // Whole-input decode refuses the trailing second term, naming where it starts.
    let e = decode(&f, &lim()).unwrap_err();
    assert_eq!(e.offset, 43);
    // encode_body has no version byte.
    let mut body = Vec::new();
    encode_body(&msg, &mut body).unwrap();
    assert_eq!(&body[..], &f[used + 1..]);
}

#[test]
fn every_truncation_is_an_error_with_an_offset_inside_the_input() {
    let f = rexi_frame();
    let (_, used) = decode_prefix(&f, &lim()).unwrap();
    let msg = &f[used..];
    for n in 0..msg.len() {
        let e = decode(&msg[..n], &lim()).unwrap_err();
        assert!(e.offset <= n, "prefix {n}: {e}");
    }
}

/// Cheap mutation fuzzing that runs in every `cargo test` (the coverage-guided fuzzer
/// lives in fuzz/): flips, insertions and deletions of the rexi frame never panic.
#[test]
fn mutated_inputs_never_panic() {
    let base = rexi_frame();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut decoded = 0;
    for _ in 0..30_000 {
        let mut m = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % m.len();
            match next() % 4 {
                0 => m[i] = next() as u8,
                1 => m[i] = [0, 1, 255, 127, 128][(next() % 5) as usize],
                2 => m.insert(i, next() as u8),
                _ => {
                    m.remove(i);
                }
            }
        }
        if let Ok((t, _)) = decode_prefix(&m, &lim()) {
            decoded += 1;
            let mut out = Vec::new();
            let _ = encode(&t, &mut out);
            dispose(t);
        }
    }
    assert!(decoded > 0);
}

#[test]
fn small_maps_are_written_in_erlang_term_order() {
    // #{1.0 => a, 2 => b, x => c, 1 => d}: integers before floats, then atoms.
    let mut m = std::collections::HashMap::new();
    m.insert(atom("x"), atom("c"));
    m.insert(Term::Float(eetf::Float { value: 1.0 }), atom("a"));
    m.insert(int(2), atom("b"));
    m.insert(int(1), atom("d"));
    let out = enc(&Term::Map(Map { map: m }));
    // As term_to_binary(#{1.0 => a, 2 => b, x => c, 1 => d}, [{minor_version, 2}]).
    let expected = [
        131, 116, 0, 0, 0, 4, 97, 1, 119, 1, b'd', 97, 2, 119, 1, b'b', 70, 63, 240, 0, 0, 0, 0, 0,
        0, 119, 1, b'a', 119, 1, b'x', 119, 1, b'c',
    ];
    assert_eq!(out, expected);
}

/// The decoder reads the first levels by recursion and deeper ones with its explicit
/// stack; the depth limits must mean the same on both sides of the hand-over.
#[test]
fn limits_hold_across_the_recursion_hand_over() {
    for outer in [0usize, 10, 23, 24, 25, 40] {
        let wrap = |inner: &[u8]| {
            let mut b = vec![131];
            for _ in 0..outer {
                b.extend_from_slice(&[104, 1]);
            }
            b.extend_from_slice(inner);
            b
        };
        let key = |depth: usize| {
            let mut b = vec![116, 0, 0, 0, 1];
            for _ in 0..depth {
                b.extend_from_slice(&[104, 1]);
            }
            b.extend_from_slice(&[97, 1, 97, 2]);
            b
        };
        let keys256 = Limits {
            max_map_key_depth: 256,
            ..lim()
        };
        dispose(decode(&wrap(&key(256)), &keys256).unwrap());
        let e = decode(&wrap(&key(257)), &keys256).unwrap_err();
        assert_eq!(e.offset, 1 + 2 * outer + 5 + 2 * 256, "outer {outer}: {e}");
        assert!(
            e.reason.contains("map key nested deeper"),
            "outer {outer}: {e}"
        );
        // max_depth counts every level, whichever path reads it.
        let limits = Limits {
            max_depth: outer + 3,
            ..lim()
        };
        let mut deep = vec![0u8; 0];
        for _ in 0..3 {
            deep.extend_from_slice(&[104, 1]);
        }
        deep.push(106);
        dispose(decode(&wrap(&deep), &limits).unwrap());
        let mut deeper = vec![104, 1];
        deeper.extend_from_slice(&deep);
        let e = decode(&wrap(&deeper), &limits).unwrap_err();
        assert_eq!(e.offset, 1 + 2 * (outer + 3), "outer {outer}: {e}");
    }
}
