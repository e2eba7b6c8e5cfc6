//! The owner of every `rexi_server*` name on this node.
//!
//! For this node and for every connected peer P, two names, registered in `node_up` (which
//! the distribution layer calls before P's first message is dispatched, so a new peer's
//! first cast is never lost):
//! * `rexi_server_<phash2(P)>`: the seed's per-node scheme (docs/design/migration.md §1);
//! * `rexi_server_<P>`: the node-name scheme CouchDB shipped from 2.0.1 on.
//!
//! Plus the singleton `rexi_server` while the release keeps it. Names are reference
//! counted: two peers whose names hash alike share one name (docs/design/migration.md §5.6).

use super::release::Release;
use super::stats::{bump, Stats};
use super::wire;
use crate::etf::{Budget, DecodeError, Encoded};
use crate::log_limit;
use crate::net::handshake::PeerInfo;
use crate::net::{Node, NodeObserver};
use crate::phash2;
use crate::process::{Process, Sender, Signal};
use eetf::{Atom, Term};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Singleton,
    Phash2,
    NodeName,
}

pub const SINGLETON: &str = "rexi_server";

/// What the names need from the server they lead to. A trait, so that this file does not
/// import `server` (which owns the names); [`super::server::RexiServer`] implements it.
pub(crate) trait NameOwner: Send + Sync + 'static {
    fn node(&self) -> &Node;
    fn names(&self) -> &Names;
    fn release(&self) -> Release;
    fn stats(&self) -> &Stats;
    fn owner(&self) -> Weak<dyn NameOwner>;
    /// A signal sent to one of the names.
    fn handle(&self, kind: NameKind, signal: Signal);
    /// A doit read in place ([`super::wire`]) that came to a name of kind `kind`; `sender`:
    /// the node whose connection carried it (none for a local send).
    fn handle_doit(&self, kind: NameKind, doit: super::protocol::Doit<'_>, sender: Option<&str>);
    fn cancel_jobs_of(&self, peer: &str);
}

/// One registered name; all of them share the server.
pub(crate) struct NameProc {
    pub server: Weak<dyn NameOwner>,
    pub kind: NameKind,
}

impl Process for NameProc {
    fn deliver(&self, signal: Signal) {
        match self.server.upgrade() {
            Some(s) => s.handle(self.kind, signal),
            None => drop(signal),
        }
    }

    /// A doit is read in place ([`super::wire`]); anything else is decoded whole and
    /// handled as [`Self::deliver`] would. The in-place reader gets a memory budget of its
    /// own (the frame's limit, not counting the few bytes of the control message), so a
    /// message it leaves to the whole decoder is not charged twice.
    fn deliver_encoded(&self, from: Sender<'_>, message: Encoded<'_>) -> Result<(), DecodeError> {
        let Some(server) = self.server.upgrade() else {
            return message.decode().map(drop);
        };
        let mut trial = Budget::new(message.limits());
        match wire::read(message.bytes(), message.limits(), &mut trial) {
            Some(d) => {
                server.handle_doit(self.kind, d, Some(from.node()));
                Ok(())
            }
            None => {
                drop(trial);
                crate::process::deliver_whole(self, from, message)
            }
        }
    }
}

/// The per-node names a caller on `node` may use.
pub fn names_for(node: &str) -> [(String, NameKind); 2] {
    [
        (phash2::server_id(node), NameKind::Phash2),
        (format!("rexi_server_{node}"), NameKind::NodeName),
    ]
}

#[derive(Default)]
pub struct Names {
    counts: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn shutdown() -> Term {
    Term::Atom(Atom::from("shutdown"))
}

impl Names {
    pub(crate) fn attach(&self, server: &dyn NameOwner) {
        let node = server.node().clone();
        for (name, kind) in names_for(node.name()) {
            self.acquire(server, &name, kind);
        }
        if server.release().has_singleton() {
            self.register(server, SINGLETON, NameKind::Singleton);
        }
        node.add_observer(Arc::new(Watcher(server.owner())));
        let weak = server.owner();
        node.set_unrouted_hook(Arc::new(move |peer: &str, name: &str| {
            let Some(s) = weak.upgrade() else { return };
            if name == SINGLETON {
                bump(&s.stats().dropped_retired);
                if let Some(suppressed) = log_limit::global().admit("cast to the retired singleton", peer) {
                    tracing::warn!(peer, release = s.release().get(), suppressed, "cast to the retired singleton rexi_server dropped (release 3); that caller is still at release 0 or 1");
                }
            } else if name.starts_with("rexi_server_") {
                bump(&s.stats().dropped_unserved);
                if let Some(suppressed) = log_limit::global().admit("message to an unserved rexi server name", peer) {
                    tracing::warn!(peer, name, suppressed, "message to a rexi server name this node does not serve dropped");
                }
            }
        }));
    }

    fn register(&self, server: &dyn NameOwner, name: &str, kind: NameKind) {
        let p: Arc<dyn Process> = Arc::new(NameProc {
            server: server.owner(),
            kind,
        });
        if let Err(e) = server.node().register(name, p) {
            tracing::warn!("{e}");
        }
    }

    fn acquire(&self, server: &dyn NameOwner, name: &str, kind: NameKind) {
        let mut counts = lock(&self.counts);
        let c = counts.entry(name.to_string()).or_insert(0);
        *c += 1;
        if *c == 1 {
            self.register(server, name, kind);
        }
    }

    fn release_name(&self, server: &dyn NameOwner, name: &str) {
        let mut counts = lock(&self.counts);
        if let Some(c) = counts.get_mut(name) {
            *c -= 1;
            if *c == 0 {
                counts.remove(name);
                server.node().unregister(name, &shutdown());
            }
        }
    }

    pub(crate) fn set_singleton(&self, server: &dyn NameOwner, present: bool) {
        let Some(me) = server.owner().upgrade() else {
            return;
        };
        if present {
            self.register(&*me, SINGLETON, NameKind::Singleton);
        } else {
            server.node().unregister(SINGLETON, &shutdown());
        }
    }

    /// How many of the names that should exist for `[node | peers]` are missing.
    pub fn missing(&self, node: &Node, release_has_singleton: bool) -> usize {
        let mut want: Vec<String> = Vec::new();
        for n in std::iter::once(node.name().to_string()).chain(node.peers()) {
            for (name, _) in names_for(&n) {
                want.push(name);
            }
        }
        if release_has_singleton {
            want.push(SINGLETON.to_string());
        }
        want.iter()
            .filter(|n| node.registry().whereis(n).is_none())
            .count()
    }
}

/// Registers a peer's names at nodeup (before its first message) and drops them at
/// nodedown, cancelling that node's jobs.
struct Watcher(Weak<dyn NameOwner>);

impl NodeObserver for Watcher {
    fn node_up(&self, _node: &Node, peer: &PeerInfo) {
        let Some(s) = self.0.upgrade() else { return };
        for (name, kind) in names_for(&peer.name) {
            s.names().acquire(&*s, &name, kind);
        }
    }

    fn node_down(&self, _node: &Node, peer: &str, _reason: &str) {
        let Some(s) = self.0.upgrade() else { return };
        s.cancel_jobs_of(peer);
        for (name, _) in names_for(peer) {
            s.names().release_name(&*s, &name);
        }
    }
}
