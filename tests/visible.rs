//! rexi-node as a visible node, erpc/rpc callers, and replies that connect first (issue
//! 11), against real `erl` nodes and a real epmd. The Erlang side is tests/erl/rn_visible.erl.

mod support;

use std::time::Duration;
use support::*;

/// Lines of a BEAM node's output that show `global` or the distribution complaining.
fn dist_complaints(out: &Lines) -> Vec<String> {
    out.all()
        .into_iter()
        .filter(|l| {
            l.contains("'global' at")
                || l.contains("overlapping partition")
                || l.contains("global:")
                || l.contains("nodedown")
        })
        .collect()
}

/// The daemon's warnings, but the one about `--cookie` on the command line (the harness
/// passes it so).
fn warnings(d: &Daemon) -> Vec<String> {
    d.log
        .with(&["WARN"])
        .into_iter()
        .filter(|l| !l.contains("--cookie on the command line"))
        .collect()
}

/// A BEAM node that only stays up, once it is.
fn beam_node(epmd: &Epmd, alive: &str) -> Erl {
    let e = Erl::start_run(epmd.port, alive, COOKIE, "rn_visible", "stay", &[]);
    assert!(
        e.out.wait_for("UP", Duration::from_secs(30)),
        "{}",
        e.out.text()
    );
    e
}

/// Runs `rn_visible:Func(Args)` on a new BEAM node to its end; panics unless it passed.
fn probe(epmd: &Epmd, d: &Daemon, alive: &str, func: &str, args: &[&str]) -> Erl {
    let mut e = Erl::start_run(epmd.port, alive, COOKIE, "rn_visible", func, args);
    let code = e.wait(Duration::from_secs(90));
    assert_eq!(code, Some(0), "{}\ndaemon:\n{}", e.out.text(), d.log.text());
    assert!(e.out.contains("PASS"), "{}", e.out.text());
    e
}

#[test]
fn visible_node_keeps_global_in_sync() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_vis1", &["--visible"]);
    let mut a = beam_node(&epmd, "e_vis_a");
    let b = probe(&epmd, &d, "e_vis_b", "global_probe", &[&d.name, &a.name]);
    // Both BEAM nodes sent init_connect, and each got its in_sync.
    for n in [&a.name, &b.name] {
        assert!(
            !d.log.with(&["global in_sync sent", n.as_str()]).is_empty(),
            "no in_sync for {n}:\n{}",
            d.log.text()
        );
    }
    assert_eq!(warnings(&d), Vec::<String>::new(), "{}", d.log.text());
    assert_eq!(dist_complaints(&a.out), Vec::<String>::new());
    assert_eq!(dist_complaints(&b.out), Vec::<String>::new());
    // Still connected to A (no disconnect during the probe).
    assert!(
        d.log.with(&["nodedown", &a.name]).is_empty(),
        "{}",
        d.log.text()
    );
    a.sigkill();
}

#[test]
fn erpc_and_rpc_answer_like_a_beam_node() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_vis2", &["--visible"]);
    let t = beam_node(&epmd, "e_vis_t");
    probe(&epmd, &d, "e_vis_rpc", "rpc_probe", &[&d.name, &t.name]);
    assert_eq!(warnings(&d), Vec::<String>::new(), "{}", d.log.text());
}

#[test]
fn hidden_by_default_and_replies_connect_first() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_vis3", &[]);
    let e2 = beam_node(&epmd, "e_vis_e2");
    // Hidden: the BEAM's nodes() leaves rexi-node out.
    Erl::run_ok(
        epmd.port,
        "e_vis_ping",
        "ping",
        &[&d.name],
        Duration::from_secs(30),
    );
    let ghost = "e_vis_ghost@127.0.0.1";
    probe(
        &epmd,
        &d,
        "e_vis_e1",
        "relay_probe",
        &[&d.name, &e2.name, ghost],
    );
    // The connection to e2 was made by the daemon, for the reply.
    assert!(
        !d.log.with(&["nodeup", &e2.name, "outgoing"]).is_empty(),
        "{}",
        d.log.text()
    );
    // The reply to the ghost is dropped with one line naming the node.
    assert!(
        d.log.wait_for(ghost, Duration::from_secs(20)),
        "{}",
        d.log.text()
    );
    let lines = d.log.with(&[ghost, "dropped"]);
    assert_eq!(lines.len(), 1, "{}", d.log.text());
}
