//! How the phone trusts the CAPF server: the CAPF certificate is CA:TRUE and names no host,
//! which the default webpki verifier refuses (spec rule T3). The server is accepted when its
//! certificate is one of the configured CAPF certificates (pinned), or is signed by one of them
//! and valid now; no host-name check, as capfc does.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use capf_lsc::der::Decode;
use capf_lsc::x509_cert::Certificate;
use capf_lsc::{cert_info, verify_signature};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The trust file: CAPF certificates (and CAs over them) a phone accepts.
#[derive(Debug)]
pub(crate) struct CapfVerifier {
    anchors: Vec<(Vec<u8>, Certificate)>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl CapfVerifier {
    pub(crate) fn new(anchors: Vec<(Vec<u8>, Certificate)>, provider: &CryptoProvider) -> Self {
        CapfVerifier {
            anchors,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    pub(crate) fn into_config(
        self,
        provider: Arc<CryptoProvider>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for CapfVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .anchors
            .iter()
            .any(|(der, _)| der.as_slice() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = Certificate::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now = UNIX_EPOCH + Duration::from_secs(now.as_secs());
        let (not_before, not_after) = cert_info::validity(&cert);
        if now < not_before {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        if now > not_after {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        let signed_by_anchor = self.anchors.iter().any(|(_, anchor)| {
            cert.tbs_certificate().issuer() == anchor.tbs_certificate().subject()
                && verify_signature(&cert, anchor.tbs_certificate().subject_public_key_info())
                    .is_ok()
        });
        if signed_by_anchor {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
