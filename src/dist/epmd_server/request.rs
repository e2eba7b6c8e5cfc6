//! The epmd wire protocol on the server side, as pure functions over bytes: parsing one
//! request, checking what a node may register, and building the replies. The server
//! (`super`) does the I/O; keeping this part free of sockets lets it be fuzzed.
//!
//! A request is `Length:16, Tag:8, Body`; [`parse`] takes the bytes after the length.

/// `ALIVE2_REQ`: register a node (the registration lasts while the socket stays open).
pub const ALIVE2_REQ: u8 = 120;
/// Answer to `ALIVE2_REQ` with a 16-bit creation (nodes whose highest version is below 6).
pub const ALIVE2_RESP: u8 = 121;
/// Answer to `ALIVE2_REQ` with a 32-bit creation (highest version 6 and later).
pub const ALIVE2_X_RESP: u8 = 118;
/// `PORT_PLEASE2_REQ`: where does this node listen?
pub const PORT_PLEASE2_REQ: u8 = 122;
pub const PORT2_RESP: u8 = 119;
/// `NAMES_REQ`: what `epmd -names` and `net_adm:names()` ask.
pub const NAMES_REQ: u8 = 110;
/// `DUMP_REQ`, `KILL_REQ`, `STOP_REQ`: the administrative requests of `epmd -dump`,
/// `-kill` and `-stop`.
pub const DUMP_REQ: u8 = 100;
pub const KILL_REQ: u8 = 107;
pub const STOP_REQ: u8 = 115;

/// Longest node name in bytes: 255 characters of up to 4 bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 4 * 255;
/// Longest `Extra` field of `ALIVE2_REQ`; epmd keeps it in a buffer of the same size.
pub const MAX_EXTRA_BYTES: usize = 4 * 255;
/// The largest valid request: `ALIVE2_REQ` with the longest name and extra. A request
/// that declares more is refused before its body is read.
pub const MAX_REQUEST: usize = 13 + MAX_NAME_BYTES + MAX_EXTRA_BYTES;
/// Creation sent with a refused registration (what epmd sends).
pub const REFUSED_CREATION: u32 = 99;

/// Node types a registration may carry: 77 a normal node, 72 a hidden node.
pub const NODE_TYPE_NORMAL: u8 = 77;
pub const NODE_TYPE_HIDDEN: u8 = 72;

/// The fields of an `ALIVE2_REQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alive2<'a> {
    pub port: u16,
    pub node_type: u8,
    pub protocol: u8,
    pub highest: u16,
    pub lowest: u16,
    pub name: &'a str,
    pub extra: &'a [u8],
}

/// One request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Alive2(Alive2<'a>),
    PortPlease2 { name: &'a str },
    Names,
    Dump,
    Kill,
    Stop { name: &'a [u8] },
}

impl Request<'_> {
    /// Requests that change or reveal the server's state beyond lookups, which epmd
    /// takes from local clients only.
    pub fn is_privileged(&self) -> bool {
        matches!(
            self,
            Request::Alive2(_) | Request::Dump | Request::Kill | Request::Stop { .. }
        )
    }
}

/// Why a request is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a request we can answer (bad framing, unknown tag, a name with a NUL byte):
    /// the connection is closed without a reply, as epmd does.
    Malformed(String),
    /// A well-framed `ALIVE2_REQ` whose name or fields are refused: answered with an
    /// error result, in the reply form the node's `highest` version expects.
    Alive2 { highest: u16, reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(r) => write!(f, "malformed request: {r}"),
            Refusal::Alive2 { reason, .. } => write!(f, "registration refused: {reason}"),
        }
    }
}

fn malformed(r: impl Into<String>) -> Refusal {
    Refusal::Malformed(r.into())
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Parses one request (the bytes after its 2-byte length).
pub fn parse(req: &[u8]) -> Result<Request<'_>, Refusal> {
    let (&tag, body) = req
        .split_first()
        .ok_or_else(|| malformed("empty request"))?;
    match tag {
        ALIVE2_REQ => alive2(body),
        PORT_PLEASE2_REQ => {
            // Some clients NUL-terminate the name; epmd skips one terminator.
            let name = body.strip_suffix(&[0]).unwrap_or(body);
            let name = check_name(name).map_err(|r| malformed(format!("PORT_PLEASE2: {r}")))?;
            Ok(Request::PortPlease2 { name })
        }
        NAMES_REQ | DUMP_REQ | KILL_REQ if !body.is_empty() => Err(malformed(format!(
            "request {tag} carries {} unexpected bytes",
            body.len()
        ))),
        NAMES_REQ => Ok(Request::Names),
        DUMP_REQ => Ok(Request::Dump),
        KILL_REQ => Ok(Request::Kill),
        STOP_REQ => Ok(Request::Stop { name: body }),
        other => Err(malformed(format!("unknown request tag {other}"))),
    }
}

