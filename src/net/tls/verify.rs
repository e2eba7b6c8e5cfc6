//! How we check a distribution server's certificate when we dial it: the chain with
//! webpki (our CA, validity dates, the serverAuth purpose when the certificate restricts
//! purposes), then the host the way the BEAM checks it ([`super::host`]), not the way
//! webpki would. Checking a client's certificate needs nothing of our own: the BEAM
//! checks only the chain there, which rustls' `WebPkiClientVerifier` does.

use super::host;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::SignatureScheme;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore};
use std::sync::Arc;

/// What the client checks of the server's certificate.
#[derive(Debug)]
pub enum ServerCheck {
    /// `verify_peer`: the chain to `roots`, and the host.
    Peer { roots: Arc<RootCertStore> },
    /// `verify_none`: any certificate (the handshake signature is still checked, so the
    /// peer holds the key of the certificate it shows).
    None,
}

#[derive(Debug)]
pub struct BeamServerVerifier {
    check: ServerCheck,
    provider: Arc<CryptoProvider>,
}

impl BeamServerVerifier {
    pub fn new(check: ServerCheck, provider: Arc<CryptoProvider>) -> BeamServerVerifier {
        BeamServerVerifier { check, provider }
    }
}

/// The host a server name stands for, as text: an IP address is the node name's host
/// written as an address, which the BEAM still checks as a DNS name.
fn host_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

impl ServerCertVerifier for BeamServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ServerCheck::Peer { roots } = &self.check else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        host::check(end_entity.as_ref(), &host_text(server_name)).map_err(|m| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(HostMismatch(
                m,
            )))))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// [`host::Mismatch`] as an error rustls can carry.
#[derive(Debug)]
pub struct HostMismatch(pub host::Mismatch);

impl std::fmt::Display for HostMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HostMismatch {}
