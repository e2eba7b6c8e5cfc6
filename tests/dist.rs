//! The distribution core against real `erl` nodes and a real epmd (issue 4).

mod support;

use std::time::{Duration, Instant};
use support::*;

#[test]
fn listed_by_epmd_pong_and_hidden() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist1", &[]);
    let names = epmd.names();
    assert!(
        names.contains("name rn_dist1 at port"),
        "epmd -names:\n{names}"
    );
    let out = Erl::run_ok(
        epmd.port,
        "e_ping",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(
        out.contains("PING pong hidden=true visible=false"),
        "{}",
        out.text()
    );
    // SIGTERM: exit 0 and gone from epmd.
    assert_eq!(d.stop(), Some(0));
    assert!(
        wait_until(Duration::from_secs(5), || !epmd
            .names()
            .contains("rn_dist1")),
        "still registered:\n{}",
        epmd.names()
    );
}

#[test]
fn wrong_cookie_is_refused_and_others_keep_working() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist2", &[]);
    let mut bad = Erl::start(
        epmd.port,
        "e_bad",
        "not_the_cookie",
        "expect_ping",
        &[&d.name, "pang"],
    );
    assert_eq!(
        bad.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        bad.out.text()
    );
    assert!(
        d.log.wait_for("wrong cookie", Duration::from_secs(5)),
        "no log line:\n{}",
        d.log.text()
    );
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("wrong cookie"))
        .unwrap_or_default();
    assert!(
        line.contains("e_bad@127.0.0.1"),
        "the log line must name the peer: {line}"
    );
    assert!(
        !d.log.text().contains(COOKIE),
        "the cookie leaked into the log"
    );
    Erl::run_ok(
        epmd.port,
        "e_good",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn noproc_at_once_and_monitors_fire() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist3", &[]);
    let mut e = Erl::start(epmd.port, "e_mon", COOKIE, "monitors", &[&d.name]);
    assert!(
        e.out.wait_for("MONITORING", Duration::from_secs(30)),
        "{}",
        e.out.text()
    );
    let mut d = d;
    let _ = d.child.kill();
    let _ = d.child.wait();
    assert_eq!(e.wait(Duration::from_secs(30)), Some(0), "{}", e.out.text());
    assert!(
        e.out.contains("DOWN on unregister: shutdown"),
        "{}",
        e.out.text()
    );
}

#[test]
fn connect_reaches_a_later_peer_and_comes_back_after_restart() {
    let epmd = Epmd::start();
    let peer = "e_later@127.0.0.1";
    let d = Daemon::start(epmd.port, "rn_dist4", &["--connect", peer]);
    // The peer starts after the daemon has tried and failed, never pings it, and sees it
    // connect.
    assert!(
        d.log.wait_for(
            "cannot connect; retrying with backoff",
            Duration::from_secs(30)
        ),
        "{}",
        d.log.text()
    );
    let mut e1 = Erl::start(epmd.port, "e_later", COOKIE, "wait_connected", &[&d.name]);
    assert_eq!(
        e1.wait(Duration::from_secs(40)),
        Some(0),
        "{}\n{}",
        e1.out.text(),
        d.log.text()
    );
    // Restarted (new creation): connected again without manual action.
    let mut e2 = Erl::start(epmd.port, "e_later", COOKIE, "wait_connected", &[&d.name]);
    assert_eq!(
        e2.wait(Duration::from_secs(40)),
        Some(0),
        "{}\n{}",
        e2.out.text(),
        d.log.text()
    );
    let ups = d
        .log
        .all()
        .iter()
        .filter(|l| l.contains("nodeup") && l.contains(peer) && l.contains("outgoing"))
        .count();
    assert!(ups >= 2, "expected two outgoing nodeups:\n{}", d.log.text());
}

#[test]
fn a_dead_or_frozen_peer_is_declared_down_within_the_ticktime() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist5", &["--net-ticktime", "4"]);
    let mut killed = Erl::start(epmd.port, "e_killed", COOKIE, "idle", &[&d.name]);
    assert!(killed.out.wait_for("CONNECTED", Duration::from_secs(30)));
    let t = Instant::now();
    killed.sigkill();
    assert!(
        d.log
            .wait_for("nodedown peer=e_killed@127.0.0.1", Duration::from_secs(5)),
        "{}",
        d.log.text()
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    let frozen = Erl::start(epmd.port, "e_frozen", COOKIE, "idle", &[&d.name]);
    assert!(frozen.out.wait_for("CONNECTED", Duration::from_secs(30)));
    let t = Instant::now();
    frozen.sigstop();
    assert!(
        d.log
            .wait_for("nodedown peer=e_frozen@127.0.0.1", Duration::from_secs(8)),
        "{}",
        d.log.text()
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "declared down too early: {took:?}"
    );
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("nodedown peer=e_frozen"))
        .unwrap_or_default();
    assert!(line.contains("net_tick_timeout"), "{line}");
}

