//! `--metrics-addr` against the real daemon, a real epmd and real `erl` callers (issue 16):
//! counters move by exactly what was sent, the exposition parses, `/readyz` follows the epmd
//! registration, a taken address stops the daemon, per-peer series only on request, and
//! `status --json` shows the same figures as `/metrics`.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A GET: (status, content type, body).
fn get(port: u16, path: &str, accept: Option<&str>) -> Result<(u16, String, String), String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{accept}\r\n").map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no blank line")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_string();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .ok_or("no Content-Length")?;
    assert_eq!(len, body.len(), "Content-Length disagrees with the body");
    Ok((status, ctype, body.to_string()))
}

/// Every sample of a scrape by `name{labels sorted}`; panics on anything the parser skips.
fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, ctype, body) = get(port, "/metrics", None).expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    parse_exposition(&body)
}

fn parse_exposition(body: &str) -> HashMap<String, f64> {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("exposition parses");
    let mut out = HashMap::new();
    let mut n = 0;
    for s in &parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = |suffix: &str, extra: Option<String>| {
            let mut l = labels.clone();
            l.extend(extra);
            l.sort();
            format!("{}{suffix}{{{}}}", s.metric, l.join(","))
        };
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                n += 1;
                out.insert(key("", None), *v);
            }
            prometheus_parse::Value::Histogram(h) => {
                let mut sorted: Vec<_> = h.iter().map(|b| (b.less_than, b.count)).collect();
                sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(
                    sorted.windows(2).all(|w| w[0].1 <= w[1].1),
                    "histogram buckets are not cumulative: {sorted:?}"
                );
                for b in h {
                    n += 1;
                    out.insert(key("_bucket", Some(format!("le={}", b.less_than))), b.count);
                }
            }
            prometheus_parse::Value::Summary(_) => panic!("no summaries are exported"),
        }
    }
    // The parser skips lines it cannot read: every sample line must have become a sample.
    let sample_lines = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(n, sample_lines, "some sample lines did not parse:\n{body}");
    assert_eq!(out.len(), n, "duplicate series in the exposition:\n{body}");
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap_or_default();
        assert!(name.starts_with("rexi_node_"), "unprefixed metric {name}");
    }
    out
}

fn val(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no series {key}; have {:?}", m.keys().collect::<Vec<_>>()))
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    val(after, key) - before.get(key).copied().unwrap_or(0.0)
}

/// The daemon, started without waiting for it to serve (so its start can be watched).
struct Run {
    child: Child,
    err: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Run {
    fn start(epmd_port: u16, alive: &str, extra: &[&str]) -> Run {
        let mut child = Command::new(daemon_bin())
            .args([
                "run",
                "--name",
                &format!("{alive}@127.0.0.1"),
                "--cookie",
                COOKIE,
            ])
            .args(extra)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start daemon");
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = err.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&s);
            }
        });
        Run { child, err }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ready(port: u16) -> Option<(u16, String)> {
    get(port, "/readyz", None).ok().map(|(s, _, b)| (s, b))
}

