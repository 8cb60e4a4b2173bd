#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub use capf_lsc::IssuedLsc;
use capf_lsc::{DeviceName, EndpointCsr, Issuer, PhonePublicKey, ValidityDays};

pub mod certsrv;
mod crl;
pub mod est;
pub mod http;
pub mod online;
mod pkcs7;
mod tls_verify;
pub use crl::{RevokedSerial, build_crl};
pub use online::{BoxFuture, OnlineAnswer, OnlineCa, OnlineCaClient};

/// What went wrong while issuing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The LSC could not be built or signed (bad key, time out of range, signer failure).
    #[error("issuing the LSC for {device}: {source}")]
    Lsc {
        /// The device the LSC was for.
        device: String,
        /// What capf-lsc reported.
        #[source]
        source: capf_lsc::Error,
    },
    /// The operating system's random number generator failed (serial numbers come from it).
    #[error("random serial number for {device}: {source}")]
    Random {
        /// The device the LSC was for.
        device: String,
        /// What getrandom reported.
        #[source]
        source: getrandom::Error,
    },
    /// The signing task stopped before it finished (the runtime is shutting down).
    #[error("signing task for {device} did not finish: {detail}")]
    TaskFailed {
        /// The device the LSC was for.
        device: String,
        /// Why the task ended.
        detail: String,
    },
    /// An external CA was asked to issue without the phone's endpoint CSR (spec section 16),
    /// the only thing it can sign.
    #[error("the {mode} needs the endpoint CSR signed by {device}, and the request carries none")]
    CsrRequired {
        /// The device the LSC was for.
        device: String,
        /// The CA's mode ([`CertificateAuthority::mode`]).
        mode: &'static str,
    },
    /// The online CA cannot be reached: connection refused, no route, name not resolved.
    #[error("cannot connect to the online CA at {authority}: {source}")]
    Unreachable {
        /// `host:port`.
        authority: String,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake with the online CA failed, its certificate among the reasons (it must
    /// chain to CAPF-trust and name the configured hostname).
    #[error(
        "TLS with the online CA at {authority} failed (its certificate must chain to CAPF-trust and name the Online CA Hostname): {source}"
    )]
    Tls {
        /// `host:port`.
        authority: String,
        /// What rustls reported.
        #[source]
        source: std::io::Error,
    },
    /// The online CA did not answer in time.
    #[error("the online CA at {authority} did not answer in time ({what})")]
    Timeout {
        /// `host:port`.
        authority: String,
        /// What was waited for: "connecting", "waiting for the answer".
        what: &'static str,
    },
    /// The HTTP exchange failed (the connection closed, a malformed reply).
    #[error("HTTP with the online CA at {authority} failed: {source}")]
    Http {
        /// `host:port`.
        authority: String,
        /// What hyper reported.
        #[source]
        source: hyper::Error,
    },
    /// An HTTP request could not be built (a header value that HTTP cannot carry).
    #[error("building the HTTP request: {source}")]
    BadRequest {
        /// What the http crate reported.
        #[source]
        source: hyper::http::Error,
    },
    /// The online CA's reply is not what the protocol says (not a certificate, too large).
    #[error("the online CA at {authority} sent an answer that cannot be used: {detail}")]
    BadResponse {
        /// `host:port`.
        authority: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The online CA refused the request (EST 400: the CSR; an AD CS denial).
    #[error("the online CA refused the request (HTTP {status}): {detail}")]
    CaRefused {
        /// The HTTP status.
        status: u16,
        /// The CA's own words, one line.
        detail: String,
    },
    /// The online CA refused the credentials (HTTP 401). The password is never shown.
    #[error(
        "the online CA refused the credentials of user {username:?} (HTTP 401): check the Online CA Username and Password"
    )]
    Unauthorized {
        /// The Online CA Username.
        username: String,
    },
    /// The online CA has no such resource (HTTP 404): a wrong label or path.
    #[error(
        "the online CA has no {path} (HTTP 404): check the Certificate Enrollment Profile Label and the Online CA Hostname and Port"
    )]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The online CA failed (HTTP 5xx).
    #[error("the online CA failed (HTTP {status}): {detail}")]
    ServerError {
        /// The HTTP status.
        status: u16,
        /// The CA's own words, one line.
        detail: String,
    },
    /// An AD CS page in a language the client does not read (the Web Enrollment pages must
    /// be in English).
    #[error("the Microsoft CA's page is not in English, which this client reads: {detail}")]
    NotEnglish {
        /// What was seen.
        detail: String,
    },
    /// An unauthenticated fetch of the CA chain was asked of a type that has none (only EST's
    /// `/cacerts` bootstrap, RFC 7030 section 4.1.1, is one).
    #[error(
        "the {ca_type} has no unauthenticated fetch of its CA chain (EST's /cacerts bootstrap): upload its root to CAPF-trust from a file"
    )]
    NoBootstrap {
        /// The Online CA Type, in the guide's words.
        ca_type: &'static str,
    },
    /// No Online CA is configured, or its type has no client here.
    #[error("no Online CA client: {detail}")]
    NotConfigured {
        /// Why: not set, or the type's client is missing.
        detail: String,
    },
    /// A part of a CRL could not be encoded ([`build_crl`]).
    #[error("encoding {what}: {source}")]
    Crl {
        /// Which part, such as "an LSC serial".
        what: &'static str,
        /// What der reported.
        #[source]
        source: capf_lsc::der::Error,
    },
    /// The signer failed to sign a CRL ([`build_crl`]).
    #[error("signing the CRL: {source}")]
    CrlSignature {
        /// What capf-lsc reported.
        #[source]
        source: capf_lsc::Error,
    },
}