#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    use std::io::Write;
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist7", &[]);
    let mut steady = Erl::start(epmd.port, "e_steady", COOKIE, "traffic", &[&d.name, "4"]);
    assert!(steady.out.wait_for("CONNECTED", Duration::from_secs(30)));
    // A hand-made peer: a real handshake, then bytes that are no distribution frame.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let stream = rt.block_on(async {
        let entry = rexi_node::net::epmd::lookup("127.0.0.1", epmd.port, "rn_dist7")
            .await
            .expect("epmd")
            .expect("registered");
        let s = tokio::net::TcpStream::connect(("127.0.0.1", entry.port))
            .await
            .expect("connect");
        let cookie = rexi_node::net::Cookie::new(COOKIE);
        let (s, _) = rexi_node::net::handshake::connect(
            s,
            None,
            "127.0.0.1",
            "garbage@127.0.0.1",
            77,
            &cookie,
            Duration::from_secs(5),
            false,
        )
        .await
        .expect("handshake");
        let rexi_node::net::stream::DistStream::Tcp(s) = s else {
            panic!("a plain handshake gives a plain TCP stream")
        };
        s.into_std().expect("std")
    });
    stream.set_nonblocking(false).expect("blocking");
    let mut stream = stream;
    let _ = stream.write_all(&[0, 0, 0, 9, b'p', 131, 104, 200, 1, 2, 3, 4, 5]);
    assert!(
        d.log
            .wait_for("nodedown peer=garbage@127.0.0.1", Duration::from_secs(5)),
        "{}",
        d.log.text()
    );
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("nodedown peer=garbage"))
        .unwrap_or_default();
    assert!(line.contains("malformed frame"), "{line}");
    assert_eq!(
        steady.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        steady.out.text()
    );
}

#[test]
fn starts_its_own_epmd_when_none_answers() {
    let port = free_port();
    let d = Daemon::start(port, "rn_dist8", &[]);
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("started rexi-node epmd"))
        .expect("started epmd line");
    let pid: u32 = line
        .split("pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("pid in log");
    let names = || {
        let out = std::process::Command::new("epmd")
            .args(["-port", &port.to_string(), "-names"])
            .output()
            .expect("epmd -names");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(names().contains("name rn_dist8 at port"), "{}", names());
    // A BEAM node registers with it, and keeps its registration after the daemon exits.
    let e = Erl::start(port, "e_reg", COOKIE, "idle", &[&d.name]);
    assert!(
        e.out.wait_for("CONNECTED", Duration::from_secs(30)),
        "{}",
        e.out.text()
    );
    assert_eq!(d.stop(), Some(0));
    assert!(wait_until(Duration::from_secs(5), || !names().contains("rn_dist8")));
    assert!(names().contains("name e_reg at port"), "{}", names());
    drop(e);
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
}

#[test]
fn links_unlink_ack_and_exit_signals() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist9", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_links",
        "links",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(out.contains("LINKS ok"));
}

