//! The operator's tools against real epmd, real BEAM nodes and a running rexi-node: names,
//! ping, status, cast, release, migrate-check, and their error cases.
//!
//! The BEAM nodes run tests/erl/rn_rexi_standin.erl, a small rexi of a given release: it
//! registers the names that release registers and sets application env rexi/release as
//! erlang-interop's rexi app does, without that app's supervision tree, so one `erl -run`
//! starts a node at any release in a known state (e.g. a `rexi_server_mon` still waiting).
//! Output is compared as printed: atom quoting and spacing are part of what is checked.

mod support;

use std::time::Duration;
use support::*;

/// `rexi-node ARGS...` with the test epmd.
fn raw(epmd_port: u16, args: &[&str]) -> Run {
    rexi_node(args, &[("ERL_EPMD_PORT", epmd_port.to_string())], None)
}

/// `rexi-node ARGS... --cookie COOKIE`.
fn tool(epmd_port: u16, args: &[&str]) -> Run {
    let mut v = args.to_vec();
    v.extend(["--cookie", COOKIE]);
    raw(epmd_port, &v)
}

/// A BEAM node with the stand-in rexi at `release`, its env set or not, connected to `peers`.
fn standin(epmd_port: u16, alive: &str, release: u8, env: bool, peers: &[&str]) -> Erl {
    standin_mode(
        epmd_port,
        alive,
        release,
        if env { "env" } else { "noenv" },
        peers,
    )
}

/// `mode`: env, noenv or env_waiting (rexi_server_mon answers `{waiting, 1}`).
fn standin_mode(epmd_port: u16, alive: &str, release: u8, mode: &str, peers: &[&str]) -> Erl {
    let rel = release.to_string();
    let mut args = vec![rel.as_str(), mode];
    args.extend_from_slice(peers);
    let e = Erl::start_run(epmd_port, alive, COOKIE, "rn_rexi_standin", "start", &args);
    assert!(
        e.out.wait_for("STANDIN", Duration::from_secs(20)),
        "stand-in {alive} did not start:\n{}",
        e.out.text()
    );
    e
}

/// A BEAM node with CouchDB's rexi names (node-name per-node servers, no release env).
fn couchdb_standin(epmd_port: u16, alive: &str, peers: &[&str]) -> Erl {
    let mut args = vec!["couchdb"];
    args.extend_from_slice(peers);
    let e = Erl::start_run(epmd_port, alive, COOKIE, "rn_rexi_standin", "start", &args);
    assert!(
        e.out.wait_for("STANDIN", Duration::from_secs(20)),
        "stand-in {alive} did not start:\n{}",
        e.out.text()
    );
    e
}

