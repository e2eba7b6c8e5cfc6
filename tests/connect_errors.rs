//! `Client::connect` says *why* a connection failed as a `ConnectError` variant, against a
//! real epmd, a real BEAM node and a real rexi-node, so tools pick advice and exit codes by
//! type and never by reading message text.

mod support;

use rexi_node::client::Client;
use rexi_node::net::{ConnectError, Cookie};
use std::time::Duration;
use support::*;

fn connect_as(epmd_port: u16, me: &str, cookie: &str, peer: &str) -> Result<(), ConnectError> {
    // The client finds epmd through ERL_EPMD_PORT, as erl does; this test binary runs one
    // test, so setting it races with nothing.
    std::env::set_var("ERL_EPMD_PORT", epmd_port.to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = Client::start(me.into(), Cookie::new(cookie)).await?;
        let r = c.connect(peer).await;
        c.stop().await;
        r
    })
}

#[test]
fn each_refusal_is_its_own_variant() {
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_ce_x", &[]);
    let mut b = Erl::start(epmd.port, "t_ce_b", COOKIE, "idle", &[&d.name]);
    assert!(
        b.out.wait_for("CONNECTED", Duration::from_secs(20)),
        "{}",
        b.out.text()
    );

    // Right cookie: both kinds of node accept.
    for peer in [d.name.as_str(), b.name.as_str()] {
        connect_as(epmd.port, "t_ce_ok@127.0.0.1", COOKIE, peer)
            .unwrap_or_else(|e| panic!("{peer}: {e}"));
    }

    // Unknown node: epmd answers, and the client lists what epmd does know.
    match connect_as(epmd.port, "t_ce_u@127.0.0.1", COOKIE, "nobody@127.0.0.1") {
        Err(ConnectError::UnknownNode {
            node,
            host,
            registered: Some(names),
        }) => {
            assert_eq!(
                (node.as_str(), host.as_str()),
                ("nobody@127.0.0.1", "127.0.0.1")
            );
            assert!(
                names.contains(&d.name) && names.contains(&b.name),
                "{names:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Wrong cookie: the rexi-node and the BEAM node both refuse; the BEAM node just closes
    // the socket, so there the cause is inferred, not stated.
    for peer in [d.name.as_str(), b.name.as_str()] {
        match connect_as(epmd.port, "t_ce_c@127.0.0.1", "not_the_cookie", peer) {
            Err(e @ ConnectError::WrongCookie { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("wrong cookie") && text.contains(peer),
                    "{text}"
                );
                assert!(text.contains("--cookie"), "{text}");
            }
            other => panic!("{peer}: {other:?}"),
        }
    }

    // Not a node name.
    match connect_as(epmd.port, "t_ce_n@127.0.0.1", COOKIE, "no_at_sign") {
        Err(ConnectError::BadName { node }) => assert_eq!(node, "no_at_sign"),
        other => panic!("{other:?}"),
    }

    // epmd unreachable: a port nobody listens on.
    let dead = free_port();
    match connect_as(dead, "t_ce_e@127.0.0.1", COOKIE, &d.name) {
        Err(ConnectError::EpmdUnreachable { port, .. }) => assert_eq!(port, dead),
        other => panic!("{other:?}"),
    }
    b.sigkill();
}
