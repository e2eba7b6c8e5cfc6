//! The library API: a Rust user registers a handler and serves it, without touching the
//! distribution layer; a real erl node calls it.

mod support;

use eetf::{Atom, Term, Tuple};
use rexi_node::{Cookie, Handlers, NodeConfig, RexiConfig};
use std::time::Duration;
use support::*;

#[test]
fn a_custom_handler_is_served_to_erlang_callers() {
    let epmd = Epmd::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let mut cfg = NodeConfig::new("lib_api@127.0.0.1", Cookie::new(COOKIE));
    cfg.epmd_port = epmd.port;
    cfg.start_epmd = false;
    let mut h = Handlers::new();
    h.register("greeter", "hello", 1, |ctx, mut args| async move {
        let who = args.take(0);
        ctx.reply(Term::Tuple(Tuple::from(vec![
            Term::Atom(Atom::from("hello")),
            who.into_term(),
        ])));
        Ok(())
    });
    let (node, _server) = rt
        .block_on(rexi_node::serve(cfg, h, RexiConfig::default()))
        .expect("serve");
    let out = Erl::run_ok(
        epmd.port,
        "e_lib",
        "call_mfa",
        &[
            "lib_api@127.0.0.1",
            "greeter",
            "hello",
            "[<<\"Ada\">>]",
            "{hello, <<\"Ada\">>}",
        ],
        Duration::from_secs(30),
    );
    assert!(out.contains("REPLY"), "{}", out.text());
    // Unknown MFAs still get the BEAM's undef shape.
    Erl::run_ok(
        epmd.port,
        "e_lib2",
        "call_mfa",
        &[
            "lib_api@127.0.0.1",
            "greeter",
            "nope",
            "[1]",
            "{rexi_EXIT, {undef, [{greeter, nope, [1], []}]}}",
        ],
        Duration::from_secs(30),
    );
    rt.block_on(node.shutdown());
}
