//! Decode and encode cost of our ETF codec beside `eetf`'s own, in one run:
//!
//!     cargo bench --bench etf
//!
//! For each workload it prints ns per term and heap allocations per term (a counting
//! global allocator), for decoding (the dropping of the result is timed separately),
//! dropping, and encoding into a reused `Vec`. Each figure is the best of several
//! rounds, because the machine is shared.

// A global allocator that counts bytes must implement `GlobalAlloc`, an unsafe trait;
// it only forwards to `System`. The crate denies unsafe code everywhere else.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use eetf::Term;
use rexi_node::etf::{self, Limits};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 40;

/// Runs `setup` (untimed), `timed` and `teardown` (untimed) `ROUNDS` times; returns the
/// best ns per item and the allocations per item made inside `timed`. Batches are kept
/// small so they stay in cache, and results are dropped outside the timing.
fn measure<S, T>(
    items: usize,
    mut setup: impl FnMut() -> S,
    mut timed: impl FnMut(S) -> T,
    mut teardown: impl FnMut(T),
) -> (f64, f64) {
    let s = setup();
    teardown(timed(s)); // warm up
    let mut best = f64::MAX;
    let mut allocs = 0;
    for _ in 0..ROUNDS {
        let s = setup();
        let a0 = ALLOCS.load(Relaxed);
        let t0 = Instant::now();
        let t = timed(s);
        let ns = t0.elapsed().as_nanos() as f64;
        allocs = ALLOCS.load(Relaxed) - a0;
        teardown(t);
        best = best.min(ns);
    }
    (best / items as f64, allocs as f64 / items as f64)
}

#[derive(Clone, Copy)]
struct Row {
    decode: (f64, f64),
    drop: (f64, f64),
    encode: (f64, f64),
}

impl Row {
    fn best(self, other: Row) -> Row {
        let m = |a: (f64, f64), b: (f64, f64)| if a.0 <= b.0 { a } else { b };
        Row {
            decode: m(self.decode, other.decode),
            drop: m(self.drop, other.drop),
            encode: m(self.encode, other.encode),
        }
    }
}

/// The two codecs behind one interface.
trait Codec {
    fn decode_frame(f: &[u8], into: &mut Vec<Term>);
    fn drop_term(t: Term);
    fn encode(t: &Term, out: &mut Vec<u8>);
}

struct Ours;
struct Eetf;

impl Codec for Ours {
    fn decode_frame(f: &[u8], into: &mut Vec<Term>) {
        let limits = Limits::default();
        let mut at = 0;
        while at < f.len() {
            let (t, used) = etf::decode_prefix(&f[at..], &limits).unwrap();
            at += used;
            into.push(t);
        }
    }
    fn drop_term(t: Term) {
        etf::dispose(t)
    }
    fn encode(t: &Term, out: &mut Vec<u8>) {
        etf::encode(t, out).unwrap()
    }
}

impl Codec for Eetf {
    fn decode_frame(f: &[u8], into: &mut Vec<Term>) {
        let mut c = Cursor::new(f);
        while (c.position() as usize) < f.len() {
            into.push(Term::decode(&mut c).unwrap());
        }
    }
    fn drop_term(t: Term) {
        drop(t)
    }
    fn encode(t: &Term, out: &mut Vec<u8>) {
        t.encode(out).unwrap()
    }
}

/// `frames` are byte strings each holding one or more terms back to back; figures are
/// per frame when `per_frame`, else per term.
fn run<C: Codec>(frames: &[Vec<u8>], reps: usize, per_frame: bool) -> Row {
    let terms = decode_all(frames, 1);
    let n = terms.len() * reps;
    let units = if per_frame { frames.len() * reps } else { n };
    let decode = measure(
        units,
        || Vec::with_capacity(n),
        |mut keep: Vec<Term>| {
            for _ in 0..reps {
                for f in frames {
                    C::decode_frame(f, &mut keep);
                }
            }
            keep
        },
        |keep| keep.into_iter().for_each(etf::dispose),
    );
    let drop = measure(
        units,
        || decode_all(frames, reps),
        |v: Vec<Term>| {
            let mut v = v;
            for t in v.drain(..) {
                C::drop_term(t);
            }
            v
        },
        drop,
    );
    let mut out = Vec::with_capacity(1 << 16);
    let encode = measure(
        units,
        || (),
        |()| {
            for _ in 0..reps {
                for t in &terms {
                    out.clear();
                    C::encode(t, &mut out);
                    black_box(&out);
                }
            }
        },
        |()| {},
    );
    terms.into_iter().for_each(etf::dispose);
    Row {
        decode,
        drop,
        encode,
    }
}

