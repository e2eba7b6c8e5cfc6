//! The caller connections of a run. Each one encodes its doit frame once (a
//! [`FrameTemplate`]) and sends a cast by queueing a copy of it with the two reference words
//! that carry the cast's sequence number patched in; replies are timed on the connection's reader, where
//! they arrive (no mailbox hop), and in the closed loop the next cast leaves from there.

use super::hist::Hist;
use super::{caller_name, start_client, Args, BenchError};
use eetf::{Atom, Binary, FixInteger, List, Pid, Reference, Term, Tuple};
use rexi_node::client::{Client, FrameTemplate};
use rexi_node::net::{Cookie, Node};
use rexi_node::process::{Process, Signal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Marks our refs: the third word of every reference this generator makes.
const MAGIC: u32 = 0x0B_E4C4;
/// Placeholder words of the template ref, found and patched in the encoded frame.
const TPL: [u32; 3] = [0x0003_1415, 0x9265_3589, MAGIC];
/// In-flight casts are tracked in a ring of 2^22 send times.
const RING_BITS: u32 = 22;

/// What all connections of a run share: send times, counters and the histogram.
pub(super) struct Shared {
    pub(super) t0: Instant,
    /// When each in-flight cast was sent (or due), ns since t0, +1 (0: free).
    pub(super) sent_at: Vec<AtomicU64>,
    pub(super) next_seq: AtomicU64,
    pub(super) recording: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) closed_loop: bool,
    pub(super) hist: Mutex<Hist>,
    /// Replies while recording.
    pub(super) measured: AtomicU64,
    pub(super) replies: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) send_failures: AtomicU64,
}

impl Shared {
    pub(super) fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

/// One caller connection: its doit, encoded once.
pub(super) struct Lane {
    shared: Arc<Shared>,
    doit: FrameTemplate,
}

impl Lane {
    /// Sends one cast stamped `at` (ns since t0).
    pub(super) fn cast(&self, at: u64) {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let slot = (seq & ((1 << RING_BITS) - 1)) as usize;
        self.shared.sent_at[slot].store(at + 1, Ordering::Relaxed);
        let w0 = (seq & 0x3FFFF) as u32;
        let w1 = (seq >> 18) as u32;
        let mut words = [0u8; 8];
        words[..4].copy_from_slice(&w0.to_be_bytes());
        words[4..].copy_from_slice(&w1.to_be_bytes());
        if self.doit.send(&words).is_err() {
            self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The caller process: replies are handled right where the connection routes them.
struct Sink {
    lane: OnceLock<Arc<Lane>>,
}

impl Process for Sink {
    fn deliver(&self, signal: Signal) {
        let Some(lane) = self.lane.get() else { return };
        let sh = &lane.shared;
        let Signal::Message { message, .. } = signal else {
            return;
        };
        let mut seq = None;
        let mut ok = false;
        if let Term::Tuple(t) = &*message {
            if t.elements.len() == 2 {
                if let Term::Reference(r) = &t.elements[0] {
                    if r.id.len() == 3 && r.id[2] == MAGIC {
                        seq = Some(r.id[0] as u64 | ((r.id[1] as u64) << 18));
                        ok = !matches!(&t.elements[1], Term::Tuple(x) if matches!(x.elements.first(), Some(Term::Atom(a)) if a.name == "rexi_EXIT"));
                    }
                }
            }
        }
        drop(message);
        let Some(seq) = seq else { return };
        let now = sh.now_ns();
        let slot = (seq & ((1 << RING_BITS) - 1)) as usize;
        let at = sh.sent_at[slot].swap(0, Ordering::Relaxed);
        sh.replies.fetch_add(1, Ordering::Relaxed);
        if !ok {
            sh.errors.fetch_add(1, Ordering::Relaxed);
        }
        if at > 0 && sh.recording.load(Ordering::Relaxed) {
            sh.measured.fetch_add(1, Ordering::Relaxed);
            let mut h = sh.hist.lock().unwrap_or_else(|p| p.into_inner());
            h.record(now.saturating_sub(at - 1));
        }
        if sh.closed_loop && !sh.stop.load(Ordering::Relaxed) {
            lane.cast(sh.now_ns());
        }
    }
}

fn atom(s: &str) -> Term {
    Term::Atom(Atom::from(s))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

/// The doit cast from `from` to `server` on `target`, encoded once; its reference's first
/// two words are what each send replaces.
fn doit_template(
    node: &Node,
    from: &Pid,
    target: &str,
    server: &str,
    mfa: Term,
) -> Result<FrameTemplate, String> {
    let r = Reference {
        node: node.atom().clone(),
        id: TPL.to_vec(),
        creation: node.creation(),
    };
    let msg = tuple(vec![
        atom("$gen_cast"),
        tuple(vec![
            atom("doit"),
            tuple(vec![Term::Pid(from.clone()), Term::Reference(Box::new(r))]),
            atom("undefined"),
            mfa,
        ]),
    ]);
    let mut marker = Vec::new();
    for w in &TPL[..2] {
        marker.extend_from_slice(&w.to_be_bytes());
    }
    FrameTemplate::reg_send(node, from, target, server, &msg, &marker)
        .map_err(|e| format!("the doit for {target}: {e}"))
}

pub(super) fn echo_mfa(payload: usize) -> Term {
    tuple(vec![
        atom("rexi_node"),
        atom("echo"),
        Term::List(List::from(vec![Term::Binary(Binary::from(vec![
            b'x';
            payload
        ]))])),
    ])
}

pub(super) fn sleep_mfa(ms: u32) -> Term {
    tuple(vec![
        atom("rexi_node"),
        atom("sleep"),
        Term::List(List::from(vec![Term::FixInteger(FixInteger::from(
            ms as i32,
        ))])),
    ])
}

/// The caller connections of one run, their client nodes and their shared state.
pub(super) struct Lanes {
    pub(super) shared: Arc<Shared>,
    pub(super) lanes: Vec<Arc<Lane>>,
    pub(super) clients: Vec<Client>,
}

/// Starts `--connections` caller nodes, each connected to the target with its doit frame
/// for `mfa`. In the closed loop every reply sends the next cast.
pub(super) async fn open(
    a: &Args,
    base: &str,
    cookie: Cookie,
    mfa: Term,
    closed_loop: bool,
) -> Result<Lanes, BenchError> {
    let conns = a.connections.max(1);
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        sent_at: (0..1usize << RING_BITS)
            .map(|_| AtomicU64::new(0))
            .collect(),
        next_seq: AtomicU64::new(0),
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        closed_loop,
        hist: Mutex::new(Hist::new()),
        measured: AtomicU64::new(0),
        replies: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
    });
    let mut clients = Vec::new();
    let mut lanes = Vec::new();
    for i in 0..conns {
        let c = start_client(a, caller_name(base, i), cookie.clone()).await?;
        let node = c.node().clone();
        let sink = Arc::new(Sink {
            lane: OnceLock::new(),
        });
        let s2 = sink.clone();
        let pid = node.spawn_process(move |_| s2.clone() as Arc<dyn Process>);
        let doit = doit_template(&node, &pid, &a.target, &a.server, mfa.clone())?;
        let lane = Arc::new(Lane {
            shared: shared.clone(),
            doit,
        });
        let _ = sink.lane.set(lane.clone());
        lanes.push(lane);
        clients.push(c);
    }
    Ok(Lanes {
        shared,
        lanes,
        clients,
    })
}
