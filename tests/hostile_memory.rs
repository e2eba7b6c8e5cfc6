//! Memory bombs from an authenticated peer (issue 12): the real daemon, a raw distribution
//! peer sending hand-built frames, and a real `erl` node that must be served throughout.

mod support;

use std::time::Duration;
use support::raw_peer::{etf, RawPeer};
use support::{Daemon, Epmd, Erl, COOKIE};

/// Peak and current resident memory of a process, in bytes (VmHWM, VmRSS).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// `{6, From, '', Name}`: a REG_SEND control tuple.
fn reg_send(peer: &RawPeer, name: &str) -> Vec<u8> {
    etf::versioned(&etf::tuple(&[
        etf::int(6),
        peer.pid(1),
        etf::atom(""),
        etf::atom(name),
    ]))
}

/// A list of `n` empty lists, compressed: 33.5 million fit in about 32 KB of zlib and
/// decoded to 1.88 GB (56 bytes each) before the memory budget.
fn nil_bomb(n: u32) -> Vec<u8> {
    let mut list = vec![108];
    list.extend_from_slice(&n.to_be_bytes());
    list.resize(5 + n as usize + 1, 106);
    etf::compressed(&list)
}

/// Peak RSS the daemon may reach in this test. The bomb asked for 1.9 GB; refused when
/// its list is opened, it costs its inflated bytes (32 MiB) for a moment.
const PEAK_BOUND: u64 = 256 << 20;

#[test]
fn a_32kb_compressed_bomb_closes_that_connection_only() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_bomb", &[]);
    let mut steady = Erl::start(epmd.port, "e_steady", COOKIE, "traffic", &[&d.name, "8"]);
    assert!(
        steady.out.wait_for("CONNECTED", Duration::from_secs(30)),
        "{}",
        steady.out.text()
    );
    let payload = nil_bomb(33_554_432);
    assert!(payload.len() < 40_000, "bomb of {} bytes", payload.len());
    for round in 0..3 {
        let alive = format!("bomber{round}");
        let mut peer = RawPeer::connect(epmd.port, &d.name, &alive, COOKIE).expect("handshake");
        let control = reg_send(&peer, "nobody_registered_this");
        peer.send_control(&control, Some(&payload)).expect("send");
        assert!(
            peer.wait_closed(Duration::from_secs(30)),
            "round {round}: the connection stayed open"
        );
        let needle = format!("nodedown peer={alive}@127.0.0.1");
        assert!(
            d.log.wait_for(&needle, Duration::from_secs(10)),
            "{}",
            d.log.text()
        );
        let line = d
            .log
            .all()
            .into_iter()
            .find(|l| l.contains(&needle))
            .unwrap_or_default();
        assert!(
            line.contains("term memory budget of 268435456 bytes (--max-term-memory)"),
            "{line}"
        );
    }
    let (peak, now) = memory(d.pid());
    assert!(
        peak > 0 && peak < PEAK_BOUND,
        "daemon peak RSS {peak} bytes (now {now}), bound {PEAK_BOUND}"
    );
    // Still the same process, still serving: the traffic run answers every round trip,
    // and a fresh node pings it.
    assert!(
        matches!(d.child.try_wait(), Ok(None)),
        "the daemon exited:\n{}",
        d.log.text()
    );
    assert_eq!(
        steady.wait(Duration::from_secs(60)),
        Some(0),
        "{}",
        steady.out.text()
    );
    Erl::run_ok(
        epmd.port,
        "e_after",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}

/// A frame over its budget is refused even without compression: 5 million small
/// integers are 10 MB on the wire and would be 280 MB of terms. A smaller budget set on
/// the command line is the one named in the log.
#[test]
fn an_uncompressed_amplifier_is_refused_and_the_flag_is_honoured() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_amp", &["--max-term-memory", "50000000"]);
    let mut peer = RawPeer::connect(epmd.port, &d.name, "amplifier", COOKIE).expect("handshake");
    let n = 1_000_000u32;
    let mut list = vec![108];
    list.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        list.extend_from_slice(&[97, 1]);
    }
    list.push(106);
    let control = reg_send(&peer, "nobody_registered_this");
    peer.send_control(&control, Some(&etf::versioned(&list)))
        .expect("send");
    assert!(peer.wait_closed(Duration::from_secs(30)));
    assert!(
        d.log.wait_for(
            "term memory budget of 50000000 bytes (--max-term-memory)",
            Duration::from_secs(10)
        ),
        "{}",
        d.log.text()
    );
    // Another peer is still served.
    Erl::run_ok(
        epmd.port,
        "e_after_amp",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}
