//! `rexi-node epmd` (the real binary) attacked from raw sockets (issue 12). After every
//! attack: the process is alive, its RSS is under a bound, and a real `erl` node
//! registers with it and is listed by the real `epmd -names` client.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{daemon_bin, free_port, wait_until, Lines};

/// Resident memory our epmd may use after (and during) an attack.
const RSS_BOUND: u64 = 48 << 20;

struct OurEpmd {
    child: Child,
    port: u16,
    log: Lines,
}

impl OurEpmd {
    /// `rexi-node epmd --port P EXTRA...`, under `prlimit --nofile=N` when given.
    fn start(extra: &[&str], nofile: Option<u32>) -> OurEpmd {
        let port = free_port();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(daemon_bin());
                c
            }
            None => Command::new(daemon_bin()),
        };
        cmd.args(["epmd", "--port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start rexi-node epmd");
        let log = Lines::default();
        if let Some(e) = child.stderr.take() {
            log.follow(e);
        }
        if let Some(o) = child.stdout.take() {
            log.follow(o);
        }
        let e = OurEpmd { child, port, log };
        assert!(
            e.log.wait_for("epmd listening", Duration::from_secs(10)),
            "epmd did not start:\n{}",
            e.log.text()
        );
        e
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// What the real `epmd -names` client prints.
    fn names(&self) -> String {
        let out = Command::new("epmd")
            .args(["-port", &self.port.to_string(), "-names"])
            .output()
            .expect("epmd -names");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Alive, under the RSS bound, and serving a real node: `erl -name ALIVE@127.0.0.1`
    /// registers (erl may not start an epmd of its own) and `epmd -names` lists it.
    fn assert_healthy(&mut self, alive: &str) {
        assert!(self.alive(), "epmd exited:\n{}", self.log.text());
        let rss = self.rss();
        assert!(
            rss > 0 && rss < RSS_BOUND,
            "epmd RSS {rss} bytes, bound {RSS_BOUND}"
        );
        let mut erl = Command::new("erl")
            .args([
                "-noshell",
                "-start_epmd",
                "false",
                "-setcookie",
                "hostile_epmd",
            ])
            .args(["-name", &format!("{alive}@127.0.0.1")])
            .env("ERL_EPMD_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("erl must be installed");
        let listed = wait_until(Duration::from_secs(30), || {
            self.names().contains(&format!("name {alive} at port"))
        });
        let _ = erl.kill();
        let _ = erl.wait();
        assert!(
            listed,
            "{alive} not registered: names:\n{}\nlog:\n{}",
            self.names(),
            self.log.text()
        );
        assert!(self.alive(), "epmd exited:\n{}", self.log.text());
    }
}

impl Drop for OurEpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(ip: IpAddr, port: u16) -> TcpStream {
    let s = TcpStream::connect((ip, port)).expect("connect");
    s.set_nodelay(true).ok();
    s
}

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Sends one request (length-prefixed) and reads what comes back until the server
/// closes: `None` if it closed without a byte.
fn exchange(ip: IpAddr, port: u16, req: &[u8]) -> Option<Vec<u8>> {
    let mut s = connect(ip, port);
    let mut out = (req.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(req);
    s.write_all(&out).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                // A successful registration keeps the socket open: stop after the reply.
                if got.len() >= 6 && got[0] == 118 {
                    break;
                }
            }
        }
    }
    (!got.is_empty()).then_some(got)
}

fn alive2(
    port: u16,
    node_type: u8,
    highest: u16,
    lowest: u16,
    name: &[u8],
    extra: &[u8],
) -> Vec<u8> {
    let mut b = vec![120];
    b.extend_from_slice(&port.to_be_bytes());
    b.push(node_type);
    b.push(0);
    b.extend_from_slice(&highest.to_be_bytes());
    b.extend_from_slice(&lowest.to_be_bytes());
    b.extend_from_slice(&(name.len() as u16).to_be_bytes());
    b.extend_from_slice(name);
    b.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    b.extend_from_slice(extra);
    b
}

/// Whether the server has closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200))).ok();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// 100 idle sockets against a 64-descriptor limit: accept fails with EMFILE, which is
/// logged and survived (the old server returned the error from its accept loop and
/// exited, taking every registration with it).
#[test]
fn running_out_of_file_descriptors_is_survived() {
    let mut e = OurEpmd::start(&[], Some(64));
    let held: Vec<TcpStream> = (0..100).map(|_| connect(loopback(), e.port)).collect();
    assert!(
        e.log.wait_for("accept failed", Duration::from_secs(10)),
        "no accept failure logged:\n{}",
        e.log.text()
    );
    assert!(
        e.log.contains("out of file descriptors"),
        "{}",
        e.log.text()
    );
    std::thread::sleep(Duration::from_millis(500)); // a few backoff rounds
    assert!(e.alive(), "epmd exited on EMFILE:\n{}", e.log.text());
    drop(held);
    e.assert_healthy("after_emfile");
    assert!(e.log.contains("epmd: accepting again"), "{}", e.log.text());
}

