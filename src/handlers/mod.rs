//! The MFAs `rexi-node run` serves out of the box. Other tests (and the benchmark) rely on
//! exactly these; erlang-interop's `rexi_node.erl` serves the same on BEAM nodes.
//!
//! | MFA | does |
//! |---|---|
//! | `rexi_node:echo(T)` | reply `T` |
//! | `rexi_node:sleep(Ms)` | sleep, then reply `{slept, Ms}` |
//! | `rexi_node:stream(N, T)` | stream v1 rows `{I, T}`, I = 1..N, acked; then reply `done` |
//! | `rexi_node:stream2(N, T)` | INIT handshake; on START rows `{I, T}`, then `stream_last(done)` |
//! | `rexi_node:sync(T)` | `sync_reply(T)`, then reply `{answered, Answer}` |
//! | `rexi_node:fail(Reason)` | fail with Reason: `{rexi_EXIT, {Reason, Stack}}` |
//! | `rexi_node:panic(Msg)` | panics: `{rexi_EXIT, {{rust_panic, Msg}, Stack}}` |
//! | `erlang:phash2(T)`, `erlang:phash2(T, R)` | the BEAM-exact hash |
//! | `erlang:node()` | this node's name |

use crate::phash2;
use crate::rexi::{Failure, Handlers};
use eetf::{Atom, FixInteger, Term, Tuple};
use std::time::Duration;

fn atom(n: &str) -> Term {
    Term::Atom(Atom::from(n))
}

fn int(i: i64) -> Term {
    if i >= i32::MIN as i64 && i <= i32::MAX as i64 {
        Term::FixInteger(FixInteger::from(i as i32))
    } else {
        Term::BigInteger(eetf::BigInteger::from(i))
    }
}

fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

fn non_neg(t: &Term) -> Option<u64> {
    match t {
        Term::FixInteger(i) if i.value >= 0 => Some(i.value as u64),
        Term::BigInteger(b) => u64::try_from(&b.value).ok(),
        _ => None,
    }
}

fn u32_of(t: &Term) -> Option<u64> {
    non_neg(t)
}

fn badarg() -> Failure {
    Failure::error(atom("badarg"))
}

fn hash_reply(r: Result<u32, phash2::Phash2Error>) -> Result<Term, Failure> {
    r.map(|h| int(h as i64)).map_err(|_| badarg())
}

/// The built-in handler table.
pub fn builtin() -> Handlers {
    let mut h = Handlers::new();
    h.register("rexi_node", "echo", 1, |ctx, mut args| async move {
        ctx.reply(args.take(0));
        Ok(())
    });
    // A sleep longer than the worker timeout (--worker-timeout, 300 s by default) fails at
    // once with `{sleep_limit, MaxMs}`: the caller gets
    // `{Ref, {rexi_EXIT, {{sleep_limit, MaxMs}, [{rexi_node, sleep, 1, []}]}}}`, and no
    // caller can park a job for longer than any other job may wait.
    //
    // A held job keeps only what it answers with: the argument list is freed before the
    // wait, and the reply is made from `ms` (the same integer the caller sent).
    h.register("rexi_node", "sleep", 1, |ctx, mut args| async move {
        let ms = non_neg(&args.take(0)).ok_or_else(badarg)?;
        drop(args);
        let max = ctx.timeout().as_millis() as u64;
        if ms > max {
            return Err(Failure::error(tuple(vec![
                atom("sleep_limit"),
                int(max as i64),
            ])));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ctx.reply(tuple(vec![atom("slept"), int(ms as i64)]));
        Ok(())
    });
    // Rows carry copies of T made without recursion (`Owned::copy`), not `clone`s.
    h.register("rexi_node", "stream", 2, |mut ctx, mut args| async move {
        let n = non_neg(&args.take(0)).ok_or_else(badarg)?;
        let t = args.take(1);
        for i in 1..=n {
            ctx.stream(tuple(vec![int(i as i64), t.copy().into_term()]))
                .await?;
        }
        ctx.reply(atom("done"));
        Ok(())
    });
    h.register("rexi_node", "stream2", 2, |mut ctx, mut args| async move {
        let n = non_neg(&args.take(0)).ok_or_else(badarg)?;
        let t = args.take(1);
        for i in 1..=n {
            ctx.stream2(tuple(vec![int(i as i64), t.copy().into_term()]))
                .await?;
        }
        ctx.stream_last(atom("done")).await?;
        Ok(())
    });
    h.register("rexi_node", "sync", 1, |mut ctx, mut args| async move {
        let answer = ctx.sync_reply(args.take(0)).await?;
        ctx.reply(tuple(vec![atom("answered"), answer.into_term()]));
        Ok(())
    });
    h.register("rexi_node", "fail", 1, |_ctx, mut args| async move {
        Err(Failure::error(args.take(0)))
    });
    // Panics on purpose: shows that a panicking handler reaches the caller as a rexi_EXIT
    // and leaves the daemon serving.
    h.register("rexi_node", "panic", 1, |_ctx, args| async move {
        let what = match args.get(0) {
            Some(Term::Binary(b)) => String::from_utf8_lossy(&b.bytes).into_owned(),
            _ => "rexi_node:panic/1".to_string(),
        };
        panic!("{what}");
        #[allow(unreachable_code)]
        Ok(())
    });
    h.register("erlang", "phash2", 1, |ctx, args| async move {
        let t = args.get(0).ok_or_else(badarg)?;
        ctx.reply(hash_reply(phash2::phash2(t))?);
        Ok(())
    });
    h.register("erlang", "phash2", 2, |ctx, args| async move {
        let (Some(t), Some(r)) = (args.get(0), args.get(1)) else {
            return Err(badarg());
        };
        let range = u32_of(r).ok_or_else(badarg)?;
        ctx.reply(hash_reply(phash2::phash2_range(t, range))?);
        Ok(())
    });
    h.register("erlang", "node", 0, |ctx, _args| async move {
        let name = ctx.node().atom().clone();
        ctx.reply(Term::Atom(name));
        Ok(())
    });
    h
}