/// `PortNo:16, NodeType:8, Protocol:8, HighestVersion:16, LowestVersion:16,
/// Nlen:16, NodeName, Elen:16, Extra`.
fn alive2(b: &[u8]) -> Result<Request<'_>, Refusal> {
    let field = |i| u16_at(b, i).ok_or_else(|| malformed("ALIVE2: truncated"));
    let port = field(0)?;
    let node_type = *b.get(2).ok_or_else(|| malformed("ALIVE2: truncated"))?;
    let protocol = *b.get(3).ok_or_else(|| malformed("ALIVE2: truncated"))?;
    let highest = field(4)?;
    let lowest = field(6)?;
    let nlen = field(8)? as usize;
    let name = b
        .get(10..10 + nlen)
        .ok_or_else(|| malformed("ALIVE2: name longer than the request"))?;
    let elen = field(10 + nlen)? as usize;
    let extra = b
        .get(12 + nlen..12 + nlen + elen)
        .ok_or_else(|| malformed("ALIVE2: extra longer than the request"))?;
    if b.len() != 12 + nlen + elen {
        return Err(malformed(format!(
            "ALIVE2: {} bytes after the extra field",
            b.len() - 12 - nlen - elen
        )));
    }
    // Like epmd: an empty name or a NUL byte in it is a framing error, not a refusal.
    if name.is_empty() || name.contains(&0) {
        return Err(malformed("ALIVE2: empty name or a NUL byte in the name"));
    }
    let refuse = |reason: String| Refusal::Alive2 { highest, reason };
    let name = check_name(name).map_err(refuse)?;
    if extra.len() > MAX_EXTRA_BYTES {
        return Err(refuse(format!(
            "extra field of {} bytes, the limit is {MAX_EXTRA_BYTES}",
            extra.len()
        )));
    }
    if port == 0 {
        return Err(refuse("port 0".into()));
    }
    if node_type != NODE_TYPE_NORMAL && node_type != NODE_TYPE_HIDDEN {
        return Err(refuse(format!(
            "node type {node_type} (77 normal, 72 hidden)"
        )));
    }
    if highest < lowest {
        return Err(refuse(format!(
            "highest version {highest} below lowest version {lowest}"
        )));
    }
    Ok(Request::Alive2(Alive2 {
        port,
        node_type,
        protocol,
        highest,
        lowest,
        name,
        extra,
    }))
}

/// A node name as epmd accepts it: valid UTF-8, 1 to 255 characters (so at most 1,020
/// bytes), and, beyond epmd, no control characters: a newline in a name would forge
/// lines in `NAMES` replies (`net_adm:names()`) and in logs. The reason mentions no
/// peer bytes.
pub fn check_name(raw: &[u8]) -> Result<&str, String> {
    if raw.is_empty() {
        return Err("empty name".into());
    }
    if raw.len() > MAX_NAME_BYTES {
        return Err(format!(
            "name of {} bytes, the limit is 255 characters",
            raw.len()
        ));
    }
    let name = std::str::from_utf8(raw).map_err(|_| "name is not valid UTF-8".to_string())?;
    let chars = name.chars().count();
    if chars > 255 {
        return Err(format!("name of {chars} characters, the limit is 255"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "name contains the control character U+{:04X}",
            c as u32
        ));
    }
    Ok(name)
}

/// The answer to an `ALIVE2_REQ`: `ALIVE2_X_RESP` with a 32-bit creation for nodes that
/// speak version 6 or later, `ALIVE2_RESP` with a 16-bit one for older nodes.
pub fn alive2_reply(ok: bool, creation: u32, highest: u16) -> Vec<u8> {
    let result = u8::from(!ok);
    if highest >= 6 {
        let mut r = vec![ALIVE2_X_RESP, result];
        r.extend_from_slice(&creation.to_be_bytes());
        r
    } else {
        let mut r = vec![ALIVE2_RESP, result];
        r.extend_from_slice(&(creation as u16).to_be_bytes());
        r
    }
}

/// What epmd keeps of a registration and tells in `PORT2_RESP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub port: u16,
    pub node_type: u8,
    pub protocol: u8,
    pub highest: u16,
    pub lowest: u16,
    pub extra: Vec<u8>,
}

impl Entry {
    pub fn of(a: &Alive2<'_>) -> Entry {
        Entry {
            port: a.port,
            node_type: a.node_type,
            protocol: a.protocol,
            highest: a.highest,
            lowest: a.lowest,
            extra: a.extra.to_vec(),
        }
    }
}

/// The answer to `PORT_PLEASE2_REQ`.
pub fn port2_reply(name: &str, entry: Option<&Entry>) -> Vec<u8> {
    let Some(e) = entry else {
        return vec![PORT2_RESP, 1];
    };
    let mut r = vec![PORT2_RESP, 0];
    r.extend_from_slice(&e.port.to_be_bytes());
    r.push(e.node_type);
    r.push(e.protocol);
    r.extend_from_slice(&e.highest.to_be_bytes());
    r.extend_from_slice(&e.lowest.to_be_bytes());
    // Names and extras were bounded when registered, so the lengths fit 16 bits.
    r.extend_from_slice(&(name.len() as u16).to_be_bytes());
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(&(e.extra.len() as u16).to_be_bytes());
    r.extend_from_slice(&e.extra);
    r
}

