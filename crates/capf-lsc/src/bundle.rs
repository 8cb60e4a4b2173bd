//! The one loader of a certificate with its private key: a PEM bundle (one file, or a
//! certificate file and a key file concatenated) or a DER certificate. `Issuer::from_pem`
//! and a CAPF certificate check read their input through it, so what one accepts the other
//! accepts too.

use der::Decode;
use x509_cert::Certificate;

use crate::issue::pem_blocks;
use crate::pem::is_pem;
use crate::{Error, IssuerKey};

/// A certificate and, when the input holds one, its PKCS#8 private key.
#[derive(Debug)]
pub struct CertificateAndKey {
    /// The first `CERTIFICATE` of the input (with a chain, the leaf or issuer comes first).
    pub certificate: Certificate,
    /// The first PKCS#8 `PRIVATE KEY` of the input.
    pub key: Option<IssuerKey>,
}

impl CertificateAndKey {
    /// Reads PEM text holding a `CERTIFICATE` and optionally a PKCS#8 `PRIVATE KEY`, in any
    /// order; other blocks (a chain's further certificates, a request) are ignored.
    ///
    /// # Errors
    /// [`Error::Pem`] for a block that does not decode, [`Error::UnexpectedPemLabel`] for a
    /// private key in another format than PKCS#8 (it would be ignored silently otherwise),
    /// [`Error::MissingPemBlock`] without a certificate, else as [`IssuerKey::from_pkcs8_der`].
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let mut certificate = None;
        let mut key = None;
        for block in pem_blocks(pem) {
            let (label, der) =
                der::pem::decode_vec(block.as_bytes()).map_err(|source| Error::Pem {
                    what: "issuer PEM block",
                    source,
                })?;
            let der = der::zeroize::Zeroizing::new(der);
            match label {
                "CERTIFICATE" if certificate.is_none() => {
                    certificate = Some(
                        Certificate::from_der(&der)
                            .map_err(Error::from_der("issuer certificate"))?,
                    );
                }
                "PRIVATE KEY" if key.is_none() => key = Some(IssuerKey::from_pkcs8_der(&der)?),
                "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                    return Err(Error::UnexpectedPemLabel {
                        expected: "PRIVATE KEY",
                        found: label.to_owned(),
                    });
                }
                _ => {}
            }
        }
        let certificate = certificate.ok_or(Error::MissingPemBlock {
            label: "CERTIFICATE",
        })?;
        Ok(CertificateAndKey { certificate, key })
    }

    /// Reads `input` as PEM (see [`CertificateAndKey::from_pem`]) or, when it is not PEM, as
    /// one DER certificate (without a key).
    ///
    /// # Errors
    /// As [`CertificateAndKey::from_pem`]; [`Error::Der`] for DER that does not decode or
    /// PEM that is not UTF-8.
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, Error> {
        if is_pem(input) {
            let text = core::str::from_utf8(input).map_err(|_| Error::UnexpectedPemLabel {
                expected: "CERTIFICATE",
                found: "non-UTF-8 text".to_owned(),
            })?;
            Self::from_pem(text)
        } else {
            Ok(CertificateAndKey {
                certificate: Certificate::from_der(input)
                    .map_err(Error::from_der("DER certificate"))?,
                key: None,
            })
        }
    }

    /// The key, which an issuer needs.
    ///
    /// # Errors
    /// [`Error::MissingPemBlock`] when the input held no private key.
    pub fn require_key(&self) -> Result<&IssuerKey, Error> {
        self.key.as_ref().ok_or(Error::MissingPemBlock {
            label: "PRIVATE KEY",
        })
    }
}
