//! TLS distribution, as the BEAM's `-proto_dist inet_tls` speaks it: the TCP connection
//! is wrapped in TLS first, then the usual distribution handshake and traffic run inside
//! it; epmd is asked for the port as always.
//!
//! * [`optfile`]: the BEAM's `-ssl_dist_optfile` format, so one file serves the cluster;
//! * [`verify`] and [`host`]: the server certificate checked as a BEAM client checks it;
//! * this file: both sides' rustls configurations (ring for the cryptography: no OpenSSL,
//!   no C toolchain beyond what ring itself builds), the handshakes, and what an operator
//!   reads when one fails.
//!
//! Certificates and keys are read once, at start: a missing or unreadable file stops the
//! node with the file named, rather than failing every connection later.

pub mod host;
pub mod optfile;
pub mod verify;

use optfile::{SideOptions, TlsOptions, Verify, Version};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// Both sides of TLS distribution, ready to wrap connections.
pub struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    summary: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)
    }
}

impl Tls {
    /// Mutual TLS with one certificate, key and CA for both sides.
    pub fn mutual(cert: &Path, key: &Path, cacert: &Path) -> Result<Tls, String> {
        let side = SideOptions::mutual(cert.into(), key.into(), cacert.into());
        Tls::new(&TlsOptions {
            server: side.clone(),
            client: side,
        })
    }

    /// Builds both configurations from the option file's contents.
    pub fn new(o: &TlsOptions) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = server_config(&o.server, provider.clone())
            .map_err(|e| format!("TLS server options: {e}"))?;
        let client =
            client_config(&o.client, provider).map_err(|e| format!("TLS client options: {e}"))?;
        let summary = format!(
            "TLS distribution: as a server {}, as a client {}",
            side_summary(&o.server, true),
            side_summary(&o.client, false)
        );
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            summary,
        })
    }

    /// One line for the start-up log: versions and what is checked on each side.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Whether running with these options deserves a warning (a side that checks nothing).
    pub fn warnings(o: &TlsOptions) -> Vec<String> {
        let mut w = Vec::new();
        if o.client.verify == Verify::None {
            w.push("client {verify, verify_none}: servers' certificates are not checked; any node that answers is trusted".to_string());
        }
        if o.server.verify == Verify::None {
            w.push("server {verify, verify_none}: clients are not asked for a certificate; only the cookie keeps them out".to_string());
        }
        if let Some(sni) = &o.client.server_name_indication {
            w.push(format!(
                "client {{server_name_indication, {sni}}} has no effect on distribution \
                 (the BEAM ignores it too): the server's certificate is checked against the \
                 host part of the node name dialed"
            ));
        }
        w
    }

    /// The client side on a fresh connection to a node on `host` (the host part of its
    /// name, which its certificate must name). No deadline here: the caller's handshake
    /// deadline covers it.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host:?} is not a host name TLS can check"))?;
        self.connector
            .connect(name, tcp)
            .await
            .map(TlsStream::from)
            .map_err(|e| describe(&e))
    }

    /// The server side on an accepted connection.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        self.acceptor
            .accept(tcp)
            .await
            .map(TlsStream::from)
            .map_err(|e| describe(&e))
    }
}

fn side_summary(s: &SideOptions, server: bool) -> String {
    let versions = match s.versions.as_slice() {
        [] => "TLS 1.2 and 1.3".to_string(),
        v => v
            .iter()
            .map(|v| match v {
                Version::Tls12 => "TLS 1.2",
                Version::Tls13 => "TLS 1.3",
            })
            .collect::<Vec<_>>()
            .join(" and "),
    };
    let check = match (s.verify, server) {
        (Verify::None, _) => "checking no certificate",
        (Verify::Peer, true) if s.fail_if_no_peer_cert => {
            "requiring a client certificate from our CA"
        }
        (Verify::Peer, true) => "checking a client certificate when one is sent",
        (Verify::Peer, false) => "checking the server's chain and host",
    };
    format!("{versions}, {check}")
}

fn versions(v: &[Version]) -> Vec<&'static SupportedProtocolVersion> {
    if v.is_empty() {
        return vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    v.iter()
        .map(|v| match v {
            Version::Tls12 => &rustls::version::TLS12,
            Version::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

fn server_config(
    s: &SideOptions,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<ServerConfig, String> {
    let certfile = s
        .certfile
        .as_ref()
        .ok_or("a certfile is needed: a TLS server must present a certificate")?;
    let (chain, key) = identity(certfile, s.keyfile.as_ref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&s.versions))
        .map_err(|e| e.to_string())?;
    let builder = match s.verify {
        Verify::None => builder.with_no_client_auth(),
        Verify::Peer => {
            let roots = roots(s.cacertfile.as_ref())?;
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if s.fail_if_no_peer_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", certfile.display()))
}

fn client_config(
    s: &SideOptions,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<ClientConfig, String> {
    let check = match s.verify {
        Verify::None => verify::ServerCheck::None,
        Verify::Peer => verify::ServerCheck::Peer {
            roots: roots(s.cacertfile.as_ref())?,
        },
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&s.versions))
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verify::BeamServerVerifier::new(
            check, provider,
        )));
    let config = match &s.certfile {
        Some(certfile) => {
            let (chain, key) = identity(certfile, s.keyfile.as_ref())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", certfile.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The certificate chain (ours first) and its private key; the key is looked for in the
/// certificate file when no keyfile is given, as OTP does.
fn identity(
    certfile: &PathBuf,
    keyfile: Option<&PathBuf>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = certificates(certfile)?;
    let keyfile = keyfile.unwrap_or(certfile);
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
        format!(
            "keyfile {}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1): {e}",
            keyfile.display()
        )
    })?;
    Ok((chain, key))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn roots(cacertfile: Option<&PathBuf>) -> Result<Arc<RootCertStore>, String> {
    let path = cacertfile.ok_or(
        "{verify, verify_peer} needs a cacertfile: the CA that signs the peers' certificates",
    )?;
    let mut store = RootCertStore::empty();
    for c in certificates(path)? {
        store
            .add(c)
            .map_err(|e| format!("cacertfile {}: {e}", path.display()))?;
    }
    Ok(Arc::new(store))
}

/// What a failed TLS handshake means, for an operator: the reasons rustls reports, said
/// in terms of the certificates and options involved.
pub fn describe(e: &std::io::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                "the peer closed the connection during the TLS \
                handshake (it may not run TLS distribution, or it refused us)"
                    .into()
            }
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        E::InvalidCertificate(c) => {
            let why = match c {
                C::Expired | C::ExpiredContext { .. } => {
                    format!("its certificate has expired ({tls})")
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    format!("its certificate is not valid yet ({tls})")
                }
                C::UnknownIssuer => "its certificate is not signed by our CA (cacertfile)".into(),
                C::Other(o) => o.to_string(),
                _ => tls.to_string(),
            };
            format!("the peer's certificate was refused: {why}")
        }
        E::NoCertificatesPresented => {
            "the peer sent no client certificate, and this node requires one \
             (fail_if_no_peer_cert)"
                .into()
        }
        E::AlertReceived(a) => {
            let why = match a {
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateExpired
                | A::CertificateUnknown => "our certificate",
                A::CertificateRequired => "the absence of a client certificate from us",
                _ => "the TLS handshake",
            };
            format!("the peer refused {why} (TLS alert {a:?})")
        }
        E::InvalidMessage(_) => "the peer does not speak TLS here (a plain-TCP distribution \
             node? both sides must use TLS distribution)"
            .into(),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Whether an I/O error is TLS reporting a failure (as opposed to the socket itself).
pub fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<rustls::Error>())
}
