//! Hostile or broken peers at the connection level (issue 12): the real daemon binary, a
//! real epmd, real `erl` nodes, and raw sockets playing the attacker. Sources that must not
//! slow each other use different loopback addresses (127.0.0.2, 127.0.0.3, ...): `erl`
//! nodes connect from 127.0.0.1.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::raw_peer::{etf, RawPeer};
use support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The daemon's distribution port, from epmd.
fn dist_port(epmd_port: u16, alive: &str) -> u16 {
    rt().block_on(rexi_node::net::epmd::lookup("127.0.0.1", epmd_port, alive))
        .expect("epmd")
        .expect("registered")
        .port
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `from`.
async fn connect_from(from: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    let ip: IpAddr = from.parse().expect("ip");
    s.bind(SocketAddr::new(ip, 0))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files of this process.
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn alive_and_served(epmd_port: u16, d: &mut Daemon, caller: &str) {
    assert!(
        matches!(d.child.try_wait(), Ok(None)),
        "the daemon died:\n{}",
        d.log.text()
    );
    Erl::run_ok(
        epmd_port,
        caller,
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn an_idle_socket_flood_from_one_address_locks_nobody_out() {
    let epmd = Epmd::start();
    // A small connection cap, so that on a daemon whose handshakes take these slots the
    // flood below fills them; here handshakes have their own budget and a per-address cap.
    let mut d = Daemon::start(epmd.port, "rn_hn_flood", &["--max-connections", "256"]);
    let port = dist_port(epmd.port, "rn_hn_flood");
    let sockets = 1500.min(fd_limit().saturating_sub(300));
    assert!(
        sockets >= 500,
        "raise the open-file limit (ulimit -n) to run this test"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicUsize::new(0));
    let rt = rt();
    // Each socket connects from 127.0.0.2, says nothing, and reconnects 1 to 3 s after the
    // daemon closes it: about 700 connects a second, with up to `sockets` held open.
    for i in 0..sockets {
        let stop = stop.clone();
        let connects = connects.clone();
        rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut s) = connect_from("127.0.0.2", port).await {
                    connects.fetch_add(1, Ordering::Relaxed);
                    let mut b = [0u8; 64];
                    let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await;
                }
                let pause = 1000 + (i as u64 * 7919) % 2000;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        });
    }
    let flood_start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || connects.load(Ordering::Relaxed)
            >= sockets),
        "the flood did not get going"
    );
    // Four legitimate nodes, one after the other, while the flood goes on.
    for i in 0..4 {
        let caller = format!("e_flood_ping{i}");
        Erl::run_ok(
            epmd.port,
            &caller,
            "ping",
            &[&d.name],
            Duration::from_secs(30),
        );
    }
    // Longer than one warning interval (10 s), so the aggregated counts are reported.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(flood_start.elapsed()));
    let total = connects.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    drop(rt);
    alive_and_served(epmd.port, &mut d, "e_flood_after");
    let lines = d.log.all();
    let about_flood: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("127.0.0.2"))
        .collect();
    assert!(
        total > 3000,
        "the flood made only {total} connections: not a flood"
    );
    assert!(
        !about_flood.is_empty() && about_flood.len() <= 40,
        "{} warning lines about the flooding address for {total} connections:\n{}",
        about_flood.len(),
        about_flood
            .iter()
            .take(50)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        about_flood
            .iter()
            .any(|l| l.contains("repeated") || !l.contains("suppressed=0")),
        "no aggregated line (with a count):\n{}",
        d.log.text()
    );
    println!(
        "flood: {total} connections from 127.0.0.2, {} warning lines about it",
        about_flood.len()
    );
}