/// A real epmd and the daemon serving metrics on a free port: (epmd, daemon, metrics port).
fn with_metrics(alive: &str, extra: &[&str]) -> (Epmd, Daemon, u16) {
    let epmd = Epmd::start();
    let mport = free_port();
    let addr = format!("127.0.0.1:{mport}");
    let mut args = vec!["--metrics-addr", addr.as_str()];
    args.extend(extra);
    let d = Daemon::start(epmd.port, alive, &args);
    (epmd, d, mport)
}

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn counters_move_by_exactly_the_casts_errors_and_kills_sent() {
    let (epmd, d, mport) = with_metrics("rn_met1", &[]);
    assert!(wait_until(LIMIT, || matches!(ready(mport), Some((200, _)))));
    let before = scrape(mport);
    let (n, errors, kills) = (25, 7, 5);
    let out = Erl::start_run(
        epmd.port,
        "e_met1",
        COOKIE,
        "rn_metrics",
        "workload",
        &[
            &d.name,
            &n.to_string(),
            &errors.to_string(),
            &kills.to_string(),
        ],
    );
    let mut out = out;
    assert_eq!(
        out.wait(Duration::from_secs(60)),
        Some(0),
        "{}",
        out.out.text()
    );
    assert!(out.out.contains("PASS"), "{}", out.out.text());
    // The caller halted: wait for its nodedown, so the connection figures are final too.
    assert!(wait_until(LIMIT, || {
        val(&scrape(mport), "rexi_node_connections{state=up}") == 0.0
    }));
    let after = scrape(mport);
    let d_ = |k: &str| delta(&before, &after, k);
    let n = n as f64;
    let (errors, kills) = (errors as f64, kills as f64);
    assert_eq!(d_("rexi_node_casts_received_total{name_form=singleton}"), n);
    assert_eq!(
        d_("rexi_node_casts_received_total{name_form=phash2}"),
        n + kills
    );
    assert_eq!(
        d_("rexi_node_casts_received_total{name_form=nodename}"),
        n + errors
    );
    assert_eq!(d_("rexi_node_replies_sent_total{}"), 3.0 * n);
    assert_eq!(d_("rexi_node_job_errors_total{}"), errors);
    assert_eq!(d_("rexi_node_kills_received_total{outcome=killed}"), kills);
    assert_eq!(
        d_("rexi_node_kills_received_total{outcome=unknown_ref}"),
        1.0
    );
    assert_eq!(
        d_("rexi_node_jobs_started_total{}"),
        3.0 * n + errors + kills
    );
    assert_eq!(d_("rexi_node_jobs_ended_total{}"), 3.0 * n + errors + kills);
    assert_eq!(val(&after, "rexi_node_jobs_running{}"), 0.0);
    assert_eq!(d_("rexi_node_casts_overloaded_total{}"), 0.0);
    assert_eq!(d_("rexi_node_requests_malformed_total{}"), 0.0);
    // Durations: every echo and every failure observed once; killed sleepers not at all.
    let count = |mfa: &str| format!("rexi_node_job_duration_seconds_count{{mfa={mfa}}}");
    let inf = |mfa: &str| format!("rexi_node_job_duration_seconds_bucket{{le=inf,mfa={mfa}}}");
    assert_eq!(d_(&count("rexi_node:echo/1")), 3.0 * n);
    assert_eq!(d_(&inf("rexi_node:echo/1")), 3.0 * n);
    assert_eq!(d_(&count("rexi_node:fail/1")), errors);
    assert_eq!(d_(&count("rexi_node:sleep/1")), 0.0);
    for k in after
        .keys()
        .filter(|k| k.contains("_duration_seconds_count"))
    {
        let mfa = &k[k.find("mfa=").expect("mfa label") + 4..k.len() - 1];
        assert_eq!(
            val(&after, k),
            val(&after, &inf(mfa)),
            "+Inf bucket vs count of {mfa}"
        );
    }
    // The connection: up once, down once (closed by the halting caller), bytes both ways.
    assert_eq!(d_("rexi_node_nodeup_total{}"), 1.0);
    let downs: f64 = after
        .keys()
        .filter(|k| k.starts_with("rexi_node_nodedown_total{"))
        .map(|k| d_(k))
        .sum();
    assert_eq!(downs, 1.0);
    assert!(d_("rexi_node_dist_received_bytes_total{}") > 0.0);
    assert!(d_("rexi_node_dist_sent_bytes_total{}") > 0.0);
    assert!(d_("rexi_node_dist_received_frames_total{}") >= 3.0 * n + errors + 2.0 * kills + 1.0);
    assert!(d_("rexi_node_dist_sent_frames_total{}") >= 3.0 * n + errors);
    assert_eq!(val(&after, "rexi_node_outbox_queued_bytes{}"), 0.0);
    assert_eq!(val(&after, "rexi_node_release{}"), 1.0);
    // Without --metrics-per-peer there is no per-peer series.
    assert!(!after.keys().any(|k| k.starts_with("rexi_node_peer_")));
    drop(d);
}

