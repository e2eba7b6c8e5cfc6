//! The BEAM's `-ssl_dist_optfile`: one Erlang term, `[{server, Opts}, {client, Opts}]`,
//! read with the project's own term parser, so the file that configures the cluster's
//! BEAM nodes configures rexi-node too.
//!
//! Only the options whose meaning rexi-node reproduces are accepted. Any other option is
//! an error that names it: silently ignoring, say, `{verify_fun, ...}` or `{crl_check,
//! true}` would run a node less strict than the operator believes.

use crate::term;
use eetf::Term;
use std::path::PathBuf;

/// Whether the peer's certificate is checked (`verify`). OTP's default is `verify_none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    Peer,
    None,
}

/// TLS protocol versions (`versions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

/// One side's options: `server` when peers dial us, `client` when we dial them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideOptions {
    pub certfile: Option<PathBuf>,
    /// The private key; OTP reads it from `certfile` when absent, and so do we.
    pub keyfile: Option<PathBuf>,
    pub cacertfile: Option<PathBuf>,
    pub verify: Verify,
    /// Server only: refuse a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
    /// Client only: `server_name_indication` as written. OTP 25's `inet_tls_dist` puts
    /// its own (the host part of the node name) before the file's options, and the first
    /// one wins, so the value changes nothing for distribution; it is accepted so that
    /// the cluster's file works here too, and we warn that it has no effect.
    pub server_name_indication: Option<String>,
    /// Empty: TLS 1.2 and 1.3.
    pub versions: Vec<Version>,
}

impl SideOptions {
    /// Mutual TLS with one certificate, key and CA, as `--tls-cert/--tls-key/--tls-cacert`
    /// give for both sides.
    pub fn mutual(cert: PathBuf, key: PathBuf, cacert: PathBuf) -> SideOptions {
        SideOptions {
            certfile: Some(cert),
            keyfile: Some(key),
            cacertfile: Some(cacert),
            verify: Verify::Peer,
            fail_if_no_peer_cert: true,
            server_name_indication: None,
            versions: Vec::new(),
        }
    }

    fn empty() -> SideOptions {
        SideOptions {
            certfile: None,
            keyfile: None,
            cacertfile: None,
            verify: Verify::None,
            fail_if_no_peer_cert: false,
            server_name_indication: None,
            versions: Vec::new(),
        }
    }
}

/// Both sides' options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub server: SideOptions,
    pub client: SideOptions,
}

/// Reads and checks the option file at `path`.
pub fn read(path: &std::path::Path) -> Result<TlsOptions, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--ssl-dist-optfile {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("--ssl-dist-optfile {}: {e}", path.display()))
}

