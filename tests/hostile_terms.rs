//! A peer that holds the cookie but sends hostile terms (issue 12, "terms free themselves"
//! and "ownership by connection"). Each test attacks the real daemon from a raw
//! distribution peer (tests/support/raw_peer.rs) or a real `erl` node, then checks that the
//! daemon is still alive and that a legitimate `erl` peer is still served (ping + echo).
//!
//! The deep terms are nested 1,000,000 levels: one compressed frame of about 2 KB. Before
//! the fix, dropping or cloning such a term recursively anywhere overflowed a worker's
//! stack and aborted the whole daemon.

mod support;

use std::time::{Duration, Instant};
use support::raw_peer::{etf, pass_through, RawPeer};
use support::*;

const DEEP: usize = 1_000_000;

fn deep() -> Vec<u8> {
    etf::deep_tuple(DEEP, &etf::atom("leaf"))
}

fn alive(d: &mut Daemon) -> bool {
    matches!(d.child.try_wait(), Ok(None))
}

fn must_be_alive(d: &mut Daemon, what: &str) {
    assert!(
        alive(d),
        "the daemon died after {what}:\n{}",
        tail(&d.log.text())
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The daemon is up and a legitimate erl peer gets a ping and an echo through.
fn assert_served(epmd: &Epmd, d: &mut Daemon, alive_name: &str, what: &str) {
    must_be_alive(d, what);
    let mut e = Erl::start_run(
        epmd.port,
        alive_name,
        COOKIE,
        "rn_hostile",
        "served",
        &[&d.name],
    );
    let code = e.wait(Duration::from_secs(60));
    assert!(
        code == Some(0) && e.out.contains("SERVED"),
        "a legitimate peer was not served after {what} (exit {code:?}):\n{}\ndaemon log:\n{}",
        e.out.text(),
        tail(&d.log.text())
    );
    must_be_alive(d, what);
}

fn connect(epmd: &Epmd, d: &Daemon, alive_name: &str) -> RawPeer {
    RawPeer::connect(epmd.port, &d.name, alive_name, COOKIE).expect("raw peer handshake")
}

/// Frames on one connection are dispatched in order: once the answer to a monitor of a
/// name that does not exist (an immediate `MONITOR_P_EXIT`) is back, everything sent before
/// it has been handled. Panics, with the daemon's log, if the connection dies first.
fn barrier(p: &mut RawPeer, d: &Daemon, seq: u32) {
    let ctl = etf::tuple(&[
        etf::int(19),
        p.pid(1),
        etf::atom("no_such_name_barrier"),
        p.reference([seq, 0xbabe, 7]),
    ]);
    p.send_control(&etf::versioned(&ctl), None)
        .expect("send barrier");
    let want_ref = p.reference([seq, 0xbabe, 7]);
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        match p.read_frame(Duration::from_secs(5)) {
            Ok(Some(f))
                if f.starts_with(&[b'p', 131, 104, 5, 97, 21]) && contains(&f, &want_ref) =>
            {
                return
            }
            Ok(_) => {}
            Err(e) => panic!(
                "the connection died before the barrier came back ({e}):\n{}",
                tail(&d.log.text())
            ),
        }
    }
    panic!("no barrier answer in 120 s:\n{}", tail(&d.log.text()));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `{'$gen_cast', {doit, {Caller, Ref}, Nonce, {M, F, Args}}}`.
fn doit(
    caller: Vec<u8>,
    reference: Vec<u8>,
    nonce: Vec<u8>,
    m: &str,
    f: &str,
    args: &[Vec<u8>],
) -> Vec<u8> {
    etf::tuple(&[
        etf::atom("$gen_cast"),
        etf::tuple(&[
            etf::atom("doit"),
            etf::tuple(&[caller, reference]),
            nonce,
            etf::tuple(&[etf::atom(m), etf::atom(f), etf::list(args)]),
        ]),
    ])
}

/// REG_SEND `{6, From, '', To}` with `payload` (a complete external term).
fn reg_send(p: &mut RawPeer, to: &str, payload: &[u8]) {
    let ctl = etf::tuple(&[etf::int(6), p.pid(1), etf::atom(""), etf::atom(to)]);
    p.send_control(&etf::versioned(&ctl), Some(payload))
        .expect("send REG_SEND");
}

/// Reads until a frame whose payload ends with `tail_bytes` (e.g. the atom of a reply).
fn read_until_ends_with(p: &mut RawPeer, d: &Daemon, tail_bytes: &[u8]) -> Vec<u8> {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        match p.read_frame(Duration::from_secs(5)) {
            Ok(Some(f)) if f.ends_with(tail_bytes) => return f,
            Ok(_) => {}
            Err(e) => panic!("connection died ({e}):\n{}", tail(&d.log.text())),
        }
    }
    panic!(
        "no frame ending with {tail_bytes:?} in 60 s:\n{}",
        tail(&d.log.text())
    );
}

#[test]
fn raw_peer_builders_match_erlang_bytes() {
    // term_to_binary({{ok}}) and term_to_binary([[]]).
    assert_eq!(
        etf::versioned(&etf::deep_tuple(2, &etf::atom("ok"))),
        [131, 104, 1, 104, 1, 119, 2, b'o', b'k']
    );
    assert_eq!(
        etf::versioned(&etf::deep_list(1, &etf::nil())),
        [131, 108, 0, 0, 0, 1, 106, 106]
    );
    let c = etf::compressed(&deep());
    assert!(
        c.len() < 4096,
        "a million-deep term compresses to {} bytes",
        c.len()
    );
}

#[test]
fn deep_reason_in_an_unmatched_monitor_p_exit() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile1", &[]);
    let mut p = connect(&epmd, &d, "raw1");
    // {21, FromPid, ToPid, Ref, Reason}: a monitor this node never set.
    let ctl = etf::tuple(&[
        etf::int(21),
        p.pid(2),
        etf::pid(&d.name, 1, 0, 1),
        p.reference([1, 2, 3]),
        deep(),
    ]);
    p.send_control(&etf::compressed(&ctl), None).unwrap();
    barrier(&mut p, &d, 1);
    assert_served(&epmd, &mut d, "e_h1", "a deep MONITOR_P_EXIT reason");
}