#[test]
fn openmetrics_on_request_and_status_json_agrees_with_metrics() {
    let (epmd, d, mport) = with_metrics("rn_met2", &[]);
    let mut w = Erl::start_run(
        epmd.port,
        "e_met2",
        COOKIE,
        "rn_metrics",
        "workload",
        &[&d.name, "10", "3", "2"],
    );
    assert_eq!(w.wait(Duration::from_secs(60)), Some(0), "{}", w.out.text());

    let (status, ctype, om) = get(
        mport,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .expect("GET");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(
        om.ends_with("# EOF\n"),
        "OpenMetrics text must end in # EOF"
    );
    assert!(
        om.contains("# UNIT rexi_node_dist_received_bytes bytes"),
        "{om}"
    );
    let om = parse_exposition(&om);
    let classic = scrape(mport);
    for k in [
        "rexi_node_casts_received_total{name_form=nodename}",
        "rexi_node_job_errors_total{}",
    ] {
        assert_eq!(val(&om, k), val(&classic, k), "{k}");
    }

    // status --json reads the stats call: the same counters, the same values.
    let out = Command::new(daemon_bin())
        .args(["status", &d.name, "--json", "--cookie", COOKIE])
        .env("ERL_EPMD_PORT", epmd.port.to_string())
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let stats = &j["stats"];
    let m = scrape(mport);
    for (key, series) in [
        (
            "casts_singleton",
            "rexi_node_casts_received_total{name_form=singleton}",
        ),
        (
            "casts_phash2",
            "rexi_node_casts_received_total{name_form=phash2}",
        ),
        (
            "casts_nodename",
            "rexi_node_casts_received_total{name_form=nodename}",
        ),
        ("replies", "rexi_node_replies_sent_total{}"),
        ("errors", "rexi_node_job_errors_total{}"),
        ("kills", "rexi_node_kills_received_total{outcome=killed}"),
        (
            "kills_unknown",
            "rexi_node_kills_received_total{outcome=unknown_ref}",
        ),
        ("jobs_started", "rexi_node_jobs_started_total{}"),
        ("jobs_ended", "rexi_node_jobs_ended_total{}"),
        ("jobs_running", "rexi_node_jobs_running{}"),
        ("release", "rexi_node_release{}"),
        (
            "handshake_failures_wrong_cookie",
            "rexi_node_handshake_failures_total{reason=wrong_cookie}",
        ),
    ] {
        let s = stats[key]
            .as_f64()
            .unwrap_or_else(|| panic!("status --json has no stats.{key}: {j}"));
        assert_eq!(s, val(&m, series), "stats.{key} vs {series}");
    }
    assert_eq!(stats["casts_phash2"].as_f64(), Some(12.0));
}

#[test]
fn readyz_is_false_until_epmd_registration_and_follows_it() {
    let epmd = Epmd::start();
    let mport = free_port();
    let addr = format!("127.0.0.1:{mport}");
    // epmd accepts the connection but does not answer: the registration is pending.
    Command::new("kill")
        .args(["-STOP", &epmd_pid(&epmd)])
        .status()
        .expect("kill");
    let d = Run::start(
        epmd.port,
        "rn_met3",
        &["--metrics-addr", &addr, "--no-start-epmd"],
    );
    let cont = || {
        Command::new("kill")
            .args(["-CONT", &epmd_pid(&epmd)])
            .status()
            .expect("kill");
    };
    let seen = wait_until(LIMIT, || matches!(ready(mport), Some((503, _))));
    let body = ready(mport);
    cont();
    assert!(
        seen,
        "no 503 from /readyz while epmd is stopped: {body:?}\n{}",
        d.stderr()
    );
    let (_, body) = body.expect("readyz");
    assert!(body.contains("epmd_registered: no"), "{body}");
    let (hs, _, _) = get(mport, "/healthz", None).expect("healthz");
    assert_eq!(hs, 200, "alive while not ready");
    assert!(
        wait_until(LIMIT, || matches!(ready(mport), Some((200, _)))),
        "not ready after epmd answered: {:?}\n{}",
        ready(mport),
        d.stderr()
    );
    let (_, body) = ready(mport).expect("readyz");
    assert!(
        body.starts_with("ready\n") && body.contains("accepting: yes"),
        "{body}"
    );
    assert_eq!(val(&scrape(mport), "rexi_node_epmd_registered{}"), 1.0);
    let (code, out) = healthcheck(&addr);
    assert_eq!(code, Some(0), "{out}");

    // epmd goes away: not ready; a new epmd on the same port: registered and ready again.
    let port = epmd.port;
    drop(epmd);
    assert!(wait_until(LIMIT, || matches!(ready(mport), Some((503, _)))));
    assert_eq!(val(&scrape(mport), "rexi_node_epmd_registered{}"), 0.0);
    let (code, out) = healthcheck(&addr);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("/readyz answered 503") && out.contains("epmd_registered: no"),
        "{out}"
    );
    let mut again = Command::new("epmd")
        .args(["-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("epmd");
    let back = wait_until(LIMIT, || matches!(ready(mport), Some((200, _))));
    let _ = again.kill();
    let _ = again.wait();
    assert!(
        back,
        "not ready after epmd came back: {:?}\n{}",
        ready(mport),
        d.stderr()
    );
}

/// `rexi-node healthcheck ADDR` (the compose probe): exit code and output.
fn healthcheck(addr: &str) -> (Option<i32>, String) {
    let out = Command::new(daemon_bin())
        .args(["healthcheck", addr])
        .output()
        .expect("healthcheck");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The pid of the test's epmd (found by its private port, which only it uses).
fn epmd_pid(e: &Epmd) -> String {
    let out = Command::new("pgrep")
        .args(["-f", &format!("^epmd -port {}$", e.port)])
        .output()
        .expect("pgrep");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty() && !pid.contains('\n'), "epmd pid: {pid:?}");
    pid
}

#[test]
fn a_taken_address_stops_the_daemon_before_it_joins() {
    let epmd = Epmd::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut d = Run::start(epmd.port, "rn_met4", &["--metrics-addr", &addr]);
    let t = Instant::now();
    let code = loop {
        if let Ok(Some(st)) = d.child.try_wait() {
            break st.code();
        }
        assert!(
            t.elapsed() < LIMIT,
            "the daemon kept running on a taken address"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1));
    assert!(wait_until(Duration::from_secs(2), || d
        .stderr()
        .contains("listens there")));
    let err = d.stderr();
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")),
        "{err}"
    );
    assert!(err.contains("--metrics-addr"), "{err}");
    assert!(
        !epmd.names().contains("rn_met4"),
        "joined the cluster before failing"
    );
}

#[test]
fn per_peer_series_only_with_metrics_per_peer() {
    let (epmd, d, mport) = with_metrics("rn_met5", &["--metrics-per-peer"]);
    let idle = Erl::start(epmd.port, "e_met5", COOKIE, "idle", &[&d.name]);
    assert!(idle.out.wait_for("CONNECTED", LIMIT), "{}", idle.out.text());
    let key = "rexi_node_peer_received_bytes_total{peer=e_met5@127.0.0.1}";
    assert!(wait_until(LIMIT, || scrape(mport).contains_key(key)));
    let m = scrape(mport);
    assert!(val(&m, key) > 0.0);
    assert!(m.contains_key("rexi_node_peer_outbox_queued_bytes{peer=e_met5@127.0.0.1}"));
    assert_eq!(val(&m, "rexi_node_connections{state=up}"), 1.0);
    drop(idle);
    // The peer's series leave with its connection.
    assert!(wait_until(LIMIT, || !scrape(mport).contains_key(key)));
}

#[test]
fn a_wrong_cookie_counts_as_a_handshake_failure() {
    let (epmd, d, mport) = with_metrics("rn_met6", &[]);
    let key = "rexi_node_handshake_failures_total{reason=wrong_cookie}";
    let before = val(&scrape(mport), key);
    let mut e = Erl::start(
        epmd.port,
        "e_met6",
        "not_the_cookie",
        "expect_ping",
        &[&d.name, "pang"],
    );
    assert_eq!(e.wait(LIMIT), Some(0), "{}", e.out.text());
    // erl retries a failed connection once on its own: at least one, all of them counted.
    assert!(wait_until(LIMIT, || val(&scrape(mport), key) > before));
    let m = scrape(mport);
    assert_eq!(
        val(&m, "rexi_node_nodeup_total{}"),
        0.0,
        "no connection came up"
    );
    assert_eq!(val(&m, "rexi_node_connections{state=handshaking}"), 0.0);
}

#[test]
fn the_endpoint_keeps_its_limits() {
    let (_epmd, _d, mport) = with_metrics("rn_met7", &[]);
    let answer = |send: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).expect("connect");
        s.set_read_timeout(Some(LIMIT)).expect("timeout");
        s.write_all(send).expect("write");
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        raw
    };
    // A head larger than 8 KiB is refused, not buffered.
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
    assert!(answer(big.as_bytes()).starts_with("HTTP/1.1 431 "));
    // A head that never ends gets 408 after the deadline (5 s), not a held connection.
    let t = Instant::now();
    assert!(answer(b"GET /metrics HTTP/1.1\r\n").starts_with("HTTP/1.1 408 "));
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(answer(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(answer(b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    let (code, _, body) = get(mport, "/healthz", None).expect("healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
}
