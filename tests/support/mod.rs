//! Test harness: a real epmd, the real daemon binary and real `erl` nodes, each started by
//! the test on 127.0.0.1 with its own epmd port and killed by pid when the test ends; plus
//! the small helpers several test files share (the `rexi-node` tool runner, big stacks,
//! printed random seeds).
//!
//! Waiting is always for a state (a log line, a registration, an exit) with a generous
//! deadline, never a fixed sleep: the tests share two cores with each other.
#![allow(dead_code)]

pub(crate) mod raw_peer;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const COOKIE: &str = "rexi_test_cookie";

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Kills a child we started (SIGKILL) and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// A real epmd in the foreground on a private port.
pub(crate) struct Epmd {
    child: Child,
    pub port: u16,
}

impl Epmd {
    /// Starts epmd on a free port and returns once it answers `epmd -names`. The port is
    /// free when chosen but not held (epmd must bind it itself), so another test may take
    /// it first: epmd then exits at once, and another port is tried. Panics when no epmd
    /// comes up, rather than letting the test run against nothing.
    pub(crate) fn start() -> Epmd {
        for _ in 0..10 {
            let port = free_port();
            let mut child = Command::new("epmd")
                .args(["-port", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("epmd must be installed (erlang-nox)");
            let exited = |c: &mut Child| !matches!(c.try_wait(), Ok(None));
            let answered = wait_until(Duration::from_secs(20), || {
                exited(&mut child) || epmd_answers(port)
            });
            // Ours only if it is still running: an epmd that lost the port has exited.
            if answered && !exited(&mut child) {
                return Epmd { child, port };
            }
            kill(&mut child);
        }
        panic!("epmd did not come up on a private port in 10 attempts (is erlang-nox installed?)");
    }

    /// What `epmd -names` prints.
    pub(crate) fn names(&self) -> String {
        let out = Command::new("epmd")
            .args(["-port", &self.port.to_string(), "-names"])
            .output()
            .expect("epmd -names");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Whether an epmd answers `epmd -names` on `port`.
pub(crate) fn epmd_answers(port: u16) -> bool {
    Command::new("epmd")
        .args(["-port", &port.to_string(), "-names"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Epmd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

pub(crate) fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Collects a child's stderr/stdout lines as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// Reader threads still running (their pipe not yet at end of file).
    open: Arc<AtomicUsize>,
}

impl Lines {
    pub(crate) fn follow(&self, r: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        self.open.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let clean = strip_ansi(&line);
                me.lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(clean);
            }
            me.open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits until every followed pipe reached end of file (the child and anything it
    /// started have closed it), so the lines are complete.
    pub(crate) fn wait_closed(&self, limit: Duration) -> bool {
        wait_until(limit, || self.open.load(Ordering::SeqCst) == 0)
    }

    pub(crate) fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn text(&self) -> String {
        self.all().join("\n")
    }

    /// The lines that contain every one of `needles`.
    pub(crate) fn with(&self, needles: &[&str]) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.all().iter().any(|l| l.contains(needle))
    }

    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.contains(needle))
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if c.is_ascii_alphabetic() {
                esc = false;
            }
        } else if c == '\x1b' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// The daemon under test: this build's, or `REXI_NODE_BIN` (to show that a regression
/// test fails against an older binary).
pub(crate) fn daemon_bin() -> PathBuf {
    std::env::var_os("REXI_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rexi-node")))
}

/// The daemon, `rexi-node run`, with its log.
pub(crate) struct Daemon {
    pub child: Child,
    pub name: String,
    pub log: Lines,
}

impl Daemon {
    pub(crate) fn start(epmd_port: u16, alive: &str, extra: &[&str]) -> Daemon {
        let name = format!("{alive}@127.0.0.1");
        let mut cmd = Command::new(daemon_bin());
        cmd.args(["run", "--name", &name, "--cookie", COOKIE])
            .args(extra)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RUST_LOG", "info");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start daemon");
        let log = Lines::default();
        if let Some(e) = child.stderr.take() {
            log.follow(e);
        }
        if let Some(o) = child.stdout.take() {
            log.follow(o);
        }
        let d = Daemon { child, name, log };
        assert!(
            d.log.wait_for("serving rexi", Duration::from_secs(30)),
            "daemon did not start:\n{}",
            d.log.text()
        );
        d
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(mut self) -> Option<i32> {
        signal(self.child.id(), "-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill(&mut self.child);
        }
    }
}

/// Compiles tests/erl/*.erl once into target/test-erl and returns that directory.
pub(crate) fn erl_beams() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/erl");
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-erl");
        std::fs::create_dir_all(&out).expect("mkdir");
        let files: Vec<PathBuf> = std::fs::read_dir(&src)
            .expect("tests/erl")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "erl"))
            .collect();
        let st = Command::new("erlc")
            .arg("-o")
            .arg(&out)
            .args(&files)
            .status()
            .expect("erlc must be installed");
        assert!(st.success(), "erlc failed");
        out
    })
    .clone()
}

/// A real `erl` node running `Module:Function(Args...)` (strings, passed as atoms/strings by
/// the probe module itself), with its stdout collected.
pub(crate) struct Erl {
    pub child: Child,
    pub out: Lines,
    pub name: String,
}