#[test]
fn names_lists_normal_and_hidden_nodes_with_ports() {
    let epmd = Epmd::start();
    let b = standin(epmd.port, "t_names_b", 1, true, &[]);
    let d = Daemon::start(epmd.port, "t_names_x", &[]);
    let r = raw(epmd.port, &["names", "--json"]);
    assert_eq!(r.code, 0, "{}", r.text());
    let j = r.json();
    let nodes = j["nodes"].as_array().cloned().unwrap_or_default();
    let find = |n: &str| nodes.iter().find(|x| x["name"] == n).cloned();
    let beam = find("t_names_b").unwrap_or_else(|| panic!("{}", r.text()));
    let rx = find("t_names_x").unwrap_or_else(|| panic!("{}", r.text()));
    assert_eq!(beam["type"], "normal");
    assert_eq!(rx["type"], "hidden");
    assert_eq!(rx["node"], d.name.as_str());
    assert!(beam["port"].as_u64().is_some_and(|p| p > 0));
    // The ports are the ones epmd itself reports.
    let listing = epmd.names();
    assert!(
        listing.contains(&format!("name t_names_b at port {}", beam["port"])),
        "{listing}"
    );
    let h = raw(epmd.port, &["names"]);
    assert_eq!(h.code, 0, "{}", h.text());
    assert!(
        h.out.contains("t_names_x") && h.out.contains("hidden"),
        "{}",
        h.text()
    );
    assert!(
        h.out.contains("t_names_b") && h.out.contains("normal"),
        "{}",
        h.text()
    );
    drop(b);

    // epmd unreachable: a port nobody listens on.
    let dead = free_port();
    let r = raw(dead, &["names"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("unreachable"), "{}", r.text());
}

#[test]
fn ping_pong_pang_and_each_error_named() {
    let epmd = Epmd::start();
    let b = standin(epmd.port, "t_ping_b", 1, true, &[]);
    let d = Daemon::start(epmd.port, "t_ping_x", &[]);
    for target in [b.name.as_str(), d.name.as_str()] {
        let r = tool(epmd.port, &["ping", target]);
        assert_eq!(r.code, 0, "{}", r.text());
        assert!(
            r.out.starts_with(&format!("pong from {target} in ")),
            "{}",
            r.text()
        );
        let j = tool(epmd.port, &["ping", target, "--json"]).json();
        assert_eq!(j["result"], "pong");
        assert!(j["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{j}");
    }
    // Unknown node: epmd answers, the name is not there; the registered ones are listed.
    let r = tool(epmd.port, &["ping", "nobody@127.0.0.1"]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.out.contains("pang"), "{}", r.text());
    assert!(
        r.err.contains("unknown node nobody@127.0.0.1"),
        "{}",
        r.text()
    );
    assert!(r.err.contains("t_ping_b@127.0.0.1"), "{}", r.text());
    // Wrong cookie, against a BEAM node (which just closes) and the rexi-node.
    for target in [b.name.as_str(), d.name.as_str()] {
        let r = raw(epmd.port, &["ping", target, "--cookie", "not_the_cookie"]);
        assert_eq!(r.code, 1, "{}", r.text());
        assert!(r.err.contains("wrong cookie"), "{}", r.text());
    }
    // epmd unreachable.
    let r = tool(free_port(), &["ping", &d.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("epmd unreachable"), "{}", r.text());
}

#[test]
fn status_of_beam_nodes_and_of_a_rexi_node() {
    let epmd = Epmd::start();
    let b1 = standin(epmd.port, "t_st_b1", 1, true, &[]);
    let b0 = standin(epmd.port, "t_st_b0", 0, false, &[]);
    let b3 = standin(epmd.port, "t_st_b3", 3, false, &[]);
    let d = Daemon::start(epmd.port, "t_st_x", &["--release", "2"]);

    let r = tool(epmd.port, &["status", &b1.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out
            .contains("BEAM node, rexi release 1 (application env rexi/release)"),
        "{}",
        r.text()
    );
    assert!(r.out.contains("rexi_server_mon status: ok"), "{}", r.text());
    let j = tool(epmd.port, &["status", &b1.name, "--json"]).json();
    assert_eq!(j["kind"], "beam");
    assert_eq!(j["release"], 1);
    let names: Vec<String> = j["names"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|n| n["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for want in ["rexi_server", "rexi_server_mon", "rexi_server_sup"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("rexi_server_") && n[12..].chars().all(|c| c.is_ascii_digit())),
        "{names:?}"
    );

    // Without the env, the names tell: no rexi_server_mon = 0, no singleton = 3.
    let r = tool(epmd.port, &["status", &b0.name]);
    assert!(
        r.out
            .contains("rexi release 0 (inferred from its registered names)"),
        "{}",
        r.text()
    );
    assert!(
        r.out.contains("rexi_server_mon status: absent"),
        "{}",
        r.text()
    );
    let r = tool(epmd.port, &["status", &b3.name]);
    assert!(r.out.contains("rexi release 3 (inferred"), "{}", r.text());

    let r = tool(epmd.port, &["status", &d.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out
            .contains("rexi-node (hidden C-node), rexi release 2 (rexi_server_mon stats)"),
        "{}",
        r.text()
    );
    assert!(r.out.contains("stats: release=2 "), "{}", r.text());
    let j = tool(epmd.port, &["status", &d.name, "--json"]).json();
    assert_eq!(j["kind"], "rexi-node");
    assert_eq!(j["visible"], false, "{j}");
    assert_eq!(j["stats"]["release"], 2);
    assert!(
        j["names"]
            .as_array()
            .is_some_and(|v| v.len() == 3 && v.iter().all(|n| n["present"] == true)),
        "{j}"
    );

    // A rexi-node run with --visible says so (it published itself in the handshake).
    let v = Daemon::start(epmd.port, "t_st_vis", &["--visible"]);
    let r = tool(epmd.port, &["status", &v.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out.contains("rexi-node (visible C-node), rexi release"),
        "{}",
        r.text()
    );
    let j = tool(epmd.port, &["status", &v.name, "--json"]).json();
    assert_eq!(j["visible"], true, "{j}");

    // Errors: unknown node, wrong cookie, epmd unreachable: exit 3, each named.
    let r = tool(epmd.port, &["status", "ghost@127.0.0.1"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(
        r.err.contains("unknown node ghost@127.0.0.1"),
        "{}",
        r.text()
    );
    let r = raw(epmd.port, &["status", &b1.name, "--cookie", "nope"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("wrong cookie"), "{}", r.text());
    let r = tool(free_port(), &["status", &b1.name]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("epmd unreachable"), "{}", r.text());
}

#[test]
fn cast_prints_replies_sync_replies_rows_and_rexi_exit() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_cast_x", &[]);
    let r = tool(
        epmd.port,
        &["cast", &d.name, "rexi_node", "echo", "{hello, 1}"],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(r.out.contains("reply: {hello,1}"), "{}", r.text());
    // By default the doit goes to the per-node name of the tool's node, as CouchDB sends.
    assert!(
        r.out
            .contains("doit: {rexi_node,echo,[{hello,1}]} (sent to {rexi_server_"),
        "{}",
        r.text()
    );
    let st = tool(epmd.port, &["status", &d.name, "--json"]).json();
    assert_eq!(st["stats"]["casts_nodename"], 1, "{st}");
    assert_eq!(st["stats"]["casts_singleton"], 0, "{st}");
    for (via, key) in [("phash2", "casts_phash2"), ("singleton", "casts_singleton")] {
        let r = tool(
            epmd.port,
            &["cast", &d.name, "rexi_node", "echo", "x", "--via", via],
        );
        assert_eq!(r.code, 0, "{}", r.text());
        let st = tool(epmd.port, &["status", &d.name, "--json"]).json();
        assert_eq!(st["stats"][key], 1, "{via}: {st}");
    }

    let r = tool(
        epmd.port,
        &["cast", &d.name, "rexi_node", "stream2", "3", "x"],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out
            .contains("sync_reply: rexi_STREAM_INIT (answered rexi_STREAM_START)"),
        "{}",
        r.text()
    );
    for i in 1..=3 {
        assert!(
            r.out.contains(&format!("row: {{{i},x}} (acked)")),
            "{}",
            r.text()
        );
    }
    assert!(r.out.contains("reply: done"), "{}", r.text());

    // stream v1 with 15 rows: past the 10-unacked limit, so the acks really flow.
    let r = tool(
        epmd.port,
        &[
            "cast",
            &d.name,
            "rexi_node",
            "stream",
            "15",
            "<<\"y\">>",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert_eq!(r.out.matches("(acked)").count(), 15, "{}", r.text());

    // --keep-listening: past the final reply, until the worker (monitored once a row gave
    // its pid) has exited.
    let r = tool(
        epmd.port,
        &[
            "cast",
            &d.name,
            "rexi_node",
            "stream",
            "2",
            "z",
            "--keep-listening",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(r.out.contains("reply: done"), "{}", r.text());
    assert!(r.out.contains("end: worker exited: normal"), "{}", r.text());
    assert!(r.took < Duration::from_secs(8), "took {:?}", r.took);

    let r = tool(
        epmd.port,
        &[
            "cast",
            &d.name,
            "rexi_node",
            "sync",
            "question",
            "--answer",
            "{yes, -2}",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    let events: Vec<serde_json::Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "doit");
    assert_eq!(events[1]["event"], "sync_reply");
    assert_eq!(events[2]["event"], "reply");
    assert_eq!(events[2]["term"].as_str(), Some("{answered,{yes,-2}}"));

    let r = tool(epmd.port, &["cast", &d.name, "rexi_node", "fail", "boom"]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.out.contains("rexi_EXIT: {boom,"), "{}", r.text());

    // A job that outlives --timeout is killed, and the tool says so.
    let r = tool(
        epmd.port,
        &[
            "cast",
            &d.name,
            "rexi_node",
            "sleep",
            "60000",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("did not end within 1 s"), "{}", r.text());
    // The argument list is shown as ~p shows it: [60000], not a string.
    assert!(
        r.out.contains("doit: {rexi_node,sleep,[60000]} (sent to"),
        "{}",
        r.text()
    );
    // ... with kill_all through the per-node name (CouchDB HEAD sends no {kill, Ref}).
    assert!(
        wait_until(Duration::from_secs(10), || {
            let st = tool(epmd.port, &["status", &d.name, "--json"]).json();
            st["stats"]["kills"] == 1
        }),
        "the job was not killed"
    );

    // Bad term syntax is a usage error.
    let r = tool(
        epmd.port,
        &["cast", &d.name, "rexi_node", "echo", "{unclosed"],
    );
    assert_eq!(r.code, 2, "{}", r.text());
    assert!(r.err.contains("not an Erlang term"), "{}", r.text());
}

#[test]
fn cast_to_beam_nodes_and_no_singleton_at_release_3() {
    let epmd = Epmd::start();
    let b1 = standin(epmd.port, "t_cb_b1", 1, true, &[]);
    let b3 = standin(epmd.port, "t_cb_b3", 3, true, &[]);
    let d = Daemon::start(epmd.port, "t_cb_x", &[]);

    // A BEAM rexi starts no per-node server for a hidden node such as the tool: the
    // default --via node is told noproc at once, with the way out.
    let r = tool(
        epmd.port,
        &["cast", &b1.name, "rn_rexi_standin", "reply", "[1,2]"],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("(noproc), so the doit was dropped: a BEAM rexi (CouchDB) starts per-node servers only for visible nodes"), "{}", r.text());
    assert!(r.err.contains("Try --via singleton."), "{}", r.text());
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);

    let r = tool(
        epmd.port,
        &[
            "cast",
            &b1.name,
            "rn_rexi_standin",
            "reply",
            "[1,2]",
            "--via",
            "singleton",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(r.out.contains("reply: [1,2]"), "{}", r.text());
    let r = tool(
        epmd.port,
        &[
            "cast",
            &b1.name,
            "rn_rexi_standin",
            "sync",
            "q",
            "--answer",
            "fine",
            "--via",
            "singleton",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out.contains("sync_reply: q (answered fine)"),
        "{}",
        r.text()
    );
    assert!(r.out.contains("reply: {answered,fine}"), "{}", r.text());
    let r = tool(
        epmd.port,
        &[
            "cast",
            &b1.name,
            "no_such_module",
            "f",
            "--via",
            "singleton",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.out.contains("rexi_EXIT: {undef,"), "{}", r.text());

    // A job past --timeout is cancelled with kill_all through the name the doit took.
    let r = tool(
        epmd.port,
        &[
            "cast",
            &b1.name,
            "rn_rexi_standin",
            "sleep",
            "60000",
            "--via",
            "singleton",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        b1.out
            .wait_for("KILL_ALL 1 via rexi_server", Duration::from_secs(10)),
        "{}",
        b1.out.text()
    );
    assert!(!b1.out.contains("KILL via"), "{}", b1.out.text());

    // Release 3: no singleton. The tool says so at once instead of waiting 30 s.
    let r = tool(
        epmd.port,
        &[
            "cast",
            &b3.name,
            "rn_rexi_standin",
            "reply",
            "x",
            "--via",
            "singleton",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        r.err.contains("has no singleton rexi_server (noproc)"),
        "{}",
        r.text()
    );
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);

    // The same on a rexi-node switched to release 3, and back.
    assert_eq!(
        tool(epmd.port, &["release", "set", "3", "--node", &d.name]).code,
        0
    );
    let r = tool(
        epmd.port,
        &[
            "cast",
            &d.name,
            "rexi_node",
            "echo",
            "x",
            "--via",
            "singleton",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        r.err.contains("has no singleton rexi_server (noproc)"),
        "{}",
        r.text()
    );
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
    // The per-node names stay at release 3.
    let r = tool(epmd.port, &["cast", &d.name, "rexi_node", "echo", "x"]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert_eq!(
        tool(epmd.port, &["release", "set", "1", "--node", &d.name]).code,
        0
    );
    let r = tool(epmd.port, &["cast", &d.name, "rexi_node", "echo", "x"]);
    assert_eq!(r.code, 0, "{}", r.text());

    // Errors before any cast: unknown node and wrong cookie.
    let r = tool(epmd.port, &["cast", "ghost@127.0.0.1", "m", "f"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("unknown node"), "{}", r.text());
    let r = raw(epmd.port, &["cast", &d.name, "m", "f", "--cookie", "nope"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("wrong cookie"), "{}", r.text());
}

#[test]
fn release_get_and_set_on_a_rexi_node_only() {
    let epmd = Epmd::start();
    let b = standin(epmd.port, "t_rel_b", 1, true, &[]);
    let d = Daemon::start(epmd.port, "t_rel_x", &[]);
    let r = tool(epmd.port, &["release", "get", "--node", &d.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert_eq!(r.out.trim(), format!("{}: release 1", d.name));
    let r = tool(epmd.port, &["release", "set", "3", "--node", &d.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(r.out.contains("release 3 (was 1)"), "{}", r.text());
    let j = tool(epmd.port, &["status", &d.name, "--json"]).json();
    assert_eq!(j["release"], 3);
    assert_eq!(j["names"][0]["name"], "rexi_server");
    assert_eq!(j["names"][0]["present"], false, "{j}");
    let j = tool(
        epmd.port,
        &["release", "set", "2", "--node", &d.name, "--json"],
    )
    .json();
    assert_eq!(j["release"], 2);
    assert_eq!(j["was"], 3);
    // Out of range: a usage error, caught before connecting.
    let r = tool(epmd.port, &["release", "set", "4", "--node", &d.name]);
    assert_eq!(r.code, 2, "{}", r.text());
    // A BEAM node's release is not changed this way.
    let r = tool(epmd.port, &["release", "set", "2", "--node", &b.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("is not a rexi-node"), "{}", r.text());
    let r = tool(epmd.port, &["release", "get", "--node", "ghost@127.0.0.1"]);
    assert_eq!(r.code, 3, "{}", r.text());
}

#[test]
fn migrate_check_flags_every_losing_mix_and_passes_adjacent_ones() {
    let epmd = Epmd::start();
    let nodes: Vec<Erl> = (0..4u8)
        .map(|r| standin(epmd.port, &format!("t_mc_r{r}"), r, true, &[]))
        .collect();
    for i in 0..4usize {
        for j in i..4usize {
            let r = tool(
                epmd.port,
                &["migrate-check", &nodes[i].name, &nodes[j].name],
            );
            let want = if j - i >= 2 { 1 } else { 0 };
            assert_eq!(r.code, want, "R{i} with R{j}:\n{}", r.text());
            if want == 1 {
                assert!(r.out.contains("NOT consistent"), "{}", r.text());
                assert!(r.out.contains("LOST"), "{}", r.text());
            } else {
                assert!(
                    r.out.contains("consistent: no pair loses casts today"),
                    "{}",
                    r.text()
                );
            }
        }
    }
    // JSON: every cell, and the verdicts for R1 + R2.
    let r = tool(
        epmd.port,
        &["migrate-check", &nodes[1].name, &nodes[2].name, "--json"],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    let j = r.json();
    assert_eq!(j["consistent"], true);
    assert_eq!(j["matrix"].as_array().map(Vec::len), Some(4));
    let verdicts: Vec<String> = j["steps"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s["verdict"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // R1 -> 2 is fine next to R2; R2 -> 3 would lose R1's casts.
    assert!(
        verdicts
            .iter()
            .any(|v| v == &format!("node {} can move to release 2 now", nodes[1].name)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.iter().any(|v| v.contains(&format!("node {} cannot move to release 3: not yet: node {} is still at release 1, its casts to {} would be lost", nodes[2].name, nodes[1].name, nodes[2].name))),
        "{verdicts:?}"
    );
}

#[test]
fn migrate_check_infers_releases_from_names() {
    let epmd = Epmd::start();
    let b0 = standin(epmd.port, "t_inf_b0", 0, false, &[]);
    let b12 = standin(epmd.port, "t_inf_b12", 1, false, &[]);
    let b3 = standin(epmd.port, "t_inf_b3", 3, false, &[]);
    let r = tool(epmd.port, &["migrate-check", &b0.name, &b3.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.out.contains("release 0  (inferred"), "{}", r.text());
    assert!(r.out.contains("release 3  (inferred"), "{}", r.text());
    // 1 or 2 next to 0: safe only if it is 1, so the worst case says no.
    let r = tool(epmd.port, &["migrate-check", &b0.name, &b12.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.out.contains("release 1 or 2"), "{}", r.text());
    assert!(r.out.contains("release unknown (1 or 2)"), "{}", r.text());
    // Unknown node: the cluster cannot be judged.
    let r = tool(epmd.port, &["migrate-check", &b0.name, "ghost@127.0.0.1"]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(
        r.err.contains("unknown node ghost@127.0.0.1"),
        "{}",
        r.text()
    );
}

#[test]
fn migrate_check_discovers_a_cluster_with_its_rexi_node() {
    let epmd = Epmd::start();
    let a = standin(epmd.port, "t_cl_a", 1, true, &[]);
    let b = standin(epmd.port, "t_cl_b", 1, true, &[&a.name]);
    let c = standin(epmd.port, "t_cl_c", 2, true, &[&a.name, &b.name]);
    let d = Daemon::start(
        epmd.port,
        "t_cl_x",
        &[
            "--connect",
            &a.name,
            "--connect",
            &b.name,
            "--connect",
            &c.name,
        ],
    );
    // The daemon connects by itself; wait until the seed sees it.
    assert!(wait_until(Duration::from_secs(10), || {
        let j = tool(
            epmd.port,
            &["migrate-check", "--cluster", &a.name, "--json"],
        );
        j.code == 0 && j.out.contains(&d.name)
    }));
    let r = tool(
        epmd.port,
        &["migrate-check", "--cluster", &a.name, "--json"],
    );
    let j = r.json();
    let names: Vec<&str> = j["nodes"]
        .as_array()
        .map(|v| v.iter().filter_map(|n| n["node"].as_str()).collect())
        .unwrap_or_default();
    for n in [&a.name, &b.name, &c.name, &d.name] {
        assert!(names.contains(&n.as_str()), "{names:?}");
    }
    assert_eq!(
        names.len(),
        4,
        "only rexi-nodes among the hidden peers: {names:?}"
    );

    // The rexi-node retires its singleton: the release-1 callers now lose their casts to it.
    assert_eq!(
        tool(epmd.port, &["release", "set", "3", "--node", &d.name]).code,
        0
    );
    let r = tool(epmd.port, &["migrate-check", "--cluster", &a.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        r.out.contains(&format!(
            "{} (release 1) -> {} (release 3): LOST",
            a.name, d.name
        )),
        "{}",
        r.text()
    );
    assert_eq!(
        tool(epmd.port, &["release", "set", "2", "--node", &d.name]).code,
        0
    );
    let r = tool(epmd.port, &["migrate-check", "--cluster", &a.name]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out
            .contains(&format!("node {} can move to release 2 now", a.name)),
        "{}",
        r.text()
    );
    assert!(
        r.out.contains(&format!(
            "node {} cannot move to release 3: not yet",
            d.name
        )),
        "{}",
        r.text()
    );

    // A rexi-node cannot be a seed: it has no cluster view.
    let r = tool(epmd.port, &["migrate-check", "--cluster", &d.name]);
    assert_eq!(r.code, 3, "{}", r.text());
    assert!(r.err.contains("must be a BEAM node"), "{}", r.text());
}

/// CouchDB nodes (per-node servers named after nodes, no release env) are recognised, not
/// taken for releases 1 or 2; a rexi-node hidden from them is DOWN to them, with a warning.
#[test]
fn migrate_check_recognises_couchdb_nodes_and_warns_about_a_hidden_rexi_node() {
    let epmd = Epmd::start();
    let c1 = couchdb_standin(epmd.port, "t_cdb_c1", &[]);
    let c2 = couchdb_standin(epmd.port, "t_cdb_c2", &[&c1.name]);
    let d = Daemon::start(epmd.port, "t_cdb_x", &["--connect", &c1.name]);
    assert!(wait_until(Duration::from_secs(10), || {
        tool(
            epmd.port,
            &["migrate-check", "--cluster", &c1.name, "--json"],
        )
        .out
        .contains(&d.name)
    }));

    let r = tool(epmd.port, &["migrate-check", "--cluster", &c1.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(!r.out.contains("release 1 or 2"), "{}", r.text());
    assert!(
        r.out.contains("couchdb    release -  (CouchDB-style: per-node servers named after nodes, no release env"),
        "{}",
        r.text()
    );
    for c in [&c1, &c2] {
        assert!(
            r.out.contains(&format!(
                "{} (release couchdb) -> {} (release 1): DOWN",
                c.name, d.name
            )),
            "{}",
            r.text()
        );
        assert!(
            r.out
                .contains(&format!("node {} runs CouchDB's rexi", c.name)),
            "{}",
            r.text()
        );
    }
    assert!(
        r.out.contains(&format!(
            "warning: rexi-node {} is hidden from the CouchDB node(s) ",
            d.name
        )),
        "{}",
        r.text()
    );
    assert!(
        r.out.contains(&format!("run {} with --visible", d.name)),
        "{}",
        r.text()
    );
    // DOWN is no release's doing: it does not hold back the rexi-node's next step.
    assert!(
        r.out
            .contains(&format!("node {} can move to release 2 now", d.name)),
        "{}",
        r.text()
    );
    let j = tool(
        epmd.port,
        &["migrate-check", "--cluster", &c1.name, "--json"],
    )
    .json();
    let cells = j["matrix"].as_array().cloned().unwrap_or_default();
    let cell = |c: &str, t: &str| {
        cells
            .iter()
            .find(|x| x["caller"] == c && x["target"] == t)
            .map(|x| x["delivery"].clone())
    };
    // Between CouchDB nodes: their per-node servers, once started.
    assert_eq!(cell(&c1.name, &c2.name), Some("ok*".into()), "{j}");
    assert_eq!(cell(&c2.name, &d.name), Some("DOWN".into()), "{j}");
    assert_eq!(j["warnings"].as_array().map(Vec::len), Some(1), "{j}");

    let r = tool(epmd.port, &["status", &c1.name]);
    assert!(
        r.out.contains("BEAM node with CouchDB's rexi"),
        "{}",
        r.text()
    );
}

#[test]
fn migrate_check_reports_ok_star_pairs_as_lost_while_the_target_waits() {
    let epmd = Epmd::start();
    let b1 = standin_mode(epmd.port, "t_wait_b1", 1, "env_waiting", &[]);
    let b2 = standin(epmd.port, "t_wait_b2", 2, true, &[]);
    let r = tool(epmd.port, &["status", &b1.name]);
    assert!(
        r.out.contains("rexi_server_mon status: {waiting,1}"),
        "{}",
        r.text()
    );
    // R2 -> R1 is "ok*": fine once b1 started b2's server, lost until then.
    let r = tool(epmd.port, &["migrate-check", &b1.name, &b2.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(
        r.out.contains(&format!(
            "{} (release 2) -> {} (release 1): WAIT",
            b2.name, b1.name
        )),
        "{}",
        r.text()
    );
    let j = tool(epmd.port, &["migrate-check", &b1.name, &b2.name, "--json"]).json();
    assert_eq!(j["consistent"], false);
    let waiting: Vec<&serde_json::Value> = j["matrix"]
        .as_array()
        .map(|v| v.iter().filter(|c| c["delivery"] == "WAIT").collect())
        .unwrap_or_default();
    assert_eq!(waiting.len(), 1, "{j}");
}