/// A malformed control tuple closes that one connection; the deep rest of it must be freed
/// without recursion on the way out.
fn malformed_control_closes_only_that_connection(alive_name: &str, ctl: Vec<u8>, what: &str) {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, alive_name, &[]);
    let mut p = connect(&epmd, &d, "raw2");
    p.send_control(&etf::compressed(&ctl), None).unwrap();
    assert!(
        p.wait_closed(Duration::from_secs(30)),
        "the daemon kept a connection that sent {what}"
    );
    assert!(
        d.log.wait_for("malformed frame", Duration::from_secs(10)),
        "no log line for {what}:\n{}",
        tail(&d.log.text())
    );
    assert_served(&epmd, &mut d, "e_h2", what);
}

#[test]
fn deep_term_in_a_wrong_arity_control_tuple() {
    malformed_control_closes_only_that_connection(
        "rn_hostile2",
        etf::tuple(&[etf::int(21), deep()]),
        "a wrong-arity MONITOR_P_EXIT with a deep element",
    );
}

#[test]
fn deep_term_beside_a_bad_pid() {
    malformed_control_closes_only_that_connection(
        "rn_hostile3",
        etf::tuple(&[etf::int(1), etf::atom("not_a_pid"), deep()]),
        "a LINK whose from is not a pid, beside a deep element",
    );
}

#[test]
fn deep_term_in_an_unsupported_operation() {
    malformed_control_closes_only_that_connection(
        "rn_hostile4",
        etf::tuple(&[etf::int(99), deep()]),
        "an unsupported operation with a deep element",
    );
}