/// Parses the option file's text (one term, optionally followed by `.`).
pub fn parse(text: &str) -> Result<TlsOptions, String> {
    let t = term::parse(text).map_err(|e| format!("not an Erlang term: {e}"))?;
    let mut out = TlsOptions {
        server: SideOptions::empty(),
        client: SideOptions::empty(),
    };
    let mut seen = Vec::new();
    for entry in list(&t).ok_or("expected a list [{server, [...]}, {client, [...]}]")? {
        let (side, opts) = pair(entry).ok_or_else(|| {
            format!(
                "expected {{server, [...]}} or {{client, [...]}}, found {}",
                term::print(entry)
            )
        })?;
        let role = match side.as_str() {
            "server" => Role::Server,
            "client" => Role::Client,
            other => {
                return Err(format!(
                    "unknown section {other}: only server and client exist"
                ))
            }
        };
        if seen.contains(&side) {
            return Err(format!("section {side} appears twice"));
        }
        seen.push(side.clone());
        let opts = list(opts).ok_or_else(|| format!("{side}: expected a list of options"))?;
        let target = match role {
            Role::Server => &mut out.server,
            Role::Client => &mut out.client,
        };
        for o in opts {
            side_option(target, role, o).map_err(|e| format!("{side} options: {e}"))?;
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

fn side_option(s: &mut SideOptions, role: Role, o: &Term) -> Result<(), String> {
    let (key, value) =
        pair(o).ok_or_else(|| format!("expected {{Option, Value}}, found {}", term::print(o)))?;
    let bad = |what: &str| format!("{{{key}, {}}}: {what}", term::print(value));
    match key.as_str() {
        "certfile" => s.certfile = Some(path(value).ok_or_else(|| bad("expected a file name"))?),
        "keyfile" => s.keyfile = Some(path(value).ok_or_else(|| bad("expected a file name"))?),
        "cacertfile" => {
            s.cacertfile = Some(path(value).ok_or_else(|| bad("expected a file name"))?)
        }
        "verify" => {
            s.verify = match atom(value).as_deref() {
                Some("verify_peer") => Verify::Peer,
                Some("verify_none") => Verify::None,
                _ => return Err(bad("expected verify_peer or verify_none")),
            }
        }
        "fail_if_no_peer_cert" if role == Role::Server => {
            s.fail_if_no_peer_cert = match atom(value).as_deref() {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(bad("expected true or false")),
            }
        }
        "server_name_indication" if role == Role::Client => {
            if atom(value).as_deref() != Some("disable") && path(value).is_none() {
                return Err(bad("expected a host name or disable"));
            }
            s.server_name_indication = Some(term::print(value));
        }
        "versions" => {
            let vs = list(value).ok_or_else(|| bad("expected a list of versions"))?;
            s.versions.clear();
            for v in vs {
                s.versions.push(match atom(v).as_deref() {
                    Some("tlsv1.2") => Version::Tls12,
                    Some("tlsv1.3") => Version::Tls13,
                    _ => {
                        return Err(bad(&format!(
                            "version {} is not supported: rexi-node speaks 'tlsv1.2' and 'tlsv1.3'",
                            term::print(v)
                        )))
                    }
                });
            }
            if s.versions.is_empty() {
                return Err(bad("no version left"));
            }
        }
        // Renegotiation never happens with rustls, which is what `true` asks for.
        "secure_renegotiate" if atom(value).as_deref() == Some("true") => {}
        "fail_if_no_peer_cert" | "server_name_indication" => {
            let other = if role == Role::Server {
                "client"
            } else {
                "server"
            };
            return Err(format!(
                "{key} is a {other} option; move it to the {other} section"
            ));
        }
        other => {
            return Err(format!(
                "option {other} is not supported by rexi-node (supported: certfile, keyfile, \
                 cacertfile, verify, fail_if_no_peer_cert, server_name_indication, versions, \
                 {{secure_renegotiate, true}}); remove it or run this node without TLS"
            ))
        }
    }
    Ok(())
}

fn list(t: &Term) -> Option<&[Term]> {
    match t {
        Term::List(l) => Some(&l.elements),
        Term::ByteList(b) if b.bytes.is_empty() => Some(&[]),
        _ => None,
    }
}

fn atom(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.name.clone()),
        _ => None,
    }
}

/// `{Atom, Value}`.
fn pair(t: &Term) -> Option<(String, &Term)> {
    match t {
        Term::Tuple(tu) if tu.elements.len() == 2 => {
            Some((atom(&tu.elements[0])?, &tu.elements[1]))
        }
        _ => None,
    }
}

/// A file name: a string (Latin-1 or Unicode) or a UTF-8 binary, as OTP's ssl accepts.
fn path(t: &Term) -> Option<PathBuf> {
    let s: String = match t {
        Term::ByteList(b) if !b.bytes.is_empty() => b.bytes.iter().map(|&c| c as char).collect(),
        Term::List(l) if !l.elements.is_empty() => l
            .elements
            .iter()
            .map(|e| match e {
                Term::FixInteger(i) => u32::try_from(i.value).ok().and_then(char::from_u32),
                _ => None,
            })
            .collect::<Option<String>>()?,
        Term::Binary(b) if !b.bytes.is_empty() => String::from_utf8(b.bytes.clone()).ok()?,
        _ => return None,
    };
    Some(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        %% As in CouchDB's and OTP's documentation.
        [{server, [{certfile, "/etc/dist/node.pem"}, {keyfile, "/etc/dist/node.key"},
                   {cacertfile, "/etc/dist/ca.pem"}, {verify, verify_peer},
                   {fail_if_no_peer_cert, true}, {secure_renegotiate, true},
                   {versions, ['tlsv1.2', 'tlsv1.3']}]},
         {client, [{certfile, <<"/etc/dist/node.pem">>}, {keyfile, "/etc/dist/node.key"},
                   {cacertfile, "/etc/dist/ca.pem"}, {verify, verify_peer},
                   {server_name_indication, disable}]}].
    "#;

    #[test]
    fn reads_the_options_of_a_typical_file() {
        let o = parse(FILE).expect("parses");
        assert_eq!(o.server.certfile, Some(PathBuf::from("/etc/dist/node.pem")));
        assert_eq!(o.server.keyfile, Some(PathBuf::from("/etc/dist/node.key")));
        assert_eq!(o.server.verify, Verify::Peer);
        assert!(o.server.fail_if_no_peer_cert);
        assert_eq!(o.server.versions, vec![Version::Tls12, Version::Tls13]);
        assert_eq!(o.client.certfile, Some(PathBuf::from("/etc/dist/node.pem")));
        assert_eq!(o.client.server_name_indication.as_deref(), Some("disable"));
        assert!(o.client.versions.is_empty());
        let fixed = parse(r#"[{client, [{server_name_indication, "db.example"}]}]"#).expect("sni");
        assert_eq!(
            fixed.client.server_name_indication.as_deref(),
            Some("\"db.example\"")
        );
        assert_eq!(fixed.server, SideOptions::empty());
    }

    #[test]
    fn unsupported_or_misplaced_options_are_named() {
        for (text, needle) in [
            (
                r#"[{server, [{verify_fun, {foo, bar}}]}]"#,
                "option verify_fun is not supported",
            ),
            (
                r#"[{client, [{depth, 3}]}]"#,
                "option depth is not supported",
            ),
            (
                r#"[{server, [{secure_renegotiate, false}]}]"#,
                "option secure_renegotiate",
            ),
            (
                r#"[{server, [{versions, ['tlsv1.1']}]}]"#,
                "version 'tlsv1.1' is not supported",
            ),
            (
                r#"[{client, [{fail_if_no_peer_cert, true}]}]"#,
                "move it to the server section",
            ),
            (
                r#"[{server, [{server_name_indication, disable}]}]"#,
                "move it to the client",
            ),
            (
                r#"[{server, [{verify, sometimes}]}]"#,
                "expected verify_peer or verify_none",
            ),
            (r#"[{server, [{certfile, 42}]}]"#, "expected a file name"),
            (r#"[{proxy, []}]"#, "unknown section proxy"),
            (r#"[{server, []}, {server, []}]"#, "appears twice"),
            (r#"{server, []}"#, "expected a list"),
            (r#"[{server, [certfile]}]"#, "expected {Option, Value}"),
            ("[{server, [", "not an Erlang term"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
