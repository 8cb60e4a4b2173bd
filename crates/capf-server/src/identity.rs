//! The CAPF certificate and key: loaded once, checked, served over TLS, replaced on change.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use capf_lsc::der::Encode;
use capf_lsc::x509_cert::Certificate;
use capf_lsc::{
    Issuer, IssuerKey, LscSigner, SignerBackend, capf_certificate_problems, certificates_from_pem,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// What the server presents and signs with: the CAPF certificate (and any chain above it),
/// its key as an LSC issuer, and the TLS configuration that serves them.
#[derive(Debug)]
pub struct CapfIdentity {
    /// The CAPF certificate.
    pub certificate: Certificate,
    /// The TLS server configuration (no client certificate: phones prove who they are inside
    /// the protocol, spec rule T4).
    pub tls: Arc<rustls::ServerConfig>,
    pub(crate) issuer: Option<Issuer>,
    /// The legacy listener's OpenSSL context, `None` for a key that is not RSA.
    #[cfg(feature = "legacy-tls")]
    pub(crate) legacy_tls: Option<openssl::ssl::SslContext>,
    /// The certificate and key files as loaded, so a reload can tell whether they changed.
    pub(crate) files: LoadedFiles,
}

/// The contents of the CAPF certificate and key files. The key is a secret: `Debug` shows only
/// its length.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LoadedFiles {
    pub(crate) certificate_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl std::fmt::Debug for LoadedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFiles")
            .field("certificate_pem_len", &self.certificate_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl CapfIdentity {
    /// Loads the CAPF certificate file (PEM; the CAPF certificate first, then any chain) and its
    /// PKCS#8 key file, and checks them at `now`: the key must match, and the certificate must
    /// pass the CAPF certificate profile (from 14SU2 phones fail TLS without it).
    ///
    /// # Errors
    /// [`Error::Read`], [`Error::Identity`], [`Error::CapfProfile`] or [`Error::Tls`], naming
    /// the file.
    pub fn load(certificate: &Path, key: &Path, now: SystemTime) -> Result<Self, Error> {
        Self::load_with(certificate, key, now, None)
    }

    /// [`CapfIdentity::load`], the LSCs signed by `signer` (`None`: the default backend).
    ///
    /// # Errors
    /// As [`CapfIdentity::load`]; [`Error::Identity`] when `signer` cannot sign with the key.
    pub fn load_with(
        certificate: &Path,
        key: &Path,
        now: SystemTime,
        signer: Option<SignerBackend>,
    ) -> Result<Self, Error> {
        let cert_pem = std::fs::read(certificate).map_err(|source| Error::Read {
            path: certificate.to_owned(),
            source,
        })?;
        let key_pem = std::fs::read_to_string(key).map_err(|source| Error::Read {
            path: key.to_owned(),
            source,
        })?;
        let identity_error = |source| Error::Identity {
            path: certificate.to_owned(),
            source,
        };
        let chain = certificates_from_pem(&cert_pem).map_err(identity_error)?;
        let Some(capf) = chain.first().cloned() else {
            return Err(identity_error(capf_lsc::Error::MissingPemBlock {
                label: "CERTIFICATE",
            }));
        };
        let key_error = |source| Error::Identity {
            path: key.to_owned(),
            source,
        };
        let mut issuer_key = IssuerKey::from_pkcs8_pem(&key_pem).map_err(key_error)?;
        if let Some(backend) = signer {
            issuer_key = issuer_key.with_backend(backend).map_err(key_error)?;
        }
        let problems = capf_certificate_problems(&capf, Some(issuer_key.public_key()), now)
            .map_err(identity_error)?;
        if !problems.is_empty() {
            return Err(Error::CapfProfile {
                path: certificate.to_owned(),
                problems,
            });
        }
        let key_der = issuer_key.to_pkcs8_der().map_err(identity_error)?;
        let mut ders = Vec::with_capacity(chain.len());
        for cert in &chain {
            let der = cert.to_der().map_err(|source| {
                identity_error(capf_lsc::Error::Der {
                    what: "certificate",
                    source,
                })
            })?;
            ders.push(CertificateDer::from(der));
        }
        #[cfg(feature = "legacy-tls")]
        let legacy_tls = {
            let chain: Vec<Vec<u8>> = ders.iter().map(|d| d.to_vec()).collect();
            crate::legacy_tls::context(&chain, key_der.as_bytes()).map_err(|source| {
                Error::LegacyTls {
                    path: certificate.to_owned(),
                    source,
                }
            })?
        };
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(tls_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    ders,
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.as_bytes().to_vec())),
                )
            })
            .map_err(|source| Error::Tls {
                path: certificate.to_owned(),
                source,
            })?;
        let issuer = Issuer::new(capf.clone(), Box::new(issuer_key)).map_err(identity_error)?;
        Ok(CapfIdentity {
            certificate: capf,
            tls: Arc::new(tls),
            issuer: Some(issuer),
            #[cfg(feature = "legacy-tls")]
            legacy_tls,
            files: LoadedFiles {
                certificate_pem: cert_pem,
                key_pem: key_pem.into_bytes(),
            },
        })
    }

    /// The backend that signs LSCs with the CAPF key (`None` once the issuer is taken).
    pub fn lsc_signer(&self) -> Option<SignerBackend> {
        self.issuer
            .as_ref()
            .and_then(|i| i.signer().signer_backend())
    }

    /// Takes the issuer out (for the CAPF signer), leaving the TLS side.
    pub fn take_issuer(&mut self) -> Option<Issuer> {
        self.issuer.take()
    }
}

/// rustls's crypto provider for the CAPF listener: aws-lc-rs with the feature of that name
/// (faster RSA signatures and key exchange, issue 19), else ring.
pub fn tls_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        rustls::crypto::aws_lc_rs::default_provider()
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        rustls::crypto::ring::default_provider()
    }
}

/// A [`CapfIdentity`] loaded from files written with a fixture CAPF certificate and key, and
/// that certificate's issuer (for the phone side's trust).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn fixture(test: &str, spec: capf_lsc::KeySpec) -> (CapfIdentity, Issuer) {
    let issuer = capf_test_support::capf_issuer(spec);
    let dir = std::env::temp_dir().join(format!("capf-server-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("capf.pem"), dir.join("capf.key"));
    std::fs::write(
        &cert,
        capf_lsc::certificate_to_pem(issuer.certificate()).unwrap(),
    )
    .unwrap();
    std::fs::write(&key, capf_test_support::key_pem(spec)).unwrap();
    let identity = CapfIdentity::load(&cert, &key, capf_test_support::now()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (identity, issuer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use capf_lsc::{Curve, KeySpec};

    #[test]
    fn debug_output_keeps_the_key_out() {
        let spec = KeySpec::Ec(Curve::P256);
        let (identity, _) = super::fixture("identity", spec);
        let shown = format!("{identity:?}");
        let key_body = capf_test_support::key_pem(spec).lines().nth(1).unwrap();
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains(key_body), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
