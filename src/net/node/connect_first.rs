//! Sends to a node without a connection: connect first, like `erlang:send/2`.
//!
//! The frame is held in [`crate::net::pending`] and one connect is started for the node;
//! `peers` hands what was held to the new connection before anyone else can send on it.
//! A connect that fails drops what was held, with one log line naming the node.

use super::Node;
use crate::etf;
use crate::net::connect_error::ConnectError;
use crate::net::connection::SendError;
use crate::net::pending::Queued;
use std::time::Duration;

impl Node {
    /// Holds a frame for `node` (not connected) and connects to it.
    pub(super) fn send_connecting(
        &self,
        node: &str,
        fill: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Result<(), SendError> {
        let not_connected = || SendError::NotConnected(node.to_string());
        // Our own name (a pid of an earlier incarnation), a name we could never dial, a
        // node shutting down, or no runtime to connect from: dropped, as before.
        let runtime = tokio::runtime::Handle::try_current();
        if node == self.name()
            || super::split_name(node).is_err()
            || self.is_shutting_down()
            || runtime.is_err()
        {
            return Err(not_connected());
        }
        match self
            .0
            .pending
            .queue(node, || self.peer(node).is_some(), &fill)
        {
            Queued::Up => match self.peer(node) {
                Some(p) => self.push(&p, fill),
                None => Err(not_connected()),
            },
            Queued::Held { first } => {
                if let (true, Ok(rt)) = (first, runtime) {
                    rt.spawn(self.clone().connect_for_held(node.to_string()));
                }
                Ok(())
            }
            Queued::Dropped => {
                if let Some(suppressed) =
                    crate::log_limit::global().admit("message dropped while connecting", node)
                {
                    tracing::warn!(peer = node, suppressed, "message for a node being connected to dropped: over the bounds of what is held while connecting (64 nodes, 16 MiB each)");
                }
                Err(not_connected())
            }
        }
    }

    /// Connects to `node` for the messages held for it; if that fails, drops them.
    async fn connect_for_held(self, node: String) {
        let r = match self.connect(&node).await {
            // Another dial (a --connect loop, the peer dialling us) is under way: its
            // connection delivers what is held; wait for it as long as a handshake may take.
            Err(ConnectError::InProgress { .. }) => {
                let deadline = tokio::time::Instant::now()
                    + self.0.config.handshake_timeout
                    + Duration::from_secs(1);
                loop {
                    if self.peer(&node).is_some() {
                        break Ok(());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break Err("the connection under way did not come up".to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            r => r.map_err(|e| e.to_string()),
        };
        if let Err(error) = r {
            if let Some(d) = self.0.pending.fail(&node) {
                tracing::warn!(peer = %node, messages = d.messages, bytes = d.bytes, %error, "messages for a node this node was not connected to dropped: connecting to it failed");
            }
        }
    }
}