#[test]
fn trace_token_forms_are_routed() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist10", &[]);
    Erl::run_ok(
        epmd.port,
        "e_traced",
        "traced",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn a_stalled_handshake_times_out_and_the_handshake_cap_holds() {
    use std::io::Read;
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist11", &["--max-handshakes", "2"]);
    let port: u16 = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(rexi_node::net::epmd::lookup(
            "127.0.0.1",
            epmd.port,
            "rn_dist11",
        ))
        .expect("epmd")
        .expect("registered")
        .port
    };
    // Closed by the daemon: end of file or a reset. A read timeout is no answer at all.
    let closed = |s: &mut std::net::TcpStream, within: Duration| -> Result<(), String> {
        s.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Ok(0) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                Ok(())
            }
            Ok(n) => Err(format!("{n} bytes read: {:?}", &buf[..n])),
            Err(e) => Err(format!("not closed: {e} ({:?})", e.kind())),
        }
    };
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    let fds0 = fds();
    let t = Instant::now();
    let mut a = std::net::TcpStream::connect(("127.0.0.1", port)).expect("a");
    let _b = std::net::TcpStream::connect(("127.0.0.1", port)).expect("b");
    // Wait until the daemon has accepted both (two more open files). It counts a
    // connection in the task it spawns for it, a moment after accepting it, so a third
    // connection racing in on their heels may still find room: then it is closed here
    // (which frees its place) and the third is tried again, until the setup time.
    assert!(
        wait_until(Duration::from_secs(5), || fds() >= fds0 + 2),
        "the daemon did not accept two connections"
    );
    let mut refused = Err(String::from("not tried"));
    while t.elapsed() < Duration::from_secs(5) {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("c");
        refused = closed(&mut c, Duration::from_millis(1500));
        if refused.is_ok() {
            break;
        }
    }
    refused.expect("a third connection must be closed at once, at the cap");
    assert!(
        d.log.wait_for("handshake cap", Duration::from_secs(10)),
        "{}",
        d.log.text()
    );
    // The stalled handshakes are dropped when no name came within 2 s.
    closed(&mut a, Duration::from_secs(20)).expect("a stalled handshake must be closed");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        d.log
            .wait_for("handshake timed out", Duration::from_secs(10)),
        "{}",
        d.log.text()
    );
    // And the daemon serves again.
    Erl::run_ok(
        epmd.port,
        "e_after_cap",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn a_frame_over_the_cap_closes_that_connection() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist12", &["--max-frame", "1000000"]);
    let out = Erl::run_ok(
        epmd.port,
        "e_bigframe",
        "frame_cap",
        &[&d.name],
        Duration::from_secs(90),
    );
    assert!(
        out.contains("FRAMECAP nodedown, no reply"),
        "{}",
        out.text()
    );
    assert!(
        d.log
            .wait_for("exceeds the 1000000-byte cap", Duration::from_secs(10)),
        "{}",
        d.log.text()
    );
    Erl::run_ok(
        epmd.port,
        "e_after_frame",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn json_logs() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_dist13", &["--log-format", "json"]);
    Erl::run_ok(
        epmd.port,
        "e_json",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(d.log.wait_for("nodeup", Duration::from_secs(5)));
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("nodeup"))
        .unwrap_or_default();
    assert!(
        line.starts_with('{') && line.contains("\"peer\":\"e_json@127.0.0.1\""),
        "{line}"
    );
}

#[test]
fn both_sides_dialing_settle_on_one_connection() {
    // Both sides dial each other at once, for both name orders; the erl node makes the
    // overlap certain (see rn_probe:dial_while_dialed): the daemon, started with --connect,
    // waits in its handshake while the erl node dials it. The daemon must take the BEAM's
    // decision (the greater name's attempt wins: `ok_simultaneous` to a greater peer, `nok`
    // to a smaller one), and one connection must settle, carry casts, and never drop.
    // (erl node, daemon, the daemon's answer to the erl node's attempt, the winner seen
    // from the daemon)
    for (erl_alive, daemon_alive, status, direction) in [
        ("sim_a", "sim_z_rn", "Nok", "outgoing"),
        ("sim_z", "sim_a_rn", "OkSimultaneous", "incoming"),
    ] {
        let epmd = Epmd::start();
        let peer = format!("{erl_alive}@127.0.0.1");
        let daemon_name = format!("{daemon_alive}@127.0.0.1");
        let go = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "dial_while_dialed.{}.{erl_alive}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&go);
        let go_arg = go.to_string_lossy().into_owned();
        let e = Erl::start(
            epmd.port,
            erl_alive,
            COOKIE,
            "dial_while_dialed",
            &[&daemon_name, &go_arg],
        );
        assert!(
            e.out
                .wait_for("ACCEPTOR SUSPENDED", Duration::from_secs(30)),
            "{}",
            e.out.text()
        );
        let d = Daemon::start(epmd.port, daemon_alive, &["--connect", &peer]);
        let texts = || format!("erl:\n{}\ndaemon:\n{}", e.out.text(), d.log.text());
        // The daemon decided while its own attempt waited: now the erl node may accept it.
        let decided = d
            .log
            .wait_for("simultaneous connect", Duration::from_secs(30));
        std::fs::write(&go, b"go").expect("signal file");
        assert!(decided, "the daemon never saw both attempts:\n{}", texts());
        // The erl node stays up once it is done, so that its end is no nodedown here.
        let settled = e.out.wait_for("ONE CONNECTION", Duration::from_secs(60));
        assert!(settled, "{}", texts());
        // net_kernel:connect_node/1 is true either way: a BEAM whose attempt lost waits
        // for the other one.
        assert!(
            e.out.contains("SIMULTANEOUS connect_node=true"),
            "{}",
            texts()
        );
        let ups = d.log.with(&["nodeup", &peer]);
        assert_eq!(ups.len(), 1, "one connection expected:\n{}", texts());
        assert!(
            ups[0].contains(&format!("direction={direction}")),
            "the {direction} attempt must win:\n{}",
            texts()
        );
        let decided = d.log.with(&["simultaneous connect", &peer]);
        assert_eq!(decided.len(), 1, "one decision expected:\n{}", texts());
        assert!(
            decided[0].contains(&format!("status={status}")),
            "{}",
            texts()
        );
        let downs = d.log.with(&["nodedown"]);
        assert!(
            downs.is_empty(),
            "a connection dropped: {downs:?}\n{}",
            texts()
        );
        let _ = std::fs::remove_file(&go);
    }
}
