//! TLS distribution against real `erl -proto_dist inet_tls -ssl_dist_optfile F` nodes, with
//! certificates this test makes: a CA, node certificates for `DNS:127.0.0.1`, one with
//! only `IP:127.0.0.1`, an expired one, and one from another CA. One option file format
//! serves both kinds of node, as it would in a cluster.

mod support;

use eetf::{Atom, ByteList, FixInteger, List, Term, Tuple};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rexi_node::client::Client;
use rexi_node::net::tls::Tls;
use rexi_node::net::Cookie;
use rexi_node::process::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

// ---- certificates and option files ---------------------------------------------------

/// A directory of PEM files and option files, removed when dropped.
struct Pki {
    dir: PathBuf,
}

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// What a node certificate says about its host.
#[derive(Clone, Copy)]
enum Host {
    /// `DNS:127.0.0.1` (and `IP:127.0.0.1`): what the BEAM accepts for `x@127.0.0.1`.
    Dns,
    /// Only `IP:127.0.0.1`: what the BEAM refuses.
    IpOnly,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).expect("CA cert");
    Ca { cert, key }
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rexi-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Pki { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// A node certificate and key signed by `ca`, written as NAME.pem and NAME.key.
    fn node(&self, name: &str, ca: &Ca, host: Host, expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        let ip = SanType::IpAddress("127.0.0.1".parse().expect("ip"));
        p.subject_alt_names = match host {
            Host::Dns => vec![SanType::DnsName("127.0.0.1".try_into().expect("dns")), ip],
            Host::IpOnly => vec![ip],
        };
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("sign");
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }

    /// An option file: mutual TLS with `verify_peer` both ways, trusting `cacert`.
    /// `client_cert: false` leaves the certificate out of the client side.
    fn optfile(
        &self,
        name: &str,
        id: &(PathBuf, PathBuf),
        cacert: &Path,
        client_cert: bool,
    ) -> String {
        let s = |p: &Path| format!("{:?}", p.display().to_string());
        let (cert, key, ca) = (s(&id.0), s(&id.1), s(cacert));
        let mine = format!("{{certfile, {cert}}}, {{keyfile, {key}}}, ");
        let text = format!(
            "%% written by tests/tls.rs\n\
             [{{server, [{mine}{{cacertfile, {ca}}}, {{verify, verify_peer}}, \
                         {{fail_if_no_peer_cert, true}}]}},\n \
              {{client, [{}{{cacertfile, {ca}}}, {{verify, verify_peer}}]}}].\n",
            if client_cert { mine.as_str() } else { "" }
        );
        self.write(&format!("{name}.conf"), &text)
            .display()
            .to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster's PKI: option files for a good identity and for each bad one.
struct Cluster {
    /// Holds the files until the test ends.
    _pki: Pki,
    good: String,
    ip_only: String,
    expired: String,
    other_ca: String,
    no_client_cert: String,
}

fn cluster(tag: &str) -> Cluster {
    let pki = Pki::new(tag);
    let ca1 = ca("rexi-node test CA");
    let ca2 = ca("another CA");
    let ca1_pem = pki.write("ca.pem", &ca1.cert.pem());
    // The bad nodes trust both CAs: the refusals tested are the good side's.
    let both = pki.write("both.pem", &format!("{}{}", ca1.cert.pem(), ca2.cert.pem()));
    let good = pki.node("good", &ca1, Host::Dns, false);
    let ip = pki.node("ip_only", &ca1, Host::IpOnly, false);
    let old = pki.node("expired", &ca1, Host::Dns, true);
    let other = pki.node("other_ca", &ca2, Host::Dns, false);
    Cluster {
        good: pki.optfile("good", &good, &ca1_pem, true),
        ip_only: pki.optfile("ip_only", &ip, &ca1_pem, true),
        expired: pki.optfile("expired", &old, &both, true),
        other_ca: pki.optfile("other_ca", &other, &both, true),
        no_client_cert: pki.optfile("no_client_cert", &good, &both, false),
        _pki: pki,
    }
}

// ---- nodes -----------------------------------------------------------------------------

fn tls_args(optfile: &str) -> Vec<&str> {
    vec!["-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile]
}

/// A BEAM node over TLS running `rn_probe:Func(Args)` to completion; its output.
fn probe_ok(epmd: u16, alive: &str, optfile: &str, func: &str, args: &[&str]) -> Lines {
    probe_from(epmd, alive, optfile, None, func, args)
}

/// As [`probe_ok`], dialing from the source address `from` (127.0.0.N): the daemon
/// limits its warnings per source address, so each refused peer gets its own.
fn probe_from(
    epmd: u16,
    alive: &str,
    optfile: &str,
    from: Option<&str>,
    func: &str,
    args: &[&str],
) -> Lines {
    let mut erl_args = tls_args(optfile);
    let bind = from.map(|ip| format!("[{{ip, {{{}}}}}]", ip.replace('.', ",")));
    if let Some(b) = &bind {
        erl_args.extend(["-kernel", "inet_dist_connect_options", b.as_str()]);
    }
    let mut e = Erl::start_with(epmd, alive, COOKIE, &erl_args, "rn_probe", func, args);
    let code = e.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{alive} {func} {args:?}:\n{}", e.out.text());
    e.out.clone()
}

/// A BEAM node over TLS serving rexi for `caller` under all three names.
fn beam_target(epmd: u16, alive: &str, optfile: &str, caller: &str) -> Erl {
    let e = Erl::start_with(
        epmd,
        alive,
        COOKIE,
        &tls_args(optfile),
        "rn_tls",
        "serve",
        &[caller],
    );
    assert!(
        e.out.wait_for("SERVING", Duration::from_secs(30)),
        "{alive} did not start:\n{}",
        e.out.text()
    );
    e
}

fn tool(epmd: u16, args: &[&str]) -> Run {
    let mut v = args.to_vec();
    v.extend(["--cookie", COOKIE]);
    rexi_node(&v, &[("ERL_EPMD_PORT", epmd.to_string())], None)
}

/// The daemon's log lines about a refused incoming handshake.
fn refusals(d: &Daemon) -> Vec<String> {
    d.log.with(&["incoming handshake failed"])
}

fn wait_refusals(d: &Daemon, n: usize) -> Vec<String> {
    wait_until(Duration::from_secs(20), || refusals(d).len() >= n);
    refusals(d)
}

// ---- tests -------------------------------------------------------------------------------

/// BEAM -> rexi-node over TLS: ping, then rn_probe's full rexi conversation (replies,
/// sync replies, both stream protocols, kills, errors) through each of the three names,
/// every reply matched exactly on the Erlang side. rexi-node -> BEAM: the tools ping and
/// cast, and the library casts to each name with the exact reply checked.
#[test]
fn beam_and_rexi_node_serve_each_other_over_tls() {
    let c = cluster("serve");
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_tls_rx", &["--ssl-dist-optfile", &c.good]);
    assert!(
        d.log.contains(
            "TLS distribution: as a server TLS 1.2 and 1.3, requiring a client certificate"
        ),
        "{}",
        d.log.text()
    );
    let out = probe_ok(epmd.port, "t_tls_e1", &c.good, "ping", &[&d.name]);
    assert!(
        out.contains("PING pong hidden=true visible=false"),
        "{}",
        out.text()
    );
    let out = probe_ok(epmd.port, "t_tls_shapes", &c.good, "shapes", &[&d.name]);
    for via in [
        "rexi_server",
        "rexi_server_",
        "'rexi_server_t_tls_shapes@127.0.0.1'",
    ] {
        assert!(
            out.contains(&format!("SHAPES ok via {via}")),
            "{}",
            out.text()
        );
    }

    // The other way: rexi-node dials the BEAM node.
    let caller = "t_tls_lib@127.0.0.1";
    let b = beam_target(epmd.port, "t_tls_b", &c.good, caller);
    let r = tool(epmd.port, &["ping", &b.name, "--ssl-dist-optfile", &c.good]);
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out.starts_with(&format!("pong from {}", b.name)),
        "{}",
        r.text()
    );
    let r = tool(
        epmd.port,
        &[
            "cast",
            &b.name,
            "lists",
            "reverse",
            "[1, 2, 3]",
            "--via",
            "singleton",
            "--ssl-dist-optfile",
            &c.good,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.text());
    assert!(
        r.out.contains("reply: {rexi_server,[3,2,1]}"),
        "{}",
        r.text()
    );

    // Every name form, from the library (the tools cast to rexi_server only: a hidden
    // caller has no per-node servers on a BEAM node, docs/design/migration.md).
    std::env::set_var("ERL_EPMD_PORT", epmd.port.to_string());
    let tls = Tls::new(&rexi_node::net::tls::optfile::read(Path::new(&c.good)).expect("optfile"))
        .expect("tls");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cl = Client::start_tls(caller.into(), Cookie::new(COOKIE), Some(tls.into()))
            .await
            .expect("client");
        cl.connect(&b.name).await.expect("connect over TLS");
        let phash = rexi_node::phash2::server_id(caller);
        for name in [
            "rexi_server".to_string(),
            phash,
            format!("rexi_server_{caller}"),
        ] {
            let r = cl.make_ref();
            let doit = tuple(vec![
                atom("$gen_cast"),
                tuple(vec![
                    atom("doit"),
                    tuple(vec![Term::Pid(cl.pid().clone()), Term::from(r.clone())]),
                    atom("undefined"),
                    tuple(vec![atom("lists"), atom("seq"), list(vec![int(1), int(3)])]),
                ]),
            ]);
            cl.send_named(&b.name, &name, &doit).expect("send");
            let want = tuple(vec![
                Term::from(r),
                // [1, 2, 3] travels as a byte string (STRING_EXT), as the BEAM encodes it.
                tuple(vec![
                    atom(&name),
                    Term::ByteList(ByteList::from(vec![1, 2, 3])),
                ]),
            ]);
            match cl.recv(Duration::from_secs(10)).await {
                Some(Signal::Message { message, .. }) => {
                    assert_eq!(*message, want, "via {name}")
                }
                other => panic!("no reply via {name}: {other:?}"),
            }
        }
        cl.stop().await;
    });
    assert!(refusals(&d).is_empty(), "{}", d.log.text());
}

/// A reduced rolling upgrade over TLS: a BEAM caller casts steadily through the per-node
/// names while the daemon goes from release 1 to 2 to 3, and through the singleton at
/// each step; as over TCP (tests/rexi.rs), nothing is lost but the singleton casts that
/// release 3 drops and counts.
#[test]
fn release_switch_over_tls_loses_nothing_but_counted_singleton_casts() {
    let c = cluster("switch");
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_tls_sw", &["--ssl-dist-optfile", &c.good]);
    let out = probe_ok(
        epmd.port,
        "t_tls_swc",
        &c.good,
        "release_switch",
        &[&d.name],
    );
    assert!(
        out.contains("r1=200/200 r2=200/200 r3=0/200 dropped_counted=200"),
        "{}",
        out.text()
    );
    assert!(
        d.log
            .contains("cast to the retired singleton rexi_server dropped"),
        "{}",
        d.log.text()
    );
}

fn atom(s: &str) -> Term {
    Term::Atom(Atom::from(s))
}
fn int(i: i32) -> Term {
    Term::FixInteger(FixInteger::from(i))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}
fn list(v: Vec<Term>) -> Term {
    Term::List(List::from(v))
}

/// Certificates the good side must refuse, each named in one log line, and a good peer
/// served all along: an expired certificate, one from another CA, a client without a
/// certificate (incoming), and a server certificate for the wrong host (outgoing).
#[test]
fn bad_certificates_are_refused_with_the_reason_and_good_peers_still_served() {
    let c = cluster("refuse");
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_tls_guard", &["--ssl-dist-optfile", &c.good]);
    let cases = [
        (
            "t_tls_expired",
            &c.expired,
            "127.0.0.2",
            "its certificate has expired",
        ),
        (
            "t_tls_other_ca",
            &c.other_ca,
            "127.0.0.3",
            "not signed by our CA",
        ),
        (
            "t_tls_anon",
            &c.no_client_cert,
            "127.0.0.4",
            "sent no client certificate",
        ),
    ];
    for (i, (alive, optfile, from, why)) in cases.iter().enumerate() {
        let ping = [d.name.as_str(), "pang"];
        let out = probe_from(epmd.port, alive, optfile, Some(from), "expect_ping", &ping);
        assert!(out.contains("PING pang"), "{}", out.text());
        let lines = wait_refusals(&d, i + 1);
        let log = d.log.text();
        assert_eq!(lines.len(), i + 1, "one line per refusal:\n{log}");
        assert!(lines[i].contains(why), "{alive}: {}\n{log}", lines[i]);
        assert!(lines[i].contains(&format!("addr={from}:")), "{log}");
        // A good peer is served between refusals.
        probe_ok(
            epmd.port,
            &format!("t_tls_good{i}"),
            &c.good,
            "expect_ping",
            &[&d.name, "pong"],
        );
    }
    assert!(
        !d.log.contains("nodeup peer=t_tls_expired"),
        "{}",
        d.log.text()
    );

    // Outgoing: rexi-node refuses servers whose certificate is expired, from another CA,
    // or names the host only as an IP address, as a BEAM client does.
    for (alive, optfile, why) in [
        (
            "t_tls_srv_expired",
            &c.expired,
            "its certificate has expired",
        ),
        ("t_tls_srv_other", &c.other_ca, "not signed by our CA"),
        (
            "t_tls_srv_ip",
            &c.ip_only,
            "the certificate is not for host \"127.0.0.1\"",
        ),
    ] {
        let b = beam_target(epmd.port, alive, optfile, "nobody@127.0.0.1");
        let r = tool(epmd.port, &["ping", &b.name, "--ssl-dist-optfile", &c.good]);
        assert_eq!(r.code, 1, "{}", r.text());
        assert!(r.err.contains(why), "{alive}: {}", r.text());
        // The refused server saw our refusal too, and is not connected to us.
        assert!(!b.out.contains("nodeup"), "{}", b.out.text());
    }
    let out = probe_ok(epmd.port, "t_tls_good_end", &c.good, "ping", &[&d.name]);
    assert!(out.contains("PING pong"), "{}", out.text());
}

/// The host check agrees with the BEAM's, measured on the BEAM itself: a BEAM client
/// refuses a server whose certificate has only `IP:127.0.0.1` for `x@127.0.0.1`, so the
/// rexi-node presenting it is unreachable to BEAM nodes (and rexi-node refuses a BEAM
/// server with that certificate, in the test above).
#[test]
fn the_beam_refuses_an_ip_only_certificate_as_rexi_node_does() {
    let c = cluster("host");
    let epmd = Epmd::start();
    let d = Daemon::start(
        epmd.port,
        "t_tls_iponly",
        &["--ssl-dist-optfile", &c.ip_only],
    );
    let out = probe_ok(
        epmd.port,
        "t_tls_beamcl",
        &c.good,
        "expect_ping",
        &[&d.name, "pang"],
    );
    assert!(out.contains("PING pang"), "{}", out.text());
    // The BEAM says why with its alert; we log it as the peer refusing our certificate.
    let lines = wait_refusals(&d, 1);
    assert!(
        lines.iter().any(|l| l.contains("the peer refused")),
        "{}",
        d.log.text()
    );
    // The same certificate with DNS:127.0.0.1 is accepted by both (the test above).
}

/// Plain TCP against TLS, both ways: refused on both sides, within the handshake
/// deadline, with the reason named.
#[test]
fn plain_and_tls_nodes_refuse_each_other_cleanly() {
    let c = cluster("plain");
    let epmd = Epmd::start();
    let d = Daemon::start(epmd.port, "t_tls_only", &["--ssl-dist-optfile", &c.good]);
    // A plain BEAM node dialing the TLS rexi-node.
    let t = Instant::now();
    Erl::run_ok(
        epmd.port,
        "t_plain_e",
        "expect_ping",
        &[&d.name, "pang"],
        Duration::from_secs(30),
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    let lines = wait_refusals(&d, 1);
    assert!(lines[0].contains("does not speak TLS"), "{}", lines[0]);
    // A plain rexi-node tool dialing a TLS BEAM node.
    let b = beam_target(epmd.port, "t_tls_beam", &c.good, "nobody@127.0.0.1");
    let r = tool(epmd.port, &["ping", &b.name]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("the peer speaks TLS"), "{}", r.text());
    assert!(r.took < Duration::from_secs(8), "took {:?}", r.took);
    // A TLS tool dialing a plain rexi-node, and the plain daemon's view of it.
    let p = Daemon::start(epmd.port, "t_plain_rx", &[]);
    let r = tool(epmd.port, &["ping", &p.name, "--ssl-dist-optfile", &c.good]);
    assert_eq!(r.code, 1, "{}", r.text());
    assert!(r.err.contains("TLS"), "{}", r.text());
    assert!(r.took < Duration::from_secs(8), "took {:?}", r.took);
    let lines = wait_refusals(&p, 1);
    assert!(lines[0].contains("the peer speaks TLS"), "{}", lines[0]);
    // Both still serve their own kind.
    probe_ok(
        epmd.port,
        "t_tls_ok",
        &c.good,
        "expect_ping",
        &[&d.name, "pong"],
    );
    Erl::run_ok(
        epmd.port,
        "t_plain_ok",
        "expect_ping",
        &[&p.name, "pong"],
        Duration::from_secs(30),
    );
}

/// Bad TLS options stop the command at start, naming the option or file.
#[test]
fn unsupported_options_and_missing_files_stop_at_start() {
    let pki = Pki::new("opts");
    let bad = pki.write(
        "bad.conf",
        "[{server, [{certfile, \"x.pem\"}, {ciphers, []}]}].",
    );
    let missing = pki.write(
        "missing.conf",
        "[{server, [{certfile, \"/nonexistent/x.pem\"}]}, {client, []}].",
    );
    for (file, needle) in [
        (&bad, "option ciphers is not supported"),
        (&missing, "/nonexistent/x.pem"),
    ] {
        let r = rexi_node(
            &[
                "run",
                "--name",
                "t_tls_bad@127.0.0.1",
                "--cookie",
                COOKIE,
                "--ssl-dist-optfile",
                &file.display().to_string(),
            ],
            &[("ERL_EPMD_PORT", "1".to_string())],
            None,
        );
        assert_ne!(r.code, 0, "{}", r.text());
        assert!(r.err.contains(needle), "{}", r.text());
    }
    let r = rexi_node(&["ping", "x@127.0.0.1", "--tls-cert", "a.pem"], &[], None);
    assert_ne!(r.code, 0, "{}", r.text());
    assert!(r.err.contains("--tls-key"), "{}", r.text());
}
