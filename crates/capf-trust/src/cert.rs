//! A parsed certificate with what the rules look at, and PEM/DER bundle parsing.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::Error;

/// Most certificates one upload may carry; a CA chain is a handful, so more is a mistake.
pub const MAX_BUNDLE_CERTIFICATES: usize = 64;

/// Largest certificate accepted, in DER bytes; real ones are 1-3 KiB.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// The SHA-256 fingerprint of a certificate's DER encoding: its identity in a store and its
/// file name on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// 64 hex digits, optionally separated by `:` (as `openssl x509 -fingerprint` prints).
    fn from_str(s: &str) -> Result<Self, Error> {
        let err = || Error::InvalidFingerprint { text: s.to_owned() };
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| err())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| err())?;
        }
        Ok(Self(out))
    }
}

/// A parsed certificate, kept with its DER encoding and fingerprint.
#[derive(Clone, Debug)]
pub struct Cert {
    cert: Certificate,
    der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Cert {}

impl Cert {
    /// Parses one DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(Error::CertificateTooLarge { len: der.len() });
        }
        let cert = Certificate::from_der(der).map_err(Error::CertificateDer)?;
        Ok(Self {
            cert,
            der: der.to_vec(),
            fingerprint: Fingerprint::of(der),
        })
    }

    /// Wraps an already parsed certificate.
    pub fn from_certificate(cert: Certificate) -> Result<Self, Error> {
        let der = cert.to_der().map_err(Error::CertificateDer)?;
        let fingerprint = Fingerprint::of(&der);
        Ok(Self {
            cert,
            der,
            fingerprint,
        })
    }

    /// Parses one PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let (label, der) = der::pem::decode_vec(pem).map_err(Error::Pem)?;
        if label != "CERTIFICATE" {
            return Err(Error::NotACertificate {
                label: label.to_owned(),
            });
        }
        Self::from_der(&der)
    }

    /// The x509-cert certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The SHA-256 fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate().issuer().to_string()
    }

    /// The subject's first Common Name, if any.
    pub fn common_name(&self) -> Option<String> {
        common_name(self.cert.tbs_certificate().subject())
    }

    /// The issuer's first Common Name, if any.
    pub fn issuer_common_name(&self) -> Option<String> {
        common_name(self.cert.tbs_certificate().issuer())
    }

    /// Whether subject and issuer are the same name (a root, or a self-issued CA certificate).
    pub fn is_self_issued(&self) -> bool {
        let tbs = self.cert.tbs_certificate();
        tbs.subject() == tbs.issuer()
    }

    /// Whether `self` names `issuer` as its issuer.
    pub fn names_issuer(&self, issuer: &Cert) -> bool {
        self.cert.tbs_certificate().issuer() == issuer.cert.tbs_certificate().subject()
    }

    /// notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_before
            .to_system_time()
    }

    /// notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }

    /// The BasicConstraints extension, if present.
    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, Error> {
        self.extension("BasicConstraints")
    }

    /// The KeyUsage extension, if present.
    pub fn key_usage(&self) -> Result<Option<KeyUsage>, Error> {
        self.extension("KeyUsage")
    }

    /// Extension `T`, named `name` in errors, if present.
    fn extension<'a, T>(&'a self, name: &'static str) -> Result<Option<T>, Error>
    where
        T: Decode<'a, Error = der::Error> + der::oid::AssociatedOid,
    {
        self.cert
            .tbs_certificate()
            .get_extension::<T>()
            .map(|found| found.map(|(_, v)| v))
            .map_err(|source| Error::Extension {
                extension: name,
                source,
            })
    }

    /// Whether BasicConstraints says CA:TRUE (false when absent or malformed).
    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints(), Ok(Some(bc)) if bc.ca)
    }

    /// The certificate as a PEM `CERTIFICATE` block.
    pub fn to_pem(&self) -> Result<String, Error> {
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &self.der)
            .map_err(Error::Pem)
    }
}

/// The first CN of a name as text.
pub(crate) fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    name.common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
}

/// Parses every certificate of `input`: PEM text with any number of `CERTIFICATE` blocks (text
/// between blocks, such as openssl's `subject=` lines, is allowed), or one DER certificate.
/// Returns one result per certificate found, in order, so one bad block does not hide the
/// others; a PEM block of another kind (a private key, say) is an error, not skipped.
pub fn parse_bundle(input: &[u8]) -> Result<Vec<Result<Cert, Error>>, Error> {
    if input.first() == Some(&0x30) {
        return Ok(vec![Cert::from_der(input)]);
    }
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        // The block runs to the end of its "-----END ...-----" line.
        let Some(end) = find(block, END) else {
            out.push(Err(Error::UnterminatedPem { index: out.len() }));
            break;
        };
        let after_end = &block[end + END.len()..];
        let line_end = find(after_end, b"-----").map_or(after_end.len(), |i| i + 5);
        let len = end + END.len() + line_end;
        out.push(Cert::from_pem(&block[..len]));
        if out.len() > MAX_BUNDLE_CERTIFICATES {
            return Err(Error::TooManyCertificates {
                max: MAX_BUNDLE_CERTIFICATES,
            });
        }
        rest = &block[len..];
    }
    if out.is_empty() {
        return Err(Error::NoCertificate);
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = Fingerprint::of(b"abc");
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        let colons: String = fp
            .to_string()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), fp);
        assert!("abc".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn rejects_input_without_certificate() {
        assert!(matches!(parse_bundle(b"hello"), Err(Error::NoCertificate)));
        assert!(matches!(parse_bundle(b""), Err(Error::NoCertificate)));
    }

    #[test]
    fn reports_non_certificate_block_and_unterminated_block() {
        let input = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAAAA";
        let got = parse_bundle(input).unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(got[0], Err(Error::NotACertificate { .. })));
        assert!(matches!(got[1], Err(Error::UnterminatedPem { index: 1 })));
    }

    #[test]
    fn reports_garbage_der() {
        let got = parse_bundle(&[0x30, 0x03, 0x02, 0x01]).unwrap();
        assert!(matches!(got[0], Err(Error::CertificateDer(_))));
    }
}
