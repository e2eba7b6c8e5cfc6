//! The load tests: 100,000 casts with random kills, and a 100 MB binary. They get a test
//! binary of their own because cargo runs test binaries one after the other: while they
//! take both cores, no timing-sensitive test (tick times, handshake timeouts) runs beside
//! them.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn storm_of_casts_with_random_kills() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_heavy1", &[]);
    // 4 caller nodes x 5 processes x 5,000 casts = 100,000 casts.
    let mut callers: Vec<Erl> = (0..4)
        .map(|i| {
            Erl::start(
                epmd.port,
                &format!("e_storm{i}"),
                COOKIE,
                "storm",
                &[&d.name, "5", "5000"],
            )
        })
        .collect();
    for c in callers.iter_mut() {
        let code = c.wait(Duration::from_secs(300));
        assert_eq!(code, Some(0), "{}", c.out.text());
        assert!(
            c.out.contains("casts=25000 answered=")
                && c.out.contains("duplicates=0 lost=0")
                && c.out.contains("killed_but_replied=0"),
            "{}",
            c.out.text()
        );
    }
    // Every killed job ended: none left running once all callers are done.
    Erl::run_ok(
        epmd.port,
        "e_storm_check",
        "await_idle",
        &[&d.name],
        Duration::from_secs(60),
    );
}

#[test]
fn deep_terms_and_a_100mb_binary_do_not_crash_it() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_heavy2", &[]);
    Erl::run_ok(
        epmd.port,
        "e_big",
        "big",
        &[&d.name],
        Duration::from_secs(180),
    );
    Erl::run_ok(
        epmd.port,
        "e_after",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
}