/// Idle clients, partial requests and oversized length headers: the oversized ones are
/// closed at once, the others when the request deadline (10 s) passes; memory stays
/// bounded meanwhile (the old server allocated whatever length was declared and waited
/// forever).
#[test]
fn idle_partial_and_oversized_requests_are_closed() {
    let mut e = OurEpmd::start(&[], None);
    let mut idle: Vec<TcpStream> = (0..100).map(|_| connect(loopback(), e.port)).collect();
    let mut partial: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = connect(loopback(), e.port);
            s.write_all(&[0, 100, 120, 1, 2, 3]).expect("send");
            s
        })
        .collect();
    let started = Instant::now();
    let mut oversized: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect(loopback(), e.port);
            let _ = s.write_all(&[0xff, 0xff]);
            let _ = s.write_all(&[0x41; 4000]);
            s
        })
        .collect();
    for s in &mut oversized {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "an oversized request stayed open"
        );
    }
    let rss = e.rss();
    assert!(rss < RSS_BOUND, "RSS {rss} with 200 clients held");
    for s in idle.iter_mut().chain(partial.iter_mut()) {
        assert!(
            closed_within(s, Duration::from_secs(20).saturating_sub(started.elapsed())),
            "an idle or partial client was not closed after the request deadline"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
    e.assert_healthy("after_idle");
}

/// Names are checked like epmd's (1..255 characters of valid UTF-8, no NUL), and beyond
/// it without control characters: a newline forged entries in `net_adm:names()` before.
/// Refusals get epmd's error reply; framing errors (empty name, NUL) a close.
#[test]
fn bad_names_are_refused() {
    let mut e = OurEpmd::start(&[], None);
    let refused = [118, 1, 0, 0, 0, 99];
    let long = vec![b'a'; 256];
    let cases: [(&str, &[u8], Option<&[u8]>); 6] = [
        ("empty", b"", None),
        ("256 characters", &long, Some(&refused)),
        ("NUL", b"a\0b", None),
        ("invalid UTF-8", b"a\xff\xfe", Some(&refused)),
        ("newline", b"evil at port 1\nname forged", Some(&refused)),
        ("escape", b"a\x1b[2Jb", Some(&refused)),
    ];
    for (what, name, want) in cases {
        let got = exchange(loopback(), e.port, &alive2(40000, 77, 6, 5, name, b""));
        assert_eq!(got.as_deref(), want, "{what}");
    }
    let names = e.names();
    assert!(
        !names.contains("forged") && !names.contains("evil"),
        "{names}"
    );
    assert!(!names.contains("name a"), "{names}");
    e.assert_healthy("after_bad_names");
}

/// Port 0, an unknown node type, highest below lowest, an oversized extra: refused with
/// the reply form the declared highest version expects.
#[test]
fn bogus_fields_are_refused() {
    let mut e = OurEpmd::start(&[], None);
    let x_refused: &[u8] = &[118, 1, 0, 0, 0, 99];
    let cases: [(&str, Vec<u8>, &[u8]); 5] = [
        ("port 0", alive2(0, 77, 6, 5, b"p0", b""), x_refused),
        ("node type 0", alive2(1234, 0, 6, 5, b"t0", b""), x_refused),
        (
            "node type 110",
            alive2(1234, 110, 6, 5, b"t110", b""),
            x_refused,
        ),
        (
            "highest < lowest",
            alive2(1234, 77, 5, 6, b"hl", b""),
            &[121, 1, 0, 99],
        ),
        (
            "extra of 1021 bytes",
            alive2(1234, 77, 6, 5, b"ex", &[7; 1021]),
            x_refused,
        ),
    ];
    for (what, req, want) in cases {
        let got = exchange(loopback(), e.port, &req);
        assert_eq!(got.as_deref(), Some(want), "{what}");
    }
    let names = e.names();
    for n in ["p0", "t0", "t110", "hl", "ex"] {
        assert!(
            !names.contains(&format!("name {n} ")),
            "{n} registered: {names}"
        );
    }
    e.assert_healthy("after_bogus_fields");
}

/// This host's first non-loopback IPv4 address: connecting to it from here makes a
/// client whose address is not loopback.
fn non_loopback_ip() -> IpAddr {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("this test needs a non-loopback IPv4 address on the host")
}

/// ALIVE2, DUMP and KILL from a non-loopback address are closed without a reply (the
/// old server registered and even stopped on them); NAMES is for everyone; the flag
/// lets registrations in.
#[test]
fn administration_only_from_loopback() {
    let ip = non_loopback_ip();
    let mut e = OurEpmd::start(&[], None);
    assert_eq!(
        exchange(ip, e.port, &alive2(4321, 77, 6, 5, b"remote", b"")),
        None
    );
    assert_eq!(exchange(ip, e.port, &[100]), None, "DUMP");
    assert_eq!(exchange(ip, e.port, &[107]), None, "KILL");
    assert!(e.alive(), "a remote KILL stopped it");
    let names = exchange(ip, e.port, &[110]).expect("NAMES answers remote clients");
    assert_eq!(names, u32::from(e.port).to_be_bytes());
    e.assert_healthy("after_remote");
    let open = OurEpmd::start(&["--allow-remote-commands"], None);
    let ok = exchange(ip, open.port, &alive2(4321, 77, 6, 5, b"remote", b"")).expect("reply");
    assert_eq!(&ok[..2], &[118, 0]);
}

/// 1,100 idle clients against the default cap of 1,000: the server holds no more
/// sockets than the cap (the rest wait in the kernel's queue), and frees them all.
#[test]
fn the_connection_cap_holds() {
    let mut e = OurEpmd::start(&[], None);
    let base = e.open_fds();
    let held: Vec<TcpStream> = (0..1100).map(|_| connect(loopback(), e.port)).collect();
    assert!(
        e.log
            .wait_for("connection cap reached", Duration::from_secs(10)),
        "{}",
        e.log.text()
    );
    let fds = e.open_fds();
    assert!(fds <= base + 1000, "{fds} descriptors open (base {base})");
    let rss = e.rss();
    assert!(rss < RSS_BOUND, "RSS {rss} with 1,000 clients held");
    drop(held);
    e.assert_healthy("after_cap");
}