#[test]
fn deep_nonce_in_a_doit() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile5", &[]);
    let mut p = connect(&epmd, &d, "raw5");
    let msg = doit(
        p.pid(1),
        p.reference([5, 5, 5]),
        deep(),
        "rexi_node",
        "echo",
        &[etf::atom("ok")],
    );
    reg_send(&mut p, "rexi_server", &etf::compressed(&msg));
    read_until_ends_with(&mut p, &d, &etf::atom("ok"));
    barrier(&mut p, &d, 2);
    assert_served(&epmd, &mut d, "e_h5", "a doit with a deep nonce");
}

#[test]
fn deep_sleep_and_stream_arguments() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile6", &[]);
    let mut p = connect(&epmd, &d, "raw6");
    // sleep(Deep) and stream(Deep, x): badarg, and the argument is dropped.
    for (i, (f, args)) in [
        ("sleep", vec![deep()]),
        ("stream", vec![deep(), etf::atom("x")]),
    ]
    .into_iter()
    .enumerate()
    {
        let msg = doit(
            p.pid(1),
            p.reference([6, i as u32, 0]),
            etf::atom("undefined"),
            "rexi_node",
            f,
            &args,
        );
        reg_send(&mut p, "rexi_server", &etf::compressed(&msg));
        barrier(&mut p, &d, 10 + i as u32);
        must_be_alive(&mut d, &format!("{f} with a deep argument"));
    }
    // stream(2, Deep): two rows, each a copy of the deep term, then done.
    let msg = doit(
        p.pid(1),
        p.reference([6, 9, 0]),
        etf::atom("undefined"),
        "rexi_node",
        "stream",
        &[etf::int(2), deep()],
    );
    reg_send(&mut p, "rexi_server", &etf::compressed(&msg));
    read_until_ends_with(&mut p, &d, &etf::atom("done"));
    assert_served(&epmd, &mut d, "e_h6", "sleep/stream with deep arguments");
}

#[test]
fn deep_error_reason_recorded_in_the_error_ring() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile7", &[]);
    probe(
        &epmd,
        &d,
        "e_h7a",
        "deep_fail",
        &[&d.name, &DEEP.to_string()],
        "PASS",
    );
    assert_served(
        &epmd,
        &mut d,
        "e_h7",
        "a deep error reason in the error ring",
    );
}

fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} {pid}");
}

#[test]
fn deep_message_to_a_full_mailbox() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile8", &["--threads", "1"]);
    let mut p = connect(&epmd, &d, "raw8");
    // stream(100, x): ten rows, then the job waits for acks with a mailbox of its own.
    let msg = doit(
        p.pid(1),
        p.reference([8, 8, 8]),
        etf::atom("undefined"),
        "rexi_node",
        "stream",
        &[etf::int(100), etf::atom("x")],
    );
    reg_send(&mut p, "rexi_server", &etf::versioned(&msg));
    let row = read_until_ends_with(&mut p, &d, &etf::tuple(&[etf::int(10), etf::atom("x")]));
    // The worker pid in the row: NEW_PID_EXT with the daemon's node name.
    let mut head = vec![88];
    head.extend_from_slice(&etf::atom(&d.name));
    let at = row
        .windows(head.len())
        .position(|w| w == head.as_slice())
        .expect("a worker pid in the row");
    let worker = row[at..at + head.len() + 12].to_vec();
    // 1,100 small messages (more than the mailbox holds), then deep ones. All of it (about
    // 60 KB) is written while the daemon is stopped, so that its one worker thread reads
    // it in one go and routes it before the job can run: the mailbox is full when the
    // deep messages arrive, and they are dropped there.
    let send_ctl = etf::versioned(&etf::tuple(&[etf::int(2), etf::atom(""), worker]));
    let mut burst = Vec::new();
    let filler = etf::versioned(&etf::nil());
    for _ in 0..1100 {
        pass_through(&mut burst, &send_ctl, Some(&filler));
    }
    let deep_msg = etf::compressed(&deep());
    for _ in 0..2 {
        pass_through(&mut burst, &send_ctl, Some(&deep_msg));
    }
    signal(d.pid(), "-STOP");
    let sent = p.send_raw(&burst);
    signal(d.pid(), "-CONT");
    sent.unwrap();
    barrier(&mut p, &d, 3);
    assert!(
        d.log.wait_for("mailbox full", Duration::from_secs(10)),
        "the mailbox never filled, so this test proved nothing:\n{}",
        tail(&d.log.text())
    );
    assert_served(&epmd, &mut d, "e_h8", "deep messages to a full mailbox");
}

