//! TLS to an online CA verified against CAPF-trust, including the guide's upload scenarios in
//! which the HTTPS certificate itself is uploaded: scenario 1 (the CA root is the HTTPS
//! certificate, a CA certificate webpki will not take as a server's) and scenario 4 (the
//! chain cannot be completed from the root). A presented certificate that CAPF-trust holds
//! byte for byte is trusted as itself, its name and validity still checked; any other is
//! verified by webpki up to the anchors.

use std::sync::Arc;

use capf_lsc::der::Decode;
use capf_lsc::x509_cert::Certificate;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The verifier of [`crate::http::HttpsConnection`].
#[derive(Debug)]
pub(crate) struct OnlineCaVerifier {
    server: ServerAuthentication,
    provider: Arc<CryptoProvider>,
}

/// How the CA's server is authenticated.
#[derive(Debug)]
enum ServerAuthentication {
    /// Against CAPF-trust.
    CapfTrust {
        /// The CAPF-trust certificates, DER: a server presenting one of them is trusted as
        /// itself.
        held: Vec<Vec<u8>>,
        /// Chain verification to the anchors; `None` when there are none.
        webpki: Option<Arc<WebPkiServerVerifier>>,
    },
    /// Not at all: an EST bootstrap fetch of `/cacerts` (RFC 7030 section 4.1.1). Only the
    /// handshake signature is checked against the key of the certificate presented. It serves
    /// nothing but showing the CA chain to an administrator, who confirms the root's
    /// fingerprint out of band before it is trusted; no credentials go over such a connection.
    UnauthenticatedBootstrap,
}

impl OnlineCaVerifier {
    /// Verifies the server against CAPF-trust: `held` (DER) and the anchors `roots`.
    pub(crate) fn capf_trust(
        held: Vec<Vec<u8>>,
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let webpki = (!roots.is_empty())
            .then(|| {
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .ok()
            })
            .flatten();
        OnlineCaVerifier {
            server: ServerAuthentication::CapfTrust { held, webpki },
            provider,
        }
    }

    /// Authenticates no server: an EST bootstrap fetch only.
    pub(crate) fn unauthenticated_bootstrap(provider: Arc<CryptoProvider>) -> Self {
        OnlineCaVerifier {
            server: ServerAuthentication::UnauthenticatedBootstrap,
            provider,
        }
    }
}

/// Whether `now` is within the certificate's validity.
fn valid_at(der: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let cert = Certificate::from_der(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &cert.tbs_certificate().validity();
    let now = std::time::Duration::from_secs(now.as_secs());
    if now < validity.not_before.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

impl ServerCertVerifier for OnlineCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ServerAuthentication::CapfTrust { held, webpki } = &self.server else {
            return Ok(ServerCertVerified::assertion());
        };
        if held
            .iter()
            .any(|held| held.as_slice() == end_entity.as_ref())
        {
            // Uploaded to CAPF-trust as itself: the name (the Online CA Hostname) and the
            // validity are still its own to meet.
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            valid_at(end_entity.as_ref(), now)?;
            return Ok(ServerCertVerified::assertion());
        }
        match webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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
