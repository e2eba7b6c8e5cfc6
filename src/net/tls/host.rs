//! The host check a BEAM client makes on a distribution server's certificate, reproduced.
//!
//! A BEAM node dialing `name@HOST` over `inet_tls` passes `HOST` as the TLS server name, and
//! OTP's ssl checks the server's certificate against it as a DNS identity, whatever HOST
//! looks like (measured with OTP 25; docs/tls.md):
//!
//! * When the certificate has a subjectAltName extension with any entry, HOST must equal
//!   one of its `dNSName` entries, ASCII case ignored. No wildcard is expanded there, and
//!   an `iPAddress` entry never matches, so a node named `x@127.0.0.1` needs
//!   `DNS:127.0.0.1`; `IP:127.0.0.1` alone is refused.
//! * Without subjectAltName, HOST is compared with the subject's common names: equal, or
//!   matching a wildcard in the leftmost label (`*.example.com`, `w*.example.com`).
//!
//! rustls' own name check (webpki) reads `127.0.0.1` as an IP address and would accept
//! exactly the certificate the BEAM refuses, so the client verifier
//! ([`super::verify`]) checks the chain with webpki and the name here. Only the two
//! fields needed are read from the DER, by the small reader below: the chain has already
//! been verified, so the bytes are a certificate our CA signed.

/// Why HOST does not match the certificate, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub host: String,
    /// What the certificate presents, e.g. `DNS:a.example`, `IP:127.0.0.1`, `CN=a`.
    pub presented: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the certificate is not for host {:?}: it presents [{}]; the host part of the \
             node name must be a DNS entry of its subjectAltName (DNS:{}), as the BEAM checks",
            self.host,
            self.presented.join(", "),
            self.host
        )
    }
}

/// Checks `host` against the end-entity certificate `der` the way OTP's ssl does for a
/// distribution connection. A certificate that cannot be read counts as not matching.
pub fn check(der: &[u8], host: &str) -> Result<(), Mismatch> {
    let names = Names::read(der).unwrap_or_default();
    let host_lc = host.to_ascii_lowercase();
    let ok = if names.alt.is_empty() {
        names.common.iter().any(|cn| cn_matches(&host_lc, cn))
    } else {
        names
            .alt
            .iter()
            .any(|n| matches!(n, AltName::Dns(d) if d.to_ascii_lowercase() == host_lc))
    };
    if ok {
        return Ok(());
    }
    let mut presented: Vec<String> = names.alt.iter().map(AltName::to_string).collect();
    if names.alt.is_empty() {
        presented.extend(names.common.iter().map(|c| format!("CN={c}")));
    }
    Err(Mismatch {
        host: host.to_string(),
        presented,
    })
}

/// A common name against the host: equal (and without `*`), or a wildcard pattern in the
/// leftmost label with the other labels equal (empty labels ignored, as OTP tokenizes).
fn cn_matches(host: &str, cn: &str) -> bool {
    let cn = cn.to_ascii_lowercase();
    if host == cn {
        return !host.contains('*');
    }
    let mut h = host.split('.').filter(|l| !l.is_empty());
    let mut p = cn.split('.').filter(|l| !l.is_empty());
    let (Some(h1), Some(p1)) = (h.next(), p.next()) else {
        return false;
    };
    wildcard_label(h1, p1) && h.eq(p)
}

/// One label against a pattern with at most one `*` (which may match nothing); the
/// label itself must not contain `*`.
fn wildcard_label(label: &str, pattern: &str) -> bool {
    let Some(star) = pattern.find('*') else {
        return label == pattern;
    };
    let (before, after) = (&pattern[..star], &pattern[star + 1..]);
    !after.contains('*')
        && !label.contains('*')
        && label.len() >= before.len() + after.len()
        && label.starts_with(before)
        && label.ends_with(after)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AltName {
    Dns(String),
    Ip(Vec<u8>),
    /// Any other kind of entry (URI, email, ...): it makes the extension non-empty.
    Other(u8),
}

impl std::fmt::Display for AltName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AltName::Dns(d) => write!(f, "DNS:{d}"),
            AltName::Ip(b) if b.len() == 4 => {
                write!(f, "IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            AltName::Ip(b) if b.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                write!(f, "IP:{}", std::net::Ipv6Addr::from(a))
            }
            AltName::Ip(_) => f.write_str("IP:?"),
            AltName::Other(tag) => write!(f, "other name (tag {:#x})", tag),
        }
    }
}