#[test]
fn a_million_deep_term_echoes_intact_to_an_erl_caller() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile9", &[]);
    probe(
        &epmd,
        &d,
        "e_h9a",
        "deep_echo",
        &[&d.name, &DEEP.to_string()],
        "DEEP ECHO intact",
    );
    assert_served(&epmd, &mut d, "e_h9", "a million-deep echo");
}

/// Runs `rn_hostile:func(args)` on a real erl node; it must exit 0 having printed `want`.
fn probe(epmd: &Epmd, d: &Daemon, who: &str, func: &str, args: &[&str], want: &str) {
    let mut e = Erl::start_run(epmd.port, who, COOKIE, "rn_hostile", func, args);
    let code = e.wait(Duration::from_secs(120));
    assert!(
        code == Some(0) && e.out.contains(want),
        "{func} {args:?} (exit {code:?}):\n{}\ndaemon:\n{}",
        e.out.text(),
        tail(&d.log.text())
    );
}

fn stat_reaches(epmd: &Epmd, d: &Daemon, who: &str, key: &str, want: u64) {
    probe(
        epmd,
        d,
        who,
        "stats",
        &[&d.name, key, &want.to_string()],
        "PASS",
    );
}

#[test]
fn ghost_monitors_and_jobs_do_not_outlive_the_sender() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile10", &[]);
    let mut p = connect(&epmd, &d, "raw10");
    let mut burst = Vec::new();
    let push = |ctl: Vec<u8>, payload: Option<Vec<u8>>, out: &mut Vec<u8>| {
        pass_through(out, &etf::versioned(&ctl), payload.as_deref());
    };
    // 1,000 monitors on rexi_server held by pids of a node that never connected, ten by
    // the sender's own pids, and 20 sleep jobs whose caller is a pid of that other node.
    for i in 0..1000u32 {
        let ghost = etf::pid("ghost@127.0.0.1", i, 0, 1);
        let ctl = etf::tuple(&[
            etf::int(19),
            ghost,
            etf::atom("rexi_server"),
            p.reference([i, 1, 10]),
        ]);
        push(ctl, None, &mut burst);
    }
    for i in 0..10u32 {
        let ctl = etf::tuple(&[
            etf::int(19),
            p.pid(i),
            etf::atom("rexi_server"),
            p.reference([i, 2, 10]),
        ]);
        push(ctl, None, &mut burst);
    }
    for i in 0..20u32 {
        let ghost = etf::pid("ghost@127.0.0.1", i, 0, 1);
        let msg = doit(
            ghost,
            p.reference([i, 3, 10]),
            etf::atom("undefined"),
            "rexi_node",
            "sleep",
            &[etf::int(60_000)],
        );
        let ctl = etf::tuple(&[
            etf::int(6),
            p.pid(1),
            etf::atom(""),
            etf::atom("rexi_server"),
        ]);
        push(ctl, Some(etf::versioned(&msg)), &mut burst);
    }
    p.send_raw(&burst).unwrap();
    barrier(&mut p, &d, 4);
    drop(p);
    stat_reaches(&epmd, &d, "e_h10a", "jobs_running", 0);
    // 1: the monitor of the probe's own gen_server:call to rexi_server_mon.
    stat_reaches(&epmd, &d, "e_h10b", "monitors_held", 1);
    assert_served(&epmd, &mut d, "e_h10", "ghost monitors and jobs");
}

