//! Messages for nodes we are not connected to, held while we connect.
//!
//! `erlang:send/2` to a pid or name on a node without a connection connects first and
//! delivers once the connection is up. A rexi reply to a caller on a node that reached us
//! through another node (or whose connection just dropped) needs the same. Frames are
//! encoded at once and kept in one buffer per node, in order; when the connection comes up
//! the buffer goes into the new connection's send queue before anyone else can send on it
//! (see [`Pending::deliver`]), so per-sender order holds. When the connect fails the
//! frames are dropped with one log line per node.
//!
//! Bounded: at most [`MAX_NODES`] nodes being connected this way at once and
//! [`MAX_BYTES_PER_NODE`] bytes queued for each; beyond either, a message is dropped
//! (as `erlang:send/3` with `noconnect` would drop it) and counted in the log line.

use crate::etf;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most nodes with messages waiting for a connect at once. A peer can make us dial any
/// node it names (as it can a BEAM node); this bounds the dials and the memory.
pub const MAX_NODES: usize = 64;
/// Most bytes queued for one node while it is being connected.
pub const MAX_BYTES_PER_NODE: usize = 16 << 20;

#[derive(Default)]
struct Queue {
    frames: Vec<u8>,
    messages: u64,
    dropped: u64,
}

/// The messages held per node.
#[derive(Default)]
pub struct Pending {
    queues: Mutex<HashMap<String, Queue>>,
}

/// What became of a message handed to [`Pending::queue`].
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// The node came up meanwhile: send it the ordinary way.
    Up,
    /// Held; `first`: nobody is connecting to the node yet, the caller must start it.
    Held { first: bool },
    /// Dropped: over one of the bounds, or the message could not be encoded.
    Dropped,
}

/// What a failed connect dropped.
pub struct Dropped {
    pub messages: u64,
    pub bytes: usize,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds a frame for `node` unless `is_up()` (checked under this table's lock, which
    /// [`Pending::deliver`] also holds while the connection becomes visible).
    pub fn queue(
        &self,
        node: &str,
        is_up: impl Fn() -> bool,
        fill: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Queued {
        let mut queues = self.lock();
        if is_up() {
            return Queued::Up;
        }
        let first = !queues.contains_key(node);
        if first && queues.len() >= MAX_NODES {
            return Queued::Dropped;
        }
        let q = queues.entry(node.to_string()).or_default();
        let before = q.frames.len();
        let ok = fill(&mut q.frames).is_ok();
        if !ok || q.frames.len() > MAX_BYTES_PER_NODE {
            q.frames.truncate(before);
            q.dropped += 1;
            return Queued::Dropped;
        }
        q.messages += 1;
        Queued::Held { first }
    }

    /// The connection to `node` is up: `publish` runs with the frames held for it (if
    /// any) under this table's lock. It must put them into the connection's send queue and
    /// then make the connection visible to senders, so nothing sent later overtakes them.
    pub fn deliver<T>(&self, node: &str, publish: impl FnOnce(Option<Vec<u8>>) -> T) -> T {
        let mut queues = self.lock();
        let held = queues.remove(node).map(|q| q.frames);
        publish(held)
    }

    /// The connect to `node` failed: what was held, dropped.
    pub fn fail(&self, node: &str) -> Option<Dropped> {
        let q = self.lock().remove(node)?;
        Some(Dropped {
            messages: q.messages + q.dropped,
            bytes: q.frames.len(),
        })
    }

    /// Whether anything is held at all (a cheap check for the common case).
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError> {
        move |b: &mut Vec<u8>| {
            b.push(n);
            Ok(())
        }
    }

    #[test]
    fn held_in_order_then_delivered_once() {
        let p = Pending::default();
        assert_eq!(
            p.queue("a@h", || false, frame(1)),
            Queued::Held { first: true }
        );
        assert_eq!(
            p.queue("a@h", || false, frame(2)),
            Queued::Held { first: false }
        );
        assert_eq!(p.queue("a@h", || true, frame(3)), Queued::Up);
        assert_eq!(p.deliver("a@h", |f| f), Some(vec![1, 2]));
        assert_eq!(p.deliver("a@h", |f| f), None);
        assert!(p.is_empty());
    }

    #[test]
    fn bounded_in_nodes_and_bytes() {
        let p = Pending::default();
        for i in 0..MAX_NODES {
            assert!(matches!(
                p.queue(&format!("n{i}@h"), || false, frame(0)),
                Queued::Held { first: true }
            ));
        }
        assert_eq!(p.queue("late@h", || false, frame(0)), Queued::Dropped);
        let big = |b: &mut Vec<u8>| {
            b.resize(b.len() + MAX_BYTES_PER_NODE, 0);
            Ok(())
        };
        assert_eq!(p.queue("n0@h", || false, big), Queued::Dropped);
        let d = p.fail("n0@h").expect("held");
        assert_eq!((d.messages, d.bytes), (2, 1));
    }
}