impl Erl {
    pub(crate) fn start(
        epmd_port: u16,
        alive: &str,
        cookie: &str,
        func: &str,
        args: &[&str],
    ) -> Erl {
        Erl::start_run(epmd_port, alive, cookie, "rn_probe", func, args)
    }

    /// A real `erl` node running `Module:Function([Args...])` from any module of tests/erl
    /// (`-run`), and staying up afterwards unless that function halts it.
    pub(crate) fn start_run(
        epmd_port: u16,
        alive: &str,
        cookie: &str,
        module: &str,
        func: &str,
        args: &[&str],
    ) -> Erl {
        Erl::start_with(epmd_port, alive, cookie, &[], module, func, args)
    }

    /// As [`Erl::start_run`], with more `erl` arguments (e.g. `-proto_dist inet_tls`).
    pub(crate) fn start_with(
        epmd_port: u16,
        alive: &str,
        cookie: &str,
        erl_args: &[&str],
        module: &str,
        func: &str,
        args: &[&str],
    ) -> Erl {
        let name = format!("{alive}@127.0.0.1");
        let mut cmd = Command::new("erl");
        cmd.args(["-noshell", "-name", &name, "-setcookie", cookie])
            .args(erl_args)
            .arg("-pa")
            .arg(erl_beams());
        cmd.args(["-run", module, func]).args(args);
        cmd.env("ERL_EPMD_PORT", epmd_port.to_string());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("erl must be installed");
        let out = Lines::default();
        if let Some(o) = child.stdout.take() {
            out.follow(o);
        }
        if let Some(e) = child.stderr.take() {
            out.follow(e);
        }
        Erl { child, out, name }
    }

    /// Waits for the node to halt; its exit code.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                // The output is complete once the readers reach end of file.
                assert!(
                    self.out.wait_closed(Duration::from_secs(10)),
                    "{} exited but its output pipes stayed open:\n{}",
                    self.name,
                    self.out.text()
                );
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Runs to completion; panics with the output unless it printed `PASS` and exited 0.
    pub(crate) fn run_ok(
        epmd_port: u16,
        alive: &str,
        func: &str,
        args: &[&str],
        limit: Duration,
    ) -> Lines {
        let mut e = Erl::start(epmd_port, alive, COOKIE, func, args);
        let code = e.wait(limit);
        assert_eq!(
            code,
            Some(0),
            "erl {func} {args:?} failed (exit {code:?}):\n{}",
            e.out.text()
        );
        assert!(
            e.out.contains("PASS"),
            "erl {func} did not pass:\n{}",
            e.out.text()
        );
        e.out.clone()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn sigkill(&mut self) {
        kill(&mut self.child);
    }

    pub(crate) fn sigstop(&self) {
        signal(self.child.id(), "-STOP");
    }
}

impl Drop for Erl {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "-CONT");
            kill(&mut self.child);
        }
    }
}

// ---- the rexi-node tool, run as an operator would ----------------------------------------

/// What one `rexi-node ...` run printed, and how it ended.
pub(crate) struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
    pub took: Duration,
}

impl Run {
    /// Everything, for assertion messages.
    pub(crate) fn text(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.out, self.err
        )
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.out.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.text()))
    }
}

/// Runs `rexi-node ARGS...` to completion with `env` set (and `REXI_NODE_COOKIE` removed,
/// so a cookie in the developer's environment changes nothing), feeding it `stdin` if any.
pub(crate) fn rexi_node(args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
    let t = Instant::now();
    let mut cmd = Command::new(daemon_bin());
    cmd.args(args)
        .env_remove("REXI_NODE_COOKIE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run rexi-node");
    // Write from another thread: the child may fill its stdout pipe before reading all input.
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_string();
        std::thread::spawn(move || pipe.write_all(input.as_bytes()))
    });
    let o = child.wait_with_output().expect("wait for rexi-node");
    if let Some(w) = writer {
        w.join()
            .expect("stdin writer")
            .expect("rexi-node did not read its whole input");
    }
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        err: String::from_utf8(o.stderr).expect("stderr is UTF-8"),
        took: t.elapsed(),
    }
}

// ---- shared helpers ------------------------------------------------------------------------

/// Runs `f` on a thread with a stack of `mib` MiB and returns its result (a panic in `f`
/// fails the test with its message).
pub(crate) fn on_stack<T: Send + 'static>(mib: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::Builder::new()
        .stack_size(mib << 20)
        .spawn(f)
        .expect("spawn test thread")
        .join()
    {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `f` on a thread with a 512 MiB stack.
///
/// Why a big stack: the codec decodes and disposes iteratively, but tests drop terms the
/// ordinary way, through eetf's derived `Drop`, which recurses; their inputs nest up to
/// 100,000 levels. The stack is reserved address space, touched only as deep as used.
pub(crate) fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    on_stack(512, f)
}

/// A random seed, or the one in the environment variable `var` to replay a run. Callers
/// print it (and put it in every failure message): that is what makes a run repeatable.
pub(crate) fn seed(var: &str) -> u64 {
    if let Ok(s) = std::env::var(var) {
        if !s.trim().is_empty() {
            return s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{var} must be an unsigned integer, got {s:?}"));
        }
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    (t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000_000
}