/// The names a certificate presents: subjectAltName entries and subject common names.
#[derive(Debug, Default)]
struct Names {
    alt: Vec<AltName>,
    common: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT` around the extensions of a v3 certificate.
const EXTENSIONS: u8 = 0xa3;
/// subjectAltName, 2.5.29.17.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// commonName, 2.5.4.3.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// GeneralName choices, `[2] IMPLICIT IA5String` and `[7] IMPLICIT OCTET STRING`.
const GN_DNS: u8 = 0x82;
const GN_IP: u8 = 0x87;

impl Names {
    /// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature };
    /// tbsCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
    /// issuer, validity, subject, subjectPublicKeyInfo, [1], [2], [3] extensions }.
    fn read(der: &[u8]) -> Option<Names> {
        let cert = Der(der).expect(SEQUENCE)?;
        let mut tbs = Der(Der(cert).expect(SEQUENCE)?);
        let mut names = Names::default();
        let (tag, _) = tbs.next()?;
        if tag == 0xa0 {
            tbs.next()?; // serialNumber after an explicit version
        }
        tbs.next()?; // signature algorithm
        tbs.next()?; // issuer
        tbs.next()?; // validity
        let subject = tbs.expect(SEQUENCE)?;
        names.common = common_names(subject)?;
        tbs.next()?; // subjectPublicKeyInfo
        while let Some((tag, body)) = tbs.next() {
            if tag == EXTENSIONS {
                names.alt = alt_names(Der(body).expect(SEQUENCE)?)?;
            }
        }
        Some(names)
    }
}

/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }.
fn common_names(subject: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rdns = Der(subject);
    while let Some(set) = rdns.next_tagged(SET)? {
        let mut atvs = Der(set);
        while let Some(atv) = atvs.next_tagged(SEQUENCE)? {
            let mut atv = Der(atv);
            if atv.expect(OID)? == OID_CN {
                let (_, value) = atv.next()?;
                out.push(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    Some(out)
}

/// Extensions ::= SEQUENCE OF SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }; the subjectAltName's value is a SEQUENCE OF GeneralName.
fn alt_names(extensions: &[u8]) -> Option<Vec<AltName>> {
    let mut exts = Der(extensions);
    while let Some(ext) = exts.next_tagged(SEQUENCE)? {
        let mut ext = Der(ext);
        if ext.expect(OID)? != OID_SAN {
            continue;
        }
        let (mut tag, mut value) = ext.next()?;
        if tag == BOOLEAN {
            (tag, value) = ext.next()?;
        }
        if tag != OCTET_STRING {
            return None;
        }
        let mut general = Der(Der(value).expect(SEQUENCE)?);
        let mut out = Vec::new();
        while let Some((tag, body)) = general.next() {
            out.push(match tag {
                GN_DNS => AltName::Dns(String::from_utf8_lossy(body).into_owned()),
                GN_IP => AltName::Ip(body.to_vec()),
                other => AltName::Other(other),
            });
        }
        return Some(out);
    }
    Some(Vec::new())
}

/// A cursor over DER elements (tag, definite length, contents); `None` on anything
/// malformed. Only single-byte tags occur in the fields read here.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let (body, tail) = rest.split_at(len);
        self.0 = tail;
        Some((tag, body))
    }

    /// The next element's contents, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, body) if t == tag => Some(body),
            _ => None,
        }
    }

    /// `Some(None)` at the end; `None` when malformed or of another tag.
    fn next_tagged(&mut self, tag: u8) -> Option<Option<&'a [u8]>> {
        if self.0.is_empty() {
            return Some(None);
        }
        self.expect(tag).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: Vec<rcgen::SanType>, cn: Option<&str>) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = sans;
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, cn.to_string());
        }
        let key = rcgen::KeyPair::generate().expect("key");
        p.self_signed(&key).expect("cert").der().to_vec()
    }

    fn dns(s: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(s.try_into().expect("dns name"))
    }

    #[test]
    fn the_host_is_a_dns_identity_even_when_it_looks_like_an_ip() {
        let ip = rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip"));
        let both = cert(vec![dns("127.0.0.1"), ip.clone()], Some("x"));
        assert_eq!(check(&both, "127.0.0.1"), Ok(()));
        let only_ip = cert(vec![ip], Some("127.0.0.1"));
        let e = check(&only_ip, "127.0.0.1").expect_err("IP SAN only");
        assert_eq!(e.presented, vec!["IP:127.0.0.1".to_string()]);
        // With a subjectAltName present, the common name is not looked at.
        assert!(check(&only_ip, "127.0.0.1").is_err());
    }

    #[test]
    fn dns_entries_match_exactly_ignoring_ascii_case_and_never_as_wildcards() {
        let c = cert(vec![dns("Node1.Example.com"), dns("*.example.com")], None);
        assert_eq!(check(&c, "node1.example.COM"), Ok(()));
        assert!(check(&c, "node2.example.com").is_err());
        assert!(check(&c, "node1.example.com.").is_err());
    }

    #[test]
    fn without_alt_names_the_common_name_is_used_with_a_leftmost_wildcard() {
        let plain = cert(vec![], Some("db1.example.com"));
        assert_eq!(check(&plain, "DB1.example.com"), Ok(()));
        assert!(check(&plain, "db2.example.com").is_err());
        let wild = cert(vec![], Some("db*.example.com"));
        assert_eq!(check(&wild, "db7.example.com"), Ok(()));
        assert_eq!(check(&wild, "db.example.com"), Ok(()));
        assert!(check(&wild, "x.db7.example.com").is_err());
        assert!(check(&wild, "web.example.com").is_err());
        let e = check(&wild, "web.example.com").expect_err("no match");
        assert_eq!(e.presented, vec!["CN=db*.example.com".to_string()]);
    }

    #[test]
    fn garbage_matches_nothing() {
        assert!(check(b"\x30\x82\xff", "a").is_err());
        assert!(check(&[], "a").is_err());
    }
}
