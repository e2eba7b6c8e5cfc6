//! The rexi server against real Erlang callers (issue 5).

mod support;

use std::time::Duration;
use support::*;

#[test]
fn every_shape_through_every_name() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi1", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_shapes",
        "shapes",
        &[&d.name],
        Duration::from_secs(60),
    );
    for via in [
        "rexi_server",
        "rexi_server_",
        "'rexi_server_e_shapes@127.0.0.1'",
    ] {
        assert!(
            out.contains(&format!("SHAPES ok via {via}")),
            "{}",
            out.text()
        );
    }
}

#[test]
fn a_fresh_connection_first_cast_to_its_own_name_is_never_lost() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi2", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_fresh",
        "fresh_connect",
        &[&d.name, "200"],
        Duration::from_secs(120),
    );
    assert!(out.contains("FRESH 200 casts, 0 lost"), "{}", out.text());
}

#[test]
fn panics_are_reported_and_the_daemon_serves_on() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi4", &[]);
    Erl::run_ok(
        epmd.port,
        "e_panic",
        "panic",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn a_job_that_never_returns_is_killed() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi5", &[]);
    Erl::run_ok(
        epmd.port,
        "e_never",
        "never_returns",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn jobs_of_a_caller_whose_node_died_are_cancelled() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi6", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_dies",
        "cast_and_die",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(out.contains("RUNNING 2"), "{}", out.text());
    Erl::run_ok(
        epmd.port,
        "e_check",
        "await_cancelled",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn switching_release_under_traffic_loses_nothing_but_counted_singleton_casts() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi7", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_switch",
        "release_switch",
        &[&d.name],
        Duration::from_secs(60),
    );
    assert!(
        out.contains("r1=200/200 r2=200/200 r3=0/200 dropped_counted=200"),
        "{}",
        out.text()
    );
    assert!(
        d.log
            .contains("cast to the retired singleton rexi_server dropped"),
        "{}",
        d.log.text()
    );
}

#[test]
fn casts_to_a_name_this_node_does_not_serve_are_counted_and_logged() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi_unserved", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_unserved",
        "unserved_name",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(
        out.contains("answered=0 dropped_counted=50"),
        "{}",
        out.text()
    );
    assert!(
        d.log
            .contains("message to a rexi server name this node does not serve dropped"),
        "{}",
        d.log.text()
    );
}

#[test]
fn phash2_and_node_served_over_rexi_match_the_beam() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi8", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_hash",
        "phash2_served",
        &[&d.name],
        Duration::from_secs(30),
    );
    assert!(
        out.contains("PHASH2 13 terms x (phash2/1 and 8 ranges of phash2/2) agree"),
        "{}",
        out.text()
    );
}

#[test]
fn overload_is_answered_at_once() {
    let epmd = Epmd::start();
    let d = Daemon::start(
        epmd.port,
        "rn_rexi9",
        &["--max-jobs", "5", "--max-jobs-per-peer", "5"],
    );
    Erl::run_ok(
        epmd.port,
        "e_over",
        "overload",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn worker_side_timeouts_end_abandoned_jobs() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi10", &["--worker-timeout", "1"]);
    Erl::run_ok(
        epmd.port,
        "e_wt",
        "worker_timeouts",
        &[&d.name],
        Duration::from_secs(30),
    );
}

#[test]
fn stream2_waits_after_5_unacked_rows_and_stream_after_10() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi11", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_slim",
        "stream_limits",
        &[&d.name, "5", "10"],
        Duration::from_secs(60),
    );
    assert!(
        out.contains("STREAM LIMITS stream2 5 stream 10"),
        "{}",
        out.text()
    );
}

#[test]
fn stream_limits_are_set_by_flags() {
    let epmd = Epmd::start();
    let d = Daemon::start(
        epmd.port,
        "rn_rexi12",
        &["--stream2-limit", "2", "--stream-limit", "7"],
    );
    let out = Erl::run_ok(
        epmd.port,
        "e_slim2",
        "stream_limits",
        &[&d.name, "2", "7"],
        Duration::from_secs(60),
    );
    assert!(
        out.contains("STREAM LIMITS stream2 2 stream 7"),
        "{}",
        out.text()
    );
}

#[test]
fn the_error_ring_records_module_function_and_bounded_args() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "rn_rexi13", &[]);
    let out = Erl::run_ok(
        epmd.port,
        "e_ring",
        "error_ring",
        &[&d.name],
        Duration::from_secs(60),
    );
    assert!(out.contains("ERROR RING entry sizes"), "{}", out.text());
}