fn decode_all(frames: &[Vec<u8>], reps: usize) -> Vec<Term> {
    let mut v = Vec::new();
    for _ in 0..reps {
        for f in frames {
            let mut at = 0;
            while at < f.len() {
                let (t, used) = etf::decode_prefix(&f[at..], &Limits::default()).unwrap();
                at += used;
                v.push(t);
            }
        }
    }
    v
}

// ------------------------------------------------------------------ workloads

fn atom(s: &str) -> Term {
    Term::Atom(eetf::Atom::from(s))
}

fn pid() -> Term {
    Term::Pid(eetf::Pid::new(
        "couchdb@db1.example.com",
        5123,
        0,
        1_795_686_509,
    ))
}

/// `{6, FromPid, '', rexi_server}` then
/// `{'$gen_cast',{doit,{Pid,Ref},undefined,{rexi_node,echo,[<<40 bytes>>]}}}`.
fn rexi_frame() -> Vec<u8> {
    let ctrl = Term::Tuple(eetf::Tuple::from(vec![
        Term::FixInteger(6.into()),
        pid(),
        atom(""),
        atom("rexi_server"),
    ]));
    let reference = Term::Reference(Box::new(eetf::Reference {
        node: eetf::Atom::from("couchdb@db1.example.com"),
        id: vec![158_432, 2_340_875_521, 1_933_570_050],
        creation: 1_795_686_509,
    }));
    let msg = Term::Tuple(eetf::Tuple::from(vec![
        atom("$gen_cast"),
        Term::Tuple(eetf::Tuple::from(vec![
            atom("doit"),
            Term::Tuple(eetf::Tuple::from(vec![pid(), reference])),
            atom("undefined"),
            Term::Tuple(eetf::Tuple::from(vec![
                atom("rexi_node"),
                atom("echo"),
                Term::List(eetf::List::from(vec![Term::Binary(eetf::Binary::from(
                    vec![0xA5u8; 40],
                ))])),
            ])),
        ])),
    ]));
    let mut f = Vec::new();
    etf::encode(&ctrl, &mut f).unwrap();
    etf::encode(&msg, &mut f).unwrap();
    f
}