/// One certificate request: who, which key, for how long.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The device the LSC names (its subject CN).
    pub device: DeviceName,
    /// The public key the phone sent in KEY_GEN_RESPONSE, already checked against the key
    /// that was asked for.
    pub public_key: PhonePublicKey,
    /// How long the LSC is valid (1 to 1825 days).
    pub validity: ValidityDays,
    /// The endpoint CSR the phone signed (spec section 16), assembled and verified: what an
    /// external CA signs. `None` in CAPF mode, where CAPF signs the key without one.
    pub endpoint_csr: Option<EndpointCsr>,
    /// The device has an LSC this mode's CA issued installed: an online CA re-enrolls it (EST
    /// `simplereenroll`). Ignored by CAPF and the offline CA.
    pub reenroll: bool,
}

/// What an issuer answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueOutcome {
    /// Signed now.
    Issued(IssuedLsc),
    /// Accepted, to be signed later (an online CA that answers "pending", or an offline CA):
    /// the phone gets its certificate in a later session.
    Pending {
        /// The CA's handle on the request (an AD CS request id); `None` for an offline CA,
        /// whose request is known by the store's own request id.
        request_id: Option<String>,
        /// When the CA asks to be asked again (EST's `Retry-After`); `None` for an offline CA.
        retry_after: Option<std::time::Duration>,
    },
    /// An external CA's certificate, not checked yet: the caller checks it (capf-trust's
    /// `check_external_lsc`: the key, the device's name, validity, KeyUsage, the chain to
    /// CAPF-trust) before it is recorded or sent to a phone.
    Certificate {
        /// The certificate, DER.
        der: Vec<u8>,
        /// The other certificates the CA sent (intermediates), DER.
        chain: Vec<Vec<u8>>,
    },
}

/// The future an issuer returns.
pub type IssueFuture<'a> = Pin<Box<dyn Future<Output = Result<IssueOutcome, Error>> + Send + 'a>>;

/// Who signs LSCs: CAPF itself, an online CA, or an offline CA. Object-safe, so a server holds
/// `Arc<dyn CertificateAuthority>` and the mode is a configuration choice.
pub trait CertificateAuthority: Send + Sync + fmt::Debug {
    /// The guide's name of the mode, for logs ("CAPF", "online CA", "offline CA").
    fn mode(&self) -> &'static str;

    /// Issues (or queues) an LSC for `request` at time `now`.
    fn issue(&self, request: IssueRequest, now: SystemTime) -> IssueFuture<'_>;

    /// This issuer's signing as a plain call, when it signs on the calling thread in well under
    /// a millisecond (CAPF's own signer): a caller that is on a blocking thread anyway, to
    /// record the LSC, signs there and saves a hand-off to the blocking pool and back (issue
    /// 19). `None` (the default): call [`issue`](Self::issue).
    fn blocking_signer(&self) -> Option<BlockingSigner> {
        None
    }
}

/// A signer that runs on the calling thread ([`CertificateAuthority::blocking_signer`]): it
/// holds the CAPF certificate and key of the moment it was taken, as a request already signing
/// does when the key is replaced.
#[derive(Debug, Clone)]
pub struct BlockingSigner {
    issuer: Arc<Issuer>,
}

impl BlockingSigner {
    /// Signs the LSC for `request` at `now`, as [`CertificateAuthority::issue`] does but on this
    /// thread: call it on a blocking thread, never on an async worker.
    ///
    /// # Errors
    /// As [`CapfSigner::sign_now`].
    pub fn sign(&self, request: &IssueRequest, now: SystemTime) -> Result<IssuedLsc, Error> {
        sign(&self.issuer, request, now)
    }
}

