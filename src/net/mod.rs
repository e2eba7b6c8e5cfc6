//! The Erlang distribution layer: everything between a TCP socket and a routed message.
//!
//! * [`epmd`] and [`epmd_server`]: the port mapper, as a client and as our own server;
//! * [`admission`], [`handshake`] and [`flags`]: who may connect, how fast, and what we
//!   promise when they do;
//! * [`message`]: control messages in and out, through the guarded codec;
//! * [`connection`]: one peer's reader, writer and ticks;
//! * [`threads`]: the threads connections run on, one connection on one thread;
//! * [`metrics`]: the layer's figures, bumped by connections and read by reports;
//! * [`node`]: the local node, its peers, and routing into [`crate::process`];
//! * [`global`], [`spawn`], [`pending`], [`unrouted`]: what the node owes other nodes
//!   beyond routing: `global`'s sync (visible nodes), spawn requests, sends that connect
//!   first, and messages to names nobody registered.

pub mod admission;
pub mod connect_error;
pub mod connection;
pub mod cookie;
pub mod epmd;
pub mod epmd_server;
pub mod flags;
pub mod global;
pub mod handshake;
pub mod handshake_stream;
pub mod message;
pub mod metrics;
pub mod node;
pub mod pending;
pub mod spawn;
pub mod stream;
pub mod threads;
pub mod tls;
pub mod unrouted;

pub use connect_error::ConnectError;
pub use cookie::Cookie;
pub use node::{Node, NodeConfig, NodeObserver};