#[test]
fn one_peer_at_its_job_quota_does_not_starve_another() {
    let epmd = Epmd::start();
    // --max-jobs 100: the default per-peer quota is a quarter of it.
    let mut d = Daemon::start(epmd.port, "rn_hostile11", &["--max-jobs", "100"]);
    let hog = Erl::start_run(
        epmd.port,
        "e_hog",
        COOKIE,
        "rn_hostile",
        "flood_sleep",
        &[&d.name, "100", "60000"],
    );
    assert!(
        hog.out.wait_for("OVERLOADED", Duration::from_secs(60)),
        "{}",
        hog.out.text()
    );
    assert!(
        hog.out.contains("OVERLOADED 75"),
        "the hog got more than its quota:\n{}",
        hog.out.text()
    );
    assert_served(
        &epmd,
        &mut d,
        "e_h11",
        "one peer holding its whole job quota",
    );
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (0-based 11, 12).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

#[test]
fn a_hundred_thousand_demonitors_cost_well_under_a_second() {
    const N: u32 = 100_000;
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile12", &[]);
    let mut p = connect(&epmd, &d, "raw12");
    let frames = |op: i32| {
        let mut out = Vec::new();
        for i in 0..N {
            let ctl = etf::versioned(&etf::tuple(&[
                etf::int(op),
                p.pid(i % 30_000),
                etf::atom("rexi_server"),
                p.reference([i, 12, 12]),
            ]));
            pass_through(&mut out, &ctl, None);
        }
        out
    };
    let monitors = frames(19);
    let demonitors = frames(20);
    p.send_raw(&monitors).unwrap();
    barrier(&mut p, &d, 5);
    let before = cpu_ticks(d.pid());
    p.send_raw(&demonitors).unwrap();
    barrier(&mut p, &d, 6);
    let spent = cpu_ticks(d.pid()) - before;
    let hz = clock_ticks_per_second();
    eprintln!("100k DEMONITOR_P: {} ms of daemon CPU", spent * 1000 / hz);
    // Measured at about 0.35 s (decoding the 100,000 frames included); it was 29 s when
    // each DEMONITOR scanned a list of every monitor on the target.
    assert!(
        spent < hz,
        "100k demonitors took {} ms of CPU",
        spent * 1000 / hz
    );
    assert_served(&epmd, &mut d, "e_h12", "100k demonitors");
}

#[test]
fn set_error_limit_is_capped() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hostile13", &[]);
    probe(&epmd, &d, "e_h13a", "error_cap", &[&d.name, "1000"], "PASS");
    assert_served(&epmd, &mut d, "e_h13", "set_error_limit 2^31-1");
}

#[test]
fn monitors_beyond_the_per_peer_cap_fire_at_once_with_system_limit() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(
        epmd.port,
        "rn_hostile14",
        &["--max-monitors-per-peer", "10"],
    );
    let mut p = connect(&epmd, &d, "raw14");
    let mut burst = Vec::new();
    for i in 0..11u32 {
        let ctl = etf::tuple(&[
            etf::int(19),
            p.pid(i),
            etf::atom("rexi_server"),
            p.reference([i, 14, 14]),
        ]);
        pass_through(&mut burst, &etf::versioned(&ctl), None);
    }
    p.send_raw(&burst).unwrap();
    // The eleventh: MONITOR_P_EXIT {21, rexi_server, Pid, Ref, system_limit}.
    let f = read_until_ends_with(&mut p, &d, &etf::atom("system_limit"));
    assert!(contains(&f, &p.reference([10, 14, 14])), "{f:?}");
    barrier(&mut p, &d, 7);
    assert_served(&epmd, &mut d, "e_h14", "monitors beyond the per-peer cap");
}