/// The guide's default mode: CAPF signs LSCs with its own certificate and key.
///
/// Signing runs on tokio's blocking pool (an RSA signature takes milliseconds), so call
/// [`CertificateAuthority::issue`] within a tokio runtime. Serial numbers are 16 bytes from the
/// operating system's CSPRNG.
pub struct CapfSigner {
    issuer: RwLock<Arc<Issuer>>,
    /// Signatures running at once: one per core, so a burst of phones queues here instead of
    /// starting a blocking thread each.
    signing: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for CapfSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapfSigner")
            .field("issuer", &self.issuer())
            .finish()
    }
}

impl CapfSigner {
    /// A signer over the CAPF certificate and key (or any CA the CAPF is subordinate to).
    pub fn new(issuer: Issuer) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        CapfSigner {
            issuer: RwLock::new(Arc::new(issuer)),
            signing: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Replaces the certificate and key; requests already signing finish with the old ones.
    pub fn replace(&self, issuer: Issuer) {
        let new = Arc::new(issuer);
        match self.issuer.write() {
            Ok(mut guard) => *guard = new,
            // A writer cannot panic while holding the lock; recover the guard regardless.
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// The issuer in use now.
    pub fn issuer(&self) -> Arc<Issuer> {
        match self.issuer.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Signs synchronously on the calling thread: what [`CertificateAuthority::issue`] runs on
    /// the blocking pool.
    ///
    /// # Errors
    /// [`Error::Random`] when no serial can be drawn, [`Error::Lsc`] when the LSC cannot be
    /// built or signed.
    pub fn sign_now(&self, request: &IssueRequest, now: SystemTime) -> Result<IssuedLsc, Error> {
        sign(&self.issuer(), request, now)
    }
}

fn sign(issuer: &Issuer, request: &IssueRequest, now: SystemTime) -> Result<IssuedLsc, Error> {
    let device = request.device.as_str();
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|source| Error::Random {
        device: device.to_owned(),
        source,
    })?;
    let lsc_error = |source| Error::Lsc {
        device: device.to_owned(),
        source,
    };
    // The name was validated once, where it arrived: no second check here.
    let cert = issuer
        .issue_lsc_for(
            &request.public_key,
            &request.device,
            request.validity,
            now,
            &mut || serial,
        )
        .map_err(lsc_error)?;
    IssuedLsc::from_certificate(&cert).map_err(lsc_error)
}

impl CertificateAuthority for CapfSigner {
    fn mode(&self) -> &'static str {
        "CAPF"
    }

    fn issue(&self, request: IssueRequest, now: SystemTime) -> IssueFuture<'_> {
        let issuer = self.issuer();
        let signing = Arc::clone(&self.signing);
        Box::pin(async move {
            let device = request.device.as_str().to_owned();
            let _slot = signing
                .acquire_owned()
                .await
                .map_err(|e| Error::TaskFailed {
                    device: device.clone(),
                    detail: e.to_string(),
                })?;
            tokio::task::spawn_blocking(move || sign(&issuer, &request, now))
                .await
                .map_err(|e| Error::TaskFailed {
                    device,
                    detail: e.to_string(),
                })?
                .map(IssueOutcome::Issued)
        })
    }

    fn blocking_signer(&self) -> Option<BlockingSigner> {
        Some(BlockingSigner {
            issuer: self.issuer(),
        })
    }
}

/// The guide's Offline CA mode: the administrator exports the pending endpoint CSRs
/// (`capfctl csr export`), an external CA signs them, and the certificates come back by
/// `capfctl cert import`.
///
/// It records nothing itself: every request is answered [`IssueOutcome::Pending`] with no CA
/// request id, and the store's request table (where the server records the verified CSR before
/// asking) is the queue. A request without an endpoint CSR is refused
/// ([`Error::CsrRequired`]): an offline CA has nothing else to sign.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineCa;

impl CertificateAuthority for OfflineCa {
    fn mode(&self) -> &'static str {
        "offline CA"
    }