/// One handshake from `from` with `cookie`; Ok when the daemon accepted it.
async fn handshake_from(from: &str, port: u16, name: &str, cookie: &str) -> Result<(), String> {
    let s = connect_from(from, port).await.map_err(|e| e.to_string())?;
    rexi_node::net::handshake::connect(
        s,
        None,
        "127.0.0.1",
        name,
        1,
        &rexi_node::Cookie::new(cookie),
        Duration::from_secs(60),
        false,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[test]
fn wrong_cookie_guesses_are_slowed_for_that_address_only() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hn_guess", &[]);
    let port = dist_port(epmd.port, "rn_hn_guess");
    let rt = rt();
    let attempts = Arc::new(AtomicUsize::new(0));
    let window = Duration::from_secs(5);
    let t0 = Instant::now();
    // Eight guessers on one address, each trying again as soon as it is refused.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let attempts = attempts.clone();
            rt.spawn(async move {
                loop {
                    let r = handshake_from("127.0.0.3", port, "guess@127.0.0.3", "wrong").await;
                    assert!(r.is_err(), "a wrong cookie was accepted");
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Meanwhile another address is not slowed: its handshake succeeds at once.
    let t = Instant::now();
    rt.block_on(handshake_from("127.0.0.4", port, "legit@127.0.0.4", COOKIE))
        .expect("a handshake from another address");
    let legit = t.elapsed();
    std::thread::sleep(window.saturating_sub(t0.elapsed()));
    let n = attempts.load(Ordering::Relaxed);
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }
    drop(rt);
    println!("wrong-cookie attempts from one address: {n} in 5 s ({rate:.1}/s); another address's handshake took {legit:?}");
    assert!(n > 0, "no attempt completed");
    assert!(
        rate < 10.0,
        "{n} wrong-cookie attempts in 5 s ({rate:.0}/s) from one address"
    );
    assert!(legit < Duration::from_secs(1), "{legit:?}");
    assert!(d.log.contains("wrong cookie"), "{}", d.log.text());
    alive_and_served(epmd.port, &mut d, "e_guess_after");
}

/// `{'$gen_cast', {doit, {From, Ref}, undefined, {rexi_node, echo, [Bin]}}}` to
/// `rexi_server`, as a REG_SEND frame from `peer`.
fn cast_echo(peer: &mut RawPeer, n: u32, bin: &[u8]) -> std::io::Result<()> {
    let from = peer.pid(1);
    let control = etf::versioned(&etf::tuple(&[
        etf::int(6),
        from.clone(),
        etf::atom(""),
        etf::atom("rexi_server"),
    ]));
    let msg = etf::versioned(&etf::tuple(&[
        etf::atom("$gen_cast"),
        etf::tuple(&[
            etf::atom("doit"),
            etf::tuple(&[from, peer.reference([n, 7, 7])]),
            etf::atom("undefined"),
            etf::tuple(&[
                etf::atom("rexi_node"),
                etf::atom("echo"),
                etf::list(&[etf::binary(bin)]),
            ]),
        ]),
    ]));
    peer.send_control(&control, Some(&msg))
}

#[test]
fn a_peer_that_stops_reading_is_closed_within_the_ticktime() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hn_stall", &["--net-ticktime", "4"]);
    let mut peer = RawPeer::connect(epmd.port, &d.name, "stalled", COOKIE).expect("handshake");
    assert!(d.log.wait_for("nodeup", Duration::from_secs(5)));
    // 32 replies of 1 MiB: far more than the kernel buffers take, far less than the
    // per-peer cap (256 MiB), so only the stalled write can end the connection.
    let bin = vec![7u8; 1 << 20];
    for n in 0..32 {
        cast_echo(&mut peer, n, &bin).expect("cast");
    }
    let sent = Instant::now();
    // Keep ticking (the daemon hears from us) but never read.
    let mut closed = None;
    let mut peak = 0;
    while sent.elapsed() < Duration::from_secs(20) {
        peak = peak.max(rss_kb(d.pid()));
        if d.log.contains("stopped reading") {
            closed = Some(sent.elapsed());
            break;
        }
        let _ = peer.tick();
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = closed.unwrap_or_else(|| {
        panic!(
            "a peer that never reads was not disconnected in 20 s:\n{}",
            d.log.text()
        )
    });
    println!(
        "stalled reader closed {took:?} after the casts (net_ticktime 4 s), peak RSS {} MB",
        peak / 1024
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // 32 MiB of casts in, 32 MiB of replies queued: nothing near a copy per reply.
    assert!(peak < 300 * 1024, "RSS reached {} MB", peak / 1024);
    let line = d
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("stopped reading"))
        .unwrap_or_default();
    assert!(line.contains("stalled@127.0.0.1"), "{line}");
    alive_and_served(epmd.port, &mut d, "e_stall_after");
}

#[test]
fn a_send_queue_over_the_cap_closes_the_socket_and_counts_drops() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(
        epmd.port,
        "rn_hn_overflow",
        &["--net-ticktime", "60", "--max-outbox", "16777216"],
    );
    let mut peer = RawPeer::connect(epmd.port, &d.name, "hoarder", COOKIE).expect("handshake");
    assert!(d.log.wait_for("nodeup", Duration::from_secs(5)));
    let bin = vec![9u8; 1 << 20];
    let mut peak = 0;
    let t = Instant::now();
    let mut casts = 0;
    for n in 0..200 {
        // The daemon closes us part way: our writes then fail.
        if cast_echo(&mut peer, n, &bin).is_err() {
            break;
        }
        casts += 1;
        if n % 10 == 0 {
            peak = peak.max(rss_kb(d.pid()));
        }
    }
    assert!(
        d.log.wait_for("overflowed", Duration::from_secs(10)),
        "the connection of a peer past --max-outbox was not closed:\n{}",
        d.log.text()
    );
    let took = t.elapsed();
    peak = peak.max(rss_kb(d.pid()));
    println!(
        "overflow: closed after {took:?}, peak RSS {} MB",
        peak / 1024
    );
    assert!(peak < 400 * 1024, "RSS reached {} MB", peak / 1024);
    alive_and_served(epmd.port, &mut d, "e_overflow_after");
    drop(peer);
    // Replies that could not be queued are counted as dropped, not as sent.
    let pid = d.pid();
    let log = d.log.clone();
    assert_eq!(d.stop(), Some(0), "daemon {pid} exit");
    let stopped = log
        .all()
        .into_iter()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_default();
    let stat = |k: &str| -> u64 {
        stopped
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {stopped}"))
    };
    assert!(stat("replies_dropped") > 0, "{stopped}");
    assert!(stat("replies") < casts as u64, "{stopped} ({casts} casts)");
}

#[test]
fn a_peer_name_cannot_forge_a_log_line() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hn_inject", &[]);
    let alive = "x\n2099-01-01T00:00:00.000000Z  INFO rexi_node::net::node: forged\x1b[2K";
    let r = RawPeer::connect(epmd.port, &d.name, alive, COOKIE);
    assert!(r.is_err(), "a name with control characters was accepted");
    assert!(
        d.log.wait_for("control characters", Duration::from_secs(5)),
        "{}",
        d.log.text()
    );
    let lines = d.log.all();
    assert!(
        !lines.iter().any(|l| l.starts_with("2099")),
        "a forged line:\n{}",
        d.log.text()
    );
    // The name is shown with its escapes, on the refusal line itself.
    let refusal = lines
        .iter()
        .find(|l| l.contains("control characters"))
        .cloned()
        .unwrap_or_default();
    assert!(
        refusal.contains("x\\n2099") && refusal.contains("\\u{1b}[2K"),
        "{refusal}"
    );
    alive_and_served(epmd.port, &mut d, "e_inject_after");
}

#[test]
fn a_peer_named_like_this_node_is_refused() {
    let epmd = Epmd::start();
    let mut d = Daemon::start(epmd.port, "rn_hn_twin", &[]);
    let r = RawPeer::connect(epmd.port, &d.name, "rn_hn_twin", COOKIE);
    assert!(r.is_err(), "a peer named like this node was accepted");
    assert!(
        d.log.wait_for("own name", Duration::from_secs(5)),
        "{}",
        d.log.text()
    );
    let refusals = d
        .log
        .all()
        .iter()
        .filter(|l| l.contains("own name"))
        .count();
    assert_eq!(refusals, 1, "{}", d.log.text());
    assert!(!d.log.contains("nodeup"), "{}", d.log.text());
    alive_and_served(epmd.port, &mut d, "e_twin_after");
}

fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rexi-hn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[test]
fn a_cookie_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("mode");
    let file = dir.join("cookie");
    std::fs::write(&file, "rexi_test_cookie\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // No epmd on that port and none started: a daemon that accepts the file fails later,
    // with another message.
    let out = std::process::Command::new(daemon_bin())
        .args(["run", "--name", "rn_hn_mode@127.0.0.1", "--no-start-epmd"])
        .arg("--cookie-file")
        .arg(&file)
        .env("ERL_EPMD_PORT", free_port().to_string())
        .env_remove("REXI_NODE_COOKIE")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&file.display().to_string()) && err.contains("chmod 400"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_first_starts_all_get_one_cookie() {
    use std::os::unix::fs::PermissionsExt;
    let dead_epmd = free_port().to_string();
    for round in 0..5 {
        let home = scratch_dir(&format!("home{round}"));
        let children: Vec<_> = (0..40)
            .map(|_| {
                std::process::Command::new(daemon_bin())
                    .args([
                        "ping",
                        "nobody@127.0.0.1",
                        "--name",
                        "rn_hn_first@127.0.0.1",
                    ])
                    .env("HOME", &home)
                    .env("ERL_EPMD_PORT", &dead_epmd)
                    .env_remove("REXI_NODE_COOKIE")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            // Every one got past the cookie, to the (absent) epmd.
            assert!(
                !err.to_lowercase().contains("cookie"),
                "round {round}: {err}"
            );
            assert!(err.contains("epmd unreachable"), "round {round}: {err}");
        }
        // One file, complete, owner-only; no temporary file left behind.
        let entries: Vec<String> = std::fs::read_dir(&home)
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(entries, vec![".erlang.cookie".to_string()]);
        let path = home.join(".erlang.cookie");
        let cookie = std::fs::read_to_string(&path).expect("cookie");
        assert!(
            cookie.len() == 20 && cookie.chars().all(|c| c.is_ascii_uppercase()),
            "{cookie:?}"
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        let _ = std::fs::remove_dir_all(&home);
    }
}

#[test]
fn a_cookie_on_the_command_line_is_warned_about_and_kept_from_epmd() {
    // On the command line: one warning.
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_hn_argv", &[]);
    let warned = d
        .log
        .all()
        .iter()
        .filter(|l| l.contains("--cookie on the command line"))
        .count();
    assert_eq!(warned, 1, "{}", d.log.text());
    drop(d);
    // From REXI_NODE_COOKIE: no warning, and the epmd it starts does not inherit it.
    let dir = scratch_dir("env");
    let log_path = dir.join("daemon.log");
    let port = free_port();
    let mut child = std::process::Command::new(daemon_bin())
        .args(["run", "--name", "rn_hn_env@127.0.0.1"])
        .env("REXI_NODE_COOKIE", COOKIE)
        .env("ERL_EPMD_PORT", port.to_string())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("daemon");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = wait_until(Duration::from_secs(10), || log().contains("serving rexi"));
    let epmd_pid: Option<u32> = log()
        .lines()
        .find(|l| l.contains("started rexi-node epmd"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    let environ = epmd_pid
        .map(|p| std::fs::read(format!("/proc/{p}/environ")).unwrap_or_default())
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    if let Some(p) = epmd_pid {
        let _ = std::process::Command::new("kill")
            .arg(p.to_string())
            .status();
    }
    let text = log();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(started, "{text}");
    assert!(epmd_pid.is_some(), "no epmd started:\n{text}");
    assert!(!environ.is_empty(), "could not read the epmd's environment");
    assert!(!text.contains("--cookie on the command line"), "{text}");
    let env = String::from_utf8_lossy(&environ);
    assert!(
        !env.contains("REXI_NODE_COOKIE") && !env.contains(COOKIE),
        "the epmd inherited the cookie"
    );
}
