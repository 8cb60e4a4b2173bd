//! PEM and DER in and out.

use der::pem::{LineEnding, PemLabel};
use der::{Decode, DecodePem, Encode, EncodePem};
use x509_cert::Certificate;

use crate::Error;
use crate::keys::PhonePublicKey;

pub(crate) fn is_pem(input: &[u8]) -> bool {
    input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|start| input[start..].starts_with(b"-----BEGIN "))
}

/// A certificate from PEM (`CERTIFICATE`) or DER, whichever `input` is.
///
/// # Errors
/// [`Error::Der`] naming what failed.
pub fn certificate_from_pem_or_der(input: &[u8]) -> Result<Certificate, Error> {
    if is_pem(input) {
        Certificate::from_pem(input).map_err(Error::from_der("PEM certificate"))
    } else {
        Certificate::from_der(input).map_err(Error::from_der("DER certificate"))
    }
}

/// Every certificate of a PEM bundle (a chain), in order.
///
/// # Errors
/// [`Error::Der`] for a malformed entry.
pub fn certificates_from_pem(input: &[u8]) -> Result<Vec<Certificate>, Error> {
    Certificate::load_pem_chain(input).map_err(Error::from_der("PEM certificate chain"))
}

/// A certificate as PEM.
///
/// # Errors
/// [`Error::Der`] if encoding fails.
pub fn certificate_to_pem(cert: &Certificate) -> Result<String, Error> {
    cert.to_pem(LineEnding::LF)
        .map_err(Error::from_der("PEM certificate"))
}

/// A certificate as DER.
///
/// # Errors
/// [`Error::Der`] if encoding fails.
pub fn certificate_to_der(cert: &Certificate) -> Result<Vec<u8>, Error> {
    cert.to_der().map_err(Error::from_der("DER certificate"))
}

/// A PKCS#10 request as PEM (`CERTIFICATE REQUEST`).
///
/// # Errors
/// [`Error::Der`] if encoding fails.
pub fn csr_to_pem(csr: &x509_cert::request::CertReq) -> Result<String, Error> {
    csr.to_pem(LineEnding::LF)
        .map_err(Error::from_der("PEM certificate request"))
}

/// A phone public key from a PEM `PUBLIC KEY` or DER SubjectPublicKeyInfo.
///
/// # Errors
/// As [`PhonePublicKey::from_der`].
pub fn public_key_from_pem_or_der(input: &[u8]) -> Result<PhonePublicKey, Error> {
    if is_pem(input) {
        let text = core::str::from_utf8(input).map_err(|_| Error::UnexpectedPemLabel {
            expected: spki::SubjectPublicKeyInfoOwned::PEM_LABEL,
            found: "non-UTF-8 text".to_owned(),
        })?;
        PhonePublicKey::from_pem(text)
    } else {
        PhonePublicKey::from_der(input)
    }
}