    fn issue(&self, request: IssueRequest, _now: SystemTime) -> IssueFuture<'_> {
        Box::pin(async move {
            if request.endpoint_csr.is_none() {
                return Err(Error::CsrRequired {
                    device: request.device.as_str().to_owned(),
                    mode: self.mode(),
                });
            }
            Ok(IssueOutcome::Pending {
                request_id: None,
                retry_after: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use capf_lsc::x509_cert::Certificate;
    use capf_lsc::{Curve, KeySpec, RsaBits, der::Decode, verify_signature};
    use capf_test_support as fixtures;

    fn request(spec: KeySpec) -> IssueRequest {
        IssueRequest {
            device: DeviceName::new("SEP001A2B3C4D5E").unwrap(),
            public_key: fixtures::phone_key(spec),
            validity: ValidityDays::new(30).unwrap(),
            endpoint_csr: None,
            reenroll: false,
        }
    }

    /// A request with the endpoint CSR of the fixture key `spec` (an issuer fixture, so the
    /// private key is at hand to sign it).
    fn request_with_csr(spec: KeySpec) -> IssueRequest {
        use capf_lsc::LscSigner;
        let pem = fixtures::key_pem(spec);
        let key = capf_lsc::IssuerKey::from_pkcs8_pem(pem).unwrap();
        let public = PhonePublicKey::from_spki(
            capf_lsc::der::referenced::OwnedToRef::owned_to_ref(key.public_key()),
        )
        .unwrap();
        let device = DeviceName::new("SEP001A2B3C4D5E").unwrap();
        let info = capf_lsc::endpoint_csr_info(&device, &public).unwrap();
        let (_, private) = capf_lsc::der::pem::decode_vec(pem.as_bytes()).unwrap();
        let signature = capf_lsc::sign_endpoint_csr_info(&private, &info).unwrap();
        IssueRequest {
            device,
            endpoint_csr: Some(EndpointCsr::assemble(&info, &signature, &public).unwrap()),
            public_key: public,
            validity: ValidityDays::new(30).unwrap(),
            reenroll: false,
        }
    }

    #[tokio::test]
    async fn the_offline_ca_answers_pending_with_no_ca_request_id() {
        let outcome = OfflineCa
            .issue(request_with_csr(KeySpec::Ec(Curve::P256)), fixtures::now())
            .await
            .unwrap();
        assert_eq!(
            outcome,
            IssueOutcome::Pending {
                request_id: None,
                retry_after: None
            }
        );
        assert_eq!(OfflineCa.mode(), "offline CA");
    }

    #[tokio::test]
    async fn the_offline_ca_refuses_a_request_without_an_endpoint_csr() {
        let err = OfflineCa
            .issue(request(KeySpec::Ec(Curve::P256)), fixtures::now())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CsrRequired { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("endpoint CSR signed by SEP001A2B3C4D5E"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn capf_signs_the_key_of_a_request_that_carries_an_endpoint_csr() {
        let request = request_with_csr(KeySpec::Rsa(RsaBits::B2048));
        let spki = request.public_key.spki().clone();
        let ca = CapfSigner::new(fixtures::capf_issuer(KeySpec::Ec(Curve::P256)));
        let lsc = ca.sign_now(&request, fixtures::now()).unwrap();
        let cert = Certificate::from_der(&lsc.der).unwrap();
        assert_eq!(cert.tbs_certificate().subject_public_key_info(), &spki);
    }

    #[tokio::test]
    async fn capf_signs_an_lsc_that_chains_to_the_capf_certificate() {
        let issuer = fixtures::capf_issuer(KeySpec::Ec(Curve::P256));
        let capf_cert = issuer.certificate().clone();
        let ca = CapfSigner::new(issuer);
        let outcome = ca
            .issue(request(KeySpec::Rsa(RsaBits::B2048)), fixtures::now())
            .await
            .unwrap();
        let IssueOutcome::Issued(lsc) = outcome else {
            panic!("pending from CAPF")
        };
        let cert = Certificate::from_der(&lsc.der).unwrap();
        verify_signature(&cert, capf_cert.tbs_certificate().subject_public_key_info()).unwrap();
        assert_eq!(
            cert.tbs_certificate().serial_number().as_bytes(),
            lsc.serial.as_slice()
        );
        assert_eq!(lsc.not_before, fixtures::now());
        assert_eq!(
            lsc.not_after
                .duration_since(lsc.not_before)
                .unwrap()
                .as_secs(),
            30 * 86_400
        );
    }

    #[tokio::test]
    async fn serials_are_random_per_lsc() {
        let ca = CapfSigner::new(fixtures::capf_issuer(KeySpec::Ec(Curve::P256)));
        let a = ca.sign_now(&request(KeySpec::Ec(Curve::P256)), fixtures::now());
        let b = ca.sign_now(&request(KeySpec::Ec(Curve::P256)), fixtures::now());
        assert_ne!(a.unwrap().serial, b.unwrap().serial);
    }

    #[tokio::test]
    async fn replaced_issuer_signs_the_next_lsc() {
        let ca = CapfSigner::new(fixtures::capf_issuer(KeySpec::Ec(Curve::P256)));
        let next = fixtures::capf_issuer(KeySpec::Ec(Curve::P384));
        let next_cert = next.certificate().clone();
        ca.replace(next);
        let lsc = ca
            .sign_now(&request(KeySpec::Ec(Curve::P256)), fixtures::now())
            .unwrap();
        verify_signature(
            &Certificate::from_der(&lsc.der).unwrap(),
            next_cert.tbs_certificate().subject_public_key_info(),
        )
        .unwrap();
    }
}
