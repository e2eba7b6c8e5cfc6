//! A Rust rexi server with a handler of its own, without touching the distribution layer.
//!
//!     cargo run --example greeter -- greeter@127.0.0.1 COOKIE
//!
//! then, from an Erlang node with the same cookie:
//!
//!     Ref = make_ref(),
//!     {rexi_server, 'greeter@127.0.0.1'} ! {'$gen_cast', {doit, {self(), Ref}, undefined, {greeter, hello, [<<"Ada">>]}}},
//!     receive {Ref, Reply} -> Reply end.   %% {hello, <<"Ada">>}

use eetf::{Atom, Term, Tuple};
use rexi_node::{Cookie, Failure, Handlers, NodeConfig, RexiConfig};

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1);
    let name = argv.next().unwrap_or_else(|| "greeter@127.0.0.1".into());
    let cookie = Cookie::new(argv.next().unwrap_or_else(|| "greeter".into()));

    let mut handlers = rexi_node::handlers::builtin();
    add_greeter(&mut handlers);

    let (node, _server) = match rexi_node::serve(
        NodeConfig::new(name, cookie),
        handlers,
        RexiConfig::default(),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("greeter: {e}");
            std::process::exit(1);
        }
    };
    println!("serving greeter:hello/1 on {}", node.name());
    let _ = tokio::signal::ctrl_c().await;
    node.shutdown().await;
}

fn add_greeter(h: &mut Handlers) {
    // greeter:hello(Name) -> {hello, Name}; anything but a binary fails with badarg.
    h.register("greeter", "hello", 1, |ctx, mut args| async move {
        let who = args.take(0);
        match &*who {
            Term::Binary(_) => {
                ctx.reply(Term::Tuple(Tuple::from(vec![
                    Term::Atom(Atom::from("hello")),
                    who.into_term(),
                ])));
                Ok(())
            }
            _ => Err(Failure::error(Term::Atom(Atom::from("badarg")))),
        }
    });
}