/// The answer to `NAMES_REQ` or `DUMP_REQ`: our port, then one line per node (the text
/// `net_adm:names()` parses).
pub fn names_reply<'a>(
    our_port: u16,
    nodes: impl IntoIterator<Item = (&'a str, u16)>,
    dump: bool,
) -> Vec<u8> {
    let mut r = u32::from(our_port).to_be_bytes().to_vec();
    for (name, port) in nodes {
        let line = if dump {
            format!("active name     <{name}> at port {port}, fd = 0\n")
        } else {
            format!("name {name} at port {port}\n")
        };
        r.extend_from_slice(line.as_bytes());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive2_bytes(port: u16, ty: u8, hi: u16, lo: u16, name: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut b = vec![ALIVE2_REQ];
        b.extend_from_slice(&port.to_be_bytes());
        b.push(ty);
        b.push(0);
        b.extend_from_slice(&hi.to_be_bytes());
        b.extend_from_slice(&lo.to_be_bytes());
        b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        b.extend_from_slice(extra);
        b
    }

    #[test]
    fn a_node_as_erl_registers_it() {
        let b = alive2_bytes(40000, 77, 6, 5, b"x", b"");
        let Ok(Request::Alive2(a)) = parse(&b) else {
            panic!("{:?}", parse(&b))
        };
        assert_eq!(
            (a.port, a.node_type, a.highest, a.lowest, a.name),
            (40000, 77, 6, 5, "x")
        );
        assert!(Request::Alive2(a).is_privileged());
        let long = "é".repeat(255);
        assert!(parse(&alive2_bytes(1, 72, 6, 5, long.as_bytes(), b"")).is_ok());
    }

    #[test]
    fn names_are_checked_like_epmd() {
        let refused = |name: &[u8]| match parse(&alive2_bytes(1, 77, 6, 5, name, b"")) {
            Err(Refusal::Alive2 { highest: 6, reason }) => reason,
            other => panic!("{name:?}: {other:?}"),
        };
        assert!(refused(&[b'a'; 256]).contains("256 characters"));
        assert!(refused(&[0xff, 0xfe]).contains("UTF-8"));
        assert!(refused(b"a\nname b at port 1").contains("U+000A"));
        assert!(refused(b"a\x1b[31m").contains("U+001B"));
        assert!(refused("a\u{85}".as_bytes()).contains("U+0085"));
        for framing in [&b""[..], b"a\0b"] {
            assert!(matches!(
                parse(&alive2_bytes(1, 77, 6, 5, framing, b"")),
                Err(Refusal::Malformed(_))
            ));
        }
    }

    #[test]
    fn bogus_fields_are_refused_with_an_error_result() {
        for (port, ty, hi, lo) in [(0, 77, 6, 5), (1, 0, 6, 5), (1, 110, 6, 5), (1, 77, 5, 6)] {
            assert!(
                matches!(
                    parse(&alive2_bytes(port, ty, hi, lo, b"n", b"")),
                    Err(Refusal::Alive2 { .. })
                ),
                "{port} {ty} {hi} {lo}"
            );
        }
        assert!(matches!(
            parse(&alive2_bytes(1, 77, 6, 5, b"n", &[1; MAX_EXTRA_BYTES + 1])),
            Err(Refusal::Alive2 { .. })
        ));
    }

    #[test]
    fn framing_errors_are_malformed() {
        let good = alive2_bytes(1, 77, 6, 5, b"node", b"ex");
        for cut in 0..good.len() {
            assert!(
                matches!(parse(&good[..cut]), Err(Refusal::Malformed(_))),
                "{cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(parse(&long), Err(Refusal::Malformed(_))));
        assert!(matches!(parse(&[NAMES_REQ, 0]), Err(Refusal::Malformed(_))));
        assert!(matches!(parse(&[42]), Err(Refusal::Malformed(_))));
        assert_eq!(parse(&[NAMES_REQ]), Ok(Request::Names));
    }

    #[test]
    fn port_please_takes_an_optional_terminator() {
        assert_eq!(parse(b"zab\0"), Ok(Request::PortPlease2 { name: "ab" }));
        assert_eq!(parse(b"zab"), Ok(Request::PortPlease2 { name: "ab" }));
        assert!(matches!(parse(b"z"), Err(Refusal::Malformed(_))));
        assert!(matches!(parse(b"za\0b"), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn replies_follow_the_version() {
        assert_eq!(alive2_reply(true, 0x0102_0304, 6), [118, 0, 1, 2, 3, 4]);
        assert_eq!(alive2_reply(false, REFUSED_CREATION, 5), [121, 1, 0, 99]);
        let e = Entry {
            port: 0x1234,
            node_type: 77,
            protocol: 0,
            highest: 6,
            lowest: 5,
            extra: vec![9],
        };
        assert_eq!(
            port2_reply("ab", Some(&e)),
            [119, 0, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, b'a', b'b', 0, 1, 9]
        );
        assert_eq!(port2_reply("ab", None), [119, 1]);
        assert_eq!(
            names_reply(4369, [("a", 5)], false),
            b"\0\0\x11\x11name a at port 5\n"
        );
    }
}