/// A mixed corpus: documents, lists of numbers, strings, nested tuples, bignums,
/// floats, a map, a long binary.
fn corpus() -> Vec<Vec<u8>> {
    let mut terms = Vec::new();
    let doc = |i: i32| {
        Term::Tuple(eetf::Tuple::from(vec![Term::List(eetf::List::from(vec![
            Term::Tuple(eetf::Tuple::from(vec![
                Term::Binary(eetf::Binary::from(b"_id".to_vec())),
                Term::Binary(eetf::Binary::from(format!("doc-{i:06}").into_bytes())),
            ])),
            Term::Tuple(eetf::Tuple::from(vec![
                Term::Binary(eetf::Binary::from(b"_rev".to_vec())),
                Term::Binary(eetf::Binary::from(
                    format!("1-{:032x}", i as u128 * 7919).into_bytes(),
                )),
            ])),
            Term::Tuple(eetf::Tuple::from(vec![
                Term::Binary(eetf::Binary::from(b"value".to_vec())),
                Term::FixInteger(i.into()),
            ])),
            Term::Tuple(eetf::Tuple::from(vec![
                Term::Binary(eetf::Binary::from(b"score".to_vec())),
                Term::Float(eetf::Float::try_from(i as f64 * 0.25).unwrap()),
            ])),
        ]))]))
    };
    for i in 0..8 {
        terms.push(doc(i));
    }
    terms.push(Term::List(eetf::List::from(
        (0..200)
            .map(|i| Term::FixInteger((i * 1000 - 7).into()))
            .collect::<Vec<_>>(),
    )));
    terms.push(Term::ByteList(eetf::ByteList::from(
        "a string of bytes, as Erlang sends \"abc\""
            .as_bytes()
            .to_vec(),
    )));
    terms.push(Term::BigInteger(eetf::BigInteger {
        value: num_bigint::BigInt::from(3u8).pow(200),
    }));
    let mut m = std::collections::HashMap::new();
    for i in 0..10 {
        m.insert(atom(&format!("key_{i}")), Term::FixInteger(i.into()));
    }
    terms.push(Term::Map(eetf::Map::from(m)));
    terms.push(Term::Binary(eetf::Binary::from(vec![7u8; 4096])));
    let mut nest = atom("leaf");
    for i in 0..50 {
        nest = Term::Tuple(eetf::Tuple::from(vec![Term::FixInteger(i.into()), nest]));
    }
    terms.push(nest);
    terms
        .iter()
        .map(|t| {
            let mut v = Vec::new();
            etf::encode(t, &mut v).unwrap();
            v
        })
        .collect()
}

fn print(name: &str, ours: &Row, theirs: &Row) {
    let cell = |r: (f64, f64)| format!("{:>8.0} ns {:>6.1} alloc", r.0, r.1);
    println!("{name}");
    println!(
        "  {:<8} {:<26} {:<26} {:<26}",
        "", "decode", "drop", "encode"
    );
    println!(
        "  {:<8} {:<26} {:<26} {:<26}",
        "ours",
        cell(ours.decode),
        cell(ours.drop),
        cell(ours.encode)
    );
    println!(
        "  {:<8} {:<26} {:<26} {:<26}",
        "eetf",
        cell(theirs.decode),
        cell(theirs.drop),
        cell(theirs.encode)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse. ETF_BENCH_PROFILE=ours|eetf
    // loops on one decoder over the corpus, for `perf record`.
    if let Ok(which) = std::env::var("ETF_BENCH_PROFILE") {
        let c = corpus();
        if which == "terms" {
            for (i, f) in c.iter().enumerate() {
                let one = [f.clone()];
                let o = run::<Ours>(&one, 200, false);
                let e = run::<Eetf>(&one, 200, false);
                println!(
                    "term {i:2} ({:5} bytes): decode ours {:7.0} eetf {:7.0}  drop ours {:6.0} eetf {:6.0}",
                    f.len(),
                    o.decode.0,
                    e.decode.0,
                    o.drop.0,
                    e.drop.0
                );
            }
            return;
        }
        for _ in 0..200 {
            if which == "ours" {
                run::<Ours>(&c, 10, false);
            } else {
                run::<Eetf>(&c, 10, false);
            }
        }
        return;
    }
    let rexi = vec![rexi_frame()];
    println!(
        "rexi frame: {} bytes (control + message); corpus: {} terms, {} bytes",
        rexi[0].len(),
        corpus().len(),
        corpus().iter().map(Vec::len).sum::<usize>()
    );
    // Interleaved twice, best of both, to even out a shared, noisy machine.
    let mut ours = run::<Ours>(&rexi, 100, true);
    let mut theirs = run::<Eetf>(&rexi, 100, true);
    ours = ours.best(run::<Ours>(&rexi, 100, true));
    theirs = theirs.best(run::<Eetf>(&rexi, 100, true));
    print(
        "rexi message (per frame: control tuple + message)",
        &ours,
        &theirs,
    );
    let c = corpus();
    let mut ours = run::<Ours>(&c, 10, false);
    let mut theirs = run::<Eetf>(&c, 10, false);
    ours = ours.best(run::<Ours>(&c, 10, false));
    theirs = theirs.best(run::<Eetf>(&c, 10, false));
    print("mixed corpus (per term)", &ours, &theirs);
}
