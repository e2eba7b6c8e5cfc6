//! Feeds arbitrary bytes, as a client's stream of length-prefixed requests, to the epmd
//! server's request parser (`net::epmd_server::request::parse`) and to the registry
//! decisions and replies the server makes from its result.
//!
//! Beyond "never panic or hang", it checks what the server relies on: a request over the
//! size cap is never parsed; an accepted name passes the name check and holds no control
//! character (so a `NAMES` reply has exactly one line per node, nothing forged); replies
//! have the lengths the protocol says.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use rexi_node::net::epmd_server::request::{self, Entry, Refusal, Request};

fuzz_target!(|data: &[u8]| {
    let mut nodes: HashMap<String, Entry> = HashMap::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if len == 0 || len > request::MAX_REQUEST {
            break; // the server closes such a client before reading more
        }
        let Some(req) = rest.get(2..2 + len) else {
            break;
        };
        rest = &rest[2 + len..];
        match request::parse(req) {
            Ok(Request::Alive2(a)) => {
                assert!(request::check_name(a.name.as_bytes()).is_ok());
                assert!(!a.name.chars().any(char::is_control));
                assert!(a.port != 0 && a.highest >= a.lowest);
                assert!(a.extra.len() <= request::MAX_EXTRA_BYTES);
                let ok = !nodes.contains_key(a.name);
                let reply = request::alive2_reply(ok, 5, a.highest);
                assert_eq!(reply.len(), if a.highest >= 6 { 6 } else { 4 });
                if ok {
                    nodes.insert(a.name.to_string(), Entry::of(&a));
                }
            }
            Ok(Request::PortPlease2 { name }) => {
                let reply = request::port2_reply(name, nodes.get(name));
                match nodes.get(name) {
                    Some(e) => assert_eq!(reply.len(), 14 + name.len() + e.extra.len()),
                    None => assert_eq!(reply, [request::PORT2_RESP, 1]),
                }
            }
            Ok(r @ (Request::Names | Request::Dump)) => {
                let reply = request::names_reply(
                    4369,
                    nodes.iter().map(|(n, e)| (n.as_str(), e.port)),
                    r == Request::Dump,
                );
                let lines = reply[4..].iter().filter(|&&b| b == b'\n').count();
                assert_eq!(lines, nodes.len(), "a name forged a line");
            }
            Ok(Request::Kill | Request::Stop { .. }) => {}
            Err(Refusal::Alive2 { highest, reason }) => {
                assert!(!reason.is_empty());
                let reply = request::alive2_reply(false, request::REFUSED_CREATION, highest);
                assert_eq!(reply[1], 1);
            }
            Err(Refusal::Malformed(_)) => break, // closed without a reply
        }
    }
});
