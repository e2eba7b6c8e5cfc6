//! `rexi_node::client::Client` against a running rexi-node.

mod support;

use eetf::{Atom, Term, Tuple};
use rexi_node::client::Client;
use rexi_node::dist::Cookie;
use rexi_node::process::Signal;
use std::time::Duration;
use support::*;

/// Like `gen_server:call`'s selective receive, a call must leave messages that are not its
/// reply in the mailbox (a tool streaming rows while it calls would lose them otherwise).
#[test]
fn a_call_keeps_other_messages_for_the_next_recv() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_client_x", &[]);
    // The client finds epmd through ERL_EPMD_PORT, as erl does; this test binary runs only
    // this test, so setting it here races with nothing.
    std::env::set_var("ERL_EPMD_PORT", epmd.port.to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = Client::start("t_client_c@127.0.0.1".into(), Cookie::new(COOKIE))
            .await
            .expect("client");
        c.connect(&d.name).await.expect("connect");
        let hello = Term::Tuple(Tuple::from(vec![Term::Atom(Atom::from("hello"))]));
        c.send(&c.pid().clone(), hello.clone())
            .expect("send to self");
        let status = c
            .call(
                &d.name,
                "rexi_server_mon",
                Term::Atom(Atom::from("status")),
                Duration::from_secs(5),
            )
            .await
            .expect("status");
        assert_eq!(status, Term::Atom(Atom::from("ok")));
        match c.recv(Duration::from_secs(1)).await {
            Some(Signal::Message { message, .. }) => assert_eq!(*message, hello),
            other => panic!("the message sent before the call is gone: {other:?}"),
        }
        c.stop().await;
    });
}
