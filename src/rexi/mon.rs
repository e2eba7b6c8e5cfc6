//! `rexi_server_mon`: `status` (as in the seed), `stats`, and `{set_release, N}`.

use super::release::Release;
use super::server::RexiServer;
use super::stats::Stats;
use crate::process::{gen, Process, Signal};
use eetf::{FixInteger, Term, Tuple};
use std::sync::Weak;

pub struct Mon {
    pub server: Weak<RexiServer>,
}

impl Process for Mon {
    fn deliver(&self, signal: Signal) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        let Signal::Message { message, .. } = signal else {
            return;
        };
        let call = match gen::parse_call(message) {
            Ok(c) => c,
            Err(_not_a_call) => return,
        };
        let reply = match &*call.request {
            Term::Atom(a) if a.name == "status" => {
                let missing = server
                    .names
                    .missing(server.node(), server.release().has_singleton());
                if missing == 0 {
                    gen::atom("ok")
                } else {
                    Term::Tuple(Tuple::from(vec![
                        gen::atom("waiting"),
                        Term::FixInteger(FixInteger::from(missing as i32)),
                    ]))
                }
            }
            Term::Atom(a) if a.name == "stats" => Stats::to_term(&server.stats_snapshot()),
            Term::Atom(a) if a.name == "release" => {
                Term::FixInteger(FixInteger::from(server.release().get() as i32))
            }
            Term::Tuple(t)
                if t.elements.len() == 2
                    && matches!(&t.elements[0], Term::Atom(a) if a.name == "set_release") =>
            {
                match &t.elements[1] {
                    Term::FixInteger(n) if (0..=3).contains(&n.value) => {
                        match Release::new(n.value as u8) {
                            Some(r) => {
                                server.set_release(r);
                                gen::atom("ok")
                            }
                            None => bad_release(),
                        }
                    }
                    _ => bad_release(),
                }
            }
            _ => gen::atom("ignored"),
        };
        let _ = server
            .node()
            .send(&call.from, gen::reply_message(call.tag, reply));
    }
}

fn bad_release() -> Term {
    Term::Tuple(Tuple::from(vec![
        gen::atom("error"),
        gen::atom("bad_release"),
    ]))
}
