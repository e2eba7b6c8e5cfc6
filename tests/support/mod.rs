//! Test harness: a real epmd, the real daemon binary and real `erl` nodes, each started by
//! the test on 127.0.0.1 with its own epmd port and killed by pid when the test ends.
#![allow(dead_code)]

pub mod raw_peer;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "rexi_test_cookie";

pub fn free_port() -> u16 {
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
pub struct Epmd {
    child: Child,
    pub port: u16,
}

impl Epmd {
    pub fn start() -> Epmd {
        let port = free_port();
        let child = Command::new("epmd")
            .args(["-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("epmd must be installed (erlang-nox)");
        let e = Epmd { child, port };
        wait_until(Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        e
    }

    /// What `epmd -names` prints.
    pub fn names(&self) -> String {
        let out = Command::new("epmd")
            .args(["-port", &self.port.to_string(), "-names"])
            .output()
            .expect("epmd -names");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
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
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn follow(&self, r: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let clean = strip_ansi(&line);
                me.0.lock().unwrap_or_else(|p| p.into_inner()).push(clean);
            }
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.all().iter().any(|l| l.contains(needle))
    }

    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
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

pub fn daemon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rexi-node"))
}

/// The daemon, `rexi-node run`, with its log.
pub struct Daemon {
    pub child: Child,
    pub name: String,
    pub log: Lines,
}

impl Daemon {
    pub fn start(epmd_port: u16, alive: &str, extra: &[&str]) -> Daemon {
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
            d.log.wait_for("serving rexi", Duration::from_secs(10)),
            "daemon did not start:\n{}",
            d.log.text()
        );
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> Option<i32> {
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
pub fn erl_beams() -> PathBuf {
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
pub struct Erl {
    pub child: Child,
    pub out: Lines,
    pub name: String,
}

impl Erl {
    pub fn start(epmd_port: u16, alive: &str, cookie: &str, func: &str, args: &[&str]) -> Erl {
        Erl::start_run(epmd_port, alive, cookie, "rn_probe", func, args)
    }

    /// A real `erl` node running `Module:Function([Args...])` from any module of tests/erl
    /// (`-run`), and staying up afterwards unless that function halts it.
    pub fn start_run(
        epmd_port: u16,
        alive: &str,
        cookie: &str,
        module: &str,
        func: &str,
        args: &[&str],
    ) -> Erl {
        let name = format!("{alive}@127.0.0.1");
        let mut cmd = Command::new("erl");
        cmd.args(["-noshell", "-name", &name, "-setcookie", cookie, "-pa"])
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
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                // let the reader threads drain
                std::thread::sleep(Duration::from_millis(100));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Runs to completion; panics with the output unless it printed `PASS` and exited 0.
    pub fn run_ok(
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigkill(&mut self) {
        kill(&mut self.child);
    }

    pub fn sigstop(&self) {
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
