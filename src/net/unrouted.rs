//! Messages to names nobody registered here: dropped, as a BEAM node drops them.
//!
//! Some come on every nodeup and need no answer: a visible node gets `pg`'s
//! `{discover, ...}` for each scope and OTP 25's `rex` asks `{Pid, features_request}`
//! (silence is harmless, and a pg scope must never be sent anything: it crashes on
//! messages it does not know). So the first message to each name is logged once, at info,
//! and the rest at debug: never a line per message. The set of names logged is bounded.

use std::collections::HashSet;
use std::sync::Mutex;

/// Most distinct names remembered as logged; beyond it, new names log at debug only.
pub const MAX_NAMES: usize = 256;

#[derive(Default)]
pub struct Unrouted {
    logged: Mutex<HashSet<String>>,
}

impl Unrouted {
    /// Logs a message from `peer` to the unregistered `name`: at info the first time for
    /// that name, at debug after.
    pub fn dropped(&self, peer: &str, name: &str) {
        let first = {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            logged.len() < MAX_NAMES && logged.insert(name.to_string())
        };
        if first {
            tracing::info!(peer, name, "message to a name not registered here dropped, as a BEAM node would (pg and rex ask this of every visible node and need no answer); further ones to this name are logged at debug");
        } else {
            tracing::debug!(peer, name, "message to a name not registered here: dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_remembered_once_and_the_set_is_bounded() {
        let u = Unrouted::default();
        u.dropped("a@h", "rex");
        u.dropped("b@h", "rex");
        for i in 0..MAX_NAMES * 2 {
            u.dropped("a@h", &format!("scope{i}"));
        }
        assert_eq!(u.logged.lock().map(|l| l.len()).unwrap_or(0), MAX_NAMES);
    }
}
